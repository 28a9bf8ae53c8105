//! Writing a file whole or not at all: under a temporary name in its own
//! directory (readers skip `.tmp*` names), then renamed into place. The
//! local backend and the cache both write this way.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub(super) struct AtomicWrite<'a> {
    /// The temporary name in the file's directory, beginning with `.tmp`.
    pub tmp_name: String,
    pub mode: u32,
    /// Sync the file before the rename, so that it survives a crash (the
    /// directory's sync is the caller's).
    pub durable: bool,
    /// Creates the directory when it is missing.
    pub create_dirs: &'a dyn Fn(&Path) -> std::io::Result<()>,
}

/// Writes `bytes` to `path` as `how` says; returns the written file's
/// metadata. A failed write leaves nothing behind.
pub(super) fn write_atomically(
    path: &Path,
    bytes: &[u8],
    how: AtomicWrite,
) -> std::io::Result<fs::Metadata> {
    let dir = path.parent().expect("written files have a directory");
    let tmp = dir.join(&how.tmp_name);
    let result = (|| {
        // A temporary file a crashed process with the same name left is
        // replaced rather than reused with its old mode.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != IoKind::NotFound => return Err(e),
            _ => {}
        }
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(how.mode)
                .open(&tmp)
        };
        let mut file = match create() {
            Err(e) if e.kind() == IoKind::NotFound => {
                (how.create_dirs)(dir)?;
                create()?
            }
            other => other?,
        };
        file.write_all(bytes)?;
        if how.durable {
            file.sync_all()?;
        }
        let metadata = file.metadata()?;
        fs::rename(&tmp, path)?;
        Ok(metadata)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
