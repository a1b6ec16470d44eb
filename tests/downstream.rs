//! A program built on the library, not on the gptbuild package (`tests/downstream/`, a workspace
//! member with the one build.rs line README's "Library" section gives), runs as users run it: with
//! a clean environment (no LD_LIBRARY_PATH, nothing else), finding libtorch, with libtorch's CUDA
//! backend loaded (where the libtorch has one) and one OpenMP runtime.

mod common;

use std::process::Command;

#[test]
fn a_program_on_the_library_runs_with_a_clean_environment() {
    let target = std::env::current_exe()
        .expect("the test's path")
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let release = target.file_name().is_some_and(|name| name == "release");
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "-p", "gptbuild-downstream"])
        .arg("--manifest-path")
        .arg(common::repo_root().join("Cargo.toml"));
    if release {
        build.arg("--release");
    }
    assert!(build.status().expect("cargo runs").success(), "it builds");

    let output = Command::new(target.join("gptbuild-downstream"))
        .env_clear()
        .output()
        .expect("it starts: libtorch found through its RUNPATH");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("val loss"), "{stdout}");
    let mapped: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("mapped: "))
        .collect();
    let openmp: Vec<&&str> = mapped
        .iter()
        .filter(|l| !l.ends_with("libtorch_cuda.so"))
        .collect();
    assert_eq!(openmp.len(), 1, "one OpenMP runtime: {mapped:?}");
    let libtorch = std::fs::canonicalize(gptbuild::device::LIBTORCH_LIB).expect("libtorch");
    assert!(
        std::path::Path::new(openmp[0]).starts_with(&libtorch),
        "libtorch's own ({}): {mapped:?}",
        libtorch.display()
    );
    let has_cuda = libtorch.join("libtorch_cuda.so").is_file();
    assert_eq!(
        mapped.iter().any(|l| l.ends_with("/libtorch_cuda.so")),
        has_cuda,
        "libtorch's CUDA backend loaded wherever it exists: {mapped:?}"
    );
}
