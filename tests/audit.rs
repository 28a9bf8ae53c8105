//! The audit trail with real processes (`docs/design.md`, section 7;
//! `man/rewind-log.1`): every command that changes the repository or reads
//! data out of it leaves a record with the right fields and no secret;
//! `log` filters; a record deleted or altered by hand fails `check`; two
//! commands appending at once make two heads that the next record joins;
//! records travel with `copy`; `status` exports the last restore test and
//! the last failed command; a store that refuses the record fails nothing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rewind::format::{crypto, keys_of, FileType, AUDIT_RECORD_VERSION};
use rewind::{AuditEntry, AuditRecord, Backend, Encryption, Id, LocalBackend};
use serde_json::{json, Value};

/// The records `rewind log --json ARGS` shows.
#[track_caller]
fn log(repo: &Repo, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["log", "--json"];
    all.extend_from_slice(args);
    let run = repo.run(all).assert_ok();
    run.json().as_array().expect("a JSON list").clone()
}

fn commands(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect()
}

/// The last record, which must be of `command`.
#[track_caller]
fn last_of(repo: &Repo, command: &str) -> Value {
    let records = log(repo, &[]);
    let last = records.last().expect("a record").clone();
    assert_eq!(last["command"], json!(command), "{last:#}");
    last
}

/// A source directory with a few files.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    mkdirs(&src.join("sub"));
    write(&src.join("a.txt"), b"alpha\n");
    write(&src.join("sub/b.bin"), &[7u8; 10_000]);
    src
}

/// `rewind ARGS` on `repo` in a UTS namespace whose host name is `host`.
fn run_on_host(repo: &Repo, host: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--uts",
        "sh",
        "-c",
        &format!("hostname {host} && exec \"$0\" \"$@\""),
    ])
    .arg(bin())
    .args(args)
    .env_remove("REWIND_PASSWORD_FILE")
    .env("REWIND_REPO", &repo.path)
    .env("REWIND_PASSWORD", PASSWORD);
    run(&mut cmd)
}

#[test]
fn each_command_leaves_a_record_with_its_facts_and_no_secret() {
    let (_tmp, dir) = tempdir();
    let src = source(&dir);
    let password_file = dir.join("password-file-path");
    write(&password_file, PASSWORD.as_bytes());
    let repo = Repo::at(&dir.join("repo"), Encryption::Aes256Gcm);
    let with_file = |args: &[&str]| {
        let mut cmd = repo.command();
        cmd.env_remove("REWIND_PASSWORD")
            // Never recorded: the environment.
            .env("AWS_SECRET_ACCESS_KEY", "an-environment-secret")
            .arg("--password-file")
            .arg(&password_file)
            .args(args);
        run(&mut cmd)
    };
    with_file(&["init", "--parity", "10"]).assert_ok();
    let init = last_of(&repo, "init");
    assert_eq!(init["arguments"][1], json!("<hidden>"), "{init:#}");

    let snapshot = repo.backup([arg(&src)]);
    let id = snapshot["id"].as_str().unwrap();
    let backup = last_of(&repo, "backup");
    assert_eq!(backup["snapshots"], json!([id]));
    assert_eq!(backup["bytes"]["read"], json!(10_006));
    assert!(backup["bytes"]["written"].as_u64().unwrap() > 0);

    let target = dir.join("target");
    repo.restore("latest", &target, &[]).assert_ok();
    let restore = last_of(&repo, "restore");
    assert_eq!(restore["snapshots"], json!([id]));
    assert_eq!(restore["bytes"]["restored"], json!(10_006));

    let cat = repo
        .run(["cat", &spec("latest", &src.join("a.txt"))])
        .assert_ok();
    assert_eq!(cat.stdout, b"alpha\n");
    assert_eq!(last_of(&repo, "cat")["bytes"]["restored"], json!(6));

    repo.run(["restore-test", "--scratch", dir.to_str().unwrap()])
        .assert_ok();
    assert_eq!(last_of(&repo, "restore-test")["snapshots"], json!([id]));

    let mountpoint = dir.join("mnt");
    mkdirs(&mountpoint);
    let _unmount = Unmount(mountpoint.clone());
    let log_file = dir.join("mount.log");
    repo.run([
        "mount".as_ref(),
        mountpoint.as_os_str(),
        "--log-file".as_ref(),
        log_file.as_os_str(),
    ])
    .assert_ok();
    last_of(&repo, "mount");
    run(Command::new("umount").arg(&mountpoint)).assert_ok();
    let unmounted = wait_for(Duration::from_secs(20), || {
        commands(&log(&repo, &[])).last() == Some(&"unmount")
    });
    assert!(unmounted.is_some(), "no unmount record");

    let dest = Repo::init(&dir.join("dest"), Encryption::Aes256Gcm);
    let mut copy = dest.command();
    copy.args(["copy", "--from-repo"])
        .arg(&repo.path)
        .env("REWIND_FROM_PASSWORD", PASSWORD);
    run(&mut copy).assert_ok();
    let copied = last_of(&dest, "copy");
    assert_eq!(copied["snapshots"], json!([dest.snapshots()[0]["id"]]));

    with_file(&["forget", id]).assert_ok();
    assert_eq!(last_of(&repo, "forget")["snapshots"], json!([id]));
    with_file(&["prune"]).assert_ok();
    assert!(
        last_of(&repo, "prune")["bytes"]["deleted"]
            .as_u64()
            .unwrap()
            > 0
    );
    let state = dir.join("scrub-state");
    repo.run(["scrub", "--repair", "--state", state.to_str().unwrap()])
        .assert_ok();
    last_of(&repo, "scrub");
    repo.run(["unlock", "--stale"]).assert_ok();
    last_of(&repo, "unlock");
    // A failure is recorded with its one-line cause.
    repo.run(["restore", "latest", "--target", target.to_str().unwrap()])
        .assert_failed();
    let failed = last_of(&repo, "restore");
    assert_eq!(failed["result"], json!("failed"));
    assert_eq!(failed["exit_code"], json!(1));
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("has no snapshots"),
        "{failed:#}"
    );
    // Dry runs change nothing and read no data: no record.
    repo.run(["prune", "--dry-run"]).assert_ok();
    last_of(&repo, "restore");

    let records = log(&repo, &[]);
    assert_eq!(
        commands(&records),
        [
            "init",
            "backup",
            "restore",
            "cat",
            "restore-test",
            "mount",
            "unmount",
            "forget",
            "prune",
            "scrub",
            "unlock",
            "restore"
        ]
    );
    let host = rewind::hostname();
    let config: Value =
        serde_json::from_slice(&std::fs::read(repo.path.join("config")).unwrap()).unwrap();
    let mut previous: Option<&Value> = None;
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["host"], json!(host));
        assert_eq!(record["user"], json!("root"));
        assert_eq!(record["repository"], config["id"]);
        assert_eq!(
            record["sequence"],
            json!(i + 1),
            "one host numbers its records"
        );
        assert!(record["duration_secs"].as_f64().unwrap() >= 0.0);
        assert!(record["file"].as_str().unwrap().starts_with("audit/"));
        let follows = match previous {
            Some(p) => json!([p["digest"]]),
            None => json!([]),
        };
        assert_eq!(record["follows"], follows, "a chain: {record:#}");
        if record["result"] == json!("ok") {
            assert_eq!(record["exit_code"], json!(0));
            assert!(record.get("error").is_none());
        }
        previous = Some(record);
    }
    let everything = repo.run(["log", "--json"]).assert_ok().text()
        + &dest.run(["log", "--json"]).assert_ok().text();
    for secret in [
        PASSWORD,
        password_file.to_str().unwrap(),
        "an-environment-secret",
    ] {
        assert!(!everything.contains(secret), "{secret} is in a record");
    }
    repo.run(["check"]).assert_ok();
    dest.run(["check"]).assert_ok();
}

#[test]
fn log_filters_by_time_host_and_command() {
    let (_tmp, dir) = tempdir();
    let src = source(&dir);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    repo.backup([arg(&src)]);
    run_on_host(&repo, "db1", &["backup", src.to_str().unwrap()]).assert_ok();
    run_on_host(
        &repo,
        "db1",
        &["restore-test", "--scratch", dir.to_str().unwrap()],
    )
    .assert_ok();
    let all = log(&repo, &[]);
    assert_eq!(commands(&all), ["init", "backup", "backup", "restore-test"]);

    let db1 = log(&repo, &["--host", "db1"]);
    assert_eq!(commands(&db1), ["backup", "restore-test"]);
    assert!(db1.iter().all(|r| r["host"] == json!("db1")));
    assert_eq!(db1[0]["sequence"], json!(1), "db1 numbers its own records");
    assert_eq!(commands(&log(&repo, &["--command", "backup"])).len(), 2);
    assert_eq!(
        commands(&log(&repo, &["--command", "backup", "--host", "db1"])).len(),
        1
    );
    assert!(log(&repo, &["--command", "back"]).is_empty(), "whole words");

    let since = all[2]["time"].as_str().unwrap();
    assert_eq!(log(&repo, &["--since", since]), all[2..].to_vec());
    assert_eq!(log(&repo, &["--since", "1h"]), all);
    assert_eq!(log(&repo, &["--since", "2000-01"]), all);
    assert!(log(&repo, &["--since", "2999"]).is_empty());
    repo.run(["log", "--since", "yesterday"])
        .assert_one_line_error(&["--since", "not a time"]);

    let text = repo.run(["log", "--host", "db1"]).assert_ok().text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("db1") && lines[0].contains("backup") && lines[0].contains("ok"));
    assert!(
        lines[0].contains(&format!("[rewind backup {}]", src.display())),
        "{text}"
    );
}

/// A repository with a chain of a few records, and its records.
fn chained(dir: &Path) -> (Repo, Vec<Value>) {
    let src = source(dir);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    for _ in 0..3 {
        repo.backup([arg(&src)]);
    }
    let records = log(&repo, &[]);
    assert_eq!(records.len(), 4);
    (repo, records)
}

#[test]
fn a_record_deleted_by_hand_fails_check() {
    let (_tmp, dir) = tempdir();
    let (repo, records) = chained(&dir);
    let victim = records[1]["file"].as_str().unwrap();
    std::fs::remove_file(repo.path.join(victim)).unwrap();
    let run = repo.run(["check"]).assert_code(1);
    let digest = &records[1]["digest"].as_str().unwrap()[..8];
    let follower = records[2]["file"].as_str().unwrap();
    assert!(
        run.stderr
            .contains(&format!("audit record {digest} is missing"))
            && run.stderr.contains(follower),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("audit record 2 of host"),
        "the gap in the host's numbers: {}",
        run.stderr
    );
    assert!(run.stderr.contains("were deleted"), "{}", run.stderr);
    assert!(run.stdout_text().contains("ERRORS FOUND"));
    let report = repo.run(["check", "--json"]).assert_code(1).json();
    assert_eq!(report["audit_records"], json!(3));
}

#[test]
fn a_record_with_a_byte_flipped_fails_check() {
    let (_tmp, dir) = tempdir();
    let (repo, records) = chained(&dir);
    let victim = records[2]["file"].as_str().unwrap();
    let path = repo.path.join(victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let run = repo.run(["check"]).assert_code(1);
    assert!(
        run.stderr
            .contains(&format!("{victim} does not hash to its name"))
            && run.stderr.contains("altered or damaged"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("keep the file as evidence"),
        "{}",
        run.stderr
    );
    // Renamed to its new hash, it still does not open: the AEAD tag fails.
    let renamed = format!("audit/{}", Id::of_bytes(&bytes).to_hex());
    std::fs::rename(&path, repo.path.join(&renamed)).unwrap();
    let run = repo.run(["check"]).assert_code(1);
    assert!(
        run.stderr.contains(&renamed) && run.stderr.contains("does not open"),
        "{}",
        run.stderr
    );
    // The log shows the rest, and warns.
    let shown = repo.run(["log"]).assert_ok();
    assert_eq!(shown.text().lines().count(), 3);
    assert!(shown.stderr.contains(&renamed), "{}", shown.stderr);
}

#[test]
fn commands_appending_at_once_make_two_heads_that_the_next_record_joins() {
    let (_tmp, dir) = tempdir();
    let (repo, records) = chained(&dir);
    let head = records.last().unwrap()["digest"].clone();
    let gate = dir.join("gate");
    let src = dir.join("src");
    let children: Vec<_> = (0..2)
        .map(|_| {
            repo.command()
                .args(["backup".as_ref(), src.as_os_str()])
                .env(
                    "REWIND_PAUSE_AT",
                    format!("audit-append:{}", gate.display()),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let waiting = |n: usize| {
        let prefix = "gate.";
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(prefix)
            })
            .count()
            >= n
    };
    assert!(
        wait_for(Duration::from_secs(60), || waiting(2)).is_some(),
        "both backups reach the append"
    );
    write(&gate, b"");
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let records = log(&repo, &[]);
    assert_eq!(records.len(), 6);
    let (a, b) = (&records[4], &records[5]);
    assert_eq!(a["follows"], json!([head]), "both saw the same head");
    assert_eq!(b["follows"], json!([head]));
    assert_ne!(a["digest"], b["digest"]);

    repo.run(["check"]).assert_ok();
    repo.backup([arg(&src)]);
    let joined = last_of(&repo, "backup");
    let mut heads = vec![a["digest"].clone(), b["digest"].clone()];
    heads.sort_by_key(|d| d.as_str().unwrap().to_string());
    assert_eq!(
        joined["follows"],
        json!(heads),
        "the next record joins both"
    );
    repo.run(["check"]).assert_ok();
}

#[test]
fn records_travel_with_copy_and_forget_and_prune_keep_them() {
    let (_tmp, dir) = tempdir();
    let (source_repo, records) = chained(&dir);
    let dest = Repo::init(&dir.join("dest"), Encryption::Aes256Gcm);
    let copy = || {
        let mut cmd = dest.command();
        cmd.args(["copy", "--json", "--from-repo"])
            .arg(&source_repo.path)
            .env("REWIND_FROM_PASSWORD", PASSWORD);
        run(&mut cmd).assert_ok().json()
    };
    assert_eq!(copy()["audit_records_copied"], json!(4));
    let digests = |records: &[Value]| -> BTreeSet<String> {
        records
            .iter()
            .map(|r| r["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let in_dest = log(&dest, &[]);
    assert!(
        digests(&in_dest).is_superset(&digests(&records)),
        "same digests"
    );
    let files = |records: &[Value]| -> BTreeSet<String> {
        records
            .iter()
            .map(|r| r["file"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        files(&in_dest).is_disjoint(&files(&records)),
        "sealed again under the destination's keys"
    );
    assert_eq!(copy()["audit_records_copied"], json!(0), "a second copy");
    dest.run(["check"]).assert_ok();

    let before = log(&dest, &[]).len();
    dest.run(["forget", "--keep-last", "1", "--prune"])
        .assert_ok();
    let after = log(&dest, &[]);
    assert_eq!(after.len(), before + 1, "forget and prune remove no record");
    dest.run(["check"]).assert_ok();
}

#[test]
fn status_exports_the_last_restore_test_and_the_last_failed_command() {
    let (_tmp, dir) = tempdir();
    let src = source(&dir);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    repo.backup([arg(&src)]);
    run_on_host(
        &repo,
        "db1",
        &["restore-test", "--scratch", dir.to_str().unwrap()],
    )
    .assert_ok();
    run_on_host(&repo, "db1", &["backup", "/nowhere/at/all"]).assert_failed();
    let records = log(&repo, &[]);
    let (tested, failed) = (&records[2], &records[3]);
    assert_eq!(failed["result"], json!("failed"), "{failed:#}");
    let seconds = |record: &Value| {
        chrono::DateTime::parse_from_rfc3339(record["time"].as_str().unwrap())
            .unwrap()
            .timestamp()
    };

    let metrics = repo.run(["status", "--prometheus"]).assert_ok().text();
    let sample = |name: &str, host: &str| -> Option<i64> {
        let labels = format!("host=\"{host}\"}} ");
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("rewind_{name}{{")) && l.contains(&labels))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
    };
    let me = rewind::hostname();
    assert_eq!(
        sample("last_restore_test_timestamp_seconds", "db1"),
        Some(seconds(tested)),
        "{metrics}"
    );
    assert_eq!(
        sample("last_failed_command_timestamp_seconds", "db1"),
        Some(seconds(failed))
    );
    assert_eq!(sample("last_restore_test_timestamp_seconds", &me), Some(0));
    assert_eq!(
        sample("last_failed_command_timestamp_seconds", &me),
        Some(0)
    );
    assert!(metrics.contains("# TYPE rewind_last_failed_command_timestamp_seconds gauge"));

    let status = repo.run(["status", "--json"]).assert_ok().json();
    let db1 = &status["audit"]["hosts"]["db1"];
    assert_eq!(db1["last_failed_command"]["command"], json!("backup"));
    assert!(db1["last_failed_command"]["error"]
        .as_str()
        .unwrap()
        .contains("/nowhere/at/all"));
    assert!(db1["last_restore_test"].is_string(), "{status:#}");
    assert_eq!(status["audit"]["records"], json!(4));
    let text = repo.run(["status"]).assert_ok().text();
    assert!(
        text.contains("audit trail: 4 records") && text.contains("db1: last restore test passed"),
        "{text}"
    );
}

#[test]
fn a_store_that_refuses_the_record_fails_no_restore() {
    let (_tmp, dir) = tempdir();
    let src = source(&dir);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    repo.backup([arg(&src)]);
    let read_only = dir.join("read-only");
    mkdirs(&read_only);
    run(Command::new("mount")
        .arg("--bind")
        .arg(&repo.path)
        .arg(&read_only))
    .assert_ok();
    let _unmount = Unmount(read_only.clone());
    run(Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(&read_only))
    .assert_ok();
    let there = Repo::at(&read_only, Encryption::Aes256Gcm);
    let target = dir.join("target");
    let run = there.restore("latest", &target, &[]).assert_ok();
    assert!(
        run.stderr
            .contains("no audit record of this command was written")
            && run.stderr.contains("Read-only file system"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(under(&target, &src.join("a.txt"))).unwrap(),
        b"alpha\n"
    );
}

/// Writes `count` records after those of `repo`, each following the one
/// before, sealed as the repository seals them: the state of a repository
/// after years of commands, made in seconds.
fn craft_records(repo: &Repo, count: usize) {
    let lib = repo.open();
    let backend = LocalBackend::new(&repo.path);
    let trail = lib.audit_trail().unwrap();
    let mut heads = trail.heads();
    let host = "crafted";
    for sequence in 1..=count as u64 {
        let mut entry = AuditEntry::starting("backup", vec!["backup".into(), "/srv".into()]);
        entry.host = host.into();
        let record = AuditRecord {
            version: AUDIT_RECORD_VERSION,
            repository: lib.config().id,
            sequence,
            entry,
            follows: heads,
        };
        let plaintext = serde_json::to_vec(&record).unwrap();
        let mut salt = [0u8; crypto::SALT_LEN];
        crypto::random_bytes(&mut salt).unwrap();
        let mut sealed = salt.to_vec();
        sealed.extend(
            keys_of(&*lib)
                .sealer(&salt)
                .seal(crypto::compress(&plaintext, 3).unwrap())
                .unwrap(),
        );
        backend
            .write(FileType::Audit, &Id::of_bytes(&sealed).to_hex(), &sealed)
            .unwrap();
        heads = vec![Id::of_bytes(&plaintext)];
    }
}

/// The cost of the trail's size: `rewind log` and a backup's extra time
/// with 10,000 records (the figures in `docs/design.md`, section 7).
/// Run with `cargo test --test audit -- --ignored --nocapture`.
#[test]
#[ignore]
fn ten_thousand_records_cost() {
    let (_tmp, dir) = tempdir();
    let src = source(&dir);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let timed = |args: &[&str]| {
        let started = Instant::now();
        repo.run(args).assert_ok();
        started.elapsed()
    };
    let backup = ["backup", src.to_str().unwrap()];
    let five = |args: &[&str]| -> Vec<Duration> { (0..5).map(|_| timed(args)).collect() };
    let backup_few = five(&backup);
    let log_few = five(&["log"]);
    let check_few = five(&["check"]);
    craft_records(&repo, 10_000);
    let log_many = five(&["log"]);
    let backup_many = five(&backup);
    let check_many = five(&["check"]);
    eprintln!(
        "with a handful of records: backup {backup_few:.2?}, log {log_few:.2?}, check {check_few:.2?}"
    );
    eprintln!(
        "with 10,000 records: backup {backup_many:.2?}, log {log_many:.2?}, check {check_many:.2?}"
    );
}
