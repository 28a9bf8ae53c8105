use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use indicatif::HumanBytes;
use rewind::{restore, Action, Overwrite, RestoreOptions, RestoreReport};

use super::interrupt::{cancel_on_signals, is_interrupted, EXIT_INTERRUPTED};
use super::{FilterArgs, Global};

#[derive(clap::Args)]
#[command(after_help = "\
Existing entries: by default (--overwrite if-changed) a file whose content already matches \
the snapshot's chunk ids is kept and only its metadata is set, so a restore over a partly \
intact tree, or one started again after an interruption, writes only what is missing or wrong.")]
pub struct Args {
    /// SNAP[:PATH]: a whole snapshot, or a directory or file in it
    snapshot: String,
    /// Directory to restore into (created if missing)
    #[arg(long, short = 't', value_name = "DIR")]
    target: PathBuf,
    /// Restore only paths (as in the snapshot) matching this glob, and what they contain (repeatable)
    #[arg(long = "include", value_name = "GLOB")]
    includes: Vec<String>,
    /// Do not restore paths (as in the snapshot) matching this glob, nor what they contain (repeatable)
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// What to do with entries that already exist in the target
    #[arg(long, value_enum, default_value = "if-changed")]
    overwrite: OverwriteArg,
    /// Delete what the target has and the snapshot does not (within --include/--exclude)
    #[arg(long)]
    delete: bool,
    /// Change nothing: list what would be created, replaced or deleted
    #[arg(long, short = 'n')]
    pub(super) dry_run: bool,
    /// Re-read every restored file and check it against the snapshot
    #[arg(long)]
    verify: bool,
    /// Print the report (and with --dry-run the plan) as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum OverwriteArg {
    /// Leave existing entries alone
    Never,
    /// Replace existing entries unless they already match the snapshot
    IfChanged,
    /// Replace existing entries
    Always,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let repo = global.open_with_index()?;
    let (snapshot, path) = super::select(&repo, &args.snapshot, &args.filter)?;
    global.trail().snapshot(snapshot.id);
    let shown = global.show_progress("restore", args.json);
    let options = RestoreOptions {
        includes: args.includes.clone(),
        excludes: args.excludes.clone(),
        sample: None,
        overwrite: match args.overwrite {
            OverwriteArg::Never => Overwrite::Never,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Always => Overwrite::Always,
        },
        delete: args.delete,
        dry_run: args.dry_run,
        verify: args.verify,
        threads: 0,
        progress: shown.progress(),
        cancel: cancel_on_signals(),
        limits: global.expansion_limits(),
    };
    let restored = restore(&repo, &snapshot.tree, &path, &args.target, &options);
    drop(shown);
    let report = match restored {
        Ok(report) => report,
        Err(e) => {
            let e = anyhow::Error::from(e);
            if is_interrupted(&e) {
                eprintln!("rewind: {}", super::describe(&e));
                global.trail().failure(super::describe(&e));
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            }
            return Err(e);
        }
    };
    for failure in &report.errors {
        rewind::log::error(&format!("{}: {}", failure.path, failure.error));
    }
    if report.errors_not_listed > 0 {
        rewind::log::error(&format!(
            "{} more entries could not be restored",
            report.errors_not_listed
        ));
    }
    if !args.dry_run {
        global.trail().bytes(|b| b.restored = Some(report.bytes));
    }
    if args.json {
        super::print_json(&serde_json::json!({
            "snapshot": snapshot.id.to_hex(),
            "target": args.target,
            "dry_run": args.dry_run,
            "report": report,
        }))?;
    } else if args.dry_run {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for step in report.planned.iter().filter(|p| p.action != Action::Keep) {
            writeln!(out, "{:<7} {}", step.action.name(), step.path.display())?;
        }
        out.flush()?;
    }
    if !args.json {
        global.tell(summary(&report, &snapshot.id.short(), args));
    }
    if report.failed() == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        let why = format!("{} entries could not be restored", report.failed());
        eprintln!("rewind: {why} (see the errors above)");
        global.trail().failure(why);
        Ok(ExitCode::from(1))
    }
}

fn summary(report: &RestoreReport, snapshot: &str, args: &Args) -> String {
    let mut line = if args.dry_run {
        let count = |a: Action| report.planned.iter().filter(|p| p.action == a).count();
        format!(
            "dry run of snapshot {snapshot}: would create {}, replace {}, delete {} entries and write {}; {} already match",
            count(Action::Create),
            count(Action::Replace),
            count(Action::Delete),
            HumanBytes(report.bytes),
            count(Action::Keep),
        )
    } else {
        format!(
            "restored {} files, {} directories, {} other entries, {} written from snapshot {snapshot}",
            report.files,
            report.dirs,
            report.other,
            HumanBytes(report.bytes),
        )
    };
    if !args.dry_run && report.kept > 0 {
        line += &format!(
            "; {} entries ({}) already matched and were kept",
            report.kept,
            HumanBytes(report.kept_bytes)
        );
    }
    if report.skipped > 0 {
        line += &format!("; {} existing entries left alone", report.skipped);
    }
    if !args.dry_run && report.deleted > 0 {
        line += &format!("; {} entries deleted", report.deleted);
    }
    if args.verify && !args.dry_run {
        line += &format!("; {} files verified", report.verified);
    }
    line
}
