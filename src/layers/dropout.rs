//! Dropout (Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks from
//! Overfitting", JMLR 15): while training, each activation is zeroed with probability `p` and the
//! survivors are scaled by `1 / (1 - p)`, so that the expected value is unchanged and evaluation
//! (no dropout) sees the same scale. It keeps units from relying on each other; the course applies
//! it after the embeddings, to the attention weights and to each residual branch's output.
//!
//! On the CPU the mask comes from gptbuild's kernel ([`crate::kernels::dropout`]): a hash of a key
//! drawn from libtorch's generator, one pass each way, nothing stored. Elsewhere it is libtorch's.

use tch::Tensor;

use crate::kernels::dropout as kernel;

/// `x` with dropout `p` when `train`, else `x` itself.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x.shallow_clone();
    }
    if kernel::supports(x) {
        // Checked by `supports`, and p is a validated spec value in [0, 1).
        return kernel::dropout(x, p, kernel::draw_key()).unwrap_or_else(|error| panic!("{error}"));
    }
    x.dropout(p, train)
}
