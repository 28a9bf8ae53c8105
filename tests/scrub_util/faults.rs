//! Faults applied to repository files: bit flips, bursts, truncation,
//! deletion and replacement, each logged so a failure can be followed.

use std::path::Path;

use crate::common::{write, Rng};

/// What a fault did to a file, for the log and for working out its damage.
#[derive(Debug, Clone)]
pub enum Fault {
    /// One bit at `offset`.
    Flip {
        offset: usize,
        bit: u8,
    },
    /// Every byte of `offset..offset + len` changed.
    Burst {
        offset: usize,
        len: usize,
    },
    Truncate {
        to: usize,
    },
    Delete,
    /// Replaced by the bytes of another file.
    Replace {
        with: String,
    },
}

impl Fault {
    /// A single bit flip at a random offset.
    pub fn flip(rng: &mut Rng, size: usize) -> Fault {
        Fault::Flip {
            offset: rng.below(size as u64) as usize,
            bit: rng.below(8) as u8,
        }
    }

    /// A burst of 2..=max_len changed bytes at a random offset.
    pub fn burst(rng: &mut Rng, size: usize, max_len: usize) -> Fault {
        let len = (rng.range(2, max_len as u64 + 1) as usize).min(size);
        Fault::Burst {
            offset: rng.below((size - len + 1) as u64) as usize,
            len,
        }
    }

    /// Cuts off the end of a file, at most a twentieth of it (well within
    /// what 10% of parity rebuilds) and at most 64 KiB.
    pub fn truncate(rng: &mut Rng, size: usize) -> Fault {
        let cut = rng.range(1, (size as u64 / 20).clamp(2, 64 << 10)) as usize;
        Fault::Truncate { to: size - cut }
    }

    /// Applies the fault to `repo/file`; returns the file's bytes before.
    pub fn apply(&self, repo: &Path, file: &str, rng: &mut Rng) -> Vec<u8> {
        let path = repo.join(file);
        let old = std::fs::read(&path).unwrap_or_else(|e| panic!("read {file}: {e}"));
        let mut new = old.clone();
        match self {
            Fault::Flip { offset, bit } => new[*offset] ^= 1 << bit,
            Fault::Burst { offset, len } => {
                // XOR with non-zero bytes, so every byte of the burst changes.
                let noise = rng.bytes(*len);
                for (b, n) in new[*offset..offset + len].iter_mut().zip(noise) {
                    *b ^= n.max(1);
                }
            }
            Fault::Truncate { to } => new.truncate(*to),
            Fault::Delete => {
                std::fs::remove_file(&path).unwrap();
                eprintln!("fault: {file}: deleted");
                return old;
            }
            Fault::Replace { with } => new = std::fs::read(repo.join(with)).unwrap(),
        }
        eprintln!("fault: {file} ({} bytes): {self:?}", old.len());
        assert_ne!(new, old, "the fault changed nothing");
        write(&path, &new);
        old
    }
}

/// The bytes of a repository file now (None if it is gone).
pub fn bytes_of(repo: &Path, file: &str) -> Option<Vec<u8>> {
    std::fs::read(repo.join(file)).ok()
}
