//! A counting semaphore on a bounded channel: it limits how many large
//! files the readers stream at once.

use crossbeam_channel::{Receiver, Sender};

pub(super) struct Semaphore {
    tokens: (Sender<()>, Receiver<()>),
}

impl Semaphore {
    pub fn new(permits: usize) -> Semaphore {
        let tokens = crossbeam_channel::bounded(permits);
        for _ in 0..permits {
            tokens.0.send(()).expect("room for every permit");
        }
        Semaphore { tokens }
    }

    /// Waits for a permit; it is given back when dropped.
    pub fn acquire(&self) -> Permit<'_> {
        self.tokens.1.recv().expect("the semaphore owns its sender");
        Permit(&self.tokens.0)
    }
}

pub(super) struct Permit<'a>(&'a Sender<()>);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}
