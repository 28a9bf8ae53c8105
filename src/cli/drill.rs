//! `rewind restore-test`: the restore drill's command line and its text
//! report (the drill itself is `rewind::restore::drill`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use indicatif::HumanBytes;
use rewind::{drill, human_duration, parse_duration, DrillOptions, DrillReport, Sample};

use super::interrupt::{cancel_on_signals, is_interrupted, EXIT_INTERRUPTED};
use super::{FilterArgs, Global};

#[derive(clap::Args)]
#[command(after_help = "\
The drill restores into a new directory under --scratch, checking every chunk against the id \
recorded at backup time before writing it, then compares the restored tree with the snapshot: \
every entry's type, size, link target, mode, times and extended attributes (and owner when run \
as root), nothing missing and nothing extra. It reports the restore time (the recovery time) and \
the snapshot's age (the recovery point). The scratch directory is removed at the end, also after \
Ctrl-C or SIGTERM.

Exit status: 0 when every check passed, 1 when one failed, 130 when interrupted.")]
pub struct Args {
    /// SNAP[:PATH] to test
    #[arg(default_value = "latest")]
    snapshot: String,
    /// Restore and check only a deterministic sample of the files, e.g. 5%
    #[arg(long, value_name = "PERCENT")]
    sample: Option<String>,
    /// Where to make the scratch directory [default: $TMPDIR, else /tmp]
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
    /// Also compare the snapshot's PATH with this live directory
    #[arg(long, value_name = "DIR")]
    against: Option<PathBuf>,
    /// Fail when the snapshot is older than this, e.g. 26h or 2d (the recovery point objective)
    #[arg(long, value_name = "DURATION")]
    max_age: Option<String>,
    /// Leave the scratch directory in place, to look at a failure
    #[arg(long)]
    keep_scratch: bool,
    /// Also read every chunk back from the scratch directory after writing it (restore --verify)
    #[arg(long)]
    reread: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    /// Also write the report as JUnit XML to FILE
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let max_age = args.max_age.as_deref().map(parse_duration).transpose()?;
    let repo = global.open_with_index()?;
    let (snapshot, path) = super::select(&repo, &args.snapshot, &args.filter)?;
    global.trail().snapshot(snapshot.id);
    let sample = args
        .sample
        .as_deref()
        .map(|text| Sample::parse(text, &snapshot.id))
        .transpose()?;
    let shown = global.show_progress("restore-test", args.json);
    let options = DrillOptions {
        sample,
        scratch: args.scratch.clone().unwrap_or_else(std::env::temp_dir),
        against: args.against.clone(),
        max_age,
        keep_scratch: args.keep_scratch,
        reread: args.reread,
        threads: 0,
        progress: shown.progress(),
        cancel: cancel_on_signals(),
        limits: global.expansion_limits(),
    };
    let drilled = drill(&repo, &snapshot, &path, &options);
    drop(shown);
    let report = match drilled {
        Ok(report) => report,
        Err(e) => {
            let e = anyhow::Error::from(e);
            if is_interrupted(&e) {
                let why = "the restore test was interrupted; its scratch directory was removed";
                eprintln!("rewind: {why}");
                global.trail().failure(why);
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            }
            return Err(e);
        }
    };
    global
        .trail()
        .bytes(|b| b.restored = Some(report.bytes_checked));
    if !report.ok {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.failures.is_empty())
            .map(|c| c.name.as_str())
            .collect();
        global
            .trail()
            .failure(format!("the restore test failed: {}", failed.join(", ")));
    }
    if let Some(file) = &args.junit {
        std::fs::write(file, report.junit())
            .with_context(|| format!("cannot write the JUnit report {}", file.display()))?;
    }
    if args.json {
        super::print_json(&report)?;
    } else {
        print!("{}", text(&report));
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn text(r: &DrillReport) -> String {
    let mut out = format!(
        "restore test of snapshot {} ({}, host {}), {}{}\n",
        &r.snapshot[..8],
        r.snapshot_time,
        r.host,
        r.path,
        r.sample_percent
            .map(|p| format!(", a {p}% sample of the files"))
            .unwrap_or_default()
    );
    out += &format!(
        "  checked:        {} files, {}, {} entries\n",
        r.files_checked,
        HumanBytes(r.bytes_checked),
        r.entries_checked
    );
    out += &format!(
        "  restore time:   {:.1} s (recovery time), checked in {:.1} s\n",
        r.restore_seconds, r.verify_seconds
    );
    out += &format!(
        "  snapshot age:   {} (recovery point){}\n",
        human_duration(r.age_seconds.max(0) as u64),
        r.max_age_seconds
            .map(|m| format!(", allowed {}", human_duration(m)))
            .unwrap_or_default()
    );
    if r.scratch_kept {
        out += &format!("  scratch kept:   {}\n", r.scratch);
    }
    for check in &r.checks {
        let status = if check.failures.is_empty() {
            "ok".to_string()
        } else {
            format!("FAILED ({})", check.failures.len())
        };
        out += &format!("  {:<15} {status}\n", format!("{}:", check.name));
    }
    for (check, failure) in r.failures() {
        out += &format!("    {}: {}: {}\n", check.name, failure.path, failure.error);
    }
    out += if r.ok { "OK\n" } else { "FAILED\n" };
    out
}
