//! Grouping snapshots before a retention policy applies (`--group-by`): the
//! policy runs once per group, so one host's daily backups never count
//! toward another's.

use crate::error::{Error, Result};
use crate::repo::Snapshot;

/// How snapshots are grouped before the policy applies (default host+paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Parses a comma-separated list of `host`, `paths` and `tags`, such as
    /// `host,paths`; an empty list puts every snapshot in one group.
    pub fn parse(text: &str) -> Result<GroupBy> {
        let mut group_by = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "host" => group_by.host = true,
                "paths" => group_by.paths = true,
                "tags" => group_by.tags = true,
                _ => {
                    return Err(Error::usage(format!(
                        "cannot group snapshots by '{word}': use host, paths, tags, \
                         a comma-separated list of them, or nothing for one group"
                    )))
                }
            }
        }
        Ok(group_by)
    }

    /// The key of the group `snapshot` belongs to.
    pub(crate) fn key_of(&self, snapshot: &Snapshot) -> GroupKey {
        GroupKey {
            host: self.host.then(|| snapshot.host.clone()),
            paths: self.paths.then(|| sorted_set(&snapshot.paths)),
            tags: self.tags.then(|| sorted_set(&snapshot.tags)),
        }
    }
}

/// What the snapshots of one group share; `None` for what they were not
/// grouped by. Paths and tags are sorted, without duplicates, so the order a
/// backup named them in does not split a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    pub host: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

fn sorted_set(items: &[String]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    items.dedup();
    items
}
