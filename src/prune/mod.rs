//! Prune: frees the space that forgotten snapshots held, without ever
//! deleting what a snapshot, a running backup or a reader still needs.
//!
//! One run, under the exclusive lock (`docs/design.md`, section 7, prune):
//! find what the snapshots use; bring back any unindexed pack that holds
//! some of it; copy the used blobs of mostly unused packs to new packs;
//! write the index anew without the packs that go; record those packs,
//! the unindexed leftovers of killed writers and the old index files in a
//! sealed deletion plan; remove the old index files; then delete the packs
//! of every plan that is due (no live writer started before it). A plan
//! that is not due waits for a later prune. Each step is durable before
//! the next starts, so a prune killed anywhere leaves a repository that
//! `check --read-data` passes and that the next prune finishes cleaning.
//! Under object lock the store refuses to delete what is still under
//! retention: the plan keeps it with the date, and a prune after that date
//! deletes it (`docs/design.md` section 7, "Object lock").

mod plan;

pub use plan::{plan_prune, PackFate, PackUse, PruneOptions, PrunePlan};

use serde::Serialize;

use crate::error::Result;
use crate::progress::{Progress, Totals};
use crate::repo::{DeletionPlan, Id, IdSet, PackSaver, Repository, RepositoryLock, RetainedFiles};
use crate::testing::crash_point;

/// What a prune did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Stored bytes of the blobs the index named before, and names now.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub snapshots: u64,
    pub blobs_used: u64,
    /// Packs with nothing used, and their unused bytes.
    pub packs_unused: u64,
    pub bytes_unused: u64,
    /// Packs repacked: the used bytes copied and the unused bytes dropped.
    pub packs_repacked: u64,
    pub bytes_repacked: u64,
    pub bytes_repack_dropped: u64,
    /// New packs the repacking wrote.
    pub packs_written: u64,
    /// Unused bytes left in packs kept for being mostly used.
    pub bytes_unused_kept: u64,
    /// Packs no index named (left by killed writers) planned for deletion.
    pub packs_unindexed: u64,
    /// Unindexed packs indexed again because a snapshot uses them.
    pub packs_rescued: u64,
    /// Blobs a snapshot uses that are in no pack (damage `check` reports).
    pub blobs_missing: u64,
    pub index_files_before: u64,
    pub index_files_after: u64,
    /// Pack files deleted now (this prune's plan and earlier ones), and
    /// their size on the store.
    pub packs_deleted: u64,
    pub bytes_deleted: u64,
    /// Plans that wait for running writers, and the packs they hold.
    pub plans_waiting: Vec<WaitingPlan>,
    /// What the due plans still hold because the store keeps it under
    /// retention (object lock), and when that ends.
    pub retained: RetainedFiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct WaitingPlan {
    pub plan: String,
    pub packs: u64,
    /// The live locks it waits for, described.
    pub waits_for: Vec<String>,
}

/// Plans and carries out a prune of `repo` (see the module documentation).
/// `lock` is the exclusive lock the caller holds: the plans wait for every
/// other live lock. `progress` goes through three stages: "scan" (trees
/// read), "repack" (packs and bytes), "delete" (no counts).
pub fn prune(
    repo: &Repository,
    lock: Option<&RepositoryLock>,
    options: &PruneOptions,
    progress: &Progress,
) -> Result<PruneReport> {
    prune_resealing(repo, lock, options, &Reseal::default(), progress)
}

/// What a rotation of the master key has a prune seal anew (see
/// `crate::rotate`): packs a retired key sealed are repacked whatever
/// their use, and the index is written anew even when nothing else calls
/// for it.
#[derive(Debug, Default)]
pub(crate) struct Reseal {
    pub packs: IdSet,
    pub index: bool,
}

/// [`prune`], also sealing anew what `reseal` names.
pub(crate) fn prune_resealing(
    repo: &Repository,
    lock: Option<&RepositoryLock>,
    options: &PruneOptions,
    reseal: &Reseal,
    progress: &Progress,
) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let mut used = plan::used_blobs(repo, lock.map(RepositoryLock::id), progress)?;
    report.snapshots = used.snapshots.len() as u64;
    report.blobs_used = used.blobs.len() as u64;
    report.index_files_before = repo.index_file_count() as u64;

    let unindexed = bring_back_what_is_used(repo, &used.blobs, &mut report)?;
    let plan = plan::plan_with(repo, &used.blobs, options, &reseal.packs);
    report.bytes_before = plan.total_bytes();
    report.packs_unused = plan.count(PackFate::Delete) as u64;
    report.bytes_unused = plan.deleted_bytes();
    report.packs_repacked = plan.count(PackFate::Repack) as u64;
    (report.bytes_repacked, report.bytes_repack_dropped) = plan.repacked_bytes();
    report.bytes_unused_kept = plan.unused_kept_bytes();

    let repacked: Vec<Id> = plan
        .leaving()
        .filter(|p| p.fate == PackFate::Repack)
        .map(|p| p.id)
        .collect();
    let saver = PackSaver::recording(repo.clone());
    repo.repack(&repacked, &used.blobs, &saver, progress)?;
    saver.finish()?;
    report.packs_written = saver.stored().packs;
    crash_point("prune-repacked");

    progress.begin("delete", "", Totals::UNKNOWN);
    let leaving: IdSet = plan.leaving().map(|p| p.id).collect();
    let mut doomed: Vec<Id> = leaving.iter().copied().collect();
    doomed.extend(unindexed.iter().filter_map(|name| Id::from_hex(name).ok()));
    report.packs_unindexed = unindexed.len() as u64;
    if !doomed.is_empty() || report.index_files_before > 1 || reseal.index {
        let superseded = repo.rewrite_index(&leaving, saver.take_saved())?;
        crash_point("prune-indexed");
        doomed.sort();
        doomed.dedup();
        let deletion = DeletionPlan::new(doomed, superseded);
        repo.write_deletion_plan(&deletion)?;
        crash_point("prune-planned");
        repo.remove_index_files(&deletion.index_files)?;
        crash_point("prune-old-index-removed");
    }
    report.index_files_after = repo.index_file_count() as u64;
    report.bytes_after = repo.index().blobs().map(|(_, l)| l.stored_len as u64).sum();

    carry_out_due_plans(repo, lock, &mut used, &mut report)?;
    Ok(report)
}

/// Indexes again the unindexed packs that hold blobs the snapshots use (a
/// backup that relied on a pack an earlier plan holds, or an index file
/// lost), so that nothing used is deleted. Returns the unindexed packs
/// that remain, which hold nothing used: leftovers of killed writers, or
/// packs of plans already made. None of them is planned for deletion when
/// used blobs are still missing afterwards: then what they hold cannot be
/// known for certain.
fn bring_back_what_is_used(
    repo: &Repository,
    used: &IdSet,
    report: &mut PruneReport,
) -> Result<Vec<String>> {
    let missing: IdSet = {
        let index = repo.index();
        used.iter()
            .copied()
            .filter(|id| !index.contains(id))
            .collect()
    };
    let unindexed = repo.stored_unindexed_packs()?;
    if missing.is_empty() {
        return leftovers(repo, unindexed);
    }
    report.packs_rescued = repo.index_packs_holding(&unindexed, &missing)? as u64;
    let index = repo.index();
    report.blobs_missing = missing.iter().filter(|id| !index.contains(id)).count() as u64;
    if report.blobs_missing > 0 {
        crate::log::warn(&format!(
            "{} blobs that snapshots use are in no pack; unindexed packs are kept \
             (`rewind check` names the snapshots affected)",
            report.blobs_missing
        ));
        return Ok(Vec::new());
    }
    drop(index);
    leftovers(repo, repo.stored_unindexed_packs()?)
}

/// The unindexed packs that no plan names yet (those of plans stay theirs).
fn leftovers(repo: &Repository, mut unindexed: Vec<String>) -> Result<Vec<String>> {
    let planned = repo.packs_awaiting_deletion()?;
    unindexed.retain(|name| Id::from_hex(name).map_or(true, |id| !planned.contains(&id)));
    Ok(unindexed)
}

/// Deletes the packs of every deletion plan that is due; reports the rest.
///
/// Which plans are due is decided on a lock listing taken after every plan
/// was written. A writer that started before a plan and finished since
/// `used` was computed is no longer in that listing, but its snapshot is
/// listed by then (a manifest is written before its lock is removed): what
/// such snapshots use is added, and unindexed packs that hold it are
/// indexed again, which spares them.
fn carry_out_due_plans(
    repo: &Repository,
    lock: Option<&RepositoryLock>,
    used: &mut plan::Used,
    report: &mut PruneReport,
) -> Result<()> {
    let (plans, errors) = repo.deletion_plans()?;
    for e in errors {
        crate::log::warn(&format!(
            "a deletion plan does not read ({e}); its packs stay until `rewind scrub --repair` \
             or a later prune accounts for them"
        ));
    }
    let locks = repo.locks()?;
    let later: Vec<_> = plan::readable_snapshots(repo)?
        .into_iter()
        .filter(|snapshot| !used.snapshots.contains(&snapshot.id))
        .collect();
    if !later.is_empty() {
        used.add_snapshots(repo, &later, &Progress::default())?;
        let mut late = PruneReport::default();
        bring_back_what_is_used(repo, &used.blobs, &mut late)?;
        report.packs_rescued += late.packs_rescued;
        if late.blobs_missing > 0 {
            // What the new snapshots use cannot all be found: delete nothing now.
            report.blobs_missing += late.blobs_missing;
            return Ok(());
        }
    }
    let ours = lock.map(|l| l.id());
    for (name, plan) in &plans {
        if plan.is_due(&locks, ours) {
            let done = repo.carry_out_deletion_plan(name, plan)?;
            report.packs_deleted += done.packs_deleted;
            report.bytes_deleted += done.bytes_deleted;
            report.retained.add(&done.retained);
        } else {
            report.plans_waiting.push(WaitingPlan {
                plan: name.clone(),
                packs: plan.packs.len() as u64,
                waits_for: plan
                    .waits_for(&locks, ours)
                    .into_iter()
                    .map(|l| l.describe())
                    .collect(),
            });
        }
    }
    Ok(())
}
