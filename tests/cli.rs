//! The real binary on real files: the course's log format, sampling from the saved checkpoint, and
//! one clear line (never a panic) for each kind of bad input.
#![cfg(feature = "cli")]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_gptbuild");

fn gptbuild(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("GPTBUILD_DATA", common::corpus_path())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A failed command: exit code 1 and exactly one line on stderr, starting `error:`, no panic.
fn assert_clean_failure(output: &Output, needle: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(needle),
        "{stderr:?} should mention {needle:?}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn run_then_sample() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let spec = common::repo_root().join("architectures/task03.yaml");
    let args = [
        "run",
        spec.to_str().unwrap(),
        "--iters",
        "12",
        "--eval-interval",
        "5",
        "--eval-iters",
        "2",
    ];
    let output = gptbuild(
        &[
            &args[..],
            &["--threads", "1", "--runs-dir", runs.to_str().unwrap()],
        ]
        .concat(),
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    for (line, iteration) in lines.iter().zip([0, 5, 10, 11]) {
        let prefix = format!("Epoch {iteration}: avg train loss ");
        let rest = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{line:?} should start {prefix:?}"));
        let (train, val) = rest.split_once(" | avg val loss ").expect("both losses");
        for loss in [train, val] {
            assert_eq!(
                loss.split_once('.').map(|(_, decimals)| decimals.len()),
                Some(4),
                "{line}"
            );
            loss.parse::<f64>().expect("a number");
        }
    }
    assert_eq!(lines[4], "Sampling 500 tokens from a trained model:");
    assert!(text(&output.stderr).contains("run saved in"));

    // Scoring the whole validation split agrees with the last evaluation's estimate from batches.
    let last_val: f64 = lines[3].rsplit(' ').next().unwrap().parse().unwrap();
    let output = gptbuild(
        &[
            "evaluate",
            "--spec",
            spec.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let val: f64 = stdout
        .lines()
        .nth(1)
        .and_then(|l| l.split(' ').nth(2))
        .unwrap()
        .parse()
        .unwrap();
    assert!((val - last_val).abs() < 0.15, "{stdout} against {last_val}");

    // Sampling from the checkpoint: reproducible with a seed, different with another.
    let checkpoint = std::fs::read_dir(runs.join("task03"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("model.safetensors");
    let sample = |seed: &str| {
        let output = gptbuild(
            &[
                "sample",
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--tokens",
                "40",
                "--seed",
                seed,
            ],
            dir.path(),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    assert_eq!(sample("1"), sample("1"));
    assert_ne!(sample("1"), sample("2"));
    assert_eq!(
        sample("1").chars().count(),
        1 + 40 + 1,
        "start token, 40 characters, newline"
    );

    let output = gptbuild(
        &[
            "sample",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--prompt",
            "ROMEO:",
            "--tokens",
            "5",
        ],
        dir.path(),
    );
    assert!(text(&output.stdout).starts_with("ROMEO:"));
    let output = gptbuild(
        &[
            "sample",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--prompt",
            "héllo",
        ],
        dir.path(),
    );
    assert_clean_failure(&output, "not in the model's vocabulary");

    // A checkpoint given with a spec must hold that spec's model.
    let output = gptbuild(
        &[
            "sample",
            "--spec",
            "task05",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ],
        &common::repo_root(),
    );
    assert_clean_failure(&output, "holds a different model than spec task05");
    let output = gptbuild(
        &[
            "sample",
            "--spec",
            spec.to_str().unwrap(),
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--tokens",
            "5",
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn evaluate_scores_every_character_of_the_splits() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = untrained_checkpoint(dir.path());
    let evaluate = |extra: &[&str]| {
        let args = [
            &[
                "evaluate",
                "--checkpoint",
                checkpoint.as_str(),
                "--threads",
                "1",
            ],
            extra,
        ];
        gptbuild(&args.concat(), dir.path())
    };
    let output = evaluate(&["--split", "both"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], format!("{checkpoint} (iteration 0)"));
    // Tiny Shakespeare splits 1,003,854 / 111,540 characters; task01 reads windows of 8.
    for (line, split, characters, windows) in [
        (lines[1], "train", 1_003_853, 125_482),
        (lines[2], "val", 111_539, 13_943),
    ] {
        let (loss, bits) = line
            .strip_prefix(&format!("{split} loss "))
            .and_then(|rest| rest.strip_suffix(&format!(" ({windows} windows of 8, stride 8)")))
            .and_then(|rest| {
                rest.split_once(&format!(" over {characters} tokens, bits per character "))
            })
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let loss: f64 = loss.parse().expect("a number");
        let bits: f64 = bits.parse().expect("a number");
        // An untrained model is close to a uniform guess among 65 characters: ln 65 = 4.17.
        assert!((3.9..4.6).contains(&loss), "{line}");
        // One token per character: bits per character is the loss in bits (both printed to 4
        // decimals, so they agree to rounding).
        assert!(
            (bits - loss / std::f64::consts::LN_2).abs() < 2e-4,
            "{line}"
        );
    }

    for stride in ["0", "9"] {
        assert_clean_failure(&evaluate(&["--stride", stride]), "--stride");
    }
    assert_clean_failure(
        &gptbuild(
            &["evaluate", "--checkpoint", "nope.safetensors"],
            dir.path(),
        ),
        "nope.safetensors",
    );
}

/// An untrained task01 checkpoint with Tiny Shakespeare's vocabulary, in `dir`.
fn untrained_checkpoint(dir: &Path) -> String {
    let spec = common::load_spec(&common::repo_root().join("architectures/task01.yaml"));
    let (vs, _) = common::build(&spec, 0);
    let vocab = gptbuild::data::vocab::Vocabulary::from_text(
        &std::fs::read_to_string(common::corpus_path()).unwrap(),
    );
    let checkpoint = dir.join("m.safetensors");
    gptbuild::artifacts::checkpoint::save(&checkpoint, &vs, &spec, &vocab, 0).unwrap();
    checkpoint.to_str().unwrap().to_string()
}

/// `gptbuild sample --checkpoint CHECKPOINT --forever`, its stdout and stderr piped to us.
fn sample_forever(checkpoint: &str) -> std::process::Child {
    Command::new(BIN)
        .args(["sample", "--checkpoint", checkpoint, "--forever"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_closed_pipe_ends_sampling_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sample_forever(&untrained_checkpoint(dir.path()));
    let mut first = [0u8; 1000];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // Dropping our end of the pipe closes it; the sampler must notice and stop without complaint.
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn ctrl_c_and_sigterm_end_endless_sampling_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = untrained_checkpoint(dir.path());
    for signal in ["INT", "TERM"] {
        let mut child = sample_forever(&checkpoint);
        let mut stdout = child.stdout.take().unwrap();
        // It streams: characters arrive while it runs.
        let mut first = [0u8; 300];
        stdout.read_exact(&mut first).unwrap();
        let killed = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(130), "SIG{signal}");
        assert_eq!(
            text(&output.stderr),
            "",
            "SIG{signal}: no message, no panic"
        );
        assert_eq!(
            rest.last(),
            Some(&b'\n'),
            "SIG{signal}: the line is finished"
        );
    }
}

/// `sample` and `evaluate` go where `--device` says: on a machine without a GPU, `cuda` is one
/// clear error naming the reason, and the CPU works (on a GPU machine this test has nothing to
/// refuse, and bench/gpu_check.sh covers the GPU side).
#[test]
fn sample_and_evaluate_take_the_device_flag() {
    if tch::Cuda::is_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = untrained_checkpoint(dir.path());
    let checkpoint = checkpoint.as_str();
    for command in ["sample", "evaluate"] {
        assert_clean_failure(
            &gptbuild(
                &[command, "--checkpoint", checkpoint, "--device", "cuda"],
                dir.path(),
            ),
            "libtorch sees no GPU",
        );
    }
    let output = gptbuild(
        &[
            "sample",
            "--checkpoint",
            checkpoint,
            "--tokens",
            "20",
            "--device",
            "cpu",
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// One Ctrl-C delivered twice at once (`timeout -s INT` signals the process and then its process
/// group) is one request: the run stops after its step and saves its checkpoint, instead of
/// exiting at once as for a second Ctrl-C pressed later.
#[test]
fn a_signal_delivered_twice_at_once_still_saves_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let spec = common::repo_root().join("architectures/task03.yaml");
    let runs = dir.path().join("runs");
    let args = [
        "run",
        spec.to_str().unwrap(),
        "--iters",
        "100000",
        "--eval-interval",
        "100000",
        "--eval-iters",
        "2",
        "--threads",
        "1",
        "--runs-dir",
        runs.to_str().unwrap(),
    ]
    .map(String::from);
    let (output, _) = interrupt_after_first_evaluation(&args, 2);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("checkpoint saved in"), "{stderr}");
}

/// Starts `gptbuild ARGS` (a run), sends it SIGINT `times` times at once as soon as its first
/// evaluation is printed, and returns its output with what it printed on stdout after that line.
fn interrupt_after_first_evaluation(args: &[String], times: usize) -> (Output, String) {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args(args)
        .env("GPTBUILD_DATA", common::corpus_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    assert!(first_line.starts_with("Epoch 0: "), "{first_line}");
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .arg("-INT")
        .args(vec![pid.as_str(); times])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    (child.wait_with_output().unwrap(), rest)
}

/// `metrics.csv` of the latest run under `runs/task05`.
fn task05_metrics(runs: &Path) -> String {
    let mut dirs: Vec<_> = std::fs::read_dir(runs.join("task05"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    std::fs::read_to_string(dirs.last().unwrap().join("metrics.csv")).unwrap()
}

#[test]
fn ctrl_c_stops_training_with_a_checkpoint_and_resume_finishes_it_identically() {
    let dir = tempfile::tempdir().unwrap();
    let spec = common::repo_root().join("architectures/task05.yaml");
    let args = |runs: &str| -> Vec<String> {
        [
            "run",
            spec.to_str().unwrap(),
            "--iters",
            "1500",
            "--eval-interval",
            "100",
            "--eval-iters",
            "2",
            "--threads",
            "1",
            "--seed",
            "4",
            "--runs-dir",
            dir.path().join(runs).to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    // Interrupted as soon as the first evaluation is printed.
    let (output, rest) = interrupt_after_first_evaluation(&args("parts"), 1);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("checkpoint saved in"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(!rest.contains("Epoch 1499"), "it stopped early: {rest}");

    let mut resume = args("parts");
    resume.push("--resume".into());
    let resumed = gptbuild(
        &resume.iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path(),
    );
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert!(text(&resumed.stderr).starts_with("resuming "));
    assert!(text(&resumed.stdout).contains("Epoch 1499: "));

    let whole = gptbuild(
        &args("whole").iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path(),
    );
    assert!(whole.status.success(), "{}", text(&whole.stderr));
    // Same evaluations, in order, without repeats (elapsed time aside).
    let losses = |csv: String| -> Vec<String> {
        csv.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(
        losses(task05_metrics(&dir.path().join("parts"))),
        losses(task05_metrics(&dir.path().join("whole")))
    );
}

#[test]
fn bad_input_gets_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path.to_str().unwrap().to_string()
    };
    let bad_size = write(
        "bad.yaml",
        "model: {block_size: 8, n_embd: 0, block: {attention: {kind: head}}}\n",
    );
    assert_clean_failure(
        &gptbuild(&["run", &bad_size], dir.path()),
        "model.n_embd: must be at least 1",
    );
    let empty = write("empty.yaml", "");
    assert_clean_failure(&gptbuild(&["validate", &empty], dir.path()), "empty");
    assert_clean_failure(
        &gptbuild(&["run", "no-such-spec"], dir.path()),
        "no spec named \"no-such-spec\"",
    );
    let checkpoint = write("fake.safetensors", "nonsense");
    assert_clean_failure(
        &gptbuild(&["sample", "--checkpoint", &checkpoint], dir.path()),
        "not a safetensors file",
    );
    // A spec that was never trained, found by bare name from the repository root.
    let runs = dir.path().join("runs");
    let output = gptbuild(
        &[
            "sample",
            "--spec",
            "task02",
            "--runs-dir",
            runs.to_str().unwrap(),
        ],
        &common::repo_root(),
    );
    assert_clean_failure(&output, "no trained run of task02");
    let tiny_corpus = write("tiny.txt", "abcdefghij");
    let spec = common::repo_root().join("architectures/task01.yaml");
    let output = gptbuild(
        &[
            "run",
            spec.to_str().unwrap(),
            "--data",
            &tiny_corpus,
            "--runs-dir",
            runs.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_clean_failure(&output, "too few for block_size 8");

    let checkpoint = untrained_checkpoint(dir.path());
    for (flag, value, needle) in [
        ("--top-p", "1.5", "--top-p: must be in (0, 1], got 1.5"),
        ("--top-k", "0", "--top-k: must be at least 1"),
        (
            "--temperature",
            "0",
            "--temperature: must be a positive number",
        ),
    ] {
        let output = gptbuild(
            &["sample", "--checkpoint", &checkpoint, flag, value],
            dir.path(),
        );
        assert_clean_failure(&output, needle);
    }
    let output = gptbuild(
        &[
            "sample",
            "--checkpoint",
            &checkpoint,
            "--forever",
            "--tokens",
            "5",
        ],
        dir.path(),
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "a usage error: --forever or --tokens"
    );
}

#[test]
fn plot_draws_runs_and_the_course_reference_into_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("runs/task06/20261129-120000");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("metrics.csv"),
        "iteration,train_loss,val_loss,elapsed_seconds\n0,4.3,4.3,0.1\n500,2.4,2.45,2.0\n999,2.1,2.2,4.0\n",
    )
    .unwrap();
    let out = dir.path().join("loss.png");
    let output = gptbuild(
        &[
            "plot",
            dir.path().join("runs/task06").to_str().unwrap(),
            "--reference",
            "task06",
            "--out",
            out.to_str().unwrap(),
            "--width",
            "640",
            "--height",
            "400",
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let png = std::fs::read(&out).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, at bytes 16..24.
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 640);
    assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 400);

    assert_clean_failure(
        &gptbuild(&["plot", "--reference", "task99"], dir.path()),
        "no reference curve for \"task99\"",
    );
    assert_clean_failure(
        &gptbuild(&["plot", dir.path().to_str().unwrap()], dir.path()),
        "holds no metrics.csv",
    );

    // Validation loss against wall-clock minutes, with a legend label.
    let runs = dir.path().join("runs/task06");
    let runs = runs.to_str().unwrap();
    let minutes = dir.path().join("minutes.png");
    let output = gptbuild(
        &[
            "plot",
            runs,
            "--x",
            "minutes",
            "--val-only",
            "--y-max",
            "2.5",
            "--label",
            "ours",
            "--out",
            minutes.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(&std::fs::read(&minutes).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    assert_clean_failure(
        &gptbuild(
            &["plot", runs, "--x", "minutes", "--reference", "task06"],
            dir.path(),
        ),
        "no wall-clock times",
    );
    assert_clean_failure(
        &gptbuild(&["plot", runs, "--label", "a", "--label", "b"], dir.path()),
        "2 labels for 1 runs",
    );

    // Bits per character, beside the course's character-level curve; a metrics.csv from before
    // the column existed is refused by name.
    assert_clean_failure(
        &gptbuild(&["plot", runs, "--y", "bits-per-character"], dir.path()),
        "has no val_bits_per_character",
    );
    let bpe = dir.path().join("runs/bpe512/20261202-010000");
    std::fs::create_dir_all(&bpe).unwrap();
    std::fs::write(
        bpe.join("metrics.csv"),
        "iteration,train_loss,val_loss,val_bits_per_character,elapsed_seconds\n\
         0,6.2,6.2,4.4,0.1\n500,4.0,4.1,2.9,2.0\n",
    )
    .unwrap();
    let bits = dir.path().join("bits.png");
    let output = gptbuild(
        &[
            "plot",
            bpe.to_str().unwrap(),
            "--y",
            "bits-per-character",
            "--reference",
            "task06",
            "--out",
            bits.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(&std::fs::read(&bits).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
}

/// The committed schema (which editors and the architecture files point at) is what the binary
/// prints: regenerate it with `gptbuild schema > schema/spec.schema.json` when the spec changes.
#[test]
fn the_committed_schema_is_current() {
    let root = common::repo_root();
    let output = gptbuild(&["schema"], &root);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let committed = std::fs::read_to_string(root.join("schema/spec.schema.json")).unwrap();
    assert!(
        text(&output.stdout) == committed,
        "schema/spec.schema.json is stale: run `gptbuild schema > schema/spec.schema.json`"
    );
}

#[test]
fn bench_reports_step_times_and_utilisation() {
    let output = gptbuild(
        &[
            "bench",
            "task03",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
        ],
        &common::repo_root(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    let value = |label: &str| -> f64 {
        let line = report
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} in {report}"));
        let number = line[label.len()..]
            .trim()
            .split([' ', '%', ','])
            .next()
            .unwrap();
        number.parse().unwrap_or_else(|_| panic!("{line}"))
    };
    assert_eq!(value("steps timed"), 3.0);
    for label in [
        "tokens per second",
        "GFLOP per step",
        "matmul peak GFLOP/s",
        "MFU",
    ] {
        let v = value(label);
        assert!(v.is_finite() && v > 0.0, "{label}: {v}\n{report}");
    }
    assert!(report.contains("(fp32, measured now)"), "{report}");
    assert!(
        report.contains("all-reduce ms/step  none (one process)"),
        "{report}"
    );

    // Mixed precision: the step and the peak in bf16.
    let output = gptbuild(
        &[
            "bench",
            "task03",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--precision",
            "bf16",
        ],
        &common::repo_root(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("(bf16, measured now)"));
}

#[test]
fn inspect_and_validate_a_course_step_by_bare_name() {
    let root = common::repo_root();
    let output = gptbuild(&["inspect", "task01"], &root);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[lines.len() - 3].ends_with(" 7553"), "{table}");
    // key, query, value 32x32 and the 65x32 head: 2 * 5152; scores and sum: 2 * 2 * 8 * 32.
    assert_eq!(
        lines[lines.len() - 2],
        "FLOPs per token (full context of 8): forward 11328, training step 33984"
    );
    assert!(
        lines[lines.len() - 1].starts_with("memory to train, at most about: 0.")
            && lines[lines.len() - 1].ends_with(" GiB for training (batch 32 × context 8)"),
        "{table}"
    );
    let output = gptbuild(&["validate", "task05.yaml"], &root);
    let resolved = text(&output.stdout);
    assert!(
        resolved.contains("head_size: 8") && resolved.contains("hidden_size: 128"),
        "{resolved}"
    );
}

/// Numbers a machine cannot bear (threads, time budgets, batch sizes) are refused up front with one
/// line naming the field and the limit: no thread is started, nothing is allocated or written.
#[test]
fn sizes_the_machine_cannot_bear_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let runs = runs.to_str().unwrap();
    let task06 = std::fs::read_to_string(common::repo_root().join("architectures/task06.yaml"))
        .unwrap()
        .replace("../schema", "schema");
    // task06 with one line of its training section replaced.
    let write = |name: &str, line: &str| {
        let path = dir.path().join(name);
        let field = line.split(':').next().unwrap();
        let body: Vec<String> = task06
            .lines()
            .filter(|l| !l.trim_start().starts_with(&format!("{field}:")))
            .map(|l| match l {
                "training:" => format!("training:\n  {line}"),
                other => other.to_string(),
            })
            .collect();
        std::fs::write(&path, body.join("\n") + "\n").unwrap();
        path.to_str().unwrap().to_string()
    };
    let limit = gptbuild::resources::max_threads().to_string();
    let output = gptbuild(
        &["run", "task06", "--threads", "100000", "--runs-dir", runs],
        &common::repo_root(),
    );
    assert_clean_failure(
        &output,
        "--threads: must be between 0 (libtorch's default) and ",
    );
    assert!(text(&output.stderr).contains(&limit));
    let threads = write("threads.yaml", "threads: 100000");
    assert_clean_failure(
        &gptbuild(&["run", &threads, "--runs-dir", runs], dir.path()),
        "training.threads: must be between 0",
    );
    assert_clean_failure(
        &gptbuild(&["bench", &threads, "--steps", "1"], dir.path()),
        "training.threads: must be between 0",
    );
    assert_clean_failure(
        &gptbuild(
            &["bench", "task06", "--threads", "100000"],
            &common::repo_root(),
        ),
        "--threads: must be between 0",
    );
    let checkpoint = untrained_checkpoint(dir.path());
    assert_clean_failure(
        &gptbuild(
            &[
                "evaluate",
                "--checkpoint",
                &checkpoint,
                "--threads",
                "100000",
            ],
            dir.path(),
        ),
        "--threads: must be between 0",
    );

    let forever = write("forever.yaml", "max_minutes: 1.0e300");
    assert_clean_failure(
        &gptbuild(&["run", &forever, "--runs-dir", runs], dir.path()),
        "training.max_minutes: must be at most 5259600 (ten years), got 1e300",
    );
    assert_clean_failure(
        &gptbuild(
            &[
                "run",
                "task06",
                "--max-minutes",
                "1e300",
                "--runs-dir",
                runs,
            ],
            &common::repo_root(),
        ),
        "training.max_minutes: must be at most",
    );

    let output = gptbuild(&["bench", "task06", "--steps", "0"], &common::repo_root());
    assert_eq!(
        output.status.code(),
        Some(2),
        "a usage error: {}",
        text(&output.stderr)
    );
    assert!(
        text(&output.stderr).contains("--steps"),
        "{}",
        text(&output.stderr)
    );

    if gptbuild::resources::available_memory().is_some() {
        let huge = write("huge.yaml", "batch_size: 16777216");
        assert_clean_failure(
            &gptbuild(&["run", &huge, "--runs-dir", runs], dir.path()),
            "training (batch 16777216 × context 8) needs about",
        );
        assert_clean_failure(
            &gptbuild(&["bench", &huge], dir.path()),
            "GiB available on this machine",
        );
    }
    assert!(!Path::new(runs).exists(), "a refused run writes nothing");
}

/// A build without the `distributed` feature started under torchrun's variables says so in one
/// line instead of training a process alone.
#[cfg(not(feature = "distributed"))]
#[test]
fn a_build_without_distributed_refuses_torchrun() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["run", "task06", "--iters", "2"])
        .current_dir(common::repo_root())
        .env("GPTBUILD_DATA", common::corpus_path())
        .env("RANK", "0")
        .env("WORLD_SIZE", "2")
        .env("LOCAL_RANK", "0")
        .env("LOCAL_WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", "29999")
        .arg("--runs-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_clean_failure(
        &output,
        "this build of gptbuild has no data-parallel training",
    );
}
