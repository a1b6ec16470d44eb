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
//! pass recomputes it; [`dropout_keep`] returns the very mask a call used, which is how the tests
//! hold the kernel equal to the plain formulation, values and gradients. The key is drawn once per
//! call from libtorch's generator ([`draw_key`]), which the trainer seeds per iteration, so a run is
//! reproducible and resumes exactly.

use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

use super::{guarded, KernelError};

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
    fn gptbuild_dropout_keep(
        key: u64,
        rows: i64,
        cols: i64,
        p: f64,
        out: *mut *mut C_tensor,
        error: *mut std::ffi::c_char,
        error_len: usize,
    ) -> std::ffi::c_int;
}

/// Whether the kernel takes these queries: on the CPU, fp32 or bf16, `[B, H, T, hs]`.
pub fn supports(q: &Tensor) -> bool {
    q.device() == Device::Cpu && matches!(q.kind(), Kind::Float | Kind::BFloat16) && q.dim() == 4
}

/// A fresh key for one call's mask, drawn from libtorch's CPU generator (so `tch::manual_seed`
/// decides it, as it decides every other dropout mask).
pub fn draw_key() -> u64 {
    Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0]) as u64
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
    let mut out: *mut C_tensor = std::ptr::null_mut();
    guarded("causal attention", |error, len| {
        // SAFETY: the tensors are live for the call; `out` receives a tensor only on success.
        unsafe {
            gptbuild_causal_attention(
                q.as_ptr(),
                k.as_ptr(),
                v.as_ptr(),
                scale,
                p,
                key,
                &mut out,
                error,
                len,
            )
        }
    })?;
    // SAFETY: on success `out` is a new at::Tensor that we now own.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// The mask a call with this `key` and `p` applies to weights of `shape` `[…, T, T]`: bool, true =
/// kept. Row `r` of the flattened weights (`(b·H + h)·T + i` for `[B, H, T, T]`) is hashed as `r`.
pub fn dropout_keep(key: u64, shape: &[i64], p: f64) -> Result<Tensor, KernelError> {
    let cols = shape.last().copied().unwrap_or(1);
    let rows = shape[..shape.len().saturating_sub(1)].iter().product();
    let mut out: *mut C_tensor = std::ptr::null_mut();
    guarded("dropout mask", |error, len| {
        // SAFETY: `out` receives a tensor only on success.
        unsafe { gptbuild_dropout_keep(key, rows, cols, p, &mut out, error, len) }
    })?;
    // SAFETY: on success `out` is a new at::Tensor that we now own.
    Ok(unsafe { Tensor::from_ptr(out) }.view(shape))
}
