//! The read-ahead workers: threads that fetch chunks into the cache before
//! a reader asks for them.
//!
//! The queue is a mutex and a condition variable rather than a channel:
//! crossbeam's channel spins and yields before it sleeps, which cost 8% of
//! the daemon's CPU time during a `tar` on two cores, where the spinning
//! thread takes the core the reader needs.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use crate::error::{Error, Result};
use crate::repo::Id;

/// The queue of chunks to fetch ahead of readers, and the threads that fetch them.
pub struct ReadAheadWorkers {
    state: Mutex<State>,
    work: Condvar,
    capacity: usize,
}

struct State {
    queue: VecDeque<Id>,
    closed: bool,
}

impl ReadAheadWorkers {
    /// Starts `threads` workers that call `fetch` for each queued chunk; at
    /// most `capacity` chunks wait.
    pub fn start(
        threads: usize,
        capacity: usize,
        fetch: impl Fn(&Id) + Send + Sync + 'static,
    ) -> Result<Arc<ReadAheadWorkers>> {
        let workers = Arc::new(ReadAheadWorkers {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            work: Condvar::new(),
            capacity,
        });
        let fetch = Arc::new(fetch);
        for _ in 0..threads.max(1) {
            let (worker, fetch) = (Arc::clone(&workers), Arc::clone(&fetch));
            let started = std::thread::Builder::new()
                .name("rewind-readahead".into())
                .spawn(move || {
                    while let Some(id) = worker.next() {
                        fetch(&id);
                    }
                });
            if let Err(e) = started {
                // The workers already started must not wait forever.
                workers.close();
                return Err(Error::io("cannot start read-ahead threads", e));
            }
        }
        Ok(workers)
    }

    /// Queues a chunk; false when the queue is full (the workers are
    /// behind, and the reader had better fetch for itself).
    pub fn offer(&self, id: Id) -> bool {
        let mut state = self.state.lock().unwrap();
        if state.queue.len() >= self.capacity {
            return false;
        }
        state.queue.push_back(id);
        self.work.notify_one();
        true
    }

    fn next(&self) -> Option<Id> {
        let mut state = self.state.lock().unwrap();
        loop {
            if state.closed {
                return None;
            }
            if let Some(id) = state.queue.pop_front() {
                return Some(id);
            }
            state = self.work.wait(state).unwrap();
        }
    }

    /// Ends the workers once they finish the chunk in hand.
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.work.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::{Duration, Instant};

    #[test]
    fn fetches_what_is_offered_refuses_when_full_and_closes() {
        let fetched = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let workers = {
            let (fetched, gate) = (Arc::clone(&fetched), Arc::clone(&gate));
            ReadAheadWorkers::start(1, 2, move |_| {
                let (open, opened) = &*gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = opened.wait(open).unwrap();
                }
                fetched.fetch_add(1, SeqCst);
            })
            .unwrap()
        };
        // The worker holds one chunk at the gate; two more fill the queue.
        assert!(workers.offer(Id([1; 32])));
        let start = Instant::now();
        while workers.state.lock().unwrap().queue.len() == 1 {
            assert!(start.elapsed() < Duration::from_secs(5));
            std::thread::yield_now();
        }
        assert!(workers.offer(Id([2; 32])));
        assert!(workers.offer(Id([3; 32])));
        assert!(!workers.offer(Id([4; 32])), "full");
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        while fetched.load(SeqCst) < 3 {
            assert!(start.elapsed() < Duration::from_secs(5));
            std::thread::yield_now();
        }
        workers.close();
        assert!(workers.next().is_none());
    }
}
