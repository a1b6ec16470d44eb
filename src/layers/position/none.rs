//! No positional information at all. A causal decoder can still infer where it is, roughly, from
//! how many tokens its attention can see (Haviv et al. 2022, "Transformer Language Models without
//! Positional Encodings Still Learn Positional Information", arXiv 2203.16634); a baseline for
//! the schemes that add positions.

use serde::{Deserialize, Serialize};
use tch::nn;

use crate::layers::{Dims, PositionalEncoding, ResolvedPosition};

/// `position: {kind: none}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoPosition {}

crate::register_kind!(Position, "none", NoPosition, resolves_to_itself);

impl ResolvedPosition for NoPosition {
    fn build(&self, _path: &nn::Path, _dims: &Dims) -> Box<dyn PositionalEncoding> {
        Box::new(NoPositions)
    }
}

/// Adds nothing, rotates nothing, biases nothing: every method keeps its neutral default.
#[derive(Debug)]
pub struct NoPositions;

impl PositionalEncoding for NoPositions {}
