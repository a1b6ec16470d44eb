//! Attention over all heads at once, and the dropout mask its per-head formulation shares.
//!
//! Who computes it: libtorch's fused `scaled_dot_product_attention` (its flash attention on the
//! CPU, cuDNN or flash kernels on a GPU), except where gptbuild's kernel
//! (`kernels::causal_attention`) is the faster or the only one: a whole causal sequence on the CPU
//! with dropout (libtorch's fused CPU kernel has none), in bf16, or of up to 32 positions. The
//! newest token on a GPU is two products and a softmax (see below).

use tch::{Device, Tensor};

use crate::layers::attention::scores;

/// One `[B, H, n, len]` mask of the attention weights dropout keeps (true = kept), as the fused
/// kernel draws it, so that attention computed one head at a time drops the same weights as all
/// heads at once; `None` where that kernel does not run (off the CPU, or built without
/// `cpu-kernels`): each head then draws its own.
pub fn attention_dropout_mask(shape: [i64; 4], p: f64, device: Device) -> Option<Tensor> {
    #[cfg(feature = "cpu-kernels")]
    if p > 0.0 && device == Device::Cpu {
        use crate::kernels::dropout::{draw_key, dropout_keep};
        // p is a validated spec value in (0, 1).
        return Some(dropout_keep(draw_key(), &shape, p).unwrap_or_else(|error| panic!("{error}")));
    }
    let _ = (shape, p, device);
    None
}

/// Queries `[B, H, n, hs]` of positions `start..start + n` attend over keys and values
/// `[B, H, len, hs]` of positions `0..len` (`len = start + n`), causally. `future` is the
/// `[n, len]` mask of the positions each query may not see, `bias` an optional `[H, n, len]`
/// addition to the scores (ALiBi); `dropout` applies to the weights.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention(
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
    let whole_sequence = start == 0 && n == len;
    match bias {
        // A float mask is added to the scores: the bias where a token may look, -inf where not.
        Some(bias) => sdpa(
            Some(
                bias.masked_fill(future, f64::NEG_INFINITY)
                    .to_kind(q.kind()),
            ),
            false,
        ),
        // A whole sequence: our kernel where it is the faster or the only one, else the plain
        // causal mask, which the fused kernel applies itself.
        None if whole_sequence => match kernel_attention(q, k, v, scale, dropout) {
            Some(attended) => attended,
            None => sdpa(None, true),
        },
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

/// A whole causal sequence through gptbuild's CPU kernel, where it takes the queries and is
/// chosen for this length, dtype and dropout (`kernels::causal_attention::cpu_attention` says
/// why); `None` leaves it to libtorch. The mask is the one [`attention_dropout_mask`] draws.
fn kernel_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, p: f64) -> Option<Tensor> {
    #[cfg(feature = "cpu-kernels")]
    {
        use crate::kernels::causal_attention::{self as kernel, CpuAttention};
        if !kernel::supports(q) {
            return None;
        }
        match kernel::cpu_attention(q.size()[2], q.kind(), p) {
            CpuAttention::Kernel(route) => {
                // A key only for a mask: without dropout libtorch's generator is left as it
                // was, so evaluation and sampling draw what they drew before.
                let key = if p > 0.0 {
                    crate::kernels::dropout::draw_key()
                } else {
                    0
                };
                Some(
                    kernel::causal_attention_by(route, q, k, v, scale, p, key)
                        .unwrap_or_else(|error| panic!("{error}")),
                )
            }
            CpuAttention::Libtorch => None,
        }
    }
    #[cfg(not(feature = "cpu-kernels"))]
    {
        let _ = (q, k, v, scale, p);
        None
    }
}
