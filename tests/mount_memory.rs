//! The mount daemon's memory through a walk of many files, for real: with
//! `--max-inodes`, the inodes it keeps stay within the budget however many
//! files `tar` reads, and the names the kernel was told to drop come back
//! with their numbers and contents (docs/design.md section 6).

mod common;
mod mount_util;

use std::time::Duration;

use mount_util::*;

const DIRS: usize = 100;
const FILES_PER_DIR: usize = 1000;
const BUDGET: u64 = 5000;

/// What the daemon may grow by during the `tar` (its peak reset once the
/// index loaded), reading the 100,000 files with a budget of 5,000 inodes
/// and a chunk cache of 4 MiB: the tree cache (8 MiB), the chunk cache and
/// working memory. In a debug build it grew by 14 MiB; with a budget no
/// walk reaches (every inode the kernel holds kept) by 36 MiB.
const GROWTH_BOUND_KIB: u64 = 24 << 10;

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_tar_of_100k_files_keeps_the_daemon_within_its_inode_budget() {
    require_root();
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    common::small_files_tree(&src, DIRS, FILES_PER_DIR);
    let repo = Repo::init(&dir.join("repo"));
    repo.backup(&src, "2024-06-01T10:00:00Z", "host", &[]);
    let budget = BUDGET.to_string();
    // The chunk cache has a budget of its own (64 MiB by default, which the
    // 100,000 chunks of 40 bytes could fill to a third): kept small, so that
    // what grows is what the inode budget bounds.
    let mount = Mount::start(
        &repo,
        &dir.join("mnt"),
        &["--max-inodes", &budget, "--cache-size", "4M"],
    );
    let root = inside(&mount.path("latest"), &src);
    let loaded = || mount.status()["index_loaded"] == true;
    assert!(wait_for(Duration::from_secs(60), loaded).is_some());

    let sample = root.join("d000/f0000");
    let number = stat("%i", &sample);
    let before = status_kib(mount.pid, "VmRSS");
    // The peak so far is the index's load; only the tar's is measured.
    std::fs::write(format!("/proc/{}/clear_refs", mount.pid), "5").unwrap();
    let listed = run(sh("cd \"$ROOT\" && tar cf - . | tar tf - | wc -l").env("ROOT", &root))
        .assert_ok()
        .text();
    let peak = status_kib(mount.pid, "VmHWM");
    let expected = DIRS * FILES_PER_DIR + DIRS + 1;
    assert_eq!(listed.trim(), expected.to_string(), "tar read every file");
    let growth = peak.saturating_sub(before);
    eprintln!("daemon: {before} KiB before the tar, peak {peak} KiB, grew {growth} KiB");
    assert!(
        growth < GROWTH_BOUND_KIB,
        "the daemon grew by {growth} KiB during the tar (bound {GROWTH_BOUND_KIB} KiB)"
    );

    // The kernel forgot what it was told to: the inodes fall within budget.
    let inodes = || mount.status()["inodes"].as_u64().unwrap();
    let within = wait_for(Duration::from_secs(10), || inodes() <= BUDGET + 100);
    assert!(within.is_some(), "{} inodes kept", inodes());

    // Forgotten names come back with their numbers and contents.
    assert_eq!(stat("%i", &sample), number, "inode numbers are stable");
    for d in ["d000", "d037", "d099"] {
        assert_eq!(diff_r(&src.join(d), &root.join(d)), Vec::<String>::new());
    }
}
