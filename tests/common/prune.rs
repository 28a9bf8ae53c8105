//! Running `prune` and looking at what it leaves: its JSON report, the
//! pack files and deletion plans on disk (`man/rewind-format.5`, DELETION
//! PLANS), and the checks every prune test ends with.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::binary::Repo;
use super::command::Run;
use super::files::walk;

impl Repo {
    /// `rewind prune --json ARGS...`, which must succeed; its report.
    #[track_caller]
    pub fn prune(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["prune", "--json"];
        all.extend_from_slice(args);
        self.run(all).assert_ok().json()
    }

    /// `rewind check --read-data`, which must pass.
    #[track_caller]
    pub fn check_read_data(&self) {
        self.run(["check", "--read-data"]).assert_ok();
    }

    /// The names of the pack files under `data/`.
    pub fn pack_files(&self) -> BTreeSet<String> {
        names_under(&self.path.join("data"))
    }

    /// The names of the deletion plans under `deletions/`.
    pub fn deletion_plan_files(&self) -> BTreeSet<String> {
        names_under(&self.path.join("deletions"))
    }

    /// Every file of the repository but its locks and audit records (with
    /// their parity; every command that writes or reads data adds a
    /// record, even one that fails): path → (size, mtime in nanoseconds),
    /// to tell whether a command changed anything else.
    pub fn listing(&self) -> BTreeMap<String, (u64, i128)> {
        walk(&self.path)
            .into_iter()
            .filter(|p| p.is_file())
            .map(|p| {
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let rel = p.strip_prefix(&self.path).unwrap().display().to_string();
                let mtime = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
                (rel, (meta.len(), mtime))
            })
            .filter(|(rel, _)| {
                !["locks/", "audit/", "parity/audit."]
                    .iter()
                    .any(|dir| rel.starts_with(dir))
            })
            .collect()
    }

    /// `du -sb` of the repository.
    pub fn disk_usage(&self) -> u64 {
        let out = super::command::run(std::process::Command::new("du").arg("-sb").arg(&self.path))
            .assert_ok()
            .text();
        out.split_whitespace().next().unwrap().parse().unwrap()
    }
}

/// The names of the repository files anywhere under `dir` (none if it is
/// missing): named by their hash, so not a file being written.
fn names_under(dir: &Path) -> BTreeSet<String> {
    if !dir.exists() {
        return BTreeSet::new();
    }
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// The JSON documents a run printed one after the other (`forget --prune
/// --json` prints forget's, then prune's).
#[track_caller]
pub fn json_documents(run: &Run) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_slice(&run.stdout)
        .into_iter::<serde_json::Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            panic!(
                "`{}` did not print JSON documents ({e}):\n{}",
                run.what,
                run.text()
            )
        })
}

/// A number of a prune report.
#[track_caller]
pub fn number(report: &serde_json::Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in the prune report {report:#}"))
}

/// The report of a prune that had nothing left to do: nothing deleted,
/// repacked or waiting, nothing unindexed.
#[track_caller]
pub fn assert_nothing_to_do(report: &serde_json::Value, what: &str) {
    for field in [
        "packs_unused",
        "packs_repacked",
        "packs_written",
        "packs_unindexed",
        "packs_rescued",
        "packs_deleted",
        "blobs_missing",
    ] {
        assert_eq!(number(report, field), 0, "{what}: {field} in {report:#}");
    }
    assert_eq!(
        report["plans_waiting"],
        serde_json::json!([]),
        "{what}: {report:#}"
    );
}
