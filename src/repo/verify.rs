//! Verifying packs as stored against their names, their trailers and the
//! index, and indexing packs that no index file names.

use super::index::{BlobKey, BlobLocation, PackRef};
use super::{pack, Id, IdSet, IndexedPack, PackSaver, PackedBlob, Repository};
use crate::backend::FileType;
use crate::error::{Error, Result};

impl Repository {
    /// The checks of a pack's bytes: they hash to the pack's name and,
    /// `deep`, the trailer reads and every blob opens and hashes to its id.
    /// Returns the blobs the trailer lists (empty when not deep).
    pub fn verify_pack(&self, id: &Id, bytes: &[u8], deep: bool) -> Result<Vec<PackedBlob>> {
        if Id::of_bytes(bytes) != *id {
            return Err(Error::corrupt("its content does not hash to its name"));
        }
        if !deep {
            return Ok(Vec::new());
        }
        // A rotation may have sealed it under a master key this process
        // has not taken yet (see `rekey.rs`).
        self.with_current_keys(|keys| {
            let (salt, blobs) = pack::read_trailer(keys, bytes)?;
            for blob in &blobs {
                let stored = &bytes[blob.offset as usize..(blob.offset + blob.stored_len) as usize];
                let chunker = &self.config().chunker;
                pack::open_blob(keys, &salt, stored.to_vec(), blob.claim(), chunker)?;
            }
            Ok(blobs)
        })
    }

    /// The blobs the index places in a damaged pack that do not open and
    /// verify from `data`; None when the whole pack is unusable, or when
    /// the ids of failing blobs can be told neither by the pack's trailer
    /// nor by the index files. Blobs outside the damage stay readable, so
    /// only the files that need the failing ones lose data.
    pub fn failing_blobs(&self, pack: &Id, data: &[u8]) -> Option<Vec<Id>> {
        let (pack, blobs) = {
            let index = self.index();
            let number = index.pack_number(pack)?;
            let blobs: Vec<(BlobKey, BlobLocation)> =
                index.blobs().filter(|(_, l)| l.pack() == number).collect();
            (*index.pack(number), blobs)
        };
        let keys = self.keys();
        let failing: Vec<(BlobKey, BlobLocation)> = blobs
            .iter()
            .filter(|(key, location)| {
                let start = location.offset as usize;
                let stored = data.get(start..start + location.stored_len as usize);
                stored.is_none_or(|s| {
                    let chunker = &self.config().chunker;
                    super::index::open_keyed_blob(
                        &keys,
                        &pack.salt,
                        s.to_vec(),
                        key,
                        location,
                        chunker,
                    )
                    .is_err()
                })
            })
            .copied()
            .collect();
        if failing.len() == blobs.len() {
            return None;
        }
        self.whole_ids(&pack, data, &failing)
    }

    /// The whole ids of blobs of `pack` that do not open, which the index
    /// knows by key only: from the pack's trailer when it reads, else from
    /// the index files.
    fn whole_ids(
        &self,
        pack: &PackRef,
        data: &[u8],
        blobs: &[(BlobKey, BlobLocation)],
    ) -> Option<Vec<Id>> {
        let named_by = |records: &[PackedBlob]| -> Option<Vec<Id>> {
            blobs
                .iter()
                .map(|(key, location)| {
                    records
                        .iter()
                        .find(|r| r.offset == location.offset && key.matches(&r.id))
                        .map(|r| r.id)
                })
                .collect()
        };
        let trailer = pack::read_trailer(&self.keys(), data).map(|(_, records)| records);
        if let Some(ids) = trailer.ok().and_then(|records| named_by(&records)) {
            return Some(ids);
        }
        let indexed = self.indexed_records(|p| p.id == pack.id).ok()?;
        named_by(&indexed.first()?.blobs)
    }

    /// The names of the stored packs that the loaded index does not list,
    /// other than those a deletion plan names (they are on their way out).
    pub fn unindexed_packs(&self) -> Result<Vec<String>> {
        let mut names = self.stored_unindexed_packs()?;
        let leaving = self.packs_awaiting_deletion()?;
        names.retain(|name| Id::from_hex(name).map_or(true, |id| !leaving.contains(&id)));
        Ok(names)
    }

    /// The names of every stored pack that the loaded index does not list.
    pub(crate) fn stored_unindexed_packs(&self) -> Result<Vec<String>> {
        let mut names = self.list(FileType::Pack)?;
        let index = self.index();
        names.retain(|name| Id::from_hex(name).map_or(true, |id| !index.has_pack(&id)));
        Ok(names)
    }

    /// Reloads the index, then indexes every sound pack that no readable
    /// index file lists, from its trailer, in the files and in memory.
    /// Returns how many were indexed.
    pub fn index_unindexed_packs(&self) -> Result<usize> {
        self.reload_index()?;
        let names = self.unindexed_packs()?;
        self.index_from_trailers(&names, |_| true)
    }

    /// Indexes the packs among `names` (stored, unindexed) that hold one of
    /// `wanted`: a prune brings back what a snapshot uses before it plans
    /// to delete anything unindexed.
    pub(crate) fn index_packs_holding(&self, names: &[String], wanted: &IdSet) -> Result<usize> {
        self.index_from_trailers(names, |blobs| {
            blobs.iter().any(|blob| wanted.contains(&blob.id))
        })
    }

    /// Indexes each sound pack of `names` whose blobs `select` accepts.
    pub(super) fn index_from_trailers(
        &self,
        names: &[String],
        select: impl Fn(&[PackedBlob]) -> bool,
    ) -> Result<usize> {
        let mut packs = Vec::new();
        for name in names {
            let Ok(id) = Id::from_hex(name) else {
                continue;
            };
            let Ok(bytes) = self.backend().read(FileType::Pack, name) else {
                continue;
            };
            if Id::of_bytes(&bytes) != id {
                continue; // a damaged pack is the pack scan's business
            }
            if let Ok((salt, blobs)) = pack::read_trailer(&self.keys(), &bytes) {
                if select(&blobs) {
                    packs.push(IndexedPack { id, salt, blobs });
                }
            }
        }
        let count = packs.len();
        if count > 0 {
            // The saver adds them to the loaded index too: no second load.
            let saver = PackSaver::new(self.clone());
            saver.index_stored(packs);
            saver.finish()?;
        }
        Ok(count)
    }
}
