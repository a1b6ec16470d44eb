//! Property-based fuzzing (proptest): no spec text and no checkpoint file, however mangled, makes
//! the parser or the loader panic — they return errors.

mod common;

use gptbuild::artifacts::checkpoint;
use gptbuild::data::vocab::Vocabulary;
use gptbuild::spec::Spec;
use proptest::prelude::*;
use tch::Device;

/// A course spec's text, the seed every mutation starts from.
fn task06() -> String {
    std::fs::read_to_string(common::repo_root().join("architectures/task06.yaml")).unwrap()
}

/// Bytes of a valid (untrained) task03 checkpoint.
fn checkpoint_bytes() -> Vec<u8> {
    let spec = common::load_spec(&common::repo_root().join("architectures/task03.yaml"));
    let (vs, _) = common::build(&spec, 0);
    let vocab =
        Vocabulary::from_text("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?'\n-&3$");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    checkpoint::save(&path, &vs, &spec, &vocab, 7).unwrap();
    std::fs::read(path).unwrap()
}

/// YAML-ish text built from the spec's own vocabulary of keys and values.
fn yamlish() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "model",
        "training",
        "data",
        "sampling",
        "name",
        "block_size",
        "n_embd",
        "dropout",
        "position",
        "kind",
        "n_layer",
        "block",
        "attention",
        "feed_forward",
        "norm",
        "norm_placement",
        "final_norm",
        "n_head",
        "head_size",
        "projection",
        "residual",
        "hidden_multiplier",
        "hidden_size",
        "eps",
        "batch_size",
        "learning_rate",
        "top_k",
        "top_p",
        "adamw",
        "beta1",
        "seed",
        "device",
        "path",
        "train_fraction",
        "max_iters",
    ]);
    let value = prop::sample::select(vec![
        "0",
        "-1",
        "1",
        "8",
        "32",
        "1e309",
        "-0.5",
        "0.999",
        "1.0",
        ".nan",
        "true",
        "null",
        "~",
        "multi_head",
        "head",
        "mlp",
        "linear",
        "none",
        "learned",
        "layernorm",
        "pre",
        "cuda",
        "[]",
        "{}",
        "[1, 2]",
        "{kind: head}",
        "9223372036854775807",
        "18446744073709551616",
        "\"\"",
        "'x'",
        "|",
        "&a",
        "*a",
        "!!binary AAAA",
    ]);
    let line = (0usize..4, key, value)
        .prop_map(|(indent, k, v)| format!("{}{k}: {v}", "  ".repeat(indent)));
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_parsed_or_rejected(text in "\\PC{0,300}") {
        let _ = Spec::from_yaml(&text);
    }

    #[test]
    fn yaml_shaped_specs_are_parsed_or_rejected(text in yamlish()) {
        let _ = Spec::from_yaml(&text);
    }

    #[test]
    fn mutated_course_specs_are_parsed_or_rejected(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
    ) {
        let mut bytes = task06().into_bytes();
        for (index, byte) in edits {
            let at = index.index(bytes.len());
            bytes[at] = byte;
        }
        let _ = Spec::from_yaml(&String::from_utf8_lossy(&bytes));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn mangled_checkpoints_are_loaded_or_rejected(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = checkpoint_bytes();
        // Half the edits land in the header (JSON + metadata), where a parser is most exposed.
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (i, (index, byte)) in edits.into_iter().enumerate() {
            let range = if i % 2 == 0 { header.min(bytes.len()) } else { bytes.len() };
            let at = index.index(range);
            bytes[at] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let _ = checkpoint::load(&path, Device::Cpu);
        let _ = checkpoint::load_training_state(&path, Device::Cpu);
    }
}

/// Interesting integers for the size and count fields of a spec.
fn integer() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "0",
        "1",
        "-1",
        "2",
        "3",
        "8",
        "64",
        "16777216",
        "16777217",
        "2147483648",
        "4294967296",
        "9223372036854775807",
        "-9223372036854775808",
    ])
}

/// Interesting reals for the rates, probabilities and epsilons.
fn real() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "0", "0.2", "0.5", "1.0", "-0.0", "-1", "1e-9", "2", "1e308", ".inf", "-.inf", ".nan",
    ])
}

/// A complete spec with every numeric field drawn from [`integer`] or [`real`]: it parses, so
/// the validator's arithmetic sees extreme combinations (overflowing products, NaNs, huge sizes).
fn extreme_spec() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(integer(), 11),
        prop::collection::vec(real(), 5),
    )
        .prop_map(|(i, r)| {
            format!(
                "model:\n  block_size: {}\n  n_embd: {}\n  dropout: {}\n  n_layer: {}\n  block:\n    \
                 attention: {{kind: multi_head, n_head: {}, head_size: {}, projection: true}}\n    \
                 feed_forward: {{kind: mlp, hidden_multiplier: {}}}\n    \
                 norm: {{kind: layernorm, eps: {}}}\n    norm_placement: pre\n\
                 training: {{batch_size: {}, max_iters: {}, eval_interval: {}, eval_iters: {}, \
                 learning_rate: {}}}\nsampling: {{tokens: {}, temperature: {}, top_p: {}}}\n",
                i[0], i[1], r[0], i[2], i[3], i[4], i[5], r[1], i[6], i[7], i[8], i[9], r[2],
                i[10], r[3], r[4]
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn extreme_numbers_are_validated_or_rejected(text in extreme_spec()) {
        let _ = Spec::from_yaml(&text);
    }
}

#[test]
fn sizes_are_bounded_and_products_cannot_overflow() {
    let spec = |n_embd: &str, multiplier: &str| {
        format!(
            "model:\n  block_size: 8\n  n_embd: {n_embd}\n  block:\n    attention: {{kind: multi_head, \
             n_head: 1, projection: true}}\n    feed_forward: {{kind: mlp, hidden_multiplier: {multiplier}}}\n"
        )
    };
    let error = Spec::from_yaml(&spec("9223372036854775807", "4"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("model.n_embd: must be at most 16777216"),
        "{error}"
    );
    let error = Spec::from_yaml(&spec("16777216", "16777216"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("hidden"), "{error}");
}
