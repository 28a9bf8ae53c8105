//! Tombstones (`forgotten/<name>`): the record that snapshots were forgotten
//! on purpose. A snapshot's copy in the packs outlives its manifest until a
//! prune, and without a tombstone `check` could not tell a forgotten snapshot
//! from one whose manifest was deleted. One file records every snapshot that
//! one forget removed, up to [`TOMBSTONES_PER_FILE`], so that forgetting
//! thousands is a few durable writes rather than one each
//! (`man/rewind-format.5`, TOMBSTONES).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::snapshot::Snapshot;
use crate::error::{Error, Result};
use crate::id::Id;

/// The version written: a list of snapshots. Version 1, one snapshot to a
/// file, is still read.
pub const TOMBSTONE_VERSION: u32 = 2;

/// At most this many snapshots to a tombstone file (about 200 KB of JSON).
pub const TOMBSTONES_PER_FILE: usize = 1000;

/// The record of one forgotten snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Tombstone {
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

#[derive(Serialize, Deserialize)]
struct Entry {
    snapshot: Id,
    time: DateTime<Utc>,
    host: String,
    tree: Id,
}

/// Version 2: the snapshots one forget removed.
#[derive(Serialize, Deserialize)]
struct FileV2 {
    version: u32,
    forgotten: DateTime<Utc>,
    snapshots: Vec<Entry>,
}

/// Version 1: one snapshot.
#[derive(Deserialize)]
struct FileV1 {
    #[serde(flatten)]
    entry: Entry,
    forgotten: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

/// The content of a tombstone file recording `snapshots`, forgotten now.
pub fn encode(snapshots: &[Snapshot]) -> Vec<u8> {
    let file = FileV2 {
        version: TOMBSTONE_VERSION,
        forgotten: Utc::now(),
        snapshots: snapshots
            .iter()
            .map(|s| Entry {
                snapshot: s.id,
                time: s.time,
                host: s.host.clone(),
                tree: s.tree,
            })
            .collect(),
    };
    serde_json::to_vec(&file).expect("tombstones serialize")
}

/// The snapshots that tombstone file `forgotten/<name>` records.
pub fn decode(name: &str, content: &[u8]) -> Result<Vec<Tombstone>> {
    let damaged =
        |e: serde_json::Error| Error::corrupt(format!("forgotten/{name} does not decode: {e}"));
    let version = serde_json::from_slice::<Versioned>(content)
        .map_err(damaged)?
        .version;
    let tombstone = |entry: Entry, forgotten| Tombstone {
        snapshot: entry.snapshot,
        time: entry.time,
        host: entry.host,
        tree: entry.tree,
        forgotten,
    };
    match version {
        1 => {
            let file: FileV1 = serde_json::from_slice(content).map_err(damaged)?;
            Ok(vec![tombstone(file.entry, file.forgotten)])
        }
        2 => {
            let file: FileV2 = serde_json::from_slice(content).map_err(damaged)?;
            Ok(file
                .snapshots
                .into_iter()
                .map(|entry| tombstone(entry, file.forgotten))
                .collect())
        }
        other => Err(Error::corrupt(format!(
            "forgotten/{name} is tombstone version {other}; this rewind reads versions 1 and 2"
        ))
        .with_hint("a newer rewind wrote it: use that one")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_and_2_decode_and_others_are_refused() {
        let v1 = br#"{"version":1,"snapshot":"0101010101010101010101010101010101010101010101010101010101010101","time":"2024-06-01T02:00:00Z","host":"db1","tree":"0202020202020202020202020202020202020202020202020202020202020202","forgotten":"2024-09-01T03:00:00Z"}"#;
        let read = decode("a", v1).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].host, "db1");
        assert_eq!(read[0].snapshot, Id([1; 32]));
        assert_eq!(read[0].tree, Id([2; 32]));

        let time = Utc::now();
        let snapshots: Vec<Snapshot> = (0..3u8)
            .map(|n| Snapshot {
                id: Id([n; 32]),
                version: 1,
                time,
                host: "h".into(),
                username: "root".into(),
                paths: vec![],
                tags: vec![],
                tree: Id([3; 32]),
                parent: None,
                program: "test".into(),
                summary: Default::default(),
                original: None,
                resealed_from: None,
            })
            .collect();
        let read = decode("b", &encode(&snapshots)).unwrap();
        assert_eq!(
            read.iter().map(|t| t.snapshot).collect::<Vec<_>>(),
            snapshots.iter().map(|s| s.id).collect::<Vec<_>>()
        );
        assert!(read.iter().all(|t| t.key() == snapshot_key(&snapshots[0])));

        let e = decode("c", br#"{"version":3,"snapshots":[]}"#).unwrap_err();
        assert!(
            e.to_string().contains("forgotten/c is tombstone version 3"),
            "{e}"
        );
        assert!(decode("d", b"{}").is_err());
    }
}
