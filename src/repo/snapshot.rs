//! Snapshot manifests: the last file a backup writes, naming the root tree.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::Id;

pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    pub other_entries: u64,
    /// Source bytes read from disk (unchanged files are not read).
    pub bytes_read: u64,
    /// Logical size of every file in the snapshot.
    pub bytes_total: u64,
    /// Bytes this backup added to the repository (packs, after compression).
    pub bytes_added: u64,
    pub blobs_added: u64,
    /// Entries that could not be read and are missing from the snapshot.
    pub errors: u64,
    pub duration_secs: f64,
    /// What the data this backup stored for new and changed files was made
    /// of. Absent from manifests written before rewind measured it and
    /// from backups into a repository that does not compress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_data: Option<ChangedData>,
}

/// How much of a backup's changed data was incompressible, the trace that
/// encryption by ransomware leaves (`docs/design.md`, section 7, "Finding
/// the last clean snapshot"). Changed data is what the backup stored for
/// files, chunks new to the repository, each counted with the file it was
/// first read from: a file moved or copied brings none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedData {
    /// Changed files (their path was in the parent) at least half of
    /// whose changed data was incompressible.
    pub files_incompressible: u64,
    /// New files (their path was not in the parent) of which the same
    /// holds: ransomware that writes encrypted copies and deletes the
    /// originals leaves these, and so does an ordinary day that brings new
    /// photos or archives; the rule tells them apart by the files the
    /// snapshot lost (`crate::suspicion`).
    #[serde(default)]
    pub new_files_incompressible: u64,
    /// Bytes of changed data, before compression.
    pub bytes: u64,
    /// The part of `bytes` in chunks that zstd could not shrink by 3%.
    pub bytes_incompressible: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The name of the manifest file; not stored inside it.
    #[serde(skip)]
    pub id: Id,
    pub version: u32,
    pub time: DateTime<Utc>,
    pub host: String,
    pub username: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub tree: Id,
    pub parent: Option<Id>,
    pub program: String,
    pub summary: Summary,
    /// Set by `copy`: the id of the snapshot this one is a copy of, in the
    /// repository where it was first made (kept through copies of copies),
    /// so that a later copy knows the destination has it. Absent from the
    /// manifests of backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// Set when a rotation of the master key sealed this manifest anew:
    /// the id it had before (`docs/design.md`, section 7, "Keys"), so that
    /// a resumed rotation knows it is done and maps the `parent` of the
    /// snapshots that named the old id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resealed_from: Option<Id>,
}

impl Snapshot {
    /// The name of the snapshot's directory in a mount and in listings.
    pub fn time_label(&self) -> String {
        self.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// The snapshot this one stands for: the one it was copied from (see
    /// `original`), or itself.
    pub fn origin(&self) -> Id {
        self.original.unwrap_or(self.id)
    }

    /// Whether this snapshot backed up the same set of paths.
    pub fn same_paths(&self, paths: &[String]) -> bool {
        let mut a = self.paths.clone();
        let mut b = paths.to_vec();
        a.sort();
        b.sort();
        a == b
    }
}

/// Sorts snapshots oldest first; ties keep a stable order by id.
pub fn sort_by_time(snapshots: &mut [Snapshot]) {
    snapshots.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_without_changed_data_still_reads_and_none_is_not_written() {
        let old = r#"{"files_new":3,"files_changed":1,"files_unchanged":1510,"dirs":212,
            "other_entries":40,"bytes_read":8388608,"bytes_total":88012345,
            "bytes_added":2113536,"blobs_added":9,"errors":0,"duration_secs":1.37}"#;
        let summary: Summary = serde_json::from_str(old).unwrap();
        assert_eq!(summary.changed_data, None);
        assert!(!serde_json::to_string(&summary)
            .unwrap()
            .contains("changed_data"));
        let measured = Summary {
            changed_data: Some(ChangedData {
                files_incompressible: 2,
                new_files_incompressible: 4,
                bytes: 3,
                bytes_incompressible: 1,
            }),
            ..summary
        };
        let text = serde_json::to_string(&measured).unwrap();
        assert_eq!(serde_json::from_str::<Summary>(&text).unwrap(), measured);
    }
}
