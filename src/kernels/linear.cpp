// The fp32 affine map y = x W^T + b for the CPU through oneDNN's matrix multiplication
// (at::native::mkldnn_matmul, which libtorch exports and uses for its bf16 products) instead of
// MKL's sgemm, which libtorch calls for fp32. Why: MKL picks its code by the CPU's vendor, and on
// AMD processors it runs its AVX2 kernels even where the CPU has AVX-512: on an AMD EPYC Zen 5 a
// fp32 product of a model's shape ran at 100 GFLOP/s a core through MKL and 220 through oneDNN,
// which picks its kernels by the instructions the CPU has (linear.rs says where it is used).
//
// One autograd node: forward y = x W^T (+ b); backward dx = dy W, dW = dy^T x, db = the column
// sums of dy, each product through oneDNN as well. x is flattened to rows [N, in]; W is [out, in].

#include "../seam.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

// libtorch's oneDNN product (ATen/native/mkldnn/Matmul.h, a header the wheel does not ship):
// result = alpha * mat1 @ mat2 + beta * result, for contiguous or transposed 2-D operands.
namespace at::native {
TORCH_API void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2,
                             const at::Tensor& result, float beta, float alpha);
}  // namespace at::native

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// A new tensor of `shape` holding mat1 @ mat2 ([mat1.size(0), mat2.size(1)] as rows): the product
// is written through a 2-D view, and the tensor itself returned, so that a layer's output is not
// a view made inside an autograd Function (libtorch forbids in-place changes to those).
at::Tensor product(const at::Tensor& mat1, const at::Tensor& mat2, at::IntArrayRef shape) {
  at::Tensor result = at::empty(shape, mat1.options());
  if (mat1.size(1) == 0) return result.zero_();
  if (result.numel() > 0)
    at::native::mkldnn_matmul(mat1, mat2, result.view({mat1.size(0), mat2.size(1)}), 0.0f, 1.0f);
  return result;
}

// `sizes` with its last dimension replaced by `last`.
std::vector<int64_t> with_last(at::IntArrayRef sizes, int64_t last) {
  std::vector<int64_t> shape = sizes.vec();
  shape.back() = last;
  return shape;
}

struct Linear : public torch::autograd::Function<Linear> {
  // `bias` is an empty tensor when `has_bias` is false (autograd takes no undefined inputs).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input,
                            const at::Tensor& weight_in, const at::Tensor& bias, bool has_bias) {
    at::NoGradGuard no_grad;
    const int64_t in = weight_in.size(1);
    at::Tensor x = input.reshape({-1, in}).contiguous();
    at::Tensor weight = weight_in.contiguous();
    // W^T as a transposed view: oneDNN reads it in place.
    at::Tensor y = product(x, weight.t(), with_last(input.sizes(), weight.size(0)));
    if (has_bias) y.add_(bias);
    ctx->save_for_backward({x, weight});
    ctx->saved_data["has_bias"] = has_bias;
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    at::NoGradGuard no_grad;
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    at::Tensor dy = grads[0].reshape({-1, weight.size(0)}).contiguous();
    at::Tensor dx, dw, db;
    if (ctx->needs_input_grad(0))
      dx = product(dy, weight, with_last(grads[0].sizes(), weight.size(1)));
    if (ctx->needs_input_grad(1)) dw = product(dy.t(), x, weight.sizes());
    if (ctx->needs_input_grad(2) && ctx->saved_data["has_bias"].toBool()) db = dy.sum(0);
    return {dx, dw, db, at::Tensor()};
  }
};

}  // namespace

extern "C" {

// out = x W^T + b (b may be null) as an autograd node; `*out` receives a new tensor.
int gptbuild_linear(const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias,
                    at::Tensor** out, char* error, size_t error_len) {
  return gptbuild::guarded(error, error_len, [&] {
    TORCH_CHECK(x->device().is_cpu() && weight->device().is_cpu(), "linear: CPU tensors only");
    TORCH_CHECK(x->scalar_type() == at::kFloat && weight->scalar_type() == at::kFloat,
                "linear: fp32 only");
    TORCH_CHECK(weight->dim() == 2 && x->dim() >= 1 && x->size(-1) == weight->size(1),
                "linear: the weight must be [out, in] with `in` the input's last dimension");
    at::Tensor b = at::empty({0}, x->options());
    if (bias != nullptr) {
      TORCH_CHECK(bias->device().is_cpu() && bias->scalar_type() == at::kFloat &&
                      bias->dim() == 1 && bias->size(0) == weight->size(0),
                  "linear: the bias must be fp32, one value per output");
      b = *bias;
    }
    *out = new at::Tensor(Linear::apply(*x, *weight, b, bias != nullptr));
  });
}

}  // extern "C"
