//! The GPT: embeddings, a stack of blocks, an optional final norm and the language-model head.
//!
//! `ids [B, T] -> logits [B, T, vocab]`: the logits at position t score every possible next
//! character given characters `0..=t`. Variable paths are the checkpoint's tensor names
//! (`blocks.2.attn.qkv.weight`), so an exported checkpoint reads naturally from PyTorch.

pub mod summary;

use tch::nn::{self, Module};
use tch::{Device, Reduction, Tensor};

use crate::error::{Error, Result};
use crate::layers::attention::kv_cache::ModelCache;
use crate::layers::block::Block;
use crate::layers::init::Role;
use crate::layers::linear::Linear;
use crate::layers::token_embedding::TokenEmbedding;
use crate::layers::{Dims, Layer, PositionalEncoding};
use crate::spec::Spec;

#[derive(Debug)]
pub struct Gpt {
    token_embedding: TokenEmbedding,
    position: Box<dyn PositionalEncoding>,
    blocks: Vec<Block>,
    embedding_dropout: f64,
    final_norm: Option<Layer>,
    lm_head: Linear,
    dims: Dims,
}

impl Gpt {
    /// Builds the model a *resolved* spec describes under `root`, for a vocabulary of
    /// `vocab_size` tokens (its sizes and compute kind: [`Spec::dims`]).
    pub fn new(root: &nn::Path, spec: &Spec, vocab_size: i64) -> Self {
        let dims = spec.dims(vocab_size);
        let spec = &spec.model;
        let token_embedding = TokenEmbedding::new(&(root / "token_embedding"), &dims);
        let head_weight = spec
            .tie_embeddings
            .then(|| token_embedding.weight.shallow_clone());
        Gpt {
            token_embedding,
            position: spec.position.build(&(root / "position"), &dims),
            blocks: spec
                .stack()
                .into_iter()
                .enumerate()
                .map(|(i, block)| block.build(&(root / "blocks" / i), &dims))
                .collect(),
            embedding_dropout: spec.embedding_dropout,
            final_norm: spec
                .final_norm
                .as_ref()
                .map(|norm| norm.build(&(root / "final_norm"), dims.n_embd)),
            lm_head: match head_weight {
                // Tied: the same tensor as the embedding, so updates to either are updates to both.
                Some(weight) => {
                    Linear::with_weight(&(root / "lm_head"), weight, spec.head_bias, &dims)
                }
                None => Linear::new(
                    &(root / "lm_head"),
                    (dims.n_embd, dims.vocab_size),
                    spec.head_bias,
                    &dims,
                    Role::Inner,
                ),
            },
            dims,
        }
    }

    /// [`Gpt::new`] for a spec from outside (a file, a checkpoint): sizes too large to allocate
    /// make libtorch fail inside tch, which panics; here that becomes an error.
    pub fn try_new(root: &nn::Path, spec: &Spec, vocab_size: i64) -> Result<Self> {
        let dims = spec.dims(vocab_size);
        quietly(|| Gpt::new(root, spec, vocab_size)).map_err(|_| {
            Error::Usage(format!(
                "cannot build the model: libtorch could not allocate its parameters \
                 (n_embd {}, block_size {}, vocabulary {}); is it too large for this machine?",
                dims.n_embd, dims.block_size, dims.vocab_size
            ))
        })
    }

    pub fn dims(&self) -> &Dims {
        &self.dims
    }

    /// Next-token logits `[B, T, vocab]` for ids `[B, T]`, `T <= block_size`; dropout only if `train`.
    pub fn forward_t(&self, ids: &Tensor, train: bool) -> Tensor {
        let mut x = self.embed(ids, 0, train);
        for block in &self.blocks {
            x = block.forward_t(&x, self.position.as_ref(), train);
        }
        self.logits(&x, train)
    }

    /// An empty key/value cache for `batch` sequences of up to `block_size` tokens.
    pub fn new_cache(&self, batch: i64, device: Device) -> ModelCache {
        let capacity = self.dims.block_size;
        ModelCache::new(
            self.blocks
                .iter()
                .map(|block| block.new_cache(batch, capacity, device))
                .collect(),
        )
    }

    /// Next-token logits `[B, n, vocab]` for `n` new ids `[B, n]` that follow the tokens already in
    /// `cache`, which must have room for them (evaluation mode). Equal to the last `n` positions of
    /// [`Gpt::forward_t`] over the cached tokens and the new ones.
    pub fn forward_cached(&self, ids: &Tensor, cache: &mut ModelCache) -> Tensor {
        let n = ids.size()[1];
        let mut x = self.embed(ids, cache.len(), false);
        for (block, block_cache) in self.blocks.iter().zip(cache.extend(n)) {
            x = block.forward_cached(&x, self.position.as_ref(), block_cache);
        }
        self.logits(&x, false)
    }

    /// Token embeddings of `ids [B, n]` at positions `start..start + n`, plus their position
    /// vectors if the scheme adds any, then the embedding dropout: `[B, n, C]`.
    fn embed(&self, ids: &Tensor, start: i64, train: bool) -> Tensor {
        let tokens = self.token_embedding.forward(ids);
        let x = match self.position.embedding(start, ids.size()[1]) {
            Some(positions) => tokens + positions,
            None => tokens,
        };
        if self.embedding_dropout > 0.0 {
            crate::layers::dropout::dropout(&x, self.embedding_dropout, train)
        } else {
            x
        }
    }

    /// The final norm, then the language-model head: `[B, T, C] -> [B, T, vocab]`.
    fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        match &self.final_norm {
            Some(norm) => self.lm_head.forward(&norm.forward_t(x, train)),
            None => self.lm_head.forward(x),
        }
    }

    /// Mean cross-entropy of `logits [B, T, V]` against `targets [B, T]`.
    pub fn loss(logits: &Tensor, targets: &Tensor) -> Tensor {
        Self::loss_with(logits, targets, Reduction::Mean)
    }

    /// Cross-entropy with the given reduction (`Sum` lets evaluation average over chunks exactly).
    pub fn loss_with(logits: &Tensor, targets: &Tensor, reduction: Reduction) -> Tensor {
        let vocab = logits.size()[2];
        logits.reshape([-1, vocab]).cross_entropy_loss::<Tensor>(
            &targets.reshape([-1]),
            None,
            reduction,
            -100,
            0.0,
        )
    }
}

/// Runs `f`, turning a panic into an `Err` without printing the panic message.
fn quietly<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result
}
