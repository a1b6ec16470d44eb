// The counter-based dropout mask and the small vectorisable helpers the CPU kernels share.
//
// Element (row, column) of a mask survives when a hash of (key, row, column) is at least p * 2^32:
// nothing is drawn from a generator or stored, a backward pass recomputes the mask, and
// gptbuild_dropout_keep (dropout.cpp) hands a test the very mask a kernel applied. A tensor's rows
// are its last dimension: row r of a contiguous [..., cols] tensor is its r-th run of `cols`.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

// Inlined into each instruction-set clone of a kernel, so that each vectorises for its own ISA.
#define ALWAYS_INLINE __attribute__((always_inline)) inline
// The kernels' loops are compiled for AVX-512, AVX2 and plain x86-64, the best chosen when the
// library loads (GCC's function multi-versioning); the build targets any x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

namespace gptbuild::kernels {

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

// All ones if column `col` of a row survives, else 0: the hash, uniform on 32 bits, is at least
// the threshold p * 2^32. Distinct columns of a row give distinct hashes (mix32 is a bijection).
// A bit mask, not a bool: GCC vectorises an AND with it, but branches on a bool it converts.
ALWAYS_INLINE uint32_t kept(uint64_t row, uint32_t col, uint32_t threshold) {
  uint32_t h = mix32((col * 0x9e3779b9U) ^ static_cast<uint32_t>(row)) ^
               static_cast<uint32_t>(row >> 32);
  return 0U - static_cast<uint32_t>(mix32(h) >= threshold);
}

// p in [0, 1) as a threshold on 32 random bits.
inline uint32_t threshold_of(double p) {
  double t = std::round(p * 4294967296.0);
  return t >= 4294967295.0 ? 0xffffffffU : static_cast<uint32_t>(t);
}

// ---- fp32 helpers that vectorise ---------------------------------------------------------------

ALWAYS_INLINE float bits_to_float(uint32_t u) { return __builtin_bit_cast(float, u); }

ALWAYS_INLINE uint32_t float_to_bits(float f) { return __builtin_bit_cast(uint32_t, f); }

// `x` where `mask` is all ones, +0 where it is 0.
ALWAYS_INLINE float masked(float x, uint32_t mask) { return bits_to_float(float_to_bits(x) & mask); }

// e^x for x <= 0 (softmax after subtracting the row's maximum): x = n ln2 + r with |r| <= ln2/2,
// e^r by its degree-6 Taylor-like minimax polynomial (Cephes' expf coefficients, max relative
// error about 2 ulp), times 2^n built in the exponent bits. Below -87 the result is 0 (e^-87 is
// 1.6e-38, the edge of fp32's normal range; in a softmax it is nothing next to the maximum's 1).
ALWAYS_INLINE float exp_nonpositive(float x) {
  const uint32_t alive = 0U - static_cast<uint32_t>(x >= -87.0f);
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
  return masked(p * scale, alive);
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

// A bf16 tensor's data as raw bits (c10::BFloat16 is one uint16_t).
inline const bf16_bits* bits(const c10::BFloat16* x) { return reinterpret_cast<const bf16_bits*>(x); }
inline bf16_bits* bits(c10::BFloat16* x) { return reinterpret_cast<bf16_bits*>(x); }

// Runs `body(begin, end)` over the rows in parallel chunks of about 32k elements.
template <typename Body>
void in_parallel(int64_t rows, int64_t cols, Body body) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1));
  at::parallel_for(0, rows, grain, body);
}

}  // namespace gptbuild::kernels
