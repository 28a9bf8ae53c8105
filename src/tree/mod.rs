//! Directory objects. One tree blob per directory, listing its entries
//! sorted by name; a directory entry names the tree of its contents, so a
//! snapshot is a Merkle tree and unchanged directories share their blobs.
//! A wide directory is split across several trees (`split.rs`).

mod split;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

pub const TREE_VERSION: u8 = 1;
/// The version of a split directory's top, which names its parts.
pub const SPLIT_TREE_VERSION: u8 = 2;

pub(crate) use split::check_part;
pub use split::{in_part, part_of, Part, TreeWriter};

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

/// The longest name a Linux filesystem holds (`NAME_MAX`): a backup never
/// reads a longer one, and nothing can be created under it.
pub const MAX_NAME_BYTES: usize = 255;

/// How far a reader expands a snapshot into paths before it gives up.
/// Directories are shared by id, so a few crafted trees that each name the
/// one below twice make 2^40 paths: whatever walks paths (ls, the mount,
/// restore, diff) must stop long before that, while an honest snapshot of
/// 100 million files passes with room to spare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpansionLimits {
    /// Entries (files, directories, links...) of one snapshot.
    pub entries: u64,
    /// Directory levels below the snapshot's root.
    pub depth: usize,
    /// Bytes of file content (holes not counted) of one snapshot.
    pub data_bytes: u64,
}

impl ExpansionLimits {
    pub const DEFAULT: ExpansionLimits = ExpansionLimits {
        entries: 1 << 30,
        depth: MAX_DEPTH,
        data_bytes: 1 << 60,
    };
}

impl Default for ExpansionLimits {
    fn default() -> Self {
        ExpansionLimits::DEFAULT
    }
}

/// What one expansion of one snapshot has used of its [`ExpansionLimits`].
/// Shared by the threads of a mount, so it counts with atomics.
#[derive(Debug)]
pub struct ExpansionBudget {
    limits: ExpansionLimits,
    /// Names the snapshot in errors (its short id).
    snapshot: String,
    entries: AtomicU64,
    data_bytes: AtomicU64,
}

impl ExpansionBudget {
    pub fn new(snapshot: impl Into<String>, limits: ExpansionLimits) -> Self {
        ExpansionBudget {
            limits,
            snapshot: snapshot.into(),
            entries: AtomicU64::new(0),
            data_bytes: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> ExpansionLimits {
        self.limits
    }

    /// Entries admitted so far.
    pub fn entries(&self) -> u64 {
        self.entries.load(Relaxed)
    }

    /// Counts `node`, an entry `depth` path components below the
    /// snapshot's root (`/etc` is 1), or says which limit it breaks (and
    /// counts nothing).
    pub fn admit(&self, node: &Node, depth: usize) -> Result<()> {
        self.admit_depth(depth)?;
        if self.entries.fetch_add(1, Relaxed) >= self.limits.entries {
            self.entries.fetch_sub(1, Relaxed);
            return Err(self.too_many_entries());
        }
        let data = node.data_bytes();
        let before = self.data_bytes.fetch_add(data, Relaxed);
        if before.saturating_add(data) > self.limits.data_bytes {
            self.release(data);
            return Err(self.exceeded(format!(
                "its files hold more than {} bytes",
                self.limits.data_bytes
            )));
        }
        Ok(())
    }

    /// Gives back what [`ExpansionBudget::admit`] counted for an entry of
    /// `data_bytes` that the reader no longer holds (the mount, once the
    /// kernel forgets its inode): what is held at once is what counts.
    pub fn release(&self, data_bytes: u64) {
        self.entries.fetch_sub(1, Relaxed);
        self.data_bytes.fetch_sub(data_bytes, Relaxed);
    }

    /// Checks only the depth: for a reader that opens a directory it
    /// counted already, or a path it was given.
    pub fn admit_depth(&self, depth: usize) -> Result<()> {
        if depth > self.limits.depth + 1 {
            return Err(self.exceeded(format!(
                "directories nest deeper than {} levels",
                self.limits.depth
            )));
        }
        Ok(())
    }

    /// The error for a snapshot that expands to more entries than allowed.
    pub fn too_many_entries(&self) -> Error {
        self.exceeded(format!(
            "it expands to more than {} entries",
            self.limits.entries
        ))
    }

    fn exceeded(&self, what: String) -> Error {
        Error::corrupt(format!(
            "snapshot {}: {what}; a backup does not make such a snapshot, but crafted \
             trees that name the same directories over and over do",
            self.snapshot
        ))
        .with_hint(
            "run `rewind check`; if the snapshot is honest, raise the limit with \
             --max-entries (REWIND_MAX_ENTRIES)",
        )
    }
}

/// How an entry's name breaks the format's rules (see rewind-format(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Empty, `.`, `..`, or holding `/` or NUL: it would escape its directory.
    Unsafe,
    /// Longer than `MAX_NAME_BYTES` (255).
    TooLong,
    /// An earlier entry of the tree has the same name.
    Duplicate,
    /// Sorts before the entry listed ahead of it.
    OutOfOrder,
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameProblem::Unsafe => "the name is empty, `.` or `..`, or holds `/` or NUL",
            NameProblem::TooLong => "the name is longer than 255 bytes",
            NameProblem::Duplicate => "the name is listed twice in its directory",
            NameProblem::OutOfOrder => "the entries of its directory are not sorted by name",
        })
    }
}

/// What a reader logs about a change [`Tree::into_shown`] made to the
/// directory at `dir` (a path, as the reader shows it).
pub fn not_shown_message(dir: &str, name: &[u8], problem: NameProblem) -> String {
    if problem == NameProblem::OutOfOrder {
        return format!("{dir}: {problem}; shown sorted");
    }
    let mut shown: String = String::from_utf8_lossy(name).escape_debug().collect();
    if shown.chars().count() > 64 {
        shown = shown.chars().take(64).chain("...".chars()).collect();
    }
    format!(
        "{}/\"{shown}\": not shown: {problem}",
        dir.trim_end_matches('/')
    )
}

/// An entry of a tree whose name breaks the format's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName {
    pub index: usize,
    pub problem: NameProblem,
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

    /// The bytes of content a restore writes: holes not counted.
    pub fn data_bytes(&self) -> u64 {
        self.content
            .iter()
            .filter(|e| matches!(e, Extent::Data { .. }))
            .fold(0u64, |sum, e| sum.saturating_add(e.len()))
    }

    pub fn is_hardlinked(&self) -> bool {
        self.kind != NodeKind::Dir && self.links > 1
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// For a directory stored split: its parts, in name order (not part
    /// of a version 1 tree's bytes). A split top as decoded has these and
    /// no nodes; a directory read whole has both.
    #[serde(skip)]
    pub parts: Vec<Part>,
}

impl Tree {
    /// A directory of these entries, not split.
    pub fn whole(nodes: Vec<Node>) -> Tree {
        Tree {
            nodes,
            parts: Vec::new(),
        }
    }

    /// The tree blob: a version 1 tree of these nodes, or for a split top
    /// (parts and no nodes) version 2. A backup writes a wide directory
    /// through [`TreeWriter`], which cuts it.
    pub fn encode(&self) -> Vec<u8> {
        if self.is_split() {
            debug_assert!(self.nodes.is_empty(), "a split top holds no entries");
            return split::encode_top(&self.parts);
        }
        let mut out = vec![TREE_VERSION];
        out.extend(postcard::to_stdvec(self).expect("trees serialize"));
        out
    }

    /// A tree blob as stored: a whole directory, or the top of a split one
    /// (its parts and no nodes).
    pub fn decode(bytes: &[u8]) -> Result<Tree> {
        match bytes.split_first() {
            Some((&TREE_VERSION, rest)) => postcard::from_bytes(rest)
                .map_err(|e| Error::corrupt(format!("tree does not decode: {e}"))),
            Some((&SPLIT_TREE_VERSION, rest)) => {
                let parts: Vec<Part> = postcard::from_bytes(rest)
                    .map_err(|e| Error::corrupt(format!("split tree does not decode: {e}")))?;
                split::check_parts(&parts)?;
                Ok(Tree {
                    nodes: Vec::new(),
                    parts,
                })
            }
            Some((v, _)) => Err(Error::corrupt(format!("tree version {v} is unknown"))),
            None => Err(Error::corrupt("empty tree")),
        }
    }

    /// Whether this is the top of a split directory.
    pub fn is_split(&self) -> bool {
        !self.parts.is_empty()
    }

    /// The ids of the parts it is stored in (none for a whole tree): what
    /// uses a directory uses these as well as its own tree.
    pub fn part_ids(&self) -> impl Iterator<Item = Id> + '_ {
        self.parts.iter().map(|p| p.tree)
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

    /// The entries whose names break the format's rules, in order; each
    /// entry once, with the first rule it breaks.
    pub fn bad_names(&self) -> Vec<BadName> {
        let mut seen: HashSet<&[u8]> = HashSet::with_capacity(self.nodes.len());
        let mut bad = Vec::new();
        let mut previous: Option<&[u8]> = None;
        for (index, node) in self.nodes.iter().enumerate() {
            let name = node.name.as_slice();
            let problem = if !node.name_is_safe() {
                Some(NameProblem::Unsafe)
            } else if name.len() > MAX_NAME_BYTES {
                Some(NameProblem::TooLong)
            } else if !seen.insert(name) {
                Some(NameProblem::Duplicate)
            } else if previous.is_some_and(|p| name < p) {
                Some(NameProblem::OutOfOrder)
            } else {
                None
            };
            if problem.is_none_or(|p| p == NameProblem::OutOfOrder) {
                previous = Some(name);
            }
            if let Some(problem) = problem {
                bad.push(BadName { index, problem });
            }
        }
        bad
    }

    /// The tree as a reader may show it: entries with unusable names and
    /// later duplicates dropped, the rest sorted. Also returns what it
    /// changed, for the log: each dropped entry's name with its problem,
    /// and an unnamed [`NameProblem::OutOfOrder`] if it had to sort.
    pub fn into_shown(mut self) -> (Tree, Vec<(Vec<u8>, NameProblem)>) {
        let bad = self.bad_names();
        if bad.is_empty() {
            return (self, Vec::new());
        }
        let mut dropped = Vec::new();
        let mut drop_at = vec![false; self.nodes.len()];
        for BadName { index, problem } in &bad {
            if *problem != NameProblem::OutOfOrder {
                drop_at[*index] = true;
                dropped.push((self.nodes[*index].name.clone(), *problem));
            } else if dropped.iter().all(|(_, p)| *p != NameProblem::OutOfOrder) {
                dropped.push((Vec::new(), NameProblem::OutOfOrder));
            }
        }
        let mut keep = drop_at.iter().map(|d| !d);
        self.nodes.retain(|_| keep.next().unwrap_or(true));
        self.sort();
        (self, dropped)
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
        let mut tree = Tree::whole(vec![sample_node(b"b\n\xff"), sample_node(b"a b")]);
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

    fn named(names: &[&[u8]]) -> Tree {
        Tree::whole(names.iter().map(|n| sample_node(n)).collect())
    }

    #[test]
    fn bad_names_are_found_once_each() {
        let long = [b'x'; MAX_NAME_BYTES + 1];
        let tree = named(&[b"a", b"a", b"..", &long, b"c", b"b"]);
        let found: Vec<(usize, NameProblem)> = tree
            .bad_names()
            .into_iter()
            .map(|b| (b.index, b.problem))
            .collect();
        assert_eq!(
            found,
            [
                (1, NameProblem::Duplicate),
                (2, NameProblem::Unsafe),
                (3, NameProblem::TooLong),
                (5, NameProblem::OutOfOrder),
            ]
        );
        assert!(named(&[b"a", b"b", &[b'y'; MAX_NAME_BYTES]])
            .bad_names()
            .is_empty());
    }

    #[test]
    fn a_shown_tree_keeps_the_first_of_duplicates_and_is_sorted() {
        let mut first = sample_node(b"b");
        first.inode = 1;
        let mut second = sample_node(b"b");
        second.inode = 2;
        let tree = Tree::whole(vec![first, sample_node(b"a/"), second, sample_node(b"a")]);
        let (shown, dropped) = tree.into_shown();
        let names: Vec<&[u8]> = shown.nodes.iter().map(|n| n.name.as_slice()).collect();
        assert_eq!(names, [&b"a"[..], b"b"]);
        assert_eq!(shown.find(b"b").unwrap().inode, 1);
        assert_eq!(
            dropped,
            [
                (b"a/".to_vec(), NameProblem::Unsafe),
                (b"b".to_vec(), NameProblem::Duplicate),
                (Vec::new(), NameProblem::OutOfOrder),
            ]
        );
    }

    #[test]
    fn the_budget_stops_at_each_limit_and_names_the_snapshot() {
        let limits = ExpansionLimits {
            entries: 2,
            depth: 3,
            data_bytes: 5,
        };
        let file = sample_node(b"f"); // 3 bytes of data, 2 of hole
        let budget = ExpansionBudget::new("1234abcd", limits);
        budget.admit(&file, 1).unwrap();
        let err = budget.admit(&file, 1).unwrap_err();
        assert!(err.to_string().contains("snapshot 1234abcd"), "{err}");
        assert!(err.to_string().contains("more than 5 bytes"), "{err}");

        let mut dir = sample_node(b"d");
        dir.content.clear();
        let budget = ExpansionBudget::new("1234abcd", limits);
        budget.admit(&dir, 4).unwrap();
        let err = budget.admit(&dir, 5).unwrap_err();
        assert!(err.to_string().contains("deeper than 3 levels"), "{err}");
        budget.admit(&dir, 1).unwrap();
        let err = budget.admit(&dir, 1).unwrap_err();
        assert!(err.to_string().contains("more than 2 entries"), "{err}");
        assert_eq!(err.kind(), crate::error::ErrorKind::Corrupt);
        assert!(err.hint().unwrap().contains("--max-entries"));
    }

    #[test]
    fn an_honest_snapshot_of_100_million_files_fits_the_default_limits() {
        let limits = ExpansionLimits::default();
        assert!(limits.entries >= 1_000_000_000);
        assert!(limits.depth == MAX_DEPTH);
        assert!(limits.data_bytes >= 1 << 60);
    }
}
