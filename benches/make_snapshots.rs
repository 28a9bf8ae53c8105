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
//! snapshots are added; HOSTS (1 unless given) hosts take turns. Without
//! COUNT (as `cargo test --all-targets` runs it) it checks itself: 200
//! snapshots made in a scratch repository are all listed, by the library
//! and by `rewind snapshots`.

use std::sync::Arc;

use rewind::{LocalBackend, Repository, Snapshot};

/// Tags cycled through, so that `tags/` has a few directories.
const TAGS: [&str; 3] = ["hourly", "nightly", "weekly"];

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let Some(count) = args.next() else {
        return check_itself();
    };
    let count: usize = count
        .parse()
        .unwrap_or_else(|_| fail("usage: make_snapshots COUNT [HOSTS]"));
    let hosts: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let path = std::env::var("REWIND_REPO").unwrap_or_else(|_| fail("REWIND_REPO is not set"));
    let password = std::env::var("REWIND_PASSWORD").unwrap_or_default();
    make(&path, &password, count, hosts);
}

/// Adds `count` snapshots to the repository at `path`.
fn make(path: &str, password: &str, count: usize, hosts: usize) {
    let password = password.to_string();
    let repo = Repository::open(Arc::new(LocalBackend::new(path)), || {
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

/// Makes 200 snapshots (3 hosts) in a scratch repository with one backup,
/// and fails unless `rewind snapshots` then lists all 201.
fn check_itself() {
    const COUNT: usize = 200;
    let scratch = tempfile::tempdir().unwrap_or_else(|e| fail(&format!("no scratch dir: {e}")));
    let repo = scratch.path().join("repo");
    let source = scratch.path().join("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("file"), b"one file").unwrap();
    let rewind = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rewind"))
            .arg("--repo")
            .arg(&repo)
            .args(args)
            .env("REWIND_PASSWORD", "make snapshots")
            .output()
            .unwrap_or_else(|e| fail(&format!("cannot run rewind: {e}")));
        if !out.status.success() {
            fail(&format!(
                "rewind {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        out.stdout
    };
    rewind(&["init"]);
    rewind(&["backup", source.to_str().unwrap()]);
    make(repo.to_str().unwrap(), "make snapshots", COUNT, 3);
    let listed: serde_json::Value = serde_json::from_slice(&rewind(&["snapshots", "--json"]))
        .unwrap_or_else(|e| fail(&format!("snapshots --json: {e}")));
    let listed = listed.as_array().map_or(0, Vec::len);
    if listed != COUNT + 1 {
        fail(&format!("{listed} snapshots listed, {} made", COUNT + 1));
    }
    eprintln!("make_snapshots: {listed} snapshots listed, as made");
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
