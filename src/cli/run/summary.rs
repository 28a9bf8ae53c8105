//! The one summary a run ends with: a line per step (its result, its
//! time, what it did or why it failed or was skipped), as text or JSON.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use rewind::LoadedProfile;

use super::outcome::{Outcome, Status};

/// The run as a whole.
pub struct Run<'a> {
    pub loaded: &'a LoadedProfile,
    pub started: DateTime<Utc>,
    pub duration: Duration,
    pub interrupted: bool,
    pub outcomes: &'a [Outcome],
}

impl Run<'_> {
    pub fn failed(&self) -> Vec<&str> {
        failed(self.outcomes)
    }

    pub fn succeeded(&self) -> bool {
        !self.interrupted && self.failed().is_empty()
    }

    /// The first line of the summary.
    pub fn headline(&self) -> String {
        let failed = self.failed();
        let steps = self.outcomes.len();
        let verdict = match (self.interrupted, failed.is_empty()) {
            (true, _) => "interrupted".to_string(),
            (false, true) => "success".to_string(),
            (false, false) => format!("{} failed", failed.join(", ")),
        };
        format!(
            "profile {} ({}): {verdict}; {steps} steps in {}",
            self.loaded.name,
            self.loaded.path.display(),
            seconds(self.duration)
        )
    }

    pub fn text(&self) -> String {
        let width = self
            .outcomes
            .iter()
            .map(|o| o.label.len())
            .max()
            .unwrap_or(0);
        let mut text = self.headline();
        text.push('\n');
        for outcome in self.outcomes {
            let status = match outcome.status {
                Status::Success => "ok",
                Status::Failure => "FAILED",
                Status::Skipped => "skipped",
            };
            let time = match outcome.status {
                Status::Skipped => String::new(),
                _ => seconds(outcome.duration),
            };
            let line = format!(
                "  {status:<7} {time:>7}  {:<width$}  {}",
                outcome.label, outcome.detail
            );
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    pub fn json(&self) -> Value {
        let labels = |status: Status| -> Vec<&str> {
            self.outcomes
                .iter()
                .filter(|o| o.status == status)
                .map(|o| o.label.as_str())
                .collect()
        };
        let snapshots: Vec<&String> = self
            .outcomes
            .iter()
            .filter(|o| o.kind == "backup")
            .flat_map(|o| &o.snapshots)
            .collect();
        let steps: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                json!({
                    "step": o.label,
                    "kind": o.kind,
                    "result": o.status.name(),
                    "exit_code": o.exit_code,
                    "duration_secs": o.duration.as_secs_f64(),
                    "detail": o.detail,
                    "snapshots": o.snapshots,
                    "command": o.command,
                    "reports": o.reports,
                })
            })
            .collect();
        json!({
            "profile": self.loaded.name,
            "file": self.loaded.path,
            "result": if self.succeeded() { "success" } else { "failure" },
            "interrupted": self.interrupted,
            "started": self.started.to_rfc3339_opts(SecondsFormat::Secs, true),
            "duration_secs": self.duration.as_secs_f64(),
            "failed_steps": labels(Status::Failure),
            "skipped_steps": labels(Status::Skipped),
            "snapshots": snapshots,
            "steps": steps,
        })
    }
}

/// The labels of the outcomes that failed.
pub fn failed(outcomes: &[Outcome]) -> Vec<&str> {
    outcomes
        .iter()
        .filter(|o| o.status == Status::Failure)
        .map(|o| o.label.as_str())
        .collect()
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}
