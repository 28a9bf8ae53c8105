//! `rewind log`: the audit trail, oldest first, one line per record (or
//! JSON), filtered by time, host and command.

use std::process::ExitCode;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use rewind::{parse_duration, parse_time_period, AuditFile};

use super::size::human_bytes;
use super::Global;

/// How many snapshot ids one line names before it counts the rest.
const SNAPSHOTS_NAMED: usize = 3;

#[derive(clap::Args)]
#[command(after_help = "\
Each line: the time the command started (UTC), the host and user that ran it, the command, \
ok or FAILED with its exit status, how long it took, the snapshots and bytes involved, the \
command line (without secrets) and, for a failure, why it failed.")]
pub struct Args {
    /// Only records of commands started since TIME: an ISO 8601 time or a
    /// prefix of one (2024-06, 2024-06-01T02), from the start of the period
    /// it names, or a duration back from now (90m, 12h, 7d, 2w)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only records written on this host
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
    /// Only records of this command (`key` also takes in `key add` and the
    /// other key commands)
    #[arg(long, value_name = "COMMAND")]
    command: Option<String>,
    /// Print JSON: an array of the records, each with its file and digest
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let repo = global.open()?;
    let trail = repo.audit_trail()?;
    for (name, e) in &trail.unreadable {
        rewind::log::warn(&format!(
            "audit record audit/{name} does not read and is left out: {e} (run `rewind check`)"
        ));
    }
    let shown: Vec<&AuditFile> = trail
        .records
        .iter()
        .filter(|f| args.accepts(f, since))
        .collect();
    if args.json {
        let values: Vec<serde_json::Value> = shown.iter().map(|f| json(f)).collect();
        super::print_json(&values)?;
    } else {
        for file in shown {
            println!("{}", line(file));
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl Args {
    fn accepts(&self, file: &AuditFile, since: Option<DateTime<Utc>>) -> bool {
        let entry = &file.record.entry;
        let command_matches = |wanted: &String| {
            entry.command == *wanted
                || entry
                    .command
                    .strip_prefix(wanted.as_str())
                    .is_some_and(|rest| rest.starts_with(' '))
        };
        since.is_none_or(|since| entry.time >= since)
            && self.host.as_ref().is_none_or(|host| entry.host == *host)
            && self.command.as_ref().is_none_or(command_matches)
    }
}

/// `--since`: a duration back from now (a number and its unit), or the
/// start of the period an ISO 8601 prefix names.
fn parse_since(text: &str) -> Result<DateTime<Utc>> {
    let is_duration = text
        .strip_suffix(['s', 'm', 'h', 'd', 'w'])
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if is_duration {
        let back = chrono::Duration::from_std(parse_duration(text)?)?;
        return Ok(Utc::now() - back);
    }
    match parse_time_period(text) {
        Some((start, _, used)) if used == text.len() => Ok(start),
        _ => bail!(
            "--since {text}: not a time (like 2024-06-01 or 2024-06-01T02:00:00Z) \
             nor a duration (like 7d or 12h)"
        ),
    }
}

/// A record as JSON: its fields, its file and its digest.
fn json(file: &AuditFile) -> serde_json::Value {
    let mut value = serde_json::to_value(&file.record).expect("audit records serialize");
    value["file"] = format!("audit/{}", file.name).into();
    value["digest"] = file.digest.to_hex().into();
    value
}

/// A record on one line.
fn line(file: &AuditFile) -> String {
    let entry = &file.record.entry;
    let mut fields = vec![
        entry
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        entry.host.clone(),
        entry.user.clone(),
        entry.command.clone(),
        if entry.failed() {
            format!("FAILED (exit {})", entry.exit_code)
        } else {
            "ok".to_string()
        },
        format!("{:.1}s", entry.duration_secs),
    ];
    if let Some(snapshots) = snapshots(&entry.snapshots) {
        fields.push(snapshots);
    }
    let bytes = &entry.bytes;
    let moved: Vec<String> = [
        ("read", bytes.read),
        ("written", bytes.written),
        ("restored", bytes.restored),
        ("deleted", bytes.deleted),
    ]
    .into_iter()
    .filter_map(|(what, n)| Some(format!("{what} {}", human_bytes(n?))))
    .collect();
    if !moved.is_empty() {
        fields.push(moved.join(", "));
    }
    fields.push(format!("[rewind {}]", entry.arguments.join(" ")));
    if let Some(error) = &entry.error {
        fields.push(format!("error: {error}"));
    }
    fields.join("  ")
}

fn snapshots(ids: &[rewind::Id]) -> Option<String> {
    let named: Vec<String> = ids
        .iter()
        .take(SNAPSHOTS_NAMED)
        .map(|id| id.short())
        .collect();
    let word = match ids.len() {
        0 => return None,
        1 => "snapshot",
        _ => "snapshots",
    };
    let more = match ids.len().saturating_sub(SNAPSHOTS_NAMED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Some(format!("{word} {}{more}", named.join(", ")))
}
