//! `rewind diff A B`: what was added, removed and changed between two
//! snapshots, a snapshot and a directory, or two directories.
//!
//! Between two snapshots no file content is read: a directory whose tree id
//! is the same on both sides is skipped whole (the trees are a Merkle
//! tree), and files are compared by their lists of chunk ids. Against a
//! local directory, the local files are read and every chunk hashed with
//! the repository's id key at the offsets the snapshot recorded, on several
//! threads, so no repository data is read either. Two local files are
//! compared byte by byte.
//!
//! A file that B adds or modifies is marked when it was rewritten with
//! incompressible content (`Change::incompressible`), from the stored and
//! raw lengths the index records for its new chunks.
//!
//! A symlink's content is its target and a device's is its number: those
//! changes are content changes. `metadata` adds mode, owner, modification
//! time and extended attributes (never atime or ctime: reading changes the
//! one, restoring cannot set the other).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

mod report;

use super::content::{compare_file, files_equal};
use super::{find_node, Cancel};
use crate::backup::{node_from_stat, open_source, read_dir_names, OwnerNames};
use crate::error::{Error, Result};
use crate::id::IdSet;
use crate::parallel::parallel_map;
use crate::repo::{Id, Repository};
use crate::suspicion::{ChangedBytes, Compressibility};
use crate::tree::{ExpansionBudget, ExpansionLimits, Extent, Node, NodeKind, Timestamp};
use report::{change_of, kind_name, metadata_details, shown};
pub use report::{Change, ChangeKind, DiffReport, DiffSummary};

/// One side of a comparison.
pub enum Side<'a> {
    /// `path` in the snapshot whose root tree is `tree`. When both sides
    /// are snapshots they must be in the same repository.
    Snapshot {
        repo: &'a Repository,
        tree: Id,
        path: String,
    },
    /// A directory or file on this machine; a mounted snapshot too.
    Local(PathBuf),
}

/// Decides which entries are compared: it gets an entry's path relative to
/// the compared roots and whether it is a directory.
pub type EntryFilter<'f> = &'f (dyn Fn(&str, bool) -> bool + Sync);

#[derive(Clone, Copy, Default)]
pub struct DiffOptions<'f> {
    /// Compare mode, owner, modification time and extended attributes too.
    pub metadata: bool,
    /// Compare local files by size only: their content was checked
    /// another way (restore-test verifies while it restores).
    pub sizes_only: bool,
    pub filter: Option<EntryFilter<'f>>,
    pub cancel: Cancel,
    /// What each snapshot side may expand to (see `ExpansionLimits`).
    pub limits: ExpansionLimits,
}

/// Compares A with B: what B adds, removes and changes.
pub fn diff(a: &Side, b: &Side, options: &DiffOptions) -> Result<DiffReport> {
    let budget = |side: &Side| match side {
        Side::Snapshot { tree, .. } => Some(ExpansionBudget::new(
            format!("with root tree {}", tree.short()),
            options.limits,
        )),
        Side::Local(_) => None,
    };
    let compressibility = match b {
        Side::Snapshot { repo, .. } => Compressibility::of(*repo),
        Side::Local(_) => None,
    };
    let mut differ = Differ {
        sides: [a, b],
        budgets: [budget(a), budget(b)],
        compressibility,
        options,
        owners: OwnerNames::default(),
        items: Vec::new(),
        jobs: Vec::new(),
        report: DiffReport::default(),
    };
    let roots = [differ.root(a)?, differ.root(b)?];
    let [ra, rb] = roots;
    crate::tree::with_deep_stack(|| differ.compare("", &ra, &rb))?;
    differ.finish()
}

/// An entry of one side: its node, and its path when it is on this machine.
struct Entry {
    node: Node,
    local: Option<PathBuf>,
    /// The root of a whole snapshot, which has no metadata of its own.
    synthetic: bool,
}

/// A directory's entries, and the names of those that could not be inspected
/// with the reason.
type Listing = (Vec<Entry>, Vec<(Vec<u8>, String)>);

enum Item {
    Ready(Change),
    /// Waits for the content comparison of `jobs[i]`.
    Pending(usize),
}

/// Two files of the same size, at least one local: compared on threads.
struct Job {
    path: String,
    a: Entry,
    b: Entry,
    metadata: Vec<String>,
}

struct Differ<'a, 'f> {
    sides: [&'a Side<'a>; 2],
    /// What each snapshot side has expanded to: shared directories can make
    /// a few trees stand for 2^40 paths.
    budgets: [Option<ExpansionBudget>; 2],
    /// How B's chunks are judged, when B is a snapshot in a repository
    /// that compresses.
    compressibility: Option<Compressibility>,
    options: &'a DiffOptions<'f>,
    owners: OwnerNames,
    items: Vec<Item>,
    jobs: Vec<Job>,
    report: DiffReport,
}

fn child_path(parent: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if parent.is_empty() {
        name.into_owned()
    } else {
        format!("{parent}/{name}")
    }
}

fn root_node(tree: Id) -> Node {
    Node {
        name: Vec::new(),
        kind: NodeKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime: Timestamp::default(),
        atime: Timestamp::default(),
        ctime: Timestamp::default(),
        size: 0,
        device: 0,
        inode: 0,
        links: 1,
        rdev: 0,
        link_target: Vec::new(),
        xattrs: Vec::new(),
        content: Vec::new(),
        subtree: Some(tree),
    }
}

impl Differ<'_, '_> {
    fn root(&self, side: &Side) -> Result<Entry> {
        match side {
            Side::Snapshot { repo, tree, path } => Ok(match find_node(repo, tree, path)? {
                Some(node) => Entry {
                    node,
                    local: None,
                    synthetic: false,
                },
                None => Entry {
                    node: root_node(*tree),
                    local: None,
                    synthetic: true,
                },
            }),
            Side::Local(given) => {
                // The root may be a symlink to a directory (`latest` in a
                // mount): it is resolved here, and nothing below it is followed.
                let path = std::fs::canonicalize(given)
                    .map_err(|e| Error::io(format!("cannot compare {}", given.display()), e))?;
                let meta = std::fs::metadata(&path)
                    .map_err(|e| Error::io(format!("cannot compare {}", given.display()), e))?;
                let name = path.file_name().map_or(&[][..], |n| n.as_bytes());
                let node = node_from_stat(name, &path, &meta, &self.owners, self.options.metadata)?;
                Ok(Entry {
                    node,
                    local: Some(path),
                    synthetic: false,
                })
            }
        }
    }

    /// The entries of a directory, sorted by name; entries of a local
    /// directory that cannot be inspected come back as (name, error).
    fn children(&self, side: &Side, path: &str, dir: &Entry) -> Result<Listing> {
        match (side, &dir.local) {
            (Side::Snapshot { repo, .. }, _) => {
                let (tree, not_shown) = match dir.node.subtree {
                    Some(id) => repo.read_tree(&id)?.into_shown(),
                    None => Default::default(),
                };
                let entries = tree
                    .nodes
                    .into_iter()
                    .map(|node| Entry {
                        node,
                        local: None,
                        synthetic: false,
                    })
                    .collect();
                // Entries with unusable or twice-listed names are not
                // compared: which of two of the same name is meant is unknown.
                let failed = not_shown
                    .into_iter()
                    .filter(|(name, _)| !name.is_empty())
                    .map(|(name, problem)| {
                        let message = crate::tree::not_shown_message(&shown(path), &name, problem);
                        (name, message)
                    })
                    .collect();
                Ok((entries, failed))
            }
            (Side::Local(_), Some(path)) => {
                let names = read_dir_names(path)
                    .map_err(|e| Error::io(format!("cannot list {}", path.display()), e))?;
                let mut entries = Vec::with_capacity(names.len());
                let mut failed = Vec::new();
                for name in names {
                    let child = path.join(OsStr::from_bytes(&name));
                    let node = std::fs::symlink_metadata(&child)
                        .map_err(|e| Error::io(format!("cannot inspect {}", child.display()), e))
                        .and_then(|meta| {
                            node_from_stat(
                                &name,
                                &child,
                                &meta,
                                &self.owners,
                                self.options.metadata,
                            )
                        });
                    match node {
                        Ok(node) => entries.push(Entry {
                            node,
                            local: Some(child),
                            synthetic: false,
                        }),
                        Err(e) => failed.push((name, e.to_string())),
                    }
                }
                Ok((entries, failed))
            }
            (Side::Local(_), None) => unreachable!("local entries carry their path"),
        }
    }

    fn admitted(&self, path: &str, is_dir: bool) -> bool {
        self.options.filter.is_none_or(|f| f(path, is_dir))
    }

    fn push(&mut self, path: &str, change: ChangeKind, details: Vec<String>) {
        self.items.push(Item::Ready(Change {
            path: shown(path),
            change,
            details,
            incompressible: false,
        }));
    }

    /// Whether `after`, a file of B in a snapshot, was rewritten with
    /// incompressible content: most of the bytes of the chunks it holds
    /// that `before` (its version in A, if any) did not hold, each chunk
    /// once, were stored incompressible. Nothing is read: the index has
    /// each chunk's stored and raw lengths.
    fn rewritten_incompressibly(&self, before: Option<&Node>, after: &Entry) -> bool {
        let (Some(judge), Side::Snapshot { repo, .. }) = (&self.compressibility, self.sides[1])
        else {
            return false;
        };
        if after.local.is_some() || after.node.kind != NodeKind::File {
            return false;
        }
        let data_ids = |node: &Node| -> IdSet {
            node.content
                .iter()
                .filter_map(|extent| match extent {
                    Extent::Data { id, .. } => Some(*id),
                    Extent::Hole { .. } => None,
                })
                .collect()
        };
        let held = before.map(data_ids).unwrap_or_default();
        let index = repo.index();
        let mut changed = ChangedBytes::default();
        for id in data_ids(&after.node).difference(&held) {
            if let Some(location) = index.get(id) {
                changed.add_chunk(judge, location.raw_len, location.stored_len);
            }
        }
        changed.is_mostly_incompressible()
    }

    fn compare(&mut self, path: &str, a: &Entry, b: &Entry) -> Result<()> {
        self.options.cancel.check()?;
        self.report.summary.entries_compared += 1;
        let (x, y) = (&a.node, &b.node);
        if x.kind != y.kind {
            let detail = format!("{} → {}", kind_name(x.kind), kind_name(y.kind));
            self.push(path, ChangeKind::TypeChanged, vec![detail]);
            return Ok(());
        }
        let metadata = if self.options.metadata && !a.synthetic && !b.synthetic {
            metadata_details(x, y)
        } else {
            Vec::new()
        };
        let content = match x.kind {
            NodeKind::Dir => {
                if !metadata.is_empty() {
                    self.push(path, ChangeKind::Metadata, metadata);
                }
                let both_snapshots = a.local.is_none() && b.local.is_none();
                if both_snapshots && x.subtree == y.subtree {
                    self.report.summary.trees_skipped += 1;
                    return Ok(());
                }
                return self.compare_dirs(path, a, b);
            }
            NodeKind::File if x.size != y.size => Some("content"),
            NodeKind::File if a.local.is_none() && b.local.is_none() => {
                (x.content != y.content).then_some("content")
            }
            NodeKind::File if self.options.sizes_only => None,
            NodeKind::File => {
                self.jobs.push(Job {
                    path: path.to_string(),
                    a: Entry {
                        node: x.clone(),
                        local: a.local.clone(),
                        synthetic: false,
                    },
                    b: Entry {
                        node: y.clone(),
                        local: b.local.clone(),
                        synthetic: false,
                    },
                    metadata,
                });
                self.items.push(Item::Pending(self.jobs.len() - 1));
                return Ok(());
            }
            NodeKind::Symlink => (x.link_target != y.link_target).then_some("link target"),
            NodeKind::CharDevice | NodeKind::BlockDevice => (x.rdev != y.rdev).then_some("device"),
            NodeKind::Fifo | NodeKind::Socket => None,
        };
        if let Some(mut change) = change_of(path, content, metadata) {
            change.incompressible = x.kind == NodeKind::File
                && content.is_some()
                && self.rewritten_incompressibly(Some(x), b);
            self.items.push(Item::Ready(change));
        }
        Ok(())
    }

    fn compare_dirs(&mut self, path: &str, a: &Entry, b: &Entry) -> Result<()> {
        if path.matches('/').count() >= crate::tree::MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "{path}: nested deeper than {} levels",
                crate::tree::MAX_DEPTH
            )));
        }
        let [side_a, side_b] = self.sides;
        let listed = [
            self.children(side_a, path, a),
            self.children(side_b, path, b),
        ];
        let [la, lb] = listed;
        let ((xs, fa), (ys, fb)) = match (la, lb) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(e), _) | (_, Err(e)) => {
                self.report.errors.push(format!("{}: {e}", shown(path)));
                return Ok(());
            }
        };
        self.admit(0, path, &xs)?;
        self.admit(1, path, &ys)?;
        let mut failed: Vec<Vec<u8>> = Vec::new();
        for (name, error) in fa.into_iter().chain(fb) {
            self.report.errors.push(error);
            failed.push(name);
        }
        let (mut i, mut j) = (0, 0);
        while i < xs.len() || j < ys.len() {
            let order = match (xs.get(i), ys.get(j)) {
                (Some(x), Some(y)) => x.node.name.cmp(&y.node.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let (x, y) = match order {
                std::cmp::Ordering::Less => (xs.get(i), None),
                std::cmp::Ordering::Greater => (None, ys.get(j)),
                std::cmp::Ordering::Equal => (xs.get(i), ys.get(j)),
            };
            i += usize::from(x.is_some());
            j += usize::from(y.is_some());
            let name = &x.or(y).expect("one side has an entry").node.name;
            if failed.contains(name) {
                continue;
            }
            let child = child_path(path, name);
            let is_dir = x.is_some_and(|e| e.node.is_dir()) || y.is_some_and(|e| e.node.is_dir());
            if !self.admitted(&child, is_dir) {
                continue;
            }
            match (x, y) {
                (Some(x), Some(y)) => self.compare(&child, x, y)?,
                (Some(x), None) => self.list_all(0, &child, x, ChangeKind::Removed)?,
                (None, Some(y)) => self.list_all(1, &child, y, ChangeKind::Added)?,
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// An entry only one side has, and everything below it.
    fn list_all(
        &mut self,
        side: usize,
        path: &str,
        entry: &Entry,
        change: ChangeKind,
    ) -> Result<()> {
        self.options.cancel.check()?;
        self.items.push(Item::Ready(Change {
            path: shown(path),
            change,
            details: Vec::new(),
            incompressible: change == ChangeKind::Added
                && self.rewritten_incompressibly(None, entry),
        }));
        if !entry.node.is_dir() {
            return Ok(());
        }
        if path.matches('/').count() >= crate::tree::MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "{path}: nested deeper than {} levels",
                crate::tree::MAX_DEPTH
            )));
        }
        let (children, failed) = match self.children(self.sides[side], path, entry) {
            Ok(listed) => listed,
            Err(e) => {
                self.report.errors.push(format!("{path}: {e}"));
                return Ok(());
            }
        };
        self.admit(side, path, &children)?;
        self.report
            .errors
            .extend(failed.into_iter().map(|(_, error)| error));
        for child in &children {
            let child_path = child_path(path, &child.node.name);
            if self.admitted(&child_path, child.node.is_dir()) {
                self.list_all(side, &child_path, child, change)?;
            }
        }
        Ok(())
    }

    /// Counts the entries listed in `dir` of side `side` against its
    /// budget; past the budget the whole comparison stops.
    fn admit(&self, side: usize, dir: &str, entries: &[Entry]) -> Result<()> {
        let Some(budget) = &self.budgets[side] else {
            return Ok(());
        };
        let depth = if dir.is_empty() {
            1
        } else {
            dir.matches('/').count() + 2
        };
        entries
            .iter()
            .try_for_each(|entry| budget.admit(&entry.node, depth))
    }

    fn repository(&self) -> Option<&Repository> {
        self.sides.iter().find_map(|side| match side {
            Side::Snapshot { repo, .. } => Some(*repo),
            Side::Local(_) => None,
        })
    }

    /// Whether the two files of a job hold the same bytes.
    fn same_content(&self, job: &Job) -> Result<bool> {
        let cancel = self.options.cancel;
        cancel.check()?;
        let open = |path: &Path| {
            open_source(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))
        };
        match (&job.a.local, &job.b.local) {
            (Some(p), Some(q)) => {
                let (fp, fq) = (open(p)?, open(q)?);
                files_equal((&fp, p), (&fq, q), cancel)
            }
            (Some(local), None) | (None, Some(local)) => {
                let node = if job.a.local.is_none() {
                    &job.a.node
                } else {
                    &job.b.node
                };
                let repo = self.repository().expect("a snapshot side has a repository");
                let file = open(local)?;
                Ok(compare_file(|data| repo.blob_id(data), &file, local, node, cancel)?.is_none())
            }
            (None, None) => unreachable!("two snapshot files are compared by chunk ids"),
        }
    }

    fn finish(mut self) -> Result<DiffReport> {
        let results = parallel_map(&self.jobs, |job| self.same_content(job));
        self.options.cancel.check()?;
        let jobs = std::mem::take(&mut self.jobs);
        let mut results: Vec<Option<Result<bool>>> = results.into_iter().map(Some).collect();
        let mut jobs: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
        for item in std::mem::take(&mut self.items) {
            match item {
                Item::Ready(change) => self.report.changes.push(change),
                Item::Pending(i) => {
                    let job = jobs[i].take().expect("each job is pending once");
                    self.report.summary.files_read += 1;
                    self.report.summary.bytes_read += job.a.node.size;
                    match results[i].take().expect("each job has a result") {
                        Ok(same) => {
                            let what = (!same).then_some("content");
                            if let Some(mut change) = change_of(&job.path, what, job.metadata) {
                                change.incompressible = !same
                                    && self.rewritten_incompressibly(Some(&job.a.node), &job.b);
                                self.report.changes.push(change);
                            }
                        }
                        Err(e) => self
                            .report
                            .errors
                            .push(format!("{}: {e}", shown(&job.path))),
                    }
                }
            }
        }
        self.report.count_changes();
        Ok(self.report)
    }
}
