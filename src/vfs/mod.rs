//! The mount's filesystem, independent of FUSE: names, attributes, listings
//! and verified reads, testable without a mount. `crate::fuse` is a thin
//! adapter over it.
//!
//! [`Vfs`] is a facade over parts with one job each:
//! - `index`: the index, loaded in the background so the mount is ready
//!   at once;
//! - `shown`: the snapshots shown, named by `layout`, and their refresh;
//! - `inodes`: the inodes, kept inside snapshots while the kernel holds
//!   them, with `numbers` stable for the life of the mount, the `clock` of
//!   their use, and the `working_set` that has the kernel forget the
//!   least recently used past a budget;
//! - `trees`: the directory trees inside snapshots;
//! - `names`: lookups and listings;
//! - `attr`: attributes;
//! - `reads`: file reads, the chunk `cache`, the `readahead` workers and
//!   the chunks a scrub found damaged;
//! - `stats` and `status`: counters, recent errors and `.rewind/status`.

mod attr;
mod cache;
mod clock;
mod index;
mod inodes;
mod layout;
mod names;
mod numbers;
mod readahead;
mod reads;
mod shown;
mod stats;
mod status;
mod trees;
mod working_set;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::Result;
use crate::repo::{IdSet, Opened, Repository};
use crate::scrub::background::ScrubbedMount;
use crate::tree::{ExpansionLimits, NodeKind};
use index::BackgroundIndex;
use inodes::{Inode, Inodes};
use names::{Names, Taken};
use reads::FileReads;
use shown::ShownSnapshots;
use stats::Stats;
use status::{StatusExtra, StatusFile};
use trees::SnapshotTrees;
use working_set::WorkingSet;

pub use attr::{Attr, Caching, EntryKind};
pub use inodes::Ino;
pub use names::DirEntry;

/// An errno for the kernel.
pub type Errno = i32;
pub type VfsResult<T> = std::result::Result<T, Errno>;

#[derive(Debug, Clone)]
pub struct VfsOptions {
    /// Budget of the decoded-chunk cache, in bytes; None: chosen by the
    /// size of the index (see [`automatic_cache_bytes`]).
    pub cache_bytes: Option<usize>,
    /// Chunks fetched ahead of a sequential reader.
    pub readahead_chunks: usize,
    pub readahead_threads: usize,
    /// What one snapshot may expand to: inodes, one per path looked up,
    /// counted while the kernel holds them.
    pub limits: ExpansionLimits,
    /// Inodes inside snapshots kept at once: past this many, the kernel is
    /// asked to forget the least recently used (see `working_set`).
    pub max_inodes: usize,
}

impl Default for VfsOptions {
    fn default() -> Self {
        VfsOptions {
            cache_bytes: None,
            readahead_chunks: 4,
            readahead_threads: 3,
            limits: ExpansionLimits::DEFAULT,
            max_inodes: 65_536,
        }
    }
}

pub struct Vfs {
    index: Arc<BackgroundIndex>,
    inodes: Arc<Inodes>,
    shown: Arc<ShownSnapshots>,
    trees: Arc<SnapshotTrees>,
    names: Names,
    working_set: WorkingSet,
    files: FileReads,
    status: Arc<StatusFile>,
    stats: Arc<Stats>,
}

/// The chunk cache's budget until the index is loaded, and at most.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// The chunk cache's budget once the index of `blobs` blobs is loaded,
/// unless one was given: 64 MiB, less as the index (30 bytes a blob,
/// docs/design.md 6.1) grows past 48 MiB, so that the two stay within
/// 112 MiB; never below 16 MiB. At 3,000,000 blobs, 26 MiB: the daemon
/// then peaked at 136 MiB through a tar of 3,000,000 files
/// (benches/mount-many-files.sh, docs/benchmarks.md).
pub fn automatic_cache_bytes(blobs: usize) -> usize {
    const TOGETHER: usize = 112 << 20;
    const LEAST: usize = 16 << 20;
    TOGETHER
        .saturating_sub(blobs.saturating_mul(30))
        .clamp(LEAST, DEFAULT_CACHE_BYTES)
}

impl Vfs {
    /// A view of the repository's snapshots. The index loads in the
    /// background, so the mount is ready at once; reads wait for it.
    pub fn new(repo: Repository<Opened>, options: VfsOptions) -> Result<Arc<Vfs>> {
        let stats = Arc::new(Stats::new());
        let index = Arc::new(BackgroundIndex::default());
        let shown = Arc::new(ShownSnapshots::list(
            repo.clone(),
            Arc::clone(&index),
            Arc::clone(&stats),
        )?);
        let inodes = Arc::new(Inodes::new());
        let trees = Arc::new(SnapshotTrees::new(
            Arc::clone(&index),
            Arc::clone(&inodes),
            Arc::clone(&stats),
            options.limits,
        ));
        let files = FileReads::start(
            &options,
            Arc::clone(&index),
            Arc::clone(&shown),
            Arc::clone(&inodes),
            Arc::clone(&trees),
            Arc::clone(&stats),
        )?;
        let status = Arc::new(StatusFile::new(
            Arc::clone(&shown),
            Arc::clone(&index),
            Arc::clone(&inodes),
            Arc::clone(files.chunks()),
            Arc::clone(&stats),
        ));
        let names = Names::new(
            Arc::clone(&inodes),
            Arc::clone(&shown),
            Arc::clone(&trees),
            Arc::clone(&status),
        );
        let working_set = WorkingSet::new(Arc::clone(&inodes), options.max_inodes);
        let chunks = Arc::clone(files.chunks());
        let automatic = options.cache_bytes.is_none();
        BackgroundIndex::load(&index, repo, Arc::clone(&stats), move |repo| {
            if automatic {
                chunks.set_budget(automatic_cache_bytes(repo.index().blob_count()));
            }
        })?;
        Ok(Arc::new(Vfs {
            index,
            inodes,
            shown,
            trees,
            names,
            working_set,
            files,
            status,
            stats,
        }))
    }

    /// Where the repository is (a path or a URL).
    pub fn location(&self) -> String {
        self.shown.location()
    }

    /// Picks up snapshots added or removed since the last look; returns
    /// whether anything changed.
    pub fn refresh(&self) -> Result<bool> {
        self.shown.refresh()
    }

    /// The attributes of `name` in directory `parent`. Like the kernel,
    /// whoever looks an entry up holds its inode until it forgets it
    /// ([`Vfs::forget`]).
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> VfsResult<Attr> {
        let ino = self.names.lookup(parent, name)?;
        self.getattr(ino)
            .inspect_err(|_| self.inodes.forget(ino, 1))
    }

    /// The kernel no longer holds `lookups` of inode `ino` (FORGET): an
    /// inode inside a snapshot that nothing holds goes, and its name with
    /// it; a later lookup of the name gives the same entry, under a new
    /// number unless it is a hard-linked file.
    pub fn forget(&self, ino: Ino, lookups: u64) {
        self.inodes.forget(ino, lookups);
    }

    /// Names (directory, name) the kernel should be told to drop, to keep
    /// the inodes inside snapshots within [`VfsOptions::max_inodes`]: the
    /// least recently used. Waits up to `timeout` for there to be too
    /// many; empty if there are not.
    pub fn surplus_names(&self, timeout: Duration) -> Vec<(Ino, Vec<u8>)> {
        self.working_set.surplus(timeout)
    }

    pub fn getattr(&self, ino: Ino) -> VfsResult<Attr> {
        let record = self.inodes.record(ino)?;
        let mounted_at = self.stats.mounted_at;
        Ok(match &record.inode {
            Inode::Root | Inode::Group(_) => {
                Attr::top_dir(ino, mounted_at, self.shown.changed_at())
            }
            Inode::Snapshot(s) => Attr::snapshot_root(ino, SystemTime::from(s.time)),
            Inode::Link(target) => Attr::link(ino, target.len(), mounted_at),
            Inode::Status => {
                let text = self.status.text();
                Attr::status_file(ino, text.bytes.len(), text.made, mounted_at)
            }
            Inode::Entry { .. } => {
                let node = self.trees.entry_node(&record)?.ok_or(libc::EIO)?;
                Attr::entry(ino, &node)
            }
        })
    }

    pub fn readlink(&self, ino: Ino) -> VfsResult<Vec<u8>> {
        let record = self.inodes.record(ino)?;
        if let Inode::Link(target) = &record.inode {
            return Ok(target.clone());
        }
        match self.trees.entry_node(&record)? {
            Some(node) if node.kind == NodeKind::Symlink => Ok(node.link_target.clone()),
            _ => Err(libc::EINVAL),
        }
    }

    /// Every entry of a directory, `.` and `..` first.
    pub fn list(&self, ino: Ino) -> VfsResult<Vec<DirEntry>> {
        let mut out = Vec::new();
        self.read_dir(ino, 0, |_, entry| {
            out.push(entry);
            false
        })?;
        Ok(out)
    }

    /// The entries of directory `ino` from position `offset` on (`.` is 0
    /// and `..` is 1), each passed to `add` with the position after it,
    /// until `add` says the kernel's buffer is full.
    pub fn read_dir(
        &self,
        ino: Ino,
        offset: u64,
        mut add: impl FnMut(u64, DirEntry) -> bool,
    ) -> VfsResult<()> {
        self.names
            .read_dir(ino, offset, 0, |next, entry| match add(next, entry) {
                true => Taken::Full,
                false => Taken::Yes,
            })
    }

    /// [`Vfs::read_dir`] with each entry's attributes (READDIRPLUS): the
    /// kernel holds one lookup of every entry `add` takes but `.` and `..`.
    /// An entry whose attributes cannot be read is left out.
    pub fn read_dir_plus(
        &self,
        ino: Ino,
        offset: u64,
        mut add: impl FnMut(u64, &DirEntry, &Attr) -> bool,
    ) -> VfsResult<()> {
        self.names.read_dir(ino, offset, 1, |next, entry| {
            let Ok(attr) = self.getattr(entry.ino) else {
                return Taken::No;
            };
            match add(next, &entry, &attr) {
                true => Taken::Full,
                false => Taken::Yes,
            }
        })
    }

    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> VfsResult<Vec<u8>> {
        match self.trees.entry_node(&*self.inodes.record(ino)?)? {
            Some(node) => node
                .xattrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or(libc::ENODATA),
            _ => Err(libc::ENODATA),
        }
    }

    /// Attribute names, each followed by a NUL, as listxattr returns them.
    pub fn listxattr(&self, ino: Ino) -> VfsResult<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(node) = self.trees.entry_node(&*self.inodes.record(ino)?)? {
            for (name, _) in &node.xattrs {
                out.extend_from_slice(name);
                out.push(0);
            }
        }
        Ok(out)
    }

    /// Up to `size` bytes of file `ino` at `offset`. Every byte comes from
    /// a chunk that passed its AEAD tag and BLAKE3 id check; a chunk that
    /// fails gives EIO.
    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> VfsResult<Vec<u8>> {
        let record = self.inodes.record(ino)?;
        if let Inode::Status = record.inode {
            // Not counted: reading the status must not change it.
            return Ok(self.status.read(offset, size));
        }
        // Its directory is in use: a reader of a directory's files must not
        // see the rest of them forgotten under it. The file itself is not
        // marked: the kernel keeps what it read in the page cache, and a
        // walk (tar, rsync) never reads it again, while the files listed
        // after it are still to come.
        if let Some(dir) = self.inodes.get(record.parent) {
            self.inodes.touch(&dir);
        }
        self.files.read(ino, &record, offset, size)
    }

    /// `.rewind/status` as of now: JSON for admins and monitoring.
    pub fn status(&self) -> String {
        self.status.render()
    }
}

/// What the background scrub reaches of a running mount.
impl ScrubbedMount for Vfs {
    fn indexed_repository(&self) -> Result<&Repository> {
        self.index.wait_or_error()
    }

    fn idle_for(&self) -> Duration {
        self.stats.idle_for()
    }

    fn set_damaged(&self, blobs_and_packs: IdSet) {
        self.files.set_damaged(blobs_and_packs);
    }

    fn show_in_status(&self, section: StatusExtra) {
        self.status.set_extra(section);
    }
}

#[cfg(test)]
mod tests;
