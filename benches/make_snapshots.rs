//! Makes many snapshots fast, for the benchmarks of 10,000 snapshots
//! (`benches/many_snapshots.sh`, `benches/forget.sh`; issue 16): a backup
//! through the command line takes about half a second, so these copy the
//! repository's newest snapshot instead, each copy an hour after the
//! last, cycling through a few hosts and tags, all pointing at the same
//! tree. The manifests are written in parallel and their copies share
//! packs (`Repository::save_snapshots`).
//!
//! Run (the repository holds at least one snapshot, made by `backup`):
//!
//!   REWIND_REPO=... REWIND_PASSWORD=... cargo bench --bench make_snapshots -- COUNT [HOSTS]
//!
//! (`cargo test --bench make_snapshots -- COUNT` for a debug build). COUNT
//! snapshots are added; HOSTS (1 unless given) hosts take turns.

use std::sync::Arc;

use rewind::{LocalBackend, Repository, Snapshot};

/// Tags cycled through, so that `tags/` has a few directories.
const TAGS: [&str; 3] = ["hourly", "nightly", "weekly"];

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let count: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| fail("usage: make_snapshots COUNT [HOSTS]"));
    let hosts: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let path = std::env::var("REWIND_REPO").unwrap_or_else(|_| fail("REWIND_REPO is not set"));
    let password = std::env::var("REWIND_PASSWORD").unwrap_or_default();
    let repo = Repository::open(Arc::new(LocalBackend::new(&path)), || {
        Ok(password.clone().into_bytes())
    })
    .unwrap_or_else(|e| fail(&format!("cannot open {path}: {e}")));
    let (repo, _) = repo
        .load_index()
        .unwrap_or_else(|e| fail(&format!("cannot load the index: {e}")));
    let template = repo
        .snapshots()
        .unwrap_or_else(|e| fail(&format!("cannot list snapshots: {e}")))
        .pop()
        .unwrap_or_else(|| fail("the repository has no snapshot to copy"));
    let snapshots = copies(&template, count, hosts);
    let started = std::time::Instant::now();
    repo.save_snapshots(&snapshots)
        .unwrap_or_else(|e| fail(&format!("cannot save snapshots: {e}")));
    eprintln!(
        "made {count} snapshots in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

/// `count` copies of `template`, an hour apart after it.
fn copies(template: &Snapshot, count: usize, hosts: usize) -> Vec<Snapshot> {
    (1..=count)
        .map(|n| Snapshot {
            time: template.time + chrono::Duration::hours(n as i64),
            host: match hosts {
                0 | 1 => template.host.clone(),
                _ => format!("host-{}", n % hosts),
            },
            tags: vec![TAGS[n % TAGS.len()].to_string()],
            parent: None,
            original: None,
            resealed_from: None,
            ..template.clone()
        })
        .collect()
}

fn fail(message: &str) -> ! {
    eprintln!("make_snapshots: {message}");
    std::process::exit(2)
}
