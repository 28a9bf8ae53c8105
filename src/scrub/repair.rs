//! Checking and repairing the metadata files, and rebuilding any file from
//! its parity.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;

use super::state::{Finding, Status};
use crate::backend::{Backend, FileType};
use crate::error::Result;
use crate::repo::{
    pack, parity, parity_name, Config, Id, IndexFile, IndexedPack, KeyFile, Repository,
};

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
    rebuild(&**repo.backend(), kind, name, write, verify)
}

fn rebuild(
    backend: &dyn Backend,
    kind: FileType,
    name: &str,
    write: bool,
    verify: impl Fn(&[u8]) -> std::result::Result<(), String>,
) -> Attempt {
    let Ok(parity) = backend.read(FileType::Parity, &parity_name(kind, name)) else {
        return Attempt::Impossible(
            "there is no parity for it (see `rewind init --parity`)".into(),
        );
    };
    let damaged = backend.read(kind, name).unwrap_or_default();
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
            match backend.write(kind, name, &data) {
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
    backend: &dyn Backend,
    percent: u32,
    kind: FileType,
    name: &str,
    data: &[u8],
    write: bool,
) -> Result<Option<Finding>> {
    if percent == 0 {
        return Ok(None);
    }
    let parity_file = parity_name(kind, name);
    let sound = backend
        .read(FileType::Parity, &parity_file)
        .is_ok_and(|p| parity::is_sound(data, &p));
    if sound {
        return Ok(None);
    }
    let status = if write {
        backend.write(
            FileType::Parity,
            &parity_file,
            &parity::compute(data, percent)?,
        )?;
        Status::Repaired
    } else {
        Status::Damaged
    };
    Ok(Some(Finding {
        file: FileType::Parity.path(&parity_file),
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
pub fn repair_before_open(backend: &dyn Backend, write: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    let location = backend.location();
    let config_ok = |data: &[u8]| {
        Config::from_bytes(data, &location)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let mut sound_config = None;
    let config_problem = match backend.read(FileType::Config, "config") {
        Err(e) => Some(format!("cannot be read: {e}")),
        Ok(bytes) => match config_ok(&bytes) {
            Err(e) => Some(e),
            Ok(()) => match backend.read(FileType::Parity, "config") {
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
        let attempt = rebuild(backend, FileType::Config, "config", write, config_ok);
        let repaired = matches!(attempt, Attempt::Repaired);
        findings.push(finding(FileType::Config, "config", problem, attempt, write));
        if repaired {
            sound_config = backend.read(FileType::Config, "config").ok();
        }
    }
    // The parity kept for the config and key files, once the config is sound.
    let percent = sound_config.as_ref().map_or(0, |bytes| {
        Config::from_bytes(bytes, &location).map_or(0, |c| c.parity_percent)
    });
    if let Some(bytes) = &sound_config {
        let parity = check_parity(backend, percent, FileType::Config, "config", bytes, write);
        findings.extend(parity.ok().flatten());
    }
    for name in backend.list(FileType::Key).unwrap_or_default() {
        let verify = |data: &[u8]| {
            named_by_hash(&name)(data)?;
            KeyFile::from_bytes(data)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let problem = match backend.read(FileType::Key, &name) {
            Err(e) => Some(format!("cannot be read: {e}")),
            Ok(bytes) => match verify(&bytes) {
                Err(e) => Some(e),
                Ok(()) => {
                    let parity =
                        check_parity(backend, percent, FileType::Key, &name, &bytes, write);
                    findings.extend(parity.ok().flatten());
                    None
                }
            },
        };
        if let Some(problem) = problem {
            let attempt = rebuild(backend, FileType::Key, &name, write, verify);
            findings.push(finding(FileType::Key, &name, problem, attempt, write));
        }
    }
    findings
}

/// Checks every metadata file; with `write`, repairs from parity, rebuilds
/// lost index files from the pack trailers and lost manifests from the
/// snapshot copies in packs.
pub fn check_metadata(repo: &Repository, write: bool) -> Result<Vec<Finding>> {
    let backend = &**repo.backend();
    let mut findings = repair_before_open(backend, write);
    let percent = repo.config().parity_percent;
    let mut lost_index = false;
    for name in backend.list(FileType::Index)? {
        let Err(e) = repo.read_index_file(&name) else {
            let bytes = backend.read(FileType::Index, &name)?;
            findings.extend(check_parity(
                backend,
                percent,
                FileType::Index,
                &name,
                &bytes,
                write,
            )?);
            continue;
        };
        let attempt = rebuild(backend, FileType::Index, &name, write, |data| {
            named_by_hash(&name)(data)
        });
        let mut f = finding(FileType::Index, &name, e.to_string(), attempt, write);
        if f.status == Status::Lost {
            // An index only says where blobs are; the packs say it too.
            backend.remove(FileType::Index, &name)?;
            lost_index = true;
            f.status = Status::Repaired;
            f.problem = format!("{}; replaced by an index rebuilt from the pack trailers", e);
        }
        findings.push(f);
    }
    if lost_index {
        rebuild_index(repo)?;
    } else if findings.iter().any(|f| f.status == Status::Repaired) {
        repo.load_index()?;
    }
    let mut lost_manifests = Vec::new();
    for name in backend.list(FileType::Snapshot)? {
        let Err(e) = repo.read_snapshot(&name) else {
            let bytes = backend.read(FileType::Snapshot, &name)?;
            findings.extend(check_parity(
                backend,
                percent,
                FileType::Snapshot,
                &name,
                &bytes,
                write,
            )?);
            continue;
        };
        let attempt = rebuild(
            backend,
            FileType::Snapshot,
            &name,
            write,
            named_by_hash(&name),
        );
        let f = finding(FileType::Snapshot, &name, e.to_string(), attempt, write);
        if f.status == Status::Lost {
            lost_manifests.push((name, f));
        } else {
            findings.push(f);
        }
    }
    if !lost_manifests.is_empty() {
        for (name, _) in &lost_manifests {
            backend.remove(FileType::Snapshot, name)?;
        }
        let mut restored = restore_manifests(repo)?;
        for (_, mut f) in lost_manifests {
            if restored > 0 {
                restored -= 1;
                f.status = Status::Repaired;
                f.problem
                    .push_str("; the manifest was rebuilt from its copy in the packs");
            } else {
                f.affected
                    .insert(f.file.clone(), vec!["(the whole snapshot)".into()]);
            }
            findings.push(f);
        }
    }
    Ok(findings)
}

/// Indexes every pack that no readable index file lists, from its trailer.
pub fn rebuild_index(repo: &Repository) -> Result<usize> {
    repo.load_index()?;
    let indexed: HashSet<Id> = repo.index().packs().iter().map(|p| p.id).collect();
    let mut packs = Vec::new();
    for name in repo.backend().list(FileType::Pack)? {
        let Ok(id) = Id::from_hex(&name) else {
            continue;
        };
        if indexed.contains(&id) {
            continue;
        }
        let Ok(bytes) = repo.backend().read(FileType::Pack, &name) else {
            continue;
        };
        if Id::of_bytes(&bytes) != id {
            continue; // a damaged pack is the pack scan's business
        }
        if let Ok((salt, blobs)) = pack::read_trailer(repo.keys(), &bytes) {
            packs.push(IndexedPack { id, salt, blobs });
        }
    }
    let count = packs.len();
    if count > 0 {
        repo.write_index_file(&IndexFile {
            supersedes: vec![],
            packs,
        })?;
    }
    repo.load_index()?;
    Ok(count)
}

/// Writes the manifest of every snapshot copy that has no manifest.
fn restore_manifests(repo: &Repository) -> Result<usize> {
    let existing: HashSet<(String, Id, String)> = repo
        .snapshots()?
        .into_iter()
        .map(|s| (s.time_label(), s.tree, s.host))
        .collect();
    let mut restored = 0;
    for copy in repo.snapshot_copies().into_iter().flatten() {
        if !existing.contains(&(copy.time_label(), copy.tree, copy.host.clone())) {
            repo.save_snapshot(&copy)?;
            restored += 1;
        }
    }
    Ok(restored)
}
