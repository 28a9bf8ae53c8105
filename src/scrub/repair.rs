//! Checking and repairing the metadata files, and rebuilding any file from
//! its parity.

use std::collections::BTreeMap;

use chrono::Utc;

use super::state::{Finding, Status};
use crate::backend::FileType;
use crate::error::Result;
use crate::repo::{parity, Config, Id, IdSet, KeyFile, Repository, StoredFiles};

pub enum Attempt {
    Repaired,
    /// Parity can rebuild it; nothing was written (no --repair).
    Repairable,
    Impossible(String),
}

/// Rebuilds `kind/name` from its parity when `verify` accepts the result;
/// writes it back only if `write`.
pub fn from_parity(
    repo: &Repository,
    kind: FileType,
    name: &str,
    write: bool,
    verify: impl Fn(&[u8]) -> std::result::Result<(), String>,
) -> Attempt {
    rebuild(&repo.stored_files(), kind, name, write, verify)
}

fn rebuild(
    files: &StoredFiles,
    kind: FileType,
    name: &str,
    write: bool,
    verify: impl Fn(&[u8]) -> std::result::Result<(), String>,
) -> Attempt {
    let Ok(parity) = files.read_parity(kind, name) else {
        return Attempt::Impossible(
            "there is no parity for it (see `rewind init --parity`)".into(),
        );
    };
    let damaged = files.read(kind, name).unwrap_or_default();
    match parity::repair(&damaged, &parity) {
        Ok(parity::Outcome::Repaired { data, .. }) => {
            if let Err(why) = verify(&data) {
                return Attempt::Impossible(format!(
                    "its parity rebuilt it, but the result does not verify: {why}"
                ));
            }
            if !write {
                return Attempt::Repairable;
            }
            match files.replace(kind, name, &data) {
                Ok(()) => Attempt::Repaired,
                Err(e) => Attempt::Impossible(format!("the rebuilt file cannot be written: {e}")),
            }
        }
        Ok(parity::Outcome::Intact) => {
            Attempt::Impossible("its parity matches the damaged bytes".into())
        }
        Err(e) => Attempt::Impossible(format!("beyond its parity: {e}")),
    }
}

pub(super) fn finding(
    kind: FileType,
    name: &str,
    problem: String,
    attempt: Attempt,
    write: bool,
) -> Finding {
    let (status, detail) = match attempt {
        Attempt::Repaired => (
            Status::Repaired,
            "rebuilt from parity and verified".to_string(),
        ),
        Attempt::Repairable => (
            Status::Damaged,
            "repairable from parity: run `rewind scrub --repair`".into(),
        ),
        Attempt::Impossible(why) => (if write { Status::Lost } else { Status::Damaged }, why),
    };
    Finding {
        file: kind.path(name),
        problem: format!("{problem}; {detail}"),
        status,
        affected: BTreeMap::new(),
        damaged_blobs: None,
        found: Utc::now(),
    }
}

/// Checks the parity of a sound file: parity that is missing, damaged or
/// made for other bytes is reported and, with `write`, computed anew.
pub(super) fn check_parity(
    files: &StoredFiles,
    kind: FileType,
    name: &str,
    data: &[u8],
    write: bool,
) -> Result<Option<Finding>> {
    if files.parity_percent() == 0 {
        return Ok(None);
    }
    let read_sound = || {
        files
            .read_parity(kind, name)
            .map(|p| parity::is_sound(data, &p))
    };
    let sound = match read_sound() {
        // A writer stores a file and then its parity: a parity missing
        // now may be on its way (a mount's own audit record, a backup
        // running beside the scrub). Only one still missing a moment
        // later is a finding; a killed writer's stays missing.
        Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {
            std::thread::sleep(std::time::Duration::from_secs(1));
            read_sound().unwrap_or(false)
        }
        other => other.unwrap_or(false),
    };
    if sound {
        return Ok(None);
    }
    let status = if write {
        files.write_parity(kind, name, data)?;
        Status::Repaired
    } else {
        Status::Damaged
    };
    Ok(Some(Finding {
        file: FileType::Parity.path(&crate::repo::parity_name(kind, name)),
        problem: format!(
            "the parity of the sound file {} is missing or damaged (no data is at risk)",
            kind.path(name)
        ),
        status,
        affected: BTreeMap::new(),
        damaged_blobs: None,
        found: Utc::now(),
    }))
}

fn named_by_hash(name: &str) -> impl Fn(&[u8]) -> std::result::Result<(), String> + '_ {
    move |data| {
        if Id::of_bytes(data).to_hex() == name {
            Ok(())
        } else {
            Err("it does not hash to its name".into())
        }
    }
}

/// Checks (and with `write` repairs) the files a repository cannot be opened
/// without: the config and the key files. Usable before opening.
pub fn repair_before_open(files: &StoredFiles, write: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    let location = files.location();
    let config_ok = |data: &[u8]| {
        Config::from_bytes(data, &location)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let mut sound_config = None;
    let config_problem = match files.read(FileType::Config, "config") {
        Err(e) => Some(format!("cannot be read: {e}")),
        Ok(bytes) => match config_ok(&bytes) {
            Err(e) => Some(e),
            Ok(()) => match files.read_parity(FileType::Config, "config") {
                Ok(p)
                    if matches!(
                        parity::repair(&bytes, &p),
                        Ok(parity::Outcome::Repaired { .. })
                    ) =>
                {
                    Some("its bytes differ from what its parity protects".into())
                }
                _ => {
                    sound_config = Some(bytes);
                    None
                }
            },
        },
    };
    if let Some(problem) = config_problem {
        let attempt = rebuild(files, FileType::Config, "config", write, config_ok);
        let repaired = matches!(attempt, Attempt::Repaired);
        findings.push(finding(FileType::Config, "config", problem, attempt, write));
        if repaired {
            sound_config = files.read(FileType::Config, "config").ok();
        }
    }
    // The parity kept for the config and key files, once the config is sound.
    let percent = sound_config.as_ref().map_or(0, |bytes| {
        Config::from_bytes(bytes, &location).map_or(0, |c| c.parity_percent)
    });
    let files = &files.with_parity_percent(percent);
    if let Some(bytes) = &sound_config {
        let parity = check_parity(files, FileType::Config, "config", bytes, write);
        findings.extend(parity.ok().flatten());
    }
    for name in files.list(FileType::Key).unwrap_or_default() {
        let verify = |data: &[u8]| {
            named_by_hash(&name)(data)?;
            KeyFile::from_bytes(data)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let problem = match files.read(FileType::Key, &name) {
            Err(e) => Some(format!("cannot be read: {e}")),
            Ok(bytes) => match verify(&bytes) {
                Err(e) => Some(e),
                Ok(()) => {
                    let parity = check_parity(files, FileType::Key, &name, &bytes, write);
                    findings.extend(parity.ok().flatten());
                    None
                }
            },
        };
        if let Some(problem) = problem {
            let attempt = rebuild(files, FileType::Key, &name, write, verify);
            findings.push(finding(FileType::Key, &name, problem, attempt, write));
        }
    }
    findings
}

/// Checks every metadata file (audit records too); with `write`, repairs
/// from parity, rebuilds lost index files from the pack trailers and lost
/// manifests from the snapshot copies in packs.
pub fn check_metadata(repo: &Repository, write: bool) -> Result<Vec<Finding>> {
    let mut findings = repair_before_open(&repo.stored_files(), write);
    let index_findings = check_index_files(repo, write)?;
    let index_damaged = !index_findings.is_empty();
    findings.extend(index_findings);
    // Before lost packs are looked for: the packs a plan names are not lost.
    let (plan_findings, _) = check_files(repo, FileType::Deletion, write, |name| {
        repo.read_deletion_plan(name).map(|_| ())
    })?;
    findings.extend(plan_findings);
    if !index_damaged {
        findings.extend(index_lost_packs(repo, write)?);
    }
    let (tombstone_findings, _) = check_files(repo, FileType::Forgotten, write, |name| {
        repo.read_tombstone(name).map(|_| ())
    })?;
    let tombstones_sound = tombstone_findings
        .iter()
        .all(|f| f.status == Status::Repaired);
    findings.extend(tombstone_findings);
    findings.extend(check_manifests(repo, write, tombstones_sound)?);
    let (audit_findings, _) = check_files(repo, FileType::Audit, write, |name| {
        repo.read_audit_record(name).map(|_| ())
    })?;
    findings.extend(audit_findings);
    Ok(findings)
}

/// A file that does not read and was not repaired from parity.
struct Unreadable {
    name: String,
    /// Where its finding is in the findings returned beside it.
    finding: usize,
    /// Why it does not read.
    error: String,
}

/// Checks the files of one kind (index files, manifests, tombstones, audit
/// records) and their parity, repairing from parity with `write`. Returns
/// the findings and the files that are still unreadable.
fn check_files(
    repo: &Repository,
    kind: FileType,
    write: bool,
    read: impl Fn(&str) -> Result<()>,
) -> Result<(Vec<Finding>, Vec<Unreadable>)> {
    let files = &repo.stored_files();
    let names = files.list(kind)?;
    let mut findings = Vec::new();
    let mut unreadable = Vec::new();
    for name in names {
        let Err(e) = read(&name) else {
            // Without parity there is nothing more to check: no second read.
            if files.parity_percent() > 0 {
                let bytes = files.read(kind, &name)?;
                findings.extend(check_parity(files, kind, &name, &bytes, write)?);
            }
            continue;
        };
        let attempt = rebuild(files, kind, &name, write, named_by_hash(&name));
        let f = finding(kind, &name, e.to_string(), attempt, write);
        if f.status != Status::Repaired {
            unreadable.push(Unreadable {
                name,
                finding: findings.len(),
                error: e.to_string(),
            });
        }
        findings.push(f);
    }
    Ok((findings, unreadable))
}

/// Index files: an index file beyond repair is removed and replaced by an
/// index rebuilt from the pack trailers (an index only says where blobs
/// are; the packs say it too).
fn check_index_files(repo: &Repository, write: bool) -> Result<Vec<Finding>> {
    let (mut findings, unreadable) = check_files(repo, FileType::Index, write, |name| {
        repo.read_index_file(name).map(|_| ())
    })?;
    let mut lost_index = false;
    for file in &unreadable {
        let f = &mut findings[file.finding];
        if f.status != Status::Lost {
            continue;
        }
        repo.stored_files().remove(FileType::Index, &file.name)?;
        lost_index = true;
        f.status = Status::Repaired;
        f.problem = format!(
            "{}; replaced by an index rebuilt from the pack trailers",
            file.error
        );
    }
    if lost_index {
        repo.index_unindexed_packs()?;
    } else if findings.iter().any(|f| f.status == Status::Repaired) {
        repo.reload_index()?;
    }
    Ok(findings)
}

/// Packs that no index file lists while snapshots need blobs that are not
/// in the index: an index file was deleted. With `write` they are indexed
/// from their trailers. Unlisted packs that nothing needs are what an
/// interrupted backup leaves, harmless (as `check` says), and not reported.
fn index_lost_packs(repo: &Repository, write: bool) -> Result<Option<Finding>> {
    let unlisted = repo.unindexed_packs()?;
    if unlisted.is_empty() {
        return Ok(None);
    }
    let affected = crate::check::affected_paths(repo, &IdSet::default())?;
    if affected.is_empty() {
        return Ok(None);
    }
    let problem = format!(
        "{} packs are listed by no index file, and snapshots need blobs that are not in the index (an index file is missing)",
        unlisted.len()
    );
    let (status, detail, affected) = if !write {
        let detail = "`rewind scrub --repair` indexes the packs from their trailers".to_string();
        (Status::Damaged, detail, affected)
    } else {
        let indexed = repo.index_unindexed_packs()?;
        let still = crate::check::affected_paths(repo, &IdSet::default())?;
        let detail = format!("indexed {indexed} of them from their trailers");
        let status = if still.is_empty() {
            Status::Repaired
        } else {
            Status::Lost
        };
        (status, detail, still)
    };
    Ok(Some(Finding {
        file: format!("{}/", FileType::Index.dir()),
        problem: format!("{problem}; {detail}"),
        status,
        affected,
        damaged_blobs: None,
        found: Utc::now(),
    }))
}

/// Manifests: a damaged manifest beyond repair is removed, and, with
/// `write`, every snapshot whose copy in the packs has neither a manifest
/// nor a tombstone gets its manifest back from the copy. While a tombstone
/// is unreadable nothing is brought back: it may be that copy's tombstone.
fn check_manifests(repo: &Repository, write: bool, tombstones_sound: bool) -> Result<Vec<Finding>> {
    let (mut findings, unreadable) = check_files(repo, FileType::Snapshot, write, |name| {
        repo.read_snapshot(name).map(|_| ())
    })?;
    if write {
        for file in &unreadable {
            repo.stored_files().remove(FileType::Snapshot, &file.name)?;
        }
    }
    let manifests = repo.snapshots_with_errors()?.0;
    let (missing, _) = repo.snapshots_without_manifest(&manifests)?;
    let restore = write && tombstones_sound;
    if restore {
        for copy in &missing {
            repo.save_snapshot(copy)?;
        }
    }
    // A damaged manifest's copy is among the missing, but which one it is
    // cannot be told (the manifest does not read): they are matched by count.
    let mut rebuilt = if restore { missing.len() } else { 0 };
    for f in findings.iter_mut().filter(|f| f.status != Status::Repaired) {
        if rebuilt > 0 {
            rebuilt -= 1;
            f.status = Status::Repaired;
            f.problem
                .push_str("; the manifest was rebuilt from its copy in the packs");
        } else if write {
            f.affected
                .insert(f.file.clone(), vec!["(the whole snapshot)".into()]);
        }
    }
    let deleted = missing.len().saturating_sub(unreadable.len());
    if deleted == 0 {
        return Ok(findings);
    }
    let (status, detail) = if restore {
        (
            Status::Repaired,
            "the manifest was rebuilt from its copy in the packs",
        )
    } else if write {
        (
            Status::Damaged,
            "not rebuilt while a tombstone is unreadable (it may be this snapshot's)",
        )
    } else {
        (
            Status::Damaged,
            "`rewind scrub --repair` rebuilds it from its copy in the packs",
        )
    };
    if unreadable.is_empty() {
        findings.extend(missing.iter().map(|copy| Finding {
            file: format!(
                "{}/ (the manifest of the snapshot of {} from {}, root tree {})",
                FileType::Snapshot.dir(),
                copy.time_label(),
                copy.host,
                copy.tree.short()
            ),
            problem: format!("the manifest is missing (deleted, and not forgotten); {detail}"),
            status,
            affected: BTreeMap::new(),
            damaged_blobs: None,
            found: Utc::now(),
        }));
    } else {
        findings.push(Finding {
            file: format!("{}/", FileType::Snapshot.dir()),
            problem: format!(
                "{deleted} more snapshots have a copy in the packs but no manifest; {detail}"
            ),
            status,
            affected: BTreeMap::new(),
            damaged_blobs: None,
            found: Utc::now(),
        });
    }
    Ok(findings)
}
