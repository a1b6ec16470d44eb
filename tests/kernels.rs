//! gptbuild's CPU kernels equal the plain formulations with the same mask: causal attention with
//! dropout (`kernels::causal_attention`), by both of its routes, against scores, causal mask,
//! softmax, the mask and the product with the values, in values and in the gradients of queries,
//! keys and values; dropout
//! (`kernels::dropout`) against a multiplication by the mask; fp32 and bf16. The mask drops the
//! fraction asked, differs with the key and is the same for the same key. AdamW's one-pass step
//! (`kernels::adamw`) against its formula in fp64. RMSNorm's one-pass kernel (`kernels::rms_norm`)
//! against its formula, in values and in the gradients of the input and the gain. The fp32 linear
//! map through oneDNN (`kernels::linear`) against libtorch's, values and the three gradients.
#![cfg(feature = "cpu-kernels")]

mod common;

use common::tolerance::{compare, Format, BF16, FP32};
use gptbuild::kernels::causal_attention::{
    causal_attention, causal_attention_by, cpu_attention, CpuAttention, Route,
    OVERRIDE as ATTENTION_OVERRIDE,
};
use gptbuild::kernels::dropout::{dropout, dropout_keep};
use gptbuild::kernels::linear;
use gptbuild::kernels::rms_norm::{self, rms_norm};
use gptbuild::ops::adamw::{self, Buffers, StepScalars};
use gptbuild::ops::{fp32_products, Fp32Products};
use tch::{Device, Kind, Tensor};

/// softmax(scale·q·kᵀ, causal), dropped by `keep` and scaled by 1/(1-p), then ·v: the textbook.
fn reference(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, keep: &Tensor, p: f64) -> Tensor {
    let t = q.size()[2];
    let future = Tensor::ones([t, t], (Kind::Bool, Device::Cpu)).triu(1);
    let weights = (q.matmul(&k.transpose(-2, -1)) * scale)
        .masked_fill(&future, f64::NEG_INFINITY)
        .softmax(-1, Kind::Float);
    (weights * keep / (1.0 - p)).to_kind(v.kind()).matmul(v)
}

/// Queries, keys and values `[b, h, t, hs]` of `kind`, from the (locked, seeded) generator.
fn leaves(shape: [i64; 4], kind: Kind) -> [Tensor; 3] {
    [0, 1, 2].map(|_| Tensor::randn(shape, (Kind::Float, Device::Cpu)).to_kind(kind))
}

/// Output and the gradients of q, k, v (fresh leaves of `inputs`) under the upstream gradient
/// `upstream`.
fn run(
    attend: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
    inputs: &[Tensor; 3],
    upstream: &Tensor,
) -> [Tensor; 4] {
    let [q, k, v] = inputs
        .each_ref()
        .map(|x| x.detach().set_requires_grad(true));
    let (q, k, v) = (&q, &k, &v);
    let out = attend(q, k, v);
    // d(Σ out·upstream)/d out = upstream.
    (out.to_kind(Kind::Float) * upstream)
        .sum(Kind::Float)
        .backward();
    [out.detach(), q.grad(), k.grad(), v.grad()].map(|t| t.to_kind(Kind::Float))
}

fn format_of(kind: Kind) -> Format {
    if kind == Kind::BFloat16 {
        BF16
    } else {
        FP32
    }
}

#[test]
fn the_kernel_equals_the_plain_formulation_with_the_same_mask() {
    let _rng = common::torch_rng();
    tch::manual_seed(11);
    let names = ["output", "gradient of q", "gradient of k", "gradient of v"];
    for route in [Route::Products, Route::PerHead] {
        for kind in [Kind::Float, Kind::BFloat16] {
            for (shape, value_width, p) in [
                ([2, 3, 17, 8], 8, 0.2),
                ([1, 2, 64, 16], 16, 0.5),
                ([2, 2, 40, 32], 32, 0.0),
                ([1, 1, 2, 4], 4, 0.01),
                // The course's shape: 8 positions, heads of 8.
                ([4, 4, 8, 8], 8, 0.1),
                // Values of another width than queries and keys.
                ([2, 2, 9, 4], 12, 0.3),
            ] {
                let [q, k, _] = leaves(shape, kind);
                let [v, ..] = leaves([shape[0], shape[1], shape[2], value_width], kind);
                let inputs = [q, k, v];
                let out_shape = [shape[0], shape[1], shape[2], value_width];
                let upstream = Tensor::randn(out_shape, (Kind::Float, Device::Cpu));
                let scale = (shape[3] as f64).powf(-0.5);
                let key = 0x1234_5678_9abc_def0 ^ shape[2] as u64;
                let keep = dropout_keep(key, &[shape[0], shape[1], shape[2], shape[2]], p).unwrap();
                let fast = run(
                    |q, k, v| causal_attention_by(route, q, k, v, scale, p, key).unwrap(),
                    &inputs,
                    &upstream,
                );
                let plain = run(
                    |q, k, v| reference(q, k, v, scale, &keep, p),
                    &inputs,
                    &upstream,
                );
                for ((name, fast), plain) in names.iter().zip(&fast).zip(&plain) {
                    // Two products and a softmax forward; the backward pass goes through them
                    // again.
                    compare(fast, plain, format_of(kind), 6.0)
                        .assert(&format!("{route:?} {kind:?} {shape:?} p {p}: {name}"));
                }
            }
        }
    }
}

/// The two routes agree with each other as closely as each agrees with the textbook, on the
/// shapes where the default switches from one to the other.
#[test]
fn both_routes_agree_where_the_default_switches() {
    let _rng = common::torch_rng();
    tch::manual_seed(16);
    let names = ["output", "gradient of q", "gradient of k", "gradient of v"];
    let longest = Route::PER_HEAD_MAX_LENGTH;
    assert_eq!(Route::for_length(longest), Route::PerHead);
    assert_eq!(Route::for_length(longest + 1), Route::Products);
    for kind in [Kind::Float, Kind::BFloat16] {
        for t in [longest, longest + 1] {
            let shape = [2, 3, t, 16];
            let inputs = leaves(shape, kind);
            let upstream = Tensor::randn(shape, (Kind::Float, Device::Cpu));
            let [per_head, products] = [Route::PerHead, Route::Products].map(|route| {
                run(
                    |q, k, v| causal_attention_by(route, q, k, v, 0.25, 0.2, 77).unwrap(),
                    &inputs,
                    &upstream,
                )
            });
            for ((name, a), b) in names.iter().zip(&per_head).zip(&products) {
                compare(a, b, format_of(kind), 6.0).assert(&format!("{kind:?} T {t}: {name}"));
            }
        }
    }
}

/// Queries, keys and values as the model hands them over, heads strided across one projection
/// (`[B, T, 3, H, hs]` viewed as three `[B, H, T, hs]`), with a strided upstream gradient, give
/// what packed copies give, value for value: the kernel packs what it needs itself.
#[test]
fn strided_views_give_what_packed_copies_give() {
    let _rng = common::torch_rng();
    tch::manual_seed(15);
    let names = ["output", "gradient of q", "gradient of k", "gradient of v"];
    for kind in [Kind::Float, Kind::BFloat16] {
        let projection = Tensor::randn([2, 24, 3, 4, 8], (Kind::Float, Device::Cpu)).to_kind(kind);
        let strided = [0, 1, 2].map(|i| projection.select(2, i).transpose(1, 2));
        assert!(!strided[0].is_contiguous());
        let packed = strided.each_ref().map(|x| x.contiguous());
        let upstream = Tensor::randn([2, 24, 4, 8], (Kind::Float, Device::Cpu)).transpose(1, 2);
        for route in [Route::Products, Route::PerHead] {
            let attend = |q: &Tensor, k: &Tensor, v: &Tensor| {
                causal_attention_by(route, q, k, v, 0.35, 0.2, 5).unwrap()
            };
            let from_views = run(attend, &strided, &upstream);
            let from_copies = run(attend, &packed, &upstream.contiguous());
            for ((name, views), copies) in names.iter().zip(&from_views).zip(&from_copies) {
                assert!(views.equal(copies), "{route:?} {kind:?}: {name}");
            }
        }
        // One head at a time writes the heads side by side, so merging them is a view.
        let out = causal_attention_by(
            Route::PerHead,
            &strided[0],
            &strided[1],
            &strided[2],
            0.35,
            0.2,
            5,
        )
        .unwrap();
        assert!(
            out.transpose(1, 2).is_contiguous(),
            "{kind:?}: heads side by side"
        );
    }
}

/// The same comparison fails, by far, against another key's mask: the test sees the mask, on
/// either route.
#[test]
fn another_keys_mask_is_caught() {
    let _rng = common::torch_rng();
    tch::manual_seed(12);
    let shape = [2, 2, 32, 8];
    let inputs = leaves(shape, Kind::Float);
    let upstream = Tensor::randn(shape, (Kind::Float, Device::Cpu));
    let other = dropout_keep(2, &[2, 2, 32, 32], 0.2).unwrap();
    let plain = run(
        |q, k, v| reference(q, k, v, 0.35, &other, 0.2),
        &inputs,
        &upstream,
    );
    for route in [Route::Products, Route::PerHead] {
        let fast = run(
            |q, k, v| causal_attention_by(route, q, k, v, 0.35, 0.2, 1).unwrap(),
            &inputs,
            &upstream,
        );
        for (fast, plain) in fast.iter().zip(&plain) {
            let comparison = compare(fast, plain, FP32, 6.0);
            assert!(
                comparison.difference > 1000.0 * comparison.bound,
                "{route:?}: another mask should be caught by a wide margin: {comparison:?}"
            );
        }
    }
}

/// Who attends on the CPU by default: the kernel wherever there is dropout or bf16, one head at a
/// time up to 32 positions, libtorch's flash attention for longer fp32 sequences without dropout.
#[test]
fn the_cpu_attention_choice_follows_dropout_dtype_and_length() {
    if std::env::var(ATTENTION_OVERRIDE).is_ok() {
        return; // an override is set for the process: the defaults are not what runs
    }
    let per_head = CpuAttention::Kernel(Route::PerHead);
    let products = CpuAttention::Kernel(Route::Products);
    let cases = [
        (8, Kind::Float, 0.0, per_head),
        (32, Kind::Float, 0.0, per_head),
        (33, Kind::Float, 0.0, CpuAttention::Libtorch),
        (256, Kind::Float, 0.0, CpuAttention::Libtorch),
        (8, Kind::Float, 0.2, per_head),
        (256, Kind::Float, 0.2, products),
        (8, Kind::BFloat16, 0.0, per_head),
        (256, Kind::BFloat16, 0.0, products),
    ];
    for (length, kind, p, expected) in cases {
        assert_eq!(
            cpu_attention(length, kind, p),
            expected,
            "{length} positions, {kind:?}, dropout {p}"
        );
    }
}

/// Without dropout the kernel is plain causal attention: libtorch's own fused kernel agrees.
#[test]
fn without_dropout_the_kernel_equals_libtorchs_attention() {
    let _rng = common::torch_rng();
    tch::manual_seed(13);
    let [q, k, v] = leaves([2, 4, 50, 16], Kind::Float);
    let ours = causal_attention(&q, &k, &v, 0.25, 0.0, 99).unwrap();
    let libtorch = Tensor::scaled_dot_product_attention(
        &q,
        &k,
        &v,
        None::<Tensor>,
        0.0,
        true,
        Some(0.25),
        false,
    );
    compare(&ours, &libtorch, FP32, 3.0).assert("p = 0 against scaled_dot_product_attention");
}

#[test]
fn the_mask_drops_the_fraction_asked_and_depends_on_the_key_alone() {
    for p in [0.1, 0.2, 0.5] {
        let keep = dropout_keep(7, &[64, 4096], p).unwrap();
        let n = keep.numel() as f64;
        let kept = keep.to_kind(Kind::Float).sum(Kind::Float).double_value(&[]) / n;
        // Five standard deviations of a binomial fraction.
        let sigma = (p * (1.0 - p) / n).sqrt();
        assert!(
            (kept - (1.0 - p)).abs() < 5.0 * sigma,
            "p {p}: kept {kept}, expected {} ± {}",
            1.0 - p,
            5.0 * sigma
        );
        // No row or column pattern: every row and every column keeps about 1 - p.
        for (dim, count) in [(1, 4096.0), (0, 64.0)] {
            let fractions = keep.to_kind(Kind::Float).mean_dim(dim, false, Kind::Float);
            let sigma = (p * (1.0 - p) / count).sqrt();
            let worst = (fractions - (1.0 - p)).abs().max().double_value(&[]);
            assert!(
                worst < 6.0 * sigma,
                "p {p}: a row or column keeps {worst} off"
            );
        }
    }
    let a = dropout_keep(7, &[8, 256], 0.2).unwrap();
    assert!(
        a.equal(&dropout_keep(7, &[8, 256], 0.2).unwrap()),
        "same key, same mask"
    );
    assert!(
        !a.equal(&dropout_keep(8, &[8, 256], 0.2).unwrap()),
        "another key, another mask"
    );
    // p = 0 keeps everything.
    let all = dropout_keep(7, &[8, 256], 0.0).unwrap();
    assert!(all.all().int64_value(&[]) == 1);
}

#[test]
fn inputs_the_kernel_cannot_take_are_errors_not_crashes() {
    let q = Tensor::zeros([1, 1, 4, 2], (Kind::Float, Device::Cpu));
    let double = q.to_kind(Kind::Double);
    let three = Tensor::zeros([1, 4, 2], (Kind::Float, Device::Cpu));
    for (what, result) in [
        (
            "fp64",
            causal_attention(&double, &double, &double, 1.0, 0.1, 1),
        ),
        (
            "3 dimensions",
            causal_attention(&three, &three, &three, 1.0, 0.1, 1),
        ),
        ("p = 1", causal_attention(&q, &q, &q, 1.0, 1.0, 1)),
        (
            "mixed dtypes",
            causal_attention(&q, &double, &q, 1.0, 0.1, 1),
        ),
    ] {
        let error = result.expect_err(what).to_string();
        assert!(error.starts_with("causal attention: "), "{what}: {error}");
    }
    assert!(dropout_keep(1, &[2, 2], 1.5).is_err());
}

/// Dropout equals the input times the mask over 1 - p, and so does its gradient, for the shapes the
/// model drops (`[B, T, C]` activations) and odd ones.
#[test]
fn dropout_equals_a_multiplication_by_the_mask() {
    let _rng = common::torch_rng();
    tch::manual_seed(14);
    for kind in [Kind::Float, Kind::BFloat16] {
        for (shape, p) in [(vec![4, 16, 48], 0.2), (vec![3, 5], 0.5), (vec![7], 0.1)] {
            let x = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)).to_kind(kind);
            let upstream = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu));
            let keep = dropout_keep(21, &shape, p).unwrap();
            let through = |drop: &dyn Fn(&Tensor) -> Tensor| {
                let leaf = x.detach().set_requires_grad(true);
                let out = drop(&leaf);
                (out.to_kind(Kind::Float) * &upstream)
                    .sum(Kind::Float)
                    .backward();
                [out.detach(), leaf.grad()].map(|t| t.to_kind(Kind::Float))
            };
            let fast = through(&|x| dropout(x, p, 21).unwrap());
            let plain = through(&|x| (x * &keep / (1.0 - p)).to_kind(kind));
            for (name, (fast, plain)) in ["output", "gradient"].iter().zip(fast.iter().zip(&plain))
            {
                compare(fast, plain, format_of(kind), 1.0)
                    .assert(&format!("dropout {kind:?} {shape:?} p {p}: {name}"));
            }
            // Another key drops other elements: the comparison sees the mask.
            let other = through(&|x| dropout(x, p, 22).unwrap());
            let comparison = compare(&other[0], &plain[0], format_of(kind), 1.0);
            assert!(
                comparison.difference > 10.0 * comparison.bound,
                "another key's mask should be caught: {comparison:?}"
            );
        }
    }
    let double = Tensor::zeros([2, 2], (Kind::Double, Device::Cpu));
    let error = dropout(&double, 0.1, 1).expect_err("fp64").to_string();
    assert!(error.starts_with("dropout: "), "{error}");
}

/// One AdamW step of the kernel equals its formula computed in fp64 from the same fp32 inputs,
/// with and without the decay mask and the gradient's scale, over more values than one thread's
/// share (the split between threads is seen) and a length no vector width divides.
#[test]
fn adamw_step_equals_its_formula() {
    let _rng = common::torch_rng();
    tch::manual_seed(3);
    let n = 70_001;
    let cpu = (Kind::Float, Device::Cpu);
    let s = StepScalars {
        lr_decay: 1e-3 * 0.1,
        avg_weight: 0.1,
        sq_weight: 0.01,
        denom_scale: -1.0 / (1e-3 / 0.19 * 0.0199f64.sqrt()),
        denom_offset: -1e-8 / (1e-3 / 0.19),
    };
    for (masked, scaled) in [(false, false), (true, true), (true, false)] {
        let params = Tensor::randn([n], cpu);
        let grad = Tensor::randn([n], cpu) * 0.5;
        let exp_avg = Tensor::randn([n], cpu) * 0.1;
        let exp_avg_sq = Tensor::rand([n], cpu) * 0.01;
        let mask = Tensor::randint(2, [n], cpu);
        let scale = Tensor::from(0.25f32);
        let [mut p, mut m, mut v] = [&params, &exp_avg, &exp_avg_sq].map(Tensor::copy);
        let buffers = Buffers {
            params: &mut p,
            exp_avg: &mut m,
            exp_avg_sq: &mut v,
            decay_mask: masked.then_some(&mask),
        };
        adamw::kernel_step(buffers, &grad, scaled.then_some(&scale), s).expect("a valid step");

        let f64s = |t: &Tensor| t.to_kind(Kind::Double);
        let g = f64s(&grad) * if scaled { 0.25 } else { 1.0 };
        let decay = if masked {
            f64s(&mask)
        } else {
            Tensor::ones([n], (Kind::Double, Device::Cpu))
        };
        let p0 = f64s(&params);
        let decayed = &p0 - &p0 * decay * s.lr_decay;
        let m_expected = f64s(&exp_avg) + (&g - f64s(&exp_avg)) * s.avg_weight;
        let v_expected = f64s(&exp_avg_sq) + (&g * &g - f64s(&exp_avg_sq)) * s.sq_weight;
        let p_expected =
            decayed + &m_expected / (v_expected.sqrt() * s.denom_scale + s.denom_offset);
        for (name, got, expected) in [
            ("params", &p, &p_expected),
            ("exp_avg", &m, &m_expected),
            ("exp_avg_sq", &v, &v_expected),
        ] {
            // fp32 arithmetic of a few operations on values of this magnitude: a few units of
            // rounding of the largest value; an update off by 1% of a step (~1e-3 · 1%) is ~1e-5.
            let diff = (f64s(got) - expected).abs().max().double_value(&[]);
            let bound = 8.0 * f64::from(f32::EPSILON) * expected.abs().max().double_value(&[]);
            assert!(
                diff <= bound,
                "{name} (mask {masked}, scale {scaled}): off by {diff:.3e}, bound {bound:.3e}"
            );
        }
        assert!(
            (&p - &params).abs().max().double_value(&[]) > 1e-4,
            "the step moved nothing"
        );
    }
}

#[test]
fn adamw_refuses_buffers_it_cannot_take() {
    let cpu = (Kind::Float, Device::Cpu);
    let s = StepScalars {
        lr_decay: 0.0,
        avg_weight: 0.1,
        sq_weight: 0.01,
        denom_scale: -1.0,
        denom_offset: -1e-8,
    };
    let short = Tensor::zeros([3], cpu);
    let double = Tensor::zeros([4], (Kind::Double, Device::Cpu));
    let strided = Tensor::zeros([8], cpu).slice(0, 0, 8, 2);
    for (what, grad) in [("short", &short), ("fp64", &double), ("strided", &strided)] {
        let [mut p, mut m, mut v] = [0; 3].map(|_| Tensor::zeros([4], cpu));
        let buffers = Buffers {
            params: &mut p,
            exp_avg: &mut m,
            exp_avg_sq: &mut v,
            decay_mask: None,
        };
        assert!(!adamw::kernel_takes(&buffers, grad), "{what}");
        let error = adamw::kernel_step(buffers, grad, None, s)
            .expect_err(what)
            .to_string();
        assert!(error.starts_with("kernel adamw: "), "{what}: {error}");
    }
}

/// RMSNorm's kernel equals `x · w / sqrt(mean(x²) + eps)` written in libtorch's ops, in the output
/// and in the gradients of `x` and of the gain, for the model's shapes, widths no vector width
/// divides, more rows than one thread's share (each thread sums its own part of the gain's
/// gradient) and a strided input.
#[test]
fn rms_norm_equals_its_formula() {
    let _rng = common::torch_rng();
    tch::manual_seed(5);
    let cpu = (Kind::Float, Device::Cpu);
    for (shape, eps, strided) in [
        (vec![6, 128, 192], 1e-5, false),
        // 4,096 rows of 64: a chunk per thread (the grain is 512 rows).
        (vec![64, 64, 64], 1e-5, false),
        (vec![3, 7, 13], 1e-6, false),
        (vec![5, 33], 1e-2, true),
        (vec![9, 2], 1e-5, false),
    ] {
        // Scaled away from 1 so that the normalisation (and eps) is seen.
        let x = Tensor::randn(shape.as_slice(), cpu) * 3.0 + 0.5;
        let x = if strided {
            // Every other column of a wider tensor: not contiguous.
            let wide: Vec<i64> =
                [&shape[..shape.len() - 1], &[2 * shape[shape.len() - 1]]].concat();
            (Tensor::randn(wide.as_slice(), cpu) * 3.0).slice(-1, 0, None, 2)
        } else {
            x
        };
        assert_eq!(x.is_contiguous(), !strided);
        let width = shape[shape.len() - 1];
        let weight = Tensor::randn([width], cpu) + 1.0;
        let upstream = Tensor::randn(shape.as_slice(), cpu);
        let through = |norm: &dyn Fn(&Tensor, &Tensor) -> Tensor| {
            let (x, w) = (
                x.detach().set_requires_grad(true),
                weight.detach().set_requires_grad(true),
            );
            let out = norm(&x, &w);
            (&out * &upstream).sum(Kind::Float).backward();
            [out.detach(), x.grad(), w.grad()]
        };
        assert!(rms_norm::supports(&x, &weight));
        let fast = through(&|x, w| rms_norm(x, w, eps).unwrap());
        let plain =
            through(&|x, w| x * (x.square().mean_dim(-1, true, Kind::Float) + eps).rsqrt() * w);
        for ((name, fast), plain) in ["output", "gradient of x", "gradient of the gain"]
            .iter()
            .zip(&fast)
            .zip(&plain)
        {
            // A mean over a row, then the gain's gradient summed over every row.
            compare(fast, plain, FP32, 2.0).assert(&format!("rms_norm {shape:?}: {name}"));
        }
    }
    let bf16 = Tensor::ones([2, 4], (Kind::BFloat16, Device::Cpu));
    let weight = Tensor::ones([4], cpu);
    assert!(!rms_norm::supports(&bf16, &weight));
    assert!(!rms_norm::supports(&Tensor::ones([2, 3], cpu), &weight));
    let error = rms_norm(&bf16, &weight, 1e-5)
        .expect_err("bf16")
        .to_string();
    assert!(error.starts_with("rms_norm: "), "{error}");
}

#[test]
fn the_onednn_linear_equals_the_plain_product() {
    let _rng = common::torch_rng();
    tch::manual_seed(9);
    let cpu = (Kind::Float, Device::Cpu);
    let x = Tensor::randn([2, 3, 4], cpu);
    let w = Tensor::randn([5, 4], cpu);
    if !linear::onednn_runs_fp32() {
        // Without AVX-512 oneDNN's fp32 product refuses, and the layers never ask for it.
        let error = linear::linear(&x, &w, None)
            .expect_err("no AVX-512")
            .to_string();
        assert!(error.starts_with("linear: "), "{error}");
        assert_eq!(fp32_products(), Fp32Products::Mkl);
        return;
    }
    for (shape, out, bias, strided) in [
        // The small shape's products: tokens × width into the MLP and back, and the head.
        (vec![12, 64, 128], 512, true, false),
        (vec![12, 64, 512], 128, true, false),
        (vec![6, 128, 192], 65, false, false),
        (vec![7, 13], 3, true, true),
        (vec![1, 1, 5], 1, false, false),
    ] {
        let x = if strided {
            // Every other column of a wider tensor: not contiguous.
            let wide: Vec<i64> =
                [&shape[..shape.len() - 1], &[2 * shape[shape.len() - 1]]].concat();
            Tensor::randn(wide.as_slice(), cpu).slice(-1, 0, None, 2)
        } else {
            Tensor::randn(shape.as_slice(), cpu)
        };
        let width = shape[shape.len() - 1];
        let w = Tensor::randn([out, width], cpu) / (width as f64).sqrt();
        let b = bias.then(|| Tensor::randn([out], cpu));
        let out_shape: Vec<i64> = [&shape[..shape.len() - 1], &[out]].concat();
        let upstream = Tensor::randn(out_shape.as_slice(), cpu);
        let through = |product: &dyn Fn(&Tensor, &Tensor, Option<&Tensor>) -> Tensor| {
            let (x, w) = (
                x.detach().set_requires_grad(true),
                w.detach().set_requires_grad(true),
            );
            let b = b.as_ref().map(|b| b.detach().set_requires_grad(true));
            let y = product(&x, &w, b.as_ref());
            (&y * &upstream).sum(Kind::Float).backward();
            let db = b.map_or_else(|| Tensor::zeros([1], cpu), |b| b.grad());
            [y.detach(), x.grad(), w.grad(), db]
        };
        let fast = through(&|x, w, b| linear::linear(x, w, b).unwrap());
        let plain = through(&|x, w, b| x.linear(w, b));
        let names = ["output", "gradient of x", "gradient of W", "gradient of b"];
        let compared = if bias { 4 } else { 3 };
        for ((name, fast), plain) in names.iter().zip(&fast).zip(&plain).take(compared) {
            assert_eq!(fast.size(), plain.size(), "{shape:?}: {name}");
            // One product (or one sum over the rows), accumulated in another order.
            compare(fast, plain, FP32, 2.0).assert(&format!("linear {shape:?}: {name}"));
        }
    }
    // The output is a tensor of its own, not a view made inside the autograd node: a layer after
    // it may change it in place (libtorch refuses that for such views).
    let x = Tensor::randn([2, 3, 8], cpu).set_requires_grad(true);
    let mut y = linear::linear(&x, &Tensor::randn([5, 8], cpu), None).unwrap();
    let _ = y.relu_();
    y.sum(Kind::Float).backward();
    assert_eq!(x.grad().size(), [2, 3, 8]);
    // The mutation check: W not transposed (a square W, so that the shapes still fit) differs.
    let x = Tensor::randn([8, 6], cpu);
    let w = Tensor::randn([6, 6], cpu);
    let fast = linear::linear(&x, &w, None).unwrap();
    assert!(!compare(&fast, &x.matmul(&w), FP32, 2.0).is_close());
    let bf16 = x.to_kind(Kind::BFloat16);
    assert!(!linear::supports(&bf16, &w, None));
    // Products too small to pay for oneDNN's set-up stay with libtorch.
    assert!(!linear::supports(&x, &w, None));
    let rows = linear::MIN_PRODUCT / 36;
    let tall = Tensor::zeros([rows + 1, 6], cpu);
    let expected = fp32_products() == Fp32Products::OneDnn;
    assert_eq!(linear::supports(&tall, &w, None), expected);
    let error = linear::linear(&bf16, &w, None)
        .expect_err("bf16")
        .to_string();
    assert!(error.starts_with("linear: "), "{error}");
}
