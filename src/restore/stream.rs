//! The streamed restore: the walk (`plan.rs`) fills a window with files,
//! hardlinks and directories done; a full window is cut into units
//! (`batches.rs`) that the workers restore on several threads while the
//! walk fills the next. Once a window and every one before it are done,
//! its hardlinks are made and the metadata of its directories set, deepest
//! first. At most [`IN_FLIGHT`] windows are handed out at once, so what
//! the restore holds depends on the window's size and the tree's depth,
//! not on how many files it has (`docs/design.md`, section 6).

use std::collections::{HashSet, VecDeque};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering::AcqRel, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

use super::batches::{self, Unit};
use super::parts::SplitFiles;
use super::plan::Planner;
use super::target::{apply_metadata, check_kind, remove_other_xattrs};
use super::work::Tally;
use super::{
    Action, DirJob, Failure, FileJob, LinkJob, Overwrite, Planned, RestoreReport, Restorer,
};
use crate::error::{Error, ErrorKind, Result};
use crate::tree::{Node, NodeKind};

/// Entries (files, hardlinks, directories) a window holds at most.
const WINDOW_ENTRIES: usize = 8_192;
/// File content a window stands for at most, so that a directory's
/// metadata waits for no more than this.
const WINDOW_BYTES: u64 = 1 << 30;
/// Windows handed to the workers at once: one being finished while the
/// next keeps the workers busy.
const IN_FLIGHT: usize = 2;

/// The window the walk is filling.
#[derive(Default)]
pub(super) struct Pending {
    files: Vec<FileJob>,
    pub links: Vec<LinkJob>,
    /// Directories whose subtrees are done, deepest first.
    pub dirs: Vec<DirJob>,
    bytes: u64,
}

impl Pending {
    pub fn add_file(&mut self, job: FileJob) {
        self.bytes += job.node.size;
        self.files.push(job);
    }

    pub fn is_full(&self) -> bool {
        self.files.len() + self.links.len() + self.dirs.len() >= WINDOW_ENTRIES
            || self.bytes >= WINDOW_BYTES
    }
}

/// A window handed to the workers.
pub(super) struct Window {
    seq: u64,
    pub files: Vec<FileJob>,
    links: Vec<LinkJob>,
    dirs: Vec<DirJob>,
    pub units: Vec<Unit>,
    pub split: SplitFiles,
    /// Units not yet done.
    left: AtomicUsize,
    pub outcome: Mutex<Outcome>,
}

/// What became of a window's files, beyond the tally's counts.
#[derive(Default)]
pub(super) struct Outcome {
    pub failures: Vec<Failure>,
    /// With a dry run: each file's step, by its place in the window.
    pub planned: Vec<(usize, Planned)>,
    /// Hardlinked files that failed.
    pub failed_links: Vec<std::path::PathBuf>,
}

/// A unit of a window for a worker.
type Message = (Arc<Window>, usize);

/// The windows handed out, and the channels to the workers.
pub(super) struct Stream {
    units: Option<Sender<Message>>,
    done: Receiver<u64>,
    in_flight: VecDeque<Arc<Window>>,
    finished: HashSet<u64>,
    next_seq: u64,
}

impl Stream {
    /// Hands `pending` to the workers; returns the windows now done, in
    /// order, waiting for some if more than [`IN_FLIGHT`] are out.
    pub fn submit(&mut self, restorer: &Restorer, mut pending: Pending) -> Vec<Arc<Window>> {
        let units = batches::plan(
            &mut pending.files,
            &restorer.repo.index(),
            restorer.threads,
            !restorer.options.dry_run,
        );
        let window = Arc::new(Window {
            seq: self.next_seq,
            split: SplitFiles::for_units(&units),
            left: AtomicUsize::new(units.len()),
            files: pending.files,
            links: pending.links,
            dirs: pending.dirs,
            units,
            outcome: Mutex::default(),
        });
        self.next_seq += 1;
        if window.units.is_empty() {
            self.finished.insert(window.seq);
        }
        if let Some(units) = &self.units {
            for unit in 0..window.units.len() {
                units
                    .send((window.clone(), unit))
                    .expect("the workers run until the stream ends");
            }
        }
        self.in_flight.push_back(window);
        self.collect(IN_FLIGHT)
    }

    /// Waits for every window handed out; returns them in order.
    pub fn drain(&mut self) -> Vec<Arc<Window>> {
        self.units = None;
        self.collect(0)
    }

    /// The windows done, in order, once at most `left` are still out.
    fn collect(&mut self, left: usize) -> Vec<Arc<Window>> {
        let mut ready = Vec::new();
        loop {
            self.finished.extend(self.done.try_iter());
            while let Some(front) = self.in_flight.front() {
                if !self.finished.remove(&front.seq) {
                    break;
                }
                ready.extend(self.in_flight.pop_front());
            }
            if self.in_flight.len() <= left {
                return ready;
            }
            match self.done.recv() {
                Ok(seq) => {
                    self.finished.insert(seq);
                }
                // Every worker is gone (one panicked): the scope reports it.
                Err(_) => return ready,
            }
        }
    }
}

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
        let stream = Stream {
            units: Some(units),
            done,
            in_flight: VecDeque::new(),
            finished: HashSet::new(),
            next_seq: 0,
        };
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
