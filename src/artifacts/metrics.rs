//! `metrics.csv`: one row per evaluation — iteration, both losses, the validation loss in bits per
//! character and the wall time since the run began (counted across resumes) — rewritten after
//! every evaluation so it is always complete.
//! Written and read with the `csv` crate, like every table the project keeps.

use std::path::Path;
use std::time::Instant;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::train::Evaluation;

const HEADER: [&str; 5] = [
    "iteration",
    "train_loss",
    "val_loss",
    "val_bits_per_character",
    "elapsed_seconds",
];

/// One evaluation, as a row of `metrics.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct MetricsRow {
    pub iteration: i64,
    pub train_loss: f64,
    pub val_loss: f64,
    /// Wall-clock seconds of training before this evaluation, across resumes.
    pub elapsed_seconds: f64,
    /// The validation loss in bits per character of text, comparable across tokenizers (the
    /// loss per token over the split's characters per token); absent in files written before
    /// it existed.
    #[serde(default)]
    pub val_bits_per_character: Option<f64>,
}

#[derive(Debug)]
pub struct Metrics {
    rows: Vec<MetricsRow>,
    started: Instant,
    /// Seconds the run had trained before this invocation.
    elapsed_before: f64,
    /// Characters of text per token of the validation split (1 for the character vocabulary).
    characters_per_token: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Every row of the `metrics.csv` at `path`, or an error naming the file and the bad row.
pub fn read_rows(path: &Path) -> Result<Vec<MetricsRow>> {
    let text =
        crate::files::read_text(path).map_err(Error::io(format!("reading {}", path.display())))?;
    parse_rows(&text).map_err(|message| Error::Usage(format!("{}: {message}", path.display())))
}

/// The rows of a metrics table; the problem, with its line, on failure.
pub fn parse_rows(text: &str) -> std::result::Result<Vec<MetricsRow>, String> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .deserialize::<MetricsRow>()
        .map(|row| row.map_err(|e| format!("malformed row: {e}")))
        .collect()
}

impl Metrics {
    /// No rows yet; the clock starts now.
    pub fn new() -> Self {
        Metrics {
            rows: Vec::new(),
            started: Instant::now(),
            elapsed_before: 0.0,
            characters_per_token: 1.0,
        }
    }

    /// Converts validation losses to bits per character at `characters_per_token`.
    pub fn with_characters_per_token(mut self, characters_per_token: f64) -> Self {
        self.characters_per_token = characters_per_token;
        self
    }

    /// The rows of an earlier invocation up to `last_evaluation` (later ones were not reached by
    /// the checkpoint being resumed), with the clock continuing from the last of them.
    pub fn read(path: &Path, last_evaluation: Option<i64>) -> Result<Self> {
        let mut metrics = Metrics::new();
        if !path.exists() {
            return Ok(metrics);
        }
        let last = last_evaluation.unwrap_or(-1);
        metrics.rows = read_rows(path)?
            .into_iter()
            .filter(|row| row.iteration <= last)
            .collect();
        metrics.elapsed_before = metrics.rows.last().map_or(0.0, |row| row.elapsed_seconds);
        Ok(metrics)
    }

    pub fn record(&mut self, evaluation: &Evaluation) {
        self.rows.push(MetricsRow {
            iteration: evaluation.iteration,
            train_loss: evaluation.train_loss,
            val_loss: evaluation.val_loss,
            elapsed_seconds: self.elapsed_before + self.started.elapsed().as_secs_f64(),
            val_bits_per_character: Some(
                evaluation.val_loss / std::f64::consts::LN_2 / self.characters_per_token,
            ),
        });
    }

    /// The lowest validation loss recorded so far.
    pub fn best_val_loss(&self) -> Option<f64> {
        self.rows
            .iter()
            .map(|row| row.val_loss)
            .filter(|loss| loss.is_finite())
            .min_by(f64::total_cmp)
    }

    /// The whole file: losses to 6 decimals, seconds to 3.
    pub fn csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let written = writer.write_record(HEADER).and_then(|()| {
            self.rows.iter().try_for_each(|row| {
                writer.write_record([
                    row.iteration.to_string(),
                    format!("{:.6}", row.train_loss),
                    format!("{:.6}", row.val_loss),
                    row.val_bits_per_character
                        .map(|bits| format!("{bits:.6}"))
                        .unwrap_or_default(),
                    format!("{:.3}", row.elapsed_seconds),
                ])
            })
        });
        // Writing to memory cannot fail; the rows are plain numbers.
        debug_assert!(written.is_ok());
        let bytes = writer.into_inner().unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(iteration: i64, train_loss: f64, val_loss: f64, elapsed_seconds: f64) -> MetricsRow {
        MetricsRow {
            iteration,
            train_loss,
            val_loss,
            elapsed_seconds,
            val_bits_per_character: None,
        }
    }

    #[test]
    fn a_resumed_run_keeps_the_rows_it_reached_and_its_clock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        // A file from before bits per character were recorded.
        let old_header = "iteration,train_loss,val_loss,elapsed_seconds";
        std::fs::write(
            &path,
            format!("{old_header}\n0,4.1,4.2,0.5\n10,3.1,3.2,7.25\n20,2.1,2.2,9.0\n"),
        )
        .unwrap();
        let header = HEADER.join(",");
        let mut metrics = Metrics::read(&path, Some(10))
            .unwrap()
            .with_characters_per_token(2.0);
        assert_eq!(
            metrics.rows,
            [row(0, 4.1, 4.2, 0.5), row(10, 3.1, 3.2, 7.25)]
        );
        assert_eq!(metrics.elapsed_before, 7.25);
        assert_eq!(metrics.best_val_loss(), Some(3.2));
        metrics.record(&Evaluation {
            iteration: 20,
            train_loss: 2.0,
            val_loss: 2.5,
        });
        let csv = metrics.csv();
        assert!(
            csv.starts_with(&format!("{header}\n0,4.100000,4.200000,,0.500\n")),
            "{csv}"
        );
        let last = csv.lines().last().unwrap();
        assert!(
            last.starts_with("20,2.000000,2.500000,1.803369,7.2"),
            "{csv}"
        );
        // What it writes, it reads back; 2.5 nats per token of 2 characters.
        let rows = parse_rows(&csv).unwrap();
        assert_eq!(rows.len(), 3);
        let bits = rows[2].val_bits_per_character.unwrap();
        assert!(
            (bits - 2.5 / std::f64::consts::LN_2 / 2.0).abs() < 1e-6,
            "{bits}"
        );

        std::fs::write(&path, format!("{header}\nnonsense\n")).unwrap();
        let error = Metrics::read(&path, Some(10)).unwrap_err().to_string();
        assert!(error.contains("malformed row"), "{error}");
        assert!(Metrics::read(&dir.path().join("none.csv"), None)
            .unwrap()
            .rows
            .is_empty());
    }
}
