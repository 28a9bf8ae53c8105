//! Repacking: the blobs still used in packs that are mostly unused move to
//! new packs, through the pack saver like every write, so that the old
//! packs can go (`docs/design.md`, section 7, prune).

use super::{Id, IdSet, IndexedPack, PackSaver, PackedBlob, Repository};
use crate::backend::FileType;
use crate::error::{Error, Result};

impl Repository {
    /// Copies the blobs of `packs` that `keep` names into new packs, stored
    /// and indexed through `saver` (call its `finish` after). Each blob is
    /// checked against its id on the way; a pack that does not read or is
    /// damaged fails the repack, naming it, and nothing is deleted.
    pub(crate) fn repack(&self, packs: &[Id], keep: &IdSet, saver: &PackSaver) -> Result<()> {
        let work = self.blobs_to_copy(packs, keep);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stripes: Vec<&[IndexedPack]> =
            work.chunks(work.len().div_ceil(threads).max(1)).collect();
        std::thread::scope(|scope| {
            let workers: Vec<_> = stripes
                .into_iter()
                .map(|stripe| scope.spawn(move || self.copy_stripe(stripe, saver)))
                .collect();
            workers
                .into_iter()
                .try_for_each(|worker| worker.join().expect("repack workers do not panic"))
        })
    }

    /// For each pack to repack, its salt and the blobs to copy out of it.
    fn blobs_to_copy(&self, packs: &[Id], keep: &IdSet) -> Vec<IndexedPack> {
        let index = self.index();
        let mut work: Vec<IndexedPack> = Vec::new();
        let mut slot = vec![usize::MAX; index.packs().len()];
        for id in packs {
            if let Some(number) = index.pack_number(id) {
                slot[number] = work.len();
                work.push(IndexedPack {
                    id: *id,
                    salt: index.pack(number).salt,
                    blobs: Vec::new(),
                });
            }
        }
        for (id, location) in index.blobs() {
            let s = slot[location.pack()];
            if s != usize::MAX && keep.contains(&id) {
                work[s].blobs.push(PackedBlob {
                    kind: location.kind(),
                    id,
                    offset: location.offset,
                    stored_len: location.stored_len,
                    raw_len: location.raw_len,
                });
            }
        }
        work
    }

    fn copy_stripe(&self, stripe: &[IndexedPack], saver: &PackSaver) -> Result<()> {
        let pack_size = self.config().pack_size as usize;
        let mut writer = saver.new_pack()?;
        for IndexedPack {
            id: pack,
            salt,
            blobs,
        } in stripe
        {
            let name = pack.to_hex();
            let bytes = self.backend().read(FileType::Pack, &name)?;
            if Id::of_bytes(&bytes) != *pack {
                return Err(Error::corrupt(format!(
                    "{} does not hash to its name; its blobs cannot be repacked",
                    FileType::Pack.path(&name)
                ))
                .with_hint("run `rewind scrub --repair`, then prune again"));
            }
            for blob in blobs {
                let start = blob.offset as usize;
                let stored = bytes
                    .get(start..start + blob.stored_len as usize)
                    .ok_or_else(|| {
                        Error::corrupt(format!(
                            "blob {} lies beyond the end of {}",
                            blob.id.short(),
                            FileType::Pack.path(&name)
                        ))
                    })?;
                writer
                    .copy_blob(self.keys(), salt, stored, blob, &self.config().chunker)
                    .map_err(|e| e.context(FileType::Pack.path(&name)))?;
                if writer.len() >= pack_size {
                    let full = std::mem::replace(&mut writer, saver.new_pack()?);
                    saver.save(full.finish()?)?;
                }
            }
        }
        if !writer.is_empty() {
            saver.save(writer.finish()?)?;
        }
        Ok(())
    }
}
