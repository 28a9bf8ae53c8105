//! `rewind copy`: the snapshots of another repository that this one lacks.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use rewind::{copy, plan_copy, CopyOptions, CopyPlan, CopyReport, CopySelection, LockKind};
use rewind::{Opened, Repository, Selector, Snapshot};

use super::size::human_bytes;
use super::{load_index, print_json, FilterArgs, FromRepoArgs, Global};

/// Copies snapshots from the repository given with --from-repo into this
/// one (--repo): each the destination lacks, sending only the data it
/// lacks, sealed under its own keys. A second run copies nothing.
#[derive(clap::Args)]
pub struct Args {
    /// Source snapshots to copy (latest, an id prefix, @TIME); default:
    /// every one the --host and --tag filters accept
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    #[command(flatten)]
    from: FromRepoArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Print which snapshots would be copied; change nothing
    #[arg(long, short = 'n')]
    pub(super) dry_run: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let selection = CopySelection {
        selectors: args
            .snapshots
            .iter()
            .map(|text| Selector::parse(text))
            .collect::<rewind::Result<_>>()?,
        filter: args.filter.filter(),
    };
    let source = args.from.open()?;
    if args.dry_run {
        let plan = plan_copy(&source, &global.open()?, &selection)?;
        if args.json {
            print_json(&plan_json(&plan))?;
        } else {
            print_plan(&plan);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Locked before the index is read, as a backup is: a prune then knows
    // what this copy may rely on (docs/design.md, section 7).
    let (dest, lock) = global.open_locked(LockKind::Shared, "copy")?;
    let plan = plan_copy(&source, &dest, &selection)?;
    let report = if plan.to_copy.is_empty() {
        // Nothing to copy: no index is read.
        CopyReport {
            same_ids: plan.same_ids,
            present: plan.present.len() as u64,
            ..CopyReport::default()
        }
    } else {
        let (source, dest) = (load_index(source.clone())?, load_index(dest.clone())?);
        let shown = global.show_progress("copy", args.json);
        let options = CopyOptions {
            progress: shown.progress(),
        };
        copy(&source, &dest, &plan, Some(&lock), &options)?
    };
    for copied in &report.copied {
        global.trail().snapshot(copied.destination);
    }
    global.trail().bytes(|b| {
        b.read = Some(report.bytes_read);
        b.written = Some(report.bytes_sent);
    });
    let records = copy_audit_records(&source, &dest)?;
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["dry_run"] = false.into();
        value["audit_records_copied"] = records.into();
        print_json(&value)?;
    } else {
        print_report(&report);
        println!("{records} audit records copied");
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies the audit records the destination lacks, so that the trail
/// travels with the snapshots; records of the source that do not read are
/// left behind with a warning. Returns how many were copied.
fn copy_audit_records(source: &Repository<Opened>, dest: &Repository<Opened>) -> Result<usize> {
    let records = dest.copy_audit_records_from(source)?;
    for (name, e) in &records.unreadable {
        rewind::log::warn(&format!(
            "the source's audit record audit/{name} does not read and was not copied: {e} \
             (run `rewind check` on the source)"
        ));
    }
    Ok(records.copied)
}

fn plan_json(plan: &CopyPlan) -> serde_json::Value {
    let described =
        |s: &Snapshot| json!({"source": s.id, "time": s.time, "host": s.host, "paths": s.paths});
    json!({
        "dry_run": true,
        "same_ids": plan.same_ids,
        "to_copy": plan.to_copy.iter().map(described).collect::<Vec<_>>(),
        "present": plan.present.iter().map(|(s, copy)| {
            let mut value = described(s);
            value["destination"] = copy.to_hex().into();
            value
        }).collect::<Vec<_>>(),
    })
}

fn print_plan(plan: &CopyPlan) {
    for s in &plan.to_copy {
        println!(
            "would copy {}  {}  {}  {}",
            s.id.short(),
            s.time_label(),
            s.host,
            s.paths.join(" ")
        );
    }
    println!(
        "would copy {} snapshots; {} are there already",
        plan.to_copy.len(),
        plan.present.len()
    );
}

fn print_report(r: &CopyReport) {
    for c in &r.copied {
        println!(
            "copied {} -> {}  {}  {}  {}",
            c.source.short(),
            c.destination.short(),
            c.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            c.host,
            c.paths.join(" ")
        );
    }
    println!(
        "{} snapshots copied, {} there already; {} blobs sent ({}), {} there already; \
         {} blobs read ({})",
        r.copied.len(),
        r.present,
        r.blobs_sent,
        human_bytes(r.bytes_sent),
        r.blobs_skipped,
        r.blobs_read,
        human_bytes(r.bytes_read)
    );
    if r.blobs_stored_again > 0 {
        println!(
            "{} blobs were stored again: a prune running on this repository is deleting \
             the packs they were in",
            r.blobs_stored_again
        );
    }
}
