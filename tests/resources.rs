//! What the machine can bear: the memory estimate is an upper bound that still admits the course's
//! models, and work that cannot fit is refused before anything is allocated.

mod common;

use common::random_spec::random_spec;
use common::{architecture_files, build, load_spec, spec_from, VOCAB_SIZE};
use gptbuild::resources::{available_memory, parameter_estimate, MemoryEstimate};
use gptbuild::Error;
use tch::Device;

const GIB: u64 = 1 << 30;

/// The estimate counts every parameter the built model has, and not wildly more: within 2.5x
/// (it assumes every attention has a projection and a SwiGLU's three matrices are as wide as its
/// activations).
#[test]
fn the_parameter_estimate_bounds_the_real_count_from_above() {
    let _rng = common::torch_rng();
    let mut specs: Vec<(String, gptbuild::spec::Spec)> = architecture_files()
        .iter()
        .map(|p| (p.display().to_string(), load_spec(p)))
        .collect();
    specs
        .extend((0..24).map(|seed| (format!("random spec {seed}"), spec_from(&random_spec(seed)))));
    for (label, spec) in specs {
        let (vs, _) = build(&spec, 0);
        let actual: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
        let estimate = parameter_estimate(&spec.model, &spec.dims(VOCAB_SIZE)) as f64;
        assert!(
            estimate >= actual as f64 && estimate <= 2.5 * actual as f64,
            "{label}: estimate {estimate} for {actual} parameters"
        );
    }
}

/// The course's largest model trains within a laptop's memory by the estimate; its tiny ones need
/// little.
#[test]
fn the_course_models_fit_the_estimate() {
    let spec = |name: &str| load_spec(&common::repo_root().join("architectures").join(name));
    let task07 = MemoryEstimate::training(&spec("task07.yaml"), VOCAB_SIZE).bytes;
    assert!(
        (GIB..16 * GIB).contains(&task07),
        "task07: {:.2} GiB",
        task07 as f64 / GIB as f64
    );
    let task06 = MemoryEstimate::training(&spec("task06.yaml"), VOCAB_SIZE).bytes;
    assert!(task06 < GIB / 4, "task06: {task06} bytes");
}

/// A batch no machine here can hold is refused with the estimate and the limit.
#[test]
fn work_beyond_the_available_memory_is_refused() {
    let Some(available) = available_memory() else {
        return; // not Linux: no figure to check against
    };
    let mut spec = load_spec(&common::repo_root().join("architectures/task06.yaml"));
    spec.training.batch_size = 1 << 24;
    let estimate = MemoryEstimate::training(&spec, VOCAB_SIZE);
    assert!(estimate.bytes > available);
    let error = estimate.check(Device::Cpu).unwrap_err();
    assert!(matches!(error, Error::OutOfMemory { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("training (batch 16777216 × context 8) needs about ")
            && message.contains("GiB available"),
        "{message}"
    );
    // The estimate of the same work on a GPU is left to its allocator.
    assert!(estimate.check(Device::Cuda(0)).is_ok());
}

/// A corpus too large to hold is refused before a byte of it is read (a sparse file of a terabyte
/// takes no disk).
#[test]
fn a_corpus_beyond_the_available_memory_is_refused_unread() {
    if available_memory().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.txt");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let message = gptbuild::data::read_corpus(&path).unwrap_err().to_string();
    assert!(
        message.starts_with("reading a corpus of 1099511627776 bytes needs about ")
            && message.ends_with("use a smaller corpus"),
        "{message}"
    );
}
