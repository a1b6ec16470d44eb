//! Root-mean-square normalisation (Zhang & Sennrich 2019, arXiv 1910.07467): divide each token's
//! vector by its RMS over the C features and apply a learned gain — LayerNorm without the mean
//! subtraction and the bias. The paper finds the re-centring unnecessary; RMSNorm is cheaper and
//! is what LLaMA-style models use. Shapes: `[.., C] -> [.., C]`.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, ModuleT};
use tch::Tensor;

use crate::error::SpecError;
use crate::layers::{require_eps, Dims, Layer, ResolveKind, ResolvedNorm};
use crate::ops;

/// `norm: {kind: rmsnorm, eps: 1.0e-5}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RmsNormKind {
    /// Added to the mean square before the square root, for numerical safety.
    #[serde(default = "default_eps")]
    pub eps: f64,
}

fn default_eps() -> f64 {
    1e-5
}

crate::register_kind!(Norm, "rmsnorm", RmsNormKind);

impl ResolveKind for RmsNormKind {
    type Resolved = RmsNormKind;

    fn resolve(&self, _dims: &Dims) -> Result<RmsNormKind, SpecError> {
        require_eps(self.eps)?;
        Ok(self.clone())
    }
}

impl ResolvedNorm for RmsNormKind {
    fn build(&self, path: &nn::Path, width: i64) -> Layer {
        Box::new(RmsNorm {
            weight: path.var("weight", &[width], Init::Const(1.0)),
            eps: self.eps,
        })
    }
}

#[derive(Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl ModuleT for RmsNorm {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        // x / √(mean(x²) + eps) · gain, over the C features of each token.
        ops::rms_norm(x, &self.weight, self.eps)
    }
}
