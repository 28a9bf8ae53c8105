//! A wrapper that tries a backend operation again when it failed in a way
//! that may pass (an overloaded or restarting store, a dropped connection,
//! a timeout: the backend marks these errors transient), with exponential
//! backoff and full jitter, so that many threads that failed together do
//! not come back together. Any other error returns at once.
//!
//! Every operation may be tried again safely: writes store whole,
//! content-named files (a retried create finds its own object), and
//! removing a missing file is not an error.

use std::time::Duration;

use super::{Backend, FileType, ObjectLock, Retention};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The backoff before the second try; it doubles for each later one.
    pub first_delay: Duration,
    /// The backoff never exceeds this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// About 16 seconds of waiting on average over 8 tries, up to 32: long
    /// enough for a store that restarts, short enough that a dead one is
    /// reported while the admin still watches.
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The wait before try `attempt + 1`: uniformly random up to the
    /// exponential bound ("full jitter").
    fn backoff(&self, attempt: u32) -> Duration {
        let bound = self
            .first_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(30))
            .min(self.max_delay);
        bound.mul_f64(random_fraction())
    }
}

/// A number in [0, 1).
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    // Without randomness the wait is the full bound: still a backoff.
    if getrandom::getrandom(&mut bytes).is_err() {
        return 1.0 - f64::EPSILON;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

pub struct Retrying<B: Backend> {
    inner: B,
    policy: RetryPolicy,
}

impl<B: Backend> Retrying<B> {
    pub fn new(inner: B, policy: RetryPolicy) -> Self {
        Retrying { inner, policy }
    }

    fn run<T>(&self, mut operation: impl FnMut(&B) -> Result<T>) -> Result<T> {
        let mut attempt = 1;
        loop {
            match operation(&self.inner) {
                Err(e) if e.is_transient() && attempt < self.policy.attempts => {
                    let wait = self.policy.backoff(attempt);
                    crate::log::warn(&format!(
                        "{e}; trying again in {:.1} s (try {} of {})",
                        wait.as_secs_f64(),
                        attempt + 1,
                        self.policy.attempts
                    ));
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(e) if e.is_transient() && attempt > 1 => {
                    return Err(e.context(format_args!("failed {attempt} times")))
                }
                other => return other,
            }
        }
    }
}

impl<B: Backend> Backend for Retrying<B> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.run(|b| b.create())
    }

    fn list(&self, kind: FileType) -> Result<Vec<String>> {
        self.run(|b| b.list(kind))
    }

    fn read(&self, kind: FileType, name: &str) -> Result<Vec<u8>> {
        self.run(|b| b.read(kind, name))
    }

    fn read_range(&self, kind: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        self.run(|b| b.read_range(kind, name, offset, length))
    }

    fn write(&self, kind: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.run(|b| b.write(kind, name, data))
    }

    fn remove(&self, kind: FileType, name: &str) -> Result<()> {
        self.run(|b| b.remove(kind, name))
    }

    fn prefetch(&self, kind: FileType, name: &str, range: Option<(u64, u64)>) {
        self.inner.prefetch(kind, name, range)
    }

    fn size(&self, kind: FileType, name: &str) -> Result<u64> {
        self.run(|b| b.size(kind, name))
    }

    fn requests_in_flight(&self) -> Option<usize> {
        self.inner.requests_in_flight()
    }

    fn check_object_lock(&self) -> Result<()> {
        self.run(|b| b.check_object_lock())
    }

    fn set_object_lock(&self, lock: ObjectLock) -> Result<()> {
        self.inner.set_object_lock(lock)
    }

    fn retention(&self, kind: FileType, name: &str) -> Result<Option<Retention>> {
        self.run(|b| b.retention(kind, name))
    }

    fn extend_retention(&self, kind: FileType, name: &str, to: Retention) -> Result<()> {
        self.run(|b| b.extend_retention(kind, name, to))
    }

    fn hide(&self, kind: FileType, name: &str) -> Result<()> {
        self.run(|b| b.hide(kind, name))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::{Error, ErrorKind};

    /// Fails `failures` times with `error`, then reads "ok".
    struct Flaky {
        failures: u32,
        calls: AtomicU32,
        error: fn() -> Error,
    }

    impl Backend for Flaky {
        fn location(&self) -> String {
            "flaky".into()
        }
        fn create(&self) -> Result<()> {
            Ok(())
        }
        fn list(&self, _: FileType) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn read(&self, _: FileType, _: &str) -> Result<Vec<u8>> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
                Err((self.error)())
            } else {
                Ok(b"ok".to_vec())
            }
        }
        fn read_range(&self, _: FileType, _: &str, _: u64, _: u32) -> Result<Vec<u8>> {
            unimplemented!()
        }
        fn write(&self, _: FileType, _: &str, _: &[u8]) -> Result<()> {
            unimplemented!()
        }
        fn remove(&self, _: FileType, _: &str) -> Result<()> {
            unimplemented!()
        }
        fn size(&self, _: FileType, _: &str) -> Result<u64> {
            unimplemented!()
        }
    }

    fn retrying(failures: u32, error: fn() -> Error) -> Retrying<Flaky> {
        Retrying::new(
            Flaky {
                failures,
                calls: AtomicU32::new(0),
                error,
            },
            RetryPolicy {
                attempts: 4,
                first_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(4),
            },
        )
    }

    fn unavailable() -> Error {
        Error::new(ErrorKind::Io, "503").transient()
    }

    #[test]
    fn transient_failures_are_tried_again() {
        let backend = retrying(3, unavailable);
        assert_eq!(backend.read(FileType::Config, "config").unwrap(), b"ok");
        assert_eq!(backend.inner.calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn tries_are_bounded_and_the_error_says_how_many() {
        let backend = retrying(10, unavailable);
        let error = backend.read(FileType::Config, "config").unwrap_err();
        assert_eq!(error.to_string(), "failed 4 times: 503");
        assert_eq!(backend.inner.calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn other_failures_return_at_once() {
        let backend = retrying(10, || Error::new(ErrorKind::NotFound, "404"));
        let error = backend.read(FileType::Config, "config").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotFound);
        assert_eq!(error.to_string(), "404");
        assert_eq!(backend.inner.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_backoff_grows_to_its_bound_and_is_jittered() {
        let policy = RetryPolicy::default();
        for attempt in 1..40 {
            let bound = Duration::from_millis(250)
                .saturating_mul(1 << (attempt - 1).min(30))
                .min(policy.max_delay);
            let wait = policy.backoff(attempt);
            assert!(wait < bound, "{attempt}: {wait:?} >= {bound:?}");
        }
        let waits: Vec<_> = (0..8).map(|_| policy.backoff(10)).collect();
        assert!(
            waits.windows(2).any(|w| w[0] != w[1]),
            "no jitter: {waits:?}"
        );
    }
}
