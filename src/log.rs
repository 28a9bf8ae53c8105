//! Warnings and errors for the admin: to stderr by default, or appended to a
//! log file once a daemon has detached from its terminal.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

static LOG_FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Runs a write to stderr so that it does not garble what else is drawn
/// there: a progress bar is cleared, the message written, the bar drawn
/// again.
pub type AroundStderr = Box<dyn Fn(&mut dyn FnMut()) + Send>;

static AROUND_STDERR: Mutex<Option<AroundStderr>> = Mutex::new(None);

/// `--quiet`: informational messages are dropped; warnings and errors stay.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Sends every later message to `file` instead of stderr.
pub fn to_file(file: std::fs::File) {
    *LOG_FILE.lock().unwrap() = Some(file);
}

/// Drops informational messages from now on.
pub fn quiet() {
    QUIET.store(true, Relaxed);
}

/// Routes every later message to stderr through `around` (`None`: written
/// directly again).
pub fn around_stderr(around: Option<AroundStderr>) {
    *AROUND_STDERR.lock().unwrap() = around;
}

fn emit(level: &str, message: &str) {
    let mut sink = LOG_FILE.lock().unwrap();
    match sink.as_mut() {
        Some(file) => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let _ = writeln!(file, "{now} {level}: {message}");
        }
        None => {
            let mut write = || {
                let _ = writeln!(std::io::stderr(), "{level}: {message}");
            };
            match AROUND_STDERR.lock().unwrap().as_ref() {
                Some(around) => around(&mut write),
                None => write(),
            }
        }
    }
}

pub fn warn(message: &str) {
    emit("warning", message);
}

pub fn error(message: &str) {
    emit("error", message);
}

pub fn info(message: &str) {
    if !QUIET.load(Relaxed) {
        emit("info", message);
    }
}
