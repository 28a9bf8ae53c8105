//! Inode numbers, stable for the life of a mount: a child keeps the number
//! it was first given under its parent and name, and the links of a
//! hardlinked file share one number within a snapshot view.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::layout::Scope;
use super::VfsResult;
use crate::repo::{Id, Snapshot};

pub type Ino = u64;
pub const ROOT_INO: Ino = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Group {
    Ids,
    Hosts,
    Tags,
    /// `hosts/<host>/` or `tags/<tag>/`: that scope's snapshots.
    Scoped(Scope),
    /// `.rewind/`
    Control,
}

#[derive(Clone, Debug)]
pub enum Inode {
    Root,
    Group(Group),
    /// `@<time>`: the root of a snapshot.
    Snapshot(Arc<Snapshot>),
    /// An entry inside a snapshot: entry `index` of the tree `tree` (its
    /// parent directory's). `view` is the inode of its `@<time>` directory.
    /// The entry itself is looked up in the tree cache when needed: a copy
    /// per inode would double the memory of a mount that `tar` walked.
    Entry {
        snapshot: Arc<Snapshot>,
        view: Ino,
        tree: Id,
        index: u32,
    },
    /// A symbolic link above the snapshots. Its target never changes: a
    /// `latest` or `@TIME` name that comes to select another snapshot is
    /// another inode (as `ln -sfn` makes), so the kernel may cache targets.
    Link(Vec<u8>),
    Status,
}

pub struct Record {
    pub parent: Ino,
    /// Names from the mount's root to it: `/@<time>/etc` is 2.
    pub depth: usize,
    pub name: Vec<u8>,
    pub inode: Inode,
}

pub(crate) struct Inodes {
    records: RwLock<Vec<Arc<Record>>>,
    by_name: Mutex<HashMap<(Ino, Vec<u8>), Ino>>,
    hardlinks: Mutex<HashMap<(Ino, u64, u64), Ino>>,
}

impl Inodes {
    pub fn new() -> Inodes {
        let root = Arc::new(Record {
            parent: ROOT_INO,
            depth: 0,
            name: Vec::new(),
            inode: Inode::Root,
        });
        Inodes {
            records: RwLock::new(vec![root]),
            by_name: Mutex::new(HashMap::new()),
            hardlinks: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, ino: Ino) -> Option<Arc<Record>> {
        let index = usize::try_from(ino).ok()?.checked_sub(1)?;
        self.records.read().unwrap().get(index).cloned()
    }

    /// [`Inodes::get`] for a request of the kernel: ENOENT for an unknown inode.
    pub fn record(&self, ino: Ino) -> VfsResult<Arc<Record>> {
        self.get(ino).ok_or(libc::ENOENT)
    }

    /// The inode of `name` in `parent`, made with `make` the first time.
    /// `hardlink` is (view, device, inode) for a file with several links.
    /// A `name` may carry a NUL and a variant after the name itself (a
    /// link's target): each variant is its own inode.
    pub fn child(
        &self,
        parent: Ino,
        name: &[u8],
        hardlink: Option<(Ino, u64, u64)>,
        make: impl FnOnce() -> Inode,
    ) -> Ino {
        let admit_all = || Ok::<(), std::convert::Infallible>(());
        match self.admitted_child(parent, name, hardlink, admit_all, make) {
            Ok(ino) => ino,
            Err(never) => match never {},
        }
    }

    /// [`Inodes::child`], but a name seen for the first time must pass
    /// `admit` (a snapshot's expansion budget) before it gets an inode.
    pub fn admitted_child<E>(
        &self,
        parent: Ino,
        name: &[u8],
        hardlink: Option<(Ino, u64, u64)>,
        admit: impl FnOnce() -> Result<(), E>,
        make: impl FnOnce() -> Inode,
    ) -> Result<Ino, E> {
        let mut by_name = self.by_name.lock().unwrap();
        if let Some(&ino) = by_name.get(&(parent, name.to_vec())) {
            return Ok(ino);
        }
        admit()?;
        let mut hardlinks = self.hardlinks.lock().unwrap();
        if let Some(&ino) = hardlink.as_ref().and_then(|key| hardlinks.get(key)) {
            by_name.insert((parent, name.to_vec()), ino);
            return Ok(ino);
        }
        let mut records = self.records.write().unwrap();
        let depth = records[parent as usize - 1].depth + 1;
        records.push(Arc::new(Record {
            parent,
            depth,
            name: name.to_vec(),
            inode: make(),
        }));
        let ino = records.len() as Ino;
        by_name.insert((parent, name.to_vec()), ino);
        if let Some(key) = hardlink {
            hardlinks.insert(key, ino);
        }
        Ok(ino)
    }

    /// Names from the mount's root to `ino` (0 for an unknown inode).
    pub fn depth(&self, ino: Ino) -> usize {
        self.get(ino).map_or(0, |record| record.depth)
    }

    pub fn len(&self) -> usize {
        self.records.read().unwrap().len()
    }

    /// The mount-relative path of an inode, for messages.
    pub fn path_of(&self, mut ino: Ino) -> String {
        let mut parts = Vec::new();
        while ino != ROOT_INO {
            let Some(record) = self.get(ino) else { break };
            let name = record.name.split(|b| *b == 0).next().unwrap_or_default();
            parts.push(String::from_utf8_lossy(name).into_owned());
            ino = record.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }
}
