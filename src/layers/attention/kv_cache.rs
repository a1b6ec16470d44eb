//! The key/value cache: why generating a token need not recompute the whole context.
//!
//! When a GPT generates, each new token is appended to the context and the model runs again. In
//! causal attention a token's key and value depend only on the token itself and on what came
//! before it, so the keys and values of the tokens already in the context never change: computing
//! them again for every new token is wasted work, quadratic in the context length. The cache keeps
//! them. Each step then runs the model on the *new* token alone: its query attends over the cached
//! keys and values plus its own, and its key and value are appended for the tokens that follow.
//!
//! The buffers are allocated once, at the model's full context (`block_size`), and written in
//! place: generating forever allocates nothing new, so memory stays flat. What happens when the
//! context is full depends on the positional scheme; see [`crate::generate::context`].

use tch::{Device, Kind, Tensor};

use crate::layers::AttentionCache;

/// The cached keys and values of one attention layer, its key/value heads stacked:
/// `[.., capacity, head_size]` buffers whose first `len` rows along the sequence dimension (the
/// second-to-last) are filled.
#[derive(Debug)]
pub struct KeyValueCache {
    keys: Tensor,
    values: Tensor,
    len: i64,
}

impl KeyValueCache {
    /// An empty cache for keys and values of shape `[leading.., capacity, head_size]`.
    pub fn new(leading: &[i64], capacity: i64, head_size: i64, device: Device) -> Self {
        let shape = [leading, &[capacity, head_size]].concat();
        KeyValueCache {
            keys: Tensor::zeros(shape.as_slice(), (Kind::Float, device)),
            values: Tensor::zeros(shape.as_slice(), (Kind::Float, device)),
            len: 0,
        }
    }

    /// How many tokens' keys and values are stored.
    pub fn len(&self) -> i64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many tokens fit.
    pub fn capacity(&self) -> i64 {
        self.keys.size()[self.keys.dim() - 2]
    }

    /// Stores the keys and values of `n` new tokens (`[.., n, head_size]`) after the cached ones
    /// and returns views of all of them, old and new: `(keys, values)`, each `[.., len + n, head_size]`.
    ///
    /// Panics if they do not fit: callers keep the context within the capacity.
    pub fn append(&mut self, keys: &Tensor, values: &Tensor) -> (Tensor, Tensor) {
        let n = keys.size()[keys.dim() - 2];
        assert!(
            self.len + n <= self.capacity(),
            "KV cache overflow: {} + {n} tokens, capacity {}",
            self.len,
            self.capacity()
        );
        self.keys.narrow(-2, self.len, n).copy_(keys);
        self.values.narrow(-2, self.len, n).copy_(values);
        self.len += n;
        (
            self.keys.narrow(-2, 0, self.len),
            self.values.narrow(-2, 0, self.len),
        )
    }

    /// Forgets every token; the buffers are kept for reuse.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// The caches of every attention layer of a model, and the number of tokens they hold.
#[derive(Debug)]
pub struct ModelCache {
    layers: Vec<AttentionCache>,
    len: i64,
}

impl ModelCache {
    /// An empty cache made of one [`AttentionCache`] per block, in order.
    pub fn new(layers: Vec<AttentionCache>) -> Self {
        ModelCache { layers, len: 0 }
    }

    /// How many tokens are cached: the position of the next token.
    pub fn len(&self) -> i64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The blocks' caches, for a forward pass over `n` new tokens, which it records.
    pub fn extend(&mut self, n: i64) -> impl Iterator<Item = &mut AttentionCache> {
        self.len += n;
        self.layers.iter_mut()
    }

    /// Forgets every token; the buffers are kept for reuse.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(KeyValueCache::clear);
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_returns_everything_stored_so_far() {
        let mut cache = KeyValueCache::new(&[1], 4, 2, Device::Cpu);
        let first = Tensor::from_slice(&[1f32, 2., 3., 4.]).reshape([1, 2, 2]);
        let (keys, values) = cache.append(&first, &(&first * 10));
        assert_eq!(keys.size(), [1, 2, 2]);
        assert!(values.equal(&(&first * 10)));

        let second = Tensor::from_slice(&[5f32, 6.]).reshape([1, 1, 2]);
        let (keys, _) = cache.append(&second, &second);
        assert_eq!(cache.len(), 3);
        assert!(keys.equal(&Tensor::cat(&[&first, &second], 1)));

        cache.clear();
        assert!(cache.is_empty());
        let (keys, _) = cache.append(&second, &second);
        assert!(keys.equal(&second), "a cleared cache starts over");
    }

    #[test]
    #[should_panic(expected = "KV cache overflow")]
    fn overflowing_is_a_bug_not_silent_truncation() {
        let mut cache = KeyValueCache::new(&[1], 2, 1, Device::Cpu);
        let three = Tensor::zeros([1, 3, 1], (Kind::Float, Device::Cpu));
        let _ = cache.append(&three, &three);
    }
}
