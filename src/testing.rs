//! Crashes on purpose, for the tests that kill a command at each of its
//! steps (`tests/prune_crash.rs`): with `REWIND_CRASH_AT=<point>` in the
//! environment, the process sends itself SIGKILL when it reaches the named
//! point, the way a power cut or the OOM killer would stop it, with no
//! destructor or buffered write run. Without the variable a crash point
//! costs one look at a cached value.

use std::sync::OnceLock;

/// Kills this process if `REWIND_CRASH_AT` names `point`.
pub fn crash_point(point: &str) {
    static CRASH_AT: OnceLock<Option<String>> = OnceLock::new();
    let crash_at = CRASH_AT.get_or_init(|| std::env::var("REWIND_CRASH_AT").ok());
    if crash_at.as_deref() == Some(point) {
        // SAFETY: sends a signal to ourselves; SIGKILL does not return.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
