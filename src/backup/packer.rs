//! The back end of the archiver: worker threads that compress, seal and pack
//! new blobs, store each full pack, and record it for the index; and the
//! set of blobs queued but not yet indexed, so that each is stored once.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::changed::FileTally;
use crate::error::{Error, Result};
use crate::repo::{BlobKind, FinishedPack, Id, IdSet, PackSaver, PackWriter, Repository};

/// A pack is cut at this many blobs even below the pack size: a pack of
/// tiny blobs (a tree of small files) would otherwise list 200,000 or more,
/// whose records its writer, its trailer and the index's recent blobs all
/// hold at once (`docs/design.md`, section 6).
pub const MAX_BLOBS_PER_PACK: usize = 1 << 15;

/// Whether a pack being filled is full: by size, or by its count of blobs.
pub fn is_full(writer: &PackWriter, pack_size: usize) -> bool {
    writer.len() >= pack_size || writer.blob_count() >= MAX_BLOBS_PER_PACK
}

pub struct NewBlob {
    pub kind: BlobKind,
    pub id: Id,
    pub data: Vec<u8>,
    /// The changed data of the file this chunk was read from, told how the
    /// chunk was stored (backups of repositories that compress).
    pub tally: Option<Arc<FileTally>>,
}

/// State shared by the packers and the thread that finishes the backup.
pub struct PackSink {
    saver: PackSaver,
    /// Blobs queued in this run and not yet in the index: only those in
    /// flight and in packs being filled, as a stored pack's blobs leave it.
    queued: Mutex<IdSet>,
    failure: Mutex<Option<Error>>,
}

impl PackSink {
    pub fn new(repo: Repository) -> Arc<PackSink> {
        Arc::new(PackSink {
            saver: PackSaver::new(repo),
            queued: Mutex::new(IdSet::default()),
            failure: Mutex::new(None),
        })
    }

    /// True the first time a blob unknown to the repository is seen: the
    /// caller then stores it.
    pub fn queue_if_new(&self, id: &Id) -> bool {
        let repo = self.saver.repository();
        if repo.index().contains(id) {
            return false;
        }
        let mut queued = self.queued.lock().unwrap();
        // Its pack may have been indexed, and the blob left the queue,
        // since the look above; a pack leaves the queue only once indexed,
        // so under the lock one of the two holds it.
        !repo.index().contains(id) && queued.insert(*id)
    }

    /// An empty pack to fill.
    pub fn new_pack(&self) -> Result<PackWriter> {
        self.saver.new_pack()
    }

    /// Stores a full pack (see `PackSaver::save`); its blobs, indexed now,
    /// leave the queue.
    pub fn store(&self, pack: FinishedPack) -> Result<()> {
        let ids: Vec<Id> = pack.blobs.iter().map(|blob| blob.id).collect();
        self.saver.save(pack)?;
        let mut queued = self.queued.lock().unwrap();
        for id in &ids {
            queued.remove(id);
        }
        Ok(())
    }

    /// Writes the index file for every pack not yet indexed.
    pub fn flush_index(&self) -> Result<()> {
        self.saver.finish()
    }

    pub fn fail(&self, error: Error) {
        let mut failure = self.failure.lock().unwrap();
        if failure.is_none() {
            *failure = Some(error);
        }
    }

    pub fn has_failed(&self) -> bool {
        self.failure.lock().unwrap().is_some()
    }

    pub fn take_failure(&self) -> Option<Error> {
        self.failure.lock().unwrap().take()
    }

    /// Bytes and blobs stored so far.
    pub fn stats(&self) -> (u64, u64) {
        let stored = self.saver.stored();
        (stored.bytes, stored.blobs)
    }

    pub fn repo(&self) -> &Repository {
        self.saver.repository()
    }
}

/// Starts `threads` packers reading from a bounded queue of new blobs.
pub fn start(
    sink: &Arc<PackSink>,
    threads: usize,
    queue: usize,
) -> (Sender<NewBlob>, Vec<JoinHandle<()>>) {
    let (tx, rx) = crossbeam_channel::bounded::<NewBlob>(queue);
    let handles = (0..threads)
        .map(|_| {
            let sink = Arc::clone(sink);
            let rx = rx.clone();
            std::thread::spawn(move || run(&sink, &rx))
        })
        .collect();
    (tx, handles)
}

fn run(sink: &PackSink, rx: &Receiver<NewBlob>) {
    let repo = sink.repo();
    let level = repo.config().compression_level;
    let pack_size = repo.config().pack_size as usize;
    let mut writer: Option<PackWriter> = None;
    for blob in rx.iter() {
        if sink.has_failed() {
            continue; // drain, so that producers never block
        }
        let result = (|| {
            let w = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(sink.new_pack()?),
            };
            let stored_len = w.add(blob.kind, blob.id, &blob.data, level)?;
            if let Some(tally) = &blob.tally {
                tally.stored(blob.data.len() as u32, stored_len);
            }
            if is_full(w, pack_size) {
                sink.store(writer.take().unwrap().finish()?)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            sink.fail(e);
        }
    }
    if let Some(w) = writer.filter(|w| !w.is_empty()) {
        if !sink.has_failed() {
            if let Err(e) = w.finish().and_then(|p| sink.store(p)) {
                sink.fail(e);
            }
        }
    }
}
