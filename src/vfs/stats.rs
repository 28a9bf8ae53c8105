//! What the mount has done since it was mounted, and what went wrong
//! lately: the counters and the error list that `.rewind/status` shows, and
//! when a file was last read (the background scrub yields to readers).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How many of the latest errors are kept.
const RECENT_ERRORS: usize = 20;

pub struct Stats {
    pub mounted_at: SystemTime,
    /// `mounted_at` on a clock that never goes back, for idle times.
    started: Instant,
    /// Milliseconds since `started`, at the last read of a file.
    last_read_ms: AtomicU64,
    pub reads: AtomicU64,
    pub bytes_served: AtomicU64,
    pub chunks_verified: AtomicU64,
    pub eio: AtomicU64,
    recent_errors: Mutex<VecDeque<String>>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            mounted_at: SystemTime::now(),
            started: Instant::now(),
            last_read_ms: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            bytes_served: AtomicU64::new(0),
            chunks_verified: AtomicU64::new(0),
            eio: AtomicU64::new(0),
            recent_errors: Mutex::new(VecDeque::new()),
        }
    }

    /// Logs an error and keeps it among the recent ones.
    pub fn record_error(&self, message: String) {
        crate::log::error(&message);
        let mut recent = self.recent_errors.lock().unwrap();
        if recent.len() == RECENT_ERRORS {
            recent.pop_front();
        }
        recent.push_back(message);
    }

    /// [`Stats::record_error`] for an error a reader gets as EIO.
    pub fn record_eio(&self, message: String) {
        self.eio.fetch_add(1, Relaxed);
        self.record_error(message);
    }

    pub fn recent_errors(&self) -> Vec<String> {
        self.recent_errors.lock().unwrap().iter().cloned().collect()
    }

    /// A file of a snapshot is being read now.
    pub fn reading(&self) {
        self.last_read_ms.store(self.millis_since_start(), Relaxed);
    }

    /// A read served these many bytes.
    pub fn served(&self, bytes: usize) {
        self.reads.fetch_add(1, Relaxed);
        self.bytes_served.fetch_add(bytes as u64, Relaxed);
    }

    /// How long no file has been read.
    pub fn idle_for(&self) -> Duration {
        let idle = self
            .millis_since_start()
            .saturating_sub(self.last_read_ms.load(Relaxed));
        Duration::from_millis(idle)
    }

    fn millis_since_start(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}
