use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{bail, Result};
use chrono::{Duration, FixedOffset, Offset};
use serde_json::json;

use rewind::{apply_policy, parse_keep_duration, GroupBy, KeepPolicy, PolicyGroup, Selector};
use rewind::{LockKind, Opened, Repository, Snapshot};

use super::{FilterArgs, Global};

/// Which snapshots to forget: named ones, or all that a retention policy
/// does not keep. Forgetting removes manifests (after writing a tombstone
/// for each); the data stays until a prune.
#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to forget (id, id prefix, latest, @TIME); none: apply the
    /// --keep-* policy instead
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// Keep the N newest snapshots (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the N newest hours that have one (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_hourly: Option<i64>,
    /// Keep the newest snapshot of each of the N newest days that have one (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_daily: Option<i64>,
    /// Keep the newest snapshot of each of the N newest ISO weeks that have one (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_weekly: Option<i64>,
    /// Keep the newest snapshot of each of the N newest months that have one (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_monthly: Option<i64>,
    /// Keep the newest snapshot of each of the N newest years that have one (-1: all)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    keep_yearly: Option<i64>,
    /// Keep every snapshot taken within DURATION (e.g. 30d, 1y6m, 12h) of the
    /// group's newest snapshot
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    keep_within: Option<Duration>,
    /// Keep the newest snapshot of every hour within DURATION of the newest
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    keep_within_hourly: Option<Duration>,
    /// Keep the newest snapshot of every day within DURATION of the newest
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    keep_within_daily: Option<Duration>,
    /// Keep the newest snapshot of every week within DURATION of the newest
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    keep_within_weekly: Option<Duration>,
    /// Keep the newest snapshot of every month within DURATION of the newest
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    keep_within_monthly: Option<Duration>,
    /// Keep the newest snapshot of every year within DURATION of the newest
    #[arg(long, value_name = "DURATION", value_parser = keep_duration)]
    keep_within_yearly: Option<Duration>,
    /// Keep snapshots with all of these tags (comma-separated; repeatable:
    /// any of the lists)
    #[arg(long, value_name = "TAG[,TAG...]")]
    keep_tag: Vec<String>,
    /// Apply the policy to each group of snapshots with the same values of
    /// these (host, paths, tags; comma-separated; "" for one group)
    #[arg(long, value_name = "FIELDS", default_value = "host,paths")]
    group_by: String,
    /// Hour, day, week, month and year boundaries in this offset
    /// (UTC, local, or +HH:MM)
    #[arg(long, value_name = "OFFSET", default_value = "UTC")]
    timezone: String,
    #[command(flatten)]
    filter: FilterArgs,
    /// Only consider snapshots that backed up this path (repeatable: all of them)
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
    /// Then prune: delete the data no remaining snapshot uses (with --json,
    /// prune's report is the document's "prune")
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    limits: super::prune::Limits,
    /// Print what would be forgotten; change nothing
    #[arg(long, short = 'n')]
    pub(super) dry_run: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

fn keep_duration(text: &str) -> std::result::Result<Duration, String> {
    parse_keep_duration(text).map_err(|e| e.to_string())
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let groups = forget(global, args)?;
    let pruned = if args.prune && !args.dry_run {
        Some(super::prune::prune_locked(global, &args.limits, args.json)?)
    } else {
        if args.prune && !args.json {
            eprintln!("--prune: not run in a dry run (it would delete what the forget frees)");
        }
        None
    };
    match (args.json, pruned) {
        (true, pruned) => {
            let mut document = groups_json(&groups, args.dry_run);
            if let Some(report) = pruned {
                document["prune"] = serde_json::to_value(&report)?;
            }
            super::print_json(&document)?;
        }
        (false, Some(report)) => super::prune::print_report(&report),
        (false, None) => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Forgets what `args` say, under a shared lock released on return, and
/// prints the plan unless `--json`; the groups of the policy.
fn forget(global: &Global, args: &Args) -> Result<Vec<PolicyGroup>> {
    let (repo, _lock) = if args.dry_run {
        (global.open()?, None)
    } else {
        let (repo, lock) = global.open_locked(LockKind::Shared, "forget")?;
        (repo, Some(lock))
    };
    let filter = args.filter.filter();
    let candidates: Vec<Snapshot> = repo
        .snapshots()?
        .into_iter()
        .filter(|s| filter.accepts(s) && args.paths.iter().all(|p| s.paths.contains(p)))
        .collect();
    let policy = args.policy();
    let groups = if args.snapshots.is_empty() {
        if policy.is_empty() {
            bail!(
                "no snapshot named and no --keep-* policy given: nothing to forget \
                 (name snapshots, or give a policy such as --keep-daily 7)"
            );
        }
        apply_policy(
            &candidates,
            &policy,
            GroupBy::parse(&args.group_by)?,
            timezone(&args.timezone)?,
        )
    } else {
        if !policy.is_empty() {
            bail!("name snapshots or give a --keep-* policy, not both");
        }
        vec![named(&candidates, &args.snapshots)?]
    };
    let forgotten = if args.dry_run {
        Ok(0)
    } else {
        forget_groups(&repo, &groups, global.trail())
    };
    if !args.json {
        print_plan(&groups, args.dry_run);
    }
    let count = forgotten?;
    if !args.json && !args.dry_run {
        let until = if args.prune {
            "the prune below"
        } else {
            "a prune"
        };
        global.tell(format_args!(
            "forgot {count} snapshots; their data stays in the repository until {until}"
        ));
    }
    Ok(groups)
}

impl Args {
    fn policy(&self) -> KeepPolicy {
        KeepPolicy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: self.keep_within,
            within_hourly: self.keep_within_hourly,
            within_daily: self.keep_within_daily,
            within_weekly: self.keep_within_weekly,
            within_monthly: self.keep_within_monthly,
            within_yearly: self.keep_within_yearly,
            tags: self
                .keep_tag
                .iter()
                .map(|list| list.split(',').map(str::to_string).collect())
                .collect(),
        }
    }
}

/// The offset whose calendar the buckets follow.
fn timezone(text: &str) -> Result<FixedOffset> {
    match text {
        "UTC" | "utc" | "Z" => Ok(FixedOffset::east_opt(0).expect("zero is an offset")),
        "local" => Ok(chrono::Local::now().offset().fix()),
        other => FixedOffset::from_str(other).map_err(|_| {
            anyhow::anyhow!("--timezone {other}: not UTC, local, or an offset such as +02:00")
        }),
    }
}

/// The snapshots named on the command line, as one group to remove.
fn named(candidates: &[Snapshot], specs: &[String]) -> Result<PolicyGroup> {
    let mut remove: Vec<Snapshot> = Vec::new();
    for spec in specs {
        let snapshot = Selector::parse(spec)?.select(candidates, &Default::default())?;
        if !remove.iter().any(|s| s.id == snapshot.id) {
            remove.push(snapshot.clone());
        }
    }
    remove.sort_by_key(|s| std::cmp::Reverse(s.time));
    Ok(PolicyGroup {
        key: Default::default(),
        keep: Vec::new(),
        remove,
    })
}

/// Forgets every snapshot the groups remove; the first failure stops it
/// (what was forgotten stays forgotten: a tombstone is written first).
fn forget_groups(
    repo: &Repository<Opened>,
    groups: &[PolicyGroup],
    trail: &super::audit::Trail,
) -> Result<usize> {
    let doomed: Vec<Snapshot> = groups.iter().flat_map(|g| g.remove.clone()).collect();
    let results = repo.forget_snapshots(&doomed);
    let forgotten = results.iter().filter(|r| r.is_ok()).count();
    for (snapshot, _) in doomed.iter().zip(&results).filter(|(_, r)| r.is_ok()) {
        trail.snapshot(snapshot.id);
    }
    let failures: Vec<String> = doomed
        .iter()
        .zip(results)
        .filter_map(|(snapshot, result)| {
            let e = result.err()?;
            Some(format!(
                "{} ({} from {}): {}",
                snapshot.id.short(),
                snapshot.time_label(),
                snapshot.host,
                super::describe(&e.into())
            ))
        })
        .collect();
    if !failures.is_empty() {
        bail!(
            "{} of {} snapshots could not be forgotten (the other {forgotten} were, each completely): {}",
            failures.len(),
            doomed.len(),
            failures.join("; ")
        );
    }
    Ok(forgotten)
}

fn print_plan(groups: &[PolicyGroup], dry_run: bool) {
    let (verb_keep, verb_remove) = if dry_run {
        ("would keep", "would forget")
    } else {
        ("keep", "forget")
    };
    for group in groups {
        let mut title = Vec::new();
        if let Some(host) = &group.key.host {
            title.push(format!("host {host}"));
        }
        if let Some(paths) = &group.key.paths {
            title.push(format!("paths {}", paths.join(" ")));
        }
        if let Some(tags) = &group.key.tags {
            title.push(format!("tags {}", tags.join(",")));
        }
        if !title.is_empty() {
            println!("{}", title.join(", "));
        }
        println!("{verb_keep} {} snapshots:", group.keep.len());
        for kept in &group.keep {
            let s = &kept.snapshot;
            println!(
                "  {}  {}  {}  ({})",
                s.id.short(),
                s.time_label(),
                s.host,
                kept.reasons.join(", ")
            );
        }
        println!("{verb_remove} {} snapshots:", group.remove.len());
        for s in &group.remove {
            println!("  {}  {}  {}", s.id.short(), s.time_label(), s.host);
        }
        println!();
    }
}

fn groups_json(groups: &[PolicyGroup], dry_run: bool) -> serde_json::Value {
    let brief = |s: &Snapshot| {
        json!({
            "id": s.id.to_hex(),
            "short_id": s.id.short(),
            "time": s.time_label(),
            "host": s.host,
            "paths": s.paths,
            "tags": s.tags,
        })
    };
    let groups: Vec<serde_json::Value> = groups
        .iter()
        .map(|g| {
            json!({
                "host": g.key.host,
                "paths": g.key.paths,
                "tags": g.key.tags,
                "keep": g.keep.iter().map(|k| {
                    let mut v = brief(&k.snapshot);
                    v["reasons"] = json!(k.reasons);
                    v
                }).collect::<Vec<_>>(),
                "remove": g.remove.iter().map(brief).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "dry_run": dry_run, "groups": groups })
}
