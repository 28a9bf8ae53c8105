//! The windows of a streamed restore (see `stream.rs`): the one the walk
//! fills, those handed to the workers, and the order in which they are
//! finished. At most [`IN_FLIGHT`] windows are out at once, so what the
//! restore holds depends on the window's size and the tree's depth, not on
//! how many files it has (`docs/design.md`, section 6).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

use super::batches::{self, Unit};
use super::parts::SplitFiles;
use super::{DirJob, Failure, FileJob, LinkJob, Planned, Restorer};

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
    pub seq: u64,
    pub files: Vec<FileJob>,
    pub links: Vec<LinkJob>,
    pub dirs: Vec<DirJob>,
    pub units: Vec<Unit>,
    pub split: SplitFiles,
    /// Units not yet done.
    pub left: AtomicUsize,
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
pub(super) type Message = (Arc<Window>, usize);

/// The windows handed out, and the channels to the workers.
pub(super) struct Stream {
    units: Option<Sender<Message>>,
    done: Receiver<u64>,
    in_flight: VecDeque<Arc<Window>>,
    finished: HashSet<u64>,
    next_seq: u64,
}

impl Stream {
    /// A stream that sends units on `units` and hears of finished windows
    /// on `done`.
    pub fn new(units: Sender<Message>, done: Receiver<u64>) -> Stream {
        Stream {
            units: Some(units),
            done,
            in_flight: VecDeque::new(),
            finished: HashSet::new(),
            next_seq: 0,
        }
    }

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
