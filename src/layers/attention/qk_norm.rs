//! QK-norm: normalise queries and keys before they meet, so attention scores cannot grow without
//! bound and saturate the softmax.
//!
//! - `l2` (Henry et al. 2020, "Query-Key Normalization for Transformers", arXiv 2010.04245): each
//!   query and key is divided by its L2 norm, so q·k is a cosine in [-1, 1], and a learned gain g
//!   per head replaces the 1/√head_size scale. The paper initialises g to log2(L² − L), L the
//!   sequence length (here `block_size`), so the softmax starts neither flat nor saturated.
//! - `rmsnorm`: RMSNorm with a learned gain over each head's channels, on queries and keys
//!   separately, keeping the usual 1/√head_size scale — the variant of recent LLMs (Dehghani et al.
//!   2023, "Scaling Vision Transformers to 22 Billion Parameters", arXiv 2302.05442; OLMo 2).
//!
//! Queries `[B, H, n, hs]`, keys `[B, Hkv, n, hs]`.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::Tensor;

use crate::layers::norm::rms_norm::RmsNormKind;
use crate::layers::{Layer, ResolvedNorm};

/// `qk_norm:` of a multi-head attention.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum QkNorm {
    #[default]
    None,
    L2,
    Rmsnorm,
}

/// Epsilon of the `rmsnorm` variant.
pub const RMS_EPS: f64 = 1e-6;

/// The smallest norm `l2` divides by, so an all-zero vector stays zero (as `F.normalize`).
const L2_EPS: f64 = 1e-12;

/// A built QK-norm.
#[derive(Debug)]
pub enum QkNormLayer {
    /// `qk_gain` `[H]`.
    L2 { gain: Tensor },
    /// `q_norm`, `k_norm`: RMSNorm over `head_size` channels.
    Rms { query: Layer, key: Layer },
}

impl QkNorm {
    /// Builds the layer under `path` (the attention's), or `None` for `none`.
    pub fn build(
        self,
        path: &nn::Path,
        n_head: i64,
        head_size: i64,
        block_size: i64,
    ) -> Option<QkNormLayer> {
        match self {
            QkNorm::None => None,
            QkNorm::L2 => {
                let pairs = (block_size * block_size - block_size).max(2) as f64;
                let gain = path.var("qk_gain", &[n_head], Init::Const(pairs.log2()));
                Some(QkNormLayer::L2 { gain })
            }
            QkNorm::Rmsnorm => {
                let rms = RmsNormKind { eps: RMS_EPS };
                Some(QkNormLayer::Rms {
                    query: rms.build(&(path / "q_norm"), head_size),
                    key: rms.build(&(path / "k_norm"), head_size),
                })
            }
        }
    }
}

impl QkNormLayer {
    /// Normalised queries and keys.
    pub fn apply(&self, q: &Tensor, k: &Tensor) -> (Tensor, Tensor) {
        match self {
            QkNormLayer::L2 { gain } => {
                let unit = |x: &Tensor| {
                    let norm = x.norm_scalaropt_dim(2, [-1], true).clamp_min(L2_EPS);
                    x / norm
                };
                (unit(q) * gain.view([1, -1, 1, 1]), unit(k))
            }
            QkNormLayer::Rms { query, key } => (query.forward_t(q, false), key.forward_t(k, false)),
        }
    }

    /// The factor on q·k: 1 for `l2` (its gain, folded into the queries, takes the place of
    /// 1/√head_size), else 1/√head_size.
    pub fn scale(&self, head_size: i64) -> f64 {
        match self {
            QkNormLayer::L2 { .. } => 1.0,
            QkNormLayer::Rms { .. } => (head_size as f64).powf(-0.5),
        }
    }
}
