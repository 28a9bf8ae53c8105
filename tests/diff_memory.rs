//! A diff's memory does not grow with the number of files: both sides are
//! walked together, directory by directory, and the content comparisons
//! wait in a bounded queue (docs/design.md section 6). Comparing a
//! snapshot of 100,000 small files with their source directory peaks at
//! about what comparing 1,000 of them does.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;
use rewind::Encryption;

const DIRS: usize = 100;
const FILES_PER_DIR: usize = 1000;

/// What a diff of the whole tree may peak at above a diff of one of its
/// directories (the same repository, so the same index). In a debug build
/// the diff that queued every content comparison until the end grew by
/// 106 MiB (22 to 129 MiB); with the bounded queue it grows by about 0.1
/// MiB. The repository is not encrypted: the key's derivation (64 MiB)
/// would be the peak of both.
const GROWTH_BOUND_KIB: i64 = 8 << 10;

/// Runs `rewind diff A B` to its end; its exit code and peak resident
/// memory in KiB.
fn diff_peak_kib(repo: &Repo, a: &str, b: &Path) -> (Option<i32>, i64) {
    let child = repo
        .command()
        .args(["diff", a])
        .arg(b)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_peak_kib(child)
}

#[test]
fn diffing_100k_files_against_their_source_takes_about_the_memory_of_1k() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    small_files_tree(&src, DIRS, FILES_PER_DIR);
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    repo.backup([&src]);

    let one_dir = src.join("d000");
    let (code, small) = diff_peak_kib(&repo, &spec("latest", &one_dir), &one_dir);
    assert_eq!(code, Some(0), "one directory is the same as its snapshot");
    let (code, all) = diff_peak_kib(&repo, &spec("latest", &src), &src);
    assert_eq!(code, Some(0), "the tree is the same as its snapshot");
    let growth = all - small;
    eprintln!("peak: {small} KiB for 1,000 files, {all} KiB for 100,000; grew {growth} KiB");
    assert!(
        growth < GROWTH_BOUND_KIB,
        "diffing 100x the files grew the peak by {growth} KiB (bound {GROWTH_BOUND_KIB} KiB)"
    );
}
