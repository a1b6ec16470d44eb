// RMSNorm (Zhang & Sennrich 2019) for the CPU in one pass each way: y = x * r * w with
// r = 1 / sqrt(mean(x^2) + eps) per row (a row is a run of the last dimension). Written out in
// libtorch's ops it is six kernels forward (square, mean, add, rsqrt, two multiplications) and
// about twice that backward, each a pass over the activations and a parallel region of its own;
// at the widths of a CPU model (a few hundred) those passes and their thread hand-offs cost more
// than the arithmetic. Here the forward pass keeps r (one float a row) and the backward pass,
//   dx = r * (g*w) - x * r^3 * mean(g*w*x),   dw = sum over rows of g * x * r,
// is one pass over the rows, each thread summing dw over its own rows into a row of scratch that
// is added up at the end (in thread order, so a fixed thread count gives fixed results).

#include "../seam.h"
#include "counter_mask.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdint>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

CLONES void forward_rows(const float* __restrict__ x, const float* __restrict__ w,
                         float* __restrict__ y, float* __restrict__ rstd, int64_t begin,
                         int64_t end, int64_t cols, float eps) {
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float sum_squares = 0.0f;
#pragma omp simd reduction(+ : sum_squares)
    for (int64_t j = 0; j < cols; ++j) sum_squares += xr[j] * xr[j];
    const float scale = 1.0f / std::sqrt(sum_squares / static_cast<float>(cols) + eps);
    rstd[r] = scale;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) yr[j] = xr[j] * scale * w[j];
  }
}

CLONES void backward_rows(const float* __restrict__ x, const float* __restrict__ w,
                          const float* __restrict__ rstd, const float* __restrict__ g,
                          float* __restrict__ dx, float* __restrict__ dw, int64_t begin,
                          int64_t end, int64_t cols) {
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * cols;
    const float* gr = g + r * cols;
    float* dxr = dx + r * cols;
    const float scale = rstd[r];
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < cols; ++j) dot += gr[j] * w[j] * xr[j];
    const float correction = scale * scale * scale * dot / static_cast<float>(cols);
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) {
      dxr[j] = scale * gr[j] * w[j] - correction * xr[j];
      dw[j] += gr[j] * xr[j] * scale;
    }
  }
}

// Rows of `x` viewed as [rows, cols], with cols the size of `weight`.
int64_t rows_of(const at::Tensor& x, int64_t cols) { return cols == 0 ? 0 : x.numel() / cols; }

struct RmsNorm : public torch::autograd::Function<RmsNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input,
                            const at::Tensor& weight_in, double eps) {
    at::NoGradGuard no_grad;
    at::Tensor x = input.contiguous();
    at::Tensor weight = weight_in.contiguous();
    const int64_t cols = weight.numel();
    const int64_t rows = rows_of(x, cols);
    at::Tensor y = at::empty_like(x);
    at::Tensor rstd = at::empty({rows}, x.options());
    gptbuild::kernels::in_parallel(rows, cols, [&](int64_t begin, int64_t end) {
      forward_rows(x.const_data_ptr<float>(), weight.const_data_ptr<float>(),
                   y.mutable_data_ptr<float>(), rstd.mutable_data_ptr<float>(), begin, end, cols,
                   static_cast<float>(eps));
    });
    ctx->save_for_backward({x, weight, rstd});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    at::NoGradGuard no_grad;
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& rstd = saved[2];
    at::Tensor g = grads[0].to(at::kFloat).contiguous();
    const int64_t cols = weight.numel();
    const int64_t rows = rows_of(x, cols);
    at::Tensor dx = at::empty_like(x);
    // One row of dw per thread: parallel_for gives each thread one chunk of rows (or runs inline
    // as thread 0).
    at::Tensor partial = at::zeros({at::get_num_threads(), cols}, x.options());
    gptbuild::kernels::in_parallel(rows, cols, [&](int64_t begin, int64_t end) {
      const int thread = at::get_thread_num();
      TORCH_CHECK(thread >= 0 && thread < partial.size(0), "rms_norm: unexpected thread number");
      float* dw = partial.mutable_data_ptr<float>() + thread * cols;
      backward_rows(x.const_data_ptr<float>(), weight.const_data_ptr<float>(),
                    rstd.const_data_ptr<float>(), g.const_data_ptr<float>(),
                    dx.mutable_data_ptr<float>(), dw, begin, end, cols);
    });
    return {dx, partial.sum(0), at::Tensor()};
  }
};

}  // namespace

extern "C" {

// out = rms_norm(x, weight, eps) over the last dimension, as an autograd node; `*out` receives a
// new tensor.
int gptbuild_rms_norm(const at::Tensor* x, const at::Tensor* weight, double eps, at::Tensor** out,
                      char* error, size_t error_len) {
  return gptbuild::guarded(error, error_len, [&] {
    TORCH_CHECK(x->device().is_cpu() && weight->device().is_cpu(), "rms_norm: CPU tensors only");
    TORCH_CHECK(x->scalar_type() == at::kFloat && weight->scalar_type() == at::kFloat,
                "rms_norm: fp32 only");
    TORCH_CHECK(weight->dim() == 1 && x->dim() >= 1 && x->size(-1) == weight->size(0),
                "rms_norm: the weight must be one value per element of the last dimension");
    TORCH_CHECK(eps > 0.0, "rms_norm: eps must be positive");
    *out = new at::Tensor(RmsNorm::apply(*x, *weight, eps));
  });
}

}  // extern "C"
