//! Token embedding: a lookup table turning each character id into a learned vector of width C.
//!
//! Initialised N(0, 1) like PyTorch's `nn.Embedding`. Shapes: `[B, T]` (i64 ids) `-> [B, T, C]`.

use tch::nn::{self, Init, Module};
use tch::Tensor;

#[derive(Debug)]
pub struct TokenEmbedding {
    pub weight: Tensor,
}

impl TokenEmbedding {
    /// Creates `path.weight` of shape `[vocab_size, n_embd]`.
    pub fn new(path: &nn::Path, vocab_size: i64, n_embd: i64) -> Self {
        let normal = Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        TokenEmbedding {
            weight: path.var("weight", &[vocab_size, n_embd], normal),
        }
    }
}

impl Module for TokenEmbedding {
    fn forward(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.weight, ids, -1, false, false)
    }
}
