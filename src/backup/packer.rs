//! The back end of the archiver: worker threads that compress, seal and pack
//! new blobs, store each full pack, and record it for the index.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result};
use crate::repo::{BlobKind, FinishedPack, Id, IndexFile, IndexedPack, PackWriter, Repository};

/// Index files are written every this many packs, so a long backup that is
/// killed keeps most of its work findable.
const PACKS_PER_INDEX_FILE: usize = 64;

pub struct NewBlob {
    pub kind: BlobKind,
    pub id: Id,
    pub data: Vec<u8>,
}

/// State shared by the packers and the thread that finishes the backup.
pub struct PackSink {
    repo: Arc<Repository>,
    unindexed: Mutex<Vec<IndexedPack>>,
    stats: Mutex<(u64, u64)>, // bytes stored, blobs stored
    failure: Mutex<Option<Error>>,
}

impl PackSink {
    pub fn new(repo: Arc<Repository>) -> Arc<PackSink> {
        Arc::new(PackSink {
            repo,
            unindexed: Mutex::new(Vec::new()),
            stats: Mutex::new((0, 0)),
            failure: Mutex::new(None),
        })
    }

    /// Stores a pack and, every so often, an index file for what was stored.
    pub fn store(&self, pack: FinishedPack) -> Result<()> {
        self.repo.store_pack(&pack)?;
        {
            let mut stats = self.stats.lock().unwrap();
            stats.0 += pack.bytes.len() as u64;
            stats.1 += pack.blobs.len() as u64;
        }
        let batch = {
            let mut unindexed = self.unindexed.lock().unwrap();
            unindexed.push(IndexedPack {
                id: pack.id,
                salt: pack.salt,
                blobs: pack.blobs,
            });
            if unindexed.len() >= PACKS_PER_INDEX_FILE {
                std::mem::take(&mut *unindexed)
            } else {
                Vec::new()
            }
        };
        if !batch.is_empty() {
            self.repo.write_index_file(&IndexFile {
                supersedes: vec![],
                packs: batch,
            })?;
        }
        Ok(())
    }

    /// Writes the index file for every pack not yet indexed.
    pub fn flush_index(&self) -> Result<()> {
        let packs = std::mem::take(&mut *self.unindexed.lock().unwrap());
        if !packs.is_empty() {
            self.repo.write_index_file(&IndexFile {
                supersedes: vec![],
                packs,
            })?;
        }
        Ok(())
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
        *self.stats.lock().unwrap()
    }

    pub fn repo(&self) -> &Repository {
        &self.repo
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
                None => writer.insert(repo.new_pack()?),
            };
            w.add(blob.kind, blob.id, &blob.data, level)?;
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
