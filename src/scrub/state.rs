//! The scrub's memory between runs: where the current pass stands and what
//! it found, in a small JSON file on the machine that scrubs (not in the
//! repository, which a scrub must be able to distrust).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::host::cache_dir;

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

/// Where the scrub state of a repository lives by default (see [`cache_dir`]).
pub fn default_path(repository_id: &str) -> Result<PathBuf> {
    Ok(cache_dir()?.join(format!("scrub-{repository_id}.json")))
}
