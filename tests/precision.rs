//! bf16 mixed precision: the products run in bf16, everything that accumulates stays fp32. The
//! model computes nearly what it computes in fp32, its weights and gradients stay fp32 (so
//! checkpoints and the optimizer are unchanged), and generation with the cache still works.

mod common;

use common::random_spec::random_spec;
use common::tolerance::{compare, model_depth, BF16};
use common::{architecture_files, build, load_spec, spec_from, VOCAB_SIZE};
use gptbuild::layers::precision::Precision;
use gptbuild::model::Gpt;
use gptbuild::spec::Spec;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn with_precision(spec: &Spec, precision: Precision) -> Spec {
    let mut spec = spec_from(&spec.to_yaml());
    spec.training.precision = precision;
    spec
}

/// Logits of the same weights in both precisions: bf16 keeps 8 significant bits, so they differ by
/// bf16 rounding relative to their scale, per layer (`common::tolerance::BF16`), not more.
#[test]
fn bf16_logits_are_close_to_fp32() {
    let _rng = common::torch_rng();
    let mut specs: Vec<(String, Spec)> = architecture_files()
        .iter()
        .map(|p| (p.display().to_string(), load_spec(p)))
        .collect();
    specs
        .extend((0..12).map(|seed| (format!("random spec {seed}"), spec_from(&random_spec(seed)))));
    for (label, spec) in specs {
        let (_vs, fp32) = build(&with_precision(&spec, Precision::Fp32), 2);
        let (_vs, bf16) = build(&with_precision(&spec, Precision::Bf16), 2);
        let t = spec.model.block_size.min(32);
        let ids = Tensor::randint(VOCAB_SIZE, [2, t], (Kind::Int64, Device::Cpu));
        let (a, b) = tch::no_grad(|| (fp32.forward_t(&ids, false), bf16.forward_t(&ids, false)));
        assert_eq!(b.kind(), Kind::Float, "{label}: logits come back in fp32");
        let comparison = compare(&b, &a, BF16, model_depth(spec.model.n_layer()));
        comparison.assert(&format!("{label}: bf16 logits"));
        assert!(
            comparison.difference > 0.0,
            "{label}: bf16 changed nothing; is it on?"
        );
    }
}

/// A bf16 training step updates fp32 weights with fp32 gradients, finite and non-zero.
#[test]
fn bf16_training_keeps_fp32_weights_and_gradients() {
    let _rng = common::torch_rng();
    let spec = with_precision(
        &load_spec(&common::repo_root().join("architectures/task06.yaml")),
        Precision::Bf16,
    );
    let (vs, model) = build(&spec, 3);
    let ids = Tensor::randint(VOCAB_SIZE, [4, 8], (Kind::Int64, Device::Cpu));
    let targets = Tensor::randint(VOCAB_SIZE, [4, 8], (Kind::Int64, Device::Cpu));
    let loss = Gpt::loss(&model.forward_t(&ids, true), &targets);
    assert_eq!(loss.kind(), Kind::Float);
    loss.backward();
    for (name, variable) in vs.variables() {
        assert_eq!(variable.kind(), Kind::Float, "{name}");
        let grad = variable.grad();
        assert_eq!(grad.kind(), Kind::Float, "{name}: gradient");
        let norm = grad.norm().double_value(&[]);
        assert!(
            norm.is_finite() && norm > 0.0,
            "{name}: gradient norm {norm}"
        );
    }
}

/// Cached generation in bf16 follows a bf16 full recompute closely.
#[test]
fn bf16_cached_logits_follow_the_full_recompute() {
    let _rng = common::torch_rng();
    for seed in [1, 4, 9] {
        let spec = with_precision(&spec_from(&random_spec(seed)), Precision::Bf16);
        let (_vs, model) = build(&spec, 1);
        let t = spec.model.block_size;
        let ids = Tensor::randint(VOCAB_SIZE, [1, t], (Kind::Int64, Device::Cpu));
        tch::no_grad(|| {
            let full = model.forward_t(&ids, false);
            let mut cache = model.new_cache(1, Device::Cpu);
            let steps: Vec<Tensor> = (0..t)
                .map(|i| model.forward_cached(&ids.narrow(1, i, 1), &mut cache))
                .collect();
            let cached = Tensor::cat(&steps, 1);
            compare(&cached, &full, BF16, model_depth(spec.model.n_layer()))
                .assert(&format!("spec {seed}: bf16 cached logits"));
        });
    }
}

/// The bf16 bound still catches a real error: a bf16 model whose learned positions are shifted by
/// one (position p reads the vector of p + 1) differs from fp32 far beyond bf16 rounding.
#[test]
fn shifted_positions_are_caught_at_the_bf16_bound() {
    let _rng = common::torch_rng();
    let mut checked = 0;
    for path in architecture_files() {
        let spec = load_spec(&path);
        let (_vs, fp32) = build(&with_precision(&spec, Precision::Fp32), 2);
        let (vs, bf16) = build(&with_precision(&spec, Precision::Bf16), 2);
        if !shift_positions_by_one(&vs) {
            continue;
        }
        let t = spec.model.block_size.min(32);
        let ids = Tensor::randint(VOCAB_SIZE, [2, t], (Kind::Int64, Device::Cpu));
        let (a, b) = tch::no_grad(|| (fp32.forward_t(&ids, false), bf16.forward_t(&ids, false)));
        let comparison = compare(&b, &a, BF16, model_depth(spec.model.n_layer()));
        assert!(
            comparison.difference > comparison.bound,
            "{}: shifted positions should be caught: {comparison:?}",
            path.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 5,
        "only {checked} architectures have learned positions"
    );
}

/// Rolls a learned position table by one row; false if the model has none.
fn shift_positions_by_one(vs: &VarStore) -> bool {
    let Some(table) = vs
        .variables()
        .get("position.weight")
        .map(Tensor::shallow_clone)
    else {
        return false;
    };
    let rolled = table.roll([-1], [0]);
    tch::no_grad(|| table.shallow_clone().copy_(&rolled));
    true
}
