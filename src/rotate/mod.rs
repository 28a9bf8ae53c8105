//! Rotating the master key (`rewind key rotate`): every file the old key
//! sealed is sealed anew under a fresh one, while backups, mounts and
//! restores go on, and a rotation killed anywhere is resumed by running it
//! again with `--resume`. The sequence and its invariants are in
//! `docs/design.md`, section 7, "Keys":
//!
//! 1. a key file (version 3) for the password in use wraps the new master
//!    key and the retired encryption key; every other key file goes;
//! 2. passes, each under the exclusive lock: a prune that repacks every
//!    pack the retired key sealed (and writes the index anew), then the
//!    manifests, tombstones, deletion plans and audit records sealed
//!    anew, and the stale locks of the old key removed;
//! 3. once no writer that may still seal under the old key runs, and a
//!    pass leaves nothing the old key sealed (the packs it left carried out
//!    of their deletion plans), the config is signed under the new master
//!    key and the key file is written without the retired key.
//!
//! The id key stays, so blob ids, trees and deduplication stay as they are;
//! manifests get new ids (their names are the hashes of their bytes).

use std::time::Duration;

use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::Progress;
use crate::prune::{prune_resealing, PruneOptions, PruneReport, Reseal, WaitingPlan};
use crate::repo::{
    LockRecord, Repository, RepositoryLock, ResealedSnapshot, RetainedFiles, Staleness,
};

/// How a rotation runs.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// Go on with a rotation in progress rather than begin one.
    pub resume: bool,
    /// While writers that began before the rotation run, or deletion
    /// plans wait for them, look again after this long; `None`: return
    /// with the rotation unfinished (resume it later).
    pub wait: Option<Duration>,
}

/// What a rotation did.
#[derive(Debug, Default, Serialize)]
pub struct RotationReport {
    /// Whether the rotation ended: nothing the old key sealed is left.
    pub finished: bool,
    /// The key file the password in use opens now.
    pub key_file: String,
    /// Key files removed: those of the old master key, and the rotation's
    /// own once it ended. Other passwords are added again with `key add`.
    pub key_files_removed: Vec<String>,
    pub passes: u32,
    /// Packs the old key sealed, repacked under the new one.
    pub packs_resealed: u64,
    pub bytes_resealed: u64,
    pub packs_deleted: u64,
    pub bytes_deleted: u64,
    /// Manifests sealed anew: their ids change.
    pub snapshots: Vec<ResealedSnapshot>,
    pub tombstones: u64,
    pub deletion_plans: u64,
    pub audit_records: u64,
    pub stale_locks_removed: u64,
    /// Why the rotation has not ended yet (when it returns unfinished).
    pub waiting_for: Vec<String>,
    /// What deletion plans keep because the store holds it under
    /// retention (object lock): the old key still opens those files until
    /// a prune after their date deletes them.
    pub retained: RetainedFiles,
}

/// Rotates the master key of `repo` (see the module documentation); `lock`
/// is the exclusive lock the caller holds. `tell` hears what the rotation
/// is doing and what it waits for; `progress` counts each pass's prune
/// (its stages "scan", "repack", "delete").
pub fn rotate_master_key(
    repo: &Repository,
    lock: &RepositoryLock,
    options: &RotateOptions,
    progress: &Progress,
    mut tell: impl FnMut(&str),
) -> Result<RotationReport> {
    let mut report = RotationReport::default();
    match (repo.rotation_in_progress(), options.resume) {
        (false, false) => {
            let name = repo.begin_rotation()?;
            tell(&format!("new master key in keys/{}", short(&name)));
        }
        (true, true) => tell("resuming the rotation in progress"),
        (false, true) => {
            return Err(Error::usage("no rotation of the master key is in progress")
                .with_hint("begin one with `rewind key rotate`"))
        }
        (true, false) => {
            return Err(Error::usage("a rotation of the master key is in progress")
                .with_hint("resume it with `rewind key rotate --resume`"))
        }
    }
    report.key_files_removed = repo.remove_other_key_files()?;
    crate::testing::crash_point("rotate-old-keys-removed");
    loop {
        let writers = old_writers(repo, lock)?;
        report.passes += 1;
        tell(&format!(
            "pass {}: sealing anew what the old key sealed",
            report.passes
        ));
        let pruned = pass(repo, lock, &mut report, progress)?;
        let mut waiting = left_under_old_key(repo)?;
        waiting.extend(writers.iter().map(|w| w.describe()));
        waiting.extend(pruned.plans_waiting.iter().map(describe_plan));
        report.retained = pruned.retained;
        if waiting.is_empty() {
            break;
        }
        let Some(interval) = options.wait else {
            report.waiting_for = waiting;
            report.key_file = repo.key_in_use().unwrap_or_default();
            return Ok(report);
        };
        for reason in &waiting {
            tell(&format!("waiting for {reason}"));
        }
        std::thread::sleep(interval);
    }
    let (name, removed) = repo.finish_rotation()?;
    tell(&format!(
        "the rotation ended: keys/{} opens the repository",
        short(&name)
    ));
    // The rotation's own key file went with the retired key.
    report.key_files_removed.extend(removed);
    report.key_file = name;
    report.finished = true;
    Ok(report)
}

/// One pass: the prune that repacks the old key's packs, then the other
/// files sealed anew. Fails, naming them, on files no key opens: they
/// would keep the old key needed (`rewind scrub --repair` mends them).
fn pass(
    repo: &Repository,
    lock: &RepositoryLock,
    report: &mut RotationReport,
    progress: &Progress,
) -> Result<PruneReport> {
    repo.refresh_index()?;
    let packs = repo.packs_sealed_by_retired_keys()?;
    if let Some((pack, error)) = packs.unreadable.first() {
        return Err(unreadable(
            packs.unreadable.len(),
            "packs",
            &format!("pack {}: {error}", pack.short()),
        ));
    }
    let (index_files, errors) = repo.files_sealed_by_retired_keys(FileType::Index)?;
    if let Some(error) = errors.first() {
        return Err(unreadable(errors.len(), "index files", &error.to_string()));
    }
    let reseal = Reseal {
        packs: packs.retired,
        index: !index_files.is_empty(),
    };
    let pruned = prune_resealing(
        repo,
        Some(lock),
        &PruneOptions::default(),
        &reseal,
        progress,
    )?;
    report.packs_resealed += reseal.packs.len() as u64;
    report.bytes_resealed += pruned.bytes_repacked;
    report.packs_deleted += pruned.packs_deleted;
    report.bytes_deleted += pruned.bytes_deleted;

    let (snapshots, errors) = repo.reseal_snapshots()?;
    if let Some(error) = errors.first() {
        return Err(unreadable(errors.len(), "manifests", error));
    }
    report.snapshots.extend(snapshots);
    for (kind, count) in [
        (FileType::Forgotten, &mut report.tombstones),
        (FileType::Deletion, &mut report.deletion_plans),
        (FileType::Audit, &mut report.audit_records),
    ] {
        let resealed = repo.reseal_files(kind)?;
        if let Some(error) = resealed.unreadable.first() {
            return Err(unreadable(resealed.unreadable.len(), kind.dir(), error));
        }
        *count += resealed.files;
    }
    report.stale_locks_removed += repo.remove_stale_retired_locks()?;
    Ok(pruned)
}

/// The live locks of writers that may still seal under the old key: those
/// taken before the rotation began (with the clock skew margin between
/// hosts: a writer opens the repository a moment before it locks it), and
/// those the old key sealed.
fn old_writers(repo: &Repository, ours: &RepositoryLock) -> Result<Vec<LockRecord>> {
    let began = repo.rotation_started()?;
    let (sealed_by_old, _) = repo.files_sealed_by_retired_keys(FileType::Lock)?;
    Ok(repo
        .locks()?
        .into_iter()
        .filter(|(id, record, staleness)| {
            *staleness == Staleness::Live
                && id != ours.id()
                && (record.started <= began + crate::repo::CLOCK_SKEW_MARGIN
                    || sealed_by_old.contains(id))
        })
        .map(|(_, record, _)| record)
        .collect())
}

/// What the old key still seals, described; empty when nothing.
fn left_under_old_key(repo: &Repository) -> Result<Vec<String>> {
    let mut left = Vec::new();
    let packs = repo.packs_sealed_by_retired_keys()?;
    if !packs.retired.is_empty() {
        left.push(format!(
            "{} packs sealed by the old key",
            packs.retired.len()
        ));
    }
    let unindexed = repo.unindexed_packs_not_current()?;
    if !unindexed.is_empty() {
        left.push(format!(
            "{} unindexed packs not sealed by the new key (a later pass plans their deletion)",
            unindexed.len()
        ));
    }
    let (plans, _) = repo.deletion_plans()?;
    let leaving: std::collections::HashSet<String> = plans
        .iter()
        .flat_map(|(_, plan)| plan.index_files.iter().map(|id| id.to_hex()))
        .collect();
    for kind in [
        FileType::Index,
        FileType::Snapshot,
        FileType::Forgotten,
        FileType::Deletion,
        FileType::Audit,
    ] {
        let (mut retired, _) = repo.files_sealed_by_retired_keys(kind)?;
        if kind == FileType::Index {
            // Superseded files the store keeps under retention.
            retired.retain(|name| !leaving.contains(name));
        }
        if !retired.is_empty() {
            left.push(format!(
                "{} files in {}/ sealed by the old key",
                retired.len(),
                kind.dir()
            ));
        }
    }
    Ok(left)
}

fn describe_plan(plan: &WaitingPlan) -> String {
    format!(
        "deletion plan {} ({} packs), which waits for: {}",
        short(&plan.plan),
        plan.packs,
        plan.waits_for.join("; ")
    )
}

fn unreadable(count: usize, what: &str, first: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!("{count} {what} open under no key of the repository (first: {first})"),
    )
    .with_hint("run `rewind scrub --repair`, then `rewind key rotate --resume`")
}

fn short(name: &str) -> &str {
    &name[..8.min(name.len())]
}
