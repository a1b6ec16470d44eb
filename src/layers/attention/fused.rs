//! All heads at once: the arithmetic of [`attend`](crate::layers::attention::scores::attend), run for every
//! head in one libtorch call, with the same parameters and the same results.
//!
//! The course computes each head separately: a matrix product, a masked softmax and a weighted sum
//! per head — a dozen small operations per head and layer. Viewing the queries, keys and values
//! as `[B, H, T, hs]` lets libtorch's fused `scaled_dot_product_attention` (softmax(q·kᵀ·scale)·v
//! with the causal mask, without materialising the masked scores when it can) handle all heads in
//! one call. The two formulations are tested equal in values and gradients.
//!
//! The call itself is [`ops::causal_attention`](crate::ops::causal_attention), which picks who
//! computes it (libtorch's fused kernels, or gptbuild's CPU kernel, with dropout on the weights,
//! in bf16 and for short sequences); this file has the layout both formulations share.

use tch::Tensor;

/// Keys or values `[B, Hkv, len, hs]` repeated for the `group` query heads that share each of
/// them: `[B, Hkv·group, len, hs]`, key/value head `g` serving query heads `g·group..(g+1)·group`.
pub fn repeat_kv(x: &Tensor, group: i64) -> Tensor {
    if group == 1 {
        return x.shallow_clone();
    }
    let size = x.size();
    let (b, hkv, len, hs) = (size[0], size[1], size[2], size[3]);
    x.unsqueeze(2)
        .expand([b, hkv, group, len, hs], false)
        .reshape([b, hkv * group, len, hs])
}

/// `[B, H, T, hs]` → `[B, T, H·hs]`, heads side by side as the per-head formulation concatenates them.
pub fn merge_heads(y: &Tensor) -> Tensor {
    let size = y.size();
    let (b, h, t, hs) = (size[0], size[1], size[2], size[3]);
    y.transpose(1, 2).reshape([b, t, h * hs])
}
