//! The operations the layers are written in, each choosing in one place who computes it: one of
//! gptbuild's C++ kernels ([`crate::kernels`], the `cpu-kernels` feature: the CPU, where libtorch
//! lacks them or is slow) or the plain libtorch formulation, which every kernel is tested against
//! (`tests/kernels.rs`). The choice depends on the device, the dtype, the shape, the feature and
//! the `GPTBUILD_*` overrides for measurements; the layers in [`crate::layers`] never see it, so
//! they read as the textbook (as candle-nn's layers call its `ops::rms_norm`).
//!
//! Built without `cpu-kernels`, every operation is its libtorch formulation: the same results up
//! to rounding, except that dropout masks are libtorch's draws rather than the kernels' hash.

pub mod adamw;
pub mod attention;

use tch::{Kind, Tensor};

pub use attention::{attention_dropout_mask, causal_attention};

/// `x Wᵀ + b` in fp32 (`weight` `[out, in]`): on an AMD CPU through oneDNN's products
/// (`kernels::linear`: MKL runs its AVX2 code there, at half the speed), elsewhere libtorch's.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    #[cfg(feature = "cpu-kernels")]
    if crate::kernels::linear::supports(x, weight, bias) {
        // Checked by `supports`: fp32 CPU tensors of matching shapes, oneDNN available.
        return crate::kernels::linear::linear(x, weight, bias)
            .unwrap_or_else(|error| panic!("{error}"));
    }
    x.linear(weight, bias)
}

/// Which library multiplies fp32 matrices on the CPU in [`linear`], for `gptbuild devices` and
/// `gptbuild bench`.
pub fn fp32_products() -> Fp32Products {
    #[cfg(feature = "cpu-kernels")]
    if crate::kernels::linear::fp32_products_through_onednn() {
        return Fp32Products::OneDnn;
    }
    Fp32Products::Mkl
}

/// Which library multiplies fp32 matrices on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fp32Products {
    /// libtorch's own choice: MKL's `sgemm`.
    Mkl,
    /// oneDNN, through gptbuild's linear kernel.
    OneDnn,
}

impl Fp32Products {
    /// Its name, as `gptbuild devices` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Fp32Products::Mkl => "MKL (libtorch's default)",
            Fp32Products::OneDnn => "oneDNN (gptbuild's linear kernel)",
        }
    }
}

/// RMSNorm of the last dimension, `x / √(mean(x²) + eps) · weight`: on the CPU in fp32 one kernel
/// pass each way (`kernels::rms_norm`), elsewhere the formula.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Tensor {
    #[cfg(feature = "cpu-kernels")]
    if crate::kernels::rms_norm::supports(x, weight) {
        // `supports` checked the inputs and `eps` is a validated spec value (positive).
        return crate::kernels::rms_norm::rms_norm(x, weight, eps)
            .unwrap_or_else(|error| panic!("{error}"));
    }
    let mean_square = x.square().mean_dim(-1, true, Kind::Float);
    x * (mean_square + eps).rsqrt() * weight
}

/// `x` with dropout `p` (zeroed with probability `p`, survivors scaled by `1 / (1 - p)`) when
/// `train`, else `x` itself. On the CPU the mask is a hash of a key drawn from libtorch's generator
/// (`kernels::dropout`: one pass each way, nothing stored), elsewhere libtorch's draw.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x.shallow_clone();
    }
    #[cfg(feature = "cpu-kernels")]
    if crate::kernels::dropout::supports(x) {
        // Checked by `supports`, and p is a validated spec value in [0, 1).
        let key = crate::kernels::dropout::draw_key();
        return crate::kernels::dropout::dropout(x, p, key)
            .unwrap_or_else(|error| panic!("{error}"));
    }
    x.dropout(p, train)
}
