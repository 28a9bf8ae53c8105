//! Attributes: what `stat` shows of each kind of inode, and how long the
//! kernel may keep it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::inodes::Ino;
use crate::tree::{Extent, Node, NodeKind, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: EntryKind,
    pub size: u64,
    /// 512-byte blocks holding data: holes of sparse files hold none.
    pub blocks: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device number in the kernel's 32-bit encoding.
    pub rdev: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub caching: Caching,
}

/// How long the kernel may trust what it was told about an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// Content of snapshots never changes: the kernel may cache it for long.
    Forever,
    /// The top levels change when backups finish or snapshots are forgotten.
    Briefly,
    /// `.rewind/status`: the kernel must look it up at every open.
    Never,
}

impl Attr {
    /// A directory above the snapshots' content, dated `time`.
    fn virtual_dir(ino: Ino, perm: u16, time: SystemTime) -> Attr {
        Attr {
            ino,
            kind: EntryKind::Dir,
            size: 0,
            blocks: 0,
            perm,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            atime: time,
            mtime: time,
            ctime: time,
            caching: Caching::Briefly,
        }
    }

    /// The root and the directories beside the snapshots (`hosts/`...):
    /// their listings last `changed` when the snapshots shown did.
    pub fn top_dir(ino: Ino, mounted_at: SystemTime, changed: SystemTime) -> Attr {
        Attr {
            mtime: changed,
            ctime: changed,
            ..Attr::virtual_dir(ino, 0o555, mounted_at)
        }
    }

    /// A snapshot's `@<time>` directory, dated when the snapshot was taken.
    pub fn snapshot_root(ino: Ino, taken: SystemTime) -> Attr {
        Attr {
            caching: Caching::Forever,
            ..Attr::virtual_dir(ino, 0o755, taken)
        }
    }

    /// A symbolic link above the snapshots (`latest`, `ids/<id>`).
    pub fn link(ino: Ino, target_len: usize, mounted_at: SystemTime) -> Attr {
        Attr {
            kind: EntryKind::Symlink,
            size: target_len as u64,
            perm: 0o777,
            nlink: 1,
            ..Attr::virtual_dir(ino, 0o777, mounted_at)
        }
    }

    /// `.rewind/status`, as a text of `len` bytes `made` then.
    pub fn status_file(ino: Ino, len: usize, made: SystemTime, mounted_at: SystemTime) -> Attr {
        // A new mtime for a new text makes the kernel drop the one it cached.
        Attr {
            kind: EntryKind::File,
            size: len as u64,
            perm: 0o444,
            nlink: 1,
            mtime: made,
            ctime: made,
            caching: Caching::Never,
            ..Attr::virtual_dir(ino, 0o444, mounted_at)
        }
    }

    /// An entry of a snapshot, as it was backed up.
    pub fn entry(ino: Ino, node: &Node) -> Attr {
        let size = match node.kind {
            NodeKind::Symlink => node.link_target.len() as u64,
            NodeKind::File => node.size,
            _ => 0,
        };
        let data: u64 = node
            .content
            .iter()
            .filter(|e| matches!(e, Extent::Data { .. }))
            .map(Extent::len)
            .sum();
        Attr {
            ino,
            kind: entry_kind(node.kind),
            size,
            blocks: data.div_ceil(512),
            perm: (node.mode & 0o7777) as u16,
            nlink: if node.is_dir() {
                1
            } else {
                node.links.clamp(1, u32::MAX as u64) as u32
            },
            uid: node.uid,
            gid: node.gid,
            rdev: kernel_rdev(node.rdev),
            atime: system_time(&node.atime),
            mtime: system_time(&node.mtime),
            ctime: system_time(&node.ctime),
            caching: Caching::Forever,
        }
    }
}

pub fn entry_kind(kind: NodeKind) -> EntryKind {
    match kind {
        NodeKind::File => EntryKind::File,
        NodeKind::Dir => EntryKind::Dir,
        NodeKind::Symlink => EntryKind::Symlink,
        NodeKind::Fifo => EntryKind::Fifo,
        NodeKind::CharDevice => EntryKind::CharDevice,
        NodeKind::BlockDevice => EntryKind::BlockDevice,
        NodeKind::Socket => EntryKind::Socket,
    }
}

fn system_time(t: &Timestamp) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec.min(999_999_999))
    } else {
        UNIX_EPOCH - Duration::new(t.sec.unsigned_abs(), 0)
            + Duration::new(0, t.nsec.min(999_999_999))
    }
}

fn kernel_rdev(rdev: u64) -> u32 {
    let (major, minor) = (
        libc::major(rdev as libc::dev_t),
        libc::minor(rdev as libc::dev_t),
    );
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}
