//! A prune killed (SIGKILL) at each of its steps (`REWIND_CRASH_AT`, see
//! src/testing.rs and docs/design.md section 7, crash safety) leaves a
//! repository that `check --read-data` passes and whose snapshots restore
//! byte for byte; the next prune finishes the job, so that the one after
//! has nothing left to do and no deletion plan is left.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use common::*;

/// Every prune here repacks too, so that each step has work to do.
const PRUNE: [&str; 2] = ["--max-unused", "0%"];

fn prune_killed_at(point: &str) {
    let (_tmp, dir) = tempdir();
    let history = History::build(&dir, &format!("prune crash {point}"), 5, &[]);
    let repo = &history.repo;
    repo.run(["forget", "--keep-last", "2"]).assert_ok();

    let out = repo
        .command()
        .arg("prune")
        .args(PRUNE)
        .env("REWIND_CRASH_AT", point)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "prune with REWIND_CRASH_AT={point} should die by SIGKILL: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    repo.check_read_data();
    let kept = history.assert_listed_restore();
    assert_eq!(kept.len(), 2);

    let second = repo.prune(&PRUNE);
    assert_eq!(second["plans_waiting"], serde_json::json!([]), "{second:#}");
    repo.check_read_data();
    history.assert_listed_restore();

    let third = repo.prune(&PRUNE);
    assert_nothing_to_do(
        &third,
        &format!("the prune after the one that finished {point}"),
    );
    assert_eq!(number(&third, "bytes_unused_kept"), 0, "{third:#}");
    assert!(
        repo.deletion_plan_files().is_empty(),
        "deletion plans left: {:?}",
        repo.deletion_plan_files()
    );
}

#[test]
fn killed_after_repacking() {
    prune_killed_at("prune-repacked");
}

#[test]
fn killed_after_writing_the_new_index() {
    prune_killed_at("prune-indexed");
}

#[test]
fn killed_after_writing_the_deletion_plan() {
    prune_killed_at("prune-planned");
}

#[test]
fn killed_after_removing_the_old_index() {
    prune_killed_at("prune-old-index-removed");
}

#[test]
fn killed_while_deleting_packs() {
    prune_killed_at("prune-deleting-packs");
}

#[test]
fn killed_before_removing_the_carried_out_plan() {
    prune_killed_at("prune-packs-deleted");
}
