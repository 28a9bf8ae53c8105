//! The metadata warmer: threads that list directories and stat their
//! entries ahead of the walker, so that the kernel's dentry and inode caches
//! are warm when the (single) walker gets there. On a cold cache the walk is
//! a chain of disk waits; several of them in flight at once hide that.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

/// Directories queued or being listed, and the way to stop early.
pub(super) struct MetadataWarmer {
    queue: Sender<PathBuf>,
    work: Receiver<PathBuf>,
    pending: AtomicUsize,
    stop: AtomicBool,
}

impl MetadataWarmer {
    pub fn new(roots: &[PathBuf]) -> MetadataWarmer {
        let (queue, work) = crossbeam_channel::unbounded();
        let warmer = MetadataWarmer {
            queue,
            work,
            pending: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        };
        for root in roots {
            warmer.push(root.clone());
        }
        warmer
    }

    fn push(&self, dir: PathBuf) {
        self.pending.fetch_add(1, SeqCst);
        let _ = self.queue.send(dir);
    }

    /// Ends the warming (the walk is over, or failed).
    pub fn stop(&self) {
        self.stop.store(true, SeqCst);
    }

    /// One worker: lists directories until none is left or it is stopped.
    /// `skip` says which entries the backup will not visit.
    pub fn work(&self, skip: impl Fn(&Path, &[u8], &std::fs::Metadata) -> bool) {
        use std::os::unix::ffi::OsStrExt;
        while !self.stop.load(SeqCst) {
            let dir = match self.work.recv_timeout(Duration::from_millis(20)) {
                Ok(dir) => dir,
                Err(_) if self.pending.load(SeqCst) == 0 => return,
                Err(_) => continue,
            };
            // Listed without moving the directory's atime, as the walker lists it.
            if let Ok(names) = super::source::read_dir_names(&dir) {
                for name in names.iter() {
                    if self.stop.load(SeqCst) {
                        break;
                    }
                    let path = dir.join(std::ffi::OsStr::from_bytes(name));
                    let Ok(meta) = std::fs::symlink_metadata(&path) else {
                        continue;
                    };
                    if meta.is_dir() && !skip(&path, name, &meta) {
                        self.push(path);
                    }
                }
            }
            self.pending.fetch_sub(1, SeqCst);
        }
    }
}
