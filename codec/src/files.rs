//! The small files rumor keeps: key files and rosters are read only when regular and bounded;
//! the state directory's records are replaced only whole.
//!
//! Why: a path given on the command line or in a `keys install` request may name a FIFO or a
//! device, where a plain read blocks for ever or never ends; and a record torn by a crash
//! mid-write would be refused as corrupt at the next start.
//! Concurrency: plain functions; callers serialise writers (the state directory's lock).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

/// Why a small file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Missing,
    /// A directory, FIFO, socket or device.
    NotAFile,
    TooLarge(u64),
    Unreadable(std::io::Error),
}

/// The bytes of the regular file at `path`, if it holds at most `max` of them, and its
/// metadata (key files check their permissions).
pub fn read_small(path: &Path, max: u64) -> Result<(Vec<u8>, fs::Metadata), ReadError> {
    let unreadable = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Unreadable(e),
    };
    // Checked before opening: opening a FIFO for reading blocks until a writer appears.
    let meta = fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge(meta.len()));
    }
    let mut raw = Vec::new();
    File::open(path)
        .and_then(|f| f.take(max.saturating_add(1)).read_to_end(&mut raw))
        .map_err(unreadable)?;
    // It may have grown since the check.
    match raw.len() as u64 {
        n if n > max => Err(ReadError::TooLarge(n)),
        _ => Ok((raw, meta)),
    }
}

/// Replaces `dir/name` with `contents` so that a crash leaves the old file or the new one,
/// never a torn one, and the new one survives power loss once this returns: temp file, fsync,
/// rename, fsync of the directory.
pub fn write_durably(dir: &Path, name: &str, contents: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert!(matches!(read_small(&p, 10), Err(ReadError::Missing)));
        write_durably(dir.path(), "f", "hello").unwrap();
        assert_eq!(read_small(&p, 5).unwrap().0, b"hello");
        assert!(matches!(read_small(&p, 4), Err(ReadError::TooLarge(5))));
        assert!(matches!(
            read_small(dir.path(), 10),
            Err(ReadError::NotAFile)
        ));
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        // Returns at once: a plain read would wait for a writer for ever.
        assert!(matches!(read_small(&fifo, 10), Err(ReadError::NotAFile)));
        assert!(matches!(
            read_small(Path::new("/dev/zero"), 10),
            Err(ReadError::NotAFile)
        ));
    }

    fn mkfifo(p: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
