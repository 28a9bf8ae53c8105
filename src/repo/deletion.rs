//! Deletion plans (`deletions/<name>`): the packs and index files a prune no
//! longer needs, recorded before any of them is deleted and deleted only
//! once no running writer can still rely on them. The rule is in
//! `docs/design.md` (section 7, prune) and the bytes in
//! `man/rewind-format.5`, DELETION PLANS. Under object lock a plan also
//! keeps what the store refuses to delete before its retention ends, with
//! that date, and the manifests `forget` could only hide.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::lock::CLOCK_SKEW_MARGIN;
use super::{read_each, IdSet, LockRecord, Repository, RepositoryState, Staleness};
use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::id::Id;
use crate::parallel::{parallel_map_on, WAITING_THREADS};

pub const DELETION_PLAN_VERSION: u32 = 1;

/// A deletion plan and the name of its file.
pub type NamedDeletionPlan = (String, DeletionPlan);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionPlan {
    pub version: u32,
    /// When the plan was written. A writer whose lock started before this
    /// (plus the clock skew margin) may have loaded an index that names
    /// these packs, so the plan waits for it.
    pub written: DateTime<Utc>,
    pub host: String,
    pub pid: u32,
    /// Packs no index file written since names: unused or repacked.
    pub packs: Vec<Id>,
    /// Index files that newer index files supersede.
    pub index_files: Vec<Id>,
    /// Manifests of forgotten snapshots that the store keeps under
    /// retention: `forget` hid them, and a prune deletes them once it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<Id>,
    /// Files of this plan that the store keeps under retention, with the
    /// date it ends: a prune before then leaves them alone, and one after
    /// deletes them. A file the store refused without saying until when is
    /// not here, and is tried again by every prune.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retained_until: BTreeMap<Id, DateTime<Utc>>,
}

/// What carrying out a deletion plan did.
#[derive(Debug, Default)]
pub(crate) struct CarriedOut {
    pub packs_deleted: u64,
    pub bytes_deleted: u64,
    /// What the store keeps under retention; the plan waits for it.
    pub retained: RetainedFiles,
}

/// Files that deletion plans hold because the store keeps them under
/// retention (object lock), and when the first and the last retention end.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetainedFiles {
    pub packs: u64,
    pub index_files: u64,
    pub manifests: u64,
    pub first_until: Option<DateTime<Utc>>,
    pub last_until: Option<DateTime<Utc>>,
}

impl RetainedFiles {
    pub fn is_empty(&self) -> bool {
        self.packs + self.index_files + self.manifests == 0
    }

    pub fn add(&mut self, other: &RetainedFiles) {
        self.packs += other.packs;
        self.index_files += other.index_files;
        self.manifests += other.manifests;
        for until in [other.first_until, other.last_until].into_iter().flatten() {
            self.note_until(until);
        }
    }

    fn note_until(&mut self, until: DateTime<Utc>) {
        self.first_until = Some(self.first_until.map_or(until, |first| first.min(until)));
        self.last_until = Some(self.last_until.map_or(until, |last| last.max(until)));
    }
}

/// What removing some files of one kind did.
#[derive(Default)]
struct Removal {
    removed: u64,
    bytes: u64,
    /// Those the store keeps, with the date their retention ends if known.
    retained: Vec<(Id, Option<DateTime<Utc>>)>,
}

impl DeletionPlan {
    pub fn new(packs: Vec<Id>, index_files: Vec<Id>) -> DeletionPlan {
        DeletionPlan {
            version: DELETION_PLAN_VERSION,
            written: Utc::now(),
            host: crate::host::hostname(),
            pid: std::process::id(),
            packs,
            index_files,
            manifests: Vec::new(),
            retained_until: BTreeMap::new(),
        }
    }

    /// A plan for the manifests of forgotten snapshots that the store keeps
    /// under retention (see [`Repository::forget_snapshots`]).
    pub fn for_manifests(retained: &[(Id, Option<DateTime<Utc>>)]) -> DeletionPlan {
        let mut plan = DeletionPlan::new(Vec::new(), Vec::new());
        plan.manifests = retained.iter().map(|(id, _)| *id).collect();
        plan.retained_until = retained
            .iter()
            .filter_map(|(id, until)| Some((*id, (*until)?)))
            .collect();
        plan
    }

    /// Whether the retention of `file` is known to last beyond `now`.
    fn still_retained(&self, file: &Id, now: DateTime<Utc>) -> bool {
        self.retained_until
            .get(file)
            .is_some_and(|until| *until > now)
    }

    /// Whether nothing the `locks` name can still rely on what this plan
    /// deletes: every live lock other than `ours` was taken after the plan
    /// was written (by more than the clock skew between hosts), so its
    /// holder loaded an index that no longer names these packs. A stale
    /// lock counts for nothing; a writer that wakes up after its lock went
    /// stale checks for itself (`Repository::confirm_packs`).
    pub fn is_due(&self, locks: &[(String, LockRecord, Staleness)], ours: Option<&str>) -> bool {
        locks
            .iter()
            .filter(|(id, _, staleness)| *staleness == Staleness::Live && Some(id.as_str()) != ours)
            .all(|(_, lock, _)| lock.started > self.written + CLOCK_SKEW_MARGIN)
    }

    /// The live locks that keep this plan waiting.
    pub fn waits_for<'a>(
        &self,
        locks: &'a [(String, LockRecord, Staleness)],
        ours: Option<&str>,
    ) -> Vec<&'a LockRecord> {
        locks
            .iter()
            .filter(|(id, lock, staleness)| {
                *staleness == Staleness::Live
                    && Some(id.as_str()) != ours
                    && lock.started <= self.written + CLOCK_SKEW_MARGIN
            })
            .map(|(_, lock, _)| lock)
            .collect()
    }
}

impl<S: RepositoryState> Repository<S> {
    /// Every deletion plan that reads, by name, and the errors of the rest.
    pub fn deletion_plans(&self) -> Result<(Vec<NamedDeletionPlan>, Vec<Error>)> {
        let names = self.list(FileType::Deletion)?;
        let (plans, errors) = read_each(&names, |name| {
            Ok((name.to_string(), self.read_deletion_plan(name)?))
        });
        // A plan carried out while we listed is gone, not damaged.
        let errors = errors
            .into_iter()
            .filter(|e| e.kind() != ErrorKind::NotFound)
            .collect();
        Ok((plans, errors))
    }

    pub fn read_deletion_plan(&self, name: &str) -> Result<DeletionPlan> {
        let content = self.read_verified(FileType::Deletion, name)?;
        serde_json::from_slice(&content)
            .map_err(|e| Error::corrupt(format!("deletions/{name} does not decode: {e}")))
    }

    /// The packs that deletion plans name: they are on their way out, so
    /// they are neither indexed again nor relied on by a new snapshot. An
    /// unreadable plan is reported as a warning: its packs are then
    /// unindexed packs, which is what they were.
    pub fn packs_awaiting_deletion(&self) -> Result<IdSet> {
        let (plans, errors) = self.deletion_plans()?;
        for e in errors {
            crate::log::warn(&format!("skipping a damaged deletion plan: {e}"));
        }
        Ok(plans
            .iter()
            .flat_map(|(_, plan)| plan.packs.iter().copied())
            .collect())
    }

    /// Stores a deletion plan durably; returns its name.
    pub(crate) fn write_deletion_plan(&self, plan: &DeletionPlan) -> Result<String> {
        let content = serde_json::to_vec(plan).expect("deletion plans serialize");
        Ok(self.write_named(FileType::Deletion, &content)?.to_hex())
    }

    /// Removes index files a newer index file supersedes (their parity
    /// too). Those the store keeps under retention stay: loaders skip them,
    /// and the deletion plan that names them removes them later.
    pub(crate) fn remove_index_files(&self, names: &[Id]) -> Result<()> {
        self.remove_retaining(FileType::Index, names, |_| false)
            .map(drop)
    }

    /// Removes each of `files` of `kind` (and its parity), many at a time,
    /// but those for which `wait` holds; the store may keep others under
    /// retention too. Counts what was removed, and the bytes of removed
    /// packs.
    fn remove_retaining(
        &self,
        kind: FileType,
        files: &[Id],
        wait: impl Fn(&Id) -> bool + Sync,
    ) -> Result<Removal> {
        let stored = self.stored_files();
        let mut removal = Removal::default();
        for (file, result) in files
            .iter()
            .zip(parallel_map_on(WAITING_THREADS, files, |file| {
                if wait(file) {
                    return Ok(Err(None));
                }
                let name = file.to_hex();
                let size = match kind {
                    FileType::Pack => match stored.size(kind, &name) {
                        Ok(size) => Some(size),
                        Err(e) if e.kind() == ErrorKind::NotFound => None,
                        Err(e) => return Err(e),
                    },
                    _ => Some(0),
                };
                match stored.remove(kind, &name) {
                    Ok(()) => {
                        if kind == FileType::Pack {
                            crate::testing::crash_point("prune-deleting-packs");
                        }
                        Ok(Ok(size))
                    }
                    Err(e) if e.kind() == ErrorKind::Retained => {
                        let until = stored.retention(kind, &name).ok().flatten();
                        Ok(Err(until.map(|r| r.until)))
                    }
                    Err(e) => Err(e),
                }
            }))
        {
            match result? {
                Ok(Some(size)) => {
                    removal.removed += 1;
                    removal.bytes += size;
                }
                Ok(None) => {}
                Err(until) => removal.retained.push((*file, until)),
            }
        }
        Ok(removal)
    }
}

impl Repository {
    /// Carries out a deletion plan that is due: its index files, then each
    /// of its packs that the loaded index does not name (a pack brought
    /// back into use since is spared), then its manifests, then the plan
    /// itself. Each deletion is idempotent, so a plan interrupted half-way
    /// is finished by running this again.
    ///
    /// Under object lock the store refuses files whose retention has not
    /// ended: they stay, and a plan naming only them, with their dates,
    /// replaces this one (the same `written` time: it is as due as this
    /// one). A later prune skips them until those dates.
    pub(crate) fn carry_out_deletion_plan(
        &self,
        name: &str,
        plan: &DeletionPlan,
    ) -> Result<CarriedOut> {
        let now = Utc::now();
        let wait = |file: &Id| plan.still_retained(file, now);
        let index_files = self.remove_retaining(FileType::Index, &plan.index_files, wait)?;
        let doomed: Vec<Id> = {
            let index = self.index();
            plan.packs
                .iter()
                .copied()
                .filter(|pack| !index.has_pack(pack))
                .collect()
        };
        let packs = self.remove_retaining(FileType::Pack, &doomed, wait)?;
        crate::testing::crash_point("prune-packs-deleted");
        let manifests = self.remove_retaining(FileType::Snapshot, &plan.manifests, wait)?;

        let mut rest = DeletionPlan {
            packs: Vec::new(),
            index_files: Vec::new(),
            manifests: Vec::new(),
            retained_until: BTreeMap::new(),
            ..plan.clone()
        };
        let mut retained = RetainedFiles::default();
        for (removal, files) in [
            (&index_files, &mut rest.index_files),
            (&packs, &mut rest.packs),
            (&manifests, &mut rest.manifests),
        ] {
            for (file, until) in &removal.retained {
                files.push(*file);
                // A file skipped for its known date keeps that date.
                if let Some(until) = until.or_else(|| plan.retained_until.get(file).copied()) {
                    rest.retained_until.insert(*file, until);
                    retained.note_until(until);
                }
            }
        }
        retained.index_files = rest.index_files.len() as u64;
        retained.packs = rest.packs.len() as u64;
        retained.manifests = rest.manifests.len() as u64;
        if retained.is_empty() {
            self.stored_files().remove(FileType::Deletion, name)?;
        } else if rest != *plan {
            // Written before the old one goes: a crash in between leaves
            // two plans naming the same files, which is harmless.
            self.write_deletion_plan(&rest)?;
            self.stored_files().remove(FileType::Deletion, name)?;
        }
        Ok(CarriedOut {
            packs_deleted: packs.removed,
            bytes_deleted: packs.bytes,
            retained,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_without_object_lock_reads_and_writes_as_before() {
        let plan = DeletionPlan::new(vec![Id([1; 32])], vec![Id([2; 32])]);
        let json = serde_json::to_string(&plan).unwrap();
        assert!(
            !json.contains("manifests") && !json.contains("retained_until"),
            "{json}"
        );
        let read: DeletionPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(read, plan);
    }

    #[test]
    fn retention_dates_are_kept_by_file() {
        let until: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        let plan = DeletionPlan::for_manifests(&[(Id([3; 32]), Some(until)), (Id([4; 32]), None)]);
        assert_eq!(plan.manifests, vec![Id([3; 32]), Id([4; 32])]);
        let read: DeletionPlan =
            serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(read.retained_until.get(&Id([3; 32])), Some(&until));
        assert_eq!(read.retained_until.get(&Id([4; 32])), None);
        let before: DateTime<Utc> = "2029-12-31T23:59:59Z".parse().unwrap();
        assert!(read.still_retained(&Id([3; 32]), before));
        assert!(!read.still_retained(&Id([3; 32]), until));
        assert!(!read.still_retained(&Id([4; 32]), before));
    }

    #[test]
    fn retained_files_add_up_with_their_first_and_last_dates() {
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        let mut total = RetainedFiles::default();
        assert!(total.is_empty());
        let mut some = RetainedFiles {
            packs: 2,
            ..RetainedFiles::default()
        };
        some.note_until(at("2030-01-02T00:00:00Z"));
        some.note_until(at("2030-01-01T00:00:00Z"));
        total.add(&some);
        total.add(&RetainedFiles {
            manifests: 1,
            first_until: Some(at("2030-01-03T00:00:00Z")),
            last_until: Some(at("2030-01-03T00:00:00Z")),
            ..RetainedFiles::default()
        });
        assert_eq!(total.packs + total.manifests, 3);
        assert_eq!(total.first_until, Some(at("2030-01-01T00:00:00Z")));
        assert_eq!(total.last_until, Some(at("2030-01-03T00:00:00Z")));
    }
}
