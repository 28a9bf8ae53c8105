//! Repository objects crafted with the library (nodes, trees, blobs in
//! packs, snapshots) for states the binary never writes, and a repository
//! opened with the library. Apart from `Encryption` in `binary` and the
//! backend in `counting`, the one module of `common` that uses the
//! library's API, so that a change of that API is made here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rewind::format::BlobKind;
use rewind::LocalBackend;
use rewind::{Id, PackSaver, Repository, Snapshot, Summary};
use rewind::{Node, NodeKind, Timestamp, Tree};

use super::binary::Repo;

impl Repo {
    /// The repository through the library, index loaded.
    pub fn open(&self) -> Arc<Repository> {
        let password = self.password.clone().unwrap_or_default();
        let repo = Repository::open(Arc::new(LocalBackend::new(&self.path)), || {
            Ok(password.into_bytes())
        })
        .expect("the repository opens");
        let (repo, errors) = repo.load_index().unwrap();
        assert!(errors.is_empty(), "damaged index files: {errors:?}");
        Arc::new(repo)
    }
}

/// A tree node with plain defaults.
pub fn node(name: &[u8], kind: NodeKind) -> Node {
    let stamp = Timestamp {
        sec: 1_717_200_000,
        nsec: 0,
    };
    Node {
        name: name.to_vec(),
        kind,
        mode: if kind == NodeKind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime: stamp,
        atime: stamp,
        ctime: stamp,
        size: 0,
        device: 1,
        inode: 0,
        links: 1,
        rdev: 0,
        link_target: vec![],
        xattrs: vec![],
        content: vec![],
        subtree: None,
    }
}

/// Stores blobs in one new pack with an index file; returns their ids.
pub fn store_blobs(repo: &Repository, blobs: &[(BlobKind, Vec<u8>)]) -> Vec<Id> {
    let saver = PackSaver::new(repo.clone());
    let mut writer = saver.new_pack().unwrap();
    let mut ids = Vec::new();
    for (kind, data) in blobs {
        let id = repo.blob_id(data);
        writer.add(*kind, id, data, 3).unwrap();
        ids.push(id);
    }
    saver.save(writer.finish().unwrap()).unwrap();
    saver.finish().unwrap();
    ids
}

/// A file node whose content is stored in the repository.
pub fn file_node(repo: &Repository, name: &[u8], content: &[u8]) -> Node {
    let id = store_blobs(repo, &[(BlobKind::Data, content.to_vec())])[0];
    let mut n = node(name, NodeKind::File);
    n.size = content.len() as u64;
    n.content = vec![rewind::Extent::Data {
        id,
        len: content.len() as u32,
    }];
    n
}

/// Stores a tree (as given: not sorted, not checked) and returns its id.
pub fn store_tree(repo: &Repository, nodes: Vec<Node>) -> Id {
    store_blobs(repo, &[(BlobKind::Tree, Tree::whole(nodes).encode())])[0]
}

pub fn dir_node(name: &[u8], subtree: Id) -> Node {
    let mut n = node(name, NodeKind::Dir);
    n.subtree = Some(subtree);
    n
}

/// Writes a snapshot manifest for a root tree.
pub fn save_snapshot(repo: &Repository, tree: Id, paths: &[&str]) -> Id {
    let snapshot = Snapshot {
        id: Id::default(),
        version: rewind::format::SNAPSHOT_VERSION,
        time: chrono::Utc::now(),
        host: "crafted".into(),
        username: "root".into(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        tags: vec![],
        tree,
        parent: None,
        program: "rewind tests".into(),
        summary: Summary::default(),
        original: None,
        resealed_from: None,
    };
    repo.save_snapshot(&snapshot).unwrap()
}

/// Every regular file of a snapshot: path (as `check` prints it) → its data blob ids.
pub fn file_chunks(repo: &Repository, tree: &Id) -> BTreeMap<String, Vec<Id>> {
    fn walk(repo: &Repository, tree: &Id, dir: &str, out: &mut BTreeMap<String, Vec<Id>>) {
        for n in repo.read_tree(tree).unwrap().nodes {
            let path = format!("{dir}/{}", n.name_lossy());
            if let Some(sub) = n.subtree {
                walk(repo, &sub, &path, out);
            } else if n.kind == NodeKind::File {
                let ids = n
                    .content
                    .iter()
                    .filter_map(|e| match e {
                        rewind::Extent::Data { id, .. } => Some(*id),
                        _ => None,
                    })
                    .collect();
                out.insert(path, ids);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(repo, tree, "", &mut out);
    out
}

/// The path of a pack file in a local repository.
pub fn pack_path(repo_dir: &Path, pack: &Id) -> PathBuf {
    let hex = pack.to_hex();
    repo_dir.join("data").join(&hex[..2]).join(hex)
}
