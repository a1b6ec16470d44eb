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

use tch::Tensor;

use crate::spec::AdamWSpec;

#[derive(Debug)]
pub struct AdamW {
    params: Vec<Tensor>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    step: i64,
    settings: AdamWSpec,
}

impl AdamW {
    /// An optimizer over `params` (trainable tensors of a VarStore), with zeroed moments.
    pub fn new(params: Vec<Tensor>, settings: AdamWSpec) -> Self {
        let zeros = |ps: &[Tensor]| ps.iter().map(Tensor::zeros_like).collect();
        AdamW {
            exp_avg: zeros(&params),
            exp_avg_sq: zeros(&params),
            params,
            step: 0,
            settings,
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Sets every parameter's gradient to zero, ready for the next backward pass.
    pub fn zero_grad(&mut self) {
        for p in &self.params {
            let mut grad = p.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
    }

    /// One update with learning rate `lr`, from the gradients of the last backward pass.
    pub fn step(&mut self, lr: f64) {
        let AdamWSpec {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.settings;
        self.step += 1;
        let bias_correction1 = 1.0 - beta1.powi(self.step as i32);
        let bias_correction2 = 1.0 - beta2.powi(self.step as i32);
        let step_size = lr / bias_correction1;
        // Fold −step_size and √(1 − β₂ᵗ) into the denominator so the update is one addcdiv_.
        let denom_scale = -1.0 / (step_size * bias_correction2.sqrt());
        let denom_offset = -eps / step_size;
        tch::no_grad(|| {
            for ((p, m), v) in self
                .params
                .iter()
                .zip(&mut self.exp_avg)
                .zip(&mut self.exp_avg_sq)
            {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let mut p = p.shallow_clone();
                if weight_decay != 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                let _ = m.lerp_(&grad, 1.0 - beta1);
                let _ = v.lerp_(&grad.square(), 1.0 - beta2);
                let mut denom = v.sqrt();
                let _ = denom.g_mul_scalar_(denom_scale).g_add_scalar_(denom_offset);
                let _ = p.addcdiv_(m, &denom);
            }
        });
    }
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
        let target = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
        for _ in 0..5 {
            ours.zero_grad();
            (&w_ours - &target).square().sum(Kind::Float).backward();
            ours.step(1e-2);
            reference.zero_grad();
            (&w_ref - &target).square().sum(Kind::Float).backward();
            reference.step();
        }
        let diff = (&w_ours - &w_ref).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "parameters differ by {diff}");
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
}
