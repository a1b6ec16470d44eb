//! All heads at once: the arithmetic of [`multi_head_attention`](super::multi_head_attention),
//! rearranged for speed, with the same parameters and the same results.
//!
//! The course computes each head separately: three small matrix products per head, then a masked
//! softmax and a weighted sum per head — dozens of small operations per layer. Stacking every
//! head's query, key and value weights into one `[3·H·hs, C]` matrix turns the projections into a
//! single product; viewing the result as `[B, H, T, hs]` lets libtorch's fused
//! `scaled_dot_product_attention` (softmax(q·kᵀ/√hs) · v with the causal mask, without
//! materialising the masked scores) handle all heads in one call. The parameters stay the
//! per-head ones, so checkpoints are interchangeable and the two formulations are tested equal.

use tch::Tensor;

use super::attention_head::AttentionHead;

/// Every head's query, then key, then value weights, stacked: `[3·H·hs, C]`.
pub fn stacked_weights(heads: &[AttentionHead]) -> Tensor {
    let pieces: Vec<&Tensor> = (0..3)
        .flat_map(|which| heads.iter().map(move |head| head.weights()[which]))
        .collect();
    Tensor::cat(&pieces, 0)
}

/// `[B, T, 3·H·hs]` projections → queries, keys, values, each `[B, H, T, hs]`.
pub fn split_heads(qkv: &Tensor, n_head: i64, head_size: i64) -> (Tensor, Tensor, Tensor) {
    let size = qkv.size();
    let (b, t) = (size[0], size[1]);
    let qkv = qkv
        .view([b, t, 3, n_head, head_size])
        .permute([2, 0, 3, 1, 4]);
    (qkv.get(0), qkv.get(1), qkv.get(2))
}

/// `[B, H, T, hs]` → `[B, T, H·hs]`, heads side by side as the per-head formulation concatenates them.
pub fn merge_heads(y: &Tensor) -> Tensor {
    let size = y.size();
    let (b, h, t, hs) = (size[0], size[1], size[2], size[3]);
    y.transpose(1, 2).reshape([b, t, h * hs])
}

/// Queries `[B, H, n, hs]` of positions `start..start + n` attend over keys and values
/// `[B, H, len, hs]` of positions `0..len` (`len = start + n`), causally. `future` is the
/// `[block, block]` mask of positions a token may not see; `dropout` applies to the weights.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    start: i64,
    future: &Tensor,
    dropout: f64,
) -> Tensor {
    let n = q.size()[2];
    let len = k.size()[2];
    let sdpa = |mask: Option<Tensor>, is_causal: bool| {
        Tensor::scaled_dot_product_attention(q, k, v, mask, dropout, is_causal, None, false)
    };
    if start == 0 && n == len {
        // A whole sequence: the plain causal mask, which the fused kernel applies itself.
        sdpa(None, true)
    } else if n == 1 {
        // The newest token sees every cached one.
        sdpa(None, false)
    } else {
        // Several new tokens after cached ones: row i may see columns 0..=start + i.
        let allowed = future.narrow(0, start, n).narrow(1, 0, len).logical_not();
        sdpa(Some(allowed), false)
    }
}
