//! The audit trail's command-line half (`docs/design.md`, section 7):
//! [`audited`] runs a command, times it and appends its record after it,
//! whether it succeeded or failed. What only the command knows (the
//! snapshots it touched, the bytes it moved, why it returns a failing
//! status) it tells the [`Trail`] that `Global` carries, and the repository
//! it opens through `Global` is where the record goes. Writing the record
//! never fails the command: a store that refuses it (read-only) gets a
//! warning.

use std::process::ExitCode;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use clap::CommandFactory;
use rewind::{AuditBytes, AuditEntry, AuditResult, Id, Opened, Repository, RepositoryState};

use super::{Cli, Global};

/// What stands in for a secret in a recorded argument.
const HIDDEN: &str = "<hidden>";

/// Words that make an option's value a secret.
const SECRET_WORDS: [&str; 3] = ["password", "secret", "token"];

/// What the running command has told the trail so far.
#[derive(Default)]
pub struct Trail {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The repository the command opened: the record goes there.
    repository: Option<Repository<Opened>>,
    /// Whether the command tried to open it. When it tried and failed, the
    /// record is not written (the password or the location is what failed);
    /// when it failed before trying, the repository is opened for the
    /// record, without a prompt.
    open_tried: bool,
    started: Option<Started>,
    snapshots: Vec<Id>,
    bytes: AuditBytes,
    /// Why a command that returns a failing status failed.
    failure: Option<String>,
    /// Whether the command's record is written (a mount writes its own).
    recorded: bool,
}

#[derive(Clone)]
struct Started {
    entry: AuditEntry,
    clock: Instant,
}

impl Trail {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes the outcome of opening the repository the command works on.
    pub fn opening(&self, opened: &rewind::Result<Repository<Opened>>) {
        let mut state = self.state();
        state.open_tried = true;
        if let Ok(repo) = opened {
            state.repository = Some(repo.clone());
        }
    }

    /// Sends the record to `repo` instead of the repository the command
    /// opened: one it created (`init`), or the same one under a new master
    /// key (`key rotate`, so that the record is sealed under the key that
    /// stays).
    pub fn use_repository<S: RepositoryState>(&self, repo: &Repository<S>) {
        let mut state = self.state();
        state.open_tried = true;
        state.repository = Some(repo.opened());
    }

    /// A snapshot the command made, read, forgot or copied.
    pub fn snapshot(&self, id: Id) {
        self.state().snapshots.push(id);
    }

    /// Notes the bytes the command moved.
    pub fn bytes(&self, note: impl FnOnce(&mut AuditBytes)) {
        note(&mut self.state().bytes);
    }

    /// Why the command, which returns a failing exit status, failed (one line).
    pub fn failure(&self, why: impl Into<String>) {
        self.state().failure = Some(why.into());
    }

    /// Starts the clock, and forgets what an earlier record noted: the
    /// mount daemon's record of the unmount starts when the mount was ready.
    pub fn start(&self, command: &str) {
        let mut state = self.state();
        state.started = Some(Started {
            entry: AuditEntry::starting(command, recorded_arguments()),
            clock: Instant::now(),
        });
        state.snapshots.clear();
        state.bytes = AuditBytes::default();
        state.failure = None;
    }

    pub fn recorded(&self) -> bool {
        self.state().recorded
    }

    /// The entry of the command as it ended, and where it goes.
    fn finish(&self, outcome: &anyhow::Result<ExitCode>) -> Option<(AuditEntry, Destination)> {
        let mut state = self.state();
        state.recorded = true;
        let started = state.started.clone()?;
        let mut entry = started.entry;
        entry.duration_secs = started.clock.elapsed().as_secs_f64();
        entry.snapshots = std::mem::take(&mut state.snapshots);
        entry.bytes = std::mem::take(&mut state.bytes);
        entry.exit_code = match outcome {
            Ok(code) => exit_status(*code),
            Err(_) => 1,
        };
        if entry.exit_code != 0 {
            entry.result = AuditResult::Failed;
            entry.error = Some(match outcome {
                Err(e) => super::describe(e),
                Ok(_) => state
                    .failure
                    .take()
                    .unwrap_or_else(|| format!("exit status {}", entry.exit_code)),
            });
        }
        let destination = match &state.repository {
            Some(repo) => Destination::Opened(repo.clone()),
            None if state.open_tried => Destination::None,
            None => Destination::OpenQuietly,
        };
        Some((entry, destination))
    }
}

/// Where a record goes.
enum Destination {
    Opened(Repository<Opened>),
    /// The command failed before it opened the repository: open it now,
    /// if that needs no prompt.
    OpenQuietly,
    /// The command could not open it: no record.
    None,
}

/// Runs `command` and appends its record, whatever its outcome (unless
/// it wrote its record itself, as the mount does); returns the outcome.
/// The key commands go through here as the others do.
pub fn audited(
    global: &Global,
    command: &str,
    run: impl FnOnce() -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    global.trail().start(command);
    let outcome = run();
    if !global.trail().recorded() {
        record(global, &outcome);
    }
    outcome
}

/// Appends the record of the command as it stands now; a command that
/// writes its records itself (the mount, at mount and at unmount) calls
/// this and [`Trail::start`].
pub fn record(global: &Global, outcome: &anyhow::Result<ExitCode>) {
    let Some((entry, destination)) = global.trail().finish(outcome) else {
        return;
    };
    let repo = match destination {
        Destination::Opened(repo) => repo,
        Destination::OpenQuietly => match global.open_without_prompt() {
            Ok(repo) => repo,
            // The command's own error says what is wrong.
            Err(_) => return,
        },
        Destination::None => return,
    };
    if let Err(e) = repo.append_audit(entry) {
        rewind::log::warn(&format!(
            "no audit record of this command was written: {}",
            super::describe(&e.into())
        ));
    }
}

/// The number an exit code stands for (`ExitCode` does not give it back).
fn exit_status(code: ExitCode) -> i32 {
    (0..=u8::MAX)
        .find(|n| ExitCode::from(*n) == code)
        .map_or(1, i32::from)
}

/// The arguments records show instead of this process's own: those of
/// the `rewind mount` that mount.fuse.rewind runs for an fstab line.
static ARGUMENTS_RUN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Records show `arguments` (without the program's name) as the command's.
pub fn record_arguments_as(arguments: Vec<String>) {
    let _ = ARGUMENTS_RUN.set(arguments);
}

/// This process's arguments, without secrets.
fn recorded_arguments() -> Vec<String> {
    let arguments = match ARGUMENTS_RUN.get() {
        Some(arguments) => arguments.clone(),
        None => std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    };
    hide_secrets(arguments, option_takes_value)
}

/// `arguments` with the value of every option whose name holds one of
/// [`SECRET_WORDS`] replaced by [`HIDDEN`] (`--name=value` and `--name
/// value` alike; `takes_value` says whether `--name` takes the next
/// argument). Arguments after `--` are not options.
fn hide_secrets(
    arguments: impl IntoIterator<Item = String>,
    takes_value: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut hide_next = false;
    let mut options_ended = false;
    for argument in arguments {
        if std::mem::take(&mut hide_next) {
            out.push(HIDDEN.to_string());
            continue;
        }
        let option = argument.strip_prefix("--").filter(|_| !options_ended);
        match option.map(|o| o.split_once('=').unwrap_or((o, ""))) {
            Some(("", _)) => options_ended = true,
            Some((name, _)) if is_secret(name) && argument.contains('=') => {
                out.push(format!("--{name}={HIDDEN}"));
                continue;
            }
            Some((name, _)) if is_secret(name) => hide_next = takes_value(name),
            _ => {}
        }
        out.push(argument);
    }
    out
}

fn is_secret(option: &str) -> bool {
    let option = option.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| option.contains(word))
}

/// Whether rewind's option `--name` (of any command) takes a value; an
/// option it does not know is taken to, so that a mistyped secret option
/// hides its value too.
fn option_takes_value(name: &str) -> bool {
    fn find(command: &clap::Command, name: &str) -> Option<bool> {
        command
            .get_arguments()
            .find(|a| a.get_long() == Some(name))
            .map(|a| a.get_action().takes_values())
            .or_else(|| command.get_subcommands().find_map(|c| find(c, name)))
    }
    find(&Cli::command(), name).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden(arguments: &[&str]) -> Vec<String> {
        hide_secrets(arguments.iter().map(|a| a.to_string()), |name| {
            name != "no-token-flag"
        })
    }

    #[test]
    fn secret_values_are_hidden_in_both_spellings() {
        assert_eq!(
            hidden(&[
                "--password-file",
                "/k",
                "backup",
                "--from-password-file=/j",
                "/etc"
            ]),
            [
                "--password-file",
                HIDDEN,
                "backup",
                "--from-password-file=<hidden>",
                "/etc"
            ]
        );
        assert_eq!(
            hidden(&["--Secret-Key", "s3cr3t", "--api-token=t", "--repo", "/r"]),
            [
                "--Secret-Key",
                HIDDEN,
                "--api-token=<hidden>",
                "--repo",
                "/r"
            ]
        );
    }

    #[test]
    fn flags_and_operands_are_kept() {
        assert_eq!(
            hidden(&["--no-token-flag", "/data", "--", "--password", "x"]),
            ["--no-token-flag", "/data", "--", "--password", "x"]
        );
    }

    #[test]
    fn rewinds_own_secret_options_take_values() {
        assert!(option_takes_value("password-file"));
        assert!(option_takes_value("from-password-file"));
        assert!(!option_takes_value("json"));
    }

    #[test]
    fn exit_statuses_come_back_as_numbers() {
        assert_eq!(exit_status(ExitCode::SUCCESS), 0);
        assert_eq!(exit_status(ExitCode::from(3)), 3);
        assert_eq!(exit_status(ExitCode::from(130)), 130);
    }
}
