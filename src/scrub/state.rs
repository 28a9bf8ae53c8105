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
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        }
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self).expect("state serializes");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Error::io(format!("cannot save the scrub state {}", path.display()), e))
    }
}

/// Where the scrub state of a repository lives by default.
pub fn default_path(repository_id: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // SAFETY: geteuid cannot fail.
            if unsafe { libc::geteuid() } == 0 {
                PathBuf::from("/var/cache")
            } else {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/tmp"))
                    .join(".cache")
            }
        });
    base.join("rewind")
        .join(format!("scrub-{repository_id}.json"))
}
