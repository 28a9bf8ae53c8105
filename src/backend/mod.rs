//! Storage backends: a deliberately small trait, so that a new store (S3, SFTP)
//! needs only these five operations, and caching or retries wrap any of them.

mod cache;
mod local;

pub use cache::{cache_dir_for, default_cache_root, CachedBackend};
pub use local::LocalBackend;

use crate::error::Result;

/// The kinds of files a repository holds; each lives in its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
    /// Tombstones: records of snapshots forgotten on purpose.
    Forgotten,
    /// Deletion plans: packs and index files a prune no longer needs,
    /// deleted once no writer can still rely on them.
    Deletion,
    /// Reed–Solomon parity of another file, named `<kind>.<name>`.
    Parity,
}

impl FileType {
    /// The directory of this kind of file in every backend's layout.
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Pack => "data",
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            FileType::Lock => "locks",
            FileType::Forgotten => "forgotten",
            FileType::Deletion => "deletions",
            FileType::Parity => "parity",
        }
    }

    /// The path of a file relative to the repository root. Packs are fanned
    /// out by the first two hex digits so no directory grows too large.
    pub fn path(self, name: &str) -> String {
        match self {
            FileType::Config => "config".to_string(),
            FileType::Pack => format!("data/{}/{}", &name[..name.len().min(2)], name),
            other => format!("{}/{}", other.dir(), name),
        }
    }
}

/// A place that stores named, immutable files.
pub trait Backend: Send + Sync {
    /// A human-readable location, used in messages.
    fn location(&self) -> String;
    /// Creates the empty layout; fails if a repository already exists there.
    fn create(&self) -> Result<()>;
    /// Names of every file of a type (the whole name, not the path).
    fn list(&self, kind: FileType) -> Result<Vec<String>>;
    /// The whole file.
    fn read(&self, kind: FileType, name: &str) -> Result<Vec<u8>>;
    /// `length` bytes at `offset`; fewer bytes than asked is an error.
    fn read_range(&self, kind: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>>;
    /// Stores a file durably and atomically: once this returns, the file
    /// survives a crash, and no reader ever sees it half-written.
    fn write(&self, kind: FileType, name: &str, data: &[u8]) -> Result<()>;
    fn remove(&self, kind: FileType, name: &str) -> Result<()>;
    /// A hint that a file, or `length` bytes of it at `offset`, will be
    /// read soon; a backend may start fetching them.
    fn prefetch(&self, _kind: FileType, _name: &str, _range: Option<(u64, u64)>) {}
    /// The size of a file, for scrubbing and progress.
    fn size(&self, kind: FileType, name: &str) -> Result<u64>;
    /// [`Backend::read_range`] of bytes that hold a directory tree. Trees
    /// are read again by every listing, mount and backup, so a cache keeps
    /// the whole pack they are in. A backend that wraps another forwards
    /// this and [`Backend::retain_packs`].
    fn read_tree_range(
        &self,
        kind: FileType,
        name: &str,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>> {
        self.read_range(kind, name, offset, length)
    }
    /// A hint that the index just loaded whole names only the packs for
    /// which `named` holds: a cache lets go of the others it keeps.
    fn retain_packs(&self, _named: &dyn Fn(&str) -> bool) {}
}
