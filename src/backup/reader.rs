//! The reader threads: each takes a file the walker found new or changed,
//! reads it (holes are recorded, not read), chunks and hashes it, queues
//! the chunks the repository lacks for the packers, and answers with the
//! file's extents.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::archiver::Archiver;
use super::changed::FileTally;
use super::packer::NewBlob;
use super::semaphore::Semaphore;
use super::source;
use crate::error::{Error, Result};
use crate::tree::Extent;

/// Threads reading files, at the least.
pub(super) const READERS: usize = 6;
/// Files larger than a chunk that may be read at once.
pub(super) const LARGE_FILES_AT_ONCE: usize = 2;
/// A batch is sent once it holds this many files, or files of this many
/// bytes in all: one hand-off between threads per batch, not per file, is
/// what lets a tree of small files go at the speed of its system calls.
const BATCH_FILES: usize = 64;
const BATCH_BYTES: u64 = 1 << 20;

/// A file's content as extents, and its size as read.
pub(super) type FileContent = (Vec<Extent>, u64);

/// A file for a reader to read.
pub(super) struct ReadRequest {
    pub path: PathBuf,
    /// The walker's `lstat` of the file, which its tree node records.
    pub metadata: std::fs::Metadata,
    /// Whether the parent snapshot has a file at this path.
    pub changed: bool,
}

/// Files of one directory that one reader reads in turn, and where to
/// send their contents, in the same order.
pub(super) struct ReadBatch {
    files: Vec<ReadRequest>,
    reply: Sender<Vec<Result<FileContent>>>,
}

/// The reads of one directory's files: they are sent in batches as the
/// walker adds them, and their contents come back in the order added.
pub(super) struct DirectoryReads<'a> {
    requests: &'a Sender<ReadBatch>,
    filling: Vec<ReadRequest>,
    filling_bytes: u64,
    sent: VecDeque<Receiver<Vec<Result<FileContent>>>>,
    received: std::vec::IntoIter<Result<FileContent>>,
}

impl<'a> DirectoryReads<'a> {
    pub fn new(requests: &'a Sender<ReadBatch>) -> DirectoryReads<'a> {
        DirectoryReads {
            requests,
            filling: Vec::new(),
            filling_bytes: 0,
            sent: VecDeque::new(),
            received: Vec::new().into_iter(),
        }
    }

    pub fn add(&mut self, file: ReadRequest) -> Result<()> {
        self.filling_bytes += file.metadata.len();
        self.filling.push(file);
        if self.filling.len() >= BATCH_FILES || self.filling_bytes >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<()> {
        if self.filling.is_empty() {
            return Ok(());
        }
        let (reply, replies) = crossbeam_channel::bounded(1);
        let batch = ReadBatch {
            files: std::mem::take(&mut self.filling),
            reply,
        };
        self.filling_bytes = 0;
        self.requests
            .send(batch)
            .map_err(|_| Error::internal("the reader threads stopped"))?;
        self.sent.push_back(replies);
        Ok(())
    }

    /// The content of the next file added (the outer error: no reader
    /// answered).
    pub fn next_content(&mut self) -> Result<Result<FileContent>> {
        loop {
            if let Some(content) = self.received.next() {
                return Ok(content);
            }
            if self.sent.is_empty() {
                self.send()?;
            }
            let replies = self
                .sent
                .pop_front()
                .ok_or_else(|| Error::internal("more file contents awaited than files read"))?;
            self.received = replies
                .recv()
                .map_err(|_| Error::internal("a reader thread stopped"))?
                .into_iter();
        }
    }
}

/// One reader thread: answers batches until the walker drops its end of
/// the queue. Reading small files is waiting on the disk, which several
/// readers overlap; large files stream, `large_files` at a time, so memory
/// stays bounded however many readers there are.
pub(super) fn serve(
    archiver: &Archiver,
    requests: &Receiver<ReadBatch>,
    blob_tx: &Sender<NewBlob>,
    large_files: &Semaphore,
) {
    let chunk_max = archiver.repo.config().chunker.max_size as u64;
    for batch in requests.iter() {
        let contents = batch
            .files
            .iter()
            .map(|request| {
                let _permit = (request.metadata.len() > chunk_max).then(|| large_files.acquire());
                read_file(archiver, request, blob_tx)
            })
            .collect();
        let _ = batch.reply.send(contents);
    }
}

/// A file's content as extents, as it was read: holes are recorded, not
/// read; the file ends where reading found its end, whatever stat said
/// (a /sys file claims 4096 bytes and holds a few; a file may shrink or
/// grow while it is read). A change during the read is warned about.
///
/// The walker's `lstat` stands for the stat before reading: the stat of
/// the open file after reading is compared with it, so a change between
/// the two (or the file replaced by another) is still found, with one
/// system call less per file (`docs/design.md`, section 1.1).
fn read_file(
    archiver: &Archiver,
    request: &ReadRequest,
    blob_tx: &Sender<NewBlob>,
) -> Result<FileContent> {
    let path = &request.path;
    let before = &request.metadata;
    let fail = |e: std::io::Error| Error::io(format!("cannot read {}", path.display()), e);
    let file = source::open_source(path).map_err(fail)?;
    let regions = source::data_regions(&file, before).map_err(fail)?;
    let mut extents = Vec::new();
    let mut position = 0u64;
    let mut reached_end = false;
    let tally = archiver.file_tally(!request.changed);
    let chunk_max = archiver.repo.config().chunker.max_size as u64;
    for (offset, length) in regions {
        if offset > position {
            extents.push(Extent::Hole {
                len: offset - position,
            });
        }
        // The last region of a file that is not sparse runs to its end.
        let to_end = length == u64::MAX;
        let expected = if to_end { before.len() } else { length };
        let stored = if to_end && offset == 0 && expected <= chunk_max {
            store_small_file(archiver, &file, expected, &mut extents, blob_tx, &tally)
        } else {
            let reader = source::region_reader(&file, offset, length).map_err(fail)?;
            archiver.store_chunks(
                reader,
                Some(expected),
                &mut extents,
                blob_tx,
                tally.as_ref(),
            )
        };
        let read = stored.map_err(|e| e.context(path.display()))?;
        position = offset + read;
        // A region that reads short ends the file: padding it to the
        // stat size would store bytes the file never held.
        reached_end = to_end || read < length;
        if reached_end {
            break;
        }
    }
    // A trailing hole is known from the data regions, not read.
    if !reached_end && before.len() > position {
        extents.push(Extent::Hole {
            len: before.len() - position,
        });
        position = before.len();
    }
    let after = file.metadata().map_err(fail)?;
    if let Some(change) = change_while_read(before, &after) {
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

/// Stores a file of at most a chunk that stat says is `size` bytes long,
/// asking for one byte more in one read: a read that stops at `size`
/// finds the end of the file without a second read that returns nothing.
/// A file that is longer (grown, or a /proc file that claims 0 bytes) is
/// read on to its end. Returns the bytes read.
fn store_small_file(
    archiver: &Archiver,
    file: &File,
    size: u64,
    extents: &mut Vec<Extent>,
    blob_tx: &Sender<NewBlob>,
    tally: &Option<Arc<FileTally>>,
) -> Result<u64> {
    let mut data = vec![0u8; size as usize + 1];
    let mut filled = 0;
    let mut reader = file;
    while filled < data.len() {
        match reader.read(&mut data[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                // Short of what was asked, at the size stat gave: the end.
                if filled as u64 == size {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read failed", e)),
        }
    }
    let grew = filled == data.len();
    data.truncate(filled);
    let head = std::io::Cursor::new(data);
    if grew {
        archiver.store_chunks(head.chain(file), None, extents, blob_tx, tally.as_ref())
    } else {
        archiver.store_chunks(head, Some(filled as u64), extents, blob_tx, tally.as_ref())
    }
}

/// How a file changed between the stat before it was read and the one
/// after, if it did: replaced by another file, its size, or its mtime
/// (rewritten in place).
fn change_while_read(before: &std::fs::Metadata, after: &std::fs::Metadata) -> Option<String> {
    if (before.dev(), before.ino()) != (after.dev(), after.ino()) {
        Some("it was replaced by another file".into())
    } else if before.len() != after.len() {
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
