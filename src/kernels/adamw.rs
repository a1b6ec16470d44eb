//! AdamW's step in one pass over the optimizer's flat fp32 buffers on the CPU (`adamw.cpp`).
//!
//! Why: written as tensor operations ([`crate::train::optim`], which stays the reference and the
//! path for other devices) a step is about ten passes over the buffers plus gradient clipping's
//! scaling pass, each one a dispatch through libtorch; for the course's small models those
//! dispatches are a visible share of the step. Here each value is read and written once, and the
//! clipping factor is applied on the way in.

use std::ffi::{c_char, c_int};

use tch::Tensor;
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

/// One step in place: `grad` times `grad_scale` (a one-value tensor, gradient clipping's factor;
/// `None`: 1) moves the parameters and both moments, `(params, exp_avg, exp_avg_sq, decay_mask)`
/// (flat, one length; the mask 1 where weight decay applies, `None`: everywhere). `scalars` are
/// `ops::adamw::StepScalars`' five numbers, in its order.
pub fn step(
    (params, exp_avg, exp_avg_sq, decay_mask): (
        &mut Tensor,
        &mut Tensor,
        &mut Tensor,
        Option<&Tensor>,
    ),
    grad: &Tensor,
    grad_scale: Option<&Tensor>,
    scalars: [f64; 5],
) -> Result<(), KernelError> {
    let [lr_decay, avg_weight, sq_weight, denom_scale, denom_offset] = scalars;
    let optional = |t: Option<&Tensor>| t.map_or(std::ptr::null(), |t| t.as_ptr());
    status("adamw", |error, len| {
        // SAFETY: every tensor is live for the call; the C++ side checks their shapes and kinds
        // before it writes, in place, into params and the moments only.
        unsafe {
            gptbuild_adamw_step(
                params.as_mut_ptr(),
                grad.as_ptr(),
                exp_avg.as_mut_ptr(),
                exp_avg_sq.as_mut_ptr(),
                optional(decay_mask),
                optional(grad_scale),
                lr_decay,
                avg_weight,
                sq_weight,
                denom_scale,
                denom_offset,
                error,
                len,
            )
        }
    })
}
