//! A repository in a local directory (or any mounted filesystem).

use std::fs::{self, DirBuilder, File};
use std::io::ErrorKind as IoKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::atomic::{write_atomically, AtomicWrite};
use super::{Backend, FileType};
use crate::error::{Error, ErrorKind, Result};

pub struct LocalBackend {
    root: PathBuf,
    modes: OnceLock<Modes>,
}

/// Permissions of the files and directories the backend creates. Key files
/// and packs are private by default: a key file is enough to guess the
/// password offline, and an unencrypted pack holds the data itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Modes {
    file: u32,
    dir: u32,
}

const PRIVATE: Modes = Modes {
    file: 0o600,
    dir: 0o700,
};

/// For a repository whose owner made it readable to a group on purpose
/// (its `config` is group-readable): new files stay readable to that group.
const GROUP_READABLE: Modes = Modes {
    file: 0o640,
    dir: 0o750,
};

impl LocalBackend {
    /// A relative `root` is made absolute now: the mount daemon leaves the
    /// directory it was started in.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        LocalBackend {
            root: std::path::absolute(&root).unwrap_or(root),
            modes: OnceLock::new(),
        }
    }

    /// Follows the permissions the repository's `config` has (as restic
    /// does), so that existing repositories are never opened wider or
    /// narrower than their owner chose; private when there is no config yet.
    fn modes(&self) -> Modes {
        *self
            .modes
            .get_or_init(|| match fs::metadata(self.root.join("config")) {
                Ok(m) if m.permissions().mode() & 0o040 != 0 => GROUP_READABLE,
                _ => PRIVATE,
            })
    }

    fn create_dirs(&self, dir: &Path) -> std::io::Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(self.modes().dir)
            .create(dir)
    }

    fn path(&self, kind: FileType, name: &str) -> PathBuf {
        self.root.join(kind.path(name))
    }

    fn sync_dir(dir: &Path) -> Result<()> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("cannot sync directory {}", dir.display()), e))
    }

    fn not_found(&self, path: &Path, err: std::io::Error) -> Error {
        let e = Error::io(format!("cannot read {}", path.display()), err);
        if e.kind() == ErrorKind::NotFound {
            e.with_hint(
                "the repository is missing a file; run `rewind check` to see what is affected",
            )
        } else {
            e
        }
    }
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<()> {
        if self.root.join("config").exists() {
            return Err(Error::usage(format!(
                "a repository already exists at {}",
                self.root.display()
            )));
        }
        let mut dirs: Vec<PathBuf> = [
            FileType::Key,
            FileType::Index,
            FileType::Snapshot,
            FileType::Lock,
            FileType::Forgotten,
            FileType::Deletion,
            FileType::Audit,
            FileType::Parity,
        ]
        .iter()
        .map(|k| self.root.join(k.dir()))
        .collect();
        dirs.extend((0..=255u8).map(|b| self.root.join("data").join(format!("{b:02x}"))));
        for dir in dirs {
            self.create_dirs(&dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        }
        Ok(())
    }

    fn list(&self, kind: FileType) -> Result<Vec<String>> {
        let base = self.root.join(kind.dir());
        let mut dirs = vec![base.clone()];
        if kind == FileType::Pack {
            dirs = read_dir_names(&base)?
                .into_iter()
                .map(|n| base.join(n))
                .collect();
        }
        let mut names = Vec::new();
        for dir in dirs {
            names.extend(
                read_dir_names(&dir)?
                    .into_iter()
                    .filter(|n| !n.starts_with(".tmp")),
            );
        }
        Ok(names)
    }

    fn read(&self, kind: FileType, name: &str) -> Result<Vec<u8>> {
        let path = self.path(kind, name);
        fs::read(&path).map_err(|e| self.not_found(&path, e))
    }

    fn read_range(&self, kind: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        let path = self.path(kind, name);
        let file = File::open(&path).map_err(|e| self.not_found(&path, e))?;
        read_exact_at_uninit(&file, length as usize, offset).map_err(|e| {
            if e.kind() == IoKind::UnexpectedEof {
                Error::corrupt(format!(
                    "{} is shorter than the index says ({} bytes at offset {offset})",
                    path.display(),
                    length
                ))
                .with_hint("the file was truncated; run `rewind check --read-data`")
            } else {
                Error::io(format!("cannot read {}", path.display()), e)
            }
        })
    }

    fn write(&self, kind: FileType, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path(kind, name);
        let how = AtomicWrite {
            tmp_name: format!(".tmp-{}-{}", std::process::id(), name),
            mode: self.modes().file,
            durable: true,
            // A repository made by an older version may lack a directory.
            create_dirs: &|dir| self.create_dirs(dir),
        };
        write_atomically(&path, data, how)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        Self::sync_dir(path.parent().expect("repository paths have a parent"))
    }

    fn remove(&self, kind: FileType, name: &str) -> Result<()> {
        let path = self.path(kind, name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), e)),
        }
    }

    fn prefetch(&self, kind: FileType, name: &str, range: Option<(u64, u64)>) {
        use std::os::fd::AsRawFd;
        // Length 0 means to the end of the file.
        let (offset, length) = range.unwrap_or((0, 0));
        if let Ok(file) = File::open(self.path(kind, name)) {
            // SAFETY: advice on a valid descriptor; the kernel reads ahead asynchronously.
            unsafe {
                libc::posix_fadvise(
                    file.as_raw_fd(),
                    offset as libc::off_t,
                    length as libc::off_t,
                    libc::POSIX_FADV_WILLNEED,
                )
            };
        }
    }

    fn size(&self, kind: FileType, name: &str) -> Result<u64> {
        let path = self.path(kind, name);
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| self.not_found(&path, e))
    }
}

/// `length` bytes at `offset`, read into fresh memory without zeroing it
/// first: the mount reads every chunk through here, and clearing a buffer
/// the kernel is about to fill was a pass over every byte.
fn read_exact_at_uninit(file: &File, length: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(length);
    while buf.len() < length {
        let spare = buf.spare_capacity_mut();
        // SAFETY: pread writes at most `spare.len()` bytes into the spare
        // capacity, a valid writable region of the vector's allocation.
        let read = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                (offset + buf.len() as u64) as libc::off_t,
            )
        };
        match read {
            0 => return Err(IoKind::UnexpectedEof.into()),
            n if n > 0 => {
                // SAFETY: the kernel initialised these `n` bytes.
                unsafe { buf.set_len(buf.len() + n as usize) };
            }
            _ => {
                let error = std::io::Error::last_os_error();
                if error.kind() != IoKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    Ok(buf)
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let entries = fs::read_dir(dir).map_err(|e| {
        Error::io(format!("cannot list {}", dir.display()), e)
            .with_hint("is this a rewind repository? create one with `rewind init`")
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    Ok(names)
}
