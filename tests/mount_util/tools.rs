//! What the ordinary tools (find, stat, getfattr, sha256sum, diff,
//! readlink) see of a tree, as sorted listings two trees can be compared by.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::run;

/// Lines of one listing of a tree, sorted, for comparing two trees.
pub type Listing = Vec<String>;

fn sorted(mut lines: Vec<String>) -> Listing {
    lines.sort();
    lines
}

/// Splits NUL-terminated records.
fn records(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|r| !r.is_empty())
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect()
}

/// `find . -ls` run inside `root`, without the inode number and block count
/// columns; for directories also without the link count and size, which
/// describe the filesystem, not the backed-up data.
#[track_caller]
pub fn find_ls(root: &Path) -> Listing {
    let out = run(Command::new("find").arg(".").arg("-ls").current_dir(root)).assert_ok();
    sorted(
        out.text()
            .lines()
            .map(|line| {
                let mut fields: Vec<&str> = line.split_whitespace().collect();
                assert!(fields.len() > 7, "unexpected find -ls line {line:?}");
                if fields[2].starts_with('d') {
                    fields[3] = "-";
                    fields[6] = "-";
                }
                fields[2..].join(" ")
            })
            .collect(),
    )
}

/// `stat` of every entry under `root` (names relative to it): type, mode,
/// owner, size, link count, device numbers and mtime with nanoseconds. Size
/// and link count of directories are left out (see [`find_ls`]).
#[track_caller]
pub fn stat_listing(root: &Path) -> Listing {
    let out = run(Command::new("find")
        .args([".", "-exec", "stat", "--printf"])
        .arg("%n|%F|%a|%u:%g|%s|%h|%t:%T|%y\\0")
        .args(["{}", "+"])
        .current_dir(root))
    .assert_ok();
    sorted(
        records(&out.stdout)
            .into_iter()
            .map(|record| {
                let mut fields: Vec<&str> = record.split('|').collect();
                let n = fields.len();
                // The name may contain '|': count fields from the end.
                if fields[n - 7] == "directory" {
                    fields[n - 4] = "-";
                    fields[n - 3] = "-";
                }
                fields.join("|")
            })
            .collect(),
    )
}

/// `getfattr -R -P -h -d -m - -e hex .` in `root`: every extended attribute
/// of every entry, one sorted block per entry.
#[track_caller]
pub fn xattr_listing(root: &Path) -> Listing {
    let out = run(Command::new("getfattr")
        .args(["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "."])
        .current_dir(root))
    .assert_ok();
    sorted(
        out.text()
            .split("\n\n")
            .map(str::trim)
            .filter(|block| !block.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// `sha256sum` of every regular file under `root`.
#[track_caller]
pub fn sha256_listing(root: &Path) -> Listing {
    let out = run(Command::new("find")
        .args([".", "-type", "f", "-exec", "sha256sum", "--", "{}", "+"])
        .current_dir(root))
    .assert_ok();
    sorted(out.text().lines().map(str::to_string).collect())
}

/// `diff -r --no-dereference A B`: the lines that say the trees differ.
/// For two special files of one type GNU diff compares no content, only
/// whether they look like the same file (ctime included), so it reports
/// every pair of copied fifos, sockets and device nodes: those lines do not
/// count (`stat_listing` compares their type, mode, owner and numbers).
pub fn diff_r(a: &Path, b: &Path) -> Vec<String> {
    let out = run(Command::new("diff")
        .args(["-r", "--no-dereference", "--"])
        .arg(a)
        .arg(b));
    let special_pair = |line: &str| {
        line.starts_with("File ")
            && [
                "fifo",
                "socket",
                "character special file",
                "block special file",
            ]
            .iter()
            .any(|kind| {
                line.ends_with(&format!(" is a {kind}"))
                    && line.contains(&format!(" is a {kind} while file "))
            })
    };
    let mut problems: Vec<String> = out
        .text()
        .lines()
        .filter(|line| !special_pair(line))
        .map(str::to_string)
        .collect();
    if !matches!(out.code, Some(0) | Some(1)) {
        problems.push(format!("diff exited with {:?}: {}", out.code, out.stderr));
    }
    problems
}

/// Fails with the lines only one side has.
#[track_caller]
pub fn assert_same(expected: &Listing, actual: &Listing, what: &str) {
    if expected == actual {
        return;
    }
    let missing: Vec<&String> = expected.iter().filter(|l| !actual.contains(l)).collect();
    let extra: Vec<&String> = actual.iter().filter(|l| !expected.contains(l)).collect();
    panic!(
        "{what}: the listings differ\nexpected but missing:\n  {}\nunexpected:\n  {}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        extra
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// `readlink PATH`.
#[track_caller]
pub fn readlink(path: &Path) -> String {
    run(Command::new("readlink").arg(path))
        .assert_ok()
        .text()
        .trim_end_matches('\n')
        .to_string()
}

/// `stat -c FORMAT PATH`.
#[track_caller]
pub fn stat(format: &str, path: &Path) -> String {
    run(Command::new("stat").arg("-c").arg(format).arg(path))
        .assert_ok()
        .text()
        .trim_end_matches('\n')
        .to_string()
}

/// A path in a mount or copy: `root` joined with the absolute `path` of the
/// source (a snapshot keeps absolute paths).
pub fn inside(root: &Path, absolute: &Path) -> PathBuf {
    root.join(absolute.strip_prefix("/").unwrap())
}

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}
