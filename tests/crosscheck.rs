//! Cross-check against an independent implementation: `tests/python/reference_gpt.py`, written in
//! plain PyTorch from the papers and the spec format (not from our Rust), rebuilds each model from
//! an exported checkpoint and its resolved spec alone, and its logits must match ours up to fp32
//! rounding (`common::tolerance`: relative to the logits' scale and the model's depth, a bound
//! written into each case's file).
//! Cases: every architecture file, and random specs covering every knob (`common::random_spec`).
//! Weights are perturbed away from their initial values, so that a norm gain applied to the wrong
//! axis, or a bias left out, cannot hide behind an initialisation of ones and zeros.

mod common;

use std::path::Path;
use std::process::Command;

use common::random_spec::random_spec;
use common::tolerance;
use common::{architecture_files, build, in_fp32, load_spec, python, spec_from, VOCAB_SIZE};
use gptbuild::artifacts::checkpoint;
use gptbuild::data::vocab::Vocabulary;
use gptbuild::spec::Spec;
use tch::{Device, Kind, Tensor};

/// How many random specs are checked on every test run.
const RANDOM_SPECS: u64 = 48;

/// Writes `NAME.safetensors` (a checkpoint, as training writes it) and `NAME.io.safetensors`
/// (random ids and our logits for them).
fn export(dir: &Path, name: &str, spec: &Spec, seed: i64, logits_offset: f64) {
    let (vs, model) = build(spec, seed);
    tch::no_grad(|| {
        for (_, mut variable) in vs.variables() {
            let noise = Tensor::randn_like(&variable) * 0.1;
            let _ = variable.g_add_(&noise);
        }
    });
    let vocab: String = (0..VOCAB_SIZE as u8).map(|i| (b'!' + i) as char).collect();
    let vocab = Vocabulary::from_text(&vocab);
    checkpoint::save(
        &dir.join(format!("{name}.safetensors")),
        &vs,
        spec,
        &vocab,
        0,
    )
    .expect("checkpoint written");
    let t = spec.model.block_size;
    let ids = Tensor::randint(VOCAB_SIZE, [2, t], (Kind::Int64, Device::Cpu));
    let logits = tch::no_grad(|| model.forward_t(&ids, false));
    // Two fp32 implementations of one model: rounding bounded by its depth and the logits' scale.
    let bound = tolerance::bound(
        tolerance::FP32,
        tolerance::model_depth(spec.model.n_layer()),
        tolerance::scale(&logits),
    );
    let logits = logits + logits_offset;
    let bound = Tensor::from(bound as f32);
    Tensor::write_safetensors(
        &[("ids", &ids), ("logits", &logits), ("bound", &bound)],
        dir.join(format!("{name}.io.safetensors")),
    )
    .expect("io file written");
}

/// Runs the reference over every case in `dir`: (success, its report).
fn crosscheck(dir: &Path) -> (bool, String) {
    let script = common::repo_root().join("tests/python/crosscheck.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(dir)
        .output()
        .expect("python runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

#[test]
fn logits_match_an_independent_pytorch_implementation() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cases: Vec<(String, Spec)> = architecture_files()
        .iter()
        .map(|path| {
            let stem = path.file_stem().expect("file name").to_string_lossy();
            // The reference computes in fp32.
            (stem.into_owned(), in_fp32(&load_spec(path)))
        })
        .collect();
    cases.extend(
        (0..RANDOM_SPECS).map(|seed| (format!("random{seed:02}"), spec_from(&random_spec(seed)))),
    );
    for (i, (name, spec)) in cases.iter().enumerate() {
        export(dir.path(), name, spec, i as i64, 0.0);
    }
    let (passed, report) = crosscheck(dir.path());
    println!("{report}");
    assert!(passed, "the reference disagrees:\n{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok")).count(),
        cases.len(),
        "every case reported ok:\n{report}"
    );
}

/// The harness can fail: logits off by 1e-3 in one case are caught (the case's rounding bound is
/// far smaller).
#[test]
fn the_crosscheck_catches_a_wrong_logit() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = spec_from(&random_spec(7));
    export(dir.path(), "shifted", &spec, 1, 1e-3);
    let (passed, report) = crosscheck(dir.path());
    assert!(!passed, "a shifted logit passed:\n{report}");
    assert!(report.contains("FAIL shifted"), "{report}");
}
