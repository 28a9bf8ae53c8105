//! Manifests: every entry of a tree with what a restore must reproduce
//! (lstat, extended attributes, link target, content), and the differences
//! between two of them.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::files::{list_dir, read_noatime, set_times};

/// Everything about one entry that a restore must reproduce (and, apart
/// from `ino` and `blocks`, is compared).
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// `st_mode`: file type and every permission bit.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// None for directories, whose size depends on the filesystem.
    pub size: Option<u64>,
    pub nlink: u64,
    pub rdev: u64,
    pub mtime: (i64, i64),
    pub atime: (i64, i64),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub link: Option<Vec<u8>>,
    /// BLAKE3 of a regular file's content.
    pub content: Option<[u8; 32]>,
    pub ino: u64,
    pub blocks: u64,
}

impl Meta {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// Every entry under a root, by path relative to it (the root is "").
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub entries: BTreeMap<Vec<u8>, Meta>,
}

impl Manifest {
    /// Walks `root` in pre-order, taking each entry's lstat before anything
    /// reads it, and reading without updating access times where it can.
    pub fn of(root: &Path) -> Manifest {
        let mut m = Manifest::default();
        m.walk(root, Vec::new(), true);
        m
    }

    /// Like [`Manifest::of`] without reading file contents (`content` is None).
    pub fn of_metadata(root: &Path) -> Manifest {
        let mut m = Manifest::default();
        m.walk(root, Vec::new(), false);
        m
    }

    fn walk(&mut self, root: &Path, rel: Vec<u8>, contents: bool) {
        let path = join(root, &rel);
        let st = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let kind = st.mode() & libc::S_IFMT;
        let is_dir = kind == libc::S_IFDIR;
        let link = (kind == libc::S_IFLNK).then(|| {
            std::fs::read_link(&path)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        });
        let content = (contents && kind == libc::S_IFREG)
            .then(|| *blake3::hash(&read_noatime(&path)).as_bytes());
        let meta = Meta {
            mode: st.mode(),
            uid: st.uid(),
            gid: st.gid(),
            size: (!is_dir).then(|| st.size()),
            nlink: st.nlink(),
            rdev: if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
                st.rdev()
            } else {
                0
            },
            mtime: (st.mtime(), st.mtime_nsec()),
            atime: (st.atime(), st.atime_nsec()),
            xattrs: xattrs_of(&path),
            link,
            content,
            ino: st.ino(),
            blocks: st.blocks(),
        };
        // Reading a symlink moves its access time; a later link to the same
        // inode must show the time from before that, as a backup records it.
        let mut meta = meta;
        if !is_dir && meta.nlink > 1 {
            if let Some(first) = self.entries.values().find(|m| m.ino == meta.ino) {
                meta.atime = first.atime;
            }
        }
        self.entries.insert(rel.clone(), meta);
        if is_dir {
            for name in list_dir(&path) {
                let mut child = rel.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(&name);
                self.walk(root, child, contents);
            }
        }
    }

    /// The entries under `rel` (a directory), re-rooted there.
    pub fn subtree(&self, rel: &[u8]) -> Manifest {
        let mut prefix = rel.to_vec();
        prefix.push(b'/');
        let mut out = Manifest::default();
        for (path, meta) in &self.entries {
            if path == rel {
                out.entries.insert(Vec::new(), meta.clone());
            } else if let Some(rest) = path.strip_prefix(prefix.as_slice()) {
                out.entries.insert(rest.to_vec(), meta.clone());
            }
        }
        out
    }

    /// The same manifest with every access time zeroed, for tests where
    /// reading the tree between backups moves them and that is not the point.
    pub fn without_atimes(&self) -> Manifest {
        let mut out = self.clone();
        for meta in out.entries.values_mut() {
            meta.atime = (0, 0);
        }
        out
    }

    pub fn without(&self, rel: &[u8]) -> Manifest {
        let mut out = self.clone();
        out.entries.remove(rel);
        out
    }

    /// Sets every entry's times back to the recorded ones, deepest first,
    /// undoing the access-time updates of reading symlinks and directories.
    pub fn reset_times(&self, root: &Path) {
        for (rel, meta) in self.entries.iter().rev() {
            set_times(&join(root, rel), meta.atime, meta.mtime);
        }
    }

    /// Differences from `self` (expected) to `actual`; empty if they match.
    ///
    /// A non-directory's link count must be the number of its links inside
    /// the tree, and entries linked together (same inode) must be linked
    /// together in `actual` too, and only those.
    pub fn diff(&self, actual: &Manifest) -> Vec<String> {
        let mut out = Vec::new();
        for rel in self.entries.keys() {
            if !actual.entries.contains_key(rel) {
                out.push(format!("{}: missing", show(rel)));
            }
        }
        for rel in actual.entries.keys() {
            if !self.entries.contains_key(rel) {
                out.push(format!("{}: unexpected", show(rel)));
            }
        }
        let mut groups: HashMap<u64, Vec<&Vec<u8>>> = HashMap::new();
        for (rel, meta) in &self.entries {
            if !meta.is_dir() {
                groups.entry(meta.ino).or_default().push(rel);
            }
        }
        let mut actual_inodes: HashMap<u64, u64> = HashMap::new(); // actual ino -> expected ino
        for (rel, want) in &self.entries {
            let Some(got) = actual.entries.get(rel) else {
                continue;
            };
            let p = show(rel);
            let mut field = |name: &str, w: String, g: String| {
                if w != g {
                    out.push(format!("{p}: {name} expected {w}, got {g}"));
                }
            };
            field(
                "mode",
                format!("{:o}", want.mode),
                format!("{:o}", got.mode),
            );
            field("uid", want.uid.to_string(), got.uid.to_string());
            field("gid", want.gid.to_string(), got.gid.to_string());
            field(
                "size",
                format!("{:?}", want.size),
                format!("{:?}", got.size),
            );
            field("rdev", want.rdev.to_string(), got.rdev.to_string());
            field(
                "mtime",
                format!("{:?}", want.mtime),
                format!("{:?}", got.mtime),
            );
            field(
                "atime",
                format!("{:?}", want.atime),
                format!("{:?}", got.atime),
            );
            field(
                "xattrs",
                format!("{:?}", want.xattrs),
                format!("{:?}", got.xattrs),
            );
            field(
                "link target",
                format!(
                    "{:?}",
                    want.link.as_ref().map(|l| String::from_utf8_lossy(l))
                ),
                format!(
                    "{:?}",
                    got.link.as_ref().map(|l| String::from_utf8_lossy(l))
                ),
            );
            field(
                "content",
                format!("{:?}", want.content.map(hex::encode)),
                format!("{:?}", got.content.map(hex::encode)),
            );
            let want_links = if want.is_dir() {
                want.nlink
            } else {
                groups[&want.ino].len() as u64
            };
            field("nlink", want_links.to_string(), got.nlink.to_string());
            if !want.is_dir() {
                match actual_inodes.insert(got.ino, want.ino) {
                    Some(other) if other != want.ino => {
                        out.push(format!("{p}: hard-linked to an entry it was not linked to"))
                    }
                    _ => {}
                }
            }
        }
        for members in groups.values() {
            let inodes: Vec<Option<u64>> = members
                .iter()
                .map(|rel| actual.entries.get(*rel).map(|m| m.ino))
                .collect();
            if inodes.windows(2).any(|w| w[0] != w[1]) {
                out.push(format!(
                    "{}: these hard links were restored as separate files",
                    members
                        .iter()
                        .map(|r| show(r))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        out
    }

    #[track_caller]
    pub fn assert_same(&self, actual: &Manifest, context: &str) {
        let diff = self.diff(actual);
        assert!(
            diff.is_empty(),
            "{context}: {} differences:\n{}",
            diff.len(),
            diff.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

fn xattrs_of(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut attrs: Vec<_> = match xattr::list(path) {
        Ok(names) => names
            .map(|n| {
                let value = xattr::get(path, &n).ok().flatten().unwrap_or_default();
                (n.as_bytes().to_vec(), value)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    attrs.sort();
    attrs
}

pub fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

pub fn show(rel: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(rel).escape_debug())
}
