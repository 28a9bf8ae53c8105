//! Packs: many blobs in one file, followed by a sealed trailer that lists
//! them, so the index can always be rebuilt from the packs alone.
//!
//! ```text
//! header  "RWPK" | version u8 | 3 zero bytes | salt [32]
//! blobs   stored blob, back to back (see crypto.rs)
//! trailer sealed payload: postcard Vec<PackedBlob>
//! footer  trailer length u32 LE | "RWPT"
//! ```

use serde::{Deserialize, Serialize};

use super::crypto::{self, Keys, Sealer, SALT_LEN};
use crate::chunker::ChunkerParams;
use crate::error::{Error, Result};
use crate::id::Id;

pub const MAGIC: &[u8; 4] = b"RWPK";
pub const FOOTER_MAGIC: &[u8; 4] = b"RWPT";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8 + SALT_LEN;
pub const FOOTER_LEN: usize = 8;
/// No blob (compressed and sealed) may exceed this; guards every length we read.
pub const MAX_BLOB_LEN: u32 = 64 * 1024 * 1024;
/// The most plaintext a tree blob or a snapshot copy may hold (a directory
/// of about half a million entries): it always fits in a stored blob.
pub const MAX_TREE_LEN: u32 = MAX_BLOB_LEN - 1024;
/// The most plaintext a pack trailer may hold.
pub const MAX_TRAILER_LEN: usize = 256 * 1024 * 1024;

/// The most plaintext a blob of `kind` may hold: a chunk is never longer
/// than the chunker's maximum. A reader decodes at most this much whatever
/// an index or trailer claims, so a forged `raw_len` cannot exhaust memory.
pub fn max_raw_len(kind: BlobKind, chunker: &ChunkerParams) -> u32 {
    match kind {
        BlobKind::Data => chunker.max_size,
        BlobKind::Tree | BlobKind::Snapshot => MAX_TREE_LEN,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlobKind {
    Data,
    Tree,
    /// A copy of a snapshot manifest, so the snapshot list can be rebuilt
    /// from the packs alone.
    Snapshot,
}

impl BlobKind {
    /// The kind as messages name it.
    pub fn name(self) -> &'static str {
        match self {
            BlobKind::Data => "data",
            BlobKind::Tree => "tree",
            BlobKind::Snapshot => "snapshot copy",
        }
    }
}

/// Where a blob sits in its pack, as the trailer and index record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedBlob {
    pub kind: BlobKind,
    pub id: Id,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

impl PackedBlob {
    pub fn claim(&self) -> BlobClaim<'_> {
        BlobClaim {
            id: &self.id,
            kind: self.kind,
            raw_len: self.raw_len,
        }
    }
}

/// A pack being filled in memory.
pub struct PackWriter {
    salt: [u8; SALT_LEN],
    sealer: Sealer,
    bytes: Vec<u8>,
    blobs: Vec<PackedBlob>,
}

/// A complete pack, ready to be stored under its name.
pub struct FinishedPack {
    pub id: Id,
    pub salt: [u8; SALT_LEN],
    pub bytes: Vec<u8>,
    pub blobs: Vec<PackedBlob>,
}

impl PackWriter {
    pub fn new(keys: &Keys, capacity: usize) -> Result<PackWriter> {
        let mut salt = [0u8; SALT_LEN];
        crypto::random_bytes(&mut salt)?;
        let mut bytes = Vec::with_capacity(capacity + capacity / 8);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[VERSION, 0, 0, 0]);
        bytes.extend_from_slice(&salt);
        Ok(PackWriter {
            salt,
            sealer: keys.sealer(&salt),
            bytes,
            blobs: Vec::new(),
        })
    }

    /// Compresses, seals and appends one blob whose id is already known;
    /// returns its stored length.
    pub fn add(&mut self, kind: BlobKind, id: Id, plaintext: &[u8], level: i32) -> Result<u32> {
        let stored = self.sealer.seal(crypto::compress(plaintext, level)?)?;
        let stored_len = stored.len() as u32;
        self.blobs.push(PackedBlob {
            kind,
            id,
            offset: self.bytes.len() as u32,
            stored_len,
            raw_len: plaintext.len() as u32,
        });
        self.bytes.extend_from_slice(&stored);
        Ok(stored_len)
    }

    /// Copies a blob out of another pack without compressing it again
    /// (repacking): opens it and checks it against its id, as every read
    /// does, then seals the same compressed payload under this pack's key.
    pub fn copy_blob(
        &mut self,
        keys: &Keys,
        from_salt: &[u8; SALT_LEN],
        stored: &[u8],
        blob: &PackedBlob,
        chunker: &ChunkerParams,
    ) -> Result<()> {
        check_claim(blob.kind, blob.raw_len, &blob.id.short(), chunker)?;
        let payload = keys.sealer(from_salt).open(stored)?;
        let plain = crypto::decompress(&payload, blob.raw_len as usize)
            .map_err(|e| e.context(format!("{} blob {}", blob.kind.name(), blob.id.short())))?;
        check_plaintext(keys, blob.claim(), &plain)?;
        let sealed = self.sealer.seal(payload)?;
        self.blobs.push(PackedBlob {
            offset: self.bytes.len() as u32,
            stored_len: sealed.len() as u32,
            ..blob.clone()
        });
        self.bytes.extend_from_slice(&sealed);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// How many blobs the pack holds so far.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub fn finish(mut self) -> Result<FinishedPack> {
        let trailer = postcard::to_stdvec(&self.blobs).expect("trailer serializes");
        let sealed = self.sealer.seal(crypto::compress(&trailer, 3)?)?;
        self.bytes.extend_from_slice(&sealed);
        self.bytes
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(FOOTER_MAGIC);
        Ok(FinishedPack {
            id: Id::of_bytes(&self.bytes),
            salt: self.salt,
            bytes: self.bytes,
            blobs: self.blobs,
        })
    }
}

/// The salt of a pack, from its header.
pub fn read_salt(pack: &[u8]) -> Result<[u8; SALT_LEN]> {
    if pack.len() < HEADER_LEN + FOOTER_LEN || &pack[..4] != MAGIC {
        return Err(Error::corrupt("not a pack (bad header)"));
    }
    if pack[4] != VERSION {
        return Err(Error::corrupt(format!(
            "pack version {} is unknown",
            pack[4]
        )));
    }
    Ok(pack[8..HEADER_LEN].try_into().unwrap())
}

/// The blobs a whole pack lists in its trailer, checked against the pack's size.
pub fn read_trailer(keys: &Keys, pack: &[u8]) -> Result<([u8; SALT_LEN], Vec<PackedBlob>)> {
    let salt = read_salt(pack)?;
    let footer = &pack[pack.len() - FOOTER_LEN..];
    if &footer[4..] != FOOTER_MAGIC {
        return Err(Error::corrupt("pack footer is damaged"));
    }
    let trailer_len = u32::from_le_bytes(footer[..4].try_into().unwrap()) as usize;
    let trailer_end = pack.len() - FOOTER_LEN;
    if trailer_len > trailer_end - HEADER_LEN {
        return Err(Error::corrupt("pack trailer length is out of range"));
    }
    let trailer_start = trailer_end - trailer_len;
    let payload = keys.sealer(&salt).open(&pack[trailer_start..trailer_end])?;
    let plain = crypto::decompress(&payload, MAX_TRAILER_LEN)?;
    let blobs: Vec<PackedBlob> = postcard::from_bytes(&plain)
        .map_err(|e| Error::corrupt(format!("pack trailer does not decode: {e}")))?;
    for b in &blobs {
        let end = b.offset as u64 + b.stored_len as u64;
        if (b.offset as usize) < HEADER_LEN
            || end > trailer_start as u64
            || b.stored_len > MAX_BLOB_LEN
        {
            return Err(Error::corrupt("pack trailer lists a blob outside the pack"));
        }
    }
    Ok((salt, blobs))
}

/// A blob as the index or a pack trailer records it: what is needed to
/// open it and to check that it is the blob it claims to be.
#[derive(Debug, Clone, Copy)]
pub struct BlobClaim<'a> {
    pub id: &'a Id,
    pub kind: BlobKind,
    pub raw_len: u32,
}

/// Opens a stored blob and checks that it is the blob it claims to be.
pub fn open_blob(
    keys: &Keys,
    salt: &[u8; SALT_LEN],
    stored: Vec<u8>,
    claim: BlobClaim,
    chunker: &ChunkerParams,
) -> Result<Vec<u8>> {
    open_blob_framed(keys, salt, stored, claim, chunker).map(crypto::unframe)
}

pub use crypto::Framed;

/// [`open_blob`] without moving the blob to the start of its buffer, for
/// readers that can keep the buffer as it is (the mount's chunk cache).
pub fn open_blob_framed(
    keys: &Keys,
    salt: &[u8; SALT_LEN],
    stored: Vec<u8>,
    claim: BlobClaim,
    chunker: &ChunkerParams,
) -> Result<Framed> {
    let (buffer, range) = open_unchecked(
        keys,
        salt,
        stored,
        claim.kind,
        claim.raw_len,
        &claim.id.short(),
        chunker,
    )?;
    check_plaintext(keys, claim, &buffer[range.clone()])?;
    Ok((buffer, range))
}

/// Opens and decompresses a stored blob, named `short` in errors, without
/// checking what it holds.
pub(super) fn open_unchecked(
    keys: &Keys,
    salt: &[u8; SALT_LEN],
    mut stored: Vec<u8>,
    kind: BlobKind,
    raw_len: u32,
    short: &str,
    chunker: &ChunkerParams,
) -> Result<Framed> {
    check_claim(kind, raw_len, short, chunker)?;
    let payload = keys.sealer(salt).open_in_place(&mut stored)?;
    crypto::decompress_in_place(stored, payload, raw_len as usize)
        .map_err(|e| e.context(format!("{} blob {short}", kind.name())))
}

/// Refuses a blob that claims more than its kind may hold, before anything
/// is decompressed.
fn check_claim(kind: BlobKind, raw_len: u32, short: &str, chunker: &ChunkerParams) -> Result<()> {
    let allowed = max_raw_len(kind, chunker);
    if raw_len > allowed {
        return Err(Error::corrupt(format!(
            "{} blob {short} claims {raw_len} bytes, more than the {allowed} such a blob may hold",
            kind.name(),
        ))
        .with_hint("the index or the pack trailer is damaged or forged; run `rewind check`"));
    }
    Ok(())
}

fn check_plaintext(keys: &Keys, claim: BlobClaim, plain: &[u8]) -> Result<()> {
    if plain.len() != claim.raw_len as usize || keys.blob_id(plain) != *claim.id {
        return Err(Error::corrupt(format!(
            "blob {} does not hash to its id",
            claim.id.short()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_lists_what_was_added() {
        let keys = Keys::from_master(&[3u8; 64]);
        let mut w = PackWriter::new(&keys, 1024).unwrap();
        let a = b"first blob".to_vec();
        let b = vec![9u8; 100_000];
        w.add(BlobKind::Data, keys.blob_id(&a), &a, 3).unwrap();
        w.add(BlobKind::Tree, keys.blob_id(&b), &b, 3).unwrap();
        let pack = w.finish().unwrap();
        assert_eq!(pack.id, Id::of_bytes(&pack.bytes));
        let (salt, blobs) = read_trailer(&keys, &pack.bytes).unwrap();
        assert_eq!(blobs, pack.blobs);
        for (blob, plain) in blobs.iter().zip([&a, &b]) {
            let stored =
                &pack.bytes[blob.offset as usize..(blob.offset + blob.stored_len) as usize];
            assert_eq!(
                &open_blob(
                    &keys,
                    &salt,
                    stored.to_vec(),
                    blob.claim(),
                    &ChunkerParams::default()
                )
                .unwrap(),
                plain
            );
        }
    }
}
