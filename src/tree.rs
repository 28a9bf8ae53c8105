//! Directory objects. One tree blob per directory, listing its entries
//! sorted by name; a directory entry names the tree of its contents, so a
//! snapshot is a Merkle tree and unchanged directories share their blobs.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::Id;

pub const TREE_VERSION: u8 = 1;

/// How deep directories may nest. A backup never goes deeper (a path holds
/// at most 4096 bytes, so about 2048 levels); a deeper tree is malformed,
/// and walking it must end in an error, not in a stack overflow.
pub const MAX_DEPTH: usize = 4096;

/// Runs `f`, a recursive walk of a tree or a directory, on a thread whose
/// stack holds [`MAX_DEPTH`] levels of any walker in this crate, even in an
/// unoptimized build (the main thread's 8 MiB do not, by far).
pub fn with_deep_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| {
        let walker = std::thread::Builder::new()
            .name("tree walker".into())
            .stack_size(256 << 20)
            .spawn_scoped(scope, f)
            .expect("cannot start a thread");
        walker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

/// A piece of a file's content: a chunk, or a hole that reads as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Extent {
    Data { id: Id, len: u32 },
    Hole { len: u64 },
}

impl Extent {
    pub fn len(&self) -> u64 {
        match self {
            Extent::Data { len, .. } => *len as u64,
            Extent::Hole { len } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The raw bytes of the name: any byte but `/` and NUL is allowed on Linux.
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits, including setuid, setgid and sticky (`st_mode & 07777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mtime: Timestamp,
    pub atime: Timestamp,
    pub ctime: Timestamp,
    pub size: u64,
    /// Device and inode of the source: how hardlinks are told apart, and
    /// (with ctime) how an incremental backup knows a file is unchanged.
    pub device: u64,
    pub inode: u64,
    pub links: u64,
    /// Device number of a character or block device.
    pub rdev: u64,
    pub link_target: Vec<u8>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The file's content in order; holes are not stored.
    pub content: Vec<Extent>,
    /// The tree of a directory's entries.
    pub subtree: Option<Id>,
}

impl Node {
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// Whether the name can be created inside a directory without escaping
    /// it: not empty, not `.` or `..`, no `/` and no NUL.
    pub fn name_is_safe(&self) -> bool {
        !self.name.is_empty()
            && self.name != b"."
            && self.name != b".."
            && !self.name.contains(&b'/')
            && !self.name.contains(&0)
    }

    pub fn is_dir(&self) -> bool {
        self.kind == NodeKind::Dir
    }

    pub fn is_hardlinked(&self) -> bool {
        self.kind != NodeKind::Dir && self.links > 1
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![TREE_VERSION];
        out.extend(postcard::to_stdvec(self).expect("trees serialize"));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Tree> {
        match bytes.split_first() {
            Some((&TREE_VERSION, rest)) => postcard::from_bytes(rest)
                .map_err(|e| Error::corrupt(format!("tree does not decode: {e}"))),
            Some((v, _)) => Err(Error::corrupt(format!("tree version {v} is unknown"))),
            None => Err(Error::corrupt("empty tree")),
        }
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.position(name).map(|i| &self.nodes[i])
    }

    /// Where the entry named `name` is in `nodes`.
    pub fn position(&self, name: &[u8]) -> Option<usize> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .or_else(|| self.nodes.iter().position(|n| n.name == name))
    }

    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_node(name: &[u8]) -> Node {
        Node {
            name: name.to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            user: Some("alice".into()),
            group: None,
            mtime: Timestamp {
                sec: 1_717_200_000,
                nsec: 123_456_789,
            },
            atime: Timestamp { sec: -5, nsec: 0 },
            ctime: Timestamp::default(),
            size: 5,
            device: 2049,
            inode: 77,
            links: 2,
            rdev: 0,
            link_target: vec![],
            xattrs: vec![(b"user.k".to_vec(), b"\x00\xff".to_vec())],
            content: vec![
                Extent::Data {
                    id: Id([4; 32]),
                    len: 3,
                },
                Extent::Hole { len: 2 },
            ],
            subtree: None,
        }
    }

    #[test]
    fn tree_round_trips() {
        let mut tree = Tree {
            nodes: vec![sample_node(b"b\n\xff"), sample_node(b"a b")],
        };
        tree.sort();
        let decoded = Tree::decode(&tree.encode()).unwrap();
        assert_eq!(decoded, tree);
        assert_eq!(decoded.find(b"a b").unwrap().inode, 77);
        assert!(decoded.find(b"zz").is_none());
    }

    #[test]
    fn unsafe_names_are_recognised() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"a\0"] {
            assert!(!sample_node(bad).name_is_safe(), "{bad:?}");
        }
        assert!(sample_node(b"...").name_is_safe());
    }
}
