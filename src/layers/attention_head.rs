//! One causal self-attention head (Vaswani et al. 2017, "Attention Is All You Need", arXiv 1706.03762).
//!
//! Every token emits a query ("what am I looking for"), a key ("what do I contain") and a value
//! ("what I will tell you"). A token's output is the average of the values of the tokens at or
//! before it, weighted by softmax(q·k / √head_size); the causal mask hides the future, so the model
//! can be trained to predict every next character of a sequence at once.
//!
//! [`attend`] is that arithmetic for one head, written out step by step; the multi-head layer runs
//! it once per head (or, fused, all heads in one libtorch call). The `head` kind of the course's
//! first step is the multi-head layer with a single head and no output projection, so both share
//! one implementation, one set of checkpoint names (`attn.qkv.weight`) and one key/value cache.
//! Shapes: `[B, T, C] -> [B, T, head_size]`.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};

use super::multi_head_attention::{HeadLayout, MultiHeadAttention};
use super::qk_norm::QkNorm;
use super::{require_size, Attention, AttentionKind, Dims};
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
        self.head_size(dims)
    }

    fn head_size(&self, dims: &Dims) -> i64 {
        self.head_size.unwrap_or(dims.n_embd)
    }

    fn query_width(&self, dims: &Dims) -> i64 {
        self.head_size(dims)
    }

    fn build(&self, path: &nn::Path, dims: &Dims) -> Box<dyn Attention> {
        let layout = HeadLayout {
            n_head: 1,
            n_kv_head: 1,
            head_size: self.head_size(dims),
            projection: false,
            qkv_bias: false,
            projection_bias: false,
            qk_norm: QkNorm::None,
            fused: false,
        };
        Box::new(MultiHeadAttention::new(path, dims, &layout))
    }
}

/// What a query may look at: the `[n, len]` positions it may not see (true = hidden), and an
/// optional additive bias on the scores (ALiBi), `[n, len]` for this head.
pub struct Visibility<'a> {
    pub future: &'a Tensor,
    pub bias: Option<Tensor>,
}

/// One head's attention: queries `q [B, n, hs]` attend over keys `k` and values `v` `[B, len, hs]`;
/// row i of the result is the average of the values its query may see, weighted by the softmax of
/// the scaled query·key scores. `scale` is 1/√hs unless the queries and keys were normalised.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    visibility: &Visibility,
    scale: f64,
    dropout: f64,
    train: bool,
) -> Tensor {
    // Affinities between every pair of tokens, scaled so the softmax does not saturate at init.
    let mut scores = q.matmul(&k.transpose(-2, -1)) * scale;
    if let Some(bias) = &visibility.bias {
        scores += bias;
    }
    // A token may not look at the future: those scores become -inf, so their weights become 0.
    let mut weights = scores
        .masked_fill(visibility.future, f64::NEG_INFINITY)
        .softmax(-1, Kind::Float);
    if dropout > 0.0 {
        weights = weights.dropout(dropout, train);
    }
    // The weights are fp32 (the softmax accumulates in fp32); the values may be bf16.
    weights.to_kind(v.kind()).matmul(v)
}
