//! SwiGLU, a gated feed-forward layer (Shazeer 2020, "GLU Variants Improve Transformer",
//! arXiv 2002.05202): `FFN(x) = W2 (SiLU(W1 x) ⊙ W3 x)`. One projection, passed through SiLU
//! (Swish), gates another element-wise, so the layer chooses per feature how much of the second
//! to let through. Three matrices instead of two: with the default hidden width, 2/3 of the MLP's
//! 4C (rounded), the layer has the MLP's number of weights, and the paper finds it trains to a
//! lower loss for the same compute. No biases, as in the paper. Then dropout.
//! Shapes: `[B, T, C] -> [B, T, hidden] -> [B, T, C]`.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use crate::error::SpecError;
use crate::layers::init::Role::{Inner, ResidualOutput};
use crate::layers::linear::Linear;
use crate::layers::{
    require_size, Dims, FeedForwardKind, Layer, ResolveKind, ResolvedFeedForward, WrittenAs,
};

/// `feed_forward: {kind: swiglu}` or `{kind: swiglu, hidden_size: 128}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwiGluKind {
    /// Hidden width; defaults to round(2/3 · 4 · n_embd), matching the MLP's weights.
    #[serde(default)]
    pub hidden_size: Option<i64>,
}

/// round(2/3 · 4C): three C×h matrices hold as many weights as the MLP's two C×4C.
pub fn default_hidden_size(n_embd: i64) -> i64 {
    (8.0 * n_embd as f64 / 3.0).round() as i64
}

crate::register_kind!(FeedForward, "swiglu", SwiGluKind);

impl ResolveKind for SwiGluKind {
    type Resolved = ResolvedSwiGlu;

    fn resolve(&self, dims: &Dims) -> Result<ResolvedSwiGlu, SpecError> {
        let hidden_size = self
            .hidden_size
            .unwrap_or_else(|| default_hidden_size(dims.n_embd));
        require_size("hidden_size", hidden_size)?;
        Ok(ResolvedSwiGlu { hidden_size })
    }
}

/// SwiGLU with its hidden width worked out.
#[derive(Debug, Clone)]
pub struct ResolvedSwiGlu {
    pub hidden_size: i64,
}

impl ResolvedFeedForward for ResolvedSwiGlu {
    fn activation_width(&self, _dims: &Dims) -> i64 {
        // The gate, the up projection and their product.
        3 * self.hidden_size
    }

    fn build(&self, path: &nn::Path, dims: &Dims) -> Option<Layer> {
        let hidden = self.hidden_size;
        Some(Box::new(SwiGlu {
            gate: Linear::new(&(path / "gate"), (dims.n_embd, hidden), false, dims, Inner),
            up: Linear::new(&(path / "up"), (dims.n_embd, hidden), false, dims, Inner),
            down: Linear::new(
                &(path / "down"),
                (hidden, dims.n_embd),
                false,
                dims,
                ResidualOutput,
            ),
            dropout: dims.residual_dropout,
        }))
    }
}

impl WrittenAs<dyn FeedForwardKind> for ResolvedSwiGlu {
    fn written(&self) -> Box<dyn FeedForwardKind> {
        Box::new(SwiGluKind {
            hidden_size: Some(self.hidden_size),
        })
    }
}

#[derive(Debug)]
pub struct SwiGlu {
    /// W1: its SiLU gates…
    gate: Linear,
    /// …W3's projection, element by element;
    up: Linear,
    /// W2 brings the result back to C.
    down: Linear,
    dropout: f64,
}

impl ModuleT for SwiGlu {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let hidden = self.gate.forward_compute(x).silu() * self.up.forward_compute(x);
        let out = self.down.forward(&hidden);
        if self.dropout > 0.0 {
            crate::layers::dropout::dropout(&out, self.dropout, train)
        } else {
            out
        }
    }
}
