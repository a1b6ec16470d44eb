//! Layer normalisation (Ba, Kiros & Hinton 2016, arXiv 1607.06450): rescale each token's vector to
//! zero mean and unit variance over its C features, then apply a learned gain and bias. It keeps
//! activations well scaled however deep the stack, which is what makes deep transformers trainable.
//! Shapes: `[.., C] -> [.., C]`.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, ModuleT};
use tch::Tensor;

use crate::error::SpecError;
use crate::layers::{require_eps, Dims, Layer, ResolveKind, ResolvedNorm};

/// `norm: {kind: layernorm, eps: 1.0e-5}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerNormKind {
    /// Added to the variance before the square root, for numerical safety.
    #[serde(default = "default_eps")]
    pub eps: f64,
}

fn default_eps() -> f64 {
    1e-5
}

impl Default for LayerNormKind {
    fn default() -> Self {
        LayerNormKind { eps: default_eps() }
    }
}

crate::register_kind!(Norm, "layernorm", LayerNormKind);

impl ResolveKind for LayerNormKind {
    type Resolved = LayerNormKind;

    fn resolve(&self, _dims: &Dims) -> Result<LayerNormKind, SpecError> {
        require_eps(self.eps)?;
        Ok(self.clone())
    }
}

impl ResolvedNorm for LayerNormKind {
    fn build(&self, path: &nn::Path, width: i64) -> Layer {
        Box::new(LayerNorm {
            weight: path.var("weight", &[width], Init::Const(1.0)),
            bias: path.var("bias", &[width], Init::Const(0.0)),
            width,
            eps: self.eps,
        })
    }
}

#[derive(Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    width: i64,
    eps: f64,
}

impl ModuleT for LayerNorm {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        x.layer_norm(
            [self.width],
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
    }
}
