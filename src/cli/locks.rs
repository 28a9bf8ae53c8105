//! `rewind locks` and `rewind unlock`: who is in the repository, and
//! clearing the locks of processes that are gone.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use rewind::{LockRecord, Staleness};

use super::Global;

#[derive(clap::Args)]
pub struct ListArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct UnlockArgs {
    /// Remove only the locks whose process is gone (same host, dead pid) or
    /// that were not refreshed for 40 minutes; without it, remove every lock
    #[arg(long)]
    stale: bool,
}

/// How many hex digits of a lock's id are shown.
const SHORT_ID: usize = 8;

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn is_stale(staleness: Staleness) -> bool {
    staleness == Staleness::Stale
}

pub fn list(global: &Global, args: &ListArgs) -> Result<ExitCode> {
    let locks = global.open()?.locks()?;
    if args.json {
        let values: Vec<serde_json::Value> = locks
            .iter()
            .map(|(id, lock, staleness)| {
                json!({
                    "id": id,
                    "short_id": &id[..SHORT_ID.min(id.len())],
                    "kind": lock.kind,
                    "host": lock.host,
                    "pid": lock.pid,
                    "user": lock.user,
                    "command": lock.command,
                    "started": time(&lock.started),
                    "refreshed": time(&lock.refreshed),
                    "stale": is_stale(*staleness),
                })
            })
            .collect();
        super::print_json(&values)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8}  {:<9}  {:<16}  {:>7}  {:<10}  {:<20}  {:<20}  {:<5}  command",
        "id", "kind", "host", "pid", "user", "started", "refreshed", "stale"
    );
    for (id, lock, staleness) in &locks {
        println!(
            "{:<8}  {:<9}  {:<16}  {:>7}  {:<10}  {:<20}  {:<20}  {:<5}  {}",
            &id[..SHORT_ID.min(id.len())],
            lock.kind.name(),
            lock.host,
            lock.pid,
            lock.user,
            time(&lock.started),
            time(&lock.refreshed),
            if is_stale(*staleness) { "yes" } else { "no" },
            lock.command
        );
    }
    println!("{} locks", locks.len());
    Ok(ExitCode::SUCCESS)
}

pub fn unlock(global: &Global, args: &UnlockArgs) -> Result<ExitCode> {
    let repo = global.open()?;
    let mut removed = 0;
    for (id, lock, staleness) in repo.locks()? {
        if args.stale && !is_stale(staleness) {
            continue;
        }
        repo.remove_lock(&id)?;
        removed += 1;
        println!("removed {}", describe(&id, &lock, staleness));
        if !is_stale(staleness) {
            rewind::log::warn(&format!(
                "lock {} was live: its command goes on without a lock, and a second \
                 prune may now run beside it",
                &id[..SHORT_ID.min(id.len())]
            ));
        }
    }
    global.tell(format_args!(
        "removed {removed} {}locks",
        if args.stale { "stale " } else { "" }
    ));
    Ok(ExitCode::SUCCESS)
}

fn describe(id: &str, lock: &LockRecord, staleness: Staleness) -> String {
    format!(
        "{} ({}, {})",
        &id[..SHORT_ID.min(id.len())],
        lock.describe(),
        if is_stale(staleness) { "stale" } else { "live" }
    )
}
