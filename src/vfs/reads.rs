//! File reads: every byte from a chunk that passed its AEAD tag and id
//! check, decoded chunks kept in a cache, the chunks ahead of a sequential
//! reader (and the first ones of the files after it) fetched by the
//! read-ahead workers, and the chunks a scrub found damaged refused at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use lru::LruCache;

use super::cache::{self, ChunkCache, ServedFrom};
use super::index::BackgroundIndex;
use super::inodes::{Ino, Inode, Inodes, Record};
use super::readahead::ReadAheadWorkers;
use super::shown::ShownSnapshots;
use super::stats::Stats;
use super::trees::{EntryNode, SnapshotTrees};
use super::{VfsOptions, VfsResult, DEFAULT_CACHE_BYTES};
use crate::error::Result;
use crate::repo::{Id, IdSet, Repository, Snapshot};
use crate::tree::{Extent, NodeKind};

/// How many chunks beyond those handed to the read-ahead workers a
/// sequential reader has the backend fetch (a disk read of the pack bytes,
/// while the workers decode): ~8 MiB.
const PACK_HINT_CHUNKS: usize = 8;

/// Files whose read state is kept; one that falls out starts afresh.
const READERS_KEPT: usize = 256;

/// Directories whose read-ahead position is kept.
const DIRECTORIES_KEPT: usize = 16;

/// Chunks that may wait for the read-ahead workers.
const READ_AHEAD_QUEUE: usize = 64;

/// How far ahead of a reader the files after it in its directory are
/// decoded: tar, cp -a and rsync read a directory's files in order.
const SIBLING_WINDOW_FILES: usize = 64;
const SIBLING_WINDOW_BYTES: u64 = 4 << 20;

/// A file being read. Reads carry no handle (the kernel opens files
/// without asking us, see `crate::fuse`), so this is kept per inode, for
/// the most recently read files.
struct Reader {
    ino: Ino,
    snapshot: Arc<Snapshot>,
    node: EntryNode,
    /// Where each extent starts in the file: seeks are a binary search.
    starts: Vec<u64>,
    /// Where the last read ended: a read starting there is sequential.
    last_end: AtomicU64,
    /// Extents up to here were handed to the read-ahead workers.
    readahead_until: AtomicUsize,
    /// The pack bytes of extents up to here were announced to the backend.
    hinted_until: AtomicUsize,
}

pub struct FileReads {
    index: Arc<BackgroundIndex>,
    /// To tell, when a read fails, that its snapshot was forgotten.
    shown: Arc<ShownSnapshots>,
    inodes: Arc<Inodes>,
    trees: Arc<SnapshotTrees>,
    stats: Arc<Stats>,
    chunks: Arc<ChunkCache>,
    readers: Mutex<LruCache<Ino, Arc<Reader>>>,
    /// For the directories being read: the entries up to here went to the
    /// read-ahead workers.
    siblings_queued: Mutex<LruCache<Id, usize>>,
    workers: Option<Arc<ReadAheadWorkers>>,
    /// Chunks fetched ahead of a sequential reader.
    readahead_chunks: usize,
    /// Chunks, and packs, a scrub found damaged: reads of them fail at once.
    damaged: RwLock<IdSet>,
}

impl FileReads {
    /// Starts the read-ahead workers, if `options` asks for read-ahead.
    pub fn start(
        options: &VfsOptions,
        index: Arc<BackgroundIndex>,
        shown: Arc<ShownSnapshots>,
        inodes: Arc<Inodes>,
        trees: Arc<SnapshotTrees>,
        stats: Arc<Stats>,
    ) -> Result<FileReads> {
        let chunks = Arc::new(ChunkCache::for_chunks(
            options.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES),
        ));
        let workers = if options.readahead_chunks > 0 {
            let (chunks, index) = (Arc::clone(&chunks), Arc::clone(&index));
            let fetch = move |id: &Id| {
                // Chunks are offered once reads run, after the index
                // loaded; a failure is reported by the read that needs it.
                if let Some(repo) = index.loaded() {
                    let _ = chunks.get_or_fetch(id, || repo.read_blob_framed(id).map(cache::chunk));
                }
            };
            let threads = options.readahead_threads;
            Some(ReadAheadWorkers::start(threads, READ_AHEAD_QUEUE, fetch)?)
        } else {
            None
        };
        let kept = |n| std::num::NonZeroUsize::new(n).expect("not zero");
        Ok(FileReads {
            index,
            shown,
            inodes,
            trees,
            stats,
            chunks,
            readers: Mutex::new(LruCache::new(kept(READERS_KEPT))),
            siblings_queued: Mutex::new(LruCache::new(kept(DIRECTORIES_KEPT))),
            workers,
            readahead_chunks: options.readahead_chunks,
            damaged: RwLock::new(IdSet::default()),
        })
    }

    /// The cache of decoded chunks.
    pub fn chunks(&self) -> &Arc<ChunkCache> {
        &self.chunks
    }

    /// Reads of these chunks, and of every chunk in these packs, fail with
    /// EIO without touching the packs; what is no longer listed (repaired)
    /// reads again.
    pub fn set_damaged(&self, blobs_and_packs: IdSet) {
        *self.damaged.write().unwrap() = blobs_and_packs;
    }

    /// Up to `size` bytes at `offset` of file `ino`, whose record is `record`.
    pub fn read(&self, ino: Ino, record: &Record, offset: u64, size: u32) -> VfsResult<Vec<u8>> {
        let reader = self.reader(ino, record)?;
        self.stats.reading();
        let data = self.read_content(&reader, offset, size)?;
        self.stats.served(data.len());
        Ok(data)
    }

    /// The read state of file `ino` (whose record is `record`), made at
    /// its first read.
    fn reader(&self, ino: Ino, record: &Record) -> VfsResult<Arc<Reader>> {
        if let Some(reader) = self.readers.lock().unwrap().get(&ino) {
            return Ok(Arc::clone(reader));
        }
        let reader = match (&record.inode, self.trees.entry_node(record)?) {
            (Inode::Entry { snapshot, .. }, Some(node)) if node.kind == NodeKind::File => {
                let starts = node
                    .content
                    .iter()
                    .scan(0u64, |offset, extent| {
                        let start = *offset;
                        *offset += extent.len();
                        Some(start)
                    })
                    .collect();
                self.read_ahead_siblings(&node);
                Arc::new(Reader {
                    ino,
                    snapshot: Arc::clone(snapshot),
                    node,
                    starts,
                    last_end: AtomicU64::new(0),
                    readahead_until: AtomicUsize::new(0),
                    hinted_until: AtomicUsize::new(0),
                })
            }
            (Inode::Entry { .. } | Inode::Link(_), _) => return Err(libc::EINVAL),
            _ => return Err(libc::EISDIR),
        };
        self.readers.lock().unwrap().put(ino, Arc::clone(&reader));
        Ok(reader)
    }

    fn read_content(&self, reader: &Reader, offset: u64, size: u32) -> VfsResult<Vec<u8>> {
        let (node, starts) = (&reader.node, &reader.starts);
        if offset >= node.size {
            return Ok(Vec::new());
        }
        let end = node.size.min(offset + size as u64);
        let sequential = reader.last_end.swap(end, Relaxed) == offset;
        let mut out = Vec::with_capacity((end - offset) as usize);
        // O(log n): the extent holding `offset`.
        let mut i = starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let mut position = offset;
        while position < end && i < node.content.len() {
            let start = starts[i];
            let extent = &node.content[i];
            let take_end = end.min(start + extent.len());
            match extent {
                Extent::Data { id, len } => {
                    let chunk = self.chunk(reader, id)?;
                    if chunk.len() != *len as usize {
                        self.report_bad_chunk(reader, id, &"has the wrong length");
                        return Err(libc::EIO);
                    }
                    out.extend_from_slice(
                        &chunk[(position - start) as usize..(take_end - start) as usize],
                    );
                    // A sequential reader is done with it, and the kernel keeps
                    // the pages: holding it too would only cost memory.
                    if sequential && take_end == start + extent.len() {
                        self.chunks.remove(id);
                    }
                }
                Extent::Hole { .. } => out.resize(out.len() + (take_end - position) as usize, 0),
            }
            position = take_end;
            if position == start + extent.len() {
                i += 1;
            }
        }
        out.resize((end - offset) as usize, 0);
        if sequential {
            self.read_ahead(reader, i);
        }
        Ok(out)
    }

    /// Hands the first chunks of the files after `entry` in its directory
    /// to the read-ahead workers, up to a window ahead of it.
    fn read_ahead_siblings(&self, entry: &EntryNode) {
        let Some(workers) = &self.workers else { return };
        let mut queued = self.siblings_queued.lock().unwrap();
        let from = queued
            .get(&entry.tree_id)
            .copied()
            .unwrap_or(0)
            .max(entry.index + 1);
        let nodes = &entry.tree.nodes;
        let last = (entry.index + SIBLING_WINDOW_FILES).min(nodes.len().saturating_sub(1));
        let mut window_bytes = 0u64;
        let mut next = entry.index + 1;
        while next <= last && window_bytes < SIBLING_WINDOW_BYTES {
            let node = &nodes[next];
            if node.kind == NodeKind::File {
                window_bytes += node.size;
                if next >= from {
                    let first_chunks = node.content.iter().take(self.readahead_chunks);
                    for extent in first_chunks {
                        if let Extent::Data { id, .. } = extent {
                            if !self.chunks.contains(id) && !workers.offer(*id) {
                                // The workers are busy: try again from here.
                                queued.put(entry.tree_id, next);
                                return;
                            }
                        }
                    }
                }
            }
            next += 1;
        }
        queued.put(entry.tree_id, next.max(from));
    }

    /// Hands the next chunks of a sequential reader to the read-ahead workers.
    fn read_ahead(&self, reader: &Reader, next: usize) {
        let Some(workers) = &self.workers else { return };
        let node = &reader.node;
        let until = (next + self.readahead_chunks).min(node.content.len());
        let hint_until = (until + PACK_HINT_CHUNKS).min(node.content.len());
        let hint_from = reader
            .hinted_until
            .fetch_max(hint_until, Relaxed)
            .max(until);
        if hint_from < hint_until {
            let ids: Vec<Id> = node.content[hint_from..hint_until]
                .iter()
                .filter_map(|extent| match extent {
                    Extent::Data { id, .. } => Some(*id),
                    Extent::Hole { .. } => None,
                })
                .collect();
            if let Some(repo) = self.index.loaded() {
                repo.prefetch_blobs(&ids);
            }
        }
        let from = reader.readahead_until.load(Relaxed).max(next);
        for extent in node.content.get(from..until).unwrap_or_default() {
            if let Extent::Data { id, .. } = extent {
                if !self.chunks.contains(id) && !workers.offer(*id) {
                    return; // the workers are busy; the reader fetches itself
                }
            }
        }
        reader.readahead_until.fetch_max(until, Relaxed);
    }

    fn chunk(&self, reader: &Reader, id: &Id) -> VfsResult<cache::Chunk> {
        let repo = self.index.wait_for_request()?;
        let fetch = || {
            if self.known_damaged(repo, id) {
                return Err(crate::error::Error::corrupt("the scrub found it damaged"));
            }
            repo.read_blob_framed(id).map(cache::chunk)
        };
        match self.chunks.get_or_fetch(id, fetch) {
            Ok((chunk, served_from)) => {
                if served_from == ServedFrom::Fetch {
                    self.stats.chunks_verified.fetch_add(1, Relaxed);
                }
                Ok(chunk)
            }
            Err(e) => {
                self.report_bad_chunk(reader, id, &e);
                Err(libc::EIO)
            }
        }
    }

    fn known_damaged(&self, repo: &Repository, id: &Id) -> bool {
        let damaged = self.damaged.read().unwrap();
        if damaged.is_empty() {
            return false;
        }
        let index = repo.index();
        damaged.contains(id)
            || index
                .get(id)
                .is_some_and(|l| damaged.contains(&index.pack(l.pack()).id))
    }

    fn report_bad_chunk(&self, reader: &Reader, id: &Id, problem: &dyn std::fmt::Display) {
        let pack = match self.index.loaded() {
            Some(repo) => {
                let index = repo.index();
                index
                    .get(id)
                    .map(|l| index.pack(l.pack()).id.short())
                    .unwrap_or_else(|| "none (not indexed)".into())
            }
            None => "unknown (no index)".into(),
        };
        let path = self.inodes.path_of(reader.ino);
        let listed = self
            .shown
            .layout()
            .snapshots
            .iter()
            .any(|s| s.id == reader.snapshot.id);
        let why = if listed {
            ""
        } else {
            " (the snapshot was forgotten, and a prune deleted its data)"
        };
        self.stats.record_eio(format!(
            "EIO: snapshot {} path {path}: chunk {} in pack {pack}: {problem}{why}",
            reader.snapshot.id.short(),
            id.short()
        ));
    }
}

impl Drop for FileReads {
    fn drop(&mut self) {
        if let Some(workers) = &self.workers {
            workers.close();
        }
    }
}
