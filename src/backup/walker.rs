//! The walk of the paths to back up, and the pipeline around it: one
//! walker visits every entry in order and writes one tree per directory;
//! files it finds new or changed go to the reader threads, and metadata
//! warmers list directories ahead of it. Unchanged files keep the content
//! recorded in the parent snapshot without being read.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

use crossbeam_channel::Sender;

use super::archiver::{join_workers, Archiver};
use super::reader::{self, DirectoryReads, ReadBatch, ReadRequest, LARGE_FILES_AT_ONCE, READERS};
use super::semaphore::Semaphore;
use super::source::{self, NameList};
use super::warmer::MetadataWarmer;
use crate::error::{Error, Result};
use crate::repo::{pack, DirCursor, Id};
use crate::tree::{Node, NodeKind, Tree, TreeWriter};

/// Threads listing directories ahead of the walker.
const METADATA_WARMERS: usize = 6;
/// Batches of files found by the walker and not yet taken by a reader.
const QUEUED_BATCHES: usize = 16;
/// Entries of a directory the walker holds before it waits for the
/// oldest file's content: well above the files in the readers' queue.
const PENDING_ENTRIES: usize = 4 * QUEUED_BATCHES * 64;

/// Backs up `paths` (absolute and normalized): starts the packers, the
/// warmers and the readers, walks, and waits for everything to be stored
/// and indexed. Returns the root tree.
pub(super) fn back_up_paths(
    archiver: &Archiver,
    paths: &[PathBuf],
    previous: Option<DirCursor>,
) -> Result<Id> {
    let (blob_tx, packers) = archiver.start_packers();
    let trie = PathTrie::from_paths(paths);
    let warmer = MetadataWarmer::new(paths);
    let root_devices: Vec<u64> = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| m.dev()))
        .collect();
    let large_files = Semaphore::new(LARGE_FILES_AT_ONCE);
    let walked = std::thread::scope(|scope| {
        let warmers: Vec<_> = (0..METADATA_WARMERS)
            .map(|_| {
                scope.spawn(|| {
                    warmer.work(|path, name, meta| {
                        archiver.excluded(path, name)
                            || (archiver.one_file_system && !root_devices.contains(&meta.dev()))
                    })
                })
            })
            .collect();
        let (request_tx, request_rx) = crossbeam_channel::bounded::<ReadBatch>(QUEUED_BATCHES);
        let readers: Vec<_> = (0..READERS.max(archiver.threads))
            .map(|_| {
                let request_rx = request_rx.clone();
                let blob_tx = blob_tx.clone();
                let large_files = &large_files;
                scope.spawn(move || reader::serve(archiver, &request_rx, &blob_tx, large_files))
            })
            .collect();
        // Only the readers hold the queue's receiving end: should they all
        // stop, the walker's next request fails instead of waiting forever.
        drop(request_rx);
        let root_scope = if trie.target {
            WalkScope::Target
        } else {
            WalkScope::Partial(&trie)
        };
        let walker = Walker {
            archiver,
            requests: request_tx,
        };
        let walked =
            crate::tree::with_deep_stack(|| walker.dir_tree(Path::new("/"), previous, root_scope));
        warmer.stop();
        // Closing the request queue lets the readers end.
        drop(walker);
        let readers = join_workers(readers.into_iter().map(|h| h.join()), "reader");
        let warmers = join_workers(warmers.into_iter().map(|h| h.join()), "metadata warmer");
        readers.and(warmers).and(walked)
    });
    let walked = walked.and_then(|root| {
        root.ok_or_else(|| Error::usage("nothing to back up: the root directory cannot be read"))
    });
    drop(blob_tx);
    archiver.finish(packers, walked)
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
enum WalkScope<'a> {
    /// Only the named branches (an ancestor of a backed-up path).
    Partial(&'a PathTrie),
    /// Everything, staying on device `dev` with `--one-file-system`.
    Full { dev: u64 },
    /// A backed-up path itself: everything, on its own device.
    Target,
}

/// A directory entry as the walker found it: complete, or a file whose
/// content a reader is reading (the directory's reads answer in order).
enum Entry {
    Ready(Node),
    Reading { node: Node, changed: bool },
}

/// The walker: owns the request queue, so that dropping it lets the readers end.
struct Walker<'a> {
    archiver: &'a Archiver,
    requests: Sender<ReadBatch>,
}

impl Walker<'_> {
    /// The tree of one directory, or None if it could not be read.
    fn dir_tree(
        &self,
        dir: &Path,
        mut previous: Option<DirCursor>,
        scope: WalkScope,
    ) -> Result<Option<Id>> {
        let a = self.archiver;
        let names: NameList = match scope {
            WalkScope::Partial(trie) => trie.children.keys().map(Vec::as_slice).collect(),
            _ => match source::read_dir_names(dir) {
                Ok(names) => names,
                Err(e) => {
                    a.warn(format!("cannot read the directory {}: {e}", dir.display()));
                    return Ok(None);
                }
            },
        };
        let mut pending: VecDeque<Entry> = VecDeque::new();
        let mut reads = DirectoryReads::new(&self.requests);
        let mut writer = TreeWriter::new();
        // A part takes one entry past PART_MAX_BYTES at most: only a
        // single entry larger than a tree may be (a file of millions of
        // chunks) makes one too large, and readers would refuse it.
        let too_large = Cell::new(None);
        let mut store = |bytes: Vec<u8>| {
            if bytes.len() > pack::MAX_TREE_LEN as usize {
                too_large.set(Some(bytes.len()));
                return Err(Error::usage("a tree too large"));
            }
            a.store_encoded_tree(bytes)
        };
        let mut names = names.iter();
        loop {
            let name = names.next();
            if let Some(name) = name {
                if let Some(failure) = a.take_failure() {
                    return Err(failure);
                }
                if let Some(entry) =
                    self.visit_name(dir, name, previous.as_mut(), scope, &mut reads)?
                {
                    pending.push_back(entry);
                }
            }
            // Entries go to the tree in order, as soon as they are
            // complete: what waits is bounded by the window, not by the
            // directory's width.
            while let Some(front) = pending.front() {
                let waits = matches!(front, Entry::Reading { .. });
                if waits && name.is_some() && pending.len() <= PENDING_ENTRIES {
                    break;
                }
                let entry = pending.pop_front().expect("a front entry");
                let Some(node) = self.complete(entry, &mut reads)? else {
                    continue;
                };
                if let Err(e) = writer.push(&node, &mut store) {
                    return self.left_out(dir, too_large.get(), e);
                }
            }
            if name.is_none() {
                break;
            }
        }
        let top = match writer.finish(&mut store) {
            Ok(top) => top,
            Err(e) => return self.left_out(dir, too_large.get(), e),
        };
        match store(top) {
            Ok(id) => Ok(Some(id)),
            Err(e) => self.left_out(dir, too_large.get(), e),
        }
    }

    /// The entry named `name` in `dir`, if it is backed up.
    fn visit_name(
        &self,
        dir: &Path,
        name: &[u8],
        previous: Option<&mut DirCursor>,
        scope: WalkScope,
        reads: &mut DirectoryReads,
    ) -> Result<Option<Entry>> {
        let path = dir.join(OsStr::from_bytes(name));
        if self.archiver.excluded(&path, name) {
            return Ok(None);
        }
        let child_scope = match scope {
            WalkScope::Partial(trie) => {
                let sub = &trie.children[name];
                if sub.target {
                    WalkScope::Target
                } else {
                    WalkScope::Partial(sub)
                }
            }
            other => other,
        };
        let previous_node = previous.and_then(|t| t.find(name));
        self.visit(&path, name, previous_node, child_scope, reads)
    }

    /// The node of an entry, once its content is read (None: it could not
    /// be read, and was warned about).
    fn complete(&self, entry: Entry, reads: &mut DirectoryReads) -> Result<Option<Node>> {
        let a = self.archiver;
        let (mut node, changed) = match entry {
            Entry::Ready(node) => return Ok(Some(node)),
            Entry::Reading { node, changed } => (node, changed),
        };
        match reads.next_content()? {
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
                Ok(Some(node))
            }
            Err(e) => {
                if let Some(failure) = a.take_failure() {
                    return Err(failure);
                }
                a.warn(e.to_string());
                Ok(None)
            }
        }
    }

    /// A directory whose tree could not be stored: left out, as one that
    /// cannot be read would be, when an entry was too large for a tree;
    /// otherwise the backup stops with `error`.
    fn left_out(&self, dir: &Path, too_large: Option<usize>, error: Error) -> Result<Option<Id>> {
        let Some(len) = too_large else {
            return Err(error);
        };
        self.archiver.warn(format!(
            "cannot store the directory {}: one of its entries makes a tree of {len} bytes, \
             more than the {} a tree may hold",
            dir.display(),
            pack::MAX_TREE_LEN
        ));
        Ok(None)
    }

    fn visit(
        &self,
        path: &Path,
        name: &[u8],
        previous: Option<&Node>,
        scope: WalkScope,
        reads: &mut DirectoryReads,
    ) -> Result<Option<Entry>> {
        let a = self.archiver;
        // The ancestors of a backed-up path are followed if they are
        // symlinks: the path was given as it is, and it is kept as given.
        let stat = if matches!(scope, WalkScope::Partial(_)) {
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
                    WalkScope::Target => WalkScope::Full {
                        dev: metadata.dev(),
                    },
                    other => other,
                };
                let previous_tree = previous
                    .filter(|p| p.is_dir())
                    .and_then(|p| p.subtree)
                    .and_then(|id| DirCursor::open(&a.repo, &id).ok());
                let foreign = matches!(scope, WalkScope::Full { dev } if a.one_file_system && dev != metadata.dev());
                let subtree = if foreign {
                    a.store_tree(&Tree::default())?
                } else {
                    match self.dir_tree(path, previous_tree, scope)? {
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
                    a.progress.add(1, node.size);
                    return Ok(Some(Entry::Ready(node)));
                }
                reads.add(ReadRequest {
                    path: path.to_path_buf(),
                    metadata,
                    changed: previous.is_some(),
                })?;
                Ok(Some(Entry::Reading {
                    node,
                    changed: previous.is_some(),
                }))
            }
            _ => {
                a.counters.other.fetch_add(1, Relaxed);
                Ok(Some(Entry::Ready(node)))
            }
        }
    }
}
