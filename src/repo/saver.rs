//! The one way blobs become durable: pack -> store (with parity) -> index
//! file. Backup, the snapshot copies, repair, and later prune and copy all
//! go through a [`PackSaver`], so that an index file only ever names packs
//! that are already stored (`docs/design.md`, invariants).

use std::sync::Mutex;

use super::{FinishedPack, IndexedPack, PackWriter, Repository};
use crate::backend::FileType;
use crate::error::Result;

/// Index files are written every this many packs, so a long backup that is
/// killed keeps most of its work findable; or sooner, at this many blobs,
/// as the records waiting for their index file are held in memory (packs
/// of small files hold tens of thousands of blobs each).
const PACKS_PER_INDEX_FILE: usize = 64;
const BLOBS_PER_INDEX_FILE: usize = 1 << 16;

/// Stores packs and writes the index files that name them. Shared by the
/// threads that fill packs; call [`PackSaver::finish`] once they are done.
pub struct PackSaver {
    repo: Repository,
    unindexed: Mutex<Vec<IndexedPack>>,
    stored: Mutex<Stored>,
    /// Every pack saved, when the caller asked to keep them (see
    /// [`PackSaver::recording`]).
    saved: Option<Mutex<Vec<IndexedPack>>>,
}

/// What a saver has stored so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stored {
    pub bytes: u64,
    pub blobs: u64,
    pub packs: u64,
}

impl PackSaver {
    pub fn new(repo: Repository) -> PackSaver {
        PackSaver {
            repo,
            unindexed: Mutex::new(Vec::new()),
            stored: Mutex::new(Stored::default()),
            saved: None,
        }
    }

    /// A saver that also keeps what it saved, for [`PackSaver::take_saved`]:
    /// a repack needs the new places of blobs the loaded index already
    /// places elsewhere (it keeps a blob's first place).
    pub fn recording(repo: Repository) -> PackSaver {
        PackSaver {
            saved: Some(Mutex::new(Vec::new())),
            ..PackSaver::new(repo)
        }
    }

    /// The packs saved so far, when recording.
    pub fn take_saved(&self) -> Vec<IndexedPack> {
        self.saved
            .as_ref()
            .map(|saved| std::mem::take(&mut *saved.lock().unwrap()))
            .unwrap_or_default()
    }

    /// An empty pack sealed with this repository's keys.
    pub fn new_pack(&self) -> Result<PackWriter> {
        PackWriter::new(&self.repo.keys(), self.repo.config().pack_size as usize)
    }

    /// Saves `writer`'s pack and puts an empty one in its place once it
    /// has reached the pack size: called after each blob added.
    pub fn cut_when_full(&self, writer: &mut PackWriter) -> Result<()> {
        if writer.len() >= self.repo.config().pack_size as usize {
            let full = std::mem::replace(writer, self.new_pack()?);
            self.save(full.finish()?)?;
        }
        Ok(())
    }

    /// Saves the last pack of a run, unless nothing was added to it.
    pub fn save_last(&self, writer: PackWriter) -> Result<()> {
        if !writer.is_empty() {
            self.save(writer.finish()?)?;
        }
        Ok(())
    }

    /// Stores a pack durably and makes its blobs findable; every so often
    /// writes the index file for what was stored.
    pub fn save(&self, pack: FinishedPack) -> Result<()> {
        self.repo
            .write_file(FileType::Pack, &pack.id.to_hex(), &pack.bytes)?;
        self.repo.note_written_pack(pack.id);
        {
            let mut stored = self.stored.lock().unwrap();
            stored.bytes += pack.bytes.len() as u64;
            stored.blobs += pack.blobs.len() as u64;
            stored.packs += 1;
        }
        let indexed = IndexedPack {
            id: pack.id,
            salt: pack.salt,
            blobs: pack.blobs,
        };
        self.repo.add_to_index(&indexed);
        if let Some(saved) = &self.saved {
            saved.lock().unwrap().push(indexed.clone());
        }
        let batch = {
            let mut unindexed = self.unindexed.lock().unwrap();
            unindexed.push(indexed);
            let blobs: usize = unindexed.iter().map(|pack| pack.blobs.len()).sum();
            if unindexed.len() >= PACKS_PER_INDEX_FILE || blobs >= BLOBS_PER_INDEX_FILE {
                std::mem::take(&mut *unindexed)
            } else {
                Vec::new()
            }
        };
        if !batch.is_empty() {
            self.repo.write_index_file(batch, Vec::new())?;
        }
        Ok(())
    }

    /// Indexes packs that are stored already but that no index file names
    /// (read back from their trailers by a repair).
    pub fn index_stored(&self, packs: Vec<IndexedPack>) {
        for pack in &packs {
            self.repo.add_to_index(pack);
        }
        self.unindexed.lock().unwrap().extend(packs);
    }

    /// Writes the index file for every pack not yet indexed: after this,
    /// everything saved is durable and findable.
    pub fn finish(&self) -> Result<()> {
        let packs = std::mem::take(&mut *self.unindexed.lock().unwrap());
        if !packs.is_empty() {
            self.repo.write_index_file(packs, Vec::new())?;
        }
        Ok(())
    }

    pub fn stored(&self) -> Stored {
        *self.stored.lock().unwrap()
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }
}
