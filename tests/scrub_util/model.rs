//! A model of the pristine repository read with the library: what every
//! pack holds, and which paths of which snapshot need each blob. The one
//! scrub helper that calls the library (the fixtures only name its types).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use rewind::format::{pack, BlobKind, PackedBlob};
use rewind::Id;
use rewind::{Extent, NodeKind};

use super::files_under;
use crate::common::Repo;

pub struct PackInfo {
    /// `data/ab/ab…`
    pub file: String,
    pub id: Id,
    /// The kind of its blobs (backups never mix them).
    pub kind: BlobKind,
    pub blobs: Vec<PackedBlob>,
    pub size: usize,
}

pub enum Entry {
    File(Vec<(u64, u32, Id)>),
    Dir(TreeModel),
    Other,
}

pub struct TreeModel {
    pub id: Id,
    pub entries: Vec<(String, Entry)>,
}

pub struct SnapshotModel {
    pub time: String,
    pub short: String,
    pub root: TreeModel,
}

/// What the pristine repository holds, read with the library.
pub struct Model {
    /// By `data/ab/ab…`.
    pub packs: BTreeMap<String, PackInfo>,
    pub snapshots: Vec<SnapshotModel>,
}

impl Model {
    /// The pack that holds a blob.
    pub fn pack_of(&self, blob: &Id) -> &PackInfo {
        self.packs
            .values()
            .find(|p| p.blobs.iter().any(|b| b.id == *blob))
            .unwrap()
    }

    /// Where a blob is in its pack.
    pub fn blob(&self, blob: &Id) -> &PackedBlob {
        self.pack_of(blob)
            .blobs
            .iter()
            .find(|b| b.id == *blob)
            .unwrap()
    }

    pub(super) fn load(repo: &Repo) -> Model {
        let lib = repo.open();
        let mut packs = BTreeMap::new();
        for file in files_under(&repo.path.join("data")) {
            let name = file.rsplit('/').next().unwrap().to_string();
            let bytes = std::fs::read(repo.path.join("data").join(&file)).unwrap();
            let (_, blobs) = pack::read_trailer(&rewind::format::keys_of(&*lib), &bytes).unwrap();
            let kind = blobs[0].kind;
            assert!(blobs.iter().all(|b| b.kind == kind), "a pack of one kind");
            let file = format!("data/{file}");
            packs.insert(
                file.clone(),
                PackInfo {
                    file,
                    id: Id::from_hex(&name).unwrap(),
                    kind,
                    blobs,
                    size: bytes.len(),
                },
            );
        }
        fn tree(lib: &rewind::Repository, id: Id) -> TreeModel {
            let entries = lib
                .read_tree(&id)
                .unwrap()
                .nodes
                .into_iter()
                .map(|n| {
                    let entry = match n.kind {
                        NodeKind::Dir => Entry::Dir(tree(lib, n.subtree.unwrap())),
                        NodeKind::File => {
                            let mut at = 0;
                            let mut extents = Vec::new();
                            for e in &n.content {
                                match e {
                                    Extent::Data { id, len } => {
                                        extents.push((at, *len, *id));
                                        at += *len as u64;
                                    }
                                    Extent::Hole { len } => at += len,
                                }
                            }
                            Entry::File(extents)
                        }
                        _ => Entry::Other,
                    };
                    (n.name_lossy().to_string(), entry)
                })
                .collect();
            TreeModel { id, entries }
        }
        let snapshots = lib
            .snapshots()
            .unwrap()
            .into_iter()
            .map(|s| SnapshotModel {
                time: s.time_label(),
                short: s.id.short(),
                root: tree(&lib, s.tree),
            })
            .collect();
        Model { packs, snapshots }
    }

    /// The blobs of a pack that its new bytes (None: the file is gone) no
    /// longer hold intact at their place: they cannot be read.
    pub fn damaged_blobs(&self, pack: &str, old: &[u8], new: Option<&[u8]>) -> HashSet<Id> {
        self.packs[pack]
            .blobs
            .iter()
            .filter(|b| {
                let range = b.offset as usize..(b.offset + b.stored_len) as usize;
                new.and_then(|n| n.get(range.clone())) != Some(&old[range])
            })
            .map(|b| b.id)
            .collect()
    }

    /// Snapshot time → the paths that lose data when `damaged` blobs cannot
    /// be read: files with a damaged chunk, and directories whose listing is
    /// damaged (what is below them is not listed). Snapshots that lose
    /// nothing are left out.
    pub fn affected(&self, damaged: &HashSet<Id>) -> BTreeMap<String, BTreeSet<String>> {
        fn walk(tree: &TreeModel, prefix: &str, damaged: &HashSet<Id>, out: &mut BTreeSet<String>) {
            if damaged.contains(&tree.id) {
                out.insert(if prefix.is_empty() {
                    "/".into()
                } else {
                    prefix.into()
                });
                return;
            }
            for (name, entry) in &tree.entries {
                let path = format!("{prefix}/{name}");
                match entry {
                    Entry::File(extents) => {
                        if extents.iter().any(|(_, _, id)| damaged.contains(id)) {
                            out.insert(path);
                        }
                    }
                    Entry::Dir(sub) => walk(sub, &path, damaged, out),
                    Entry::Other => {}
                }
            }
        }
        let mut out = BTreeMap::new();
        for s in &self.snapshots {
            let mut paths = BTreeSet::new();
            walk(&s.root, "", damaged, &mut paths);
            if !paths.is_empty() {
                out.insert(s.time.clone(), paths);
            }
        }
        out
    }

    /// The snapshot taken at `time`.
    pub fn snapshot(&self, time: &str) -> &SnapshotModel {
        self.snapshots.iter().find(|s| s.time == time).unwrap()
    }

    /// Every regular file of a snapshot: absolute path → its extents.
    pub fn files(&self, time: &str) -> BTreeMap<String, Vec<(u64, u32, Id)>> {
        fn walk(tree: &TreeModel, prefix: &str, out: &mut BTreeMap<String, Vec<(u64, u32, Id)>>) {
            for (name, entry) in &tree.entries {
                let path = format!("{prefix}/{name}");
                match entry {
                    Entry::File(extents) => {
                        out.insert(path, extents.clone());
                    }
                    Entry::Dir(sub) => walk(sub, &path, out),
                    Entry::Other => {}
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.snapshot(time).root, "", &mut out);
        out
    }

    /// The directory of a snapshot at an absolute path.
    pub fn dir(&self, time: &str, path: &str) -> &TreeModel {
        let mut tree = &self.snapshot(time).root;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            tree = match tree.entries.iter().find(|(n, _)| n == part) {
                Some((_, Entry::Dir(sub))) => sub,
                _ => panic!("no directory {path}"),
            };
        }
        tree
    }
}
