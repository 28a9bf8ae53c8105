//! Storage backends: a deliberately small trait, so that a new store (S3, SFTP)
//! needs only these five operations, and caching or retries wrap any of them.
//! [`open_location`] turns a `--repo` value into the backend it names. A
//! store that can keep files under retention (S3 Object Lock) implements a
//! few more (`retention.rs`).

mod atomic;
mod cache;
mod local;
mod retention;
mod retry;
mod s3;

use std::path::Path;
use std::sync::Arc;

pub use cache::{cache_dir_for, default_cache_root, CachedBackend};
pub use local::LocalBackend;
pub use retention::{is_retained, LockMode, ObjectLock, Retention};
pub use retry::{RetryPolicy, Retrying};
pub use s3::{Environment, S3Backend, S3Url, Settings as S3Settings};

use crate::error::{Error, Result};

/// The kinds of files a repository holds; each lives in its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
    /// Tombstones: records of snapshots forgotten on purpose.
    Forgotten,
    /// Deletion plans: packs and index files a prune no longer needs,
    /// deleted once no writer can still rely on them.
    Deletion,
    /// Audit records: who ran which command on the repository, chained.
    Audit,
    /// Reed–Solomon parity of another file, named `<kind>.<name>`.
    Parity,
}

impl FileType {
    /// The directory of this kind of file in every backend's layout.
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Pack => "data",
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            FileType::Lock => "locks",
            FileType::Forgotten => "forgotten",
            FileType::Deletion => "deletions",
            FileType::Audit => "audit",
            FileType::Parity => "parity",
        }
    }

    /// The path of a file relative to the repository root. Packs are fanned
    /// out by the first two hex digits so no directory grows too large.
    pub fn path(self, name: &str) -> String {
        match self {
            FileType::Config => "config".to_string(),
            FileType::Pack => format!("data/{}/{}", &name[..name.len().min(2)], name),
            other => format!("{}/{}", other.dir(), name),
        }
    }
}

/// A place that stores named, immutable files.
pub trait Backend: Send + Sync {
    /// A human-readable location, used in messages.
    fn location(&self) -> String;
    /// Creates the empty layout; fails if a repository already exists there.
    fn create(&self) -> Result<()>;
    /// Names of every file of a type (the whole name, not the path).
    fn list(&self, kind: FileType) -> Result<Vec<String>>;
    /// The whole file.
    fn read(&self, kind: FileType, name: &str) -> Result<Vec<u8>>;
    /// `length` bytes at `offset`; fewer bytes than asked is an error.
    fn read_range(&self, kind: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>>;
    /// Stores a file durably and atomically: once this returns, the file
    /// survives a crash, and no reader ever sees it half-written.
    fn write(&self, kind: FileType, name: &str, data: &[u8]) -> Result<()>;
    /// Removes a file; a missing one is not an error. A file the store
    /// keeps under retention is not removed: that is
    /// [`ErrorKind::Retained`](crate::error::ErrorKind::Retained).
    fn remove(&self, kind: FileType, name: &str) -> Result<()>;
    /// A hint that a file, or `length` bytes of it at `offset`, will be
    /// read soon; a backend may start fetching them.
    fn prefetch(&self, _kind: FileType, _name: &str, _range: Option<(u64, u64)>) {}
    /// The size of a file, for scrubbing and progress.
    fn size(&self, kind: FileType, name: &str) -> Result<u64>;
    /// [`Backend::read_range`] of bytes that hold a directory tree. Trees
    /// are read again by every listing, mount and backup, so a cache keeps
    /// the whole pack they are in. A backend that wraps another forwards
    /// this and [`Backend::retain_packs`].
    fn read_tree_range(
        &self,
        kind: FileType,
        name: &str,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>> {
        self.read_range(kind, name, offset, length)
    }
    /// A hint that the index just loaded whole names only the packs for
    /// which `named` holds: a cache lets go of the others it keeps.
    fn retain_packs(&self, _named: &dyn Fn(&str) -> bool) {}

    /// How many requests in flight at once pay off, for a store where
    /// each is a round trip (S3: its connection limit); `None` for a local
    /// directory, where the number of CPUs sets the pace. Readers that
    /// fetch many small pieces (restore) size their thread pools by it.
    fn requests_in_flight(&self) -> Option<usize> {
        None
    }

    /// Checks that this store can keep files under retention, as
    /// `init --object-lock` asks: only an S3 bucket with Object Lock
    /// enabled (and no default retention of its own) can.
    fn check_object_lock(&self) -> Result<()> {
        Err(cannot_lock(&self.location()))
    }

    /// From now on, writes every file that [`is_retained`] names under
    /// `lock`'s retention, counted from each write, and removes files with
    /// every stored version of them (S3 buckets with Object Lock keep
    /// versions). Sends no request.
    fn set_object_lock(&self, _lock: ObjectLock) -> Result<()> {
        Err(cannot_lock(&self.location()))
    }

    /// The retention of a stored file; `None` when it has none.
    fn retention(&self, _kind: FileType, _name: &str) -> Result<Option<Retention>> {
        Ok(None)
    }

    /// Sets a file's retention; the caller makes sure that it extends the
    /// one the file has (a store may let a shorter one through).
    fn extend_retention(&self, _kind: FileType, _name: &str, _to: Retention) -> Result<()> {
        Err(cannot_lock(&self.location()))
    }

    /// Makes a file that [`Backend::remove`] refused for its retention
    /// vanish from listings and reads while the store keeps it (S3: a
    /// delete marker above the locked version); a `remove` after its
    /// retention ends deletes it for good. Without retention, a removal.
    fn hide(&self, kind: FileType, name: &str) -> Result<()> {
        self.remove(kind, name)
    }
}

/// The error of a store that cannot keep files under retention.
fn cannot_lock(location: &str) -> Error {
    Error::usage(format!(
        "{location} cannot keep files under retention (object lock)"
    ))
    .with_hint(
        "only an S3 bucket with Object Lock enabled can; see REPOSITORY LOCATIONS in rewind(1)",
    )
}

/// The backend a repository location names (`docs/design.md` section 4,
/// "Repository URLs"): `s3://BUCKET/PREFIX` and `s3:http(s)://HOST/BUCKET/PREFIX`
/// name an S3 bucket (credentials, region and endpoint from the
/// environment), any other `scheme:` is refused, and the rest are local
/// directories. Opening sends no request.
pub fn open_location(location: &str) -> Result<Arc<dyn Backend>> {
    let lookup = |name: &str| std::env::var(name).ok();
    open_location_with(location, &Environment::new(&lookup))
}

/// [`open_location`] with the environment given.
pub fn open_location_with(location: &str, env: &Environment) -> Result<Arc<dyn Backend>> {
    check_location(location)?;
    if is_remote(location) {
        let settings = s3::Settings::from_env(env)?;
        let backend = S3Backend::open(&S3Url::parse(location)?, env, &settings)?;
        let policy = RetryPolicy {
            attempts: settings.attempts,
            ..RetryPolicy::default()
        };
        return Ok(Arc::new(Retrying::new(backend, policy)));
    }
    Ok(Arc::new(LocalBackend::new(location)))
}

/// Whether `location` is one rewind can open (a directory, or an S3 URL
/// that parses), without opening it: profiles are checked this way.
pub fn check_location(location: &str) -> Result<()> {
    if location.is_empty() {
        return Err(Error::usage("the repository location is empty"));
    }
    if is_remote(location) {
        return S3Url::parse(location).map(drop);
    }
    if let Some(scheme) = url_scheme(location) {
        return Err(
            Error::usage(format!("unknown repository scheme {scheme}: in {location}")).with_hint(
                format!(
                    "rewind stores repositories in local directories and S3 (s3://BUCKET/PREFIX); \
             for a local directory whose name has a colon, write ./{location}"
                ),
            ),
        );
    }
    Ok(())
}

/// Whether a location names object storage rather than a local directory.
pub fn is_remote(location: &str) -> bool {
    location.starts_with("s3:")
}

/// [`open_location`], with a local cache under `cache_root` (one directory
/// per repository, see [`cache_dir_for`]) for a repository in object
/// storage; a local directory needs none.
pub fn open_location_cached(location: &str, cache_root: Option<&Path>) -> Result<Arc<dyn Backend>> {
    let backend = open_location(location)?;
    match cache_root {
        Some(root) if is_remote(location) => {
            let dir = cache_dir_for(root, &backend.location());
            Ok(Arc::new(CachedBackend::new(backend, &dir)?))
        }
        _ => Ok(backend),
    }
}

/// The scheme of `scheme:rest`, as URLs spell it: a letter, then letters,
/// digits, `+`, `-` or `.`, before the first `:` (a `/` first makes it a path).
fn url_scheme(location: &str) -> Option<&str> {
    let (scheme, _) = location.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn open(location: &str) -> Result<Arc<dyn Backend>> {
        let vars = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKID".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
            "AWS_REGION" => Some("eu-west-1".to_string()),
            _ => None,
        };
        open_location_with(location, &Environment::new(&vars))
    }

    #[test]
    fn paths_are_local_directories() {
        for path in ["/srv/backup", "repo", "./with:colon", "/a:b", "9p:x"] {
            let backend = open(path).unwrap();
            assert!(!backend.location().starts_with("s3"), "{path}");
        }
    }

    #[test]
    fn s3_urls_name_buckets() {
        assert_eq!(
            open("s3://bucket/host1").unwrap().location(),
            "s3://bucket/host1"
        );
        assert_eq!(
            open("s3:http://127.0.0.1:9000/bucket/p")
                .unwrap()
                .location(),
            "s3:http://127.0.0.1:9000/bucket/p"
        );
    }

    #[test]
    fn other_schemes_are_refused() {
        for location in [
            "sftp:host:/srv/repo",
            "b2:bucket/x",
            "rclone:remote:x",
            "file:/x",
        ] {
            let error = open(location).map(|_| ()).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Usage, "{location}");
            assert!(
                error.to_string().contains("unknown repository scheme"),
                "{error}"
            );
        }
    }
}
