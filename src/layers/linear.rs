//! The affine map `y = x Wᵀ + b`, the workhorse of every layer below.
//!
//! Initialised as PyTorch's `nn.Linear` does by default: weights and bias uniform in
//! ±1/√fan_in (Kaiming-uniform with a = √5). tch's own default is √6 times wider, which would make
//! our curves differ from the course's from the very first step. Shapes: `[.., in] -> [.., out]`.

use tch::nn::{self, Init, Module};
use tch::Tensor;

#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Creates `path.weight` (`[out, in]`) and, if `bias`, `path.bias` (`[out]`).
    pub fn new(path: &nn::Path, in_features: i64, out_features: i64, bias: bool) -> Self {
        let bound = 1.0 / (in_features as f64).sqrt();
        let uniform = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Linear {
            weight: path.var("weight", &[out_features, in_features], uniform),
            bias: bias.then(|| path.var("bias", &[out_features], uniform)),
        }
    }
}

impl Linear {
    /// A layer whose weights are an existing `[out, in]` tensor (weight tying), with its own
    /// `path.bias` if `bias`.
    pub fn with_weight(path: &nn::Path, weight: Tensor, bias: bool) -> Self {
        let bound = 1.0 / (weight.size()[1] as f64).sqrt();
        let uniform = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let out_features = weight.size()[0];
        Linear {
            bias: bias.then(|| path.var("bias", &[out_features], uniform)),
            weight,
        }
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.linear(&self.weight, self.bias.as_ref())
    }
}
