//! A sweep's results table, `<sweep>.results.csv`: one row per finished trial — its index, the
//! values it varied, best and final validation loss, iterations, seconds and run directory —
//! rewritten whole after every trial, and read back to resume. Values are CSV cells quoted where
//! they need it (a mapping's one-line JSON has commas), so every trial is recognised again.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::files::write_whole;

/// What a finished trial measured.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialResult {
    pub index: usize,
    pub values: Vec<String>,
    pub best_val: f64,
    pub final_val: f64,
    pub iterations: i64,
    pub seconds: f64,
    pub run_dir: PathBuf,
}

const FIXED_COLUMNS: [&str; 5] = [
    "best_val_loss",
    "final_val_loss",
    "iterations",
    "seconds",
    "run_dir",
];

pub fn write_results(path: &Path, fields: &[String], results: &[TrialResult]) -> Result<()> {
    let header: Vec<&str> = std::iter::once("trial")
        .chain(fields.iter().map(String::as_str))
        .chain(FIXED_COLUMNS)
        .collect();
    let mut sorted: Vec<&TrialResult> = results.iter().collect();
    sorted.sort_by_key(|r| r.index);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let written = writer.write_record(&header).and_then(|()| {
        sorted.iter().try_for_each(|r| {
            // Values are quoted where they need it (a mapping's one-line JSON has commas).
            let row: Vec<String> = std::iter::once(r.index.to_string())
                .chain(r.values.iter().cloned())
                .chain([
                    format!("{:.4}", r.best_val),
                    format!("{:.4}", r.final_val),
                    r.iterations.to_string(),
                    format!("{:.1}", r.seconds),
                    r.run_dir.display().to_string(),
                ])
                .collect();
            writer.write_record(&row)
        })
    });
    let csv = written
        .map_err(|e| e.to_string())
        .and_then(|()| writer.into_inner().map_err(|e| e.to_string()))
        .map_err(|e| Error::Usage(format!("writing {}: {e}", path.display())))?;
    write_whole(path, &csv)
}

/// The trials a previous invocation finished, if its table is there.
pub fn read_results(path: &Path, fields: &[String]) -> Result<Vec<TrialResult>> {
    let text = match crate::files::read_text(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()))(e)),
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let columns = 1 + fields.len() + FIXED_COLUMNS.len();
    let header = reader
        .headers()
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?
        .clone();
    if header.len() != columns {
        return Err(Error::Usage(format!(
            "{} has other columns than this sweep ({}); move it away to start over",
            path.display(),
            header.iter().collect::<Vec<_>>().join(",")
        )));
    }
    reader
        .records()
        .map(|record| {
            let record = record.map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            let malformed = || {
                Error::Usage(format!(
                    "{}: malformed row {:?}",
                    path.display(),
                    record.iter().collect::<Vec<_>>()
                ))
            };
            if record.len() != columns {
                return Err(malformed());
            }
            let cell = |i: usize| &record[i];
            let number = |i: usize| cell(i).parse::<f64>().map_err(|_| malformed());
            let n = fields.len();
            Ok(TrialResult {
                index: cell(0).parse().map_err(|_| malformed())?,
                values: (1..=n).map(|i| cell(i).to_string()).collect(),
                best_val: number(n + 1)?,
                final_val: number(n + 2)?,
                iterations: cell(n + 3).parse().map_err(|_| malformed())?,
                seconds: number(n + 4)?,
                run_dir: PathBuf::from(cell(n + 5)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::sweep::{show, SweepSpec};

    /// The committed results of `sweeps/task09.yaml` (mapping values) are what the sweep makes of
    /// its trials now, so running it again resumes instead of refusing the table.
    #[test]
    fn the_committed_task09_results_match_its_trials() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps");
        let sweep = SweepSpec::load(&root.join("task09.yaml")).unwrap();
        let fields: Vec<String> = sweep.vary.keys().cloned().collect();
        let results = read_results(&root.join("task09.results.csv"), &fields).unwrap();
        let trials = sweep.trials();
        assert_eq!(results.len(), trials.len());
        for result in &results {
            let values: Vec<String> = trials[result.index].iter().map(|(_, v)| show(v)).collect();
            assert_eq!(result.values, values, "trial {}", result.index);
        }
    }
}
