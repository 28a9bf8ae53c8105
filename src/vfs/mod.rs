//! The mount's filesystem, independent of FUSE: names, attributes, listings
//! and verified reads, testable without a mount. `crate::fuse` is a thin
//! adapter over it.

pub mod cache;
mod inodes;
mod layout;
mod readahead;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use serde_json::json;

use crate::error::Result;
use crate::repo::{Id, Opened, Repository, Snapshot};
use crate::tree::{ExpansionBudget, ExpansionLimits, Extent, Node, NodeKind, Timestamp, Tree};
use cache::ChunkCache;
use inodes::Inodes;
pub use inodes::{Group, Ino, Inode};
pub use layout::{Layout, Scope};

/// An errno for the kernel.
pub type Errno = i32;
pub type VfsResult<T> = std::result::Result<T, Errno>;

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

/// `.rewind/status` as last written: made anew at each lookup (every open
/// by path makes one), then served unchanged to getattr and read, so the
/// size and bytes a reader gets belong to one text.
struct StatusText {
    bytes: Vec<u8>,
    made: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: Ino,
    pub name: Vec<u8>,
    pub kind: EntryKind,
}

#[derive(Debug, Clone)]
pub struct VfsOptions {
    /// Budget of the decoded-chunk cache, in bytes.
    pub cache_bytes: usize,
    /// Chunks fetched ahead of a sequential reader.
    pub readahead_chunks: usize,
    pub readahead_threads: usize,
    /// What one snapshot may expand to: inodes, one per path looked up,
    /// are never forgotten while mounted.
    pub limits: ExpansionLimits,
}

impl Default for VfsOptions {
    fn default() -> Self {
        VfsOptions {
            cache_bytes: 64 << 20,
            readahead_chunks: 4,
            readahead_threads: 3,
            limits: ExpansionLimits::DEFAULT,
        }
    }
}

#[derive(Default)]
struct Stats {
    reads: AtomicU64,
    bytes_served: AtomicU64,
    chunks_verified: AtomicU64,
    eio: AtomicU64,
    recent_errors: Mutex<VecDeque<String>>,
}

/// A file being read. Reads carry no handle (the kernel opens files
/// without asking us, see `crate::fuse`), so this is kept per inode, for
/// the most recently read files.
struct Reader {
    ino: Ino,
    snapshot: Arc<Snapshot>,
    node: EntryNode,
    /// Where each extent starts in the file: seeks are a binary search.
    starts: Vec<u64>,
    /// Where the last read ended: a read starting there is sequential.
    last_end: AtomicU64,
    /// Extents up to here were handed to the read-ahead workers.
    readahead_until: AtomicUsize,
    /// The pack bytes of extents up to here were announced to the backend.
    hinted_until: AtomicUsize,
}

/// How many chunks beyond those handed to the read-ahead workers a
/// sequential reader has the backend fetch (a disk read of the pack bytes,
/// while the workers decode): ~8 MiB.
const PACK_HINT_CHUNKS: usize = 8;

/// Files whose read state is kept; one that falls out starts afresh.
const READERS_KEPT: usize = 256;

/// Budget of the decoded-tree cache: the directories being walked.
const TREE_CACHE_BYTES: usize = 8 << 20;

/// How far ahead of a reader the files after it in its directory are
/// decoded: tar, cp -a and rsync read a directory's files in order.
const SIBLING_WINDOW_FILES: usize = 64;
const SIBLING_WINDOW_BYTES: u64 = 4 << 20;

/// An entry of a snapshot, inside the decoded tree of its directory.
#[derive(Clone)]
struct EntryNode {
    tree_id: Id,
    tree: Arc<Tree>,
    index: usize,
}

impl std::ops::Deref for EntryNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.tree.nodes[self.index]
    }
}

/// Extra sections of `.rewind/status` supplied by the mount daemon (scrub).
pub type StatusExtra = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

pub struct Vfs {
    /// The repository as opened: snapshots are listed from it at once.
    repo: Repository<Opened>,
    /// The same repository with its index, once the background load is
    /// done; blobs are read from it.
    indexed: Arc<OnceLock<std::result::Result<Repository, String>>>,
    index_wait: (Mutex<()>, Condvar),
    layout: RwLock<Arc<Layout>>,
    /// When the snapshots shown last changed: the mtime of the directories
    /// above them, which tells the kernel to drop the listings it cached.
    layout_changed: Mutex<SystemTime>,
    inodes: Inodes,
    trees: cache::TreeCache,
    /// The tree each directory inode shows: opening a directory must not
    /// need its parent's tree, which may be large and long evicted.
    subtrees: RwLock<HashMap<Ino, Id>>,
    chunks: Arc<ChunkCache>,
    readers: Mutex<LruCache<Ino, Arc<Reader>>>,
    /// For the directories being read: the entries up to here went to the
    /// read-ahead workers.
    siblings_queued: Mutex<LruCache<Id, usize>>,
    status_text: Mutex<Arc<StatusText>>,
    readahead: Option<Arc<readahead::ReadAhead>>,
    options: VfsOptions,
    stats: Stats,
    mounted_at: SystemTime,
    refresh_running: AtomicBool,
    status_extra: Mutex<Option<StatusExtra>>,
    /// What each snapshot view (by the inode of its `@<time>` directory)
    /// has expanded to.
    budgets: Mutex<HashMap<Ino, Arc<ExpansionBudget>>>,
    /// Trees whose entries broke the naming rules, logged once each.
    misnamed_logged: Mutex<crate::repo::IdSet>,
    /// Chunks, and packs, a scrub found damaged: reads of them fail at once.
    damaged: RwLock<crate::repo::IdSet>,
    /// Milliseconds since mounting, at the last read: the scrub yields to readers.
    last_read_ms: AtomicU64,
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

fn entry_kind(kind: NodeKind) -> EntryKind {
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

impl Vfs {
    /// A view of the repository's snapshots. The index loads in the
    /// background, so the mount is ready at once; reads wait for it.
    pub fn new(repo: Repository<Opened>, options: VfsOptions) -> Result<Arc<Vfs>> {
        let snapshots = repo.snapshots()?;
        let chunks = Arc::new(ChunkCache::for_chunks(options.cache_bytes));
        let indexed: Arc<OnceLock<std::result::Result<Repository, String>>> = Arc::default();
        let readahead = if options.readahead_chunks > 0 {
            let (chunks, indexed) = (Arc::clone(&chunks), Arc::clone(&indexed));
            Some(readahead::ReadAhead::start(
                options.readahead_threads,
                64,
                move |id| {
                    // Chunks are offered once reads run, after the index
                    // loaded; a failure is reported by the read that needs it.
                    if let Some(Ok(repo)) = indexed.get() {
                        let _ =
                            chunks.get_or_fetch(id, || repo.read_blob_framed(id).map(cache::chunk));
                    }
                },
            )?)
        } else {
            None
        };
        let vfs = Arc::new(Vfs {
            layout: RwLock::new(Arc::new(Layout::new(snapshots))),
            layout_changed: Mutex::new(SystemTime::now()),
            indexed,
            index_wait: (Mutex::new(()), Condvar::new()),
            inodes: Inodes::new(),
            trees: cache::TreeCache::for_trees(TREE_CACHE_BYTES),
            subtrees: RwLock::new(HashMap::new()),
            chunks: Arc::clone(&chunks),
            readers: Mutex::new(LruCache::new(
                std::num::NonZeroUsize::new(READERS_KEPT).unwrap(),
            )),
            siblings_queued: Mutex::new(LruCache::new(std::num::NonZeroUsize::new(16).unwrap())),
            status_text: Mutex::new(Arc::new(StatusText {
                bytes: Vec::new(),
                made: UNIX_EPOCH,
            })),
            readahead,
            stats: Stats::default(),
            mounted_at: SystemTime::now(),
            refresh_running: AtomicBool::new(false),
            status_extra: Mutex::new(None),
            damaged: RwLock::new(crate::repo::IdSet::default()),
            budgets: Mutex::new(HashMap::new()),
            misnamed_logged: Mutex::new(crate::repo::IdSet::default()),
            last_read_ms: AtomicU64::new(0),
            options,
            repo,
        });
        let loader = Arc::clone(&vfs);
        std::thread::Builder::new()
            .name("rewind-index".into())
            .spawn(move || loader.load_index())
            .map_err(|e| crate::Error::io("cannot start the index loader", e))?;
        Ok(vfs)
    }

    fn load_index(&self) {
        let result = self.repo.load_index().map(|(repo, errors)| {
            for e in errors {
                self.record_error(format!("{e} (run `rewind check`)"));
            }
            repo
        });
        let _ = self.indexed.set(result.map_err(|e| e.to_string()));
        let _waiting = self.index_wait.0.lock().unwrap();
        self.index_wait.1.notify_all();
    }

    /// The indexed repository, once the background load is done.
    fn wait_index(&self) -> VfsResult<&Repository> {
        let loaded = match self.indexed.get() {
            Some(loaded) => loaded,
            None => {
                let mut waiting = self.index_wait.0.lock().unwrap();
                loop {
                    if let Some(loaded) = self.indexed.get() {
                        break loaded;
                    }
                    waiting = self.index_wait.1.wait(waiting).unwrap();
                }
            }
        };
        loaded.as_ref().map_err(|e| {
            crate::log::error(&format!("the index could not be loaded: {e}"));
            libc::EIO
        })
    }

    /// Reads of these chunks, and of every chunk in these packs, fail with
    /// EIO without touching the packs; what is no longer listed (repaired)
    /// reads again.
    pub fn set_damaged(&self, blobs_and_packs: crate::repo::IdSet) {
        *self.damaged.write().unwrap() = blobs_and_packs;
    }

    /// Waits for the background index load; None if it failed.
    pub fn indexed_repository(&self) -> Option<&Repository> {
        self.wait_index().ok()
    }

    /// How long no file has been read.
    pub fn idle_for(&self) -> Duration {
        let now = self.mounted_at.elapsed().unwrap_or_default().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_read_ms.load(Relaxed)))
    }

    pub fn set_status_extra(&self, extra: StatusExtra) {
        *self.status_extra.lock().unwrap() = Some(extra);
    }

    /// Where the repository is (a path or a URL).
    pub fn location(&self) -> String {
        self.repo.location()
    }

    fn layout(&self) -> Arc<Layout> {
        Arc::clone(&self.layout.read().unwrap())
    }

    /// Picks up snapshots added or removed since the last look; returns
    /// whether anything changed. New index files are loaded first, so a new
    /// snapshot is readable as soon as it is listed.
    pub fn refresh(&self) -> Result<bool> {
        if self.refresh_running.swap(true, Relaxed) {
            return Ok(false);
        }
        let result = self.refresh_now();
        self.refresh_running.store(false, Relaxed);
        result
    }

    fn refresh_now(&self) -> Result<bool> {
        let names: HashSet<String> = self.repo.snapshot_names()?.into_iter().collect();
        let layout = self.layout();
        let known: HashSet<String> = layout.snapshots.iter().map(|s| s.id.to_hex()).collect();
        if names == known {
            return Ok(false);
        }
        if let Ok(repo) = self.wait_index() {
            for e in repo.refresh_index()?.1 {
                self.record_error(e.to_string());
            }
        }
        let mut snapshots: Vec<Snapshot> = layout
            .snapshots
            .iter()
            .filter(|s| names.contains(&s.id.to_hex()))
            .map(|s| (**s).clone())
            .collect();
        for name in names.difference(&known) {
            match self.repo.read_snapshot(name) {
                Ok(s) => snapshots.push(s),
                Err(e) => self.record_error(e.to_string()),
            }
        }
        *self.layout.write().unwrap() = Arc::new(Layout::after(snapshots, &layout));
        *self.layout_changed.lock().unwrap() = SystemTime::now();
        Ok(true)
    }

    fn record_error(&self, message: String) {
        crate::log::error(&message);
        let mut recent = self.stats.recent_errors.lock().unwrap();
        if recent.len() == 20 {
            recent.pop_front();
        }
        recent.push_back(message);
    }

    fn record(&self, ino: Ino) -> VfsResult<Arc<inodes::Record>> {
        self.inodes.get(ino).ok_or(libc::ENOENT)
    }

    /// The tree `id`, the listing of directory `dir`, as it may be shown:
    /// entries whose names break the format's rules are left out (and
    /// logged), so no listing holds a duplicate, an unsafe or an overlong
    /// name, and lookups by name find what listings show.
    fn tree(&self, id: &Id, dir: Ino) -> VfsResult<Arc<Tree>> {
        let fetch = || {
            let repo = self
                .wait_index()
                .map_err(|_| crate::Error::corrupt("the index could not be loaded"))?;
            let (tree, not_shown) = repo.read_tree(id)?.into_shown();
            if !not_shown.is_empty() && self.misnamed_logged.lock().unwrap().insert(*id) {
                let path = self.inodes.path_of(dir);
                for (name, problem) in not_shown {
                    let message = crate::tree::not_shown_message(&path, &name, problem);
                    crate::log::warn(&format!("directory listing {}: {message}", id.short()));
                }
            }
            Ok(Arc::new(tree))
        };
        self.trees
            .get_or_fetch(id, fetch)
            .map(|(tree, _)| tree)
            .map_err(|e| {
                self.stats.eio.fetch_add(1, Relaxed);
                self.record_error(format!("cannot read directory listing {}: {e}", id.short()));
                libc::EIO
            })
    }

    /// The snapshot entry an inode shows, if it is one.
    fn entry_node(&self, record: &inodes::Record) -> VfsResult<Option<EntryNode>> {
        let Inode::Entry { tree, index, .. } = &record.inode else {
            return Ok(None);
        };
        let tree_id = *tree;
        let tree = self.tree(&tree_id, record.parent)?;
        let index = *index as usize;
        // Cannot fail: a tree id names one immutable content.
        if index >= tree.nodes.len() {
            return Err(libc::EIO);
        }
        Ok(Some(EntryNode {
            tree_id,
            tree,
            index,
        }))
    }

    /// The tree a directory inode shows, with its snapshot and view.
    fn snapshot_dir(&self, ino: Ino, inode: &Inode) -> VfsResult<(Arc<Snapshot>, Ino, Id)> {
        match inode {
            Inode::Snapshot(s) => Ok((Arc::clone(s), ino, s.tree)),
            Inode::Entry { snapshot, view, .. } => {
                let subtree = self.subtrees.read().unwrap().get(&ino).copied();
                Ok((Arc::clone(snapshot), *view, subtree.ok_or(libc::ENOTDIR)?))
            }
            _ => Err(libc::ENOTDIR),
        }
    }

    /// The inode of entry `index` of `tree`, the listing of directory `parent`.
    fn entry_child(
        &self,
        parent: Ino,
        snapshot: &Arc<Snapshot>,
        view: Ino,
        (tree_id, tree): (&Id, &Tree),
        index: usize,
    ) -> VfsResult<Ino> {
        let node = &tree.nodes[index];
        let hardlink = node
            .is_hardlinked()
            .then_some((view, node.device, node.inode));
        let admit = || self.admit(parent, snapshot, view, node);
        let ino = self
            .inodes
            .admitted_child(parent, &node.name, hardlink, admit, || Inode::Entry {
                snapshot: Arc::clone(snapshot),
                view,
                tree: *tree_id,
                index: index as u32,
            })?;
        if node.is_dir() {
            // Every backed-up directory has a tree; one without (a damaged
            // listing) names no blob and lists as EIO.
            let subtree = node.subtree.unwrap_or_default();
            self.subtrees.write().unwrap().entry(ino).or_insert(subtree);
        }
        Ok(ino)
    }

    /// Counts a new inode for `node` in `parent` against its snapshot's
    /// budget: a crafted snapshot that names the same directories over and
    /// over must not grow the inode table without end.
    fn admit(&self, parent: Ino, snapshot: &Snapshot, view: Ino, node: &Node) -> VfsResult<()> {
        let budget = Arc::clone(self.budgets.lock().unwrap().entry(view).or_insert_with(|| {
            let limits = self.options.limits;
            Arc::new(ExpansionBudget::new(snapshot.id.short(), limits))
        }));
        let depth = self.inodes.depth(parent) - self.inodes.depth(view) + 1;
        budget.admit(node, depth).map_err(|e| {
            self.stats.eio.fetch_add(1, Relaxed);
            self.record_error(format!("{}: {e}", self.inodes.path_of(parent)));
            libc::EIO
        })
    }

    // ---- names ----

    pub fn lookup(&self, parent: Ino, name: &[u8]) -> VfsResult<Attr> {
        let record = self.record(parent)?;
        let ino = match &record.inode {
            Inode::Root => self.lookup_scoped(parent, name, &Scope::All, true)?,
            Inode::Group(group) => self.lookup_group(parent, name, group)?,
            inode => {
                let (snapshot, view, tree_id) = self.snapshot_dir(parent, inode)?;
                let tree = self.tree(&tree_id, parent)?;
                let index = tree.position(name).ok_or(libc::ENOENT)?;
                self.entry_child(parent, &snapshot, view, (&tree_id, &tree), index)?
            }
        };
        self.getattr(ino)
    }

    fn lookup_scoped(&self, parent: Ino, name: &[u8], scope: &Scope, top: bool) -> VfsResult<Ino> {
        let name_str = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
        if top {
            let group = match name_str {
                "ids" => Some(Group::Ids),
                "hosts" => Some(Group::Hosts),
                "tags" => Some(Group::Tags),
                ".rewind" => Some(Group::Control),
                _ => None,
            };
            if let Some(group) = group {
                return Ok(self
                    .inodes
                    .child(parent, name, None, || Inode::Group(group)));
            }
        }
        let layout = self.layout();
        if let Some(i) = layout.by_label(name_str, scope) {
            let snapshot = Arc::clone(&layout.snapshots[i]);
            return Ok(self
                .inodes
                .child(parent, name, None, || Inode::Snapshot(snapshot)));
        }
        if name_str == "latest" || name_str.starts_with('@') {
            if let Some(target) = layout.resolve(name_str, scope) {
                let variant = [name, b"\0", target.as_bytes()].concat();
                return Ok(self
                    .inodes
                    .child(parent, &variant, None, || Inode::Link(target.into_bytes())));
            }
        }
        Err(libc::ENOENT)
    }

    fn lookup_group(&self, parent: Ino, name: &[u8], group: &Group) -> VfsResult<Ino> {
        let name_str = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
        let layout = self.layout();
        match group {
            Group::Scoped(scope) => self.lookup_scoped(parent, name, scope, false),
            Group::Ids => {
                let i = layout
                    .snapshots
                    .iter()
                    .position(|s| s.id.short() == name_str)
                    .ok_or(libc::ENOENT)?;
                let target = format!("../{}", layout.labels[i]).into_bytes();
                Ok(self
                    .inodes
                    .child(parent, name, None, || Inode::Link(target)))
            }
            Group::Hosts if layout.hosts.contains_key(name_str) => {
                let scope = Scope::Host(name_str.to_string());
                Ok(self
                    .inodes
                    .child(parent, name, None, || Inode::Group(Group::Scoped(scope))))
            }
            Group::Tags if layout.tags.contains_key(name_str) => {
                let scope = Scope::Tag(name_str.to_string());
                Ok(self
                    .inodes
                    .child(parent, name, None, || Inode::Group(Group::Scoped(scope))))
            }
            Group::Control if name_str == "status" => {
                self.write_status_text();
                Ok(self.inodes.child(parent, name, None, || Inode::Status))
            }
            _ => Err(libc::ENOENT),
        }
    }

    // ---- attributes ----

    pub fn getattr(&self, ino: Ino) -> VfsResult<Attr> {
        let record = self.record(ino)?;
        let virtual_dir = |perm| Attr {
            ino,
            kind: EntryKind::Dir,
            size: 0,
            blocks: 0,
            perm,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            caching: Caching::Briefly,
        };
        Ok(match &record.inode {
            Inode::Root | Inode::Group(_) => {
                let changed = *self.layout_changed.lock().unwrap();
                Attr {
                    mtime: changed,
                    ctime: changed,
                    ..virtual_dir(0o555)
                }
            }
            Inode::Snapshot(s) => {
                let time = SystemTime::from(s.time);
                Attr {
                    atime: time,
                    mtime: time,
                    ctime: time,
                    caching: Caching::Forever,
                    ..virtual_dir(0o755)
                }
            }
            Inode::Link(target) => {
                let size = target.len() as u64;
                Attr {
                    kind: EntryKind::Symlink,
                    size,
                    perm: 0o777,
                    nlink: 1,
                    ..virtual_dir(0o777)
                }
            }
            Inode::Status => {
                // A new mtime for a new text makes the kernel drop the one it cached.
                let text = self.status_text();
                Attr {
                    kind: EntryKind::File,
                    size: text.bytes.len() as u64,
                    perm: 0o444,
                    nlink: 1,
                    mtime: text.made,
                    ctime: text.made,
                    caching: Caching::Never,
                    ..virtual_dir(0o444)
                }
            }
            Inode::Entry { .. } => {
                let node = self.entry_node(&record)?.ok_or(libc::EIO)?;
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
        })
    }

    pub fn readlink(&self, ino: Ino) -> VfsResult<Vec<u8>> {
        let record = self.record(ino)?;
        if let Inode::Link(target) = &record.inode {
            return Ok(target.clone());
        }
        match self.entry_node(&record)? {
            Some(node) if node.kind == NodeKind::Symlink => Ok(node.link_target.clone()),
            _ => Err(libc::EINVAL),
        }
    }

    // ---- directories ----

    /// Every entry of a directory, `.` and `..` first.
    pub fn list(&self, ino: Ino) -> VfsResult<Vec<DirEntry>> {
        let mut out = Vec::new();
        self.read_dir(ino, 0, |_, entry| {
            out.push(entry);
            false
        })?;
        Ok(out)
    }

    /// The entries of directory `ino` from position `offset` on (`.` is 0
    /// and `..` is 1), each passed to `add` with the position after it,
    /// until `add` says the kernel's buffer is full. Listings carry no
    /// handle (the kernel opens directories itself, see `crate::fuse`): in
    /// a snapshot directory a position is an index into its tree, so a
    /// batch costs only its own entries, however large the directory.
    pub fn read_dir(
        &self,
        ino: Ino,
        offset: u64,
        mut add: impl FnMut(u64, DirEntry) -> bool,
    ) -> VfsResult<()> {
        let record = self.record(ino)?;
        let dots = [(ino, &b"."[..]), (record.parent, &b".."[..])];
        for (position, (dot_ino, name)) in dots.into_iter().enumerate().skip(offset as usize) {
            let entry = DirEntry {
                ino: dot_ino,
                name: name.to_vec(),
                kind: EntryKind::Dir,
            };
            if add(position as u64 + 1, entry) {
                return Ok(());
            }
        }
        let first = offset.saturating_sub(2) as usize;
        if let Inode::Root | Inode::Group(_) = &record.inode {
            let entries = self.virtual_entries(ino, &record.inode)?;
            for (index, entry) in entries.into_iter().enumerate().skip(first) {
                if add(index as u64 + 3, entry) {
                    break;
                }
            }
            return Ok(());
        }
        let (snapshot, view, tree_id) = self.snapshot_dir(ino, &record.inode)?;
        let tree = self.tree(&tree_id, ino)?;
        for (index, node) in tree.nodes.iter().enumerate().skip(first) {
            let entry = DirEntry {
                ino: self.entry_child(ino, &snapshot, view, (&tree_id, &tree), index)?,
                name: node.name.clone(),
                kind: entry_kind(node.kind),
            };
            if add(index as u64 + 3, entry) {
                break;
            }
        }
        Ok(())
    }

    /// The entries of a directory above the snapshots (the root, `ids/`,
    /// `hosts/`...), without `.` and `..`.
    fn virtual_entries(&self, ino: Ino, inode: &Inode) -> VfsResult<Vec<DirEntry>> {
        let mut out = Vec::new();
        let layout = self.layout();
        let add_scoped = |out: &mut Vec<DirEntry>, scope: &Scope| {
            let members = layout.members(scope);
            for i in &members {
                let snapshot = Arc::clone(&layout.snapshots[*i]);
                let name = layout.labels[*i].as_bytes();
                let child = self
                    .inodes
                    .child(ino, name, None, || Inode::Snapshot(snapshot));
                out.push(DirEntry {
                    ino: child,
                    name: name.to_vec(),
                    kind: EntryKind::Dir,
                });
            }
            if !members.is_empty() {
                if let Ok(child) = self.lookup_scoped(ino, b"latest", scope, false) {
                    out.push(DirEntry {
                        ino: child,
                        name: b"latest".to_vec(),
                        kind: EntryKind::Symlink,
                    });
                }
            }
        };
        match inode {
            Inode::Root => {
                for name in [".rewind", "hosts", "ids", "tags"] {
                    let child = self.lookup_scoped(ino, name.as_bytes(), &Scope::All, true)?;
                    out.push(DirEntry {
                        ino: child,
                        name: name.as_bytes().to_vec(),
                        kind: EntryKind::Dir,
                    });
                }
                add_scoped(&mut out, &Scope::All);
            }
            Inode::Group(Group::Scoped(scope)) => add_scoped(&mut out, scope),
            Inode::Group(group) => {
                let names: Vec<String> = match group {
                    Group::Ids => layout.snapshots.iter().map(|s| s.id.short()).collect(),
                    Group::Hosts => layout.hosts.keys().cloned().collect(),
                    Group::Tags => layout.tags.keys().cloned().collect(),
                    Group::Control => vec!["status".into()],
                    Group::Scoped(_) => unreachable!("handled above"),
                };
                let kind = match group {
                    Group::Ids => EntryKind::Symlink,
                    Group::Control => EntryKind::File,
                    _ => EntryKind::Dir,
                };
                for name in names {
                    let child = self.lookup_group(ino, name.as_bytes(), group)?;
                    out.push(DirEntry {
                        ino: child,
                        name: name.into_bytes(),
                        kind,
                    });
                }
            }
            _ => return Err(libc::ENOTDIR),
        }
        Ok(out)
    }

    // ---- extended attributes ----

    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> VfsResult<Vec<u8>> {
        match self.entry_node(&*self.record(ino)?)? {
            Some(node) => node
                .xattrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or(libc::ENODATA),
            _ => Err(libc::ENODATA),
        }
    }

    /// Attribute names, each followed by a NUL, as listxattr returns them.
    pub fn listxattr(&self, ino: Ino) -> VfsResult<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(node) = self.entry_node(&*self.record(ino)?)? {
            for (name, _) in &node.xattrs {
                out.extend_from_slice(name);
                out.push(0);
            }
        }
        Ok(out)
    }

    // ---- files ----

    /// The read state of file `ino` (whose record is `record`), made at
    /// its first read.
    fn reader(&self, ino: Ino, record: &inodes::Record) -> VfsResult<Arc<Reader>> {
        if let Some(reader) = self.readers.lock().unwrap().get(&ino) {
            return Ok(Arc::clone(reader));
        }
        let reader = match (&record.inode, self.entry_node(record)?) {
            (Inode::Entry { snapshot, .. }, Some(node)) if node.kind == NodeKind::File => {
                let starts = node
                    .content
                    .iter()
                    .scan(0u64, |offset, extent| {
                        let start = *offset;
                        *offset += extent.len();
                        Some(start)
                    })
                    .collect();
                self.read_ahead_siblings(&node);
                Arc::new(Reader {
                    ino,
                    snapshot: Arc::clone(snapshot),
                    node,
                    starts,
                    last_end: AtomicU64::new(0),
                    readahead_until: AtomicUsize::new(0),
                    hinted_until: AtomicUsize::new(0),
                })
            }
            (Inode::Entry { .. } | Inode::Link(_), _) => return Err(libc::EINVAL),
            _ => return Err(libc::EISDIR),
        };
        self.readers.lock().unwrap().put(ino, Arc::clone(&reader));
        Ok(reader)
    }

    /// Up to `size` bytes of file `ino` at `offset`. Every byte comes from
    /// a chunk that passed its AEAD tag and BLAKE3 id check; a chunk that
    /// fails gives EIO.
    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> VfsResult<Vec<u8>> {
        let record = self.record(ino)?;
        if let Inode::Status = record.inode {
            // Not counted: reading the status must not change it.
            let text = self.status_text();
            let start = (offset as usize).min(text.bytes.len());
            let end = start.saturating_add(size as usize).min(text.bytes.len());
            return Ok(text.bytes[start..end].to_vec());
        }
        let reader = self.reader(ino, &record)?;
        // The scrub yields to readers of backups, not of the status file.
        self.last_read_ms.store(
            self.mounted_at.elapsed().unwrap_or_default().as_millis() as u64,
            Relaxed,
        );
        let data = self.read_content(&reader, offset, size)?;
        self.stats.reads.fetch_add(1, Relaxed);
        self.stats
            .bytes_served
            .fetch_add(data.len() as u64, Relaxed);
        Ok(data)
    }

    fn read_content(&self, reader: &Reader, offset: u64, size: u32) -> VfsResult<Vec<u8>> {
        let (node, starts) = (&reader.node, &reader.starts);
        if offset >= node.size {
            return Ok(Vec::new());
        }
        let end = node.size.min(offset + size as u64);
        let sequential = reader.last_end.swap(end, Relaxed) == offset;
        let mut out = Vec::with_capacity((end - offset) as usize);
        // O(log n): the extent holding `offset`.
        let mut i = starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let mut position = offset;
        while position < end && i < node.content.len() {
            let start = starts[i];
            let extent = &node.content[i];
            let take_end = end.min(start + extent.len());
            match extent {
                Extent::Data { id, len } => {
                    let chunk = self.chunk(reader, id)?;
                    if chunk.len() != *len as usize {
                        self.report_bad_chunk(reader, id, "has the wrong length");
                        return Err(libc::EIO);
                    }
                    out.extend_from_slice(
                        &chunk[(position - start) as usize..(take_end - start) as usize],
                    );
                    // A sequential reader is done with it, and the kernel keeps
                    // the pages: holding it too would only cost memory.
                    if sequential && take_end == start + extent.len() {
                        self.chunks.remove(id);
                    }
                }
                Extent::Hole { .. } => out.resize(out.len() + (take_end - position) as usize, 0),
            }
            position = take_end;
            if position == start + extent.len() {
                i += 1;
            }
        }
        out.resize((end - offset) as usize, 0);
        if sequential {
            self.read_ahead(reader, i);
        }
        Ok(out)
    }

    /// Hands the first chunks of the files after `entry` in its directory
    /// to the read-ahead workers, up to a window ahead of it.
    fn read_ahead_siblings(&self, entry: &EntryNode) {
        let Some(queue) = &self.readahead else { return };
        let mut queued = self.siblings_queued.lock().unwrap();
        let from = queued
            .get(&entry.tree_id)
            .copied()
            .unwrap_or(0)
            .max(entry.index + 1);
        let nodes = &entry.tree.nodes;
        let last = (entry.index + SIBLING_WINDOW_FILES).min(nodes.len().saturating_sub(1));
        let mut window_bytes = 0u64;
        let mut next = entry.index + 1;
        while next <= last && window_bytes < SIBLING_WINDOW_BYTES {
            let node = &nodes[next];
            if node.kind == NodeKind::File {
                window_bytes += node.size;
                if next >= from {
                    let first_chunks = node.content.iter().take(self.options.readahead_chunks);
                    for extent in first_chunks {
                        if let Extent::Data { id, .. } = extent {
                            if !self.chunks.contains(id) && !queue.offer(*id) {
                                // The workers are busy: try again from here.
                                queued.put(entry.tree_id, next);
                                return;
                            }
                        }
                    }
                }
            }
            next += 1;
        }
        queued.put(entry.tree_id, next.max(from));
    }

    /// Hands the next chunks of a sequential reader to the read-ahead workers.
    fn read_ahead(&self, reader: &Reader, next: usize) {
        let Some(queue) = &self.readahead else { return };
        let node = &reader.node;
        let until = (next + self.options.readahead_chunks).min(node.content.len());
        let hint_until = (until + PACK_HINT_CHUNKS).min(node.content.len());
        let hint_from = reader
            .hinted_until
            .fetch_max(hint_until, Relaxed)
            .max(until);
        if hint_from < hint_until {
            let ids: Vec<Id> = node.content[hint_from..hint_until]
                .iter()
                .filter_map(|extent| match extent {
                    Extent::Data { id, .. } => Some(*id),
                    Extent::Hole { .. } => None,
                })
                .collect();
            if let Some(Ok(repo)) = self.indexed.get() {
                repo.prefetch_blobs(&ids);
            }
        }
        let from = reader.readahead_until.load(Relaxed).max(next);
        for extent in node.content.get(from..until).unwrap_or_default() {
            if let Extent::Data { id, .. } = extent {
                if !self.chunks.contains(id) && !queue.offer(*id) {
                    return; // the workers are busy; the reader fetches itself
                }
            }
        }
        reader.readahead_until.fetch_max(until, Relaxed);
    }

    fn chunk(&self, reader: &Reader, id: &Id) -> VfsResult<cache::Chunk> {
        let repo = self.wait_index()?;
        let fetch = || {
            if self.known_damaged(repo, id) {
                return Err(crate::Error::corrupt("the scrub found it damaged"));
            }
            repo.read_blob_framed(id).map(cache::chunk)
        };
        match self.chunks.get_or_fetch(id, fetch) {
            Ok((chunk, source)) => {
                if source == cache::Source::Fetched {
                    self.stats.chunks_verified.fetch_add(1, Relaxed);
                }
                Ok(chunk)
            }
            Err(e) => {
                self.report_bad_chunk(reader, id, &e);
                Err(libc::EIO)
            }
        }
    }

    fn known_damaged(&self, repo: &Repository, id: &Id) -> bool {
        let damaged = self.damaged.read().unwrap();
        if damaged.is_empty() {
            return false;
        }
        let index = repo.index();
        damaged.contains(id)
            || index
                .get(id)
                .is_some_and(|l| damaged.contains(&index.pack(l.pack()).id))
    }

    fn report_bad_chunk(&self, reader: &Reader, id: &Id, problem: &str) {
        self.stats.eio.fetch_add(1, Relaxed);
        let pack = match self.indexed.get() {
            Some(Ok(repo)) => {
                let index = repo.index();
                index
                    .get(id)
                    .map(|l| index.pack(l.pack()).id.short())
                    .unwrap_or_else(|| "none (not indexed)".into())
            }
            _ => "unknown (no index)".into(),
        };
        let path = self.inodes.path_of(reader.ino);
        self.record_error(format!(
            "EIO: snapshot {} path {path}: chunk {} in pack {pack}: {problem}",
            reader.snapshot.id.short(),
            id.short()
        ));
    }

    // ---- status ----

    fn write_status_text(&self) {
        let text = StatusText {
            bytes: self.status().into_bytes(),
            made: SystemTime::now(),
        };
        *self.status_text.lock().unwrap() = Arc::new(text);
    }

    fn status_text(&self) -> Arc<StatusText> {
        Arc::clone(&self.status_text.lock().unwrap())
    }

    /// `.rewind/status`: JSON for admins and monitoring.
    pub fn status(&self) -> String {
        let layout = self.layout();
        let index_loaded = self.indexed.get().is_some();
        let mut status = json!({
            "repository": self.repo.location(),
            "snapshots": layout.snapshots.len(),
            "newest_snapshot": layout.snapshots.last().map(|s| s.time_label()),
            "mounted_at": chrono::DateTime::<chrono::Utc>::from(self.mounted_at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "index_loaded": index_loaded,
            "inodes": self.inodes.len(),
            "cache": {
                "hits": self.chunks.hits.load(Relaxed),
                "misses": self.chunks.misses.load(Relaxed),
                "bytes": self.chunks.bytes(),
                "budget": self.options.cache_bytes,
            },
            "reads": self.stats.reads.load(Relaxed),
            "bytes_served": self.stats.bytes_served.load(Relaxed),
            "reads_verified": self.stats.chunks_verified.load(Relaxed),
            "eio_count": self.stats.eio.load(Relaxed),
            "recent_errors": self.stats.recent_errors.lock().unwrap().iter().collect::<Vec<_>>(),
        });
        if let Some(extra) = self.status_extra.lock().unwrap().as_ref() {
            if let (Some(map), serde_json::Value::Object(more)) = (status.as_object_mut(), extra())
            {
                map.extend(more);
            }
        }
        let mut text = serde_json::to_string_pretty(&status).expect("status serializes");
        text.push('\n');
        text
    }
}

impl Drop for Vfs {
    fn drop(&mut self) {
        if let Some(readahead) = &self.readahead {
            readahead.close();
        }
    }
}

#[cfg(test)]
mod tests;
