//! `rewind status`: the recovery point of each host, the scrub's health,
//! and from the audit trail when each host last passed a restore test and
//! last failed a command; for people, scripts (JSON) and Prometheus.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, Utc};
use rewind::{assess_snapshots, default_scrub_state_path, AuditTrail, ScrubState, Status};
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
    audit: AuditStatus,
}

/// What the audit trail says, per host that wrote records.
#[derive(Serialize, Default)]
struct AuditStatus {
    records: usize,
    /// Records that do not read (`rewind check` says more).
    unreadable: usize,
    hosts: BTreeMap<String, HostAudit>,
}

#[derive(Serialize, Default)]
struct HostAudit {
    /// When the last restore test that passed started.
    last_restore_test: Option<DateTime<Utc>>,
    last_failed_command: Option<FailedCommand>,
}

#[derive(Serialize)]
struct FailedCommand {
    time: DateTime<Utc>,
    command: String,
    error: String,
}

impl AuditStatus {
    fn of(trail: &AuditTrail) -> AuditStatus {
        let mut status = AuditStatus {
            records: trail.records.len(),
            unreadable: trail.unreadable.len(),
            hosts: BTreeMap::new(),
        };
        // Oldest first: what is seen last is the latest.
        for file in &trail.records {
            let entry = &file.record.entry;
            let host = status.hosts.entry(entry.host.clone()).or_default();
            if entry.failed() {
                host.last_failed_command = Some(FailedCommand {
                    time: entry.time,
                    command: entry.command.clone(),
                    error: entry.error.clone().unwrap_or_default(),
                });
            } else if entry.command == "restore-test" {
                host.last_restore_test = Some(entry.time);
            }
        }
        status
    }
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
    let audit = AuditStatus::of(&repo.audit_trail()?);
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
        audit,
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
        print_audit(&health.audit);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_audit(audit: &AuditStatus) {
    let unreadable = match audit.unreadable {
        0 => String::new(),
        n => format!(", {n} that do not read (run `rewind check`)"),
    };
    println!("audit trail: {} records{unreadable}", audit.records);
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (host, h) in &audit.hosts {
        let test = h
            .last_restore_test
            .as_ref()
            .map_or("never".to_string(), time);
        let failed = h
            .last_failed_command
            .as_ref()
            .map_or("none".to_string(), |f| {
                format!("{} {} ({})", f.command, time(&f.time), f.error)
            });
        println!("  {host}: last restore test passed {test}; last failed command {failed}");
    }
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
    let repo = format!("repository=\"{}\"", label(&health.repository));
    let time = |t: Option<DateTime<Utc>>| t.map_or(0.0, |t| t.timestamp() as f64);
    let per_host = |hosts: Vec<(&String, f64)>| -> Vec<(String, f64)> {
        hosts
            .into_iter()
            .map(|(h, value)| (format!("{{{repo},host=\"{}\"}}", label(h)), value))
            .collect()
    };
    let of_snapshots = |value: &dyn Fn(&HostStatus) -> f64| {
        per_host(health.hosts.iter().map(|(h, s)| (h, value(s))).collect())
    };
    let of_audit = |value: &dyn Fn(&HostAudit) -> f64| {
        per_host(
            health
                .audit
                .hosts
                .iter()
                .map(|(h, a)| (h, value(a)))
                .collect(),
        )
    };
    metric(
        "snapshots",
        "Snapshots in the repository.",
        "gauge",
        vec![(format!("{{{repo}}}"), health.snapshots as f64)],
    );
    metric(
        "newest_snapshot_age_seconds",
        "Age of the newest snapshot of each host (the recovery point).",
        "gauge",
        of_snapshots(&|s| s.age_seconds as f64),
    );
    metric(
        "snapshot_suspicious",
        "1 when the newest snapshot of one of the host's sets of paths is suspicious \
         (many files rewritten with incompressible content: ransomware?), else 0.",
        "gauge",
        of_snapshots(&|s| f64::from(u8::from(s.suspicious))),
    );
    metric(
        "newest_suspicious_snapshot_timestamp_seconds",
        "Time of the host's newest suspicious snapshot (0: none).",
        "gauge",
        of_snapshots(&|s| time(s.newest_suspicious_time)),
    );
    metric(
        "last_restore_test_timestamp_seconds",
        "When the last restore test that passed started, per host that wrote audit records (0: never).",
        "gauge",
        of_audit(&|a| time(a.last_restore_test)),
    );
    metric(
        "last_failed_command_timestamp_seconds",
        "When the last command that failed started, per host that wrote audit records (0: never).",
        "gauge",
        of_audit(&|a| time(a.last_failed_command.as_ref().map(|f| f.time))),
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

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
