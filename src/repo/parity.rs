//! Reed–Solomon parity for repository files, so that scrub can rebuild a
//! damaged file instead of only reporting it.
//!
//! A file is cut into `k` equal shards (the last one zero-padded); `m` parity
//! shards are computed over them. Every shard's BLAKE3 (first 16 bytes) is
//! stored, so damaged shards are found, and up to `m` of them rebuilt.
//!
//! ```text
//!  0  4  "RWPR"
//!  4  1  version (1)
//!  5  3  zero
//!  8  8  length of the protected file, u64 LE
//! 16  4  shard length, u32 LE (even)
//! 20  4  k: data shards, u32 LE
//! 24  4  m: parity shards, u32 LE
//! 28     (k + m) × 16: BLAKE3 of each data shard, then of each parity shard
//!   ..   32: BLAKE3 of every byte above
//!   ..   m × shard length: the parity shards
//! ```

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"RWPR";
const VERSION: u8 = 1;
const HASH_LEN: usize = 16;
const FIXED_HEADER: usize = 28;
/// Files are cut into at most this many data shards.
const MAX_DATA_SHARDS: usize = 256;
const MIN_SHARD_LEN: usize = 64;

fn shard_hash(shard: &[u8]) -> [u8; HASH_LEN] {
    blake3::hash(shard).as_bytes()[..HASH_LEN]
        .try_into()
        .unwrap()
}

struct Header {
    data_len: u64,
    shard_len: usize,
    data_shards: usize,
    parity_shards: usize,
    hashes: Vec<[u8; HASH_LEN]>,
    parity_start: usize,
}

/// How a file fared against its parity.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file matched every shard hash.
    Intact,
    /// The file was rebuilt; this many shards were bad.
    Repaired { bad_shards: usize, data: Vec<u8> },
}

/// Parity for `data` with about `percent` % overhead (at least one shard).
pub fn compute(data: &[u8], percent: u32) -> Result<Vec<u8>> {
    let (shard_len, data_shards) = shard_layout(data.len() as u64);
    let parity_shards = (data_shards * percent as usize).div_ceil(100).max(2);
    let shards = data_shards_of(data, shard_len, data_shards);
    let parity = reed_solomon_simd::encode(data_shards, parity_shards, &shards)
        .map_err(|e| Error::corrupt(format!("cannot compute parity: {e}")))?;
    let mut out = Vec::with_capacity(
        FIXED_HEADER + (data_shards + parity_shards) * HASH_LEN + 32 + parity_shards * shard_len,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&(shard_len as u32).to_le_bytes());
    out.extend_from_slice(&(data_shards as u32).to_le_bytes());
    out.extend_from_slice(&(parity_shards as u32).to_le_bytes());
    for shard in shards.iter().chain(parity.iter()) {
        out.extend_from_slice(&shard_hash(shard));
    }
    let header_hash = blake3::hash(&out);
    out.extend_from_slice(header_hash.as_bytes());
    for shard in &parity {
        out.extend_from_slice(shard);
    }
    Ok(out)
}

/// Shard length and number of data shards for a file of `data_len` bytes:
/// at most [`MAX_DATA_SHARDS`] of at least [`MIN_SHARD_LEN`] bytes.
fn shard_layout(data_len: u64) -> (usize, usize) {
    let shard_len = (data_len.div_ceil(MAX_DATA_SHARDS as u64) as usize)
        .max(MIN_SHARD_LEN)
        .next_multiple_of(2);
    let data_shards = (data_len.div_ceil(shard_len as u64) as usize).max(1);
    (shard_len, data_shards)
}

/// The data shards of a file; `data` may be short (truncated) or empty
/// (missing): absent bytes read as zeros, and their hashes will not match.
fn data_shards_of(data: &[u8], shard_len: usize, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut shard = vec![0u8; shard_len];
            let start = (i * shard_len).min(data.len());
            let end = ((i + 1) * shard_len).min(data.len());
            shard[..end - start].copy_from_slice(&data[start..end]);
            shard
        })
        .collect()
}

fn parse(parity: &[u8]) -> Result<Header> {
    let bad = |what: &str| Error::corrupt(format!("the parity file is damaged ({what})"));
    if parity.len() < FIXED_HEADER || &parity[..4] != MAGIC {
        return Err(bad("bad header"));
    }
    if parity[4] != VERSION {
        return Err(bad("unknown version"));
    }
    let u32_at = |at: usize| u32::from_le_bytes(parity[at..at + 4].try_into().unwrap()) as usize;
    let data_len = u64::from_le_bytes(parity[8..16].try_into().unwrap());
    let (shard_len, data_shards, parity_shards) = (u32_at(16), u32_at(20), u32_at(24));
    // The layout follows from the file's length: a header that claims
    // another (say 65536 data shards of a parity file's whole length) would
    // have a reader allocate and hash far more than the file ever was.
    if (shard_len, data_shards) != shard_layout(data_len)
        || parity_shards == 0
        || parity_shards > 65536
    {
        return Err(bad("impossible shard counts"));
    }
    let hashes_end = FIXED_HEADER + (data_shards + parity_shards) * HASH_LEN;
    let parity_start = hashes_end + 32;
    if parity.len() != parity_start + parity_shards * shard_len
        || data_len > (data_shards * shard_len) as u64
    {
        return Err(bad("wrong length"));
    }
    if blake3::hash(&parity[..hashes_end]).as_bytes() != &parity[hashes_end..parity_start] {
        return Err(bad("header checksum"));
    }
    let hashes = parity[FIXED_HEADER..hashes_end]
        .chunks_exact(HASH_LEN)
        .map(|h| h.try_into().unwrap())
        .collect();
    Ok(Header {
        data_len,
        shard_len,
        data_shards,
        parity_shards,
        hashes,
        parity_start,
    })
}

/// Whether `parity` is whole and protects exactly `data`: its header
/// parses and every data and parity shard matches its hash. (`repair` calls
/// a file intact whatever state its parity shards are in.)
pub fn is_sound(data: &[u8], parity: &[u8]) -> bool {
    let Ok(header) = parse(parity) else {
        return false;
    };
    data.len() as u64 == header.data_len
        && data_shards_of(data, header.shard_len, header.data_shards)
            .iter()
            .zip(&header.hashes)
            .all(|(shard, hash)| shard_hash(shard) == *hash)
        && (0..header.parity_shards).all(|i| {
            let start = header.parity_start + i * header.shard_len;
            shard_hash(&parity[start..start + header.shard_len])
                == header.hashes[header.data_shards + i]
        })
}

/// Checks `data` (possibly damaged, truncated or empty) against its parity
/// and rebuilds it when at most `m` shards are bad.
pub fn repair(data: &[u8], parity: &[u8]) -> Result<Outcome> {
    let header = parse(parity)?;
    let shards = data_shards_of(data, header.shard_len, header.data_shards);
    let good_data: Vec<(usize, &Vec<u8>)> = shards
        .iter()
        .enumerate()
        .filter(|(i, s)| shard_hash(s) == header.hashes[*i])
        .collect();
    if good_data.len() == header.data_shards && data.len() as u64 == header.data_len {
        return Ok(Outcome::Intact);
    }
    let good_parity: Vec<(usize, &[u8])> = (0..header.parity_shards)
        .map(|i| {
            let start = header.parity_start + i * header.shard_len;
            (i, &parity[start..start + header.shard_len])
        })
        .filter(|(i, s)| shard_hash(s) == header.hashes[header.data_shards + i])
        .collect();
    let bad_shards = header.data_shards - good_data.len();
    if good_data.len() + good_parity.len() < header.data_shards {
        return Err(Error::corrupt(format!(
            "{bad_shards} of {} shards are damaged, more than the {} usable parity shards can rebuild",
            header.data_shards,
            good_parity.len()
        )));
    }
    let restored = reed_solomon_simd::decode(
        header.data_shards,
        header.parity_shards,
        good_data.iter().map(|(i, s)| (*i, s.as_slice())),
        good_parity.iter().copied(),
    )
    .map_err(|e| Error::corrupt(format!("parity decoding failed: {e}")))?;
    let mut out = Vec::with_capacity(header.data_shards * header.shard_len);
    for (i, shard) in shards.iter().enumerate() {
        match restored.get(&i) {
            Some(rebuilt) => out.extend_from_slice(rebuilt),
            None => out.extend_from_slice(shard),
        }
    }
    out.truncate(header.data_len as usize);
    Ok(Outcome::Repaired {
        bad_shards,
        data: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(7) as u8)
            .collect()
    }

    #[test]
    fn intact_files_pass() {
        for len in [0, 1, 63, 64, 65, 5000, 1 << 20] {
            let data = sample(len);
            assert_eq!(
                repair(&data, &compute(&data, 10).unwrap()).unwrap(),
                Outcome::Intact,
                "len {len}"
            );
        }
    }

    #[test]
    fn scattered_flips_and_bursts_are_repaired() {
        let data = sample(4 << 20);
        let parity = compute(&data, 10).unwrap();
        let mut damaged = data.clone();
        for i in 0..20 {
            damaged[i * 200_003 % data.len()] ^= 0x55;
        }
        damaged[1_000_000..1_100_000].fill(0);
        match repair(&damaged, &parity).unwrap() {
            Outcome::Repaired {
                data: rebuilt,
                bad_shards,
            } => {
                assert_eq!(rebuilt, data);
                assert!(bad_shards > 1);
            }
            Outcome::Intact => panic!("damage went unnoticed"),
        }
    }

    #[test]
    fn truncation_is_repaired_and_too_much_damage_is_refused() {
        let data = sample(1 << 20);
        let parity = compute(&data, 10).unwrap();
        let cut = &data[..data.len() - 10_000];
        assert!(
            matches!(repair(cut, &parity).unwrap(), Outcome::Repaired { data: d, .. } if d == data)
        );
        assert!(repair(&data[..data.len() / 2], &parity).is_err());
        assert!(repair(&[], &parity).is_err());
    }

    #[test]
    fn damaged_parity_is_detected() {
        let data = sample(100_000);
        let mut parity = compute(&data, 10).unwrap();
        assert!(is_sound(&data, &parity));
        parity[30] ^= 1;
        assert!(repair(&data, &parity).is_err());
        assert!(!is_sound(&data, &parity));
        parity[30] ^= 1;
        // A damaged parity shard: the file is intact, its parity is not.
        let last = parity.len() - 1;
        parity[last] ^= 1;
        assert_eq!(repair(&data, &parity).unwrap(), Outcome::Intact);
        assert!(!is_sound(&data, &parity));
        parity[last] ^= 1;
        assert!(!is_sound(&data[1..], &parity));
    }
}
