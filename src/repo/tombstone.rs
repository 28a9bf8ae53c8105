//! Tombstones (`forgotten/<name>`): the record that a snapshot was forgotten
//! on purpose. Its copy in the packs outlives its manifest until a prune, and
//! without a tombstone `check` could not tell a forgotten snapshot from one
//! whose manifest was deleted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::snapshot::Snapshot;
use crate::id::Id;

pub const TOMBSTONE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    pub version: u32,
    /// The forgotten snapshot's id (the name its manifest had).
    pub snapshot: Id,
    /// With `host` and `tree`, what identifies the snapshot's copies in packs.
    pub time: DateTime<Utc>,
    pub host: String,
    pub tree: Id,
    /// When it was forgotten.
    pub forgotten: DateTime<Utc>,
}

impl Tombstone {
    pub fn of(snapshot: &Snapshot) -> Tombstone {
        Tombstone {
            version: TOMBSTONE_VERSION,
            snapshot: snapshot.id,
            time: snapshot.time,
            host: snapshot.host.clone(),
            tree: snapshot.tree,
            forgotten: Utc::now(),
        }
    }

    /// The key of the snapshot it records (see `snapshot_key`).
    pub fn key(&self) -> SnapshotKey<'_> {
        (self.time, self.host.as_str(), self.tree)
    }
}

/// What tells one snapshot from another across its manifest, its copies and
/// its tombstone: a manifest rebuilt from a copy gets a new id, and its
/// content may be serialized anew, but these stay the same.
pub type SnapshotKey<'a> = (DateTime<Utc>, &'a str, Id);

pub fn snapshot_key(snapshot: &Snapshot) -> SnapshotKey<'_> {
    (snapshot.time, snapshot.host.as_str(), snapshot.tree)
}
