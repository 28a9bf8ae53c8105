//! The repository: its on-disk format and the operations every command shares.

mod config;
pub mod crypto;
pub mod index;
mod keyfile;
pub mod pack;
pub mod parity;
mod snapshot;
mod tombstone;

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use crate::chunker::ChunkerParams;
pub use crate::id::{Id, IdMap, IdSet};
pub use config::{Config, Encryption, AUTHENTICATED_VERSION, FORMAT_VERSION};
pub use crypto::Keys;
pub use index::{BlobLocation, Index, IndexFile, IndexedPack};
pub use keyfile::{KeyFile, Unwrapped, KEY_FILE_VERSION};
pub use pack::{BlobKind, FinishedPack, PackWriter, PackedBlob};
pub use snapshot::{sort_by_time, Snapshot, Summary, SNAPSHOT_VERSION};
pub use tombstone::{snapshot_key, SnapshotKey, Tombstone, TOMBSTONE_VERSION};

use crate::backend::{Backend, FileType};
use crate::chunker::Chunker;
use crate::error::{Error, ErrorKind, Result, ResultExt};
use crate::tree::Tree;
use crypto::SALT_LEN;

/// Upper bound on a metadata file's decompressed size.
const MAX_METADATA_LEN: usize = 1 << 30;

pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    keys: Keys,
    index: RwLock<Index>,
    /// What the first write brings up to the current format.
    upgrade: Mutex<Option<Upgrade>>,
}

/// An encrypted repository opened with an unauthenticated (version 1)
/// config or a version 1 key file: at its first write the config gets its
/// MAC and the key file is sealed anew as version 2, so that from then on a
/// config without a MAC is refused.
struct Upgrade {
    config: Option<Config>,
    key: Option<(String, KeyFile)>,
}

impl Repository {
    /// Creates a repository. `password` is required unless `encryption` is none.
    pub fn init(
        backend: Arc<dyn Backend>,
        encryption: Encryption,
        password: Option<&[u8]>,
    ) -> Result<Repository> {
        Repository::init_with(backend, encryption, 0, password)
    }

    /// Creates a repository that stores `parity_percent` % of Reed–Solomon
    /// parity beside every file (0: none).
    pub fn init_with(
        backend: Arc<dyn Backend>,
        encryption: Encryption,
        parity_percent: u32,
        password: Option<&[u8]>,
    ) -> Result<Repository> {
        let mut raw_id = [0u8; 32];
        crypto::random_bytes(&mut raw_id)?;
        let mut config = Config::new(Id(raw_id), encryption);
        config.parity_percent = parity_percent;
        backend.create()?;
        let keys = match encryption {
            Encryption::Aes256Gcm => {
                let password = password.ok_or_else(|| {
                    Error::usage("a password is needed for an encrypted repository")
                })?;
                let master = Keys::generate_master()?;
                config.sign(&Config::mac_key(&master));
                let key_file = KeyFile::wrap(&master, password, &hostname())?.to_bytes();
                write_with_parity(
                    &*backend,
                    parity_percent,
                    FileType::Key,
                    &Id::of_bytes(&key_file).to_hex(),
                    &key_file,
                )?;
                Keys::from_master(&master)
            }
            Encryption::None => Keys::unencrypted(&config.id),
        };
        // The config goes last: a directory with a config is a complete repository.
        write_with_parity(
            &*backend,
            parity_percent,
            FileType::Config,
            "config",
            &config.to_bytes(),
        )?;
        Ok(Repository::assemble(backend, config, keys, None))
    }

    /// Opens a repository; `password` is asked for only if the repository is encrypted.
    pub fn open(
        backend: Arc<dyn Backend>,
        password: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Repository> {
        let location = backend.location();
        let config_bytes = backend.read(FileType::Config, "config").map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::new(ErrorKind::NotFound, format!("no repository at {location}"))
                    .with_hint("check --repo / REWIND_REPO, or create one with `rewind init`")
            } else {
                e
            }
        })?;
        let config = Config::from_bytes(&config_bytes, &location)?;
        let names = match backend.list(FileType::Key) {
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            other => other?,
        };
        if config.encryption == Encryption::None {
            if !names.is_empty() {
                return Err(config::tampered(
                    &location,
                    "it says the repository is not encrypted, but the repository has key files",
                ));
            }
            let keys = Keys::unencrypted(&config.id);
            return Ok(Repository::assemble(backend, config, keys, None));
        }
        if names.is_empty() {
            return Err(Error::new(ErrorKind::NotFound, format!("{location} has no key files"))
                .with_hint("the keys/ directory is missing or empty; restore it from a copy of the repository"));
        }
        let (name, key, unwrapped) = unlock(&*backend, &names, &password()?)?;
        let upgrade = authenticate(&config, &name, &key, &unwrapped, &location)?;
        let keys = Keys::from_master(&unwrapped.master);
        Ok(Repository::assemble(backend, config, keys, upgrade))
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        config: Config,
        keys: Keys,
        upgrade: Option<Upgrade>,
    ) -> Repository {
        Repository {
            backend,
            config,
            keys,
            index: RwLock::new(Index::new()),
            upgrade: Mutex::new(upgrade),
        }
    }

    /// Brings a repository opened in an older format up to the current one,
    /// once, before anything else is written to it. The config goes first:
    /// a crash after it leaves an authenticated config that the old key
    /// file still opens, and the next write finishes the upgrade.
    fn upgrade_before_writing(&self) -> Result<()> {
        let mut pending = self.upgrade.lock().unwrap();
        let Some(upgrade) = pending.as_mut() else {
            return Ok(());
        };
        let percent = self.config.parity_percent;
        let backend = &*self.backend;
        if let Some(config) = &upgrade.config {
            write_with_parity(
                backend,
                percent,
                FileType::Config,
                "config",
                &config.to_bytes(),
            )
            .context("upgrading the config to an authenticated one")?;
            upgrade.config = None;
        }
        if let Some((old_name, new_key)) = &upgrade.key {
            let bytes = new_key.to_bytes();
            let name = Id::of_bytes(&bytes).to_hex();
            write_with_parity(backend, percent, FileType::Key, &name, &bytes)
                .context("upgrading the key file")?;
            backend.remove(FileType::Key, old_name)?;
            backend.remove(FileType::Parity, &parity_name(FileType::Key, old_name))?;
        }
        *pending = None;
        Ok(())
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    pub fn chunker(&self) -> Chunker {
        Chunker::new(self.config.chunker, self.keys.chunker_seed())
    }

    pub fn new_pack(&self) -> Result<PackWriter> {
        PackWriter::new(&self.keys, self.config.pack_size as usize)
    }

    // ---- metadata files: salt || sealed(compress(content)) ----

    fn seal_file(&self, content: &[u8]) -> Result<Vec<u8>> {
        let mut salt = [0u8; SALT_LEN];
        crypto::random_bytes(&mut salt)?;
        let mut out = salt.to_vec();
        out.extend(self.keys.sealer(&salt).seal(crypto::compress(
            content,
            self.config.compression_level.max(1),
        )?)?);
        Ok(out)
    }

    fn open_file(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        if bytes.len() < SALT_LEN {
            return Err(Error::corrupt("file is too short"));
        }
        let (salt, sealed) = bytes.split_at(SALT_LEN);
        let payload = self.keys.sealer(salt.try_into().unwrap()).open(sealed)?;
        crypto::decompress(&payload, MAX_METADATA_LEN)
    }

    /// Reads a metadata file and checks it against its name.
    fn read_verified(&self, kind: FileType, name: &str) -> Result<Vec<u8>> {
        let bytes = self.backend.read(kind, name)?;
        if Id::of_bytes(&bytes).to_hex() != name {
            return Err(
                Error::corrupt(format!("{} does not hash to its name", kind.path(name)))
                    .with_hint("the file is damaged; run `rewind check`"),
            );
        }
        self.open_file(&bytes).context(kind.path(name))
    }

    /// Stores a whole file durably, with its parity if the repository keeps it.
    pub fn write_file(&self, kind: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.upgrade_before_writing()?;
        write_with_parity(
            &*self.backend,
            self.config.parity_percent,
            kind,
            name,
            bytes,
        )
    }

    fn write_named(&self, kind: FileType, content: &[u8]) -> Result<Id> {
        let bytes = self.seal_file(content)?;
        let id = Id::of_bytes(&bytes);
        self.write_file(kind, &id.to_hex(), &bytes)?;
        Ok(id)
    }

    // ---- index ----

    /// Loads every index file into memory. Damaged index files are skipped
    /// and reported: the blobs they list are then missing, which `check` shows.
    pub fn load_index(&self) -> Result<Vec<Error>> {
        let names = self.backend.list(FileType::Index)?;
        *self.index.write().unwrap() = Index::new();
        Ok(self.add_index_files(&names))
    }

    /// Adds the given index files to the in-memory index (a running mount
    /// picks up the index files of new backups this way).
    pub fn add_index_files(&self, names: &[String]) -> Vec<Error> {
        let (files, errors) = read_each(names, |name| self.read_index_file(name));
        let mut index = self.index.write().unwrap();
        for file in &files {
            index.add_file(file);
        }
        index.compact();
        errors
    }

    pub fn read_index_file(&self, name: &str) -> Result<IndexFile> {
        let content = self.read_verified(FileType::Index, name)?;
        match content.split_first() {
            Some((&index::INDEX_VERSION, rest)) => postcard::from_bytes(rest)
                .map_err(|e| Error::corrupt(format!("index/{name} does not decode: {e}"))),
            _ => Err(Error::corrupt(format!(
                "index/{name} has an unknown version"
            ))),
        }
    }

    pub fn write_index_file(&self, file: &IndexFile) -> Result<Id> {
        let mut content = vec![index::INDEX_VERSION];
        content.extend(postcard::to_stdvec(file).expect("index serializes"));
        self.write_named(FileType::Index, &content)
    }

    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap()
    }

    pub fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap()
    }

    // ---- packs and blobs ----

    /// Stores a finished pack durably and makes its blobs findable.
    pub fn store_pack(&self, pack: &FinishedPack) -> Result<()> {
        self.write_file(FileType::Pack, &pack.id.to_hex(), &pack.bytes)?;
        self.index_mut().add_pack(pack.id, pack.salt, &pack.blobs);
        Ok(())
    }

    /// A blob's plaintext, verified against its id.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        self.read_blob_framed(id).map(crypto::unframe)
    }

    /// [`Repository::read_blob`], left where it was decoded in its buffer.
    pub fn read_blob_framed(&self, id: &Id) -> Result<pack::Framed> {
        let (location, pack) = {
            let index = self.index();
            let location = index.get(id).ok_or_else(|| {
                Error::corrupt(format!("blob {} is not in the index", id.short()))
                    .with_hint("run `rewind check` to see which snapshots are affected")
            })?;
            (location, *index.pack(location.pack()))
        };
        let stored = self.backend.read_range(
            FileType::Pack,
            &pack.id.to_hex(),
            location.offset as u64,
            location.stored_len,
        )?;
        let claim = pack::BlobClaim {
            id,
            kind: location.kind(),
            raw_len: location.raw_len,
        };
        pack::open_blob_framed(&self.keys, &pack.salt, stored, claim, &self.config.chunker)
            .map_err(|e| e.context(format!("pack {}", pack.id.short())))
    }

    /// Tells the backend which pack bytes these blobs will be read from, so
    /// that it can fetch them while earlier ones are being decoded.
    pub fn prefetch_blobs(&self, ids: &[Id]) {
        let mut ranges: std::collections::HashMap<Id, (u64, u64)> = Default::default();
        {
            let index = self.index();
            for location in ids.iter().filter_map(|id| index.get(id)) {
                let start = location.offset as u64;
                let end = start + location.stored_len as u64;
                let pack = index.pack(location.pack()).id;
                let range = ranges.entry(pack).or_insert((start, end));
                *range = (range.0.min(start), range.1.max(end));
            }
        }
        for (pack, (start, end)) in ranges {
            self.backend
                .prefetch(FileType::Pack, &pack.to_hex(), Some((start, end - start)));
        }
    }

    pub fn read_tree(&self, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(id)?;
        Tree::decode(&bytes).context(format!("tree {}", id.short()))
    }

    // ---- snapshots ----

    /// Every snapshot, oldest first. Damaged manifests are returned as errors
    /// beside the readable ones, so one bad file does not hide the rest.
    pub fn snapshots_with_errors(&self) -> Result<(Vec<Snapshot>, Vec<Error>)> {
        let names = self.backend.list(FileType::Snapshot)?;
        let (mut snapshots, errors) = read_each(&names, |name| self.read_snapshot(name));
        sort_by_time(&mut snapshots);
        Ok((snapshots, errors))
    }

    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let (snapshots, errors) = self.snapshots_with_errors()?;
        for e in errors {
            log::warn(&format!("skipping a damaged snapshot: {e}"));
        }
        Ok(snapshots)
    }

    pub fn read_snapshot(&self, name: &str) -> Result<Snapshot> {
        let content = self.read_verified(FileType::Snapshot, name)?;
        let mut snapshot: Snapshot = serde_json::from_slice(&content)
            .map_err(|e| Error::corrupt(format!("snapshots/{name} does not decode: {e}")))?;
        snapshot.id = Id::from_hex(name)?;
        Ok(snapshot)
    }

    /// Writes a manifest; call only once its trees and data are indexed durably.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let content = serde_json::to_vec(snapshot).expect("snapshots serialize");
        // A copy in a pack, indexed, before the manifest: if the manifest is
        // lost, `scrub --repair` rebuilds it from the packs alone.
        let copy = self.keys.blob_id(&content);
        if !self.index().contains(&copy) {
            let mut writer = self.new_pack()?;
            writer.add(
                BlobKind::Snapshot,
                copy,
                &content,
                self.config.compression_level,
            )?;
            let pack = writer.finish()?;
            self.store_pack(&pack)?;
            self.write_index_file(&IndexFile {
                supersedes: vec![],
                packs: vec![IndexedPack {
                    id: pack.id,
                    salt: pack.salt,
                    blobs: pack.blobs,
                }],
            })?;
        }
        self.write_named(FileType::Snapshot, &content)
    }

    /// The snapshot copies kept in packs (see `save_snapshot`).
    pub fn snapshot_copies(&self) -> Vec<Result<Snapshot>> {
        let ids: Vec<Id> = self
            .index()
            .blobs()
            .filter(|(_, l)| l.kind() == BlobKind::Snapshot)
            .map(|(id, _)| id)
            .collect();
        ids.iter()
            .map(|id| {
                let content = self.read_blob(id)?;
                serde_json::from_slice(&content).map_err(|e| {
                    Error::corrupt(format!("snapshot copy {} does not decode: {e}", id.short()))
                })
            })
            .collect()
    }
}

impl Repository {
    /// Forgets a snapshot: records a tombstone for it, durably, and then
    /// removes its manifest. Its copy in the packs stays until a prune; the
    /// tombstone tells `check` and `scrub --repair` that the manifest is
    /// gone on purpose. A crash in between leaves the snapshot listed, and
    /// forgetting it again finishes the job.
    pub fn forget_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let content = serde_json::to_vec(&Tombstone::of(snapshot)).expect("tombstones serialize");
        let tombstone = self.write_named(FileType::Forgotten, &content)?;
        let name = snapshot.id.to_hex();
        self.backend.remove(FileType::Snapshot, &name)?;
        self.backend
            .remove(FileType::Parity, &parity_name(FileType::Snapshot, &name))?;
        Ok(tombstone)
    }

    pub fn read_tombstone(&self, name: &str) -> Result<Tombstone> {
        let content = self.read_verified(FileType::Forgotten, name)?;
        serde_json::from_slice(&content)
            .map_err(|e| Error::corrupt(format!("forgotten/{name} does not decode: {e}")))
    }

    /// Every tombstone, and the errors of those that cannot be read.
    pub fn tombstones(&self) -> Result<(Vec<Tombstone>, Vec<Error>)> {
        let names = match self.backend.list(FileType::Forgotten) {
            // Repositories made before tombstones existed lack the directory.
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            other => other?,
        };
        Ok(read_each(&names, |name| self.read_tombstone(name)))
    }

    /// Snapshots whose copy in the packs has no manifest among `manifests`
    /// (the readable ones) and no tombstone: their manifest was deleted or
    /// is damaged. Returned beside the errors of unreadable tombstones, any
    /// of which may be the one that explains a copy.
    pub fn snapshots_without_manifest(
        &self,
        manifests: &[Snapshot],
    ) -> Result<(Vec<Snapshot>, Vec<Error>)> {
        let (tombstones, errors) = self.tombstones()?;
        let accounted: std::collections::HashSet<SnapshotKey> = manifests
            .iter()
            .map(snapshot_key)
            .chain(tombstones.iter().map(Tombstone::key))
            .collect();
        let mut missing: Vec<Snapshot> = self
            .snapshot_copies()
            .into_iter()
            // An unreadable copy is damage in a pack, which the pack checks report.
            .filter_map(Result::ok)
            .filter(|copy| !accounted.contains(&snapshot_key(copy)))
            .collect();
        sort_by_time(&mut missing);
        missing.dedup_by(|a, b| snapshot_key(a) == snapshot_key(b));
        Ok((missing, errors))
    }
}

/// Reads each of `names` in parallel: what was read, and the errors of the
/// rest, so that one damaged file does not hide the others.
fn read_each<T: Send>(
    names: &[String],
    read: impl Fn(&str) -> Result<T> + Sync,
) -> (Vec<T>, Vec<Error>) {
    let mut read_ok = Vec::new();
    let mut errors = Vec::new();
    for result in parallel_map(names, |name| read(name)) {
        match result {
            Ok(value) => read_ok.push(value),
            Err(e) => errors.push(e),
        }
    }
    (read_ok, errors)
}

/// Opens the first key file that `password` opens: its name, the file and
/// what it wraps.
fn unlock(
    backend: &dyn Backend,
    names: &[String],
    password: &[u8],
) -> Result<(String, KeyFile, Unwrapped)> {
    let location = backend.location();
    let mut damaged = Vec::new();
    for name in names {
        let key = backend
            .read(FileType::Key, name)
            .and_then(|b| KeyFile::from_bytes(&b));
        match key.and_then(|k| k.unwrap(password).map(|u| (k, u))) {
            Ok((key, unwrapped)) => return Ok((name.clone(), key, unwrapped)),
            Err(e) if e.kind() == ErrorKind::WrongPassword => {}
            Err(e) => damaged.push(format!("keys/{name}: {e}")),
        }
    }
    if damaged.len() == names.len() {
        return Err(Error::corrupt(format!(
            "no key file of {location} can be read ({})",
            damaged.join("; ")
        ))
        .with_hint("restore the keys/ directory from a copy of the repository"));
    }
    Err(Error::new(
        ErrorKind::WrongPassword,
        format!("wrong password for the repository at {location}"),
    )
    .with_hint("check REWIND_PASSWORD or --password-file"))
}

/// Checks the config of an encrypted repository against the master key,
/// and says what the first write must upgrade. A version 1 config has no
/// MAC: it is accepted only with a version 1 key file, since a version 2
/// key file was written beside an authenticated config (the config was
/// then replaced by an older or forged one).
fn authenticate(
    config: &Config,
    key_name: &str,
    key: &KeyFile,
    unwrapped: &Unwrapped,
    location: &str,
) -> Result<Option<Upgrade>> {
    let mac_key = Config::mac_key(&unwrapped.master);
    let config_upgrade = if config.version >= AUTHENTICATED_VERSION {
        config.verify(&mac_key, location)?;
        None
    } else if unwrapped.version >= 2 {
        return Err(config::tampered(
            location,
            &format!("it has no MAC, but the key file keys/{key_name} was made for a repository whose config has one"),
        ));
    } else {
        let mut signed = config.clone();
        signed.sign(&mac_key);
        Some(signed)
    };
    let key_upgrade = if unwrapped.version < KEY_FILE_VERSION {
        Some((key_name.to_string(), key.upgraded(unwrapped)?))
    } else {
        None
    };
    Ok(
        (config_upgrade.is_some() || key_upgrade.is_some()).then_some(Upgrade {
            config: config_upgrade,
            key: key_upgrade,
        }),
    )
}

/// The name of the parity file that protects `name` of `kind`.
pub fn parity_name(kind: FileType, name: &str) -> String {
    match kind {
        FileType::Config => "config".into(),
        other => format!("{}.{name}", other.dir()),
    }
}

/// Stores a file and then, if the repository keeps parity, its parity: a
/// crash between the two leaves a file without parity, which scrub adds.
fn write_with_parity(
    backend: &dyn Backend,
    parity_percent: u32,
    kind: FileType,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    backend.write(kind, name, bytes)?;
    if parity_percent > 0 {
        backend.write(
            FileType::Parity,
            &parity_name(kind, name),
            &parity::compute(bytes, parity_percent)?,
        )?;
    }
    Ok(())
}

/// Runs `f` over items on a few threads, keeping the order of results.
/// Threads take the next item as they become free, so one slow item (a big
/// file among small ones) does not leave the other threads idle.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    if items.len() < 2 {
        return items.iter().map(&f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

use crate::log;
