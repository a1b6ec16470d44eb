//! The transformer, one concept per file, grouped by family, in the order a reader meets them:
//!
//! | file | concept |
//! |---|---|
//! | [`linear`] | the affine map every other layer is made of ([`precision`]: in fp32 or bf16) |
//! | [`token_embedding`] | characters become vectors |
//! | [`position`]`/` [`learned`](position::learned), [`sinusoidal`](position::sinusoidal), [`none`](position::none) | where a character sits: added to its vector (GPT, the original Transformer), or nothing |
//! | [`position`]`/` [`rope`](position::rope), [`alibi`](position::alibi) | relative positions inside attention: rotations (RoPE), distance penalties (ALiBi) |
//! | [`init`] | the values the weights start from (PyTorch's, GPT-2's) |
//! | [`attention`]`/` [`scores`](attention::scores), [`head`](attention::head) | one causal self-attention head: tokens talk to their past |
//! | [`attention`]`/` [`multi_head`](attention::multi_head), [`qk_norm`](attention::qk_norm) | several heads side by side, grouped key/value heads, normalised queries and keys |
//! | [`attention`]`/` [`fused`](attention::fused) | the same heads computed all at once, for speed |
//! | [`attention`]`/` [`kv_cache`](attention::kv_cache) | generation without recomputing the past: cached keys and values |
//! | [`feed_forward`]`/` [`none`](feed_forward::none), [`linear`](feed_forward::linear), [`mlp`](feed_forward::mlp), [`swiglu`](feed_forward::swiglu) | tokens think on their own |
//! | [`norm`]`/` [`layer_norm`](norm::layer_norm), [`rms_norm`](norm::rms_norm) | keep activations well scaled |
//! | [`dropout`] | zeroing activations at random while training, against overfitting |
//! | [`block`] | communication + computation, with optional residuals and norms |
//!
//! Each *kind* a spec can name (`position: {kind: learned}`, `feed_forward: {kind: mlp}`, …) is a
//! serde struct, living in the same file as the layer it builds, registered once under that name
//! with [`register_kind!`](crate::register_kind). A kind comes in two stages: as written (the
//! family's `…Kind` trait, read by typetag; sizes may be left out) and resolved ([`ResolveKind`]
//! turns one into the other: the family's `Resolved…` trait, every size stated, which builds the
//! layer). Adding a kind is a new file in its family's folder plus its `mod` line: the spec parser,
//! the schema, the resolved spec and the checkpoint metadata pick it up through the registry.

use std::fmt::Debug;

use tch::nn;
use tch::{Device, Kind, Tensor};

use attention::kv_cache::KeyValueCache;

use crate::error::SpecError;
pub use crate::validate::{require_eps, require_size, MAX_SIZE};

#[doc(hidden)]
pub mod attention;
#[doc(hidden)]
pub mod block;
#[doc(hidden)]
pub mod dropout;
#[doc(hidden)]
pub mod feed_forward;
#[doc(hidden)]
pub mod init;
#[doc(hidden)]
pub mod linear;
#[doc(hidden)]
pub mod norm;
#[doc(hidden)]
pub mod position;
#[doc(hidden)]
pub mod precision;
#[doc(hidden)]
pub mod token_embedding;

pub use dropout::dropout;
pub use init::{InitScheme, Role};
pub use linear::Linear;
pub use precision::Precision;

/// The sizes and settings every layer builds itself from, fixed by the spec and the corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dims {
    /// Number of distinct tokens (characters of the corpus).
    pub vocab_size: i64,
    /// Longest context the model attends over.
    pub block_size: i64,
    /// Width of the residual stream, C.
    pub n_embd: i64,
    /// Number of blocks in the stack (GPT-2's initialisation scales by it).
    pub n_layer: i64,
    /// Dropout probability on the attention weights.
    pub attention_dropout: f64,
    /// Dropout probability on each sub-layer's output, before it joins the residual stream.
    pub residual_dropout: f64,
    /// The values the weights start from.
    pub init: InitScheme,
    /// The dtype of the matrix products: fp32, or bf16 under mixed precision (see
    /// [`crate::layers::precision`]); weights and the residual stream stay fp32.
    pub compute: Kind,
}

/// A layer that can be run in training mode (dropout on) or evaluation mode (dropout off).
pub type Layer = Box<dyn nn::ModuleT>;

/// How a kind, as written in the spec, becomes the kind the layer is built from: sizes it left
/// out are worked out from the model's (`head_size = n_embd / n_head`, `hidden_size = 4·n_embd`)
/// and its fields are checked, once. The resolved value has no `Option` left that stands for a
/// default, so nothing downstream derives it again. A kind with nothing to work out is its own
/// resolved form (`type Resolved = Self`).
///
/// [`register_kind!`](crate::register_kind) turns this into the family's trait object, so a kind
/// file implements this trait, the family's resolved trait, and registers once; a kind with
/// nothing to resolve registers with `resolves_to_itself` and the macro implements this trait.
pub trait ResolveKind {
    /// The kind with every size stated, which builds the layer.
    type Resolved;
    /// Field names in errors are relative to the kind (`head_size`).
    fn resolve(&self, dims: &Dims) -> Result<Self::Resolved, SpecError>;
}

/// A resolved kind written out in full, as a spec would state it (`Kind` is the family's
/// written trait object, `dyn FeedForwardKind`). A kind that is its own resolved form gets this
/// for free; one that resolves to another type implements it.
pub trait WrittenAs<Kind: ?Sized> {
    /// The kind written out in full.
    fn written(&self) -> Box<Kind>;
}

/// A kind that is its own resolved form writes itself out as it is.
macro_rules! written_as_itself {
    ($($written:ident),*) => {$(
        impl<T: $written + Clone + 'static> WrittenAs<dyn $written> for T {
            fn written(&self) -> Box<dyn $written> {
                Box::new(self.clone())
            }
        }
    )*};
}
written_as_itself!(PositionKind, AttentionKind, FeedForwardKind, NormKind);

/// Serialises a resolved kind as the kind written out in full, which is how the resolved spec is
/// stored and read back: resolving it again gives the same value.
macro_rules! serialize_as_written {
    ($resolved:ident) => {
        impl serde::Serialize for Box<dyn $resolved> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.written().serialize(serializer)
            }
        }
    };
}

/// How the model learns where each token sits, as written (`position: {kind: rope}`).
#[typetag::serde(tag = "kind")]
pub trait PositionKind: Debug + Send + Sync {
    /// Works out what the spec left out from the model's `dims` and checks the fields.
    fn resolve(&self, dims: &Dims) -> Result<Box<dyn ResolvedPosition>, SpecError>;
}

/// A positional scheme, resolved.
pub trait ResolvedPosition: Debug + Send + Sync + WrittenAs<dyn PositionKind> {
    /// Checks the scheme against an attention layer's head size (RoPE needs it even).
    fn check_head_size(&self, _head_size: i64) -> Result<(), SpecError> {
        Ok(())
    }
    /// Builds the layer under `path`.
    fn build(&self, path: &nn::Path, dims: &Dims) -> Box<dyn PositionalEncoding>;
}
serialize_as_written!(ResolvedPosition);

/// A built positional scheme. *Absolute* schemes add a vector to each token's embedding;
/// *relative* ones act inside attention, on the queries and keys (RoPE) or on the scores (ALiBi).
/// Every method has the neutral default, so a scheme implements only what it does.
pub trait PositionalEncoding: Debug + Send {
    /// The `[t, n_embd]` vectors added to the token embeddings of positions `start..start + t`,
    /// or `None` when the scheme adds nothing.
    fn embedding(&self, _start: i64, _t: i64) -> Option<Tensor> {
        None
    }
    /// Queries or keys `[.., t, head_size]` of positions `start..start + t`, as attention should
    /// compare them.
    fn rotate(&self, x: &Tensor, _start: i64) -> Tensor {
        x.shallow_clone()
    }
    /// A bias `[n_head, n, len]` added to the attention scores of the queries at positions
    /// `start..start + n` over the keys at positions `0..len`, or `None`.
    fn score_bias(&self, _n_head: i64, _start: i64, _n: i64, _len: i64) -> Option<Tensor> {
        None
    }
}

/// How tokens exchange information, as written (`attention: {kind: multi_head, n_head: 4}`).
#[typetag::serde(tag = "kind")]
pub trait AttentionKind: Debug + Send + Sync {
    /// Works out what the spec left out from the model's `dims` and checks the fields.
    fn resolve(&self, dims: &Dims) -> Result<Box<dyn ResolvedAttention>, SpecError>;
}

/// An attention layer, resolved: every size stated.
pub trait ResolvedAttention: Debug + Send + Sync + WrittenAs<dyn AttentionKind> {
    /// Width of the output, which the rest of the block expects to be `n_embd`.
    fn output_width(&self, dims: &Dims) -> i64;
    /// Width of each head's queries and keys.
    fn head_size(&self) -> i64;
    /// Width of all queries together, `n_head · head_size`: what attention's cost scales with.
    fn query_width(&self) -> i64;
    /// Builds the layer under `path`: `[B, T, C] -> [B, T, output_width]`.
    fn build(&self, path: &nn::Path, dims: &Dims) -> Box<dyn Attention>;
}
serialize_as_written!(ResolvedAttention);

/// A built attention layer, which can run over a whole sequence or, when generating, over new
/// tokens that follow the ones in its [`kv_cache`](attention::kv_cache).
/// `positions` is the model's positional scheme, which relative schemes apply inside attention.
pub trait Attention: Debug + Send {
    /// `[B, T, C] -> [B, T, width]` over a whole sequence (training, evaluation, full recompute).
    fn forward_t(&self, x: &Tensor, positions: &dyn PositionalEncoding, train: bool) -> Tensor;
    /// An empty cache for `batch` sequences of up to `capacity` tokens.
    fn new_cache(&self, batch: i64, capacity: i64, device: Device) -> AttentionCache;
    /// Evaluation-mode attention for `n` new tokens `[B, n, C]` that follow the cached ones: their
    /// queries attend over the cached keys and values and their own, which are then appended to
    /// `cache`. Equals the last `n` positions of [`Attention::forward_t`] over the whole sequence.
    fn forward_cached(
        &self,
        x: &Tensor,
        positions: &dyn PositionalEncoding,
        cache: &mut AttentionCache,
    ) -> Tensor;
}

/// What one attention layer caches: the keys and values of all its key/value heads.
pub type AttentionCache = KeyValueCache;

/// The per-token computation after attention, as written (`feed_forward: {kind: mlp}`).
#[typetag::serde(tag = "kind")]
pub trait FeedForwardKind: Debug + Send + Sync {
    /// Works out what the spec left out from the model's `dims` and checks the fields.
    fn resolve(&self, dims: &Dims) -> Result<Box<dyn ResolvedFeedForward>, SpecError>;
}

/// A feed-forward sub-layer, resolved: its hidden width stated.
pub trait ResolvedFeedForward: Debug + Send + Sync + WrittenAs<dyn FeedForwardKind> {
    /// Values per token of its widest hidden activation (0 without a sub-layer): what its
    /// activations cost in memory ([`crate::resources`]).
    fn activation_width(&self, dims: &Dims) -> i64;
    /// Builds the layer under `path` (`[B, T, C] -> [B, T, C]`), or `None` for no sub-layer.
    fn build(&self, path: &nn::Path, dims: &Dims) -> Option<Layer>;
}
serialize_as_written!(ResolvedFeedForward);

/// A normalisation layer, as written (`norm: {kind: rmsnorm}`).
#[typetag::serde(tag = "kind")]
pub trait NormKind: Debug + Send + Sync {
    /// Works out what the spec left out from the model's `dims` and checks the fields.
    fn resolve(&self, dims: &Dims) -> Result<Box<dyn ResolvedNorm>, SpecError>;
}

/// A normalisation layer, resolved.
pub trait ResolvedNorm: Debug + Send + Sync + WrittenAs<dyn NormKind> {
    /// Builds the layer under `path`, normalising the last dimension of size `width`.
    fn build(&self, path: &nn::Path, width: i64) -> Layer;
}
serialize_as_written!(ResolvedNorm);
