//! The restore tools through the real binary: `diff` between snapshots,
//! against directories and a mount; `restore` over an existing tree
//! (--overwrite, --delete, --dry-run, --exclude), interrupted and resumed;
//! and `restore-test`, passing, failing and interrupted.

mod common;
mod mount_util;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rewind::format::BlobKind;
use rewind::{Encryption, Id, Repository};

/// Packs that hold file data and no tree: with them moved away, only trees
/// (and snapshot copies) can be read.
fn data_packs(lib: &Repository) -> Vec<Id> {
    let index = lib.index();
    let mut kinds = vec![(false, false); index.packs().len()];
    for (_, location) in index.blobs() {
        let (data, tree) = &mut kinds[location.pack()];
        *data |= location.kind() == BlobKind::Data;
        *tree |= location.kind() == BlobKind::Tree;
    }
    index
        .packs()
        .iter()
        .zip(kinds)
        .filter(|(_, (data, tree))| *data && !*tree)
        .map(|(p, _)| p.id)
        .collect()
}

/// Moves the data packs of a repository aside until dropped.
struct DataPacksAway {
    moved: Vec<(PathBuf, PathBuf)>,
}

impl DataPacksAway {
    fn new(repo: &Repo, aside: &Path) -> DataPacksAway {
        let packs = data_packs(&repo.open());
        assert!(!packs.is_empty(), "the backups stored data packs");
        mkdirs(aside);
        let moved = packs
            .iter()
            .map(|id| {
                let from = pack_path(&repo.path, id);
                let to = aside.join(id.to_hex());
                std::fs::rename(&from, &to).unwrap();
                (from, to)
            })
            .collect();
        DataPacksAway { moved }
    }
}

impl Drop for DataPacksAway {
    fn drop(&mut self) {
        for (home, aside) in &self.moved {
            let _ = std::fs::rename(aside, home);
        }
    }
}

/// The lines of `diff` output as a set.
fn lines(run: &Run) -> BTreeSet<String> {
    run.stdout_text().lines().map(str::to_string).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn diff_between_snapshots_reads_no_file_content() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("diff_between_snapshots_reads_no_file_content"));
    let src = dir.join("src");
    build_bulk_tree(&src, &mut rng, 300, 2, 2 << 20);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    repo.backup([
        arg(&src),
        "--time".as_ref(),
        "2024-06-01T02:00:00Z".as_ref(),
    ]);

    write(&src.join("d01/e1/f1"), b"changed content");
    write(&src.join("large/big0"), &rng.bytes(2 << 20));
    write(&src.join("d02/e2/added"), b"new");
    mkdirs(&src.join("d03/newdir/inner"));
    write(&src.join("d03/newdir/inner/x"), b"x");
    std::fs::remove_file(src.join("d04/e4/f4")).unwrap();
    std::fs::remove_file(src.join("d05/e0/f5")).unwrap();
    mkdirs(&src.join("d05/e0/f5"));
    chmod(&src.join("d06/e1/f6"), 0o600);
    repo.backup([
        arg(&src),
        "--time".as_ref(),
        "2024-06-02T02:00:00Z".as_ref(),
    ]);

    // Every answer below comes from trees alone.
    let _away = DataPacksAway::new(&repo, &dir.join("aside"));
    let p = src.strip_prefix("/").unwrap().display().to_string();
    let run = repo
        .run(["diff", "@2024-06-01", "@2024-06-02"])
        .assert_code(1);
    let expected = [
        format!("M  {p}/d01/e1/f1  (content)"),
        // Random bytes: rewritten with incompressible content.
        format!("M  {p}/large/big0  (content, incompressible)"),
        format!("+  {p}/d02/e2/added"),
        format!("+  {p}/d03/newdir"),
        format!("+  {p}/d03/newdir/inner"),
        format!("+  {p}/d03/newdir/inner/x"),
        format!("-  {p}/d04/e4/f4"),
        format!("T  {p}/d05/e0/f5  (file → directory)"),
    ];
    assert_eq!(
        lines(&run),
        expected.iter().cloned().collect(),
        "{}",
        run.stderr
    );

    let run = repo
        .run(["diff", "--metadata", "--json", "@2024-06-01", "@2024-06-02"])
        .assert_code(1);
    let json = run.json();
    let changes = json["changes"].as_array().unwrap();
    let chmodded = changes
        .iter()
        .find(|c| c["path"] == format!("{p}/d06/e1/f6"))
        .expect("the chmod shows with --metadata");
    assert_eq!(chmodded["change"], "metadata");
    assert!(chmodded["details"][0]
        .as_str()
        .unwrap()
        .starts_with("mode 0"));
    let summary = &json["summary"];
    assert_eq!(summary["added"], 4);
    assert_eq!(summary["type_changed"], 1);
    assert_eq!(summary["files_read"], 0);
    assert!(
        summary["trees_skipped"].as_u64().unwrap() >= 20,
        "unchanged directories are skipped by tree id: {summary}"
    );
    assert_eq!(json["equal"], false);

    // Reversed sides swap additions and removals.
    let run = repo
        .run(["diff", "@2024-06-02", "@2024-06-01"])
        .assert_code(1);
    assert!(lines(&run).contains(&format!("-  {p}/d02/e2/added")));
    // Its content is random bytes, as every file of the bulk tree.
    assert!(lines(&run).contains(&format!("+  {p}/d04/e4/f4  (incompressible)")));

    let run = repo.run(["diff", "@2024-06-02", "latest"]).assert_code(0);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("are the same"), "{}", run.stderr);
    let sub = src.join("d07");
    repo.run(["diff", &spec("@2024-06-01", &sub), &spec("latest", &sub)])
        .assert_code(0);
}

#[test]
fn diff_against_a_directory_reads_only_local_files() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("diff_against_a_directory_reads_only_local_files"));
    let src = dir.join("src");
    build_bulk_tree(&src, &mut rng, 200, 3, 3 << 20);
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    repo.backup([arg(&src)]);
    let _away = DataPacksAway::new(&repo, &dir.join("aside"));

    let run = repo.run(["diff", &spec("latest", &src), arg(&src).to_str().unwrap()]);
    let run = run.assert_code(0);
    assert!(run.stdout.is_empty(), "{}", run.stdout_text());
    assert!(run.stderr.contains("files read"), "{}", run.stderr);

    // One flipped byte in the middle of a large file, same size and mtime.
    let big = src.join("large/big1");
    let before = std::fs::metadata(&big).unwrap();
    let mut data = std::fs::read(&big).unwrap();
    data[(3 << 20) / 2] ^= 1;
    write(&big, &data);
    set_times(
        &big,
        (before.atime(), before.atime_nsec()),
        (before.mtime(), before.mtime_nsec()),
    );
    write(&src.join("d00/e0/extra"), b"only here");
    std::fs::remove_file(src.join("d01/e1/f1")).unwrap();
    std::os::unix::fs::symlink("elsewhere", src.join("d02/e2/link")).unwrap();

    let run = repo
        .run(["diff", &spec("latest", &src), src.to_str().unwrap()])
        .assert_code(1);
    assert_eq!(
        lines(&run),
        set(&[
            "M  large/big1  (content)",
            "+  d00/e0/extra",
            "-  d01/e1/f1",
            "+  d02/e2/link",
        ]),
        "{}",
        run.stderr
    );
    // The directory may be on either side.
    let run = repo
        .run(["diff", src.to_str().unwrap(), &spec("latest", &src)])
        .assert_code(1);
    assert!(lines(&run).contains("-  d00/e0/extra"));

    // Two directories need no repository at all.
    let copy = dir.join("copy");
    let status = Command::new("cp")
        .args(["-a"])
        .arg(&src)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let local = |a: &Path, b: &Path| {
        let out = Command::new(bin())
            .args(["--repo", "/nonexistent/repository", "diff"])
            .arg(a)
            .arg(b)
            .env_remove("REWIND_PASSWORD")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(local(&src, &copy), (Some(0), String::new()));
    let mut data = std::fs::read(&big).unwrap();
    data[7] ^= 1;
    write(&copy.join("large/big1"), &data);
    assert_eq!(
        local(&src, &copy),
        (Some(1), "M  large/big1  (content)\n".to_string())
    );

    // Trouble is exit status 2, explained in one line.
    repo.run(["diff", &spec("latest", &src), "./no/such/dir"])
        .assert_code(2)
        .assert_one_line_error(&["no/such/dir"]);
    repo.run(["diff", "latest:/no/such/path", src.to_str().unwrap()])
        .assert_code(2)
        .assert_one_line_error(&["not in the snapshot"]);
}

/// More changes and content comparisons than the diff keeps in flight
/// (docs/design.md section 6): they come out in the order of the walk,
/// whichever comparison finishes first.
#[test]
fn diff_against_a_directory_reports_changes_in_walk_order() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    let body = |d: usize, f: usize, mark: char| format!("file {d} {f:04} {mark}\n");
    for d in 0..3 {
        mkdirs(&src.join(format!("a{d}")));
        for f in 0..400 {
            write(
                &src.join(format!("a{d}/f{f:04}")),
                body(d, f, 'o').as_bytes(),
            );
        }
    }
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    repo.backup([arg(&src)]);

    let mut expected = String::new();
    for d in 0..3 {
        for f in 0..400 {
            let path = src.join(format!("a{d}/f{f:04}"));
            if f % 5 == 0 {
                std::fs::remove_file(&path).unwrap();
                expected += &format!("-  a{d}/f{f:04}\n");
            } else if f % 3 == 0 {
                // The same size: only reading it tells.
                write(&path, body(d, f, 'n').as_bytes());
                expected += &format!("M  a{d}/f{f:04}  (content)\n");
            }
            if f % 7 == 0 {
                write(&src.join(format!("a{d}/f{f:04}x")), b"new");
                expected += &format!("+  a{d}/f{f:04}x\n");
            }
        }
    }
    let run = repo
        .run(["diff", &spec("latest", &src), src.to_str().unwrap()])
        .assert_code(1);
    assert_eq!(run.stdout_text(), expected, "{}", run.stderr);
}

#[test]
fn a_snapshot_equals_its_source_its_mount_and_its_restore_in_every_detail() {
    let (_tmp, dir) = tempdir();
    require_root_and_xattrs(&dir);
    let mut rng = Rng::new(seed("a_snapshot_equals_its_source"));
    let src = dir.join("src");
    mkdirs(&src);
    build_full_tree(&src, &mut rng);
    freeze(&src);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    repo.backup([arg(&src)]);
    let snap = spec("latest", &src);

    let run = repo
        .run(["diff", "--metadata", &snap, src.to_str().unwrap()])
        .assert_code(0);
    assert!(run.stdout.is_empty(), "{}", run.stdout_text());

    let target = dir.join("restored");
    repo.restore(&snap, &target, &[]).assert_ok();
    repo.run(["diff", "--metadata", &snap, target.to_str().unwrap()])
        .assert_code(0);
    // A change only metadata shows is found only with --metadata.
    chmod(&target.join("small.txt"), 0o640);
    repo.run(["diff", &snap, target.to_str().unwrap()])
        .assert_code(0);
    let run = repo
        .run(["diff", "--metadata", &snap, target.to_str().unwrap()])
        .assert_code(1);
    assert_eq!(run.stdout_text(), "U  small.txt  (mode 0644 → 0640)\n");

    let mountpoint = dir.join("mnt");
    // The mount tests' daemon guard (it always unmounts), on this repository
    // with this test's password (--password-file wins over theirs).
    let password_file = dir.join("password");
    write(&password_file, PASSWORD.as_bytes());
    let _mount = mount_util::Mount::start(
        &mount_util::Repo {
            path: repo.path.clone(),
        },
        &mountpoint,
        &["--password-file", password_file.to_str().unwrap()],
    );
    let in_mount = under(&mountpoint.join("latest"), &src);
    let run = repo
        .run(["diff", "--metadata", &snap, in_mount.to_str().unwrap()])
        .assert_code(0);
    assert!(run.stdout.is_empty(), "{}", run.stdout_text());
    // A side may be a symlink to a directory, such as `latest` itself.
    let whole = mountpoint.join("latest");
    repo.run(["diff", "latest", whole.to_str().unwrap()])
        .assert_code(0);
}

/// Birth times of the regular files under `root`: a file that is kept keeps
/// its own, a file written anew gets a new one (inode numbers prove
/// nothing: a freed one is soon reused).
fn births(root: &Path) -> std::collections::BTreeMap<String, std::time::SystemTime> {
    all_paths(root)
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).unwrap().is_file())
        .map(|p| {
            let born = std::fs::symlink_metadata(&p)
                .unwrap()
                .created()
                .expect("the test filesystem records birth times (statx)");
            (p.strip_prefix(root).unwrap().display().to_string(), born)
        })
        .collect()
}

/// The files whose birth time is still the one in `before`.
fn kept_since(
    before: &std::collections::BTreeMap<String, std::time::SystemTime>,
    root: &Path,
) -> BTreeSet<String> {
    births(root)
        .into_iter()
        .filter(|(path, born)| before.get(path) == Some(born))
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn restore_over_an_existing_tree_follows_overwrite_delete_and_dry_run() {
    let (_tmp, dir) = tempdir();
    require_root_and_xattrs(&dir);
    let src = dir.join("src");
    mkdirs(&src.join("keep"));
    write_tree(
        &src,
        &[
            ("a.txt", b"alpha".repeat(1000)),
            ("b.txt", b"bravo".to_vec()),
            ("c.txt", b"charlie".to_vec()),
            ("keep/d.log", b"delta".to_vec()),
            ("keep/e.txt", b"echo".to_vec()),
        ],
    );
    hard_link(&src.join("a.txt"), &src.join("keep/a-link"));
    let expected = freeze(&src);
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    repo.backup([arg(&src)]);
    let snap = spec("latest", &src);
    let t = dir.join("target");
    repo.restore(&snap, &t, &[]).assert_ok();
    expected.assert_same(&Manifest::of(&t), "first restore");

    // A second restore over an intact tree writes nothing.
    let born = births(&t);
    // An attribute the snapshot does not have goes, even from a kept file.
    xattr::set(t.join("c.txt"), "user.added-later", b"x").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let run = repo.restore(&snap, &t, &[]).assert_ok();
    assert!(run.stderr.contains("0 B written"), "{}", run.stderr);
    assert_eq!(
        kept_since(&born, &t),
        set(&[
            "a.txt",
            "b.txt",
            "c.txt",
            "keep/a-link",
            "keep/d.log",
            "keep/e.txt"
        ]),
        "every file kept, hard links included"
    );
    expected.assert_same(&Manifest::of(&t), "second restore");

    // Damage the target.
    write(&t.join("b.txt"), b"BRAVO");
    chmod(&t.join("c.txt"), 0o600);
    std::fs::remove_file(t.join("keep/e.txt")).unwrap();
    write(&t.join("extra.txt"), b"not in the snapshot");
    mkdirs(&t.join("extra-dir/inner"));
    std::fs::remove_file(t.join("keep/d.log")).unwrap();
    mkdirs(&t.join("keep/d.log"));
    let damaged = Manifest::of(&t);

    // A dry run lists and changes nothing.
    let run = repo
        .restore(&snap, &t, &["--dry-run", "--delete"])
        .assert_ok();
    let target = t.display();
    assert_eq!(
        lines(&run),
        set(&[
            &format!("replace {target}/b.txt"),
            &format!("create  {target}/keep/e.txt"),
            &format!("replace {target}/keep/d.log"),
            &format!("delete  {target}/extra.txt"),
            &format!("delete  {target}/extra-dir"),
        ]),
        "{}",
        run.stderr
    );
    damaged.assert_same(&Manifest::of(&t), "after a dry run");
    // Without --delete the directory in the way is an error, in a dry run too.
    let run = repo
        .restore(&snap, &t, &["--dry-run", "--json"])
        .assert_code(1);
    let planned = run.json()["report"]["planned"].as_array().unwrap().clone();
    assert!(planned
        .iter()
        .any(|p| p["action"] == "keep" && p["path"] == format!("{target}/a.txt")));

    // never: only what is missing is created.
    let run = repo.restore(&snap, &t, &["--overwrite", "never"]);
    // keep/d.log is a directory in the way: left alone, not an error.
    run.assert_ok();
    assert_eq!(std::fs::read(t.join("b.txt")).unwrap(), b"BRAVO");
    assert_eq!(std::fs::read(t.join("keep/e.txt")).unwrap(), b"echo");
    assert_eq!(
        std::fs::metadata(t.join("c.txt")).unwrap().mode() & 0o777,
        0o600
    );

    // if-changed: the changed file is rewritten, the others keep their
    // inode and get their metadata back; the directory in the way of a
    // file is an error without --delete.
    let born = births(&t);
    std::thread::sleep(Duration::from_millis(20));
    let run = repo.restore(&snap, &t, &[]).assert_code(1);
    assert!(
        run.stderr.contains("directory is in the way"),
        "{}",
        run.stderr
    );
    assert_eq!(
        kept_since(&born, &t),
        set(&["a.txt", "c.txt", "extra.txt", "keep/a-link", "keep/e.txt"]),
        "only b.txt was written again"
    );
    assert_eq!(std::fs::read(t.join("b.txt")).unwrap(), b"bravo");
    assert_eq!(
        std::fs::metadata(t.join("c.txt")).unwrap().mode() & 0o777,
        0o644
    );
    assert!(
        t.join("extra.txt").exists(),
        "nothing is deleted without --delete"
    );

    // --delete: the target equals the snapshot.
    let run = repo.restore(&snap, &t, &["--delete"]).assert_ok();
    assert!(run.stderr.contains("entries deleted"), "{}", run.stderr);
    expected.assert_same(&Manifest::of(&t), "restore --delete");

    // always: every file is written again.
    let born = births(&t);
    std::thread::sleep(Duration::from_millis(20));
    repo.restore(&snap, &t, &["--overwrite", "always"])
        .assert_ok();
    assert_eq!(
        kept_since(&born, &t),
        BTreeSet::new(),
        "every file written again"
    );
    expected.assert_same(&Manifest::of(&t), "restore --overwrite always");

    // --exclude, with --delete: excluded paths are neither restored nor deleted.
    write(&t.join("keep/local.log"), b"mine");
    repo.restore(
        &snap,
        &t,
        &["--delete", "--exclude", "*.log", "--overwrite", "always"],
    )
    .assert_ok();
    assert!(t.join("keep/local.log").exists());
    let fresh = dir.join("fresh");
    repo.restore(&snap, &fresh, &["--exclude", "*.log"])
        .assert_ok();
    assert!(!fresh.join("keep/d.log").exists());
    assert!(fresh.join("keep/e.txt").exists());
}

/// 5,000 small files in 50 directories and one large file: restoring
/// them takes long enough, even in an optimized build, to be interrupted in
/// the middle (files are written in tree order after the large one starts).
fn interruptible_tree(src: &Path, rng: &mut Rng) {
    for d in 0..50 {
        let dir = src.join(format!("d{d:02}"));
        mkdirs(&dir);
        for f in 0..100 {
            write(&dir.join(format!("f{f:03}")), &rng.bytes(2048));
        }
    }
    write(&src.join("big.bin"), &rng.bytes(16 << 20));
}

/// Waits until a restore of an [`interruptible_tree`] into `root` has
/// written about 50 files.
fn wait_for_progress(root: impl Fn() -> Option<PathBuf>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if root().is_some_and(|r| r.join("d00/f050").exists()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the restore did not start writing files");
}

/// Starts `rewind restore` and waits until it has written some files.
fn start_restore(repo: &Repo, snap: &str, target: &Path) -> Child {
    let child = repo
        .command()
        .args(["restore", snap, "--target"])
        .arg(target)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_progress(|| Some(target.to_path_buf()));
    child
}

/// The regular files under `root`, relative.
fn files_under(root: &Path) -> Vec<PathBuf> {
    all_paths(root)
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).unwrap().is_file())
        .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
        .collect()
}

#[test]
fn an_interrupted_restore_picks_up_where_it_stopped() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("an_interrupted_restore_picks_up_where_it_stopped"));
    let src = dir.join("src");
    interruptible_tree(&src, &mut rng);
    let expected = freeze(&src);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    repo.backup([arg(&src)]);
    let snap = spec("latest", &src);

    // SIGINT: stops cleanly with 130; every file left is complete.
    let t = dir.join("t1");
    let child = start_restore(&repo, &snap, &t);
    // SAFETY: kill with a valid pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left = files_under(&t);
    assert!(left.len() < 5_001, "the restore stopped early");
    for rel in &left {
        assert_eq!(
            std::fs::read(t.join(rel)).unwrap(),
            std::fs::read(src.join(rel)).unwrap(),
            "{} was left incomplete",
            rel.display()
        );
    }
    let run = repo.restore(&snap, &t, &[]).assert_ok();
    assert!(
        run.stderr.contains(&format!("; {} entries (", left.len())),
        "the second run keeps the {} files already there: {}",
        left.len(),
        run.stderr
    );
    expected.assert_same(&Manifest::of(&t), "restore after SIGINT");

    // SIGKILL: a partly written file stays behind, and the next run fixes it.
    let t = dir.join("t2");
    let mut child = start_restore(&repo, &snap, &t);
    child.kill().unwrap();
    child.wait().unwrap();
    repo.restore(&snap, &t, &[]).assert_ok();
    expected.assert_same(&Manifest::of(&t), "restore after SIGKILL");
}

/// The entries of a directory (for "the scratch space is gone").
fn entries(dir: &Path) -> Vec<String> {
    list_dir(dir)
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

#[test]
fn restore_test_reports_checks_and_cleans_up() {
    let (_tmp, dir) = tempdir();
    require_root_and_xattrs(&dir);
    let mut rng = Rng::new(seed("restore_test_reports_checks_and_cleans_up"));
    let src = dir.join("src");
    mkdirs(&src);
    build_full_tree(&src, &mut rng);
    build_bulk_tree(&src.join("bulk"), &mut rng, 400, 1, 1 << 20);
    freeze(&src);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    repo.backup([arg(&src)]);
    let scratch = dir.join("scratch");
    mkdirs(&scratch);
    let junit = dir.join("report.xml");

    let run = repo
        .run([
            "restore-test".as_ref(),
            "--json".as_ref(),
            "--scratch".as_ref(),
            scratch.as_os_str(),
            "--junit".as_ref(),
            junit.as_os_str(),
        ])
        .assert_ok();
    let report = run.json();
    assert_eq!(report["ok"], true, "{report}");
    let total_files = report["files_checked"].as_u64().unwrap();
    assert!(total_files > 400, "{report}");
    assert!(report["bytes_checked"].as_u64().unwrap() > 5 << 20);
    assert!(report["restore_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["age_seconds"].as_i64().unwrap() < 600);
    assert_eq!(entries(&scratch), Vec::<String>::new(), "scratch removed");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("failures=\"0\""), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 2, "{xml}");

    // One file: restored under its name in the scratch directory (and read back).
    let one = repo
        .run([
            "restore-test".as_ref(),
            "--json".as_ref(),
            "--reread".as_ref(),
            spec("latest", &src.join("dir/sub/medium.bin")).as_ref(),
            "--scratch".as_ref(),
            scratch.as_os_str(),
        ])
        .assert_ok()
        .json();
    assert_eq!(one["files_checked"], 1, "{one}");
    assert_eq!(one["bytes_checked"], 300_000, "{one}");

    // A deterministic sample.
    let sampled = |run: Run| run.assert_ok().json()["files_checked"].as_u64().unwrap();
    let args = [
        "restore-test".as_ref(),
        "--json".as_ref(),
        "--sample".as_ref(),
        "10%".as_ref(),
        "--scratch".as_ref(),
        scratch.as_os_str(),
    ];
    let first = sampled(repo.run(args));
    assert!(
        first > total_files / 20 && first < total_files / 5,
        "a 10% sample checked {first} of {total_files} files"
    );
    assert_eq!(sampled(repo.run(args)), first, "the same sample again");

    // Against the live tree: equal, then one changed file fails the drill.
    let snap = spec("latest", &src);
    let against = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "restore-test".as_ref(),
            snap.as_ref(),
            "--scratch".as_ref(),
            scratch.as_os_str(),
            "--against".as_ref(),
            src.as_os_str(),
        ];
        args.extend(extra.iter().map(|s| s.as_ref() as &std::ffi::OsStr));
        repo.run(args)
    };
    against(&[]).assert_ok();
    write(&src.join("dir/many-03.txt"), b"changed since the backup");
    let run = against(&[]).assert_code(1);
    let out = run.stdout_text();
    assert!(
        out.contains(&format!(
            "{}/dir/many-03.txt: content differs",
            src.display()
        )),
        "{out}"
    );
    assert!(out.contains("FAILED"), "{out}");

    // A recovery point objective the snapshot misses.
    let old = Repo::init(&dir.join("old-repo"), Encryption::None);
    write_tree(&dir.join("small"), &[("f", b"f".to_vec())]);
    old.backup([
        arg(&dir.join("small")),
        "--time".as_ref(),
        "2024-06-01T00:00:00Z".as_ref(),
    ]);
    let run = old
        .run([
            "restore-test".as_ref(),
            "--max-age".as_ref(),
            "26h".as_ref(),
            "--scratch".as_ref(),
            scratch.as_os_str(),
        ])
        .assert_code(1);
    assert!(
        run.stdout_text().contains("recovery point"),
        "{}",
        run.stdout_text()
    );

    // A damaged chunk: the drill fails and names the file.
    let lib = repo.open();
    let damaged_pack = data_packs(&lib)[0];
    let path = pack_path(&repo.path, &damaged_pack);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let run = repo
        .run([
            "restore-test".as_ref(),
            "--json".as_ref(),
            "--scratch".as_ref(),
            scratch.as_os_str(),
            "--junit".as_ref(),
            junit.as_os_str(),
        ])
        .assert_code(1);
    let report = run.json();
    assert_eq!(report["ok"], false);
    let failures: Vec<String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["failures"].as_array().unwrap().clone())
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        failures
            .iter()
            .any(|p| p.starts_with(src.to_str().unwrap())),
        "{report}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure "), "{xml}");
    assert_eq!(entries(&scratch), Vec::<String>::new(), "scratch removed");
}

#[test]
fn an_interrupted_restore_test_removes_its_scratch_space() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed(
        "an_interrupted_restore_test_removes_its_scratch_space",
    ));
    let src = dir.join("src");
    interruptible_tree(&src, &mut rng);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    repo.backup([arg(&src)]);
    let scratch = dir.join("scratch");
    mkdirs(&scratch);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let child = repo
            .command()
            .arg("restore-test")
            .arg("--scratch")
            .arg(&scratch)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_progress(|| {
            let made = std::fs::read_dir(&scratch).unwrap().next()?.ok()?;
            Some(under(&made.path(), &src))
        });
        // SAFETY: kill with a valid pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "signal {signal}: {stderr}");
        assert_eq!(
            entries(&scratch),
            Vec::<String>::new(),
            "signal {signal}: the scratch space is gone"
        );
    }
}
