//! The index at 10 million blobs (issue 16): what it costs in memory per
//! blob, how long a repository takes to load it, and how many lookups per
//! second it answers, hits and misses.
//!
//! The blobs are synthetic: uniformly random ids (as keyed BLAKE3 ids are),
//! 250 to a pack (16 MiB packs of ~64 KiB blobs; `REWIND_BENCH_PER_PACK`
//! changes it), 64 packs to an index file, as a backup writes them; one blob
//! in 100 a tree, one in 10,000 a snapshot copy. Two loads are measured:
//! the index built from index files already decoded in memory (the data
//! structure alone), and `load_index` of an encrypted local repository
//! holding those index files (listing, reading, checking, decrypting,
//! decoding and building, as every command does).
//!
//! Run: `cargo bench --bench index` (10,000,000 blobs; about 3 GB of memory
//! and 0.5 GB in a temporary directory). `REWIND_BENCH_BLOBS=N` sets the
//! number of blobs; a debug build (`cargo test --bench index`) takes
//! 1,000,000 unless told otherwise. `REWIND_BENCH_NO_REPOSITORY=1` stops
//! before the repository is written; `REWIND_BENCH_LOADS=N` loads it N
//! times, not 3 (the best is shown), which a profiler wants. Memory is counted by a global allocator
//! that sums what is allocated: bytes per blob are the index's own
//! allocations divided by the number of blobs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rewind::format::index::INDEX_VERSION;
use rewind::format::{crypto, BlobKind, FileType, Index, IndexFile, IndexedPack, PackedBlob};
use rewind::{Backend, Encryption, Id, LocalBackend, Repository};

/// Counts the bytes allocated now and the most allocated at once.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = ALLOCATED.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout);
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = System.realloc(p, layout, new_size);
        if !q.is_null() {
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

/// Starts a peak measurement from what is allocated now.
fn reset_peak() {
    PEAK.store(allocated(), Ordering::Relaxed);
}

fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

const PACKS_PER_FILE: usize = 64;
const PACK_SIZE: u32 = 16 * 1024 * 1024;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.replace('_', "").parse().expect("a number"))
        .unwrap_or(default)
}

/// splitmix64: the `i`th blob's id is a pure function of `i`, so that the
/// lookups can name blobs without keeping 10M ids around.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn blob_id(i: u64) -> Id {
    let mut id = [0u8; 32];
    for (k, word) in id.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&mix(i * 4 + k as u64).to_le_bytes());
    }
    Id(id)
}

fn pack_id(p: u64) -> Id {
    blob_id((1 << 60) + p)
}

/// The packs of the synthetic repository, `per_pack` blobs each, the last
/// one short.
fn pack(p: usize, per_pack: usize, blobs: usize) -> IndexedPack {
    let first = p * per_pack;
    let last = (first + per_pack).min(blobs);
    let stored = PACK_SIZE / per_pack as u32;
    IndexedPack {
        id: pack_id(p as u64),
        salt: blob_id((1 << 61) + p as u64).0,
        blobs: (first..last)
            .map(|i| PackedBlob {
                kind: match i {
                    _ if i % 10_000 == 5 => BlobKind::Snapshot,
                    _ if i % 100 == 3 => BlobKind::Tree,
                    _ => BlobKind::Data,
                },
                id: blob_id(i as u64),
                offset: 40 + (i - first) as u32 * stored,
                stored_len: stored - (i as u32 % 64),
                raw_len: stored + (i as u32 % 4096),
            })
            .collect(),
    }
}

fn index_files(blobs: usize, per_pack: usize) -> impl Iterator<Item = IndexFile> {
    let packs = blobs.div_ceil(per_pack);
    (0..packs.div_ceil(PACKS_PER_FILE)).map(move |f| IndexFile {
        supersedes: Vec::new(),
        packs: (f * PACKS_PER_FILE..((f + 1) * PACKS_PER_FILE).min(packs))
            .map(|p| pack(p, per_pack, blobs))
            .collect(),
    })
}

/// The index as `load_index` builds it, from files already decoded.
fn build(files: &[IndexFile]) -> Index {
    Index::from_packs(files.iter().flat_map(|file| &file.packs))
}

/// Writes the index files into a new encrypted repository, as its writers
/// would (salt, then the sealed and compressed content, named by hash).
fn write_repository(dir: &std::path::Path, blobs: usize, per_pack: usize) -> Arc<dyn Backend> {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir));
    let repo = Repository::init(backend.clone(), Encryption::Aes256Gcm, Some(b"bench"))
        .expect("repository created");
    let keys = rewind::format::keys_of(&repo);
    for file in index_files(blobs, per_pack) {
        let mut content = vec![INDEX_VERSION];
        content.extend(postcard::to_stdvec(&file).unwrap());
        let mut salt = [0u8; crypto::SALT_LEN];
        crypto::random_bytes(&mut salt).unwrap();
        let sealed = keys
            .sealer(&salt)
            .seal(crypto::compress(&content, 3).unwrap())
            .unwrap();
        let bytes = [&salt[..], &sealed].concat();
        backend
            .write(FileType::Index, &Id::of_bytes(&bytes).to_hex(), &bytes)
            .unwrap();
    }
    backend
}

/// CPU seconds this process has used, on every thread: on a busy machine
/// a steadier measure of work than the time on the clock.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn per_blob(bytes: usize, blobs: usize) -> f64 {
    bytes as f64 / blobs as f64
}

/// The shortest of `runs` runs; each result is dropped before the next run.
fn best_of<T>(runs: usize, mut run: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            let value = run();
            let took = started.elapsed();
            drop(value);
            took
        })
        .min()
        .unwrap()
}

/// Lookups per second of `count` ids that are in the index and `count`
/// that are not, in an order unrelated to the index's.
fn lookups(index: &Index, blobs: usize, count: usize) -> (f64, f64) {
    let hits: Vec<Id> = (0..count as u64)
        .map(|k| blob_id(mix(k) % blobs as u64))
        .collect();
    let misses: Vec<Id> = (0..count as u64)
        .map(|k| blob_id(blobs as u64 + mix(k) % (1 << 40)))
        .collect();
    let rate = |ids: &[Id], expect: bool| {
        let started = Instant::now();
        let found = ids.iter().filter(|id| index.get(id).is_some()).count();
        let took = started.elapsed().as_secs_f64();
        assert_eq!(found, if expect { ids.len() } else { 0 });
        ids.len() as f64 / took
    };
    (rate(&hits, true), rate(&misses, false))
}

fn main() {
    let default = if cfg!(debug_assertions) {
        1_000_000
    } else {
        10_000_000
    };
    let blobs = env_number("REWIND_BENCH_BLOBS", default);
    let per_pack = env_number("REWIND_BENCH_PER_PACK", 250);
    let packs = blobs.div_ceil(per_pack);
    println!(
        "index: {blobs} blobs in {packs} packs of {per_pack}, {} index files ({})",
        packs.div_ceil(PACKS_PER_FILE),
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        }
    );

    // The data structure alone.
    let files: Vec<IndexFile> = index_files(blobs, per_pack).collect();
    let before = allocated();
    reset_peak();
    let started = Instant::now();
    let cpu = cpu_seconds();
    let index = build(&files);
    let took = started.elapsed();
    let cpu = cpu_seconds() - cpu;
    let index_bytes = allocated() - before;
    let build_peak = peak() - before;
    drop(files);
    assert_eq!(index.blob_count(), blobs);
    println!(
        "build from decoded files: {:.3} s ({cpu:.3} s of CPU), {:.1} bytes/blob ({:.1} MB), peak {:.1} bytes/blob above the decoded files",
        took.as_secs_f64(),
        per_blob(index_bytes, blobs),
        index_bytes as f64 / 1e6,
        per_blob(build_peak, blobs),
    );
    let count = (blobs / 4).clamp(1, 2_000_000);
    let (hits, misses) = lookups(&index, blobs, count);
    println!(
        "lookups: {:.2} M/s hits, {:.2} M/s misses ({count} of each, one thread)",
        hits / 1e6,
        misses / 1e6
    );
    drop(index);
    if std::env::var_os("REWIND_BENCH_NO_REPOSITORY").is_some() {
        return;
    }

    // A whole load, as every command does it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let started = Instant::now();
    let backend = write_repository(&dir, blobs, per_pack);
    println!(
        "repository written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let opened = Repository::open(backend, || Ok(b"bench".to_vec())).unwrap();
    let load = || {
        let (repo, errors) = opened.load_index().unwrap();
        assert!(errors.is_empty());
        repo
    };
    let before = allocated();
    reset_peak();
    let loaded = load();
    let loaded_bytes = allocated() - before;
    let load_peak = peak() - before;
    assert_eq!(loaded.index().blob_count(), blobs);
    drop(loaded);
    let took = best_of(env_number("REWIND_BENCH_LOADS", 3), load);
    println!(
        "load_index: {:.3} s (best of 3), {:.1} bytes/blob held, peak {:.1} bytes/blob",
        took.as_secs_f64(),
        per_blob(loaded_bytes, blobs),
        per_blob(load_peak, blobs),
    );
}
