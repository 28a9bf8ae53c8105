use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use rewind::{backup, BackupOptions, CommandOutput, LockKind, Source};

use super::Global;

/// The snapshot was saved, but some entries are missing or changed while read.
const EXIT_INCOMPLETE: u8 = 3;
/// The snapshot was saved, and it looks like ransomware encrypted files
/// since the last one (`rewind::Suspicion`); before any exit 3.
const EXIT_SUSPICIOUS: u8 = 5;

#[derive(clap::Args)]
pub struct Args {
    /// Files and directories to back up (kept in the snapshot under their absolute paths)
    #[arg(required_unless_present = "stdin_name", conflicts_with = "stdin_name")]
    paths: Vec<PathBuf>,
    /// Read standard input and store it as this path in the snapshot
    #[arg(long, value_name = "NAME")]
    stdin_name: Option<String>,
    /// Run COMMAND and store its output as --stdin-name instead of standard
    /// input; a command that exits non-zero or is killed leaves no snapshot.
    /// Last on the line: every word after it is the command's
    #[arg(
        long,
        value_name = "COMMAND",
        num_args = 1..,
        allow_hyphen_values = true,
        requires = "stdin_name",
        conflicts_with = "paths"
    )]
    stdin_command: Vec<String>,
    /// Host name recorded in the snapshot (default: this machine's)
    #[arg(long)]
    host: Option<String>,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Record this time (RFC 3339) instead of now
    #[arg(long, value_name = "RFC3339")]
    time: Option<String>,
    /// Skip entries matching this glob (repeatable); with a '/' it matches the whole path
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Do not descend into other filesystems
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Print the snapshot as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let time = args
        .time
        .as_deref()
        .map(|t| DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc)))
        .transpose()
        .with_context(|| {
            format!(
                "--time {} is not an RFC 3339 time (like 2024-06-01T02:00:00Z)",
                args.time.as_deref().unwrap_or("")
            )
        })?;
    for path in &args.paths {
        if let Err(e) = std::fs::symlink_metadata(path) {
            bail!("cannot back up {}: {e}", path.display());
        }
    }
    // Locked before the index is read, so that the lock's start time is
    // no later than anything this backup may rely on.
    let (repo, lock) = global.open_locked(LockKind::Shared, "backup")?;
    let repo = super::load_index(repo)?;
    let shown = global.show_progress("backup", args.json);
    let options = BackupOptions {
        host: args.host.clone().unwrap_or_else(rewind::hostname),
        tags: args.tags.clone(),
        time,
        excludes: args.excludes.clone(),
        one_file_system: args.one_file_system,
        progress: shown.progress(),
    };
    let source = match &args.stdin_name {
        Some(name) => Source::Stream {
            path: name.clone(),
            reader: match args.stdin_command.as_slice() {
                [] => Box::new(std::io::stdin()),
                argv => Box::new(CommandOutput::spawn(argv)?),
            },
        },
        None => Source::Paths(args.paths.clone()),
    };
    let outcome = backup(repo, source, &options, Some(&lock));
    drop(shown);
    let outcome = outcome?;
    let snapshot = &outcome.snapshot;
    let suspicious = outcome.suspicion.as_ref().is_some_and(|s| s.suspicious);
    global.trail().snapshot(snapshot.id);
    global.trail().bytes(|b| {
        b.read = Some(snapshot.summary.bytes_read);
        b.written = Some(snapshot.summary.bytes_added);
    });
    if args.json {
        let mut value = serde_json::to_value(snapshot)?;
        value["id"] = snapshot.id.to_hex().into();
        value["warnings"] = outcome.warnings.clone().into();
        value["suspicious"] = suspicious.into();
        value["suspicion"] = serde_json::to_value(&outcome.suspicion)?;
        super::print_json(&value)?;
    } else {
        let s = &snapshot.summary;
        global.tell(format_args!(
            "files: {} new, {} changed, {} unchanged; dirs: {}; read {}, added {} in {:.1}s",
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            s.dirs,
            indicatif::HumanBytes(s.bytes_read),
            indicatif::HumanBytes(s.bytes_added),
            s.duration_secs
        ));
        println!("{}", snapshot.id);
    }
    if !outcome.warnings.is_empty() {
        let why = format!(
            "snapshot {} saved, but {} entries could not be read (they are missing from it) or changed while read (they are stored as read)",
            snapshot.id.short(),
            outcome.warnings.len()
        );
        eprintln!("rewind: {why}; see the warnings above");
        global.trail().failure(why);
    }
    match &outcome.suspicion {
        Some(suspicion) if suspicion.suspicious => {
            let parent = snapshot.parent.map_or("PARENT".into(), |p| p.short());
            let id = snapshot.id.short();
            eprintln!(
                "rewind: warning: snapshot {id} may hold files encrypted by ransomware: {}. \
                 `rewind diff {parent} {id}` names the files rewritten since the snapshot before it",
                suspicion.describe()
            );
            Ok(ExitCode::from(EXIT_SUSPICIOUS))
        }
        _ if !outcome.warnings.is_empty() => Ok(ExitCode::from(EXIT_INCOMPLETE)),
        _ => Ok(ExitCode::SUCCESS),
    }
}
