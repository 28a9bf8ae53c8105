//! `rewind -P NAME run`: a profile's whole job. The `before` hook, every
//! step in order (`plan.rs`: the backups, forget and prune, check, copy,
//! the restore test), each a run of `rewind` itself (`child.rs`); then the
//! `after` hook and `on-success` or `on-failure` (`hooks.rs`), and one
//! summary (`summary.rs`). A step that fails skips only the steps that
//! depend on it (`plan.rs` says which); the run exits 1 naming every
//! step that failed, 130 when interrupted.

mod child;
mod hooks;
mod outcome;
mod plan;
mod summary;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use rewind::{quote_command, Cancel, LoadedProfile};

use super::interrupt::{cancel_on_signals, EXIT_INTERRUPTED};
use super::Global;
use outcome::{Outcome, Status};
use plan::{Kind, Step};

#[derive(clap::Args)]
#[command(after_help = "\
Each step is the command an admin would type, run as a child process with the profile: \
rewind -P FILE backup ... for each [[backup]], then forget (with --prune if the profile says \
so), check, copy and restore-test, each only if its section is in the profile. Each leaves the \
audit record it leaves from the command line. Forget runs only when every backup succeeded \
(exit 0): a failed, incomplete or suspicious backup never lets retention drop older snapshots. \
Every other step runs whatever the others did.

Hooks get REWIND_PROFILE, REWIND_PROFILE_FILE, REWIND_RESULT (success or failure), \
REWIND_FAILED_STEPS, REWIND_SKIPPED_STEPS, REWIND_SNAPSHOTS and REWIND_SUMMARY.

Exit status: 0 when every step and hook succeeded, 1 when one failed (named on standard \
error), 130 when interrupted.")]
pub struct Args {
    /// Print the summary as JSON (with each step's own JSON report)
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let loaded = global.profile("run")?;
    let steps = plan::steps(loaded, global, args.json);
    if steps.is_empty() {
        bail!(
            "the profile {} has nothing to run: no [[backup]], [forget], [check], [copy] or \
             [restore-test]",
            loaded.path.display()
        );
    }
    let program =
        std::env::current_exe().context("cannot find the rewind program to run the steps")?;
    let cancel = cancel_on_signals();
    let started = Utc::now();
    let clock = Instant::now();
    let hooks = &loaded.profile.hooks;
    let summarize = |outcomes: &[Outcome]| {
        summary::Run {
            loaded,
            started,
            duration: clock.elapsed(),
            interrupted: cancel.is_set(),
            outcomes,
        }
        .text()
    };

    let mut outcomes = Vec::new();
    if !hooks.before.is_empty() {
        let environment = hooks::environment(loaded, &[], None, "");
        outcomes.push(hooks::run_hook("before", &hooks.before, &environment));
    }
    let before_failed = !summary::failed(&outcomes).is_empty();
    for step in &steps {
        let skip = if before_failed {
            Some("the before hook failed".to_string())
        } else {
            why_skip(step, &outcomes, &cancel)
        };
        let outcome = match skip {
            Some(why) => Outcome::skipped(&step.label, step.kind.name(), shown(step), why),
            None => run_step(global, &program, step, &cancel),
        };
        global.tell(format_args!(
            "run: {}: {} {}",
            outcome.label,
            outcome.status.name(),
            outcome.detail
        ));
        outcomes.push(outcome);
    }

    if !hooks.after.is_empty() {
        let succeeded = !cancel.is_set() && summary::failed(&outcomes).is_empty();
        let environment =
            hooks::environment(loaded, &outcomes, Some(succeeded), &summarize(&outcomes));
        outcomes.push(hooks::run_hook("after", &hooks.after, &environment));
    }
    let succeeded = !cancel.is_set() && summary::failed(&outcomes).is_empty();
    let (key, last) = if succeeded {
        ("on-success", &hooks.on_success)
    } else {
        ("on-failure", &hooks.on_failure)
    };
    if !last.is_empty() {
        let environment =
            hooks::environment(loaded, &outcomes, Some(succeeded), &summarize(&outcomes));
        outcomes.push(hooks::run_hook(key, last, &environment));
    }

    let run = summary::Run {
        loaded,
        started,
        duration: clock.elapsed(),
        interrupted: cancel.is_set(),
        outcomes: &outcomes,
    };
    if args.json {
        super::print_json(&run.json())?;
    } else {
        print!("{}", run.text());
    }
    finish(loaded, &run)
}

/// Why `step` does not run, if it does not: a signal came, or a step it
/// depends on failed.
fn why_skip(step: &Step, outcomes: &[Outcome], cancel: &Cancel) -> Option<String> {
    if cancel.is_set() {
        return Some("interrupted".to_string());
    }
    if !step.needs_every_backup() {
        return None;
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.kind == Kind::Backup.name() && o.status != Status::Success)
        .map(|o| o.label.as_str())
        .collect();
    (!failed.is_empty()).then(|| format!("{} failed", failed.join(", ")))
}

fn run_step(global: &Global, program: &Path, step: &Step, cancel: &Cancel) -> Outcome {
    let command = shown(step);
    global.tell(format_args!(
        "run: {}: rewind {}",
        step.label,
        quote_command(&step.arguments)
    ));
    let finished = child::run_to_end(
        program,
        &step.arguments,
        &step.env_removed,
        &step.env_set,
        cancel,
    );
    match finished {
        Ok(finished) => Outcome::of_step(&step.label, step.kind, command, finished),
        Err(e) => {
            let mut outcome = Outcome::new(&step.label, step.kind.name(), command);
            outcome.status = Status::Failure;
            outcome.detail = super::describe(&e);
            outcome
        }
    }
}

/// A step's arguments as text, for the summary and the log.
fn shown(step: &Step) -> Vec<String> {
    step.arguments
        .iter()
        .map(OsString::as_os_str)
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The exit status, and the one line on standard error that names what failed.
fn finish(loaded: &LoadedProfile, run: &summary::Run) -> Result<ExitCode> {
    if run.interrupted {
        eprintln!("rewind: profile {}: interrupted", loaded.name);
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    let failed = run.failed();
    if !failed.is_empty() {
        eprintln!(
            "rewind: profile {}: {} failed",
            loaded.name,
            failed.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The steps `run` would take for `loaded`: each label and its arguments
/// (after the program name), for `config check`.
pub fn planned_steps(loaded: &LoadedProfile, global: &Global) -> Vec<(String, Vec<OsString>)> {
    plan::steps(loaded, global, true)
        .into_iter()
        .map(|step| (step.label, step.arguments))
        .collect()
}
