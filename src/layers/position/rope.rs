//! Rotary position embedding, RoPE (Su et al. 2021, "RoFormer", arXiv 2104.09864).
//!
//! Instead of adding a position vector to the token, RoPE *rotates* each query and key by an
//! angle proportional to its position. Channels are taken in pairs; pair i turns at frequency
//! θ^(−2i/hs), from one turn every 2π tokens down to very slow ones. A rotation preserves lengths
//! and the dot product of two rotated vectors depends only on the *difference* of their angles, so
//! q(m)·k(n) depends on the offset m − n and not on where the pair sits: attention sees relative
//! positions, values are untouched, and nothing is learned.
//!
//! Pairs are (i, i + hs/2), the "rotate half" layout of GPT-NeoX and LLaMA; the paper pairs
//! neighbouring channels (2i, 2i + 1). The two differ by a fixed permutation of the channels of
//! q and k, which the learned projections absorb, so they are the same model family.
//! `theta` (the base, 10 000 in the paper) sets the slowest frequency.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};

use crate::error::SpecError;
use crate::layers::{Dims, PositionalEncoding, ResolveKind, ResolvedPosition};

/// `position: {kind: rope, theta: 10000.0}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rope {
    /// The base of the frequencies θ^(−2i/hs).
    #[serde(default = "default_theta")]
    pub theta: f64,
}

fn default_theta() -> f64 {
    10_000.0
}

impl Default for Rope {
    fn default() -> Self {
        Rope {
            theta: default_theta(),
        }
    }
}

crate::register_kind!(Position, "rope", Rope);

impl ResolveKind for Rope {
    type Resolved = Rope;

    fn resolve(&self, _dims: &Dims) -> Result<Rope, SpecError> {
        if self.theta > 1.0 && self.theta.is_finite() {
            Ok(self.clone())
        } else {
            Err(SpecError::new(
                "theta",
                format!("must be above 1, got {}", self.theta),
            ))
        }
    }
}

impl ResolvedPosition for Rope {
    fn check_head_size(&self, head_size: i64) -> Result<(), SpecError> {
        if head_size % 2 == 0 {
            Ok(())
        } else {
            Err(SpecError::new(
                "kind",
                format!("rope rotates pairs of channels: head_size ({head_size}) must be even"),
            ))
        }
    }

    fn build(&self, _path: &nn::Path, dims: &Dims) -> Box<dyn PositionalEncoding> {
        Box::new(RotaryPositions {
            theta: self.theta,
            block_size: dims.block_size,
            tables: Mutex::new(Vec::new()),
        })
    }
}

#[derive(Debug)]
pub struct RotaryPositions {
    theta: f64,
    block_size: i64,
    /// The rotation's factors `[block_size, hs]` per head size, device and dtype, computed on
    /// first use: every layer of every step rotates by the same angles, so they are worked out
    /// (and cast to the activations' dtype) once.
    tables: Mutex<Vec<RotationTable>>,
}

/// `cos` is `[cos θ, cos θ]` and `sin` is `[−sin θ, sin θ]` over the two halves of a head, so that
/// a rotation is `x·cos + swap(x)·sin` ([`RotaryPositions::rotate`]).
#[derive(Debug)]
struct RotationTable {
    head_size: i64,
    kind: Kind,
    device: tch::Device,
    cos: Tensor,
    sin: Tensor,
}

impl RotaryPositions {
    /// The angles `[t, hs/2]` of positions `start..start + t`, pair by pair.
    pub fn angles(&self, start: i64, t: i64, head_size: i64, device: tch::Device) -> Tensor {
        let half = head_size / 2;
        // In double precision, rounded once: fp32 angles drift at large positions.
        let position = Tensor::arange_start(start, start + t, (Kind::Double, device)).unsqueeze(1);
        let pair = Tensor::arange(half, (Kind::Double, device));
        let frequency = (pair * (-2.0 * self.theta.ln() / head_size as f64)).exp();
        position * frequency.unsqueeze(0)
    }

    /// The factors `(cos, sin)`, each `[t, hs]` in `kind`, of positions `start..start + t`: from
    /// the cached table when the positions lie within the block. Rounded to fp32 first, then to
    /// `kind`, as the activations are.
    fn factors(&self, start: i64, t: i64, head_size: i64, like: &Tensor) -> (Tensor, Tensor) {
        let (kind, device) = (like.kind(), like.device());
        let fresh = |start: i64, t: i64| {
            let angle = self.angles(start, t, head_size, device);
            let (cos, sin) = (
                angle.cos().to_kind(Kind::Float).to_kind(kind),
                angle.sin().to_kind(Kind::Float).to_kind(kind),
            );
            (
                Tensor::cat(&[&cos, &cos], -1),
                Tensor::cat(&[&(-&sin), &sin], -1),
            )
        };
        if start + t > self.block_size {
            return fresh(start, t);
        }
        let mut tables = self
            .tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = match tables.iter().position(|table| {
            table.head_size == head_size && table.kind == kind && table.device == device
        }) {
            Some(index) => index,
            None => {
                let (cos, sin) = fresh(0, self.block_size);
                tables.push(RotationTable {
                    head_size,
                    kind,
                    device,
                    cos,
                    sin,
                });
                tables.len() - 1
            }
        };
        let table = &tables[index];
        (table.cos.narrow(0, start, t), table.sin.narrow(0, start, t))
    }
}

impl PositionalEncoding for RotaryPositions {
    /// Each pair `(x1, x2)` (channels `i` and `i + hs/2`) turned by its angle θ:
    /// `(x1·cos θ − x2·sin θ, x2·cos θ + x1·sin θ)`, the 2-D rotation matrix written out, computed
    /// as `x·[cos, cos] + [x2, x1]·[−sin, sin]`: the same products and sums, rounded the same way
    /// (a − b is a + (−b) exactly), in four operations each way instead of nine (seven in fp32,
    /// without the casts), which on a GPU, where a small model's step is bound by launching its
    /// kernels, is what the rotation costs.
    fn rotate(&self, x: &Tensor, start: i64) -> Tensor {
        let size = x.size();
        let (t, head_size) = (size[size.len() - 2], size[size.len() - 1]);
        let (cos, sin) = self.factors(start, t, head_size, x);
        // One split, not two `narrow`s, whose backward passes would each zero a whole gradient.
        let halves = x.split(head_size / 2, -1);
        let swapped = Tensor::cat(&[&halves[1], &halves[0]], -1);
        x * cos + swapped * sin
    }
}
