//! Measures what the data a backup stores for each file is made of: how
//! much of it zstd could not compress (`docs/design.md`, section 7,
//! "Finding the last clean snapshot"). Nothing is read or compressed for
//! it: the packers report each chunk of a file as they store it, and the
//! file is judged once its last chunk is stored and its reader is done,
//! when the last reference to its tally goes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::repo::ChangedData;
use crate::suspicion::{ChangedBytes, Compressibility};

/// The run's totals, as files are judged.
#[derive(Default)]
pub(super) struct ChangedDataCounters {
    files_incompressible: AtomicU64,
    new_files_incompressible: AtomicU64,
    bytes: AtomicU64,
    bytes_incompressible: AtomicU64,
}

impl ChangedDataCounters {
    /// The totals (once every tally is gone: the packers have stopped).
    pub fn totals(&self) -> ChangedData {
        ChangedData {
            files_incompressible: self.files_incompressible.load(Relaxed),
            new_files_incompressible: self.new_files_incompressible.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            bytes_incompressible: self.bytes_incompressible.load(Relaxed),
        }
    }
}

/// The changed data of one file: shared by its reader and the packers
/// that store its new chunks.
pub(crate) struct FileTally {
    judge: Compressibility,
    /// Whether the file's path was not in the parent snapshot.
    new: bool,
    bytes: AtomicU64,
    incompressible: AtomicU64,
    /// Set when the file was read to its end: a file that failed is
    /// missing from the snapshot and counts for nothing.
    read: AtomicBool,
    counters: Arc<ChangedDataCounters>,
}

impl FileTally {
    pub(super) fn new(
        judge: Compressibility,
        new: bool,
        counters: &Arc<ChangedDataCounters>,
    ) -> FileTally {
        FileTally {
            judge,
            new,
            bytes: AtomicU64::new(0),
            incompressible: AtomicU64::new(0),
            read: AtomicBool::new(false),
            counters: Arc::clone(counters),
        }
    }

    /// A new chunk of the file, as the packer stored it.
    pub(crate) fn stored(&self, raw_len: u32, stored_len: u32) {
        self.bytes.fetch_add(u64::from(raw_len), Relaxed);
        self.incompressible.fetch_add(
            self.judge.incompressible_bytes(raw_len, stored_len),
            Relaxed,
        );
    }

    /// The file was read to its end and is in the snapshot.
    pub(super) fn read_whole(&self) {
        self.read.store(true, Relaxed);
    }
}

impl Drop for FileTally {
    fn drop(&mut self) {
        if !*self.read.get_mut() {
            return;
        }
        let file = ChangedBytes {
            bytes: *self.bytes.get_mut(),
            incompressible: *self.incompressible.get_mut(),
        };
        let counters = &self.counters;
        counters.bytes.fetch_add(file.bytes, Relaxed);
        counters
            .bytes_incompressible
            .fetch_add(file.incompressible, Relaxed);
        if file.is_mostly_incompressible() {
            let counter = if self.new {
                &counters.new_files_incompressible
            } else {
                &counters.files_incompressible
            };
            counter.fetch_add(1, Relaxed);
        }
    }
}
