//! Files read and written safely.
//!
//! **Reading.** Every file the program reads whole (specs, sweep files, corpora, tokenizer files,
//! prepared directories' files, checkpoints, metrics tables) is opened through [`open_regular`]:
//! only a regular file is read, and no more bytes than it held when it was opened. A device, a
//! FIFO or a socket (`/dev/zero`, `/dev/stdin`, a named pipe) has no size to check against memory
//! and may never end, so it is refused with an error naming it, before it is even opened (opening
//! a FIFO blocks until someone writes to it).
//!
//! **Writing.** Files are written whole or not at all: the bytes go to `<name>.partial` beside the
//! target, are flushed to the disk, and a rename then puts them in place, so a crash (or Ctrl-C, or
//! a full disk) never leaves half a checkpoint, half a table or a truncated download under the
//! real name; the previous version stays intact until the new one is complete. A write that fails
//! removes its `.partial` file. Every file the project writes goes through [`write_whole`] or
//! [`write_all_whole`], but the plot's PNG, which plotters writes itself.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What kind of file `metadata` describes, for an error message.
fn file_type_name(metadata: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO (a pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The error for a path that exists but is no regular file.
fn not_regular(metadata: &std::fs::Metadata) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "is {}, not a regular file: only files are read whole (a device or a pipe may \
             never end)",
            file_type_name(metadata)
        ),
    )
}

/// Opens `path` for reading if it is a regular file (links followed), with its size then.
pub fn open_regular(path: &Path) -> std::io::Result<(File, u64)> {
    // Checked before opening: opening a FIFO waits for a writer.
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(not_regular(&metadata));
    }
    let file = File::open(path)?;
    // And again on what was opened, in case the path changed in between.
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(not_regular(&metadata));
    }
    Ok((file, metadata.len()))
}

/// The bytes of the regular file at `path`: at most as many as it held when opened, so a file
/// that keeps growing is read as it was.
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The regular file at `path` as UTF-8 text ([`read_bytes`]).
pub fn read_text(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_bytes(path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()))
}

/// `path` with `.partial` appended: where its bytes are written before the rename.
fn partial_path(path: &Path) -> PathBuf {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    PathBuf::from(partial)
}

/// Writes `bytes` to `partial` and flushes them to the disk (a full disk may only say so then);
/// on failure the partial file is removed.
fn write_partial(partial: &Path, bytes: &[u8]) -> Result<()> {
    let written = File::create(partial).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    written.map_err(|source| {
        let _ = std::fs::remove_file(partial);
        Error::io(format!("writing {}", partial.display()))(source)
    })
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename.
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all_whole(&[(path, bytes)])
}

/// Writes several files that belong together (a checkpoint's weights and training state): every
/// one goes to its temporary file first, and only when all are written are they renamed into
/// place, in the order given. If any write fails, none of the targets changes and no temporary
/// file stays.
pub fn write_all_whole(files: &[(&Path, &[u8])]) -> Result<()> {
    let partials: Vec<PathBuf> = files.iter().map(|(path, _)| partial_path(path)).collect();
    for (i, ((_, bytes), partial)) in files.iter().zip(&partials).enumerate() {
        if let Err(error) = write_partial(partial, bytes) {
            for written in &partials[..i] {
                let _ = std::fs::remove_file(written);
            }
            return Err(error);
        }
    }
    for (i, ((path, _), partial)) in files.iter().zip(&partials).enumerate() {
        if let Err(source) = std::fs::rename(partial, path) {
            for left in &partials[i..] {
                let _ = std::fs::remove_file(left);
            }
            return Err(Error::io(format!("renaming to {}", path.display()))(source));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_is_replaced_whole_and_no_partial_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.csv");
        write_whole(&path, b"old").unwrap();
        write_whole(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["table.csv"]);
        let missing = dir.path().join("no-such-dir/x");
        assert!(write_whole(&missing, b"x")
            .unwrap_err()
            .to_string()
            .contains("writing"));
    }

    #[test]
    fn a_failed_group_write_changes_no_target_and_leaves_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write_all_whole(&[(&a, b"a1"), (&b, b"b1")]).unwrap();
        // The second target's temporary name is taken by a directory: its write fails after the
        // first one's succeeded.
        std::fs::create_dir(partial_path(&b)).unwrap();
        let error = write_all_whole(&[(&a, b"a2"), (&b, b"b2")]).unwrap_err();
        assert!(error.to_string().contains("b.partial"), "{error}");
        assert_eq!(std::fs::read(&a).unwrap(), b"a1");
        assert_eq!(std::fs::read(&b).unwrap(), b"b1");
        assert_eq!(
            names(dir.path()),
            ["a", "b", "b.partial"],
            "a.partial removed"
        );
    }

    #[test]
    fn devices_and_pipes_are_refused_before_reading() {
        for (path, kind) in [
            ("/dev/zero", "character device"),
            ("/dev/null", "character device"),
        ] {
            let error = read_bytes(Path::new(path)).unwrap_err();
            assert!(error.to_string().contains(kind), "{path}: {error}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(read_text(dir.path())
            .unwrap_err()
            .to_string()
            .contains("a directory"));
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        // Returns at once (opening it for reading would wait for a writer forever).
        assert!(read_text(&fifo).unwrap_err().to_string().contains("FIFO"));
    }
}
