//! Whether bytes on disk are a node's recorded content, checked with the
//! chunk ids recorded at backup time: every chunk is read at its offset and
//! hashed with the repository's id key, every hole must read as zeros. No
//! repository data is read, and the file's own hole layout does not matter.
//!
//! Used by `restore --overwrite if-changed` (and so by resuming a restore),
//! `diff` against a local directory, and `restore-test --against`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Serialize;

use super::Cancel;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::tree::{Extent, Node};

/// The first way in which a file differs from a node's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mismatch {
    Size {
        expected: u64,
        actual: u64,
    },
    /// The chunk or hole at `start..end` holds other bytes.
    Bytes {
        start: u64,
        end: u64,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Size { expected, actual } => {
                write!(f, "{actual} bytes where the snapshot has {expected}")
            }
            Mismatch::Bytes { start, end } => {
                write!(f, "bytes {start}..{end} differ from the snapshot")
            }
        }
    }
}

/// Compares an open file with `node`'s content: `None` when they are equal.
/// `path` only names the file in errors; `blob_id` is the repository's
/// (`Repository::blob_id`).
pub fn compare_file(
    blob_id: impl Fn(&[u8]) -> Id,
    file: &File,
    path: &Path,
    node: &Node,
    cancel: Cancel,
) -> Result<Option<Mismatch>> {
    let read_err = |e| Error::io(format!("cannot read {}", path.display()), e);
    let actual = file.metadata().map_err(read_err)?.len();
    if actual != node.size {
        return Ok(Some(Mismatch::Size {
            expected: node.size,
            actual,
        }));
    }
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for extent in &node.content {
        cancel.check()?;
        let same = match extent {
            // No chunk is longer than any chunker allows, nor runs past the
            // file: a crafted tree claiming so differs, at no cost in memory.
            Extent::Data { len, .. }
                if *len > fastcdc::v2020::MAXIMUM_MAX || offset + u64::from(*len) > actual =>
            {
                false
            }
            Extent::Data { id, len } => {
                buf.resize(*len as usize, 0);
                match file.read_exact_at(&mut buf, offset) {
                    Ok(()) => blob_id(&buf) == *id,
                    // The file shrank while it was read: it differs.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
                    Err(e) => return Err(read_err(e)),
                }
            }
            Extent::Hole { len } => reads_as_zeros(file, offset, *len).map_err(read_err)?,
        };
        if !same {
            return Ok(Some(Mismatch::Bytes {
                start: offset,
                end: offset + extent.len(),
            }));
        }
        offset += extent.len();
    }
    Ok(None)
}

/// Whether two local files hold the same bytes (their sizes already equal).
pub fn files_equal(a: (&File, &Path), b: (&File, &Path), cancel: Cancel) -> Result<bool> {
    const BLOCK: usize = 1 << 20;
    let read = |(file, path): (&File, &Path), buf: &mut [u8], offset| {
        read_full_at(file, buf, offset)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))
    };
    let (mut x, mut y) = (vec![0u8; BLOCK], vec![0u8; BLOCK]);
    let mut offset = 0u64;
    loop {
        cancel.check()?;
        let n = read(a, &mut x, offset)?;
        let m = read(b, &mut y, offset)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n < BLOCK {
            return Ok(true);
        }
        offset += n as u64;
    }
}

/// Reads until `buf` is full or the file ends; the number of bytes read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Whether `len` bytes at `offset` read as zeros. Holes are skipped with
/// SEEK_DATA instead of read, and data is read in bounded pieces, so that a
/// file with a terabyte hole costs neither a terabyte of memory nor of reads.
pub(crate) fn reads_as_zeros(file: &File, offset: u64, len: u64) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let end = offset + len;
    let mut pos = offset;
    let mut buf = vec![0u8; len.min(1 << 20) as usize];
    while pos < end {
        // SAFETY: lseek on a valid descriptor has no memory effects.
        let data = unsafe { libc::lseek(file.as_raw_fd(), pos as libc::off_t, libc::SEEK_DATA) };
        if data >= 0 {
            pos = data as u64;
            if pos >= end {
                return Ok(true);
            }
        } else {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENXIO) => return Ok(true), // only a hole is left
                Some(libc::EINVAL) => {}              // no SEEK_DATA: read it all
                _ => return Err(err),
            }
        }
        let n = (end - pos).min(buf.len() as u64) as usize;
        let got = read_full_at(file, &mut buf[..n], pos)?;
        if got < n || buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Keys;
    use crate::tree::tests::sample_node;
    use std::io::Write;

    fn keys() -> Keys {
        Keys::unencrypted(&Id([7; 32]))
    }

    /// A node for `data` cut at `cuts`, with a hole of `hole` bytes after it.
    fn node_for(keys: &Keys, data: &[u8], cuts: &[usize], hole: u64) -> Node {
        let mut node = sample_node(b"f");
        node.content.clear();
        let mut start = 0;
        for &end in cuts.iter().chain([data.len()].iter()) {
            node.content.push(Extent::Data {
                id: keys.blob_id(&data[start..end]),
                len: (end - start) as u32,
            });
            start = end;
        }
        if hole > 0 {
            node.content.push(Extent::Hole { len: hole });
        }
        node.size = data.len() as u64 + hole;
        node
    }

    fn file_with(data: &[u8], size: u64) -> (tempfile::NamedTempFile, File) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(data).unwrap();
        tmp.as_file().set_len(size).unwrap();
        let file = File::open(tmp.path()).unwrap();
        (tmp, file)
    }

    #[test]
    fn equal_content_matches_and_every_difference_is_found() {
        let keys = keys();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let node = node_for(&keys, &data, &[10_000, 60_000], 5000);
        let size = data.len() as u64 + 5000;
        let p = Path::new("f");
        let cancel = Cancel::default();

        let (_t, same) = file_with(&data, size);
        assert_eq!(
            compare_file(|d| keys.blob_id(d), &same, p, &node, cancel).unwrap(),
            None
        );

        let mut changed = data.clone();
        changed[70_000] ^= 1;
        let (_t, f) = file_with(&changed, size);
        assert_eq!(
            compare_file(|d| keys.blob_id(d), &f, p, &node, cancel).unwrap(),
            Some(Mismatch::Bytes {
                start: 60_000,
                end: 100_000
            })
        );

        // Data where the snapshot has a hole.
        let mut filled = data.clone();
        filled.extend_from_slice(&[0, 0, 1]);
        let (_t, f) = file_with(&filled, size);
        assert!(matches!(
            compare_file(|d| keys.blob_id(d), &f, p, &node, cancel).unwrap(),
            Some(Mismatch::Bytes { start: 100_000, .. })
        ));

        let (_t, f) = file_with(&data, size + 1);
        assert_eq!(
            compare_file(|d| keys.blob_id(d), &f, p, &node, cancel).unwrap(),
            Some(Mismatch::Size {
                expected: size,
                actual: size + 1
            })
        );
    }

    #[test]
    fn local_files_compare_by_bytes() {
        let a: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        let mut b = a.clone();
        let (_t1, fa) = file_with(&a, a.len() as u64);
        let (_t2, fb) = file_with(&b, b.len() as u64);
        let p = Path::new("f");
        assert!(files_equal((&fa, p), (&fb, p), Cancel::default()).unwrap());
        b[2_999_999] ^= 0xff;
        let (_t3, fc) = file_with(&b, b.len() as u64);
        assert!(!files_equal((&fa, p), (&fc, p), Cancel::default()).unwrap());
    }
}
