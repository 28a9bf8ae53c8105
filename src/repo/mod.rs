//! The repository: its on-disk format (`man/rewind-format.5`) and the only
//! door to storage. Nothing outside `repo/` talks to a backend once a
//! repository is open; see `docs/design.md`, "The door to storage".
//!
//! A repository is opened in two steps, told apart by its type:
//! [`Repository::open`] gives a `Repository<Opened>` (config and keys
//! checked; snapshots, tombstones, audit records and stored files
//! readable, audit records appendable), and
//! [`Repository::<Opened>::load_index`] gives the indexed `Repository`, the
//! only state that can read or write blobs.

mod audit;
mod config;
mod confirm;
pub mod crypto;
mod deletion;
mod dir_cursor;
mod grouped;
pub mod index;
mod indexed;
mod key_files;
mod keyfile;
mod lock;
mod needed;
mod open;
pub mod pack;
pub mod parity;
mod rekey;
mod repack;
mod rotation;
mod saver;
mod snapshot;
mod stored;
mod tombstone;
mod verify;

use std::sync::{Arc, Mutex, RwLock};

pub use crate::id::{Id, IdMap, IdSet};
pub use audit::{
    AuditBytes, AuditEntry, AuditFile, AuditRecord, AuditResult, AuditTrail, CopiedRecords,
    AUDIT_RECORD_VERSION,
};
pub use config::{Config, Encryption, AUTHENTICATED_VERSION, FORMAT_VERSION, MAX_LOCK_PERIOD};
pub use crypto::Keys;
pub use deletion::{DeletionPlan, RetainedFiles, DELETION_PLAN_VERSION};
pub use dir_cursor::DirCursor;
pub use index::{Index, IndexFile, IndexedPack};
pub use key_files::KeyInfo;
pub use keyfile::{KeyFile, Unwrapped, KEY_FILE_VERSION};
pub(crate) use lock::CLOCK_SKEW_MARGIN;
pub use lock::{staleness, LockKind, LockRecord, RepositoryLock, Staleness};
pub use pack::{BlobKind, FinishedPack, PackWriter, PackedBlob};
pub use rotation::ResealedSnapshot;
pub use saver::PackSaver;
pub use snapshot::{sort_by_time, ChangedData, Snapshot, Summary, SNAPSHOT_VERSION};
pub use stored::StoredFiles;
pub use tombstone::{snapshot_key, SnapshotKey, Tombstone, TOMBSTONES_PER_FILE, TOMBSTONE_VERSION};

use crate::backend::{Backend, FileType};
use crate::error::{Error, ErrorKind, Result, ResultExt};
use crate::parallel::{parallel_map, parallel_map_on, WAITING_THREADS};
use crypto::SALT_LEN;
use open::Upgrade;

/// Upper bound on a metadata file's decompressed size.
const MAX_METADATA_LEN: usize = 1 << 30;

/// An open repository. `S` says whether its index is loaded: the default,
/// [`Indexed`], is what reading and writing blobs need. Clones share
/// everything (the index too).
#[derive(Clone)]
pub struct Repository<S: RepositoryState = Indexed> {
    core: Arc<Core>,
    state: S,
}

/// A repository whose config and keys are checked and whose index is not
/// loaded (see [`Repository::<Opened>::load_index`]).
#[derive(Clone)]
pub struct Opened;

/// A repository whose index is loaded.
#[derive(Clone)]
pub struct Indexed {
    index: Arc<indexed::LoadedIndex>,
}

/// The states a repository can be in ([`Opened`], [`Indexed`]).
pub trait RepositoryState: Clone + Send + Sync + sealed::Sealed {}
impl RepositoryState for Opened {}
impl RepositoryState for Indexed {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Opened {}
    impl Sealed for super::Indexed {}
}

/// What every state shares.
struct Core {
    backend: Arc<dyn Backend>,
    config: Config,
    /// Replaced when a rotation of the master key, by this process or
    /// another, gives the repository a new one (see `rekey.rs`).
    keys: RwLock<Arc<Keys>>,
    /// The keys as they were at open, for what a rotation never changes
    /// (blob ids, the chunker's seed, whether blobs are sealed): the
    /// backup pipeline names every chunk without taking the lock above.
    naming: Keys,
    /// What a running process needs to take a new master key from the key
    /// files (see `rekey.rs`).
    rekey: rekey::Rekey,
    /// The name of the key file the password opened (none when unencrypted).
    key_in_use: Mutex<Option<String>>,
    /// What the first write brings up to the current format.
    upgrade: Mutex<Option<Upgrade>>,
}

impl<S: RepositoryState> Repository<S> {
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    pub fn location(&self) -> String {
        self.core.backend.location()
    }

    /// The id of a blob with this plaintext (keyed: it reveals nothing
    /// about content to whoever lacks the key).
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        self.core.naming.blob_id(plaintext)
    }

    /// What storing adds to a blob's compressed data (the payload's type
    /// byte, and the seal when encrypted): a blob zstd could not shrink is
    /// stored in its raw length plus this.
    pub fn blob_overhead(&self) -> u32 {
        self.core.naming.blob_overhead()
    }

    /// The seed of this repository's content-defined chunker.
    pub fn chunker_seed(&self) -> u64 {
        self.core.naming.chunker_seed()
    }

    /// The files as stored, for verifying and repairing them.
    pub fn stored_files(&self) -> StoredFiles<'_> {
        StoredFiles::new(&*self.core.backend, self.core.config.parity_percent)
    }

    /// The same repository without its index.
    pub fn opened(&self) -> Repository<Opened> {
        Repository {
            core: Arc::clone(&self.core),
            state: Opened,
        }
    }

    /// How many reads in flight pay off (see `Backend::requests_in_flight`).
    pub fn requests_in_flight(&self) -> Option<usize> {
        self.core.backend.requests_in_flight()
    }

    fn backend(&self) -> &dyn Backend {
        &*self.core.backend
    }

    fn keys(&self) -> Arc<Keys> {
        Arc::clone(&self.core.keys.read().unwrap())
    }

    // ---- metadata files: salt || sealed(compress(content)) ----

    fn seal_file(&self, content: &[u8]) -> Result<Vec<u8>> {
        let mut salt = [0u8; SALT_LEN];
        crypto::random_bytes(&mut salt)?;
        let mut out = salt.to_vec();
        out.extend(self.keys().sealer(&salt).seal(crypto::compress(
            content,
            self.config().compression_level.max(1),
        )?)?);
        Ok(out)
    }

    fn open_file(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        if bytes.len() < SALT_LEN {
            return Err(Error::corrupt("file is too short"));
        }
        let (salt, sealed) = bytes.split_at(SALT_LEN);
        let salt: &[u8; SALT_LEN] = salt.try_into().unwrap();
        let payload = self.with_current_keys(|keys| keys.sealer(salt).open(sealed))?;
        crypto::decompress(&payload, MAX_METADATA_LEN)
    }

    /// Reads a metadata file and checks it against its name.
    fn read_verified(&self, kind: FileType, name: &str) -> Result<Vec<u8>> {
        let bytes = self.backend().read(kind, name)?;
        if Id::of_bytes(&bytes).to_hex() != name {
            return Err(
                Error::corrupt(format!("{} does not hash to its name", kind.path(name)))
                    .with_hint("the file is damaged; run `rewind check`"),
            );
        }
        self.open_file(&bytes).context(kind.path(name))
    }

    /// Stores a whole file durably, with its parity if the repository keeps it.
    fn write_file(&self, kind: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.upgrade_before_writing()?;
        write_with_parity(
            self.backend(),
            self.config().parity_percent,
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

    /// Lists the files of a kind (see [`StoredFiles::list`]).
    fn list(&self, kind: FileType) -> Result<Vec<String>> {
        self.stored_files().list(kind)
    }

    // ---- snapshots ----

    /// The names of the snapshot manifests.
    pub fn snapshot_names(&self) -> Result<Vec<String>> {
        self.list(FileType::Snapshot)
    }

    /// Every snapshot, oldest first. Damaged manifests are returned as errors
    /// beside the readable ones, so one bad file does not hide the rest.
    pub fn snapshots_with_errors(&self) -> Result<(Vec<Snapshot>, Vec<Error>)> {
        let names = self.snapshot_names()?;
        let (mut snapshots, errors) = read_each_waiting(&names, |name| self.read_snapshot(name));
        sort_by_time(&mut snapshots);
        Ok((snapshots, errors))
    }

    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let (snapshots, errors) = self.snapshots_with_errors()?;
        for e in errors {
            crate::log::warn(&format!("skipping a damaged snapshot: {e}"));
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

    // ---- tombstones ----

    /// Forgets a snapshot: records a tombstone for it, durably, and then
    /// removes its manifest. Its copy in the packs stays until a prune; the
    /// tombstone tells `check` and `scrub --repair` that the manifest is
    /// gone on purpose. A crash in between leaves the snapshot listed, and
    /// forgetting it again finishes the job.
    ///
    /// Under object lock the store keeps a manifest until its retention
    /// ends: it is recorded in a deletion plan and then hidden, and a prune
    /// after that date deletes it.
    pub fn forget_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let mut results = self.forget_snapshots(std::slice::from_ref(snapshot));
        results.pop().expect("one result for one snapshot")
    }

    /// Forgets each of `snapshots` as [`Repository::forget_snapshot`] does,
    /// many at a time: their tombstones first, up to
    /// [`TOMBSTONES_PER_FILE`] to a file, and once a file is durable the
    /// manifests it records are removed, each independent of the others (the
    /// manifests kept under retention share one deletion plan). The result
    /// of each, in order: the name of the tombstone file that records it.
    pub fn forget_snapshots(&self, snapshots: &[Snapshot]) -> Vec<Result<Id>> {
        let batches: Vec<&[Snapshot]> = snapshots.chunks(TOMBSTONES_PER_FILE).collect();
        let tombstones = parallel_map_on(WAITING_THREADS, &batches, |batch| {
            self.write_named(FileType::Forgotten, &tombstone::encode(batch))
        });
        let numbered: Vec<(usize, &Snapshot)> = snapshots.iter().enumerate().collect();
        let removed = parallel_map_on(
            WAITING_THREADS,
            &numbered,
            |(at, snapshot)| match &tombstones[at / TOMBSTONES_PER_FILE] {
                Ok(tombstone) => Ok((*tombstone, self.remove_manifest(snapshot)?)),
                Err(e) => Err(Error::new(
                    e.kind(),
                    format!("its tombstone was not written, so its manifest stays: {e}"),
                )),
            },
        );
        let retained: Vec<_> = snapshots
            .iter()
            .zip(&removed)
            .filter_map(|(snapshot, removal)| match removal {
                Ok((_, ManifestRemoval::Retained(until))) => Some((snapshot.id, *until)),
                _ => None,
            })
            .collect();
        if retained.is_empty() {
            return removed
                .into_iter()
                .map(|removal| removal.map(|(tombstone, _)| tombstone))
                .collect();
        }
        let recorded = self.write_deletion_plan(&DeletionPlan::for_manifests(&retained));
        let hidden = match &recorded {
            Ok(_) => parallel_map_on(WAITING_THREADS, &retained, |(manifest, _)| {
                self.stored_files()
                    .hide(FileType::Snapshot, &manifest.to_hex())
            }),
            Err(_) => Vec::new(),
        };
        let mut hidden = hidden.into_iter();
        removed
            .into_iter()
            .map(|removal| {
                let (tombstone, removal) = removal?;
                if let ManifestRemoval::Retained(_) = removal {
                    if let Err(e) = &recorded {
                        return Err(Error::new(
                            e.kind(),
                            format!("cannot record a manifest under retention for deletion: {e}"),
                        ));
                    }
                    hidden.next().expect("one hiding per retained manifest")?;
                }
                Ok(tombstone)
            })
            .collect()
    }

    /// Removes a forgotten snapshot's manifest, if the store lets it.
    fn remove_manifest(&self, snapshot: &Snapshot) -> Result<ManifestRemoval> {
        let stored = self.stored_files();
        let name = snapshot.id.to_hex();
        match stored.remove(FileType::Snapshot, &name) {
            Ok(()) => Ok(ManifestRemoval::Removed),
            Err(e) if e.kind() == ErrorKind::Retained => {
                let until = stored.retention(FileType::Snapshot, &name)?;
                Ok(ManifestRemoval::Retained(until.map(|r| r.until)))
            }
            Err(e) => Err(e),
        }
    }

    /// The snapshots that tombstone file `name` records.
    pub fn read_tombstone(&self, name: &str) -> Result<Vec<Tombstone>> {
        tombstone::decode(name, &self.read_verified(FileType::Forgotten, name)?)
    }

    /// Every tombstone, and the errors of the files that cannot be read.
    pub fn tombstones(&self) -> Result<(Vec<Tombstone>, Vec<Error>)> {
        let names = self.list(FileType::Forgotten)?;
        let (files, errors) = read_each_waiting(&names, |name| self.read_tombstone(name));
        Ok((files.into_iter().flatten().collect(), errors))
    }
}

/// What became of a forgotten snapshot's manifest.
enum ManifestRemoval {
    Removed,
    /// The store keeps it under retention, until this date if it said.
    Retained(Option<chrono::DateTime<chrono::Utc>>),
}

/// The keys of an open repository, for tools that build or take apart
/// format pieces by hand (tests and fuzzing craft hostile packs with it).
/// Exported only through `rewind::format`, which makes no promise of
/// stability.
pub fn keys_of<S: RepositoryState>(repo: &Repository<S>) -> Arc<Keys> {
    repo.keys()
}

/// Reads each of `names` in parallel: what was read, and the errors of the
/// rest, so that one damaged file does not hide the others.
fn read_each<T: Send>(
    names: &[String],
    read: impl Fn(&str) -> Result<T> + Sync,
) -> (Vec<T>, Vec<Error>) {
    split_results(parallel_map(names, |name| read(name)))
}

/// [`read_each`] for many small files, whose reads mostly wait on storage
/// (manifests, tombstones): on more threads than the CPUs.
fn read_each_waiting<T: Send>(
    names: &[String],
    read: impl Fn(&str) -> Result<T> + Sync,
) -> (Vec<T>, Vec<Error>) {
    split_results(parallel_map_on(WAITING_THREADS, names, |name| read(name)))
}

fn split_results<T>(results: Vec<Result<T>>) -> (Vec<T>, Vec<Error>) {
    let mut read_ok = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(value) => read_ok.push(value),
            Err(e) => errors.push(e),
        }
    }
    (read_ok, errors)
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
