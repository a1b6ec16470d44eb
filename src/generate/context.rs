//! The model's view of a text that grows without end: a window of at most `block_size` tokens, and
//! the next-token logits given that window.
//!
//! Two ways to compute them, which give the same distribution for the same window:
//!
//! - **Full recompute** (`--no-cache`): run the model on the last `block_size` tokens at every
//!   step. Simple, and what the course does; the cost of a step grows with the window.
//! - **Cached** (the default): run the model on the new tokens only, attending over a
//!   [key/value cache](crate::layers::attention::kv_cache) of the window. With learned (absolute) positions a
//!   token's key depends on its position *in the window*, so once the window is full the cache
//!   cannot simply drop its oldest token: every remaining key would need a new position. Instead,
//!   when the next token would not fit, the window restarts from the last `block_size / 2` tokens
//!   (or the whole of a long prompt) and the cache is refilled from them in one batched forward
//!   pass. A refill costs about one step per refilled token but happens only every
//!   `block_size / 2` tokens, so the cost per token stays bounded; the price is a window that
//!   varies between half and the full block instead of always being full.
//!
//! Relative schemes (RoPE, ALiBi) use the same policy. Their first-layer keys would survive a
//! shift of the window, which is what "rolling" caches exploit, but from the second layer on every
//! key also depends on the tokens that fell out of the window, so a rolling cache computes
//! something other than the model over the window. The refill keeps the two paths equal (tested
//! for every positional scheme).

use std::collections::VecDeque;

use tch::{Device, Tensor};

use crate::layers::attention::kv_cache::ModelCache;
use crate::model::Gpt;

/// A sliding context over a model, fed token by token (or a prompt at a time).
pub struct Context<'m> {
    model: &'m Gpt,
    device: Device,
    /// The tokens the next-token distribution is conditioned on, oldest first.
    window: VecDeque<i64>,
    /// `None`: recompute over the window at every step.
    cache: Option<ModelCache>,
}

impl<'m> Context<'m> {
    /// An empty context; `cached` chooses the KV cache over full recomputation.
    pub fn new(model: &'m Gpt, device: Device, cached: bool) -> Self {
        let block_size = model.dims().block_size;
        Context {
            model,
            device,
            window: VecDeque::with_capacity(block_size as usize + 1),
            cache: cached.then(|| model.new_cache(1, device)),
        }
    }

    /// The tokens the last logits were conditioned on, oldest first.
    pub fn window(&self) -> Vec<i64> {
        self.window.iter().copied().collect()
    }

    /// Appends `tokens` (at least one) to the text and returns the logits `[vocab]` of the token
    /// that comes next, given the window.
    pub fn push(&mut self, tokens: &[i64]) -> Tensor {
        assert!(!tokens.is_empty(), "push at least one token");
        let block_size = self.model.dims().block_size as usize;
        let device = self.device;
        self.window.extend(tokens);
        let logits = tch::no_grad(|| match self.cache.as_mut() {
            None => {
                keep_last(&mut self.window, block_size);
                let window = ids(self.window.make_contiguous(), device);
                self.model.forward_t(&window, false)
            }
            Some(cache) if self.window.len() <= block_size => {
                self.model.forward_cached(&ids(tokens, device), cache)
            }
            Some(cache) => {
                // The window is full: restart it from its most recent part and refill the cache.
                keep_last(&mut self.window, refill_length(block_size, tokens.len()));
                cache.clear();
                let window = ids(self.window.make_contiguous(), device);
                self.model.forward_cached(&window, cache)
            }
        });
        logits.select(1, -1).squeeze_dim(0)
    }
}

/// `[1, T]` ids on `device`.
fn ids(tokens: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(tokens).to_device(device).unsqueeze(0)
}

/// Drops the oldest tokens until at most `len` are left.
fn keep_last(window: &mut VecDeque<i64>, len: usize) {
    let excess = window.len().saturating_sub(len);
    window.drain(..excess);
}

/// How many of the most recent tokens a refilled window keeps: half the block, so the next
/// `block_size / 2` tokens each cost one cached step, or all of a longer batch of new tokens
/// (a prompt), up to the block.
fn refill_length(block_size: usize, new_tokens: usize) -> usize {
    let half = block_size.div_ceil(2);
    half.max(new_tokens.min(block_size))
}

#[cfg(test)]
mod tests {
    use super::refill_length;

    #[test]
    fn a_refill_keeps_half_the_block_or_a_whole_prompt() {
        assert_eq!(refill_length(256, 1), 128);
        assert_eq!(refill_length(8, 1), 4);
        assert_eq!(refill_length(1, 1), 1);
        assert_eq!(refill_length(7, 1), 4);
        assert_eq!(refill_length(256, 200), 200);
        assert_eq!(refill_length(256, 1000), 256);
    }
}
