//! The examples in `examples/` run as a user runs them, at their own tiny sizes: the library's
//! front door must keep working. `cargo test` builds them beside this test; run alone, this test
//! builds them first, with its own features.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Once;

/// The built example `name`, beside this test's own binary (`target/<profile>/examples/`).
fn example(name: &str) -> PathBuf {
    static BUILT: Once = Once::new();
    let dir = std::env::current_exe()
        .expect("the test's path")
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("examples");
    let path = dir.join(name);
    if !path.is_file() {
        BUILT.call_once(|| {
            let features: Vec<&str> = [
                ("cli", cfg!(feature = "cli")),
                ("cpu-kernels", cfg!(feature = "cpu-kernels")),
                ("distributed", cfg!(feature = "distributed")),
            ]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect();
            let status = Command::new(env!("CARGO"))
                .args(["build", "--examples", "--no-default-features", "--features"])
                .arg(features.join(","))
                .arg("--manifest-path")
                .arg(common::repo_root().join("Cargo.toml"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "the examples build");
        });
    }
    path
}

fn run(name: &str, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(example(name))
        .args(args)
        .env("GPTBUILD_DATA", common::corpus_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("example {name}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output: Output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The losses of `Epoch N: avg train loss X | avg val loss Y` lines.
fn losses(stdout: &str) -> Vec<(f64, f64)> {
    stdout
        .lines()
        .filter_map(|line| line.split_once(": avg train loss "))
        .map(|(_, rest)| {
            let (train, val) = rest.split_once(" | avg val loss ").expect("both losses");
            (train.parse().unwrap(), val.parse().unwrap())
        })
        .collect()
}

#[test]
fn train_from_spec_learns_and_its_checkpoint_samples() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("model.safetensors");
    let stdout = run("train_from_spec", &[checkpoint.to_str().unwrap()], "");
    let losses = losses(&stdout);
    assert_eq!(losses.len(), 4, "evaluations at 0, 100, 200, 299: {stdout}");
    // From ln(65) ≈ 4.17 at initialisation to well below it in 300 steps.
    assert!(losses[0].1 > 4.0 && losses[3].1 < 3.0, "{losses:?}");
    assert!(stdout.contains("\nROMEO:"), "{stdout}");
    assert!(checkpoint.is_file());

    let sampled = run(
        "sample_from_checkpoint",
        &[checkpoint.to_str().unwrap()],
        "",
    );
    let mut lines = sampled.lines();
    assert_eq!(lines.next(), Some("spec at iteration 300"));
    assert!(sampled.chars().count() > 150, "{sampled}");
}

#[test]
fn a_layer_kind_from_outside_the_crate_is_named_by_yaml_and_trained() {
    let stdout = run("custom_layer", &[], "");
    // The parameter table lists the kind's own weights under their paths.
    assert!(stdout.contains("blocks.0.ffwd.up.weight"), "{stdout}");
    assert!(stdout.contains("blocks.1.ffwd.down.bias"), "{stdout}");
    let losses = losses(&stdout);
    assert!(losses.len() >= 2 && losses.last().unwrap().0 < losses[0].0 - 1.0);
    assert!(stdout.contains("kind: squared_relu"), "{stdout}");
}

#[test]
fn an_application_loop_continues_each_line() {
    let stdout = run(
        "app_loop",
        &[],
        "ROMEO:\nJULIET: O\n\u{1F600}\nquit\nnot read\n",
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    assert!(stdout.contains("ROMEO:"), "{stdout}");
    assert!(stdout.contains("JULIET: O"), "{stdout}");
    assert!(
        stdout.contains("not in the model's vocabulary"),
        "an unknown character is said, not fatal: {stdout}"
    );
    assert!(!stdout.contains("not read"), "quit ends the loop: {stdout}");
    assert!(lines.len() >= 3, "{stdout}");
}
