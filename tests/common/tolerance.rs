//! How far apart two computations of the same numbers may be, on any CPU.
//!
//! libtorch picks its kernels by the CPU it runs on (MKL, oneDNN; AVX2, AVX-512, AMX) and splits
//! reductions by the thread count, so two correct computations of one value add up their terms in
//! different orders and differ by rounding. Rounding is *relative*: a few units of the format's
//! epsilon times the magnitudes involved, for every operation a value passes through. An absolute
//! bound such as 1e-5 is therefore a property of one machine (it failed at 1.0000e-5 on a Xeon with
//! AMX for a test written on Zen 5). Every bound here is
//!
//! ```text
//! ulps × epsilon × depth × scale
//! ```
//!
//! - `scale`: the largest magnitude among the values compared (a tensor's max |x|);
//! - `depth`: how many layers of computation the values went through (each adds its own
//!   rounding, and the residual stream carries it to the end); [`model_depth`] for a whole model;
//! - `epsilon`: the format's machine epsilon, fp32's 2⁻²³ or bf16's 2⁻⁷ ([`Format`]);
//! - `ulps`: the format's allowance per layer, set well above the worst seen over native,
//!   `default` and `avx2` kernels at 1 and 2 threads (`cargo test -- --nocapture` prints each
//!   comparison's share of its bound).
//!
//! A real error — a shifted position, a dropped mask, a head reading the wrong keys — moves values
//! by a sizeable fraction of their scale, thousands of times such a bound; each family of tests
//! keeps a mutation check that shows its bound still catches one.

use tch::Tensor;

/// A floating-point format: its machine epsilon, and the units of it allowed per layer.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub epsilon: f64,
    pub ulps: f64,
}

/// fp32: epsilon 2⁻²³; 64 units per layer. The worst comparison measured used 0.17 of it (a
/// gradient of a QK-norm gain, summed over every position, under MKL's SSE4.2 kernels); logits
/// used at most 0.027.
pub const FP32: Format = Format {
    epsilon: f32::EPSILON as f64,
    ulps: 64.0,
};

/// bf16 (8 significant bits): epsilon 2⁻⁷. Mixed precision rounds each product's inputs to bf16
/// (half an epsilon each, relative) and accumulates in fp32, so a layer adds about one epsilon
/// relative to its scale, whatever the kernel: 1 unit per layer (the worst measured used 0.4).
pub const BF16: Format = Format {
    epsilon: 1.0 / 128.0,
    ulps: 1.0,
};

/// fp16 (11 significant bits): epsilon 2⁻¹⁰. llama.cpp's CPU products with f16 weights round
/// their activations to f16 too, and its GELU reads an f16 table: about one epsilon per layer,
/// relative to the scale, as bf16's.
pub const F16: Format = Format {
    epsilon: 1.0 / 1024.0,
    ulps: 1.0,
};

/// Q8_0 (llama.cpp's 8-bit blocks): a product with Q8_0 weights quantizes its activations to
/// Q8_0 as well, each value off by up to half a step of its block, 1/254 of the block's largest;
/// epsilon is one step, 1/127 of it, one unit per layer.
pub const Q8_0: Format = Format {
    epsilon: 1.0 / 127.0,
    ulps: 1.0,
};

/// Layers a model's logits go through: the embedding, every block, the head.
pub fn model_depth(n_layer: i64) -> f64 {
    (n_layer + 2) as f64
}

/// The largest magnitude in a tensor.
pub fn scale(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

/// The largest difference between two tensors of one shape.
pub fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The bound for values of magnitude up to `scale` after `depth` layers computed in `format`.
pub fn bound(format: Format, depth: f64, scale: f64) -> f64 {
    format.ulps * format.epsilon * depth * scale
}

/// Whether `actual` equals `expected` up to rounding, with the difference and the bound; the
/// scale is the larger of the two tensors' magnitudes. A NaN anywhere is never close.
pub fn compare(actual: &Tensor, expected: &Tensor, format: Format, depth: f64) -> Comparison {
    let scale = scale(actual).max(scale(expected));
    Comparison {
        difference: max_difference(actual, expected),
        bound: bound(format, depth, scale),
        scale,
    }
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    pub difference: f64,
    pub bound: f64,
    pub scale: f64,
}

impl Comparison {
    /// Written so that a NaN difference is not close.
    pub fn is_close(&self) -> bool {
        self.difference <= self.bound
    }

    /// Panics unless close, naming `label`; prints the share of the bound used (seen with
    /// `--nocapture`), which is how the bounds' margins were measured.
    pub fn assert(&self, label: &str) {
        println!(
            "tolerance {:.4} of bound: {label} (difference {:.3e}, scale {:.3e})",
            self.difference / self.bound,
            self.difference,
            self.scale
        );
        assert!(
            self.is_close(),
            "{label}: differs by {:.3e}, over the rounding bound {:.3e} (scale {:.3e})",
            self.difference,
            self.bound,
            self.scale
        );
    }
}

/// Asserts that two fp32 tensors agree up to rounding after `depth` layers.
pub fn assert_fp32_close(actual: &Tensor, expected: &Tensor, depth: f64, label: &str) {
    compare(actual, expected, FP32, depth).assert(label);
}

/// The same for two scalars.
pub fn assert_fp32_close_scalar(actual: f64, expected: f64, depth: f64, label: &str) {
    let scale = actual.abs().max(expected.abs());
    Comparison {
        difference: (actual - expected).abs(),
        bound: bound(FP32, depth, scale),
        scale,
    }
    .assert(label);
}
