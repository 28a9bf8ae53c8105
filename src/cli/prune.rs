use std::process::ExitCode;

use anyhow::{bail, Result};
use serde_json::json;

use rewind::RetainedFiles;
use rewind::{plan_prune, prune, LockKind, PackFate, PruneOptions, PrunePlan, PruneReport};

use super::size::{human_bytes, parse_size};
use super::{print_json, Global};

/// Deletes the data no snapshot uses. Packs with nothing used are deleted;
/// packs mostly unused are repacked (their used blobs copied to new packs).
/// Safe while backups run: what a running backup may rely on is deleted by
/// a later prune, once it has finished (see rewind-prune(1)).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    limits: Limits,
    /// Print what would be deleted and repacked; change nothing
    #[arg(long, short = 'n')]
    pub(super) dry_run: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// How far a prune goes (also `forget --prune`).
#[derive(clap::Args, Clone)]
pub struct Limits {
    /// Unused space left in packs that are kept, as a share of the
    /// repository (e.g. 5%, 0%, unlimited). Freeing the last few percent
    /// would mean rewriting mostly used packs: much I/O for little space
    #[arg(long, value_name = "PERCENT", default_value = "5%", value_parser = parse_share)]
    max_unused: f64,
    /// Copy at most this much data when repacking, e.g. 2G (default: no limit)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_repack: Option<u64>,
}

impl Limits {
    fn options(&self) -> PruneOptions {
        PruneOptions {
            max_unused: self.max_unused,
            max_repack_bytes: self.max_repack,
        }
    }
}

fn parse_share(text: &str) -> Result<f64, String> {
    if text == "unlimited" {
        return Ok(f64::INFINITY);
    }
    let percent: f64 = text
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("'{text}' is not a share like 5% (or unlimited)"))?;
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!("'{text}': a share is between 0% and 100%"));
    }
    Ok(percent / 100.0)
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    if args.dry_run {
        let repo = loaded(global.open()?)?;
        let plan = plan_prune(&repo, &args.limits.options())?;
        if args.json {
            print_json(&plan_json(&plan))?;
        } else {
            print_plan(&plan);
        }
        return Ok(ExitCode::SUCCESS);
    }
    run_locked(global, &args.limits, args.json)
}

/// Prunes under the exclusive lock and prints the report.
pub fn run_locked(global: &Global, limits: &Limits, as_json: bool) -> Result<ExitCode> {
    let report = prune_locked(global, limits, as_json)?;
    if as_json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prunes under the exclusive lock (also the second half of `forget
/// --prune`, which prints the report in its own document).
pub fn prune_locked(global: &Global, limits: &Limits, as_json: bool) -> Result<PruneReport> {
    let (repo, lock) = global.open_locked(LockKind::Exclusive, "prune")?;
    let repo = loaded(repo)?;
    let shown = global.show_progress("prune", as_json);
    let report = prune(&repo, Some(&lock), &limits.options(), &shown.progress())?;
    drop(shown);
    global.trail().bytes(|b| {
        b.written = Some(report.bytes_repacked);
        b.deleted = Some(report.bytes_deleted);
    });
    Ok(report)
}

/// The indexed repository; a prune refuses to run on an index it could not
/// read whole, since it would take what those files list for unindexed.
pub(super) fn loaded(repo: rewind::Repository<rewind::Opened>) -> Result<rewind::Repository> {
    let (repo, errors) = repo.load_index()?;
    if let Some(first) = errors.first() {
        bail!(
            "{} index files do not read (first: {first}); a prune cannot know what the \
             repository holds. Run `rewind scrub --repair`, then prune again",
            errors.len()
        );
    }
    Ok(repo)
}

fn plan_json(plan: &PrunePlan) -> serde_json::Value {
    let (repacked, dropped) = plan.repacked_bytes();
    json!({
        "dry_run": true,
        "blobs_used": plan.used_blobs,
        "bytes_before": plan.total_bytes(),
        "packs_unused": plan.count(PackFate::Delete),
        "bytes_unused": plan.deleted_bytes(),
        "packs_repacked": plan.count(PackFate::Repack),
        "bytes_repacked": repacked,
        "bytes_repack_dropped": dropped,
        "bytes_unused_kept": plan.unused_kept_bytes(),
        "bytes_after": plan.total_bytes() - plan.deleted_bytes() - dropped,
    })
}

fn print_plan(plan: &PrunePlan) {
    let (repacked, dropped) = plan.repacked_bytes();
    println!(
        "would delete {} packs nothing uses ({})",
        plan.count(PackFate::Delete),
        human_bytes(plan.deleted_bytes())
    );
    println!(
        "would repack {} packs: copy {}, drop {}",
        plan.count(PackFate::Repack),
        human_bytes(repacked),
        human_bytes(dropped)
    );
    println!(
        "would keep {} unused in packs that are mostly used",
        human_bytes(plan.unused_kept_bytes())
    );
    println!(
        "data in packs: {} -> {}",
        human_bytes(plan.total_bytes()),
        human_bytes(plan.total_bytes() - plan.deleted_bytes() - dropped)
    );
}

pub(super) fn print_report(r: &PruneReport) {
    println!("{} snapshots use {} blobs", r.snapshots, r.blobs_used);
    println!(
        "unused:    {} packs nothing uses ({})",
        r.packs_unused,
        human_bytes(r.bytes_unused)
    );
    println!(
        "repacked:  {} packs into {}: {} copied, {} dropped",
        r.packs_repacked,
        r.packs_written,
        human_bytes(r.bytes_repacked),
        human_bytes(r.bytes_repack_dropped)
    );
    println!(
        "kept:      {} unused in packs that are mostly used",
        human_bytes(r.bytes_unused_kept)
    );
    if r.packs_unindexed > 0 {
        println!(
            "leftovers: {} packs no index named (left by interrupted writers)",
            r.packs_unindexed
        );
    }
    if r.packs_rescued > 0 {
        println!(
            "rescued:   {} unindexed packs hold data snapshots use; indexed again",
            r.packs_rescued
        );
    }
    println!(
        "index:     {} files -> {}",
        r.index_files_before, r.index_files_after
    );
    println!(
        "size:      {} -> {} of data in packs; {} pack files ({}) deleted now",
        human_bytes(r.bytes_before),
        human_bytes(r.bytes_after),
        r.packs_deleted,
        human_bytes(r.bytes_deleted)
    );
    for waiting in &r.plans_waiting {
        println!(
            "waiting:   {} packs (plan {}) wait for writers that may still rely on them: {}; \
             a prune after they finish deletes them",
            waiting.packs,
            &waiting.plan[..waiting.plan.len().min(12)],
            waiting.waits_for.join("; ")
        );
    }
    print_retained(&r.retained);
    if r.blobs_missing > 0 {
        eprintln!(
            "warning: {} blobs that snapshots use are in no pack: run `rewind check`",
            r.blobs_missing
        );
    }
}

/// What object lock keeps, and from when a prune can delete it.
fn print_retained(r: &RetainedFiles) {
    if r.is_empty() {
        return;
    }
    let when = match (r.first_until, r.last_until) {
        (Some(first), Some(last)) if first == last => {
            format!("until {}", first.format("%Y-%m-%d %H:%M:%S UTC"))
        }
        (Some(first), Some(last)) => format!(
            "until between {} and {}",
            first.format("%Y-%m-%d %H:%M:%S UTC"),
            last.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        _ => "for a time the store did not tell".to_string(),
    };
    println!(
        "retained:  {} packs, {} index files and {} manifests stay under object lock {when}; \
         a prune after that deletes them",
        r.packs, r.index_files, r.manifests
    );
}
