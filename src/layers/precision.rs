//! Mixed precision: where bf16 pays and where it would hurt.
//!
//! The matrix products are almost all of a step's arithmetic, and on a CPU with AVX-512 BF16 (or
//! any recent GPU) a bf16 product runs several times faster than an fp32 one. bf16 keeps fp32's
//! exponent range but only 8 bits of mantissa, so the *rest* stays fp32 (Micikevicius et al. 2018,
//! "Mixed Precision Training", arXiv 1710.03740; bf16 needs no loss scaling):
//!
//! - the master weights and AdamW's moments, so that small updates are not rounded away;
//! - the residual stream, normalisations, softmax weights and the loss, where cancellations and
//!   exponentials need the precision.
//!
//! With `precision: bf16` each linear layer casts its input and its weights to bf16 for the product
//! (the casts are differentiable, so gradients reach the fp32 weights in fp32). Layers whose output
//! feeds another product (queries/keys/values, an MLP's expansion) hand it on in bf16; layers whose
//! output joins the residual stream or becomes logits return fp32. Attention runs in bf16 with its
//! softmax accumulated in fp32.

use serde::{Deserialize, Serialize};
use tch::Kind;

/// `training.precision` (and `--precision`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in fp32.
    #[default]
    Fp32,
    /// Matrix products in bf16, everything else in fp32.
    Bf16,
}

impl Precision {
    /// The dtype of the matrix products.
    pub fn compute_kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}
