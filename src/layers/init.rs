//! Initialisation: the values the weights start from, which decide whether a deep stack trains.
//!
//! - `pytorch` (the default, the course): what PyTorch's layers do on their own. Linear weights and
//!   biases are uniform in ±1/√fan_in, embeddings N(0, 1).
//! - `gpt2` (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners", §2.3; as in
//!   nanoGPT): every weight N(0, 0.02), biases zero, and the layers that *write into the residual
//!   stream* (the attention output projection, the feed-forward's last layer) scaled down by
//!   1/√(2·n_layer). Each block adds two such outputs to the stream; the scaling keeps the variance
//!   of the stream from growing with depth.
//!
//! Norm gains start at 1 and their biases at 0 under both schemes.

use serde::{Deserialize, Serialize};
use tch::nn::Init;

/// `model.init`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum InitScheme {
    #[default]
    Pytorch,
    Gpt2,
}

/// What a linear layer's output feeds, which the `gpt2` scheme initialises differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Its output stays inside a sub-layer (queries, keys, the feed-forward's expansion).
    Inner,
    /// Its output is added to the residual stream (attention projection, feed-forward output).
    ResidualOutput,
}

/// GPT-2's standard deviation for every weight.
pub const GPT2_STD: f64 = 0.02;

impl InitScheme {
    /// The initialisers of a linear layer's weight and bias.
    pub fn linear(self, fan_in: i64, role: Role, n_layer: i64) -> (Init, Init) {
        match self {
            InitScheme::Pytorch => {
                let bound = 1.0 / (fan_in as f64).sqrt();
                let uniform = Init::Uniform {
                    lo: -bound,
                    up: bound,
                };
                (uniform, uniform)
            }
            InitScheme::Gpt2 => {
                let stdev = match role {
                    Role::Inner => GPT2_STD,
                    Role::ResidualOutput => GPT2_STD / (2.0 * n_layer as f64).sqrt(),
                };
                (Init::Randn { mean: 0.0, stdev }, Init::Const(0.0))
            }
        }
    }

    /// The initialiser of an embedding table (tokens, learned positions).
    pub fn embedding(self) -> Init {
        let stdev = match self {
            InitScheme::Pytorch => 1.0,
            InitScheme::Gpt2 => GPT2_STD,
        };
        Init::Randn { mean: 0.0, stdev }
    }
}
