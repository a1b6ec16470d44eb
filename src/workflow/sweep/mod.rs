//! `gptbuild sweep SWEEP.yaml`: a hyperparameter search. A sweep names a base spec, fixed
//! overrides, the fields to vary (by dotted path into the spec, any field at all) and a budget per
//! trial; it trains every combination (grid) or a seeded random sample of them, and writes a
//! results table and the best trial's resolved spec beside the sweep file — the files to commit.
//! Finished trials are recorded as they end, so an interrupted sweep resumes where it stopped.
//!
//! ```yaml
//! base: task06                  # a spec path (relative to this file) or a bare name
//! search: grid                  # or random, with trials: N and seed: S
//! budget: {iters: 2000}         # and/or minutes: 2, per trial
//! set: {training.eval_interval: 250, training.eval_iters: 50}
//! vary:
//!   training.learning_rate: [3.0e-4, 1.0e-3, 3.0e-3]
//!   model.dropout: [0.0, 0.1]
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;
use serde_norway::Value;

use crate::data::SplitMix64;
use crate::error::{Error, Result};
use crate::files::write_whole;
use crate::spec::{find_spec, Spec};
use crate::workflow::run::{run, RunOptions};

pub mod results;

pub use results::TrialResult;
use results::{read_results, write_results};

/// How the combinations are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Search {
    /// Every combination, in order.
    #[default]
    Grid,
    /// `trials` distinct combinations drawn with `seed`.
    Random,
}

/// Each trial's training budget; at least one of the two.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub iters: Option<i64>,
    pub minutes: Option<f64>,
}

/// A sweep file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Names the runs (`runs/sweeps/<name>/`); defaults to the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    pub base: String,
    #[serde(default)]
    pub search: Search,
    /// For `random`: how many combinations.
    #[serde(default)]
    pub trials: Option<usize>,
    #[serde(default)]
    pub seed: u64,
    pub budget: Budget,
    /// Overrides applied to every trial, by dotted path.
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// The values each varied field takes, by dotted path.
    pub vary: BTreeMap<String, Vec<Value>>,
}

/// One combination: a value for each varied field, in `vary`'s (sorted) order.
pub type Trial = Vec<(String, Value)>;

/// The most trials a sweep may have: a grid's combinations, or a random search's `trials` (each
/// one is a training run, and the list of them is held in memory).
pub const MAX_COMBINATIONS: usize = 1_000_000;

impl SweepSpec {
    pub fn load(path: &Path) -> Result<SweepSpec> {
        let bad = |message: String| Error::Usage(format!("sweep {}: {message}", path.display()));
        let text = crate::files::read_text(path).map_err(|e| bad(e.to_string()))?;
        let mut sweep: SweepSpec = serde_norway::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if sweep.name.is_none() {
            sweep.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        if sweep.budget.iters.is_none() && sweep.budget.minutes.is_none() {
            return Err(bad("budget needs iters, minutes or both".into()));
        }
        if sweep.vary.is_empty() || sweep.vary.values().any(Vec::is_empty) {
            return Err(bad(
                "vary needs at least one field, each with at least one value".into(),
            ));
        }
        let combinations = sweep
            .vary
            .values()
            .try_fold(1usize, |product, values| product.checked_mul(values.len()));
        match (combinations, sweep.search) {
            (None, _) => {
                return Err(bad(
                    "vary makes more combinations than can be counted".into()
                ))
            }
            (Some(n), Search::Grid) if n > MAX_COMBINATIONS => {
                return Err(bad(format!(
                    "a grid of {n} combinations is more than {MAX_COMBINATIONS}; vary fewer \
                     fields or values, or use search: random with trials: N"
                )))
            }
            _ => {}
        }
        if sweep.search == Search::Random
            && !sweep
                .trials
                .is_some_and(|n| (1..=MAX_COMBINATIONS).contains(&n))
        {
            return Err(bad(format!(
                "search: random needs trials: N, from 1 to {MAX_COMBINATIONS}"
            )));
        }
        Ok(sweep)
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("sweep")
    }

    /// The combinations to train, in order: all of them for a grid, a seeded sample of distinct
    /// ones for a random search.
    pub fn trials(&self) -> Vec<Trial> {
        let fields: Vec<(&String, &Vec<Value>)> = self.vary.iter().collect();
        let total: usize = fields.iter().map(|(_, values)| values.len()).product();
        let combination = |mut number: usize| -> Trial {
            fields
                .iter()
                .rev()
                .map(|(field, values)| {
                    let value = values[number % values.len()].clone();
                    number /= values.len();
                    ((*field).clone(), value)
                })
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect()
        };
        match self.search {
            Search::Grid => (0..total).map(combination).collect(),
            Search::Random => {
                let wanted = self.trials.unwrap_or(1).min(total);
                let mut rng = SplitMix64::stream(self.seed, 0x5EE9);
                let mut chosen: Vec<usize> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                while chosen.len() < wanted {
                    let number = rng.below(total as u64) as usize;
                    if seen.insert(number) {
                        chosen.push(number);
                    }
                }
                chosen.into_iter().map(combination).collect()
            }
        }
    }
}

/// The spec text of a trial: `base` with the fixed overrides, the trial's values and its name.
pub fn trial_yaml(base: &str, sweep: &SweepSpec, trial: &Trial, name: &str) -> Result<String> {
    let mut document: Value =
        serde_norway::from_str(base).map_err(|e| Error::Usage(format!("base spec: {e}")))?;
    let overrides = sweep.set.iter().map(|(k, v)| (k.clone(), v.clone()));
    for (path, value) in overrides.chain(trial.iter().cloned()) {
        set_path(&mut document, &path, value)?;
    }
    set_path(&mut document, "name", Value::String(name.into()))?;
    serde_norway::to_string(&document).map_err(|e| Error::Usage(format!("trial spec: {e}")))
}

/// Sets `a.b.c` in a YAML document, creating maps on the way.
fn set_path(document: &mut Value, path: &str, value: Value) -> Result<()> {
    let mut node = document;
    let keys: Vec<&str> = path.split('.').collect();
    for (i, key) in keys.iter().enumerate() {
        if key.is_empty() {
            return Err(Error::Usage(format!("{path:?} is not a dotted field path")));
        }
        if node.is_null() {
            *node = Value::Mapping(Default::default());
        }
        let Value::Mapping(map) = node else {
            return Err(Error::Usage(format!(
                "cannot set {path}: {} is not a section",
                keys[..i].join(".")
            )));
        };
        let key = Value::String((*key).to_string());
        if i + 1 == keys.len() {
            map.insert(key, value);
            return Ok(());
        }
        node = map.entry(key).or_insert(Value::Null);
    }
    Ok(())
}

/// A value as the results table writes it: on one line, mappings and lists as JSON (`{"kind":"rope"}`).
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Mapping(_) | Value::Sequence(_) => serde_json::to_string(value).unwrap_or_default(),
        other => serde_norway::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

/// Runs (or resumes) the sweep in `sweep_path` (its runs under `runs_dir/sweeps/<name>/`),
/// reporting each trial on `out`. Writes
/// `<stem>.results.csv` and `<stem>.best.yaml` beside the sweep file.
pub fn sweep(
    sweep_path: &Path,
    data: Option<PathBuf>,
    runs_dir: Option<PathBuf>,
    out: &mut dyn Write,
) -> Result<Vec<TrialResult>> {
    let sweep = SweepSpec::load(sweep_path)?;
    let here = sweep_path.parent().unwrap_or(Path::new("."));
    let base_path = if here.join(&sweep.base).is_file() {
        here.join(&sweep.base)
    } else {
        find_spec(&sweep.base)?
    };
    let base = crate::files::read_text(&base_path)
        .map_err(Error::io(format!("reading {}", base_path.display())))?;
    let stem = sweep_path.with_extension("");
    let results_path = PathBuf::from(format!("{}.results.csv", stem.display()));
    let best_path = PathBuf::from(format!("{}.best.yaml", stem.display()));
    let runs_root = runs_dir
        .unwrap_or_else(|| PathBuf::from(crate::artifacts::run_dir::RUNS_DIR))
        .join("sweeps")
        .join(sweep.name());
    let specs_dir = runs_root.join("specs");
    std::fs::create_dir_all(&specs_dir)
        .map_err(Error::io(format!("creating {}", specs_dir.display())))?;

    let trials = sweep.trials();
    let fields: Vec<String> = sweep.vary.keys().cloned().collect();
    let mut results = read_results(&results_path, &fields)?;
    let io = |e| Error::io("writing the sweep report")(e);
    writeln!(
        out,
        "sweep {}: {} trials of {}",
        sweep.name(),
        trials.len(),
        base_path.display()
    )
    .map_err(io)?;
    for (index, trial) in trials.iter().enumerate() {
        let values: Vec<String> = trial.iter().map(|(_, v)| show(v)).collect();
        let settings = fields
            .iter()
            .zip(&values)
            .map(|(f, v)| format!("{f}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(done) = results.iter().find(|r| r.index == index) {
            if done.values != values {
                return Err(Error::Usage(format!(
                    "{} records trial {index} as {:?}, but the sweep now makes it {values:?}; \
                     move the results file away to start over",
                    results_path.display(),
                    done.values
                )));
            }
            writeln!(
                out,
                "trial {index}: {settings}: done before (best val {:.4})",
                done.best_val
            )
            .map_err(io)?;
            continue;
        }
        let name = format!("{}-{index:03}", sweep.name());
        let spec_path = specs_dir.join(format!("{name}.yaml"));
        let yaml = trial_yaml(&base, &sweep, trial, &name)?;
        write_whole(&spec_path, yaml.as_bytes())?;
        // Check the trial spec before training, so a bad combination names its field.
        Spec::load(&spec_path)?;
        let options = RunOptions {
            data: data.clone(),
            runs_dir: Some(runs_root.clone()),
            max_iters: sweep.budget.iters,
            max_minutes: sweep.budget.minutes,
            ..RunOptions::default()
        };
        let started = Instant::now();
        let mut log = Vec::new();
        let outcome = run(&spec_path, &options, &mut log)?;
        if !outcome.finished {
            return Err(Error::Interrupted);
        }
        let best_val = outcome
            .evaluations
            .iter()
            .map(|e| e.val_loss)
            .fold(f64::INFINITY, f64::min);
        let final_val = outcome.evaluations.last().map_or(f64::NAN, |e| e.val_loss);
        let result = TrialResult {
            index,
            values,
            best_val,
            final_val,
            iterations: outcome.iteration,
            seconds: started.elapsed().as_secs_f64(),
            run_dir: outcome.dir,
        };
        writeln!(
            out,
            "trial {index}: {settings}: best val {best_val:.4}, final {final_val:.4}, {} iterations in {:.1} s",
            result.iterations, result.seconds
        )
        .map_err(io)?;
        results.push(result);
        write_results(&results_path, &fields, &results)?;
    }
    let best = results
        .iter()
        .filter(|r| r.best_val.is_finite())
        .min_by(|a, b| a.best_val.total_cmp(&b.best_val))
        .ok_or_else(|| Error::Usage("no trial produced a finite validation loss".into()))?;
    let best_spec =
        Spec::load(&specs_dir.join(format!("{}-{:03}.yaml", sweep.name(), best.index)))?;
    let best_yaml = format!(
        "# Best trial of sweep {} ({}): best val loss {:.4} after {} iterations\n{}",
        sweep.name(),
        sweep_path.display(),
        best.best_val,
        best.iterations,
        best_spec.to_yaml()
    );
    write_whole(&best_path, best_yaml.as_bytes())?;
    writeln!(
        out,
        "best: trial {} (best val {:.4}); results in {}, its spec in {}",
        best.index,
        best.best_val,
        results_path.display(),
        best_path.display()
    )
    .map_err(io)?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(text: &str) -> SweepSpec {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn a_grid_is_every_combination_in_order() {
        let s = sweep("base: x\nbudget: {iters: 1}\nvary: {a: [1, 2], b: [x, y, z]}\n");
        let trials: Vec<Vec<String>> = s
            .trials()
            .iter()
            .map(|t| t.iter().map(|(_, v)| show(v)).collect())
            .collect();
        assert_eq!(trials.len(), 6);
        assert_eq!(trials[0], ["1", "x"]);
        assert_eq!(trials[1], ["1", "y"]);
        assert_eq!(trials[5], ["2", "z"]);
    }

    #[test]
    fn a_grid_of_more_combinations_than_can_be_listed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.yaml");
        let values = format!(
            "[{}]",
            (0..100)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let vary: String = (0..4).map(|i| format!("  f{i}: {values}\n")).collect();
        std::fs::write(
            &path,
            format!("base: x\nbudget: {{iters: 1}}\nvary:\n{vary}"),
        )
        .unwrap();
        let error = SweepSpec::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("is more than 1000000; vary fewer"),
            "{error}"
        );
        // The same values searched at random are fine: only `trials` of them are drawn.
        let random = std::fs::read_to_string(&path)
            .unwrap()
            .replace("base: x\n", "base: x\nsearch: random\ntrials: 3\n");
        std::fs::write(&path, random).unwrap();
        assert_eq!(SweepSpec::load(&path).unwrap().trials().len(), 3);
    }

    #[test]
    fn a_random_search_draws_distinct_combinations_from_its_seed() {
        let s = sweep("base: x\nsearch: random\ntrials: 4\nseed: 3\nbudget: {iters: 1}\nvary: {a: [1, 2, 3], b: [4, 5, 6]}\n");
        let first = s.trials();
        assert_eq!(first.len(), 4);
        assert_eq!(first, s.trials(), "same seed, same trials");
        for (i, a) in first.iter().enumerate() {
            assert!(first[i + 1..].iter().all(|b| a != b), "distinct");
        }
    }

    #[test]
    fn overrides_reach_any_field_by_path() {
        let base = "model:\n  block_size: 8\n  block:\n    attention: {kind: head}\n";
        let s = sweep("base: x\nbudget: {iters: 1}\nset: {training.eval_iters: 5}\nvary: {model.block.attention.head_size: [16]}\n");
        let yaml = trial_yaml(base, &s, &s.trials()[0], "t-000").unwrap();
        let spec =
            Spec::from_yaml(&yaml.replace("block_size: 8", "block_size: 8\n  n_embd: 16")).unwrap();
        assert_eq!(spec.training.eval_iters, 5);
        assert_eq!(spec.name(), "t-000");
        assert!(yaml.contains("head_size: 16"), "{yaml}");
        assert!(set_path(&mut Value::String("x".into()), "a.b", Value::Null).is_err());
    }
}
