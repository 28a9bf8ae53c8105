//! Which source snapshots a destination has, and which earlier copy a new
//! one can lean on. Snapshot ids name manifest files, so the same snapshot
//! has another id in each repository: a copy records in `original` the id
//! of the snapshot it stands for (its origin), and copies of copies keep it.

use crate::error::Result;
use crate::id::{Id, IdMap, IdSet};
use crate::repo::{sort_by_time, Snapshot};

use super::CopySelection;

/// The selected source snapshots, oldest first.
pub(super) fn select(snapshots: &[Snapshot], selection: &CopySelection) -> Result<Vec<Snapshot>> {
    let mut selected: Vec<Snapshot> = if selection.selectors.is_empty() {
        snapshots
            .iter()
            .filter(|s| selection.filter.accepts(s))
            .cloned()
            .collect()
    } else {
        let mut seen = IdSet::default();
        let mut chosen = Vec::new();
        for selector in &selection.selectors {
            let snapshot = selector
                .select(snapshots, &selection.filter)
                .map_err(|e| e.context("in the source repository"))?;
            if seen.insert(snapshot.id) {
                chosen.push(snapshot.clone());
            }
        }
        chosen
    };
    sort_by_time(&mut selected);
    Ok(selected)
}

/// The destination's snapshots, found by what they stand for.
pub(super) struct Copies {
    snapshots: Vec<Snapshot>,
    by_origin: IdMap<usize>,
}

impl Copies {
    pub fn new(dest_snapshots: &[Snapshot]) -> Copies {
        let mut copies = Copies {
            snapshots: Vec::new(),
            by_origin: IdMap::default(),
        };
        for snapshot in dest_snapshots {
            copies.add(snapshot.clone());
        }
        copies
    }

    pub fn add(&mut self, snapshot: Snapshot) {
        self.by_origin
            .insert(snapshot.origin(), self.snapshots.len());
        self.snapshots.push(snapshot);
    }

    /// The destination snapshot that stands for `snapshot`: a copy of its
    /// origin, or else one with the same time, host and paths (and root
    /// tree, when the two repositories share ids, so that trees compare).
    pub fn find(&self, snapshot: &Snapshot, same_ids: bool) -> Option<&Snapshot> {
        self.copy_of(snapshot).or_else(|| {
            self.snapshots.iter().find(|d| {
                d.time == snapshot.time
                    && d.host == snapshot.host
                    && d.same_paths(&snapshot.paths)
                    && (!same_ids || d.tree == snapshot.tree)
            })
        })
    }

    /// The destination's copy of `snapshot`'s origin: a snapshot known to
    /// hold the same content, tree by tree.
    pub fn copy_of(&self, snapshot: &Snapshot) -> Option<&Snapshot> {
        self.by_origin
            .get(&snapshot.origin())
            .map(|&i| &self.snapshots[i])
    }

    /// An earlier copy for `snapshot` to lean on: a source snapshot of the
    /// same host and paths that the destination holds a copy of, its
    /// parent if it can, else the one closest in time (earlier first).
    /// Returns that snapshot's root tree in the source and its copy's in
    /// the destination.
    pub fn reference_for(&self, snapshot: &Snapshot, source: &[Snapshot]) -> Option<(Id, Id)> {
        let distance = |s: &Snapshot| {
            let millis = (s.time - snapshot.time).num_milliseconds();
            (millis.unsigned_abs(), millis > 0)
        };
        source
            .iter()
            .filter(|s| s.id != snapshot.id && s.host == snapshot.host)
            .filter(|s| s.same_paths(&snapshot.paths))
            .filter_map(|s| self.copy_of(s).map(|copy| (s, copy)))
            .min_by_key(|(s, _)| (Some(s.id) != snapshot.parent, distance(s)))
            .map(|(s, copy)| (s.tree, copy.tree))
    }
}
