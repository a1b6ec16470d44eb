//! The position-wise feed-forward network of "Attention Is All You Need" (Vaswani et al. 2017,
//! arXiv 1706.03762, §3.3): expand to a wider hidden layer (4C in the paper), ReLU, project back,
//! then dropout. Most of a transformer's parameters and compute live here. GPT-2 uses GELU
//! (Hendrycks & Gimpel 2016, arXiv 1606.08415) instead of ReLU: `activation: gelu`.
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

/// `feed_forward: {kind: mlp, hidden_multiplier: 4}` or `{kind: mlp, hidden_size: 100}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MlpKind {
    /// Hidden width as a multiple of `n_embd` (default 4, as in the paper).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_multiplier: Option<i64>,
    /// Explicit hidden width; exclusive with `hidden_multiplier`. Filled in when the spec is resolved.
    #[serde(default)]
    pub hidden_size: Option<i64>,
    /// The non-linearity between the two layers.
    #[serde(default)]
    pub activation: Activation,
}

/// `relu` (the paper, the course), `gelu` (exact, with erf) or `gelu_tanh` (GPT-2's approximation).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Gelu,
    // GELU's tanh approximation (Hendrycks & Gimpel 2016, §2), which GPT-2 was trained with
    // (`gelu_new` in Hugging Face's configs).
    #[serde(rename = "gelu_tanh")]
    GeluTanh,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::Gelu => x.gelu("none"),
            Activation::GeluTanh => x.gelu("tanh"),
        }
    }
}

crate::register_kind!(FeedForward, "mlp", MlpKind);

impl ResolveKind for MlpKind {
    type Resolved = ResolvedMlp;

    fn resolve(&self, dims: &Dims) -> Result<ResolvedMlp, SpecError> {
        let hidden_size = match (self.hidden_multiplier, self.hidden_size) {
            (Some(_), Some(_)) => {
                return Err(SpecError::new(
                    "hidden_size",
                    "give either hidden_multiplier or hidden_size, not both",
                ))
            }
            (Some(multiplier), None) => {
                require_size("hidden_multiplier", multiplier)?;
                multiplier * dims.n_embd
            }
            (None, Some(size)) => size,
            (None, None) => 4 * dims.n_embd,
        };
        require_size("hidden_size", hidden_size)?;
        Ok(ResolvedMlp {
            hidden_size,
            activation: self.activation,
        })
    }
}

/// The MLP with its hidden width worked out.
#[derive(Debug, Clone)]
pub struct ResolvedMlp {
    pub hidden_size: i64,
    pub activation: Activation,
}

impl ResolvedFeedForward for ResolvedMlp {
    fn activation_width(&self, _dims: &Dims) -> i64 {
        self.hidden_size
    }

    fn build(&self, path: &nn::Path, dims: &Dims) -> Option<Layer> {
        let hidden = self.hidden_size;
        Some(Box::new(Mlp {
            expand: Linear::new(&(path / "expand"), (dims.n_embd, hidden), true, dims, Inner),
            contract: Linear::new(
                &(path / "contract"),
                (hidden, dims.n_embd),
                true,
                dims,
                ResidualOutput,
            ),
            dropout: dims.residual_dropout,
            activation: self.activation,
        }))
    }
}

/// The width itself, the one number the layer is built from (no multiplier).
impl WrittenAs<dyn FeedForwardKind> for ResolvedMlp {
    fn written(&self) -> Box<dyn FeedForwardKind> {
        Box::new(MlpKind {
            hidden_multiplier: None,
            hidden_size: Some(self.hidden_size),
            activation: self.activation,
        })
    }
}

#[derive(Debug)]
pub struct Mlp {
    expand: Linear,
    contract: Linear,
    dropout: f64,
    activation: Activation,
}

impl ModuleT for Mlp {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self
            .contract
            .forward(&self.activation.apply(&self.expand.forward_compute(x)));
        if self.dropout > 0.0 {
            crate::layers::dropout::dropout(&out, self.dropout, train)
        } else {
            out
        }
    }
}
