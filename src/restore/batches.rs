//! The order in which files are restored, and which are restored together.
//! Large files go first, each alone, so that one big file does not finish
//! alone at the end. Small files follow in the order their first chunks
//! have in the packs, in batches whose chunks are read together
//! ([`crate::repo::Repository::read_blobs`]): neighbouring small files
//! mostly share a pack, so a batch costs one or two reads of the store
//! instead of one per file (`docs/design.md`, section 1.1, "Restore").

use std::ops::Range;

use super::FileJob;
use crate::repo::index::Index;
use crate::tree::Extent;

/// Files up to this size are batched.
const SMALL_FILE: u64 = 1 << 20;
/// The most file content a batch holds in memory, and so what each worker
/// holds at once. A large file is read in windows of this size too.
pub(super) const BATCH_BYTES: u64 = 4 << 20;
/// The fewest bytes a batch aims at when there are few small files: below
/// this a read costs more in its round trip than in its bytes.
const MIN_BATCH_BYTES: u64 = 256 << 10;
/// Bounds the work done before the first file of a batch is written.
const MAX_BATCH_FILES: usize = 512;

/// What one worker takes at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unit {
    /// Files restored together, their chunks read together.
    Files(Range<usize>),
    /// Part of a large file: these extents of the file's content, starting
    /// at this offset in it. The parts of one file go to several workers,
    /// so that one large file is read and written by all of them.
    Part {
        file: usize,
        extents: Range<usize>,
        offset: u64,
    },
}

/// Sorts `files` into restore order and returns the units they are
/// restored in. Batches are sized so that every one of `workers` gets
/// several, and no worker waits for the last one alone. Large files are
/// cut into parts of `BATCH_BYTES` when `split` (not in a dry run, which
/// writes nothing).
pub(super) fn plan(files: &mut [FileJob], index: &Index, workers: usize, split: bool) -> Vec<Unit> {
    files.sort_by_cached_key(|job| {
        if job.node.size > SMALL_FILE {
            (0, u64::MAX - job.node.size, 0)
        } else {
            // Files without data (empty, or all holes) go last, together.
            let place = job.node.content.iter().find_map(|extent| match extent {
                Extent::Data { id, .. } => index.get(id),
                Extent::Hole { .. } => None,
            });
            place.map_or((2, 0, 0), |location| {
                (1, location.pack() as u64, u64::from(location.offset))
            })
        }
    });
    let small_start = files.partition_point(|job| job.node.size > SMALL_FILE);
    let small_bytes: u64 = files[small_start..].iter().map(|job| job.node.size).sum();
    let batch_bytes =
        (small_bytes / (workers.max(1) as u64 * 4)).clamp(MIN_BATCH_BYTES, BATCH_BYTES);

    let mut units = Vec::new();
    for (i, job) in files[..small_start].iter().enumerate() {
        let parts = if split {
            parts(&job.node.content)
        } else {
            Vec::new()
        };
        if parts.len() > 1 {
            units.extend(parts.into_iter().map(|(extents, offset)| Unit::Part {
                file: i,
                extents,
                offset,
            }));
        } else {
            units.push(Unit::Files(i..i + 1));
        }
    }
    let mut start = small_start;
    let mut bytes = 0;
    for (i, job) in files.iter().enumerate().skip(small_start) {
        let full = bytes + job.node.size > batch_bytes || i - start >= MAX_BATCH_FILES;
        if i > start && full {
            units.push(Unit::Files(start..i));
            (start, bytes) = (i, 0);
        }
        bytes += job.node.size;
    }
    if start < files.len() {
        units.push(Unit::Files(start..files.len()));
    }
    units
}

/// A file's content cut into runs of extents holding at most
/// `BATCH_BYTES` of data each (a longer chunk is a part alone), with the
/// offset each starts at.
fn parts(content: &[Extent]) -> Vec<(Range<usize>, u64)> {
    let mut parts = Vec::new();
    let (mut start, mut start_offset, mut offset, mut bytes) = (0, 0u64, 0u64, 0u64);
    for (i, extent) in content.iter().enumerate() {
        let data = match extent {
            Extent::Data { len, .. } => u64::from(*len),
            Extent::Hole { .. } => 0,
        };
        if i > start && bytes + data > BATCH_BYTES {
            parts.push((start..i, start_offset));
            (start, start_offset, bytes) = (i, offset, 0);
        }
        bytes += data;
        offset += extent.len();
    }
    if start < content.len() {
        parts.push((start..content.len(), start_offset));
    }
    parts
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::repo::{Id, PackedBlob};
    use crate::tree::tests::sample_node;

    fn job(name: &str, size: u64, chunk: Option<Id>) -> FileJob {
        let mut node = sample_node(name.as_bytes());
        node.size = size;
        node.content = chunk
            .map(|id| Extent::Data {
                id,
                len: size as u32,
            })
            .into_iter()
            .collect();
        FileJob {
            rel: PathBuf::from(name),
            snapshot_path: format!("/{name}"),
            node,
            fresh: false,
        }
    }

    #[test]
    fn large_files_first_then_small_ones_in_pack_order_in_batches() {
        // Two packs; small files' chunks placed in the opposite order of
        // their names.
        let mut index = Index::default();
        let ids: Vec<Id> = (0..6u8).map(|i| Id([i + 1; 32])).collect();
        for (pack, blobs) in [(Id([100; 32]), &ids[3..]), (Id([101; 32]), &ids[..3])] {
            let packed: Vec<PackedBlob> = blobs
                .iter()
                .enumerate()
                .map(|(i, id)| PackedBlob {
                    id: *id,
                    kind: crate::repo::BlobKind::Data,
                    offset: 1000 - i as u32 * 100,
                    stored_len: 50,
                    raw_len: 40,
                })
                .collect();
            index.add_pack(pack, [0; crate::repo::crypto::SALT_LEN], &packed);
        }
        let mut files = vec![
            job("big", 5 << 20, None),
            job("a", 300 << 10, Some(ids[0])),
            job("b", 300 << 10, Some(ids[1])),
            job("c", 300 << 10, Some(ids[2])),
            job("d", 300 << 10, Some(ids[3])),
            job("empty", 0, None),
            job("bigger", 9 << 20, None),
        ];
        let units = plan(&mut files, &index, 1, true);
        let names: Vec<&str> = files.iter().map(|j| j.rel.to_str().unwrap()).collect();
        // Pack 100 holds d; pack 101 holds c (offset 800), b (900), a (1000).
        assert_eq!(names, ["bigger", "big", "d", "c", "b", "a", "empty"]);
        // 1.2 MiB of small files for one worker: batches of at least
        // MIN_BATCH_BYTES, split where the next file would not fit.
        let ranges: Vec<Range<usize>> = units
            .iter()
            .map(|unit| match unit {
                Unit::Files(range) => range.clone(),
                Unit::Part { .. } => panic!("a file without content has no parts"),
            })
            .collect();
        assert_eq!(ranges[..2], [0..1, 1..2]);
        assert!(ranges[2..].iter().all(|u| u.len() <= 2));
        assert_eq!(ranges.last().unwrap().end, files.len());
        let covered: usize = ranges.iter().map(|u| u.len()).sum();
        assert_eq!(covered, files.len());
    }

    #[test]
    fn a_large_file_is_cut_into_parts_of_at_most_a_batch() {
        let chunk = |len: u32| Extent::Data {
            id: Id([1; 32]),
            len,
        };
        let mib = 1 << 20;
        // 3 + 1 MiB fit one part; a hole adds no data; 5 MiB is alone.
        let content = vec![
            chunk(3 * mib),
            Extent::Hole { len: 10 },
            chunk(mib),
            chunk(5 * mib),
            chunk(mib),
        ];
        let mut file = job("big", 10 * u64::from(mib) + 10, None);
        file.node.content = content;
        let mut files = vec![file];
        let units = plan(&mut files, &Index::default(), 4, true);
        let m = u64::from(mib);
        assert_eq!(
            units,
            [
                Unit::Part {
                    file: 0,
                    extents: 0..3,
                    offset: 0
                },
                Unit::Part {
                    file: 0,
                    extents: 3..4,
                    offset: 4 * m + 10
                },
                Unit::Part {
                    file: 0,
                    extents: 4..5,
                    offset: 9 * m + 10
                },
            ]
        );
        assert_eq!(
            plan(&mut files, &Index::default(), 4, false),
            [Unit::Files(0..1)]
        );
    }
}
