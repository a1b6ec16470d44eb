//! The affine map `y = x Wᵀ + b`, the workhorse of every layer below.
//!
//! Initialised by the model's [`InitScheme`](super::init::InitScheme): by default as PyTorch's
//! `nn.Linear` does, weights and bias uniform in ±1/√fan_in (Kaiming-uniform with a = √5). tch's
//! own default is √6 times wider, which would make our curves differ from the course's from the
//! very first step. Shapes: `[.., in] -> [.., out]`.

use tch::nn::{self, Module};
use tch::Tensor;

use super::init::Role;
use super::Dims;

#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Creates `path.weight` (`[out, in]`) and, if `bias`, `path.bias` (`[out]`), initialised as
    /// the model's scheme says for a layer in this `role`.
    pub fn new(
        path: &nn::Path,
        (in_features, out_features): (i64, i64),
        bias: bool,
        dims: &Dims,
        role: Role,
    ) -> Self {
        let (weight_init, bias_init) = dims.init.linear(in_features, role, dims.n_layer);
        Linear {
            weight: path.var("weight", &[out_features, in_features], weight_init),
            bias: bias.then(|| path.var("bias", &[out_features], bias_init)),
        }
    }

    /// A layer whose weights are an existing `[out, in]` tensor (weight tying), with its own
    /// `path.bias` if `bias`.
    pub fn with_weight(path: &nn::Path, weight: Tensor, bias: bool, dims: &Dims) -> Self {
        let (out_features, in_features) = (weight.size()[0], weight.size()[1]);
        let (_, bias_init) = dims.init.linear(in_features, Role::Inner, dims.n_layer);
        Linear {
            bias: bias.then(|| path.var("bias", &[out_features], bias_init)),
            weight,
        }
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.linear(&self.weight, self.bias.as_ref())
    }
}
