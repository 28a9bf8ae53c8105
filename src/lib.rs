//! rewind: deduplicated, compressed, encrypted backups whose snapshots mount
//! read-only through FUSE. The `rewind` binary is a thin layer over this
//! library; `docs/design.md` explains how the pieces fit and the rules they
//! keep, `man/rewind-format.5` the bytes on disk.
//!
//! A repository is opened in two steps: [`Repository::open`] checks the
//! config and the password and can list snapshots; [`Repository::load_index`]
//! loads the index and gives the [`Repository`] that reads and writes data.
//!
//! ```
//! use std::sync::Arc;
//! use rewind::{backup, find_node, BackupOptions, Encryption, Extent, LocalBackend, LockKind};
//! use rewind::{Repository, Source};
//!
//! # fn main() -> rewind::Result<()> {
//! # let scratch = tempfile::tempdir().unwrap();
//! # let (home, repository) = (scratch.path().join("home"), scratch.path().join("repo"));
//! // Something to back up.
//! std::fs::create_dir_all(&home).unwrap();
//! std::fs::write(home.join("notes.txt"), "back up early, back up often\n").unwrap();
//!
//! // A new encrypted repository in a local directory, and a first backup.
//! let backend = Arc::new(LocalBackend::new(&repository));
//! let repo = Repository::init(backend.clone(), Encryption::Aes256Gcm, Some(b"secret"))?;
//! let options = BackupOptions { host: "laptop".into(), ..BackupOptions::default() };
//! // A backup holds a shared lock, so that a prune knows it runs.
//! let lock = repo.lock(LockKind::Shared, "backup")?;
//! backup(Arc::new(repo), Source::Paths(vec![home.clone()]), &options, Some(&lock))?;
//! drop(lock);
//!
//! // Later: open it with the password, list its snapshots...
//! let repo = Repository::open(backend, || Ok(b"secret".to_vec()))?;
//! let snapshots = repo.snapshots()?;
//! assert_eq!(snapshots.len(), 1);
//! assert_eq!(snapshots[0].host, "laptop");
//!
//! // ...and read a file back: load the index, find the file's node in the
//! // snapshot's tree, and read its chunks (each verified against its id).
//! let (repo, damaged_index_files) = repo.load_index()?;
//! assert!(damaged_index_files.is_empty());
//! let path = format!("{}/notes.txt", home.display());
//! let node = find_node(&repo, &snapshots[0].tree, &path)?.expect("the file is in the snapshot");
//! let mut content = Vec::new();
//! for extent in &node.content {
//!     match extent {
//!         Extent::Data { id, .. } => content.extend(repo.read_blob(id)?),
//!         Extent::Hole { len } => content.resize(content.len() + *len as usize, 0),
//!     }
//! }
//! assert_eq!(content, b"back up early, back up often\n");
//! # Ok(())
//! # }
//! ```

mod backend;
mod backup;
mod check;
mod chunker;
mod copy;
mod error;
mod forget;
mod fuse;
mod host;
mod id;
pub mod log;
mod mount;
mod parallel;
mod profile;
pub mod progress;
mod prune;
mod repo;
mod restore;
mod retention;
mod rotate;
mod scrub;
mod selector;
mod suspicion;
mod testing;
mod tree;
mod vfs;

pub use error::{Error, ErrorKind, Result};
pub use host::{cache_dir, hostname};
pub use id::Id;
pub use progress::{Progress, Totals};

// Storage and the repository.
pub use backend::{cache_dir_for, default_cache_root, Backend, CachedBackend, LocalBackend};
pub use backend::{
    check_location, is_remote, open_location, open_location_cached, open_location_with,
};
pub use backend::{Environment as S3Environment, S3Backend, S3Settings, S3Url};
pub use backend::{LockMode, ObjectLock, Retention};
pub use backend::{RetryPolicy, Retrying};
pub use repo::{
    Encryption, Indexed, KeyInfo, Opened, PackSaver, Repository, RepositoryState, RetainedFiles,
    Snapshot, StoredFiles, Summary, Tombstone, MAX_LOCK_PERIOD,
};

// Who else is in the repository.
pub use repo::{staleness, LockKind, LockRecord, RepositoryLock, Staleness};

// Who did what: the audit trail.
pub use repo::{
    AuditBytes, AuditEntry, AuditFile, AuditRecord, AuditResult, AuditTrail, CopiedRecords,
};

// What snapshots hold.
pub use tree::{
    not_shown_message, with_deep_stack, ExpansionBudget, ExpansionLimits, Extent, NameProblem,
    Node, NodeKind, Part, Timestamp, Tree,
};

// Choosing snapshots.
pub use selector::{parse_time_period, parse_time_prefix, split_selector, Filter, Selector};

// Backing up, and finding the last clean snapshot.
pub use backup::{
    backup, quote_command, BackupOptions, BackupOutcome, CommandOutput, OwnerNames, Source,
};
pub use repo::ChangedData;
pub use suspicion::{assess_snapshots, Suspicion};

// Restoring, comparing, and the restore drill.
pub use restore::diff::{
    diff, diff_each, Change, ChangeKind, ChangeSink, DiffOptions, DiffOutcome, DiffReport,
    DiffSummary, EntryFilter, Side,
};
pub use restore::drill::{drill, human_duration, parse_duration, DrillOptions, DrillReport};
pub use restore::{
    find_node, restore, Action, Cancel, Failure, Overwrite, PathFilter, Planned, RestoreOptions,
    RestoreReport, Sample,
};

// Copying snapshots to another repository.
pub use copy::{copy, plan_copy, CopiedSnapshot, CopyOptions, CopyPlan, CopyReport, CopySelection};

// Pruning.
pub use prune::{
    plan_prune, prune, PackFate, PackUse, PruneOptions, PrunePlan, PruneReport, WaitingPlan,
};

// Rotating the master key.
pub use repo::ResealedSnapshot;
pub use rotate::{rotate_master_key, RotateOptions, RotationReport};

// Profiles: the whole job in one file (rewind-profile(5)).
pub use profile::{
    find_profile, load_profile, parse_profile, profile_places, LoadedProfile, Profile,
    ProfileBackup, ProfileCheck, ProfileCopy, ProfileForget, ProfileHooks, ProfileRestoreTest,
};

// Verifying and repairing.
pub use retention::{renew_retention, RenewReport};

pub use check::{check, CheckReport, Subset};
pub use scrub::state::{create_private_dir, default_path as default_scrub_state_path};
pub use scrub::{
    repair_before_open, scrub, Finding, ScrubOptions, ScrubReport, ScrubState, Scrubber, Status,
};

// Retention.
pub use forget::{
    apply_policy, parse_keep_duration, GroupBy, GroupKey, KeepPolicy, Kept, PolicyGroup,
};

// Mounting.
pub use fuse::{clear_stale_mount, FuseOptions};
pub use mount::{Mount, MountOptions, MountScrub};
pub use vfs::{Vfs, VfsOptions};

/// The low-level pieces of the on-disk format (`man/rewind-format.5`), for
/// tests that build hostile repositories by hand, fuzzing, and tools that
/// take repositories apart. Not a stable API: these change with the format.
pub mod format {
    pub use crate::backend::FileType;
    pub use crate::chunker::{Chunker, ChunkerParams};
    pub use crate::repo::{
        crypto, index, keys_of, pack, parity, parity_name, sort_by_time, BlobKind, Config,
        DeletionPlan, FinishedPack, Index, IndexFile, IndexedPack, KeyFile, Keys, PackWriter,
        PackedBlob, AUDIT_RECORD_VERSION, DELETION_PLAN_VERSION, FORMAT_VERSION, SNAPSHOT_VERSION,
        TOMBSTONES_PER_FILE, TOMBSTONE_VERSION,
    };
    pub use crate::tree::{MAX_DEPTH, TREE_VERSION};
}
