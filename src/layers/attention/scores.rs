//! Scaled dot-product attention for one head (Vaswani et al. 2017, arXiv 1706.03762, §3.2.1):
//! softmax(q·kᵀ / √head_size) · v, with the causal mask hiding the future and an optional additive
//! bias on the scores (ALiBi). Every attention layer's heads come here, one at a time, unless
//! `fused` hands them all to libtorch's kernel at once ([`super::fused`]).
//! Shapes: queries `[B, n, hs]`, keys and values `[B, len, hs]` -> `[B, n, hs]`.

use tch::{Kind, Tensor};

/// What a query may look at: the `[n, len]` positions it may not see (true = hidden), and an
/// optional additive bias on the scores (ALiBi), `[n, len]` for this head.
pub struct Visibility<'a> {
    pub future: &'a Tensor,
    pub bias: Option<Tensor>,
}

/// Which attention weights dropout keeps: this head's `[B, n, len]` mask (true = kept), drawn by
/// the fused kernel's generator so that both formulations drop the same weights; or `Drawn`, a
/// fresh Bernoulli mask from libtorch (off the CPU, where that kernel does not run).
pub enum Dropout {
    Mask { keep: Tensor, p: f64 },
    Drawn { p: f64 },
    None,
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
    dropout: &Dropout,
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
    // Dropout on the weights (Srivastava et al. 2014): each is zeroed with probability p, the
    // survivors scaled by 1 / (1 - p) so that the expected output is unchanged.
    match dropout {
        Dropout::Mask { keep, p } => weights = weights * keep / (1.0 - p),
        Dropout::Drawn { p } => weights = weights.dropout(*p, true),
        Dropout::None => {}
    }
    // The weights are fp32 (the softmax accumulates in fp32); the values may be bf16.
    weights.to_kind(v.kind()).matmul(v)
}
