//! `rewind mount` for real, checked with the tools users point at a mount:
//! diff, cp, rsync, tar, find, stat, getfattr, sha256sum, readlink, and
//! the processes and signals that start and stop the daemon (docs/design.md
//! section 4 is the contract).

mod common;
mod mount_util;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mount_util::*;
use serde_json::json;

const DAYS: [&str; 3] = [
    "2024-06-01T10:00:00Z",
    "2024-06-02T10:00:00Z",
    "2024-06-03T10:00:00Z",
];

fn label(time: &str) -> String {
    format!("@{time}")
}

// ------------------------------------------------------------ the source tree

/// Day 1: every kind of entry a backup keeps.
fn build_day1(src: &Path, rng: &mut Rng) {
    let p = |rel: &str| src.join(rel);
    write(&p("plain.txt"), &rng.lines(400));
    write(&p("big.bin"), &rng.bytes(3 << 20));
    write(&p("empty"), b"");
    write(&p("dir with spaces/file with spaces.txt"), b"spaces\n");
    write(&p("dir with spaces/nested/deeper/leaf.txt"), b"leaf\n");
    mkdirs(&p("empty-dir"));
    write(&p("new\nline"), b"a newline in the name\n");
    write(&p("tab\tand-\u{fc}n\u{ef}c\u{f6}d\u{e9}.txt"), b"unicode\n");
    write(
        &src.join(OsStr::from_bytes(b"latin1-\xe9t\xe9")),
        b"not UTF-8\n",
    );

    mkdirs(&p("links"));
    symlink("../plain.txt", &p("links/relative"));
    symlink(p("plain.txt").to_str().unwrap(), &p("links/absolute"));
    symlink("no/such/target", &p("links/dangling"));
    symlink("../dir with spaces", &p("links/to-dir"));
    symlink("relative", &p("links/owned"));
    lchown(&p("links/owned"), 1234, 5678);

    // Three links to one file, one in another directory; a hard-linked
    // symlink; a hard-linked fifo.
    write(&p("hard/a"), &rng.bytes(50_000));
    hard_link(&p("hard/a"), &p("hard/b"));
    hard_link(&p("hard/a"), &p("other-hard"));
    symlink("a", &p("hard/sym1"));
    hard_link(&p("hard/sym1"), &p("hard/sym2"));

    mkdirs(&p("special"));
    run(Command::new("mkfifo").arg(p("special/fifo"))).assert_ok();
    hard_link(&p("special/fifo"), &p("special/fifo-link"));
    run(Command::new("mknod")
        .arg(p("special/null"))
        .args(["c", "1", "3"]))
    .assert_ok();
    run(Command::new("mknod")
        .arg(p("special/loop"))
        .args(["b", "7", "200"]))
    .assert_ok();
    drop(std::os::unix::net::UnixListener::bind(p("special/socket")).unwrap());

    // 8 MiB with 64 KiB of data at 0 and at 5 MiB; holes elsewhere.
    let sparse = std::fs::File::create(p("sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    drop(sparse);
    write_at(&p("sparse.img"), 0, &rng.bytes(64 << 10));
    write_at(&p("sparse.img"), 5 << 20, &rng.bytes(64 << 10));

    mkdirs(&p("perms/sticky"));
    mkdirs(&p("perms/read-only-dir"));
    write(&p("perms/read-only-dir/inside"), b"inside\n");
    for (name, mode) in [
        ("setuid", 0o4755),
        ("setgid", 0o2711),
        ("private", 0o600),
        ("none", 0o000),
        ("all", 0o7777),
    ] {
        write(&p(&format!("perms/{name}")), name.as_bytes());
        chmod(&p(&format!("perms/{name}")), mode);
    }
    chmod(&p("perms/sticky"), 0o1777);
    chmod(&p("perms/read-only-dir"), 0o555);

    write(&p("owners/foreign"), b"someone else's\n");
    lchown(&p("owners/foreign"), 1234, 5678);
    chmod(&p("owners/foreign"), 0o640);
    write(&p("owners/nobody"), b"nobody's\n");
    lchown(&p("owners/nobody"), 65534, 65534);
    mkdirs(&p("owners/dir"));
    lchown(&p("owners/dir"), 4321, 4321);
    chmod(&p("owners/dir"), 0o750);

    write(&p("xattrs/file"), b"with attributes\n");
    mkdirs(&p("xattrs/dir"));
    for target in ["xattrs/file", "xattrs/dir"] {
        for (name, value) in [
            ("user.comment", "hello world"),
            ("user.binary", "0x00ff100a"),
            ("user.empty", "\"\""),
            ("trusted.secret", "root only"),
        ] {
            run(Command::new("setfattr")
                .args(["-n", name, "-v", value])
                .arg(p(target)))
            .assert_ok();
        }
    }
    let big_value = format!("0x{}", hex::encode(rng.bytes(1500)));
    run(Command::new("setfattr")
        .args(["-n", "user.big", "-v", &big_value])
        .arg(p("big.bin")))
    .assert_ok();

    rng.set_all_times(src);
    // One time before 1970.
    set_times(&p("plain.txt"), (-86_400, 5), (-1_000_000, 999_999_999));
}

/// Day 2: appends, in-place edits, deletions, renames, new entries, new
/// modes, owners and attributes.
fn change_day2(src: &Path, rng: &mut Rng) {
    let p = |rel: &str| src.join(rel);
    let mut text = std::fs::read(p("plain.txt")).unwrap();
    text.extend_from_slice(&rng.lines(50));
    write(&p("plain.txt"), &text);
    write_at(&p("big.bin"), 1 << 20, &rng.bytes(100));
    std::fs::remove_file(p("empty")).unwrap();
    write(&p("day2-new.txt"), b"new on day 2\n");
    chmod(&p("perms/private"), 0o640);
    write_at(&p("hard/a"), 0, b"changed through one of three links");
    std::fs::remove_file(p("other-hard")).unwrap();
    run(Command::new("setfattr")
        .args(["-n", "user.comment", "-v", "changed"])
        .arg(p("xattrs/file")))
    .assert_ok();
    run(Command::new("setfattr")
        .args(["-x", "user.empty"])
        .arg(p("xattrs/dir")))
    .assert_ok();
    std::fs::rename(p("dir with spaces/nested"), p("dir with spaces/renamed")).unwrap();
    lchown(&p("owners/foreign"), 2000, 2000);
    write_at(&p("sparse.img"), 7 << 20, &rng.bytes(32 << 10));
    run(Command::new("mkfifo").arg(p("special/fifo2"))).assert_ok();
    rng.set_all_times(src);
}

/// Day 3: a file becomes a symlink, a file shrinks, links are broken up.
fn change_day3(src: &Path, rng: &mut Rng) {
    let p = |rel: &str| src.join(rel);
    std::fs::remove_file(p("plain.txt")).unwrap();
    symlink("big.bin", &p("plain.txt"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(p("big.bin"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    std::fs::remove_file(p("links/dangling")).unwrap();
    symlink("/etc/hostname-elsewhere", &p("links/dangling"));
    std::fs::remove_dir(p("empty-dir")).unwrap();
    write(&p("new-dir/with/file"), &rng.lines(20));
    std::fs::remove_file(p("hard/b")).unwrap();
    write(&p("hard/b"), b"no longer a link\n");
    run(Command::new("setfattr")
        .args(["-n", "user.day3", "-v", "three"])
        .arg(p("xattrs/file")))
    .assert_ok();
    rng.set_all_times(src);
}

/// What the ordinary tools saw on the source on one day, before its backup.
struct Day {
    time: &'static str,
    id: String,
    find: Listing,
    stat: Listing,
    xattrs: Listing,
    sha256: Listing,
    /// `cp -a` of the source made right after the backup.
    kept: PathBuf,
}

impl Day {
    fn record(src: &Path, time: &'static str, kept: PathBuf) -> Day {
        let (find, stat, xattrs, sha256) = (
            find_ls(src),
            stat_listing(src),
            xattr_listing(src),
            sha256_listing(src),
        );
        Day {
            time,
            id: String::new(),
            find,
            stat,
            xattrs,
            sha256,
            kept,
        }
    }

    /// Checks a tree (the mount, or a copy of it) against this day's source.
    #[track_caller]
    fn check_tree(&self, tree: &Path, how: &str) {
        self.check_copy(tree, how, |line| Some(line.to_string()));
    }

    /// The same for a copy made by a tool with limits of its own:
    /// `expect` maps each line of this day's `stat` listing to what the
    /// copy should show (None: the tool skips the entry).
    #[track_caller]
    fn check_copy(&self, tree: &Path, how: &str, expect: impl Fn(&str) -> Option<String>) {
        let what = |tool: &str| format!("{} ({how}): {tool}", self.time);
        let expected_stat: Listing = self.stat.iter().filter_map(|l| expect(l)).collect();
        // Entries the tool skips show up in diff as "Only in" the kept copy.
        let skipped: Vec<String> = self
            .stat
            .iter()
            .filter(|l| expect(l).is_none())
            .map(|l| {
                let rel = l.split('|').next().unwrap().trim_start_matches("./");
                let (parent, name) = rel.rsplit_once('/').unwrap_or((".", rel));
                format!("Only in {}/{parent}: {name}", self.kept.display())
            })
            .collect();
        let problems: Vec<String> = diff_r(tree, &self.kept)
            .into_iter()
            .filter(|line| !skipped.contains(line))
            .collect();
        assert!(
            problems.is_empty(),
            "{}:\n{}",
            what("diff -r"),
            problems.join("\n")
        );
        assert_same(&expected_stat, &stat_listing(tree), &what("stat"));
        assert_same(&self.xattrs, &xattr_listing(tree), &what("getfattr -d"));
        assert_same(&self.sha256, &sha256_listing(tree), &what("sha256sum"));
    }
}

/// What GNU tar carries over: it skips sockets ("socket ignored") and
/// extracts hard-linked fifos as separate fifos.
fn through_tar(stat_line: &str) -> Option<String> {
    let fields: Vec<&str> = stat_line.split('|').collect();
    let n = fields.len();
    match fields[n - 7] {
        "socket" => None,
        "fifo" => {
            let mut fields = fields;
            fields[n - 3] = "1";
            Some(fields.join("|"))
        }
        _ => Some(stat_line.to_string()),
    }
}

fn empty_dir(path: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(path);
    mkdirs(path);
    path.to_path_buf()
}

#[test]
fn three_days_through_the_ordinary_tools() {
    require_root();
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    mkdirs(&src);
    let repo = Repo::init(&dir.join("repo"));
    let mut rng = Rng::new(20240601);

    let hosts = ["alpha", "alpha", "beta"];
    let tags: [&[&str]; 3] = [&["nightly"], &["nightly", "weekly"], &["nightly"]];
    let mut days = Vec::new();
    for (i, time) in DAYS.into_iter().enumerate() {
        match i {
            0 => build_day1(&src, &mut rng),
            1 => change_day2(&src, &mut rng),
            _ => change_day3(&src, &mut rng),
        }
        let kept = dir.join(format!("kept-{i}"));
        let mut day = Day::record(&src, time, kept.clone());
        let snapshot = repo.backup(&src, time, hosts[i], tags[i]);
        day.id = snapshot["id"].as_str().unwrap().to_string();
        run(Command::new("cp").arg("-a").arg(&src).arg(&kept)).assert_ok();
        days.push(day);
    }
    // The listings see what they should, so that comparing them means something.
    let day1 = &days[0];
    for needle in ["trusted.secret", "user.big", "user.empty"] {
        assert!(
            day1.xattrs.iter().any(|b| b.contains(needle)),
            "getfattr shows {needle} on the source: {:#?}",
            day1.xattrs
        );
    }
    for needle in [
        "|4755|",
        "|7777|",
        "|1234:5678|",
        "1969-12-",
        "|character special file|644|0:0|0|1|1:3|",
    ] {
        assert!(
            day1.stat.iter().any(|l| l.contains(needle)),
            "stat shows {needle} on the source: {:#?}",
            day1.stat
        );
    }
    assert!(day1.find.len() > 40 && day1.sha256.len() > 15);
    assert!(days
        .windows(2)
        .all(|w| w[0].stat != w[1].stat && w[0].sha256 != w[1].sha256));
    let sparse_source_blocks: u64 = stat("%b", &src.join("sparse.img")).parse().unwrap();

    let mount = Mount::start(&repo, &dir.join("mnt"), &[]);
    let mp = mount.mountpoint.clone();
    let at = |label: &str| inside(&mp.join(label), &src);

    // ---- the layout: one directory per snapshot, latest, ids, hosts, tags
    let labels: Vec<String> = DAYS.iter().map(|t| label(t)).collect();
    let mut expected_top: Vec<String> = labels.clone();
    expected_top.extend([".rewind", "hosts", "ids", "latest", "tags"].map(String::from));
    expected_top.sort();
    let mut top = mount.top_names();
    top.sort();
    assert_eq!(top, expected_top, "ls -A of the mount root");
    assert_eq!(readlink(&mp.join("latest")), labels[2]);
    for (day, label) in days.iter().zip(&labels) {
        let short = &day.id[..8];
        assert_eq!(
            readlink(&mp.join("ids").join(short)),
            format!("../{label}"),
            "ids/{short}"
        );
    }
    assert_eq!(
        run(Command::new("ls").arg(mp.join("hosts")))
            .assert_ok()
            .text(),
        "alpha\nbeta\n"
    );
    assert_eq!(
        run(Command::new("ls").arg(mp.join("hosts/alpha")))
            .assert_ok()
            .text(),
        format!("{}\n{}\nlatest\n", labels[0], labels[1])
    );
    assert_eq!(readlink(&mp.join("hosts/alpha/latest")), labels[1]);
    assert_eq!(readlink(&mp.join("hosts/beta/latest")), labels[2]);
    assert_eq!(
        run(Command::new("ls").arg(mp.join("tags")))
            .assert_ok()
            .text(),
        "nightly\nweekly\n"
    );
    assert_eq!(
        run(Command::new("ls").arg(mp.join("tags/weekly")))
            .assert_ok()
            .text(),
        format!("{}\nlatest\n", labels[1])
    );
    assert_eq!(readlink(&mp.join("tags/nightly/latest")), labels[2]);
    // The scoped directories hold the snapshots themselves.
    assert_eq!(
        run(Command::new("cat")
            .arg(inside(&mp.join("tags/weekly").join(&labels[1]), &src).join("day2-new.txt")))
        .assert_ok()
        .text(),
        "new on day 2\n"
    );

    // ---- @TIME: the newest snapshot at or before the end of the period
    for (name, want) in [
        ("@2024-06-01", 0),
        ("@2024-06-02", 1),
        ("@2024-06-02T09", 0),
        ("@2024-06-02T10:00", 1),
        ("@2024-06-02T12:00:00+02:00", 1),
        ("@2024-06-03", 2),
        ("@2024-06", 2),
        ("@2024", 2),
        ("@2025-01-01", 2),
    ] {
        assert_eq!(readlink(&mp.join(name)), labels[want], "readlink {name}");
    }
    assert_eq!(readlink(&mp.join("hosts/alpha/@2024-06-03")), labels[1]);
    // Through the link, `cd @2024-06-02` lands in day 2.
    run(sh(
        "cd \"$MP/@2024-06-02\" && test -f \"./$SRC/day2-new.txt\" && ! test -e \"./$SRC/empty\"",
    )
    .env("MP", &mp)
    .env("SRC", src.strip_prefix("/").unwrap()))
    .assert_ok();
    for early in ["@2024-05-31", "@2024-06-01T09:59", "@2023"] {
        let err = std::fs::symlink_metadata(mp.join(early)).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::ENOENT),
            "lstat {early}: {err}"
        );
        run(Command::new("ls").arg(mp.join(early))).assert_fails_with("No such file or directory");
    }

    // ---- hard links: one inode, the right link count; sparse: few blocks
    let ino = |day: usize, rel: &str| stat("%i %h", &at(&labels[day]).join(rel));
    let a1 = ino(0, "hard/a");
    assert!(a1.ends_with(" 3"), "hard/a on day 1: {a1}");
    assert_eq!(ino(0, "hard/b"), a1);
    assert_eq!(ino(0, "other-hard"), a1);
    assert_ne!(ino(0, "plain.txt"), a1);
    assert!(ino(1, "hard/a").ends_with(" 2"));
    assert_eq!(ino(1, "hard/a"), ino(1, "hard/b"));
    assert!(ino(2, "hard/a").ends_with(" 1"));
    assert_ne!(ino(2, "hard/a"), ino(2, "hard/b"));
    assert_eq!(ino(0, "hard/sym1"), ino(0, "hard/sym2"));
    assert_eq!(ino(0, "special/fifo"), ino(0, "special/fifo-link"));
    for label in &labels {
        let blocks: u64 = stat("%b", &at(label).join("sparse.img")).parse().unwrap();
        assert!(
            blocks * 512 <= 1 << 20,
            "{label}/…/sparse.img: {blocks} blocks in the mount for at most 160 KiB of data \
             (the source uses {sparse_source_blocks})"
        );
    }
    let inodes_before: Vec<String> = ["plain.txt", "big.bin", "dir with spaces", "links/relative"]
        .iter()
        .map(|rel| ino(0, rel))
        .collect();

    // ---- every day, through every tool
    let work = dir.join("work");
    for (i, day) in days.iter().enumerate() {
        let root = at(&labels[i]);
        assert_same(
            &day.find,
            &find_ls(&root),
            &format!("{}: find -ls", day.time),
        );
        day.check_tree(&root, "the mount");

        let copy = empty_dir(&work.join("cp"));
        run(Command::new("cp").arg("-a").arg(&root).arg(copy.join("t"))).assert_ok();
        day.check_tree(&copy.join("t"), "cp -a");

        let copy = empty_dir(&work.join("rsync"));
        run(Command::new("rsync")
            .args(["-aHXS", "--numeric-ids"])
            .arg(format!("{}/", root.display()))
            .arg(&copy))
        .assert_ok();
        day.check_tree(&copy, "rsync -aHXS");

        let copy = empty_dir(&work.join("tar"));
        run(sh(
            "cd \"$FROM\" && tar --xattrs --xattrs-include='*' --numeric-owner -cf - . \
                | tar --xattrs --xattrs-include='*' --numeric-owner -xpf - -C \"$TO\"",
        )
        .env("FROM", &root)
        .env("TO", &copy))
        .assert_ok();
        day.check_copy(&copy, "tar cf - . | tar xf -", through_tar);
    }

    // And the checks can fail: day 1 is not day 2.
    assert!(!diff_r(&at(&labels[0]), &days[1].kept).is_empty());
    assert_ne!(stat_listing(&at(&labels[0])), days[1].stat);

    let inodes_after: Vec<String> = ["plain.txt", "big.bin", "dir with spaces", "links/relative"]
        .iter()
        .map(|rel| ino(0, rel))
        .collect();
    assert_eq!(inodes_before, inodes_after, "inode numbers are stable");
    let status = mount.status();
    assert_eq!(status["snapshots"], json!(3), "{status:#}");
    assert!(status["reads_verified"].as_u64().unwrap() > 0, "{status:#}");
    assert_eq!(status["eio_count"], json!(0), "{status:#}");
}

// ------------------------------------------------------------ small fixtures

/// A repository with one snapshot (day 1) of a small tree: `file.txt`,
/// `public.txt` (0644), `private.txt` (0600), `private-dir/` (0700) and an
/// empty `sub/`, all owned by root.
fn small_repo(dir: &Path) -> (Repo, PathBuf) {
    let src = dir.join("src");
    write(&src.join("file.txt"), b"hello\n");
    write(&src.join("public.txt"), b"anyone may read this\n");
    write(&src.join("private.txt"), b"root only\n");
    chmod(&src.join("private.txt"), 0o600);
    write(
        &src.join("private-dir/inside.txt"),
        b"readable, but in a closed directory\n",
    );
    chmod(&src.join("private-dir/inside.txt"), 0o644);
    chmod(&src.join("private-dir"), 0o700);
    mkdirs(&src.join("sub"));
    chmod(&src, 0o755);
    let repo = Repo::init(&dir.join("repo"));
    repo.backup(&src, DAYS[0], "host", &[]);
    (repo, src)
}

/// The data packs of a repository (`data/xx/<id>`) and their sizes.
fn data_packs(repo: &Path) -> Vec<(PathBuf, u64)> {
    let mut packs: Vec<(PathBuf, u64)> = walk(&repo.join("data"))
        .into_iter()
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).unwrap();
            meta.is_file().then_some((p, meta.len()))
        })
        .collect();
    packs.sort();
    packs
}

// ------------------------------------------------------------------- tests

#[test]
fn a_damaged_pack_gives_eio_for_its_file_and_correct_bytes_for_the_others() {
    require_root();
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"));
    let mut rng = Rng::new(99);

    // Backup 1: small files and a big one. Backup 2: another big file, whose
    // chunks land in packs of their own.
    let first = dir.join("first");
    let mut files: Vec<(PathBuf, Vec<u8>)> = (0..5)
        .map(|i| (first.join(format!("small-{i}.txt")), rng.lines(20 + 30 * i)))
        .collect();
    files.push((first.join("big1.bin"), rng.bytes(2 << 20)));
    for (path, data) in &files {
        write(path, data);
    }
    repo.backup(&first, DAYS[0], "host", &[]);
    let before = data_packs(&repo.path);
    let second = dir.join("second");
    let big2 = rng.bytes(3 << 20);
    write(&second.join("big2.bin"), &big2);
    let snapshot2 = repo.backup(&second, DAYS[1], "host", &[]);
    let (damaged, size) = data_packs(&repo.path)
        .into_iter()
        .filter(|p| !before.contains(p))
        .max_by_key(|(_, size)| *size)
        .expect("the second backup wrote a pack");
    // Tree packs are tiny; chunks are at least 256 KiB: a pack this big
    // holds chunks of big2.bin.
    assert!(
        size > 128 << 10,
        "the largest new pack holds big2.bin's chunks ({size} bytes)"
    );
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 32] {
        *b ^= 0x55;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    let pack_name = damaged.file_name().unwrap().to_str().unwrap().to_string();

    let mount = Mount::start(&repo, &dir.join("mnt"), &[]);
    let day1 = inside(&mount.path(&label(DAYS[0])), &first);
    let damaged_file = inside(&mount.path(&label(DAYS[1])), &second).join("big2.bin");
    let check_others = || {
        for (path, data) in &files {
            let in_mount = day1.join(path.file_name().unwrap());
            let got = std::fs::read(&in_mount)
                .unwrap_or_else(|e| panic!("read {}: {e}", in_mount.display()));
            assert!(got == *data, "{} has wrong bytes", in_mount.display());
        }
        run(sh("cd \"$DIR\" && sha256sum -- * | sed 's/ .*//' > /dev/null").env("DIR", &day1))
            .assert_ok();
    };
    check_others();

    run(Command::new("cat").arg(&damaged_file)).assert_fails_with("Input/output error");
    run(Command::new("sha256sum").arg(&damaged_file)).assert_fails_with("Input/output error");
    // Reading it ourselves: whatever comes before the error is right; the
    // error is EIO, every time.
    for attempt in 0..2 {
        let mut file = std::fs::File::open(&damaged_file).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 128 << 10];
        let error = loop {
            match std::io::Read::read(&mut file, &mut buf) {
                Ok(0) => panic!("attempt {attempt}: read all of big2.bin through a damaged pack"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(
            error.raw_os_error(),
            Some(libc::EIO),
            "attempt {attempt}: {error}"
        );
        assert!(
            got.len() < big2.len() && got[..] == big2[..got.len()],
            "attempt {attempt}: the {} bytes served before the error are wrong",
            got.len()
        );
    }
    check_others();

    let status = mount.status();
    assert!(
        status["eio_count"].as_u64().unwrap() >= 1,
        "the status counts the EIO: {status:#}"
    );
    assert!(
        status["recent_errors"].to_string().contains("big2.bin"),
        "the status names the file: {status:#}"
    );
    let log = mount.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("big2.bin"))
        .unwrap_or_else(|| panic!("no log line names big2.bin:\n{log}"));
    assert!(
        line.contains(&pack_name[..8]) && line.contains(&snapshot2["id"].as_str().unwrap()[..8]),
        "the log line names the pack {} and the snapshot: {line}",
        &pack_name[..8]
    );
}

#[test]
fn every_write_fails_with_erofs() {
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, src) = small_repo(&dir);
    let mount = Mount::start(&repo, &dir.join("mnt"), &[]);
    let snap = inside(&mount.path("latest"), &src);
    let file = snap.join("file.txt");
    for script in [
        "touch \"$F\"",
        "touch \"$D/new-file\"",
        "echo x > \"$F\"",
        "echo x >> \"$F\"",
        "echo x > \"$D/new-file\"",
        "truncate -s 0 \"$F\"",
        "mkdir \"$D/new-dir\"",
        "mkdir \"$MP/new-top\"",
        "rm -f \"$F\"",
        "rmdir \"$D/sub\"",
        "rm -f \"$MP/latest\"",
        "chmod 0777 \"$F\"",
        "chown 1:1 \"$F\"",
        "mv \"$F\" \"$D/moved\"",
        "ln \"$F\" \"$D/hard\"",
        "ln -s file.txt \"$D/sym\"",
        "setfattr -n user.new -v 1 \"$F\"",
        "touch \"$MP/.rewind/status\"",
    ] {
        run(sh(script)
            .env("F", &file)
            .env("D", &snap)
            .env("MP", &mount.mountpoint))
        .assert_fails_with("Read-only file system");
    }
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EROFS),
        "open for writing: {err}"
    );
    let err = std::fs::create_dir(snap.join("x")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "mkdir: {err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"hello\n");
    assert_eq!(stat("%a %u:%g", &file), "644 0:0");
    assert_eq!(
        run(Command::new("ls").arg("-A").arg(&snap))
            .assert_ok()
            .text(),
        "file.txt\nprivate-dir\nprivate.txt\npublic.txt\nsub\n"
    );
}

#[test]
fn other_users_get_only_what_the_original_modes_allow() {
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, src) = small_repo(&dir);
    let open = Mount::start(&repo, &dir.join("mnt-allow-other"), &["--allow-other"]);
    let closed = Mount::start(&repo, &dir.join("mnt-owner-only"), &[]);
    let snap = inside(&open.path("latest"), &src);

    let read = run(as_nobody("cat").arg(snap.join("public.txt"))).assert_ok();
    assert_eq!(read.text(), "anyone may read this\n");
    run(as_nobody("ls").arg(&snap)).assert_ok();
    run(as_nobody("cat").arg(snap.join("private.txt"))).assert_fails_with("Permission denied");
    run(as_nobody("ls").arg(snap.join("private-dir"))).assert_fails_with("Permission denied");
    run(as_nobody("cat").arg(snap.join("private-dir/inside.txt")))
        .assert_fails_with("Permission denied");
    // Root still reads everything.
    assert_eq!(
        run(Command::new("cat").arg(snap.join("private.txt")))
            .assert_ok()
            .text(),
        "root only\n"
    );
    // Without --allow-other, other users get nothing at all.
    let snap = inside(&closed.path("latest"), &src);
    run(as_nobody("cat").arg(snap.join("public.txt"))).assert_fails_with("Permission denied");
    run(as_nobody("ls").arg(&closed.mountpoint)).assert_fails_with("Permission denied");
}

/// Backs up a second snapshot while a mount with `extra` options runs and
/// returns how long the mount took to show it.
fn new_backup_shows_up(extra: &[&str]) -> Duration {
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, src) = small_repo(&dir);
    let mount = Mount::start(&repo, &dir.join("mnt"), extra);
    let first = label(DAYS[0]);
    assert_eq!(readlink(&mount.path("latest")), first);
    // Look once, so that the kernel has the root in its caches.
    assert!(!mount.top_names().contains(&label(DAYS[1])));
    let old_file = inside(&mount.path(&first), &src).join("file.txt");
    let old_ino = stat("%i", &old_file);

    write(&src.join("later.txt"), b"backed up while mounted\n");
    let started = std::time::Instant::now();
    let snapshot = repo.backup(&src, DAYS[1], "host", &[]);
    let second = label(DAYS[1]);
    let appears = |name: &str| {
        wait_for(Duration::from_secs(10), || {
            mount.top_names().iter().any(|n| n == name)
        })
        .map(|_| started.elapsed())
        .unwrap_or_else(|| {
            panic!(
                "{name} did not appear within 10 s; the mount shows {:?}\nlog:\n{}",
                mount.top_names(),
                mount.log_text()
            )
        })
    };
    let took = appears(&second);
    let points_to = |name: &str| {
        assert!(
            wait_for(Duration::from_secs(3), || readlink(&mount.path("latest"))
                == name)
            .is_some(),
            "latest points to {}, not {name}",
            readlink(&mount.path("latest"))
        );
    };
    points_to(&second);
    let short = &snapshot["id"].as_str().unwrap()[..8];
    assert_eq!(
        readlink(&mount.path(&format!("ids/{short}"))),
        format!("../{second}")
    );
    assert_eq!(
        run(Command::new("cat").arg(inside(&mount.path(&second), &src).join("later.txt")))
            .assert_ok()
            .text(),
        "backed up while mounted\n"
    );
    assert!(!inside(&mount.path(&first), &src).join("later.txt").exists());
    assert_eq!(
        stat("%i", &old_file),
        old_ino,
        "inode numbers survive a refresh"
    );
    assert_eq!(mount.status()["snapshots"], json!(2));
    eprintln!("the new snapshot appeared after {took:?}");

    took
}

#[test]
fn a_new_backup_appears_in_the_running_mount() {
    let took = new_backup_shows_up(&["--refresh", "1"]);
    assert!(
        took < Duration::from_secs(5),
        "with --refresh 1 it took {took:?}"
    );
}

#[test]
fn a_new_backup_appears_within_10_seconds_by_default() {
    new_backup_shows_up(&[]);
}

/// `rewind forget` while mounted: the snapshot leaves the root and the
/// ids/, hosts/ and tags/ views at the next refresh, and a file opened from
/// it before keeps reading the right bytes (forget deletes no data).
#[test]
fn a_forgotten_snapshot_leaves_the_running_mount_and_open_files_keep_reading() {
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, src) = small_repo(&dir);
    let content = Rng::new(common::seed("forget while mounted")).bytes(3 << 20);
    write(&src.join("big.bin"), &content);
    let old = repo.backup(&src, DAYS[1], "web", &["nightly"]);
    let old_short = old["id"].as_str().unwrap()[..8].to_string();
    write(&src.join("later.txt"), b"day three\n");
    repo.backup(&src, DAYS[2], "web", &["nightly"]);
    let mount = Mount::start(&repo, &dir.join("mnt"), &["--refresh", "1"]);
    let forgotten = label(DAYS[1]);
    let views = [
        format!("ids/{old_short}"),
        format!("hosts/web/{forgotten}"),
        format!("tags/nightly/{forgotten}"),
    ];
    assert!(mount.top_names().contains(&forgotten));
    let mut open =
        std::fs::File::open(inside(&mount.path(&forgotten), &src).join("big.bin")).unwrap();

    run(repo.cmd().args(["forget", &old_short])).assert_ok();
    let gone = wait_for(Duration::from_secs(10), || {
        !mount.top_names().contains(&forgotten)
            && views
                .iter()
                .all(|v| std::fs::symlink_metadata(mount.path(v)).is_err())
    });
    assert!(
        gone.is_some(),
        "the forgotten snapshot is still shown: {:?}",
        mount.top_names()
    );
    assert!(mount.top_names().contains(&label(DAYS[2])));
    let mut read = Vec::new();
    std::io::Read::read_to_end(&mut open, &mut read).unwrap();
    assert!(
        read == content,
        "a file open from a forgotten snapshot reads its own bytes"
    );
}

/// Snapshots recorded at the same second: the later ones get `-2`, `-3`
/// (docs/design.md section 4), and a name, once shown, keeps naming the same
/// snapshot while the mount runs.
#[test]
fn same_second_snapshots_keep_their_names_in_a_running_mount() {
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, src) = small_repo(&dir);
    let time = DAYS[1];
    write(&src.join("which.txt"), b"0\n");
    let first = repo.backup(&src, time, "host", &[]);
    let first_id = first["id"].as_str().unwrap().to_string();
    let mount = Mount::start(&repo, &dir.join("mnt"), &["--refresh", "1"]);
    let name = label(time);
    let which = |label: &str| {
        run(Command::new("cat").arg(inside(&mount.path(label), &src).join("which.txt")))
            .assert_ok()
            .text()
    };
    assert_eq!(which(&name), "0\n");
    assert_eq!(
        readlink(&mount.path(&format!("ids/{}", &first_id[..8]))),
        format!("../{name}")
    );

    // Ids are hashes: back up at the same second until one of the new
    // snapshots has an id that sorts before the first one's (one in two
    // does), so that an order by id would hand it the first one's name.
    let mut made = 1;
    loop {
        write(&src.join("which.txt"), format!("{made}\n").as_bytes());
        let snapshot = repo.backup(&src, time, "host", &[]);
        made += 1;
        if *snapshot["id"].as_str().unwrap() < *first_id || made == 9 {
            break;
        }
    }
    let last = format!("{name}-{made}");
    assert!(
        wait_for(Duration::from_secs(10), || mount
            .top_names()
            .contains(&last))
        .is_some(),
        "{last} did not appear: {:?}",
        mount.top_names()
    );
    assert_eq!(
        mount.status()["snapshots"],
        json!(made + 1),
        "with the one of day 1"
    );
    // The name shown before still shows the same snapshot, and every
    // snapshot has exactly one name.
    let names: Vec<String> = std::iter::once(name.clone())
        .chain((2..=made).map(|n| format!("{name}-{n}")))
        .collect();
    let shown: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), which(n).trim().to_string()))
        .collect();
    let mut contents: Vec<usize> = shown.iter().map(|(_, c)| c.parse().unwrap()).collect();
    contents.sort();
    let why = format!(
        "(name, which.txt) after {} more backups at the same second: {shown:?}\nids/:\n{}",
        made - 1,
        run(Command::new("ls").arg("-l").arg(mount.path("ids"))).text()
    );
    assert_eq!(shown[0].1, "0", "{name} names another snapshot now; {why}");
    assert_eq!(
        contents,
        (0..made).collect::<Vec<_>>(),
        "every snapshot has one name; {why}"
    );
    assert_eq!(
        readlink(&mount.path(&format!("ids/{}", &first_id[..8]))),
        format!("../{name}")
    );
}

#[test]
fn sigterm_and_sigint_unmount_and_end_the_daemon() {
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, _src) = small_repo(&dir);
    for signal in ["TERM", "INT"] {
        let mount = Mount::start(&repo, &dir.join(format!("mnt-{signal}")), &[]);
        assert!(mount.top_names().contains(&label(DAYS[0])));
        run(Command::new("kill").args([&format!("-{signal}"), &mount.pid.to_string()])).assert_ok();
        let gone = wait_for(Duration::from_secs(5), || {
            !is_mounted(&mount.mountpoint) && !alive(mount.pid)
        });
        assert!(
            gone.is_some(),
            "after SIG{signal}: mounted {}, daemon alive {}\nlog:\n{}",
            is_mounted(&mount.mountpoint),
            alive(mount.pid),
            mount.log_text()
        );
        // The mountpoint is an ordinary empty directory again.
        assert_eq!(
            run(Command::new("ls").arg("-A").arg(&mount.mountpoint))
                .assert_ok()
                .text(),
            ""
        );
    }
}

/// A child process, killed and reaped whatever happens.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ends a foreground `rewind mount` with SIGTERM, as `systemctl stop` does:
/// it must exit 0 within 5 s and leave nothing mounted.
fn stop_with_sigterm(mut child: Reaped, mountpoint: &Path) {
    kill(child.0.id(), libc::SIGTERM);
    let status = wait_for(Duration::from_secs(5), || {
        child.0.try_wait().unwrap().is_some()
    });
    assert!(status.is_some(), "SIGTERM ends rewind mount --foreground");
    let mut stderr = String::new();
    if let Some(pipe) = child.0.stderr.as_mut() {
        std::io::Read::read_to_string(pipe, &mut stderr).unwrap();
    }
    let status = child.0.wait().unwrap();
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
    assert!(!is_mounted(mountpoint), "unmounted after SIGTERM");
}

#[test]
fn foreground_stays_attached_until_sigterm() {
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, src) = small_repo(&dir);
    let mountpoint = dir.join("mnt");
    mkdirs(&mountpoint);
    let _cleanup = Unmount(mountpoint.clone());
    let child = repo
        .cmd()
        .arg("mount")
        .arg("--foreground")
        .arg(&mountpoint)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    assert!(
        wait_for(Duration::from_secs(5), || is_mounted(&mountpoint)).is_some(),
        "rewind mount --foreground did not mount"
    );
    assert_eq!(
        run(Command::new("cat").arg(inside(&mountpoint.join("latest"), &src).join("file.txt")))
            .assert_ok()
            .text(),
        "hello\n"
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "--foreground stays attached"
    );
    stop_with_sigterm(child, &mountpoint);
}

#[test]
fn the_contrib_systemd_unit_mounts_and_stops_as_systemd_runs_it() {
    // contrib/rewind-mount.service with this test's binary, repository and
    // mountpoint: ExecStartPre, then ExecStart until ExecStartPost returns,
    // then SIGTERM for `systemctl stop`.
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, src) = small_repo(&dir);
    let mountpoint = dir.join("mnt/backups");
    let _cleanup = Unmount(mountpoint.clone());
    let password_file = dir.join("password");
    write(&password_file, PASSWORD.as_bytes());
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/rewind-mount.service"
    ))
    .unwrap();
    let settings = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(|value| {
                value
                    .replace("/usr/bin/rewind", bin())
                    .replace("/mnt/backups", mountpoint.to_str().unwrap())
            })
            .collect()
    };
    let names: Vec<String> = settings("Environment")
        .iter()
        .map(|assignment| assignment.split_once('=').unwrap().0.to_owned())
        .collect();
    assert_eq!(names, ["REWIND_REPO", "REWIND_PASSWORD_FILE"]);
    // systemd runs commands without a shell, in an environment of its own;
    // these command lines need no quoting that sh would read otherwise.
    let command = |line: &str| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(line)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("REWIND_REPO", &repo.path)
            .env("REWIND_PASSWORD_FILE", &password_file);
        cmd
    };
    for pre in settings("ExecStartPre") {
        run(&mut command(&pre)).assert_ok();
    }
    let [start] = &settings("ExecStart")[..] else {
        panic!("one ExecStart in the unit");
    };
    let service = Reaped(
        command(&format!("exec {start}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    for post in settings("ExecStartPost") {
        run(&mut command(&format!("timeout 10 {post}"))).assert_ok();
    }
    assert!(
        is_mounted(&mountpoint),
        "mounted once ExecStartPost returns"
    );
    let snapshot = inside(&mountpoint.join("latest"), &src);
    assert_eq!(
        run(Command::new("cat").arg(snapshot.join("file.txt")))
            .assert_ok()
            .text(),
        "hello\n"
    );
    // --allow-other: another user may enter, and read what the modes allow.
    let read = run(as_nobody("cat").arg(snapshot.join("public.txt"))).assert_ok();
    assert_eq!(read.text(), "anyone may read this\n");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mountpoint.join(".rewind/status")).unwrap()).unwrap();
    assert!(
        status["scrub"].is_object(),
        "--scrub runs a background scrub: {status:#}"
    );
    stop_with_sigterm(service, &mountpoint);
}

#[test]
fn umount_ends_the_daemon() {
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, _src) = small_repo(&dir);
    let mount = Mount::start(&repo, &dir.join("mnt"), &[]);
    assert!(mount.top_names().contains(&label(DAYS[0])));
    run(Command::new("umount").arg(&mount.mountpoint)).assert_ok();
    assert!(!is_mounted(&mount.mountpoint));
    assert!(
        wait_for(Duration::from_secs(5), || !alive(mount.pid)).is_some(),
        "the daemon {} outlived `umount`\nlog:\n{}",
        mount.pid,
        mount.log_text()
    );
}

#[test]
fn the_status_file_is_whole_and_fresh_while_files_are_read() {
    // Files are opened without a round trip to the daemon, so the status
    // file lives in the page cache like any other: each `cat` must still
    // get one whole, current text, even while its counters keep moving.
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, src) = small_repo(&dir);
    let mount = Mount::start(&repo, &dir.join("mnt"), &[]);
    let file = inside(&mount.path("latest"), &src).join("file.txt");
    // O_DIRECT: every read reaches the daemon and moves its counters.
    let read_direct = || {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut content = Vec::new();
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&file)
            .unwrap()
            .read_to_end(&mut content)
            .unwrap();
        assert_eq!(content, b"hello\n");
    };
    let served = |status: &serde_json::Value| status["bytes_served"].as_u64().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                read_direct();
            }
        });
        let mut last = 0;
        for _ in 0..100 {
            let status = mount.status();
            assert!(
                served(&status) >= last,
                "counters never go back: {status:#}"
            );
            last = served(&status);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let last = served(&mount.status());
    read_direct();
    assert_eq!(
        served(&mount.status()),
        last + 6,
        "each open shows the current counters"
    );
}

#[test]
fn a_repository_given_by_a_relative_path_mounts() {
    // The daemon leaves the directory it was started in.
    require_root();
    let (_tmp, dir) = tempdir();
    let (_repo, src) = small_repo(&dir);
    let mut rewind = Repo {
        path: PathBuf::from("repo"),
    }
    .cmd();
    rewind.current_dir(&dir);
    let mount = Mount::start_with(rewind, &dir.join("mnt"), &[]);
    assert_eq!(
        run(Command::new("cat").arg(inside(&mount.path("latest"), &src).join("file.txt")))
            .assert_ok()
            .text(),
        "hello\n",
        "log:\n{}",
        mount.log_text()
    );
}

/// Starts a daemon on `mountpoint` and kills it with SIGKILL, leaving its
/// mount behind; returns once the daemon is gone.
fn leave_a_stale_mount(repo: &Repo, mountpoint: &Path) -> Unmount {
    let killed = Mount::start(repo, mountpoint, &[]);
    assert!(killed.top_names().contains(&label(DAYS[0])));
    kill(killed.pid, libc::SIGKILL);
    assert!(wait_for(Duration::from_secs(5), || !alive(killed.pid)).is_some());
    assert!(
        is_mounted(mountpoint),
        "a killed daemon leaves its mount behind"
    );
    killed.disarm()
}

/// The next `rewind mount` on the same mountpoint clears the stale mount
/// and serves.
fn check_remount(repo: &Repo, src: &Path, mountpoint: &Path) {
    let mount = Mount::start(repo, mountpoint, &[]);
    assert!(
        mount.started.stderr.contains("stale"),
        "`rewind mount` says it cleared a stale mount:\n{}",
        mount.started.stderr
    );
    assert_eq!(
        mounts_at(mountpoint),
        1,
        "the stale mount is gone, the new one is there"
    );
    assert_eq!(
        run(Command::new("cat").arg(inside(&mount.path("latest"), src).join("file.txt")))
            .assert_ok()
            .text(),
        "hello\n"
    );
}

#[test]
fn a_stale_mount_left_by_kill_9_is_cleared_by_the_next_mount() {
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, src) = small_repo(&dir);
    let mountpoint = dir.join("mnt");
    let _stale = leave_a_stale_mount(&repo, &mountpoint);
    // What the user sees once the kernel's cached attributes expire.
    let enotconn = || {
        std::fs::metadata(&mountpoint)
            .err()
            .and_then(|e| e.raw_os_error())
            == Some(libc::ENOTCONN)
    };
    assert!(
        wait_for(Duration::from_secs(5), enotconn).is_some(),
        "the stale mountpoint answers ENOTCONN"
    );
    check_remount(&repo, &src, &mountpoint);
}

/// A supervisor (systemd's Restart=) starts the daemon again right after it
/// died, while the kernel may still hold the dead mount's root attributes.
#[test]
fn a_restart_right_after_kill_9_clears_the_stale_mount() {
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, src) = small_repo(&dir);
    let mountpoint = dir.join("mnt");
    let _stale = leave_a_stale_mount(&repo, &mountpoint);
    check_remount(&repo, &src, &mountpoint);
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[test]
fn the_daemon_stops_polling_when_requests_stop() {
    // Lookups and listings make one FUSE thread poll the device; once they
    // stop, the daemon must go back to sleep instead of spinning a CPU.
    require_root();
    let (_tmp, dir) = tempdir();
    let (repo, _src) = small_repo(&dir);
    let mount = Mount::start(&repo, &dir.join("mnt"), &[]);
    for _ in 0..20 {
        run(Command::new("find").arg(&mount.mountpoint).arg("-ls")).assert_ok();
        run(Command::new("getfattr")
            .args(["-R", "-d"])
            .arg(&mount.mountpoint));
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_seconds(mount.pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_seconds(mount.pid) - before;
    assert!(
        used < 0.2,
        "an idle daemon used {used:.2} s of CPU in 1 s\nlog:\n{}",
        mount.log_text()
    );
}
