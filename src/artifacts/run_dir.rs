//! Where a run's outputs go: `runs/<spec-name>/<run-id>/`, the id being the UTC start time
//! (`20261128-153012`, with `-2`, `-3`… if two runs start in the same second), so runs sort in time.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// The default root of all runs, relative to the working directory.
pub const RUNS_DIR: &str = "runs";

/// The resolved spec, inside a run directory.
pub const SPEC_FILE: &str = "spec.yaml";

/// The latest checkpoint: weights, with the resolved spec and the vocabulary in its metadata.
pub const CHECKPOINT_FILE: &str = "model.safetensors";

/// The checkpoint with the lowest validation loss so far, beside the latest one.
pub const BEST_CHECKPOINT_FILE: &str = "best.safetensors";

/// What resuming needs besides the weights: AdamW's moments, the step, the batch sampler's state.
pub const TRAINING_STATE_FILE: &str = "training.safetensors";

/// One row per evaluation.
pub const METRICS_FILE: &str = "metrics.csv";

/// The sample drawn after training.
pub const SAMPLE_FILE: &str = "sample.txt";

/// The lock file of a run directory: held (`flock`) by the process writing it, and naming it.
pub const LOCK_FILE: &str = ".lock";

/// The ownership of a run directory by the process writing it, released when dropped or when the
/// process ends in any way (the kernel drops an advisory lock with its holder, so a run killed
/// with SIGKILL leaves no stale lock behind). Only writers take it: reading a run (`sample`,
/// `evaluate`, `plot`) never waits for it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Takes the run directory `dir` for this process, or fails with [`Error::RunInUse`] naming the
/// process that holds it.
pub fn lock(dir: &Path) -> Result<RunLock> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(Error::RunInUse {
                dir: dir.to_path_buf(),
                holder: holder.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(e)) => {
            return Err(Error::io(format!("locking {}", path.display()))(e))
        }
    }
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(pid.as_bytes()))
        .map_err(Error::io(format!("writing {}", path.display())))?;
    Ok(RunLock { _file: file })
}

/// Creates a fresh run directory for `spec_name` under `root`.
pub fn create(root: &Path, spec_name: &str) -> Result<PathBuf> {
    let parent = root.join(spec_name);
    std::fs::create_dir_all(&parent)
        .map_err(Error::io(format!("creating {}", parent.display())))?;
    let stamp = utc_stamp(SystemTime::now());
    for attempt in 1.. {
        let dir = match attempt {
            1 => parent.join(&stamp),
            n => parent.join(format!("{stamp}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("creating {}", dir.display()))(e)),
        }
    }
    unreachable!("the attempt counter is unbounded")
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn utc_stamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The most recent run of `spec_name` under `root` that holds `file` (e.g. a finished run's
/// checkpoint), if any. Run ids sort in time.
pub fn latest_with(root: &Path, spec_name: &str, file: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root.join(spec_name)).ok()?;
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|dir| dir.join(file).is_file())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_run_directory_has_one_writer_and_is_free_once_it_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).expect("free");
        let error = lock(dir.path()).expect_err("held by this process's other handle");
        let message = error.to_string();
        assert!(
            message.contains(&format!("in use by process {}", std::process::id())),
            "{message}"
        );
        drop(held);
        let _again = lock(dir.path()).expect("free again once released");
    }

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        // 2026-11-28 15:30:12 UTC.
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(1_795_879_812)),
            "20261128-153012"
        );
        // A leap day.
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229-000000"
        );
    }
}
