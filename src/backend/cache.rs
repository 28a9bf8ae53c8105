//! A local cache in front of any backend (`docs/design.md`, section 7): the
//! files nearly every command reads again (key files, index files, snapshot
//! manifests, tombstones, deletion plans, audit records, and the packs that
//! directory trees are read from), kept whole in a directory on this
//! machine, so that `snapshots`, `ls`, a mount's first listing and the
//! audit record every writing command appends do not download them from a
//! remote store each time.
//!
//! Nothing in the cache is trusted. Every file it keeps is named by the
//! hash of its bytes (`man/rewind-format.5`), so a cached copy is checked
//! against its name when it is read, and one that does not match is
//! removed, logged and fetched again. Files that change under the same name
//! (the config, locks, parity files) are never kept. Listings always ask
//! the store, and cached files it no longer lists are dropped, so the cache
//! follows forget and prune instead of growing forever.
//!
//! The cache serves what the repository reads, not what it stores: `check`
//! and `scrub` verify the store, so they should run without a cache.

use std::collections::{HashMap, HashSet};
use std::fs::{self, DirBuilder, File};
use std::io::{ErrorKind as IoKind, Read};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::atomic::{self, AtomicWrite};
use super::{Backend, FileType, ObjectLock, Retention};
use crate::error::{Error, Result};
use crate::id::Id;

/// The cache directory of the repository at `location` (what its backend's
/// [`Backend::location`] says) under a cache root: one directory per
/// repository, named by the hash of the location, so that any URL makes a
/// safe file name.
pub fn cache_dir_for(root: &Path, location: &str) -> PathBuf {
    root.join(Id::of_bytes(location.as_bytes()).to_hex())
}

/// Where repository caches live unless the user says otherwise: rewind's
/// directory on this machine ([`crate::cache_dir`]), or none when the user
/// has no home to keep it in.
pub fn default_cache_root() -> Option<PathBuf> {
    crate::host::cache_dir().ok()
}

/// Marks the directory as a cache, so that backup tools that honour the
/// convention (<https://bford.info/cachedir/>) leave it out.
const CACHEDIR_TAG: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by rewind.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// A temporary file older than this was left by a killed process.
const ABANDONED_TEMPORARY: Duration = Duration::from_secs(60 * 60);

/// Fetches of packs are serialized per stripe of names, so that threads
/// reading trees of the same pack download it once.
const FETCH_STRIPES: usize = 64;

/// Numbers temporary files apart between the threads of a process.
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// A [`Backend`] that keeps copies of files read from or written to
/// another one in a local directory (see the module documentation).
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    /// Cached packs this process has checked against their names, with the
    /// file it checked: hashing a whole pack again for each tree read
    /// from it would cost more than the cache saves. A file replaced or
    /// rewritten since is checked again; damage that leaves a file's
    /// identity alone is caught by the blob checks of the repository, and
    /// by the next process.
    checked_packs: Mutex<HashMap<String, FileIdentity>>,
    fetches: Vec<Mutex<()>>,
    /// Whether a failure to write the cache was already logged: a full disk
    /// would otherwise log once per file.
    write_failure_logged: AtomicBool,
}

/// What tells one cached file apart from another under the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
}

impl FileIdentity {
    fn of(metadata: &fs::Metadata) -> FileIdentity {
        FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
            len: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
        }
    }
}

/// Kinds of files kept whole as soon as they are read or written: named by
/// their hash, and read by nearly every command.
fn kept_whole(kind: FileType) -> bool {
    match kind {
        FileType::Key
        | FileType::Index
        | FileType::Snapshot
        | FileType::Forgotten
        | FileType::Deletion
        | FileType::Audit => true,
        // The config and parity files change under the same name (an
        // upgrade, a scrub), and locks are rewritten while held. Packs are
        // kept only when trees are read from them.
        FileType::Config | FileType::Lock | FileType::Parity | FileType::Pack => false,
    }
}

fn cached_kind(kind: FileType) -> bool {
    kept_whole(kind) || kind == FileType::Pack
}

/// Whether `name` is a file name the cache may use: the lowercase hex of a
/// hash. Names come from the store's listings, which must not reach
/// outside the cache directory.
fn is_hash_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hashes_to(bytes: &[u8], name: &str) -> bool {
    Id::of_bytes(bytes).to_hex() == name
}

impl CachedBackend {
    /// A cache of `inner` in `dir`, created (private to this user) if it
    /// does not exist. Give each repository its own directory
    /// ([`cache_dir_for`]); several processes may share one.
    pub fn new(inner: Arc<dyn Backend>, dir: &Path) -> Result<CachedBackend> {
        let cannot = |e| Error::io(format!("cannot set up the cache in {}", dir.display()), e);
        create_private_dirs(dir).map_err(cannot)?;
        let tag = dir.join("CACHEDIR.TAG");
        if !tag.exists() {
            write_atomically(&tag, CACHEDIR_TAG).map_err(cannot)?;
        }
        Ok(CachedBackend {
            inner,
            dir: dir.to_path_buf(),
            checked_packs: Mutex::new(HashMap::new()),
            fetches: (0..FETCH_STRIPES).map(|_| Mutex::new(())).collect(),
            write_failure_logged: AtomicBool::new(false),
        })
    }

    /// The cached copy's place: the repository's own layout.
    fn path(&self, kind: FileType, name: &str) -> PathBuf {
        self.dir.join(kind.path(name))
    }

    fn holds(&self, kind: FileType, name: &str) -> bool {
        cached_kind(kind) && is_hash_name(name) && self.path(kind, name).exists()
    }

    /// A whole file, from the cache if it holds a sound copy.
    fn read_kept(&self, kind: FileType, name: &str) -> Result<Vec<u8>> {
        if let Some(bytes) = self.cached_whole(kind, name) {
            return Ok(bytes);
        }
        let bytes = self.inner.read(kind, name)?;
        if hashes_to(&bytes, name) {
            self.keep(kind, name, &bytes);
        }
        // A damaged file in the store is the repository's to report, not
        // the cache's to keep.
        Ok(bytes)
    }

    fn cached_whole(&self, kind: FileType, name: &str) -> Option<Vec<u8>> {
        if !is_hash_name(name) {
            return None;
        }
        let path = self.path(kind, name);
        // A copy that cannot be read is fetched again and replaced.
        let bytes = fs::read(&path).ok()?;
        if hashes_to(&bytes, name) {
            Some(bytes)
        } else {
            self.discard(&path);
            None
        }
    }

    /// `length` bytes at `offset` of a cached pack, if the cache holds a
    /// sound copy.
    fn cached_pack_range(&self, name: &str, offset: u64, length: u32) -> Result<Option<Vec<u8>>> {
        if !is_hash_name(name) {
            return Ok(None);
        }
        let path = self.path(FileType::Pack, name);
        let Ok(mut file) = File::open(&path) else {
            return Ok(None);
        };
        let Ok(metadata) = file.metadata() else {
            return Ok(None);
        };
        let identity = FileIdentity::of(&metadata);
        if self.checked_packs.lock().unwrap().get(name) == Some(&identity) {
            let mut bytes = vec![0; length as usize];
            return match file.read_exact_at(&mut bytes, offset) {
                Ok(()) => Ok(Some(bytes)),
                Err(e) if e.kind() == IoKind::UnexpectedEof => {
                    Err(shorter_than_indexed(name, offset, length))
                }
                Err(_) => Ok(None),
            };
        }
        let mut pack = Vec::with_capacity(metadata.len() as usize);
        if file.read_to_end(&mut pack).is_err() {
            return Ok(None);
        }
        if !hashes_to(&pack, name) {
            self.forget_checked(name);
            self.discard(&path);
            return Ok(None);
        }
        self.checked_packs
            .lock()
            .unwrap()
            .insert(name.to_string(), identity);
        range_of(&pack, name, offset, length).map(Some)
    }

    /// Fetches a whole pack, keeps it if it is sound, and returns the range.
    fn fetch_pack_range(&self, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        let stripe = usize::from(u8::from_str_radix(&name[..2], 16).unwrap_or(0)) % FETCH_STRIPES;
        let _one_fetch = self.fetches[stripe].lock().unwrap();
        // Another thread may have fetched it while this one waited.
        if let Some(bytes) = self.cached_pack_range(name, offset, length)? {
            return Ok(bytes);
        }
        let pack = self.inner.read(FileType::Pack, name)?;
        if !hashes_to(&pack, name) {
            // Damaged in the store: the blob asked for may still be sound,
            // and the store says best what it holds.
            return self.inner.read_range(FileType::Pack, name, offset, length);
        }
        if let Some(identity) = self.keep(FileType::Pack, name, &pack) {
            self.checked_packs
                .lock()
                .unwrap()
                .insert(name.to_string(), identity);
        }
        range_of(&pack, name, offset, length)
    }

    /// Keeps a copy of a sound file; a failure costs only a later download,
    /// so it is logged (once) and the read or write goes on.
    fn keep(&self, kind: FileType, name: &str, bytes: &[u8]) -> Option<FileIdentity> {
        if !is_hash_name(name) {
            return None;
        }
        let path = self.path(kind, name);
        match write_atomically(&path, bytes) {
            Ok(identity) => Some(identity),
            Err(e) => {
                if !self.write_failure_logged.swap(true, Ordering::Relaxed) {
                    crate::log::warn(&format!(
                        "cannot write to the cache ({}: {e}); reading from the repository instead",
                        path.display()
                    ));
                }
                None
            }
        }
    }

    fn discard(&self, path: &Path) {
        crate::log::warn(&format!(
            "the cached copy {} does not match its name; it is removed and fetched again",
            path.display()
        ));
        let _ = fs::remove_file(path);
    }

    fn forget_checked(&self, name: &str) {
        self.checked_packs.lock().unwrap().remove(name);
    }

    /// Drops the cached copy of a file the store no longer shows.
    fn drop_one(&self, kind: FileType, name: &str) {
        if cached_kind(kind) && is_hash_name(name) {
            let _ = fs::remove_file(self.path(kind, name));
            self.forget_checked(name);
        }
    }

    /// Removes the cached files of a kind that `keep` rejects, and the
    /// temporary files killed processes left.
    fn drop_cached(&self, kind: FileType, keep: &dyn Fn(&str) -> bool) {
        debug_assert!(
            cached_kind(kind),
            "the config's directory is the cache's root"
        );
        let base = self.dir.join(kind.dir());
        let dirs = if kind == FileType::Pack {
            subdirectories(&base)
        } else {
            vec![base]
        };
        for dir in dirs {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let name = file_name.to_str().unwrap_or_default();
                let drop = if name.starts_with(".tmp-") {
                    is_abandoned(&entry)
                } else {
                    !keep(name)
                };
                if drop {
                    let _ = fs::remove_file(entry.path());
                    if kind == FileType::Pack {
                        self.forget_checked(name);
                    }
                }
            }
        }
    }
}

impl Backend for CachedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn list(&self, kind: FileType) -> Result<Vec<String>> {
        let names = self.inner.list(kind)?;
        if cached_kind(kind) {
            let listed: HashSet<&str> = names.iter().map(String::as_str).collect();
            self.drop_cached(kind, &|name| listed.contains(name));
        }
        Ok(names)
    }

    fn read(&self, kind: FileType, name: &str) -> Result<Vec<u8>> {
        // Whole packs are read to verify or repack them, which must see
        // the store's bytes.
        if kept_whole(kind) {
            self.read_kept(kind, name)
        } else {
            self.inner.read(kind, name)
        }
    }

    fn read_range(&self, kind: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        if kind == FileType::Pack {
            if let Some(bytes) = self.cached_pack_range(name, offset, length)? {
                return Ok(bytes);
            }
        }
        self.inner.read_range(kind, name, offset, length)
    }

    fn read_tree_range(
        &self,
        kind: FileType,
        name: &str,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>> {
        if kind != FileType::Pack || !is_hash_name(name) {
            return self.inner.read_tree_range(kind, name, offset, length);
        }
        match self.cached_pack_range(name, offset, length)? {
            Some(bytes) => Ok(bytes),
            None => self.fetch_pack_range(name, offset, length),
        }
    }

    fn write(&self, kind: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write(kind, name, data)?;
        if kept_whole(kind) && hashes_to(data, name) {
            self.keep(kind, name, data);
        }
        Ok(())
    }

    fn remove(&self, kind: FileType, name: &str) -> Result<()> {
        self.inner.remove(kind, name)?;
        self.drop_one(kind, name);
        Ok(())
    }

    fn hide(&self, kind: FileType, name: &str) -> Result<()> {
        self.inner.hide(kind, name)?;
        self.drop_one(kind, name);
        Ok(())
    }

    fn prefetch(&self, kind: FileType, name: &str, range: Option<(u64, u64)>) {
        if !self.holds(kind, name) {
            self.inner.prefetch(kind, name, range);
        }
    }

    fn size(&self, kind: FileType, name: &str) -> Result<u64> {
        self.inner.size(kind, name)
    }

    fn requests_in_flight(&self) -> Option<usize> {
        self.inner.requests_in_flight()
    }

    fn retain_packs(&self, named: &dyn Fn(&str) -> bool) {
        self.drop_cached(FileType::Pack, named);
        self.inner.retain_packs(named);
    }

    fn check_object_lock(&self) -> Result<()> {
        self.inner.check_object_lock()
    }

    fn set_object_lock(&self, lock: ObjectLock) -> Result<()> {
        self.inner.set_object_lock(lock)
    }

    fn retention(&self, kind: FileType, name: &str) -> Result<Option<Retention>> {
        self.inner.retention(kind, name)
    }

    fn extend_retention(&self, kind: FileType, name: &str, to: Retention) -> Result<()> {
        self.inner.extend_retention(kind, name, to)
    }
}

fn range_of(pack: &[u8], name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
    let end = offset
        .checked_add(u64::from(length))
        .filter(|&end| end <= pack.len() as u64)
        .ok_or_else(|| shorter_than_indexed(name, offset, length))?;
    Ok(pack[offset as usize..end as usize].to_vec())
}

/// A sound pack (it hashes to its name) without the bytes the index says
/// it has: the index is what is wrong.
fn shorter_than_indexed(name: &str, offset: u64, length: u32) -> Error {
    Error::corrupt(format!(
        "{} is shorter than the index says ({length} bytes at offset {offset})",
        FileType::Pack.path(name)
    ))
    .with_hint("run `rewind check --read-data`")
}

fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default()
}

fn is_abandoned(entry: &fs::DirEntry) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > ABANDONED_TEMPORARY)
}

/// Writes a private file under a temporary name and renames it into place,
/// so that a process sharing the cache never sees half of it. There is no
/// fsync: a file a crash leaves torn fails its check against its name and
/// is fetched again. Returns the identity of the file written.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<FileIdentity> {
    let how = AtomicWrite {
        tmp_name: format!(
            ".tmp-{}-{}",
            std::process::id(),
            NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed)
        ),
        mode: 0o600,
        durable: false,
        create_dirs: &create_private_dirs,
    };
    atomic::write_atomically(path, bytes, how).map(|metadata| FileIdentity::of(&metadata))
}
