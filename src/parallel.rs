//! Running independent work on a few threads.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads for work that mostly waits on storage rather than the CPU: many
/// small repository files, each a durable write that waits on its fsync
/// or a read from a cold cache or a remote store. Reading 10,000 snapshot
/// manifests from a cold cache on two threads took about a second.
pub const WAITING_THREADS: usize = 16;

/// Runs `f` over items on a few threads, keeping the order of results.
/// Threads take the next item as they become free, so one slow item (a big
/// file among small ones) does not leave the other threads idle.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    parallel_map_on(threads, items, f)
}

/// [`parallel_map`] on `threads` threads: more than the CPUs for work that
/// mostly waits (each item a durable write that waits on its fsync).
pub fn parallel_map_on<T: Sync, R: Send>(
    threads: usize,
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if items.len() < 2 || threads < 2 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            // A panic in `f` is a bug; re-raising it keeps its message.
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
