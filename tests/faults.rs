//! Bad input and faults: wrong passwords, missing or future repositories,
//! unreadable sources, malicious snapshots, damaged packs, killed backups and
//! full disks. Each ends in a clear exit code and message, and never in a
//! broken repository or a byte written where it must not be.

mod common;

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rewind::format::FORMAT_VERSION;
use rewind::Encryption;
use rewind::NodeKind;
use serde_json::json;

#[test]
fn wrong_or_missing_password_is_a_one_line_error() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let mut wrong = Repo::at(&repo.path, Encryption::Aes256Gcm);
    wrong.password = Some("not the password".into());
    for args in [&["snapshots"][..], &["check"], &["cat", "latest:/x"]] {
        wrong
            .run(args)
            .assert_one_line_error(&["wrong password", repo.path.to_str().unwrap()]);
    }
    let src = dir.join("src");
    mkdirs(&src);
    wrong
        .run(["backup".as_ref(), src.as_os_str()])
        .assert_one_line_error(&["wrong password"]);
    assert!(repo.snapshots().is_empty(), "nothing was backed up");

    wrong.password = None;
    wrong
        .run(["snapshots"])
        .assert_one_line_error(&["REWIND_PASSWORD"]);
}

#[test]
fn missing_repository_is_a_one_line_error() {
    let (_tmp, dir) = tempdir();
    let nowhere = dir.join("nowhere");
    let repo = Repo::at(&nowhere, Encryption::Aes256Gcm);
    for args in [
        &["snapshots"][..],
        &["check", "--read-data"],
        &["ls", "latest"],
    ] {
        repo.run(args)
            .assert_one_line_error(&["no repository", nowhere.to_str().unwrap()]);
    }
    repo.run(["backup".as_ref(), dir.as_os_str()])
        .assert_one_line_error(&["no repository"]);
    assert!(
        !nowhere.exists(),
        "a failed command must not create the repository"
    );

    // No repository named at all.
    let mut cmd = repo.command();
    cmd.env_remove("REWIND_REPO").arg("snapshots");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("REWIND_REPO"), "{stderr}");
}

#[test]
fn newer_repository_format_is_refused() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let config_path = repo.path.join("config");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    let newer = FORMAT_VERSION + 1;
    config["version"] = json!(newer);
    // A newer format may add fields this version does not know.
    config["a_field_from_the_future"] = json!(true);
    write(&config_path, &serde_json::to_vec_pretty(&config).unwrap());

    let files_before = all_paths(&repo.path);
    let src = dir.join("src");
    mkdirs(&src);
    write(&src.join("f"), b"data");
    for args in [
        vec!["snapshots".to_string()],
        vec!["check".into()],
        vec!["backup".into(), src.to_str().unwrap().into()],
    ] {
        repo.run(&args)
            .assert_one_line_error(&[&format!("version {newer}"), "upgrade"]);
    }
    assert_eq!(
        all_paths(&repo.path),
        files_before,
        "nothing is written to a repository of an unknown format"
    );
}

#[test]
fn damaged_snapshot_manifest_hides_nothing_else() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    mkdirs(&src);
    write(&src.join("f"), b"data");
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let first = repo.backup([arg(&src)]);
    let second = repo.backup([arg(&src)]);
    let name = first["id"].as_str().unwrap();
    let path = repo.path.join("snapshots").join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    write(&path, &bytes);

    let run = repo.run(["snapshots", "--json"]).assert_ok();
    let listed = run.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], second["id"]);
    assert!(
        run.stderr.contains(name),
        "the damaged file is named: {}",
        run.stderr
    );
    let run = repo.run(["check"]).assert_code(1);
    assert!(
        run.stderr.contains("damaged snapshot") && run.stderr.contains(name),
        "{}",
        run.stderr
    );
    let target = dir.join("t");
    repo.restore("latest", &target, &[]).assert_ok();
    assert_eq!(
        std::fs::read(under(&target, &src).join("f")).unwrap(),
        b"data"
    );
}

/// As an unprivileged user, with a file and a directory that user cannot read.
#[test]
fn unreadable_source_is_skipped_with_a_warning_and_exit_code_3() {
    const NOBODY: u32 = 65534;
    let (_tmp, dir) = tempdir();
    chmod(&dir, 0o755);
    let src = dir.join("src");
    for rel in ["a.txt", "sub/b.txt", "locked/inside.txt", "secret.txt"] {
        let path = src.join(rel);
        mkdirs(path.parent().unwrap());
        write(&path, rel.as_bytes());
    }
    for path in all_paths(&src) {
        lchown(&path, NOBODY, NOBODY);
    }
    lchown(&src.join("secret.txt"), 0, 0);
    chmod(&src.join("secret.txt"), 0o600);
    lchown(&src.join("locked"), 0, 0);
    chmod(&src.join("locked"), 0o700);
    let repo_dir = dir.join("repo");
    mkdirs(&repo_dir);
    lchown(&repo_dir, NOBODY, NOBODY);

    let mut repo = Repo::at(&repo_dir, Encryption::Aes256Gcm);
    repo.run_as = Some(NOBODY);
    repo.run(["init"]).assert_ok();
    // As that user, the sources really are unreadable.
    let probe = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(src.join("secret.txt"))
        .output()
        .unwrap();
    assert!(
        !probe.status.success(),
        "nobody must not be able to read the secret"
    );

    let run = repo
        .run(["backup".as_ref(), "--json".as_ref(), src.as_os_str()])
        .assert_code(3);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    let secret = src.join("secret.txt");
    let locked = src.join("locked");
    for path in [&secret, &locked] {
        assert!(
            warnings.iter().any(|w| w.contains(path.to_str().unwrap())),
            "a warning names {}:\n{}",
            path.display(),
            run.stderr
        );
    }
    assert_eq!(warnings.len(), 2, "{}", run.stderr);
    let last = run.stderr.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("rewind:") && last.contains("2 entries"),
        "a summary line ends stderr: {}",
        run.stderr
    );
    let snapshot = run.json();
    assert_eq!(snapshot["warnings"].as_array().unwrap().len(), 2);
    assert_eq!(snapshot["summary"]["errors"], json!(2));

    // The rest is in the snapshot, and readable.
    repo.run_as = None;
    let entries = repo.ls(&spec("latest", &src));
    let has = |rel: &str| entries.contains_key(&format!("{}/{rel}", src.display()));
    assert!(has("a.txt") && has("sub/b.txt"), "{:?}", entries.keys());
    assert!(!has("secret.txt") && !has("locked/inside.txt"));
    let cat = repo
        .run(["cat", &spec("latest", &src.join("sub/b.txt"))])
        .assert_ok();
    assert_eq!(cat.stdout, b"sub/b.txt");
}

/// Snapshot trees crafted with entries that would write outside the
/// target: every one is refused, everything else is restored.
#[test]
fn malicious_tree_entries_are_refused() {
    let (_tmp, dir) = tempdir();
    let sentinel = dir.join("sentinel");
    mkdirs(&sentinel);
    write(&sentinel.join("victim"), b"original content");
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let lib = repo.open();

    const EVIL: &[u8] = b"written by a malicious snapshot";
    let evil_file = |name: &[u8]| file_node(&lib, name, EVIL);
    let evil_dir = |name: &[u8]| dir_node(name, store_tree(&lib, vec![evil_file(b"escaped")]));
    let symlink = |name: &[u8], target: &Path| {
        let mut n = node(name, NodeKind::Symlink);
        n.link_target = target.as_os_str().as_bytes().to_vec();
        n
    };
    let sentinel_name = sentinel.as_os_str().as_bytes().to_vec();
    let mut absolute_file = sentinel_name.clone();
    absolute_file.extend_from_slice(b"/absolute");
    let mut nodes = vec![
        evil_file(b"ok.txt"),
        evil_dir(b".."),
        evil_dir(b"."),
        evil_file(b""),
        dir_node(b"a", store_tree(&lib, vec![])),
        evil_file(b"a/b"),
        evil_file(&absolute_file),
        evil_dir(&sentinel_name),
        evil_file(b"nul\0byte"),
        // A symlink to the outside, then a directory of the same name.
        symlink(b"link", &sentinel),
        evil_dir(b"link"),
        // A symlink to a file outside, then a file of the same name: the
        // second of two entries with one name is refused, the link stays.
        symlink(b"link2", &sentinel.join("victim")),
        evil_file(b"link2"),
        // A directory, then a symlink of the same name.
        evil_dir(b"link3"),
        symlink(b"link3", &sentinel),
    ];
    // The same tricks one level down.
    let nested = store_tree(
        &lib,
        vec![evil_dir(b".."), symlink(b"up", &sentinel), evil_dir(b"up")],
    );
    nodes.push(dir_node(b"nested", nested));
    let refused = 12;
    let root = store_tree(&lib, nodes);
    save_snapshot(&lib, root, &["/crafted"]);

    let sentinel_before = Manifest::of(&sentinel);
    let target = dir.join("target");
    let run = repo.restore("latest", &target, &[]).assert_code(1);
    assert!(
        run.stderr
            .contains(&format!("{refused} entries could not be restored")),
        "each malicious entry is refused:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("refusing"), "{}", run.stderr);

    // Nothing outside the target changed.
    sentinel_before.assert_same(&Manifest::of(&sentinel), "the sentinel directory");
    assert_eq!(
        list_dir(&dir),
        [&b"repo"[..], b"sentinel", b"target"],
        "nothing new next to the target"
    );
    // Inside the target: the good entry, and no path through a symlink.
    assert_eq!(std::fs::read(target.join("ok.txt")).unwrap(), EVIL);
    assert!(!target.join("a/b").exists());
    let link2 = std::fs::symlink_metadata(target.join("link2")).unwrap();
    assert!(link2.is_symlink(), "link2 is the first entry of that name");
    assert!(run
        .stderr
        .contains("\"link2\" in /: the name is listed twice"));
    for path in all_paths(&target) {
        let rel = path.strip_prefix(&target).unwrap();
        let mut prefix = target.clone();
        for c in rel.parent().into_iter().flat_map(|p| p.components()) {
            prefix.push(c);
            assert!(
                !std::fs::symlink_metadata(&prefix)
                    .unwrap()
                    .file_type()
                    .is_symlink(),
                "{} was restored through the symlink {}",
                path.display(),
                prefix.display()
            );
        }
    }
}

/// Flips one byte of one data blob in a pack: `check --read-data` names the
/// pack, the snapshot and every path with data in it; `restore` restores
/// every other file exactly, leaves the damaged one out and fails; `cat`
/// never prints a wrong byte.
fn damaged_pack(encryption: Encryption, test: &str) {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed(test));
    let src = dir.join("src");
    mkdirs(&src.join("sub"));
    let victim_data = rng.bytes(1_500_000);
    write(&src.join("victim.bin"), &victim_data);
    for i in 0..5 {
        write(&src.join(format!("sub/big{i}.bin")), &rng.bytes(600_000));
    }
    for i in 0..10 {
        write(&src.join(format!("small{i}.txt")), &rng.text(3000));
    }
    let expected = freeze(&src);
    let repo = Repo::init(&dir.join("repo"), encryption);
    let snapshot = repo.backup([arg(&src)]);
    let short = &snapshot["id"].as_str().unwrap()[..8];

    let lib = repo.open();
    let tree = lib.snapshots().unwrap()[0].tree;
    let chunks = file_chunks(&lib, &tree);
    let victim_path = format!("{}/victim.bin", src.display());
    let blob = chunks[&victim_path][0];
    let (location, pack) = {
        let index = lib.index();
        let location = index.get(&blob).unwrap();
        (location, index.pack(location.pack()).id)
    };
    let pack_of = |id: &rewind::Id| lib.index().pack(lib.index().get(id).unwrap().pack()).id;
    let in_pack: BTreeSet<String> = chunks
        .iter()
        .filter(|(_, ids)| ids.iter().any(|id| pack_of(id) == pack))
        .map(|(p, _)| p.clone())
        .collect();
    let broken: BTreeSet<String> = chunks
        .iter()
        .filter(|(_, ids)| ids.contains(&blob))
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(broken, BTreeSet::from([victim_path.clone()]));

    let file = pack_path(&repo.path, &pack);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[(location.offset + location.stored_len / 2) as usize] ^= 0x55;
    write(&file, &bytes);

    let run = repo.run(["check", "--read-data"]).assert_code(1);
    assert!(
        run.stderr.contains(&pack.to_hex()),
        "names the pack:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(short),
        "names the snapshot:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(victim_path.as_str()),
        "names {victim_path}:\n{}",
        run.stderr
    );
    let report = repo
        .run(["check", "--read-data", "--json"])
        .assert_code(1)
        .json();
    let damaged: Vec<&String> = report["damaged_packs"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(damaged, [&pack.to_hex()]);
    let affected: BTreeSet<String> = report["affected"][short]
        .as_array()
        .unwrap_or_else(|| panic!("no paths for snapshot {short}: {report:#}"))
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    // The damaged file for sure; at most the files with data in that pack
    // (a finer check may clear those whose own blobs still verify).
    assert!(affected.contains(&victim_path), "{report:#}");
    assert!(
        affected.is_subset(&in_pack),
        "only files with data in the damaged pack: {affected:?} vs {in_pack:?}"
    );

    let target = dir.join("restore");
    let run = repo.restore("latest", &target, &[]).assert_code(1);
    assert!(run.stderr.contains(&victim_path), "{}", run.stderr);
    assert!(
        run.stderr.contains("1 entries could not be restored"),
        "{}",
        run.stderr
    );
    expected.without(b"victim.bin").assert_same(
        &Manifest::of(&under(&target, &src)),
        "restore of a damaged repository",
    );

    let run = repo
        .run(["cat", &spec("latest", &src.join("victim.bin"))])
        .assert_failed();
    assert!(
        victim_data.starts_with(&run.stdout),
        "cat printed bytes that are not the file's"
    );
}

#[test]
fn damaged_pack_encrypted() {
    damaged_pack(Encryption::Aes256Gcm, "damaged_pack_encrypted");
}

#[test]
fn damaged_pack_unencrypted() {
    damaged_pack(Encryption::None, "damaged_pack_unencrypted");
}

/// Starts `rewind backup PATH` and kills it with SIGKILL after `delay`
/// unless it ended before; true if it was killed.
fn kill_backup_after(repo: &Repo, path: &Path, delay: Duration) -> bool {
    let mut child = repo
        .command()
        .arg("backup")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < delay && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap();
        eprintln!("killed a backup after {delay:?}");
    } else {
        eprintln!(
            "a backup ended after {:?}, before its kill",
            started.elapsed()
        );
    }
    child.wait().unwrap();
    killed
}

/// A backup killed after it indexed its snapshot's copy and before it wrote
/// the manifest: check warns while the killed backup's lock remains (a
/// running backup looks the same), reports the lost manifest once the
/// stale lock is removed, and a repairing scrub brings the snapshot back.
#[test]
fn a_backup_killed_before_its_manifest_is_a_warning_until_its_lock_goes() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    mkdirs(&src);
    write(&src.join("file"), b"stored before the manifest");
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let gate = dir.join("gate");
    let mut backup = repo.command();
    backup.arg("backup").arg(&src);
    let mut held = spawn_held_at(&mut backup, "snapshot-copy-indexed", &gate);
    held.kill().unwrap();
    held.wait().unwrap();
    assert!(repo.snapshots().is_empty(), "no manifest was written");

    let run = repo.run(["check"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("has a copy in the packs but no manifest: a backup stores the copy first"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 left by interrupted ones"),
        "{}",
        run.stderr
    );

    repo.run(["unlock", "--stale"]).assert_ok();
    let run = repo.run(["check"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("has no readable manifest"),
        "{}",
        run.stderr
    );
    let state = dir.join("scrub.state");
    let run = repo
        .run(["scrub", "--repair", "--state", state.to_str().unwrap()])
        .assert_code(4);
    assert!(
        run.text().contains("1 findings, 0 not repaired"),
        "{}",
        run.text()
    );
    repo.run(["check"]).assert_ok();
    assert_eq!(repo.snapshots().len(), 1, "the snapshot is back");
}

/// Kills real backups (first and incremental) with SIGKILL at several
/// points: each time the repository passes `check`, and the backup after
/// the last kill succeeds and restores exactly.
#[test]
fn killed_backups_leave_a_consistent_repository() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("killed_backups_leave_a_consistent_repository"));
    let src = dir.join("src");
    mkdirs(&src);
    build_bulk_tree(&src, &mut rng, 1500, 24, 3 << 20);
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let check = |when: &str| {
        let run = repo.run(["check"]);
        assert_eq!(run.code, Some(0), "check after {when}:\n{}", run.stderr);
    };

    let mut interrupted = 0;
    for ms in [25, 50, 100, 175, 275, 400, 550, 700] {
        interrupted += kill_backup_after(&repo, &src, Duration::from_millis(ms)) as u32;
        check(&format!("a first backup killed at {ms} ms"));
    }
    // Now with a parent snapshot: kill incremental backups of a changed tree.
    repo.backup([arg(&src)]);
    for i in 0..8 {
        write(&src.join(format!("large/big{i}")), &rng.bytes(3 << 20));
    }
    build_bulk_tree(&src.join("new"), &mut rng, 300, 0, 0);
    for ms in [20, 60, 120, 250] {
        interrupted += kill_backup_after(&repo, &src, Duration::from_millis(ms)) as u32;
        check(&format!("an incremental backup killed at {ms} ms"));
    }
    assert!(
        interrupted >= 6,
        "only {interrupted} backups were still running when killed: make the tree larger"
    );
    repo.run(["check", "--read-data"]).assert_ok();

    let expected = freeze(&src);
    let snapshot = repo.backup([arg(&src)]);
    assert_eq!(snapshot["warnings"], json!([]));
    repo.run(["check", "--read-data"]).assert_ok();
    let target = dir.join("restore");
    repo.restore("latest", &target, &[]).assert_ok();
    expected.assert_same(
        &Manifest::of(&under(&target, &src)),
        "restore after killed backups",
    );
}

/// A repository on a small tmpfs: a backup that does not fit fails with a
/// clear error, writes no snapshot, and leaves a repository that checks.
#[test]
fn full_disk_fails_cleanly() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("full_disk_fails_cleanly"));
    let small = dir.join("small");
    write_tree(
        &small,
        &[("a.txt", rng.text(10_000)), ("b.bin", rng.bytes(100_000))],
    );
    let big = dir.join("big");
    write_tree(
        &big,
        &[
            ("1.bin", rng.bytes(6 << 20)),
            ("2.bin", rng.bytes(6 << 20)),
            ("3.bin", rng.bytes(6 << 20)),
        ],
    );
    let expected = freeze(&small);

    let disk = dir.join("disk");
    let _mount = Mount::tmpfs(&disk, "8m");
    let repo = Repo::init(&disk.join("repo"), Encryption::None);
    let first = repo.backup([arg(&small)]);

    let run = repo
        .run(["backup".as_ref(), big.as_os_str()])
        .assert_one_line_error(&["no space left", "no snapshot was written"]);
    assert_eq!(
        run.stderr.matches("No space left").count(),
        1,
        "the cause is said once: {}",
        run.stderr
    );
    let snapshots = repo.snapshots();
    assert_eq!(snapshots.len(), 1, "no snapshot of the failed backup");
    assert_eq!(snapshots[0]["id"], first["id"]);
    repo.run(["check", "--read-data"]).assert_ok();
    let target = dir.join("restore");
    repo.restore("latest", &target, &[]).assert_ok();
    expected.assert_same(
        &Manifest::of(&under(&target, &small)),
        "restore from a full disk",
    );
}

/// Trees nested deeper than any backup makes (crafted) end in errors, and
/// a real directory nested about as deep as paths allow backs up, checks,
/// lists and restores: no stack overflow anywhere.
#[test]
fn deep_nesting_ends_in_errors_not_crashes() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);

    // A real tree 1900 directories deep (a path of about 3850 bytes).
    let mut deep = dir.join("src");
    for _ in 0..1900 {
        deep.push("d");
    }
    mkdirs(&deep);
    write(&deep.join("leaf"), b"at the bottom");
    repo.backup([arg(&dir.join("src"))]);
    repo.run(["check"]).assert_ok();
    let listed = repo.run(["ls", "latest"]).assert_ok();
    assert!(listed.stdout_text().contains("/leaf\n"));
    let target = dir.join("t");
    repo.restore("latest", &target, &[]).assert_ok();
    assert_eq!(
        std::fs::read(under(&target, &deep).join("leaf")).unwrap(),
        b"at the bottom"
    );

    // A crafted chain of directories deeper than rewind::format::MAX_DEPTH.
    let lib = repo.open();
    let leaf = rewind::Tree::whole(vec![node(b"f", NodeKind::Fifo)]).encode();
    let mut id = lib.blob_id(&leaf);
    let mut blobs = vec![(rewind::format::BlobKind::Tree, leaf)];
    for _ in 0..rewind::format::MAX_DEPTH + 50 {
        let tree = rewind::Tree::whole(vec![dir_node(b"d", id)]).encode();
        id = lib.blob_id(&tree);
        blobs.push((rewind::format::BlobKind::Tree, tree));
    }
    store_blobs(&lib, &blobs);
    save_snapshot(&lib, id, &["/d"]);
    let run = repo.run(["check"]).assert_code(1);
    assert!(run.stderr.contains("deeper than"), "{}", run.stderr);
    repo.run(["ls", "latest"])
        .assert_one_line_error(&["deeper than"]);
    let run = repo.restore("latest", &dir.join("t2"), &[]).assert_code(1);
    assert!(
        run.stderr.contains("deeper than") || run.stderr.contains("too long"),
        "{}",
        run.stderr
    );
}
