//! Ctrl-C, SIGTERM and SIGHUP stop long commands cleanly: the handler only
//! sets a flag, the library checks it between pieces of work and returns an
//! `Interrupted` error, and everything that must be undone (a scratch
//! directory, a partly written file) is undone on the way out. A second
//! signal of the same kind ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

use rewind::Cancel;

/// The exit status after an interruption, as shells report SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Installs the handler; the returned flag is set once a signal arrives.
pub fn cancel_on_signals() -> Cancel {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe;
    // the sigaction struct is fully initialised before use.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    Cancel::on(&STOP)
}

/// Whether an error is the library's answer to a signal.
pub fn is_interrupted(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<rewind::Error>())
        .any(|e| e.kind() == rewind::ErrorKind::Interrupted)
}
