//! The changes a diff has found and not yet reported, in the order of the
//! walk, with the content comparisons among them running on worker
//! threads. The walk waits once [`IN_FLIGHT`] are queued, so what it holds
//! is bounded whatever the number of files (`docs/design.md`, section 6).

use std::collections::VecDeque;
use std::thread::Scope;

use crossbeam_channel::{Receiver, Sender};

use super::{Change, Entry};
use crate::error::Result;

/// Changes and comparisons queued at most: enough to keep the workers
/// busy behind one slow file at the head.
const IN_FLIGHT: usize = 256;

/// Two files of the same size, at least one local: compared on a worker.
pub(super) struct Job {
    pub path: String,
    pub a: Entry,
    pub b: Entry,
    /// What differs in metadata, reported with the content's verdict.
    pub metadata: Vec<String>,
}

/// What comes out of the queue, in the order it went in.
pub(super) enum Done {
    Change(Change),
    /// A job and whether its two files hold the same bytes.
    Compared(Box<Job>, Result<bool>),
}

enum Slot {
    Change(Change),
    Comparing(Receiver<Verdict>),
}

/// A job and whether its two files hold the same bytes.
type Verdict = (Box<Job>, Result<bool>);

/// A job and where its verdict goes.
type Work = (Box<Job>, Sender<Verdict>);

pub(super) struct Queue {
    slots: VecDeque<Slot>,
    /// Dropped with the queue, which ends the workers.
    work: Sender<Work>,
}

impl Queue {
    /// A queue whose jobs `same_content` decides on a few threads of
    /// `scope`; they end when the queue is dropped.
    pub fn start<'scope>(
        scope: &'scope Scope<'scope, '_>,
        same_content: impl Fn(&Job) -> Result<bool> + Send + Sync + 'scope,
    ) -> Queue {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8);
        let (work, todo) = crossbeam_channel::bounded::<Work>(IN_FLIGHT);
        let same_content = std::sync::Arc::new(same_content);
        for _ in 0..threads {
            let (todo, same_content) = (todo.clone(), same_content.clone());
            scope.spawn(move || {
                for (job, answer) in todo {
                    let same = same_content(&job);
                    // The walk has stopped (an error) when no one waits.
                    let _ = answer.send((job, same));
                }
            });
        }
        Queue {
            slots: VecDeque::new(),
            work,
        }
    }

    pub fn push_change(&mut self, change: Change) {
        self.slots.push_back(Slot::Change(change));
    }

    pub fn push_job(&mut self, job: Job) {
        let (answer, verdict) = crossbeam_channel::bounded(1);
        self.slots.push_back(Slot::Comparing(verdict));
        // At most IN_FLIGHT slots, so the channel has room.
        self.work
            .send((Box::new(job), answer))
            .expect("the workers live as long as the queue");
    }

    /// The next item in order that is done: waits for it while the queue
    /// is full, or `until_empty`; `None` when the head is not done.
    pub fn next_done(&mut self, until_empty: bool) -> Option<Done> {
        let wait = until_empty || self.slots.len() >= IN_FLIGHT;
        let done = match self.slots.front()? {
            Slot::Change(_) => None,
            Slot::Comparing(verdict) if wait => Some(
                verdict
                    .recv()
                    .expect("a worker answers every job it takes (it panicked otherwise)"),
            ),
            Slot::Comparing(verdict) => Some(verdict.try_recv().ok()?),
        };
        match (self.slots.pop_front(), done) {
            (Some(Slot::Change(change)), _) => Some(Done::Change(change)),
            (Some(Slot::Comparing(_)), Some((job, same))) => Some(Done::Compared(job, same)),
            _ => unreachable!("the head was looked at above"),
        }
    }
}
