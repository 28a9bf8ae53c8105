use std::process::ExitCode;

use anyhow::Result;
use rewind::{check, Subset};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Read and verify every pack
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Read and verify a deterministic part of the packs: N/T (e.g. 3/7) or P% (e.g. 10%)
    #[arg(long, value_name = "N/T|P%")]
    read_data_subset: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let subset = match (&args.read_data_subset, args.read_data) {
        (Some(text), _) => Some(Subset::parse(text)?),
        (None, true) => Some(Subset::All),
        (None, false) => None,
    };
    let repo = global.open_uncached()?;
    let shown = global.show_progress("check", args.json);
    let report = check(&repo, subset, &shown.progress())?;
    drop(shown);
    if args.json {
        super::print_json(&report)?;
    } else {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        for (pack, why) in &report.damaged_packs {
            eprintln!("damaged pack {pack}: {why}");
        }
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        for (snapshot, paths) in &report.affected {
            eprintln!("snapshot {snapshot} lost data in {} paths:", paths.len());
            for p in paths {
                eprintln!("  {p}");
            }
        }
        for hint in &report.hints {
            eprintln!("hint: {hint}");
        }
        println!(
            "{} snapshots, {} trees, {} packs, {} audit records checked{}: {}",
            report.snapshots,
            report.trees,
            report.packs,
            report.audit_records,
            if subset.is_some() {
                format!(
                    "; {} packs ({}) and {} blobs read and verified",
                    report.packs_read,
                    indicatif::HumanBytes(report.bytes_read),
                    report.blobs_verified
                )
            } else {
                String::new()
            },
            if report.is_ok() {
                "no errors"
            } else {
                "ERRORS FOUND"
            }
        );
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
