//! No feed-forward sub-layer: the block is attention only, as in the course's first two steps.

use serde::{Deserialize, Serialize};
use tch::nn;

use crate::layers::{Dims, Layer, ResolvedFeedForward};

/// `feed_forward: {kind: none}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFeedForward {}

crate::register_kind!(FeedForward, "none", NoFeedForward, resolves_to_itself);

impl ResolvedFeedForward for NoFeedForward {
    fn activation_width(&self, _dims: &Dims) -> i64 {
        0
    }

    fn build(&self, _path: &nn::Path, _dims: &Dims) -> Option<Layer> {
        None
    }
}
