//! Repository locks (`locks/<id>`): who writes to the repository, since
//! when, and whether two commands that must not overlap (two prunes) would.
//! Backups do not wait for a prune through them, and the mount never takes
//! or waits for one; see `docs/design.md`, section 7, "Locks", and `man/rewind-format.5`,
//! LOCK FILES.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Opened, Repository, RepositoryState};
use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result, ResultExt};

pub const LOCK_VERSION: u32 = 1;

/// How often a held lock's `refreshed` time is rewritten.
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// A lock not refreshed for this long belongs to a process that stopped
/// (or was suspended) without removing it...
const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

/// ...plus this much, so that a clock behind ours on another host does not
/// make its live lock look stale.
pub(crate) const CLOCK_SKEW_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// Held by commands that add to the repository (backup, forget,
    /// `scrub --repair`); any number at once.
    Shared,
    /// Held by a command that must run alone (prune).
    Exclusive,
}

impl LockKind {
    /// Only two exclusive locks conflict: a shared lock records who writes
    /// and since when, and never makes a backup wait for or fail because
    /// of a prune (`docs/design.md`, section 7).
    pub fn conflicts_with(self, other: LockKind) -> bool {
        self == LockKind::Exclusive && other == LockKind::Exclusive
    }

    pub fn name(self) -> &'static str {
        match self {
            LockKind::Shared => "shared",
            LockKind::Exclusive => "exclusive",
        }
    }
}

/// What a lock file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockRecord {
    pub version: u32,
    pub kind: LockKind,
    pub host: String,
    pub pid: u32,
    pub user: String,
    pub command: String,
    pub started: DateTime<Utc>,
    pub refreshed: DateTime<Utc>,
}

impl LockRecord {
    /// A lock of this process, taken now.
    fn ours(kind: LockKind, command: &str) -> LockRecord {
        let now = Utc::now();
        LockRecord {
            version: LOCK_VERSION,
            kind,
            host: crate::host::hostname(),
            pid: std::process::id(),
            user: crate::host::current_user(),
            command: command.to_string(),
            started: now,
            refreshed: now,
        }
    }

    /// "exclusive lock of prune (pid 4242, root on db1) since 2024-06-01T02:00:00Z"
    pub fn describe(&self) -> String {
        format!(
            "{} lock of {} (pid {}, {} on {}) since {}",
            self.kind.name(),
            self.command,
            self.pid,
            self.user,
            self.host,
            self.started
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Staleness {
    Live,
    /// Its process is gone (known for certain only on its own host) or it
    /// has not been refreshed for far longer than holders refresh.
    Stale,
}

/// Whether a lock still counts, seen from `this_host` at `now`.
pub fn staleness(record: &LockRecord, now: DateTime<Utc>, this_host: &str) -> Staleness {
    if record.host == this_host && !process_alive(record.pid) {
        return Staleness::Stale;
    }
    if now - record.refreshed > STALE_AFTER + CLOCK_SKEW_MARGIN {
        return Staleness::Stale;
    }
    Staleness::Live
}

/// Whether a process with this id runs on this machine. Only ESRCH says
/// it does not: EPERM means it runs as another user.
fn process_alive(pid: u32) -> bool {
    // 0 and ids beyond i32 would make kill() address process groups.
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A held lock: refreshed in the background until dropped, then removed.
pub struct RepositoryLock {
    id: String,
    repo: Repository<Opened>,
    held: Arc<Mutex<Held>>,
    /// Dropping it wakes and ends the refresher.
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

/// What the holder knows of its own lock.
struct Held {
    record: LockRecord,
    /// Whether, at some point, others could take the lock for stale: it was
    /// not refreshed for `STALE_AFTER` (the process was stopped or the
    /// machine slept), or it was removed.
    lapsed: bool,
    removed: bool,
}

impl RepositoryLock {
    /// The name of the lock file (`locks/<id>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the lock has counted as live from when it was taken until
    /// now, so that no prune can have deleted what its holder relies on
    /// (`docs/design.md`, section 7). False after the process was stopped
    /// or the machine slept for longer than a lock stays live unrefreshed.
    pub fn held_throughout(&self) -> bool {
        let held = self.held.lock().unwrap();
        !held.lapsed && !held.removed && Utc::now() - held.record.refreshed <= STALE_AFTER
    }

    /// Rewrites the lock now (a writer about to commit refreshes it first,
    /// so that what follows is covered by a fresh lock).
    pub fn refresh(&self) {
        refresh(&self.repo, &self.id, &self.held);
    }
}

/// Rewrites a held lock with the time now; false once the lock was found
/// removed (it is then not recreated: whoever removed it judged it dead).
fn refresh(repo: &Repository<Opened>, id: &str, held: &Mutex<Held>) -> bool {
    let mut held = held.lock().unwrap();
    if held.removed {
        return false;
    }
    let now = Utc::now();
    if now - held.record.refreshed > STALE_AFTER {
        held.lapsed = true;
    }
    let path = FileType::Lock.path(id);
    if let Err(e) = repo.backend().read(FileType::Lock, id) {
        if e.kind() == ErrorKind::NotFound {
            crate::log::warn(&format!(
                "our lock {path} was removed (by `rewind unlock`?); {} goes on \
                 without one, and a prune may now run beside it",
                held.record.command
            ));
            held.removed = true;
            return false;
        }
    }
    let mut record = held.record.clone();
    record.refreshed = now;
    match repo.write_lock(id, &record) {
        Ok(()) => held.record = record,
        Err(e) => crate::log::warn(&format!("cannot refresh our lock {path}: {e}")),
    }
    true
}

impl Drop for RepositoryLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(refresher) = self.refresher.take() {
            let _ = refresher.join();
        }
        if let Err(e) = self.repo.backend().remove(FileType::Lock, &self.id) {
            crate::log::warn(&format!(
                "cannot remove our lock {}: {e} (`rewind unlock --stale` removes it later)",
                FileType::Lock.path(&self.id)
            ));
        }
    }
}

impl<S: RepositoryState> Repository<S> {
    /// Takes a lock of `kind` for `command`, or fails with
    /// [`ErrorKind::Locked`] naming the lock it conflicts with.
    ///
    /// Our file is written first and the others listed after, so two
    /// processes taking conflicting locks at once each see the other; the
    /// older by (`started`, id) keeps its lock and the younger gives way,
    /// which both decide alike.
    pub fn lock(&self, kind: LockKind, command: &str) -> Result<RepositoryLock> {
        self.lock_refreshed_every(kind, command, REFRESH_EVERY)
    }

    fn lock_refreshed_every(
        &self,
        kind: LockKind,
        command: &str,
        interval: Duration,
    ) -> Result<RepositoryLock> {
        let record = LockRecord::ours(kind, command);
        let mut name = [0u8; 32];
        super::crypto::random_bytes(&mut name)?;
        let id = hex::encode(name);
        self.write_lock(&id, &record)?;
        let guard = RepositoryLock {
            id: id.clone(),
            repo: self.opened(),
            held: Arc::new(Mutex::new(Held {
                record: record.clone(),
                lapsed: false,
                removed: false,
            })),
            stop: None,
            refresher: None,
        };
        let this_host = &record.host;
        let now = Utc::now();
        let winner = self
            .locks()?
            .into_iter()
            .filter(|(other_id, other, staleness)| {
                *other_id != id
                    && *staleness == Staleness::Live
                    && other.kind.conflicts_with(kind)
                    && (other.started, other_id) < (record.started, &id)
            })
            .map(|(_, other, _)| other)
            .min_by_key(|other| other.started);
        if let Some(other) = winner {
            drop(guard);
            return Err(locked_by(&other, this_host, now));
        }
        Ok(self.start_refreshing(guard, interval))
    }

    fn start_refreshing(&self, mut guard: RepositoryLock, interval: Duration) -> RepositoryLock {
        let (stop, stopped) = mpsc::channel::<()>();
        let repo = self.opened();
        let id = guard.id.clone();
        let held = Arc::clone(&guard.held);
        guard.refresher = Some(std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                if !refresh(&repo, &id, &held) {
                    return;
                }
            }
        }));
        guard.stop = Some(stop);
        guard
    }

    fn write_lock(&self, id: &str, record: &LockRecord) -> Result<()> {
        let content = serde_json::to_vec(record).expect("lock records serialize");
        // No parity and no format upgrade: a lock lives minutes, is
        // rewritten while held, and older versions never read `locks/`.
        self.backend()
            .write(FileType::Lock, id, &self.seal_file(&content)?)
    }

    /// Every lock that reads, with whether it is stale. A lock that cannot
    /// be read is skipped with a warning; one removed while we list was
    /// released.
    pub fn locks(&self) -> Result<Vec<(String, LockRecord, Staleness)>> {
        let now = Utc::now();
        let this_host = crate::host::hostname();
        let mut locks = Vec::new();
        for id in self.list(FileType::Lock)? {
            match self.read_lock(&id) {
                Ok(record) => {
                    let staleness = staleness(&record, now, &this_host);
                    locks.push((id, record, staleness));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => crate::log::warn(&format!("skipping an unreadable lock: {e}")),
            }
        }
        locks.sort_by(|a, b| (a.1.started, &a.0).cmp(&(b.1.started, &b.0)));
        Ok(locks)
    }

    fn read_lock(&self, id: &str) -> Result<LockRecord> {
        let path = FileType::Lock.path(id);
        let bytes = self.backend().read(FileType::Lock, id)?;
        let content = self.open_file(&bytes).context(&path)?;
        serde_json::from_slice(&content)
            .map_err(|e| Error::corrupt(format!("{path} does not decode: {e}")))
    }

    /// Removes a lock file, whoever holds it.
    pub fn remove_lock(&self, id: &str) -> Result<()> {
        self.backend().remove(FileType::Lock, id)
    }
}

fn locked_by(other: &LockRecord, this_host: &str, now: DateTime<Utc>) -> Error {
    let refreshed = (now - other.refreshed).num_minutes();
    let check = if other.host == this_host {
        format!("check whether pid {} still runs", other.pid)
    } else {
        format!(
            "check on {} whether pid {} still runs",
            other.host, other.pid
        )
    };
    Error::new(
        ErrorKind::Locked,
        format!(
            "the repository is locked: {} (refreshed {refreshed} min ago)",
            other.describe()
        ),
    )
    .with_hint(format!(
        "wait for it to finish; `rewind locks` lists the locks; {check}, and if it \
         does not, `rewind unlock --stale` removes its lock"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::LocalBackend;
    use crate::repo::Encryption;

    fn record(host: &str, pid: u32, refreshed: DateTime<Utc>) -> LockRecord {
        LockRecord {
            host: host.into(),
            pid,
            started: refreshed - chrono::TimeDelta::hours(2),
            refreshed,
            ..LockRecord::ours(LockKind::Shared, "backup")
        }
    }

    /// The id of a process that has ended (and been reaped).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn minutes(m: i64) -> chrono::TimeDelta {
        chrono::TimeDelta::minutes(m)
    }

    #[test]
    fn staleness_table() {
        let now = Utc::now();
        let me = std::process::id();
        let cases = [
            (
                "this host, live pid, fresh",
                record("here", me, now),
                Staleness::Live,
            ),
            (
                "this host, dead pid, fresh",
                record("here", dead_pid(), now),
                Staleness::Stale,
            ),
            ("this host, pid 0", record("here", 0, now), Staleness::Stale),
            (
                "this host, live pid, refreshed 41 min ago",
                record("here", me, now - minutes(41)),
                Staleness::Stale,
            ),
            (
                "other host, any pid, fresh",
                record("there", dead_pid(), now),
                Staleness::Live,
            ),
            (
                "other host, refreshed 35 min ago (skew within the margin)",
                record("there", 1, now - minutes(35)),
                Staleness::Live,
            ),
            (
                "other host, refreshed 39 min ago",
                record("there", 1, now - minutes(39)),
                Staleness::Live,
            ),
            (
                "other host, refreshed 41 min ago",
                record("there", 1, now - minutes(41)),
                Staleness::Stale,
            ),
            (
                "other host, clock 10 min ahead of ours",
                record("there", 1, now + minutes(10)),
                Staleness::Live,
            ),
            (
                "other host, refreshed a day ago",
                record("there", 1, now - minutes(24 * 60)),
                Staleness::Stale,
            ),
        ];
        for (what, record, expected) in cases {
            assert_eq!(staleness(&record, now, "here"), expected, "{what}");
        }
    }

    fn repository() -> (tempfile::TempDir, Repository<Opened>) {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let repo = Repository::init(backend, Encryption::None, None).unwrap();
        (dir, repo.opened())
    }

    fn lock_files(dir: &tempfile::TempDir) -> usize {
        std::fs::read_dir(dir.path().join("repo/locks"))
            .unwrap()
            .count()
    }

    #[test]
    fn a_second_exclusive_lock_is_refused_naming_the_first() {
        let (_dir, repo) = repository();
        let first = repo.lock(LockKind::Exclusive, "prune").unwrap();
        let err = repo
            .lock(LockKind::Exclusive, "prune --again")
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Locked);
        let message = err.to_string();
        let record = &repo.locks().unwrap()[0].1;
        for needle in [
            "exclusive",
            "prune",
            &record.host,
            &format!("pid {}", std::process::id()),
            &record.user,
            &record
                .started
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ] {
            assert!(message.contains(needle), "{message:?} names {needle:?}");
        }
        assert!(err.hint().unwrap().contains("rewind unlock --stale"));
        let held: Vec<String> = repo.locks().unwrap().into_iter().map(|l| l.0).collect();
        assert_eq!(held, [first.id()], "the refused lock's file is gone");
    }

    #[test]
    fn shared_locks_never_block_and_are_never_blocked() {
        let (_dir, repo) = repository();
        let one = repo.lock(LockKind::Shared, "backup").unwrap();
        let two = repo.lock(LockKind::Shared, "backup").unwrap();
        let prune = repo.lock(LockKind::Exclusive, "prune").unwrap();
        let three = repo.lock(LockKind::Shared, "backup").unwrap();
        assert_eq!(repo.locks().unwrap().len(), 4);
        drop((one, two, three, prune));
        assert!(repo.locks().unwrap().is_empty());
    }

    #[test]
    fn a_stale_lock_does_not_block() {
        let (_dir, repo) = repository();
        let mut stale = LockRecord::ours(LockKind::Exclusive, "prune");
        stale.pid = dead_pid();
        repo.write_lock(&"ab".repeat(32), &stale).unwrap();
        let _lock = repo.lock(LockKind::Exclusive, "prune").unwrap();
        let staleness: Vec<Staleness> = repo.locks().unwrap().into_iter().map(|l| l.2).collect();
        assert_eq!(staleness, [Staleness::Stale, Staleness::Live]);
    }

    #[test]
    fn dropping_the_guard_removes_the_file() {
        let (dir, repo) = repository();
        let lock = repo.lock(LockKind::Shared, "backup").unwrap();
        assert_eq!(lock_files(&dir), 1);
        drop(lock);
        assert_eq!(lock_files(&dir), 0);
        assert!(repo.locks().unwrap().is_empty());
    }

    #[test]
    fn the_guard_refreshes_and_does_not_recreate_a_removed_lock() {
        let (dir, repo) = repository();
        let interval = Duration::from_millis(50);
        let lock = repo
            .lock_refreshed_every(LockKind::Shared, "backup", interval)
            .unwrap();
        let taken = repo.read_lock(lock.id()).unwrap();
        std::thread::sleep(interval * 4);
        let refreshed = repo.read_lock(lock.id()).unwrap();
        assert!(refreshed.refreshed > taken.refreshed);
        assert_eq!(refreshed.started, taken.started);

        repo.remove_lock(lock.id()).unwrap();
        std::thread::sleep(interval * 4);
        assert_eq!(lock_files(&dir), 0, "not recreated behind the admin's back");
        drop(lock);
    }
}
