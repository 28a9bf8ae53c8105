//! The index: which pack holds each blob.
//!
//! On disk an index file lists packs and their blobs (the same records as
//! the pack trailers). In memory a blob costs 30 bytes (`docs/design.md`,
//! section 6): not its whole id but its key, the id's first 16 bytes, and
//! its location, in a table sorted by key (`table.rs`), plus a small hash
//! map of blobs added since, merged into the table from time to time.
//! Lookups take whole ids; a walk over the index gives keys. The whole ids
//! of snapshot copies are kept, as their readers list them; whoever needs
//! the others reads them from the index files
//! (`Repository::indexed_records`) or from the blobs themselves.

mod table;

use std::fmt;

use serde::{Deserialize, Serialize};

use super::crypto::{self, Keys, SALT_LEN};
use super::pack::{self, BlobKind, PackedBlob};
use crate::chunker::ChunkerParams;
use crate::error::{Error, Result};
use crate::id::{Id, IdMap};
use table::Table;

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

/// How many bytes of a blob's id the index keys it by.
pub const KEY_LEN: usize = 16;

/// The first 16 bytes of a blob's id: what the index knows a blob by.
///
/// Two blobs could share a key only if 128 bits of keyed BLAKE3 collided:
/// about 2^64 blobs would have to be stored before that became likely, and
/// without the repository's key nobody can aim for it. Even then a read
/// would fail its check against the whole id it asked for (every read
/// compares the plaintext's hash with it), never return another blob's
/// bytes; and deduplication, which takes a blob with the key of one already
/// stored for that blob, would at worst leave a snapshot with a blob that
/// fails its read, which `check` reports (`docs/design.md`, section 6).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobKey(pub [u8; KEY_LEN]);

impl BlobKey {
    pub fn of(id: &Id) -> BlobKey {
        BlobKey(id.0[..KEY_LEN].try_into().unwrap())
    }

    /// Whether `id` begins with this key.
    pub fn matches(&self, id: &Id) -> bool {
        id.0[..KEY_LEN] == self.0
    }

    /// The first 8 hex digits, as [`Id::short`] gives them.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({})", self.short())
    }
}

/// Where one blob is: 16 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobLocation {
    /// Pack number in `Index::packs`; the top bits hold the blob kind.
    pack_and_kind: u32,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// The top two bits of `pack_and_kind` hold the blob kind.
const KIND_SHIFT: u32 = 30;
const PACK_MASK: u32 = (1 << KIND_SHIFT) - 1;

impl BlobLocation {
    pub(super) fn of(pack: u32, blob: &PackedBlob) -> BlobLocation {
        BlobLocation {
            pack_and_kind: pack | kind_bits(blob.kind),
            offset: blob.offset,
            stored_len: blob.stored_len,
            raw_len: blob.raw_len,
        }
    }
    pub fn pack(&self) -> usize {
        (self.pack_and_kind & PACK_MASK) as usize
    }
    /// The same blob with another pack number.
    fn in_pack(self, pack: u32) -> BlobLocation {
        BlobLocation {
            pack_and_kind: pack | (self.pack_and_kind & !PACK_MASK),
            ..self
        }
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

/// At most this many recent blobs wait in the hash map (each costs about
/// three times what it does in the table; by arithmetic, 2^16 of them take
/// a map of 2^17 slots of 49 bytes, 6.4 MB, where 2^18 took 26 MB, a sixth
/// of a backup's 150 MB bound); a large table takes them in when they are
/// an eighth of it, a small one at 4096. A merge moves the table, so a
/// backup adding N blobs to it moves about N^2 / 2^17 entries: by the same
/// arithmetic, 2 GB of copying at 3,000,000 new blobs.
const RECENT_MIN: usize = 4096;
const RECENT_MAX: usize = 1 << 16;

#[derive(Default)]
pub struct Index {
    packs: Vec<PackRef>,
    /// Pack numbers ordered by pack id, to find a pack's number: 4 bytes a
    /// pack rather than a hash map's 40 or more.
    pack_order: Vec<u32>,
    /// Packs added since `pack_order` was last sorted.
    recent_packs: IdMap<u32>,
    table: Table,
    /// Blobs added since the table was last built or merged into.
    recent: IdMap<BlobLocation>,
    /// The whole ids of the table's snapshot copies, sorted.
    snapshot_copies: Vec<Id>,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// The index of every blob in `packs` at once, built as a load builds
    /// it (one index file holding them all). A blob listed twice keeps its
    /// first location; both are valid.
    pub fn from_packs<'a>(packs: impl Iterator<Item = &'a IndexedPack>) -> Index {
        let mut load = IndexLoad::default();
        load.add_packs(0, Id::default(), Vec::new(), packs);
        load.finish()
    }

    /// Adds every pack of an index file. A blob stored twice keeps its first
    /// location; both are valid.
    pub fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            self.add_pack(pack.id, pack.salt, &pack.blobs);
        }
    }

    pub fn add_pack(&mut self, id: Id, salt: [u8; SALT_LEN], blobs: &[PackedBlob]) {
        let number = match self.pack_number(&id) {
            Some(number) => number as u32,
            None => {
                self.packs.push(PackRef { id, salt });
                let number = (self.packs.len() - 1) as u32;
                self.recent_packs.insert(id, number);
                number
            }
        };
        for blob in blobs {
            if self.table.get(&BlobKey::of(&blob.id)).is_none() {
                self.recent
                    .entry(blob.id)
                    .or_insert(BlobLocation::of(number, blob));
            }
        }
        if self.recent.len() > (self.table.len() / 8).clamp(RECENT_MIN, RECENT_MAX) {
            self.compact();
        }
    }

    /// Moves recently added blobs into the table.
    pub fn compact(&mut self) {
        let mut added: Vec<(BlobKey, BlobLocation)> = Vec::with_capacity(self.recent.len());
        for (id, location) in std::mem::take(&mut self.recent) {
            if location.kind() == BlobKind::Snapshot {
                self.snapshot_copies.push(id);
            }
            added.push((BlobKey::of(&id), location));
        }
        added.sort_unstable_by_key(|(key, _)| *key);
        added.dedup_by_key(|(key, _)| *key);
        self.table.merge(&added);
        self.snapshot_copies.sort_unstable();
        self.snapshot_copies.dedup();
        if !self.recent_packs.is_empty() {
            self.recent_packs = IdMap::default();
            self.sort_pack_order();
        }
    }

    fn sort_pack_order(&mut self) {
        let packs = &self.packs;
        self.pack_order = (0..packs.len() as u32).collect();
        self.pack_order
            .sort_unstable_by_key(|&number| packs[number as usize].id);
    }

    /// Where the blob with this id is.
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        if !self.recent.is_empty() {
            if let Some(location) = self.recent.get(id) {
                return Some(*location);
            }
        }
        self.table.get(&BlobKey::of(id))
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
        if let Some(number) = self.recent_packs.get(id) {
            return Some(*number as usize);
        }
        let at = self
            .pack_order
            .binary_search_by_key(id, |&number| self.packs[number as usize].id)
            .ok()?;
        Some(self.pack_order[at] as usize)
    }

    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_number(id).is_some()
    }

    pub fn blob_count(&self) -> usize {
        self.table.len() + self.recent.len()
    }

    /// Every blob, by key, with its location.
    pub fn blobs(&self) -> impl Iterator<Item = (BlobKey, BlobLocation)> + '_ {
        self.table.iter().chain(
            self.recent
                .iter()
                .map(|(id, location)| (BlobKey::of(id), *location)),
        )
    }

    /// The whole ids of the snapshot copies the index holds.
    pub fn snapshot_copies(&self) -> Vec<Id> {
        let recent = self
            .recent
            .iter()
            .filter(|(_, location)| location.kind() == BlobKind::Snapshot)
            .map(|(id, _)| *id);
        self.snapshot_copies.iter().copied().chain(recent).collect()
    }
}

/// An index being loaded: each index file, as soon as it is decoded, is
/// moved into the vectors the table is built from (40 bytes a blob), so a
/// load never holds the decoded files beside the table (`docs/design.md`,
/// section 6.1). Pack numbers given while adding are provisional, in the
/// order files arrive; [`IndexLoad::finish`] numbers the packs in the
/// order of the files and leaves out the files another supersedes.
#[derive(Default)]
pub struct IndexLoad {
    /// Each file added: its place among the files, its name and the index
    /// files it supersedes, and its packs' provisional numbers.
    files: Vec<LoadedFile>,
    /// Every pack added, by provisional number.
    packs: Vec<PackRef>,
    buckets: Vec<u16>,
    tails: Vec<table::Tail>,
    locations: Vec<BlobLocation>,
    /// Whole ids of snapshot copies, with their provisional pack.
    snapshot_copies: Vec<(Id, u32)>,
}

struct LoadedFile {
    order: usize,
    name: Id,
    supersedes: Vec<Id>,
    packs: std::ops::Range<u32>,
}

impl IndexLoad {
    /// Room for about `blobs` blobs, as the files' sizes suggest (pages
    /// reserved and not written cost no memory).
    pub fn with_capacity(blobs: usize) -> IndexLoad {
        IndexLoad {
            buckets: Vec::with_capacity(blobs),
            tails: Vec::with_capacity(blobs),
            locations: Vec::with_capacity(blobs),
            ..IndexLoad::default()
        }
    }

    /// Takes in index file `name`, the `order`th of those listed.
    pub fn add(&mut self, order: usize, name: Id, file: IndexFile) {
        self.add_packs(order, name, file.supersedes, file.packs.iter());
    }

    fn add_packs<'a>(
        &mut self,
        order: usize,
        name: Id,
        supersedes: Vec<Id>,
        packs: impl Iterator<Item = &'a IndexedPack>,
    ) {
        let first = self.packs.len() as u32;
        for pack in packs {
            let number = self.packs.len() as u32;
            self.packs.push(PackRef {
                id: pack.id,
                salt: pack.salt,
            });
            for blob in &pack.blobs {
                self.buckets.push(table::bucket_of(&blob.id.0) as u16);
                self.tails.push(table::tail_of(&blob.id.0));
                self.locations.push(BlobLocation::of(number, blob));
                if blob.kind == BlobKind::Snapshot {
                    self.snapshot_copies.push((blob.id, number));
                }
            }
        }
        self.files.push(LoadedFile {
            order,
            name,
            supersedes,
            packs: first..self.packs.len() as u32,
        });
    }

    /// The index files that others added supersede.
    pub fn superseded(&self) -> std::collections::HashSet<Id> {
        self.files
            .iter()
            .flat_map(|file| file.supersedes.iter().copied())
            .collect()
    }

    /// The index of every file added but those superseded.
    pub fn finish(mut self) -> Index {
        let superseded = self.superseded();
        self.files.sort_unstable_by_key(|file| file.order);
        // Provisional number -> final, or NONE for a superseded file's pack.
        const NONE: u32 = u32::MAX;
        let mut renumber = vec![NONE; self.packs.len()];
        let mut index = Index::new();
        let mut numbers: IdMap<u32> = IdMap::default();
        for file in self.files.iter().filter(|f| !superseded.contains(&f.name)) {
            for provisional in file.packs.clone() {
                let pack = self.packs[provisional as usize];
                renumber[provisional as usize] = *numbers.entry(pack.id).or_insert_with(|| {
                    index.packs.push(pack);
                    (index.packs.len() - 1) as u32
                });
            }
        }
        drop(numbers);
        drop(self.packs);
        index.packs.shrink_to_fit();
        index.sort_pack_order();
        let mut kept = 0;
        for at in 0..self.locations.len() {
            let location = self.locations[at];
            let number = renumber[location.pack()];
            if number == NONE {
                continue;
            }
            self.buckets[kept] = self.buckets[at];
            self.tails[kept] = self.tails[at];
            self.locations[kept] = location.in_pack(number);
            kept += 1;
        }
        self.buckets.truncate(kept);
        self.tails.truncate(kept);
        self.locations.truncate(kept);
        index.table = Table::build_in_place(self.buckets, self.tails, self.locations);
        let mut copies: Vec<Id> = self
            .snapshot_copies
            .into_iter()
            .filter(|&(_, provisional)| renumber[provisional as usize] != NONE)
            .map(|(id, _)| id)
            .filter(|id| {
                index
                    .table
                    .get(&BlobKey::of(id))
                    .is_some_and(|location| location.kind() == BlobKind::Snapshot)
            })
            .collect();
        copies.sort_unstable();
        copies.dedup();
        index.snapshot_copies = copies;
        index
    }
}

/// Opens a stored blob that a walk over the index found, which knows it by
/// its key (the first bytes of its id) rather than its whole id: checks it
/// as [`pack::open_blob`] does, against the key, and returns its whole id, the
/// plaintext's keyed hash, with the plaintext.
pub fn open_keyed_blob(
    keys: &Keys,
    salt: &[u8; SALT_LEN],
    stored: Vec<u8>,
    key: &BlobKey,
    location: &BlobLocation,
    chunker: &ChunkerParams,
) -> Result<(Id, Vec<u8>)> {
    let (kind, raw_len) = (location.kind(), location.raw_len);
    let framed = pack::open_unchecked(keys, salt, stored, kind, raw_len, &key.short(), chunker)?;
    let plain = crypto::unframe(framed);
    let id = keys.blob_id(&plain);
    if plain.len() != raw_len as usize || !key.matches(&id) {
        return Err(Error::corrupt(format!(
            "blob {} does not hash to its id",
            key.short()
        )));
    }
    Ok((id, plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn blob(i: u32, kind: BlobKind) -> PackedBlob {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        id[31] = 1;
        blob_with_id(Id(id), i, kind)
    }

    fn blob_with_id(id: Id, i: u32, kind: BlobKind) -> PackedBlob {
        PackedBlob {
            kind,
            id,
            offset: 40 + i,
            stored_len: i + 1,
            raw_len: i + 2,
        }
    }

    fn pack(n: u8, blobs: Vec<PackedBlob>) -> IndexedPack {
        IndexedPack {
            id: Id([n; 32]),
            salt: [n; 32],
            blobs,
        }
    }

    /// Ids spread over every bucket, as keyed hashes are.
    fn random_id(n: u64) -> Id {
        let mut id = [0u8; 32];
        let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for word in id.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        Id(id)
    }

    fn assert_finds(index: &Index, blob: &PackedBlob, pack: usize) {
        let location = index.get(&blob.id).expect("an indexed blob is found");
        assert_eq!(location.pack(), pack);
        assert_eq!(location.kind(), blob.kind);
        assert_eq!(
            (location.offset, location.stored_len, location.raw_len),
            (blob.offset, blob.stored_len, blob.raw_len)
        );
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
                assert_finds(&index, b, usize::from(i >= 6000));
            }
            assert!(!index.contains(&Id([0xff; 32])));
            if check == 0 {
                index.compact();
            }
        }
        assert_eq!(index.blob_count(), 10_000);
    }

    #[test]
    fn a_blob_costs_30_bytes_in_the_table() {
        assert_eq!(
            std::mem::size_of::<table::Tail>() + std::mem::size_of::<BlobLocation>(),
            30
        );
    }

    #[test]
    fn a_load_finds_every_blob_and_misses_the_rest() {
        let packs: Vec<IndexedPack> = (0..20u8)
            .map(|p| {
                let blobs = (0..5000u32)
                    .map(|i| {
                        let n = u64::from(p) * 5000 + u64::from(i);
                        let kind =
                            [BlobKind::Data, BlobKind::Tree, BlobKind::Snapshot][(n % 3) as usize];
                        blob_with_id(random_id(n), i, kind)
                    })
                    .collect();
                pack(p, blobs)
            })
            .collect();
        let index = Index::from_packs(packs.iter());
        assert_eq!(index.blob_count(), 100_000);
        for (p, pack) in packs.iter().enumerate() {
            assert_eq!(index.pack_number(&pack.id), Some(p));
            assert_eq!(index.pack(p).salt, pack.salt);
            for blob in &pack.blobs {
                assert_finds(&index, blob, p);
            }
        }
        for n in 100_000..110_000 {
            assert!(!index.contains(&random_id(n)));
        }
        assert!(!index.has_pack(&Id([200; 32])));
        let mut keys: Vec<BlobKey> = index.blobs().map(|(key, _)| key).collect();
        assert!(keys.is_sorted(), "a walk gives the table by key");
        keys.dedup();
        assert_eq!(keys.len(), 100_000);
        let copies = index.snapshot_copies();
        assert_eq!(copies.len(), 100_000 / 3);
        assert!(copies
            .iter()
            .all(|id| index.get(id).unwrap().kind() == BlobKind::Snapshot));
    }

    #[test]
    fn ids_that_share_a_prefix_are_told_apart_by_their_key() {
        // Ids that differ from one another in one byte of the key each, all
        // but two in one bucket; the last key byte included.
        let base = Id([0x80; 32]);
        let variant = |byte: usize, value: u8| {
            let mut id = base;
            id.0[byte] = value;
            id
        };
        let ids: Vec<Id> = (1..KEY_LEN)
            .flat_map(|byte| [variant(byte, 0), variant(byte, 0xff)])
            .chain([base])
            .collect();
        let blobs: Vec<PackedBlob> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| blob_with_id(*id, i as u32, BlobKind::Data))
            .collect();
        let mut loaded = Index::from_packs([pack(1, blobs[..20].to_vec())].iter());
        loaded.add_pack(Id([2; 32]), [2; 32], &blobs[20..]);
        for index_compacted in [false, true] {
            if index_compacted {
                loaded.compact();
            }
            for (i, blob) in blobs.iter().enumerate() {
                assert_finds(&loaded, blob, usize::from(i >= 20));
            }
            // One byte off in the key: no such blob.
            for byte in [1, 2, 12, KEY_LEN - 1] {
                assert!(!loaded.contains(&variant(byte, 0x55)));
            }
        }
        // Bytes past the key are not looked at: an id that differs only
        // there names the same key, and the read of it fails its check
        // against the whole id (see `BlobKey`).
        assert!(loaded.contains(&variant(KEY_LEN, base.0[KEY_LEN] ^ 1)));
    }

    #[test]
    fn a_blob_in_two_packs_keeps_its_first_location() {
        let twice = blob_with_id(random_id(1), 5, BlobKind::Data);
        let first = pack(1, vec![twice.clone()]);
        let mut elsewhere = twice.clone();
        elsewhere.offset = 999;
        let second = pack(2, vec![elsewhere.clone(), twice.clone()]);
        let index = Index::from_packs([&first, &second, &first].into_iter());
        assert_eq!(index.packs().len(), 2, "a pack listed twice is one pack");
        assert_eq!(index.blob_count(), 1);
        assert_finds(&index, &twice, 0);

        let mut added = Index::from_packs([&first].into_iter());
        added.add_pack(second.id, second.salt, &second.blobs);
        added.compact();
        assert_eq!(added.blob_count(), 1);
        assert_finds(&added, &twice, 0);
    }

    #[test]
    fn a_load_file_by_file_agrees_with_one_from_packs_and_skips_the_superseded() {
        let packs: Vec<IndexedPack> = (0..40u8)
            .map(|n| {
                let blobs = (0..300u32)
                    .map(|i| {
                        let kind = if i % 97 == 0 {
                            BlobKind::Snapshot
                        } else {
                            BlobKind::Data
                        };
                        blob_with_id(random_id(u64::from(n) * 1000 + u64::from(i % 250)), i, kind)
                    })
                    .collect();
                pack(n, blobs)
            })
            .collect();
        let file = |range: std::ops::Range<usize>, supersedes: Vec<Id>| IndexFile {
            supersedes,
            packs: packs[range].to_vec(),
        };
        let (old, new) = (Id([7; 32]), Id([8; 32]));
        let mut load = IndexLoad::default();
        // Added out of order, as parallel reads finish; `old` is superseded.
        load.add(2, new, file(20..40, vec![old]));
        load.add(0, Id([6; 32]), file(0..20, Vec::new()));
        load.add(1, old, file(30..40, Vec::new()));
        let loaded = load.finish();
        let expected = Index::from_packs(packs.iter());
        assert_eq!(loaded.packs(), expected.packs());
        assert_eq!(
            loaded.blobs().collect::<Vec<_>>(),
            expected.blobs().collect::<Vec<_>>()
        );
        assert_eq!(loaded.snapshot_copies(), expected.snapshot_copies());
    }

    /// Loads, additions and compactions in any order agree with a plain
    /// map in which the first location of an id stays.
    #[test]
    fn additions_after_a_load_agree_with_a_map() {
        let mut model: HashMap<Id, (usize, PackedBlob)> = HashMap::new();
        let mut next = 0u64;
        let mut make_pack = |number: u8, count: u64| {
            let blobs: Vec<PackedBlob> = (0..count)
                .map(|i| {
                    // Every seventh blob is one stored before.
                    let n = if i % 7 == 3 && next > 10 {
                        next / 2
                    } else {
                        next
                    };
                    next += 1;
                    blob_with_id(random_id(n), i as u32, BlobKind::Data)
                })
                .collect();
            pack(number, blobs)
        };
        let loaded: Vec<IndexedPack> = (0..4).map(|p| make_pack(p, 3000)).collect();
        let mut index = Index::from_packs(loaded.iter());
        let remember = |model: &mut HashMap<_, _>, number: usize, pack: &IndexedPack| {
            for blob in &pack.blobs {
                model.entry(blob.id).or_insert((number, blob.clone()));
            }
        };
        for (p, pack) in loaded.iter().enumerate() {
            remember(&mut model, p, pack);
        }
        for p in 4..40u8 {
            let pack = make_pack(p, u64::from(p) * 97 % 2000);
            index.add_pack(pack.id, pack.salt, &pack.blobs);
            remember(&mut model, usize::from(p), &pack);
            if p % 9 == 0 {
                index.compact();
            }
            assert_eq!(index.blob_count(), model.len());
        }
        for compacted in [false, true] {
            if compacted {
                index.compact();
            }
            for (number, blob) in model.values() {
                assert_finds(&index, blob, *number);
            }
            for p in 0..40u8 {
                assert_eq!(index.pack_number(&Id([p; 32])), Some(usize::from(p)));
            }
            let keys: Vec<BlobKey> = index.blobs().map(|(key, _)| key).collect();
            assert_eq!(keys.len(), model.len());
        }
        let keys: Vec<BlobKey> = index.blobs().map(|(key, _)| key).collect();
        assert!(keys.is_sorted(), "compaction keeps the table sorted");
        assert!(!index.contains(&random_id(next + 1)));
    }

    #[test]
    fn an_empty_index_finds_nothing() {
        for index in [Index::new(), Index::from_packs(std::iter::empty())] {
            assert!(index.get(&Id([0; 32])).is_none());
            assert!(index.pack_number(&Id([0; 32])).is_none());
            assert_eq!(index.blobs().count(), 0);
            assert!(index.snapshot_copies().is_empty());
        }
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
