//! Causal self-attention with dropout on the attention weights, on the CPU, in one autograd node
//! (`causal_attention.cpp`): `dropout(softmax(scale·q·kᵀ, causal))·v`.
//!
//! Why: libtorch's fused CPU attention has no dropout, so with dropout it falls back to a path that
//! draws a Bernoulli mask with `bernoulli_` (about 8 ns an element), stores it for the backward
//! pass and makes a pass over the `[B, H, T, T]` weights for every operation. Here the two matrix
//! products stay libtorch's and the softmax, the mask and its scaling are one pass per row, with
//! the future's columns skipped.
//!
//! The mask is a counter-based generator: element `(row, column)` survives when a hash of
//! `(key, row, column)` is at least `p·2³²`. Nothing is drawn or stored per element; the backward
//! pass recomputes it; [`super::dropout::dropout_keep`] returns the very mask a call used, which is how the tests
//! hold the kernel equal to the plain formulation, values and gradients. The key is drawn once per
//! call from libtorch's generator ([`super::dropout::draw_key`]), which the trainer seeds per iteration, so a run is
//! reproducible and resumes exactly.

use tch::Tensor;
use torch_sys::C_tensor;

use super::{new_tensor, KernelError};

extern "C" {
    fn gptbuild_causal_attention(
        q: *const C_tensor,
        k: *const C_tensor,
        v: *const C_tensor,
        scale: f64,
        p: f64,
        key: u64,
        out: *mut *mut C_tensor,
        error: *mut std::ffi::c_char,
        error_len: usize,
    ) -> std::ffi::c_int;
}

/// Whether the kernel takes these queries: on the CPU, fp32 or bf16, `[B, H, T, hs]`.
pub fn supports(q: &Tensor) -> bool {
    super::dropout::supports(q) && q.dim() == 4
}

/// Queries, keys and values `[B, H, T, hs]` (one dtype, fp32 or bf16) of a whole sequence attend
/// causally: `dropout(softmax(scale·q·kᵀ))·v`, `[B, H, T, hs]`, differentiable in all three.
/// `p` is the probability of dropping a weight; survivors are scaled by `1 / (1 - p)`.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    p: f64,
    key: u64,
) -> Result<Tensor, KernelError> {
    new_tensor("causal attention", |out, error, len| {
        // SAFETY: the tensors are live for the call; `out` receives a tensor only on success.
        unsafe {
            gptbuild_causal_attention(
                q.as_ptr(),
                k.as_ptr(),
                v.as_ptr(),
                scale,
                p,
                key,
                out,
                error,
                len,
            )
        }
    })
}
