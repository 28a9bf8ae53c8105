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
    let (code, peak) = wait_for_peak_kib(child);
    assert_eq!(code, Some(0), "rewind restore {spec} failed");
    peak
}

#[test]
fn restoring_100k_files_takes_about_the_memory_of_1k() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    small_files_tree(&src, DIRS, FILES_PER_DIR);
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
