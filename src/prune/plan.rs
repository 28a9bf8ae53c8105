//! Planning a prune: which blobs the snapshots still use, and for each pack
//! whether it is kept, deleted (nothing in it is used) or repacked (enough
//! of it is unused to be worth rewriting). Reading only; the parent module
//! carries a plan out.
//!
//! The plan refuses to be made when it cannot see everything that is used:
//! a manifest or a tree that does not read, or a snapshot copy whose
//! manifest is lost (`scrub --repair` brings it back), would otherwise make
//! live data look unused.

use crate::error::{Error, Result};
use crate::progress::{Progress, Totals};
use std::collections::HashSet;

use crate::repo::{snapshot_key, Id, IdSet, Repository, Snapshot, SnapshotKey, Staleness};
use crate::tree::Extent;

/// How far a prune goes.
#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// Unused bytes left in partly used packs, as a share of the
    /// repository after the prune (restic's `--max-unused`, 5% by default):
    /// below it, rewriting packs costs more than the space it frees.
    pub max_unused: f64,
    /// At most this many bytes of packs are repacked in one prune.
    pub max_repack_bytes: Option<u64>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: 0.05,
            max_repack_bytes: None,
        }
    }
}

/// What happens to a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackFate {
    Keep,
    /// Nothing in it is used.
    Delete,
    /// Its used blobs go to new packs, then it goes.
    Repack,
}

/// One indexed pack, as the plan sees it.
#[derive(Debug, Clone)]
pub struct PackUse {
    pub id: Id,
    /// Stored bytes of the blobs the index places in it.
    pub blob_bytes: u64,
    pub used_bytes: u64,
    pub used_blobs: u64,
    pub unused_blobs: u64,
    pub fate: PackFate,
}

#[derive(Debug, Clone)]
pub struct PrunePlan {
    /// Every indexed pack, in index order.
    pub packs: Vec<PackUse>,
    /// Blobs the kept snapshots need.
    pub used_blobs: u64,
}

impl PrunePlan {
    fn bytes(&self, fate: Option<PackFate>, used: bool) -> u64 {
        self.packs
            .iter()
            .filter(|p| fate.is_none_or(|f| p.fate == f))
            .map(|p| {
                if used {
                    p.used_bytes
                } else {
                    p.blob_bytes - p.used_bytes
                }
            })
            .sum()
    }

    /// Bytes in packs that go away whole.
    pub fn deleted_bytes(&self) -> u64 {
        self.bytes(Some(PackFate::Delete), false)
    }

    /// Used bytes that are rewritten, and the unused bytes that leaves behind.
    pub fn repacked_bytes(&self) -> (u64, u64) {
        (
            self.bytes(Some(PackFate::Repack), true),
            self.bytes(Some(PackFate::Repack), false),
        )
    }

    /// Unused bytes that stay (in packs kept for being mostly used).
    pub fn unused_kept_bytes(&self) -> u64 {
        self.bytes(Some(PackFate::Keep), false)
    }

    pub fn total_bytes(&self) -> u64 {
        self.packs.iter().map(|p| p.blob_bytes).sum()
    }

    /// How many packs have this fate.
    pub fn count(&self, fate: PackFate) -> usize {
        self.packs.iter().filter(|p| p.fate == fate).count()
    }

    /// The packs that go, deleted or repacked.
    pub fn leaving(&self) -> impl Iterator<Item = &PackUse> {
        self.packs.iter().filter(|p| p.fate != PackFate::Keep)
    }
}

/// Plans a prune of `repo`: every snapshot listed is kept.
pub fn plan_prune(repo: &Repository, options: &PruneOptions) -> Result<PrunePlan> {
    let used = used_blobs(repo, None, &Progress::default())?;
    Ok(plan_with(repo, &used.blobs, options, &IdSet::default()))
}

/// The plan for `repo` when `used` is what its snapshots use; the packs of
/// `reseal` that hold anything used are repacked whatever else they hold.
pub(super) fn plan_with(
    repo: &Repository,
    used: &IdSet,
    options: &PruneOptions,
    reseal: &IdSet,
) -> PrunePlan {
    let index = repo.index();
    let mut packs: Vec<PackUse> = index
        .packs()
        .iter()
        .map(|pack| PackUse {
            id: pack.id,
            blob_bytes: 0,
            used_bytes: 0,
            used_blobs: 0,
            unused_blobs: 0,
            fate: PackFate::Keep,
        })
        .collect();
    for (_, location) in index.blobs() {
        let pack = &mut packs[location.pack()];
        pack.blob_bytes += location.stored_len as u64;
        pack.unused_blobs += 1;
    }
    // The used blobs are looked up, rather than the index walked: a walk
    // gives keys, not the whole ids `used` holds.
    for location in used.iter().filter_map(|id| index.get(id)) {
        let pack = &mut packs[location.pack()];
        pack.used_bytes += location.stored_len as u64;
        pack.used_blobs += 1;
        pack.unused_blobs -= 1;
    }
    drop(index);
    for pack in &mut packs {
        if pack.used_blobs == 0 {
            pack.fate = PackFate::Delete;
        } else if reseal.contains(&pack.id) {
            pack.fate = PackFate::Repack;
        }
    }
    choose_repacks(&mut packs, options);
    PrunePlan {
        used_blobs: used.len() as u64,
        packs,
    }
}

/// Repacks the partly used packs with the most unused bytes first, until
/// what stays unused is at most `max_unused` of the repository.
fn choose_repacks(packs: &mut [PackUse], options: &PruneOptions) {
    // A share of the repository as it will be (used bytes plus what stays
    // unused), as restic counts it: a second prune then has nothing to do.
    let used: u64 = packs.iter().map(|p| p.used_bytes).sum();
    let share = options.max_unused.max(0.0);
    let allowed = if share >= 1.0 {
        u64::MAX
    } else {
        (used as f64 * share / (1.0 - share)) as u64
    };
    let mut unused: u64 = packs
        .iter()
        .filter(|p| p.fate == PackFate::Keep)
        .map(|p| p.blob_bytes - p.used_bytes)
        .sum();
    let mut candidates: Vec<usize> = (0..packs.len())
        .filter(|&i| packs[i].fate == PackFate::Keep && packs[i].unused_blobs > 0)
        .collect();
    candidates.sort_by_key(|&i| std::cmp::Reverse(packs[i].blob_bytes - packs[i].used_bytes));
    let mut repacked = 0u64;
    for i in candidates {
        if unused <= allowed {
            break;
        }
        let pack = &mut packs[i];
        if options
            .max_repack_bytes
            .is_some_and(|max| repacked + pack.used_bytes > max)
        {
            continue;
        }
        pack.fate = PackFate::Repack;
        repacked += pack.used_bytes;
        unused -= pack.blob_bytes - pack.used_bytes;
    }
}

/// Every blob a listed snapshot needs (its trees and their data), and the
/// packed copies of the listed manifests. Refuses when anything that may be
/// in use cannot be read.
///
/// A snapshot copy without a manifest is a lost manifest only when no
/// other writer is live: a backup writes its index file (which names the
/// copy) before its manifest, so a running or stopped backup shows the
/// same thing for as long as it runs. While writers other than `ours` are
/// live, such copies count as listed snapshots, which keeps all they use.
pub(super) fn used_blobs(
    repo: &Repository,
    ours: Option<&str>,
    progress: &Progress,
) -> Result<Used> {
    let mut snapshots = readable_snapshots(repo)?;
    let copies = repo.snapshot_copies();
    let (lost, tombstone_errors) = repo.copies_without_manifest(&snapshots, &copies)?;
    let writers_live = || -> Result<bool> {
        Ok(repo
            .locks()?
            .iter()
            .any(|(id, _, staleness)| *staleness == Staleness::Live && Some(id.as_str()) != ours))
    };
    if !tombstone_errors.is_empty() || (!lost.is_empty() && !writers_live()?) {
        return Err(Error::corrupt(format!(
            "{} snapshots have a copy in the packs but no manifest, and {} tombstones do not read",
            lost.len(),
            tombstone_errors.len()
        ))
        .with_hint("run `rewind scrub --repair` first: it brings the manifests back"));
    }
    snapshots.extend(lost);
    let mut used = Used {
        blobs: copies_in_use(&copies, &snapshots),
        snapshots: IdSet::default(),
    };
    progress.begin("scan", "trees", Totals::UNKNOWN);
    used.add_snapshots(repo, &snapshots, progress)?;
    Ok(used)
}

/// Every snapshot; refuses when a manifest does not read.
pub(super) fn readable_snapshots(repo: &Repository) -> Result<Vec<Snapshot>> {
    let (snapshots, damaged) = repo.snapshots_with_errors()?;
    if let Some(e) = damaged.first() {
        return Err(Error::corrupt(format!(
            "{} snapshot manifests do not read (first: {e}); what they use cannot be known",
            damaged.len()
        ))
        .with_hint("run `rewind scrub --repair`, or forget them by id, before pruning"));
    }
    Ok(snapshots)
}

/// The blobs some snapshots use, and which snapshots those are.
pub(super) struct Used {
    pub blobs: IdSet,
    pub snapshots: IdSet,
}

impl Used {
    /// Adds what `snapshots` use. A tree already among the blobs was
    /// walked, with everything under it, so each distinct tree is read once.
    /// `progress` counts the trees read.
    pub(super) fn add_snapshots(
        &mut self,
        repo: &Repository,
        snapshots: &[Snapshot],
        progress: &Progress,
    ) -> Result<()> {
        let mut pending: Vec<Id> = Vec::new();
        for snapshot in snapshots {
            if self.snapshots.insert(snapshot.id) {
                pending.push(snapshot.tree);
            }
        }
        while let Some(tree_id) = pending.pop() {
            if !self.blobs.insert(tree_id) {
                continue;
            }
            // Blob by blob: a split directory's parts are trees of their own
            // here, each named as used.
            let tree = match repo.read_tree_blob(&tree_id) {
                Err(_) if !repo.index().contains(&tree_id) && bring_back(repo, tree_id)? => {
                    repo.read_tree_blob(&tree_id)
                }
                read => read,
            }
            .map_err(|e| {
                e.context("a tree of a listed snapshot does not read; what it uses cannot be known")
            })?;
            progress.add(1, 0);
            pending.extend(tree.part_ids());
            for node in &tree.nodes {
                if let Some(subtree) = node.subtree {
                    pending.push(subtree);
                }
                for extent in &node.content {
                    if let Extent::Data { id, .. } = extent {
                        self.blobs.insert(*id);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Indexes again the unindexed packs that hold `tree`: a backup that wrote
/// its packs and index file while a prune ran, and that prune was killed
/// after it wrote the index anew without them (their packs unused then)
/// and before it carried out its plan, made a snapshot that needs packs no
/// index file names any more. Whether any was found.
fn bring_back(repo: &Repository, tree: Id) -> Result<bool> {
    let unindexed = repo.stored_unindexed_packs()?;
    Ok(repo.index_packs_holding(&unindexed, &IdSet::from_iter([tree]))? > 0)
}

/// The packed copies of the listed manifests (see
/// `Repository::save_snapshot`), matched by what they record; a copy that
/// does not read is kept, since which snapshot it copies cannot be told.
fn copies_in_use(copies: &[(Id, Result<Snapshot>)], snapshots: &[Snapshot]) -> IdSet {
    let listed: HashSet<SnapshotKey> = snapshots.iter().map(snapshot_key).collect();
    copies
        .iter()
        .filter(|(_, copy)| {
            copy.as_ref()
                .map_or(true, |copy| listed.contains(&snapshot_key(copy)))
        })
        .map(|(id, _)| *id)
        .collect()
}
