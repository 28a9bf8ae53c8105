//! Byte-budgeted LRUs of decoded, verified objects (chunks of files,
//! directory trees), shared by the readers and the read-ahead workers. An
//! object being fetched is fetched once: a second reader waits for the
//! first instead of reading the pack again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};

use lru::LruCache;

use crate::error::{Error, Result};
use crate::repo::pack::Framed;
use crate::repo::Id;
use crate::tree::{Extent, Node, Tree};

/// A decoded, verified chunk, left in the buffer it was decoded in (a
/// chunk stored uncompressed starts a few bytes in: moving it would be
/// one more pass over every byte read).
pub struct ChunkBytes {
    buffer: Vec<u8>,
    range: std::ops::Range<usize>,
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buffer[self.range.clone()]
    }
}

pub type Chunk = Arc<ChunkBytes>;

pub fn chunk((buffer, range): Framed) -> Chunk {
    Arc::new(ChunkBytes { buffer, range })
}
pub type ChunkCache = Cache<Chunk>;
pub type TreeCache = Cache<Arc<Tree>>;

/// A fetch's outcome, shared with the readers waiting for it: the error
/// keeps its kind (a caller tells a damaged pack from a failing disk).
type Shared<V> = std::result::Result<V, Arc<Error>>;
type Pending<V> = Arc<(Mutex<Option<Shared<V>>>, Condvar)>;

pub struct Cache<V> {
    budget: AtomicUsize,
    /// Objects kept even beyond the budget: the most recently used.
    keep_newest: usize,
    /// The bytes an object holds in memory.
    weigh: fn(&V) -> usize,
    inner: Mutex<Lru<V>>,
    pending: Mutex<HashMap<Id, Pending<V>>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

struct Lru<V> {
    entries: LruCache<Id, (V, usize)>,
    bytes: usize,
}

/// Whether a lookup was served from memory or fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedFrom {
    Cache,
    Fetch,
}

/// About what a cached chunk holds besides its bytes: its `ChunkBytes`
/// and `Arc`, the LRU's node and map slot, and the allocator's headers. A
/// budget that counted bytes alone would let a cache of 40-byte chunks (a
/// tree of small files) hold five times its size.
const CHUNK_OVERHEAD: usize = 200;

impl ChunkCache {
    pub fn for_chunks(budget: usize) -> ChunkCache {
        Cache::new(budget, |chunk| chunk.buffer.capacity() + CHUNK_OVERHEAD)
    }
}

/// Trees kept whatever their size: those of the directories in use. A
/// directory larger than the budget must stay while it is listed or read,
/// even as its parent's tree is looked at between two batches (the
/// kernel asks for the directory's attributes again when told that names
/// in it are gone): each eviction would decode it whole once more.
const TREES_KEPT_NEWEST: usize = 4;

impl TreeCache {
    pub fn for_trees(budget: usize) -> TreeCache {
        let mut cache = TreeCache::new(budget, |tree| tree_bytes(tree));
        cache.keep_newest = TREES_KEPT_NEWEST;
        cache
    }
}

/// About what a decoded tree holds in memory.
fn tree_bytes(tree: &Tree) -> usize {
    let parts: usize = tree
        .parts
        .iter()
        .map(|part| std::mem::size_of::<crate::tree::Part>() + part.first.len())
        .sum();
    parts
        + tree
            .nodes
            .iter()
            .map(|node| {
                std::mem::size_of::<Node>()
                    + node.name.len()
                    + node.link_target.len()
                    + node.content.len() * std::mem::size_of::<Extent>()
                    + node
                        .xattrs
                        .iter()
                        .map(|(name, value)| name.len() + value.len() + 48)
                        .sum::<usize>()
            })
            .sum::<usize>()
}

impl<V: Clone> Cache<V> {
    pub fn new(budget: usize, weigh: fn(&V) -> usize) -> Cache<V> {
        Cache {
            budget: AtomicUsize::new(budget),
            keep_newest: 1,
            weigh,
            inner: Mutex::new(Lru {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            pending: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The bytes it keeps at most (beyond its newest objects).
    pub fn budget(&self) -> usize {
        self.budget.load(Relaxed)
    }

    /// Changes the budget, evicting down to a smaller one at once.
    pub fn set_budget(&self, budget: usize) {
        self.budget.store(budget, Relaxed);
        let mut lru = self.inner.lock().unwrap();
        self.evict(&mut lru);
    }

    /// Whether the object is in memory or being fetched.
    pub fn contains(&self, id: &Id) -> bool {
        self.inner.lock().unwrap().entries.contains(id)
            || self.pending.lock().unwrap().contains_key(id)
    }

    /// The object from memory, or from `fetch` (called at most once at a time per id).
    pub fn get_or_fetch(
        &self,
        id: &Id,
        fetch: impl FnOnce() -> Result<V>,
    ) -> Shared<(V, ServedFrom)> {
        if let Some((value, _)) = self.inner.lock().unwrap().entries.get(id) {
            self.hits.fetch_add(1, Relaxed);
            return Ok((value.clone(), ServedFrom::Cache));
        }
        let (slot, leader) = {
            let mut pending = self.pending.lock().unwrap();
            match pending.get(id) {
                Some(slot) => (Arc::clone(slot), false),
                None => {
                    let slot: Pending<V> = Arc::new((Mutex::new(None), Condvar::new()));
                    pending.insert(*id, Arc::clone(&slot));
                    (slot, true)
                }
            }
        };
        if !leader {
            let (lock, ready) = &*slot;
            let mut result = lock.lock().unwrap();
            while result.is_none() {
                result = ready.wait(result).unwrap();
            }
            self.hits.fetch_add(1, Relaxed);
            return result.clone().unwrap().map(|v| (v, ServedFrom::Cache));
        }
        self.misses.fetch_add(1, Relaxed);
        let result = fetch().map_err(Arc::new);
        if let Ok(value) = &result {
            self.insert(*id, value.clone());
        }
        let (lock, ready) = &*slot;
        *lock.lock().unwrap() = Some(result.clone());
        ready.notify_all();
        self.pending.lock().unwrap().remove(id);
        result.map(|v| (v, ServedFrom::Fetch))
    }

    /// Evicts the least recently used objects beyond the budget, but
    /// always keeps the newest (`keep_newest` of them): one directory
    /// larger than the whole budget must not be decoded again at every
    /// lookup in it.
    fn insert(&self, id: Id, value: V) {
        let bytes = (self.weigh)(&value);
        let mut lru = self.inner.lock().unwrap();
        lru.bytes += bytes;
        if let Some((_, (_, old))) = lru.entries.push(id, (value, bytes)) {
            lru.bytes -= old;
        }
        self.evict(&mut lru);
    }

    fn evict(&self, lru: &mut Lru<V>) {
        while lru.bytes > self.budget() && lru.entries.len() > self.keep_newest {
            match lru.entries.pop_lru() {
                Some((_, (_, evicted))) => lru.bytes -= evicted,
                None => break,
            }
        }
    }

    /// Forgets an object that will not be asked for again soon.
    pub fn remove(&self, id: &Id) {
        let mut lru = self.inner.lock().unwrap();
        if let Some((_, bytes)) = lru.entries.pop(id) {
            lru.bytes -= bytes;
        }
    }

    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache that weighs chunks by their bytes alone, for round numbers.
    fn by_bytes(budget: usize) -> ChunkCache {
        Cache::new(budget, |chunk| chunk.buffer.capacity())
    }

    #[test]
    fn small_chunks_count_what_they_hold_besides_their_bytes() {
        let cache = ChunkCache::for_chunks(64 << 10);
        for i in 0..1000u32 {
            let mut id = [0; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            cache
                .get_or_fetch(&Id(id), || Ok(chunk((vec![1; 40], 0..40))))
                .unwrap();
        }
        let kept = cache.inner.lock().unwrap().entries.len();
        assert!(kept <= (64 << 10) / (40 + CHUNK_OVERHEAD), "{kept}");
        assert!(cache.bytes() <= 64 << 10);
    }

    #[test]
    fn a_smaller_budget_evicts_at_once() {
        let cache = by_bytes(40);
        for i in 0..10u8 {
            cache
                .get_or_fetch(&Id([i; 32]), || Ok(chunk((vec![i; 4], 0..4))))
                .unwrap();
        }
        assert_eq!(cache.bytes(), 40);
        cache.set_budget(12);
        assert_eq!((cache.bytes(), cache.budget()), (12, 12));
        let (_, newest) = cache.get_or_fetch(&Id([9; 32]), || unreachable!()).unwrap();
        assert_eq!(newest, ServedFrom::Cache);
    }

    #[test]
    fn stays_within_budget_and_fetches_once() {
        let cache = by_bytes(10);
        let fetches = AtomicU64::new(0);
        for i in 0..5u8 {
            let (chunk, _) = cache
                .get_or_fetch(&Id([i; 32]), || {
                    fetches.fetch_add(1, Relaxed);
                    Ok(chunk((vec![i; 4], 0..4)))
                })
                .unwrap();
            assert_eq!(&chunk[..], &[i; 4]);
        }
        assert!(cache.bytes() <= 10);
        let (_, source) = cache.get_or_fetch(&Id([4; 32]), || unreachable!()).unwrap();
        assert_eq!(source, ServedFrom::Cache);
        assert_eq!(fetches.load(Relaxed), 5);
        let failed = cache
            .get_or_fetch(&Id([9; 32]), || Err(crate::error::Error::corrupt("bad")))
            .err()
            .expect("the fetch failed");
        assert_eq!(
            failed.kind(),
            crate::error::ErrorKind::Corrupt,
            "errors keep their kind"
        );
        assert!(!cache.contains(&Id([9; 32])), "failures are not cached");
    }

    #[test]
    fn keeps_the_newest_even_over_budget_and_forgets_on_request() {
        let cache = by_bytes(10);
        let put = |i: u8, len: usize| {
            cache
                .get_or_fetch(&Id([i; 32]), || Ok(chunk((vec![i; len], 0..len))))
                .unwrap()
        };
        put(1, 4);
        put(2, 50);
        assert!(cache.contains(&Id([2; 32])), "the newest stays");
        assert!(!cache.contains(&Id([1; 32])), "older ones make room");
        assert_eq!(cache.bytes(), 50);
        put(3, 4);
        assert_eq!(
            cache.bytes(),
            4,
            "the oversized one goes once it is not the newest"
        );
        cache.remove(&Id([3; 32]));
        assert_eq!(cache.bytes(), 0);
        assert!(!cache.contains(&Id([3; 32])));
    }

    #[test]
    fn trees_in_use_stay_however_large() {
        let cache = TreeCache::for_trees(1);
        let tree = |i: u8| {
            let node = crate::tree::tests::sample_node(&[i]);
            Ok(Arc::new(Tree::whole(vec![node])))
        };
        for i in 0..=TREES_KEPT_NEWEST as u8 {
            cache.get_or_fetch(&Id([i; 32]), || tree(i)).unwrap();
        }
        assert!(!cache.contains(&Id([0; 32])), "the oldest went");
        for i in 1..=TREES_KEPT_NEWEST as u8 {
            assert!(cache.contains(&Id([i; 32])), "tree {i} stays");
        }
    }

    #[test]
    fn concurrent_readers_share_one_fetch() {
        let cache = Arc::new(ChunkCache::for_chunks(1 << 20));
        let fetches = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, fetches) = (Arc::clone(&cache), Arc::clone(&fetches));
                std::thread::spawn(move || {
                    cache
                        .get_or_fetch(&Id([1; 32]), || {
                            fetches.fetch_add(1, Relaxed);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(chunk((vec![7; 100], 0..100)))
                        })
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(&t.join().unwrap().0[..], &[7; 100]);
        }
        assert_eq!(fetches.load(Relaxed), 1);
    }

    #[test]
    fn readers_waiting_for_a_failed_fetch_get_its_kind() {
        let cache = Arc::new(ChunkCache::for_chunks(1 << 20));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    let fetch = || {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Err(crate::error::Error::corrupt("bad"))
                    };
                    cache.get_or_fetch(&Id([1; 32]), fetch).err().unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().kind(), crate::error::ErrorKind::Corrupt);
        }
    }
}
