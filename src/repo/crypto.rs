//! Keys and the stored form of every blob and metadata file.
//!
//! A payload is one byte of compression type followed by the data. In an
//! encrypted repository it is sealed with AES-256-GCM under a key derived
//! from the master key and a per-file salt (so no key ever approaches the
//! GCM limit on random nonces), as `nonce(12) || ciphertext || tag(16)`.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use crate::error::{Error, Result};
use crate::id::Id;

pub const SALT_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const MASTER_KEY_LEN: usize = 64;

const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZSTD: u8 = 1;

/// The secrets of an open repository.
#[derive(Clone)]
pub struct Keys {
    /// Absent in a repository made with `--encryption none`.
    encryption: Option<[u8; 32]>,
    /// Encryption keys a rotation of the master key is retiring: files
    /// they sealed are still opened, nothing new is sealed with them
    /// (`docs/design.md`, section 7, "Keys").
    retired: Vec<[u8; 32]>,
    /// Keys the BLAKE3 that names blobs, so ids reveal nothing of content.
    id_key: [u8; 32],
}

impl Keys {
    /// Keys from the 64 bytes of master key material in a key file.
    pub fn from_master(master: &[u8; MASTER_KEY_LEN]) -> Keys {
        Keys {
            encryption: Some(master[..32].try_into().unwrap()),
            retired: Vec::new(),
            id_key: master[32..].try_into().unwrap(),
        }
    }

    /// Keys of an unencrypted repository: ids are still keyed, by a key
    /// anyone can derive from the repository id.
    pub fn unencrypted(repo_id: &Id) -> Keys {
        Keys {
            encryption: None,
            retired: Vec::new(),
            id_key: blake3::derive_key("rewind 2026-11 unencrypted id key", &repo_id.0),
        }
    }

    pub fn generate_master() -> Result<[u8; MASTER_KEY_LEN]> {
        let mut master = [0u8; MASTER_KEY_LEN];
        random_bytes(&mut master)?;
        Ok(master)
    }

    /// A new master key whose id key is this one's: a repository made with
    /// it names blobs and seeds its chunker as this one does, under an
    /// encryption key of its own (`init --copy-chunker-params`).
    pub fn generate_master_sharing_ids(&self) -> Result<[u8; MASTER_KEY_LEN]> {
        let mut master = Keys::generate_master()?;
        master[32..].copy_from_slice(&self.id_key);
        Ok(master)
    }

    /// The 64 bytes a key file wraps (none when unencrypted).
    pub fn master(&self) -> Option<[u8; MASTER_KEY_LEN]> {
        self.encryption.map(|encryption| {
            let mut master = [0u8; MASTER_KEY_LEN];
            master[..32].copy_from_slice(&encryption);
            master[32..].copy_from_slice(&self.id_key);
            master
        })
    }

    /// These keys, also opening what the `retired` encryption keys sealed.
    pub fn with_retired(mut self, retired: Vec<[u8; 32]>) -> Keys {
        self.retired = retired;
        self
    }

    /// The encryption keys being retired (empty but during a rotation).
    pub fn retired(&self) -> &[[u8; 32]] {
        &self.retired
    }

    /// The master key of each retired encryption key: it shares this
    /// one's id key, which a rotation keeps.
    pub fn retired_masters(&self) -> impl Iterator<Item = [u8; MASTER_KEY_LEN]> + '_ {
        self.retired.iter().map(|encryption| {
            let mut master = [0u8; MASTER_KEY_LEN];
            master[..32].copy_from_slice(encryption);
            master[32..].copy_from_slice(&self.id_key);
            master
        })
    }

    /// These keys without the retired ones: what opens only with them was
    /// sealed by a key being retired.
    pub fn current_only(&self) -> Keys {
        Keys {
            retired: Vec::new(),
            ..self.clone()
        }
    }

    /// The keys a rotation gives in place of these: those of `master`, with
    /// its `retired` encryption keys and these keys' own encryption keys
    /// still opening what they sealed. None when `master` is no successor:
    /// another id key (another repository's), or the same encryption key.
    pub fn succeeded_by(
        &self,
        master: &[u8; MASTER_KEY_LEN],
        retired: &[[u8; 32]],
    ) -> Option<Keys> {
        let next = Keys::from_master(master);
        if next.id_key != self.id_key || next.encryption == self.encryption {
            return None;
        }
        let mut opening: Vec<[u8; 32]> = retired.to_vec();
        opening.extend(self.encryption);
        opening.extend(self.retired.iter().copied());
        opening.sort_unstable();
        opening.dedup();
        opening.retain(|key| Some(*key) != next.encryption);
        Some(next.with_retired(opening))
    }

    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// What storing adds to a blob's compressed data: the compression-type
    /// byte of the payload, and the nonce and tag of the seal.
    pub fn blob_overhead(&self) -> u32 {
        let seal = if self.is_encrypted() {
            NONCE_LEN + TAG_LEN
        } else {
            0
        };
        (1 + seal) as u32
    }

    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// The gear-table seed of the chunker: secret in an encrypted repository,
    /// so chunk boundaries do not fingerprint known files.
    pub fn chunker_seed(&self) -> u64 {
        let k = blake3::derive_key("rewind 2026-11 chunker seed", &self.id_key);
        u64::from_le_bytes(k[..8].try_into().unwrap())
    }

    /// A sealer for one file (pack or metadata file) with its own salt.
    pub fn sealer(&self, salt: &[u8; SALT_LEN]) -> Sealer {
        let subkey = |key: &[u8; 32]| {
            let mut material = [0u8; 64];
            material[..32].copy_from_slice(key);
            material[32..].copy_from_slice(salt);
            cipher(&blake3::derive_key("rewind 2026-11 file subkey", &material))
        };
        Sealer {
            cipher: self.encryption.as_ref().map(subkey),
            retired: self.retired.iter().map(subkey).collect(),
        }
    }
}

/// AES-256-GCM under `key`. ring's assembly opens 1 MiB chunks about five
/// times as fast as the aes-gcm crate here (8.7 vs 1.65 GB/s; its GHASH
/// takes one block per multiplication), and reads of the mount spend most
/// of their time opening chunks.
fn cipher(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"))
}

/// Seals and opens payloads under one key: a file's subkey, or the key
/// that wraps the master key in a key file.
pub struct Sealer {
    cipher: Option<LessSafeKey>,
    /// Tried in turn when `cipher` does not open an item.
    retired: Vec<LessSafeKey>,
}

impl Sealer {
    /// A sealer under `key` itself, always encrypting.
    pub fn with_key(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: Some(cipher(key)),
            retired: Vec::new(),
        }
    }

    /// `nonce || ciphertext || tag` with a random nonce (the payload as it
    /// is in an unencrypted repository).
    pub fn seal(&self, payload: Vec<u8>) -> Result<Vec<u8>> {
        let Some(cipher) = &self.cipher else {
            return Ok(payload);
        };
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let mut out = Vec::with_capacity(NONCE_LEN + payload.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&payload);
        let tag = cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| Error::corrupt("encryption failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// The payload, or a `Corrupt` error if the tag does not verify.
    pub fn open(&self, stored: &[u8]) -> Result<Vec<u8>> {
        let mut buf = stored.to_vec();
        let payload = self.open_in_place(&mut buf)?;
        Ok(unframe((buf, payload)))
    }

    /// [`Sealer::open`] where the data lies, for large blobs: no second
    /// buffer. The payload is then `stored[returned range]`.
    pub fn open_in_place(&self, stored: &mut [u8]) -> Result<std::ops::Range<usize>> {
        let Some(cipher) = &self.cipher else {
            return Ok(0..stored.len());
        };
        if stored.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::corrupt("sealed data is too short"));
        }
        // A failed open leaves the buffer undefined: keep the sealed bytes
        // for the retired keys (only while a rotation runs).
        let original = (!self.retired.is_empty()).then(|| stored.to_vec());
        if let Some(range) = open_with(cipher, stored) {
            return Ok(range);
        }
        for retired in &self.retired {
            stored.copy_from_slice(original.as_deref().expect("kept when keys are retired"));
            if let Some(range) = open_with(retired, stored) {
                return Ok(range);
            }
        }
        Err(Error::corrupt("authentication tag does not verify"))
    }

    /// Whether the current key, not a retired one, sealed `stored`.
    pub fn sealed_by_current(&self, stored: &[u8]) -> bool {
        match &self.cipher {
            Some(cipher) => open_with(cipher, &mut stored.to_vec()).is_some(),
            None => true,
        }
    }
}

/// Opens `nonce || ciphertext || tag` in place under one key: the range of
/// the payload, or `None` when the tag does not verify.
fn open_with(cipher: &LessSafeKey, stored: &mut [u8]) -> Option<std::ops::Range<usize>> {
    if stored.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, sealed) = stored.split_at_mut(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).expect("NONCE_LEN bytes");
    let plain_len = cipher
        .open_in_place(nonce, Aad::empty(), sealed)
        .ok()?
        .len();
    Some(NONCE_LEN..NONCE_LEN + plain_len)
}

/// `type || data`: zstd when that is smaller, else the data as it is.
pub fn compress(data: &[u8], level: i32) -> Result<Vec<u8>> {
    if level > 0 {
        let compressed = with_compressor(level, |c| c.compress(data))
            .map_err(|e| Error::corrupt(format!("zstd: {e}")))?;
        if compressed.len() < data.len() {
            let mut out = Vec::with_capacity(compressed.len() + 1);
            out.push(COMPRESSION_ZSTD);
            out.extend_from_slice(&compressed);
            return Ok(out);
        }
    }
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(COMPRESSION_NONE);
    out.extend_from_slice(data);
    Ok(out)
}

/// Runs `f` with this thread's zstd context for `level`: creating a context
/// costs more than compressing a small file.
fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        f(&mut slot.as_mut().expect("just set").1)
    })
}

/// The data of a payload, at most `limit` bytes: whatever a damaged or
/// hostile payload claims (a frame header's content size, or none at all),
/// decoding it never holds more than `limit` bytes of output.
pub fn decompress(payload: &[u8], limit: usize) -> Result<Vec<u8>> {
    match payload.split_first() {
        Some((&COMPRESSION_NONE, data)) if data.len() > limit => {
            Err(larger_than_allowed(data.len() as u64, limit))
        }
        Some((&COMPRESSION_NONE, data)) => Ok(data.to_vec()),
        Some((&COMPRESSION_ZSTD, frame)) => decompress_frame(frame, limit),
        Some((t, _)) => Err(Error::corrupt(format!("unknown compression type {t}"))),
        None => Err(Error::corrupt("empty payload")),
    }
}

fn larger_than_allowed(claimed: u64, limit: usize) -> Error {
    Error::corrupt(format!(
        "claims {claimed} bytes uncompressed, more than the {limit} allowed"
    ))
}

/// One zstd frame, as the format requires: a second frame after it would be
/// decoded by zstd too, past whatever size the first one claims.
fn decompress_frame(frame: &[u8], limit: usize) -> Result<Vec<u8>> {
    let frame_len = zstd::zstd_safe::find_frame_compressed_size(frame).map_err(|code| {
        Error::corrupt(format!(
            "the zstd frame is damaged: {}",
            zstd::zstd_safe::get_error_name(code)
        ))
    })?;
    if frame_len != frame.len() {
        return Err(Error::corrupt(format!(
            "{} bytes follow the zstd frame (a payload holds one frame)",
            frame.len() - frame_len
        )));
    }
    let failed = |e: std::io::Error| Error::corrupt(format!("cannot decompress: {e}"));
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(claimed)) if claimed > limit as u64 => Err(larger_than_allowed(claimed, limit)),
        // Every frame rewind writes says its size: reserve exactly that
        // (zstd fails a frame that holds other than it claims).
        Ok(Some(claimed)) => {
            with_decompressor(|d| d.decompress(frame, claimed as usize)).map_err(failed)
        }
        // No size: stream, so that memory follows what is really produced.
        Ok(None) => decompress_unsized(frame, limit).map_err(failed),
        Err(_) => Err(Error::corrupt("the zstd frame header is damaged")),
    }
}

/// A frame without a content size, decoded up to `limit` bytes.
fn decompress_unsized(frame: &[u8], limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    // zstd's own bound on the window (128 MiB) stays: the window buffer is
    // only touched as output is produced, and output stops at the limit.
    let decoder = zstd::stream::read::Decoder::with_buffer(frame)?.single_frame();
    let mut out = Vec::new();
    decoder.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(std::io::Error::other(format!(
            "holds more than the {limit} bytes allowed"
        )));
    }
    Ok(out)
}

/// Data in the buffer it was opened in: `buffer[range]`.
pub type Framed = (Vec<u8>, std::ops::Range<usize>);

/// The data alone, moved to the start of its buffer.
pub fn unframe((mut buffer, range): Framed) -> Vec<u8> {
    buffer.truncate(range.end);
    buffer.drain(..range.start);
    buffer
}

/// [`decompress`] of `buf[payload]`, as a buffer and where the data lies
/// in it: data stored as it is (incompressible chunks, most of a large
/// file's bytes) stays where it is, without a copy.
pub fn decompress_in_place(
    buf: Vec<u8>,
    payload: std::ops::Range<usize>,
    limit: usize,
) -> Result<Framed> {
    if buf.get(payload.start) == Some(&COMPRESSION_NONE) {
        return Ok((buf, payload.start + 1..payload.end));
    }
    let data = decompress(&buf[payload], limit)?;
    let len = data.len();
    Ok((data, 0..len))
}

/// Runs `f` with this thread's zstd decompression context (creating one
/// costs a noticeable share of reading small blobs).
fn with_decompressor<T>(
    f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DECOMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        f(slot.as_mut().expect("just set"))
    })
}

pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf)
        .map_err(|e| Error::new(crate::error::ErrorKind::Io, format!("no randomness: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_master(&[7u8; MASTER_KEY_LEN])
    }

    #[test]
    fn retired_keys_open_what_they_sealed_and_seal_nothing_new() {
        let old = Keys::from_master(&[1u8; MASTER_KEY_LEN]);
        let mut new_master = [2u8; MASTER_KEY_LEN];
        new_master[32..].copy_from_slice(&[1u8; 32]);
        let new = Keys::from_master(&new_master);
        let rotating = Keys::from_master(&new_master).with_retired(vec![[1u8; 32]]);
        let salt = [5u8; SALT_LEN];
        let payload = b"sealed before the rotation".to_vec();
        let by_old = old.sealer(&salt).seal(payload.clone()).unwrap();

        assert!(new.sealer(&salt).open(&by_old).is_err());
        assert_eq!(rotating.sealer(&salt).open(&by_old).unwrap(), payload);
        assert!(!rotating.sealer(&salt).sealed_by_current(&by_old));
        // What a rotating repository seals, the new key alone opens.
        let by_rotating = rotating.sealer(&salt).seal(payload.clone()).unwrap();
        assert!(rotating.sealer(&salt).sealed_by_current(&by_rotating));
        assert_eq!(new.sealer(&salt).open(&by_rotating).unwrap(), payload);
        assert!(old.sealer(&salt).open(&by_rotating).is_err());
        assert_eq!(
            rotating.retired_masters().next(),
            Some({
                let mut m = [1u8; MASTER_KEY_LEN];
                m[32..].copy_from_slice(&[1u8; 32]);
                m
            })
        );
        // Damage is still damage under every key.
        let mut damaged = by_old.clone();
        damaged[20] ^= 1;
        assert!(rotating.sealer(&salt).open(&damaged).is_err());
    }

    #[test]
    fn a_successor_shares_the_id_key_and_opens_what_its_predecessor_sealed() {
        let old = Keys::from_master(&[1u8; MASTER_KEY_LEN]);
        let mut new_master = [2u8; MASTER_KEY_LEN];
        new_master[32..].copy_from_slice(&[1u8; 32]);
        let next = old.succeeded_by(&new_master, &[]).unwrap();
        let salt = [3u8; SALT_LEN];
        let by_old = old.sealer(&salt).seal(b"before".to_vec()).unwrap();
        assert_eq!(next.sealer(&salt).open(&by_old).unwrap(), b"before");
        assert!(next.current_only().sealer(&salt).open(&by_old).is_err());
        // Another repository's master key, or the same one, is no successor.
        assert!(old.succeeded_by(&[2u8; MASTER_KEY_LEN], &[]).is_none());
        assert!(old.succeeded_by(&[1u8; MASTER_KEY_LEN], &[]).is_none());
    }

    #[test]
    fn any_changed_byte_is_detected() {
        let keys = keys();
        let sealer = keys.sealer(&[1u8; SALT_LEN]);
        let payload = compress(b"the quick brown fox jumps over the lazy dog", 3).unwrap();
        let sealed = sealer.seal(payload.clone()).unwrap();
        assert_eq!(sealer.open(&sealed).unwrap(), payload);
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut damaged = sealed.clone();
                damaged[i] ^= bit;
                assert!(
                    sealer.open(&damaged).is_err(),
                    "flip at byte {i} went unnoticed"
                );
            }
        }
    }

    /// The format is plain AES-256-GCM: an independent implementation
    /// opens what we seal, and we open what it seals.
    #[test]
    fn sealing_is_standard_aes_256_gcm() {
        use aes_gcm::aead::{Aead, KeyInit};
        let key = [9u8; 32];
        let independent = aes_gcm::Aes256Gcm::new(&key.into());
        let payload = b"payload bytes".repeat(100);
        let sealed = Sealer::with_key(&key).seal(payload.clone()).unwrap();
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        assert_eq!(
            independent
                .decrypt(aes_gcm::Nonce::from_slice(nonce), rest)
                .unwrap(),
            payload
        );
        let nonce = [4u8; NONCE_LEN];
        let mut theirs = nonce.to_vec();
        theirs.extend(
            independent
                .encrypt(aes_gcm::Nonce::from_slice(&nonce), payload.as_slice())
                .unwrap(),
        );
        assert_eq!(Sealer::with_key(&key).open(&theirs).unwrap(), payload);
    }

    #[test]
    fn another_salt_cannot_open() {
        let keys = keys();
        let sealed = keys.sealer(&[1u8; SALT_LEN]).seal(vec![0, 1, 2]).unwrap();
        assert!(keys.sealer(&[2u8; SALT_LEN]).open(&sealed).is_err());
    }

    #[test]
    fn compression_round_trips_and_falls_back() {
        let text = b"abcabcabcabcabcabcabcabcabcabcabcabc".repeat(100);
        let packed = compress(&text, 3).unwrap();
        assert_eq!(packed[0], COMPRESSION_ZSTD);
        assert_eq!(decompress(&packed, text.len()).unwrap(), text);
        let random: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let packed = compress(&random, 3).unwrap();
        assert_eq!(decompress(&packed, random.len()).unwrap(), random);
        assert!(decompress(&compress(&text, 3).unwrap(), 10).is_err());
    }

    #[test]
    fn decompression_reserves_what_the_frame_holds_not_the_limit() {
        let text = b"index entries ".repeat(1000);
        let data = decompress(&compress(&text, 3).unwrap(), 1 << 30).unwrap();
        assert_eq!(data, text);
        assert_eq!(data.capacity(), text.len());
    }

    /// `type 1 || frame` of `data`, its frame without a content size.
    fn unsized_payload(data: &[u8]) -> Vec<u8> {
        let mut encoder = zstd::stream::write::Encoder::new(vec![COMPRESSION_ZSTD], 3).unwrap();
        encoder.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut encoder, data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_frame_without_a_size_is_bounded_by_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let payload = unsized_payload(&zeros);
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&payload[1..]).unwrap(),
            None
        );
        assert_eq!(decompress(&payload, zeros.len()).unwrap(), zeros);
        let err = decompress(&payload, 1 << 20).unwrap_err();
        assert!(
            err.to_string()
                .contains("more than the 1048576 bytes allowed"),
            "{err}"
        );
    }

    #[test]
    fn a_frame_claiming_more_than_the_limit_is_refused_before_decoding() {
        let payload = compress(&vec![0u8; 4 << 20], 3).unwrap();
        let err = decompress(&payload, (4 << 20) - 1).unwrap_err();
        assert!(err.to_string().contains("claims 4194304 bytes"), "{err}");
    }

    #[test]
    fn a_second_frame_is_refused() {
        let mut payload = compress(&[7u8; 1000], 3).unwrap();
        payload.extend_from_slice(&compress(&vec![0u8; 1 << 20], 3).unwrap()[1..]);
        let err = decompress(&payload, 2 << 20).unwrap_err();
        assert!(err.to_string().contains("follow the zstd frame"), "{err}");
        let mut trailing = compress(&[7u8; 1000], 3).unwrap();
        trailing.push(0);
        assert!(decompress(&trailing, 2 << 20).is_err());
    }

    #[test]
    fn stored_data_longer_than_the_limit_is_refused() {
        assert!(decompress(&compress(&[1u8; 100], 0).unwrap(), 99).is_err());
        assert_eq!(
            decompress(&compress(&[1u8; 100], 0).unwrap(), 100)
                .unwrap()
                .len(),
            100
        );
    }

    #[test]
    fn ids_are_keyed() {
        let a = Keys::from_master(&[1u8; MASTER_KEY_LEN]).blob_id(b"x");
        let b = Keys::from_master(&[2u8; MASTER_KEY_LEN]).blob_id(b"x");
        assert_ne!(a, b);
    }
}
