// Causal self-attention with dropout on the attention weights, for the CPU: what libtorch lacks.
//
// libtorch's fused CPU attention (flash attention for the CPU) has no dropout, so with dropout
// `scaled_dot_product_attention` falls back to its "math" path: scores, a masked softmax, a
// Bernoulli mask drawn with `bernoulli_` (about 8 ns an element) and stored, a multiply, the
// product with the values -- every step a full pass over [B, H, T, T], and the mask kept for the
// backward pass. Here the two matrix products stay libtorch's (MKL / oneDNN, bf16 where the inputs
// are), and everything between them is one pass per row:
//
//   forward   P = softmax(scale * q k^T) over the visible (causal) columns, in fp32;
//             D = P * keep / (1 - p), in the inputs' dtype;  out = D v
//   backward  dD = dout v^T;  dP = dD * keep / (1 - p);  dS = P * (dP - sum_j P dP) * scale
//             dv = D^T dout;  dq = dS k;  dk = dS^T q
//
// The dropout mask is never drawn from a generator nor stored: `keep` is a hash of (key, row,
// column) -- a counter-based generator -- so the backward pass recomputes it, a checkpoint needs
// nothing of it, and a test can ask for the very mask a call used (gptbuild_dropout_keep, in
// dropout.cpp; the hash is counter_mask.h). The key comes from the caller (src/kernels/ draws it
// from libtorch's generator, which the trainer seeds per iteration).
//
// Short sequences take a second route through the same autograd node: one head at a time, the
// products written out beside the row passes (attention_per_head.cpp), where libtorch's calls for
// tiny matrices cost far more than their arithmetic. The caller picks the route.
//
// Every entry point turns a C++ exception into a return code and a message.

#include "../seam.h"
#include "attention_per_head.h"
#include "counter_mask.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

using namespace gptbuild::kernels;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// ---- the two row passes --------------------------------------------------------------------------

// One row of the forward pass: `scores` (length `cols`, of which the first `visible` are not in
// the future) to fp32 weights `probs` and dropped weights `dropped`.
template <typename T>
ALWAYS_INLINE void forward_row(const T* __restrict__ scores, float* __restrict__ probs,
                               T* __restrict__ dropped, int64_t cols, int64_t visible,
                               float scale, uint64_t row, uint32_t threshold, float keep_scale) {
  float maximum = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : maximum)
  for (int64_t j = 0; j < visible; ++j) maximum = std::max(maximum, load(scores, j) * scale);
  // The exponentials read fp32 whatever the scores' dtype (a loop over one type vectorises).
#pragma omp simd
  for (int64_t j = 0; j < visible; ++j) probs[j] = load(scores, j) * scale - maximum;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < visible; ++j) {
    float e = exp_nonpositive(probs[j]);
    probs[j] = e;
    sum += e;
  }
  const float inverse = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < visible; ++j) {
    float weight = probs[j] * inverse;
    probs[j] = weight;
    store(dropped, j, masked(weight * keep_scale, kept(row, static_cast<uint32_t>(j), threshold)));
  }
  for (int64_t j = visible; j < cols; ++j) {
    probs[j] = 0.0f;
    store(dropped, j, 0.0f);
  }
}

// One row of the backward pass: from the weights `probs` and the gradient of the dropped weights
// (`grad`, overwritten with the gradient of the scores), and the dropped weights again into
// `dropped` for the values' gradient.
// `masks` is scratch for one row: the mask is hashed once and read twice.
template <typename T>
ALWAYS_INLINE void backward_row(const float* __restrict__ probs, T* __restrict__ grad,
                                T* __restrict__ dropped, uint32_t* __restrict__ masks,
                                int64_t cols, int64_t visible, float scale, uint64_t row,
                                uint32_t threshold, float keep_scale) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < visible; ++j) {
    uint32_t mask = kept(row, static_cast<uint32_t>(j), threshold);
    masks[j] = mask;
    dot += probs[j] * masked(load(grad, j) * keep_scale, mask);
  }
#pragma omp simd
  for (int64_t j = 0; j < visible; ++j) {
    store(grad, j, probs[j] * (masked(load(grad, j) * keep_scale, masks[j]) - dot) * scale);
    store(dropped, j, masked(probs[j] * keep_scale, masks[j]));
  }
  for (int64_t j = visible; j < cols; ++j) {
    store(grad, j, 0.0f);
    store(dropped, j, 0.0f);
  }
}

// Rows begin..end of [B, H, T, T] (T = cols); row r is query position r % T, which sees columns
// 0..=r % T.
template <typename T>
ALWAYS_INLINE void forward_rows(const T* scores, float* probs, T* dropped, int64_t begin,
                                int64_t end, int64_t cols, float scale, uint64_t key,
                                uint32_t threshold, float keep_scale) {
  for (int64_t r = begin; r < end; ++r)
    forward_row(scores + r * cols, probs + r * cols, dropped + r * cols, cols, (r % cols) + 1,
                scale, row_bits(key, static_cast<uint64_t>(r)), threshold, keep_scale);
}

template <typename T>
ALWAYS_INLINE void backward_rows(const float* probs, T* grad, T* dropped, int64_t begin,
                                 int64_t end, int64_t cols, float scale, uint64_t key,
                                 uint32_t threshold, float keep_scale) {
  std::vector<uint32_t> masks(static_cast<size_t>(cols));
  for (int64_t r = begin; r < end; ++r)
    backward_row(probs + r * cols, grad + r * cols, dropped + r * cols, masks.data(), cols,
                 (r % cols) + 1, scale, row_bits(key, static_cast<uint64_t>(r)), threshold,
                 keep_scale);
}

CLONES void forward_rows_f32(const float* s, float* w, float* d, int64_t begin, int64_t end,
                             int64_t cols, float scale, uint64_t key, uint32_t threshold,
                             float keep_scale) {
  forward_rows(s, w, d, begin, end, cols, scale, key, threshold, keep_scale);
}

CLONES void forward_rows_bf16(const bf16_bits* s, float* w, bf16_bits* d, int64_t begin,
                              int64_t end, int64_t cols, float scale, uint64_t key,
                              uint32_t threshold, float keep_scale) {
  forward_rows(s, w, d, begin, end, cols, scale, key, threshold, keep_scale);
}

CLONES void backward_rows_f32(const float* w, float* g, float* d, int64_t begin, int64_t end,
                              int64_t cols, float scale, uint64_t key, uint32_t threshold,
                              float keep_scale) {
  backward_rows(w, g, d, begin, end, cols, scale, key, threshold, keep_scale);
}

CLONES void backward_rows_bf16(const float* w, bf16_bits* g, bf16_bits* d, int64_t begin,
                               int64_t end, int64_t cols, float scale, uint64_t key,
                               uint32_t threshold, float keep_scale) {
  backward_rows(w, g, d, begin, end, cols, scale, key, threshold, keep_scale);
}

// The two routes, as the Rust side names them (src/kernels/causal_attention.rs: Route).
constexpr int64_t kProducts = 0;  // libtorch's batched products around the row passes
constexpr int64_t kPerHead = 1;   // one head at a time, for short sequences (attention_per_head.cpp)

struct CausalAttention : public torch::autograd::Function<CausalAttention> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, double scale, double p, int64_t key,
                            int64_t route) {
    at::NoGradGuard no_grad;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["p"] = p;
    ctx->saved_data["key"] = key;
    ctx->saved_data["route"] = route;
    if (route == kPerHead) {
      at::Tensor probs;
      at::Tensor out = per_head_forward(q, k, v, probs, scale, p, static_cast<uint64_t>(key));
      ctx->save_for_backward({q, k, v, probs});
      return out;
    }
    // Queries, keys and values usually arrive as views of one [B, T, (H + 2 Hkv) hs] projection,
    // heads strided across it; the batched products need each head's rows packed, so they are
    // packed once here and kept for the backward pass, whose products would otherwise pack them
    // again.
    const at::Tensor q_packed = q.contiguous(), k_packed = k.contiguous(), v_packed = v.contiguous();
    at::Tensor scores = at::matmul(q_packed, k_packed.transpose(-2, -1)).contiguous();
    at::Tensor probs = at::empty(scores.sizes(), scores.options().dtype(at::kFloat));
    at::Tensor dropped = at::empty_like(scores);
    const int64_t cols = scores.size(-1), rows = scores.numel() / std::max<int64_t>(cols, 1);
    const uint32_t threshold = threshold_of(p);
    const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
    const float factor = static_cast<float>(scale);
    const auto unsigned_key = static_cast<uint64_t>(key);
    in_parallel(rows, cols, [&](int64_t begin, int64_t end) {
      if (scores.scalar_type() == at::kFloat)
        forward_rows_f32(scores.const_data_ptr<float>(), probs.mutable_data_ptr<float>(),
                         dropped.mutable_data_ptr<float>(), begin, end, cols, factor,
                         unsigned_key, threshold, keep_scale);
      else
        forward_rows_bf16(bits(scores.const_data_ptr<c10::BFloat16>()),
                          probs.mutable_data_ptr<float>(),
                          bits(dropped.mutable_data_ptr<c10::BFloat16>()), begin, end, cols, factor,
                          unsigned_key, threshold, keep_scale);
    });
    ctx->save_for_backward({q_packed, k_packed, v_packed, probs});
    return at::matmul(dropped, v_packed);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    const double scale = ctx->saved_data["scale"].toDouble();
    const double p = ctx->saved_data["p"].toDouble();
    const int64_t key = ctx->saved_data["key"].toInt();
    if (ctx->saved_data["route"].toInt() == kPerHead) {
      auto [grad_q, grad_k, grad_v] =
          per_head_backward(grads[0], q, k, v, probs, scale, p, static_cast<uint64_t>(key));
      return {grad_q, grad_k, grad_v, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    // Packed once: the gradient arrives as heads strided across [B, T, H hs], and two products
    // read it.
    at::Tensor grad_out = grads[0].to(v.scalar_type()).contiguous();
    at::Tensor grad = at::matmul(grad_out, v.transpose(-2, -1)).contiguous();
    at::Tensor dropped = at::empty_like(grad);
    const int64_t cols = grad.size(-1), rows = grad.numel() / std::max<int64_t>(cols, 1);
    const uint32_t threshold = threshold_of(p);
    const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
    const float factor = static_cast<float>(scale);
    const auto unsigned_key = static_cast<uint64_t>(key);
    in_parallel(rows, cols, [&](int64_t begin, int64_t end) {
      if (grad.scalar_type() == at::kFloat)
        backward_rows_f32(probs.const_data_ptr<float>(), grad.mutable_data_ptr<float>(),
                          dropped.mutable_data_ptr<float>(), begin, end, cols, factor,
                          unsigned_key, threshold, keep_scale);
      else
        backward_rows_bf16(probs.const_data_ptr<float>(),
                           bits(grad.mutable_data_ptr<c10::BFloat16>()),
                           bits(dropped.mutable_data_ptr<c10::BFloat16>()), begin, end, cols, factor,
                           unsigned_key, threshold, keep_scale);
    });
    at::Tensor grad_q = at::matmul(grad, k);
    at::Tensor grad_k = at::matmul(grad.transpose(-2, -1), q);
    at::Tensor grad_v = at::matmul(dropped.transpose(-2, -1), grad_out);
    return {grad_q, grad_k, grad_v, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};


void check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double p,
                  int64_t route) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "causal attention: queries, keys and values must be [B, H, T, hs]");
  TORCH_CHECK(q.sizes() == k.sizes() && k.size(2) == v.size(2) && q.size(1) == v.size(1) &&
                  q.size(0) == v.size(0),
              "causal attention: queries and keys must be alike, values of the same positions");
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(),
              "causal attention: CPU tensors only");
  TORCH_CHECK(q.scalar_type() == k.scalar_type() && k.scalar_type() == v.scalar_type(),
              "causal attention: queries, keys and values must share a dtype");
  TORCH_CHECK(q.scalar_type() == at::kFloat || q.scalar_type() == at::kBFloat16,
              "causal attention: fp32 or bf16 only");
  TORCH_CHECK(p >= 0.0 && p < 1.0, "causal attention: dropout must be in [0, 1)");
  TORCH_CHECK(route == kProducts || route == kPerHead, "causal attention: no route ", route);
}

}  // namespace

extern "C" {

// out = dropout(softmax(scale q k^T, causal)) v as an autograd node, by `route` (kProducts or
// kPerHead); `*out` receives a new tensor.
int gptbuild_causal_attention(const at::Tensor* q, const at::Tensor* k, const at::Tensor* v,
                              double scale, double p, uint64_t key, int32_t route, at::Tensor** out,
                              char* error, size_t error_len) {
  return gptbuild::guarded(error, error_len, [&] {
    check_inputs(*q, *k, *v, p, route);
    at::Tensor result =
        CausalAttention::apply(*q, *k, *v, scale, p, static_cast<int64_t>(key), route);
    *out = new at::Tensor(std::move(result));
  });
}

}  // extern "C"
