use std::process::ExitCode;

use anyhow::Result;
use rewind::assess_snapshots;

use super::{FilterArgs, Global};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Marks a suspicious snapshot in the text listing.
const SUSPICIOUS_MARK: &str = "!";

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let repo = global.open()?;
    let filter = args.filter.filter();
    let all = repo.snapshots()?;
    // Judged against every snapshot, so that a filter does not cut the
    // history short.
    let verdicts = assess_snapshots(&all);
    let listed: Vec<_> = all
        .iter()
        .zip(verdicts)
        .filter(|(s, _)| filter.accepts(s))
        .collect();
    if args.json {
        let values: Vec<serde_json::Value> = listed
            .iter()
            .map(|(s, verdict)| {
                let mut v = serde_json::to_value(s).expect("snapshots serialize");
                v["id"] = s.id.to_hex().into();
                v["short_id"] = s.id.short().into();
                v["suspicious"] = verdict.as_ref().is_some_and(|v| v.suspicious).into();
                v["suspicion"] = serde_json::to_value(verdict).expect("verdicts serialize");
                v
            })
            .collect();
        super::print_json(&values)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8} {:1} {:<20}  {:<16}  {:>10}  {:<12}  paths",
        "id", "", "time", "host", "size", "tags"
    );
    let mut suspicious = 0;
    for (s, verdict) in &listed {
        let mark = if verdict.as_ref().is_some_and(|v| v.suspicious) {
            suspicious += 1;
            SUSPICIOUS_MARK
        } else {
            ""
        };
        println!(
            "{:<8} {:1} {:<20}  {:<16}  {:>10}  {:<12}  {}",
            s.id.short(),
            mark,
            s.time_label(),
            s.host,
            indicatif::HumanBytes(s.summary.bytes_total).to_string(),
            s.tags.join(","),
            s.paths.join(" ")
        );
    }
    println!("{} snapshots", listed.len());
    if suspicious > 0 {
        println!(
            "{SUSPICIOUS_MARK} {suspicious} suspicious: an unusual share of their files was \
             rewritten with incompressible content, as ransomware leaves them \
             (`rewind diff PARENT SNAPSHOT` names the files)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
