//! Dropout (Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks from
//! Overfitting", JMLR 15): while training, each activation is zeroed with probability `p` and the
//! survivors are scaled by `1 / (1 - p)`, so that the expected value is unchanged and evaluation
//! (no dropout) sees the same scale. It keeps units from relying on each other; the course applies
//! it after the embeddings, to the attention weights and to each residual branch's output.

use tch::Tensor;

use crate::ops;

/// `x` with dropout `p` when `train`, else `x` itself.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    ops::dropout(x, p, train)
}
