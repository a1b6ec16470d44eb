//! The fused formulation of multi-head attention (all heads in one product and one fused
//! attention call) equals the course's one-head-at-a-time formulation: same parameters, same
//! outputs, same gradients, with and without the KV cache.

mod common;

use common::random_spec::random_spec;
use common::{architecture_files, build, load_spec, spec_from, VOCAB_SIZE};
use gptbuild::model::Gpt;
use gptbuild::spec::Spec;
use tch::{Device, Kind, Tensor};

/// `spec` with every multi-head attention switched to `fused`, or `None` if it has none.
fn with_fused(spec: &Spec, fused: bool) -> Option<Spec> {
    let yaml = spec.to_yaml();
    let (from, to) = if fused {
        ("fused: false", "fused: true")
    } else {
        ("fused: true", "fused: false")
    };
    yaml.contains("kind: multi_head")
        .then(|| spec_from(&yaml.replace(from, to)))
}

fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn fused_and_per_head_attention_agree_for_every_architecture() {
    let _rng = common::torch_rng();
    let mut compared = 0;
    for path in architecture_files() {
        compared += assert_formulations_agree(&load_spec(&path), &path.display().to_string());
    }
    assert!(
        compared >= 5,
        "only {compared} architectures have multi-head attention"
    );
}

/// The same for random specs without dropout (so gradients compare too): RoPE, ALiBi, grouped
/// key/value heads, QK-norm, biases, head sizes.
#[test]
fn fused_and_per_head_attention_agree_for_random_architectures() {
    let _rng = common::torch_rng();
    let mut compared = 0;
    for seed in 0..32 {
        let yaml = random_spec(seed).replace("dropout: 0.1", "dropout: 0.0");
        compared += assert_formulations_agree(&spec_from(&yaml), &format!("random spec {seed}"));
    }
    assert!(
        compared >= 20,
        "only {compared} random specs have multi-head attention"
    );
}

/// Checks equal parameters, logits and (without dropout) gradients between the per-head and the
/// fused formulation of `spec`; 1 if it has multi-head attention, else 0.
fn assert_formulations_agree(spec: &Spec, label: &str) -> usize {
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
    let difference =
        tch::no_grad(|| max_difference(&a.forward_t(&ids, false), &b.forward_t(&ids, false)));
    assert!(difference < 1e-5, "{label}: logits differ by {difference}");

    let dims = spec.dims(VOCAB_SIZE);
    if dims.attention_dropout == 0.0
        && dims.residual_dropout == 0.0
        && spec.model.embedding_dropout == 0.0
    {
        // Training mode, through the loss: the same gradient for every parameter.
        let targets = Tensor::randint(VOCAB_SIZE, [2, t], (Kind::Int64, Device::Cpu));
        Gpt::loss(&a.forward_t(&ids, true), &targets).backward();
        Gpt::loss(&b.forward_t(&ids, true), &targets).backward();
        for (name, ta) in vs_a.variables() {
            let tb = &vs_b.variables()[&name];
            let difference = max_difference(&ta.grad(), &tb.grad());
            assert!(
                difference < 1e-5,
                "{label}: gradient of {name} differs by {difference}"
            );
        }
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
            let difference = max_difference(&full, &cached);
            assert!(difference < 1e-5, "fused {fused}: differs by {difference}");
        });
    }
}
