//! Data-parallel training for real: several `gptbuild` processes meeting over loopback through
//! c10d (Gloo), launched with torchrun's variables set by hand and by torchrun itself. Each test
//! holds a lock, so that at most two training processes (one thread each) share the machine.
#![cfg(all(feature = "cli", feature = "distributed"))]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::tolerance::{bound, model_depth, FP32};

const BIN: &str = env!("CARGO_BIN_EXE_gptbuild");

/// How long a test waits for its processes before killing them and failing: a hang is a failure.
const DEADLINE: Duration = Duration::from_secs(240);

/// One multi-process test at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback");
    listener.local_addr().unwrap().port()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `gptbuild ARGS` as rank `rank` of `world` meeting at `port` (as torchrun would start it, but
/// with rank 0 serving the store), or as a single process when `world` is 1.
fn rank_command(rank: usize, world: usize, port: u16, args: &[String]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("GPTBUILD_DATA", common::corpus_path())
        .env("GPTBUILD_DIST_TIMEOUT", "60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if world > 1 {
        command
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", world.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string());
    }
    command
}

/// Waits for every child, killing all of them (and failing) if the deadline passes.
fn wait_all(children: Vec<Child>) -> Vec<Output> {
    let started = Instant::now();
    let mut children: Vec<Option<Child>> = children.into_iter().map(Some).collect();
    loop {
        let running = children
            .iter_mut()
            .flatten()
            .any(|child| child.try_wait().expect("waitable").is_none());
        if !running {
            break;
        }
        if started.elapsed() > DEADLINE {
            for child in children.iter_mut().flatten() {
                let _ = child.kill();
            }
            panic!("the processes did not finish within {DEADLINE:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    children
        .iter_mut()
        .map(|child| child.take().unwrap().wait_with_output().unwrap())
        .collect()
}

/// Runs `gptbuild ARGS` in `world` processes to the end.
fn run_world(world: usize, args: &[String]) -> Vec<Output> {
    let port = free_port();
    let children = (0..world)
        .map(|rank| rank_command(rank, world, port, args).spawn().unwrap())
        .collect();
    wait_all(children)
}

fn assert_success(outputs: &[Output]) {
    for (rank, output) in outputs.iter().enumerate() {
        assert!(
            output.status.success(),
            "rank {rank}: {:?}\n{}",
            output.status,
            text(&output.stderr)
        );
    }
}

/// `gptbuild run SPEC` for `iters` iterations into `runs`, evaluating every 20, one thread.
fn run_args(spec: &Path, runs: &Path, iters: u32, extra: &[&str]) -> Vec<String> {
    run_args_every(spec, runs, iters, 20, extra)
}

/// [`run_args`], evaluating every `eval_interval` iterations.
fn run_args_every(
    spec: &Path,
    runs: &Path,
    iters: u32,
    eval_interval: u32,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        spec.to_str().unwrap(),
        "--iters",
        &iters.to_string(),
        "--eval-interval",
        &eval_interval.to_string(),
        "--eval-iters",
        "4",
        "--threads",
        "1",
        "--runs-dir",
        runs.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The run directories under `runs/<spec name>`.
fn run_dirs(runs: &Path, name: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs.join(name))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// `(iteration, train loss, val loss)` of each row of a run's metrics.csv.
fn losses(dir: &Path) -> Vec<(i64, f64, f64)> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let number = |i: usize| fields[i].parse::<f64>().unwrap();
            (fields[0].parse().unwrap(), number(1), number(2))
        })
        .collect()
}

/// Course step 6: three pre-LN blocks and no dropout, so that replicas draw nothing at random and
/// a data-parallel run computes what one process computes, up to rounding.
fn task06() -> PathBuf {
    common::repo_root().join("architectures/task06.yaml")
}

/// How far a loss of a data-parallel run may be from one process's at `iteration`. The two add
/// up the same terms in another order: the half-batch gradients are summed, then averaged, and
/// each evaluation's shares are summed. At iteration 0 that is one evaluation's rounding (the
/// model's depth plus one more sum, relative to the loss: about 1.6e-4 for task06); each step's
/// update carries the previous steps' differences forward, and while training is smooth they add
/// up at most linearly, so the bound grows with the iterations taken (±0.0096 by iteration 59).
/// metrics.csv rounds to 1e-6. Measured: differences of 1e-6 at every evaluation. Training on a
/// replica's own half-batch without the all-reduce moves the losses by 0.03 or more.
fn loss_bound(iteration: i64, loss: f64) -> f64 {
    bound(FP32, model_depth(3) + 1.0, loss) * (1 + iteration) as f64 + 1e-6
}

fn assert_same_losses(actual: &[(i64, f64, f64)], expected: &[(i64, f64, f64)]) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.0, e.0, "evaluated at other iterations");
        for (got, want) in [(a.1, e.1), (a.2, e.2)] {
            let bound = loss_bound(e.0, want);
            assert!(
                (got - want).abs() <= bound,
                "iteration {}: {got} vs one process's {want} (bound {bound:.2e})\n{actual:?}\n{expected:?}",
                e.0
            );
        }
    }
}

#[test]
fn two_processes_train_as_one_process_does_with_the_same_global_batch() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (single, double) = (dir.path().join("one"), dir.path().join("two"));
    let one = run_world(1, &run_args(&task06(), &single, 60, &[]));
    assert_success(&one);
    let two = run_world(2, &run_args(&task06(), &double, 60, &[]));
    assert_success(&two);

    // Rank 0 prints the course's log once and the sample; rank 1 prints nothing on stdout.
    let log = text(&two[0].stdout);
    assert_eq!(log.matches("Epoch ").count(), 4, "{log}");
    assert!(log.contains("Epoch 59: "), "{log}");
    assert!(log.contains("Sampling 500 tokens"), "{log}");
    assert_eq!(text(&two[1].stdout), "", "rank 1 printed");
    assert!(text(&two[0].stderr).contains("run saved in"));
    assert!(!text(&two[1].stderr).contains("run saved in"));

    // One run directory, with everything a run leaves.
    let dirs = run_dirs(&double, "task06");
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    for file in [
        "spec.yaml",
        "metrics.csv",
        "model.safetensors",
        "training.safetensors",
    ] {
        assert!(dirs[0].join(file).is_file(), "{file} missing");
    }
    let expected = losses(&run_dirs(&single, "task06")[0]);
    assert_same_losses(&losses(&dirs[0]), &expected);
    assert!(expected.len() >= 4 && expected.last().unwrap().0 == 59);
}

/// task06 with `val_eval: whole_split`, so that the resumed runs also shard the whole split.
fn whole_split_spec(dir: &Path) -> PathBuf {
    let yaml = std::fs::read_to_string(task06()).unwrap();
    let yaml = yaml.replace("training:\n", "training:\n  val_eval: whole_split\n");
    assert!(yaml.contains("val_eval"));
    let path = dir.join("ddp.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn a_run_resumes_on_another_number_of_processes() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let spec = whole_split_spec(dir.path());
    let whole = dir.path().join("whole");
    assert_success(&run_world(1, &run_args(&spec, &whole, 60, &[])));
    let expected = losses(&run_dirs(&whole, "ddp")[0]);
    for (first, then) in [(2, 1), (1, 2)] {
        let runs = dir.path().join(format!("{first}-then-{then}"));
        assert_success(&run_world(first, &run_args(&spec, &runs, 30, &[])));
        let resumed = run_world(then, &run_args(&spec, &runs, 60, &["--resume"]));
        assert_success(&resumed);
        assert!(text(&resumed[0].stderr).starts_with("resuming "));
        let dirs = run_dirs(&runs, "ddp");
        assert_eq!(dirs.len(), 1, "resumed in place: {dirs:?}");
        // The first part evaluated at its own last iteration (29) as well.
        let parts: Vec<_> = losses(&dirs[0])
            .into_iter()
            .filter(|row| row.0 != 29)
            .collect();
        assert_same_losses(&parts, &expected);
    }
}

/// Starts a long 2-process run and returns both children once rank 0 has printed its first
/// evaluation, with rank 0's stdout reader.
fn start_long_pair(runs: &Path) -> (Child, Child, BufReader<std::process::ChildStdout>) {
    let args = run_args_every(&task06(), runs, 1_000_000, 1_000_000, &[]);
    let port = free_port();
    let mut rank0 = rank_command(0, 2, port, &args).spawn().unwrap();
    let rank1 = rank_command(1, 2, port, &args).spawn().unwrap();
    let mut stdout = BufReader::new(rank0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("Epoch 0: "), "{first}");
    (rank0, rank1, stdout)
}

#[test]
fn a_rank_that_dies_ends_the_others_with_one_clear_error() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (rank0, mut rank1, mut stdout) = start_long_pair(dir.path());
    std::thread::sleep(Duration::from_millis(300));
    rank1.kill().unwrap();
    let started = Instant::now();
    let outputs = wait_all(vec![rank0, rank1]);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let stderr = text(&outputs[0].stderr);
    assert_eq!(outputs[0].status.code(), Some(1), "{stderr}");
    let error = stderr.lines().last().unwrap_or_default();
    assert!(
        error.starts_with("error: distributed training, rank 0: ") && error.contains("failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "noticed only after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_rank_that_never_joins_is_an_error_after_the_timeout() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let args = run_args(&task06(), dir.path(), 10, &[]);
    let mut alone = rank_command(0, 2, free_port(), &args);
    alone.env("GPTBUILD_DIST_TIMEOUT", "2");
    let started = Instant::now();
    let output = wait_all(vec![alone.spawn().unwrap()]).remove(0);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: distributed training, rank 0: could not join the group"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(run_dirs(dir.path(), "task06").is_empty(), "nothing written");
}

#[test]
fn ctrl_c_on_one_rank_stops_both_after_the_same_step_and_rank_0_saves() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (rank0, rank1, mut stdout) = start_long_pair(dir.path());
    // Only rank 1 is told: the request travels with the gradients.
    let killed = Command::new("kill")
        .args(["-INT", &rank1.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let outputs = wait_all(vec![rank0, rank1]);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    for (rank, output) in outputs.iter().enumerate() {
        assert_eq!(
            output.status.code(),
            Some(130),
            "rank {rank}: {}",
            text(&output.stderr)
        );
    }
    let stderr = text(&outputs[0].stderr);
    assert!(stderr.contains("checkpoint saved in"), "{stderr}");
    assert!(!text(&outputs[1].stderr).contains("checkpoint"));
    let dirs = run_dirs(dir.path(), "task06");
    assert_eq!(dirs.len(), 1);
    assert!(dirs[0].join("training.safetensors").is_file());
}

/// torchrun from the Python environment the setup made (scripts/env.sh).
fn torchrun() -> PathBuf {
    let path = common::repo_root().join(".venv/bin/torchrun");
    assert!(
        path.is_file(),
        "{} missing: run scripts/env.sh",
        path.display()
    );
    path
}

fn torchrun_command(launch: &[String], args: &[String]) -> Command {
    let mut command = Command::new(torchrun());
    command
        .args(launch)
        .args(["--no-python", BIN])
        .args(args)
        .env("GPTBUILD_DATA", common::corpus_path())
        .env("GPTBUILD_DIST_TIMEOUT", "60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn torchrun_launches_it_on_one_machine_and_as_two_nodes() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("standalone");
    let standalone = ["--standalone", "--nproc-per-node", "2"].map(String::from);
    let output = wait_all(vec![torchrun_command(
        &standalone,
        &run_args(&task06(), &runs, 40, &[]),
    )
    .spawn()
    .unwrap()]);
    assert_success(&output);
    let log = text(&output[0].stdout);
    assert_eq!(log.matches("Epoch 39: ").count(), 1, "{log}");
    assert_eq!(run_dirs(&runs, "task06").len(), 1);

    // The benchmark times the gradient all-reduce of each step; rank 0 reports.
    let spec = task06();
    let bench = [
        "bench",
        spec.to_str().unwrap(),
        "--steps",
        "3",
        "--warmup",
        "1",
    ];
    let bench = bench.map(String::from);
    let output = wait_all(vec![torchrun_command(&standalone, &bench).spawn().unwrap()]);
    assert_success(&output);
    let report = text(&output[0].stdout);
    assert_eq!(report.matches("steps timed").count(), 1, "{report}");
    assert!(report.contains("processes           2"), "{report}");
    assert!(report.contains("all-reduce ms/step  median "), "{report}");

    // Two "machines" on loopback: two torchrun commands, one process each.
    let runs = dir.path().join("nodes");
    let endpoint = format!("127.0.0.1:{}", free_port());
    let nodes = (0..2)
        .map(|node| {
            let launch = [
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                &node.to_string(),
                "--rdzv-endpoint",
                &endpoint,
            ]
            .map(String::from);
            // Each node would have its own disk; here they share one, and only node 0 writes.
            torchrun_command(&launch, &run_args(&task06(), &runs, 40, &[]))
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = wait_all(nodes);
    assert_success(&outputs);
    assert!(text(&outputs[0].stdout).contains("Epoch 39: "));
    assert_eq!(text(&outputs[1].stdout), "");
    assert_eq!(run_dirs(&runs, "task06").len(), 1);
}

#[test]
fn ranks_with_different_corpora_refuse_to_train_together() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let corpus = std::fs::read_to_string(common::corpus_path()).unwrap();
    let shorter = dir.path().join("shorter.txt");
    std::fs::write(&shorter, &corpus[..corpus.len() / 2]).unwrap();
    let port = free_port();
    let children = (0..2)
        .map(|rank| {
            let mut args = run_args(&task06(), dir.path(), 10, &[]);
            if rank == 1 {
                args.extend(["--data".to_string(), shorter.to_str().unwrap().to_string()]);
            }
            rank_command(rank, 2, port, &args).spawn().unwrap()
        })
        .collect();
    let outputs = wait_all(children);
    for (rank, output) in outputs.iter().enumerate() {
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "rank {rank}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "error: distributed training, rank {rank}: the processes do not train on the same data"
            )),
            "rank {rank}: {stderr}"
        );
    }
}

#[test]
fn ranks_with_different_specs_refuse_to_train_together_naming_the_field() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // The same file name (so the same spec name) on two "nodes", one with another learning rate.
    let original = std::fs::read_to_string(task06()).unwrap();
    let spec = |node: &str, text: &str| {
        let path = dir.path().join(node).join("task06.yaml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    };
    let rate = "learning_rate: 1.0e-3";
    assert!(original.contains(rate), "task06 states its learning rate");
    let specs = [
        spec("node0", &original),
        spec("node1", &original.replace(rate, "learning_rate: 2.0e-3")),
    ];
    /// Each rank's spec file and extra flags, and what rank 1 must say: field, its value, rank 0's.
    struct Case<'a> {
        files: [&'a Path; 2],
        extra: [&'a [&'a str]; 2],
        field: &'a str,
        here: &'a str,
        first: &'a str,
    }
    let cases = [
        Case {
            files: [&specs[0], &specs[1]],
            extra: [&[], &[]],
            field: "training.learning_rate",
            here: "0.002",
            first: "0.001",
        },
        // A command-line override that differs is a spec that differs.
        Case {
            files: [&specs[0], &specs[0]],
            extra: [&[], &["--max-minutes", "5"]],
            field: "training.max_minutes",
            here: "5.0",
            first: "absent",
        },
    ];
    for Case {
        files,
        extra,
        field,
        here,
        first,
    } in cases
    {
        let port = free_port();
        let children = (0..2)
            .map(|rank| {
                let args = run_args(files[rank], dir.path(), 10, extra[rank]);
                rank_command(rank, 2, port, &args).spawn().unwrap()
            })
            .collect();
        let outputs = wait_all(children);
        let stderr: Vec<String> = outputs.iter().map(|o| text(&o.stderr)).collect();
        for (rank, output) in outputs.iter().enumerate() {
            assert_eq!(
                output.status.code(),
                Some(1),
                "rank {rank}: {}",
                stderr[rank]
            );
            assert_eq!(stderr[rank].lines().count(), 1, "{}", stderr[rank]);
        }
        assert!(
            stderr[1].starts_with("error: distributed training, rank 1: ")
                && stderr[1].contains(&format!(
                    "differs from rank 0's at {field}: {here} here, {first} on rank 0"
                )),
            "{}",
            stderr[1]
        );
        assert!(
            stderr[0].contains("rank 0: the processes do not train the same spec: rank 1 differs"),
            "{}",
            stderr[0]
        );
    }
    assert!(run_dirs(dir.path(), "task06").len() <= 2, "nothing trained");
}
