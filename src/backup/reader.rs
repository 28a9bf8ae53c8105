//! The reader threads: each takes a file the walker found new or changed,
//! reads it (holes are recorded, not read), chunks and hashes it, queues
//! the chunks the repository lacks for the packers, and answers with the
//! file's extents.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

use crossbeam_channel::{Receiver, Sender};

use super::archiver::Archiver;
use super::packer::NewBlob;
use super::semaphore::Semaphore;
use super::source;
use crate::error::{Error, Result};
use crate::tree::Extent;

/// Threads reading files, at the least.
pub(super) const READERS: usize = 6;
/// Files larger than a chunk that may be read at once.
pub(super) const LARGE_FILES_AT_ONCE: usize = 2;

/// A file's content as extents, and its size as read.
pub(super) type FileContent = (Vec<Extent>, u64);

/// A file for a reader to read, and where to send its content.
pub(super) struct ReadRequest {
    pub path: PathBuf,
    pub metadata: std::fs::Metadata,
    /// Whether the parent snapshot has a file at this path.
    pub changed: bool,
    pub reply: Sender<Result<FileContent>>,
}

/// One reader thread: answers requests until the walker drops its end of
/// the queue. Reading small files is waiting on the disk, which several
/// readers overlap; large files stream, `large_files` at a time, so memory
/// stays bounded however many readers there are.
pub(super) fn serve(
    archiver: &Archiver,
    requests: &Receiver<ReadRequest>,
    blob_tx: &Sender<NewBlob>,
    large_files: &Semaphore,
) {
    let chunk_max = archiver.repo.config().chunker.max_size as u64;
    for request in requests.iter() {
        let _permit = (request.metadata.len() > chunk_max).then(|| large_files.acquire());
        let result = read_file(archiver, &request.path, !request.changed, blob_tx);
        let _ = request.reply.send(result);
    }
}

/// A file's content as extents, as it was read: holes are recorded, not
/// read; the file ends where reading found its end, whatever stat said
/// (a /sys file claims 4096 bytes and holds a few; a file may shrink or
/// grow while it is read). A change during the read is warned about.
fn read_file(
    archiver: &Archiver,
    path: &Path,
    new: bool,
    blob_tx: &Sender<NewBlob>,
) -> Result<FileContent> {
    let fail = |e: std::io::Error| Error::io(format!("cannot read {}", path.display()), e);
    let file = source::open_source(path).map_err(fail)?;
    // Before and after reading, stat the open file: its inode stays the
    // same (times of /sys files change when their inode is made again).
    let opened = file.metadata().map_err(fail)?;
    let regions = source::data_regions(&file, &opened).map_err(fail)?;
    let mut extents = Vec::new();
    let mut position = 0u64;
    let mut reached_end = false;
    let tally = archiver.file_tally(new);
    for (offset, length) in regions {
        if offset > position {
            extents.push(Extent::Hole {
                len: offset - position,
            });
        }
        let reader = source::region_reader(&file, offset, length).map_err(fail)?;
        // The last region of a file that is not sparse runs to its end.
        let to_end = length == u64::MAX;
        let expected = if to_end { opened.len() } else { length };
        let read = archiver
            .store_chunks(
                reader,
                Some(expected),
                &mut extents,
                blob_tx,
                tally.as_ref(),
            )
            .map_err(|e| e.context(path.display()))?;
        position = offset + read;
        // A region that reads short ends the file: padding it to the
        // stat size would store bytes the file never held.
        reached_end = to_end || read < length;
        if reached_end {
            break;
        }
    }
    // A trailing hole is known from the data regions, not read.
    if !reached_end && opened.len() > position {
        extents.push(Extent::Hole {
            len: opened.len() - position,
        });
        position = opened.len();
    }
    let after = file.metadata().map_err(fail)?;
    if let Some(change) = change_while_read(&opened, &after) {
        archiver.counters.changed_while_read.fetch_add(1, Relaxed);
        archiver.warn(format!(
            "{} changed while it was read ({change}): the snapshot holds the {position} bytes read, which may mix old and new content",
            path.display()
        ));
    }
    if let Some(tally) = &tally {
        tally.read_whole();
    }
    // The chunks were counted as they were read; the holes were not read.
    let holes: u64 = extents
        .iter()
        .filter(|e| matches!(e, Extent::Hole { .. }))
        .map(Extent::len)
        .sum();
    archiver.progress.add(1, holes);
    Ok((extents, position))
}

/// How a file changed between the stat before it was read and the one
/// after, if it did: its size, or its mtime (rewritten in place).
fn change_while_read(before: &std::fs::Metadata, after: &std::fs::Metadata) -> Option<String> {
    if before.len() != after.len() {
        Some(format!(
            "its size went from {} to {} bytes",
            before.len(),
            after.len()
        ))
    } else if (before.mtime(), before.mtime_nsec()) != (after.mtime(), after.mtime_nsec()) {
        Some("it was modified".into())
    } else {
        None
    }
}
