//! The affine map `y = x Wᵀ + b`, the workhorse of every layer below.
//!
//! Initialised by the model's [`InitScheme`](super::init::InitScheme): by default as PyTorch's
//! `nn.Linear` does, weights and bias uniform in ±1/√fan_in (Kaiming-uniform with a = √5). tch's
//! own default is √6 times wider, which would make our curves differ from the course's from the
//! very first step. Shapes: `[.., in] -> [.., out]`.
//!
//! The fp32 product is [`ops::linear`](crate::ops::linear), which picks the library that
//! multiplies fastest on this machine.
//!
//! Under mixed precision ([`crate::layers::precision`]) the product runs in bf16 on bf16 copies of the
//! input and the fp32 weights; [`Linear::forward`] returns fp32, [`Linear::forward_compute`] leaves
//! the output in bf16 for a layer that multiplies it again.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::init::Role;
use super::Dims;
use crate::ops;

#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// The dtype of the product.
    compute: Kind,
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
            compute: dims.compute,
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
            compute: dims.compute,
        }
    }

    /// `x Wᵀ + b` in the compute dtype, output left in it (fp32 when the model computes in fp32).
    pub fn forward_compute(&self, xs: &Tensor) -> Tensor {
        if self.compute == Kind::Float {
            return ops::linear(xs, &self.weight, self.bias.as_ref());
        }
        let cast = |t: &Tensor| t.to_kind(self.compute);
        cast(xs).linear(&cast(&self.weight), self.bias.as_ref().map(cast).as_ref())
    }
}

impl Module for Linear {
    /// `x Wᵀ + b`, returned in fp32 whatever the compute dtype.
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.forward_compute(xs).to_kind(Kind::Float)
    }
}
