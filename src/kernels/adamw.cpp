// One AdamW step (Loshchilov & Hutter 2017) over the optimizer's flat fp32 buffers in a single
// pass on the CPU: each element's parameter, gradient and two moments are read once and written
// once. The same step as tensor operations (src/train/optim.rs, the reference the tests compare
// against) is about ten passes over the buffers, each also a dispatch through libtorch: for the
// course's small models those dispatches are a large share of a training step.
//
// Per element, with the scalars the Rust side folds from lr, the betas, eps, the weight decay and
// the step's bias corrections:
//   g = grad * grad_scale                       (gradient clipping's factor, 1 without clipping)
//   p = p - p * decay * lr_decay                (decoupled weight decay; decay is 1 or the mask's)
//   m = m + (1 - beta1) * (g - m)               (as at::lerp for weights under 0.5)
//   v = v + (1 - beta2) * (g * g - v)
//   p = p + m / (sqrt(v) * denom_scale + denom_offset)

#include "../seam.h"
#include "counter_mask.h"  // ALWAYS_INLINE, CLONES

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>

namespace {

using namespace gptbuild::kernels;

template <bool kMask>
ALWAYS_INLINE void adamw_range(float* __restrict__ p, const float* __restrict__ g,
                               float* __restrict__ m, float* __restrict__ v,
                               const float* __restrict__ mask, int64_t begin, int64_t end,
                               float grad_scale, float lr_decay, float avg_weight, float sq_weight,
                               float denom_scale, float denom_offset) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    const float grad = g[i] * grad_scale;
    float param = p[i];
    const float decay = kMask ? mask[i] : 1.0f;
    param = param - param * decay * lr_decay;
    const float avg = m[i] + avg_weight * (grad - m[i]);
    const float sq = v[i] + sq_weight * (grad * grad - v[i]);
    m[i] = avg;
    v[i] = sq;
    p[i] = param + avg / (std::sqrt(sq) * denom_scale + denom_offset);
  }
}

CLONES void adamw_range_f32(float* p, const float* g, float* m, float* v, const float* mask,
                            int64_t begin, int64_t end, float grad_scale, float lr_decay,
                            float avg_weight, float sq_weight, float denom_scale,
                            float denom_offset) {
  if (mask != nullptr)
    adamw_range<true>(p, g, m, v, mask, begin, end, grad_scale, lr_decay, avg_weight, sq_weight,
                      denom_scale, denom_offset);
  else
    adamw_range<false>(p, g, m, v, mask, begin, end, grad_scale, lr_decay, avg_weight, sq_weight,
                       denom_scale, denom_offset);
}

void check_buffer(const at::Tensor& t, const at::Tensor& like, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(), name,
              " must be a contiguous fp32 CPU tensor");
  TORCH_CHECK(t.numel() == like.numel(), name, " has ", t.numel(), " values, the parameters ",
              like.numel());
}

}  // namespace

extern "C" {

// One step, in place on `params`, `exp_avg` and `exp_avg_sq`. `decay_mask` (null: decay applies
// to every value) and `grad_scale` (null: 1; else a one-value fp32 tensor, the clipping factor,
// read here without leaving the CPU) are optional.
int gptbuild_adamw_step(at::Tensor* params, const at::Tensor* grad, at::Tensor* exp_avg,
                        at::Tensor* exp_avg_sq, const at::Tensor* decay_mask,
                        const at::Tensor* grad_scale, double lr_decay, double avg_weight,
                        double sq_weight, double denom_scale, double denom_offset, char* error,
                        size_t error_len) {
  return gptbuild::guarded(error, error_len, [&] {
    check_buffer(*params, *params, "the parameters");
    check_buffer(*grad, *params, "the gradient");
    check_buffer(*exp_avg, *params, "exp_avg");
    check_buffer(*exp_avg_sq, *params, "exp_avg_sq");
    if (decay_mask != nullptr) check_buffer(*decay_mask, *params, "the decay mask");
    float scale = 1.0f;
    if (grad_scale != nullptr) {
      TORCH_CHECK(grad_scale->device().is_cpu() && grad_scale->numel() == 1,
                  "the gradient's scale must be one value on the CPU");
      scale = grad_scale->item<float>();
    }
    float* p = params->mutable_data_ptr<float>();
    const float* g = grad->const_data_ptr<float>();
    float* m = exp_avg->mutable_data_ptr<float>();
    float* v = exp_avg_sq->mutable_data_ptr<float>();
    const float* mask = decay_mask != nullptr ? decay_mask->const_data_ptr<float>() : nullptr;
    const auto f = [](double x) { return static_cast<float>(x); };
    at::parallel_for(0, params->numel(), 32768, [&](int64_t begin, int64_t end) {
      adamw_range_f32(p, g, m, v, mask, begin, end, scale, f(lr_decay), f(avg_weight),
                      f(sq_weight), f(denom_scale), f(denom_offset));
    });
  });
}

}  // extern "C"
