//! One causal self-attention head (Vaswani et al. 2017, "Attention Is All You Need", arXiv 1706.03762).
//!
//! Every token emits a query ("what am I looking for"), a key ("what do I contain") and a value
//! ("what I will tell you"). A token's output is the average of the values of the tokens at or
//! before it, weighted by softmax(q·k / √head_size); the causal mask hides the future, so the model
//! can be trained to predict every next character of a sequence at once.
//!
//! When generating, the keys and values of the tokens already seen are kept in a
//! [`KeyValueCache`]: a new token computes only its own query, key and value, and its query meets
//! every cached key. The arithmetic is the same as row `t` of the full computation.
//! Shapes: `[B, T, C] -> [B, T, head_size]`.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::kv_cache::KeyValueCache;
use super::linear::Linear;
use super::{require_size, Attention, AttentionCache, AttentionKind, Dims};
use crate::error::SpecError;

/// `attention: {kind: head, head_size: 32}`: a single head, as in the course's first step.
/// Without an output projection its width must equal `n_embd`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SingleHead {
    /// Width of queries, keys and values; defaults to `n_embd`.
    #[serde(default)]
    pub head_size: Option<i64>,
}

crate::register_kind!(Attention, "head", SingleHead);

#[typetag::serde(name = "head")]
impl AttentionKind for SingleHead {
    fn resolve(&mut self, dims: &Dims) -> Result<(), SpecError> {
        let head_size = *self.head_size.get_or_insert(dims.n_embd);
        require_size("head_size", head_size)
    }

    fn output_width(&self, dims: &Dims) -> i64 {
        self.head_size.unwrap_or(dims.n_embd)
    }

    fn build(&self, path: &nn::Path, dims: &Dims) -> Box<dyn Attention> {
        Box::new(AttentionHead::new(path, dims, self.output_width(dims)))
    }
}

#[derive(Debug)]
pub struct AttentionHead {
    key: Linear,
    query: Linear,
    value: Linear,
    /// `[block_size, block_size]`, true above the diagonal: the positions a token may not see.
    future: Tensor,
    scale: f64,
    dropout: f64,
}

impl AttentionHead {
    /// Creates `key`, `query` and `value` projections (no bias, as in the course) under `path`.
    pub fn new(path: &nn::Path, dims: &Dims, head_size: i64) -> Self {
        let future = Tensor::ones(
            [dims.block_size, dims.block_size],
            (Kind::Bool, path.device()),
        )
        .triu(1);
        AttentionHead {
            key: Linear::new(&(path / "key"), dims.n_embd, head_size, false),
            query: Linear::new(&(path / "query"), dims.n_embd, head_size, false),
            value: Linear::new(&(path / "value"), dims.n_embd, head_size, false),
            future,
            scale: (head_size as f64).powf(-0.5),
            dropout: dims.dropout,
        }
    }
}

impl AttentionHead {
    pub fn head_size(&self) -> i64 {
        self.key.weight.size()[0]
    }

    /// The query, key and value weights, each `[head_size, C]`.
    pub fn weights(&self) -> [&Tensor; 3] {
        [&self.query.weight, &self.key.weight, &self.value.weight]
    }

    /// `[block_size, block_size]`, true above the diagonal: the positions a token may not see.
    pub fn future_mask(&self) -> &Tensor {
        &self.future
    }

    /// Over a whole sequence `[B, T, C]`: every token attends to itself and the tokens before it.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let k = self.key.forward(x);
        let q = self.query.forward(x);
        let v = self.value.forward(x);
        self.attend(&q, &k, &v, 0, train)
    }

    /// Over `n` new tokens `[B, n, C]` that follow the `cache.len()` tokens in `cache` (no dropout).
    pub fn forward_cached(&self, x: &Tensor, cache: &mut KeyValueCache) -> Tensor {
        let start = cache.len();
        let (k, v) = cache.append(&self.key.forward(x), &self.value.forward(x));
        let q = self.query.forward(x);
        self.attend(&q, &k, &v, start, false)
    }

    /// Queries `q` of the tokens at positions `start..start + n` attend over the keys `k` and
    /// values `v` of positions `0..start + n`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, start: i64, train: bool) -> Tensor {
        let n = q.size()[1];
        let len = k.size()[1];
        // Affinities between every pair of tokens, scaled so the softmax does not saturate at init.
        let scores = q.matmul(&k.transpose(-2, -1)) * self.scale;
        // Row i (position start + i) may not see columns after start + i.
        let future = self.future.narrow(0, start, n).narrow(1, 0, len);
        let mut weights = scores
            .masked_fill(&future, f64::NEG_INFINITY)
            .softmax(-1, Kind::Float);
        if self.dropout > 0.0 {
            weights = weights.dropout(self.dropout, train);
        }
        weights.matmul(v)
    }
}

/// The course's first step: a single head is the whole attention layer.
impl Attention for AttentionHead {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        AttentionHead::forward_t(self, x, train)
    }

    fn new_cache(&self, batch: i64, capacity: i64, device: Device) -> AttentionCache {
        vec![KeyValueCache::new(
            &[batch],
            capacity,
            self.head_size(),
            device,
        )]
    }

    fn forward_cached(&self, x: &Tensor, cache: &mut AttentionCache) -> Tensor {
        AttentionHead::forward_cached(self, x, &mut cache[0])
    }
}
