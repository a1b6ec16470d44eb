//! Keeping activations well scaled: [`layer_norm`] (mean and variance) or [`rms_norm`] (the root
//! mean square only).

pub mod layer_norm;
pub mod rms_norm;
