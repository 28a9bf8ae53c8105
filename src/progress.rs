//! Counts of long work as it goes (files or packs, and bytes: done, and
//! of how many), shared by the threads that do the work and read by
//! whoever shows them. The library only counts; the `rewind` binary draws
//! a bar, prints a line now and then, or JSON (`docs/design.md`, section
//! 1.4, "Progress").
//!
//! A [`Progress`] that nobody watches (the default) counts nothing, so an
//! operation reports unconditionally and costs nothing when unwatched.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where an operation reports how far it got; cheap to clone (every
/// clone counts into the same counters).
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Counters>>);

#[derive(Default)]
struct Counters {
    /// The current stage and when it began; `None` before the first.
    stage: Mutex<Option<(Stage, Instant)>>,
    /// Bumped by every `begin`, so that a reader sees a new stage even
    /// when it has the same name.
    stage_number: AtomicU64,
    items_done: AtomicU64,
    items_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    estimated: AtomicBool,
}

/// `items_total` and `bytes_total` when unknown.
const UNKNOWN: u64 = u64::MAX;

/// One part of an operation, with what it counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stage {
    /// What the work is, e.g. "restore", "repack".
    pub name: &'static str,
    /// What the items are, e.g. "files", "packs"; empty when the stage
    /// counts no items.
    pub items: &'static str,
}

/// How much work a stage holds, as far as it is known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub items: Option<u64>,
    pub bytes: Option<u64>,
    /// The totals are a guess (a backup takes its parent snapshot's):
    /// the work may end before or after them.
    pub estimated: bool,
}

impl Totals {
    pub const UNKNOWN: Totals = Totals {
        items: None,
        bytes: None,
        estimated: false,
    };

    pub fn known(items: Option<u64>, bytes: Option<u64>) -> Totals {
        Totals {
            items,
            bytes,
            estimated: false,
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub stage: Stage,
    pub began: Instant,
    /// Changes when a new stage begins.
    pub stage_number: u64,
    pub items_done: u64,
    pub bytes_done: u64,
    pub totals: Totals,
}

impl Progress {
    /// A progress that counts, for someone who reads it.
    pub fn counting() -> Progress {
        Progress(Some(Arc::default()))
    }

    /// Whether anyone reads the counts: work that exists only to report
    /// (adding up a total) can be skipped when not.
    pub fn is_watched(&self) -> bool {
        self.0.is_some()
    }

    /// Starts a stage: the counts start again from zero.
    pub fn begin(&self, name: &'static str, items: &'static str, totals: Totals) {
        let Some(c) = &self.0 else { return };
        let mut stage = c.stage.lock().unwrap();
        c.items_done.store(0, Relaxed);
        c.bytes_done.store(0, Relaxed);
        self.set_totals(totals);
        c.stage_number.fetch_add(1, Relaxed);
        *stage = Some((Stage { name, items }, Instant::now()));
    }

    /// Changes the current stage's totals (once they are known).
    pub fn set_totals(&self, totals: Totals) {
        let Some(c) = &self.0 else { return };
        c.items_total
            .store(totals.items.unwrap_or(UNKNOWN), Relaxed);
        c.bytes_total
            .store(totals.bytes.unwrap_or(UNKNOWN), Relaxed);
        c.estimated.store(totals.estimated, Relaxed);
    }

    /// Counts work done: `items` finished, `bytes` processed.
    pub fn add(&self, items: u64, bytes: u64) {
        let Some(c) = &self.0 else { return };
        if items > 0 {
            c.items_done.fetch_add(items, Relaxed);
        }
        if bytes > 0 {
            c.bytes_done.fetch_add(bytes, Relaxed);
        }
    }

    /// Counts bytes processed, not yet a whole item.
    pub fn add_bytes(&self, bytes: u64) {
        self.add(0, bytes);
    }

    /// Raises the counts to at least these: for work that knows how much
    /// is done once a part of it ends, though not along the way.
    pub fn reach(&self, items: u64, bytes: u64) {
        let Some(c) = &self.0 else { return };
        c.items_done.fetch_max(items, Relaxed);
        c.bytes_done.fetch_max(bytes, Relaxed);
    }

    /// The counts now; `None` if nobody watches, or before the first stage.
    pub fn read(&self) -> Option<Reading> {
        let c = self.0.as_ref()?;
        let (stage, began) = (*c.stage.lock().unwrap())?;
        let known = |total: u64| (total != UNKNOWN).then_some(total);
        Some(Reading {
            stage,
            began,
            stage_number: c.stage_number.load(Relaxed),
            items_done: c.items_done.load(Relaxed),
            bytes_done: c.bytes_done.load(Relaxed),
            totals: Totals {
                items: known(c.items_total.load(Relaxed)),
                bytes: known(c.bytes_total.load(Relaxed)),
                estimated: c.estimated.load(Relaxed),
            },
        })
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.0, self.read()) {
            (_, Some(reading)) => reading.fmt(f),
            (Some(_), None) => f.write_str("Progress(not begun)"),
            (None, _) => f.write_str("Progress(unwatched)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwatched_counts_nothing() {
        let progress = Progress::default();
        progress.begin("restore", "files", Totals::known(Some(3), Some(30)));
        progress.add(1, 10);
        assert!(!progress.is_watched());
        assert_eq!(progress.read(), None);
    }

    #[test]
    fn clones_share_counts_and_a_stage_starts_from_zero() {
        let progress = Progress::counting();
        let worker = progress.clone();
        assert_eq!(progress.read(), None, "nothing to show before a stage");
        progress.begin("scan", "trees", Totals::UNKNOWN);
        worker.add(2, 0);
        worker.add_bytes(5);
        let first = progress.read().unwrap();
        assert_eq!((first.items_done, first.bytes_done), (2, 5));
        assert_eq!(first.totals, Totals::UNKNOWN);

        progress.begin("repack", "packs", Totals::known(Some(4), Some(400)));
        worker.add(1, 100);
        worker.reach(3, 50);
        let second = progress.read().unwrap();
        assert_ne!(second.stage_number, first.stage_number);
        assert_eq!(
            second.stage,
            Stage {
                name: "repack",
                items: "packs"
            }
        );
        assert_eq!((second.items_done, second.bytes_done), (3, 100));
        assert_eq!(second.totals.bytes, Some(400));
    }
}
