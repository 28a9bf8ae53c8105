//! The archiver: walks the source, reads and chunks new or changed files on
//! reader threads, packs new blobs on packer threads, writes one tree per
//! directory, and writes the snapshot manifest last.
//!
//! ```text
//! walker ──FileJob──► readers (open, find holes, chunk, hash, dedup) ──NewBlob──► packers (zstd, seal, pack, store)
//!   ▲                      │
//!   └──── extents ◄────────┘    trees: walker ──► its own tree pack ──► store
//! ```
//! Every queue is bounded, so memory stays flat whatever the input size.

mod packer;
mod readahead;
mod source;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, Sender};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::repo::{
    pack, BlobKind, Id, IdSet, PackWriter, Repository, Snapshot, Summary, SNAPSHOT_VERSION,
};
use crate::tree::{Extent, Node, NodeKind, Timestamp, Tree};
use packer::{NewBlob, PackSink};
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
    pub show_progress: bool,
}

pub struct BackupOutcome {
    pub snapshot: Snapshot,
    /// Entries that could not be read and are missing from the snapshot,
    /// and files that changed while they were read.
    pub warnings: Vec<String>,
}

/// Runs a backup and writes its snapshot.
pub fn backup(
    repo: Arc<Repository>,
    source: Source,
    options: &BackupOptions,
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
    let parent = find_parent(&repo, &options.host, &path_strings)?;
    // A damaged parent costs speed, not the backup: read everything again.
    let previous_root = parent.as_ref().and_then(|p| match repo.read_tree(&p.tree) {
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
    let archiver = Archiver::new(Arc::clone(&repo), options)?;
    let root = match source {
        Source::Paths(_) => archiver.run_paths(&paths, previous_root.as_ref())?,
        Source::Stream { reader, .. } => archiver.run_stream(&paths[0], reader, time)?,
    };
    archiver.progress.finish_and_clear();

    let counters = &archiver.counters;
    let (bytes_added, blobs_added) = archiver.sink.stats();
    let snapshot = Snapshot {
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
        summary: Summary {
            files_new: counters.files_new.load(Relaxed),
            files_changed: counters.files_changed.load(Relaxed),
            files_unchanged: counters.files_unchanged.load(Relaxed),
            dirs: counters.dirs.load(Relaxed),
            other_entries: counters.other.load(Relaxed),
            bytes_read: counters.bytes_read.load(Relaxed),
            bytes_total: counters.bytes_total.load(Relaxed),
            bytes_added,
            blobs_added,
            errors: archiver.warnings.lock().unwrap().len() as u64
                - counters.changed_while_read.load(Relaxed),
            duration_secs: started.elapsed().as_secs_f64(),
        },
    };
    let mut snapshot = snapshot;
    snapshot.id = repo.save_snapshot(&snapshot)?;
    let warnings = std::mem::take(&mut *archiver.warnings.lock().unwrap());
    Ok(BackupOutcome { snapshot, warnings })
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

/// The newest snapshot of the same host and the same set of paths.
fn find_parent(repo: &Repository, host: &str, paths: &[String]) -> Result<Option<Snapshot>> {
    Ok(repo
        .snapshots()?
        .into_iter()
        .rev()
        .find(|s| s.host == host && s.same_paths(paths)))
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

/// Threads listing directories ahead of the walker.
const METADATA_READ_AHEAD_THREADS: usize = 6;
/// Threads reading files.
const READERS: usize = 6;
/// Files larger than a chunk that may be read at once.
const LARGE_FILES_AT_ONCE: usize = 2;

/// A counting semaphore; the permit is returned when dropped.
struct Semaphore {
    tokens: (Sender<()>, Receiver<()>),
}

impl Semaphore {
    fn new(permits: usize) -> Semaphore {
        let tokens = crossbeam_channel::bounded(permits);
        for _ in 0..permits {
            tokens.0.send(()).expect("room for every permit");
        }
        Semaphore { tokens }
    }

    fn acquire(&self) -> Permit<'_> {
        self.tokens.1.recv().expect("the semaphore owns its sender");
        Permit(&self.tokens.0)
    }
}

struct Permit<'a>(&'a Sender<()>);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    other: AtomicU64,
    bytes_read: AtomicU64,
    bytes_total: AtomicU64,
    /// Files stored as read although they changed meanwhile (warned about,
    /// but not missing: not errors).
    changed_while_read: AtomicU64,
}

/// The paths to back up, as a tree of names: only the named branches of
/// their ancestors are walked.
#[derive(Default)]
struct PathTrie {
    children: BTreeMap<Vec<u8>, PathTrie>,
    target: bool,
}

impl PathTrie {
    fn from_paths(paths: &[PathBuf]) -> PathTrie {
        let mut root = PathTrie::default();
        for path in paths {
            let mut node = &mut root;
            for component in path.components() {
                if let Component::Normal(name) = component {
                    node = node.children.entry(name.as_bytes().to_vec()).or_default();
                }
            }
            node.target = true;
        }
        root
    }
}

/// How much of a directory to walk.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// Only the named branches (an ancestor of a backed-up path).
    Partial(&'a PathTrie),
    /// Everything, staying on device `dev` with `--one-file-system`.
    Full { dev: u64 },
    /// A backed-up path itself: everything, on its own device.
    Target,
}

type FileContent = (Vec<Extent>, u64);

struct FileJob {
    path: PathBuf,
    metadata: std::fs::Metadata,
    reply: Sender<Result<FileContent>>,
}

enum Entry {
    Ready(Node),
    Reading {
        node: Node,
        changed: bool,
        reply: Receiver<Result<FileContent>>,
    },
}

struct Archiver {
    repo: Arc<Repository>,
    chunker: Chunker,
    sink: Arc<PackSink>,
    /// Ids of blobs queued in this run, so a blob is stored once.
    queued: Mutex<IdSet>,
    tree_pack: Mutex<Option<PackWriter>>,
    /// `--exclude` patterns with a `/`, matched against the whole path.
    exclude_paths: GlobSet,
    /// The others, matched against an entry's name.
    exclude_names: GlobSet,
    one_file_system: bool,
    owners: OwnerNames,
    counters: Counters,
    warnings: Mutex<Vec<String>>,
    progress: indicatif::ProgressBar,
}

impl Archiver {
    fn new(repo: Arc<Repository>, options: &BackupOptions) -> Result<Archiver> {
        let (path_patterns, name_patterns): (Vec<&String>, Vec<&String>) =
            options.excludes.iter().partition(|p| p.contains('/'));
        let progress = if options.show_progress {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Ok(Archiver {
            chunker: Chunker::new(repo.config().chunker, repo.chunker_seed()),
            sink: PackSink::new(Repository::clone(&repo)),
            repo,
            queued: Mutex::new(IdSet::default()),
            tree_pack: Mutex::new(None),
            exclude_paths: glob_set(&path_patterns)?,
            exclude_names: glob_set(&name_patterns)?,
            one_file_system: options.one_file_system,
            owners: OwnerNames::default(),
            counters: Counters::default(),
            warnings: Mutex::new(Vec::new()),
            progress,
        })
    }

    /// Starts packers and readers, walks the paths, and waits for everything
    /// to be stored and indexed. Returns the root tree.
    fn run_paths(&self, paths: &[PathBuf], previous: Option<&Tree>) -> Result<Id> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (blob_tx, packers) = packer::start(&self.sink, threads, threads * 2);
        let trie = PathTrie::from_paths(paths);
        let read_ahead = readahead::ReadAhead::new(paths);
        let root_devices: Vec<u64> = paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok().map(|m| m.dev()))
            .collect();
        // Reading small files is waiting on the disk: several readers
        // overlap the waits. Large files stream, a few at a time, so memory
        // stays bounded however many readers there are.
        let large_files = Semaphore::new(LARGE_FILES_AT_ONCE);
        let walked = std::thread::scope(|scope| {
            for _ in 0..METADATA_READ_AHEAD_THREADS {
                scope.spawn(|| {
                    read_ahead.work(|path, name, meta| {
                        self.excluded(path, name)
                            || (self.one_file_system && !root_devices.contains(&meta.dev()))
                    })
                });
            }
            let (job_tx, job_rx) = crossbeam_channel::bounded::<FileJob>(256);
            for _ in 0..READERS.max(threads) {
                let job_rx = job_rx.clone();
                let blob_tx = blob_tx.clone();
                let large_files = &large_files;
                scope.spawn(move || {
                    for job in job_rx.iter() {
                        let large = job.metadata.len() > self.repo.config().chunker.max_size as u64;
                        let _permit = large.then(|| large_files.acquire());
                        let result = self.read_file(&job.path, &blob_tx);
                        let _ = job.reply.send(result);
                    }
                });
            }
            let scope_root = if trie.target {
                Scope::Target
            } else {
                Scope::Partial(&trie)
            };
            let walker = Walker {
                archiver: self,
                jobs: job_tx,
            };
            let walked = crate::tree::with_deep_stack(|| {
                walker.dir_tree(Path::new("/"), previous, scope_root)
            });
            read_ahead.stop();
            walked
        });
        let walked = walked.and_then(|root| {
            root.ok_or_else(|| {
                Error::usage("nothing to back up: the root directory cannot be read")
            })
        });
        drop(blob_tx);
        self.finish(packers, walked)
    }

    fn run_stream(
        &self,
        path: &Path,
        reader: Box<dyn Read + Send>,
        time: DateTime<Utc>,
    ) -> Result<Id> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (blob_tx, packers) = packer::start(&self.sink, threads, threads * 2);
        let stored = self.store_stream(path, reader, time, &blob_tx);
        drop(blob_tx);
        self.finish(packers, stored)
    }

    fn store_stream(
        &self,
        path: &Path,
        reader: Box<dyn Read + Send>,
        time: DateTime<Utc>,
        blob_tx: &Sender<NewBlob>,
    ) -> Result<Id> {
        let mut extents = Vec::new();
        let size = self
            .store_chunks(reader, None, &mut extents, blob_tx)
            .map_err(|e| e.context("reading standard input"))?;
        self.counters.files_new.fetch_add(1, Relaxed);
        self.counters.bytes_total.fetch_add(size, Relaxed);
        let names: Vec<&OsStr> = path.iter().skip(1).collect();
        let stamp = Timestamp {
            sec: time.timestamp(),
            nsec: time.timestamp_subsec_nanos(),
        };
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let synthetic = |name: &OsStr, kind: NodeKind, mode: u32| Node {
            name: name.as_bytes().to_vec(),
            kind,
            mode,
            uid,
            gid,
            user: self.owners.user(uid),
            group: self.owners.group(gid),
            mtime: stamp,
            atime: stamp,
            ctime: stamp,
            size: 0,
            device: 0,
            inode: 0,
            links: 1,
            rdev: 0,
            link_target: vec![],
            xattrs: vec![],
            content: vec![],
            subtree: None,
        };
        let (file_name, dirs) = names
            .split_last()
            .ok_or_else(|| Error::usage("--stdin-name needs a file name"))?;
        let mut node = synthetic(file_name, NodeKind::File, 0o600);
        node.content = extents;
        node.size = size;
        let mut tree_id = self.store_tree(&Tree { nodes: vec![node] })?;
        for dir in dirs.iter().rev() {
            let mut node = synthetic(dir, NodeKind::Dir, 0o700);
            node.subtree = Some(tree_id);
            tree_id = self.store_tree(&Tree { nodes: vec![node] })?;
        }
        Ok(tree_id)
    }

    /// Flushes the tree pack, waits for the packers, and writes the index:
    /// after this, everything the root tree names is durable.
    fn finish(&self, packers: Vec<std::thread::JoinHandle<()>>, walked: Result<Id>) -> Result<Id> {
        let flushed = self.flush_tree_pack();
        for handle in packers {
            handle.join().expect("a packer thread panicked");
        }
        if let Some(failure) = self.sink.take_failure() {
            return Err(failure.context("the backup was stopped and no snapshot was written"));
        }
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

    /// True the first time a blob unknown to the repository is seen.
    fn is_new(&self, id: &Id) -> bool {
        !self.repo.index().contains(id) && self.queued.lock().unwrap().insert(*id)
    }

    fn store_tree(&self, tree: &Tree) -> Result<Id> {
        self.store_encoded_tree(tree.encode())
    }

    fn store_encoded_tree(&self, bytes: Vec<u8>) -> Result<Id> {
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
            if writer.len() >= self.repo.config().pack_size as usize {
                let full = slot.take().unwrap().finish()?;
                drop(slot);
                self.sink.store(full)?;
            }
        }
        Ok(id)
    }

    /// Chunks a stream of about `expected_len` bytes, queues the new
    /// chunks, and appends its extents.
    fn store_chunks(
        &self,
        reader: impl Read,
        expected_len: Option<u64>,
        extents: &mut Vec<Extent>,
        blob_tx: &Sender<NewBlob>,
    ) -> Result<u64> {
        let mut total = 0u64;
        self.chunker.chunk_sized(reader, expected_len, |data| {
            if self.sink.has_failed() {
                return Err(Error::usage("the backup is stopping"));
            }
            let id = self.repo.blob_id(&data);
            let len = data.len() as u32;
            total += len as u64;
            self.counters.bytes_read.fetch_add(len as u64, Relaxed);
            extents.push(Extent::Data { id, len });
            if self.is_new(&id) {
                blob_tx
                    .send(NewBlob {
                        kind: BlobKind::Data,
                        id,
                        data,
                    })
                    .map_err(|_| Error::usage("the packers have stopped"))?;
            }
            Ok(())
        })?;
        Ok(total)
    }

    /// A file's content as extents, as it was read: holes are recorded, not
    /// read; the file ends where reading found its end, whatever stat said
    /// (a /sys file claims 4096 bytes and holds a few; a file may shrink or
    /// grow while it is read). A change during the read is warned about.
    fn read_file(&self, path: &Path, blob_tx: &Sender<NewBlob>) -> Result<FileContent> {
        let fail = |e: std::io::Error| Error::io(format!("cannot read {}", path.display()), e);
        let file = source::open_source(path).map_err(fail)?;
        // Before and after reading, stat the open file: its inode stays the
        // same (times of /sys files change when their inode is made again).
        let opened = file.metadata().map_err(fail)?;
        let regions = source::data_regions(&file, &opened).map_err(fail)?;
        let mut extents = Vec::new();
        let mut position = 0u64;
        let mut reached_end = false;
        for (offset, length) in regions {
            if offset > position {
                extents.push(Extent::Hole {
                    len: offset - position,
                });
            }
            let reader = source::region_reader(&file, offset, length).map_err(fail)?;
            // The last region of a file that is not sparse runs to its end.
            let to_end = length == u64::MAX;
            let expected = if to_end { opened.len() } else { length };
            let read = self
                .store_chunks(reader, Some(expected), &mut extents, blob_tx)
                .map_err(|e| e.context(path.display()))?;
            position = offset + read;
            // A region that reads short ends the file: padding it to the
            // stat size would store bytes the file never held.
            reached_end = to_end || read < length;
            if reached_end {
                break;
            }
        }
        // A trailing hole is known from the data regions, not read.
        if !reached_end && opened.len() > position {
            extents.push(Extent::Hole {
                len: opened.len() - position,
            });
            position = opened.len();
        }
        let after = file.metadata().map_err(fail)?;
        if let Some(change) = change_while_read(&opened, &after) {
            self.counters.changed_while_read.fetch_add(1, Relaxed);
            self.warn(format!(
                "{} changed while it was read ({change}): the snapshot holds the {position} bytes read, which may mix old and new content",
                path.display()
            ));
        }
        // A message per file is formatted only for a bar someone sees.
        if !self.progress.is_hidden() {
            self.progress.set_message(format!(
                "{} files, {} read",
                self.counters.files_new.load(Relaxed)
                    + self.counters.files_changed.load(Relaxed)
                    + self.counters.files_unchanged.load(Relaxed),
                indicatif::HumanBytes(self.counters.bytes_read.load(Relaxed))
            ));
        }
        Ok((extents, position))
    }

    fn warn(&self, message: String) {
        self.progress.suspend(|| crate::log::warn(&message));
        self.warnings.lock().unwrap().push(message);
    }

    fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        self.exclude_paths.is_match(path) || self.exclude_names.is_match(OsStr::from_bytes(name))
    }

    /// Whether a file can keep the content recorded in the parent snapshot.
    fn unchanged(&self, previous: &Node, now: &Node) -> bool {
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
}

/// How a file changed between the stat before it was read and the one
/// after, if it did: its size, or its mtime (rewritten in place).
fn change_while_read(before: &std::fs::Metadata, after: &std::fs::Metadata) -> Option<String> {
    if before.len() != after.len() {
        Some(format!(
            "its size went from {} to {} bytes",
            before.len(),
            after.len()
        ))
    } else if (before.mtime(), before.mtime_nsec()) != (after.mtime(), after.mtime_nsec()) {
        Some("it was modified".into())
    } else {
        None
    }
}

/// The walker: owns the job queue, so that dropping it lets the readers end.
struct Walker<'a> {
    archiver: &'a Archiver,
    jobs: Sender<FileJob>,
}

impl Walker<'_> {
    /// The tree of one directory, or None if it could not be read.
    fn dir_tree(&self, dir: &Path, previous: Option<&Tree>, scope: Scope) -> Result<Option<Id>> {
        let a = self.archiver;
        let names: Vec<Vec<u8>> = match scope {
            Scope::Partial(trie) => trie.children.keys().cloned().collect(),
            _ => match source::read_dir_names(dir) {
                Ok(names) => names,
                Err(e) => {
                    a.warn(format!("cannot read the directory {}: {e}", dir.display()));
                    return Ok(None);
                }
            },
        };
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            if let Some(failure) = a.sink.take_failure() {
                return Err(failure);
            }
            let path = dir.join(OsStr::from_bytes(&name));
            if a.excluded(&path, &name) {
                continue;
            }
            let child_scope = match scope {
                Scope::Partial(trie) => {
                    let sub = &trie.children[&name];
                    if sub.target {
                        Scope::Target
                    } else {
                        Scope::Partial(sub)
                    }
                }
                other => other,
            };
            let previous_node = previous.and_then(|t| t.find(&name));
            if let Some(entry) = self.visit(&path, &name, previous_node, child_scope)? {
                entries.push(entry);
            }
        }
        let mut tree = Tree {
            nodes: Vec::with_capacity(entries.len()),
        };
        for entry in entries {
            match entry {
                Entry::Ready(node) => tree.nodes.push(node),
                Entry::Reading {
                    mut node,
                    changed,
                    reply,
                } => {
                    let result = reply
                        .recv()
                        .map_err(|_| Error::usage("a reader thread stopped"))?;
                    match result {
                        Ok((content, size)) => {
                            let counter = if changed {
                                &a.counters.files_changed
                            } else {
                                &a.counters.files_new
                            };
                            counter.fetch_add(1, Relaxed);
                            a.counters.bytes_total.fetch_add(size, Relaxed);
                            node.content = content;
                            node.size = size;
                            tree.nodes.push(node);
                        }
                        Err(e) => {
                            if let Some(failure) = a.sink.take_failure() {
                                return Err(failure);
                            }
                            a.warn(e.to_string());
                        }
                    }
                }
            }
        }
        // Readers refuse a larger tree (that bounds what they decode), so
        // the directory is left out as one that cannot be read would be.
        let encoded = tree.encode();
        if encoded.len() > pack::MAX_TREE_LEN as usize {
            a.warn(format!(
                "cannot store the directory {}: its {} entries take {} bytes, more than the {} a tree may hold",
                dir.display(),
                tree.nodes.len(),
                encoded.len(),
                pack::MAX_TREE_LEN
            ));
            return Ok(None);
        }
        a.store_encoded_tree(encoded).map(Some)
    }

    fn visit(
        &self,
        path: &Path,
        name: &[u8],
        previous: Option<&Node>,
        scope: Scope,
    ) -> Result<Option<Entry>> {
        let a = self.archiver;
        // The ancestors of a backed-up path are followed if they are
        // symlinks: the path was given as it is, and it is kept as given.
        let stat = if matches!(scope, Scope::Partial(_)) {
            std::fs::metadata
        } else {
            std::fs::symlink_metadata
        };
        let metadata = match stat(path) {
            Ok(m) => m,
            Err(e) => {
                a.warn(format!("cannot read {}: {e}", path.display()));
                return Ok(None);
            }
        };
        // Any change of extended attributes moves ctime: an entry whose inode
        // and ctime match the parent snapshot keeps the xattrs recorded there.
        let recorded = previous.filter(|p| {
            p.inode == metadata.ino()
                && p.ctime.sec == metadata.ctime()
                && p.ctime.nsec == metadata.ctime_nsec() as u32
        });
        let mut node =
            match source::node_from_stat(name, path, &metadata, &a.owners, recorded.is_none()) {
                Ok(mut node) => {
                    if let Some(p) = recorded {
                        node.xattrs = p.xattrs.clone();
                    }
                    node
                }
                Err(e) => {
                    a.warn(e.to_string());
                    return Ok(None);
                }
            };
        match node.kind {
            NodeKind::Dir => {
                a.counters.dirs.fetch_add(1, Relaxed);
                let scope = match scope {
                    Scope::Target => Scope::Full {
                        dev: metadata.dev(),
                    },
                    other => other,
                };
                let previous_tree = previous
                    .filter(|p| p.is_dir())
                    .and_then(|p| p.subtree)
                    .and_then(|id| a.repo.read_tree(&id).ok());
                let foreign = matches!(scope, Scope::Full { dev } if a.one_file_system && dev != metadata.dev());
                let subtree = if foreign {
                    a.store_tree(&Tree::default())?
                } else {
                    match self.dir_tree(path, previous_tree.as_ref(), scope)? {
                        Some(id) => id,
                        None => return Ok(None),
                    }
                };
                node.subtree = Some(subtree);
                Ok(Some(Entry::Ready(node)))
            }
            NodeKind::File => {
                if let Some(previous) = previous.filter(|p| a.unchanged(p, &node)) {
                    node.content = previous.content.clone();
                    a.counters.files_unchanged.fetch_add(1, Relaxed);
                    a.counters.bytes_total.fetch_add(node.size, Relaxed);
                    return Ok(Some(Entry::Ready(node)));
                }
                let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
                self.jobs
                    .send(FileJob {
                        path: path.to_path_buf(),
                        metadata,
                        reply: reply_tx,
                    })
                    .map_err(|_| Error::usage("the reader threads stopped"))?;
                Ok(Some(Entry::Reading {
                    node,
                    changed: previous.is_some(),
                    reply: reply_rx,
                }))
            }
            _ => {
                a.counters.other.fetch_add(1, Relaxed);
                Ok(Some(Entry::Ready(node)))
            }
        }
    }
}
