//! Backing up: walks the source, reads and chunks new or changed files on
//! reader threads, packs new blobs on packer threads, writes one tree per
//! directory, and writes the snapshot manifest last (`docs/design.md`,
//! section 1.1, "Backup").
//!
//! ```text
//! walker ──ReadRequest──► readers (open, find holes, chunk, hash, dedup) ──NewBlob──► packers (zstd, seal, pack, store)
//!   ▲                          │
//!   └────── extents ◄──────────┘    trees: walker ──► its own tree pack ──► store
//! ```
//! Every queue is bounded, so memory stays flat whatever the input size.
//!
//! The rooms: `archiver` holds what one run shares (dedup, tree pack,
//! counters, warnings) and stores blobs; `walker` walks the paths and
//! runs the pipeline above; `reader` turns one file into extents;
//! `stdin` stores a stream as one file, and `command` makes a command's
//! output a stream that fails when the command does; `packer` packs and stores new
//! blobs; `changed` measures how much of each file's new data was
//! incompressible; `warmer` lists directories ahead of the walker;
//! `source` reads the source filesystem.

mod archiver;
mod changed;
mod command;
pub(crate) mod packer;
mod reader;
mod semaphore;
mod source;
mod stdin;
mod walker;
mod warmer;

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::progress::{Progress, Totals};
use crate::repo::{DirCursor, Id, Repository, RepositoryLock, Snapshot, SNAPSHOT_VERSION};
use crate::suspicion::{assess_snapshots, Suspicion};
pub(crate) use archiver::join_workers;
use archiver::Archiver;
pub use command::{quote_command, CommandOutput};
pub use source::OwnerNames;
pub(crate) use source::{node_from_stat, open_source, read_dir_names};

/// What to back up.
pub enum Source {
    /// Absolute paths on this machine; the snapshot keeps them as given.
    Paths(Vec<PathBuf>),
    /// Standard input (or any reader), stored as one file at this path.
    Stream {
        path: String,
        reader: Box<dyn Read + Send>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub host: String,
    pub tags: Vec<String>,
    /// The snapshot's recorded time; now if absent.
    pub time: Option<DateTime<Utc>>,
    /// Glob patterns: a pattern with a `/` matches the whole path, one without
    /// matches any entry's name.
    pub excludes: Vec<String>,
    pub one_file_system: bool,
    /// Files done and bytes processed (read, or unchanged and skipped), of
    /// the parent snapshot's as an estimate: a backup does not walk its
    /// paths twice to know their total.
    pub progress: Progress,
}

pub struct BackupOutcome {
    pub snapshot: Snapshot,
    /// Entries that could not be read and are missing from the snapshot,
    /// and files that changed while they were read.
    pub warnings: Vec<String>,
    /// How the snapshot compares with the earlier ones of its host and
    /// paths (`None` when its changed data was not measured); when it is
    /// suspicious, ransomware may have encrypted the files.
    pub suspicion: Option<Suspicion>,
}

/// Runs a backup and writes its snapshot.
///
/// `lock` is the shared lock the caller took before loading the index; the
/// snapshot is committed only once what it relies on is known to stay
/// (`Repository::commit_snapshot`), which is cheaper with a lock that was
/// held throughout.
pub fn backup(
    repo: Arc<Repository>,
    source: Source,
    options: &BackupOptions,
    lock: Option<&RepositoryLock>,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let time = options.time.unwrap_or_else(Utc::now);
    let paths = match &source {
        Source::Paths(paths) => paths
            .iter()
            .map(|p| normalize(p))
            .collect::<Result<Vec<_>>>()?,
        // A stream's name is a path in the snapshot, not on this machine:
        // `db/app.sql` is stored as `/db/app.sql`, whatever the current directory.
        Source::Stream { path, .. } => vec![normalize(&Path::new("/").join(path))?],
    };
    let path_strings: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut snapshots = repo.snapshots()?;
    let parent = find_parent(&snapshots, &options.host, &path_strings);
    // A damaged parent costs speed, not the backup: read everything again.
    let previous_root = parent
        .as_ref()
        .and_then(|p| match DirCursor::open(&repo, &p.tree) {
            Ok(tree) => Some(tree),
            Err(e) => {
                crate::log::warn(&format!(
                    "the parent snapshot {} cannot be read ({e}); every file is read again",
                    p.id.short()
                ));
                None
            }
        });

    if previous_root.is_some() {
        repo.prefetch_tree_packs();
    }
    options
        .progress
        .begin("backup", "files", estimated_totals(parent));
    let archiver = Archiver::new(Arc::clone(&repo), options)?;
    let root = match source {
        Source::Paths(_) => walker::back_up_paths(&archiver, &paths, previous_root)?,
        Source::Stream { reader, .. } => stdin::back_up_stream(&archiver, &paths[0], reader, time)?,
    };

    let mut snapshot = Snapshot {
        id: Id::default(),
        version: SNAPSHOT_VERSION,
        time,
        host: options.host.clone(),
        username: OwnerNames::default()
            .user(unsafe { libc::geteuid() })
            .unwrap_or_default(),
        paths: path_strings,
        tags: options.tags.clone(),
        tree: root,
        parent: parent.map(|p| p.id),
        program: format!("rewind {}", env!("CARGO_PKG_VERSION")),
        summary: archiver.summary(started.elapsed().as_secs_f64()),
        original: None,
        resealed_from: None,
    };
    let (id, stored_again) = repo.commit_snapshot(&snapshot, lock)?;
    snapshot.id = id;
    snapshots.push(snapshot.clone());
    let suspicion = assess_snapshots(&snapshots).pop().flatten();
    let warnings = archiver.take_warnings();
    if stored_again > 0 {
        crate::log::info(&format!(
            "{stored_again} blobs were stored again: a prune that ran beside this backup \
             is deleting the packs they were in"
        ));
    }
    Ok(BackupOutcome {
        snapshot,
        warnings,
        suspicion,
    })
}

/// The newest snapshot of the same host and the same set of paths.
fn find_parent<'a>(
    snapshots: &'a [Snapshot],
    host: &str,
    paths: &[String],
) -> Option<&'a Snapshot> {
    snapshots
        .iter()
        .rev()
        .find(|s| s.host == host && s.same_paths(paths))
}

/// What a backup of the same paths found last time, as the estimate of
/// what this one will find.
fn estimated_totals(parent: Option<&Snapshot>) -> Totals {
    match parent {
        Some(parent) => {
            let s = &parent.summary;
            Totals {
                items: Some(s.files_new + s.files_changed + s.files_unchanged),
                bytes: Some(s.bytes_total),
                estimated: true,
            }
        }
        None => Totals::UNKNOWN,
    }
}

/// An absolute path without `.`, `..` or doubled slashes; symlinks are kept as given.
fn normalize(path: &Path) -> Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("cannot read the current directory", e))?
            .join(path)
    };
    let mut out = PathBuf::from("/");
    for component in absolute.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}
