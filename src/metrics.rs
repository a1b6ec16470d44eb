//! `metrics.csv`: one row per evaluation — iteration, both losses and the wall time since the run
//! began, counted across resumes — rewritten after every evaluation so it is always complete.

use std::path::Path;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::train::Evaluation;

const HEADER: &str = "iteration,train_loss,val_loss,elapsed_seconds";

#[derive(Debug)]
pub struct Metrics {
    rows: Vec<String>,
    started: Instant,
    /// Seconds the run had trained before this invocation.
    elapsed_before: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
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
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(metrics),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()))(e)),
        };
        let last = last_evaluation.unwrap_or(-1);
        for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split(',').collect();
            let parsed = match fields.as_slice() {
                [iteration, _, _, elapsed] => iteration
                    .parse::<i64>()
                    .ok()
                    .zip(elapsed.parse::<f64>().ok()),
                _ => None,
            };
            let (iteration, elapsed) = parsed.ok_or_else(|| {
                Error::Usage(format!("{}: malformed row {line:?}", path.display()))
            })?;
            if iteration <= last {
                metrics.rows.push(line.to_string());
                metrics.elapsed_before = elapsed;
            }
        }
        Ok(metrics)
    }

    pub fn record(&mut self, evaluation: &Evaluation) {
        let Evaluation {
            iteration,
            train_loss,
            val_loss,
        } = evaluation;
        let elapsed = self.elapsed_before + self.started.elapsed().as_secs_f64();
        self.rows.push(format!(
            "{iteration},{train_loss:.6},{val_loss:.6},{elapsed:.3}"
        ));
    }

    /// The lowest validation loss recorded so far.
    pub fn best_val_loss(&self) -> Option<f64> {
        self.rows
            .iter()
            .filter_map(|row| row.split(',').nth(2)?.parse::<f64>().ok())
            .filter(|loss| loss.is_finite())
            .min_by(f64::total_cmp)
    }

    /// The whole file.
    pub fn csv(&self) -> String {
        let mut csv = format!("{HEADER}\n");
        for row in &self.rows {
            csv.push_str(row);
            csv.push('\n');
        }
        csv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_run_keeps_the_rows_it_reached_and_its_clock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        std::fs::write(
            &path,
            format!("{HEADER}\n0,4.1,4.2,0.5\n10,3.1,3.2,7.25\n20,2.1,2.2,9.0\n"),
        )
        .unwrap();
        let mut metrics = Metrics::read(&path, Some(10)).unwrap();
        assert_eq!(metrics.rows, ["0,4.1,4.2,0.5", "10,3.1,3.2,7.25"]);
        assert_eq!(metrics.elapsed_before, 7.25);
        assert_eq!(metrics.best_val_loss(), Some(3.2));
        metrics.record(&Evaluation {
            iteration: 20,
            train_loss: 2.0,
            val_loss: 2.5,
        });
        let csv = metrics.csv();
        let last = csv.lines().last().unwrap();
        assert!(last.starts_with("20,2.000000,2.500000,7.2"), "{csv}");

        std::fs::write(&path, format!("{HEADER}\nnonsense\n")).unwrap();
        assert!(Metrics::read(&path, Some(10)).is_err());
        assert!(Metrics::read(&dir.path().join("none.csv"), None)
            .unwrap()
            .rows
            .is_empty());
    }
}
