// Causal attention with dropout one head at a time, for short sequences: the second route of
// the autograd node in causal_attention.cpp (attention_per_head.cpp says why it exists).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>

namespace gptbuild::kernels {

// out = dropout(softmax(scale q k^T, causal)) v for queries and keys [B, H, T, hs] and values
// [B, H, T, hv], any strides, fp32 or bf16. Puts the fp32 weights in `probs` for the backward
// pass ([B, H, T, T'], T' being T rounded up to 16, zeros past T); the output is [B, H, T, hv]
// laid out as [B, T, H, hv].
at::Tensor per_head_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            at::Tensor& probs, double scale, double p, uint64_t key);

// The gradients of q, k and v (each laid out as [B, T, H, ·]) from the output's gradient and
// what the forward pass kept.
std::array<at::Tensor, 3> per_head_backward(const at::Tensor& grad_out, const at::Tensor& q,
                                            const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& probs, double scale, double p,
                                            uint64_t key);

}  // namespace gptbuild::kernels
