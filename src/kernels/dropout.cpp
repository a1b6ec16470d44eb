// Dropout (Srivastava et al. 2014) for the CPU with the counter-based mask of counter_mask.h:
// out = x * keep / (1 - p), where `keep` is a hash of (key, row, column) -- a row is a run of the
// last dimension -- so the mask is never drawn element by element nor stored. libtorch's CPU
// dropout draws it with `bernoulli_` (about 8 ns an element), keeps it for the backward pass and
// multiplies in another pass; here it is one pass each way, and the backward pass is the same
// dropout of the gradient (same key, same mask, same scale).
//
// Also here: the key's source (libtorch's CPU generator, so tch::manual_seed decides it, or a
// thread's own generator while that thread trains its share of a batch, src/train/thread_split.rs)
// and the mask itself, for tests (gptbuild_dropout_keep).

#include "../seam.h"
#include "counter_mask.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <mutex>
#include <optional>

namespace {

using namespace gptbuild::kernels;

// This thread's own key source, if gptbuild_seed_thread_keys gave it one.
thread_local std::optional<at::Generator> thread_keys;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

template <typename T>
ALWAYS_INLINE void drop_rows(const T* __restrict__ x, T* __restrict__ out, int64_t begin,
                             int64_t end, int64_t cols, uint64_t key, uint32_t threshold,
                             float keep_scale) {
  for (int64_t r = begin; r < end; ++r) {
    const uint64_t row = row_bits(key, static_cast<uint64_t>(r));
    const T* in = x + r * cols;
    T* to = out + r * cols;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j)
      store(to, j, masked(load(in, j) * keep_scale, kept(row, static_cast<uint32_t>(j), threshold)));
  }
}

CLONES void drop_rows_f32(const float* x, float* out, int64_t begin, int64_t end, int64_t cols,
                          uint64_t key, uint32_t threshold, float keep_scale) {
  drop_rows(x, out, begin, end, cols, key, threshold, keep_scale);
}

CLONES void drop_rows_bf16(const bf16_bits* x, bf16_bits* out, int64_t begin, int64_t end,
                           int64_t cols, uint64_t key, uint32_t threshold, float keep_scale) {
  drop_rows(x, out, begin, end, cols, key, threshold, keep_scale);
}

// x * keep / (1 - p), not differentiated (the autograd node below calls it both ways).
at::Tensor drop(const at::Tensor& input, double p, uint64_t key) {
  at::Tensor x = input.contiguous();
  at::Tensor out = at::empty_like(x);
  const int64_t cols = x.dim() == 0 ? 1 : x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const uint32_t threshold = threshold_of(p);
  const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
  in_parallel(rows, cols, [&](int64_t begin, int64_t end) {
    if (x.scalar_type() == at::kFloat)
      drop_rows_f32(x.const_data_ptr<float>(), out.mutable_data_ptr<float>(), begin, end, cols,
                    key, threshold, keep_scale);
    else
      drop_rows_bf16(bits(x.const_data_ptr<c10::BFloat16>()),
                     bits(out.mutable_data_ptr<c10::BFloat16>()), begin, end, cols, key,
                     threshold, keep_scale);
  });
  return out;
}

struct Dropout : public torch::autograd::Function<Dropout> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double p, int64_t key) {
    at::NoGradGuard no_grad;
    ctx->saved_data["p"] = p;
    ctx->saved_data["key"] = key;
    return drop(x, p, static_cast<uint64_t>(key));
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const double p = ctx->saved_data["p"].toDouble();
    const auto key = static_cast<uint64_t>(ctx->saved_data["key"].toInt());
    return {drop(grads[0], p, key), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

extern "C" {

// A fresh 64-bit key from this thread's own generator when it has one, else from libtorch's
// default CPU generator (what tch::manual_seed seeds).
uint64_t gptbuild_draw_key() {
  at::Generator generator = thread_keys ? *thread_keys : at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

// From now on this thread draws its keys from a generator of its own seeded with `seed`: the
// sequence libtorch's default generator gives after manual_seed(seed), so a thread training its
// share of a batch draws what a process training that share would, and threads never race for
// one generator.
void gptbuild_seed_thread_keys(uint64_t seed) { thread_keys = at::detail::createCPUGenerator(seed); }

// Back to libtorch's default generator for this thread.
void gptbuild_forget_thread_keys() { thread_keys.reset(); }

// out = dropout(x) with this key, as an autograd node; `*out` receives a new tensor.
int gptbuild_dropout(const at::Tensor* x, double p, uint64_t key, at::Tensor** out, char* error,
                     size_t error_len) {
  return gptbuild::guarded(error, error_len, [&] {
    TORCH_CHECK(x->device().is_cpu(), "dropout: CPU tensors only");
    TORCH_CHECK(x->scalar_type() == at::kFloat || x->scalar_type() == at::kBFloat16,
                "dropout: fp32 or bf16 only");
    TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1)");
    *out = new at::Tensor(Dropout::apply(*x, p, static_cast<int64_t>(key)));
  });
}

// The mask a kernel with this key and p applies to a [rows, cols] view (true = kept): row r is the
// r-th run of the last dimension ([B, H, T, T] attention weights: r = (b * H + h) * T + i).
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
          m[r * cols + j] = kept(row, static_cast<uint32_t>(j), threshold) != 0;
      }
    });
    *out = new at::Tensor(std::move(mask));
  });
}

}  // extern "C"
