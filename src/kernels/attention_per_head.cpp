// Causal attention with dropout one head at a time, in one pass, for short sequences.
//
// The course's specs attend over 8 positions with heads of 8 or 16: a head's scores are an 8 x 8
// matrix. Through libtorch each product is a dispatch, packed copies of its operands and a batched
// MKL call of 8 x 8 x 8 multiplications; libtorch's flash attention for the CPU (what fp32
// without dropout took) wraps tiles of 32 x 512 around them. At task 4 on one Zen 5 core, perf
// put flash attention and the MKL calls it makes at about 40% of a training step, for a tiny
// share of its arithmetic.
//
// Here each thread takes whole heads. It reads a head's queries, keys and values where the qkv
// projection left them (strided: no packed copies), computes the scores, the row passes of
// causal_attention.cpp and the weighted sums in loops over the head's few rows, and writes the
// output where merging the heads wants it: [B, T, H, hv] in memory, so the [B, T, H hv] that the
// next projection reads is a view, not a copy. The backward pass writes the three gradients laid
// out the same way, the layout of the qkv projection's output, so autograd's transposes and views
// of them add no copies (the split's backward still joins the three). Task 4's step went from
// 1.37 to 0.97 ms on that core.
//
// The arithmetic is the batched route's, in another order: scores and products summed in fp32 (in
// bf16 the batched route rounds the scores and the dropped weights to bf16 between its products),
// the same row passes, the same mask (row r of [B, H, T, T] is query position r % T of head
// r / T). tests/kernels.rs holds both routes to the textbook formulation with the same mask.

#include "attention_per_head.h"

#include "counter_mask.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

using namespace gptbuild::kernels;

// Where element (b, h, t, d) of a [B, H, T, D] tensor lies, in elements from its start.
struct Strides {
  int64_t b, h, t, d;
};

Strides strides_of(const at::Tensor& x) {
  return {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
}

// A new [B, H, T, D] tensor laid out as [B, T, H, D]: a head's rows are strided, a position's heads
// side by side, as the projection that reads the merged heads wants them.
at::Tensor heads_side_by_side(int64_t b, int64_t h, int64_t t, int64_t d,
                              const at::TensorOptions& options) {
  return at::empty_strided({b, h, t, d}, {t * h * d, d, h * d, 1}, options);
}

// The sizes and scalars one call's loops share.
struct Heads {
  int64_t heads, t, hs, hv;  // H, T, the queries' and keys' width, the values' width
  float scale;
  uint64_t key;
  uint32_t threshold;
  float keep_scale;

  // Whether any weight is dropped or scaled: without, the loops skip the mask.
  bool drops() const { return threshold != 0 || keep_scale != 1.0f; }
};

// Every row of the fp32 scratch is padded to a multiple of kLanes floats (zeros past the real
// values): the inner loops then run over whole vectors of any x86-64 width, where loops of 8 or 9
// values would leave an AVX-512 build in its scalar remainder loop. The accumulators below are
// kLanes wide too: a constant length lets the compiler keep them in registers, where with a
// runtime length they stay in memory and each step of a sum waits for the previous one's store.
constexpr int64_t kLanes = 16;
constexpr int64_t padded(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// Head (b, h) of `x` into fp32 `rows` ([t, width], row-major; width >= d, padding untouched).
template <typename T>
ALWAYS_INLINE void gather(const T* x, Strides s, int64_t b, int64_t h, int64_t t, int64_t d,
                          int64_t width, float* __restrict__ rows) {
  const T* head = x + b * s.b + h * s.h;
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < d; ++j) rows[i * width + j] = load(head, i * s.t + j * s.d);
}

// Head (b, h) of `x` into fp32 `columns` ([d, width], the head transposed; width >= t).
template <typename T>
ALWAYS_INLINE void gather_transposed(const T* x, Strides s, int64_t b, int64_t h, int64_t t,
                                     int64_t d, int64_t width, float* __restrict__ columns) {
  const T* head = x + b * s.b + h * s.h;
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < d; ++j) columns[j * width + i] = load(head, i * s.t + j * s.d);
}

// Row i of head (b, h) of `x` from fp32 `row` (its first d values).
template <typename T>
ALWAYS_INLINE void scatter_row(T* x, Strides s, int64_t b, int64_t h, int64_t i, int64_t d,
                               const float* __restrict__ row) {
  T* at = x + b * s.b + h * s.h + i * s.t;
  for (int64_t j = 0; j < d; ++j) store(at, j * s.d, row[j]);
}

// out[0..width) = sum over n < count of weights[n] * rows[n * stride + 0..width): a weighted sum
// of rows, `width` a multiple of kLanes.
ALWAYS_INLINE void weighted_rows(const float* __restrict__ weights, const float* __restrict__ rows,
                                 int64_t stride, int64_t count, int64_t width,
                                 float* __restrict__ out) {
  for (int64_t c0 = 0; c0 < width; c0 += kLanes) {
    float acc[kLanes] = {};
    for (int64_t n = 0; n < count; ++n) {
      const float w = weights[n];
      const float* row = rows + n * stride + c0;
#pragma omp simd
      for (int64_t c = 0; c < kLanes; ++c) acc[c] += w * row[c];
    }
#pragma omp simd
    for (int64_t c = 0; c < kLanes; ++c) out[c0 + c] = acc[c];
  }
}

// acc += weight * row, over `width` values.
ALWAYS_INLINE void add_scaled(float* __restrict__ acc, float weight, const float* __restrict__ row,
                              int64_t width) {
#pragma omp simd
  for (int64_t c = 0; c < width; ++c) acc[c] += weight * row[c];
}

// causal_attention.cpp's forward row pass over a padded row of `width` scores, the future's and the
// padding's columns masked to weight 0: the same weights, without a loop bounded by `visible`.
// Without dropout (kDropout false, keep_scale 1) no mask is hashed: every weight is kept.
template <bool kDropout>
ALWAYS_INLINE void forward_row_padded(float* __restrict__ scores, float* __restrict__ probs,
                                      float* __restrict__ dropped, int64_t width, int64_t visible,
                                      float scale, uint64_t row, uint32_t threshold,
                                      float keep_scale) {
  float maximum = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : maximum)
  for (int64_t j = 0; j < width; ++j) {
    const float x = j < visible ? scores[j] * scale : -std::numeric_limits<float>::infinity();
    scores[j] = x;
    maximum = std::max(maximum, x);
  }
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < width; ++j) {
    const float e = exp_nonpositive(scores[j] - maximum);  // 0 for -inf
    probs[j] = e;
    sum += e;
  }
  const float inverse = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < width; ++j) {
    const float weight = probs[j] * inverse;
    probs[j] = weight;
    dropped[j] = kDropout
                     ? masked(weight * keep_scale, kept(row, static_cast<uint32_t>(j), threshold))
                     : weight;
  }
}

// causal_attention.cpp's backward row pass over a padded row. Columns past `visible` (the
// future's and the padding's) are masked out of the weights' gradient, as the batched route never
// reads them: their weights are 0 anyway, but a non-finite value there must not reach the sum.
template <bool kDropout>
ALWAYS_INLINE void backward_row_padded(const float* __restrict__ probs, float* __restrict__ grad,
                                       float* __restrict__ dropped, int64_t width, int64_t visible,
                                       float scale, uint64_t row, uint32_t threshold,
                                       float keep_scale) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < width; ++j) {
    const uint32_t seen = 0U - static_cast<uint32_t>(j < visible);
    const uint32_t mask = kDropout ? kept(row, static_cast<uint32_t>(j), threshold) & seen : seen;
    const float grad_weight = masked(grad[j] * keep_scale, mask);
    grad[j] = grad_weight;
    dropped[j] = masked(probs[j] * keep_scale, mask);
    dot += probs[j] * grad_weight;
  }
#pragma omp simd
  for (int64_t j = 0; j < width; ++j) grad[j] = probs[j] * (grad[j] - dot) * scale;
}

template <typename T, bool kDropout>
ALWAYS_INLINE void forward_heads(const Heads& a, const T* q, Strides qs, const T* k, Strides ks,
                                 const T* v, Strides vs, float* probs, T* out, Strides os,
                                 int64_t begin, int64_t end) {
  const int64_t t = a.t, hs = a.hs, hv = a.hv;
  const int64_t tw = padded(t), hw = padded(hs), vw = padded(hv);
  // Zeros once: the padding is never written.
  std::vector<float> scratch(static_cast<size_t>(t * hw + hs * tw + t * vw + 2 * tw + vw), 0.0f);
  float* queries = scratch.data();    // [t, hw]
  float* keys = queries + t * hw;     // transposed: [hs, tw]
  float* values = keys + hs * tw;     // [t, vw]
  float* scores = values + t * vw;    // [tw]
  float* dropped = scores + tw;       // [tw]
  float* acc = dropped + tw;          // [vw]
  for (int64_t head = begin; head < end; ++head) {
    const int64_t b = head / a.heads, h = head % a.heads;
    gather(q, qs, b, h, t, hs, hw, queries);
    gather_transposed(k, ks, b, h, t, hs, tw, keys);
    gather(v, vs, b, h, t, hv, vw, values);
    for (int64_t i = 0; i < t; ++i) {
      const int64_t row = head * t + i;  // of [B, H, T, T]: the mask's row
      // The scores: row i of q times the keys transposed, a weighted sum of their rows.
      weighted_rows(queries + i * hw, keys, tw, hs, tw, scores);
      forward_row_padded<kDropout>(scores, probs + row * tw, dropped, tw, i + 1, a.scale,
                                   row_bits(a.key, static_cast<uint64_t>(row)), a.threshold,
                                   a.keep_scale);
      weighted_rows(dropped, values, vw, i + 1, vw, acc);
      scatter_row(out, os, b, h, i, hv, acc);
    }
  }
}

template <typename T, bool kDropout>
ALWAYS_INLINE void backward_heads(const Heads& a, const T* grad_out, Strides gs, const T* q,
                                  Strides qs, const T* k, Strides ks, const T* v, Strides vs,
                                  const float* probs, T* dq, T* dk, T* dv, Strides ds, Strides dvs,
                                  int64_t begin, int64_t end) {
  const int64_t t = a.t, hs = a.hs, hv = a.hv;
  const int64_t tw = padded(t), hw = padded(hs), vw = padded(hv);
  std::vector<float> scratch(
      static_cast<size_t>(3 * t * hw + hv * tw + 2 * t * vw + 2 * tw + hw), 0.0f);
  float* queries = scratch.data();     // [t, hw]
  float* keys = queries + t * hw;      // [t, hw]
  float* values = keys + t * hw;       // transposed: [hv, tw]
  float* upstream = values + hv * tw;  // [t, vw]
  float* grad_k = upstream + t * vw;   // [t, hw]
  float* grad_v = grad_k + t * hw;     // [t, vw]
  float* grad = grad_v + t * vw;       // [tw]
  float* dropped = grad + tw;          // [tw]
  float* grad_q = dropped + tw;        // [hw]
  for (int64_t head = begin; head < end; ++head) {
    const int64_t b = head / a.heads, h = head % a.heads;
    gather(q, qs, b, h, t, hs, hw, queries);
    gather(k, ks, b, h, t, hs, hw, keys);
    gather_transposed(v, vs, b, h, t, hv, tw, values);
    gather(grad_out, gs, b, h, t, hv, vw, upstream);
    std::fill(grad_k, grad_k + t * hw, 0.0f);
    std::fill(grad_v, grad_v + t * vw, 0.0f);
    for (int64_t i = 0; i < t; ++i) {
      const int64_t row = head * t + i;
      // The gradient of the dropped weights, dD = dout v^T, then the row pass turns it into the
      // scores' gradient dS and gives the dropped weights D again.
      weighted_rows(upstream + i * vw, values, tw, hv, tw, grad);
      backward_row_padded<kDropout>(probs + row * tw, grad, dropped, tw, i + 1, a.scale,
                                    row_bits(a.key, static_cast<uint64_t>(row)), a.threshold,
                                    a.keep_scale);
      // dq_i = dS_i k;  dk_j += dS_ij q_i;  dv_j += D_ij dout_i.
      weighted_rows(grad, keys, hw, i + 1, hw, grad_q);
      for (int64_t j = 0; j <= i; ++j) {
        add_scaled(grad_k + j * hw, grad[j], queries + i * hw, hw);
        add_scaled(grad_v + j * vw, dropped[j], upstream + i * vw, vw);
      }
      scatter_row(dq, ds, b, h, i, hs, grad_q);
    }
    for (int64_t j = 0; j < t; ++j) {
      scatter_row(dk, ds, b, h, j, hs, grad_k + j * hw);
      scatter_row(dv, dvs, b, h, j, hv, grad_v + j * vw);
    }
  }
}

// Each dtype's loops compiled for each instruction set (counter_mask.h's CLONES).
CLONES void forward_heads_f32(const Heads& a, const float* q, Strides qs, const float* k,
                              Strides ks, const float* v, Strides vs, float* probs, float* out,
                              Strides os, int64_t begin, int64_t end) {
  if (a.drops())
    forward_heads<float, true>(a, q, qs, k, ks, v, vs, probs, out, os, begin, end);
  else
    forward_heads<float, false>(a, q, qs, k, ks, v, vs, probs, out, os, begin, end);
}

CLONES void forward_heads_bf16(const Heads& a, const bf16_bits* q, Strides qs,
                               const bf16_bits* k, Strides ks, const bf16_bits* v, Strides vs,
                               float* probs, bf16_bits* out, Strides os, int64_t begin,
                               int64_t end) {
  if (a.drops())
    forward_heads<bf16_bits, true>(a, q, qs, k, ks, v, vs, probs, out, os, begin, end);
  else
    forward_heads<bf16_bits, false>(a, q, qs, k, ks, v, vs, probs, out, os, begin, end);
}

CLONES void backward_heads_f32(const Heads& a, const float* grad_out, Strides gs,
                               const float* q, Strides qs, const float* k, Strides ks,
                               const float* v, Strides vs, const float* probs, float* dq,
                               float* dk, float* dv, Strides ds, Strides dvs, int64_t begin,
                               int64_t end) {
  if (a.drops())
    backward_heads<float, true>(a, grad_out, gs, q, qs, k, ks, v, vs, probs, dq, dk, dv, ds,
                                dvs, begin, end);
  else
    backward_heads<float, false>(a, grad_out, gs, q, qs, k, ks, v, vs, probs, dq, dk, dv, ds,
                                 dvs, begin, end);
}

CLONES void backward_heads_bf16(const Heads& a, const bf16_bits* grad_out, Strides gs,
                                const bf16_bits* q, Strides qs, const bf16_bits* k, Strides ks,
                                const bf16_bits* v, Strides vs, const float* probs,
                                bf16_bits* dq, bf16_bits* dk, bf16_bits* dv, Strides ds,
                                Strides dvs, int64_t begin, int64_t end) {
  if (a.drops())
    backward_heads<bf16_bits, true>(a, grad_out, gs, q, qs, k, ks, v, vs, probs, dq, dk, dv,
                                    ds, dvs, begin, end);
  else
    backward_heads<bf16_bits, false>(a, grad_out, gs, q, qs, k, ks, v, vs, probs, dq, dk, dv,
                                     ds, dvs, begin, end);
}

Heads heads_of(const at::Tensor& q, const at::Tensor& v, double scale, double p, uint64_t key) {
  return {q.size(1),
          q.size(2),
          q.size(3),
          v.size(3),
          static_cast<float>(scale),
          key,
          threshold_of(p),
          static_cast<float>(1.0 / (1.0 - p))};
}

// Runs `body(begin, end)` over the B * H heads in chunks of about 32k multiply-adds.
template <typename Body>
void over_heads(const at::Tensor& q, const at::Tensor& v, Body body) {
  const int64_t t = q.size(2), work = t * t * (q.size(3) + v.size(3));
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(work, 1));
  at::parallel_for(0, q.size(0) * q.size(1), grain, body);
}

// A tensor's data to read (`in_*`) or to write (`out_*`), fp32 or bf16 as raw bits.
const float* in_f32(const at::Tensor& x) { return x.const_data_ptr<float>(); }
float* out_f32(at::Tensor& x) { return x.mutable_data_ptr<float>(); }
const bf16_bits* in_bf16(const at::Tensor& x) { return bits(x.const_data_ptr<c10::BFloat16>()); }
bf16_bits* out_bf16(at::Tensor& x) { return bits(x.mutable_data_ptr<c10::BFloat16>()); }

}  // namespace

namespace gptbuild::kernels {

at::Tensor per_head_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            at::Tensor& probs, double scale, double p, uint64_t key) {
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2);
  at::Tensor out = heads_side_by_side(b, h, t, v.size(3), v.options());
  probs = at::empty({b, h, t, padded(t)}, q.options().dtype(at::kFloat));
  const Strides qs = strides_of(q), ks = strides_of(k), vs = strides_of(v), os = strides_of(out);
  const Heads a = heads_of(q, v, scale, p, key);
  if (q.scalar_type() == at::kFloat) {
    over_heads(q, v, [&](int64_t begin, int64_t end) {
      forward_heads_f32(a, in_f32(q), qs, in_f32(k), ks, in_f32(v), vs, out_f32(probs),
                        out_f32(out), os, begin, end);
    });
  } else {
    over_heads(q, v, [&](int64_t begin, int64_t end) {
      forward_heads_bf16(a, in_bf16(q), qs, in_bf16(k), ks, in_bf16(v), vs, out_f32(probs),
                         out_bf16(out), os, begin, end);
    });
  }
  return out;
}

std::array<at::Tensor, 3> per_head_backward(const at::Tensor& grad_out, const at::Tensor& q,
                                            const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& probs, double scale, double p,
                                            uint64_t key) {
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2);
  const at::Tensor upstream = grad_out.to(v.scalar_type());
  at::Tensor dq = heads_side_by_side(b, h, t, q.size(3), q.options());
  at::Tensor dk = heads_side_by_side(b, h, t, k.size(3), k.options());
  at::Tensor dv = heads_side_by_side(b, h, t, v.size(3), v.options());
  const Strides gs = strides_of(upstream), qs = strides_of(q), ks = strides_of(k),
                vs = strides_of(v), ds = strides_of(dq), dvs = strides_of(dv);
  const Heads a = heads_of(q, v, scale, p, key);
  if (q.scalar_type() == at::kFloat) {
    over_heads(q, v, [&](int64_t begin, int64_t end) {
      backward_heads_f32(a, in_f32(upstream), gs, in_f32(q), qs, in_f32(k), ks, in_f32(v), vs,
                         in_f32(probs), out_f32(dq), out_f32(dk), out_f32(dv), ds, dvs, begin,
                         end);
    });
  } else {
    over_heads(q, v, [&](int64_t begin, int64_t end) {
      backward_heads_bf16(a, in_bf16(upstream), gs, in_bf16(q), qs, in_bf16(k), ks, in_bf16(v),
                          vs, in_f32(probs), out_bf16(dq), out_bf16(dk), out_bf16(dv), ds, dvs,
                          begin, end);
    });
  }
  return {dq, dk, dv};
}

}  // namespace gptbuild::kernels
