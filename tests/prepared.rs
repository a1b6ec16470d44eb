//! Prepared token files (`gptbuild prepare`): nanoGPT's `train.bin` / `val.bin` beside the
//! tokenizer, memory-mapped for training. Mapped batches equal in-memory ones; prepare → run →
//! evaluate works; every malformed directory is one error naming its file.
#![cfg(feature = "cli")]

mod common;

use std::path::Path;

use common::{corpus_path, spec_from};
use gptbuild::artifacts::checkpoint;
use gptbuild::artifacts::run_dir::CHECKPOINT_FILE;
use gptbuild::data::prepared::{self, prepare, PreparedCorpus, META_FILE, TRAIN_FILE, VAL_FILE};
use gptbuild::data::{scoring_data, split_text, Dataset, Split, SplitMix64};
use gptbuild::spec::Spec;
use gptbuild::train::evaluate::score_split;
use gptbuild::workflow::run::{run, RunOptions};
use tch::Device;

const MODEL: &str =
    "model: {block_size: 16, n_embd: 16, block: {attention: {kind: multi_head, n_head: 2}}}\n";

fn spec(tokenizer: &str) -> Spec {
    spec_from(&format!("data: {{tokenizer: {tokenizer}}}\n{MODEL}"))
}

fn text() -> String {
    std::fs::read_to_string(corpus_path()).unwrap()[..60_000].to_string()
}

fn prepared(dir: &Path, spec: &Spec) {
    let counts = prepare(&text(), 0.9, spec.data.tokenizer.as_ref(), dir, |_| {}).unwrap();
    assert!(counts[0] > counts[1] && counts[1] > 16, "{counts:?}");
}

#[test]
fn mapped_batches_equal_batches_from_memory() {
    for tokenizer in ["{kind: char}", "{kind: bpe, vocab_size: 300}"] {
        let spec = spec(tokenizer);
        let dir = tempfile::tempdir().unwrap();
        prepared(dir.path(), &spec);
        let corpus = PreparedCorpus::open(dir.path(), spec.data.tokenizer.as_ref()).unwrap();
        let (mapped_tokenizer, mapped) = Dataset::from_prepared(corpus, 16, Device::Cpu).unwrap();

        let text = text();
        let made = spec
            .data
            .tokenizer
            .make(&text, split_text(&text, 0.9).0)
            .unwrap();
        assert_eq!(mapped_tokenizer.stored(), made.stored(), "{tokenizer}");
        let memory = Dataset::new(&text, made.as_ref(), 0.9, 16, Device::Cpu).unwrap();
        for split in [Split::Train, Split::Val] {
            assert_eq!(mapped.len(split), memory.len(split), "{tokenizer}");
            assert_eq!(
                mapped.scored_characters(split),
                memory.scored_characters(split)
            );
            let offsets = memory.random_offsets(split, 8, &mut SplitMix64::new(5));
            let (mx, my) = mapped.batch_at(split, &offsets);
            let (x, y) = memory.batch_at(split, &offsets);
            assert!(mx.equal(&x) && my.equal(&y), "{tokenizer} {split:?}");
        }
    }
}

#[test]
fn prepare_then_run_then_evaluate() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("prepared");
    let spec_text = format!(
        "data: {{tokenizer: {{kind: bpe, vocab_size: 300}}}}\n{MODEL}\
         training: {{batch_size: 4}}\nsampling: {{tokens: 20}}\n"
    );
    let spec_path = dir.path().join("bpe.yaml");
    std::fs::write(&spec_path, &spec_text).unwrap();
    prepared(&data, &spec_from(&spec_text));
    assert!(prepared::is_prepared(&data));
    let options = RunOptions {
        data: Some(data.clone()),
        runs_dir: Some(dir.path().join("runs")),
        max_iters: Some(10),
        eval_interval: Some(5),
        eval_iters: Some(2),
        threads: Some(1),
        device: Some(gptbuild::spec::DeviceSpec::Cpu),
        ..RunOptions::default()
    };
    let outcome = run(&spec_path, &options, &mut Vec::new()).expect("trains from the files");
    assert!(outcome.finished && !outcome.sample.is_empty());
    let loaded = checkpoint::load(&outcome.dir.join(CHECKPOINT_FILE), Device::Cpu).unwrap();
    let dataset = scoring_data(
        Some(&data),
        None,
        0.9,
        (
            loaded.spec.data.tokenizer.as_ref(),
            loaded.tokenizer.as_ref(),
        ),
        16,
        Device::Cpu,
    )
    .unwrap();
    let score = score_split(&loaded.model, &dataset, Split::Val, 16);
    assert!(score.bits_per_character.is_finite() && score.bits_per_character > 0.0);
}

/// Each malformed prepared directory is one error naming the file at fault.
#[test]
fn a_malformed_prepared_directory_names_its_file() {
    let spec = spec("{kind: char}");
    let kind = spec.data.tokenizer.as_ref();
    let open_error = |dir: &Path| {
        PreparedCorpus::open(dir, kind)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        prepared(dir.path(), &spec);
        dir
    };

    let dir = fresh();
    let mut bytes = std::fs::read(dir.path().join(TRAIN_FILE)).unwrap();
    bytes.push(0);
    std::fs::write(dir.path().join(TRAIN_FILE), &bytes).unwrap();
    let error = open_error(dir.path());
    assert!(
        error.contains("train.bin") && error.contains("whole number"),
        "{error}"
    );

    let dir = fresh();
    let mut bytes = std::fs::read(dir.path().join(VAL_FILE)).unwrap();
    bytes[2..4].copy_from_slice(&500u16.to_le_bytes());
    std::fs::write(dir.path().join(VAL_FILE), &bytes).unwrap();
    let error = open_error(dir.path());
    assert!(
        error.contains("val.bin") && error.contains("id 500 at position 1"),
        "{error}"
    );

    let dir = fresh();
    std::fs::remove_file(dir.path().join(prepared::VOCAB_FILE)).unwrap();
    let error = open_error(dir.path());
    assert!(
        error.contains("tokenizer.json") && error.contains("missing"),
        "{error}"
    );

    let dir = fresh();
    let other = spec_from(&format!(
        "data: {{tokenizer: {{kind: bpe, vocab_size: 300}}}}\n{MODEL}"
    ));
    let error = PreparedCorpus::open(dir.path(), other.data.tokenizer.as_ref())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(META_FILE) && error.contains("prepare it again"),
        "{error}"
    );

    let dir = fresh();
    let meta = std::fs::read_to_string(dir.path().join(META_FILE)).unwrap();
    std::fs::write(
        dir.path().join(META_FILE),
        meta.replace("vocab_size: 59", "vocab_size: 70000"),
    )
    .unwrap();
    let error = open_error(dir.path());
    assert!(
        error.contains(META_FILE) && error.contains("70000"),
        "{error}"
    );
}
