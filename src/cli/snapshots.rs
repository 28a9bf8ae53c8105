use std::process::ExitCode;

use anyhow::Result;

use super::{FilterArgs, Global};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let repo = global.open()?;
    let filter = args.filter.filter();
    let snapshots: Vec<_> = repo
        .snapshots()?
        .into_iter()
        .filter(|s| filter.accepts(s))
        .collect();
    if args.json {
        let values: Vec<serde_json::Value> = snapshots
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).expect("snapshots serialize");
                v["id"] = s.id.to_hex().into();
                v["short_id"] = s.id.short().into();
                v
            })
            .collect();
        super::print_json(&values)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8}  {:<20}  {:<16}  {:>10}  {:<12}  paths",
        "id", "time", "host", "size", "tags"
    );
    for s in &snapshots {
        println!(
            "{:<8}  {:<20}  {:<16}  {:>10}  {:<12}  {}",
            s.id.short(),
            s.time_label(),
            s.host,
            indicatif::HumanBytes(s.summary.bytes_total).to_string(),
            s.tags.join(","),
            s.paths.join(" ")
        );
    }
    println!("{} snapshots", snapshots.len());
    Ok(ExitCode::SUCCESS)
}
