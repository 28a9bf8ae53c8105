//! The back end of the archiver: worker threads that compress, seal and pack
//! new blobs, store each full pack, and record it for the index.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::changed::FileTally;
use crate::error::{Error, Result};
use crate::repo::{BlobKind, FinishedPack, Id, PackSaver, PackWriter, Repository};

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
    failure: Mutex<Option<Error>>,
}

impl PackSink {
    pub fn new(repo: Repository) -> Arc<PackSink> {
        Arc::new(PackSink {
            saver: PackSaver::new(repo),
            failure: Mutex::new(None),
        })
    }

    /// An empty pack to fill.
    pub fn new_pack(&self) -> Result<PackWriter> {
        self.saver.new_pack()
    }

    /// Stores a full pack (see `PackSaver::save`).
    pub fn store(&self, pack: FinishedPack) -> Result<()> {
        self.saver.save(pack)
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
            if w.len() >= pack_size {
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
