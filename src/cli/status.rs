use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, Utc};
use rewind::{assess_snapshots, default_scrub_state_path, ScrubState, Status};
use serde::Serialize;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Print Prometheus metrics (for the node exporter's textfile collector)
    #[arg(long)]
    prometheus: bool,
    /// The scrub state file (default: the one `rewind scrub` uses)
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

#[derive(Serialize)]
struct HostStatus {
    oldest_snapshot: String,
    oldest_snapshot_id: String,
    newest_snapshot: String,
    newest_snapshot_id: String,
    /// The recovery point: how old the newest backup is.
    age_seconds: i64,
    snapshots: usize,
    /// Whether the newest snapshot of one of the host's sets of paths is
    /// suspicious: ransomware may have encrypted its files.
    suspicious: bool,
    /// The newest suspicious snapshot of the host, if any.
    newest_suspicious_snapshot: Option<String>,
    newest_suspicious_snapshot_id: Option<String>,
    #[serde(skip)]
    newest_suspicious_time: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct Health {
    repository: String,
    snapshots: usize,
    hosts: BTreeMap<String, HostStatus>,
    scrub: ScrubState,
    scrub_coverage: f64,
    damaged: usize,
    repaired: usize,
    lost: usize,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let repo = global.open()?;
    let snapshots = repo.snapshots()?;
    let verdicts = assess_snapshots(&snapshots);
    let now = Utc::now();
    let mut hosts: BTreeMap<String, HostStatus> = BTreeMap::new();
    // Whether the newest snapshot of each host and set of paths is suspicious.
    let mut newest_of_paths: BTreeMap<(&str, Vec<&String>), bool> = BTreeMap::new();
    for (s, verdict) in snapshots.iter().zip(&verdicts) {
        // Oldest first: the first one seen is the oldest, the last the newest.
        let entry = hosts.entry(s.host.clone()).or_insert_with(|| HostStatus {
            oldest_snapshot: s.time_label(),
            oldest_snapshot_id: s.id.short(),
            newest_snapshot: String::new(),
            newest_snapshot_id: String::new(),
            age_seconds: 0,
            snapshots: 0,
            suspicious: false,
            newest_suspicious_snapshot: None,
            newest_suspicious_snapshot_id: None,
            newest_suspicious_time: None,
        });
        entry.snapshots += 1;
        entry.newest_snapshot = s.time_label();
        entry.newest_snapshot_id = s.id.short();
        entry.age_seconds = (now - s.time).num_seconds();
        let suspicious = verdict.as_ref().is_some_and(|v| v.suspicious);
        if suspicious {
            entry.newest_suspicious_snapshot = Some(s.time_label());
            entry.newest_suspicious_snapshot_id = Some(s.id.short());
            entry.newest_suspicious_time = Some(s.time);
        }
        let mut paths: Vec<&String> = s.paths.iter().collect();
        paths.sort();
        newest_of_paths.insert((&s.host, paths), suspicious);
    }
    for ((host, _), suspicious) in newest_of_paths {
        if let Some(entry) = hosts.get_mut(host) {
            entry.suspicious |= suspicious;
        }
    }
    let state_file = match &args.state {
        Some(path) => path.clone(),
        None => default_scrub_state_path(&repo.config().id.short())?,
    };
    let scrub = ScrubState::load(&state_file, &repo.config().id.to_hex());
    let count = |status| scrub.findings.iter().filter(|f| f.status == status).count();
    let health = Health {
        repository: repo.location(),
        snapshots: snapshots.len(),
        hosts,
        scrub_coverage: scrub.coverage(),
        damaged: count(Status::Damaged),
        repaired: count(Status::Repaired),
        lost: count(Status::Lost),
        scrub,
    };
    if args.json {
        super::print_json(&health)?;
    } else if args.prometheus {
        print!("{}", prometheus(&health));
    } else {
        println!(
            "repository {}: {} snapshots",
            health.repository, health.snapshots
        );
        for (host, h) in &health.hosts {
            println!(
                "  {host}: newest {} ({}), {} old; oldest {} ({}); {} snapshots",
                h.newest_snapshot,
                h.newest_snapshot_id,
                age(h.age_seconds),
                h.oldest_snapshot,
                h.oldest_snapshot_id,
                h.snapshots
            );
            if let (Some(time), Some(id)) = (
                &h.newest_suspicious_snapshot,
                &h.newest_suspicious_snapshot_id,
            ) {
                println!(
                    "    {}: newest suspicious snapshot {time} ({id}), files rewritten with \
                     incompressible content as ransomware leaves them (see `rewind snapshots`)",
                    if h.suspicious {
                        "SUSPICIOUS NOW"
                    } else {
                        "was suspicious"
                    }
                );
            }
        }
        match health.scrub.last_run {
            None => println!("scrub: never run on this machine (see `rewind scrub`)"),
            Some(last) => println!(
                "scrub: last run {}, last full pass {}, current pass {:.0}% covered; {} damaged, {} repaired, {} lost",
                last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                health.scrub.last_full_pass.map_or("never".into(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                health.scrub_coverage * 100.0,
                health.damaged,
                health.repaired,
                health.lost
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn prometheus(health: &Health) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!(
            "# HELP rewind_{name} {help}\n# TYPE rewind_{name} {kind}\n"
        ));
        for (labels, value) in samples {
            out.push_str(&format!("rewind_{name}{labels} {value}\n"));
        }
    };
    let repo = format!(
        "repository=\"{}\"",
        health.repository.replace('\\', "\\\\").replace('"', "\\\"")
    );
    metric(
        "snapshots",
        "Snapshots in the repository.",
        "gauge",
        vec![(format!("{{{repo}}}"), health.snapshots as f64)],
    );
    let per_host = |value: &dyn Fn(&HostStatus) -> f64| {
        health
            .hosts
            .iter()
            .map(|(h, s)| {
                (
                    format!("{{{repo},host=\"{}\"}}", h.replace('"', "'")),
                    value(s),
                )
            })
            .collect::<Vec<_>>()
    };
    metric(
        "newest_snapshot_age_seconds",
        "Age of the newest snapshot of each host (the recovery point).",
        "gauge",
        per_host(&|s| s.age_seconds as f64),
    );
    let time = |t: Option<DateTime<Utc>>| t.map_or(0.0, |t| t.timestamp() as f64);
    metric(
        "snapshot_suspicious",
        "1 when the newest snapshot of one of the host's sets of paths is suspicious \
         (many files rewritten with incompressible content: ransomware?), else 0.",
        "gauge",
        per_host(&|s| f64::from(u8::from(s.suspicious))),
    );
    metric(
        "newest_suspicious_snapshot_timestamp_seconds",
        "Time of the host's newest suspicious snapshot (0: none).",
        "gauge",
        per_host(&|s| time(s.newest_suspicious_time)),
    );
    metric(
        "scrub_last_run_timestamp_seconds",
        "When a scrub last ran (0: never).",
        "gauge",
        vec![(format!("{{{repo}}}"), time(health.scrub.last_run))],
    );
    metric(
        "scrub_last_full_pass_timestamp_seconds",
        "When a scrub last read every pack (0: never).",
        "gauge",
        vec![(format!("{{{repo}}}"), time(health.scrub.last_full_pass))],
    );
    metric(
        "scrub_coverage_ratio",
        "Share of packs the current scrub pass has read.",
        "gauge",
        vec![(format!("{{{repo}}}"), health.scrub_coverage)],
    );
    metric(
        "scrub_findings",
        "Damaged files the scrub found, by status.",
        "gauge",
        [
            ("damaged", health.damaged),
            ("repaired", health.repaired),
            ("lost", health.lost),
        ]
        .iter()
        .map(|(status, n)| (format!("{{{repo},status=\"{status}\"}}"), *n as f64))
        .collect(),
    );
    out
}
