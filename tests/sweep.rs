//! `gptbuild sweep` end to end on tiny budgets: every trial trained, the table and the best spec
//! written beside the sweep file, and a second invocation resuming without retraining.
#![cfg(feature = "cli")]

mod common;

use gptbuild::spec::Spec;
use gptbuild::workflow::sweep::sweep;

#[test]
fn a_sweep_trains_each_trial_once_and_keeps_the_best() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().unwrap();
    let base = common::repo_root().join("architectures/task01.yaml");
    let sweep_file = dir.path().join("lr.yaml");
    std::fs::write(
        &sweep_file,
        format!(
            "base: {}\nbudget: {{iters: 30}}\n\
             set: {{training.eval_interval: 10, training.eval_iters: 2, training.threads: 1, \
             sampling.tokens: 10}}\n\
             vary:\n  training.learning_rate: [1.0e-4, 1.0e-2]\n  training.seed: [1, 2]\n",
            base.display()
        ),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let data = Some(common::corpus_path());
    let mut report = Vec::new();
    let results = sweep(&sweep_file, data.clone(), Some(runs.clone()), &mut report).unwrap();
    assert_eq!(results.len(), 4);
    let report = String::from_utf8(report).unwrap();
    assert!(
        report.contains("trial 3: training.learning_rate=0.01 training.seed=2: best val"),
        "{report}"
    );

    // A learning rate 100x larger learns far more in 30 steps: it wins.
    let best = Spec::load(&dir.path().join("lr.best.yaml")).unwrap();
    assert_eq!(best.training.learning_rate, 1e-2);
    assert_eq!(best.training.eval_interval, 10);
    let table = std::fs::read_to_string(dir.path().join("lr.results.csv")).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(lines[0].starts_with("trial,training.learning_rate,training.seed,best_val_loss"));

    // Again: nothing is retrained.
    let trial_runs = || std::fs::read_dir(runs.join("sweeps/lr")).unwrap().count();
    let before = trial_runs();
    let mut again = Vec::new();
    let resumed = sweep(&sweep_file, data, Some(runs.clone()), &mut again).unwrap();
    assert_eq!(
        resumed,
        results
            .iter()
            .map(|r| {
                // Values read back from the table are rounded as written.
                let mut r = r.clone();
                r.best_val = format!("{:.4}", r.best_val).parse().unwrap();
                r.final_val = format!("{:.4}", r.final_val).parse().unwrap();
                r.seconds = format!("{:.1}", r.seconds).parse().unwrap();
                r
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(trial_runs(), before);
    assert_eq!(
        String::from_utf8(again)
            .unwrap()
            .matches("done before")
            .count(),
        4
    );
}

/// Values that are mappings (one-line JSON, with commas and quotes) survive the results table: a
/// sweep interrupted after its first trial resumes with the second, without retraining the first.
#[test]
fn a_sweep_over_mapping_values_resumes_after_an_interruption() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().unwrap();
    let base = common::repo_root().join("architectures/task01.yaml");
    let sweep_file = dir.path().join("positions.yaml");
    std::fs::write(
        &sweep_file,
        format!(
            "base: {}\nbudget: {{iters: 10}}\n\
             set: {{training.eval_interval: 5, training.eval_iters: 2, training.threads: 1, \
             sampling.tokens: 5}}\n\
             vary:\n  model.position: [{{kind: learned}}, {{kind: sinusoidal, base: 100.0}}]\n",
            base.display()
        ),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let data = Some(common::corpus_path());
    let results = sweep(
        &sweep_file,
        data.clone(),
        Some(runs.clone()),
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(results.len(), 2);
    let table_path = dir.path().join("positions.results.csv");
    let table = std::fs::read_to_string(&table_path).unwrap();
    assert!(
        table.contains(r#""{""kind"":""sinusoidal"",""base"":100.0}""#),
        "the mapping is one quoted cell:\n{table}"
    );

    // As if Ctrl-C had stopped the sweep after trial 0: the table holds only its row.
    let first_row: Vec<&str> = table.lines().take(2).collect();
    std::fs::write(&table_path, first_row.join("\n") + "\n").unwrap();
    // Run directories: sweeps/positions/<trial name>/<run id>.
    let trial_runs = || {
        ["positions-000", "positions-001"].map(|trial| {
            std::fs::read_dir(runs.join("sweeps/positions").join(trial))
                .unwrap()
                .count()
        })
    };
    let before = trial_runs();
    let mut report = Vec::new();
    let resumed = sweep(&sweep_file, data, Some(runs.clone()), &mut report).unwrap();
    let report = String::from_utf8(report).unwrap();
    assert_eq!(resumed.len(), 2);
    assert_eq!(resumed[1].values, results[1].values);
    assert_eq!(report.matches("done before").count(), 1, "{report}");
    assert_eq!(
        trial_runs(),
        [before[0], before[1] + 1],
        "only the unfinished trial trains again"
    );
    assert_eq!(
        std::fs::read_to_string(&table_path)
            .unwrap()
            .lines()
            .count(),
        3
    );
}
