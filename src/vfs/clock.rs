//! The order in which inodes inside snapshots are considered for
//! forgetting: a clock (second-chance) queue of inode numbers. An inode
//! waits in it until the hand reaches it; one used since the hand last
//! passed goes round again, one not used is handed out. The number of an
//! inode forgotten meanwhile stays until the hand reaches it (or the queue
//! is compacted). Who decides what "used" means, and whether a number
//! still has an inode, is `inodes.rs`.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::numbers::Ino;

/// What the hand found at an inode.
pub enum Found {
    /// Forgotten already, or handed out: it leaves the queue.
    Gone,
    /// Used since the hand last passed: it goes round again.
    Used,
}

#[derive(Default)]
pub struct Clock {
    queue: Mutex<VecDeque<Ino>>,
}

impl Clock {
    /// Queues `ino`, which is not queued yet. `live` says how many inodes
    /// exist: numbers of inodes forgotten while queued are dropped once they
    /// outnumber the living, so the queue stays within twice their number.
    pub fn push(&self, ino: Ino, live: usize, exists: impl Fn(Ino) -> bool) {
        let mut queue = self.queue.lock().unwrap();
        queue.push_back(ino);
        if queue.len() > 2 * live + 1024 {
            queue.retain(|&ino| exists(ino));
        }
    }

    /// Moves the hand over up to `steps` inodes: `visit` says of each
    /// whether it goes round again. Returns how many it visited (fewer when
    /// the queue ran out).
    pub fn sweep(&self, steps: usize, mut visit: impl FnMut(Ino) -> Found) -> usize {
        let mut visited = 0;
        while visited < steps {
            // Not held while visiting: `visit` may take the inode table's
            // lock, and whoever holds that may be queueing an inode.
            let Some(ino) = self.queue.lock().unwrap().pop_front() else {
                break;
            };
            visited += 1;
            if let Found::Used = visit(ino) {
                self.queue.lock().unwrap().push_back(ino);
            }
        }
        visited
    }

    pub fn len(&self) -> usize {
        self.queue.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_inodes_go_round_again_and_the_rest_leave() {
        let clock = Clock::default();
        for ino in 1..=4 {
            clock.push(ino, 4, |_| true);
        }
        let mut seen = Vec::new();
        clock.sweep(6, |ino| {
            seen.push(ino);
            if ino % 2 == 0 && seen.len() <= 4 {
                Found::Used
            } else {
                Found::Gone
            }
        });
        assert_eq!(seen, [1, 2, 3, 4, 2, 4], "2 and 4 got a second chance");
        assert_eq!(clock.len(), 0);
        assert_eq!(clock.sweep(10, |_| Found::Gone), 0);
    }

    #[test]
    fn numbers_of_forgotten_inodes_do_not_pile_up() {
        let clock = Clock::default();
        for ino in 1..=5000 {
            clock.push(ino, 10, |ino| ino > 4990);
        }
        assert!(clock.len() <= 2 * 10 + 1024 + 1, "{}", clock.len());
    }
}
