//! What a comparison reports: each change with what differs, the entries
//! that could not be compared, and the counts.

use serde::Serialize;

use crate::restore::list_or_count;
use crate::tree::{Node, NodeKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// Content differs (and maybe metadata).
    Modified,
    /// A file on one side, a directory (or other type) on the other.
    TypeChanged,
    /// Only metadata differs.
    Metadata,
}

impl ChangeKind {
    /// The mark in text output, as restic and git use them.
    pub fn symbol(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::TypeChanged => 'T',
            ChangeKind::Metadata => 'U',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Relative to the compared roots; `.` is a root itself.
    pub path: String,
    pub change: ChangeKind,
    /// What differs: content, link target, device, mode, owner, mtime, xattrs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// A file of B, added or modified, rewritten with incompressible
    /// content, as encryption by ransomware leaves it: most of the chunks
    /// it holds that its version in A did not were stored incompressible.
    /// Told from the index of B's repository, without reading data; never
    /// set when B is a directory on this machine.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incompressible: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct DiffSummary {
    pub added: u64,
    pub removed: u64,
    pub modified: u64,
    pub type_changed: u64,
    pub metadata: u64,
    /// Added and modified files rewritten with incompressible content.
    pub incompressible: u64,
    pub entries_compared: u64,
    /// Directories skipped because both snapshots share their tree.
    pub trees_skipped: u64,
    /// Local files read to compare content, and their bytes.
    pub files_read: u64,
    pub bytes_read: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct DiffReport {
    /// In the order of a depth-first walk by name.
    pub changes: Vec<Change>,
    /// The first `MAX_LISTED_FAILURES` (10,000) entries that could not be
    /// compared, with the reason.
    pub errors: Vec<String>,
    /// Entries that could not be compared beyond those listed in `errors`.
    pub errors_not_listed: u64,
    pub summary: DiffSummary,
}

impl DiffReport {
    pub fn is_equal(&self) -> bool {
        self.changes.is_empty()
    }
}

/// What a comparison that handed on its changes one by one found besides.
#[derive(Debug, Default)]
pub struct DiffOutcome {
    /// The first `MAX_LISTED_FAILURES` (10,000) entries that could not be
    /// compared, with the reason: past them they are only counted, so that
    /// a comparison with a tree of millions of unreadable files does not
    /// hold a message for each.
    pub errors: Vec<String>,
    /// Entries that could not be compared beyond those listed in `errors`.
    pub errors_not_listed: u64,
    pub summary: DiffSummary,
}

impl DiffOutcome {
    /// How many entries could not be compared, listed or not.
    pub fn failed(&self) -> u64 {
        self.errors.len() as u64 + self.errors_not_listed
    }

    pub(super) fn add_error(&mut self, error: String) {
        list_or_count(&mut self.errors, &mut self.errors_not_listed, error);
    }
}

impl DiffSummary {
    /// Whether no change was counted.
    pub fn is_equal(&self) -> bool {
        self.added + self.removed + self.modified + self.type_changed + self.metadata == 0
    }

    /// Counts a change by its kind.
    pub(super) fn count(&mut self, change: &Change) {
        let counter = match change.change {
            ChangeKind::Added => &mut self.added,
            ChangeKind::Removed => &mut self.removed,
            ChangeKind::Modified => &mut self.modified,
            ChangeKind::TypeChanged => &mut self.type_changed,
            ChangeKind::Metadata => &mut self.metadata,
        };
        *counter += 1;
        self.incompressible += u64::from(change.incompressible);
    }
}

/// The name of a kind of entry, as a type change shows it.
pub(super) fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "directory",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::CharDevice => "character device",
        NodeKind::BlockDevice => "block device",
        NodeKind::Socket => "socket",
    }
}

/// A path as changes show it: the compared root itself is `.`.
pub(super) fn shown(path: &str) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        path.into()
    }
}

/// What differs in metadata, by name.
pub(super) fn metadata_details(a: &Node, b: &Node) -> Vec<String> {
    let mut details = Vec::new();
    if a.mode != b.mode {
        details.push(format!("mode {:04o} → {:04o}", a.mode, b.mode));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        details.push(format!("owner {}:{} → {}:{}", a.uid, a.gid, b.uid, b.gid));
    }
    if a.mtime != b.mtime {
        details.push("mtime".into());
    }
    if a.xattrs != b.xattrs {
        details.push("xattrs".into());
    }
    details
}

/// The change of an entry whose content differs in `what` (if at all) and
/// whose metadata differs in `metadata`; `None` when nothing differs.
pub(super) fn change_of(path: &str, what: Option<&str>, metadata: Vec<String>) -> Option<Change> {
    let (change, details) = match what {
        Some(what) => {
            let mut details = vec![what.to_string()];
            details.extend(metadata);
            (ChangeKind::Modified, details)
        }
        None if !metadata.is_empty() => (ChangeKind::Metadata, metadata),
        None => return None,
    };
    Some(Change {
        path: shown(path),
        change,
        details,
        incompressible: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::MAX_LISTED_FAILURES;

    #[test]
    fn errors_past_the_listed_ones_are_counted() {
        let mut outcome = DiffOutcome::default();
        for n in 0..MAX_LISTED_FAILURES + 5 {
            outcome.add_error(format!("entry {n}: unreadable"));
        }
        assert_eq!(outcome.errors.len(), MAX_LISTED_FAILURES);
        assert_eq!(outcome.errors_not_listed, 5);
        assert_eq!(outcome.failed(), MAX_LISTED_FAILURES as u64 + 5);
        assert_eq!(outcome.errors[0], "entry 0: unreadable");
    }
}
