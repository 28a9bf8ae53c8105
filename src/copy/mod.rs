//! Copying snapshots from one repository to another (`rewind copy`, for
//! 3-2-1: `docs/design.md`, section 7, "Copy"). Only the snapshots the
//! destination lacks are copied, and of those only the blobs it lacks are
//! sent, sealed under the destination's keys through its pack saver; then
//! its index, then each manifest, committed as a backup commits one.
//!
//! Blob ids are keyed per repository, so unless both share one id key a
//! copy reads each data blob, names it (and, if it is longer than the
//! destination's chunker allows, its pieces) under the destination's key,
//! and rewrites every tree, bottom up, to name the new ids. What was copied
//! before is not read again: a snapshot's earlier copy lends the
//! destination ids of whatever did not change (see `reference`).
//!
//! The rooms: `matching` tells which source snapshots the destination has
//! and which earlier copy a new one can lean on; `reference` walks such a
//! copy beside the source; `walk` copies one snapshot's trees and blobs.

mod matching;
mod reference;
mod walk;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::id::{Id, IdMap};
use crate::progress::{Progress, Totals};
use crate::repo::{Repository, RepositoryLock, RepositoryState, Snapshot};
use crate::selector::{Filter, Selector};
use matching::Copies;
use walk::Copier;

/// Which source snapshots to copy.
#[derive(Debug, Clone, Default)]
pub struct CopySelection {
    /// Each selects one snapshot; none selects every snapshot the filter accepts.
    pub selectors: Vec<Selector>,
    pub filter: Filter,
}

/// What a copy will do, worked out from the two snapshot lists alone.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    /// Selected source snapshots the destination lacks, oldest first.
    pub to_copy: Vec<Snapshot>,
    /// Selected source snapshots the destination has, each with the id of
    /// the destination snapshot that stands for it.
    pub present: Vec<(Snapshot, Id)>,
    /// Whether the two repositories name blobs alike (one id key, see
    /// `Repository::init_sharing_ids`): blobs keep their ids and trees are
    /// copied as they are.
    pub same_ids: bool,
    source_snapshots: Vec<Snapshot>,
    dest_snapshots: Vec<Snapshot>,
}

/// Works out which selected snapshots of `source` the destination lacks.
/// A snapshot is present when the destination has a copy of it (or of the
/// snapshot it was copied from), or one with the same time, host and paths
/// (and root tree, when ids are shared): ids name manifest files, which
/// differ between repositories.
pub fn plan_copy<A: RepositoryState, B: RepositoryState>(
    source: &Repository<A>,
    dest: &Repository<B>,
    selection: &CopySelection,
) -> Result<CopyPlan> {
    let source_snapshots = source.snapshots()?;
    let dest_snapshots = dest.snapshots()?;
    let same_ids = same_ids(source, dest);
    let selected = matching::select(&source_snapshots, selection)?;
    let copies = Copies::new(&dest_snapshots);
    let mut plan = CopyPlan {
        to_copy: Vec::new(),
        present: Vec::new(),
        same_ids,
        source_snapshots: Vec::new(),
        dest_snapshots: Vec::new(),
    };
    for snapshot in selected {
        match copies.find(&snapshot, same_ids) {
            Some(copy) => plan.present.push((snapshot, copy.id)),
            None => plan.to_copy.push(snapshot),
        }
    }
    plan.source_snapshots = source_snapshots;
    plan.dest_snapshots = dest_snapshots;
    Ok(plan)
}

/// Whether two repositories share their id key. Their ids of one probe
/// plaintext agree exactly when their keys do (but for a BLAKE3 collision).
fn same_ids<A: RepositoryState, B: RepositoryState>(
    source: &Repository<A>,
    dest: &Repository<B>,
) -> bool {
    const PROBE: &[u8] = b"rewind copy: do these repositories share an id key?";
    source.blob_id(PROBE) == dest.blob_id(PROBE)
}

#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Snapshots copied, and the bytes of their files (as recorded in the
    /// source's manifests) walked so far.
    pub progress: Progress,
}

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    pub same_ids: bool,
    /// The snapshots copied, in the order they were.
    pub copied: Vec<CopiedSnapshot>,
    /// Selected snapshots the destination had already.
    pub present: u64,
    /// Blobs stored in the destination, and the bytes of the packs holding
    /// them (what was sent to its store).
    pub blobs_sent: u64,
    pub bytes_sent: u64,
    /// Blobs the destination had already: not sent.
    pub blobs_skipped: u64,
    /// Blobs read from the source, and their plaintext bytes.
    pub blobs_read: u64,
    pub bytes_read: u64,
    /// Blobs stored again because a prune running on the destination is
    /// deleting the packs they were in (see `Repository::commit_snapshot`).
    pub blobs_stored_again: u64,
}

/// One snapshot a copy made.
#[derive(Debug, Clone, Serialize)]
pub struct CopiedSnapshot {
    /// Its id in the source, and the id of its copy in the destination.
    pub source: Id,
    pub destination: Id,
    pub time: DateTime<Utc>,
    pub host: String,
    pub paths: Vec<String>,
}

/// Copies the snapshots of `plan` from `source` to `dest`, oldest first.
/// `lock` is the shared lock taken on `dest` before its index was loaded;
/// each manifest is committed only once what it relies on is known to stay
/// (`Repository::commit_snapshot`), so a prune running on the destination
/// stays safe. A failure leaves the snapshots copied before it.
pub fn copy(
    source: &Repository,
    dest: &Repository,
    plan: &CopyPlan,
    lock: Option<&RepositoryLock>,
    options: &CopyOptions,
) -> Result<CopyReport> {
    let mut report = CopyReport {
        same_ids: plan.same_ids,
        present: plan.present.len() as u64,
        ..CopyReport::default()
    };
    let source_by_id: IdMap<&Snapshot> = plan.source_snapshots.iter().map(|s| (s.id, s)).collect();
    let mut copies = Copies::new(&plan.dest_snapshots);
    if !plan.to_copy.is_empty() {
        // Every source tree the copy walks is read one after the other.
        source.prefetch_tree_packs();
    }
    let progress = &options.progress;
    let bytes_of = |snapshots: &[Snapshot]| snapshots.iter().map(|s| s.summary.bytes_total).sum();
    progress.begin(
        "copy",
        "snapshots",
        Totals::known(
            Some(plan.to_copy.len() as u64),
            Some(bytes_of(&plan.to_copy)),
        ),
    );
    let copier = Copier::new(source, dest, plan.same_ids, progress.clone());
    let copied = plan
        .to_copy
        .iter()
        .enumerate()
        .try_for_each(|(n, snapshot)| {
            let reference = copies.reference_for(snapshot, &plan.source_snapshots);
            let tree = copier.copy_trees(snapshot.tree, reference)?;
            let parent = snapshot
                .parent
                .and_then(|parent| source_by_id.get(&parent))
                .and_then(|parent| copies.find(parent, plan.same_ids))
                .map(|copy| copy.id);
            let mut copied = Snapshot {
                id: Id::default(),
                tree,
                parent,
                original: Some(snapshot.origin()),
                resealed_from: None,
                ..snapshot.clone()
            };
            let (id, stored_again) = dest.commit_snapshot(&copied, lock)?;
            copied.id = id;
            report.blobs_stored_again += stored_again;
            report.copied.push(CopiedSnapshot {
                source: snapshot.id,
                destination: id,
                time: snapshot.time,
                host: snapshot.host.clone(),
                paths: snapshot.paths.clone(),
            });
            copies.add(copied);
            // The walk skips trees copied before: what they hold is done too.
            progress.reach(n as u64 + 1, bytes_of(&plan.to_copy[..=n]));
            Ok(())
        });
    copier.finish(&mut report);
    copied.map(|()| report)
}
