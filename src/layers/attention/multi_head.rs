//! Multi-head attention (Vaswani et al. 2017, arXiv 1706.03762, §3.2.2): several independent heads
//! attend in parallel, each in its own `head_size`-wide subspace, and their outputs are concatenated.
//! With `projection: true` a Linear (then dropout) maps the concatenation back into the residual
//! stream, which is what lets a residual block mix what the heads found.
//!
//! **Grouped key/value heads** (`n_kv_head`; Ainslie et al. 2023, "GQA", arXiv 2305.13245; with
//! one group, multi-query attention, Shazeer 2019, arXiv 1911.02150): several query heads share one
//! key/value head. Fewer keys and values to compute and, above all, to cache when generating.
//!
//! All heads' query, key and value weights are rows of one `qkv` matrix, `[(H + 2·Hkv)·hs, C]`:
//! the queries of head 0, 1, …, then the keys of each key/value head, then the values. One matrix
//! product computes all of them; each head then attends on its own ([`attend`]), or, with
//! `fused: true`, libtorch's fused kernel attends for all heads at once ([`fused`]).
//!
//! Shapes: `[B, T, C] -> [B, T, n_head·head_size]`, or `[B, T, C]` with the projection.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::error::SpecError;
use crate::layers::attention::fused;
use crate::layers::attention::kv_cache::KeyValueCache;
use crate::layers::attention::qk_norm::{QkNorm, QkNormLayer};
use crate::layers::attention::scores::{attend, Dropout, Visibility};
use crate::layers::dropout::dropout;
use crate::layers::init::Role;
use crate::layers::linear::Linear;
use crate::layers::{
    require_size, Attention, AttentionCache, AttentionKind, Dims, PositionalEncoding, ResolveKind,
    ResolvedAttention, WrittenAs,
};
use crate::ops;

/// `attention: {kind: multi_head, n_head: 4, head_size: 8, projection: true}`, and the optional
/// `n_kv_head`, `qkv_bias`, `projection_bias`, `qk_norm`, `fused`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MultiHead {
    /// Number of query heads.
    pub n_head: i64,
    /// Number of key/value heads, each shared by `n_head / n_kv_head` query heads; defaults to
    /// `n_head` (no sharing), and must divide it.
    #[serde(default)]
    pub n_kv_head: Option<i64>,
    /// Width of each head; defaults to `n_embd / n_head`, which must then divide exactly.
    #[serde(default)]
    pub head_size: Option<i64>,
    /// Project the concatenated heads back to `n_embd` with a Linear + dropout.
    #[serde(default = "yes")]
    pub projection: bool,
    /// Biases on the query, key and value projections (none in the course).
    #[serde(default)]
    pub qkv_bias: bool,
    /// A bias on the output projection (the course has one).
    #[serde(default = "yes")]
    pub projection_bias: bool,
    /// Normalise queries and keys: `none`, `l2` (Henry et al. 2020) or `rmsnorm`.
    #[serde(default)]
    pub qk_norm: QkNorm,
    /// Compute all heads at once (libtorch's fused attention, or gptbuild's CPU kernel when the
    /// weights are dropped out): the same parameters and results as one head at a time, in far
    /// fewer operations, so it is the default. `false` runs the heads one by one, as the course
    /// writes them: the readable reference the tests hold the fused formulation to.
    #[serde(default = "yes")]
    pub fused: bool,
}

fn yes() -> bool {
    true
}

crate::register_kind!(Attention, "multi_head", MultiHead);

impl ResolveKind for MultiHead {
    type Resolved = HeadLayout;

    fn resolve(&self, dims: &Dims) -> Result<HeadLayout, SpecError> {
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
        require_size("head_size", head_size)?;
        let n_kv_head = self.n_kv_head.unwrap_or(self.n_head);
        require_size("n_kv_head", n_kv_head)?;
        if self.n_head % n_kv_head != 0 {
            return Err(SpecError::new(
                "n_kv_head",
                format!(
                    "must divide n_head ({}) so that each key/value head serves the same number \
                     of query heads, got {n_kv_head}",
                    self.n_head
                ),
            ));
        }
        Ok(HeadLayout {
            n_head: self.n_head,
            n_kv_head,
            head_size,
            projection: self.projection,
            // The default is `true`; without a projection there is nothing for it to apply to.
            projection_bias: self.projection && self.projection_bias,
            qkv_bias: self.qkv_bias,
            qk_norm: self.qk_norm,
            fused: self.fused,
        })
    }
}

/// Everything that shapes an attention layer: the `multi_head` kind resolved (the `head` kind
/// builds one too).
#[derive(Debug, Clone)]
pub struct HeadLayout {
    pub n_head: i64,
    pub n_kv_head: i64,
    pub head_size: i64,
    pub projection: bool,
    pub qkv_bias: bool,
    pub projection_bias: bool,
    pub qk_norm: QkNorm,
    pub fused: bool,
}

impl ResolvedAttention for HeadLayout {
    fn output_width(&self, dims: &Dims) -> i64 {
        if self.projection {
            dims.n_embd
        } else {
            self.query_width()
        }
    }

    fn head_size(&self) -> i64 {
        self.head_size
    }

    fn query_width(&self) -> i64 {
        self.n_head * self.head_size
    }

    fn build(&self, path: &nn::Path, dims: &Dims) -> Box<dyn Attention> {
        Box::new(MultiHeadAttention::new(path, dims, self))
    }
}

impl WrittenAs<dyn AttentionKind> for HeadLayout {
    fn written(&self) -> Box<dyn AttentionKind> {
        Box::new(MultiHead {
            n_head: self.n_head,
            n_kv_head: Some(self.n_kv_head),
            head_size: Some(self.head_size),
            projection: self.projection,
            qkv_bias: self.qkv_bias,
            projection_bias: self.projection_bias,
            qk_norm: self.qk_norm,
            fused: self.fused,
        })
    }
}

#[derive(Debug)]
pub struct MultiHeadAttention {
    /// `[(H + 2·Hkv)·hs, C]`: queries, keys, values.
    qkv: Linear,
    qk_norm: Option<QkNormLayer>,
    projection: Option<Linear>,
    n_head: i64,
    n_kv_head: i64,
    head_size: i64,
    /// `[block_size, block_size]`, true above the diagonal: the positions a token may not see.
    future: Tensor,
    attention_dropout: f64,
    residual_dropout: f64,
    fused: bool,
    /// The dtype attention computes in.
    compute: Kind,
}

impl MultiHeadAttention {
    /// Creates `qkv` (and `proj`, `qk_gain` or `q_norm`/`k_norm` as the layout asks) under `path`.
    pub fn new(path: &nn::Path, dims: &Dims, layout: &HeadLayout) -> Self {
        let HeadLayout {
            n_head,
            n_kv_head,
            head_size,
            ..
        } = *layout;
        let qkv_width = (n_head + 2 * n_kv_head) * head_size;
        MultiHeadAttention {
            qkv: Linear::new(
                &(path / "qkv"),
                (dims.n_embd, qkv_width),
                layout.qkv_bias,
                dims,
                Role::Inner,
            ),
            qk_norm: layout
                .qk_norm
                .build(path, n_head, head_size, dims.block_size),
            projection: layout.projection.then(|| {
                Linear::new(
                    &(path / "proj"),
                    (n_head * head_size, dims.n_embd),
                    layout.projection_bias,
                    dims,
                    Role::ResidualOutput,
                )
            }),
            n_head,
            n_kv_head,
            head_size,
            future: Tensor::ones(
                [dims.block_size, dims.block_size],
                (Kind::Bool, path.device()),
            )
            .triu(1),
            attention_dropout: dims.attention_dropout,
            residual_dropout: dims.residual_dropout,
            fused: layout.fused,
            compute: dims.compute,
        }
    }

    /// Queries `[B, H, n, hs]`, keys and values `[B, Hkv, n, hs]` of `n` tokens `[B, n, C]` at
    /// positions `start..start + n`, normalised and rotated as the layer and the positions ask.
    fn queries_keys_values(
        &self,
        x: &Tensor,
        positions: &dyn PositionalEncoding,
        start: i64,
    ) -> (Tensor, Tensor, Tensor) {
        let (b, n) = (x.size()[0], x.size()[1]);
        let (h, hkv, hs) = (self.n_head, self.n_kv_head, self.head_size);
        // One split, not three `narrow`s: its backward pass writes the three gradients side by
        // side into one tensor, where each `narrow` would zero a whole `[B, n, (H + 2·Hkv)·hs]`
        // gradient for its slice and autograd would then add the three.
        let parts = self
            .qkv
            .forward_compute(x)
            .split_with_sizes([h * hs, hkv * hs, hkv * hs], -1);
        let by_head = |part: &Tensor, heads: i64| part.view([b, n, heads, hs]).transpose(1, 2);
        let (q, k, v) = (
            by_head(&parts[0], h),
            by_head(&parts[1], hkv),
            by_head(&parts[2], hkv),
        );
        let (q, k) = match &self.qk_norm {
            Some(norm) => norm.apply(&q, &k),
            None => (q, k),
        };
        (positions.rotate(&q, start), positions.rotate(&k, start), v)
    }

    /// Queries of positions `start..start + n` attend over keys and values of positions `0..len`;
    /// `[B, H, n, hs]`.
    fn attend_all(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        positions: &dyn PositionalEncoding,
        start: i64,
        train: bool,
    ) -> Tensor {
        let (n, len) = (q.size()[2], k.size()[2]);
        // QK-norm, rotations and the cache may have handed back fp32: attend in the compute dtype.
        let (q, k, v) = (
            q.to_kind(self.compute),
            k.to_kind(self.compute),
            v.to_kind(self.compute),
        );
        let dropout = if train { self.attention_dropout } else { 0.0 };
        let scale = self.scale();
        let bias = positions.score_bias(self.n_head, start, n, len);
        let future = self.future.narrow(0, start, n).narrow(1, 0, len);
        if self.fused {
            let group = self.n_head / self.n_kv_head;
            let (k, v) = (fused::repeat_kv(&k, group), fused::repeat_kv(&v, group));
            return ops::causal_attention(&q, &k, &v, start, &future, bias, scale, dropout);
        }
        // One head at a time, each with its own slice of queries and its group's keys and values.
        let group = self.n_head / self.n_kv_head;
        // Each head drops by its slice of the mask all heads at once would draw, where there is
        // one, so that both formulations drop the same weights; else each head draws its own.
        let layer_mask =
            ops::attention_dropout_mask([q.size()[0], self.n_head, n, len], dropout, q.device());
        let heads: Vec<Tensor> = (0..self.n_head)
            .map(|head| {
                let visibility = Visibility {
                    future: &future,
                    bias: bias.as_ref().map(|bias| bias.get(head)),
                };
                let kv_head = head / group;
                let dropout = match &layer_mask {
                    Some(keep) => Dropout::Mask {
                        keep: keep.select(1, head),
                        p: dropout,
                    },
                    None if dropout > 0.0 => Dropout::Drawn { p: dropout },
                    None => Dropout::None,
                };
                attend(
                    &q.select(1, head),
                    &k.select(1, kv_head),
                    &v.select(1, kv_head),
                    &visibility,
                    scale,
                    &dropout,
                )
            })
            .collect();
        Tensor::stack(&heads, 1)
    }

    /// The factor on q·k: 1/√head_size unless QK-norm says otherwise.
    fn scale(&self) -> f64 {
        match &self.qk_norm {
            Some(norm) => norm.scale(self.head_size),
            None => (self.head_size as f64).powf(-0.5),
        }
    }

    /// `[B, H, n, hs]` → heads side by side `[B, n, H·hs]`, then the output projection (and its
    /// dropout), if the layer has one.
    fn combine(&self, heads: &Tensor, train: bool) -> Tensor {
        let concatenated = fused::merge_heads(heads);
        match &self.projection {
            Some(projection) if self.residual_dropout > 0.0 => dropout(
                &projection.forward(&concatenated),
                self.residual_dropout,
                train,
            ),
            Some(projection) => projection.forward(&concatenated),
            None => concatenated.to_kind(Kind::Float),
        }
    }
}

impl Attention for MultiHeadAttention {
    fn forward_t(&self, x: &Tensor, positions: &dyn PositionalEncoding, train: bool) -> Tensor {
        let (q, k, v) = self.queries_keys_values(x, positions, 0);
        let heads = self.attend_all(&q, &k, &v, positions, 0, train);
        self.combine(&heads, train)
    }

    fn new_cache(&self, batch: i64, capacity: i64, device: Device) -> AttentionCache {
        // Only the key/value heads are cached: grouping shrinks the cache by n_head / n_kv_head.
        KeyValueCache::new(&[batch, self.n_kv_head], capacity, self.head_size, device)
    }

    fn forward_cached(
        &self,
        x: &Tensor,
        positions: &dyn PositionalEncoding,
        cache: &mut AttentionCache,
    ) -> Tensor {
        let start = cache.len();
        let (q, k, v) = self.queries_keys_values(x, positions, start);
        let (k, v) = cache.append(&k, &v);
        let heads = self.attend_all(&q, &k, &v, positions, start, false);
        self.combine(&heads, false)
    }
}
