//! A child's peak resident memory, as the kernel counted it when the
//! child was reaped: what the memory tests bound.

use std::process::Child;

/// Waits for `child`; its exit code (`None` when a signal ended it) and
/// its peak resident memory in KiB (`ru_maxrss`). The child is reaped by
/// wait4, which std's `wait` does not give usage from, so the `Child` is
/// consumed unwaited.
pub fn wait_for_peak_kib(child: Child) -> (Option<i32>, i64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value to be written into.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointers are valid for the call; the child is ours and
    // waited for nowhere else.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    drop(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss)
}
