//! The walk over the snapshot: directories are created (or checked) as they
//! are reached, special entries made, entries the snapshot does not have
//! deleted (`--delete`), and files and hardlinks queued for the workers in
//! `files.rs`. In a dry run every step is only noted.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fmt::Display;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{metadata, Action, DirJob, Failure, FileJob, LinkJob, Overwrite, Planned, Restorer};
use crate::backup::read_dir_names;
use crate::error::{Error, ErrorKind, Result};
use crate::tree::{Node, NodeKind, Tree};

impl Restorer<'_> {
    pub(super) fn fail(&mut self, snapshot_path: &str, error: impl Display) {
        self.report.errors.push(Failure {
            path: if snapshot_path.is_empty() {
                "/".to_string()
            } else {
                snapshot_path.to_string()
            },
            error: error.to_string(),
        });
    }

    /// Notes a step of a dry run.
    pub(super) fn note(&mut self, action: Action, path: &Path) {
        if self.options.dry_run {
            self.report.planned.push(Planned {
                action,
                path: path.to_path_buf(),
            });
        }
    }

    /// Creates the target if it is missing; returns whether it was created.
    /// The target itself may be a symlink to a directory: the admin named it.
    pub(super) fn prepare_target(&mut self, target: &Path) -> Result<bool> {
        match std::fs::metadata(target) {
            Ok(m) if m.is_dir() => Ok(false),
            Ok(_) => Err(Error::usage(format!(
                "the target {} exists and is not a directory",
                target.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.note(Action::Create, target);
                if !self.options.dry_run {
                    std::fs::create_dir_all(target).map_err(|e| {
                        Error::io(format!("cannot create the target {}", target.display()), e)
                    })?;
                }
                Ok(true)
            }
            Err(e) => Err(Error::io(
                format!("cannot use the target {}", target.display()),
                e,
            )),
        }
    }

    /// Plans the entries of a tree restored into `dir`, depth first.
    pub(super) fn plan_tree(&mut self, tree: &Tree, dir: &Path, snapshot_dir: &str) -> Result<()> {
        self.options.cancel.check()?;
        for node in &tree.nodes {
            self.plan_node(node.clone(), dir, snapshot_dir)?;
        }
        if self.options.delete {
            self.delete_extras(tree, dir, snapshot_dir);
        }
        Ok(())
    }

    pub(super) fn plan_node(&mut self, node: Node, dir: &Path, snapshot_dir: &str) -> Result<()> {
        let snapshot_path = format!("{snapshot_dir}/{}", node.name_lossy());
        if !node.name_is_safe() {
            let error = format!(
                "refusing the entry {:?} in {}: a name must not be empty, '.', '..', or contain '/' or NUL",
                String::from_utf8_lossy(&node.name),
                if snapshot_dir.is_empty() { "/" } else { snapshot_dir }
            );
            self.fail(snapshot_dir, error);
            return Ok(());
        }
        if !self.filter.admits(&snapshot_path, node.is_dir()) {
            return Ok(());
        }
        if node.is_dir() && snapshot_path.matches('/').count() > crate::tree::MAX_DEPTH {
            let error = format!(
                "refusing a directory nested deeper than {} levels: the snapshot is malformed",
                crate::tree::MAX_DEPTH
            );
            self.fail(snapshot_dir, error);
            return Ok(());
        }
        let path = dir.join(OsStr::from_bytes(&node.name));
        match node.kind {
            NodeKind::Dir => self.plan_dir(path, snapshot_path, node)?,
            _ if node.is_hardlinked() => {
                let key = (node.device, node.inode);
                match self.first_of_link.get(&key) {
                    Some(first) => self.links.push(LinkJob {
                        path,
                        snapshot_path,
                        node,
                        first: first.clone(),
                    }),
                    None => {
                        self.first_of_link.insert(key, path.clone());
                        self.plan_leaf(path, snapshot_path, node);
                    }
                }
            }
            _ => self.plan_leaf(path, snapshot_path, node),
        }
        Ok(())
    }

    fn plan_dir(
        &mut self,
        path: std::path::PathBuf,
        snapshot_path: String,
        node: Node,
    ) -> Result<()> {
        let created = match self.prepare_dir(&path) {
            Ok(created) => created,
            Err(e) => {
                self.fail(&snapshot_path, e);
                return Ok(());
            }
        };
        self.report.dirs += 1;
        let subtree = match node.subtree {
            Some(id) => self.repo.read_tree(&id),
            None => Ok(Tree::default()),
        };
        match subtree {
            Ok(tree) => self.plan_tree(&tree, &path, &snapshot_path)?,
            Err(e) => self.fail(&snapshot_path, format!("cannot read its contents: {e}")),
        }
        self.dirs.push(DirJob {
            path,
            snapshot_path,
            node,
            created,
        });
        Ok(())
    }

    fn plan_leaf(&mut self, path: std::path::PathBuf, snapshot_path: String, node: Node) {
        if node.kind == NodeKind::File {
            self.files.push(FileJob {
                path,
                snapshot_path,
                node,
            });
        } else if let Err(e) = self.restore_special(&path, &node) {
            self.fail(&snapshot_path, e);
        }
    }

    /// Creates a directory, or accepts one that is already there and is not
    /// a symlink; returns whether it was created.
    fn prepare_dir(&mut self, path: &Path) -> Result<bool> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => return Ok(false),
            Ok(_) if self.options.delete => {
                self.note(Action::Replace, path);
                if !self.options.dry_run {
                    make_room(path, true)?;
                }
            }
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::Unsafe,
                    format!(
                        "refusing to restore into {}: it exists and is not a directory (--delete replaces it)",
                        path.display()
                    ),
                ))
            }
            Err(_) => self.note(Action::Create, path),
        }
        if !self.options.dry_run {
            make_dir(path)?;
        }
        Ok(true)
    }

    /// A symlink, fifo, device node or socket.
    fn restore_special(&mut self, path: &Path, node: &Node) -> Result<()> {
        let action = self.decide(path, node, |meta| Ok(same_special(meta, path, node)))?;
        self.note(action, path);
        match action {
            Action::Skip => self.report.skipped += 1,
            Action::Keep => {
                self.report.kept += 1;
                self.report.other += 1;
                if !self.options.dry_run {
                    metadata::remove_other_xattrs(path, node)?;
                    metadata::apply(path, node)?;
                }
            }
            _ => {
                if !self.options.dry_run {
                    make_room(path, self.options.delete)?;
                    metadata::create_special(path, node)?;
                    metadata::apply(path, node)?;
                }
                self.report.other += 1;
            }
        }
        Ok(())
    }

    /// What to do at `path` for a non-directory `node`. `same` tells whether
    /// the existing entry already is the node's content; it must not accept
    /// an entry with other hard links (its metadata would change through
    /// them), unless that is the link the snapshot has.
    pub(super) fn decide(
        &self,
        path: &Path,
        node: &Node,
        same: impl FnOnce(&Metadata) -> Result<bool>,
    ) -> Result<Action> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if is_absent(&e) => return Ok(Action::Create),
            Err(e) => return Err(Error::io(format!("cannot inspect {}", path.display()), e)),
        };
        if self.options.overwrite == Overwrite::Never {
            return Ok(Action::Skip);
        }
        if meta.is_dir() && !node.is_dir() && !self.options.delete {
            return Err(Error::new(
                ErrorKind::Unsafe,
                format!(
                    "cannot restore {}: a directory is in the way (--delete replaces it)",
                    path.display()
                ),
            ));
        }
        if self.options.overwrite == Overwrite::IfChanged && !meta.is_dir() && same(&meta)? {
            return Ok(Action::Keep);
        }
        Ok(Action::Replace)
    }

    /// Removes what `dir` has and `tree` does not, where the globs allow.
    fn delete_extras(&mut self, tree: &Tree, dir: &Path, snapshot_dir: &str) {
        let names = match read_dir_names(dir) {
            Ok(names) => names,
            Err(e) if self.options.dry_run && is_absent(&e) => return,
            Err(e) => {
                let error = format!("cannot list {} to delete extra entries: {e}", dir.display());
                self.fail(snapshot_dir, error);
                return;
            }
        };
        let wanted: HashSet<&[u8]> = tree.nodes.iter().map(|n| n.name.as_slice()).collect();
        for name in names {
            if wanted.contains(name.as_slice()) {
                continue;
            }
            let snapshot_path = format!("{snapshot_dir}/{}", String::from_utf8_lossy(&name));
            if !self.filter.owns(&snapshot_path) {
                continue;
            }
            let path = dir.join(OsStr::from_bytes(&name));
            self.note(Action::Delete, &path);
            match self.options.dry_run {
                true => self.report.deleted += 1,
                false => match make_room(&path, true) {
                    Ok(()) => self.report.deleted += 1,
                    Err(e) => self.fail(&snapshot_path, e),
                },
            }
        }
    }
}

/// Not there, or not reachable because a parent is not a directory (yet).
pub(super) fn is_absent(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Whether an existing special entry is already the node.
fn same_special(meta: &Metadata, path: &Path, node: &Node) -> bool {
    let ft = meta.file_type();
    meta.nlink() == 1
        && match node.kind {
            NodeKind::Symlink => {
                ft.is_symlink()
                    && std::fs::read_link(path)
                        .is_ok_and(|t| t.as_os_str().as_bytes() == node.link_target.as_slice())
            }
            NodeKind::Fifo => ft.is_fifo(),
            NodeKind::CharDevice => ft.is_char_device() && meta.rdev() == node.rdev,
            NodeKind::BlockDevice => ft.is_block_device() && meta.rdev() == node.rdev,
            NodeKind::Socket => ft.is_socket(),
            NodeKind::File | NodeKind::Dir => false,
        }
}

/// Makes room for an entry at `path`: whatever non-directory is there is
/// removed (unlink never follows a symlink, and the new entry is then
/// created, never written through an old one). A directory is removed with
/// everything in it only if `replace_dirs`; otherwise it stays, and creating
/// the entry fails with an error.
pub(super) fn make_room(path: &Path, replace_dirs: bool) -> Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_dir() => std::fs::remove_file(path),
        // remove_dir_all does not follow symlinks inside the tree.
        Ok(_) if replace_dirs => std::fs::remove_dir_all(path),
        _ => Ok(()),
    };
    removed.map_err(|e| Error::io(format!("cannot replace {}", path.display()), e))
}

/// Creates a directory, or accepts one that is already there and is not a symlink.
fn make_dir(path: &Path) -> Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(path)
                .map_err(|e| Error::io(format!("cannot inspect {}", path.display()), e))?;
            if meta.is_dir() {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::Unsafe,
                    format!(
                        "refusing to restore into {}: it exists and is not a directory",
                        path.display()
                    ),
                ))
            }
        }
        Err(e) => Err(Error::io(format!("cannot create {}", path.display()), e)),
    }
}
