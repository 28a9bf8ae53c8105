use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use rewind::restore::{restore, RestoreOptions};

use super::{FilterArgs, Global};

#[derive(clap::Args)]
pub struct Args {
    /// SNAP[:PATH]: a whole snapshot, or a directory or file in it
    snapshot: String,
    /// Directory to restore into (created if missing)
    #[arg(long, short = 't', value_name = "DIR")]
    target: PathBuf,
    /// Restore only paths (as in the snapshot) matching this glob, and what they contain (repeatable)
    #[arg(long = "include", value_name = "GLOB")]
    includes: Vec<String>,
    /// Re-read every restored file and check it against the snapshot
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let repo = global.open_with_index()?;
    let (snapshot, path) = super::select(&repo, &args.snapshot, &args.filter)?;
    let options = RestoreOptions {
        includes: args.includes.clone(),
        verify: args.verify,
        threads: 0,
        show_progress: std::io::stderr().is_terminal(),
    };
    let report = restore(&repo, &snapshot.tree, &path, &args.target, &options)?;
    for error in &report.errors {
        rewind::log::error(error);
    }
    eprintln!(
        "restored {} files, {} directories, {} other entries, {} from snapshot {}{}",
        report.files,
        report.dirs,
        report.other,
        indicatif::HumanBytes(report.bytes),
        snapshot.id.short(),
        if args.verify {
            format!("; {} files verified", report.verified)
        } else {
            String::new()
        }
    );
    if report.errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "rewind: {} entries could not be restored (see the errors above)",
            report.errors.len()
        );
        Ok(ExitCode::from(1))
    }
}
