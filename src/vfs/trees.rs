//! The inside of snapshots: directory trees, decoded once and cached, the
//! entries inodes stand for, and the expansion budget each snapshot view
//! spends while inodes of its entries live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::cache::TreeCache;
use super::index::BackgroundIndex;
use super::inodes::{Admission, Ino, Inode, Inodes, Record};
use super::numbers::Key;
use super::stats::Stats;
use super::VfsResult;
use crate::repo::{Id, IdSet, Snapshot};
use crate::tree::{part_of, ExpansionBudget, ExpansionLimits, Node, Tree};

/// Budget of the decoded-tree cache: the directories being walked.
const TREE_CACHE_BYTES: usize = 8 << 20;

/// An entry of a snapshot, inside the decoded tree of its directory.
#[derive(Clone)]
pub struct EntryNode {
    pub tree_id: Id,
    pub tree: Arc<Tree>,
    pub index: usize,
}

impl std::ops::Deref for EntryNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.tree.nodes[self.index]
    }
}

/// A directory inside a snapshot: the snapshot, the inode of its `@<time>`
/// view, and the tree it shows.
pub struct SnapshotDir {
    pub snapshot: Arc<Snapshot>,
    pub view: Ino,
    pub tree_id: Id,
}

pub struct SnapshotTrees {
    index: Arc<BackgroundIndex>,
    inodes: Arc<Inodes>,
    stats: Arc<Stats>,
    cache: TreeCache,
    limits: ExpansionLimits,
    /// What each snapshot view (by the inode of its `@<time>` directory)
    /// has expanded to.
    budgets: Mutex<HashMap<Ino, Arc<ExpansionBudget>>>,
    /// Trees whose entries broke the naming rules, logged once each.
    misnamed_logged: Mutex<IdSet>,
}

impl SnapshotTrees {
    pub fn new(
        index: Arc<BackgroundIndex>,
        inodes: Arc<Inodes>,
        stats: Arc<Stats>,
        limits: ExpansionLimits,
    ) -> SnapshotTrees {
        SnapshotTrees {
            index,
            inodes,
            stats,
            cache: TreeCache::for_trees(TREE_CACHE_BYTES),
            limits,
            budgets: Mutex::new(HashMap::new()),
            misnamed_logged: Mutex::new(IdSet::default()),
        }
    }

    /// The tree `id`, the listing of directory `dir`, as it may be shown:
    /// entries whose names break the format's rules are left out (and
    /// logged), so no listing holds a duplicate, an unsafe or an overlong
    /// name, and lookups by name find what listings show.
    pub fn tree(&self, id: &Id, dir: Ino) -> VfsResult<Arc<Tree>> {
        let fetch = || {
            let repo = self.index.wait_or_error()?;
            // One blob: a split directory's top, or one of its parts, is
            // cached on its own, so a lookup or a batch of a listing
            // decodes one part, not the directory.
            let (tree, not_shown) = repo.read_tree_blob(id)?.into_shown();
            if !not_shown.is_empty() && self.misnamed_logged.lock().unwrap().insert(*id) {
                let path = self.inodes.path_of(dir);
                for (name, problem) in not_shown {
                    let message = crate::tree::not_shown_message(&path, &name, problem);
                    crate::log::warn(&format!("directory listing {}: {message}", id.short()));
                }
            }
            Ok(Arc::new(tree))
        };
        self.cache
            .get_or_fetch(id, fetch)
            .map(|(tree, _)| tree)
            .map_err(|e| {
                self.stats
                    .record_eio(format!("cannot read directory listing {}: {e}", id.short()));
                libc::EIO
            })
    }

    /// The snapshot entry an inode shows, if it is one.
    pub fn entry_node(&self, record: &Record) -> VfsResult<Option<EntryNode>> {
        let Inode::Entry { tree, index, .. } = &record.inode else {
            return Ok(None);
        };
        let tree_id = *tree;
        let tree = self.tree(&tree_id, record.parent)?;
        let index = *index as usize;
        // Cannot fail: a tree id names one immutable content.
        if index >= tree.nodes.len() {
            return Err(libc::EIO);
        }
        Ok(Some(EntryNode {
            tree_id,
            tree,
            index,
        }))
    }

    /// The directory of a snapshot that inode `ino` shows.
    pub fn snapshot_dir(&self, ino: Ino, inode: &Inode) -> VfsResult<SnapshotDir> {
        match inode {
            Inode::Snapshot(s) => Ok(SnapshotDir {
                snapshot: Arc::clone(s),
                view: ino,
                tree_id: s.tree,
            }),
            Inode::Entry {
                snapshot,
                view,
                subtree,
                ..
            } => Ok(SnapshotDir {
                snapshot: Arc::clone(snapshot),
                view: *view,
                tree_id: subtree.ok_or(libc::ENOTDIR)?,
            }),
            _ => Err(libc::ENOTDIR),
        }
    }

    /// The entry named `name` in `dir` (which is inode `ino`), in the
    /// tree that holds it: the directory's own, or for a split directory
    /// the one part whose range holds the name. Binary searches only.
    pub fn find(&self, dir: &SnapshotDir, ino: Ino, name: &[u8]) -> VfsResult<Option<EntryNode>> {
        let top = self.tree(&dir.tree_id, ino)?;
        let (tree_id, tree) = match top.is_split() {
            false => (dir.tree_id, top),
            true => {
                let Some(part) = part_of(&top.parts, name) else {
                    return Ok(None);
                };
                let id = top.parts[part].tree;
                (id, self.tree(&id, ino)?)
            }
        };
        Ok(Self::position(&tree, name).map(|index| EntryNode {
            tree_id,
            tree,
            index,
        }))
    }

    /// The inode of `entry`, an entry of `dir`, which is inode `parent`,
    /// with `lookups` more of it held by the kernel.
    pub fn entry_child(
        &self,
        parent: Ino,
        dir: &SnapshotDir,
        entry: &EntryNode,
        lookups: u64,
    ) -> VfsResult<Ino> {
        let node: &Node = entry;
        let make = || {
            Ok(Inode::Entry {
                snapshot: Arc::clone(&dir.snapshot),
                view: dir.view,
                tree: entry.tree_id,
                index: entry.index as u32,
                // Every backed-up directory has a tree; one without (a
                // damaged listing) names no blob and lists as EIO.
                subtree: node.is_dir().then(|| node.subtree.unwrap_or_default()),
                _admission: self.admit(parent, dir, node)?,
            })
        };
        let key = Self::key(parent, dir, node);
        self.inodes
            .entry_child(key, parent, &node.name, lookups, make)
    }

    /// The number of `node`'s inode in directory `parent` (whose tree
    /// `dir` is), without making it.
    pub fn entry_number(&self, parent: Ino, dir: &SnapshotDir, node: &Node) -> Ino {
        self.inodes.number_of(Self::key(parent, dir, node))
    }

    /// What the inode of `node` in `parent` stands for: its name, or for a
    /// file with several links, the file.
    fn key<'a>(parent: Ino, dir: &SnapshotDir, node: &'a Node) -> Key<'a> {
        match node.is_hardlinked() {
            true => Key::Hardlink {
                view: dir.view,
                device: node.device,
                inode: node.inode,
            },
            false => Key::Name {
                parent,
                name: &node.name,
            },
        }
    }

    /// Counts a new inode for `node` in `parent` against its snapshot's
    /// budget while it lives: a crafted snapshot that names the same
    /// directories over and over must not grow the inode table without end.
    fn admit(&self, parent: Ino, dir: &SnapshotDir, node: &Node) -> VfsResult<Admission> {
        let budget = Arc::clone(self.budgets.lock().unwrap().entry(dir.view).or_insert_with(
            || Arc::new(ExpansionBudget::new(dir.snapshot.id.short(), self.limits)),
        ));
        let depth = self.inodes.depth(parent) - self.inodes.depth(dir.view) + 1;
        budget.admit(node, depth).map_err(|e| {
            self.stats
                .record_eio(format!("{}: {e}", self.inodes.path_of(parent)));
            libc::EIO
        })?;
        Ok(Admission::new(budget, node.data_bytes()))
    }

    /// Where the entry named `name` is in `tree`, a tree as shown (sorted,
    /// without duplicates, see [`SnapshotTrees::tree`]): a binary search,
    /// so that a name missing from a directory of a million entries costs
    /// no more than one present.
    pub fn position(tree: &Tree, name: &[u8]) -> Option<usize> {
        tree.nodes
            .binary_search_by(|node| node.name.as_slice().cmp(name))
            .ok()
    }
}
