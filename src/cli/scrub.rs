use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use rewind::{
    default_scrub_state_path, repair_before_open, scrub, Finding, ScrubOptions, ScrubReport, Status,
};
use rewind::{LockKind, StoredFiles};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Read at most this many MiB per second (default: as fast as possible)
    #[arg(long, value_name = "MiB/s")]
    rate: Option<f64>,
    /// Start a new pass instead of continuing where the last one stopped
    #[arg(long)]
    restart: bool,
    /// Rebuild damaged files from parity, lost index files from the packs,
    /// and lost snapshot manifests from their copies in the packs
    #[arg(long)]
    pub(super) repair: bool,
    /// Only check that every file hashes to its name (no key needed for that part);
    /// by default every blob is also decrypted and re-hashed
    #[arg(long)]
    shallow: bool,
    /// Where the scrub remembers its position and findings
    /// (default: /var/cache/rewind/scrub-<repository id>.json as root, else ~/.cache/rewind/...)
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

/// Exit code when damage was found and every piece of it was repaired.
const ALL_REPAIRED: u8 = 4;

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let backend = global.backend_uncached()?;
    let mut early = if args.repair {
        repair_before_open(&StoredFiles::before_open(&*backend), true)
    } else {
        Vec::new()
    };
    let repo = match global.open_uncached() {
        Ok(repo) => repo,
        Err(e) => {
            // The config or a key file may be what is damaged: say so, and how to repair.
            let findings = if args.repair {
                early
            } else {
                repair_before_open(&StoredFiles::before_open(&*backend), false)
            };
            if findings.is_empty() {
                return Err(e);
            }
            if args.json {
                super::print_json(&ScrubReport {
                    findings,
                    ..ScrubReport::default()
                })?;
            } else {
                print_findings(&findings);
            }
            eprintln!(
                "rewind: the repository cannot be opened ({}){}",
                super::describe(&e),
                if args.repair {
                    ""
                } else {
                    "; run `rewind scrub --repair`"
                }
            );
            return Ok(ExitCode::from(1));
        }
    };
    let _lock = if args.repair {
        Some(repo.lock(LockKind::Shared, "scrub --repair")?)
    } else {
        None
    };
    let (repo, errors) = repo.load_index()?;
    for e in errors {
        rewind::log::warn(&format!("{e}"));
    }
    let options = ScrubOptions {
        rate: args.rate,
        restart: args.restart,
        repair: args.repair,
        deep: !args.shallow,
        threads: std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2),
        state_file: match &args.state {
            Some(path) => path.clone(),
            None => default_scrub_state_path(&repo.config().id.short())?,
        },
    };
    let shown = global.show_progress("scrub", args.json);
    let mut report = scrub(&repo, options, &shown.progress())?;
    drop(shown);
    global
        .trail()
        .bytes(|b| b.read = Some(report.bytes_checked));
    early.append(&mut report.findings);
    report.findings = early;
    if args.json {
        super::print_json(&report)?;
    } else {
        print_findings(&report.findings);
        println!(
            "scrubbed {} packs ({}) in {:.1}s; pass {} ({:.0}% covered); {} findings, {} not repaired",
            report.packs_checked,
            indicatif::HumanBytes(report.bytes_checked),
            report.seconds,
            if report.pass_complete { "complete" } else { "in progress" },
            report.coverage * 100.0,
            report.findings.len(),
            report.unrepaired()
        );
    }
    Ok(match (report.damage_found(), report.unrepaired()) {
        (false, _) => ExitCode::SUCCESS,
        (true, 0) => {
            global.trail().failure(format!(
                "damage found: {} findings, all repaired",
                report.findings.len()
            ));
            ExitCode::from(ALL_REPAIRED)
        }
        (true, unrepaired) => {
            global.trail().failure(format!(
                "damage found: {} findings, {unrepaired} not repaired",
                report.findings.len()
            ));
            ExitCode::from(1)
        }
    })
}

fn print_findings(findings: &[Finding]) {
    for f in findings {
        let status = match f.status {
            Status::Damaged => "DAMAGED",
            Status::Repaired => "REPAIRED",
            Status::Lost => "LOST",
        };
        eprintln!("{status} {}: {}", f.file, f.problem);
        for (snapshot, paths) in &f.affected {
            eprintln!("  snapshot {snapshot}: {} paths affected", paths.len());
            for p in paths.iter().take(20) {
                eprintln!("    {p}");
            }
            if paths.len() > 20 {
                eprintln!("    ... and {} more (see --json)", paths.len() - 20);
            }
        }
    }
}
