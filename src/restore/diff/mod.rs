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
//! Both sides are walked together, directory by directory, and each change
//! is handed on as soon as it and every one before it in the walk are
//! known: the content comparisons wait in a bounded queue (`queue.rs`), so
//! a diff holds the directories on the current path and what is in
//! flight, not one record per file (`docs/design.md`, section 6).
//!
//! A symlink's content is its target and a device's is its number: those
//! changes are content changes. `metadata` adds mode, owner, modification
//! time and extended attributes (never atime or ctime: reading changes the
//! one, restoring cannot set the other).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

mod queue;
mod report;

use super::content::{compare_file, files_equal};
use super::{find_node, Cancel};
use crate::backup::{node_from_stat, open_source, read_dir_names, OwnerNames};
use crate::error::{Error, Result};
use crate::id::IdSet;
use crate::repo::{Id, Repository};
use crate::suspicion::{ChangedBytes, Compressibility};
use crate::tree::{ExpansionBudget, ExpansionLimits, Extent, Node, NodeKind, Timestamp};
use queue::{Done, Job, Queue};
use report::{change_of, kind_name, metadata_details, shown};
pub use report::{Change, ChangeKind, DiffOutcome, DiffReport, DiffSummary};

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

/// What receives each change, in the order of a depth-first walk by name;
/// an error stops the comparison.
pub type ChangeSink<'s> = &'s mut (dyn FnMut(Change) -> Result<()> + Send);

/// Compares A with B: what B adds, removes and changes, all in one report.
pub fn diff(a: &Side, b: &Side, options: &DiffOptions) -> Result<DiffReport> {
    let mut changes = Vec::new();
    let outcome = diff_each(a, b, options, &mut |change| {
        changes.push(change);
        Ok(())
    })?;
    Ok(DiffReport {
        changes,
        errors: outcome.errors,
        errors_not_listed: outcome.errors_not_listed,
        summary: outcome.summary,
    })
}

/// Compares A with B, handing each change to `sink` as soon as it and
/// every change before it are known.
pub fn diff_each(
    a: &Side,
    b: &Side,
    options: &DiffOptions,
    sink: ChangeSink,
) -> Result<DiffOutcome> {
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
    let repo = [a, b].into_iter().find_map(|side| match side {
        Side::Snapshot { repo, .. } => Some(*repo),
        Side::Local(_) => None,
    });
    let cancel = options.cancel;
    std::thread::scope(|scope| {
        let mut differ = Differ {
            sides: [a, b],
            budgets: [budget(a), budget(b)],
            compressibility,
            options,
            owners: OwnerNames::default(),
            queue: Queue::start(scope, move |job| same_content(repo, cancel, job)),
            sink,
            outcome: DiffOutcome::default(),
        };
        let [ra, rb] = [differ.root(a)?, differ.root(b)?];
        crate::tree::with_deep_stack(|| {
            differ.compare("", &ra, &rb)?;
            differ.finish()
        })
    })
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

struct Differ<'a, 'f, 's> {
    sides: [&'a Side<'a>; 2],
    /// What each snapshot side has expanded to: shared directories can make
    /// a few trees stand for 2^40 paths.
    budgets: [Option<ExpansionBudget>; 2],
    /// How B's chunks are judged, when B is a snapshot in a repository
    /// that compresses.
    compressibility: Option<Compressibility>,
    options: &'a DiffOptions<'f>,
    owners: OwnerNames,
    /// The changes found and the comparisons under way, in walk order.
    queue: Queue,
    sink: ChangeSink<'s>,
    outcome: DiffOutcome,
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

impl Differ<'_, '_, '_> {
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
                for name in names.iter() {
                    let child = path.join(OsStr::from_bytes(name));
                    let node = std::fs::symlink_metadata(&child)
                        .map_err(|e| Error::io(format!("cannot inspect {}", child.display()), e))
                        .and_then(|meta| {
                            node_from_stat(name, &child, &meta, &self.owners, self.options.metadata)
                        });
                    match node {
                        Ok(node) => entries.push(Entry {
                            node,
                            local: Some(child),
                            synthetic: false,
                        }),
                        Err(e) => failed.push((name.to_vec(), e.to_string())),
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

    fn push(&mut self, path: &str, change: ChangeKind, details: Vec<String>) -> Result<()> {
        self.found(Change {
            path: shown(path),
            change,
            details,
            incompressible: false,
        })
    }

    /// Queues a change behind those found before it.
    fn found(&mut self, change: Change) -> Result<()> {
        self.queue.push_change(change);
        self.report_done(false)
    }

    /// Queues the comparison of two files' content.
    fn compare_content(&mut self, job: Job) -> Result<()> {
        self.queue.push_job(job);
        self.report_done(false)
    }

    /// Reports what is done at the head of the queue, waiting while it is
    /// full, or until it is empty with `until_empty`.
    fn report_done(&mut self, until_empty: bool) -> Result<()> {
        while let Some(done) = self.queue.next_done(until_empty) {
            match done {
                Done::Change(change) => self.report(change)?,
                Done::Compared(job, same) => self.report_compared(job, same)?,
            }
        }
        Ok(())
    }

    fn report(&mut self, change: Change) -> Result<()> {
        self.outcome.summary.count(&change);
        (self.sink)(change)
    }

    fn report_compared(&mut self, job: Box<Job>, same: Result<bool>) -> Result<()> {
        self.options.cancel.check()?;
        self.outcome.summary.files_read += 1;
        self.outcome.summary.bytes_read += job.a.node.size;
        match same {
            Ok(same) => {
                let what = (!same).then_some("content");
                if let Some(mut change) = change_of(&job.path, what, job.metadata) {
                    change.incompressible =
                        !same && self.rewritten_incompressibly(Some(&job.a.node), &job.b);
                    self.report(change)?;
                }
            }
            Err(e) => self.outcome.add_error(format!("{}: {e}", shown(&job.path))),
        }
        Ok(())
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
        self.outcome.summary.entries_compared += 1;
        let (x, y) = (&a.node, &b.node);
        if x.kind != y.kind {
            let detail = format!("{} → {}", kind_name(x.kind), kind_name(y.kind));
            return self.push(path, ChangeKind::TypeChanged, vec![detail]);
        }
        let metadata = if self.options.metadata && !a.synthetic && !b.synthetic {
            metadata_details(x, y)
        } else {
            Vec::new()
        };
        let content = match x.kind {
            NodeKind::Dir => {
                if !metadata.is_empty() {
                    self.push(path, ChangeKind::Metadata, metadata)?;
                }
                let both_snapshots = a.local.is_none() && b.local.is_none();
                if both_snapshots && x.subtree == y.subtree {
                    self.outcome.summary.trees_skipped += 1;
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
                return self.compare_content(Job {
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
            }
            NodeKind::Symlink => (x.link_target != y.link_target).then_some("link target"),
            NodeKind::CharDevice | NodeKind::BlockDevice => (x.rdev != y.rdev).then_some("device"),
            NodeKind::Fifo | NodeKind::Socket => None,
        };
        if let Some(mut change) = change_of(path, content, metadata) {
            change.incompressible = x.kind == NodeKind::File
                && content.is_some()
                && self.rewritten_incompressibly(Some(x), b);
            self.found(change)?;
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
                self.outcome.add_error(format!("{}: {e}", shown(path)));
                return Ok(());
            }
        };
        self.admit(0, path, &xs)?;
        self.admit(1, path, &ys)?;
        let mut failed: Vec<Vec<u8>> = Vec::new();
        for (name, error) in fa.into_iter().chain(fb) {
            self.outcome.add_error(error);
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
        self.found(Change {
            path: shown(path),
            change,
            details: Vec::new(),
            incompressible: change == ChangeKind::Added
                && self.rewritten_incompressibly(None, entry),
        })?;
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
                self.outcome.add_error(format!("{path}: {e}"));
                return Ok(());
            }
        };
        self.admit(side, path, &children)?;
        for (_, error) in failed {
            self.outcome.add_error(error);
        }
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

    /// Reports what is left in the queue, in order.
    fn finish(mut self) -> Result<DiffOutcome> {
        self.report_done(true)?;
        Ok(self.outcome)
    }
}

/// Whether the two files of a job hold the same bytes; `repo` is the
/// snapshot side's, when there is one.
fn same_content(repo: Option<&Repository>, cancel: Cancel, job: &Job) -> Result<bool> {
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
            let repo = repo.expect("a snapshot side has a repository");
            let file = open(local)?;
            Ok(compare_file(|data| repo.blob_id(data), &file, local, node, cancel)?.is_none())
        }
        (None, None) => unreachable!("two snapshot files are compared by chunk ids"),
    }
}
