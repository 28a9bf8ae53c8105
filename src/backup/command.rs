//! A command's standard output as the stream a backup stores
//! (`backup --stdin-command`): a dump that fails half-way must not become
//! a snapshot, but its output ends exactly as a finished dump's does. So
//! the end of the output is not the end of the stream until the command
//! has exited successfully; a command that exits non-zero or is killed
//! turns the end of its output into a read error, and the backup fails
//! before it writes the snapshot.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

use crate::error::{Error, Result};

/// The standard output of a running command; see the module comment.
pub struct CommandOutput {
    child: Child,
    stdout: ChildStdout,
    /// The command as an admin would type it, for errors.
    shown: String,
    /// Set once the command has exited.
    status: Option<ExitStatus>,
}

impl CommandOutput {
    /// Starts `argv` (a program and its arguments, no shell) with its
    /// standard input from /dev/null and its standard error ours.
    pub fn spawn(argv: &[String]) -> Result<CommandOutput> {
        let (program, arguments) = argv
            .split_first()
            .ok_or_else(|| Error::usage("the command to back up the output of is empty"))?;
        let shown = quote_command(argv);
        let mut child = Command::new(program)
            .args(arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("cannot run {shown}"), e))?;
        let stdout = child.stdout.take().expect("stdout was piped");
        Ok(CommandOutput {
            child,
            stdout,
            shown,
            status: None,
        })
    }

    /// Waits for the command at the end of its output: an error unless it
    /// exited with status 0.
    fn finish(&mut self) -> io::Result<()> {
        let status = match self.status {
            Some(status) => status,
            None => *self.status.insert(self.child.wait()?),
        };
        if status.success() {
            return Ok(());
        }
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => status.to_string(),
        };
        Err(io::Error::other(format!(
            "{} {how}: its output is not stored, and no snapshot is written",
            self.shown
        )))
    }
}

/// A command as a shell would take it back: words with nothing a shell
/// reads specially as they are, the others in single quotes.
pub fn quote_command<S: AsRef<OsStr>>(argv: &[S]) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./=:,@%+".contains(c);
    argv.iter()
        .map(|word| {
            let word = word.as_ref().to_string_lossy();
            if !word.is_empty() && word.chars().all(plain) {
                word.into_owned()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Read for CommandOutput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.stdout.read(buf)?;
        if read == 0 && !buf.is_empty() {
            self.finish()?;
        }
        Ok(read)
    }
}

impl Drop for CommandOutput {
    /// A backup that stops early (an error, a signal) stops the command
    /// too, rather than leave it blocked on a full pipe.
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(script: &str) -> (Vec<u8>, io::Result<usize>) {
        let argv = ["sh".to_string(), "-c".to_string(), script.to_string()];
        let mut reader = CommandOutput::spawn(&argv).unwrap();
        let mut out = Vec::new();
        let end = reader.read_to_end(&mut out);
        (out, end)
    }

    #[test]
    fn a_command_that_succeeds_ends_its_stream() {
        let (out, end) = output("printf dump");
        assert_eq!(out, b"dump");
        assert_eq!(end.unwrap(), 4);
    }

    #[test]
    fn a_command_that_fails_or_is_killed_ends_in_an_error() {
        let (out, end) = output("printf half; exit 3");
        assert_eq!(out, b"half");
        let message = end.unwrap_err().to_string();
        assert!(message.contains("exited with status 3"), "{message}");
        let (_, end) = output("kill -9 $$");
        let message = end.unwrap_err().to_string();
        assert!(message.contains("killed by signal 9"), "{message}");
    }

    #[test]
    fn commands_are_shown_as_a_shell_takes_them() {
        let argv = ["sh", "-c", "echo it's; exit 3", "--format=custom", ""];
        assert_eq!(
            quote_command(&argv),
            r"sh -c 'echo it'\''s; exit 3' --format=custom ''"
        );
    }

    #[test]
    fn a_program_that_does_not_exist_is_an_error() {
        let argv = ["/nonexistent/dump".to_string()];
        assert!(CommandOutput::spawn(&argv).is_err());
    }
}
