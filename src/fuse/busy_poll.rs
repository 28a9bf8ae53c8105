//! Busy polling of the FUSE device while short requests keep coming.
//!
//! A request that finds every FUSE thread asleep costs a wake-up, and on a
//! virtual machine waking a thread on another CPU costs more than serving a
//! small file: a `tar` of the benchmark corpus (72,500 requests) took 4.5 s
//! with the daemon and tar pinned to one CPU, 8.2 s pinned to different
//! ones. While short requests (lookups, listings, small reads) keep coming,
//! the thread reading the session's own device file reads it without
//! blocking (fuser's `receive_retrying` retries on EAGAIN) and so finds the
//! next request without being woken. It blocks again after the idle window
//! without a short request, or at once when a large read arrives: a
//! sequential reader needs that CPU for decryption more than it needs a
//! faster wake-up. With a single CPU it never polls: the polling thread
//! would only take turns with the reader it waits for (a tar confined to
//! one CPU took 5.03-5.40 s polling, 4.35-4.52 s not).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Reads at least this large are throughput-bound: the poller steps aside.
const LARGE_READ: u32 = 256 * 1024;

/// Switches the device between polling and blocking as requests come.
pub struct BusyPoll {
    shared: Arc<Shared>,
    toggler: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    idle: Duration,
    start: Instant,
    /// Nanoseconds after `start` of the last short request.
    last_short: AtomicU64,
    /// A hint read without the lock; `State::polling` decides.
    polling: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// A duplicate of the session's own device file: file status flags
    /// belong to the open file, so O_NONBLOCK set here is what fuser's
    /// reading thread sees.
    device: Option<OwnedFd>,
    polling: bool,
    stopped: bool,
}

impl BusyPoll {
    /// A poller that does nothing until `attach`; `idle` of zero, or a
    /// process allowed a single CPU, never polls.
    pub fn new(idle: Duration) -> BusyPoll {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::for_cpus(idle, cpus)
    }

    fn for_cpus(idle: Duration, cpus: usize) -> BusyPoll {
        let idle = if cpus > 1 { idle } else { Duration::ZERO };
        BusyPoll {
            shared: Arc::new(Shared {
                idle,
                start: Instant::now(),
                last_short: AtomicU64::new(0),
                polling: AtomicBool::new(false),
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
            toggler: Mutex::new(None),
        }
    }

    /// Starts managing `device` (the session's own device file).
    pub fn attach(&self, device: impl AsFd) -> std::io::Result<()> {
        if self.shared.idle.is_zero() {
            return Ok(());
        }
        let device = device.as_fd().try_clone_to_owned()?;
        self.shared.lock().device = Some(device);
        let shared = Arc::clone(&self.shared);
        let toggler = std::thread::Builder::new()
            .name("rewind-poll".into())
            .spawn(move || shared.block_when_idle())?;
        *self.toggler.lock().unwrap_or_else(|e| e.into_inner()) = Some(toggler);
        Ok(())
    }

    /// Called for every request; `size` is a read's length, 0 for others.
    pub fn request(&self, size: u32) {
        let shared = &*self.shared;
        if shared.idle.is_zero() {
            return;
        }
        let polling = shared.polling.load(Ordering::Relaxed);
        if size >= LARGE_READ {
            if polling {
                let mut state = shared.lock();
                shared.set_polling(&mut state, false);
            }
            return;
        }
        shared
            .last_short
            .store(shared.nanos_since_start(), Ordering::Relaxed);
        if !polling {
            let mut state = shared.lock();
            if !state.polling && !state.stopped && state.device.is_some() {
                shared.set_polling(&mut state, true);
                shared.changed.notify_one();
            }
        }
    }

    /// Whether the device is read without blocking right now.
    #[cfg(test)]
    pub fn is_polling(&self) -> bool {
        self.shared.lock().polling
    }

    /// Blocks the device again and ends the toggler thread.
    pub fn stop(&self) {
        {
            let mut state = self.shared.lock();
            self.shared.set_polling(&mut state, false);
            state.stopped = true;
            state.device = None;
            self.shared.changed.notify_one();
        }
        let toggler = self
            .toggler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(toggler) = toggler {
            let _ = toggler.join();
        }
    }
}

impl Drop for BusyPoll {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nanos_since_start(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn set_polling(&self, state: &mut State, polling: bool) {
        if state.polling == polling {
            return;
        }
        if let Some(device) = &state.device {
            if set_nonblocking(device, polling).is_err() {
                // The state stays as the device is.
                return;
            }
        }
        state.polling = polling;
        self.polling.store(polling, Ordering::Relaxed);
    }

    /// The toggler thread: sleeps while the device blocks, and while it is
    /// polled wakes once per idle window to block it when no short request
    /// came in that window.
    fn block_when_idle(&self) {
        let mut state = self.lock();
        loop {
            while !state.polling && !state.stopped {
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.stopped {
                return;
            }
            let since_last = Duration::from_nanos(
                self.nanos_since_start()
                    .saturating_sub(self.last_short.load(Ordering::Relaxed)),
            );
            let wait = if since_last >= self.idle {
                self.set_polling(&mut state, false);
                if !state.polling {
                    continue;
                }
                // The device could not be set back to blocking: try again
                // after a window rather than spin here too.
                self.idle
            } else {
                self.idle - since_last
            };
            let (next, _) = self
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
        }
    }
}

fn set_nonblocking(device: &OwnedFd, nonblocking: bool) -> std::io::Result<()> {
    let fd = device.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let flags = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn is_nonblocking(fd: &impl AsRawFd) -> bool {
        // SAFETY: F_GETFL on an open descriptor.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        flags & libc::O_NONBLOCK != 0
    }

    #[test]
    fn short_requests_poll_until_idle_and_large_reads_block_at_once() {
        let (device, _other_end) = std::os::unix::net::UnixStream::pair().unwrap();
        let poll = BusyPoll::for_cpus(Duration::from_millis(50), 2);
        poll.attach(&device).unwrap();
        assert!(!is_nonblocking(&device));

        poll.request(0);
        assert!(poll.is_polling());
        assert!(is_nonblocking(&device), "the shared open file polls");

        poll.request(LARGE_READ);
        assert!(!poll.is_polling());
        assert!(!is_nonblocking(&device));

        poll.request(4096);
        assert!(is_nonblocking(&device));
        let deadline = Instant::now() + Duration::from_secs(5);
        while poll.is_polling() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!poll.is_polling(), "idle for the window: blocks again");
        assert!(!is_nonblocking(&device));

        poll.request(0);
        poll.stop();
        assert!(
            !is_nonblocking(&device),
            "stopping leaves the device blocking"
        );
        poll.request(0);
        assert!(!poll.is_polling(), "no polling after stop");
    }

    #[test]
    fn a_zero_window_or_a_single_cpu_never_polls() {
        for poll in [
            BusyPoll::for_cpus(Duration::ZERO, 2),
            BusyPoll::for_cpus(Duration::from_millis(50), 1),
        ] {
            let (device, _other_end) = std::os::unix::net::UnixStream::pair().unwrap();
            poll.attach(&device).unwrap();
            poll.request(0);
            assert!(!poll.is_polling());
            assert!(!is_nonblocking(&device));
        }
    }
}
