//! The per-token computation after attention ("tokens think on their own"): nothing ([`none`]),
//! one Linear + ReLU ([`linear`], the course's step 3), the Transformer's MLP ([`mlp`]) or SwiGLU
//! ([`swiglu`]).

pub mod linear;
pub mod mlp;
pub mod none;
pub mod swiglu;
