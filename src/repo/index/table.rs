//! The index's table of blobs: each blob's key and location, sorted by
//! key, 30 bytes a blob (`docs/design.md`, section 6).
//!
//! The table is split into 65,536 buckets by the first two key bytes,
//! which are therefore not stored: an entry is the other 14 key bytes and
//! the 16-byte location, in two parallel vectors so that a lookup's search
//! runs over keys alone. The bucket table (256 KiB) also takes the first
//! sixteen steps off every search, and the rest starts where the key's
//! value puts it, keys being spread evenly. Loading builds the table in one pass
//! that counts the blobs of each bucket and one that places each blob
//! where its bucket begins, then sorts the buckets on every core; blobs
//! added later are merged in place, from the back.

use std::cmp::Ordering;

use super::{BlobKey, BlobLocation, KEY_LEN};

/// Key bytes that name a blob's bucket.
const BUCKET_BYTES: usize = 2;
pub(super) const BUCKETS: usize = 1 << (8 * BUCKET_BYTES);

/// The key bytes an entry stores: those after its bucket's. Ordered as
/// the bytes are, compared a word at a time rather than by `memcmp`, which
/// the sorts and searches of a load would otherwise spend most time in.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tail([u8; TAIL_LEN]);

const TAIL_LEN: usize = KEY_LEN - BUCKET_BYTES;

impl Tail {
    fn words(&self) -> (u64, u64) {
        let word = |range: std::ops::Range<usize>| {
            let mut bytes = [0u8; 8];
            bytes[8 - range.len()..].copy_from_slice(&self.0[range]);
            u64::from_be_bytes(bytes)
        };
        (word(0..8), word(8..TAIL_LEN))
    }
}

impl Ord for Tail {
    fn cmp(&self, other: &Tail) -> Ordering {
        self.words().cmp(&other.words())
    }
}

impl PartialOrd for Tail {
    fn partial_cmp(&self, other: &Tail) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Below this many blobs a table is sorted on the calling thread.
const PARALLEL_SORT_MIN: usize = 1 << 16;

#[derive(Default)]
pub(super) struct Table {
    /// Bucket `b` holds entries `starts[b]..starts[b + 1]`; empty while the
    /// table is, and never longer than `BUCKETS + 1`. 32-bit: a table holds
    /// fewer than 2^32 blobs (160 GB of them).
    starts: Vec<u32>,
    tails: Vec<Tail>,
    locations: Vec<BlobLocation>,
}

pub(super) fn bucket_of(key: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([key[0], key[1]]))
}

pub(super) fn tail_of(key: &[u8]) -> Tail {
    Tail(key[BUCKET_BYTES..KEY_LEN].try_into().unwrap())
}

impl BlobKey {
    fn bucket(&self) -> usize {
        bucket_of(&self.0)
    }

    fn tail(&self) -> Tail {
        tail_of(&self.0)
    }

    fn from_parts(bucket: usize, tail: &Tail) -> BlobKey {
        let mut key = [0u8; KEY_LEN];
        key[..BUCKET_BYTES].copy_from_slice(&(bucket as u16).to_be_bytes());
        key[BUCKET_BYTES..].copy_from_slice(&tail.0);
        BlobKey(key)
    }
}

impl Table {
    /// The table of the blobs given as parallel vectors of bucket, key
    /// tail and location, in any order, built in place: a load decodes
    /// each index file straight into these, so that it never holds the
    /// decoded files and the table at once (`docs/design.md`, section
    /// 6.1). Of blobs with the same key, the one in the lowest-numbered
    /// pack stays (the first listed: packs are numbered as listed).
    pub(super) fn build_in_place(
        mut buckets: Vec<u16>,
        mut tails: Vec<Tail>,
        mut locations: Vec<BlobLocation>,
    ) -> Table {
        let mut starts = vec![0u32; BUCKETS + 1];
        for &b in &buckets {
            starts[usize::from(b) + 1] += 1;
        }
        for b in 0..BUCKETS {
            starts[b + 1] = starts[b + 1]
                .checked_add(starts[b])
                .expect("an index holds fewer than 2^32 blobs");
        }
        if starts[BUCKETS] == 0 {
            return Table::default();
        }
        // Into buckets in two passes of 256 runs each, by the bucket's high
        // byte, then within each run by its low byte: a pass moves entries
        // to 256 places at a time, whose cache lines stay in the cache,
        // where one pass of 65,536 missed it at nearly every move (the
        // load of 10M blobs spent a third of its time there).
        let outer = partition(&mut buckets, &mut tails, &mut locations, |b| {
            usize::from(b >> 8)
        });
        let entries = (&mut buckets[..], &mut tails[..], &mut locations[..]);
        in_shares(&outer, entries, |bounds, (b, t, l)| {
            for run in bounds.windows(2) {
                let run = (run[0] - bounds[0]) as usize..(run[1] - bounds[0]) as usize;
                partition(&mut b[run.clone()], &mut t[run.clone()], &mut l[run], |b| {
                    usize::from(b & 0xff)
                });
            }
        });
        drop(buckets);
        let mut table = Table {
            starts,
            tails,
            locations,
        };
        table.sort_buckets();
        table.drop_repeated_keys();
        // The vectors grew as files came in.
        table.tails.shrink_to_fit();
        table.locations.shrink_to_fit();
        table
    }

    /// Sorts each bucket by key, keeping equal keys in the order placed.
    fn sort_buckets(&mut self) {
        let Table {
            starts,
            tails,
            locations,
        } = self;
        in_shares(
            starts,
            (&mut tails[..], &mut locations[..]),
            |bounds, (t, l)| sort_runs(bounds, t, l),
        );
    }

    /// Drops all but the first entry of each key (a blob stored in two
    /// packs, or listed twice).
    fn drop_repeated_keys(&mut self) {
        let mut kept = 0;
        for b in 0..BUCKETS {
            let (from, to) = (self.starts[b] as usize, self.starts[b + 1] as usize);
            self.starts[b] = kept as u32;
            for i in from..to {
                if kept > self.starts[b] as usize && self.tails[kept - 1] == self.tails[i] {
                    continue;
                }
                self.tails[kept] = self.tails[i];
                self.locations[kept] = self.locations[i];
                kept += 1;
            }
        }
        self.starts[BUCKETS] = kept as u32;
        if kept < self.tails.len() {
            self.tails.truncate(kept);
            self.tails.shrink_to_fit();
            self.locations.truncate(kept);
            self.locations.shrink_to_fit();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.tails.len()
    }

    pub(super) fn get(&self, key: &BlobKey) -> Option<BlobLocation> {
        let bucket = key.bucket();
        let from = *self.starts.get(bucket)? as usize;
        let to = self.starts[bucket + 1] as usize;
        let at = search(&self.tails[from..to], &key.tail())?;
        Some(self.locations[from + at])
    }

    /// Every entry, by key.
    pub(super) fn iter(&self) -> impl Iterator<Item = (BlobKey, BlobLocation)> + '_ {
        self.starts
            .windows(2)
            .enumerate()
            .flat_map(move |(bucket, run)| {
                (run[0] as usize..run[1] as usize).map(move |i| {
                    (
                        BlobKey::from_parts(bucket, &self.tails[i]),
                        self.locations[i],
                    )
                })
            })
    }

    /// Adds `new`, sorted by key with no key twice and none already here.
    /// The vectors grow by what is added and the entries are merged from
    /// the back, so the table is never held twice.
    pub(super) fn merge(&mut self, new: &[(BlobKey, BlobLocation)]) {
        if new.is_empty() {
            return;
        }
        if self.starts.is_empty() {
            self.starts = vec![0; BUCKETS + 1];
        }
        let old = self.tails.len();
        reserve_mapped(&mut self.tails, new.len());
        reserve_mapped(&mut self.locations, new.len());
        self.tails.resize(old + new.len(), Tail::default());
        self.locations
            .resize(old + new.len(), BlobLocation::default());
        let (mut i, mut j) = (old, new.len());
        // The bucket of old entry i - 1, found walking down as i does.
        let mut bucket = BUCKETS - 1;
        while j > 0 {
            let take_old = i > 0 && {
                while self.starts[bucket] as usize > i - 1 {
                    bucket -= 1;
                }
                let incoming = &new[j - 1].0;
                (bucket, &self.tails[i - 1]) > (incoming.bucket(), &incoming.tail())
            };
            let to = i + j - 1;
            if take_old {
                self.tails[to] = self.tails[i - 1];
                self.locations[to] = self.locations[i - 1];
                i -= 1;
            } else {
                self.tails[to] = new[j - 1].0.tail();
                self.locations[to] = new[j - 1].1;
                j -= 1;
            }
        }
        let mut before = 0;
        for (b, start) in self.starts.iter_mut().enumerate() {
            while new.get(before).is_some_and(|(key, _)| key.bucket() < b) {
                before += 1;
            }
            *start += before as u32;
        }
    }
}

/// Vectors of a growing table are given at least this much room.
const MAPPED_BYTES: usize = 16 << 20;

/// Makes room in `entries` for `more`, and never less than
/// [`MAPPED_BYTES`] in all. The binary has the allocator map every
/// allocation of that size on its own (`M_MMAP_THRESHOLD`, main.rs), so
/// the room not yet used costs no memory, and a vector that grows is
/// remapped rather than copied, its old buffer going back to the system.
/// Smaller, a table that grows by merges (a backup adding millions of
/// blobs) leaves each outgrown buffer in the heap, where it stays
/// resident: a backup of 3,000,000 files peaked at 163 MiB that way, and
/// at 139 MiB with this (`docs/design.md`, section 6.1).
fn reserve_mapped<T>(entries: &mut Vec<T>, more: usize) {
    let needed = entries.len() + more;
    if needed > entries.capacity() {
        let least = MAPPED_BYTES / std::mem::size_of::<T>();
        entries.reserve(needed.max(least) - entries.len());
    }
}

/// Where `tail` is among `tails`, which are sorted and, as keyed hashes
/// are, spread evenly: the search starts where an even spread puts it and
/// gallops from there, so that it touches a cache line or two rather than
/// one for each of log2(len) steps. Any spread is found, more slowly.
fn search(tails: &[Tail], tail: &Tail) -> Option<usize> {
    let len = tails.len();
    if len == 0 {
        return None;
    }
    let guess = ((u128::from(tail.words().0) * len as u128) >> 64) as usize;
    // The answer, if any, lies in lo..hi.
    let (mut lo, mut hi) = (0, len);
    match tails[guess].cmp(tail) {
        Ordering::Equal => return Some(guess),
        Ordering::Less => {
            lo = guess + 1;
            let mut step = 1;
            while guess + step < len {
                if tails[guess + step] >= *tail {
                    hi = guess + step + 1;
                    break;
                }
                lo = guess + step + 1;
                step *= 2;
            }
        }
        Ordering::Greater => {
            hi = guess;
            let mut step = 1;
            while step <= guess {
                if tails[guess - step] <= *tail {
                    lo = guess - step;
                    break;
                }
                hi = guess - step;
                step *= 2;
            }
        }
    }
    let at = tails[lo..hi].binary_search(tail).ok()?;
    Some(lo + at)
}

/// Slices of the same entries, cut at the same place together.
trait Entries: Sized + Send {
    fn split_at(self, at: usize) -> (Self, Self);
}

impl<T: Send, U: Send> Entries for (&mut [T], &mut [U]) {
    fn split_at(self, at: usize) -> (Self, Self) {
        let (t, rest_t) = self.0.split_at_mut(at);
        let (u, rest_u) = self.1.split_at_mut(at);
        ((t, u), (rest_t, rest_u))
    }
}

impl<T: Send, U: Send, V: Send> Entries for (&mut [T], &mut [U], &mut [V]) {
    fn split_at(self, at: usize) -> (Self, Self) {
        let (t, rest_t) = self.0.split_at_mut(at);
        let (u, rest_u) = self.1.split_at_mut(at);
        let (v, rest_v) = self.2.split_at_mut(at);
        ((t, u, v), (rest_t, rest_u, rest_v))
    }
}

/// Runs `work` over the runs of `entries` that `bounds` delimit
/// (ascending; `bounds[0]` is where `entries` begin), on every core once
/// there are many entries: each thread takes consecutive runs holding
/// about an equal share, with their bounds.
fn in_shares<E: Entries>(bounds: &[u32], entries: E, work: impl Fn(&[u32], E) + Sync) {
    let runs = bounds.len() - 1;
    let total = (bounds[runs] - bounds[0]) as usize;
    let threads = if total < PARALLEL_SORT_MIN {
        1
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get().min(8))
    };
    if threads == 1 {
        return work(bounds, entries);
    }
    let work = &work;
    std::thread::scope(|scope| {
        let (mut rest, mut first) = (entries, 0);
        for share in 1..=threads {
            let end = if share == threads {
                runs
            } else {
                bounds.partition_point(|&s| ((s - bounds[0]) as usize) < total * share / threads)
            }
            .clamp(first, runs);
            let (mine, others) = rest.split_at((bounds[end] - bounds[first]) as usize);
            rest = others;
            let bounds = &bounds[first..=end];
            scope.spawn(move || work(bounds, mine));
            first = end;
        }
    });
}

/// Moves each entry of the three slices (the same entries) to the run of
/// its digit, 0 to 255, in place: each entry is swapped straight to the
/// next free place of its run until the place being filled holds one of
/// its own. Returns the runs' bounds.
fn partition(
    buckets: &mut [u16],
    tails: &mut [Tail],
    locations: &mut [BlobLocation],
    digit: impl Fn(u16) -> usize,
) -> [u32; 257] {
    let mut bounds = [0u32; 257];
    for &b in buckets.iter() {
        bounds[digit(b) + 1] += 1;
    }
    for d in 0..256 {
        bounds[d + 1] += bounds[d];
    }
    let mut next = bounds;
    for d in 0..256 {
        let end = bounds[d + 1];
        while next[d] < end {
            let at = next[d] as usize;
            let home = digit(buckets[at]);
            if home == d {
                next[d] += 1;
                continue;
            }
            let to = next[home] as usize;
            next[home] += 1;
            buckets.swap(at, to);
            tails.swap(at, to);
            locations.swap(at, to);
        }
    }
    bounds
}

/// Sorts the buckets that `bounds` delimit (`bounds[0]` is where `tails`
/// and `locations` begin), each by key, and equal keys by pack number and
/// offset, the order they were listed in (a table built in place has no
/// order of placing to keep).
fn sort_runs(bounds: &[u32], tails: &mut [Tail], locations: &mut [BlobLocation]) {
    let base = bounds[0] as usize;
    let mut run: Vec<(Tail, BlobLocation)> = Vec::new();
    for bound in bounds.windows(2) {
        let range = bound[0] as usize - base..bound[1] as usize - base;
        let in_order = tails[range.clone()]
            .iter()
            .zip(&locations[range.clone()])
            .map(|(tail, location)| (tail, location.pack(), location.offset))
            .is_sorted();
        if in_order {
            continue;
        }
        run.clear();
        run.extend(
            tails[range.clone()]
                .iter()
                .zip(&locations[range.clone()])
                .map(|(tail, location)| (*tail, *location)),
        );
        run.sort_by_key(|(tail, location)| (*tail, location.pack(), location.offset));
        for (at, (tail, location)) in range.zip(run.iter()) {
            tails[at] = *tail;
            locations[at] = *location;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(first: u64, last: u8) -> Tail {
        let mut bytes = [0u8; TAIL_LEN];
        bytes[..8].copy_from_slice(&first.to_be_bytes());
        bytes[TAIL_LEN - 1] = last;
        Tail(bytes)
    }

    /// Every tail is found and no other, whether tails are spread evenly,
    /// bunched at either end, or all share their first word.
    #[test]
    fn search_finds_tails_however_they_are_spread() {
        type Spread = fn(u64) -> u64;
        let spreads: [(&str, Spread); 4] = [
            ("even", |i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            ("low", |i| i),
            ("high", |i| u64::MAX - i * 3),
            ("one word", |_| 1 << 63),
        ];
        for (spread, first) in spreads {
            for len in [1, 2, 3, 7, 150, 1000] {
                let mut tails: Vec<Tail> = (0..len)
                    .map(|i| tail(first(i), (i % 100) as u8 * 2 + 1))
                    .collect();
                tails.sort();
                tails.dedup();
                for (at, t) in tails.iter().enumerate() {
                    assert_eq!(search(&tails, t), Some(at), "{spread}, {len}");
                    let mut missing = *t;
                    missing.0[TAIL_LEN - 1] -= 1;
                    assert_eq!(search(&tails, &missing), None, "{spread}, {len}");
                }
                assert_eq!(search(&tails, &tail(0, 0)), None);
                assert_eq!(search(&tails, &tail(u64::MAX, 255)), None);
            }
        }
        assert_eq!(search(&[], &tail(5, 5)), None);
    }
}
