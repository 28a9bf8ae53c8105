//! Progress with the real binary and stderr a pipe (as under cron or
//! journald): a plain line now and then for backup and restore, JSON lines
//! with `--json` while stdout keeps its one document, and nothing at all
//! with `--quiet` but warnings. `REWIND_PROGRESS_INTERVAL` makes "now and
//! then" every 10 ms instead of every 10 s.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use rewind::Encryption;
use serde_json::Value;

/// Enough data that a backup or a restore takes many intervals.
const BIG_FILE: usize = 48 << 20;

/// A repository and a tree of one large file and a few small ones.
fn repository_and_source(dir: &Path, test: &str) -> (Repo, std::path::PathBuf) {
    let mut rng = Rng::new(seed(test));
    let src = dir.join("src");
    mkdirs(&src);
    write(&src.join("large"), &rng.bytes(BIG_FILE));
    for i in 0..20 {
        write(&src.join(format!("small-{i}")), &rng.bytes(10_000));
    }
    (Repo::init(&dir.join("repo"), Encryption::Aes256Gcm), src)
}

/// `rewind ARGS...` with a short progress interval, stderr a pipe.
fn run_often(repo: &Repo, args: &[&str]) -> Run {
    let mut cmd: Command = repo.command();
    cmd.env("REWIND_PROGRESS_INTERVAL", "0.01").args(args);
    run(&mut cmd).assert_ok()
}

/// The lines of stderr that start with `prefix`.
fn lines_starting<'a>(run: &'a Run, prefix: &str) -> Vec<&'a str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with(prefix))
        .collect()
}

#[test]
fn backup_and_restore_print_plain_lines_on_a_pipe() {
    let (_tmp, dir) = tempdir();
    let (repo, src) = repository_and_source(&dir, "progress lines");
    let src_arg = src.to_str().unwrap();

    let run = run_often(&repo, &["backup", src_arg]);
    let lines = lines_starting(&run, "backup: ");
    assert!(!lines.is_empty(), "no progress lines:\n{}", run.stderr);
    assert!(
        lines.iter().all(|l| l.contains(" files")),
        "files in every line:\n{}",
        run.stderr
    );
    // A first backup has no total: what it read, and its rate once measured.
    assert!(
        lines.iter().any(|l| l.contains("MiB")) && !run.stderr.contains(" of "),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\x1b') && !run.stderr.contains('\r'),
        "no bar is drawn on a pipe:\n{:?}",
        run.stderr
    );

    let target = dir.join("target");
    let target_arg = target.to_str().unwrap();
    let run = run_often(&repo, &["restore", "latest", "--target", target_arg]);
    let lines = lines_starting(&run, "restore: ");
    assert!(!lines.is_empty(), "no progress lines:\n{}", run.stderr);
    // A restore knows its total from the start: done of how much, and a share.
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" of 21 files") && l.contains('%')),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("restored 21 files"), "{}", run.stderr);

    // The next backup takes the first one's totals as its estimate.
    let mut rng = Rng::new(seed("progress lines, again"));
    write(&src.join("large"), &rng.bytes(BIG_FILE));
    let run = run_often(&repo, &["backup", src_arg]);
    let lines = lines_starting(&run, "backup: ");
    assert!(!lines.is_empty(), "no progress lines:\n{}", run.stderr);
    assert!(
        lines.iter().all(|l| l.contains(" of ~21 files")),
        "{}",
        run.stderr
    );
}

#[test]
fn quiet_prints_nothing_on_stderr_on_success_but_warnings() {
    let (_tmp, dir) = tempdir();
    let (repo, src) = repository_and_source(&dir, "progress quiet");
    let src_arg = src.to_str().unwrap();

    let run = run_often(&repo, &["--quiet", "backup", src_arg]);
    assert_eq!(run.stderr, "", "backup --quiet");
    let id = run.text().trim().to_string();
    assert_eq!(id.len(), 64, "the snapshot id still goes to stdout: {id:?}");

    let target = dir.join("target");
    let target_arg = target.to_str().unwrap();
    let run = run_often(&repo, &["-q", "restore", "latest", "--target", target_arg]);
    assert_eq!(run.stderr, "", "restore -q");
    assert_eq!(
        std::fs::read(under(&target, &src).join("large"))
            .unwrap()
            .len(),
        BIG_FILE
    );

    // A pack that no index names is worth a warning, quiet or not.
    let stray = repo.path.join("data/ab").join("ab".repeat(32));
    mkdirs(stray.parent().unwrap());
    write(&stray, b"left by an interrupted backup");
    let run = run_often(&repo, &["check", "--read-data", "-q"]);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "only the warning:\n{}", run.stderr);
    assert!(lines[0].starts_with("warning: "), "{}", run.stderr);
}

#[test]
fn json_progress_goes_to_stderr_and_stdout_stays_one_document() {
    let (_tmp, dir) = tempdir();
    let (repo, src) = repository_and_source(&dir, "progress json");
    let src_arg = src.to_str().unwrap();

    let run = run_often(&repo, &["backup", "--json", src_arg]);
    let snapshot = run.json();
    assert_eq!(snapshot["summary"]["files_new"], 21, "{snapshot:#}");
    let lines = json_lines(&run, "backup");
    assert!(lines.iter().all(|l| l["files_done"].is_u64()), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l["bytes_done"].as_u64() > Some(0)),
        "{lines:#?}"
    );

    let target = dir.join("target");
    let target_arg = target.to_str().unwrap();
    let run = run_often(
        &repo,
        &["restore", "latest", "--target", target_arg, "--json"],
    );
    assert_eq!(run.json()["report"]["files"], 21);
    let lines = json_lines(&run, "restore");
    let total = lines[0]["bytes_total"].as_u64().unwrap();
    assert!(total >= BIG_FILE as u64, "{lines:#?}");
    assert!(
        lines
            .iter()
            .all(|l| l["files_total"] == 21 && l["bytes_total"] == total),
        "{lines:#?}"
    );
}

/// Every line of a `--json` run's stderr, each a JSON object about `command`;
/// at least one.
#[track_caller]
fn json_lines(run: &Run, command: &str) -> Vec<Value> {
    let lines: Vec<Value> = run
        .stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{}", run.stderr))
        })
        .collect();
    assert!(!lines.is_empty(), "no progress lines:\n{}", run.stderr);
    for line in &lines {
        assert_eq!(line["progress"], command, "{line}");
        for key in ["stage", "bytes_done", "bytes_total", "elapsed_s", "eta_s"] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
    }
    lines
}
