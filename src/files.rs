//! Files written whole or not at all: the bytes go to `<name>.partial` beside the target, which a
//! rename then puts in place, so a crash (or Ctrl-C, or a full disk) never leaves half a checkpoint,
//! half a table or a truncated download under the real name; the previous version stays intact
//! until the new one is complete. Every file the project writes goes through [`write_whole`], but
//! the plot's PNG, which plotters writes itself.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file beside it and a rename.
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, bytes).map_err(Error::io(format!("writing {}", partial.display())))?;
    std::fs::rename(&partial, path).map_err(Error::io(format!("renaming to {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_no_partial_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.csv");
        write_whole(&path, b"old").unwrap();
        write_whole(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["table.csv"]);
        let missing = dir.path().join("no-such-dir/x");
        assert!(write_whole(&missing, b"x")
            .unwrap_err()
            .to_string()
            .contains("writing"));
    }
}
