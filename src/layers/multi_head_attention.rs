//! Multi-head attention (Vaswani et al. 2017, arXiv 1706.03762, §3.2.2): several independent heads
//! attend in parallel, each in its own `head_size`-wide subspace, and their outputs are concatenated.
//! With `projection: true` a Linear (then dropout) maps the concatenation back into the residual
//! stream, which is what lets a residual block mix what the heads found.
//! Shapes: `[B, T, C] -> [B, T, n_head·head_size]`, or `[B, T, C]` with the projection.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Tensor};

use super::attention_head::AttentionHead;
use super::fused_attention;
use super::kv_cache::KeyValueCache;
use super::linear::Linear;
use super::{require_size, Attention, AttentionCache, AttentionKind, Dims};
use crate::error::SpecError;

/// `attention: {kind: multi_head, n_head: 4, head_size: 8, projection: true, fused: false}`.
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
    /// Compute all heads at once with libtorch's fused attention (see `fused_attention`): the
    /// same parameters and results as one head at a time, in far fewer operations.
    #[serde(default)]
    pub fused: bool,
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
            fused: self.fused,
        })
    }
}

#[derive(Debug)]
pub struct MultiHeadAttention {
    heads: Vec<AttentionHead>,
    projection: Option<Linear>,
    dropout: f64,
    fused: bool,
}

impl MultiHeadAttention {
    /// Concatenates the heads' outputs and projects them back, if the layer has a projection.
    fn combine(&self, outputs: Vec<Tensor>, train: bool) -> Tensor {
        self.project(Tensor::cat(&outputs, -1), train)
    }

    /// The output projection (and its dropout) of the concatenated heads, if there is one.
    fn project(&self, concatenated: Tensor, train: bool) -> Tensor {
        match &self.projection {
            Some(projection) if self.dropout > 0.0 => projection
                .forward(&concatenated)
                .dropout(self.dropout, train),
            Some(projection) => projection.forward(&concatenated),
            None => concatenated,
        }
    }
}

impl MultiHeadAttention {
    fn n_head(&self) -> i64 {
        self.heads.len() as i64
    }

    fn head_size(&self) -> i64 {
        self.heads.first().map_or(0, AttentionHead::head_size)
    }

    /// Queries, keys and values of all heads, `[B, H, T, hs]` each, from one matrix product.
    fn fused_projections(&self, x: &Tensor) -> (Tensor, Tensor, Tensor) {
        let qkv = x.linear::<Tensor>(&fused_attention::stacked_weights(&self.heads), None);
        fused_attention::split_heads(&qkv, self.n_head(), self.head_size())
    }

    fn future(&self) -> &Tensor {
        self.heads[0].future_mask()
    }
}

impl Attention for MultiHeadAttention {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if self.fused {
            let (q, k, v) = self.fused_projections(x);
            let dropout = if train { self.dropout } else { 0.0 };
            let y = fused_attention::attend(&q, &k, &v, 0, self.future(), dropout);
            return self.project(fused_attention::merge_heads(&y), train);
        }
        let outputs = self.heads.iter().map(|h| h.forward_t(x, train)).collect();
        self.combine(outputs, train)
    }

    fn new_cache(&self, batch: i64, capacity: i64, device: Device) -> AttentionCache {
        if self.fused {
            // One cache for all heads: [B, H, capacity, hs].
            return vec![KeyValueCache::new(
                &[batch, self.n_head()],
                capacity,
                self.head_size(),
                device,
            )];
        }
        self.heads
            .iter()
            .flat_map(|head| head.new_cache(batch, capacity, device))
            .collect()
    }

    fn forward_cached(&self, x: &Tensor, cache: &mut AttentionCache) -> Tensor {
        if self.fused {
            let cache = &mut cache[0];
            let start = cache.len();
            let (q, k, v) = self.fused_projections(x);
            let (k, v) = cache.append(&k, &v);
            let y = fused_attention::attend(&q, &k, &v, start, self.future(), 0.0);
            return self.project(fused_attention::merge_heads(&y), false);
        }
        let outputs = self
            .heads
            .iter()
            .zip(cache.iter_mut())
            .map(|(head, cache)| head.forward_cached(x, cache))
            .collect();
        self.combine(outputs, false)
    }
}
