//! `check`: is every snapshot restorable? Structure first (every tree and
//! chunk a snapshot needs is indexed, every indexed pack exists), then, on
//! request, the data itself (every pack hashes to its name, every blob opens
//! and hashes to its id). Damage is reported with the snapshots and paths it
//! affects. The audit trail is checked too: a record altered or deleted is
//! an error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::parallel::parallel_map;
use crate::progress::{Progress, Totals};
use crate::repo::{Id, IdSet, Opened, Repository, Snapshot, Staleness};

mod audit;
mod walk;

pub use walk::affected_paths;
use walk::walk_snapshots;

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    All,
    /// Part `n` of `t` (1-based): over `t` runs every pack is read once.
    Part {
        n: u32,
        t: u32,
    },
    /// About `share` (0..=1) of the packs: those whose id, as a fraction,
    /// lies in the window of that width from `from` (wrapping at 1).
    /// `from` is drawn at random for each run, so that runs read
    /// different packs (a nightly 10% reads most packs within weeks).
    Fraction {
        share: f64,
        from: f64,
    },
}

impl Subset {
    pub fn parse(text: &str) -> Result<Subset> {
        let bad = || {
            Error::usage(format!(
                "'{text}' is not a subset: use N/T (e.g. 3/7) or P% (e.g. 10%)"
            ))
        };
        if let Some(percent) = text.strip_suffix('%') {
            let p: f64 = percent.parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) {
                return Err(bad());
            }
            let mut random = [0u8; 8];
            crate::repo::crypto::random_bytes(&mut random)?;
            let from = (u64::from_le_bytes(random) >> 11) as f64 / (1u64 << 53) as f64;
            return Ok(Subset::Fraction {
                share: p / 100.0,
                from,
            });
        }
        let (n, t) = text.split_once('/').ok_or_else(bad)?;
        let (n, t): (u32, u32) = (n.parse().map_err(|_| bad())?, t.parse().map_err(|_| bad())?);
        if t == 0 || n == 0 || n > t {
            return Err(bad());
        }
        Ok(Subset::Part { n, t })
    }

    /// A part `N/T` holds the same packs every time; a fraction, a window
    /// drawn for this run.
    pub fn contains(&self, pack: &Id) -> bool {
        match *self {
            Subset::All => true,
            Subset::Part { n, t } => (pack.fraction() * t as f64) as u32 == n - 1,
            Subset::Fraction { share, from } => (pack.fraction() - from).rem_euclid(1.0) < share,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub audit_records: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    pub blobs_verified: u64,
    /// Problems that make data unrestorable.
    pub errors: Vec<String>,
    /// Harmless findings (packs left by an interrupted backup).
    pub warnings: Vec<String>,
    /// Damaged or missing packs, with what is wrong.
    pub damaged_packs: BTreeMap<String, String>,
    /// Snapshot (short id) → paths that lost data.
    pub affected: BTreeMap<String, Vec<String>>,
    /// What to run to repair what was found, when a command can.
    pub hints: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.damaged_packs.is_empty()
    }
}

/// Loads the index (a damaged index file is an error of the report) and
/// checks the repository. `progress` goes through the stages "read" (packs
/// read and their bytes, with `read_data`) and "trees" (snapshots walked).
pub fn check(
    repo: &Repository<Opened>,
    read_data: Option<Subset>,
    progress: &Progress,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let (repo, index_errors) = repo.load_index()?;
    let repo = &repo;
    for e in index_errors {
        report.errors.push(format!("damaged index file: {e}"));
    }
    let stored: BTreeSet<String> = repo
        .stored_files()
        .list(FileType::Pack)?
        .into_iter()
        .collect();
    let index = repo.index();
    report.packs = index.packs().len();
    let mut bad_packs: BTreeMap<Id, String> = BTreeMap::new();
    // What is damaged: whole packs, or single blobs where that is known.
    let mut damaged = IdSet::default();
    for pack in index.packs() {
        if !stored.contains(&pack.id.to_hex()) {
            bad_packs.insert(pack.id, "missing".into());
            damaged.insert(pack.id);
        }
    }
    drop(index);
    let leaving = repo.packs_awaiting_deletion()?;
    let index = repo.index();
    let mut unindexed = 0;
    let mut awaiting_deletion = 0;
    for name in &stored {
        let id = Id::from_hex(name).ok();
        if id.is_some_and(|id| leaving.contains(&id) && !index.has_pack(&id)) {
            awaiting_deletion += 1;
        } else if id.is_none_or(|id| !index.has_pack(&id)) {
            unindexed += 1;
            report.warnings.push(format!(
                "pack {name} is not in the index (left by an interrupted backup, harmless, unless an index file was lost)"
            ));
        }
    }
    drop(index);
    if awaiting_deletion > 0 {
        report.warnings.push(format!(
            "{awaiting_deletion} packs await deletion by a prune that waits for backups \
             that were running (the next prune deletes them)"
        ));
    }

    if let Some(subset) = read_data {
        let index = repo.index();
        let chosen: Vec<_> = index
            .packs()
            .iter()
            .filter(|p| subset.contains(&p.id) && !bad_packs.contains_key(&p.id))
            .copied()
            .collect();
        drop(index);
        progress.begin(
            "read",
            "packs",
            Totals::known(Some(chosen.len() as u64), None),
        );
        let verified = Mutex::new((0u64, 0u64));
        let results = parallel_map(&chosen, |pack| {
            let result = verify_pack(repo, &pack.id);
            progress.add(1, result.as_ref().map_or(0, |(bytes, _)| *bytes));
            if let Ok((bytes, blobs)) = &result {
                let mut v = verified.lock().unwrap();
                v.0 += bytes;
                v.1 += blobs;
            }
            (pack.id, result)
        });
        report.packs_read = chosen.len();
        (report.bytes_read, report.blobs_verified) = verified.into_inner().unwrap();
        for (id, result) in results {
            if let Err((problem, failing)) = result {
                bad_packs.insert(id, problem);
                match failing {
                    Some(blobs) => damaged.extend(blobs),
                    None => {
                        damaged.insert(id);
                    }
                }
            }
        }
    }

    let (snapshots, snapshot_errors) = repo.snapshots_with_errors()?;
    for e in snapshot_errors {
        report
            .errors
            .push(format!("damaged snapshot manifest: {e}"));
    }
    report.snapshots = snapshots.len();
    let walk = walk_snapshots(repo, &snapshots, &damaged, progress);
    report.trees = walk.trees;
    report.errors.extend(walk.errors);
    report.affected = walk.affected;
    report.damaged_packs = bad_packs
        .into_iter()
        .map(|(id, why)| (id.to_hex(), why))
        .collect();
    report_lost_metadata(repo, &snapshots, &mut report, unindexed)?;
    audit::check_audit_trail(repo, &mut report)?;
    Ok(report)
}

/// Metadata that is gone rather than damaged: manifests whose snapshot
/// copy remains (deleted, not forgotten), and packs no index file lists
/// while blobs are missing from the index (an index file was deleted).
/// Both come back from the packs with `scrub --repair`.
fn report_lost_metadata(
    repo: &Repository,
    manifests: &[Snapshot],
    report: &mut CheckReport,
    unindexed_packs: usize,
) -> Result<()> {
    report_copies_without_manifest(repo, manifests, report)?;
    if unindexed_packs > 0 && !report.affected.is_empty() {
        report.hints.push(format!(
            "{unindexed_packs} packs are listed by no index file: run `rewind scrub --repair` to index them from their trailers, which brings back the blobs they hold, then `rewind check` again"
        ));
    }
    Ok(())
}

/// Snapshot copies without a manifest.
///
/// A backup indexes its snapshot's copy before it writes the manifest, so
/// a copy without a manifest is also what a running backup shows for a
/// moment, and what one killed in that moment leaves (with its lock,
/// which nobody removed). While any lock is in the repository (check
/// takes none) such a copy is a warning that says so; with none, the
/// manifest was lost: an error.
fn report_copies_without_manifest(
    repo: &Repository,
    manifests: &[Snapshot],
    report: &mut CheckReport,
) -> Result<()> {
    let (missing, tombstone_errors) = repo.snapshots_without_manifest(manifests)?;
    for e in tombstone_errors {
        report.errors.push(format!("damaged tombstone: {e}"));
    }
    if missing.is_empty() {
        return Ok(());
    }
    let label = |copy: &Snapshot| {
        format!(
            "the snapshot of {} from {} (root tree {})",
            copy.time_label(),
            copy.host,
            copy.tree.short()
        )
    };
    let locks = repo.locks()?;
    if locks.is_empty() {
        for copy in &missing {
            report.errors.push(format!(
                "{} has no readable manifest: only its copy in the packs remains",
                label(copy)
            ));
        }
        report.hints.push(
            "run `rewind scrub --repair` to write the missing manifests again from their copies"
                .into(),
        );
        return Ok(());
    }
    let running = locks
        .iter()
        .filter(|(_, _, staleness)| *staleness == Staleness::Live)
        .count();
    for copy in &missing {
        report.warnings.push(format!(
            "{} has a copy in the packs but no manifest: a backup stores the copy first, and {} \
             locks are held ({running} by running commands, {} left by interrupted ones); once \
             none of them runs, `rewind scrub --repair` writes the manifest from the copy",
            label(copy),
            locks.len(),
            locks.len() - running
        ));
    }
    Ok(())
}

/// What is wrong with a pack, and which of its blobs fail (None: all of them).
type PackDamage = (String, Option<Vec<Id>>);

/// Reads a whole pack and verifies it; returns the bytes read and blobs verified.
fn verify_pack(repo: &Repository, id: &Id) -> std::result::Result<(u64, u64), PackDamage> {
    let bytes = repo
        .stored_files()
        .read(FileType::Pack, &id.to_hex())
        .map_err(|e| (e.to_string(), None))?;
    let blobs = repo
        .verify_pack(id, &bytes, true)
        .map_err(|e| (e.to_string(), repo.failing_blobs(id, &bytes)))?;
    let index = repo.index();
    let number = index.pack_number(id);
    for blob in &blobs {
        match index.get(&blob.id) {
            Some(loc)
                if Some(loc.pack()) == number
                    && (loc.offset != blob.offset || loc.stored_len != blob.stored_len) =>
            {
                let problem = format!(
                    "the index places blob {} elsewhere than the pack does",
                    blob.id.short()
                );
                return Err((problem, None));
            }
            _ => {}
        }
    }
    Ok((bytes.len() as u64, blobs.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<Id> {
        (0..4096u32)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&i.wrapping_mul(2654435761).to_be_bytes());
                Id(id)
            })
            .collect()
    }

    #[test]
    fn a_percentage_reads_about_that_share_and_another_part_each_run() {
        let ids = ids();
        let chosen = |subset: &Subset| -> Vec<Id> {
            ids.iter()
                .copied()
                .filter(|id| subset.contains(id))
                .collect()
        };
        let runs: Vec<Vec<Id>> = (0..3)
            .map(|_| chosen(&Subset::parse("10%").unwrap()))
            .collect();
        for part in &runs {
            assert!((350..=470).contains(&part.len()), "{}", part.len());
        }
        // Two windows drawn at random coincide at this resolution with
        // odds of about 1 in 2000; three that all do, about 1 in 4 million.
        assert!(runs[0] != runs[1] || runs[1] != runs[2]);
        assert!(chosen(&Subset::parse("0%").unwrap()).is_empty());
        assert_eq!(chosen(&Subset::parse("100%").unwrap()).len(), ids.len());
    }

    #[test]
    fn parts_are_the_same_each_run_and_cover_every_pack_once() {
        let ids = ids();
        let mut seen = 0;
        for n in 1..=7 {
            let part = Subset::parse(&format!("{n}/7")).unwrap();
            let again = Subset::parse(&format!("{n}/7")).unwrap();
            for id in &ids {
                assert_eq!(part.contains(id), again.contains(id));
            }
            seen += ids.iter().filter(|id| part.contains(id)).count();
        }
        assert_eq!(seen, ids.len());
    }
}
