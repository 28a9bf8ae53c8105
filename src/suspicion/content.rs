//! Whether stored data was incompressible, told from the lengths the packer
//! and the index already record, never by reading or compressing it again
//! (`docs/design.md`, section 7, "Finding the last clean snapshot").
//!
//! Encrypted data looks random, and zstd cannot shrink random data: a
//! chunk that ransomware encrypted is stored at its raw length. So is data
//! that was compressed before (JPEG, video, gzip, zip): that is why a
//! snapshot is judged against its host's history, not on its own.

use crate::repo::{Repository, RepositoryState};

/// A chunk is incompressible when zstd saved less than 3% of it. Ordinary
/// data saves far more at any level (text, code and logs half or more,
/// executables and databases a third or more); what saves less than 3%
/// was compressed or encrypted already. A chunk that did not shrink at all is stored as it is (the
/// `compress` fallback), at exactly its raw length.
const INCOMPRESSIBLE_PERCENT: u64 = 97;

/// Chunks shorter than this are not judged: zstd's frame header costs a
/// dozen bytes, so a short text may not shrink by 3% however ordinary it is.
/// Their bytes count as changed data, never as incompressible. The default
/// chunker cuts nothing shorter than 256 KiB, so such a chunk is a whole
/// file shorter than this, or the tail of one.
pub const MIN_JUDGED_LEN: u32 = 512;

/// Judges chunks of one repository by their stored and raw lengths.
#[derive(Debug, Clone, Copy)]
pub struct Compressibility {
    /// What storing a chunk adds to its compressed payload: the
    /// compression-type byte, and the nonce and tag of the seal when the
    /// repository is encrypted (`man/rewind-format.5`, BLOBS).
    overhead: u32,
}

impl Compressibility {
    /// The judge for `repo`'s chunks; `None` when the repository does not
    /// compress (level 0), since then every chunk is stored at its raw
    /// length and nothing can be told.
    pub fn of<S: RepositoryState>(repo: &Repository<S>) -> Option<Compressibility> {
        (repo.config().compression_level > 0).then(|| Compressibility {
            overhead: repo.blob_overhead(),
        })
    }

    /// The bytes of a chunk of `raw_len` bytes stored in `stored_len` that
    /// count as incompressible: all of them, or none.
    pub fn incompressible_bytes(&self, raw_len: u32, stored_len: u32) -> u64 {
        if raw_len < MIN_JUDGED_LEN {
            return 0;
        }
        let payload = u64::from(stored_len.saturating_sub(self.overhead));
        let raw = u64::from(raw_len);
        if payload * 100 >= raw * INCOMPRESSIBLE_PERCENT {
            raw
        } else {
            0
        }
    }
}

/// The changed data of one file (the chunks it holds that were not there
/// before), and how much of it was incompressible.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangedBytes {
    pub bytes: u64,
    pub incompressible: u64,
}

impl ChangedBytes {
    pub fn add_chunk(&mut self, judge: &Compressibility, raw_len: u32, stored_len: u32) {
        self.bytes += u64::from(raw_len);
        self.incompressible += judge.incompressible_bytes(raw_len, stored_len);
    }

    /// Whether the file was rewritten with incompressible content: at
    /// least half of its changed data was. Half, not all, so that a file
    /// encrypted in part (ransomware that encrypts only the first
    /// megabytes of large files) or with a plain header counts.
    pub fn is_mostly_incompressible(&self) -> bool {
        self.incompressible > 0 && self.incompressible * 2 >= self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENCRYPTED: Compressibility = Compressibility { overhead: 29 };

    #[test]
    fn a_chunk_stored_as_it_is_or_nearly_is_incompressible() {
        let raw = 1 << 20;
        assert_eq!(
            ENCRYPTED.incompressible_bytes(raw, raw + 29),
            u64::from(raw)
        );
        let barely = raw / 100 * 98 + 29;
        assert_eq!(ENCRYPTED.incompressible_bytes(raw, barely), u64::from(raw));
        let halved = raw / 2 + 29;
        assert_eq!(ENCRYPTED.incompressible_bytes(raw, halved), 0);
    }

    #[test]
    fn short_chunks_are_not_judged() {
        assert_eq!(ENCRYPTED.incompressible_bytes(100, 129), 0);
        let mut file = ChangedBytes::default();
        file.add_chunk(&ENCRYPTED, 100, 129);
        assert_eq!(file.bytes, 100);
        assert!(!file.is_mostly_incompressible());
    }

    #[test]
    fn a_file_is_rewritten_incompressibly_when_half_its_changed_data_is() {
        let mut file = ChangedBytes::default();
        assert!(!file.is_mostly_incompressible(), "no changed data");
        file.add_chunk(&ENCRYPTED, 4096, 4096 + 29);
        file.add_chunk(&ENCRYPTED, 4096, 1000);
        assert!(file.is_mostly_incompressible());
        file.add_chunk(&ENCRYPTED, 4096, 1000);
        assert!(!file.is_mostly_incompressible());
    }
}
