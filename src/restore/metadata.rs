//! Giving restored entries their recorded metadata: owner, mode, xattrs and
//! times, in that order (chown clears setuid bits, and every change before
//! the times would move mtime).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::tree::{Node, NodeKind, Timestamp};

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::usage(format!("{} contains a NUL byte", path.display())))
}

fn check(rc: libc::c_int, what: &str, path: &Path) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::io(
            format!("cannot {what} {}", path.display()),
            std::io::Error::last_os_error(),
        ))
    }
}

/// Creates a symlink, fifo, device node or socket placeholder.
pub fn create_special(path: &Path, node: &Node) -> Result<()> {
    let c = c_path(path)?;
    match node.kind {
        NodeKind::Symlink => {
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&node.link_target), path)
                .map_err(|e| Error::io(format!("cannot create the symlink {}", path.display()), e))
        }
        NodeKind::Fifo => {
            // SAFETY: c is a valid NUL-terminated path.
            check(
                unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
                "create the fifo",
                path,
            )
        }
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            let kind = if node.kind == NodeKind::CharDevice {
                libc::S_IFCHR
            } else {
                libc::S_IFBLK
            };
            // SAFETY: as above.
            check(
                unsafe { libc::mknod(c.as_ptr(), kind | 0o600, node.rdev as libc::dev_t) },
                "create the device",
                path,
            )
        }
        NodeKind::Socket => {
            // A socket cannot be restored live; an empty node keeps its place and metadata.
            // SAFETY: as above.
            check(
                unsafe { libc::mknod(c.as_ptr(), libc::S_IFSOCK | 0o600, 0) },
                "create the socket",
                path,
            )
        }
        NodeKind::File | NodeKind::Dir => Ok(()),
    }
}

/// Removes the extended attributes of an entry that was already there
/// which the node does not have, so that it ends up with the snapshot's.
/// The `security.` namespace is the security module's (SELinux labels and
/// the like), and is left alone.
pub fn remove_other_xattrs(path: &Path, node: &Node) -> Result<()> {
    let names = xattr::list(path).map_err(|e| {
        Error::io(
            format!("cannot list the extended attributes of {}", path.display()),
            e,
        )
    })?;
    for name in names {
        let bytes = name.as_bytes();
        if bytes.starts_with(b"security.") || node.xattrs.iter().any(|(n, _)| n == bytes) {
            continue;
        }
        xattr::remove(path, &name).map_err(|e| {
            Error::io(
                format!(
                    "cannot remove the extended attribute {} of {}",
                    name.to_string_lossy(),
                    path.display()
                ),
                e,
            )
        })?;
    }
    Ok(())
}

fn timespec(t: &Timestamp) -> libc::timespec {
    libc::timespec {
        tv_sec: t.sec as libc::time_t,
        tv_nsec: t.nsec.min(999_999_999) as libc::c_long,
    }
}

/// Applies owner (when running as root), mode, xattrs and times.
pub fn apply(path: &Path, node: &Node) -> Result<()> {
    let c = c_path(path)?;
    let is_link = node.kind == NodeKind::Symlink;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // SAFETY: c is a valid path; lchown does not follow symlinks.
        check(
            unsafe { libc::lchown(c.as_ptr(), node.uid, node.gid) },
            "set the owner of",
            path,
        )?;
    }
    if !is_link {
        // SAFETY: as above; the entry is not a symlink, which we created ourselves.
        check(
            unsafe { libc::chmod(c.as_ptr(), node.mode as libc::mode_t) },
            "set the mode of",
            path,
        )?;
    }
    for (name, value) in &node.xattrs {
        if let Err(e) = xattr::set(path, std::ffi::OsStr::from_bytes(name), value) {
            crate::log::warn(&format!(
                "cannot restore the extended attribute {} of {}: {e}",
                String::from_utf8_lossy(name),
                path.display()
            ));
        }
    }
    let times = [timespec(&node.atime), timespec(&node.mtime)];
    // SAFETY: c is valid, times has two entries as utimensat requires.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(rc, "set the times of", path)
}
