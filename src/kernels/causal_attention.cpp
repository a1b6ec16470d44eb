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
// nothing of it, and a test can ask for the very mask a call used (gptbuild_dropout_keep).
// The key comes from the caller (src/kernels/causal_attention.rs draws it from libtorch's
// generator, which the trainer seeds per iteration).
//
// Every entry point turns a C++ exception into a return code and a message.

#include "../seam.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <vector>

// Inlined into each instruction-set clone below, so that each vectorises for its own ISA.
#define ALWAYS_INLINE __attribute__((always_inline)) inline
// The row passes are compiled for AVX-512, AVX2 and plain x86-64, the best chosen when the
// library loads (GCC's function multi-versioning); the build targets any x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// ---- the dropout mask: a counter-based hash --------------------------------------------------

// SplitMix64's finaliser: a bijection of 64 bits whose outputs look independent.
ALWAYS_INLINE uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// MurmurHash3's 32-bit finaliser (a bijection); vectorises, unlike 64-bit multiplies on AVX2.
ALWAYS_INLINE uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bU;
  h ^= h >> 13;
  h *= 0xc2b2ae35U;
  h ^= h >> 16;
  return h;
}

// Each row's own 64 random bits, from the call's key and the row's index.
ALWAYS_INLINE uint64_t row_bits(uint64_t key, uint64_t row) {
  return mix64(key + 0x9e3779b97f4a7c15ULL * (row + 1));
}

// Whether column `col` of a row survives: the hash, uniform on 32 bits, is at least the
// threshold p * 2^32. Distinct columns of a row give distinct hashes (mix32 is a bijection).
ALWAYS_INLINE bool keeps(uint64_t row, uint32_t col, uint32_t threshold) {
  uint32_t h = mix32((col * 0x9e3779b9U) ^ static_cast<uint32_t>(row)) ^
               static_cast<uint32_t>(row >> 32);
  return mix32(h) >= threshold;
}

// p in [0, 1) as a threshold on 32 random bits.
uint32_t threshold_of(double p) {
  double t = std::round(p * 4294967296.0);
  return t >= 4294967295.0 ? 0xffffffffU : static_cast<uint32_t>(t);
}

// ---- fp32 helpers that vectorise ---------------------------------------------------------------

ALWAYS_INLINE float bits_to_float(uint32_t u) { return __builtin_bit_cast(float, u); }

ALWAYS_INLINE uint32_t float_to_bits(float f) { return __builtin_bit_cast(uint32_t, f); }

// e^x for x <= 0 (softmax after subtracting the row's maximum): x = n ln2 + r with |r| <= ln2/2,
// e^r by its degree-6 Taylor-like minimax polynomial (Cephes' expf coefficients, max relative
// error about 2 ulp), times 2^n built in the exponent bits. Below -87 the result is 0 (e^-87 is
// 1.6e-38, the edge of fp32's normal range; in a softmax it is nothing next to the maximum's 1).
ALWAYS_INLINE float exp_nonpositive(float x) {
  const bool vanishes = x < -87.0f;
  x = std::max(x, -87.0f);
  // Round x / ln2 to the nearest integer by the 1.5 * 2^23 trick (no SSE4.1 round needed).
  const float shifter = 12582912.0f;
  float n = (x * 1.44269504088896341f + shifter) - shifter;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t exponent = static_cast<int32_t>(n) + 127;
  float scale = bits_to_float(static_cast<uint32_t>(exponent) << 23);
  return vanishes ? 0.0f : p * scale;
}

// bf16 (as its raw 16 bits) <-> fp32, rounding to nearest even; the values here are finite.
using bf16_bits = uint16_t;
ALWAYS_INLINE float load(const float* x, int64_t j) { return x[j]; }
ALWAYS_INLINE float load(const bf16_bits* x, int64_t j) {
  return bits_to_float(static_cast<uint32_t>(x[j]) << 16);
}
ALWAYS_INLINE void store(float* x, int64_t j, float value) { x[j] = value; }
ALWAYS_INLINE void store(bf16_bits* x, int64_t j, float value) {
  uint32_t u = float_to_bits(value);
  u += 0x7fffU + ((u >> 16) & 1U);
  x[j] = static_cast<bf16_bits>(u >> 16);
}

// ---- the two row passes --------------------------------------------------------------------------

// One row of the forward pass: `scores` (length `cols`, of which the first `visible` are not in
// the future) to fp32 weights `probs` and dropped weights `dropped`.
template <typename T>
ALWAYS_INLINE void forward_row(const T* scores, float* probs, T* dropped, int64_t cols, int64_t visible,
                 float scale, uint64_t row, uint32_t threshold, float keep_scale) {
  float maximum = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : maximum)
  for (int64_t j = 0; j < visible; ++j) maximum = std::max(maximum, load(scores, j) * scale);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < visible; ++j) {
    float e = exp_nonpositive(load(scores, j) * scale - maximum);
    probs[j] = e;
    sum += e;
  }
  const float inverse = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < visible; ++j) {
    float weight = probs[j] * inverse;
    probs[j] = weight;
    float kept = keeps(row, static_cast<uint32_t>(j), threshold) ? weight * keep_scale : 0.0f;
    store(dropped, j, kept);
  }
  for (int64_t j = visible; j < cols; ++j) {
    probs[j] = 0.0f;
    store(dropped, j, 0.0f);
  }
}

// One row of the backward pass: from the weights `probs` and the gradient of the dropped weights
// (`grad`, overwritten with the gradient of the scores), and the dropped weights again into
// `dropped` for the values' gradient.
template <typename T>
ALWAYS_INLINE void backward_row(const float* probs, T* grad, T* dropped, int64_t cols, int64_t visible,
                  float scale, uint64_t row, uint32_t threshold, float keep_scale) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < visible; ++j) {
    bool kept = keeps(row, static_cast<uint32_t>(j), threshold);
    float grad_weight = kept ? load(grad, j) * keep_scale : 0.0f;
    dot += probs[j] * grad_weight;
  }
#pragma omp simd
  for (int64_t j = 0; j < visible; ++j) {
    bool kept = keeps(row, static_cast<uint32_t>(j), threshold);
    float grad_weight = kept ? load(grad, j) * keep_scale : 0.0f;
    store(grad, j, probs[j] * (grad_weight - dot) * scale);
    store(dropped, j, kept ? probs[j] * keep_scale : 0.0f);
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
  for (int64_t r = begin; r < end; ++r)
    backward_row(probs + r * cols, grad + r * cols, dropped + r * cols, cols, (r % cols) + 1,
                 scale, row_bits(key, static_cast<uint64_t>(r)), threshold, keep_scale);
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

// A bf16 tensor's data as raw bits (c10::BFloat16 is one uint16_t).
const bf16_bits* bits(const c10::BFloat16* x) { return reinterpret_cast<const bf16_bits*>(x); }
bf16_bits* bits(c10::BFloat16* x) { return reinterpret_cast<bf16_bits*>(x); }

// Runs `body(begin, end)` over the rows in parallel chunks of about 32k elements.
template <typename Body>
void in_parallel(int64_t rows, int64_t cols, Body body) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1));
  at::parallel_for(0, rows, grain, body);
}

struct CausalAttention : public torch::autograd::Function<CausalAttention> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, double scale, double p, int64_t key) {
    at::NoGradGuard no_grad;
    at::Tensor scores = at::matmul(q, k.transpose(-2, -1)).contiguous();
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
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["p"] = p;
    ctx->saved_data["key"] = key;
    return at::matmul(dropped, v);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    const double scale = ctx->saved_data["scale"].toDouble();
    const double p = ctx->saved_data["p"].toDouble();
    const int64_t key = ctx->saved_data["key"].toInt();
    at::Tensor grad_out = grads[0].to(v.scalar_type());
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
    return {grad_q, grad_k, grad_v, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};


void check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double p) {
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
}

}  // namespace

extern "C" {

// out = dropout(softmax(scale q k^T, causal)) v as an autograd node; `*out` receives a new tensor.
int gptbuild_causal_attention(const at::Tensor* q, const at::Tensor* k, const at::Tensor* v,
                              double scale, double p, uint64_t key, at::Tensor** out, char* error,
                              size_t error_len) {
  return gptbuild::guarded(error, error_len, [&] {
    check_inputs(*q, *k, *v, p);
    at::Tensor result =
        CausalAttention::apply(*q, *k, *v, scale, p, static_cast<int64_t>(key));
    *out = new at::Tensor(std::move(result));
  });
}

// The mask a call with this key and p used, [rows, cols] of bool (true = kept): row r of the
// [B, H, T, T] weights is r = (b * H + h) * T + i.
int gptbuild_dropout_keep(uint64_t key, int64_t rows, int64_t cols, double p, at::Tensor** out,
                          char* error, size_t error_len) {
  return gptbuild::guarded(error, error_len, [&] {
    TORCH_CHECK(rows >= 0 && cols >= 0, "dropout mask: negative size");
    TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout mask: p must be in [0, 1)");
    at::Tensor mask = at::empty({rows, cols}, at::TensorOptions().dtype(at::kBool));
    bool* m = mask.mutable_data_ptr<bool>();
    const uint32_t threshold = threshold_of(p);
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const uint64_t row = row_bits(key, static_cast<uint64_t>(r));
        for (int64_t j = 0; j < cols; ++j)
          m[r * cols + j] = keeps(row, static_cast<uint32_t>(j), threshold);
      }
    });
    *out = new at::Tensor(std::move(mask));
  });
}

}  // extern "C"
