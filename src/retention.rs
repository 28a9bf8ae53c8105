//! Renewing object lock retention (`rewind retention renew`): every file the
//! kept snapshots need (`Repository::needed_files`) is locked until the
//! repository's period from now, so that snapshots stay protected as they
//! age. Retention is only ever extended: a file locked past that date is
//! left alone, since S3 refuses, or lets a privileged key do, a shortening.
//! Run more often than the period (`docs/design.md` section 7, "Object lock").

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::backend::{FileType, LockMode};
use crate::error::{Error, ErrorKind, Result};
use crate::parallel::parallel_map_on;
use crate::repo::Repository;

/// What a renewal did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct RenewReport {
    pub dry_run: bool,
    pub mode: LockMode,
    /// The date every needed file is now locked until at least.
    pub until: DateTime<Utc>,
    /// Files the kept snapshots need.
    pub files: u64,
    /// Files whose retention was extended to `until`.
    pub extended: u64,
    /// Files already locked until `until` or later.
    pub already: u64,
    /// Files listed that were gone when renewed (a prune ran meanwhile).
    pub gone: u64,
}

/// What became of one file.
enum Renewal {
    Extended,
    Already,
    Gone,
}

/// Extends the retention of every file the snapshots of `repo` need to
/// the repository's object lock period from now; with `dry_run`, only
/// counts what it would extend.
pub fn renew_retention(repo: &Repository, dry_run: bool) -> Result<RenewReport> {
    let Some(lock) = repo.config().object_lock else {
        return Err(Error::usage(format!(
            "the repository at {} has no object lock",
            repo.location()
        ))
        .with_hint(
            "object lock is chosen when a repository is created: `rewind init --object-lock`",
        ));
    };
    let target = lock.retention_from(Utc::now());
    let files = repo.needed_files()?;
    let stored = repo.stored_files();
    let renew = |(kind, name): &(FileType, String)| -> Result<Renewal> {
        let current = match stored.retention(*kind, name) {
            Ok(current) => current,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Renewal::Gone),
            Err(e) => return Err(e),
        };
        if current.is_some_and(|current| current.until >= target.until) {
            return Ok(Renewal::Already);
        }
        if !dry_run {
            stored.extend_retention(*kind, name, target)?;
        }
        Ok(Renewal::Extended)
    };
    let mut report = RenewReport {
        dry_run,
        mode: lock.mode,
        until: target.until,
        files: files.len() as u64,
        extended: 0,
        already: 0,
        gone: 0,
    };
    let requests = repo.requests_in_flight().unwrap_or(4);
    for result in parallel_map_on(requests, &files, renew) {
        match result? {
            Renewal::Extended => report.extended += 1,
            Renewal::Already => report.already += 1,
            Renewal::Gone => report.gone += 1,
        }
    }
    Ok(report)
}
