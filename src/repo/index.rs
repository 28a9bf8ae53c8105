//! The index: which pack holds each blob.
//!
//! On disk an index file lists packs and their blobs (the same records as the
//! pack trailers). In memory every blob costs 48 bytes: a sorted vector of
//! (id, location) for everything loaded, plus a small hash map for blobs added
//! since, merged into the vector from time to time.

use serde::{Deserialize, Serialize};

use super::crypto::SALT_LEN;
use super::pack::{BlobKind, PackedBlob};
use crate::id::{Id, IdMap};

/// The content of one index file (version byte first, then postcard).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Index files this one replaces (written by prune; empty otherwise).
    pub supersedes: Vec<Id>,
    pub packs: Vec<IndexedPack>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedPack {
    pub id: Id,
    pub salt: [u8; SALT_LEN],
    pub blobs: Vec<PackedBlob>,
}

pub const INDEX_VERSION: u8 = 1;

/// Where one blob is: 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Pack number in `Index::packs`; the top bit marks a tree blob.
    pack_and_kind: u32,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// The top two bits of `pack_and_kind` hold the blob kind.
const KIND_SHIFT: u32 = 30;
const PACK_MASK: u32 = (1 << KIND_SHIFT) - 1;

impl BlobLocation {
    pub fn pack(&self) -> usize {
        (self.pack_and_kind & PACK_MASK) as usize
    }
    pub fn kind(&self) -> BlobKind {
        match self.pack_and_kind >> KIND_SHIFT {
            0 => BlobKind::Data,
            1 => BlobKind::Tree,
            _ => BlobKind::Snapshot,
        }
    }
}

fn kind_bits(kind: BlobKind) -> u32 {
    let code = match kind {
        BlobKind::Data => 0,
        BlobKind::Tree => 1,
        BlobKind::Snapshot => 2,
    };
    code << KIND_SHIFT
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackRef {
    pub id: Id,
    pub salt: [u8; SALT_LEN],
}

#[derive(Default)]
pub struct Index {
    packs: Vec<PackRef>,
    pack_numbers: IdMap<u32>,
    sorted: Vec<(Id, BlobLocation)>,
    recent: IdMap<BlobLocation>,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// Adds every pack of an index file. A blob stored twice keeps its first
    /// location; both are valid.
    pub fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            self.add_pack(pack.id, pack.salt, &pack.blobs);
        }
    }

    pub fn add_pack(&mut self, id: Id, salt: [u8; SALT_LEN], blobs: &[PackedBlob]) {
        let number = *self.pack_numbers.entry(id).or_insert_with(|| {
            self.packs.push(PackRef { id, salt });
            (self.packs.len() - 1) as u32
        });
        for blob in blobs {
            let location = BlobLocation {
                pack_and_kind: number | kind_bits(blob.kind),
                offset: blob.offset,
                stored_len: blob.stored_len,
                raw_len: blob.raw_len,
            };
            if self.lookup_sorted(&blob.id).is_none() {
                self.recent.entry(blob.id).or_insert(location);
            }
        }
        if self.recent.len() > 4096 && self.recent.len() > self.sorted.len() / 8 {
            self.compact();
        }
    }

    /// Moves recently added blobs into the sorted vector.
    pub fn compact(&mut self) {
        self.sorted.extend(self.recent.drain());
        self.sorted.sort_unstable_by_key(|entry| entry.0);
        self.sorted.dedup_by(|a, b| a.0 == b.0);
        self.sorted.shrink_to_fit();
        self.recent = IdMap::default();
    }

    fn lookup_sorted(&self, id: &Id) -> Option<BlobLocation> {
        self.sorted
            .binary_search_by(|(probe, _)| probe.cmp(id))
            .ok()
            .map(|i| self.sorted[i].1)
    }

    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.recent
            .get(id)
            .copied()
            .or_else(|| self.lookup_sorted(id))
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.get(id).is_some()
    }

    pub fn pack(&self, number: usize) -> &PackRef {
        &self.packs[number]
    }

    pub fn packs(&self) -> &[PackRef] {
        &self.packs
    }

    /// The number of a pack, as `BlobLocation::pack` gives it.
    pub fn pack_number(&self, id: &Id) -> Option<usize> {
        self.pack_numbers.get(id).map(|n| *n as usize)
    }

    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_numbers.contains_key(id)
    }

    pub fn blob_count(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    /// Every blob with its location.
    pub fn blobs(&self) -> impl Iterator<Item = (Id, BlobLocation)> + '_ {
        self.sorted
            .iter()
            .copied()
            .chain(self.recent.iter().map(|(k, v)| (*k, *v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(i: u32, kind: BlobKind) -> PackedBlob {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        id[31] = 1;
        PackedBlob {
            kind,
            id: Id(id),
            offset: 40 + i,
            stored_len: i + 1,
            raw_len: i + 2,
        }
    }

    #[test]
    fn finds_every_blob_before_and_after_compaction() {
        let mut index = Index::new();
        let blobs: Vec<_> = (0..10_000)
            .map(|i| {
                blob(
                    i,
                    if i % 3 == 0 {
                        BlobKind::Tree
                    } else {
                        BlobKind::Data
                    },
                )
            })
            .collect();
        index.add_pack(Id([1; 32]), [0; 32], &blobs[..6000]);
        index.add_pack(Id([2; 32]), [0; 32], &blobs[6000..]);
        for check in 0..2 {
            for (i, b) in blobs.iter().enumerate() {
                let loc = index.get(&b.id).unwrap();
                assert_eq!(loc.pack(), usize::from(i >= 6000));
                assert_eq!(loc.kind(), b.kind);
                assert_eq!(
                    (loc.offset, loc.stored_len, loc.raw_len),
                    (b.offset, b.stored_len, b.raw_len)
                );
            }
            assert!(!index.contains(&Id([0xff; 32])));
            if check == 0 {
                index.compact();
            }
        }
        assert_eq!(index.blob_count(), 10_000);
        assert_eq!(std::mem::size_of::<(Id, BlobLocation)>(), 48);
    }

    #[test]
    fn index_file_round_trips() {
        let file = IndexFile {
            supersedes: vec![Id([5; 32])],
            packs: vec![IndexedPack {
                id: Id([1; 32]),
                salt: [2; 32],
                blobs: vec![blob(1, BlobKind::Data)],
            }],
        };
        let bytes = postcard::to_stdvec(&file).unwrap();
        assert_eq!(postcard::from_bytes::<IndexFile>(&bytes).unwrap(), file);
    }
}
