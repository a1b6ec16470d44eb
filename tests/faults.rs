//! Faults of the environment a real user meets, on the real binary: a corpus or spec that never
//! ends (a device, a pipe), a disk that fills up in the middle of a run, and one run directory
//! written by two processes. (Ranks that disagree: `tests/distributed.rs`.)
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gptbuild");

/// Longer than any command here takes: a command still running then is a hang.
const DEADLINE: Duration = Duration::from_secs(120);

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("GPTBUILD_DATA", common::corpus_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits for `child`, killing it (and failing) if it runs past the deadline.
fn finish(mut child: Child) -> Output {
    let started = Instant::now();
    while child.try_wait().expect("waitable").is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("still running after {DEADLINE:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn gptbuild(args: &[&str]) -> Output {
    finish(command(args).spawn().expect("the binary runs"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit code 1 and exactly one line on stderr, starting `error:` and naming `needles`.
fn assert_clean_failure(output: &Output, needles: &[&str]) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{stderr:?} should mention {needle:?}"
        );
    }
}

fn success(output: &Output) {
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// A named pipe at `path` that nobody writes to: opening it for reading would wait forever.
fn fifo(path: &Path) {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// The course's task 6 as a small run: `runs` as its runs directory, one thread.
fn task06_args(runs: &Path, iters: u32, eval_interval: u32) -> Vec<String> {
    let spec = common::repo_root().join("architectures/task06.yaml");
    [
        "run",
        spec.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
        "--iters",
        &iters.to_string(),
        "--eval-interval",
        &eval_interval.to_string(),
        "--eval-iters",
        "2",
        "--threads",
        "1",
    ]
    .map(String::from)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The only run directory of task06 under `runs`.
fn run_dir(runs: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(runs.join("task06"))
        .expect("task06 runs")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// Waits until `path` exists (the child writing it must still be running).
fn wait_for(path: &Path, child: &mut Child) {
    let started = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exited ({status}) before writing {}", path.display());
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{} never came",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_corpus_or_spec_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = dir.path().join("corpus.fifo");
    fifo(&pipe);
    let runs = dir.path().join("runs");
    let run = task06_args(&runs, 2, 1);
    let checkpoint = dir.path().join("model.safetensors");
    for (source, kind) in [
        ("/dev/zero", "a character device"),
        (pipe.to_str().unwrap(), "a FIFO"),
    ] {
        let output = gptbuild(&[&strs(&run)[..], &["--data", source]].concat());
        assert_clean_failure(&output, &[source, kind, "not a regular file"]);
        let out = dir.path().join("prepared");
        let task06 = common::repo_root().join("architectures/task06.yaml");
        let output = gptbuild(&[
            "prepare",
            source,
            "--spec",
            task06.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_clean_failure(&output, &[source, kind]);
        assert!(!out.exists(), "prepare wrote nothing");
        // A spec file that never ends, too.
        let output = gptbuild(&["run", source]);
        assert_clean_failure(&output, &[source, kind]);
        // evaluate reads the corpus a checkpoint is scored on.
        if !checkpoint.exists() {
            success(&gptbuild(&strs(&task06_args(&runs, 1, 1))));
            let trained = run_dir(&runs).join("model.safetensors");
            std::fs::copy(trained, &checkpoint).unwrap();
        }
        let output = gptbuild(&[
            "evaluate",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--data",
            source,
            "--threads",
            "1",
        ]);
        assert_clean_failure(&output, &[source, kind]);
    }
}

/// Runs `gptbuild ARGS` with SIGXFSZ ignored, so that a file-size limit set on it later makes its
/// writes fail (EFBIG) as a full disk's would (ENOSPC), instead of killing it.
fn spawn_with_writes_that_can_fail(args: &[&str]) -> Child {
    let mut command = command(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    command.spawn().expect("the binary runs")
}

/// Files of `dir` whose name ends `.partial`.
fn partial_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect()
}

#[test]
fn a_checkpoint_that_cannot_be_written_leaves_the_previous_one_whole_and_no_debris() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let args = task06_args(&runs, 3000, 1500);
    let mut child = spawn_with_writes_that_can_fail(&strs(&args));
    // The first evaluation's checkpoint is written (iteration 0); then the disk "fills up": no
    // file may grow past 4 KiB, far less than a checkpoint and more than metrics.csv.
    let created = runs.join("task06");
    wait_for(&created, &mut child);
    let run = loop {
        if let Some(entry) = std::fs::read_dir(&created).unwrap().next() {
            break entry.unwrap().path();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    wait_for(&run.join("model.safetensors"), &mut child);
    let limit = libc::rlimit {
        rlim_cur: 4096,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit for a child of this process.
    let set = unsafe {
        libc::prlimit(
            child.id() as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(set, 0, "prlimit");
    let output = finish(child);
    assert_clean_failure(&output, &["writing", ".partial", "File too large"]);
    assert_eq!(partial_files(&run), Vec::<String>::new(), "no debris");

    // The first checkpoint is whole, and its weights and training state still match.
    let evaluated = gptbuild(&[
        "evaluate",
        "--checkpoint",
        run.join("model.safetensors").to_str().unwrap(),
        "--threads",
        "1",
    ]);
    success(&evaluated);
    // Space is back: the run resumes from that checkpoint and finishes.
    let resumed = gptbuild(&[&strs(&args)[..], &["--resume"]].concat());
    success(&resumed);
    assert!(
        text(&resumed.stderr).contains("at iteration 0"),
        "{}",
        text(&resumed.stderr)
    );
    let stdout = text(&resumed.stdout);
    assert!(stdout.contains("Epoch 1500:") && stdout.contains("Epoch 2999:"));
    assert_eq!(partial_files(&run), Vec::<String>::new());
}

#[test]
fn a_run_directory_has_one_writer_and_its_readers_are_not_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    // Long enough to be running for the whole test; killed at the end.
    let args = task06_args(&runs, 1_000_000, 100);
    let mut first = command(&strs(&args)).spawn().unwrap();
    let created = runs.join("task06");
    wait_for(&created, &mut first);
    let run = run_dir(&runs);
    // Resumable once its first checkpoint is there.
    wait_for(&run.join("training.safetensors"), &mut first);
    wait_for(&run.join("model.safetensors"), &mut first);

    let second = gptbuild(&[&strs(&args)[..], &["--resume"]].concat());
    assert_clean_failure(
        &second,
        &[
            run.to_str().unwrap(),
            &format!("in use by process {}", first.id()),
        ],
    );
    // Readers read on.
    let checkpoint = run.join("model.safetensors");
    let sampled = gptbuild(&[
        "sample",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--tokens",
        "5",
    ]);
    success(&sampled);

    // A writer killed outright leaves no stale lock: the kernel drops it with the process.
    let mut stdout = BufReader::new(first.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    let resumed = gptbuild(&[&strs(&task06_args(&runs, 2, 100))[..], &["--resume"]].concat());
    success(&resumed);
    assert!(text(&resumed.stderr).contains(&format!("resuming {}", run.display())));
}
