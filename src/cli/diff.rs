use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use indicatif::HumanBytes;
use rewind::split_selector;
use rewind::Repository;
use rewind::{diff, diff_each, Change, DiffOptions, DiffOutcome, Side};

use super::interrupt::{cancel_on_signals, is_interrupted, EXIT_INTERRUPTED};
use super::{FilterArgs, Global};

#[derive(clap::Args)]
#[command(after_help = "\
Each side is SNAP[:PATH] (latest, an id prefix, @TIME) or a directory on this machine, a \
mounted snapshot included. A side that starts with /, ./ or ../, or is not a selector, is a \
directory: write ./latest for a directory named latest.

Output: one line per entry, `+` added in B, `-` removed, `M` content changed (and metadata), \
`T` type changed, `U` only metadata changed (with --metadata). A file of a snapshot B rewritten \
with incompressible content (what encryption by ransomware leaves) is marked `incompressible`.

Exit status: 0 when A and B are the same, 1 when they differ, 2 on trouble.")]
pub struct Args {
    /// SNAP[:PATH] or a directory
    a: String,
    /// SNAP[:PATH] or a directory
    b: String,
    /// Compare mode, owner, modification time and extended attributes too
    #[arg(long)]
    metadata: bool,
    /// Print the changes and a summary as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

/// A side as given on the command line.
enum Spec {
    Snapshot(String),
    Local(PathBuf),
}

fn classify(text: &str) -> Spec {
    let explicit_path = text.starts_with('/')
        || text.starts_with("./")
        || text.starts_with("../")
        || text == "."
        || text == "..";
    if !explicit_path && split_selector(text).is_ok() {
        Spec::Snapshot(text.to_string())
    } else {
        Spec::Local(PathBuf::from(text))
    }
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    match compare(global, args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("rewind: {}", super::describe(&e));
            Ok(ExitCode::from(if is_interrupted(&e) {
                EXIT_INTERRUPTED
            } else {
                2
            }))
        }
    }
}

fn compare(global: &Global, args: &Args) -> Result<ExitCode> {
    let specs = [classify(&args.a), classify(&args.b)];
    let needs_repo = specs.iter().any(|s| matches!(s, Spec::Snapshot(_)));
    let repo: Option<Arc<Repository>> = if needs_repo {
        Some(global.open_with_index()?)
    } else {
        None
    };
    let mut labels = Vec::new();
    let mut sides = Vec::new();
    for spec in &specs {
        match spec {
            Spec::Snapshot(text) => {
                let repo = repo.as_deref().expect("opened for snapshot sides");
                let (snapshot, path) = super::select(repo, text, &args.filter)?;
                labels.push(format!(
                    "{} ({}){}",
                    snapshot.id.short(),
                    snapshot.time_label(),
                    if path.is_empty() {
                        String::new()
                    } else {
                        format!(":{path}")
                    }
                ));
                sides.push(Side::Snapshot {
                    repo,
                    tree: snapshot.tree,
                    path,
                });
            }
            Spec::Local(path) => {
                labels.push(path.display().to_string());
                sides.push(Side::Local(path.clone()));
            }
        }
    }
    let options = DiffOptions {
        metadata: args.metadata,
        cancel: cancel_on_signals(),
        limits: global.expansion_limits(),
        ..DiffOptions::default()
    };
    let context = || format!("cannot compare {} with {}", labels[0], labels[1]);
    let outcome = if args.json {
        let report = diff(&sides[0], &sides[1], &options).map_err(|e| e.context(context()))?;
        log_errors(&report.errors);
        super::print_json(&serde_json::json!({
            "a": labels[0],
            "b": labels[1],
            "equal": report.is_equal(),
            "changes": report.changes,
            "errors": report.errors,
            "errors_not_listed": report.errors_not_listed,
            "summary": report.summary,
        }))?;
        DiffOutcome {
            errors: report.errors,
            errors_not_listed: report.errors_not_listed,
            summary: report.summary,
        }
    } else {
        // Each change is printed as soon as it is known: a diff of a
        // million files holds none of them.
        let mut out = std::io::BufWriter::new(std::io::stdout());
        let outcome = diff_each(&sides[0], &sides[1], &options, &mut |change| {
            print_change(&mut out, &change)
                .map_err(|e| rewind::Error::io("cannot write the changes", e))
        })
        .map_err(|e| e.context(context()))?;
        out.flush()?;
        log_errors(&outcome.errors);
        global.tell(summary(&outcome, &labels));
        outcome
    };
    Ok(ExitCode::from(if outcome.failed() > 0 {
        2
    } else if outcome.summary.is_equal() {
        0
    } else {
        1
    }))
}

fn log_errors(errors: &[String]) {
    for error in errors {
        rewind::log::error(error);
    }
}

/// A change as one line of text.
fn print_change(out: &mut impl Write, change: &Change) -> std::io::Result<()> {
    write!(out, "{}  {}", change.change.symbol(), change.path)?;
    let mut details = change.details.clone();
    if change.incompressible {
        details.push("incompressible".into());
    }
    if !details.is_empty() {
        write!(out, "  ({})", details.join(", "))?;
    }
    writeln!(out)
}

fn summary(outcome: &DiffOutcome, labels: &[String]) -> String {
    let s = &outcome.summary;
    let mut line = if s.is_equal() {
        format!("{} and {} are the same", labels[0], labels[1])
    } else {
        format!(
            "{} added, {} removed, {} modified, {} changed type, {} changed metadata",
            s.added, s.removed, s.modified, s.type_changed, s.metadata
        )
    };
    if s.incompressible > 0 {
        line += &format!(
            " ({} rewritten with incompressible content)",
            s.incompressible
        );
    }
    line += &format!("; {} entries compared", s.entries_compared);
    if s.trees_skipped > 0 {
        line += &format!(", {} unchanged directories skipped", s.trees_skipped);
    }
    if s.files_read > 0 {
        line += &format!(
            ", {} files read ({})",
            s.files_read,
            HumanBytes(s.bytes_read)
        );
    }
    if outcome.failed() > 0 {
        line += &format!("; {} entries could not be compared", outcome.failed());
        if outcome.errors_not_listed > 0 {
            line += &format!(" ({} of them not listed)", outcome.errors_not_listed);
        }
    }
    line
}
