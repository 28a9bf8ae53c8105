use std::process::ExitCode;

use anyhow::Result;

use rewind::{renew_retention, LockKind, RenewReport};

use super::{load_index, print_json, Global};

/// Object lock retention of a repository created with `init --object-lock`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Extend the retention of every file the snapshots need (config, keys,
    /// manifests, index files, packs) to the object lock period from now;
    /// run it more often than the period
    Renew(RenewArgs),
}

#[derive(clap::Args)]
struct RenewArgs {
    /// Count what would be extended; change nothing
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let Command::Renew(args) = &args.command;
    // A shared lock: renewing runs beside backups, and `rewind locks` shows it.
    let (repo, _lock) = global.open_locked(LockKind::Shared, "retention renew")?;
    let repo = load_index(repo)?;
    let report = renew_retention(&repo, args.dry_run)?;
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &RenewReport) {
    let verb = if r.dry_run {
        "would extend"
    } else {
        "extended"
    };
    println!(
        "{verb} the {} retention of {} of the {} files the snapshots need to {}",
        r.mode.s3_name(),
        r.extended,
        r.files,
        r.until.format("%Y-%m-%d %H:%M:%S UTC")
    );
    if r.already > 0 {
        println!("{} were already locked until then or later", r.already);
    }
    if r.gone > 0 {
        println!(
            "{} were gone when renewed (forgotten or pruned meanwhile)",
            r.gone
        );
    }
}
