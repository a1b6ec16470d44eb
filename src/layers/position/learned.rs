//! Learned absolute positions (GPT; Radford et al. 2018): one trainable vector per position
//! `0..block_size`, added to the token embeddings so that attention can tell "before" from "after".
//!
//! Shapes: `t -> [t, C]`. The model cannot look further back than `block_size` tokens, since there
//! is no vector for position `block_size`.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

use crate::layers::{Dims, PositionalEncoding, ResolvedPosition};

/// `position: {kind: learned}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Learned {}

crate::register_kind!(Position, "learned", Learned, resolves_to_itself);

impl ResolvedPosition for Learned {
    fn build(&self, path: &nn::Path, dims: &Dims) -> Box<dyn PositionalEncoding> {
        Box::new(LearnedPositions {
            weight: path.var(
                "weight",
                &[dims.block_size, dims.n_embd],
                dims.init.embedding(),
            ),
        })
    }
}

#[derive(Debug)]
pub struct LearnedPositions {
    /// `[block_size, C]`, initialised like the token embeddings (N(0, 1), as `nn.Embedding`, by default).
    pub weight: Tensor,
}

impl PositionalEncoding for LearnedPositions {
    fn embedding(&self, start: i64, t: i64) -> Option<Tensor> {
        // A slice of the table is the same as embedding `arange(start, start + t)`, without
        // building the ids.
        debug_assert!(
            start + t <= self.weight.size()[0],
            "positions {start}..{}, table has {:?}",
            start + t,
            self.weight.size()
        );
        Some(self.weight.narrow(0, start, t))
    }
}
