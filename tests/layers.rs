//! Properties of individual layer kinds: the sinusoidal table is the paper's formula, RMSNorm
//! normalises the root mean square (and not the mean), GELU is used where asked, and a model
//! made of the alternative kinds is causal and has exactly the parameters they imply.

mod common;

use common::tolerance::{self, assert_fp32_close, FP32};
use common::{build, spec_from, VOCAB_SIZE};
use gptbuild::layers::position::none::NoPositions;
use gptbuild::layers::position::sinusoidal::sinusoid_table;
use tch::{Device, Kind, Tensor};

#[test]
fn the_sinusoid_table_is_the_papers_formula() {
    let (positions, channels) = (16, 8);
    let table = sinusoid_table(positions, channels, 10_000.0, Device::Cpu);
    assert_eq!(table.size(), [positions, channels]);
    for p in 0..positions {
        for i in 0..channels / 2 {
            let angle = p as f64 / 10_000f64.powf(2.0 * i as f64 / channels as f64);
            let sin = table.double_value(&[p, 2 * i]);
            let cos = table.double_value(&[p, 2 * i + 1]);
            // One rounding to fp32 of values at most 1 (the angles are computed in f64).
            let bound = tolerance::bound(FP32, 1.0, 1.0);
            assert!((sin - angle.sin()).abs() <= bound, "sin at {p},{i}");
            assert!((cos - angle.cos()).abs() <= bound, "cos at {p},{i}");
        }
    }
}

#[test]
fn rmsnorm_normalises_the_root_mean_square_not_the_mean() {
    use gptbuild::layers::norm::rms_norm::RmsNormKind;
    use gptbuild::layers::ResolvedNorm;
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let norm = RmsNormKind { eps: 1e-8 }.build(&vs.root(), 6);
    let x = Tensor::randn([4, 6], (Kind::Float, Device::Cpu)) * 3.0 + 2.0;
    let y = norm.forward_t(&x, false);
    let rms = y.square().mean_dim(-1, false, Kind::Float).sqrt();
    // Normalise, square, mean, root: a few roundings of values near 1 (eps 1e-8 is far below).
    assert!((rms - 1.0).abs().max().double_value(&[]) <= tolerance::bound(FP32, 4.0, 1.0));
    // The mean is not removed: a positive shift stays visible.
    assert!(y.mean(Kind::Float).double_value(&[]) > 0.1);
}

const ALTERNATIVES: &str = "model:
  block_size: 6
  n_embd: 8
  position: {kind: POSITION}
  n_layer: 2
  block:
    attention: {kind: multi_head, n_head: 2}
    feed_forward: {kind: mlp, activation: gelu}
    norm: {kind: rmsnorm}
    norm_placement: pre
  final_norm: {kind: rmsnorm}
";

#[test]
fn models_of_the_alternative_kinds_are_causal_with_the_expected_parameters() {
    let _rng = common::torch_rng();
    for position in ["sinusoidal", "none"] {
        let spec = spec_from(&ALTERNATIVES.replace("POSITION", position));
        let (vs, model) = build(&spec, 1);
        let names: Vec<String> = vs.variables().into_keys().collect();
        assert!(
            !names.iter().any(|n| n.starts_with("position")),
            "{position}: no parameters"
        );
        assert!(names.iter().any(|n| n == "blocks.0.ln1.weight"));
        assert!(
            !names.iter().any(|n| n.ends_with("ln1.bias")),
            "RMSNorm has no bias"
        );
        // token embedding 65x8, per block: attention 3x(2x4x8) + proj 8x8+8, MLP 8x32+32+32x8+8,
        // two gains 8; final gain 8; head 8x65+65.
        let block = 3 * 2 * 4 * 8 + 8 * 8 + 8 + 8 * 32 + 32 + 32 * 8 + 8 + 2 * 8;
        let expected = 65 * 8 + 2 * block + 8 + 8 * 65 + 65;
        let total: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(total, expected, "{position}");

        // Causality: changing the last token changes nothing before it.
        let ids = Tensor::randint(VOCAB_SIZE, [1, 6], (Kind::Int64, Device::Cpu));
        let changed = ids.copy();
        let _ = changed
            .get(0)
            .get(5)
            .fill_((ids.int64_value(&[0, 5]) + 1) % VOCAB_SIZE);
        let (a, b) = tch::no_grad(|| {
            (
                model.forward_t(&ids, false),
                model.forward_t(&changed, false),
            )
        });
        let before = (a.narrow(1, 0, 5) - b.narrow(1, 0, 5))
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(before, 0.0, "{position}");
        let at = (a.narrow(1, 5, 1) - b.narrow(1, 5, 1))
            .abs()
            .max()
            .double_value(&[]);
        assert!(at > 0.0, "{position}");
    }
}

#[test]
fn gelu_is_used_when_asked() {
    let _rng = common::torch_rng();
    let logits = |activation: &str| {
        let spec = spec_from(
            &ALTERNATIVES
                .replace("POSITION", "none")
                .replace("gelu", activation),
        );
        let (_vs, model) = build(&spec, 2);
        let ids = Tensor::from_slice(&[1i64, 2, 3]).unsqueeze(0);
        tch::no_grad(|| model.forward_t(&ids, false))
    };
    let difference = (logits("gelu") - logits("relu"))
        .abs()
        .max()
        .double_value(&[]);
    assert!(
        difference > 1e-6,
        "same weights, other activation: other logits"
    );
}

#[test]
fn odd_widths_cannot_hold_sinusoids() {
    let error = gptbuild::spec::Spec::from_yaml(
        &ALTERNATIVES
            .replace("POSITION", "sinusoidal")
            .replace("n_embd: 8", "n_embd: 7")
            .replace("n_head: 2", "n_head: 7"),
    )
    .unwrap_err();
    assert!(
        error.contains("model.position.kind") && error.contains("even"),
        "{error}"
    );
}

#[test]
fn swiglu_matches_the_mlps_weights_and_the_papers_formula() {
    let _rng = common::torch_rng();
    let spec = |ff: &str| {
        spec_from(&format!(
            "model:\n  block_size: 4\n  n_embd: 48\n  block:\n    attention: {{kind: multi_head, n_head: 4}}\n    feed_forward: {ff}\n"
        ))
    };
    let weights = |ff: &str| -> i64 {
        let (vs, _) = build(&spec(ff), 0);
        vs.variables()
            .iter()
            .filter(|(name, t)| name.contains(".ffwd.") && t.dim() == 2)
            .map(|(_, t)| t.numel() as i64)
            .sum()
    };
    // h = round(2/3 * 4 * 48) = 128; 3 * 48 * 128 = 2 * 48 * 192.
    assert_eq!(weights("{kind: swiglu}"), weights("{kind: mlp}"));
    assert_eq!(weights("{kind: swiglu}"), 3 * 48 * 128);

    let (vs, _) = build(&spec("{kind: swiglu}"), 0);
    let v = vs.variables();
    let w = |name: &str| v[&format!("blocks.0.ffwd.{name}.weight")].shallow_clone();
    use gptbuild::layers::feed_forward::swiglu::SwiGluKind;
    use gptbuild::layers::{ResolveKind, ResolvedFeedForward};
    let dims = spec("{kind: swiglu}").dims(VOCAB_SIZE);
    let layer_vs = tch::nn::VarStore::new(Device::Cpu);
    let layer = SwiGluKind {
        hidden_size: Some(128),
    }
    .resolve(&dims)
    .expect("a valid width")
    .build(&layer_vs.root(), &dims)
    .unwrap();
    let lv = layer_vs.variables();
    let x = Tensor::randn([2, 3, 48], (Kind::Float, Device::Cpu));
    let expected = (x.matmul(&lv["gate.weight"].tr()).silu() * x.matmul(&lv["up.weight"].tr()))
        .matmul(&lv["down.weight"].tr());
    // Two products, a SiLU, a third product.
    assert_fp32_close(&layer.forward_t(&x, false), &expected, 3.0, "swiglu");
    assert_eq!(w("gate").size(), [128, 48]);
    assert_eq!(w("down").size(), [48, 128]);
}

/// With tied embeddings the head reads the embedding matrix itself: zeroing the embedding leaves
/// only the head's bias in the logits, also after the optimizer has moved every parameter into
/// its flat buffer.
#[test]
fn tied_embeddings_are_one_matrix() {
    let _rng = common::torch_rng();
    let yaml = "model:\n  block_size: 4\n  n_embd: 8\n  tie_embeddings: TIE\n  block:\n    attention: {kind: multi_head, n_head: 2}\n";
    let (untied, _) = build(&spec_from(&yaml.replace("TIE", "false")), 0);
    let (vs, model) = build(&spec_from(&yaml.replace("TIE", "true")), 0);
    let count = |vs: &tch::nn::VarStore| -> i64 {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    };
    assert_eq!(
        count(&untied) - count(&vs),
        VOCAB_SIZE * 8,
        "one [vocab, C] matrix fewer"
    );
    assert!(!vs.variables().contains_key("lm_head.weight"));

    let spec = spec_from(&yaml.replace("TIE", "true"));
    let _optimizer =
        gptbuild::train::optim::AdamW::new(vs.trainable_variables(), spec.training.adamw.clone());
    let embedding = vs.variables()["token_embedding.weight"].shallow_clone();
    let _ = tch::no_grad(|| embedding.shallow_clone().zero_());
    let ids = Tensor::from_slice(&[1i64, 2, 3, 4]).unsqueeze(0);
    let logits = tch::no_grad(|| model.forward_t(&ids, false));
    let bias = &vs.variables()["lm_head.bias"];
    let difference = (logits - bias).abs().max().double_value(&[]);
    assert!(
        difference < 1e-6,
        "the head saw the zeroed embedding: {difference}"
    );
}

/// Post-LN normalises after the residual add: every output row has mean 0 and variance 1 (the
/// LayerNorm's gain and bias start at 1 and 0); pre-LN leaves the residual stream unnormalised.
#[test]
fn post_ln_normalises_after_the_residual_add() {
    let _rng = common::torch_rng();
    let output = |placement: &str| {
        let spec = spec_from(&format!(
            "model:\n  block_size: 4\n  n_embd: 16\n  block:\n    attention: {{kind: multi_head, n_head: 2}}\n    \
             feed_forward: {{kind: mlp}}\n    norm_placement: {placement}\n"
        ));
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let block = spec.model.stack()[0].build(&vs.root(), &spec.dims(VOCAB_SIZE));
        let x = Tensor::randn([2, 4, 16], (Kind::Float, Device::Cpu)) * 5.0 + 3.0;
        tch::no_grad(|| block.forward_t(&x, &NoPositions, false))
    };
    let post = output("post");
    let mean = post
        .mean_dim(-1, false, Kind::Float)
        .abs()
        .max()
        .double_value(&[]);
    let variance = post.var_dim(-1, false, false);
    assert!(mean < 1e-4, "{mean}");
    assert!((variance - 1.0).abs().max().double_value(&[]) < 1e-3);
    let pre = output("pre");
    assert!(
        pre.mean_dim(-1, false, Kind::Float)
            .abs()
            .max()
            .double_value(&[])
            > 0.5
    );
}
