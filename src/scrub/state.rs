//! The scrub's memory between runs: where the current pass stands and what
//! it found, in a small JSON file on the machine that scrubs (not in the
//! repository, which a scrub must be able to distrust).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Found and not repaired (run with --repair, or it cannot be).
    Damaged,
    /// Rebuilt and verified.
    Repaired,
    /// Beyond repair: the data it held is gone from the repository.
    Lost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The file's path in the repository, e.g. `data/ab/ab12…`.
    pub file: String,
    pub problem: String,
    pub status: Status,
    /// Snapshot (short id) → the paths that need this file.
    pub affected: BTreeMap<String, Vec<String>>,
    /// For a damaged pack whose damage is known blob by blob: the blobs
    /// that fail (the others read fine). None: the whole file is unusable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged_blobs: Option<Vec<crate::repo::Id>>,
    pub found: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScrubState {
    pub repository: String,
    pub pass_started: Option<DateTime<Utc>>,
    /// The last pack checked in the current pass; packs are taken in name order.
    pub position: Option<String>,
    pub packs_total: u64,
    pub packs_checked: u64,
    pub bytes_checked: u64,
    pub last_full_pass: Option<DateTime<Utc>>,
    pub last_run: Option<DateTime<Utc>>,
    /// What is wrong, as far as the latest check of each file found: a file
    /// checked again loses its old finding (and gets a new one if it is still
    /// damaged). Metadata files are checked at every start, packs once per
    /// pass; `--restart` forgets everything.
    pub findings: Vec<Finding>,
}

impl ScrubState {
    /// The share of the current pass's packs checked so far: 0 before any
    /// scrub ran, 1 for a pass over a repository without packs.
    pub fn coverage(&self) -> f64 {
        if self.pass_started.is_none() {
            0.0
        } else if self.packs_total == 0 {
            1.0
        } else {
            (self.packs_checked as f64 / self.packs_total as f64).min(1.0)
        }
    }

    /// The saved state, or a fresh one if there is none or it belongs to another repository.
    pub fn load(path: &Path, repository: &str) -> ScrubState {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<ScrubState>(&bytes).ok())
            .filter(|s| s.repository == repository)
            .unwrap_or_else(|| ScrubState {
                repository: repository.to_string(),
                ..ScrubState::default()
            })
    }

    /// Saves atomically: a scrub killed mid-write keeps the previous state.
    /// The temporary file is created anew (never through a link someone
    /// planted) and renamed over the state, which replaces a planted link
    /// instead of writing through it.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let bytes = serde_json::to_vec_pretty(self).expect("state serializes");
        write_privately(path, &bytes)
            .map_err(|e| Error::io(format!("cannot save the scrub state {}", path.display()), e))
    }
}

/// Writes `path` through a fresh, private temporary file beside it.
fn write_privately(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut nonce = [0u8; 8];
    crate::repo::crypto::random_bytes(&mut nonce).map_err(std::io::Error::other)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        hex::encode(nonce)
    ));
    let tmp = path.with_file_name(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)?;
    let result = file
        .write_all(bytes)
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and missing parents) readable only by this user; an
/// existing directory is left as its owner made it.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))
}

/// Where rewind keeps its own files on this machine (the scrub state, the
/// mount log): `$XDG_CACHE_HOME/rewind`, `/var/cache/rewind` for root, else
/// `~/.cache/rewind` of the user's home (`$HOME`, or the password
/// database). Never a shared directory such as /tmp, where another user
/// could plant a link that makes us overwrite a file of theirs choosing.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(base) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(base).join("rewind"));
    }
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return Ok(PathBuf::from("/var/cache/rewind"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home_of(uid))
        .ok_or_else(|| {
            Error::usage(format!(
                "HOME is not set and user {uid} has no home directory, so rewind has nowhere private to keep its state"
            ))
            .with_hint("set HOME or XDG_CACHE_HOME, or name the file with --state (scrub, status) or --log-file (mount)")
        })?;
    Ok(home.join(".cache").join("rewind"))
}

/// The home directory the password database gives `uid`.
fn home_of(uid: libc::uid_t) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    loop {
        // SAFETY: buf outlives the call and its length is passed; entry and
        // found are valid places for the result.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || found.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        // SAFETY: pw_dir points to a NUL-terminated string inside buf.
        let dir = unsafe { std::ffi::CStr::from_ptr(entry.pw_dir) };
        let dir = std::ffi::OsStr::from_bytes(dir.to_bytes());
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
}

/// Where the scrub state of a repository lives by default (see [`cache_dir`]).
pub fn default_path(repository_id: &str) -> Result<PathBuf> {
    Ok(cache_dir()?.join(format!("scrub-{repository_id}.json")))
}
