//! RMSNorm (Zhang & Sennrich 2019) on the CPU in one pass each way (`rms_norm.cpp`):
//! `x · w / sqrt(mean(x²) + eps)` over the last dimension, fp32.
//!
//! Why: written in libtorch's ops the norm is six kernels forward and about twice that backward,
//! each a pass and a parallel region of its own, and at a CPU model's widths those cost more than
//! the arithmetic. [`crate::layers::norm::rms_norm`] uses this where [`supports`] says it can and
//! the plain formulation elsewhere; `tests/kernels.rs` holds the two equal, values and gradients.

use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

use super::{new_tensor, KernelError};

extern "C" {
    fn gptbuild_rms_norm(
        x: *const C_tensor,
        weight: *const C_tensor,
        eps: f64,
        out: *mut *mut C_tensor,
        error: *mut std::ffi::c_char,
        error_len: usize,
    ) -> std::ffi::c_int;
}

/// Whether the kernel takes these: fp32 on the CPU, one weight per element of `x`'s last
/// dimension.
pub fn supports(x: &Tensor, weight: &Tensor) -> bool {
    let cpu_fp32 = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
    cpu_fp32(x)
        && cpu_fp32(weight)
        && weight.dim() == 1
        && x.dim() >= 1
        && x.size().last() == weight.size().first()
}

/// `x · weight / sqrt(mean(x²) + eps)` over the last dimension; differentiable in `x` and
/// `weight`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor, KernelError> {
    new_tensor("rms_norm", |out, error, len| {
        // SAFETY: `x` and `weight` are live for the call; `out` receives a tensor only on success.
        unsafe { gptbuild_rms_norm(x.as_ptr(), weight.as_ptr(), eps, out, error, len) }
    })
}
