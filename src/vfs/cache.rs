//! A byte-budgeted LRU of decoded, verified chunks, shared by the readers and
//! the read-ahead workers. A chunk being fetched is fetched once: a second
//! reader waits for the first instead of reading the pack again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};

use lru::LruCache;

use crate::error::Result;
use crate::repo::Id;

pub type Chunk = Arc<Vec<u8>>;

type Pending = Arc<(Mutex<Option<std::result::Result<Chunk, String>>>, Condvar)>;

pub struct ChunkCache {
    budget: usize,
    inner: Mutex<Lru>,
    pending: Mutex<HashMap<Id, Pending>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

struct Lru {
    chunks: LruCache<Id, Chunk>,
    bytes: usize,
}

/// Whether a lookup was served from memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Fetched,
}

impl ChunkCache {
    pub fn new(budget: usize) -> ChunkCache {
        ChunkCache {
            budget,
            inner: Mutex::new(Lru {
                chunks: LruCache::unbounded(),
                bytes: 0,
            }),
            pending: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.inner.lock().unwrap().chunks.contains(id)
            || self.pending.lock().unwrap().contains_key(id)
    }

    /// The chunk from memory, or from `fetch` (called at most once at a time per id).
    pub fn get_or_fetch(
        &self,
        id: &Id,
        fetch: impl FnOnce() -> Result<Vec<u8>>,
    ) -> std::result::Result<(Chunk, Source), String> {
        if let Some(chunk) = self.inner.lock().unwrap().chunks.get(id) {
            self.hits.fetch_add(1, Relaxed);
            return Ok((Arc::clone(chunk), Source::Cache));
        }
        let (slot, leader) = {
            let mut pending = self.pending.lock().unwrap();
            match pending.get(id) {
                Some(slot) => (Arc::clone(slot), false),
                None => {
                    let slot: Pending = Arc::new((Mutex::new(None), Condvar::new()));
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
            return result.clone().unwrap().map(|c| (c, Source::Cache));
        }
        self.misses.fetch_add(1, Relaxed);
        let result = fetch().map(Arc::new).map_err(|e| e.to_string());
        if let Ok(chunk) = &result {
            self.insert(*id, Arc::clone(chunk));
        }
        let (lock, ready) = &*slot;
        *lock.lock().unwrap() = Some(result.clone());
        ready.notify_all();
        self.pending.lock().unwrap().remove(id);
        result.map(|c| (c, Source::Fetched))
    }

    fn insert(&self, id: Id, chunk: Chunk) {
        let mut lru = self.inner.lock().unwrap();
        if chunk.len() > self.budget {
            return;
        }
        lru.bytes += chunk.len();
        if let Some(old) = lru.chunks.put(id, chunk) {
            lru.bytes -= old.len();
        }
        while lru.bytes > self.budget {
            match lru.chunks.pop_lru() {
                Some((_, evicted)) => lru.bytes -= evicted.len(),
                None => break,
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_budget_and_fetches_once() {
        let cache = ChunkCache::new(10);
        let fetches = AtomicU64::new(0);
        for i in 0..5u8 {
            let (chunk, _) = cache
                .get_or_fetch(&Id([i; 32]), || {
                    fetches.fetch_add(1, Relaxed);
                    Ok(vec![i; 4])
                })
                .unwrap();
            assert_eq!(*chunk, vec![i; 4]);
        }
        assert!(cache.bytes() <= 10);
        let (_, source) = cache.get_or_fetch(&Id([4; 32]), || unreachable!()).unwrap();
        assert_eq!(source, Source::Cache);
        assert_eq!(fetches.load(Relaxed), 5);
        assert!(cache
            .get_or_fetch(&Id([9; 32]), || Err(crate::Error::corrupt("bad")))
            .is_err());
        assert!(!cache.contains(&Id([9; 32])), "failures are not cached");
    }

    #[test]
    fn concurrent_readers_share_one_fetch() {
        let cache = Arc::new(ChunkCache::new(1 << 20));
        let fetches = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, fetches) = (Arc::clone(&cache), Arc::clone(&fetches));
                std::thread::spawn(move || {
                    cache
                        .get_or_fetch(&Id([1; 32]), || {
                            fetches.fetch_add(1, Relaxed);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(vec![7; 100])
                        })
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(*t.join().unwrap().0, vec![7; 100]);
        }
        assert_eq!(fetches.load(Relaxed), 1);
    }
}
