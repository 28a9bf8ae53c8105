//! A backup's memory does not grow with the number of files it stores
//! (docs/design.md, section 6): backing up many small files, the binary's
//! peak resident memory, read from the kernel as the child is reaped,
//! stays within a bound that holding every file's records would break.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use rewind::Encryption;

const DIRS: usize = 200;
const FILES_PER_DIR: usize = 1000;

/// What the backup may grow by, over a backup of one file, storing the
/// 200,000 files below, each its own blob: the index (30 bytes a blob),
/// the tree pack being filled, the packs being filled and the records
/// waiting for an index file. In a debug build it grew by 41 to 45 MiB; it
/// grew by 58 to 60 MiB when the ids of every blob of the run stayed in a
/// set, packs took 200,000 tiny blobs each and all of them waited for an
/// index file, and freed pack buffers stayed resident.
const GROWTH_BOUND_KIB: u64 = 50 << 10;

/// Runs `rewind backup --json` of `source`; returns the snapshot and its
/// peak resident memory in KiB, as the kernel counted it for the reaped
/// child.
fn backup_peak_kib(repo: &Repo, source: &Path) -> (serde_json::Value, u64) {
    let mut command: Command = repo.command();
    command
        .args(["backup", "--json", "--host", "h"])
        .arg(source)
        .stdout(Stdio::piped());
    let mut child = command.spawn().expect("the rewind binary runs");
    // The snapshot's JSON is far smaller than a pipe's buffer, so the
    // child ends without its stdout being read first.
    let stdout = child.stdout.take().unwrap();
    let (code, peak) = wait_for_peak_kib(child);
    assert_eq!(code, Some(0), "the backup of {} failed", source.display());
    let snapshot = serde_json::from_reader(stdout).expect("backup --json prints the snapshot");
    (snapshot, peak as u64)
}

#[test]
fn a_backup_of_200k_small_files_stays_within_its_memory_bound() {
    let (_tmp, dir) = tempdir();
    let small = dir.join("small");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("one"), "one file\n").unwrap();
    let many = dir.join("many");
    small_files_tree(&many, DIRS, FILES_PER_DIR);
    // Unencrypted: key derivation's 64 MiB would hide the backup's own peak.
    let small_repo = Repo::init(&dir.join("small-repo"), Encryption::None);
    let (_, baseline) = backup_peak_kib(&small_repo, &small);
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let (snapshot, peak) = backup_peak_kib(&repo, &many);
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "backup of one file: peak {baseline} KiB; of 200,000: peak {peak} KiB, grew {growth} KiB"
    );
    assert!(
        growth < GROWTH_BOUND_KIB,
        "the backup grew by {growth} KiB (bound {GROWTH_BOUND_KIB} KiB)"
    );

    let summary = &snapshot["summary"];
    assert_eq!(summary["files_new"], DIRS * FILES_PER_DIR, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
}
