//! The local cache (`CachedBackend`) through the library, around a local
//! repository seen through a backend that counts what is read from it.
//! Each "process" is a new cache backend over the same cache directory.
//! A second open reads index files, manifests, key files and the packs
//! trees come from out of the cache; damaged cached copies (flipped,
//! truncated) are fetched again, never trusted; what a forget and a prune
//! elsewhere removed leaves the cache; config, locks and parity never enter
//! it; threads sharing one cold cache all read right.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod common;

use common::{Counting, Read};
use rewind::format::FileType;
use rewind::{
    backup, cache_dir_for, default_cache_root, prune, Backend, BackupOptions, CachedBackend,
    Encryption, ErrorKind, Extent, Id, LocalBackend, LockKind, Opened, PruneOptions, Repository,
    Snapshot, Source,
};

const PASSWORD: &[u8] = b"cached";

/// A repository, a cache directory for it, and a source tree to back up.
struct Fixture {
    _scratch: tempfile::TempDir,
    repository: PathBuf,
    cache: PathBuf,
    source: PathBuf,
}

/// One process's view: the counting store under a fresh cache backend.
struct Process {
    store: Arc<Counting>,
    backend: Arc<dyn Backend>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_parity(0)
    }

    fn with_parity(parity_percent: u32) -> Fixture {
        let scratch = tempfile::tempdir().unwrap();
        let fixture = Fixture {
            repository: scratch.path().join("repository"),
            cache: scratch.path().join("cache"),
            source: scratch.path().join("source"),
            _scratch: scratch,
        };
        write_source(&fixture.source, 1);
        Repository::init_with(
            fixture.plain(),
            Encryption::Aes256Gcm,
            parity_percent,
            Some(PASSWORD),
        )
        .unwrap();
        fixture
    }

    /// The repository without a cache, as another machine sees it.
    fn plain(&self) -> Arc<dyn Backend> {
        Arc::new(LocalBackend::new(&self.repository))
    }

    fn process(&self) -> Process {
        let store = Arc::new(Counting::new(&self.repository));
        let backend = CachedBackend::new(store.clone(), &self.cache).unwrap();
        Process {
            store,
            backend: Arc::new(backend),
        }
    }

    fn back_up(&self, backend: Arc<dyn Backend>) -> Snapshot {
        let opened = open(backend);
        let lock = opened.lock(LockKind::Shared, "backup").unwrap();
        let (repo, errors) = opened.load_index().unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let options = BackupOptions {
            host: "cached".into(),
            ..BackupOptions::default()
        };
        let source = Source::Paths(vec![self.source.clone()]);
        backup(Arc::new(repo), source, &options, Some(&lock))
            .unwrap()
            .snapshot
    }

    fn cached_names(&self, kind: FileType) -> BTreeSet<String> {
        names_of(&self.cache, kind)
    }

    fn stored_names(&self, kind: FileType) -> BTreeSet<String> {
        names_of(&self.repository, kind)
    }

    fn cached_path(&self, kind: FileType, name: &str) -> PathBuf {
        self.cache.join(kind.path(name))
    }
}

/// Files of a kind in a directory laid out as a repository.
fn names_of(root: &Path, kind: FileType) -> BTreeSet<String> {
    let base = root.join(kind.dir());
    let dirs: Vec<PathBuf> = if kind == FileType::Pack {
        entries(&base).into_iter().map(|n| base.join(n)).collect()
    } else {
        vec![base]
    };
    dirs.iter().flat_map(|dir| entries(dir)).collect()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// A small tree whose content depends on `generation`: each generation
/// changes one directory and keeps another.
fn write_source(source: &Path, generation: u32) {
    let kept = source.join("kept/deeper");
    let changing = source.join("changing");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::create_dir_all(&changing).unwrap();
    for n in 0..5u32 {
        let content: Vec<u8> = (0..4000 + n * 997).map(|i| (i * 31 + n) as u8).collect();
        std::fs::write(kept.join(format!("file-{n}")), content).unwrap();
    }
    std::fs::write(
        changing.join(format!("generation-{generation}")),
        format!("generation {generation}\n").repeat(100),
    )
    .unwrap();
}

fn open(backend: Arc<dyn Backend>) -> Repository<Opened> {
    Repository::open(backend, || Ok(PASSWORD.to_vec())).unwrap()
}

fn open_indexed(backend: Arc<dyn Backend>) -> Repository {
    let (repo, errors) = open(backend).load_index().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    repo
}

/// Every file below a tree with its content, and how many data blobs
/// were read to get it.
fn files_of(repo: &Repository, tree: &Id) -> (BTreeMap<String, Vec<u8>>, usize) {
    let mut files = BTreeMap::new();
    let mut data_blobs = 0;
    let mut pending = vec![(String::new(), *tree)];
    while let Some((path, tree)) = pending.pop() {
        for node in repo.read_tree(&tree).unwrap().nodes {
            let path = format!("{path}/{}", node.name_lossy());
            if let Some(subtree) = node.subtree {
                pending.push((path, subtree));
                continue;
            }
            let mut content = Vec::new();
            for extent in &node.content {
                match extent {
                    Extent::Data { id, .. } => {
                        data_blobs += 1;
                        content.extend(repo.read_blob(id).unwrap());
                    }
                    Extent::Hole { len } => content.resize(content.len() + *len as usize, 0),
                }
            }
            files.insert(path, content);
        }
    }
    (files, data_blobs)
}

/// What a command like `ls` reads: the snapshots, the index, every tree.
fn read_everything(backend: Arc<dyn Backend>) -> (Vec<Snapshot>, BTreeMap<String, Vec<u8>>) {
    let snapshots = open(backend.clone()).snapshots().unwrap();
    let repo = open_indexed(backend);
    let mut files = BTreeMap::new();
    for snapshot in &snapshots {
        files.extend(files_of(&repo, &snapshot.tree).0);
    }
    (snapshots, files)
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn assert_sound(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert_eq!(Id::of_bytes(&bytes).to_hex(), name, "{}", path.display());
}

fn some(names: &BTreeSet<String>) -> String {
    names.iter().next().expect("one at least").clone()
}

#[test]
fn a_second_open_reads_metadata_and_trees_from_the_cache() {
    let fixture = Fixture::new();
    let snapshot = fixture.back_up(fixture.plain());
    let (expected, data_blobs) = files_of(&open_indexed(fixture.plain()), &snapshot.tree);
    let read_all = |process: &Process| {
        let opened = open(process.backend.clone());
        assert_eq!(opened.snapshots().unwrap(), vec![snapshot.clone()]);
        let (repo, errors) = opened.load_index().unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            files_of(&repo, &snapshot.tree),
            (expected.clone(), data_blobs)
        );
    };

    let cold = fixture.process();
    read_all(&cold);
    let store = &cold.store;
    assert_eq!(store.reads(FileType::Key, Read::Whole), 1);
    let index_files = fixture.stored_names(FileType::Index).len();
    assert_eq!(store.reads(FileType::Index, Read::Whole), index_files);
    assert_eq!(store.reads(FileType::Snapshot, Read::Whole), 1);
    // The packs trees came from are fetched whole and kept; data blobs are
    // read by range from the store, and their packs never kept.
    let kept_packs = fixture.cached_names(FileType::Pack).len();
    assert!(kept_packs > 0);
    assert!(kept_packs < fixture.stored_names(FileType::Pack).len());
    assert_eq!(store.reads(FileType::Pack, Read::Whole), kept_packs);
    assert_eq!(store.reads(FileType::Pack, Read::Range), data_blobs);

    let warm = fixture.process();
    read_all(&warm);
    let store = &warm.store;
    for kind in [FileType::Key, FileType::Index, FileType::Snapshot] {
        assert_eq!(store.reads(kind, Read::Whole), 0, "{kind:?} read again");
    }
    assert_eq!(store.reads(FileType::Pack, Read::Whole), 0);
    assert_eq!(store.reads(FileType::Pack, Read::Range), data_blobs);

    for kind in [FileType::Key, FileType::Index, FileType::Snapshot] {
        assert_eq!(fixture.cached_names(kind), fixture.stored_names(kind));
    }
    assert_private(&fixture.cache);
    assert!(fixture.cache.join("CACHEDIR.TAG").exists());
}

/// Every file in the cache is the user's alone, and so is every directory.
fn assert_private(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        if entry.file_type().unwrap().is_dir() {
            assert_eq!(mode, 0o700, "{}", entry.path().display());
            assert_private(&entry.path());
        } else {
            assert_eq!(mode, 0o600, "{}", entry.path().display());
        }
    }
}

#[test]
fn a_cached_pack_serves_ranged_reads() {
    let fixture = Fixture::new();
    fixture.back_up(fixture.plain());
    read_everything(fixture.process().backend);
    let pack = some(&fixture.cached_names(FileType::Pack));
    let stored = std::fs::read(fixture.repository.join(FileType::Pack.path(&pack))).unwrap();

    let process = fixture.process();
    for (offset, length) in [(0, 16), (7, 100), (stored.len() as u64 - 9, 9)] {
        let bytes = process
            .backend
            .read_range(FileType::Pack, &pack, offset, length)
            .unwrap();
        assert_eq!(bytes, &stored[offset as usize..][..length as usize]);
    }
    let beyond = process
        .backend
        .read_range(FileType::Pack, &pack, stored.len() as u64 - 8, 9)
        .unwrap_err();
    assert_eq!(beyond.kind(), ErrorKind::Corrupt, "{beyond}");
    assert_eq!(process.store.reads(FileType::Pack, Read::Range), 0);
    assert_eq!(process.store.reads(FileType::Pack, Read::Whole), 0);
}

#[test]
fn damaged_cached_copies_are_fetched_again() {
    let fixture = Fixture::new();
    fixture.back_up(fixture.plain());
    let expected = read_everything(fixture.process().backend);

    let key = some(&fixture.cached_names(FileType::Key));
    let index = some(&fixture.cached_names(FileType::Index));
    let snapshot = some(&fixture.cached_names(FileType::Snapshot));
    let pack = some(&fixture.cached_names(FileType::Pack));
    truncate(&fixture.cached_path(FileType::Key, &key), 0);
    flip_a_byte(&fixture.cached_path(FileType::Index, &index));
    truncate(&fixture.cached_path(FileType::Snapshot, &snapshot), 20);
    flip_a_byte(&fixture.cached_path(FileType::Pack, &pack));

    let process = fixture.process();
    assert_eq!(read_everything(process.backend.clone()), expected);
    for kind in [
        FileType::Key,
        FileType::Index,
        FileType::Snapshot,
        FileType::Pack,
    ] {
        assert_eq!(process.store.reads(kind, Read::Whole), 1, "{kind:?}");
    }
    assert_sound(&fixture.cached_path(FileType::Key, &key));
    assert_sound(&fixture.cached_path(FileType::Index, &index));
    assert_sound(&fixture.cached_path(FileType::Snapshot, &snapshot));
    assert_sound(&fixture.cached_path(FileType::Pack, &pack));

    // Damage while a process runs: whole files are checked at every read,
    // a pack again once its file changed.
    let repo = open_indexed(process.backend.clone());
    flip_a_byte(&fixture.cached_path(FileType::Index, &index));
    truncate(&fixture.cached_path(FileType::Pack, &pack), 100);
    assert!(repo.reload_index().unwrap().is_empty());
    let snapshots = repo.snapshots().unwrap();
    let mut files = BTreeMap::new();
    for snapshot in &snapshots {
        files.extend(files_of(&repo, &snapshot.tree).0);
    }
    assert_eq!((snapshots, files), expected);
    assert_eq!(process.store.reads(FileType::Index, Read::Whole), 2);
    assert_eq!(process.store.reads(FileType::Pack, Read::Whole), 2);
    assert_sound(&fixture.cached_path(FileType::Index, &index));
    assert_sound(&fixture.cached_path(FileType::Pack, &pack));
}

#[test]
fn files_gone_from_the_repository_leave_the_cache() {
    let fixture = Fixture::new();
    let first = fixture.back_up(fixture.plain());
    write_source(&fixture.source, 2);
    let second = fixture.back_up(fixture.plain());
    read_everything(fixture.process().backend);
    let cached_packs = fixture.cached_names(FileType::Pack);
    assert_eq!(fixture.cached_names(FileType::Snapshot).len(), 2);

    // Another machine forgets the first snapshot and prunes.
    let elsewhere = open(fixture.plain());
    elsewhere.forget_snapshot(&first).unwrap();
    let lock = elsewhere.lock(LockKind::Exclusive, "prune").unwrap();
    let (repo, _) = elsewhere.load_index().unwrap();
    let options = PruneOptions {
        max_unused: 0.0,
        ..PruneOptions::default()
    };
    prune(&repo, Some(&lock), &options, &rewind::Progress::default()).unwrap();
    drop(lock);
    let stored_packs = fixture.stored_names(FileType::Pack);
    assert!(
        !cached_packs.is_subset(&stored_packs),
        "the prune removed no tree pack the cache holds, so this test tests nothing"
    );

    let process = fixture.process();
    let opened = open(process.backend.clone());
    assert_eq!(opened.snapshots().unwrap(), vec![second.clone()]);
    let (tombstones, errors) = opened.tombstones().unwrap();
    assert!(errors.is_empty() && tombstones.len() == 1);
    let (repo, errors) = opened.load_index().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    for kind in [FileType::Snapshot, FileType::Index, FileType::Forgotten] {
        assert_eq!(
            fixture.cached_names(kind),
            fixture.stored_names(kind),
            "{kind:?}"
        );
    }
    assert!(fixture
        .cached_names(FileType::Pack)
        .is_subset(&stored_packs));
    let (files, _) = files_of(&repo, &second.tree);
    let (expected, _) = files_of(&open_indexed(fixture.plain()), &second.tree);
    assert_eq!(files, expected);

    // A forget through the cache takes the cached manifest with it.
    open(process.backend.clone())
        .forget_snapshot(&second)
        .unwrap();
    assert!(fixture.cached_names(FileType::Snapshot).is_empty());
}

#[test]
fn config_locks_and_parity_are_never_cached() {
    let fixture = Fixture::with_parity(10);
    let process = fixture.process();
    fixture.back_up(process.backend.clone());
    assert!(!fixture.stored_names(FileType::Parity).is_empty());

    let opened = open(process.backend.clone());
    let lock = opened.lock(LockKind::Shared, "backup").unwrap();
    assert_eq!(opened.locks().unwrap().len(), 1);
    assert_eq!(opened.locks().unwrap().len(), 1);
    drop(lock);
    open(process.backend.clone());

    // Read from the store at every open, and never kept.
    assert_eq!(process.store.reads(FileType::Config, Read::Whole), 3);
    assert!(process.store.reads(FileType::Lock, Read::Whole) >= 2);
    assert!(!fixture.cache.join("config").exists());
    assert!(fixture.cached_names(FileType::Lock).is_empty());
    assert!(fixture.cached_names(FileType::Parity).is_empty());
    // The key file was read once and kept; index files were kept as they
    // were written, and never read back from the store.
    assert_eq!(process.store.reads(FileType::Key, Read::Whole), 1);
    assert!(!fixture.cached_names(FileType::Index).is_empty());
    assert_eq!(process.store.reads(FileType::Index, Read::Whole), 0);
}

#[test]
fn threads_sharing_a_cold_cache_all_read_right() {
    let fixture = Fixture::new();
    fixture.back_up(fixture.plain());
    write_source(&fixture.source, 2);
    fixture.back_up(fixture.plain());
    let expected = read_everything(fixture.plain());

    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| read_everything(fixture.process().backend)))
            .collect();
        for reader in readers {
            assert_eq!(reader.join().unwrap(), expected);
        }
    });
    let leftovers: Vec<String> = [FileType::Index, FileType::Snapshot, FileType::Pack]
        .into_iter()
        .flat_map(|kind| fixture.cached_names(kind))
        .filter(|name| name.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn each_repository_location_has_its_own_cache_directory() {
    let root = Path::new("/var/cache/rewind");
    let local = cache_dir_for(root, "/srv/backup/repo");
    assert_eq!(local, cache_dir_for(root, "/srv/backup/repo"));
    assert_ne!(local, cache_dir_for(root, "s3://backups/host1"));
    assert_eq!(local.parent(), Some(root));
    if let Some(root) = default_cache_root() {
        assert!(root.ends_with("rewind"), "{}", root.display());
    }
}
