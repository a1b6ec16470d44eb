//! A decoder block: communication (attention), then computation (feed-forward), each optionally
//! wrapped in a residual connection (He et al. 2015, arXiv 1512.03385) and a normalisation.
//!
//! With residuals each sub-layer only *adds* to the stream, `x = x + f(x)`, so gradients flow straight
//! from the loss to the first layer and deep stacks train. With `norm_placement: pre` the input of each
//! sub-layer is normalised inside the branch, `x = x + f(norm(x))` (pre-LN, Xiong et al. 2020,
//! arXiv 2002.04745), which trains stably without learning-rate warm-up; `post` normalises after
//! the add, `x = norm(x + f(x))`, as the original Transformer did.
//! Shapes: `[B, T, C] -> [B, T, C]`.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Device, Tensor};

use super::feed_forward::none::NoFeedForward;
use super::norm::layer_norm::LayerNormKind;
use super::{
    Attention, AttentionCache, AttentionKind, Dims, FeedForwardKind, Layer, NormKind,
    PositionalEncoding, ResolvedAttention, ResolvedFeedForward, ResolvedNorm,
};
use crate::error::SpecError;

/// Where the block normalises.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NormPlacement {
    /// No normalisation inside the block.
    #[default]
    None,
    /// Normalise the input of each sub-layer, inside the residual branch.
    Pre,
    /// Normalise after the residual add, `norm(x + f(x))`: the original Transformer (Vaswani et
    /// al. 2017), which needs learning-rate warm-up to train deep stacks (Xiong et al. 2020).
    Post,
}

/// One block of the stack, as written in the spec under `model.block`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    pub attention: Box<dyn AttentionKind>,
    #[serde(default = "no_feed_forward")]
    pub feed_forward: Box<dyn FeedForwardKind>,
    /// Add each sub-layer's output to its input (`x + f(x)`) instead of replacing it.
    #[serde(default = "default_residual")]
    pub residual: bool,
    /// The normalisation layer; defaults to LayerNorm when `norm_placement` asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<Box<dyn NormKind>>,
    #[serde(default)]
    pub norm_placement: NormPlacement,
}

fn no_feed_forward() -> Box<dyn FeedForwardKind> {
    Box::new(NoFeedForward {})
}

fn default_residual() -> bool {
    true
}

impl BlockSpec {
    /// Resolves the kinds and checks the block against the model's sizes. Field names in errors
    /// are relative to the block (`attention.head_size`).
    pub fn resolve(&self, dims: &Dims) -> Result<ResolvedBlock, SpecError> {
        let attention = self
            .attention
            .resolve(dims)
            .map_err(|e| e.within("attention"))?;
        let width = attention.output_width(dims);
        if width != dims.n_embd {
            return Err(SpecError::new(
                "attention",
                format!(
                    "outputs {width} channels but the block needs n_embd = {}; \
                     add `projection: true` or change head_size/n_head",
                    dims.n_embd
                ),
            ));
        }
        let feed_forward = self
            .feed_forward
            .resolve(dims)
            .map_err(|e| e.within("feed_forward"))?;
        let norm = match (self.norm_placement, &self.norm) {
            (NormPlacement::None, Some(_)) => {
                return Err(SpecError::new(
                    "norm",
                    "is set but norm_placement is none, so it would never be used; \
                     set norm_placement: pre or post, or remove norm",
                ))
            }
            (NormPlacement::None, None) => None,
            (NormPlacement::Pre | NormPlacement::Post, Some(norm)) => {
                Some(norm.resolve(dims).map_err(|e| e.within("norm"))?)
            }
            (NormPlacement::Pre | NormPlacement::Post, None) => {
                Some(Box::new(LayerNormKind::default()) as Box<dyn ResolvedNorm>)
            }
        };
        Ok(ResolvedBlock {
            attention,
            feed_forward,
            residual: self.residual,
            norm,
            norm_placement: self.norm_placement,
        })
    }
}

/// A block resolved: its kinds resolved, and a norm exactly when `norm_placement` uses one
/// (LayerNorm unless the spec names another). Serialises as the block written out in full.
#[derive(Debug, Serialize)]
pub struct ResolvedBlock {
    pub attention: Box<dyn ResolvedAttention>,
    pub feed_forward: Box<dyn ResolvedFeedForward>,
    pub residual: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub norm: Option<Box<dyn ResolvedNorm>>,
    pub norm_placement: NormPlacement,
}

impl ResolvedBlock {
    /// Builds the block under `path` (`attn`, `ffwd`, `ln1`, `ln2`).
    pub fn build(&self, path: &nn::Path, dims: &Dims) -> Block {
        let norm = |name: &str| {
            self.norm
                .as_ref()
                .map(|kind| kind.build(&(path / name), dims.n_embd))
        };
        let feed_forward = self.feed_forward.build(&(path / "ffwd"), dims);
        Block {
            attention_norm: norm("ln1"),
            attention: self.attention.build(&(path / "attn"), dims),
            // Without a feed-forward sub-layer there is nothing for a second norm to normalise.
            feed_forward_norm: feed_forward.as_ref().and_then(|_| norm("ln2")),
            feed_forward,
            residual: self.residual,
            placement: self.norm_placement,
        }
    }
}

#[derive(Debug)]
pub struct Block {
    attention_norm: Option<Layer>,
    attention: Box<dyn Attention>,
    feed_forward_norm: Option<Layer>,
    feed_forward: Option<Layer>,
    residual: bool,
    placement: NormPlacement,
}

impl Block {
    /// `[B, T, C] -> [B, T, C]` over a whole sequence.
    pub fn forward_t(&self, x: &Tensor, positions: &dyn PositionalEncoding, train: bool) -> Tensor {
        let x = self.sublayer(x, self.attention_norm.as_ref(), train, |h| {
            self.attention.forward_t(h, positions, train)
        });
        self.computation(&x, train)
    }

    /// An empty key/value cache for the block's attention.
    pub fn new_cache(&self, batch: i64, capacity: i64, device: Device) -> AttentionCache {
        self.attention.new_cache(batch, capacity, device)
    }

    /// `[B, n, C] -> [B, n, C]` for `n` new tokens following those in `cache` (evaluation mode).
    pub fn forward_cached(
        &self,
        x: &Tensor,
        positions: &dyn PositionalEncoding,
        cache: &mut AttentionCache,
    ) -> Tensor {
        let x = self.sublayer(x, self.attention_norm.as_ref(), false, |h| {
            self.attention.forward_cached(h, positions, cache)
        });
        self.computation(&x, false)
    }

    /// The feed-forward half, which sees each token on its own.
    fn computation(&self, x: &Tensor, train: bool) -> Tensor {
        match &self.feed_forward {
            Some(ff) => self.sublayer(x, self.feed_forward_norm.as_ref(), train, |h| {
                ff.forward_t(h, train)
            }),
            None => x.shallow_clone(),
        }
    }

    /// `x + f(norm(x))` (pre), `norm(x + f(x))` (post) or `x + f(x)`; without residual, the
    /// same with `f(·)` in place of `x + f(·)`.
    fn sublayer(
        &self,
        x: &Tensor,
        norm: Option<&Layer>,
        train: bool,
        f: impl FnOnce(&Tensor) -> Tensor,
    ) -> Tensor {
        let add = |out: Tensor| if self.residual { x + out } else { out };
        match (self.placement, norm) {
            (NormPlacement::Pre, Some(norm)) => add(f(&norm.forward_t(x, train))),
            (NormPlacement::Post, Some(norm)) => norm.forward_t(&add(f(x)), train),
            _ => add(f(x)),
        }
    }
}
