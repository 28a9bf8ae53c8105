//! `rewind restore-test`, the restore drill: restore a snapshot (or a
//! deterministic sample of its files) into a scratch directory, time it,
//! and check what was restored: every chunk of every file is checked
//! against the id recorded at backup time as it is fetched and before it is
//! written (decrypted, decompressed, BLAKE3 — the check every restore
//! makes); then the restored tree is compared with the snapshot — every
//! entry's type, size, link target, mode, times and extended attributes
//! (and owner when run as root), nothing missing and nothing extra. So the
//! drill runs at the speed of a restore. `reread` adds `restore --verify`.
//! A live tree can be compared too. The report gives the time the restore
//! took (the recovery time actually measured) and the snapshot's age (the
//! recovery point).
//!
//! The scratch directory is removed when the drill ends, however it ends:
//! a drop guard removes it, and a signal stops the work through [`Cancel`]
//! so that the guard runs.

mod junit;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::diff::{diff_each, Change, ChangeKind, DiffOptions, DiffOutcome, Side};
use super::{
    find_node, list_or_count, restore, Cancel, Failure, Overwrite, PathFilter, RestoreOptions,
    Sample,
};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Progress, Totals};
use crate::repo::{Repository, Snapshot};
use crate::tree::ExpansionLimits;

#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    pub sample: Option<Sample>,
    /// The directory in which the scratch directory is made.
    pub scratch: PathBuf,
    /// A live tree to compare the snapshot with (it stands for the
    /// snapshot path that is tested).
    pub against: Option<PathBuf>,
    /// The drill fails when the snapshot is older than this.
    pub max_age: Option<Duration>,
    /// Leave the scratch directory in place (to look at a failure).
    pub keep_scratch: bool,
    /// Also read every chunk back from the scratch directory after writing
    /// it (`restore --verify`). Off by default: right after writing, the
    /// bytes come back from the page cache, not the disk, so this proves
    /// little more than the write call did, and costs about a tenth of the
    /// restore time.
    pub reread: bool,
    pub threads: usize,
    /// The restore's progress, then the comparison's (no counts).
    pub progress: Progress,
    pub cancel: Cancel,
    /// How far the snapshot may expand (see `tree::ExpansionLimits`).
    pub limits: ExpansionLimits,
}

/// One part of the drill, a test case in JUnit terms.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub seconds: f64,
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub snapshot: String,
    pub snapshot_time: String,
    pub host: String,
    /// The path in the snapshot that was tested.
    pub path: String,
    pub sample_percent: Option<f64>,
    pub files_checked: u64,
    pub bytes_checked: u64,
    pub entries_checked: u64,
    /// The time the restore took: the recovery time, measured.
    pub restore_seconds: f64,
    /// The time the check of the restored tree took.
    pub verify_seconds: f64,
    /// The snapshot's age when the drill ran: the recovery point.
    pub age_seconds: i64,
    pub max_age_seconds: Option<u64>,
    pub checks: Vec<Check>,
    pub scratch: String,
    pub scratch_kept: bool,
    pub ok: bool,
}

impl DrillReport {
    pub fn failures(&self) -> impl Iterator<Item = (&Check, &Failure)> {
        self.checks
            .iter()
            .flat_map(|c| c.failures.iter().map(move |f| (c, f)))
    }
}

/// A directory that is removed, with everything in it, when dropped.
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    fn create(parent: &Path, label: &str) -> Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!(
            "rewind-restore-test.{label}.{}.{stamp:09}",
            std::process::id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                Error::io(
                    format!("cannot create a scratch directory in {}", parent.display()),
                    e,
                )
                .with_hint("choose another place with --scratch DIR")
            })?;
        Ok(Scratch { path, keep: false })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = super::target::remove_dir_tree(&self.path) {
                crate::log::warn(&format!(
                    "cannot remove the scratch directory {}: {e}",
                    self.path.display()
                ));
            }
        }
    }
}

/// Joins a path in the snapshot and a path relative to it.
fn in_snapshot(base: &str, rel: &str) -> String {
    match rel {
        "." | "" => if base.is_empty() { "/" } else { base }.to_string(),
        _ => format!("{base}/{rel}"),
    }
}

/// The failures of one check, listed up to `MAX_LISTED_FAILURES` (10,000) and then
/// only counted, so that a drill in which millions of files fail does not
/// hold a message for each.
#[derive(Default)]
struct FailureList {
    listed: Vec<Failure>,
    not_listed: u64,
}

impl FailureList {
    fn push(&mut self, failure: Failure) {
        list_or_count(&mut self.listed, &mut self.not_listed, failure);
    }

    /// A comparison's errors (those it listed, and the count of the rest),
    /// each as a failure of the whole tree, shown by `shown`.
    fn add_errors(&mut self, base: &str, compared: &DiffOutcome, shown: impl Fn(&str) -> String) {
        for e in &compared.errors {
            self.push(Failure {
                path: in_snapshot(base, ""),
                error: shown(e),
            });
        }
        self.not_listed += compared.errors_not_listed;
    }

    /// The listed failures, and one more that counts those not listed:
    /// "N more entries `what`".
    fn finish(mut self, base: &str, what: &str) -> Vec<Failure> {
        if self.not_listed > 0 {
            self.listed.push(Failure {
                path: in_snapshot(base, ""),
                error: format!("{} more entries {what}", self.not_listed),
            });
        }
        self.listed
    }
}

/// A difference between the snapshot and a tree, as a failure.
fn failure(base: &str, change: &Change, tree: &str) -> Failure {
    let error = match change.change {
        ChangeKind::Removed => format!("missing from {tree}"),
        ChangeKind::Added => format!("in {tree} but not in the snapshot"),
        ChangeKind::Modified => format!("{} differs in {tree}", change.details.join(", ")),
        ChangeKind::TypeChanged => format!("{} in {tree}", change.details.join(", ")),
        ChangeKind::Metadata => format!("{} differs in {tree}", change.details.join(", ")),
    };
    Failure {
        path: in_snapshot(base, &change.path),
        error,
    }
}

/// Runs the drill on `path` of `snapshot`. Returns `ErrorKind::Interrupted`
/// when cancelled (the scratch directory is gone by then).
pub fn drill(
    repo: &Repository,
    snapshot: &Snapshot,
    path: &str,
    options: &DrillOptions,
) -> Result<DrillReport> {
    let base = match path.trim_matches('/') {
        "" => String::new(),
        p => format!("/{p}"),
    };
    let filter = PathFilter::new(&[], &[], options.sample)?;
    // Entry paths in the diffs are relative to `base`.
    let admits = |rel: &str, is_dir: bool| filter.admits(&in_snapshot(&base, rel), is_dir);
    let mut scratch = Scratch::create(&options.scratch, &snapshot.id.short())?;
    scratch.keep = options.keep_scratch;
    let mut checks = Vec::new();

    let started = Instant::now();
    let restored = restore(
        repo,
        &snapshot.tree,
        path,
        &scratch.path,
        &RestoreOptions {
            sample: options.sample,
            overwrite: Overwrite::Always,
            verify: options.reread,
            threads: options.threads,
            progress: options.progress.clone(),
            cancel: options.cancel,
            limits: options.limits,
            ..RestoreOptions::default()
        },
    );
    let restore_seconds = started.elapsed().as_secs_f64();
    let scratch_text = scratch.path.display().to_string();
    let (restore_failures, files_checked, bytes_checked) = match restored {
        Ok(report) => {
            // Capped already, as the drill's own lists are.
            let failures = FailureList {
                listed: report
                    .errors
                    .into_iter()
                    .map(|f| Failure {
                        error: f
                            .error
                            .replace(&scratch_text, if base.is_empty() { "" } else { &base }),
                        ..f
                    })
                    .collect(),
                not_listed: report.errors_not_listed,
            };
            (
                failures.finish(&base, "could not be restored"),
                report.files,
                report.bytes,
            )
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
        Err(e) => (
            vec![Failure {
                path: in_snapshot(&base, ""),
                error: e.to_string(),
            }],
            0,
            0,
        ),
    };
    checks.push(Check {
        name: "restore".into(),
        seconds: restore_seconds,
        failures: restore_failures,
    });

    let snapshot_side = Side::Snapshot {
        repo,
        tree: snapshot.tree,
        path: path.to_string(),
    };
    // A file is restored into the scratch directory under its own name.
    let restored = match find_node(repo, &snapshot.tree, path)? {
        Some(node) if !node.is_dir() => scratch.path.join(OsStr::from_bytes(&node.name)),
        _ => scratch.path.clone(),
    };
    options.progress.begin("compare", "", Totals::UNKNOWN);
    let started = Instant::now();
    // Owners are only restored by root; others get their own uid and gid.
    // SAFETY: geteuid cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    let mut verify_failures = FailureList::default();
    let verified = diff_each(
        &snapshot_side,
        &Side::Local(restored),
        &DiffOptions {
            metadata: true,
            // Contents were checked chunk by chunk as they were restored.
            sizes_only: true,
            filter: Some(&admits),
            cancel: options.cancel,
            limits: options.limits,
        },
        &mut |mut change| {
            if !as_root {
                change.details.retain(|d| !d.starts_with("owner "));
                if change.change == ChangeKind::Metadata && change.details.is_empty() {
                    return Ok(());
                }
            }
            verify_failures.push(failure(&base, &change, "the restored tree"));
            Ok(())
        },
    )?;
    let verify_seconds = started.elapsed().as_secs_f64();
    verify_failures.add_errors(&base, &verified, |e| e.replace(&scratch_text, "<scratch>"));
    checks.push(Check {
        name: "verify".into(),
        seconds: verify_seconds,
        failures: verify_failures.finish(
            &base,
            "differ in the restored tree or could not be compared",
        ),
    });

    if let Some(dir) = &options.against {
        let started = Instant::now();
        let tree = dir.display().to_string();
        let mut failures = FailureList::default();
        let compared = diff_each(
            &snapshot_side,
            &Side::Local(dir.clone()),
            &DiffOptions {
                filter: Some(&admits),
                cancel: options.cancel,
                limits: options.limits,
                ..DiffOptions::default()
            },
            &mut |change| {
                failures.push(failure(&base, &change, &tree));
                Ok(())
            },
        )?;
        failures.add_errors(&base, &compared, str::to_string);
        checks.push(Check {
            name: format!("compare with {tree}"),
            seconds: started.elapsed().as_secs_f64(),
            failures: failures.finish(&base, &format!("differ in {tree} or could not be compared")),
        });
    }

    let age = chrono::Utc::now() - snapshot.time;
    if let Some(max) = options.max_age {
        let too_old = age.to_std().is_ok_and(|a| a > max);
        checks.push(Check {
            name: "recovery point".into(),
            seconds: 0.0,
            failures: if too_old {
                vec![Failure {
                    path: in_snapshot(&base, ""),
                    error: format!(
                        "the snapshot is {} old, more than the allowed {}",
                        human_duration(age.num_seconds().max(0) as u64),
                        human_duration(max.as_secs())
                    ),
                }]
            } else {
                Vec::new()
            },
        });
    }

    let ok = checks.iter().all(|c| c.failures.is_empty());
    // A failed drill keeps nothing: the report names every failing path.
    Ok(DrillReport {
        snapshot: snapshot.id.to_hex(),
        snapshot_time: snapshot.time_label(),
        host: snapshot.host.clone(),
        path: in_snapshot(&base, ""),
        sample_percent: options.sample.map(|s| s.percent()),
        files_checked,
        bytes_checked,
        entries_checked: verified.summary.entries_compared,
        restore_seconds,
        verify_seconds,
        age_seconds: age.num_seconds(),
        max_age_seconds: options.max_age.map(|d| d.as_secs()),
        checks,
        scratch: scratch_text,
        scratch_kept: scratch.keep,
        ok,
    })
}

/// `90061` → `1d 1h 1m`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .take(3)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

/// Parses `90s`, `45m`, `26h`, `7d` (or plain seconds).
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad_duration(text))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(bad_duration(text)),
    };
    Ok(Duration::from_secs(n * scale))
}

fn bad_duration(text: &str) -> Error {
    Error::usage(format!(
        "'{text}' is not a duration: use a number with s, m, h, d or w, such as 26h"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::MAX_LISTED_FAILURES;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(
            parse_duration("26h").unwrap(),
            Duration::from_secs(26 * 3600)
        );
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5y").is_err());
        assert_eq!(human_duration(90061), "1d 1h 1m");
        assert_eq!(human_duration(0), "0s");
    }

    #[test]
    fn failures_past_the_listed_ones_are_one_counted_entry() {
        let failure = |n: usize| Failure {
            path: format!("/srv/f{n}"),
            error: "differs".into(),
        };
        let mut list = FailureList::default();
        list.push(failure(0));
        assert_eq!(list.finish("/srv", "differ").len(), 1);

        let mut list = FailureList::default();
        for n in 0..MAX_LISTED_FAILURES + 3 {
            list.push(failure(n));
        }
        list.not_listed += 2;
        let failures = list.finish("/srv", "differ in the restored tree");
        assert_eq!(failures.len(), MAX_LISTED_FAILURES + 1);
        let last = failures.last().unwrap();
        assert_eq!(last.error, "5 more entries differ in the restored tree");
        assert_eq!(last.path, in_snapshot("/srv", ""));
    }
}
