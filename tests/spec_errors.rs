//! Bad specs are errors that name the offending field, never panics or silently ignored keys.

mod common;

use gptbuild::spec::Spec;

const GOOD: &str = "
model:
  block_size: 8
  n_embd: 32
  n_layer: 2
  block:
    attention: {kind: multi_head, n_head: 4, projection: true}
    feed_forward: {kind: mlp}
";

/// `GOOD` with `from` replaced by `to`.
fn variant(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from:?} is not in the base spec");
    GOOD.replacen(from, to, 1)
}

fn error_of(yaml: &str) -> String {
    match Spec::from_yaml(yaml) {
        Ok(spec) => panic!("expected an error, got {spec:?}\n{yaml}"),
        Err(message) => message,
    }
}

#[test]
fn the_base_spec_is_valid() {
    let spec = Spec::from_yaml(GOOD).expect("valid");
    assert_eq!(spec.model.n_layer(), 2);
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(String, &[&str])> = vec![
        ("".into(), &["empty"]),
        ("# only a comment\n".into(), &["empty"]),
        ("- a\n- b\n".into(), &["invalid type: sequence"]),
        ("model: [\n".into(), &["line 1"]),
        (
            variant("n_layer: 2", "n_layer: 2\n  colour: blue"),
            &["model", "unknown field `colour`"],
        ),
        (
            variant("n_embd: 32", "n_embd: lots"),
            &["model.n_embd", "invalid type"],
        ),
        (
            variant("n_embd: 32", "n_embd: 0"),
            &["model.n_embd", "at least 1"],
        ),
        (
            variant("block_size: 8", "block_size: -3"),
            &["model.block_size", "at least 1"],
        ),
        (
            variant("n_layer: 2", "n_layer: 2\n  dropout: 1.0"),
            &["model.dropout", "[0, 1)"],
        ),
        (
            variant("n_layer: 2", "n_layer: 2\n  dropout: -0.1"),
            &["model.dropout"],
        ),
        (
            variant("n_head: 4", "n_head: 5"),
            &["model.block.attention.n_head", "not divisible"],
        ),
        (
            variant("n_head: 4", "n_head: 0"),
            &["model.block.attention.n_head", "at least 1"],
        ),
        (
            variant("projection: true", "projection: true, head_size: 0"),
            &["model.block.attention.head_size"],
        ),
        (
            variant("projection: true", "projection: false, head_size: 4"),
            &["model.block.attention", "outputs 16 channels"],
        ),
        (
            variant("{kind: multi_head", "{kind: telepathy"),
            &["unknown variant `telepathy`", "multi_head"],
        ),
        (
            variant(
                "{kind: mlp}",
                "{kind: mlp, hidden_multiplier: 4, hidden_size: 100}",
            ),
            &["model.block.feed_forward.hidden_size", "not both"],
        ),
        (
            variant("{kind: mlp}", "{kind: mlp, width: 3}"),
            &["unknown field `width`"],
        ),
        (
            variant("{kind: mlp}", "{kind: mlp}\n    norm: {kind: layernorm}"),
            &["model.block.norm", "norm_placement"],
        ),
        (
            variant("{kind: mlp}", "{kind: mlp}\n    norm_placement: sideways"),
            &["norm_placement", "unknown variant"],
        ),
        (
            variant(
                "{kind: mlp}",
                "{kind: mlp}\n    norm: {kind: layernorm, eps: 0}\n    norm_placement: pre",
            ),
            &["model.block.norm.eps"],
        ),
        (
            format!("{GOOD}training: {{learning_rate: 0}}\n"),
            &["training.learning_rate", "positive"],
        ),
        (
            format!("{GOOD}training: {{batch_size: 0}}\n"),
            &["training.batch_size"],
        ),
        (
            format!("{GOOD}training: {{eval_interval: 0}}\n"),
            &["training.eval_interval"],
        ),
        (
            format!("{GOOD}training: {{adamw: {{beta1: 1.5}}}}\n"),
            &["training.adamw.beta1"],
        ),
        (
            format!("{GOOD}training: {{device: tpu}}\n"),
            &["training.device", "unknown variant `tpu`"],
        ),
        (
            format!("{GOOD}data: {{train_fraction: 1.0}}\n"),
            &["data.train_fraction"],
        ),
        (
            format!("{GOOD}sampling: {{temperature: 0}}\n"),
            &["sampling.temperature"],
        ),
        (format!("{GOOD}extra: 1\n"), &["unknown field `extra`"]),
        (
            format!("name: ../../elsewhere\n{GOOD}"),
            &["name", "cannot name a directory"],
        ),
        (
            "training: {batch_size: 4}\n".into(),
            &["missing field `model`"],
        ),
        (
            variant("n_head: 4,", "n_head: 4, n_kv_head: 3,"),
            &["model.block.attention.n_kv_head", "must divide n_head (4)"],
        ),
        (
            variant("n_layer: 2", "n_layer: 2\n  position: {kind: rope}")
                .replace("n_head: 4,", "n_head: 4, head_size: 7,"),
            &["model.position.kind", "head_size (7) must be even"],
        ),
        (
            variant("n_layer: 2", "n_layer: 2\n  position: {kind: rope, theta: 0.5}"),
            &["model.position.theta"],
        ),
        (
            variant("n_layer: 2", "n_layer: 2\n  position: {kind: spiral}"),
            &["model.position", "unknown variant `spiral`"],
        ),
        (
            variant("projection: true}", "projection: true, qk_norm: cosine}"),
            &["qk_norm", "unknown variant `cosine`"],
        ),
        (
            variant("n_layer: 2", "n_layer: 2\n  attention_dropout: 1.5"),
            &["model.attention_dropout", "[0, 1)"],
        ),
        (
            variant("n_layer: 2", "n_layer: 2\n  init: xavier"),
            &["model.init", "unknown variant `xavier`"],
        ),
        (
            variant("n_layer: 2", "n_layer: 2\n  blocks: []"),
            &["model.blocks", "not both"],
        ),
        (
            GOOD.replace(
                "  block:\n    attention",
                "  blocks:\n  - attention",
            ),
            &["model.n_layer", "is 2 but `blocks` lists 1"],
        ),
        (
            GOOD.replace("  n_layer: 2\n", "")
                .replace("  block:\n    attention: {kind: multi_head, n_head: 4, projection: true}\n    feed_forward: {kind: mlp}\n", ""),
            &["model.block", "is missing"],
        ),
    ];
    for (yaml, expected) in cases {
        let message = error_of(&yaml);
        for needle in expected {
            assert!(
                message.contains(needle),
                "error {message:?} should mention {needle:?}\nspec:\n{yaml}"
            );
        }
        assert!(
            !message.contains('\n'),
            "error should be one line: {message:?}"
        );
    }
}

#[test]
fn a_missing_spec_file_is_an_error_naming_it() {
    let error = Spec::load(std::path::Path::new("no/such/spec.yaml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("no/such/spec.yaml"), "{error}");
}
