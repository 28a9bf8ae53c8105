//! Reading the source filesystem: an entry's metadata as a tree node, and a
//! file's content as chunks and holes.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::tree::{Node, NodeKind, Timestamp};

/// Caches uid and gid names: a tree of 60,000 files has a handful of owners.
#[derive(Default)]
pub struct OwnerNames {
    users: Mutex<HashMap<u32, Option<String>>>,
    groups: Mutex<HashMap<u32, Option<String>>>,
}

impl OwnerNames {
    pub fn user(&self, uid: u32) -> Option<String> {
        self.users
            .lock()
            .unwrap()
            .entry(uid)
            .or_insert_with(|| crate::host::user_name(uid))
            .clone()
    }

    pub fn group(&self, gid: u32) -> Option<String> {
        self.groups
            .lock()
            .unwrap()
            .entry(gid)
            .or_insert_with(|| group_name(gid))
            .clone()
    }
}

fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: all pointers are valid for the call; `result` tells if `grp` was filled.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result);
        if result.is_null() {
            return None;
        }
        Some(CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned())
    }
}

fn kind_of(meta: &Metadata) -> NodeKind {
    let ft = meta.file_type();
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else if ft.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

/// A node with everything but content and subtree, from `lstat` data.
/// Extended attributes are read only if `with_xattrs` (where they are known
/// otherwise, that saves a system call per entry).
pub fn node_from_stat(
    name: &[u8],
    path: &Path,
    meta: &Metadata,
    owners: &OwnerNames,
    with_xattrs: bool,
) -> Result<Node> {
    let kind = kind_of(meta);
    let link_target = if kind == NodeKind::Symlink {
        std::fs::read_link(path)
            .map_err(|e| Error::io(format!("cannot read the symlink {}", path.display()), e))?
            .as_os_str()
            .as_bytes()
            .to_vec()
    } else {
        Vec::new()
    };
    Ok(Node {
        name: name.to_vec(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        user: owners.user(meta.uid()),
        group: owners.group(meta.gid()),
        mtime: Timestamp {
            sec: meta.mtime(),
            nsec: meta.mtime_nsec() as u32,
        },
        atime: Timestamp {
            sec: meta.atime(),
            nsec: meta.atime_nsec() as u32,
        },
        ctime: Timestamp {
            sec: meta.ctime(),
            nsec: meta.ctime_nsec() as u32,
        },
        size: if kind == NodeKind::File {
            meta.len()
        } else {
            0
        },
        device: meta.dev(),
        inode: meta.ino(),
        links: meta.nlink(),
        rdev: meta.rdev(),
        link_target,
        xattrs: if with_xattrs {
            read_xattrs(path)
        } else {
            Vec::new()
        },
        content: Vec::new(),
        subtree: None,
    })
}

/// Extended attributes, without following symlinks. A filesystem without
/// xattr support simply has none.
fn read_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut attrs: Vec<_> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten()?;
            Some((name.as_bytes().to_vec(), value))
        })
        .collect();
    attrs.sort();
    attrs
}

/// The names in a directory, sorted, read without updating its access time
/// where allowed (as files are): a backup leaves the tree as it found it, so
/// the next backup finds unchanged directories unchanged and reuses their trees.
pub fn read_dir_names(path: &Path) -> std::io::Result<NameList> {
    use std::io::Error as IoError;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| IoError::from(std::io::ErrorKind::InvalidInput))?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: c is a valid NUL-terminated path; the DIR stream is created,
    // read and closed here, and every pointer readdir returns is used before
    // the next call.
    unsafe {
        let mut fd = libc::open(c.as_ptr(), flags | libc::O_NOATIME);
        if fd < 0 && IoError::last_os_error().raw_os_error() == Some(libc::EPERM) {
            fd = libc::open(c.as_ptr(), flags);
        }
        if fd < 0 {
            return Err(IoError::last_os_error());
        }
        let dir = libc::fdopendir(fd);
        if dir.is_null() {
            let err = IoError::last_os_error();
            libc::close(fd);
            return Err(err);
        }
        let mut names = NameList::default();
        let result = loop {
            *libc::__errno_location() = 0;
            let entry = libc::readdir(dir);
            if entry.is_null() {
                let err = IoError::last_os_error();
                break if err.raw_os_error() == Some(0) {
                    Ok(())
                } else {
                    Err(err)
                };
            }
            let name = CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes();
            if name != b"." && name != b".." {
                names.push(name);
            }
        };
        libc::closedir(dir);
        result?;
        names.sort();
        Ok(names)
    }
}

/// A directory's names, in one buffer: a million names cost their bytes
/// and 8 bytes each, not an allocation each (a list of `Vec`s took about
/// 56 bytes a name, and a backup holds two lists of the directory it is
/// in: the walker's and a metadata warmer's).
#[derive(Default)]
pub struct NameList {
    bytes: Vec<u8>,
    /// Each name's start in `bytes` (shifted left by 24) and length: a
    /// name read from a directory is at most 255 bytes, and one given on
    /// the command line at most 128 KiB (Linux's longest argument).
    spans: Vec<u64>,
}

impl NameList {
    pub fn push(&mut self, name: &[u8]) {
        assert!(name.len() < 1 << 24, "a name is shorter than an argument");
        self.spans
            .push(((self.bytes.len() as u64) << 24) | name.len() as u64);
        self.bytes.extend_from_slice(name);
    }

    fn name(&self, span: u64) -> &[u8] {
        let start = (span >> 24) as usize;
        &self.bytes[start..start + (span & 0xff_ffff) as usize]
    }

    /// Sorts the names bytewise, as trees list them.
    pub fn sort(&mut self) {
        let mut spans = std::mem::take(&mut self.spans);
        spans.sort_unstable_by(|a, b| self.name(*a).cmp(self.name(*b)));
        self.spans = spans;
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans.iter().map(|span| self.name(*span))
    }
}

impl<'a> FromIterator<&'a [u8]> for NameList {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(names: I) -> NameList {
        let mut list = NameList::default();
        for name in names {
            list.push(name);
        }
        list
    }
}

/// Opens a source file without updating its access time where allowed.
pub fn open_source(path: &Path) -> std::io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path),
        other => other,
    }
}

/// The (offset, length) ranges of a file that hold data. A file that uses
/// fewer blocks than its size may have holes; only then are they looked for.
/// The whole file is `(0, u64::MAX)`, and the file's offset is then at 0.
pub fn data_regions(file: &File, meta: &Metadata) -> std::io::Result<Vec<(u64, u64)>> {
    let size = meta.len();
    if meta.blocks() * 512 >= size {
        return Ok(vec![(0, u64::MAX)]);
    }
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let mut regions = Vec::new();
    let mut pos = 0i64;
    while (pos as u64) < size {
        // SAFETY: lseek on a valid descriptor has no memory effects.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole remains
            }
            if err.raw_os_error() == Some(libc::EINVAL) {
                // No SEEK_DATA on this filesystem: the whole file, read from its start.
                let mut f = file;
                f.seek(SeekFrom::Start(0))?;
                return Ok(vec![(0, u64::MAX)]);
            }
            return Err(err);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let end = (hole as u64).min(size);
        if end > data as u64 {
            regions.push((data as u64, end - data as u64));
        }
        pos = hole;
    }
    Ok(regions)
}

/// Reads one region of a file: the last region of a file that is not sparse
/// runs to end of file, so a file that grows while it is read stays whole.
/// The whole file needs no seek: `data_regions` leaves the offset at 0 then
/// (looking for holes moves it).
pub fn region_reader(file: &File, offset: u64, length: u64) -> std::io::Result<impl Read + '_> {
    let mut f = file;
    if (offset, length) != (0, u64::MAX) {
        f.seek(SeekFrom::Start(offset))?;
    }
    Ok(f.take(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_list_sorts_bytewise_and_gives_each_name_back() {
        let long = vec![b'x'; 255];
        let names: [&[u8]; 6] = [b"b", b"\xff", &long, b"a b", b"a", b"B"];
        let mut list: NameList = names.iter().copied().collect();
        list.sort();
        let mut expected = names.to_vec();
        expected.sort();
        assert_eq!(list.iter().collect::<Vec<_>>(), expected);
        assert_eq!(list.len(), 6);
    }

    #[test]
    fn a_directory_is_listed_sorted_without_dots() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b", "a", "c"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names = read_dir_names(dir.path()).unwrap();
        assert_eq!(names.iter().collect::<Vec<_>>(), [b"a", b"b", b"c"]);
    }
}
