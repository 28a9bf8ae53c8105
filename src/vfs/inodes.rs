//! Inodes: what each number stands for, and how long it is kept.
//!
//! Above the snapshots' contents (the root, `ids/`, `hosts/`, `tags/`,
//! `@<time>`, links, `.rewind/status`) an inode lives as long as the mount.
//! Inside a snapshot an inode lives while the kernel holds it, by FUSE's
//! lookup count: every entry the kernel is given (a LOOKUP reply, a
//! READDIRPLUS entry) counts one, a FORGET takes away what it says, and at
//! zero the inode goes. The kernel asks for an inode it forgot only by
//! looking its name up again, which makes it anew with the same number
//! (`numbers.rs`): numbers are stable for the life of the mount, and the
//! links of a hard-linked file share one within a snapshot view.
//!
//! Inodes inside snapshots also wait in a clock (`clock.rs`) from which
//! [`Inodes::cold`] picks those not used lately: `working_set.rs` has the
//! kernel forget them when there are more than its budget.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::clock::{Clock, Found};
use super::layout::Scope;
use super::numbers::{Key, Numbers, OwnedKey};
use super::VfsResult;
use crate::repo::{Id, Snapshot};
use crate::tree::ExpansionBudget;

pub use super::numbers::{Ino, ROOT_INO};

/// A directory used this recently is in use (a walk is listing or reading
/// it): its entries are not given up, however many it has, so that the
/// working set is the budget plus the directories in use.
const IN_USE_MS: u64 = 1000;

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

#[derive(Debug)]
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
        /// A directory's own tree: opening a directory must not need its
        /// parent's tree, which may be large and long evicted.
        subtree: Option<Id>,
        /// Held for its drop, which gives the entry back to the budget.
        _admission: Admission,
    },
    /// A symbolic link above the snapshots. Its target never changes: a
    /// `latest` or `@TIME` name that comes to select another snapshot is
    /// another inode (as `ln -sfn` makes), so the kernel may cache targets.
    Link(Vec<u8>),
    Status,
}

/// An entry counted against its snapshot's expansion budget for as long as
/// its inode lives: what a snapshot expands to in a mount is what the
/// kernel holds of it at once.
#[derive(Debug)]
pub struct Admission {
    budget: Arc<ExpansionBudget>,
    data_bytes: u64,
}

impl Admission {
    /// For an entry of `data_bytes` that `budget` admitted.
    pub fn new(budget: Arc<ExpansionBudget>, data_bytes: u64) -> Admission {
        Admission { budget, data_bytes }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.budget.release(self.data_bytes);
    }
}

pub struct Record {
    pub ino: Ino,
    /// The directory it was first found in (a hard-linked file may have
    /// others).
    pub parent: Ino,
    /// A hard-linked file's original (device, inode).
    hardlink: Option<(u64, u64)>,
    /// Names from the mount's root to it: `/@<time>/etc` is 2.
    pub depth: usize,
    pub name: Vec<u8>,
    pub inode: Inode,
    /// The kernel's lookup count.
    lookups: AtomicU64,
    /// Used since the clock's hand last passed it.
    used: AtomicBool,
    /// When it was last used, in milliseconds since the table was made.
    used_at: AtomicU64,
    /// Waiting in the clock.
    queued: AtomicBool,
}

impl Record {
    fn new(ino: Ino, parent: Ino, name: &[u8], depth: usize, inode: Inode, lookups: u64) -> Record {
        let forgettable = matches!(inode, Inode::Entry { .. });
        Record {
            ino,
            parent,
            hardlink: None,
            depth,
            name: name.to_vec(),
            inode,
            lookups: AtomicU64::new(lookups),
            used: AtomicBool::new(false),
            used_at: AtomicU64::new(0),
            queued: AtomicBool::new(forgettable),
        }
    }

    /// Whether it goes when the kernel forgets it: entries inside snapshots.
    fn forgettable(&self) -> bool {
        matches!(self.inode, Inode::Entry { .. })
    }

    /// Whether it is the inode `key` stands for.
    fn is(&self, key: Key) -> bool {
        match key {
            Key::Name { parent, name } => {
                self.hardlink.is_none() && self.parent == parent && self.name == name
            }
            Key::Hardlink {
                view,
                device,
                inode,
            } => {
                self.hardlink == Some((device, inode))
                    && matches!(self.inode, Inode::Entry { view: v, .. } if v == view)
            }
        }
    }
}

struct Table {
    numbers: Numbers,
    records: HashMap<Ino, Arc<Record>>,
    /// Inodes a collision moved off their key's first number (next to
    /// none: see `numbers.rs`).
    moved: HashMap<OwnedKey, Ino>,
}

impl Table {
    fn find(&self, key: Key) -> Option<&Arc<Record>> {
        let first = self.numbers.number(key, 0);
        match self.records.get(&first) {
            Some(record) if record.is(key) => Some(record),
            _ if self.moved.is_empty() => None,
            _ => self.records.get(self.moved.get(&key.to_owned())?),
        }
    }

    /// The number `key` gets if it is made now: its first one unless
    /// another inode holds that (or the kernel may not be given it).
    fn free_number(&self, key: Key) -> Ino {
        (0..)
            .map(|attempt| self.numbers.number(key, attempt))
            .find(|ino| Numbers::usable(*ino) && !self.records.contains_key(ino))
            .expect("a free number")
    }

    fn insert(&mut self, key: Key, record: Record) {
        let ino = record.ino;
        if ino != self.numbers.number(key, 0) {
            self.moved.insert(key.to_owned(), ino);
        }
        self.records.insert(ino, Arc::new(record));
    }

    fn remove(&mut self, ino: Ino) -> Option<Arc<Record>> {
        let record = self.records.remove(&ino)?;
        if !self.moved.is_empty() {
            self.moved.retain(|_, moved| *moved != ino);
        }
        Some(record)
    }
}

/// Wakes whoever waits for the inodes inside snapshots to outnumber a limit.
#[derive(Default)]
struct Alarm {
    limit: AtomicUsize,
    /// Someone waits: only then does a new inode ring (a wake-up is a
    /// system call).
    waiting: AtomicBool,
    lock: Mutex<()>,
    rung: Condvar,
}

pub(crate) struct Inodes {
    /// The origin of `Record::used_at`.
    made: Instant,
    table: RwLock<Table>,
    clock: Clock,
    /// Inodes inside snapshots.
    entries: AtomicUsize,
    alarm: Alarm,
}

impl Inodes {
    pub fn new() -> Inodes {
        let mut table = Table {
            numbers: Numbers::new(),
            records: HashMap::new(),
            moved: HashMap::new(),
        };
        let root = Record::new(ROOT_INO, ROOT_INO, b"", 0, Inode::Root, 0);
        table.records.insert(ROOT_INO, Arc::new(root));
        Inodes {
            made: Instant::now(),
            table: RwLock::new(table),
            clock: Clock::default(),
            entries: AtomicUsize::new(0),
            alarm: Alarm {
                limit: AtomicUsize::new(usize::MAX),
                ..Alarm::default()
            },
        }
    }

    pub fn get(&self, ino: Ino) -> Option<Arc<Record>> {
        self.table.read().unwrap().records.get(&ino).cloned()
    }

    /// [`Inodes::get`] for a request of the kernel: ENOENT for an unknown inode.
    pub fn record(&self, ino: Ino) -> VfsResult<Arc<Record>> {
        self.get(ino).ok_or(libc::ENOENT)
    }

    /// The inode of `name` in `parent` above the snapshots' contents, made
    /// with `make` the first time; it lives as long as the mount. A `name`
    /// may carry a NUL and a variant after the name itself (a link's
    /// target): each variant is its own inode.
    pub fn child(&self, parent: Ino, name: &[u8], make: impl FnOnce() -> Inode) -> Ino {
        let key = Key::Name { parent, name };
        let made = self.entry_child(key, parent, name, 0, || {
            Ok::<_, std::convert::Infallible>(make())
        });
        match made {
            Ok(ino) => ino,
            Err(never) => match never {},
        }
    }

    /// The inode `key` stands for, entry `name` of directory `parent`,
    /// made with `make` if it does not exist (`make` may refuse, say for a
    /// snapshot's expansion budget); `lookups` more of it are counted as
    /// held by the kernel.
    pub fn entry_child<E>(
        &self,
        key: Key,
        parent: Ino,
        name: &[u8],
        lookups: u64,
        make: impl FnOnce() -> Result<Inode, E>,
    ) -> Result<Ino, E> {
        let found = Self::find_counted(&self.table.read().unwrap(), key, lookups);
        if let Some(record) = found {
            self.touch_if_counted(&record, lookups);
            return Ok(record.ino);
        }
        // Made without the table's lock: `make` may look inodes up.
        let depth = self.depth(parent) + 1;
        let inode = make()?;
        let mut table = self.table.write().unwrap();
        if let Some(record) = Self::find_counted(&table, key, lookups) {
            // Another thread was first; `inode` is dropped, and its
            // admission given back.
            drop(table);
            self.touch_if_counted(&record, lookups);
            return Ok(record.ino);
        }
        let ino = table.free_number(key);
        let mut record = Record::new(ino, parent, name, depth, inode, lookups);
        if let Key::Hardlink { device, inode, .. } = key {
            record.hardlink = Some((device, inode));
        }
        let forgettable = record.forgettable();
        table.insert(key, record);
        // Counted under the lock, as the removal is.
        let live = self.entries.fetch_add(usize::from(forgettable), Relaxed) + 1;
        drop(table);
        if forgettable {
            self.clock.push(ino, live, |ino| self.get(ino).is_some());
            self.ring_if_above_limit(live);
        }
        Ok(ino)
    }

    /// The number the inode `key` stands for has, or would get if it were
    /// made now: what a plain READDIR shows, which the kernel holds nothing of.
    pub fn number_of(&self, key: Key) -> Ino {
        let table = self.table.read().unwrap();
        match table.find(key) {
            Some(record) => record.ino,
            None => table.free_number(key),
        }
    }

    /// The inode `key` stands for, with `lookups` more counted while the
    /// caller holds the table's lock: a FORGET cannot remove it between the
    /// look and the count.
    fn find_counted(table: &Table, key: Key, lookups: u64) -> Option<Arc<Record>> {
        let record = table.find(key)?;
        record.lookups.fetch_add(lookups, Relaxed);
        Some(Arc::clone(record))
    }

    /// An inode the kernel was given is in use.
    fn touch_if_counted(&self, record: &Record, lookups: u64) {
        if lookups > 0 {
            self.touch(record);
        }
    }

    /// Marks an inode as used lately: the clock passes it over once more,
    /// and for a second its directories too (see [`IN_USE_MS`]).
    pub fn touch(&self, record: &Record) {
        if !record.forgettable() {
            return;
        }
        let now = self.now_ms();
        record.used.store(true, Relaxed);
        record.used_at.store(now, Relaxed);
        if !record.queued.swap(true, Relaxed) {
            let live = self.entries.load(Relaxed);
            self.clock
                .push(record.ino, live, |ino| self.get(ino).is_some());
        }
        // Giving up a directory drops all it holds: the directories above
        // one in use are in use too. Marked again only after a while, so
        // that most touches stop at the first.
        let mut above = self.get(record.parent);
        while let Some(dir) = above.filter(|dir| dir.forgettable()) {
            if now.saturating_sub(dir.used_at.load(Relaxed)) < IN_USE_MS / 10 {
                break;
            }
            dir.used_at.store(now, Relaxed);
            above = self.get(dir.parent);
        }
    }

    /// The kernel forgot `lookups` of inode `ino`: at zero, an inode inside
    /// a snapshot goes. Unknown inodes and those above the snapshots are
    /// left alone.
    pub fn forget(&self, ino: Ino, lookups: u64) {
        let Some(record) = self.get(ino) else { return };
        if !record.forgettable() {
            return;
        }
        let before = record
            .lookups
            .fetch_update(Relaxed, Relaxed, |held| Some(held.saturating_sub(lookups)))
            .unwrap_or_default();
        if before <= lookups {
            drop(self.remove_if_unheld(ino));
        }
    }

    /// Removes inode `ino` if the kernel holds none of it, checked under
    /// the table's lock so that a lookup cannot come between. Returns it,
    /// to be dropped (its admission given back) outside the lock.
    fn remove_if_unheld(&self, ino: Ino) -> Option<Arc<Record>> {
        let mut table = self.table.write().unwrap();
        if table.records.get(&ino)?.lookups.load(Relaxed) != 0 {
            return None;
        }
        let record = table.remove(ino)?;
        self.entries.fetch_sub(1, Relaxed);
        Some(record)
    }

    /// Up to `max` names (directory, name) of inodes inside snapshots that
    /// the kernel holds and that were not used since the clock's hand last
    /// passed them: the kernel forgets them when told the names are gone.
    /// Entries of a directory in use are passed over while
    /// `spare_walked` (see `working_set.rs`), and given on their own
    /// otherwise. An entry whose directory is not in use is given as its
    /// directory, whose unused entries the kernel then drops all at once;
    /// the entries stay in the clock, and one the kernel kept (it was in
    /// use) is given on its own at a later call.
    pub fn cold(&self, max: usize, spare_walked: bool) -> Vec<(Ino, Vec<u8>)> {
        let mut out = Vec::new();
        let mut given = HashSet::new();
        // At most twice round (every inode has lost its mark by then), and
        // a bounded stretch of a directory in use per call.
        let mut steps = (2 * self.clock.len()).min(max.saturating_mul(64));
        let now = self.now_ms();
        while out.len() < max && steps > 0 {
            let wanted = max - out.len();
            let visited = self.clock.sweep(wanted.min(steps), |ino| {
                let Some(record) = self.get(ino) else {
                    return Found::Gone;
                };
                if !record.queued.load(Relaxed) {
                    // Given out already (a directory given for its entry).
                    return Found::Gone;
                }
                if record.used.swap(false, Relaxed) || self.in_use(&record, now) {
                    return Found::Used;
                }
                if record.lookups.load(Relaxed) == 0 {
                    // Held by no one: a FORGET raced with a lookup.
                    record.queued.store(false, Relaxed);
                    drop(self.remove_if_unheld(ino));
                    return Found::Gone;
                }
                let dir = self
                    .get(record.parent)
                    .filter(|dir| dir.forgettable() && dir.lookups.load(Relaxed) > 0);
                match dir {
                    Some(dir) if self.in_use(&dir, now) && spare_walked => return Found::Used,
                    // Given on its own.
                    Some(dir) if self.in_use(&dir, now) => {}
                    Some(dir) => {
                        if dir.queued.swap(false, Relaxed) {
                            out.push((dir.parent, dir.name.clone()));
                            given.insert(dir.ino);
                        }
                        if given.contains(&dir.ino) {
                            // Goes with its directory; if not, at a later call.
                            return Found::Used;
                        }
                    }
                    None => {}
                }
                record.queued.store(false, Relaxed);
                out.push((record.parent, record.name.clone()));
                given.insert(ino);
                Found::Gone
            });
            if visited == 0 {
                break;
            }
            steps = steps.saturating_sub(visited);
        }
        out
    }

    /// Whether `record` (a directory, or under one) was used in the last
    /// [`IN_USE_MS`] before `now`.
    fn in_use(&self, record: &Record, now: u64) -> bool {
        now.saturating_sub(record.used_at.load(Relaxed)) < IN_USE_MS
    }

    fn now_ms(&self) -> u64 {
        self.made.elapsed().as_millis() as u64
    }

    /// Inodes inside snapshots.
    pub fn entries(&self) -> usize {
        self.entries.load(Relaxed)
    }

    /// Waits up to `timeout` until there are more than `limit` inodes inside
    /// snapshots; returns whether there are.
    pub fn wait_for_more_than(&self, limit: usize, timeout: Duration) -> bool {
        self.alarm.limit.store(limit, Relaxed);
        let guard = self.alarm.lock.lock().unwrap();
        self.alarm.waiting.store(true, Relaxed);
        let (_guard, _) = self
            .alarm
            .rung
            .wait_timeout_while(guard, timeout, |_| self.entries() <= limit)
            .unwrap();
        self.alarm.waiting.store(false, Relaxed);
        self.entries() > limit
    }

    fn ring_if_above_limit(&self, live: usize) {
        if live > self.alarm.limit.load(Relaxed) && self.alarm.waiting.load(Relaxed) {
            // Taken so that the ring cannot fall between the waiter's look
            // at the count and its sleep.
            let _guard = self.alarm.lock.lock().unwrap();
            self.alarm.rung.notify_all();
        }
    }

    /// Names from the mount's root to `ino` (0 for an unknown inode).
    pub fn depth(&self, ino: Ino) -> usize {
        self.get(ino).map_or(0, |record| record.depth)
    }

    /// Inodes in memory, above the snapshots and inside them.
    pub fn len(&self) -> usize {
        self.table.read().unwrap().records.len()
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
