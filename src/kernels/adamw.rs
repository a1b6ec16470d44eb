//! AdamW's step in one pass over the optimizer's flat fp32 buffers on the CPU (`adamw.cpp`).
//!
//! Why: written as tensor operations ([`crate::train::optim`], which stays the reference and the
//! path for other devices) a step is about ten passes over the buffers plus gradient clipping's
//! scaling pass, each one a dispatch through libtorch; for the course's small models those
//! dispatches are a visible share of the step. Here each value is read and written once, and the
//! clipping factor is applied on the way in.

use std::ffi::{c_char, c_int};

use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

use super::{status, KernelError};

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn gptbuild_adamw_step(
        params: *mut C_tensor,
        grad: *const C_tensor,
        exp_avg: *mut C_tensor,
        exp_avg_sq: *mut C_tensor,
        decay_mask: *const C_tensor,
        grad_scale: *const C_tensor,
        lr_decay: f64,
        avg_weight: f64,
        sq_weight: f64,
        denom_scale: f64,
        denom_offset: f64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
}

/// The optimizer's buffers, all flat, of one length, laid out like the parameters.
pub struct Buffers<'a> {
    pub params: &'a mut Tensor,
    pub exp_avg: &'a mut Tensor,
    pub exp_avg_sq: &'a mut Tensor,
    /// 1 where weight decay applies and 0 elsewhere; `None`: everywhere.
    pub decay_mask: Option<&'a Tensor>,
}

/// One step's numbers, folded from the learning rate, betas, eps, weight decay and the bias
/// corrections (as [`crate::train::optim::AdamW`] computes them):
/// `p ← p − p·decay·lr_decay`, `m ← m + avg_weight·(g − m)`, `v ← v + sq_weight·(g² − v)`,
/// `p ← p + m / (√v·denom_scale + denom_offset)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepScalars {
    pub lr_decay: f64,
    pub avg_weight: f64,
    pub sq_weight: f64,
    pub denom_scale: f64,
    pub denom_offset: f64,
}

/// Whether the kernel takes these buffers and gradient: contiguous fp32 on the CPU.
pub fn supports(buffers: &Buffers, grad: &Tensor) -> bool {
    let fits = |t: &Tensor| {
        t.device() == Device::Cpu
            && t.kind() == Kind::Float
            && t.is_contiguous()
            && t.numel() == buffers.params.numel()
    };
    fits(&*buffers.params)
        && fits(&*buffers.exp_avg)
        && fits(&*buffers.exp_avg_sq)
        && fits(grad)
        && buffers.decay_mask.is_none_or(fits)
}

/// One step in place: `grad` times `grad_scale` (a one-value tensor, gradient clipping's factor;
/// `None`: 1) moves the parameters and both moments.
pub fn step(
    buffers: Buffers,
    grad: &Tensor,
    grad_scale: Option<&Tensor>,
    s: StepScalars,
) -> Result<(), KernelError> {
    let optional = |t: Option<&Tensor>| t.map_or(std::ptr::null(), |t| t.as_ptr());
    status("adamw", |error, len| {
        // SAFETY: every tensor is live for the call; the C++ side checks their shapes and kinds
        // before it writes, in place, into params and the moments only.
        unsafe {
            gptbuild_adamw_step(
                buffers.params.as_mut_ptr(),
                grad.as_ptr(),
                buffers.exp_avg.as_mut_ptr(),
                buffers.exp_avg_sq.as_mut_ptr(),
                optional(buffers.decay_mask),
                optional(grad_scale),
                s.lr_decay,
                s.avg_weight,
                s.sq_weight,
                s.denom_scale,
                s.denom_offset,
                error,
                len,
            )
        }
    })
}
