//! Warnings and errors for the admin: to stderr by default, or appended to a
//! log file once a daemon has detached from its terminal.

use std::io::Write;
use std::sync::Mutex;

static LOG_FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Sends every later message to `file` instead of stderr.
pub fn to_file(file: std::fs::File) {
    *LOG_FILE.lock().unwrap() = Some(file);
}

fn emit(level: &str, message: &str) {
    let mut sink = LOG_FILE.lock().unwrap();
    match sink.as_mut() {
        Some(file) => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let _ = writeln!(file, "{now} {level}: {message}");
        }
        None => {
            let _ = writeln!(std::io::stderr(), "{level}: {message}");
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
    emit("info", message);
}
