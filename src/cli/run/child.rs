//! Running one step: `rewind` itself as a child process, so that each step
//! is exactly the command an admin would type, leaves exactly the audit
//! record it leaves from the command line, and cannot take the run down
//! with it (a crash in one step is that step's failure; the hooks and the
//! summary still come). Its standard output (JSON) is kept for the
//! summary; its standard error passes through line by line, and its last
//! `rewind: ...` line is the step's one-line cause.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rewind::Cancel;

/// How often the run looks for the child's end and for a signal to pass on.
const POLL: Duration = Duration::from_millis(50);

/// What a command did.
pub struct Finished {
    pub status: ExitStatus,
    pub duration: Duration,
    /// The JSON documents it printed, in order.
    pub reports: Vec<serde_json::Value>,
    /// Its last `rewind: ...` line on standard error, without the prefix.
    pub cause: Option<String>,
}

impl Finished {
    /// The exit status, or 128 + the signal that killed it, as shells say.
    pub fn exit_code(&self) -> i32 {
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => -1,
        }
    }

    /// `exit N`, or `killed by signal N`.
    pub fn how_it_ended(&self) -> String {
        match self.status.signal() {
            Some(signal) => format!("killed by signal {signal}"),
            None => format!("exit {}", self.exit_code()),
        }
    }
}

/// Runs `program` with `arguments` and the environment changes given, its
/// standard input /dev/null, in a process group of its own; SIGTERM goes
/// to the group when `cancel` is set, so that a dump the step runs stops
/// with it.
pub fn run_to_end(
    program: &Path,
    arguments: &[OsString],
    env_removed: &[&str],
    env_set: &[(&str, OsString)],
    cancel: &Cancel,
) -> Result<Finished> {
    let started = Instant::now();
    let mut command = Command::new(program);
    command
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for name in env_removed {
        command.env_remove(name);
    }
    for (name, value) in env_set {
        command.env(name, value);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    let output = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let errors = std::thread::spawn(move || pass_on(stderr));
    let mut signalled = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if cancel.is_set() && !signalled {
            signalled = true;
            // SAFETY: kill only sends a signal, to the group our child leads.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGTERM) };
        }
        std::thread::sleep(POLL);
    };
    let output = output.join().unwrap_or_default();
    let cause = errors.join().unwrap_or_default();
    Ok(Finished {
        status,
        duration: started.elapsed(),
        reports: json_documents(&output),
        cause,
    })
}

/// Copies a child's standard error to ours line by line; returns its last
/// `rewind: ...` line.
fn pass_on(stderr: impl Read) -> Option<String> {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut cause = None;
    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        let _ = std::io::stderr().write_all(&line);
        let text = String::from_utf8_lossy(&line);
        if let Some(rest) = text.trim_end().strip_prefix("rewind: ") {
            cause = Some(rest.to_string());
        }
        line.clear();
    }
    cause
}

/// The JSON documents in a command's output (each command prints one);
/// anything after the last that parses is ignored.
fn json_documents(output: &[u8]) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_slice(output)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_document_is_kept() {
        let documents = json_documents(b"{\"a\": 1}\n{\"b\": 2}\n");
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[1]["b"], 2);
        assert!(json_documents(b"").is_empty());
        assert_eq!(json_documents(b"{\"a\": 1} not json").len(), 1);
    }

    #[test]
    fn the_last_rewind_line_is_the_cause() {
        let stderr = b"warning: x\nrewind: first\nrewind: the cause\nmore\n".as_slice();
        assert_eq!(pass_on(stderr).as_deref(), Some("the cause"));
        assert_eq!(pass_on(b"nothing\n".as_slice()), None);
    }
}
