//! Object lock against a real S3 server that implements it (moto, started by
//! each test on 127.0.0.1), through the real binary: `init --object-lock` on
//! a bucket with Object Lock writes every file under retention; a locked
//! pack cannot be deleted through the S3 API; forget and prune before the
//! retention ends delete nothing locked and say what waits, and a prune
//! after it deletes it; `retention renew` extends what the snapshots need
//! and never shortens anything; and `init --object-lock` is refused where
//! it cannot hold.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde_json::{json, Value};

use common::*;

const BUCKET: &str = "locked";
const PREFIX: &str = "host1";
/// The test knob that lets `--object-lock` take a period in seconds.
const SHORT_LOCKS: &str = "REWIND_TEST_SHORT_OBJECT_LOCK";

/// A server with a bucket that has Object Lock, and a repository handle
/// in it whose cache is under `dir`.
fn server_and_repo(dir: &Path) -> (MotoServer, S3Repo) {
    let server = MotoServer::start(dir);
    server.create_bucket(BUCKET, true);
    let repo = server
        .repo(BUCKET, PREFIX)
        .with_env("REWIND_CACHE_DIR", text(&dir.join("cache")))
        .with_env(SHORT_LOCKS, "1");
    (server, repo)
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 test path")
}

/// A small tree to back up.
fn source(dir: &Path, rng: &mut Rng) -> PathBuf {
    let src = dir.join("src");
    mkdirs(&src.join("docs"));
    write(&src.join("docs/notes.txt"), &rng.text(20_000));
    write(&src.join("photo.raw"), &rng.bytes(300_000));
    src
}

#[track_caller]
fn backup(repo: &S3Repo, src: &Path, time: &str) -> String {
    let report = repo
        .run(["backup", "--json", "--host", "h", "--time", time, text(src)])
        .assert_ok()
        .json();
    report["id"].as_str().expect("a snapshot id").to_string()
}

/// The stored versions under the repository's `dir` that are objects, not
/// delete markers.
fn object_versions(server: &MotoServer, dir: &str) -> Vec<Version> {
    server
        .versions(BUCKET, &format!("{PREFIX}/{dir}"))
        .into_iter()
        .filter(|v| !v.delete_marker)
        .collect()
}

#[track_caller]
fn until(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a date: {value}"))
}

#[test]
fn init_with_object_lock_writes_every_file_under_retention() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed(
        "init_with_object_lock_writes_every_file_under_retention",
    ));
    let src = source(&dir, &mut rng);
    // Each packer (one per CPU) fills a pack of its own: with more than 5
    // MiB for each, one pack is larger than a part and goes up in parts.
    let packers = std::thread::available_parallelism().map_or(2, |n| n.get());
    write(&src.join("large.bin"), &rng.bytes((packers * 5 + 2) << 20));
    let (server, repo) = server_and_repo(&dir);
    let repo = repo.with_env("REWIND_S3_PART_SIZE", "5");

    let before = Utc::now();
    let created = repo
        .run([
            "init",
            "--object-lock",
            "30d",
            "--object-lock-mode",
            "compliance",
        ])
        .assert_ok();
    assert!(
        created.text().contains("COMPLIANCE retention for 30d"),
        "{}",
        created.text()
    );
    backup(&repo, &src, "2024-06-01T02:00:00Z");
    let after = Utc::now();
    assert!(
        server
            .log_text()
            .contains(&format!("POST /{BUCKET}/{PREFIX}/data/")),
        "no pack went up in parts"
    );

    // The period is in the config, which the MAC covers.
    let config = server.api("GET", &format!("{BUCKET}/{PREFIX}/config"), &[], "");
    let config: Value = serde_json::from_str(&config.body).unwrap();
    assert_eq!(
        config["object_lock"],
        json!({"mode": "compliance", "period": 30 * 86_400})
    );

    let keys = server.keys(BUCKET, &format!("{PREFIX}/"));
    for dir in ["config", "keys/", "data/", "index/", "snapshots/"] {
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("{PREFIX}/{dir}"))),
            "no {dir} in {keys:?}"
        );
    }
    let period = chrono::Duration::days(30);
    for key in &keys {
        let (mode, until) = server
            .retention(BUCKET, key)
            .unwrap_or_else(|| panic!("{key} has no retention"));
        assert_eq!(mode, "COMPLIANCE", "{key}");
        assert!(
            until >= before + period - chrono::Duration::seconds(2)
                && until <= after + period + chrono::Duration::seconds(2),
            "{key} is retained until {until}, not 30 days from its writing"
        );
    }
    // Locks carry no retention and leave no version behind.
    assert_eq!(server.versions(BUCKET, &format!("{PREFIX}/locks/")), vec![]);

    // Compliance: not even a bypass of governance deletes a version.
    let pack = object_versions(&server, "data/").remove(0);
    let refused = server.api(
        "DELETE",
        &format!("{BUCKET}/{}?versionId={}", pack.key, pack.version_id),
        &[("x-amz-bypass-governance-retention", "true")],
        "",
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    repo.run(["check", "--read-data"]).assert_ok();
}

#[test]
fn a_locked_pack_cannot_be_deleted_through_the_s3_api() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("a_locked_pack_cannot_be_deleted_through_the_s3_api"));
    let src = source(&dir, &mut rng);
    let (server, repo) = server_and_repo(&dir);
    repo.run(["init", "--object-lock", "30d"]).assert_ok();
    backup(&repo, &src, "2024-06-01T02:00:00Z");

    let packs = object_versions(&server, "data/");
    assert!(!packs.is_empty());
    for pack in &packs {
        let (mode, _) = server.retention(BUCKET, &pack.key).unwrap();
        assert_eq!(mode, "GOVERNANCE");
        // What a stolen client holding the keys would try.
        let refused = server.delete_version(BUCKET, pack);
        assert_eq!(refused.status, 403, "{}: {}", pack.key, refused.body);
        assert!(refused.body.contains("AccessDenied"), "{}", refused.body);
    }
    assert_eq!(object_versions(&server, "data/"), packs);
    repo.run(["check", "--read-data"]).assert_ok();
}

#[test]
fn prune_waits_for_retention_to_end_then_deletes() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("prune_waits_for_retention_to_end_then_deletes"));
    let src = source(&dir, &mut rng);
    let (server, repo) = server_and_repo(&dir);
    repo.run(["init", "--object-lock", "40s"]).assert_ok();
    let first = backup(&repo, &src, "2024-06-01T02:00:00Z");
    // The photo goes: only the first snapshot uses its pack.
    std::fs::remove_file(src.join("photo.raw")).unwrap();
    write(&src.join("new.raw"), &rng.bytes(200_000));
    let second = backup(&repo, &src, "2024-06-02T02:00:00Z");

    repo.run(["forget", &first]).assert_ok();
    let listed: Vec<Value> = repo
        .run(["snapshots", "--json"])
        .assert_ok()
        .json()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], json!(second));
    // The manifest is hidden, not gone: the store keeps it.
    let manifest = format!("snapshots/{first}");
    assert_eq!(object_versions(&server, &manifest).len(), 1);
    assert!(!server
        .keys(BUCKET, &format!("{PREFIX}/{manifest}"))
        .contains(&format!("{PREFIX}/{manifest}")));

    let stored_before = server.versions(BUCKET, &format!("{PREFIX}/"));
    let report = repo.run(["prune", "--json"]).assert_ok().json();
    assert_eq!(report["packs_deleted"], json!(0), "{report:#}");
    let retained = &report["retained"];
    assert!(retained["packs"].as_u64().unwrap() >= 1, "{report:#}");
    assert_eq!(retained["manifests"], json!(1), "{report:#}");
    let last_until = until(&retained["last_until"]);
    // Nothing stored was deleted: every version is still there.
    let stored_after = server.versions(BUCKET, &format!("{PREFIX}/"));
    for version in stored_before.iter().filter(|v| !v.delete_marker) {
        assert!(stored_after.contains(version), "{version:?} was deleted");
    }
    // What waits is neither damage nor lost data to check and scrub.
    repo.run(["check", "--read-data"]).assert_ok();
    repo.run(["scrub"]).assert_ok();

    // A second prune before the date says what waits, and deletes nothing.
    let again = repo.run(["prune"]).assert_ok().text();
    assert!(again.contains("stay under object lock until"), "{again}");
    assert!(again.contains("0 pack files (0 B) deleted now"), "{again}");

    let wait = (last_until - Utc::now()).num_milliseconds().max(0) as u64 + 1500;
    assert!(wait < 60_000, "the retention ends too late: {last_until}");
    std::thread::sleep(Duration::from_millis(wait));

    let report = repo.run(["prune", "--json"]).assert_ok().json();
    assert!(report["packs_deleted"].as_u64().unwrap() >= 1, "{report:#}");
    assert_eq!(report["retained"]["packs"], json!(0), "{report:#}");
    assert_eq!(report["retained"]["manifests"], json!(0), "{report:#}");
    // Deleted for good: no version of the manifest, no plan left, and no
    // pack version that the listing does not show.
    assert_eq!(
        server.versions(BUCKET, &format!("{PREFIX}/{manifest}")),
        vec![]
    );
    assert_eq!(
        server.versions(BUCKET, &format!("{PREFIX}/deletions/")),
        vec![]
    );
    let listed_packs = server.keys(BUCKET, &format!("{PREFIX}/data/"));
    let stored_packs: Vec<String> = server
        .versions(BUCKET, &format!("{PREFIX}/data/"))
        .into_iter()
        .map(|v| v.key)
        .collect();
    assert_eq!(stored_packs, listed_packs);
    repo.run(["check", "--read-data"]).assert_ok();
    let target = dir.join("restored");
    repo.run(["restore", &second, "--target", text(&target)])
        .assert_ok();
    assert_eq!(
        std::fs::read(under(&target, &src.join("new.raw"))).unwrap(),
        std::fs::read(src.join("new.raw")).unwrap()
    );
}

#[test]
fn renew_extends_the_retention_of_what_snapshots_need() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("renew_extends_the_retention_of_what_snapshots_need"));
    let src = source(&dir, &mut rng);
    let (server, repo) = server_and_repo(&dir);
    repo.run(["init", "--object-lock", "1d"]).assert_ok();
    let first = backup(&repo, &src, "2024-06-01T02:00:00Z");
    std::fs::remove_file(src.join("photo.raw")).unwrap();
    backup(&repo, &src, "2024-06-02T02:00:00Z");
    repo.run(["forget", &first]).assert_ok();
    let pruned = repo.run(["prune", "--json"]).assert_ok().json();
    let waiting = &pruned["retained"];
    assert!(waiting["packs"].as_u64().unwrap() >= 1, "{pruned:#}");

    let retention_of = |dir: &str| -> Vec<(String, DateTime<Utc>)> {
        server
            .keys(BUCKET, &format!("{PREFIX}/{dir}"))
            .into_iter()
            .map(|key| {
                let (_, until) = server.retention(BUCKET, &key).unwrap();
                (key, until)
            })
            .collect()
    };
    let dirs = ["config", "keys/", "snapshots/", "index/", "data/"];
    let before: Vec<_> = dirs.iter().map(|dir| retention_of(dir)).collect();
    // Retention dates have whole seconds.
    std::thread::sleep(Duration::from_millis(1100));

    let dry = repo
        .run(["retention", "renew", "--dry-run", "--json"])
        .assert_ok()
        .json();
    assert_eq!(dry["dry_run"], json!(true));
    assert_eq!(dry["extended"], dry["files"], "{dry:#}");
    let unchanged: Vec<_> = dirs.iter().map(|dir| retention_of(dir)).collect();
    assert_eq!(unchanged, before);

    let renewed = repo
        .run(["retention", "renew", "--json"])
        .assert_ok()
        .json();
    assert_eq!(renewed["extended"], renewed["files"], "{renewed:#}");
    assert_eq!(renewed["already"], json!(0));
    let target = until(&renewed["until"]);
    // What the snapshots need was extended to the period from now; what
    // the deletion plan holds (packs, superseded index files) was not, so
    // that its retention ends.
    let after: Vec<_> = dirs.iter().map(|dir| retention_of(dir)).collect();
    for ((dir, before), after) in dirs.iter().zip(&before).zip(&after) {
        let mut kept = 0;
        for ((key, was), (same_key, now)) in before.iter().zip(after) {
            assert_eq!(key, same_key);
            assert!(now >= was, "{key}: shortened from {was} to {now}");
            if now == was {
                kept += 1;
            } else {
                assert!((target - *now).num_seconds().abs() <= 1, "{key}: {now}");
            }
        }
        let expected = match *dir {
            "data/" => waiting["packs"].as_u64().unwrap(),
            "index/" => waiting["index_files"].as_u64().unwrap(),
            _ => 0,
        };
        assert_eq!(kept, expected, "{dir}: {before:?}\n{after:?}");
    }
    let packs_after = &after[4];

    // A file locked for longer by hand keeps its date: renewing never
    // shortens (S3 may let a shorter date through; moto does).
    let (kept, _) = packs_after
        .iter()
        .find(|(_, until)| (target - *until).num_seconds().abs() <= 1)
        .unwrap();
    let far = "2030-01-01T00:00:00Z";
    let body = format!(
        "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>{far}</RetainUntilDate></Retention>"
    );
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(body.as_bytes()));
    let set = server.api(
        "PUT",
        &format!("{BUCKET}/{kept}?retention"),
        &[("content-md5", &md5)],
        &body,
    );
    assert_eq!(set.status, 200, "{}", set.body);
    std::thread::sleep(Duration::from_millis(1100));
    let again = repo
        .run(["retention", "renew", "--json"])
        .assert_ok()
        .json();
    assert_eq!(again["already"], json!(1), "{again:#}");
    assert_eq!(
        server.retention(BUCKET, kept).unwrap().1,
        far.parse::<DateTime<Utc>>().unwrap()
    );
    repo.run(["check", "--read-data"]).assert_ok();
}

#[test]
fn object_lock_is_refused_where_it_cannot_hold() {
    let (_tmp, dir) = tempdir();
    let server = MotoServer::start(&dir);
    let cache = dir.join("cache");
    let in_bucket = |bucket: &str| {
        server
            .repo(bucket, PREFIX)
            .with_env("REWIND_CACHE_DIR", text(&cache))
    };

    // A bucket without Object Lock: one line that says how to get it, and
    // nothing written.
    server.create_bucket("plain", false);
    in_bucket("plain")
        .run(["init", "--object-lock", "30d"])
        .assert_one_line_error(&[
            "plain",
            "does not have Object Lock enabled",
            "create-bucket",
        ]);
    assert_eq!(server.keys("plain", ""), Vec::<String>::new());

    // A bucket whose own default retention would lock lock files.
    server.create_bucket("defaulted", true);
    let rule = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule>\
                <DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention>\
                </Rule></ObjectLockConfiguration>";
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(rule.as_bytes()));
    let set = server.api(
        "PUT",
        "defaulted?object-lock",
        &[("content-md5", &md5)],
        rule,
    );
    assert_eq!(set.status, 200, "{}", set.body);
    in_bucket("defaulted")
        .run(["init", "--object-lock", "30d"])
        .assert_one_line_error(&["default retention", "lock files"]);
    assert_eq!(server.keys("defaulted", ""), Vec::<String>::new());

    // A local directory: what it can and cannot guarantee.
    let local = dir.join("local");
    run(std::process::Command::new(bin())
        .args(["--repo", text(&local), "init", "--object-lock", "30d"])
        .env("REWIND_PASSWORD", PASSWORD))
    .assert_one_line_error(&["local directory", "delete or overwrite", "rewind copy"]);
    assert!(!local.exists());

    // Periods too short to renew within, and a mode without a period.
    server.create_bucket(BUCKET, true);
    in_bucket(BUCKET)
        .run(["init", "--object-lock", "12h"])
        .assert_fails_with("at least one day");
    in_bucket(BUCKET)
        .run(["init", "--object-lock-mode", "compliance"])
        .assert_fails_with("--object-lock");
    assert_eq!(server.keys(BUCKET, ""), Vec::<String>::new());

    // A repository without object lock has nothing to renew.
    in_bucket(BUCKET).run(["init"]).assert_ok();
    in_bucket(BUCKET)
        .run(["retention", "renew"])
        .assert_one_line_error(&["has no object lock", "init --object-lock"]);
}

#[test]
fn a_key_removed_under_object_lock_opens_nothing() {
    let (_tmp, dir) = tempdir();
    let (server, repo) = server_and_repo(&dir);
    repo.run(["init", "--object-lock", "30d"]).assert_ok();
    let second = repo.clone().with_env("REWIND_NEW_PASSWORD", "second");
    second.run(["key", "add", "--label", "spare"]).assert_ok();
    let keys = repo.run(["key", "list", "--json"]).assert_ok().json();
    let spare = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "spare")
        .expect("the added key is listed")["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The locked key file cannot be deleted; it is hidden instead.
    repo.run(["key", "remove", &spare[..8]]).assert_ok();
    let with_spare = repo.clone().with_env("REWIND_PASSWORD", "second");
    with_spare
        .run(["snapshots"])
        .assert_one_line_error(&["wrong password"]);
    let keys = repo.run(["key", "list", "--json"]).assert_ok().json();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    // Its locked version is still in the bucket, under its retention.
    assert_eq!(object_versions(&server, "keys/").len(), 2);
}
