//! What a snapshot tree expands to, worked out once per tree id before
//! anything is written: shared subtrees let 41 objects stand for 2^40
//! paths, and a restore must refuse such a snapshot before it creates the
//! first of a billion directories, not after. The same pass gives the
//! progress its totals and finds where hardlinked files are, so that the
//! streamed restore needs no walk of its own before it starts.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::PathFilter;
use crate::error::Result;
use crate::repo::{Id, Repository};
use crate::tree::{ExpansionBudget, NodeKind};

/// What one tree holds, everything below it included.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Measure {
    pub entries: u64,
    /// How many levels of directories are below it.
    pub levels: usize,
    pub files: u64,
    pub bytes: u64,
    /// Whether a hardlinked entry is somewhere in it.
    pub links: bool,
}

pub(super) struct Expansion<'a> {
    repo: &'a Repository,
    budget: &'a ExpansionBudget,
    /// Per tree id; one entry per distinct directory of the snapshot.
    memo: HashMap<Id, Measure>,
}

impl<'a> Expansion<'a> {
    pub fn new(repo: &'a Repository, budget: &'a ExpansionBudget) -> Self {
        Expansion {
            repo,
            budget,
            memo: HashMap::new(),
        }
    }

    /// Fails if the tree `id`, `depth` levels below the snapshot's root,
    /// expands beyond the budget's limits; what it holds if not.
    pub fn check(&mut self, id: &Id, depth: usize) -> Result<Measure> {
        let measure = self.measure(id, depth)?;
        self.budget.admit_depth(depth + 1 + measure.levels)?;
        if measure.entries > self.budget.limits().entries {
            return Err(self.budget.too_many_entries());
        }
        Ok(measure)
    }

    fn measure(&mut self, id: &Id, depth: usize) -> Result<Measure> {
        if let Some(known) = self.memo.get(id) {
            return Ok(*known);
        }
        self.budget.admit_depth(depth + 1)?;
        let mut sum = Measure::default();
        let repo = self.repo;
        repo.for_each_tree_part(id, |tree| {
            for node in &tree.nodes {
                sum.entries = sum.entries.saturating_add(1);
                sum.links |= node.is_hardlinked();
                if node.kind == NodeKind::File {
                    sum.files = sum.files.saturating_add(1);
                    sum.bytes = sum.bytes.saturating_add(node.size);
                }
                if let (true, Some(subtree)) = (node.is_dir(), node.subtree) {
                    let below = self.measure(&subtree, depth + 1)?;
                    sum.entries = sum.entries.saturating_add(below.entries);
                    sum.levels = sum.levels.max(below.levels + 1);
                    sum.files = sum.files.saturating_add(below.files);
                    sum.bytes = sum.bytes.saturating_add(below.bytes);
                    sum.links |= below.links;
                }
            }
            Ok(())
        })??;
        self.memo.insert(*id, sum);
        Ok(sum)
    }

    /// Every path (relative to the target) of each hardlinked file the
    /// restore of `tree` into `dir` takes, by (device, inode) in the
    /// snapshot, in the order the restore reaches them. Only trees that
    /// hold a hardlink are read again, so the cost follows the hardlinked
    /// files, not the whole tree. Call after [`Expansion::check`].
    pub fn link_groups(
        &self,
        tree: &Id,
        dir: &Path,
        snapshot_dir: &str,
        filter: &PathFilter,
    ) -> Result<HashMap<(u64, u64), Vec<PathBuf>>> {
        let mut groups = HashMap::new();
        self.gather_links(tree, dir, snapshot_dir, filter, &mut groups)?;
        Ok(groups)
    }

    fn gather_links(
        &self,
        id: &Id,
        dir: &Path,
        snapshot_dir: &str,
        filter: &PathFilter,
        groups: &mut HashMap<(u64, u64), Vec<PathBuf>>,
    ) -> Result<()> {
        if !self.memo.get(id).is_some_and(|m| m.links) {
            return Ok(());
        }
        self.repo.for_each_tree_part(id, |tree| {
            let (tree, _) = tree.into_shown();
            for node in tree.nodes {
                let snapshot_path = format!("{snapshot_dir}/{}", node.name_lossy());
                if !node.name_is_safe() || !filter.admits(&snapshot_path, node.is_dir()) {
                    continue;
                }
                let rel = dir.join(OsStr::from_bytes(&node.name));
                if let (true, Some(subtree)) = (node.is_dir(), node.subtree) {
                    self.gather_links(&subtree, &rel, &snapshot_path, filter, groups)?;
                } else if node.is_hardlinked() {
                    groups
                        .entry((node.device, node.inode))
                        .or_default()
                        .push(rel);
                }
            }
            Ok(())
        })?
    }
}
