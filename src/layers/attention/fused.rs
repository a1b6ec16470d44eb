//! All heads at once: the arithmetic of [`attend`](crate::layers::attention::scores::attend), run for every
//! head in one libtorch call, with the same parameters and the same results.
//!
//! The course computes each head separately: a matrix product, a masked softmax and a weighted sum
//! per head — a dozen small operations per head and layer. Viewing the queries, keys and values
//! as `[B, H, T, hs]` lets libtorch's fused `scaled_dot_product_attention` (softmax(q·kᵀ·scale)·v
//! with the causal mask, without materialising the masked scores when it can) handle all heads in
//! one call. The two formulations are tested equal in values and gradients.
//!
//! With dropout on the weights, libtorch's fused CPU kernel does not apply (it has no dropout), so a
//! whole causal sequence on the CPU goes to gptbuild's own kernel
//! ([`crate::kernels::causal_attention`]), whose mask the per-head formulation applies too; in
//! bf16 and for short sequences it goes there without dropout as well, where it is the faster.

use tch::Tensor;

use crate::kernels::causal_attention::{self as kernel, CpuAttention};
use crate::kernels::dropout::draw_key;
use crate::layers::attention::scores;

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

/// Queries `[B, H, n, hs]` of positions `start..start + n` attend over keys and values
/// `[B, H, len, hs]` of positions `0..len` (`len = start + n`), causally. `future` is the
/// `[n, len]` mask of the positions each query may not see, `bias` an optional `[H, n, len]`
/// addition to the scores (ALiBi); `dropout` applies to the weights.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    start: i64,
    future: &Tensor,
    bias: Option<Tensor>,
    scale: f64,
    dropout: f64,
) -> Tensor {
    let n = q.size()[2];
    let len = k.size()[2];
    let sdpa = |mask: Option<Tensor>, is_causal: bool| {
        Tensor::scaled_dot_product_attention(q, k, v, mask, dropout, is_causal, Some(scale), false)
    };
    match bias {
        // A float mask is added to the scores: the bias where a token may look, -inf where not.
        Some(bias) => sdpa(
            Some(
                bias.masked_fill(future, f64::NEG_INFINITY)
                    .to_kind(q.kind()),
            ),
            false,
        ),
        // A whole sequence on the CPU: our kernel where it is the faster or the only one (with
        // dropout, in bf16, and for short sequences; `kernel::cpu_attention` says why), the same
        // mask as the per-head formulation's.
        None if start == 0 && n == len && kernel::supports(q) => {
            match kernel::cpu_attention(n, q.kind(), dropout) {
                CpuAttention::Kernel(route) => {
                    // A key only for a mask: without dropout libtorch's generator is left as it
                    // was, so evaluation and sampling draw what they drew before.
                    let key = if dropout > 0.0 { draw_key() } else { 0 };
                    kernel::causal_attention_by(route, q, k, v, scale, dropout, key)
                        .unwrap_or_else(|error| panic!("{error}"))
                }
                CpuAttention::Libtorch => sdpa(None, true),
            }
        }
        // A whole sequence: the plain causal mask, which the fused kernel applies itself.
        None if start == 0 && n == len => sdpa(None, true),
        // The newest token on a GPU: the course's formulation, two products and a softmax, for
        // every head at once. In bf16 libtorch's SDPA picks cuDNN's attention there, which builds
        // an execution plan for every key length it has not seen: about 57 ms of host time per
        // generated token until all `block_size` lengths are cached (17.7 characters/s from a
        // task-7 model on an H200).
        None if n == 1 && q.device().is_cuda() && dropout == 0.0 => {
            let visibility = scores::Visibility { future, bias: None };
            scores::attend(q, k, v, &visibility, scale, &scores::Dropout::None)
        }
        // The newest token sees every cached one.
        None if n == 1 => sdpa(None, false),
        // Several new tokens after cached ones: row i may see columns 0..=start + i.
        None => sdpa(Some(future.logical_not()), false),
    }
}
