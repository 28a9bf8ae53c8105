//! What one step of a run did: its result, how long it took, the snapshots
//! it made or touched, and one line that says what happened, read from the
//! JSON report the step printed.

use std::time::Duration;

use serde_json::Value;

use super::child::Finished;
use super::plan::Kind;
use crate::cli::size::human_bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failure,
    Skipped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Skipped => "skipped",
        }
    }
}

pub struct Outcome {
    /// `backup:NAME`, `forget`, ..., `hook:before`, ...
    pub label: String,
    /// `backup`, `forget`, `check`, `copy`, `restore-test` or `hook`.
    pub kind: &'static str,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub duration: Duration,
    /// What it did, why it failed, or why it was skipped.
    pub detail: String,
    /// Full ids: the snapshot a backup made, those a forget forgot, the
    /// copies a copy made, the snapshot a restore test tested.
    pub snapshots: Vec<String>,
    /// The JSON documents the step printed.
    pub reports: Vec<Value>,
    /// What ran: the step's arguments, or the hook's argv.
    pub command: Vec<String>,
}

impl Outcome {
    pub fn new(label: &str, kind: &'static str, command: Vec<String>) -> Outcome {
        Outcome {
            label: label.to_string(),
            kind,
            status: Status::Skipped,
            exit_code: None,
            duration: Duration::ZERO,
            detail: String::new(),
            snapshots: Vec::new(),
            reports: Vec::new(),
            command,
        }
    }

    pub fn skipped(label: &str, kind: &'static str, command: Vec<String>, why: String) -> Outcome {
        let mut outcome = Outcome::new(label, kind, command);
        outcome.detail = why;
        outcome
    }

    /// The outcome of a step whose command ran to its end.
    pub fn of_step(label: &str, kind: Kind, command: Vec<String>, run: Finished) -> Outcome {
        let mut outcome = Outcome::new(label, kind.name(), command);
        let code = run.exit_code();
        outcome.status = if code == 0 {
            Status::Success
        } else {
            Status::Failure
        };
        outcome.exit_code = Some(code);
        outcome.duration = run.duration;
        outcome.snapshots = snapshots(kind, &run.reports);
        let said = run.reports.first().map(|report| what_it_did(kind, report));
        let ended = run.how_it_ended();
        outcome.detail = match (outcome.status, said, run.cause) {
            (Status::Success, Some(said), _) => said,
            (_, said, Some(cause)) => {
                let said = said.map(|s| format!("{s}; ")).unwrap_or_default();
                format!("{said}{ended}: {cause}")
            }
            (_, Some(said), None) => format!("{said}; {ended}"),
            (_, None, None) => ended,
        };
        outcome.reports = run.reports;
        outcome
    }
}

/// The snapshots a step's report names.
fn snapshots(kind: Kind, reports: &[Value]) -> Vec<String> {
    let Some(report) = reports.first() else {
        return Vec::new();
    };
    let texts = |values: Vec<&Value>| {
        values
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    match kind {
        Kind::Backup | Kind::RestoreTest => {
            let key = if kind == Kind::Backup {
                "id"
            } else {
                "snapshot"
            };
            texts(report.get(key).into_iter().collect())
        }
        Kind::Forget => texts(
            array(report, "groups")
                .iter()
                .flat_map(|g| array(g, "remove"))
                .map(|s| &s["id"])
                .collect(),
        ),
        Kind::Copy => texts(
            array(report, "copied")
                .iter()
                .map(|c| &c["destination"])
                .collect(),
        ),
        Kind::Check => Vec::new(),
    }
}

/// One line on what a step did, from its report (and the prune's after a
/// forget).
fn what_it_did(kind: Kind, report: &Value) -> String {
    let number = |v: &Value, key: &str| v[key].as_u64().unwrap_or(0);
    match kind {
        Kind::Backup => {
            let id = report["id"].as_str().unwrap_or("");
            let summary = &report["summary"];
            let mut line = format!(
                "snapshot {}: {} new, {} changed files; added {}",
                &id[..id.len().min(8)],
                number(summary, "files_new"),
                number(summary, "files_changed"),
                human_bytes(number(summary, "bytes_added"))
            );
            let warnings = array(report, "warnings").len();
            if warnings > 0 {
                line.push_str(&format!("; {warnings} entries not read"));
            }
            if report["suspicious"].as_bool() == Some(true) {
                line.push_str("; SUSPICIOUS (see `rewind snapshots`)");
            }
            line
        }
        Kind::Forget => {
            let groups = array(report, "groups");
            let count = |key: &str| groups.iter().map(|g| array(g, key).len()).sum::<usize>();
            let mut line = format!(
                "forgot {} snapshots, kept {}",
                count("remove"),
                count("keep")
            );
            if let Some(prune) = report.get("prune") {
                line.push_str(&format!(
                    "; pruned {} ({} pack files deleted)",
                    human_bytes(number(prune, "bytes_deleted")),
                    number(prune, "packs_deleted")
                ));
            }
            line
        }
        Kind::Check => {
            let errors = array(report, "errors");
            let damaged = report["damaged_packs"].as_object().map_or(0, |m| m.len());
            let checked = format!(
                "{} snapshots, {} packs checked",
                number(report, "snapshots"),
                number(report, "packs")
            );
            match (errors.first(), damaged) {
                (None, 0) => format!("{checked}: no errors"),
                (first, _) => format!(
                    "{checked}: {} errors, {damaged} damaged packs{}",
                    errors.len(),
                    first
                        .and_then(Value::as_str)
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default()
                ),
            }
        }
        Kind::Copy => format!(
            "{} snapshots copied, {} there already",
            array(report, "copied").len(),
            number(report, "present")
        ),
        Kind::RestoreTest => {
            let snapshot = report["snapshot"].as_str().unwrap_or("");
            let failed: Vec<&str> = array(report, "checks")
                .iter()
                .filter(|c| !array(c, "failures").is_empty())
                .filter_map(|c| c["name"].as_str())
                .collect();
            let verdict = if failed.is_empty() {
                "OK".to_string()
            } else {
                format!("FAILED: {}", failed.join(", "))
            };
            format!(
                "snapshot {}: {} files checked, {verdict}",
                &snapshot[..snapshot.len().min(8)],
                number(report, "files_checked")
            )
        }
    }
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_say_what_each_step_did() {
        let backup = json!({"id": "0123456789abcdef", "summary": {"files_new": 3, "files_changed": 1, "bytes_added": 2048}, "warnings": []});
        assert_eq!(
            what_it_did(Kind::Backup, &backup),
            "snapshot 01234567: 3 new, 1 changed files; added 2.0 KiB"
        );
        assert_eq!(snapshots(Kind::Backup, &[backup]), ["0123456789abcdef"]);
        let forget =
            json!({"groups": [{"keep": [{"id": "k"}], "remove": [{"id": "a"}, {"id": "b"}]}]});
        assert_eq!(
            what_it_did(Kind::Forget, &forget),
            "forgot 2 snapshots, kept 1"
        );
        assert_eq!(snapshots(Kind::Forget, &[forget]), ["a", "b"]);
        let pruned = json!({"groups": [], "prune": {"bytes_deleted": 4096, "packs_deleted": 2}});
        assert_eq!(
            what_it_did(Kind::Forget, &pruned),
            "forgot 0 snapshots, kept 0; pruned 4.0 KiB (2 pack files deleted)"
        );
        let check =
            json!({"snapshots": 2, "packs": 5, "errors": ["tree x missing"], "damaged_packs": {}});
        assert_eq!(
            what_it_did(Kind::Check, &check),
            "2 snapshots, 5 packs checked: 1 errors, 0 damaged packs (first: tree x missing)"
        );
    }
}
