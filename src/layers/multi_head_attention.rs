//! Multi-head attention (Vaswani et al. 2017, arXiv 1706.03762, §3.2.2): several independent heads
//! attend in parallel, each in its own `head_size`-wide subspace, and their outputs are concatenated.
//! With `projection: true` a Linear (then dropout) maps the concatenation back into the residual
//! stream, which is what lets a residual block mix what the heads found.
//! Shapes: `[B, T, C] -> [B, T, n_head·head_size]`, or `[B, T, C]` with the projection.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Tensor};

use super::attention_head::AttentionHead;
use super::linear::Linear;
use super::{require_size, Attention, AttentionCache, AttentionKind, Dims};
use crate::error::SpecError;

/// `attention: {kind: multi_head, n_head: 4, head_size: 8, projection: true}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MultiHead {
    /// Number of heads.
    pub n_head: i64,
    /// Width of each head; defaults to `n_embd / n_head`, which must then divide exactly.
    #[serde(default)]
    pub head_size: Option<i64>,
    /// Project the concatenated heads back to `n_embd` with a Linear (bias) + dropout.
    #[serde(default = "default_projection")]
    pub projection: bool,
}

fn default_projection() -> bool {
    true
}

crate::register_kind!(Attention, "multi_head", MultiHead);

#[typetag::serde(name = "multi_head")]
impl AttentionKind for MultiHead {
    fn resolve(&mut self, dims: &Dims) -> Result<(), SpecError> {
        require_size("n_head", self.n_head)?;
        let head_size = match self.head_size {
            Some(size) => size,
            None if dims.n_embd % self.n_head == 0 => dims.n_embd / self.n_head,
            None => {
                return Err(SpecError::new(
                    "n_head",
                    format!(
                        "n_embd ({}) is not divisible by n_head ({}); give head_size explicitly",
                        dims.n_embd, self.n_head
                    ),
                ))
            }
        };
        self.head_size = Some(head_size);
        require_size("head_size", head_size)
    }

    fn output_width(&self, dims: &Dims) -> i64 {
        if self.projection {
            dims.n_embd
        } else {
            self.n_head * self.head_size.unwrap_or(dims.n_embd / self.n_head.max(1))
        }
    }

    fn build(&self, path: &nn::Path, dims: &Dims) -> Box<dyn Attention> {
        let head_size = self.head_size.unwrap_or(dims.n_embd / self.n_head.max(1));
        let heads = (0..self.n_head)
            .map(|i| AttentionHead::new(&(path / "heads" / i), dims, head_size))
            .collect();
        let projection = self
            .projection
            .then(|| Linear::new(&(path / "proj"), self.n_head * head_size, dims.n_embd, true));
        Box::new(MultiHeadAttention {
            heads,
            projection,
            dropout: dims.dropout,
        })
    }
}

#[derive(Debug)]
pub struct MultiHeadAttention {
    heads: Vec<AttentionHead>,
    projection: Option<Linear>,
    dropout: f64,
}

impl MultiHeadAttention {
    /// Concatenates the heads' outputs and projects them back, if the layer has a projection.
    fn combine(&self, outputs: Vec<Tensor>, train: bool) -> Tensor {
        let concatenated = Tensor::cat(&outputs, -1);
        match &self.projection {
            Some(projection) if self.dropout > 0.0 => projection
                .forward(&concatenated)
                .dropout(self.dropout, train),
            Some(projection) => projection.forward(&concatenated),
            None => concatenated,
        }
    }
}

impl Attention for MultiHeadAttention {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let outputs = self.heads.iter().map(|h| h.forward_t(x, train)).collect();
        self.combine(outputs, train)
    }

    fn new_cache(&self, batch: i64, capacity: i64, device: Device) -> AttentionCache {
        self.heads
            .iter()
            .flat_map(|head| head.new_cache(batch, capacity, device))
            .collect()
    }

    fn forward_cached(&self, x: &Tensor, cache: &mut AttentionCache) -> Tensor {
        let outputs = self
            .heads
            .iter()
            .zip(cache.iter_mut())
            .map(|(head, cache)| head.forward_cached(x, cache))
            .collect();
        self.combine(outputs, false)
    }
}
