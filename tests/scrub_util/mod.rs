//! Helpers for the scrub fault-injection tests: repositories built once per
//! test binary by the real binary and copied for each test, a model of what
//! every pack holds and which paths need it (read with the library from the
//! pristine repository), faults applied to files, and the scrub report's
//! findings. Built on `crate::common`: a test file that declares
//! `mod scrub_util;` declares `mod common;` too.

// Each test file is its own crate and uses only some of these helpers; the
// rest would be reported as dead code in every one of them.
#![allow(dead_code)]

mod faults;
mod fixture;
mod foreground;
mod model;
mod restore;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::Path;

use serde_json::Value;

use crate::common::{all_paths, Repo, Run};

// Re-exported so that test files `use` one path; a test file that uses
// nothing of one module would otherwise be told its import is unused.
#[allow(unused_imports)]
pub use self::{faults::*, fixture::*, foreground::*, model::*, restore::*};

/// The recorded times of the three backups of every fixture.
pub const DAYS: [&str; 3] = [
    "2024-06-01T02:00:00Z",
    "2024-06-02T02:00:00Z",
    "2024-06-03T02:00:00Z",
];

/// The parity of the parity fixture, in percent.
pub const PARITY: u32 = 10;

/// Fails the test if a run of the binary panicked.
#[track_caller]
pub fn assert_no_panic(what: &str, stderr: &str) {
    assert!(!stderr.contains("panicked"), "`{what}` panicked:\n{stderr}");
}

/// `rewind ARGS...`, not checked except that nothing panicked.
#[track_caller]
pub fn rewind<I, S>(repo: &Repo, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let run = repo.run(args);
    assert_no_panic(&run.what, &run.stderr);
    run
}

/// `rewind scrub --json --state STATE EXTRA...`, which must exit with
/// `code` and print a report; the report.
#[track_caller]
pub fn scrub(repo: &Repo, state: &Path, extra: &[&str], code: i32) -> Value {
    let mut args: Vec<OsString> = vec!["scrub".into(), "--json".into(), "--state".into()];
    args.push(state.into());
    args.extend(extra.iter().map(OsString::from));
    rewind(repo, args).assert_code(code).json()
}

/// The findings of a scrub report by repository file (`data/ab/ab…`).
#[track_caller]
pub fn findings(report: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for f in report["findings"].as_array().expect("a findings array") {
        let file = f["file"].as_str().expect("a file").to_string();
        assert!(
            out.insert(file.clone(), f.clone()).is_none(),
            "{file} is reported twice: {report:#}"
        );
    }
    out
}

/// Asserts that the report's findings are exactly `files`, each with `status`.
#[track_caller]
pub fn assert_findings(report: &Value, files: &BTreeSet<String>, status: &str, context: &str) {
    let found = findings(report);
    let names: BTreeSet<String> = found.keys().cloned().collect();
    assert_eq!(
        &names, files,
        "{context}: the scrub must report exactly the damaged files:\n{report:#}"
    );
    for (file, f) in &found {
        assert_eq!(
            f["status"], status,
            "{context}: {file} should be {status}:\n{f:#}"
        );
    }
}

/// A finding's affected paths: snapshot time (found through `snapshots`)
/// → paths.
#[track_caller]
pub fn affected_by_time(
    finding: &Value,
    snapshots: &[Value],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let Some(map) = finding["affected"].as_object() else {
        return out;
    };
    for (short, paths) in map {
        let snapshot = snapshots
            .iter()
            .find(|s| s["short_id"] == short.as_str())
            .unwrap_or_else(|| panic!("the finding names an unknown snapshot {short}"));
        let paths: BTreeSet<String> = paths
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        out.insert(snapshot["time"].as_str().unwrap().to_string(), paths);
    }
    out
}

/// Every file under `dir`, relative to it (`data/ab/ab…`), sorted.
pub fn files_under(dir: &Path) -> BTreeSet<String> {
    all_paths(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| p.strip_prefix(dir).unwrap().to_str().unwrap().to_string())
        .collect()
}
