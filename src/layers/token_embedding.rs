//! Token embedding: a lookup table turning each character id into a learned vector of width C.
//!
//! Initialised N(0, 1) like PyTorch's `nn.Embedding` (N(0, 0.02) under GPT-2's initialisation). Shapes: `[B, T]` (i64 ids) `-> [B, T, C]`.

use tch::nn::{self, Module};
use tch::Tensor;

use super::Dims;

#[derive(Debug)]
pub struct TokenEmbedding {
    pub weight: Tensor,
}

impl TokenEmbedding {
    /// Creates `path.weight` of shape `[vocab_size, n_embd]`.
    pub fn new(path: &nn::Path, dims: &Dims) -> Self {
        TokenEmbedding {
            weight: path.var(
                "weight",
                &[dims.vocab_size, dims.n_embd],
                dims.init.embedding(),
            ),
        }
    }
}

impl Module for TokenEmbedding {
    fn forward(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.weight, ids, -1, false, false)
    }
}
