//! Making files of every kind with the system calls that do exactly one
//! thing (no following symlinks), reading trees back without moving their
//! access times, and temporary directories with canonical paths.

use std::ffi::{CStr, CString, OsStr};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A temporary directory with a canonical path (snapshot paths are compared).
pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

#[track_caller]
fn check_rc(rc: libc::c_int, what: &str, path: &Path) {
    assert_eq!(
        rc,
        0,
        "{what} {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

pub fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let ts = |(sec, nsec): (i64, i64)| libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    let times = [ts(atime), ts(mtime)];
    let c = cpath(path);
    // SAFETY: valid path, two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check_rc(rc, "utimensat", path);
}

pub fn lchown(path: &Path, uid: u32, gid: u32) {
    let c = cpath(path);
    // SAFETY: valid path.
    check_rc(
        unsafe { libc::lchown(c.as_ptr(), uid, gid) },
        "lchown",
        path,
    );
}

pub fn chmod(path: &Path, mode: u32) {
    let c = cpath(path);
    // SAFETY: valid path.
    check_rc(
        unsafe { libc::chmod(c.as_ptr(), mode as libc::mode_t) },
        "chmod",
        path,
    );
}

pub fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    let c = cpath(path);
    // SAFETY: valid path.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o640, libc::makedev(major, minor)) };
    check_rc(rc, "mknod", path);
}

pub fn mkfifo(path: &Path) {
    let c = cpath(path);
    // SAFETY: valid path.
    check_rc(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, "mkfifo", path);
}

/// A hard link that does not follow a symlink at `from`.
pub fn hard_link(from: &Path, to: &Path) {
    let (a, b) = (cpath(from), cpath(to));
    // SAFETY: valid paths.
    let rc = unsafe { libc::linkat(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), 0) };
    check_rc(rc, "link", to);
}

/// Writes a file, making its parent directories first.
pub fn write(path: &Path, data: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Writes `data` at `offset` without truncating (keeps the inode and holes).
pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(data, offset).unwrap();
}

pub fn mkdirs(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
}

pub fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

/// The names in a directory, read without updating its access time.
pub fn list_dir(path: &Path) -> Vec<Vec<u8>> {
    let c = cpath(path);
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut names = Vec::new();
    // SAFETY: valid path; the DIR stream is used and closed here only.
    unsafe {
        let mut fd = libc::open(c.as_ptr(), flags | libc::O_NOATIME);
        if fd < 0 {
            fd = libc::open(c.as_ptr(), flags);
        }
        assert!(
            fd >= 0,
            "open {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        let dir = libc::fdopendir(fd);
        assert!(!dir.is_null());
        loop {
            let entry = libc::readdir(dir);
            if entry.is_null() {
                break;
            }
            let name = CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        libc::closedir(dir);
    }
    names.sort();
    names
}

/// A file's content, read without updating its access time.
pub fn read_noatime(path: &Path) -> Vec<u8> {
    let open = |flags| {
        OpenOptions::new()
            .read(true)
            .custom_flags(flags | libc::O_NOFOLLOW)
            .open(path)
    };
    let mut file = open(libc::O_NOATIME)
        .or_else(|_| open(0))
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut data = Vec::new();
    file.read_to_end(&mut data).unwrap();
    data
}

/// Every file under a directory (recursively), for "nothing else was written" checks.
pub fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        out.push(p.to_path_buf());
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
            for name in list_dir(p) {
                walk(&p.join(OsStr::from_bytes(&name)), out);
            }
        }
    }
    walk(root, &mut out);
    out
}

/// Every path under `root` (not `root` itself), parents before children.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    all_paths(root).split_off(1)
}
