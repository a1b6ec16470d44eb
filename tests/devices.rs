//! The CUDA link (issue #17): every binary built against a libtorch that has a CUDA backend loads
//! `libtorch_cuda.so`, so that `device: cuda` can work at all. The linker used to drop it (no
//! symbol of it is referenced), and nothing on a CPU-only machine showed it; this test shows it
//! there: the library is mapped into the test process, and `gptbuild devices` reports it. With a
//! CPU-only libtorch both tests check only that nothing claims a CUDA backend.
#![cfg(feature = "cli")]
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;

use gptbuild::device::{CudaBackend, LIBTORCH_LIB};

/// Whether the libtorch this crate was built against ships a CUDA backend.
fn libtorch_has_cuda() -> bool {
    Path::new(LIBTORCH_LIB).join("libtorch_cuda.so").is_file()
}

#[test]
fn libtorch_cuda_is_mapped_into_a_test_binary_when_libtorch_has_it() {
    // Touch libtorch, as every test does.
    assert_eq!(tch::Tensor::from(2.0f32).double_value(&[]), 2.0);
    let maps = std::fs::read_to_string("/proc/self/maps").expect("a Linux process map");
    let mapped = maps.contains("/libtorch_cuda.so");
    assert_eq!(
        mapped,
        libtorch_has_cuda(),
        "libtorch_cuda.so mapped: {mapped}; {LIBTORCH_LIB} has it: {}",
        libtorch_has_cuda()
    );
    let expected = match libtorch_has_cuda() {
        true => CudaBackend::Loaded,
        false => CudaBackend::NotBuilt,
    };
    assert_eq!(CudaBackend::of_this_process(), expected);
}

#[test]
fn the_cli_reports_the_cuda_backend_loaded() {
    let output = Command::new(env!("CARGO_BIN_EXE_gptbuild"))
        .arg("devices")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|line| line.starts_with("CUDA backend"))
        .unwrap_or_else(|| panic!("no CUDA backend line in {stdout}"));
    let expected = match libtorch_has_cuda() {
        true => "libtorch_cuda.so loaded",
        false => "none (a CPU-only libtorch)",
    };
    assert!(line.ends_with(expected), "{line:?}, expected {expected:?}");
    assert!(
        stdout.contains(&format!("libtorch            {LIBTORCH_LIB}")),
        "{stdout}"
    );
}
