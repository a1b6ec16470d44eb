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
//! hold the kernel equal to the plain formulation, values and gradients. The caller draws the key,
//! once per call with dropout, from libtorch's generator ([`super::dropout::draw_key`]), which the
//! trainer seeds per iteration, so a run is reproducible and resumes exactly.
//!
//! Two routes compute the same thing ([`Route`]): libtorch's batched products around one pass per
//! row, and, for short sequences, one head at a time with the products written out beside the
//! row passes (`attention_per_head.cpp`), where libtorch's calls for tiny matrices cost far more
//! than their arithmetic.

use std::sync::OnceLock;

use tch::{Kind, Tensor};
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
        route: i32,
        out: *mut *mut C_tensor,
        error: *mut std::ffi::c_char,
        error_len: usize,
    ) -> std::ffi::c_int;
}

/// How the kernel computes attention; both routes give the same result up to rounding, with the
/// same dropout mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// libtorch's batched matrix products (MKL or oneDNN) around one pass per row of weights.
    Products,
    /// One head at a time, products and row passes in one loop over the head's rows, reading the
    /// inputs where they lie and writing the output laid out as `[B, T, H, hv]` (heads side by side).
    PerHead,
}

impl Route {
    /// The longest sequence [`Route::PerHead`] takes by default: measured against the batched
    /// products and libtorch's flash attention (README, "bf16 and the CPU kernels").
    pub const PER_HEAD_MAX_LENGTH: i64 = 32;

    /// The faster route for sequences of `length` positions.
    pub fn for_length(length: i64) -> Self {
        if length <= Self::PER_HEAD_MAX_LENGTH {
            Route::PerHead
        } else {
            Route::Products
        }
    }

    fn code(self) -> i32 {
        match self {
            Route::Products => 0,
            Route::PerHead => 1,
        }
    }
}

/// The environment variable that overrides who computes causal attention over whole sequences on
/// the CPU (for measurements): `flash`, `products` or `per-head`.
pub const OVERRIDE: &str = "GPTBUILD_CPU_ATTENTION";

/// Who computes causal self-attention over a whole sequence on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuAttention {
    /// libtorch's `scaled_dot_product_attention` (its flash attention for the CPU), which has no
    /// dropout.
    Libtorch,
    /// This kernel, by the given route.
    Kernel(Route),
}

/// The choice for `length` positions of `kind` with dropout `p`, from measured training steps
/// (README, "bf16 and the CPU kernels"):
/// - with dropout, the kernel: libtorch's fused CPU attention has none, and its fallback draws
///   and stores a Bernoulli mask;
/// - in bf16, the kernel: libtorch's flash attention makes a oneDNN call per tile (a bf16 step of
///   `sweeps/cpu-shape.yaml` took 32 ms with it and 19.5 with the kernel, Intel Xeon with AMX);
/// - in fp32 without dropout, the kernel one head at a time up to
///   [`Route::PER_HEAD_MAX_LENGTH`] positions (task 4's step 1.37 → 0.97 ms on one Zen 5 core),
///   libtorch's flash attention beyond (24.5 against the batched route's 27.4 ms at 64 positions,
///   Intel).
///
/// `GPTBUILD_CPU_ATTENTION` overrides it; `flash` only where libtorch can (no dropout).
pub fn cpu_attention(length: i64, kind: Kind, p: f64) -> CpuAttention {
    let by_default = if p > 0.0 || kind == Kind::BFloat16 {
        CpuAttention::Kernel(Route::for_length(length))
    } else if length <= Route::PER_HEAD_MAX_LENGTH {
        CpuAttention::Kernel(Route::PerHead)
    } else {
        CpuAttention::Libtorch
    };
    match (attention_override(), by_default) {
        (Some(CpuAttention::Libtorch), _) if p > 0.0 => by_default,
        (Some(choice), _) => choice,
        (None, choice) => choice,
    }
}

/// `GPTBUILD_CPU_ATTENTION`'s choice, read once per process; unset or unknown: none.
fn attention_override() -> Option<CpuAttention> {
    static CHOICE: OnceLock<Option<CpuAttention>> = OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var(OVERRIDE).ok().as_deref() {
        Some("flash") => Some(CpuAttention::Libtorch),
        Some("products") => Some(CpuAttention::Kernel(Route::Products)),
        Some("per-head") => Some(CpuAttention::Kernel(Route::PerHead)),
        _ => None,
    })
}

/// Whether the kernel takes these queries: on the CPU, fp32 or bf16, `[B, H, T, hs]`.
pub fn supports(q: &Tensor) -> bool {
    super::dropout::supports(q) && q.dim() == 4
}

/// Queries, keys and values `[B, H, T, hs]` (one dtype, fp32 or bf16) of a whole sequence attend
/// causally: `dropout(softmax(scale·q·kᵀ))·v`, `[B, H, T, hs]`, differentiable in all three.
/// `p` is the probability of dropping a weight; survivors are scaled by `1 / (1 - p)`. The route
/// is [`Route::for_length`]'s.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    p: f64,
    key: u64,
) -> Result<Tensor, KernelError> {
    let route = Route::for_length(q.size().get(2).copied().unwrap_or(0));
    causal_attention_by(route, q, k, v, scale, p, key)
}

/// [`causal_attention`] by the given route.
pub fn causal_attention_by(
    route: Route,
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
                route.code(),
                out,
                error,
                len,
            )
        }
    })
}
