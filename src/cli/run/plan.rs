//! The steps of a profile, in the order `run` takes them, each the
//! command line an admin would type for it: `rewind -P FILE backup ...`,
//! `rewind -P FILE forget`, ... (with `--json`, which `run` reads for its
//! summary).
//!
//! Which step depends on which: forget (and its prune) runs only when
//! every backup succeeded. A backup that failed, saved an incomplete
//! snapshot (exit 3) or a suspicious one (exit 5) would otherwise be
//! counted by the policy as the night's snapshot, and with `keep-last` or
//! `keep-daily` push out a complete, clean one: restic users lost good
//! snapshots that way. Every other step stands on its own: check, copy
//! and the restore test read what the repository holds, whatever the
//! backups did, and a failed dump never stops the file backup.

use std::ffi::OsString;

use rewind::{LoadedProfile, ProfileBackup, ProfileCopy};

use crate::cli::Global;

/// What kind of command a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Backup,
    Forget,
    Check,
    Copy,
    RestoreTest,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Backup => "backup",
            Kind::Forget => "forget",
            Kind::Check => "check",
            Kind::Copy => "copy",
            Kind::RestoreTest => "restore-test",
        }
    }
}

/// One step: a run of `rewind` itself, with `--profile FILE` first.
pub struct Step {
    /// `backup:NAME`, `forget`, `check`, `copy`, `restore-test`.
    pub label: String,
    pub kind: Kind,
    /// The arguments after the program name.
    pub arguments: Vec<OsString>,
    /// Environment variables the step must not see.
    pub env_removed: Vec<&'static str>,
    /// Environment variables set for the step.
    pub env_set: Vec<(&'static str, OsString)>,
}

impl Step {
    /// Whether this step runs only when every backup succeeded.
    pub fn needs_every_backup(&self) -> bool {
        self.kind == Kind::Forget
    }
}

/// The steps of `loaded`: its backups in order, then forget, check, copy
/// and the restore test, each if its section is there. Their progress is
/// run's: none with `--quiet`, JSON lines with run's `json`, else plain
/// lines (the steps' own `--json` is for run to read).
pub fn steps(loaded: &LoadedProfile, global: &Global, json: bool) -> Vec<Step> {
    let mut steps = steps_of(loaded, global);
    for step in &mut steps {
        if global.quiet {
            step.arguments.insert(0, "--quiet".into());
        } else if !json {
            step.env_set
                .push((crate::cli::progress::FORMAT_VARIABLE, "lines".into()));
        }
    }
    steps
}

fn steps_of(loaded: &LoadedProfile, global: &Global) -> Vec<Step> {
    let profile = &loaded.profile;
    let mut steps: Vec<Step> = profile
        .backup
        .iter()
        .map(|backup| {
            let mut step = step(loaded, Kind::Backup, backup_arguments(backup));
            step.label = format!("backup:{}", backup.name());
            step
        })
        .collect();
    let plain = |kind: Kind| step(loaded, kind, vec![kind.name().into(), "--json".into()]);
    if profile.forget.is_some() {
        steps.push(plain(Kind::Forget));
    }
    if profile.check.is_some() {
        steps.push(plain(Kind::Check));
    }
    if let Some(copy) = &profile.copy {
        let mut copy = step(loaded, Kind::Copy, copy_arguments(copy, global));
        copy_environment(&mut copy);
        steps.push(copy);
    }
    if profile.restore_test.is_some() {
        steps.push(plain(Kind::RestoreTest));
    }
    steps
}

/// A step whose command line is `--profile FILE` and `command`.
fn step(loaded: &LoadedProfile, kind: Kind, command: Vec<OsString>) -> Step {
    let mut arguments: Vec<OsString> = vec!["--profile".into(), loaded.path.clone().into()];
    arguments.extend(command);
    Step {
        label: kind.name().to_string(),
        kind,
        arguments,
        env_removed: Vec::new(),
        env_set: Vec::new(),
    }
}

/// `backup --json` with the options of one `[[backup]]`; its paths after
/// `--`, or its `--stdin-command` last, since every word after that is
/// the command's.
fn backup_arguments(backup: &ProfileBackup) -> Vec<OsString> {
    let mut arguments: Vec<OsString> = vec!["backup".into(), "--json".into()];
    let mut option = |name: &str, value: &str| {
        arguments.push(format!("--{name}").into());
        arguments.push(value.into());
    };
    if let Some(host) = &backup.host {
        option("host", host);
    }
    for tag in &backup.tags {
        option("tag", tag);
    }
    for pattern in &backup.exclude {
        option("exclude", pattern);
    }
    if let Some(name) = &backup.stdin_name {
        option("stdin-name", name);
    }
    if backup.one_file_system {
        arguments.push("--one-file-system".into());
    }
    if backup.stdin_command.is_empty() {
        arguments.push("--".into());
        arguments.extend(backup.paths.iter().map(OsString::from));
    } else {
        arguments.push("--stdin-command".into());
        arguments.extend(backup.stdin_command.iter().map(OsString::from));
    }
    arguments
}

/// A copy from the repository the other steps use, as this run resolved
/// it (the profile's, unless --repo or REWIND_REPO override it), into
/// `[copy] to`; all four named on its command line, so that no variable
/// meant for one repository reaches the other. The destination's
/// password file is `[copy] password-file`, else the source's; the main
/// password in REWIND_PASSWORD is the source's (and the destination's,
/// without a file).
fn copy_arguments(copy: &ProfileCopy, global: &Global) -> Vec<OsString> {
    let mut arguments: Vec<OsString> = vec!["--repo".into(), copy.to.clone().into()];
    if let Some(file) = copy
        .password_file
        .as_ref()
        .or(global.password_file.as_ref())
    {
        arguments.extend(["--password-file".into(), file.into()]);
    }
    arguments.extend(["copy".into(), "--json".into()]);
    if let Some(repo) = &global.repo {
        arguments.extend(["--from-repo".into(), repo.into()]);
    }
    if let Some(file) = &global.password_file {
        arguments.extend(["--from-password-file".into(), file.into()]);
    }
    arguments
}

/// The environment a copy step gets: see [`copy_arguments`].
fn copy_environment(step: &mut Step) {
    step.env_removed = vec!["REWIND_REPO", "REWIND_PASSWORD_FILE"];
    if std::env::var_os("REWIND_FROM_PASSWORD").is_none() {
        if let Some(password) = std::env::var_os("REWIND_PASSWORD") {
            step.env_set.push(("REWIND_FROM_PASSWORD", password));
        }
    }
}
