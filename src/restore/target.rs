//! The restore target, opened once: every operation of a restore goes
//! through this type, relative to the target's directory descriptor, and
//! resolves beneath it through no symlink at all.
//!
//! Checking a path and then using it by name is a race a local user can win
//! (replace a directory by a symlink between the two), and a crafted
//! snapshot can plant a symlink and then name a path through it. So paths
//! are never used by name from the root: each is opened with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), which fails with `ELOOP` or
//! `EXDEV` instead of following a symlink or leaving the target, and what is
//! changed afterwards is changed on the opened descriptor (see
//! [`apply_metadata`]). The threat model is in `SECURITY.md`.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, Dev, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps, XattrFlags,
};

use crate::error::{Error, ErrorKind, Result};
use crate::tree::{Node, NodeKind, Timestamp};

/// Every lookup stays beneath the target and follows no symlink; a final
/// component that is a symlink is opened as the link itself (with `O_PATH |
/// O_NOFOLLOW`) or refused.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);

/// A directory into which a restore writes.
pub struct Target {
    /// `None` only in a dry run whose target does not exist yet: it then
    /// reads as an empty directory.
    root: Option<OwnedFd>,
    path: PathBuf,
}

impl Target {
    /// Opens the target directory. The target itself may be a symlink to a
    /// directory: the admin named it.
    pub fn open(path: &Path, dry_run: bool) -> Result<Target> {
        let opened = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let root = match opened {
            Ok(fd) => Some(fd),
            Err(rustix::io::Errno::NOENT) if dry_run => None,
            Err(e) => {
                let context = format!("cannot open the target {}", path.display());
                return Err(Error::io(context, e.into()));
            }
        };
        Ok(Target {
            root,
            path: path.to_path_buf(),
        })
    }

    /// The full path of `rel`, for messages.
    pub fn show(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    fn open_beneath(&self, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let Some(root) = &self.root else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        let flags = flags | OFlags::CLOEXEC;
        loop {
            match rustix::fs::openat2(root, rel, flags, mode, BENEATH) {
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => continue,
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// Opens `rel` to read it without moving its access time where we may
    /// (a dry run, or a comparison, must leave the target as it was).
    fn open_to_read(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        match self.open_beneath(rel, flags | OFlags::NOATIME, Mode::empty()) {
            // O_NOATIME is for the file's owner (and root) only.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                self.open_beneath(rel, flags, Mode::empty())
            }
            other => other,
        }
    }

    /// A handle on the entry itself (a symlink is not followed), good for
    /// `fstat` and for the metadata calls of [`apply_metadata`].
    pub fn handle(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.open_beneath(rel, OFlags::PATH | OFlags::NOFOLLOW, Mode::empty())
    }

    /// `lstat` of an entry.
    pub fn lstat(&self, rel: &Path) -> io::Result<Stat> {
        self.inspect(rel).map(|(_, stat)| stat)
    }

    /// A handle on an entry and its `lstat`: what is then checked or changed
    /// through the handle is the entry that was inspected.
    pub fn inspect(&self, rel: &Path) -> io::Result<(OwnedFd, Stat)> {
        let handle = self.handle(rel)?;
        let stat = rustix::fs::fstat(&handle)?;
        Ok((handle, stat))
    }

    /// The directory that holds `rel`, as a descriptor, and `rel`'s name in it.
    fn parent<'a>(&self, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = self.open_beneath(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((dir, name))
    }

    /// Creates a regular file that does not exist yet, readable and writable
    /// by the owner alone until its metadata is applied.
    pub fn create_file(&self, rel: &Path) -> io::Result<File> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let fd = self.open_beneath(rel, flags, Mode::from_raw_mode(0o600))?;
        Ok(File::from(fd))
    }

    /// Opens an existing regular file for reading (never a symlink, fifo or device).
    pub fn open_file(&self, rel: &Path) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK;
        let file = File::from(self.open_to_read(rel, flags)?);
        if !file.metadata()?.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(file)
    }

    /// Creates a directory (mode 0700 until its metadata is applied).
    pub fn create_dir(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)).map_err(io::Error::from)
    }

    /// Creates a symlink, fifo, device node or socket placeholder.
    pub fn create_special(&self, rel: &Path, node: &Node) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        let mknod = |kind: FileType, dev: Dev| {
            rustix::fs::mknodat(&dir, name, kind, Mode::from_raw_mode(0o600), dev)
        };
        match node.kind {
            NodeKind::Symlink => {
                rustix::fs::symlinkat(OsStr::from_bytes(&node.link_target), &dir, name)
            }
            NodeKind::Fifo => mknod(FileType::Fifo, 0),
            NodeKind::CharDevice => mknod(FileType::CharacterDevice, node.rdev as Dev),
            NodeKind::BlockDevice => mknod(FileType::BlockDevice, node.rdev as Dev),
            // A socket cannot be restored live; an empty node keeps its place and metadata.
            NodeKind::Socket => mknod(FileType::Socket, 0),
            NodeKind::File | NodeKind::Dir => Err(rustix::io::Errno::INVAL),
        }
        .map_err(io::Error::from)
    }

    /// Makes `rel` another name of the file at `existing` (both beneath the target).
    pub fn hard_link(&self, existing: &Path, rel: &Path) -> io::Result<()> {
        let (from_dir, from_name) = self.parent(existing)?;
        let (to_dir, to_name) = self.parent(rel)?;
        // Without AT_SYMLINK_FOLLOW, linkat links a symlink itself, never its target.
        rustix::fs::linkat(&from_dir, from_name, &to_dir, to_name, AtFlags::empty())
            .map_err(io::Error::from)
    }

    /// The names in a directory, without `.` and `..`.
    pub fn list(&self, rel: &Path) -> io::Result<Vec<Vec<u8>>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
        list_names(self.open_to_read(rel, flags)?)
    }

    /// Removes whatever non-directory is at `rel`; a directory is removed
    /// with everything in it only if `recursive`, and is otherwise left in
    /// place. Nothing is followed: a symlink is removed, not its target.
    pub fn remove(&self, rel: &Path, recursive: bool) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        let stat = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(io::Error::from)
        } else if recursive {
            remove_tree_at(dir.as_fd(), name, 0)
        } else {
            Ok(())
        }
    }
}

/// Removes the directory at `path` with everything in it, following no
/// symlink below its parent (the scratch space of a restore test).
pub fn remove_dir_tree(path: &Path) -> io::Result<()> {
    let invalid = || io::Error::from_raw_os_error(libc::EINVAL);
    let name = path.file_name().ok_or_else(invalid)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let parent = rustix::fs::open(parent, flags, Mode::empty())?;
    remove_tree_at(parent.as_fd(), name, 0)
}

/// Deeper than any tree a restore creates (see `tree::MAX_DEPTH`); a
/// deeper local tree is refused rather than risking the stack.
const MAX_REMOVE_DEPTH: usize = 4096;

/// Removes the directory `name` in `parent` with everything in it, through
/// descriptors, never following a symlink. A directory that does not let
/// us in or write to it (restored with its snapshot mode, as non-root) is
/// opened up first; it is removed anyway.
fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<()> {
    if depth > MAX_REMOVE_DEPTH {
        return Err(io::Error::other(format!(
            "directories nested deeper than {MAX_REMOVE_DEPTH} levels"
        )));
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = || rustix::fs::openat(parent, name, flags, Mode::empty());
    let dir = match open() {
        Err(rustix::io::Errno::ACCESS) => {
            let handle =
                rustix::fs::openat(parent, name, OFlags::PATH | OFlags::NOFOLLOW, Mode::empty())?;
            rustix::fs::chmod(proc_path(handle.as_fd()), Mode::from_raw_mode(0o700))?;
            open()?
        }
        other => other?,
    };
    // Search and write permission on it, or nothing inside can be removed.
    let stat = rustix::fs::fstat(&dir)?;
    if stat.st_mode & 0o300 != 0o300 {
        let _ = rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o700));
    }
    for child in list_names(dir.try_clone()?)? {
        let child = OsStr::from_bytes(&child);
        match rustix::fs::unlinkat(&dir, child, AtFlags::empty()) {
            Ok(()) => {}
            Err(rustix::io::Errno::ISDIR) => remove_tree_at(dir.as_fd(), child, depth + 1)?,
            Err(e) => return Err(e.into()),
        }
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(io::Error::from)
}

fn list_names(dir: OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::new(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// `/proc/self/fd/N`: through it, calls that take only a path (chmod,
/// setxattr and friends) reach exactly the inode an `O_PATH` descriptor
/// holds, whatever has since been renamed or replaced by name.
fn proc_path(fd: BorrowedFd<'_>) -> CString {
    use std::os::fd::AsRawFd;
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

fn timespec(t: &Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec.min(999_999_999).into(),
    }
}

/// Checks that the entry behind `fd` is of the node's kind: an entry
/// replaced between its creation and here (by a user who can write its
/// directory) is refused, not given the snapshot's owner and mode.
pub fn check_kind(fd: BorrowedFd<'_>, node: &Node, shown: &Path) -> Result<Stat> {
    let stat = rustix::fs::fstat(fd)
        .map_err(|e| Error::io(format!("cannot inspect {}", shown.display()), e.into()))?;
    let expected = match node.kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::Fifo,
        NodeKind::CharDevice => FileType::CharacterDevice,
        NodeKind::BlockDevice => FileType::BlockDevice,
        NodeKind::Socket => FileType::Socket,
    };
    if FileType::from_raw_mode(stat.st_mode) != expected {
        return Err(Error::new(
            ErrorKind::Unsafe,
            format!(
                "{} was replaced by something else while it was restored; its metadata was not set",
                shown.display()
            ),
        ));
    }
    Ok(stat)
}

fn metadata_error(what: &str, shown: &Path, e: rustix::io::Errno) -> Error {
    Error::io(format!("cannot {what} {}", shown.display()), e.into())
}

/// Gives the entry behind `fd` (an `O_PATH` handle from
/// [`Target::handle`], or any open descriptor) the node's owner (as root),
/// mode, xattrs and times, in that order: chown clears setuid bits, and
/// every change before the times would move them. Every call acts on the
/// descriptor's inode, never on a name.
pub fn apply_metadata(fd: BorrowedFd<'_>, node: &Node, shown: &Path) -> Result<()> {
    apply(fd, false, node, shown)
}

/// [`apply_metadata`] on a file open for reading or writing: its mode and
/// xattrs are set on the descriptor itself (`fchmod`, `fsetxattr`), not
/// through `/proc/self/fd`, whose lookup costs more than the call.
pub fn apply_open_metadata(file: &File, node: &Node, shown: &Path) -> Result<()> {
    apply(file.as_fd(), true, node, shown)
}

/// `open`: `fd` is an open file, not an `O_PATH` handle.
fn apply(fd: BorrowedFd<'_>, open: bool, node: &Node, shown: &Path) -> Result<()> {
    let is_link = node.kind == NodeKind::Symlink;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        rustix::fs::chownat(
            fd,
            c"",
            Some(rustix::fs::Uid::from_raw(node.uid)),
            Some(rustix::fs::Gid::from_raw(node.gid)),
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| metadata_error("set the owner of", shown, e))?;
    }
    let proc = (!open).then(|| proc_path(fd));
    if !is_link {
        // Symlinks have no mode of their own on Linux.
        let mode = Mode::from_raw_mode(node.mode);
        match &proc {
            Some(proc) => rustix::fs::chmod(proc.as_c_str(), mode),
            None => rustix::fs::fchmod(fd, mode),
        }
        .map_err(|e| metadata_error("set the mode of", shown, e))?;
    }
    for (name, value) in &node.xattrs {
        if let Err(e) = set_xattr(fd, proc.as_deref(), name, value) {
            crate::log::warn(&format!(
                "cannot restore the extended attribute {} of {}: {}",
                String::from_utf8_lossy(name),
                shown.display(),
                io::Error::from(e)
            ));
        }
    }
    let times = Timestamps {
        last_access: timespec(&node.atime),
        last_modification: timespec(&node.mtime),
    };
    rustix::fs::utimensat(fd, c"", &times, AtFlags::EMPTY_PATH)
        .map_err(|e| metadata_error("set the times of", shown, e))
}

/// Sets an xattr through `proc` (for an `O_PATH` handle) or on `fd` itself.
fn set_xattr(
    fd: BorrowedFd<'_>,
    proc: Option<&CStr>,
    name: &[u8],
    value: &[u8],
) -> rustix::io::Result<()> {
    let name = CString::new(name).map_err(|_| rustix::io::Errno::INVAL)?;
    match proc {
        Some(proc) => rustix::fs::setxattr(proc, name.as_c_str(), value, XattrFlags::empty()),
        None => rustix::fs::fsetxattr(fd, name.as_c_str(), value, XattrFlags::empty()),
    }
}

/// Removes the extended attributes of an entry that was already there
/// which the node does not have, so that it ends up with the snapshot's.
/// The `security.` namespace is the security module's (SELinux labels and
/// the like), and is left alone.
pub fn remove_other_xattrs(fd: BorrowedFd<'_>, node: &Node, shown: &Path) -> Result<()> {
    let proc = proc_path(fd);
    let list_error = |e: rustix::io::Errno| {
        Error::io(
            format!("cannot list the extended attributes of {}", shown.display()),
            e.into(),
        )
    };
    let list = loop {
        let size = match rustix::fs::listxattr_query(proc.as_c_str()) {
            Ok(size) => size,
            Err(rustix::io::Errno::OPNOTSUPP) => return Ok(()),
            Err(e) => return Err(list_error(e)),
        };
        let mut list = vec![0u8; size];
        match rustix::fs::listxattr(proc.as_c_str(), &mut list[..]) {
            Ok(len) => {
                list.truncate(len);
                break list;
            }
            // An attribute was added since the size was asked for.
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(list_error(e)),
        }
    };
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"security.") || node.xattrs.iter().any(|(n, _)| n == name) {
            continue;
        }
        let c_name = CString::new(name).expect("split on NUL");
        rustix::fs::removexattr(proc.as_c_str(), c_name.as_c_str()).map_err(|e| {
            Error::io(
                format!(
                    "cannot remove the extended attribute {} of {}",
                    String::from_utf8_lossy(name),
                    shown.display()
                ),
                e.into(),
            )
        })?;
    }
    Ok(())
}
