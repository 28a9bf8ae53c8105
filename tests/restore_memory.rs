//! A restore's memory does not grow with the number of files: the walk
//! streams the tree to the workers in windows of bounded size
//! (docs/design.md section 6). Restoring 100,000 small files peaks at
//! about what restoring 1,000 of them does.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;
use rewind::Encryption;

const DIRS: usize = 100;
const FILES_PER_DIR: usize = 1000;

/// What a restore of the whole tree may peak at above a restore of one
/// of its directories (the same repository, so the same index). In a
/// debug build the restore that planned every file before writing one
/// grew by 54 MiB (21 to 75 MiB); the streamed one with windows of 16,384
/// entries by 27 MiB, and of 8,192 by less. The repository is not
/// encrypted: the key's derivation (64 MiB) would be the peak of both.
const GROWTH_BOUND_KIB: i64 = 32 << 10;

/// 100 directories of 1,000 files of about 40 bytes, each its own content.
fn make_tree(root: &Path) {
    for d in 0..DIRS {
        let dir = root.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..FILES_PER_DIR {
            let body = format!("file {d:03} {f:04} {}\n", "x".repeat(f % 30));
            std::fs::write(dir.join(format!("f{f:04}")), body).unwrap();
        }
    }
}

/// Runs `rewind restore SPEC --target TARGET` to its end; its peak
/// resident memory in KiB (`ru_maxrss` of the child).
fn restore_peak_kib(repo: &Repo, spec: &str, target: &Path) -> i64 {
    let child = repo
        .command()
        .args(["restore", spec, "--target"])
        .arg(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value to be written into.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointers are valid for the call; the child is ours and
    // not waited for anywhere else (the Child is dropped unwaited).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "rewind restore {spec} failed: status {status}"
    );
    drop(child);
    usage.ru_maxrss
}

#[test]
fn restoring_100k_files_takes_about_the_memory_of_1k() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    make_tree(&src);
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    repo.backup([&src]);

    let one_dir = spec("latest", &src.join("d000"));
    let small = restore_peak_kib(&repo, &one_dir, &dir.join("one"));
    let all = restore_peak_kib(&repo, &spec("latest", &src), &dir.join("all"));
    let growth = all - small;
    eprintln!("peak: {small} KiB for 1,000 files, {all} KiB for 100,000; grew {growth} KiB");

    let restored = dir.join("all");
    for (d, f) in [(0, 0), (57, 999), (99, 123)] {
        let name = format!("d{d:03}/f{f:04}");
        assert_eq!(
            std::fs::read(restored.join(&name)).unwrap(),
            std::fs::read(src.join(&name)).unwrap(),
            "{name}"
        );
    }
    let count = walk(&restored).len();
    assert!(count >= DIRS * FILES_PER_DIR, "{count} entries restored");
    assert!(
        growth < GROWTH_BOUND_KIB,
        "restoring 100x the files grew the peak by {growth} KiB (bound {GROWTH_BOUND_KIB} KiB)"
    );
}
