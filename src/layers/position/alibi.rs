//! ALiBi, attention with linear biases (Press et al. 2021, "Train Short, Test Long", arXiv
//! 2108.12409).
//!
//! No position vectors at all: each head penalises its attention scores in proportion to how far
//! back a key is, score(i, j) − m·(i − j). Head h of n gets the slope m_h = 2^(−8(h+1)/n), a
//! geometric sequence from gentle (looks far back) to steep (looks at the last few tokens). The
//! penalty depends only on distance, so the model sees relative positions and, the paper shows,
//! extrapolates to longer contexts than it was trained on. Nothing is learned.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::layers::{Dims, PositionalEncoding, ResolvedPosition};

/// `position: {kind: alibi}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alibi {}

crate::register_kind!(Position, "alibi", Alibi, resolves_to_itself);

impl ResolvedPosition for Alibi {
    fn build(&self, path: &nn::Path, dims: &Dims) -> Box<dyn PositionalEncoding> {
        let device = path.device();
        let position = Tensor::arange(dims.block_size, (Kind::Float, device));
        // distance[i][j] = i − j; negative entries lie in the future, which the mask hides anyway.
        let distance = position.unsqueeze(1) - position.unsqueeze(0);
        Box::new(AlibiBiases { distance })
    }
}

/// The paper's slopes for `n_head` heads. For a power of two, 2^(−8/n), 2^(−16/n), …, 2^(−8);
/// otherwise the slopes of the nearest lower power of two p, then every other slope of 2p, as in
/// the paper's reference code.
pub fn slopes(n_head: i64) -> Vec<f64> {
    let geometric = |n: i64| -> Vec<f64> {
        (1..=n)
            .map(|h| 2f64.powf(-8.0 * h as f64 / n as f64))
            .collect()
    };
    let power = 1i64 << (63 - n_head.max(1).leading_zeros());
    if power == n_head {
        return geometric(n_head);
    }
    let mut slopes = geometric(power);
    slopes.extend(
        geometric(2 * power)
            .into_iter()
            .step_by(2)
            .take((n_head - power) as usize),
    );
    slopes
}

#[derive(Debug)]
pub struct AlibiBiases {
    /// `[block_size, block_size]`: how far back key j is from query i.
    distance: Tensor,
}

impl AlibiBiases {
    fn slopes(n_head: i64, device: Device) -> Tensor {
        Tensor::from_slice(&slopes(n_head))
            .to_kind(Kind::Float)
            .to_device(device)
    }
}

impl PositionalEncoding for AlibiBiases {
    fn score_bias(&self, n_head: i64, start: i64, n: i64, len: i64) -> Option<Tensor> {
        let distance = self.distance.narrow(0, start, n).narrow(1, 0, len);
        let slopes = Self::slopes(n_head, distance.device()).view([n_head, 1, 1]);
        Some(-slopes * distance.unsqueeze(0))
    }
}
