//! The hooks of a profile: commands (argv arrays, no shell) run before
//! the steps, after them, and on success or on failure, with what the run
//! did so far in environment variables (`man/rewind-run.1`, ENVIRONMENT):
//!
//! - `REWIND_PROFILE`: the profile as given to -P (so that `rewind` run by
//!   a hook uses the same profile), `REWIND_PROFILE_FILE`: its file;
//! - `REWIND_RESULT`: `success` or `failure` (not set for `before`);
//! - `REWIND_FAILED_STEPS`, `REWIND_SKIPPED_STEPS`: the steps that failed,
//!   and were skipped, separated by spaces;
//! - `REWIND_SNAPSHOTS`: the ids of the snapshots the backups made;
//! - `REWIND_SUMMARY`: the summary as `run` prints it.
//!
//! A hook's output goes to standard error, where the steps' messages go,
//! so that `run --json` prints only the summary on standard output.

use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Instant;

use rewind::LoadedProfile;

use super::outcome::{Outcome, Status};

/// Runs the hook `key` (before, after, on-success, on-failure) with
/// `environment`; its outcome as a step of the run.
pub fn run_hook(key: &str, argv: &[String], environment: &[(String, String)]) -> Outcome {
    let label = format!("hook:{key}");
    let started = Instant::now();
    let (program, arguments) = argv.split_first().expect("hooks are not empty");
    let mut command = Command::new(program);
    command
        .args(arguments)
        .envs(environment.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    if let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() {
        command.stdout(Stdio::from(stderr));
    }
    let mut outcome = Outcome::new(&label, "hook", argv.to_vec());
    match command.status() {
        Ok(status) if status.success() => outcome.status = Status::Success,
        Ok(status) => {
            outcome.status = Status::Failure;
            outcome.exit_code = status.code();
            outcome.detail = format!("{program} {}", exit_text(status));
        }
        Err(e) => {
            outcome.status = Status::Failure;
            outcome.detail = format!("cannot run {program}: {e}");
        }
    }
    outcome.duration = started.elapsed();
    outcome
}

fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// The variables a hook gets, given the outcomes so far; `result` is
/// `None` for the `before` hook.
pub fn environment(
    loaded: &LoadedProfile,
    outcomes: &[Outcome],
    result: Option<bool>,
    summary: &str,
) -> Vec<(String, String)> {
    let labels = |status: Status| {
        outcomes
            .iter()
            .filter(|o| o.status == status)
            .map(|o| o.label.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let snapshots: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.kind == "backup")
        .flat_map(|o| o.snapshots.iter().map(String::as_str))
        .collect();
    let mut environment = vec![
        ("REWIND_PROFILE".to_string(), loaded.name.clone()),
        (
            "REWIND_PROFILE_FILE".to_string(),
            loaded.path.display().to_string(),
        ),
        ("REWIND_FAILED_STEPS".to_string(), labels(Status::Failure)),
        ("REWIND_SKIPPED_STEPS".to_string(), labels(Status::Skipped)),
        ("REWIND_SNAPSHOTS".to_string(), snapshots.join(" ")),
        ("REWIND_SUMMARY".to_string(), summary.to_string()),
    ];
    if let Some(success) = result {
        let result = if success { "success" } else { "failure" };
        environment.push(("REWIND_RESULT".to_string(), result.to_string()));
    }
    environment
}
