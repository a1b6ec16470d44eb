//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use gptbuild::model::Gpt;
use gptbuild::spec::Spec;
use tch::nn::VarStore;
use tch::Device;

/// Tiny Shakespeare's vocabulary size, so that models build without reading the corpus.
pub const VOCAB_SIZE: i64 = 65;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every spec in `architectures/`, sorted by file name.
pub fn architecture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("architectures"))
        .expect("architectures/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `spec` in fp32 precision: for the tests whose bounds are fp32's rounding (an architecture file
/// may train in bf16; bf16 against fp32 is `tests/precision.rs`'s).
pub fn in_fp32(spec: &Spec) -> Spec {
    let mut spec = spec_from(&spec.to_yaml());
    spec.training.precision = gptbuild::layers::precision::Precision::Fp32;
    spec
}

/// The corpus: `$GPTBUILD_DATA`, else the shared copy beside the repository, else `data/`.
pub fn corpus_path() -> PathBuf {
    let candidates = [
        std::env::var_os("GPTBUILD_DATA").map(PathBuf::from),
        Some(repo_root().join("../shared/data/tinyshakespeare.txt")),
        Some(repo_root().join("data/tinyshakespeare.txt")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("Tiny Shakespeare not found: set GPTBUILD_DATA to the corpus file")
        })
}

/// The interpreter with PyTorch: `$GPTBUILD_PYTHON`, else the project's `.venv` (which the build
/// needs anyway, since libtorch comes from its torch wheel).
pub fn python() -> PathBuf {
    let path = std::env::var_os("GPTBUILD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: run `source scripts/env.sh` (it creates .venv) or set GPTBUILD_PYTHON",
        path.display()
    );
    path
}

/// Parses and resolves YAML, panicking with the message on failure.
pub fn spec_from(yaml: &str) -> Spec {
    Spec::from_yaml(yaml).unwrap_or_else(|e| panic!("spec should parse: {e}\n{yaml}"))
}

/// libtorch's random generator is global to the process, and tests run in parallel threads: a test
/// that seeds it and expects reproducible draws holds this lock for as long as it draws, so that no
/// other test's draws interleave with its own.
pub fn torch_rng() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Builds a spec's model on the CPU with a fixed seed (hold [`torch_rng`] when reproducibility
/// across tests matters).
pub fn build(spec: &Spec, seed: i64) -> (VarStore, Gpt) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let model = Gpt::new(&vs.root(), spec, VOCAB_SIZE);
    (vs, model)
}

pub fn load_spec(path: &Path) -> Spec {
    Spec::load(path).unwrap_or_else(|e| panic!("{} should load: {e}", path.display()))
}
pub mod families;
pub mod random_spec;
pub mod tolerance;
