//! What the workers do: restore the files of a unit of a window, largest
//! first, small ones in batches whose chunks are read together.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use super::batches::{self, Unit};
use super::content::{compare_file, reads_as_zeros};
use super::target::{apply_open_metadata, remove_other_xattrs};
use super::windows::Window;
use super::work::{Chunks, Tally};
use super::{Action, Failure, FileJob, Planned, Restorer};
use crate::error::{Error, ErrorKind, Result};
use crate::tree::{Extent, Node};
use rustix::fs::{FileType, Stat};

impl Restorer<'_> {
    /// Restores unit `unit` of a window, and notes what became of its files.
    pub(super) fn restore_unit(&self, window: &Window, unit: usize, tally: &Tally) {
        let progress = &self.options.progress;
        match &window.units[unit] {
            Unit::Files(range) => {
                let jobs = &window.files[range.clone()];
                let results = self.restore_batch(jobs, tally);
                for (i, result) in range.clone().zip(results) {
                    progress.add(1, window.files[i].node.size);
                    if !self.record(window, i, result) {
                        break;
                    }
                }
            }
            Unit::Part {
                file,
                extents,
                offset,
            } => {
                let job = &window.files[*file];
                let state = window.split.state(*file);
                let part = (extents.clone(), *offset);
                let part_bytes = job.node.content[extents.clone()]
                    .iter()
                    .map(Extent::len)
                    .sum();
                let finished = self.restore_part(job, state, part, tally);
                progress.add_bytes(part_bytes);
                if let Some(result) = finished {
                    progress.add(1, 0);
                    self.record(window, *file, result);
                }
            }
        }
    }

    /// Notes what became of file `i` of a window; false when the restore
    /// was interrupted.
    fn record(&self, window: &Window, i: usize, result: Result<Action>) -> bool {
        let job = &window.files[i];
        let mut outcome = window.outcome.lock().unwrap();
        match result {
            Ok(action) if self.options.dry_run => outcome.planned.push((
                i,
                Planned {
                    action,
                    path: self.target.show(&job.rel),
                },
            )),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return false,
            Err(e) => {
                if job.node.is_hardlinked() {
                    outcome.failed_links.push(job.rel.clone());
                }
                outcome.failures.push(Failure {
                    path: job.snapshot_path.clone(),
                    error: e.to_string(),
                });
            }
        }
        true
    }

    /// Decides what to do with each file of a batch, reads the chunks of
    /// those to be written together, and does it: a result per file.
    fn restore_batch(&self, jobs: &[FileJob], tally: &Tally) -> Vec<Result<Action>> {
        let decided: Vec<_> = jobs
            .iter()
            .map(|job| {
                self.options.cancel.check()?;
                self.decide_file(job)
            })
            .collect();
        let mut chunks = if self.options.dry_run {
            Chunks::default()
        } else {
            let to_write = jobs.iter().zip(&decided).filter(|(_, decided)| {
                matches!(decided, Ok((Action::Create | Action::Replace, _)))
            });
            self.read_chunks(to_write.flat_map(|(job, _)| &job.node.content))
        };
        jobs.iter()
            .zip(decided)
            .map(|(job, decided)| {
                let (action, kept) = decided?;
                self.restore_file(job, action, kept, &mut chunks, tally)
            })
            .collect()
    }

    /// What to do with a file, and the existing file to keep if that is it.
    pub(super) fn decide_file(&self, job: &FileJob) -> Result<(Action, Option<File>)> {
        if job.fresh {
            return Ok((Action::Create, None));
        }
        self.decide(&job.rel, &job.node, |_, stat| {
            self.holds(&job.rel, &job.node, stat)
        })
    }

    /// Reads the data chunks among `extents`, up to `BATCH_BYTES` of them
    /// (a larger file reads the rest in windows as it is written).
    pub(super) fn read_chunks<'e>(&self, extents: impl Iterator<Item = &'e Extent>) -> Chunks {
        let mut ids = Vec::new();
        let mut bytes = 0u64;
        for extent in extents {
            if let Extent::Data { id, len } = extent {
                if bytes + u64::from(*len) > batches::BATCH_BYTES && !ids.is_empty() {
                    break;
                }
                bytes += u64::from(*len);
                ids.push(*id);
            }
        }
        Chunks(self.repo.read_blobs(&ids))
    }

    /// Does what was decided for one file.
    pub(super) fn restore_file(
        &self,
        job: &FileJob,
        action: Action,
        kept: Option<File>,
        chunks: &mut Chunks,
        tally: &Tally,
    ) -> Result<Action> {
        let (rel, node) = (&job.rel, &job.node);
        if !self.options.dry_run {
            match (action, kept) {
                (Action::Create | Action::Replace, _) => {
                    self.write_file(rel, node, action, chunks)?
                }
                (Action::Keep, Some(file)) => {
                    let shown = self.target.show(rel);
                    remove_other_xattrs(file.as_fd(), node, &shown)?;
                    apply_open_metadata(&file, node, &shown)?
                }
                _ => {}
            }
        }
        self.count(action, node, tally);
        Ok(action)
    }

    /// Adds a file that is done to the tally.
    pub(super) fn count(&self, action: Action, node: &Node, tally: &Tally) {
        match action {
            Action::Skip => tally.skipped.fetch_add(1, Relaxed),
            Action::Keep => {
                tally.kept.fetch_add(1, Relaxed);
                tally.kept_bytes.fetch_add(node.size, Relaxed);
                tally
                    .verified
                    .fetch_add(u64::from(self.options.verify), Relaxed);
                tally.files.fetch_add(1, Relaxed)
            }
            _ => {
                tally.bytes.fetch_add(node.size, Relaxed);
                let verified = self.options.verify && !self.options.dry_run;
                tally.verified.fetch_add(u64::from(verified), Relaxed);
                tally.files.fetch_add(1, Relaxed)
            }
        };
    }

    /// The regular file at `rel`, open, if it already holds the node's
    /// content. It is opened without following symlinks and checked on the
    /// open descriptor, which is what is then kept and given its metadata.
    pub(super) fn holds(&self, rel: &Path, node: &Node, stat: &Stat) -> Result<Option<File>> {
        let is_file = FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile;
        if !is_file || stat.st_size as u64 != node.size || !self.links_inside(node, stat) {
            return Ok(None);
        }
        let Ok(file) = self.target.open_file(rel) else {
            return Ok(None);
        };
        let shown = self.target.show(rel);
        let opened = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot inspect {}", shown.display()), e))?;
        if (opened.dev(), opened.ino()) != (stat.st_dev, stat.st_ino) {
            return Ok(None);
        }
        let blob_id = |data: &[u8]| self.repo.blob_id(data);
        let equal = compare_file(blob_id, &file, &shown, node, self.options.cancel)?.is_none();
        Ok(equal.then_some(file))
    }

    /// Whether every hard link of an existing file is one this restore
    /// makes, so that setting its metadata changes nothing outside the
    /// target: a single link, or exactly the snapshot's links of the file.
    fn links_inside(&self, node: &Node, stat: &Stat) -> bool {
        if stat.st_nlink == 1 {
            return true;
        }
        let Some(paths) = self.link_groups.get(&(node.device, node.inode)) else {
            return false;
        };
        paths.len() as u64 == stat.st_nlink
            && paths.iter().all(|p| {
                self.target
                    .lstat(p)
                    .is_ok_and(|m| (m.st_dev, m.st_ino) == (stat.st_dev, stat.st_ino))
            })
    }

    /// Writes a file anew, and gives it its metadata through the descriptor
    /// it was written by; a partly written file is removed.
    fn write_file(
        &self,
        rel: &Path,
        node: &Node,
        action: Action,
        chunks: &mut Chunks,
    ) -> Result<()> {
        let file = self.create_file(rel, action)?;
        let shown = self.target.show(rel);
        let written = self
            .write_extents(&file, &shown, node, (0..node.content.len(), 0), chunks)
            .and_then(|()| self.finish_file(&file, &shown, node));
        drop(file);
        if written.is_err() {
            let _ = self.target.remove(rel, false);
        }
        written
    }

    /// Makes room for a file (`Action::Replace`) and creates it empty.
    pub(super) fn create_file(&self, rel: &Path, action: Action) -> Result<File> {
        self.make_room(rel, action)?;
        self.target
            .create_file(rel)
            .map_err(|e| self.io_error("create", rel, e))
    }

    /// Writes the extents `part.0` of a file's content, the first at
    /// offset `part.1`.
    pub(super) fn write_extents(
        &self,
        file: &File,
        path: &Path,
        node: &Node,
        (extents, start): (std::ops::Range<usize>, u64),
        chunks: &mut Chunks,
    ) -> Result<()> {
        let write_err = |e| Error::io(format!("cannot write {}", path.display()), e);
        let mut written = Vec::new();
        let mut offset = start;
        let content = &node.content[extents];
        for (i, extent) in content.iter().enumerate() {
            self.options.cancel.check()?;
            if let Extent::Data { id, len } = extent {
                if !chunks.has(id) {
                    *chunks = self.read_chunks(content[i..].iter());
                }
                // read_blobs checked the chunk against its id.
                let data = chunks
                    .take(id)
                    .map_err(|e| e.context(format!("{} not restored", path.display())))?;
                // The tree's length must be the chunk's: a crafted one that
                // disagrees would overlap or pad the file's bytes.
                if data.len() as u64 != u64::from(*len) {
                    return Err(Error::corrupt(format!(
                        "{} not restored: its tree gives chunk {} a length of {len} bytes, the chunk has {}",
                        path.display(),
                        id.short(),
                        data.len()
                    ))
                    .with_hint("run `rewind check`: the snapshot's tree is malformed"));
                }
                file.write_all_at(data, offset).map_err(write_err)?;
                if self.options.verify {
                    self.read_back(file, path, data, offset, &mut written)?;
                }
            }
            offset += extent.len();
        }
        Ok(())
    }

    /// Once every extent is written: the file's size (a trailing hole),
    /// with `--verify` its holes, and its metadata.
    pub(super) fn finish_file(&self, file: &File, path: &Path, node: &Node) -> Result<()> {
        let content_len: u64 = node.content.iter().map(Extent::len).sum();
        // The file was created empty and its data written: it already has
        // its size unless it ends in a hole (one syscall less per file).
        if node.size.max(content_len) != data_end(node) {
            file.set_len(node.size.max(content_len))
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        }
        if self.options.verify {
            self.check_holes(file, path, node)?;
        }
        apply_open_metadata(file, node, path)
    }

    /// `--verify`: the bytes read back from the file must be the chunk just
    /// written, which was checked against its id. Comparing with the chunk
    /// in memory proves what hashing the file again would, at a fraction
    /// of the cost.
    fn read_back(
        &self,
        file: &File,
        path: &Path,
        data: &[u8],
        offset: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        buf.resize(data.len(), 0);
        file.read_exact_at(buf, offset)
            .map_err(|e| Error::io(format!("cannot re-read {}", path.display()), e))?;
        if buf.as_slice() != data {
            return Err(Error::corrupt(format!(
                "{}: bytes {offset}..{} differ from the snapshot after writing",
                path.display(),
                offset + data.len() as u64
            )));
        }
        Ok(())
    }

    /// `--verify`: the file has the snapshot's size, and its holes read as zeros.
    fn check_holes(&self, file: &File, path: &Path, node: &Node) -> Result<()> {
        let read_err = |e| Error::io(format!("cannot re-read {}", path.display()), e);
        let size = file.metadata().map_err(read_err)?.len();
        if size != node.size {
            return Err(Error::corrupt(format!(
                "{}: {size} bytes after writing, the snapshot has {}",
                path.display(),
                node.size
            )));
        }
        let mut offset = 0u64;
        for extent in &node.content {
            if let Extent::Hole { len } = extent {
                if !reads_as_zeros(file, offset, *len).map_err(read_err)? {
                    return Err(Error::corrupt(format!(
                        "{}: bytes {offset}..{} are not a hole of zeros after writing",
                        path.display(),
                        offset + len
                    )));
                }
            }
            offset += extent.len();
        }
        Ok(())
    }
}

/// Where a file's data ends: the end of its last data extent.
fn data_end(node: &Node) -> u64 {
    let mut offset = 0;
    let mut end = 0;
    for extent in &node.content {
        offset += extent.len();
        if matches!(extent, Extent::Data { .. }) {
            end = offset;
        }
    }
    end
}
