//! What one backup run shares between the walker, the readers and the
//! packers: the repository, which blobs are already queued (so each is
//! stored once), the pack that collects trees, the counters of the
//! snapshot's summary (the changed data's among them), and the warnings;
//! and the ways chunks and trees become blobs.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::changed::{ChangedDataCounters, FileTally};
use super::packer::{self, NewBlob, PackSink};
use super::{BackupOptions, OwnerNames};
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repo::{BlobKind, Id, PackWriter, Repository, Summary};
use crate::suspicion::Compressibility;
use crate::tree::{Extent, Node, NodeKind, Tree};

/// What the snapshot's summary counts, as the run goes.
#[derive(Default)]
pub(super) struct Counters {
    pub files_new: AtomicU64,
    pub files_changed: AtomicU64,
    pub files_unchanged: AtomicU64,
    pub dirs: AtomicU64,
    pub other: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_total: AtomicU64,
    /// Files stored as read although they changed meanwhile (warned about,
    /// but not missing: not errors).
    pub changed_while_read: AtomicU64,
}

pub(super) struct Archiver {
    pub repo: Arc<Repository>,
    /// Threads the machine runs at once: as many packers, and at least as
    /// many readers.
    pub threads: usize,
    pub one_file_system: bool,
    pub owners: OwnerNames,
    pub counters: Counters,
    /// Files done and bytes processed (read, or unchanged and not read).
    pub progress: Progress,
    /// How chunks are judged compressible; `None` in a repository that
    /// does not compress, where the changed data is not measured.
    compressibility: Option<Compressibility>,
    changed_data: Arc<ChangedDataCounters>,
    chunker: Chunker,
    sink: Arc<PackSink>,
    tree_pack: Mutex<Option<PackWriter>>,
    /// `--exclude` patterns with a `/`, matched against the whole path.
    exclude_paths: GlobSet,
    /// The others, matched against an entry's name.
    exclude_names: GlobSet,
    warnings: Mutex<Vec<String>>,
}

impl Archiver {
    pub fn new(repo: Arc<Repository>, options: &BackupOptions) -> Result<Archiver> {
        let (path_patterns, name_patterns): (Vec<&String>, Vec<&String>) =
            options.excludes.iter().partition(|p| p.contains('/'));
        Ok(Archiver {
            compressibility: Compressibility::of(&repo),
            changed_data: Arc::default(),
            chunker: Chunker::new(repo.config().chunker, repo.chunker_seed()),
            sink: PackSink::new(Repository::clone(&repo)),
            repo,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            tree_pack: Mutex::new(None),
            exclude_paths: glob_set(&path_patterns)?,
            exclude_names: glob_set(&name_patterns)?,
            one_file_system: options.one_file_system,
            owners: OwnerNames::default(),
            counters: Counters::default(),
            warnings: Mutex::new(Vec::new()),
            progress: options.progress.clone(),
        })
    }

    /// Starts the packers: new blobs go into the returned queue, which is
    /// bounded so that readers wait for packers rather than fill memory.
    pub fn start_packers(&self) -> (Sender<NewBlob>, Vec<JoinHandle<()>>) {
        packer::start(&self.sink, self.threads, self.threads * 2)
    }

    /// Flushes the tree pack, waits for the packers, and writes the index:
    /// after this, everything the root tree names is durable. `walked` is
    /// the root tree, or why there is none.
    pub fn finish(&self, packers: Vec<JoinHandle<()>>, walked: Result<Id>) -> Result<Id> {
        let flushed = self.flush_tree_pack();
        let joined = join_workers(packers.into_iter().map(JoinHandle::join), "packer");
        if let Some(failure) = self.take_failure() {
            return Err(failure);
        }
        // A packer that panicked took its pack with it: the tree may name
        // blobs that were never stored.
        joined.map_err(stopped)?;
        let root = walked?;
        flushed?;
        self.sink.flush_index()?;
        Ok(root)
    }

    fn flush_tree_pack(&self) -> Result<()> {
        let writer = self.tree_pack.lock().unwrap().take();
        match writer {
            Some(w) if !w.is_empty() => self.sink.store(w.finish()?),
            _ => Ok(()),
        }
    }

    /// Why the packers stopped, if they did (taken: reported once), as why
    /// the backup stops: the walker may take it before `finish` does, and
    /// either way it says that no snapshot was written.
    pub fn take_failure(&self) -> Option<Error> {
        self.sink.take_failure().map(stopped)
    }

    /// True the first time a blob unknown to the repository is seen.
    fn is_new(&self, id: &Id) -> bool {
        self.sink.queue_if_new(id)
    }

    pub fn store_tree(&self, tree: &Tree) -> Result<Id> {
        self.store_encoded_tree(tree.encode())
    }

    /// Stores an encoded tree in the run's tree pack (trees are packed apart
    /// from data, so that reading a snapshot's trees reads few packs).
    pub fn store_encoded_tree(&self, bytes: Vec<u8>) -> Result<Id> {
        let id = self.repo.blob_id(&bytes);
        if self.is_new(&id) {
            let mut slot = self.tree_pack.lock().unwrap();
            let writer = match slot.as_mut() {
                Some(w) => w,
                None => slot.insert(self.sink.new_pack()?),
            };
            writer.add(
                BlobKind::Tree,
                id,
                &bytes,
                self.repo.config().compression_level,
            )?;
            if packer::is_full(writer, self.repo.config().pack_size as usize) {
                let full = slot.take().unwrap().finish()?;
                drop(slot);
                self.sink.store(full)?;
            }
        }
        Ok(id)
    }

    /// A tally of the changed data of one new (its path not in the parent)
    /// or changed file, if this run measures it.
    pub fn file_tally(&self, new: bool) -> Option<Arc<FileTally>> {
        self.compressibility
            .map(|judge| Arc::new(FileTally::new(judge, new, &self.changed_data)))
    }

    /// Chunks a stream of about `expected_len` bytes, queues the new
    /// chunks (each with the file's `tally`), and appends its extents.
    pub fn store_chunks(
        &self,
        reader: impl Read,
        expected_len: Option<u64>,
        extents: &mut Vec<Extent>,
        blob_tx: &Sender<NewBlob>,
        tally: Option<&Arc<FileTally>>,
    ) -> Result<u64> {
        let mut total = 0u64;
        self.chunker.chunk_sized(reader, expected_len, |data| {
            if self.sink.has_failed() {
                // Whoever waits on this reports the packers' failure
                // instead; this one surfacing would be a bug.
                return Err(Error::internal("the backup is stopping"));
            }
            let id = self.repo.blob_id(&data);
            let len = data.len() as u32;
            total += len as u64;
            self.counters.bytes_read.fetch_add(len as u64, Relaxed);
            self.progress.add_bytes(len as u64);
            extents.push(Extent::Data { id, len });
            if self.is_new(&id) {
                blob_tx
                    .send(NewBlob {
                        kind: BlobKind::Data,
                        id,
                        data,
                        tally: tally.cloned(),
                    })
                    .map_err(|_| Error::internal("the packers have stopped"))?;
            }
            Ok(())
        })?;
        Ok(total)
    }

    pub fn warn(&self, message: String) {
        crate::log::warn(&message);
        self.warnings.lock().unwrap().push(message);
    }

    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap())
    }

    pub fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        self.exclude_paths.is_match(path) || self.exclude_names.is_match(OsStr::from_bytes(name))
    }

    /// Whether a file can keep the content recorded in the parent snapshot.
    pub fn unchanged(&self, previous: &Node, now: &Node) -> bool {
        previous.kind == NodeKind::File
            && previous.size == now.size
            && previous.mtime == now.mtime
            && previous.ctime == now.ctime
            && previous.inode == now.inode
            && previous.content.iter().all(|e| match e {
                Extent::Data { id, .. } => self.repo.index().contains(id),
                Extent::Hole { .. } => true,
            })
    }

    /// The snapshot's summary of this run (call once the run is over).
    pub fn summary(&self, duration_secs: f64) -> Summary {
        let counters = &self.counters;
        let stored = self.sink.stats();
        Summary {
            files_new: counters.files_new.load(Relaxed),
            files_changed: counters.files_changed.load(Relaxed),
            files_unchanged: counters.files_unchanged.load(Relaxed),
            dirs: counters.dirs.load(Relaxed),
            other_entries: counters.other.load(Relaxed),
            bytes_read: counters.bytes_read.load(Relaxed),
            bytes_total: counters.bytes_total.load(Relaxed),
            bytes_added: stored.0,
            blobs_added: stored.1,
            errors: self.warnings.lock().unwrap().len() as u64
                - counters.changed_while_read.load(Relaxed),
            duration_secs,
            changed_data: self.compressibility.map(|_| self.changed_data.totals()),
        }
    }
}

/// Waits for every worker. One that panicked is a bug in rewind: it is
/// reported as an `Internal` error, not passed on as a panic of the caller.
pub(crate) fn join_workers(
    joins: impl IntoIterator<Item = std::thread::Result<()>>,
    role: &str,
) -> Result<()> {
    let panicked = joins.into_iter().filter(Result::is_err).count();
    match panicked {
        0 => Ok(()),
        1 => Err(Error::internal(format!("a {role} thread panicked"))),
        n => Err(Error::internal(format!("{n} {role} threads panicked"))),
    }
}

/// Globs where `*` and `?` never match `/`.
fn glob_set(patterns: &[&String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::usage(format!("bad --exclude pattern '{pattern}': {e}")))?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| Error::usage(format!("bad --exclude pattern: {e}")))
}

fn stopped(e: Error) -> Error {
    e.context("the backup was stopped and no snapshot was written")
}
