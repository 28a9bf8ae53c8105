//! Deletion plans (`deletions/<name>`): the packs and index files a prune no
//! longer needs, recorded before any of them is deleted and deleted only
//! once no running writer can still rely on them. The rule is in
//! `docs/design.md` (section 7, prune) and the bytes in
//! `man/rewind-format.5`, DELETION PLANS.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::lock::CLOCK_SKEW_MARGIN;
use super::{read_each, IdSet, LockRecord, Repository, RepositoryState, Staleness};
use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::id::Id;
use crate::parallel::parallel_map_on;

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
        }
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

    /// Removes index files a newer index file supersedes (their parity too).
    pub(crate) fn remove_index_files(&self, names: &[Id]) -> Result<()> {
        for result in parallel_map_on(16, names, |name| {
            self.stored_files().remove(FileType::Index, &name.to_hex())
        }) {
            result?;
        }
        Ok(())
    }
}

impl Repository {
    /// Carries out a deletion plan that is due: its index files, then each
    /// of its packs that the loaded index does not name (a pack brought
    /// back into use since is spared), then the plan itself. Each deletion
    /// is idempotent, so a plan interrupted half-way is finished by running
    /// this again. Returns the packs deleted and their bytes.
    pub(crate) fn carry_out_deletion_plan(
        &self,
        name: &str,
        plan: &DeletionPlan,
    ) -> Result<(u64, u64)> {
        self.remove_index_files(&plan.index_files)?;
        let doomed: Vec<Id> = {
            let index = self.index();
            plan.packs
                .iter()
                .copied()
                .filter(|pack| !index.has_pack(pack))
                .collect()
        };
        let stored = self.stored_files();
        let mut deleted = (0u64, 0u64);
        for result in parallel_map_on(16, &doomed, |pack| {
            let name = pack.to_hex();
            let size = match stored.size(FileType::Pack, &name) {
                Ok(size) => Some(size),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            stored.remove(FileType::Pack, &name)?;
            crate::testing::crash_point("prune-deleting-packs");
            Ok(size)
        }) {
            if let Some(size) = result? {
                deleted.0 += 1;
                deleted.1 += size;
            }
        }
        crate::testing::crash_point("prune-packs-deleted");
        stored.remove(FileType::Deletion, name)?;
        Ok(deleted)
    }
}
