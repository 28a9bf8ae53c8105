//! `rewind -P NAME config check`: a profile checked without running it.
//! Reading it already checked its keys, types and values (an error there
//! ends the command before this runs, naming file, line and key); this
//! adds what needs the machine: the password files can be read, each
//! step's command line parses as `run` would give it, and (warnings) the
//! backup paths, the hook and dump programs and a local repository exist.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use rewind::{is_remote, quote_command, LoadedProfile};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Check the profile given with -P: its schema, that its repository
    /// location parses, that its password files can be read and its steps'
    /// command lines parse; warn about backup paths and programs that do
    /// not exist. Exit 1 on an error
    Check {
        /// Print the findings as JSON
        #[arg(long)]
        json: bool,
    },
}

/// What a check found.
#[derive(Default)]
struct Findings {
    errors: Vec<String>,
    warnings: Vec<String>,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let Action::Check { json } = &args.action;
    let loaded = global.profile("config check")?;
    let mut findings = Findings::default();
    check_repository(global, &mut findings);
    check_password_files(loaded, &mut findings);
    check_sources(loaded, &mut findings);
    let steps = super::run::planned_steps(loaded, global);
    for (label, arguments) in &steps {
        let mut argv: Vec<OsString> = vec!["rewind".into()];
        argv.extend(arguments.iter().cloned());
        if let Err(e) = super::profile::try_parse_with(&loaded.profile, &argv) {
            findings.errors.push(format!("{label}: {}", first_line(&e)));
        }
    }
    let ok = findings.errors.is_empty();
    if *json {
        let steps: Vec<_> = steps
            .iter()
            .map(|(label, arguments)| json!({"step": label, "command": shown(arguments)}))
            .collect();
        super::print_json(&json!({
            "profile": loaded.name,
            "file": loaded.path,
            "ok": ok,
            "errors": findings.errors,
            "warnings": findings.warnings,
            "steps": steps,
        }))?;
    } else {
        for warning in &findings.warnings {
            eprintln!("warning: {warning}");
        }
        for error in &findings.errors {
            eprintln!("error: {error}");
        }
        println!("profile {} ({})", loaded.name, loaded.path.display());
        for (label, arguments) in &steps {
            println!("  {label}: rewind {}", quote_command(arguments));
        }
        println!(
            "{}: {} errors, {} warnings",
            if ok { "OK" } else { "ERRORS FOUND" },
            findings.errors.len(),
            findings.warnings.len()
        );
    }
    if !ok {
        eprintln!(
            "rewind: profile {}: {} errors (see above)",
            loaded.name,
            findings.errors.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// There is a repository, and a local one has been created.
fn check_repository(global: &Global, findings: &mut Findings) {
    match &global.repo {
        None => findings.errors.push(
            "no repository: the profile has no `repository`, and neither --repo nor REWIND_REPO \
             is given"
                .into(),
        ),
        Some(location) if !is_remote(location) => {
            if !Path::new(location).join("config").exists() {
                findings.warnings.push(format!(
                    "there is no repository at {location} yet (rewind -P PROFILE init creates it)"
                ));
            }
        }
        Some(_) => {}
    }
}

fn check_password_files(loaded: &LoadedProfile, findings: &mut Findings) {
    let profile = &loaded.profile;
    let files = [
        ("password-file", profile.password_file.as_ref()),
        (
            "copy.password-file",
            profile.copy.as_ref().and_then(|c| c.password_file.as_ref()),
        ),
    ];
    for (key, file) in files {
        if let Some(file) = file {
            if let Err(e) = std::fs::File::open(file) {
                findings
                    .errors
                    .push(format!("{key}: cannot read {}: {e}", file.display()));
            }
        }
    }
    let from_environment = ["REWIND_PASSWORD", "REWIND_PASSWORD_FILE"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if profile.password_file.is_none() && !from_environment {
        findings.warnings.push(
            "no password-file, and neither REWIND_PASSWORD nor REWIND_PASSWORD_FILE is set: \
             run never prompts, so only an unencrypted repository will open"
                .into(),
        );
    }
}

/// The paths to back up, and the programs the dumps and hooks run.
fn check_sources(loaded: &LoadedProfile, findings: &mut Findings) {
    let profile = &loaded.profile;
    for backup in &profile.backup {
        let label = format!("backup:{}", backup.name());
        for path in &backup.paths {
            if std::fs::symlink_metadata(path).is_err() {
                findings
                    .warnings
                    .push(format!("{label}: {} does not exist", path.display()));
            }
        }
        if let Some(program) = backup.stdin_command.first() {
            if find_program(program).is_none() {
                findings
                    .warnings
                    .push(format!("{label}: the program {program} is not found"));
            }
        }
    }
    for (key, argv) in profile.hooks.given() {
        if find_program(&argv[0]).is_none() {
            findings
                .warnings
                .push(format!("hooks.{key}: the program {} is not found", argv[0]));
        }
    }
}

/// Where `program` is found as the system would find it: a name with a
/// `/` as it is, any other in PATH; only an executable file counts.
fn find_program(program: &str) -> Option<PathBuf> {
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    let search = std::env::var_os("PATH")?;
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|path| executable(path))
}

/// A clap error's first line, without its `error: ` prefix.
fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

fn shown(arguments: &[OsString]) -> Vec<String> {
    arguments
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
