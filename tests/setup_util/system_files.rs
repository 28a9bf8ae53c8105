//! What a walk writes into the machine's configuration outside the
//! package (a profile in /etc/rewind, a drop-in and a timer's link under
//! /etc/systemd/system), undone: the paths under each watched directory
//! are recorded first, and whatever is new there is removed when the
//! guard is dropped, after a failed assertion too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub struct SystemFiles {
    watched: Vec<Watched>,
}

struct Watched {
    dir: PathBuf,
    existed: bool,
    before: BTreeSet<PathBuf>,
}

impl SystemFiles {
    /// Records what is under each of `dirs` now (nothing, for a directory
    /// that does not exist: then it goes whole).
    pub fn record(dirs: &[&str]) -> SystemFiles {
        SystemFiles {
            watched: dirs
                .iter()
                .map(|dir| Watched {
                    dir: PathBuf::from(dir),
                    existed: Path::new(dir).symlink_metadata().is_ok(),
                    before: under(Path::new(dir)),
                })
                .collect(),
        }
    }

    /// The paths made since the record, each directory before what it holds.
    pub fn new_paths(&self) -> Vec<PathBuf> {
        let mut made = Vec::new();
        for Watched {
            dir,
            existed,
            before,
        } in &self.watched
        {
            if !existed && dir.symlink_metadata().is_ok() {
                made.push(dir.clone());
            }
            made.extend(under(dir).difference(before).cloned());
        }
        made
    }
}

impl Drop for SystemFiles {
    fn drop(&mut self) {
        let mut removed: Vec<PathBuf> = Vec::new();
        for path in self.new_paths() {
            if removed.iter().any(|r| path.starts_with(r)) {
                continue;
            }
            let is_dir = path.symlink_metadata().is_ok_and(|m| m.is_dir());
            let _ = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.push(path);
        }
    }
}

/// Every path under `dir`, links not followed, sorted (so a directory
/// comes before what it holds).
fn under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut paths = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return paths;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            paths.extend(under(&path));
        }
        paths.insert(path);
    }
    paths
}
