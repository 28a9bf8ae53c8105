//! The streamed restore: the walk (`plan.rs`) fills a window with files,
//! hardlinks and directories done; a full window is cut into units
//! (`batches.rs`) that the workers restore on several threads while the
//! walk fills the next. Once a window and every one before it are done,
//! its hardlinks are made and the metadata of its directories set, deepest
//! first. The windows themselves are `windows.rs`.

use std::os::fd::AsFd;
use std::sync::atomic::{Ordering::AcqRel, Ordering::Relaxed};

use super::plan::Planner;
use super::target::{apply_metadata, check_kind, remove_other_xattrs};
use super::windows::{Message, Stream, Window};
use super::work::Tally;
use super::{Action, DirJob, LinkJob, Overwrite, RestoreReport, Restorer};
use crate::error::{Error, ErrorKind, Result};
use crate::tree::{Node, NodeKind};

/// Runs the restore: `walk` plans the tree through a [`Planner`] while the
/// workers write its windows.
pub(super) fn run<'a>(
    restorer: &Restorer<'a>,
    tally: &Tally,
    walk: impl FnOnce(&mut Planner<'_, 'a>) -> Result<()> + Send,
) -> Result<RestoreReport> {
    let (units, units_out) = crossbeam_channel::unbounded::<Message>();
    let (done_in, done) = crossbeam_channel::unbounded::<u64>();
    std::thread::scope(|scope| {
        for _ in 0..restorer.threads {
            let (units, done) = (units_out.clone(), done_in.clone());
            scope.spawn(move || {
                for (window, unit) in units {
                    // Once cancelled, units are counted done unwritten.
                    if !restorer.options.cancel.is_set() {
                        restorer.restore_unit(&window, unit, tally);
                    }
                    if window.left.fetch_sub(1, AcqRel) == 1 {
                        let _ = done.send(window.seq);
                    }
                }
            });
        }
        drop((units_out, done_in));
        let stream = Stream::new(units, done);
        crate::tree::with_deep_stack(|| {
            let mut planner = Planner::new(restorer, stream);
            let walked = walk(&mut planner);
            if walked.is_ok() {
                planner.submit();
            }
            planner.drain();
            walked?;
            planner.end(tally)
        })
    })
}

impl Planner<'_, '_> {
    /// The report, once every window is done.
    fn end(mut self, tally: &Tally) -> Result<RestoreReport> {
        if self.options.cancel.is_set() {
            return Err(Error::interrupted(
                "the restore was interrupted; what was written is complete, and running the same command again finishes it",
            ));
        }
        let report = &mut self.report;
        report.files += tally.files.load(Relaxed);
        report.bytes += tally.bytes.load(Relaxed);
        report.kept += tally.kept.load(Relaxed);
        report.kept_bytes += tally.kept_bytes.load(Relaxed);
        report.skipped += tally.skipped.load(Relaxed);
        report.verified += tally.verified.load(Relaxed);
        Ok(self.report)
    }

    /// A window whose files, and those of every window before it, are
    /// done: its failures go to the report, then its hardlinks are made and
    /// its directories' metadata set. An interrupted restore removes what
    /// it left half written and sets nothing.
    pub(super) fn finish_window(&mut self, window: &Window) {
        for file in window.split.unfinished() {
            let _ = self.target.remove(&window.files[file].rel, false);
        }
        let outcome = std::mem::take(&mut *window.outcome.lock().unwrap());
        let mut planned = outcome.planned;
        planned.sort_by_key(|(i, _)| *i);
        self.report
            .planned
            .extend(planned.into_iter().map(|(_, p)| p));
        for failure in outcome.failures {
            self.report.add_failure(failure);
        }
        self.failed_links.extend(outcome.failed_links);
        if self.options.cancel.is_set() {
            return;
        }
        self.restore_links(&window.links);
        self.restore_dir_metadata(&window.dirs);
    }

    fn restore_links(&mut self, links: &[LinkJob]) {
        for job in links {
            if self.failed_links.contains(&job.first) {
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

    /// Deepest first (the order the walk finished them), so that setting a
    /// directory's times is the last touch.
    fn restore_dir_metadata(&mut self, dirs: &[DirJob]) {
        if self.options.dry_run {
            return;
        }
        for dir in dirs {
            if self.options.overwrite == Overwrite::Never && !dir.inode.created {
                continue;
            }
            if let Err(e) = self.restore_dir_metadatum(dir) {
                self.fail(&dir.snapshot_path, e);
            }
        }
    }
}

impl Restorer<'_> {
    fn restore_link(
        &self,
        rel: &std::path::Path,
        node: &Node,
        first: &std::path::Path,
    ) -> Result<Action> {
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
