//! The simplest per-token computation: one Linear(C, C) followed by a ReLU (the course's step 3).
//! Attention gathered information from other tokens; this lets each token process it on its own.
//! Shapes: `[B, T, C] -> [B, T, C]`.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use crate::layers::init::Role;
use crate::layers::linear::Linear;
use crate::layers::{Dims, Layer, ResolvedFeedForward};

/// `feed_forward: {kind: linear}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinearReluKind {}

crate::register_kind!(FeedForward, "linear", LinearReluKind, resolves_to_itself);

impl ResolvedFeedForward for LinearReluKind {
    fn activation_width(&self, dims: &Dims) -> i64 {
        dims.n_embd
    }

    fn build(&self, path: &nn::Path, dims: &Dims) -> Option<Layer> {
        let linear = Linear::new(
            &(path / "linear"),
            (dims.n_embd, dims.n_embd),
            true,
            dims,
            Role::ResidualOutput,
        );
        Some(Box::new(LinearRelu { linear }))
    }
}

#[derive(Debug)]
pub struct LinearRelu {
    linear: Linear,
}

impl ModuleT for LinearRelu {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        self.linear.forward(x).relu()
    }
}
