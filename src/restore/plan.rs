//! The walk over the snapshot, depth first: directories are created (or
//! checked) as they are reached, special entries made, entries the snapshot
//! does not have deleted (`--delete`), and files and hardlinks queued in
//! windows for the workers of `stream.rs`; a directory is queued for its
//! metadata when its subtree is done. In a dry run every step is only
//! noted. Every path here is relative to the target and goes through
//! [`Target`](super::target::Target).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt::Display;
use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Stat};

use super::target::{apply_metadata, check_kind, remove_other_xattrs};
use super::windows::{Pending, Stream};
use super::{
    Action, DirJob, Failure, FileJob, LinkJob, Overwrite, Planned, RestoreReport, Restorer,
};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Id;
use crate::tree::{NameProblem, Node, NodeKind, Tree};

/// The walk, and what it keeps: the window it is filling, the first path
/// of each hardlinked file, and the report.
pub(super) struct Planner<'r, 'a> {
    restorer: &'r Restorer<'a>,
    pub report: RestoreReport,
    /// The first path of each hardlinked file met so far, by (device,
    /// inode) in the snapshot: the others are made links to it.
    first_of_link: HashMap<(u64, u64), PathBuf>,
    /// Hardlinked files that could not be restored: their other links are
    /// not made.
    pub failed_links: HashSet<PathBuf>,
    pending: Pending,
    stream: Stream,
}

impl<'a> Deref for Planner<'_, 'a> {
    type Target = Restorer<'a>;

    fn deref(&self) -> &Restorer<'a> {
        self.restorer
    }
}

impl<'r, 'a> Planner<'r, 'a> {
    pub fn new(restorer: &'r Restorer<'a>, stream: Stream) -> Self {
        Planner {
            restorer,
            report: RestoreReport::default(),
            first_of_link: HashMap::new(),
            failed_links: HashSet::new(),
            pending: Pending::default(),
            stream,
        }
    }

    /// Hands the window being filled to the workers once it is full.
    fn queued(&mut self) {
        if self.pending.is_full() {
            self.submit();
        }
    }

    /// Hands the window being filled to the workers, and finishes those
    /// that are done.
    pub fn submit(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for window in self.stream.submit(self.restorer, pending) {
            self.finish_window(&window);
        }
    }

    /// Waits for every window handed out and finishes it.
    pub fn drain(&mut self) {
        for window in self.stream.drain() {
            self.finish_window(&window);
        }
    }

    /// A directory whose subtree has been walked: its metadata is set once
    /// the window now being filled, and every one before it, is done.
    pub fn finish_dir(&mut self, dir: DirJob) {
        self.pending.dirs.push(dir);
        self.queued();
    }

    pub(super) fn fail(&mut self, snapshot_path: &str, error: impl Display) {
        self.report.add_failure(Failure {
            path: if snapshot_path.is_empty() {
                "/".to_string()
            } else {
                snapshot_path.to_string()
            },
            error: error.to_string(),
        });
    }

    /// Notes a step of a dry run.
    pub(super) fn note(&mut self, action: Action, rel: &Path) {
        if self.options.dry_run {
            let path = self.target.show(rel);
            self.report.planned.push(Planned { action, path });
        }
    }

    /// Plans the entries of a tree restored into `dir`, depth first. Entries
    /// whose names break the format's rules (unsafe, too long, listed twice)
    /// are refused, each with an error; the rest is restored.
    /// `fresh`: `dir` was made by this restore (see [`FileJob::fresh`]).
    pub(super) fn plan_tree(
        &mut self,
        tree: Tree,
        dir: &Path,
        snapshot_dir: &str,
        fresh: bool,
    ) -> Result<()> {
        let mut names = self.options.delete.then(Vec::new);
        self.plan_entries(tree, dir, snapshot_dir, fresh, names.as_mut())?;
        self.delete_unnamed(names, dir, snapshot_dir);
        Ok(())
    }

    /// Plans a directory's entries read from its tree `id` a part at a
    /// time (see [`Repository::for_each_tree_part`]), so that a directory
    /// of a million entries is never held whole. A part that does not
    /// read fails the directory's path, and then nothing is deleted there.
    pub(super) fn plan_subtree(
        &mut self,
        id: &Id,
        dir: &Path,
        snapshot_dir: &str,
        fresh: bool,
    ) -> Result<()> {
        let repo = self.repo;
        let mut names = self.options.delete.then(Vec::new);
        let read = repo.for_each_tree_part(id, |part| {
            self.plan_entries(part, dir, snapshot_dir, fresh, names.as_mut())
        });
        match read {
            Err(e) => self.fail(snapshot_dir, format!("cannot read its contents: {e}")),
            Ok(planned) => {
                planned?;
                self.delete_unnamed(names, dir, snapshot_dir);
            }
        }
        Ok(())
    }

    /// With `--delete` (`names` of every entry of the directory given),
    /// removes from `dir` what the snapshot's directory does not name.
    fn delete_unnamed(&mut self, names: Option<Vec<Vec<u8>>>, dir: &Path, snapshot_dir: &str) {
        if let Some(mut names) = names {
            // In order already, part after part; sorted to be sure.
            names.sort_unstable();
            self.delete_extras(
                &|name| names.binary_search_by(|n| n.as_slice().cmp(name)).is_ok(),
                dir,
                snapshot_dir,
            );
        }
    }

    /// Plans the entries of `tree`, a whole directory or one part of it,
    /// and adds their names to `names` (given with `--delete`).
    fn plan_entries(
        &mut self,
        tree: Tree,
        dir: &Path,
        snapshot_dir: &str,
        fresh: bool,
        names: Option<&mut Vec<Vec<u8>>>,
    ) -> Result<()> {
        self.options.cancel.check()?;
        let (tree, dropped) = tree.into_shown();
        for (name, problem) in dropped {
            if problem != NameProblem::OutOfOrder {
                let error = format!(
                    "refusing the entry {:?} in {}: {problem}",
                    String::from_utf8_lossy(&name),
                    if snapshot_dir.is_empty() {
                        "/"
                    } else {
                        snapshot_dir
                    }
                );
                self.fail(snapshot_dir, error);
            }
        }
        for node in &tree.nodes {
            self.plan_node(node.clone(), dir, snapshot_dir, fresh)?;
        }
        if let Some(names) = names {
            names.extend(tree.nodes.iter().map(|n| n.name.clone()));
        }
        Ok(())
    }

    /// Plans one entry. A snapshot that expands beyond the limits (shared
    /// subtrees named over and over) stops the whole restore.
    pub(super) fn plan_node(
        &mut self,
        node: Node,
        dir: &Path,
        snapshot_dir: &str,
        fresh: bool,
    ) -> Result<()> {
        let snapshot_path = format!("{snapshot_dir}/{}", node.name_lossy());
        if !node.name_is_safe() {
            let error = format!(
                "refusing the entry {:?} in {}: {}",
                String::from_utf8_lossy(&node.name),
                if snapshot_dir.is_empty() {
                    "/"
                } else {
                    snapshot_dir
                },
                NameProblem::Unsafe
            );
            self.fail(snapshot_dir, error);
            return Ok(());
        }
        if !self.filter.admits(&snapshot_path, node.is_dir()) {
            return Ok(());
        }
        self.budget
            .admit(&node, snapshot_path.matches('/').count())?;
        let rel = dir.join(OsStr::from_bytes(&node.name));
        match node.kind {
            NodeKind::Dir => self.plan_dir(rel, snapshot_path, node)?,
            _ if node.is_hardlinked() => {
                let key = (node.device, node.inode);
                match self.first_of_link.get(&key) {
                    Some(first) => {
                        let first = first.clone();
                        self.pending.links.push(LinkJob {
                            rel,
                            snapshot_path,
                            node,
                            first,
                        });
                        self.queued();
                    }
                    None => {
                        self.first_of_link.insert(key, rel.clone());
                        self.plan_leaf(rel, snapshot_path, node, fresh);
                    }
                }
            }
            _ => self.plan_leaf(rel, snapshot_path, node, fresh),
        }
        Ok(())
    }

    fn plan_dir(&mut self, rel: PathBuf, snapshot_path: String, node: Node) -> Result<()> {
        let inode = match self.prepare_dir(&rel) {
            Ok(inode) => inode,
            Err(e) => {
                self.fail(&snapshot_path, e);
                return Ok(());
            }
        };
        self.report.dirs += 1;
        match node.subtree {
            Some(id) => self.plan_subtree(&id, &rel, &snapshot_path, inode.empty)?,
            None => self.plan_tree(Tree::default(), &rel, &snapshot_path, inode.empty)?,
        }
        self.finish_dir(DirJob {
            rel,
            snapshot_path,
            node,
            inode,
        });
        Ok(())
    }

    fn plan_leaf(&mut self, rel: PathBuf, snapshot_path: String, node: Node, fresh: bool) {
        if node.kind == NodeKind::File {
            self.pending.add_file(FileJob {
                rel,
                snapshot_path,
                node,
                fresh,
            });
            self.queued();
        } else if let Err(e) = self.restore_special(&rel, &node) {
            self.fail(&snapshot_path, e);
        }
    }

    /// Creates a directory, or accepts one that is already there and is not
    /// a symlink. Returns the directory's inode, and whether this restore
    /// made it: its metadata is set at the end on that inode only.
    fn prepare_dir(&mut self, rel: &Path) -> Result<DirInode> {
        match self.target.lstat(rel) {
            Ok(stat) if is_dir(&stat) => return Ok(DirInode::existing(&stat)),
            Ok(_) if self.options.delete => {
                self.note(Action::Replace, rel);
                if !self.options.dry_run {
                    self.target
                        .remove(rel, true)
                        .map_err(|e| self.io_error("replace", rel, e))?;
                }
            }
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::Unsafe,
                    format!(
                        "refusing to restore into {}: it exists and is not a directory (--delete replaces it)",
                        self.target.show(rel).display()
                    ),
                ))
            }
            Err(e) if is_absent(&e) => self.note(Action::Create, rel),
            Err(e) => return Err(self.io_error("restore into", rel, e)),
        }
        if self.options.dry_run {
            return Ok(DirInode::planned());
        }
        let made = match self.target.create_dir(rel) {
            Ok(()) => true,
            // Made by someone else meanwhile: accepted below if it is a directory.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(self.io_error("create", rel, e)),
        };
        let stat = self
            .target
            .lstat(rel)
            .map_err(|e| self.io_error("inspect", rel, e))?;
        if !is_dir(&stat) {
            return Err(Error::new(
                ErrorKind::Unsafe,
                format!(
                    "refusing to restore into {}: it exists and is not a directory",
                    self.target.show(rel).display()
                ),
            ));
        }
        Ok(DirInode::created(&stat, made))
    }

    /// A symlink, fifo, device node or socket.
    fn restore_special(&mut self, rel: &Path, node: &Node) -> Result<()> {
        let (action, kept) = self.decide(rel, node, |handle, stat| {
            Ok(self.same_special(handle, stat, node))
        })?;
        self.note(action, rel);
        match action {
            Action::Skip => self.report.skipped += 1,
            Action::Keep => {
                self.report.kept += 1;
                self.report.other += 1;
                if let (Some(handle), false) = (kept, self.options.dry_run) {
                    let shown = self.target.show(rel);
                    remove_other_xattrs(handle.as_fd(), node, &shown)?;
                    apply_metadata(handle.as_fd(), node, &shown)?;
                }
            }
            _ => {
                if !self.options.dry_run {
                    self.make_room(rel, action)?;
                    self.target
                        .create_special(rel, node)
                        .map_err(|e| self.io_error("create", rel, e))?;
                    let handle = self
                        .target
                        .handle(rel)
                        .map_err(|e| self.io_error("open", rel, e))?;
                    let shown = self.target.show(rel);
                    check_kind(handle.as_fd(), node, &shown)?;
                    apply_metadata(handle.as_fd(), node, &shown)?;
                }
                self.report.other += 1;
            }
        }
        Ok(())
    }

    /// Removes what `dir` has and the snapshot's directory does not
    /// (`wanted` says which names it has), where the globs allow.
    fn delete_extras(&mut self, wanted: &dyn Fn(&[u8]) -> bool, dir: &Path, snapshot_dir: &str) {
        let names = match self.target.list(dir) {
            Ok(names) => names,
            Err(e) if self.options.dry_run && is_absent(&e) => return,
            Err(e) => {
                let error = self.io_error("list the entries to delete in", dir, e);
                self.fail(snapshot_dir, error);
                return;
            }
        };
        for name in names {
            if wanted(name.as_slice()) {
                continue;
            }
            let snapshot_path = format!("{snapshot_dir}/{}", String::from_utf8_lossy(&name));
            if !self.filter.owns(&snapshot_path) {
                continue;
            }
            let rel = dir.join(OsStr::from_bytes(&name));
            self.note(Action::Delete, &rel);
            if self.options.dry_run {
                self.report.deleted += 1;
                continue;
            }
            match self.target.remove(&rel, true) {
                Ok(()) => self.report.deleted += 1,
                Err(e) => {
                    let error = self.io_error("delete", &rel, e);
                    self.fail(&snapshot_path, error)
                }
            }
        }
    }
}

impl Restorer<'_> {
    /// An I/O error on `rel`: a symlink or a path out of the target met on
    /// the way is named as what it is, a refusal.
    pub(super) fn io_error(&self, what: &str, rel: &Path, e: std::io::Error) -> Error {
        let shown = self.target.show(rel);
        match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::EXDEV) => Error::new(
                ErrorKind::Unsafe,
                format!(
                    "refusing to {what} {}: a symlink is in the way, and a restore never writes through one",
                    shown.display()
                ),
            ),
            _ => Error::io(format!("cannot {what} {}", shown.display()), e),
        }
    }

    /// What to do at `rel` for a non-directory `node`. `same` is given the
    /// existing entry (a handle on it and its `lstat`) and tells whether it
    /// already is the node's content; if so it hands back the descriptor it
    /// checked, so that what was checked is what is kept (and given its
    /// metadata). It must not accept an entry with other hard links (its
    /// metadata would change through them), unless that is the link the
    /// snapshot has.
    pub(super) fn decide<T>(
        &self,
        rel: &Path,
        node: &Node,
        same: impl FnOnce(OwnedFd, &Stat) -> Result<Option<T>>,
    ) -> Result<(Action, Option<T>)> {
        let (handle, stat) = match self.target.inspect(rel) {
            Ok(inspected) => inspected,
            Err(e) if is_absent(&e) => return Ok((Action::Create, None)),
            Err(e) => return Err(self.io_error("inspect", rel, e)),
        };
        if self.options.overwrite == Overwrite::Never {
            return Ok((Action::Skip, None));
        }
        if is_dir(&stat) && !node.is_dir() && !self.options.delete {
            return Err(Error::new(
                ErrorKind::Unsafe,
                format!(
                    "cannot restore {}: a directory is in the way (--delete replaces it)",
                    self.target.show(rel).display()
                ),
            ));
        }
        if self.options.overwrite == Overwrite::IfChanged && !is_dir(&stat) {
            if let Some(kept) = same(handle, &stat)? {
                return Ok((Action::Keep, Some(kept)));
            }
        }
        Ok((Action::Replace, None))
    }

    /// Removes what is at `rel` when the new entry replaces it (a directory
    /// only with `--delete`; `decide` refused it otherwise). The new entry
    /// is then created, never written through an old one. For a `Create`
    /// nothing was there: creating fails if something has appeared since.
    pub(super) fn make_room(&self, rel: &Path, action: Action) -> Result<()> {
        if action != Action::Replace {
            return Ok(());
        }
        self.target
            .remove(rel, self.options.delete)
            .map_err(|e| self.io_error("replace", rel, e))
    }

    /// Whether an existing special entry is already the node: its handle if so.
    fn same_special(&self, handle: OwnedFd, stat: &Stat, node: &Node) -> Option<OwnedFd> {
        if stat.st_nlink != 1 || !same_special_kind(stat, node) {
            return None;
        }
        if node.kind == NodeKind::Symlink {
            let target = rustix::fs::readlinkat(&handle, c"", Vec::new());
            if !target.is_ok_and(|t| t.as_bytes() == node.link_target.as_slice()) {
                return None;
            }
        }
        Some(handle)
    }
}

/// The inode of a directory a restore writes into, so that its metadata is
/// set on that directory at the end, and on nothing that replaced it.
#[derive(Debug, Clone, Copy)]
pub(super) struct DirInode {
    /// (device, inode); `None` in a dry run, where nothing is made.
    pub id: Option<(u64, u64)>,
    /// Whether this restore made it (`Overwrite::Never` leaves others alone).
    pub created: bool,
    /// Whether this restore's own `mkdir` made it, mode 0700: until its
    /// metadata is set nothing can be in it but what this restore puts there.
    pub empty: bool,
}

impl DirInode {
    fn existing(stat: &Stat) -> DirInode {
        DirInode {
            id: Some((stat.st_dev, stat.st_ino)),
            created: false,
            empty: false,
        }
    }

    fn created(stat: &Stat, made: bool) -> DirInode {
        DirInode {
            id: Some((stat.st_dev, stat.st_ino)),
            created: true,
            empty: made,
        }
    }

    fn planned() -> DirInode {
        DirInode {
            id: None,
            created: true,
            empty: false,
        }
    }
}

fn is_dir(stat: &Stat) -> bool {
    FileType::from_raw_mode(stat.st_mode) == FileType::Directory
}

/// Not there, or not reachable because a parent is not a directory (yet).
pub(super) fn is_absent(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Whether an existing special entry is of the node's kind (and device).
fn same_special_kind(stat: &Stat, node: &Node) -> bool {
    let kind = FileType::from_raw_mode(stat.st_mode);
    match node.kind {
        NodeKind::Symlink => kind == FileType::Symlink,
        NodeKind::Fifo => kind == FileType::Fifo,
        NodeKind::CharDevice => kind == FileType::CharacterDevice && stat.st_rdev == node.rdev,
        NodeKind::BlockDevice => kind == FileType::BlockDevice && stat.st_rdev == node.rdev,
        NodeKind::Socket => kind == FileType::Socket,
        NodeKind::File | NodeKind::Dir => false,
    }
}
