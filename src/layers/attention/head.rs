//! One causal self-attention head (Vaswani et al. 2017, "Attention Is All You Need", arXiv 1706.03762).
//!
//! Every token emits a query ("what am I looking for"), a key ("what do I contain") and a value
//! ("what I will tell you"). A token's output is the average of the values of the tokens at or
//! before it, weighted by softmax(q·k / √head_size); the causal mask hides the future, so the model
//! can be trained to predict every next character of a sequence at once.
//!
//! [`attend`](super::scores::attend) is that arithmetic for one head, written out step by step; the
//! multi-head layer runs it once per head (or, fused, all heads in one libtorch call). The `head` kind of the course's
//! first step is the multi-head layer with a single head and no output projection, so both share
//! one implementation, one set of checkpoint names (`attn.qkv.weight`) and one key/value cache.
//! Shapes: `[B, T, C] -> [B, T, head_size]`.

use serde::{Deserialize, Serialize};
use tch::nn;

use crate::error::SpecError;
use crate::layers::attention::multi_head::{HeadLayout, MultiHeadAttention};
use crate::layers::attention::qk_norm::QkNorm;
use crate::layers::{
    require_size, Attention, AttentionKind, Dims, ResolveKind, ResolvedAttention, WrittenAs,
};

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

impl ResolveKind for SingleHead {
    type Resolved = ResolvedSingleHead;

    fn resolve(&self, dims: &Dims) -> Result<ResolvedSingleHead, SpecError> {
        let head_size = self.head_size.unwrap_or(dims.n_embd);
        require_size("head_size", head_size)?;
        Ok(ResolvedSingleHead { head_size })
    }
}

/// One head with its width worked out.
#[derive(Debug, Clone)]
pub struct ResolvedSingleHead {
    pub head_size: i64,
}

impl ResolvedAttention for ResolvedSingleHead {
    fn output_width(&self, _dims: &Dims) -> i64 {
        self.head_size
    }

    fn head_size(&self) -> i64 {
        self.head_size
    }

    fn query_width(&self) -> i64 {
        self.head_size
    }

    fn build(&self, path: &nn::Path, dims: &Dims) -> Box<dyn Attention> {
        let layout = HeadLayout {
            n_head: 1,
            n_kv_head: 1,
            head_size: self.head_size,
            projection: false,
            qkv_bias: false,
            projection_bias: false,
            qk_norm: QkNorm::None,
            fused: false,
        };
        Box::new(MultiHeadAttention::new(path, dims, &layout))
    }
}

impl WrittenAs<dyn AttentionKind> for ResolvedSingleHead {
    fn written(&self) -> Box<dyn AttentionKind> {
        Box::new(SingleHead {
            head_size: Some(self.head_size),
        })
    }
}
