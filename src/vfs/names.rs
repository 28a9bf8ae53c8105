//! Names: lookups and directory listings, above the snapshots (the layout
//! of `layout.rs`: `@<time>`, `latest`, `ids/`, `hosts/`, `tags/`,
//! `.rewind/`) and inside them (their trees).

use std::borrow::Cow;
use std::sync::Arc;

use super::attr::{entry_kind, EntryKind};
use super::inodes::{Group, Ino, Inode, Inodes};
use super::layout::{Layout, Scope};
use super::shown::ShownSnapshots;
use super::status::StatusFile;
use super::trees::{EntryNode, SnapshotDir, SnapshotTrees};
use super::VfsResult;
use crate::repo::Id;
use crate::tree::{in_part, Tree};

/// What became of an entry offered to a listing.
pub enum Taken {
    Yes,
    /// Left out, and the listing goes on.
    No,
    /// The kernel's buffer is full: left out, and the listing ends.
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: Ino,
    pub name: Vec<u8>,
    pub kind: EntryKind,
}

/// A tree listed in a directory's listing: the directory's own, or one
/// part of it, whose first entry is at position `start` and of which
/// `entries` are listed at most (what its top says it holds).
struct Listed {
    tree_id: Id,
    tree: Arc<Tree>,
    start: usize,
    entries: usize,
}

pub struct Names {
    inodes: Arc<Inodes>,
    shown: Arc<ShownSnapshots>,
    trees: Arc<SnapshotTrees>,
    /// Made anew whenever its name is looked up or listed.
    status: Arc<StatusFile>,
    /// Entries above the snapshots made for listings, which tests count to
    /// show that a listing costs what it passes on, not what precedes it.
    #[cfg(test)]
    pub(super) virtual_entries_made: std::sync::atomic::AtomicU64,
}

impl Names {
    pub fn new(
        inodes: Arc<Inodes>,
        shown: Arc<ShownSnapshots>,
        trees: Arc<SnapshotTrees>,
        status: Arc<StatusFile>,
    ) -> Names {
        Names {
            inodes,
            shown,
            trees,
            status,
            #[cfg(test)]
            virtual_entries_made: Default::default(),
        }
    }

    /// The inode of `name` in directory `parent`, with one lookup more
    /// of it held by the kernel.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> VfsResult<Ino> {
        let record = self.inodes.record(parent)?;
        match &record.inode {
            Inode::Root => self.lookup_scoped(parent, name, &Scope::All, true),
            Inode::Group(group) => self.lookup_group(parent, name, group),
            inode => {
                let dir = self.trees.snapshot_dir(parent, inode)?;
                self.inodes.touch(&record);
                let entry = self.trees.find(&dir, parent, name)?.ok_or(libc::ENOENT)?;
                self.trees.entry_child(parent, &dir, &entry, 1)
            }
        }
    }

    /// A name in the root (`top`) or in `hosts/<host>/` and `tags/<tag>/`:
    /// a snapshot's `@<time>`, `latest`, a time prefix, and in the root
    /// the directories of the layout.
    fn lookup_scoped(&self, parent: Ino, name: &[u8], scope: &Scope, top: bool) -> VfsResult<Ino> {
        let name_str = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
        if top {
            let group = match name_str {
                "ids" => Some(Group::Ids),
                "hosts" => Some(Group::Hosts),
                "tags" => Some(Group::Tags),
                ".rewind" => Some(Group::Control),
                _ => None,
            };
            if let Some(group) = group {
                return Ok(self.inodes.child(parent, name, || Inode::Group(group)));
            }
        }
        let layout = self.shown.layout();
        if let Some(i) = layout.by_label(name_str, scope) {
            let snapshot = Arc::clone(&layout.snapshots[i]);
            return Ok(self
                .inodes
                .child(parent, name, || Inode::Snapshot(snapshot)));
        }
        if name_str == "latest" || name_str.starts_with('@') {
            if let Some(target) = layout.resolve(name_str, scope) {
                let variant = [name, b"\0", target.as_bytes()].concat();
                return Ok(self
                    .inodes
                    .child(parent, &variant, || Inode::Link(target.into_bytes())));
            }
        }
        Err(libc::ENOENT)
    }

    fn lookup_group(&self, parent: Ino, name: &[u8], group: &Group) -> VfsResult<Ino> {
        let name_str = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
        let layout = self.shown.layout();
        match group {
            Group::Scoped(scope) => self.lookup_scoped(parent, name, scope, false),
            Group::Ids => {
                let i = layout.by_short_id(name_str).ok_or(libc::ENOENT)?;
                let target = format!("../{}", layout.labels[i]).into_bytes();
                Ok(self.inodes.child(parent, name, || Inode::Link(target)))
            }
            Group::Hosts if layout.hosts.contains_key(name_str) => {
                let scope = Scope::Host(name_str.to_string());
                Ok(self
                    .inodes
                    .child(parent, name, || Inode::Group(Group::Scoped(scope))))
            }
            Group::Tags if layout.tags.contains_key(name_str) => {
                let scope = Scope::Tag(name_str.to_string());
                Ok(self
                    .inodes
                    .child(parent, name, || Inode::Group(Group::Scoped(scope))))
            }
            Group::Control if name_str == "status" => {
                self.status.write_text();
                Ok(self.inodes.child(parent, name, || Inode::Status))
            }
            _ => Err(libc::ENOENT),
        }
    }

    /// The entries of directory `ino` from position `offset` on (`.` is 0
    /// and `..` is 1), each passed to `add` with the position after it,
    /// until `add` says the kernel's buffer is full. Listings carry no
    /// handle (the kernel opens directories itself, see `crate::fuse`): in
    /// a snapshot directory a position is an index into its tree, so a
    /// batch costs only its own entries, however large the directory.
    /// `lookups` of each entry but `.` and `..` are counted as held by the
    /// kernel if `add` takes it (READDIRPLUS: 1). A plain READDIR (0) makes
    /// no inode: it shows the number the entry's inode has or will have.
    pub fn read_dir(
        &self,
        ino: Ino,
        offset: u64,
        lookups: u64,
        mut add: impl FnMut(u64, DirEntry) -> Taken,
    ) -> VfsResult<()> {
        let record = self.inodes.record(ino)?;
        let dots = [(ino, &b"."[..]), (record.parent, &b".."[..])];
        for (position, (dot_ino, name)) in dots.into_iter().enumerate().skip(offset as usize) {
            let entry = DirEntry {
                ino: dot_ino,
                name: name.to_vec(),
                kind: EntryKind::Dir,
            };
            if let Taken::Full = add(position as u64 + 1, entry) {
                return Ok(());
            }
        }
        let first = offset.saturating_sub(2) as usize;
        if let Inode::Root | Inode::Group(_) = &record.inode {
            return self.read_virtual_dir(ino, &record.inode, first, add);
        }
        let dir = self.trees.snapshot_dir(ino, &record.inode)?;
        self.inodes.touch(&record);
        let top = self.trees.tree(&dir.tree_id, ino)?;
        if !top.is_split() {
            let whole = Listed {
                tree_id: dir.tree_id,
                tree: top,
                start: 0,
                entries: usize::MAX,
            };
            self.list_tree(ino, &dir, &whole, first, lookups, &mut add, |_| true)?;
            return Ok(());
        }
        // A split directory: a position counts the entries its top says
        // the parts before hold, so a batch reads only the parts it shows.
        let mut start = 0;
        for (part, meta) in top.parts.iter().enumerate() {
            let entries = meta.entries as usize;
            if first < start + entries {
                let listed = Listed {
                    tree_id: meta.tree,
                    tree: self.trees.tree(&meta.tree, ino)?,
                    start,
                    entries,
                };
                let in_range = |name: &[u8]| in_part(&top.parts, part, name);
                if self.list_tree(ino, &dir, &listed, first, lookups, &mut add, in_range)? {
                    break;
                }
            }
            start += entries;
        }
        Ok(())
    }

    /// Passes the entries of `listed` at positions from `first` on to
    /// `add` (see [`Names::read_dir`]), leaving out those `shown` refuses;
    /// true once `add` is full.
    #[allow(clippy::too_many_arguments)]
    fn list_tree(
        &self,
        ino: Ino,
        dir: &SnapshotDir,
        listed: &Listed,
        first: usize,
        lookups: u64,
        add: &mut impl FnMut(u64, DirEntry) -> Taken,
        shown: impl Fn(&[u8]) -> bool,
    ) -> VfsResult<bool> {
        let skip = first.saturating_sub(listed.start);
        let nodes = listed.tree.nodes.iter().take(listed.entries);
        // One handle on the tree for the batch, its index moved along.
        let mut entry = EntryNode {
            tree_id: listed.tree_id,
            tree: Arc::clone(&listed.tree),
            index: 0,
        };
        for (index, node) in nodes.enumerate().skip(skip) {
            if !shown(&node.name) {
                continue;
            }
            let child = match lookups {
                0 => self.trees.entry_number(ino, dir, node),
                _ => {
                    entry.index = index;
                    self.trees.entry_child(ino, dir, &entry, lookups)?
                }
            };
            let entry = DirEntry {
                ino: child,
                name: node.name.clone(),
                kind: entry_kind(node.kind),
            };
            let taken = add((listed.start + index) as u64 + 3, entry);
            if lookups > 0 && !matches!(taken, Taken::Yes) {
                // The kernel did not get it: it holds nothing of it.
                self.inodes.forget(child, lookups);
            }
            if let Taken::Full = taken {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The entries of a directory above the snapshots (the root, `ids/`,
    /// `hosts/`...) from entry `first` on (`.` and `..` not counted), as
    /// [`Names::read_dir`] passes them. Only the entries passed are made:
    /// a listing of ten thousand snapshots comes in hundreds of batches,
    /// each of which would otherwise make them all again.
    fn read_virtual_dir(
        &self,
        ino: Ino,
        inode: &Inode,
        first: usize,
        mut add: impl FnMut(u64, DirEntry) -> Taken,
    ) -> VfsResult<()> {
        let layout = self.shown.layout();
        for (index, name, kind) in virtual_names(&layout, inode, first)? {
            let child = match inode {
                Inode::Root => self.lookup_scoped(ino, name.as_bytes(), &Scope::All, true),
                Inode::Group(group) => self.lookup_group(ino, name.as_bytes(), group),
                _ => unreachable!("only the directories above the snapshots are listed here"),
            };
            let child = match child {
                Ok(child) => child,
                // `latest` with nothing to point at.
                Err(_) if name == "latest" => continue,
                Err(e) => return Err(e),
            };
            #[cfg(test)]
            self.virtual_entries_made
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let entry = DirEntry {
                ino: child,
                name: name.into_owned().into_bytes(),
                kind,
            };
            if let Taken::Full = add(index as u64 + 3, entry) {
                break;
            }
        }
        Ok(())
    }
}

/// Names listed above the snapshots, each with its position and kind.
type VirtualNames<'a> = Box<dyn Iterator<Item = (usize, Cow<'a, str>, EntryKind)> + 'a>;

/// The names in a directory above the snapshots from entry `first` on,
/// each with its position, in listing order; made one at a time as a
/// listing asks for them, and those before `first` skipped unmade.
fn virtual_names<'a>(
    layout: &'a Layout,
    inode: &'a Inode,
    first: usize,
) -> VfsResult<VirtualNames<'a>> {
    fn listed<'a>(
        names: impl Iterator<Item = (usize, (Cow<'a, str>, EntryKind))> + 'a,
    ) -> VirtualNames<'a> {
        Box::new(names.map(|(at, (name, kind))| (at, name, kind)))
    }
    let borrowed = |name: &'a str, kind| (Cow::Borrowed(name), kind);
    // The snapshots of a scope, then `latest`, from position `first`.
    let scoped = move |scope: &'a Scope, first: usize| {
        let members = layout.members(scope);
        let count = members.len();
        let latest = (!members.is_empty() && first <= count)
            .then_some((count, borrowed("latest", EntryKind::Symlink)));
        members
            .iter()
            .enumerate()
            .skip(first)
            .map(move |(at, i)| (at, borrowed(&layout.labels[i], EntryKind::Dir)))
            .chain(latest)
    };
    let shifted = |(at, item)| (at + TOP.len(), item);
    Ok(match inode {
        Inode::Root => listed(
            TOP.iter()
                .enumerate()
                .skip(first)
                .map(move |(at, name)| (at, borrowed(name, EntryKind::Dir)))
                .chain(scoped(&Scope::All, first.saturating_sub(TOP.len())).map(shifted)),
        ),
        Inode::Group(Group::Scoped(scope)) => listed(scoped(scope, first)),
        Inode::Group(Group::Ids) => listed(
            layout
                .snapshots
                .iter()
                .enumerate()
                .skip(first)
                .map(|(at, s)| (at, (Cow::Owned(s.id.short()), EntryKind::Symlink))),
        ),
        Inode::Group(Group::Hosts) => listed(
            layout
                .hosts
                .keys()
                .enumerate()
                .skip(first)
                .map(move |(at, host)| (at, borrowed(host, EntryKind::Dir))),
        ),
        Inode::Group(Group::Tags) => listed(
            layout
                .tags
                .keys()
                .enumerate()
                .skip(first)
                .map(move |(at, tag)| (at, borrowed(tag, EntryKind::Dir))),
        ),
        Inode::Group(Group::Control) => {
            listed(std::iter::once((0, borrowed("status", EntryKind::File))).skip(first))
        }
        _ => return Err(libc::ENOTDIR),
    })
}

/// The directories the root lists before its snapshots.
const TOP: [&str; 4] = [".rewind", "hosts", "ids", "tags"];
