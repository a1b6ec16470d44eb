//! The fused formulation of multi-head attention (all heads in one product and one fused
//! attention call) equals the course's one-head-at-a-time formulation: same parameters, same
//! outputs, same gradients, with and without the KV cache.

mod common;

use common::random_spec::random_spec;
use common::tolerance::{self, assert_fp32_close, compare, model_depth, Comparison, BF16, FP32};
use common::{architecture_files, build, in_fp32, load_spec, spec_from, VOCAB_SIZE};
use gptbuild::layers::attention::scores::{self, Dropout, Visibility};
use gptbuild::model::Gpt;
use gptbuild::spec::Spec;
use tch::{Device, Kind, Tensor};

/// `spec` with every multi-head attention switched to `fused`, or `None` if it has none; in fp32,
/// whose rounding the bounds are derived from.
fn with_fused(spec: &Spec, fused: bool) -> Option<Spec> {
    let yaml = in_fp32(spec).to_yaml();
    let (from, to) = if fused {
        ("fused: false", "fused: true")
    } else {
        ("fused: true", "fused: false")
    };
    yaml.contains("kind: multi_head")
        .then(|| spec_from(&yaml.replace(from, to)))
}

#[test]
fn fused_and_per_head_attention_agree_for_every_architecture() {
    let _rng = common::torch_rng();
    let mut compared = 0;
    for path in architecture_files() {
        let label = path.display().to_string();
        compared += assert_formulations_agree(&load_spec(&path), &label, Gradients::Compared);
    }
    assert!(
        compared >= 5,
        "only {compared} architectures have multi-head attention"
    );
}

/// The same for random specs, with and without dropout: RoPE, ALiBi, grouped key/value heads,
/// QK-norm, biases, head sizes.
#[test]
fn fused_and_per_head_attention_agree_for_random_architectures() {
    let _rng = common::torch_rng();
    let mut compared = 0;
    for seed in 0..32 {
        let yaml = random_spec(seed);
        let without = yaml.replace("dropout: 0.1", "dropout: 0.0");
        let label = format!("random spec {seed}");
        compared += assert_formulations_agree(&spec_from(&without), &label, Gradients::Compared);
        if without != yaml {
            // The training loss sees every mask. Gradients are left out: with dropout, a small
            // parameter's gradient (a QK-norm gain: 2.6e-5, summed over every position) can be
            // the difference of terms a hundred times larger, and its rounding is theirs.
            let label = format!("{label} with dropout");
            assert_formulations_agree(&spec_from(&yaml), &label, Gradients::LeftOut);
        }
    }
    assert!(
        compared >= 20,
        "only {compared} random specs have multi-head attention"
    );
}

/// Whether [`assert_formulations_agree`] compares gradients too.
#[derive(PartialEq)]
enum Gradients {
    Compared,
    LeftOut,
}

/// Checks equal parameters, logits, training loss and gradients between the per-head and the fused
/// formulation of `spec`; 1 if it has multi-head attention, else 0.
fn assert_formulations_agree(spec: &Spec, label: &str, gradients: Gradients) -> usize {
    let (Some(per_head), Some(fused)) = (with_fused(spec, false), with_fused(spec, true)) else {
        return 0;
    };
    let (vs_a, a) = build(&per_head, 3);
    let (vs_b, b) = build(&fused, 3);
    for (name, t) in vs_a.variables() {
        assert!(t.equal(&vs_b.variables()[&name]), "{label}: {name} differs");
    }
    let t = spec.model.block_size.min(64);
    let ids = Tensor::randint(VOCAB_SIZE, [2, t], (Kind::Int64, Device::Cpu));
    let depth = model_depth(spec.model.n_layer());
    let (logits_a, logits_b) =
        tch::no_grad(|| (a.forward_t(&ids, false), b.forward_t(&ids, false)));
    assert_fp32_close(&logits_b, &logits_a, depth, &format!("{label}: logits"));

    // Training mode, through the loss: the same loss and the same gradient for every parameter.
    // With dropout too: both formulations draw their masks in the same order from the same seed,
    // and on the CPU the per-head one applies the fused kernel's attention-weight mask. (With ALiBi
    // libtorch's own attention draws that mask, and without the kernels, `cpu-kernels`, each head
    // draws its own: only the other dropouts can be compared.)
    let alibi = spec.to_yaml().contains("kind: alibi");
    let shared_mask = cfg!(feature = "cpu-kernels") && !alibi;
    if !shared_mask && spec.dims(VOCAB_SIZE).attention_dropout > 0.0 {
        return 1;
    }
    let targets = Tensor::randint(VOCAB_SIZE, [2, t], (Kind::Int64, Device::Cpu));
    let loss = |model: &Gpt| {
        tch::manual_seed(5);
        Gpt::loss(&model.forward_t(&ids, true), &targets)
    };
    let training_loss = |model: &Gpt| tch::no_grad(|| loss(model).double_value(&[]));
    let (loss_a, loss_b) = (training_loss(&a), training_loss(&b));
    let what = format!("{label}: training loss");
    common::tolerance::assert_fp32_close_scalar(loss_b, loss_a, depth, &what);
    if gradients == Gradients::LeftOut {
        return 1;
    }
    // ReLU's kink turns a rounding difference in a pre-activation near 0 into a whole hidden
    // unit's gradient (seen: one unit of task 9's last block carried 98% of a 1% difference in
    // its weight's gradient), so the gradients are compared with GELU in ReLU's place.
    let smooth = |spec: &Spec| {
        spec_from(
            &spec
                .to_yaml()
                .replace("activation: relu", "activation: gelu"),
        )
    };
    let (vs_a, a) = build(&smooth(&per_head), 3);
    let (vs_b, b) = build(&smooth(&fused), 3);
    loss(&a).backward();
    loss(&b).backward();
    for (name, ta) in vs_a.variables() {
        let tb = &vs_b.variables()[&name];
        // The backward pass goes through every layer a second time.
        compare(&tb.grad(), &ta.grad(), FP32, 2.0 * depth)
            .assert(&format!("{label}: gradient of {name}"));
    }
    1
}

/// Several new tokens after cached ones (the case a sliding prompt would need): the cache's
/// masked attention equals the last rows of a full forward pass, in both formulations.
#[test]
fn a_chunk_after_cached_tokens_matches_a_full_pass() {
    let _rng = common::torch_rng();
    for fused in [false, true] {
        let spec = spec_from(&format!(
            "model:\n  block_size: 12\n  n_embd: 16\n  n_layer: 2\n  block:\n    attention: \
             {{kind: multi_head, n_head: 4, fused: {fused}}}\n    feed_forward: {{kind: mlp}}\n    \
             norm_placement: pre\n  final_norm: {{kind: layernorm}}\n"
        ));
        let (_vs, model) = build(&spec, 8);
        let ids = Tensor::randint(VOCAB_SIZE, [2, 12], (Kind::Int64, Device::Cpu));
        tch::no_grad(|| {
            let full = model.forward_t(&ids, false);
            let mut cache = model.new_cache(2, Device::Cpu);
            let first = model.forward_cached(&ids.narrow(1, 0, 5), &mut cache);
            let second = model.forward_cached(&ids.narrow(1, 5, 4), &mut cache);
            let third = model.forward_cached(&ids.narrow(1, 9, 3), &mut cache);
            let cached = Tensor::cat(&[first, second, third], 1);
            assert_fp32_close(&cached, &full, model_depth(2), &format!("fused {fused}"));
        });
    }
}

/// The bound above still catches a real layout error: the fused formulation with two heads' key
/// weights swapped (a head attending with another head's keys) differs far beyond rounding.
#[test]
fn a_head_reading_another_heads_keys_is_caught() {
    let _rng = common::torch_rng();
    let yaml = "model:\n  block_size: 16\n  n_embd: 32\n  n_layer: 2\n  block:\n    attention: \
                {kind: multi_head, n_head: 4, fused: FUSED}\n    feed_forward: {kind: mlp}\n    \
                norm_placement: pre\n  final_norm: {kind: layernorm}\n";
    let (_vs_a, per_head) = build(&spec_from(&yaml.replace("FUSED", "false")), 3);
    let (vs_b, fused) = build(&spec_from(&yaml.replace("FUSED", "true")), 3);
    let hs = 8;
    tch::no_grad(|| {
        let qkv = vs_b.variables()["blocks.0.attn.qkv.weight"].shallow_clone();
        // Rows: 4 query heads, then the keys of heads 0..4, then the values.
        let keys = qkv.narrow(0, 4 * hs, 2 * hs).copy();
        let swapped = Tensor::cat(&[keys.narrow(0, hs, hs), keys.narrow(0, 0, hs)], 0);
        qkv.narrow(0, 4 * hs, 2 * hs).copy_(&swapped);
    });
    let ids = Tensor::randint(VOCAB_SIZE, [2, 16], (Kind::Int64, Device::Cpu));
    let (a, b) = tch::no_grad(|| {
        (
            per_head.forward_t(&ids, false),
            fused.forward_t(&ids, false),
        )
    });
    let comparison = compare(&b, &a, FP32, model_depth(2));
    assert!(
        comparison.difference > 100.0 * comparison.bound,
        "swapped keys should be caught by a wide margin: {comparison:?}"
    );
}

/// The GPU's decoding path ([`scores::attend`] for all heads at once: one new token attending over
/// the whole cache, as two products and a softmax) equals libtorch's `scaled_dot_product_attention`, the path it
/// replaces there, for every cache length in fp32 and in bf16; and the bound catches a dropped
/// scale. Run on the CPU, where the arithmetic is the same.
#[test]
fn one_query_over_the_cache_equals_sdpa_for_every_cache_length() {
    let _rng = common::torch_rng();
    tch::manual_seed(17);
    let (batch, heads, hs) = (2, 3, 8);
    let scale = 1.0 / (hs as f64).sqrt();
    for (kind, format) in [(Kind::Float, FP32), (Kind::BFloat16, BF16)] {
        for len in [1, 2, 7, 33, 256] {
            let randn = |n: i64| Tensor::randn([batch, heads, n, hs], (Kind::Float, Device::Cpu));
            let (q, k, v) = (
                randn(1).to_kind(kind),
                randn(len).to_kind(kind),
                randn(len).to_kind(kind),
            );
            let sdpa = |scale: f64| {
                Tensor::scaled_dot_product_attention(
                    &q,
                    &k,
                    &v,
                    None::<Tensor>,
                    0.0,
                    false,
                    Some(scale),
                    false,
                )
                .to_kind(Kind::Float)
            };
            let visibility = Visibility {
                future: &Tensor::zeros([1, len], (Kind::Bool, Device::Cpu)),
                bias: None,
            };
            let ours =
                scores::attend(&q, &k, &v, &visibility, scale, &Dropout::None).to_kind(Kind::Float);
            // The output is a weighted mean of the values, so its rounding is relative to their
            // magnitude, not to the mean's (which shrinks as the cache grows). Four roundings: the
            // scores' product, the softmax, the weights' cast and the weighted sum.
            let against = |expected: &Tensor| {
                let scale = tolerance::scale(&v.to_kind(Kind::Float));
                Comparison {
                    difference: tolerance::max_difference(&ours, expected),
                    bound: tolerance::bound(format, 4.0, scale),
                    scale,
                }
            };
            against(&sdpa(scale)).assert(&format!("{kind:?}, cache of {len}"));
            if len > 1 {
                let comparison = against(&sdpa(1.0));
                assert!(
                    comparison.difference > 2.0 * comparison.bound,
                    "a dropped scale should be caught ({kind:?}, {len}): {comparison:?}"
                );
            }
        }
    }
}
