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

pub struct ReadAhead {
    state: Mutex<State>,
    work: Condvar,
    capacity: usize,
}

struct State {
    queue: VecDeque<Id>,
    closed: bool,
}

impl ReadAhead {
    /// Starts `threads` workers that call `fetch` for each queued chunk; at
    /// most `capacity` chunks wait.
    pub fn start(
        threads: usize,
        capacity: usize,
        fetch: impl Fn(&Id) + Send + Sync + 'static,
    ) -> Result<Arc<ReadAhead>> {
        let read_ahead = Arc::new(ReadAhead {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            work: Condvar::new(),
            capacity,
        });
        let fetch = Arc::new(fetch);
        for _ in 0..threads.max(1) {
            let (read_ahead, fetch) = (Arc::clone(&read_ahead), Arc::clone(&fetch));
            std::thread::Builder::new()
                .name("rewind-readahead".into())
                .spawn(move || {
                    while let Some(id) = read_ahead.next() {
                        fetch(&id);
                    }
                })
                .map_err(|e| Error::io("cannot start read-ahead threads", e))?;
        }
        Ok(read_ahead)
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
        let read_ahead = {
            let (fetched, gate) = (Arc::clone(&fetched), Arc::clone(&gate));
            ReadAhead::start(1, 2, move |_| {
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
        assert!(read_ahead.offer(Id([1; 32])));
        let start = Instant::now();
        while read_ahead.state.lock().unwrap().queue.len() == 1 {
            assert!(start.elapsed() < Duration::from_secs(5));
            std::thread::yield_now();
        }
        assert!(read_ahead.offer(Id([2; 32])));
        assert!(read_ahead.offer(Id([3; 32])));
        assert!(!read_ahead.offer(Id([4; 32])), "full");
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        while fetched.load(SeqCst) < 3 {
            assert!(start.elapsed() < Duration::from_secs(5));
            std::thread::yield_now();
        }
        read_ahead.close();
        assert!(read_ahead.next().is_none());
    }
}
