//! Copying one snapshot's trees and the blobs they name, as a pipeline
//! shaped like a backup's:
//!
//! ```text
//! walker ──DataJob──► translators (read from the source, name under the destination's key) ──NewBlob──► packers
//!   ▲                      │
//!   └──── extents ◄────────┘     trees: walker ──► its own tree pack ──► store
//! ```
//!
//! The walker visits each distinct source tree once, depth first, and
//! writes the destination's tree of a directory after its entries, so a
//! tree only ever names blobs already queued or stored. Every queue is
//! bounded; what the walker holds is the directories on its path (with
//! their references) and the map of the trees copied so far.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::reference::{Lean, Reference};
use super::CopyReport;
use crate::backup::join_workers;
use crate::backup::packer::{self, NewBlob, PackSink};
use crate::error::{Error, Result, ResultExt};
use crate::id::{Id, IdMap, IdSet};
use crate::progress::Progress;
use crate::repo::{pack, BlobKind, PackWriter, Repository};
use crate::tree::{check_part, with_deep_stack, Extent, Node, Tree, TreeWriter, MAX_DEPTH};

/// Threads reading and naming data blobs: more than the CPUs, since a
/// read from a remote store mostly waits.
const TRANSLATORS: usize = 8;
/// Data blobs found by the walker and not yet taken by a translator.
const QUEUED_JOBS: usize = 256;

/// What every snapshot of one copy shares.
pub(super) struct Copier<'a> {
    source: &'a Repository,
    dest: &'a Repository,
    same_ids: bool,
    /// The destination refuses data blobs longer than its chunker's
    /// largest chunk: a longer source chunk is stored in pieces.
    max_data_len: usize,
    /// Source tree -> destination tree, for every tree copied in this run
    /// or found copied already, whose blobs are all stored or queued.
    trees: Mutex<IdMap<Id>>,
    /// Destination blobs queued in the current snapshot's pipeline (the
    /// index holds those of the snapshots before).
    queued: Mutex<IdSet>,
    counters: Counters,
    /// The bytes of file contents walked: found in the destination, or
    /// read and translated.
    progress: Progress,
}

#[derive(Default)]
struct Counters {
    blobs_read: AtomicU64,
    bytes_read: AtomicU64,
    blobs_skipped: AtomicU64,
    blobs_sent: AtomicU64,
    bytes_sent: AtomicU64,
}

/// A data blob for a translator, and where its destination extents go.
struct DataJob {
    id: Id,
    reply: Sender<Result<Vec<Extent>>>,
}

/// A piece of a file's destination content: known, or being worked out.
enum Piece {
    Ready(Vec<Extent>),
    Pending(Receiver<Result<Vec<Extent>>>),
}

impl<'a> Copier<'a> {
    pub fn new(
        source: &'a Repository,
        dest: &'a Repository,
        same_ids: bool,
        progress: Progress,
    ) -> Copier<'a> {
        Copier {
            source,
            dest,
            same_ids,
            max_data_len: dest.config().chunker.max_size as usize,
            trees: Mutex::new(IdMap::default()),
            queued: Mutex::new(IdSet::default()),
            counters: Counters::default(),
            progress,
        }
    }

    /// Copies the tree `root` of the source and everything under it that
    /// the destination lacks; once this returns, all of it is stored and
    /// indexed in the destination. Returns the destination's root tree.
    /// `reference` is an earlier copy's (source tree, destination tree).
    pub fn copy_trees(&self, root: Id, reference: Option<(Id, Id)>) -> Result<Id> {
        let reference = reference
            .and_then(|(before, copied)| Reference::load(self.source, self.dest, &before, &copied));
        let sink = PackSink::new(self.dest.clone());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (blobs, packers) = packer::start(&sink, threads, threads * 2);
        let walked = std::thread::scope(|scope| {
            let (jobs, job_queue) = crossbeam_channel::bounded::<DataJob>(QUEUED_JOBS);
            let translators: Vec<_> = (0..TRANSLATORS)
                .map(|_| {
                    let (job_queue, blobs, sink) = (job_queue.clone(), blobs.clone(), &sink);
                    scope.spawn(move || self.translate(&job_queue, &blobs, sink))
                })
                .collect();
            // Only the translators hold the receiving end: should they all
            // stop, the walker's next job fails instead of waiting forever.
            drop(job_queue);
            let walker = Walker {
                copier: self,
                sink: &sink,
                jobs,
                tree_pack: None,
            };
            let walked = with_deep_stack(move || walker.run(root, reference));
            let joined = join_workers(translators.into_iter().map(|t| t.join()), "translator");
            joined.and(walked)
        });
        drop(blobs);
        let joined = join_workers(packers.into_iter().map(JoinHandle::join), "packer");
        let stored = sink.stats();
        self.counters.bytes_sent.fetch_add(stored.0, Relaxed);
        self.counters.blobs_sent.fetch_add(stored.1, Relaxed);
        self.queued.lock().unwrap().clear();
        let stopped = |e: Error| e.context("the copy stopped before this snapshot was written");
        if let Some(failure) = sink.take_failure() {
            return Err(stopped(failure));
        }
        joined.map_err(stopped)?;
        let root = walked.map_err(stopped)?;
        sink.flush_index()?;
        Ok(root)
    }

    /// Serves data jobs until the walker is done.
    fn translate(&self, jobs: &Receiver<DataJob>, blobs: &Sender<NewBlob>, sink: &PackSink) {
        for job in jobs.iter() {
            let result = if sink.has_failed() {
                Err(Error::internal("the packers stopped"))
            } else {
                self.translate_one(&job.id, blobs)
            };
            // The walker may have stopped waiting (it failed): nothing to tell.
            let _ = job.reply.send(result);
        }
    }

    /// Reads a source data blob and queues what the destination lacks of
    /// it; returns the destination extents that stand for it.
    fn translate_one(&self, id: &Id, blobs: &Sender<NewBlob>) -> Result<Vec<Extent>> {
        let plaintext = self
            .source
            .read_blob(id)
            .context(format!("the source's data blob {}", id.short()))?;
        self.counters.blobs_read.fetch_add(1, Relaxed);
        self.counters
            .bytes_read
            .fetch_add(plaintext.len() as u64, Relaxed);
        self.progress.add_bytes(plaintext.len() as u64);
        if self.same_ids {
            let len = plaintext.len() as u32;
            self.send(BlobKind::Data, *id, plaintext, blobs)?;
            return Ok(vec![Extent::Data { id: *id, len }]);
        }
        let mut extents = Vec::new();
        for piece in plaintext.chunks(self.max_data_len) {
            let id = self.dest.blob_id(piece);
            if self.lacks(&id) {
                self.send(BlobKind::Data, id, piece.to_vec(), blobs)?;
            }
            extents.push(Extent::Data {
                id,
                len: piece.len() as u32,
            });
        }
        Ok(extents)
    }

    /// True the first time a blob the destination does not hold is seen
    /// (it is then the caller's to store); counts the blobs it holds.
    fn lacks(&self, id: &Id) -> bool {
        if self.dest.index().contains(id) {
            self.counters.blobs_skipped.fetch_add(1, Relaxed);
            return false;
        }
        self.queued.lock().unwrap().insert(*id)
    }

    fn send(&self, kind: BlobKind, id: Id, data: Vec<u8>, blobs: &Sender<NewBlob>) -> Result<()> {
        blobs
            .send(NewBlob {
                kind,
                id,
                data,
                tally: None,
            })
            .map_err(|_| Error::internal("the packer threads stopped"))
    }

    /// Adds what was read and sent to `report`.
    pub fn finish(&self, report: &mut CopyReport) {
        let c = &self.counters;
        report.blobs_read = c.blobs_read.load(Relaxed);
        report.bytes_read = c.bytes_read.load(Relaxed);
        report.blobs_skipped = c.blobs_skipped.load(Relaxed);
        report.blobs_sent = c.blobs_sent.load(Relaxed);
        report.bytes_sent = c.bytes_sent.load(Relaxed);
    }
}

/// The walk of one snapshot: owns the job queue, so that its end lets the
/// translators end.
struct Walker<'c, 'a> {
    copier: &'c Copier<'a>,
    sink: &'c PackSink,
    jobs: Sender<DataJob>,
    tree_pack: Option<PackWriter>,
}

impl Walker<'_, '_> {
    fn run(mut self, root: Id, reference: Option<Reference>) -> Result<Id> {
        let root = self.tree(root, reference.as_ref(), 0)?;
        match self.tree_pack.take() {
            Some(pack) if !pack.is_empty() => self.sink.store(pack.finish()?)?,
            _ => {}
        }
        Ok(root)
    }

    /// The destination's copy of the source tree `id`, `depth` levels
    /// below the root, with everything under it stored or queued.
    fn tree(&mut self, id: Id, reference: Option<&Reference>, depth: usize) -> Result<Id> {
        let c = self.copier;
        if let Some(copied) = c.trees.lock().unwrap().get(&id) {
            return Ok(*copied);
        }
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "the source's tree {} nests deeper than {MAX_DEPTH} levels",
                id.short()
            ))
            .with_hint("run `rewind check` on the source repository"));
        }
        if let Some(failure) = self.sink.take_failure() {
            return Err(failure);
        }
        let plaintext = c
            .source
            .read_blob(&id)
            .context(format!("the source's tree {}", id.short()))?;
        let top = Tree::decode(&plaintext).context(format!("the source's tree {}", id.short()))?;
        let known = match reference {
            Some(reference) if !c.same_ids => reference.chunks(),
            _ => IdMap::default(),
        };
        // Under the same ids the source's very bytes are stored, so that
        // every tree keeps its id; otherwise the entries are written anew.
        let mut writer = (!c.same_ids).then(TreeWriter::new);
        if top.is_split() {
            // Part by part, so the walk holds one part of the directory.
            for (index, part) in top.parts.iter().enumerate() {
                let context = || format!("the source's tree {}", part.tree.short());
                let bytes = c.source.read_blob(&part.tree).context(context())?;
                let mut tree = Tree::decode(&bytes).context(context())?;
                check_part(&top.parts, index, &tree)
                    .context(format!("the source's tree {}", id.short()))?;
                self.copy_entries(&mut tree, writer.as_mut(), id, reference, &known, depth)?;
                if writer.is_none() {
                    self.store_tree(part.tree, bytes)?;
                }
            }
        } else {
            let mut tree = top;
            self.copy_entries(&mut tree, writer.as_mut(), id, reference, &known, depth)?;
        }
        let copied = match writer {
            None => self.store_tree(id, plaintext)?,
            Some(writer) => {
                let top = writer.finish(&mut |bytes| self.store_new_tree(id, bytes))?;
                self.store_new_tree(id, top)?
            }
        };
        c.trees.lock().unwrap().insert(id, copied);
        Ok(copied)
    }

    /// Translates the entries of `tree` (the source's tree `source`, or a
    /// part of it) and hands them to `writer` if they are written anew.
    fn copy_entries(
        &mut self,
        tree: &mut Tree,
        writer: Option<&mut TreeWriter>,
        source: Id,
        reference: Option<&Reference>,
        known: &IdMap<Vec<Extent>>,
        depth: usize,
    ) -> Result<()> {
        self.translate_nodes(&mut tree.nodes, reference, known, depth)?;
        if let Some(writer) = writer {
            for node in &tree.nodes {
                writer.push(node, &mut |bytes| self.store_new_tree(source, bytes))?;
            }
        }
        Ok(())
    }

    /// Gives the entries of one source tree (a directory or a part of
    /// one) their destination's subtrees and contents: the subtrees are
    /// copied first, and the data jobs all queued before any is awaited.
    fn translate_nodes(
        &mut self,
        nodes: &mut [Node],
        reference: Option<&Reference>,
        known: &IdMap<Vec<Extent>>,
        depth: usize,
    ) -> Result<()> {
        let c = self.copier;
        let mut contents: Vec<Vec<Piece>> = Vec::with_capacity(nodes.len());
        for node in nodes.iter_mut() {
            if let Some(subtree) = node.subtree {
                let lean = match reference {
                    Some(reference) => reference.lean(c.source, c.dest, &node.name, &subtree),
                    None => Lean::Walk(None),
                };
                node.subtree = Some(match lean {
                    Lean::Copied(copied) => {
                        c.trees.lock().unwrap().insert(subtree, copied);
                        copied
                    }
                    Lean::Walk(child) => self.tree(subtree, child.as_ref(), depth + 1)?,
                });
            }
            let mut pieces = Vec::with_capacity(node.content.len());
            for extent in &node.content {
                let piece = self.data(extent, known)?;
                // A job is counted by its translator: the queue runs far ahead.
                if matches!(piece, Piece::Ready(_)) {
                    c.progress.add_bytes(extent.len());
                }
                pieces.push(piece);
            }
            contents.push(pieces);
        }
        for (node, pieces) in nodes.iter_mut().zip(contents) {
            node.content.clear();
            for piece in pieces {
                match piece {
                    Piece::Ready(extents) => node.content.extend(extents),
                    Piece::Pending(reply) => node.content.extend(
                        reply
                            .recv()
                            .map_err(|_| Error::internal("a translator thread stopped"))??,
                    ),
                }
            }
        }
        Ok(())
    }

    /// Stores a tree the copy encoded for the destination (of the source's
    /// tree `source`); refuses one larger than a tree may be.
    fn store_new_tree(&mut self, source: Id, encoded: Vec<u8>) -> Result<Id> {
        if encoded.len() > pack::MAX_TREE_LEN as usize {
            return Err(Error::usage(format!(
                "the source's tree {} cannot be copied: with its chunks cut to the \
                 destination's largest chunk, one of its entries takes {} bytes, more than \
                 the {} a tree may hold",
                source.short(),
                encoded.len(),
                pack::MAX_TREE_LEN
            )));
        }
        let id = self.copier.dest.blob_id(&encoded);
        self.store_tree(id, encoded)
    }

    /// The destination content for one source extent: known already (a
    /// hole, a chunk the destination holds under the same id, one an
    /// earlier copy named), or a job for a translator.
    fn data(&self, extent: &Extent, known: &IdMap<Vec<Extent>>) -> Result<Piece> {
        let c = self.copier;
        let Extent::Data { id, .. } = extent else {
            return Ok(Piece::Ready(vec![*extent]));
        };
        if c.same_ids && !c.lacks(id) {
            return Ok(Piece::Ready(vec![*extent]));
        }
        if let Some(extents) = known.get(id) {
            let index = c.dest.index();
            let held = extents.iter().all(|e| match e {
                Extent::Data { id, .. } => index.contains(id),
                Extent::Hole { .. } => true,
            });
            if held {
                c.counters
                    .blobs_skipped
                    .fetch_add(extents.len() as u64, Relaxed);
                return Ok(Piece::Ready(extents.clone()));
            }
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.jobs
            .send(DataJob { id: *id, reply })
            .map_err(|_| Error::internal("the translator threads stopped"))?;
        Ok(Piece::Pending(answer))
    }

    /// Stores a tree in the walker's tree pack unless the destination holds
    /// it; returns its id.
    fn store_tree(&mut self, id: Id, plaintext: Vec<u8>) -> Result<Id> {
        let c = self.copier;
        if !c.lacks(&id) {
            return Ok(id);
        }
        let dest = c.dest;
        let pack = match self.tree_pack.as_mut() {
            Some(pack) => pack,
            None => self.tree_pack.insert(self.sink.new_pack()?),
        };
        pack.add(
            BlobKind::Tree,
            id,
            &plaintext,
            dest.config().compression_level,
        )?;
        if pack.len() >= dest.config().pack_size as usize {
            let full = self.tree_pack.take().expect("just filled");
            self.sink.store(full.finish()?)?;
        }
        Ok(id)
    }
}
