//! Issue 10, findings 4 and 10: crafted trees. A snapshot of 41 tree blobs
//! in which every level names the level below twice stands for 2^40 paths:
//! `check`, `scrub`, `ls`, `diff` and the mount must finish quickly, with
//! bounded reports or a clear error naming the snapshot, instead of running
//! out of memory or running for ever. Trees that break the format's naming
//! rules (duplicates, unsafe or overlong names, unsorted entries) are
//! reported by `check` once each, and the mount never lists them.
//!
//! Runs that would never end on the old code are killed after a timeout
//! (and capped in memory), which fails the test instead of hanging it.

mod common;

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rewind::format::BlobKind;
use rewind::{Encryption, Id, Repository};
use rewind::{Extent, Node, NodeKind, Tree};

/// Levels of the doubling snapshot: 2^40 paths to its leaf directory.
const LEVELS: u32 = 40;
const PATHS: u64 = 1 << LEVELS;

/// Any run of the binary here ends well within this.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A snapshot whose root names the directory below it twice (`a` and `b`),
/// [`LEVELS`] times over, down to a directory holding `leaf`.
fn doubling_snapshot(lib: &Repository, leaf: Vec<Node>) -> Id {
    let mut blobs = Vec::new();
    let mut tree = Tree::whole(leaf).encode();
    for _ in 0..LEVELS {
        let id = lib.blob_id(&tree);
        blobs.push((BlobKind::Tree, tree));
        tree = Tree::whole(vec![dir_node(b"a", id), dir_node(b"b", id)]).encode();
    }
    let root = lib.blob_id(&tree);
    blobs.push((BlobKind::Tree, tree));
    store_blobs(lib, &blobs);
    save_snapshot(lib, root, &["/"])
}

/// A file whose only chunk is in no pack.
fn file_with_lost_chunk(name: &[u8]) -> Node {
    let mut n = node(name, NodeKind::File);
    n.size = 3;
    n.content = vec![Extent::Data {
        id: Id([7; 32]),
        len: 3,
    }];
    n
}

fn new_repo() -> (tempfile::TempDir, std::path::PathBuf, Repo) {
    let (tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    (tmp, dir, repo)
}

/// Keeps the first bytes a child writes, and drains the rest: a listing of
/// 2^40 paths must not fill the test's memory either.
fn drain(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    const KEPT: usize = 4 << 20;
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buffer = [0u8; 64 << 10];
        while let Ok(n @ 1..) = from.read(&mut buffer) {
            let room = KEPT.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(&buffer[..room]);
        }
        kept
    })
}

/// Runs `cmd` like `common::run`, but kills it after [`TIMEOUT`] (failing
/// the test) and caps its address space, so that old code that expands
/// 2^40 paths fails the test instead of the machine.
#[track_caller]
fn run_bounded(mut cmd: Command) -> Run {
    let what = format!("{cmd:?}");
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let cap = libc::rlimit {
                rlim_cur: 6 << 30,
                rlim_max: 6 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &cap);
            Ok(())
        });
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            child.kill().unwrap();
            child.wait().unwrap();
            let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("`{what}` did not finish within {TIMEOUT:?}; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        what,
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
    }
}

fn bounded<I, S>(repo: &Repo, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = repo.command();
    cmd.args(args);
    run_bounded(cmd)
}

// ------------------------------------------------------------ finding 4

#[test]
fn check_reports_a_lost_chunk_under_2_40_paths_once_with_a_count() {
    let (_tmp, _dir, repo) = new_repo();
    let lib = repo.open();
    let snapshot = doubling_snapshot(&lib, vec![file_with_lost_chunk(b"f")]);
    let run = bounded(&repo, ["check", "--json"]).assert_code(1);
    let report = run.json();
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report:#}");
    let error = errors[0].as_str().unwrap();
    let first_path = format!("{}/f", "/a".repeat(LEVELS as usize));
    assert!(
        error.starts_with(&format!("snapshot {}: {first_path}: ", snapshot.short())),
        "{error}"
    );
    assert!(error.contains("not in the index"), "{error}");
    assert!(
        error.contains(&format!("{} more paths", PATHS - 1)),
        "{error}"
    );
    let affected = report["affected"][snapshot.short()].as_array().unwrap();
    assert!(affected.len() <= 11, "{affected:?}");
    assert_eq!(affected[0], first_path.as_str());
    let last = affected.last().unwrap().as_str().unwrap();
    let named = affected.len() as u64 - 1;
    assert_eq!(last, format!("... and {} more paths", PATHS - named));
    assert_eq!(report["trees"], LEVELS + 1);
}

#[test]
fn check_finds_nothing_wrong_in_a_sound_snapshot_of_2_40_paths() {
    let (_tmp, _dir, repo) = new_repo();
    let lib = repo.open();
    let leaf = vec![file_node(&lib, b"f", b"shared by every path")];
    doubling_snapshot(&lib, leaf);
    let report = bounded(&repo, ["check", "--json"]).assert_ok().json();
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
}

#[test]
fn scrub_names_a_bounded_number_of_the_2_40_paths_a_damaged_pack_affects() {
    let (_tmp, dir, repo) = new_repo();
    let lib = repo.open();
    let leaf = file_node(&lib, b"f", &[5u8; 4000]);
    let Extent::Data { id: chunk, .. } = leaf.content[0] else {
        unreachable!()
    };
    let snapshot = doubling_snapshot(&lib, vec![leaf]);
    let (pack, offset) = {
        let index = lib.index();
        let location = index.get(&chunk).unwrap();
        (index.pack(location.pack()).id.to_hex(), location.offset)
    };
    let pack_file = repo.path.join("data").join(&pack[..2]).join(&pack);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&pack_file)
        .unwrap();
    file.write_all_at(b"damage", offset as u64 + 2).unwrap();
    drop(file);

    let state = dir.join("scrub-state.json");
    let run = bounded(
        &repo,
        ["scrub", "--json", "--state", state.to_str().unwrap()],
    );
    let report = run.json();
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"].as_str().unwrap().ends_with(&pack))
        .unwrap_or_else(|| panic!("no finding for the pack: {report:#}"));
    let affected = finding["affected"][snapshot.short()]
        .as_array()
        .unwrap_or_else(|| panic!("{finding:#}"));
    assert!(affected.len() <= 11, "{affected:?}");
    assert_eq!(affected[0], format!("{}/f", "/a".repeat(LEVELS as usize)));
    assert!(
        affected
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .ends_with("more paths"),
        "{affected:?}"
    );
}

#[test]
fn ls_stops_at_the_entry_limit_with_an_error_naming_the_snapshot() {
    let (_tmp, _dir, repo) = new_repo();
    let lib = repo.open();
    let snapshot = doubling_snapshot(&lib, vec![node(b"f", NodeKind::Fifo)]);
    let run = bounded(&repo, ["ls", "latest", "--max-entries", "5000"]);
    let run = run.assert_code(1);
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains(&format!("snapshot {}", snapshot.short()))
            && errors[0].contains("more than 5000 entries")
            && errors[0].contains("--max-entries"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout_text().lines().count(), 5000);

    // The environment sets the same limit; one level lists within it.
    let mut cmd = repo.command();
    cmd.env("REWIND_MAX_ENTRIES", "5000")
        .args(["ls", "--json", "latest:/a/b/a", "--no-recurse"]);
    let listed = run_bounded(cmd).assert_ok().json();
    let paths: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/a/b/a", "/a/b/a/a", "/a/b/a/b"]);
}

#[test]
fn diff_stops_at_the_entry_limit_with_an_error_naming_the_snapshots() {
    let (_tmp, _dir, repo) = new_repo();
    let lib = repo.open();
    let crafted = doubling_snapshot(&lib, vec![node(b"f", NodeKind::Fifo)]);
    let small_root = store_tree(&lib, vec![node(b"f", NodeKind::Fifo)]);
    let small = save_snapshot(&lib, small_root, &["/"]);
    let run = bounded(
        &repo,
        [
            "diff",
            &small.short(),
            &crafted.short(),
            "--max-entries",
            "5000",
        ],
    );
    let run = run.assert_one_line_error(&["more than 5000 entries", &crafted.short()]);
    assert!(run.stderr.contains(&small.short()), "{}", run.stderr);
}

// ----------------------------------------------------------- finding 10

/// A tree that breaks every naming rule: a duplicate, an unsafe name, one
/// over 255 bytes, and entries out of order.
fn misnamed_tree(lib: &Repository) -> Id {
    let mut first = file_node(lib, b"dup", b"first\n");
    first.inode = 1;
    let mut second = file_node(lib, b"dup", b"second\n");
    second.inode = 2;
    store_tree(
        lib,
        vec![
            node(b"ok", NodeKind::Fifo),
            first,
            second,
            node(b"..", NodeKind::Fifo),
            node(&[b'n'; 256], NodeKind::Fifo),
            node(b"b", NodeKind::Fifo),
        ],
    )
}

#[test]
fn check_reports_each_broken_naming_rule_once_with_snapshot_and_path() {
    let (_tmp, _dir, repo) = new_repo();
    let lib = repo.open();
    let bad = misnamed_tree(&lib);
    // Reached by two paths: still one report per problem.
    let root = store_tree(&lib, vec![dir_node(b"x", bad), dir_node(b"y", bad)]);
    let snapshot = save_snapshot(&lib, root, &["/"]);
    let report = bounded(&repo, ["check", "--json"]).assert_code(1).json();
    let errors: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let prefix = format!("snapshot {}: ", snapshot.short());
    let long = "n".repeat(256);
    let expected = [
        ("/x/dup: ", "listed twice"),
        ("/x/..: ", "empty, `.` or `..`"),
        (&format!("/x/{long}: ")[..], "longer than 255 bytes"),
        ("/x: ", "not sorted"),
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (path, problem) in expected {
        let found: Vec<_> = errors
            .iter()
            .filter(|e| e.starts_with(&format!("{prefix}{path}")) && e.contains(problem))
            .collect();
        assert_eq!(found.len(), 1, "{path} {problem}: {errors:#?}");
        assert!(found[0].contains("at 1 more paths"), "{}", found[0]);
    }

    // ls lists each name once, sorted, and says what it left out.
    let run = bounded(&repo, ["ls", "latest:/x"]).assert_ok();
    assert_eq!(run.stdout_text(), "/x\n/x/b\n/x/dup\n/x/ok\n");
    assert!(run.stderr.contains("\"dup\": not shown"), "{}", run.stderr);
    assert!(run.stderr.contains("not sorted"), "{}", run.stderr);
}

#[test]
fn diff_skips_misnamed_entries_with_an_error_instead_of_pairing_them() {
    let (_tmp, _dir, repo) = new_repo();
    let lib = repo.open();
    let bad = misnamed_tree(&lib);
    let a = save_snapshot(&lib, store_tree(&lib, vec![dir_node(b"x", bad)]), &["/"]);
    let good = store_tree(
        &lib,
        vec![node(b"b", NodeKind::Fifo), node(b"ok", NodeKind::Fifo)],
    );
    let b = save_snapshot(&lib, store_tree(&lib, vec![dir_node(b"x", good)]), &["/"]);
    let run = bounded(&repo, ["diff", "--json", &a.short(), &b.short()]);
    let report = run.json();
    assert_eq!(run.code, Some(2), "errors make exit code 2: {report:#}");
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 0, "{report:#}");
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{report:#}");
    assert!(errors
        .iter()
        .any(|e| e.as_str().unwrap().contains("x/\"dup\": not shown")));
}

// ------------------------------------------------------------ the mount

mod mount_util;

/// `rewind mount` of `repo` with `extra` arguments.
fn mount(repo: &Repo, dir: &std::path::Path, extra: &[&str]) -> mount_util::Mount {
    mount_util::require_root();
    mount_util::Mount::start_with(repo.command(), &dir.join("mnt"), extra)
}

#[test]
fn the_mount_lists_no_duplicate_unsafe_or_overlong_name_and_logs_them() {
    let (_tmp, dir, repo) = new_repo();
    let lib = repo.open();
    let snapshot = save_snapshot(&lib, misnamed_tree(&lib), &["/"]);
    let mounted = mount(&repo, &dir, &[]);
    let root = mounted.path(&format!("ids/{}/", snapshot.short()));
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["b", "dup", "ok"]);
    assert_eq!(std::fs::read(root.join("dup")).unwrap(), b"first\n");
    assert!(std::fs::symlink_metadata(root.join("n".repeat(256))).is_err());
    let log = mounted.log_text();
    for needle in ["\"dup\": not shown", "longer than 255 bytes", "not sorted"] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
}

#[test]
fn the_mount_stops_expanding_a_snapshot_at_the_entry_limit() {
    let (_tmp, dir, repo) = new_repo();
    let lib = repo.open();
    let snapshot = doubling_snapshot(&lib, vec![node(b"f", NodeKind::Fifo)]);
    let mounted = mount(&repo, &dir, &["--max-entries", "3000"]);
    let mut find = Command::new("find");
    find.arg("-H")
        .arg(mounted.path(&format!("ids/{}", snapshot.short())));
    let run = run_bounded(find);
    assert_ne!(run.code, Some(0), "find met errors past the limit");
    let listed = run.stdout_text().lines().count();
    assert!((3000..3100).contains(&listed), "{listed} paths listed");
    let status = mounted.status();
    assert!(status["inodes"].as_u64().unwrap() < 3100, "{status:#}");
    let log = mounted.log_text();
    let needle = format!(
        "snapshot {}: it expands to more than 3000 entries",
        snapshot.short()
    );
    assert!(log.contains(&needle), "{log}");
}

/// A restore works out what a snapshot expands to, once per tree, before it
/// writes anything: the doubling snapshot is refused with the default limit
/// and an empty target stays empty (the old code created directories until
/// the disk or the test's patience ran out).
#[test]
fn restore_refuses_a_snapshot_beyond_the_entry_limit_before_writing_anything() {
    let (_tmp, dir, repo) = new_repo();
    let lib = repo.open();
    doubling_snapshot(&lib, vec![node(b"f", NodeKind::Fifo)]);
    let root = lib.read_snapshot(&lib.snapshots().unwrap()[0].id.to_hex());
    let root = root.unwrap().tree;
    let target = dir.join("target");
    for extra in [&[][..], &["--delete"][..]] {
        let mut cmd = repo.command();
        cmd.args(["restore", "latest", "--target"])
            .arg(&target)
            .args(extra);
        let run = run_bounded(cmd).assert_code(1);
        assert!(
            run.stderr
                .contains(&format!("with root tree {}", root.short()))
                && run.stderr.contains("more than")
                && run.stderr.contains("--max-entries"),
            "{}",
            run.stderr
        );
        assert!(
            list_dir(&target).is_empty(),
            "the restore wrote into its target"
        );
    }
    // Five levels above the leaf, 2 + 4 + 8 + 16 + 32 directories and 32
    // fifos: within a limit of 100, given by the environment.
    let five_above_the_leaf: String = (0..LEVELS - 5).map(|_| "/a").collect();
    let mut cmd = repo.command();
    cmd.env("REWIND_MAX_ENTRIES", "100")
        .args([
            "restore",
            &format!("latest:{five_above_the_leaf}"),
            "--target",
        ])
        .arg(&target);
    run_bounded(cmd).assert_ok();
    assert_eq!(all_paths(&target).len(), 1 + 62 + 32);
}

// ------------------------------------------------------------ split trees

/// A snapshot whose directory `/wide` is a crafted split tree: part 0
/// (from "a") holds `a` and `b`; part 1 (from "m") holds `c`, which sorts
/// before its range, and `n`.
fn split_tree_with_an_entry_out_of_range(lib: &Repository) -> Id {
    let part = |names: &[&[u8]]| {
        let nodes = names.iter().map(|n| file_node(lib, n, n)).collect();
        store_tree(lib, nodes)
    };
    let parts = vec![
        rewind::Part {
            first: b"a".to_vec(),
            entries: 2,
            tree: part(&[b"a", b"b"]),
        },
        rewind::Part {
            first: b"m".to_vec(),
            entries: 2,
            tree: part(&[b"c", b"n"]),
        },
    ];
    let top = Tree {
        nodes: vec![],
        parts,
    };
    let top = store_blobs(lib, &[(BlobKind::Tree, top.encode())])[0];
    let root = store_tree(lib, vec![dir_node(b"wide", top)]);
    save_snapshot(lib, root, &["/wide"])
}

#[test]
fn a_split_tree_with_an_entry_outside_its_part_is_damage_and_the_mount_hides_it() {
    let (_tmp, dir, repo) = new_repo();
    let snapshot = split_tree_with_an_entry_out_of_range(&repo.open());
    let short = snapshot.short();

    let run = repo.restore(&short, &dir.join("target"), &[]);
    run.assert_one_line_error(&["outside its range", "\"c\""]);
    assert!(!dir.join("target/wide/c").exists());

    let check = repo.run(["check"]);
    let said = format!("{}{}", check.text(), check.stderr);
    assert_eq!(check.code, Some(1), "{said}");
    assert!(
        said.contains("/wide") && said.contains("outside its range"),
        "{said}"
    );

    let mounted = mount(&repo, &dir, &[]);
    let wide = mounted.path(&format!("ids/{short}/wide"));
    let mut names: Vec<String> = std::fs::read_dir(&wide)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "n"]);
    assert_eq!(std::fs::read(wide.join("n")).unwrap(), b"n");
    assert!(!wide.join("c").exists());
}
