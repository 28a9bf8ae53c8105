//! How many inodes inside snapshots the mount keeps at once. The kernel
//! forgets inodes only when it drops their cached names, which, with memory
//! to spare, it may never do: a `tar` of a million files would leave a
//! million inodes held. Past a budget, the least recently used are named to
//! the kernel as gone (`crate::fuse` sends the notices); the kernel drops
//! the names no process is using, and its FORGETs let `inodes.rs` drop the
//! inodes. A name dropped that way costs a LOOKUP if it is used again.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use super::inodes::{Ino, Inodes};

/// Names handed out at a time: the kernel's FORGETs for one batch come in
/// before the next is chosen, so that a directory forgotten with all its
/// entries is not followed by more than needed.
const BATCH: usize = 256;

pub struct WorkingSet {
    inodes: Arc<Inodes>,
    budget: usize,
    /// Between going over the budget and getting back to three quarters of it.
    trimming: AtomicBool,
}

impl WorkingSet {
    /// At most `budget` inodes inside snapshots (at least one).
    pub fn new(inodes: Arc<Inodes>, budget: usize) -> WorkingSet {
        WorkingSet {
            inodes,
            budget: budget.max(1),
            trimming: AtomicBool::new(false),
        }
    }

    /// The next names (directory, name) the kernel should forget. Waits up
    /// to `timeout` for the inodes to outgrow the budget, and returns
    /// nothing if they did not, or if none is cold enough to give up.
    pub fn surplus(&self, timeout: Duration) -> Vec<(Ino, Vec<u8>)> {
        if !self.trimming.load(Relaxed) {
            if !self.inodes.wait_for_more_than(self.budget, timeout) {
                return Vec::new();
            }
            self.trimming.store(true, Relaxed);
        }
        let low_water = self.budget - self.budget / 4;
        let excess = self.inodes.entries().saturating_sub(low_water);
        if excess == 0 {
            self.trimming.store(false, Relaxed);
            return Vec::new();
        }
        // The entries of the directories being walked are spared, so that
        // a walk is not made to look them up again, until they alone
        // would double the budget: a listing of a directory of a million
        // entries then keeps the newest, not the million.
        let spare_walked = self.inodes.entries() <= self.budget.saturating_mul(2);
        let cold = self.inodes.cold(excess.min(BATCH), spare_walked);
        if cold.is_empty() {
            // All in use (open files, working directories): look again
            // later rather than spin.
            self.trimming.store(false, Relaxed);
            std::thread::sleep(timeout);
        }
        cold
    }
}
