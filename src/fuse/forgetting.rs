//! Tells the kernel which names to drop, so that it forgets the inodes the
//! mount cannot keep (`vfs::Vfs::surplus_names` chooses them; see
//! docs/design.md, "Memory"). A thread of its own sends the notices: one
//! sent while answering a request could wait for the very lock that
//! request's caller holds on the directory.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fuser::{INodeNo, Notifier};

use crate::vfs::Vfs;

/// How long the thread waits for too many inodes before it looks whether
/// the session ended.
const WAKE_UP: Duration = Duration::from_millis(200);

/// How long the kernel gets to send the FORGETs of one batch of notices
/// before the next is chosen.
const SETTLE: Duration = Duration::from_millis(2);

pub struct Forgetting {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Forgetting {
    pub fn start(vfs: Arc<Vfs>, notifier: Notifier) -> std::io::Result<Forgetting> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("rewind-forget".into())
            .spawn(move || {
                while !stopped.load(Relaxed) {
                    let names = vfs.surplus_names(WAKE_UP);
                    if names.is_empty() {
                        continue;
                    }
                    for (parent, name) in names {
                        // ENOENT: the kernel dropped the name already, or
                        // knows the file under another of its names.
                        let _ = notifier.inval_entry(INodeNo(parent), OsStr::from_bytes(&name));
                    }
                    std::thread::sleep(SETTLE);
                }
            })?;
        Ok(Forgetting { stop, thread })
    }

    /// Ends the thread (the session is over).
    pub fn stop(self) {
        self.stop.store(true, Relaxed);
        let _ = self.thread.join();
    }
}
