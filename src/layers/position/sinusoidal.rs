//! Fixed sinusoidal positions ("Attention Is All You Need", Vaswani et al. 2017, arXiv 1706.03762,
//! §3.5): position `p` is encoded by sines and cosines of geometrically spaced frequencies,
//! `PE(p, 2i) = sin(p / base^(2i/C))`, `PE(p, 2i+1) = cos(p / base^(2i/C))`. Nothing is learned;
//! any offset between two positions is a fixed rotation of these pairs, which the paper hoped
//! would let the model attend by relative position.
//! Shapes: `start, t -> [t, C]`.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::error::SpecError;
use crate::layers::{Dims, PositionalEncoding, ResolveKind, ResolvedPosition};

/// `position: {kind: sinusoidal, base: 10000}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sinusoidal {
    /// The longest wavelength is `2π · base` positions.
    #[serde(default = "default_base")]
    pub base: f64,
}

fn default_base() -> f64 {
    10_000.0
}

crate::register_kind!(Position, "sinusoidal", Sinusoidal);

impl ResolveKind for Sinusoidal {
    type Resolved = Sinusoidal;

    fn resolve(&self, dims: &Dims) -> Result<Sinusoidal, SpecError> {
        if !(self.base > 1.0 && self.base.is_finite()) {
            return Err(SpecError::new(
                "base",
                format!("must be above 1, got {}", self.base),
            ));
        }
        if dims.n_embd % 2 != 0 {
            return Err(SpecError::new(
                "kind",
                format!(
                    "sinusoidal positions pair up channels: n_embd ({}) must be even",
                    dims.n_embd
                ),
            ));
        }
        Ok(self.clone())
    }
}

impl ResolvedPosition for Sinusoidal {
    fn build(&self, path: &nn::Path, dims: &Dims) -> Box<dyn PositionalEncoding> {
        Box::new(SinusoidalPositions {
            table: sinusoid_table(dims.block_size, dims.n_embd, self.base, path.device()),
        })
    }
}

/// The `[positions, C]` table: even channels sines, odd channels cosines.
pub fn sinusoid_table(positions: i64, channels: i64, base: f64, device: Device) -> Tensor {
    // Angles in double precision: at long contexts fp32 angles drift by ~1e-5.
    let position = Tensor::arange(positions, (Kind::Double, device)).unsqueeze(1);
    let pair = Tensor::arange_start_step(0, channels, 2, (Kind::Double, device));
    let frequency = (pair * (-base.ln() / channels as f64)).exp().unsqueeze(0);
    let angle = position * frequency;
    Tensor::stack(&[angle.sin(), angle.cos()], 2)
        .reshape([positions, channels])
        .to_kind(Kind::Float)
}

#[derive(Debug)]
pub struct SinusoidalPositions {
    /// `[block_size, C]`, a constant, not a parameter.
    table: Tensor,
}

impl PositionalEncoding for SinusoidalPositions {
    fn embedding(&self, start: i64, t: i64) -> Option<Tensor> {
        Some(self.table.narrow(0, start, t))
    }
}
