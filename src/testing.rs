//! Crashes and pauses on purpose, for tests. Crash points serve the tests
//! that kill a command at each of its steps (`tests/prune_crash.rs`): with
//! `REWIND_CRASH_AT=<point>` in the environment, the process sends itself
//! SIGKILL when it reaches the named point, the way a power cut or the OOM
//! killer would stop it, with no destructor or buffered write run. Pause
//! points hold a process until the test lets it go. Without the variables
//! either costs one look at a cached value.

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

/// Holds this process at a named point while a test lines several
/// processes up there (`tests/audit.rs` makes two commands append their
/// audit records at once): with `REWIND_PAUSE_AT=<point>:<gate>` in the
/// environment, the process creates `<gate>.<pid>` when it reaches the
/// point and waits until the file `<gate>` exists (at most a minute, so
/// that a test that fails does not leave it waiting forever). Without the
/// variable a pause point costs one look at a cached value.
pub fn pause_point(point: &str) {
    static PAUSE_AT: OnceLock<Option<(String, String)>> = OnceLock::new();
    let pause_at = PAUSE_AT.get_or_init(|| {
        let value = std::env::var("REWIND_PAUSE_AT").ok()?;
        let (point, gate) = value.split_once(':')?;
        Some((point.to_string(), gate.to_string()))
    });
    let Some((_, gate)) = pause_at.as_ref().filter(|(at, _)| at == point) else {
        return;
    };
    let gate = std::path::Path::new(gate);
    let _ = std::fs::write(format!("{}.{}", gate.display(), std::process::id()), b"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !gate.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
