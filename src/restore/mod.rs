//! Restoring a snapshot (or part of it) into a directory: directories first,
//! then file contents on several threads, then hardlinks, and the metadata of
//! directories last so their times survive the writes into them.
//!
//! Nothing is ever written outside the target: every name is checked, files
//! are created with `O_NOFOLLOW`, and a directory that already exists must be
//! a real directory, never a symlink.

mod metadata;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::tree::{Extent, Node, NodeKind, Tree};

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Only paths (as in the snapshot) matching one of these, and what they contain.
    pub includes: Vec<String>,
    /// Re-read every restored file and compare it with the snapshot.
    pub verify: bool,
    pub threads: usize,
    pub show_progress: bool,
}

#[derive(Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    pub verified: u64,
    /// Entries that could not be restored, with the reason.
    pub errors: Vec<String>,
}

/// Finds the node at `path` in a snapshot tree. The root has no node: `None`.
pub fn find_node(repo: &Repository, root: &crate::repo::Id, path: &str) -> Result<Option<Node>> {
    let mut tree = repo.read_tree(root)?;
    let mut found: Option<Node> = None;
    let components: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for (i, name) in components.iter().enumerate() {
        let node = tree
            .find(name.as_bytes())
            .cloned()
            .ok_or_else(|| Error::usage(format!("{path} is not in the snapshot")))?;
        if i + 1 < components.len() {
            let subtree = node
                .subtree
                .filter(|_| node.is_dir())
                .ok_or_else(|| Error::usage(format!("{path}: {name} is not a directory")))?;
            tree = repo.read_tree(&subtree)?;
        }
        found = Some(node);
    }
    Ok(found)
}

struct FileJob {
    path: PathBuf,
    node: Node,
}

struct Restorer<'a> {
    repo: &'a Repository,
    options: &'a RestoreOptions,
    includes: Option<GlobSet>,
    files: Vec<FileJob>,
    /// Directories with the node whose metadata they get at the end.
    dirs: Vec<(PathBuf, Node)>,
    /// Hardlinked nodes after the first of their group: (path, first path).
    links: Vec<(PathBuf, Node, PathBuf)>,
    first_of_link: HashMap<(u64, u64), PathBuf>,
    report: RestoreReport,
}

/// Restores `path` of the snapshot whose root tree is `root` into `target`:
/// a directory's contents go into `target`, a file goes to `target/<name>`.
pub fn restore(
    repo: &Repository,
    root: &crate::repo::Id,
    path: &str,
    target: &Path,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let includes = if options.includes.is_empty() {
        None
    } else {
        let mut builder = GlobSetBuilder::new();
        for pattern in &options.includes {
            builder.add(
                Glob::new(pattern)
                    .map_err(|e| Error::usage(format!("bad --include '{pattern}': {e}")))?,
            );
        }
        Some(
            builder
                .build()
                .map_err(|e| Error::usage(format!("bad --include: {e}")))?,
        )
    };
    create_target(target)?;
    let mut restorer = Restorer {
        repo,
        options,
        includes,
        files: Vec::new(),
        dirs: Vec::new(),
        links: Vec::new(),
        first_of_link: HashMap::new(),
        report: RestoreReport::default(),
    };
    let snapshot_path = format!("/{}", path.trim_matches('/'));
    let start = find_node(repo, root, path)?;
    crate::tree::with_deep_stack(|| -> Result<()> {
        match start {
            None => {
                let tree = repo.read_tree(root)?;
                restorer.plan_tree(&tree, target, "")?;
            }
            Some(node) if node.is_dir() => {
                let tree = repo.read_tree(&node.subtree.unwrap_or_default())?;
                restorer.plan_tree(&tree, target, snapshot_path.trim_end_matches('/'))?;
                restorer.dirs.push((target.to_path_buf(), node));
            }
            Some(node) => {
                let parent = snapshot_path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                restorer.plan_node(node, target, parent)?;
            }
        }
        Ok(())
    })?;
    restorer.run()
}

fn create_target(target: &Path) -> Result<()> {
    std::fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("cannot create the target {}", target.display()), e))?;
    Ok(())
}

impl Restorer<'_> {
    fn included(&self, snapshot_path: &str, node: &Node) -> bool {
        let Some(globs) = &self.includes else {
            return true;
        };
        // A directory is walked if it may contain a match; it is created then too.
        globs.is_match(snapshot_path)
            || node.is_dir()
            || Path::new(snapshot_path)
                .ancestors()
                .any(|a| globs.is_match(a))
    }

    /// Creates the directories and queues the files of a tree, depth first.
    fn plan_tree(&mut self, tree: &Tree, dir: &Path, snapshot_dir: &str) -> Result<()> {
        for node in &tree.nodes {
            self.plan_node(node.clone(), dir, snapshot_dir)?;
        }
        Ok(())
    }

    fn plan_node(&mut self, node: Node, dir: &Path, snapshot_dir: &str) -> Result<()> {
        let snapshot_path = format!("{snapshot_dir}/{}", node.name_lossy());
        if !node.name_is_safe() {
            self.report.errors.push(format!(
                "refusing the entry {:?} in {}: a name must not be empty, '.', '..', or contain '/' or NUL",
                String::from_utf8_lossy(&node.name),
                if snapshot_dir.is_empty() { "/" } else { snapshot_dir }
            ));
            return Ok(());
        }
        if !self.included(&snapshot_path, &node) {
            return Ok(());
        }
        if node.is_dir() && snapshot_path.matches('/').count() > crate::tree::MAX_DEPTH {
            self.report.errors.push(format!(
                "refusing a directory nested deeper than {} levels: the snapshot is malformed",
                crate::tree::MAX_DEPTH
            ));
            return Ok(());
        }
        let path = dir.join(OsStr::from_bytes(&node.name));
        match node.kind {
            NodeKind::Dir => {
                if let Err(e) = make_dir(&path) {
                    self.report.errors.push(e.to_string());
                    return Ok(());
                }
                self.report.dirs += 1;
                let subtree = match node.subtree {
                    Some(id) => self.repo.read_tree(&id),
                    None => Ok(Tree::default()),
                };
                match subtree {
                    Ok(tree) => self.plan_tree(&tree, &path, &snapshot_path)?,
                    Err(e) => self
                        .report
                        .errors
                        .push(format!("{snapshot_path}: cannot read its contents: {e}")),
                }
                self.dirs.push((path, node));
            }
            _ if node.is_hardlinked() => {
                let key = (node.device, node.inode);
                match self.first_of_link.get(&key) {
                    Some(first) => self.links.push((path, node, first.clone())),
                    None => {
                        self.first_of_link.insert(key, path.clone());
                        self.plan_leaf(path, node);
                    }
                }
            }
            _ => self.plan_leaf(path, node),
        }
        Ok(())
    }

    fn plan_leaf(&mut self, path: PathBuf, node: Node) {
        if node.kind == NodeKind::File {
            self.files.push(FileJob { path, node });
        } else {
            self.report.other += 1;
            if let Err(e) = make_room(&path)
                .and_then(|_| metadata::create_special(&path, &node))
                .and_then(|_| metadata::apply(&path, &node))
            {
                self.report.errors.push(e.to_string());
            }
        }
    }

    fn run(mut self) -> Result<RestoreReport> {
        let threads = if self.options.threads > 0 {
            self.options.threads
        } else {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2)
                * 2
        };
        let total: u64 = self.files.iter().map(|f| f.node.size).sum();
        let progress = if self.options.show_progress {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap(),
            );
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        // Large files first, so one big file does not finish alone at the end.
        self.files
            .sort_by_key(|job| std::cmp::Reverse(job.node.size));
        let next = AtomicUsize::new(0);
        let bytes = AtomicU64::new(0);
        let verified = AtomicU64::new(0);
        let errors = Mutex::new(Vec::new());
        let failed_paths = Mutex::new(std::collections::HashSet::new());
        std::thread::scope(|scope| {
            for _ in 0..threads.min(self.files.len().max(1)) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Relaxed);
                    let Some(job) = self.files.get(i) else { break };
                    match self.restore_file(&job.path, &job.node) {
                        Ok(()) => {
                            bytes.fetch_add(job.node.size, Relaxed);
                            if self.options.verify {
                                verified.fetch_add(1, Relaxed);
                            }
                        }
                        Err(e) => {
                            let _ = std::fs::remove_file(&job.path);
                            failed_paths.lock().unwrap().insert(job.path.clone());
                            errors.lock().unwrap().push(e.to_string());
                        }
                    }
                    progress.inc(job.node.size);
                });
            }
        });
        progress.finish_and_clear();
        self.report.files += self.files.len() as u64;
        self.report.bytes = bytes.into_inner();
        self.report.verified = verified.into_inner();
        self.report.errors.extend(errors.into_inner().unwrap());
        let failed_paths = failed_paths.into_inner().unwrap();
        for (path, node, first) in std::mem::take(&mut self.links) {
            if failed_paths.contains(&first) {
                self.report.errors.push(format!(
                    "{}: not linked, its first link {} failed",
                    path.display(),
                    first.display()
                ));
                continue;
            }
            match make_room(&path).and_then(|_| {
                std::fs::hard_link(&first, &path)
                    .map_err(|e| Error::io(format!("cannot link {}", path.display()), e))
            }) {
                Ok(()) => self.report.files += u64::from(node.kind == NodeKind::File),
                Err(e) => self.report.errors.push(e.to_string()),
            }
        }
        // Deepest first, so that setting a directory's times is the last touch.
        for (path, node) in self.dirs.iter().rev() {
            if let Err(e) = metadata::apply(path, node) {
                self.report.errors.push(e.to_string());
            }
        }
        Ok(self.report)
    }

    fn restore_file(&self, path: &Path, node: &Node) -> Result<()> {
        make_room(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        let write_err = |e| Error::io(format!("cannot write {}", path.display()), e);
        let mut offset = 0u64;
        for extent in &node.content {
            if let Extent::Data { id, .. } = extent {
                let data = self
                    .repo
                    .read_blob(id)
                    .map_err(|e| e.context(format!("{} not restored", path.display())))?;
                file.write_all_at(&data, offset).map_err(write_err)?;
            }
            offset += extent.len();
        }
        file.set_len(node.size.max(offset)).map_err(write_err)?;
        if self.options.verify {
            self.verify_file(&file, path, node)?;
        }
        drop(file);
        metadata::apply(path, node)
    }

    /// Reads back what was written and checks every chunk against its id.
    fn verify_file(&self, file: &File, path: &Path, node: &Node) -> Result<()> {
        let read_err = |e| Error::io(format!("cannot re-read {}", path.display()), e);
        let mut offset = 0u64;
        for extent in &node.content {
            let ok = match extent {
                Extent::Data { id, len } => {
                    let mut buf = vec![0u8; *len as usize];
                    file.read_exact_at(&mut buf, offset).map_err(read_err)?;
                    self.repo.keys().blob_id(&buf) == *id
                }
                Extent::Hole { len } => reads_as_zeros(file, offset, *len).map_err(read_err)?,
            };
            if !ok {
                return Err(Error::corrupt(format!(
                    "{}: bytes {offset}..{} differ from the snapshot after writing",
                    path.display(),
                    offset + extent.len()
                )));
            }
            offset += extent.len();
        }
        Ok(())
    }
}

/// Whether `len` bytes at `offset` read as zeros. Holes are skipped with
/// SEEK_DATA instead of read, and data is read in bounded pieces, so that a
/// file with a terabyte hole costs neither a terabyte of memory nor of reads.
fn reads_as_zeros(file: &File, offset: u64, len: u64) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let end = offset + len;
    let mut pos = offset;
    let mut buf = vec![0u8; len.min(1 << 20) as usize];
    while pos < end {
        // SAFETY: lseek on a valid descriptor has no memory effects.
        let data = unsafe { libc::lseek(file.as_raw_fd(), pos as libc::off_t, libc::SEEK_DATA) };
        if data >= 0 {
            pos = data as u64;
            if pos >= end {
                return Ok(true);
            }
        } else {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENXIO) => return Ok(true), // only a hole is left
                Some(libc::EINVAL) => {}              // no SEEK_DATA: read it all
                _ => return Err(err),
            }
        }
        let n = (end - pos).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], pos)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// Makes room for a file, link or special entry at `path`: whatever
/// non-directory an earlier restore into the same target left there is
/// removed (unlink never follows a symlink, and the new entry is then
/// created, never written through an old one). A directory is left alone,
/// so creating the entry fails with an error.
fn make_room(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_dir() => std::fs::remove_file(path)
            .map_err(|e| Error::io(format!("cannot replace {}", path.display()), e)),
        _ => Ok(()),
    }
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
