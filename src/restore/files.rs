//! File contents on several threads (largest first), then hardlinks, then
//! the metadata of directories, deepest first.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use super::batches::{self, Unit};
use super::content::{compare_file, reads_as_zeros};
use super::parts::SplitFiles;
use super::target::{apply_metadata, check_kind, remove_other_xattrs};
use super::work::{Chunks, Tally};
use super::{Action, DirJob, Failure, FileJob, Overwrite, Planned, RestoreReport, Restorer};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::Totals;
use crate::tree::{Extent, Node, NodeKind};
use rustix::fs::{FileType, Stat};

impl Restorer<'_> {
    pub(super) fn run(mut self) -> Result<RestoreReport> {
        // Local: twice the CPUs (reads and writes overlap). Object
        // storage: as many as its requests in flight, since each small
        // file waits for a round trip.
        let threads = if self.options.threads > 0 {
            self.options.threads
        } else {
            let local = std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2)
                * 2;
            self.repo.requests_in_flight().unwrap_or(0).max(local)
        };
        for link in &self.links {
            let key = (link.node.device, link.node.inode);
            self.link_groups
                .entry(key)
                .or_default()
                .push(link.rel.clone());
        }
        let progress = &self.options.progress;
        let total_bytes = self.files.iter().map(|f| f.node.size).sum();
        let total_files = self.files.len() as u64;
        progress.begin(
            "restore",
            "files",
            Totals::known(Some(total_files), Some(total_bytes)),
        );
        let units = batches::plan(
            &mut self.files,
            &self.repo.index(),
            threads,
            !self.options.dry_run,
        );
        let split = SplitFiles::for_units(&units);
        let next = AtomicUsize::new(0);
        let tally = Tally::default();
        let errors = Mutex::new(Vec::new());
        let planned = Mutex::new(Vec::new());
        let failed_paths = Mutex::new(HashSet::new());
        // What became of file `i`; false when the restore was interrupted.
        let report = |i: usize, result: Result<Action>| -> bool {
            let job = &self.files[i];
            match result {
                Ok(action) if self.options.dry_run => planned.lock().unwrap().push((
                    i,
                    Planned {
                        action,
                        path: self.target.show(&job.rel),
                    },
                )),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => return false,
                Err(e) => {
                    failed_paths.lock().unwrap().insert(job.rel.clone());
                    errors.lock().unwrap().push(Failure {
                        path: job.snapshot_path.clone(),
                        error: e.to_string(),
                    });
                }
            }
            true
        };
        std::thread::scope(|scope| {
            for _ in 0..threads.min(units.len().max(1)) {
                scope.spawn(|| loop {
                    if self.options.cancel.is_set() {
                        break;
                    }
                    let Some(unit) = units.get(next.fetch_add(1, Relaxed)) else {
                        break;
                    };
                    match unit {
                        Unit::Files(range) => {
                            let jobs = &self.files[range.clone()];
                            let results = self.restore_batch(jobs, &tally);
                            for (i, result) in range.clone().zip(results) {
                                progress.add(1, self.files[i].node.size);
                                if !report(i, result) {
                                    break;
                                }
                            }
                        }
                        Unit::Part {
                            file,
                            extents,
                            offset,
                        } => {
                            let job = &self.files[*file];
                            let state = split.state(*file);
                            let part = (extents.clone(), *offset);
                            let part_bytes = job.node.content[extents.clone()]
                                .iter()
                                .map(Extent::len)
                                .sum();
                            let finished = self.restore_part(job, state, part, &tally);
                            progress.add_bytes(part_bytes);
                            if let Some(result) = finished {
                                progress.add(1, 0);
                                report(*file, result);
                            }
                        }
                    }
                });
            }
        });
        for file in split.unfinished() {
            let _ = self.target.remove(&self.files[file].rel, false);
        }
        if self.options.cancel.is_set() {
            return Err(Error::interrupted(
                "the restore was interrupted; what was written is complete, and running the same command again finishes it",
            ));
        }
        let mut planned = planned.into_inner().unwrap();
        planned.sort_by_key(|(i, _)| *i);
        self.report
            .planned
            .extend(planned.into_iter().map(|(_, p)| p));
        self.report.files += tally.files.into_inner();
        self.report.bytes += tally.bytes.into_inner();
        self.report.kept += tally.kept.into_inner();
        self.report.kept_bytes += tally.kept_bytes.into_inner();
        self.report.skipped += tally.skipped.into_inner();
        self.report.verified += tally.verified.into_inner();
        self.report.errors.extend(errors.into_inner().unwrap());
        self.restore_links(&failed_paths.into_inner().unwrap());
        self.restore_dir_metadata();
        Ok(self.report)
    }

    /// Decides what to do with each file of a batch, reads the chunks of
    /// those to be written together, and does it: a result per file.
    fn restore_batch(&self, jobs: &[FileJob], tally: &Tally) -> Vec<Result<Action>> {
        let decided: Vec<_> = jobs
            .iter()
            .map(|job| {
                self.options.cancel.check()?;
                self.decide(&job.rel, &job.node, |_, stat| {
                    self.holds(&job.rel, &job.node, stat)
                })
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
                    apply_metadata(file.as_fd(), node, &shown)?
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
        let Some(others) = self.link_groups.get(&(node.device, node.inode)) else {
            return false;
        };
        others.len() as u64 + 1 == stat.st_nlink
            && others.iter().all(|p| {
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
        file.set_len(node.size.max(content_len))
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        if self.options.verify {
            self.check_holes(file, path, node)?;
        }
        apply_metadata(file.as_fd(), node, path)
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

    fn restore_links(&mut self, failed: &HashSet<PathBuf>) {
        for job in std::mem::take(&mut self.links) {
            if failed.contains(&job.first) {
                let error = format!(
                    "{}: not linked, its first link {} failed",
                    self.target.show(&job.rel).display(),
                    self.target.show(&job.first).display()
                );
                self.fail(&job.snapshot_path, error);
                continue;
            }
            match self.restore_link(&job.rel, &job.node, &job.first) {
                Ok(action) => {
                    self.note(action, &job.rel);
                    let file = u64::from(job.node.kind == NodeKind::File);
                    match action {
                        Action::Skip => self.report.skipped += 1,
                        Action::Keep => {
                            self.report.kept += 1;
                            self.report.files += file;
                        }
                        _ => self.report.files += file,
                    }
                }
                Err(e) => self.fail(&job.snapshot_path, e),
            }
        }
    }

    fn restore_link(&self, rel: &Path, node: &Node, first: &Path) -> Result<Action> {
        let (action, _) = self.decide(rel, node, |_, stat| {
            let same = self
                .target
                .lstat(first)
                .is_ok_and(|f| (f.st_dev, f.st_ino) == (stat.st_dev, stat.st_ino));
            Ok(same.then_some(()))
        })?;
        if matches!(action, Action::Create | Action::Replace) && !self.options.dry_run {
            self.make_room(rel, action)?;
            self.target
                .hard_link(first, rel)
                .map_err(|e| self.io_error("link", rel, e))?;
        }
        Ok(action)
    }

    /// Deepest first, so that setting a directory's times is the last touch.
    fn restore_dir_metadata(&mut self) {
        if self.options.dry_run {
            return;
        }
        let dirs = std::mem::take(&mut self.dirs);
        for dir in dirs.iter().rev() {
            if self.options.overwrite == Overwrite::Never && !dir.inode.created {
                continue;
            }
            if let Err(e) = self.restore_dir_metadatum(dir) {
                self.fail(&dir.snapshot_path, e);
            }
        }
    }

    /// Sets a directory's metadata, on the directory this restore made or
    /// found there, never on one that has since taken its place.
    fn restore_dir_metadatum(&self, dir: &DirJob) -> Result<()> {
        let shown = self.target.show(&dir.rel);
        let handle = self
            .target
            .handle(&dir.rel)
            .map_err(|e| self.io_error("open", &dir.rel, e))?;
        let stat = check_kind(handle.as_fd(), &dir.node, &shown)?;
        if dir.inode.id != Some((stat.st_dev, stat.st_ino)) {
            return Err(Error::new(
                ErrorKind::Unsafe,
                format!(
                    "{} was replaced by another directory while it was restored; its metadata was not set",
                    shown.display()
                ),
            ));
        }
        if !dir.inode.created {
            remove_other_xattrs(handle.as_fd(), &dir.node, &shown)?;
        }
        apply_metadata(handle.as_fd(), &dir.node, &shown)
    }
}
