//! `metrics.csv`: one row per evaluation — iteration, both losses and the wall time since the run
//! began, counted across resumes — rewritten after every evaluation so it is always complete.
//! Written and read with the `csv` crate, like every table the project keeps.

use std::path::Path;
use std::time::Instant;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::train::Evaluation;

const HEADER: [&str; 4] = ["iteration", "train_loss", "val_loss", "elapsed_seconds"];

/// One evaluation, as a row of `metrics.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct MetricsRow {
    pub iteration: i64,
    pub train_loss: f64,
    pub val_loss: f64,
    /// Wall-clock seconds of training before this evaluation, across resumes.
    pub elapsed_seconds: f64,
}

#[derive(Debug)]
pub struct Metrics {
    rows: Vec<MetricsRow>,
    started: Instant,
    /// Seconds the run had trained before this invocation.
    elapsed_before: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Every row of the `metrics.csv` at `path`, or an error naming the file and the bad row.
pub fn read_rows(path: &Path) -> Result<Vec<MetricsRow>> {
    let text =
        std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
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
        }
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
        }
    }

    #[test]
    fn a_resumed_run_keeps_the_rows_it_reached_and_its_clock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let header = HEADER.join(",");
        std::fs::write(
            &path,
            format!("{header}\n0,4.1,4.2,0.5\n10,3.1,3.2,7.25\n20,2.1,2.2,9.0\n"),
        )
        .unwrap();
        let mut metrics = Metrics::read(&path, Some(10)).unwrap();
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
            csv.starts_with(&format!("{header}\n0,4.100000,4.200000,0.500\n")),
            "{csv}"
        );
        let last = csv.lines().last().unwrap();
        assert!(last.starts_with("20,2.000000,2.500000,7.2"), "{csv}");
        // What it writes, it reads back.
        assert_eq!(parse_rows(&csv).unwrap().len(), 3);

        std::fs::write(&path, format!("{header}\nnonsense\n")).unwrap();
        let error = Metrics::read(&path, Some(10)).unwrap_err().to_string();
        assert!(error.contains("malformed row"), "{error}");
        assert!(Metrics::read(&dir.path().join("none.csv"), None)
            .unwrap()
            .rows
            .is_empty());
    }
}
