//! AdamW's update of the optimizer's flat buffers: one kernel pass on the CPU
//! (`kernels::adamw`: each parameter, gradient and moment read and written once), or the tensor
//! operations of [`crate::train::optim`]'s reference step everywhere else.

use tch::{Device, Kind, Tensor};

use crate::error::Result;

/// The optimizer's buffers, all flat, of one length, laid out like the parameters.
pub struct Buffers<'a> {
    /// The parameters, updated in place.
    pub params: &'a mut Tensor,
    /// The first moment (the running mean of the gradients).
    pub exp_avg: &'a mut Tensor,
    /// The second moment (the running mean of the squared gradients).
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
    /// The learning rate times the weight decay.
    pub lr_decay: f64,
    /// `1 − β₁`.
    pub avg_weight: f64,
    /// `1 − β₂`.
    pub sq_weight: f64,
    /// Scales √v in the denominator.
    pub denom_scale: f64,
    /// Added to the denominator (eps, scaled).
    pub denom_offset: f64,
}

/// Whether the one-pass kernel takes these buffers and gradient: contiguous fp32 on the CPU, in
/// a build with `cpu-kernels`.
pub fn kernel_takes(buffers: &Buffers, grad: &Tensor) -> bool {
    let fits = |t: &Tensor| {
        t.device() == Device::Cpu
            && t.kind() == Kind::Float
            && t.is_contiguous()
            && t.numel() == buffers.params.numel()
    };
    cfg!(feature = "cpu-kernels")
        && fits(&*buffers.params)
        && fits(&*buffers.exp_avg)
        && fits(&*buffers.exp_avg_sq)
        && fits(grad)
        && buffers.decay_mask.is_none_or(fits)
}

/// One step in place by the kernel (ask [`kernel_takes`] first): `grad` times `grad_scale` (a
/// one-value tensor, gradient clipping's factor; `None`: 1) moves the parameters and both moments.
pub fn kernel_step(
    buffers: Buffers,
    grad: &Tensor,
    grad_scale: Option<&Tensor>,
    s: StepScalars,
) -> Result<()> {
    #[cfg(feature = "cpu-kernels")]
    {
        let scalars = [
            s.lr_decay,
            s.avg_weight,
            s.sq_weight,
            s.denom_scale,
            s.denom_offset,
        ];
        crate::kernels::adamw::step(
            (
                buffers.params,
                buffers.exp_avg,
                buffers.exp_avg_sq,
                buffers.decay_mask,
            ),
            grad,
            grad_scale,
            scalars,
        )?;
        Ok(())
    }
    #[cfg(not(feature = "cpu-kernels"))]
    {
        let _ = (buffers, grad, grad_scale, s);
        Err(crate::error::Error::Usage(
            "AdamW's one-pass kernel is not in this build (the cpu-kernels feature)".into(),
        ))
    }
}
