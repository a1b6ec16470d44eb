//! AdamW (Loshchilov & Hutter 2017, "Decoupled Weight Decay Regularization", arXiv 1711.05101),
//! written out so that its whole state — two moment tensors per parameter and a step counter — is
//! ours to inspect and to save. It follows PyTorch's `torch.optim.AdamW` step for step:
//!
//! ```text
//! p ← p·(1 − lr·λ)                      decoupled weight decay
//! m ← β₁m + (1 − β₁)g                   first moment
//! v ← β₂v + (1 − β₂)g²                  second moment
//! p ← p − lr/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε)
//! ```

//!
//! All parameters live in one flat buffer (each variable becomes a view into it), and so do both
//! moments: a step is a handful of large tensor operations instead of a handful per parameter,
//! which for the course's small models is most of the optimizer's cost. On the CPU the step is
//! one pass of a kernel over those buffers ([`crate::ops::adamw`]), gradient clipping's
//! scaling included; the tensor operations stay as the reference it is tested against, and as
//! the step on other devices.

use tch::{Kind, Tensor};

use crate::error::Result;
use crate::ops::adamw::{self, Buffers, StepScalars};
use crate::spec::{AdamWSpec, DecayTarget};

#[derive(Debug)]
pub struct AdamW {
    /// The model's variables, each now a view into `flat_params`.
    params: Vec<Tensor>,
    flat_params: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: i64,
    settings: AdamWSpec,
    /// 1 where weight decay applies and 0 elsewhere, when it applies to matrices only.
    decay_mask: Option<Tensor>,
    /// Whether a step may take the one-pass kernel ([`AdamW::set_one_pass_kernel`]).
    one_pass_kernel: bool,
}

impl AdamW {
    /// An optimizer over `params` (the trainable variables of a VarStore), with zeroed moments.
    /// The variables keep their values but move into one contiguous buffer.
    pub fn new(params: Vec<Tensor>, settings: AdamWSpec) -> Self {
        let device = params
            .first()
            .map(Tensor::device)
            .unwrap_or(tch::Device::Cpu);
        let flat_params = tch::no_grad(|| {
            let pieces: Vec<Tensor> = params.iter().map(|p| p.detach().reshape([-1])).collect();
            if pieces.is_empty() {
                Tensor::zeros([0], (Kind::Float, device))
            } else {
                Tensor::cat(&pieces, 0)
            }
        });
        let mut offset = 0;
        for p in &params {
            let numel = p.numel() as i64;
            let view = flat_params
                .narrow(0, offset, numel)
                .view(p.size().as_slice());
            p.shallow_clone().set_data(&view);
            offset += numel;
        }
        let decay_mask = (settings.weight_decay_on == DecayTarget::Matrices).then(|| {
            let pieces: Vec<Tensor> = params
                .iter()
                .map(|p| {
                    let decays = if p.dim() >= 2 { 1.0 } else { 0.0 };
                    Tensor::full([p.numel() as i64], decays, (Kind::Float, device))
                })
                .collect();
            if pieces.is_empty() {
                flat_params.zeros_like()
            } else {
                Tensor::cat(&pieces, 0)
            }
        });
        AdamW {
            decay_mask,
            exp_avg: flat_params.zeros_like(),
            exp_avg_sq: flat_params.zeros_like(),
            flat_params,
            params,
            step: 0,
            settings,
            one_pass_kernel: true,
        }
    }

    /// Every parameter in one flat buffer (each variable of the model is a view into it).
    pub fn parameters(&self) -> &Tensor {
        &self.flat_params
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// The optimizer's state, to save: `(exp_avg, exp_avg_sq, step)`, the moments flat and laid out
    /// like the parameters.
    pub fn state(&self) -> (&Tensor, &Tensor, i64) {
        (&self.exp_avg, &self.exp_avg_sq, self.step)
    }

    /// Restores a saved [`AdamW::state`]; the moments must have one entry per parameter value.
    pub fn restore(
        &mut self,
        exp_avg: &Tensor,
        exp_avg_sq: &Tensor,
        step: i64,
    ) -> Result<(), String> {
        for (name, moment) in [("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)] {
            if moment.size() != self.exp_avg.size() {
                return Err(format!(
                    "optimizer moment {name} has shape {:?}, the model needs {:?}",
                    moment.size(),
                    self.exp_avg.size()
                ));
            }
        }
        if step < 0 {
            return Err(format!("optimizer step {step} is negative"));
        }
        tch::no_grad(|| {
            self.exp_avg.copy_(exp_avg);
            self.exp_avg_sq.copy_(exp_avg_sq);
        });
        self.step = step;
        Ok(())
    }

    /// Backpropagates `loss` and takes one step: [`AdamW::flat_gradient`], then [`AdamW::update`].
    pub fn minimise(&mut self, loss: &Tensor, lr: f64, clip: Option<f64>) -> Result<()> {
        let grad = self.flat_gradient(loss, 0);
        self.update(&grad, lr, clip)
    }

    /// Whether [`AdamW::update`] may take its one-pass kernel ([`crate::ops::adamw`]) where
    /// the buffers allow it (contiguous fp32 on the CPU); on by default. Off, every step is the
    /// tensor operations of [`AdamW::update`]'s reference, as on other devices: the tests compare
    /// the two.
    pub fn set_one_pass_kernel(&mut self, allowed: bool) {
        self.one_pass_kernel = allowed;
    }

    /// The gradient of `loss` for every parameter, in one flat buffer laid out like the
    /// parameters (a parameter the loss does not reach contributes zeros), followed by `room`
    /// zeros: space for the few numbers that travel with the gradient in the same all-reduce
    /// ([`crate::train::replicas::Replicas::room_after_gradient`]). The pieces are concatenated
    /// here anyway, so the room costs nothing, where appending to the finished buffer would copy
    /// the whole gradient again.
    pub fn flat_gradient(&self, loss: &Tensor, room: usize) -> Tensor {
        let grads = Tensor::run_backward(&[loss], &self.params, false, false);
        tch::no_grad(|| {
            let mut pieces: Vec<Tensor> = grads
                .iter()
                .zip(&self.params)
                .map(|(g, p)| {
                    if g.defined() {
                        g.reshape([-1])
                    } else {
                        p.zeros_like().reshape([-1])
                    }
                })
                .collect();
            if room > 0 {
                let like = &self.flat_params;
                pieces.push(Tensor::zeros([room as i64], (like.kind(), like.device())));
            }
            Tensor::cat(&pieces, 0)
        })
    }

    /// One step from a flat gradient, clipped first to a global norm of `clip` if given.
    pub fn update(&mut self, grad: &Tensor, lr: f64, clip: Option<f64>) -> Result<()> {
        let scale = clip.map(|max_norm| clip_factor(grad, max_norm));
        self.step += 1;
        let scalars = self.step_scalars(lr);
        tch::no_grad(|| {
            let buffers = Buffers {
                params: &mut self.flat_params,
                exp_avg: &mut self.exp_avg,
                exp_avg_sq: &mut self.exp_avg_sq,
                decay_mask: self.decay_mask.as_ref(),
            };
            if self.one_pass_kernel && adamw::kernel_takes(&buffers, grad) {
                return adamw::kernel_step(buffers, grad, scale.as_ref(), scalars);
            }
            match &scale {
                Some(factor) => reference_step(buffers, &(grad * factor), scalars),
                None => reference_step(buffers, grad, scalars),
            }
            Ok(())
        })
    }

    /// The numbers of the step just counted: `step_size = lr / (1 − β₁ᵗ)`, and −step_size and
    /// √(1 − β₂ᵗ) folded into the denominator so that the update is one division.
    fn step_scalars(&self, lr: f64) -> StepScalars {
        let AdamWSpec {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } = self.settings;
        let bias_correction1 = 1.0 - beta1.powi(self.step as i32);
        let bias_correction2 = 1.0 - beta2.powi(self.step as i32);
        let step_size = lr / bias_correction1;
        StepScalars {
            lr_decay: lr * weight_decay,
            avg_weight: 1.0 - beta1,
            sq_weight: 1.0 - beta2,
            denom_scale: -1.0 / (step_size * bias_correction2.sqrt()),
            denom_offset: -eps / step_size,
        }
    }
}

/// The step as tensor operations, in place: the formulation the one-pass kernel is tested against,
/// and the one for every device the kernel does not take.
fn reference_step(buffers: Buffers, grad: &Tensor, s: StepScalars) {
    let p = buffers.params;
    match (buffers.decay_mask, s.lr_decay != 0.0) {
        (_, false) => {}
        (None, true) => {
            let _ = p.g_mul_scalar_(1.0 - s.lr_decay);
        }
        (Some(mask), true) => {
            let _ = p.g_sub_(&(&*p * mask * s.lr_decay));
        }
    }
    let _ = buffers.exp_avg.lerp_(grad, s.avg_weight);
    let _ = buffers.exp_avg_sq.lerp_(&grad.square(), s.sq_weight);
    let mut denom = buffers.exp_avg_sq.sqrt();
    let _ = denom
        .g_mul_scalar_(s.denom_scale)
        .g_add_scalar_(s.denom_offset);
    let _ = p.addcdiv_(&*buffers.exp_avg, &denom);
}

/// The factor that scales `grad` down, if needed, to an L2 norm of at most `max_norm`: a
/// one-value tensor, computed on the device without reading the norm back (no host
/// synchronisation).
pub fn clip_factor(grad: &Tensor, max_norm: f64) -> Tensor {
    let norm = grad.norm();
    (max_norm / (norm + 1e-6)).clamp_max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, OptimizerConfig};
    use tch::{Device, Kind};

    /// Our AdamW and libtorch's own (torch::optim::AdamW through tch) agree over several steps.
    #[test]
    fn matches_libtorchs_adamw() {
        tch::manual_seed(0);
        let settings = AdamWSpec {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
            weight_decay_on: DecayTarget::All,
        };
        let make = || {
            let vs = nn::VarStore::new(Device::Cpu);
            let w = vs.root().var("w", &[5, 3], nn::Init::Const(0.0));
            tch::no_grad(|| {
                w.shallow_clone().copy_(
                    &Tensor::arange(15, (Kind::Float, Device::Cpu))
                        .view([5, 3])
                        .sin(),
                )
            });
            (vs, w)
        };
        let (vs_ours, w_ours) = make();
        let (vs_ref, w_ref) = make();
        let mut ours = AdamW::new(vs_ours.trainable_variables(), settings.clone());
        let mut reference = nn::AdamW {
            beta1: 0.9,
            beta2: 0.99,
            wd: 0.1,
            eps: 1e-8,
            amsgrad: false,
        }
        .build(&vs_ref, 1e-2)
        .unwrap();
        // The mutation check: the same optimizer at a learning rate 2% off.
        let (vs_off, w_off) = make();
        let mut off = AdamW::new(vs_off.trainable_variables(), settings.clone());
        let target = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
        for _ in 0..5 {
            ours.minimise(&(&w_ours - &target).square().sum(Kind::Float), 1e-2, None)
                .unwrap();
            off.minimise(&(&w_off - &target).square().sum(Kind::Float), 1.02e-2, None)
                .unwrap();
            reference.zero_grad();
            (&w_ref - &target).square().sum(Kind::Float).backward();
            reference.step();
        }
        let diff = (&w_ours - &w_ref).abs().max().double_value(&[]);
        // Another order of the same fp32 operations: rounding of parameters of magnitude about 1,
        // 64 units of it per step, over 5 steps (a wrong step would move them by ~1e-2).
        let scale = w_ref.abs().max().double_value(&[]).max(1.0);
        let bound = 64.0 * f64::from(f32::EPSILON) * 5.0 * scale;
        assert!(
            diff <= bound,
            "parameters differ by {diff} (bound {bound:.2e})"
        );
        let off_by = (&w_off - &w_ref).abs().max().double_value(&[]);
        assert!(
            off_by > 10.0 * bound,
            "a 2% learning rate error: {off_by} (bound {bound:.2e})"
        );
        assert!(
            (&w_ours
                - Tensor::arange(15, (Kind::Float, Device::Cpu))
                    .view([5, 3])
                    .sin())
            .abs()
            .max()
            .double_value(&[])
                > 1e-3
        );
    }

    /// The one-pass kernel and the tensor operations take the same steps: weight decay on matrices
    /// only, gradients large enough for clipping to engage and small enough for it not to, over
    /// several steps (the moments' history matters).
    #[test]
    #[cfg(feature = "cpu-kernels")]
    fn one_pass_kernel_matches_the_tensor_operations() {
        let settings = AdamWSpec {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
            weight_decay_on: DecayTarget::Matrices,
        };
        let make = |one_pass: bool| {
            tch::manual_seed(7);
            let vs = nn::VarStore::new(Device::Cpu);
            let _ = vs.root().randn("w", &[37, 29], 0.0, 1.0);
            let _ = vs.root().randn("b", &[29], 0.0, 1.0);
            let mut optimizer = AdamW::new(vs.trainable_variables(), settings.clone());
            optimizer.set_one_pass_kernel(one_pass);
            (vs, optimizer)
        };
        let (_vs_kernel, mut kernel_path) = make(true);
        let (_vs_reference, mut reference) = make(false);
        let n = kernel_path.parameters().numel() as i64;
        {
            let buffers = Buffers {
                params: &mut kernel_path.flat_params,
                exp_avg: &mut kernel_path.exp_avg,
                exp_avg_sq: &mut kernel_path.exp_avg_sq,
                decay_mask: kernel_path.decay_mask.as_ref(),
            };
            let grad = Tensor::zeros([n], (Kind::Float, Device::Cpu));
            assert!(
                adamw::kernel_takes(&buffers, &grad),
                "the test must exercise the kernel"
            );
        }
        tch::manual_seed(8);
        for step in 0..6 {
            // Norms of about 0.3·√n ≈ 10 (clipped to 1) and 0.003·√n ≈ 0.1 (left alone).
            let size = if step % 2 == 0 { 0.3 } else { 0.003 };
            let grad = Tensor::randn([n], (Kind::Float, Device::Cpu)) * size;
            let lr = 1e-2 * (1.0 + step as f64);
            kernel_path
                .update(&grad, lr, Some(1.0))
                .expect("the kernel's step");
            reference
                .update(&grad, lr, Some(1.0))
                .expect("the reference step");
        }
        let moved = (kernel_path.parameters() - reference.parameters().detach())
            .abs()
            .max()
            .double_value(&[]);
        // Another order of the same fp32 operations on values of magnitude up to ~4: a few units of
        // rounding per step, over 6 steps; a wrong step (a 2% error of lr) moves them by ~1e-3.
        let scale = reference
            .parameters()
            .abs()
            .max()
            .double_value(&[])
            .max(1.0);
        let bound = 16.0 * f64::from(f32::EPSILON) * 6.0 * scale;
        assert!(
            moved <= bound,
            "parameters differ by {moved} (bound {bound:.2e})"
        );
        for (ours, theirs, name) in [
            (&kernel_path.exp_avg, &reference.exp_avg, "exp_avg"),
            (&kernel_path.exp_avg_sq, &reference.exp_avg_sq, "exp_avg_sq"),
        ] {
            let scale = theirs.abs().max().double_value(&[]);
            let diff = (ours - theirs).abs().max().double_value(&[]);
            let bound = 16.0 * f64::from(f32::EPSILON) * 6.0 * scale;
            assert!(
                diff <= bound,
                "{name} differs by {diff} (bound {bound:.2e})"
            );
        }
        assert_eq!(kernel_path.steps(), reference.steps());
    }

    /// The room after the gradient is zeros, and the gradient before it is unchanged by it.
    #[test]
    fn flat_gradient_leaves_room_after_the_parameters() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2, 3], nn::Init::Const(1.5));
        let b = vs.root().var("b", &[3], nn::Init::Const(-1.0));
        let optimizer = AdamW::new(vs.trainable_variables(), AdamWSpec::default());
        let loss = || (&w * &w).sum(Kind::Float) + (&b * 5.0).sum(Kind::Float);
        let plain = Vec::<f32>::try_from(optimizer.flat_gradient(&loss(), 0)).unwrap();
        let roomy = Vec::<f32>::try_from(optimizer.flat_gradient(&loss(), 2)).unwrap();
        assert_eq!(plain.len(), 9);
        assert_eq!(roomy[..9], plain[..]);
        assert_eq!(roomy[9..], [0.0, 0.0]);
        // 2w = 3 for each of w's six values, 5 for each of b's three (in the variables' order).
        let mut sorted = plain.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, [3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 5.0, 5.0, 5.0]);
    }

    #[test]
    fn clipping_keeps_the_direction_and_bounds_the_norm() {
        let grad = Tensor::from_slice(&[3f32, 4.0]);
        let clip_gradient = |grad: &Tensor, max_norm| grad * clip_factor(grad, max_norm);
        let clipped = clip_gradient(&grad, 1.0);
        let values = Vec::<f32>::try_from(&clipped).unwrap();
        assert!(
            (values[0] - 0.6).abs() < 1e-5 && (values[1] - 0.8).abs() < 1e-5,
            "{values:?}"
        );
        let unchanged = Vec::<f32>::try_from(clip_gradient(&grad, 10.0)).unwrap();
        assert_eq!(unchanged, [3.0, 4.0]);
    }

    #[test]
    fn decay_on_matrices_spares_vectors() {
        let decayed = |target: DecayTarget| {
            let vs = nn::VarStore::new(Device::Cpu);
            let matrix = vs.root().var("m", &[2, 2], nn::Init::Const(1.0));
            let vector = vs.root().var("b", &[2], nn::Init::Const(1.0));
            let settings = AdamWSpec {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.5,
                weight_decay_on: target,
            };
            let mut optimizer = AdamW::new(vs.trainable_variables(), settings);
            // A loss with zero gradient: only the decay moves the parameters.
            let loss = (&matrix * 0.0).sum(Kind::Float) + (&vector * 0.0).sum(Kind::Float);
            optimizer.minimise(&loss, 0.1, None).unwrap();
            (matrix.double_value(&[0, 0]), vector.double_value(&[0]))
        };
        let (m, b) = decayed(DecayTarget::All);
        assert!(
            (m - 0.95).abs() < 1e-6 && (b - 0.95).abs() < 1e-6,
            "{m} {b}"
        );
        let (m, b) = decayed(DecayTarget::Matrices);
        assert!((m - 0.95).abs() < 1e-6 && b == 1.0, "{m} {b}");
    }
}
