//! `rewind forget`: a retention policy end to end (what it keeps, that a
//! dry run changes nothing, that check and a repairing scrub leave the
//! forgotten snapshots forgotten and the kept ones restorable), named
//! snapshots, and the refusals that protect against forgetting by accident.

mod common;

use std::path::Path;

use common::*;
use rewind::Encryption;

const WEB: [&str; 6] = [
    "2024-06-01T02:00:00Z",
    "2024-06-01T14:00:00Z",
    "2024-06-02T02:00:00Z",
    "2024-06-03T02:00:00Z",
    "2024-06-03T20:00:00Z",
    "2024-06-10T02:00:00Z",
];
const DB: [&str; 2] = ["2024-06-01T03:00:00Z", "2024-06-05T03:00:00Z"];

/// A repository with the snapshots of WEB (host web) and DB (host db), each
/// of the same small tree with a file that says when it was backed up.
fn repository(dir: &Path) -> (Repo, std::path::PathBuf) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    for (host, times) in [("web", &WEB[..]), ("db", &DB[..])] {
        for time in times {
            std::fs::write(src.join("when.txt"), format!("{host} {time}\n")).unwrap();
            repo.backup([
                arg(&src),
                "--time".as_ref(),
                time.as_ref(),
                "--host".as_ref(),
                host.as_ref(),
            ]);
        }
    }
    (repo, src)
}

/// host -> times of its snapshots, oldest first.
fn times_by_host(repo: &Repo) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = repo
        .snapshots()
        .iter()
        .map(|s| {
            let time = chrono::DateTime::parse_from_rfc3339(s["time"].as_str().unwrap())
                .unwrap()
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            (s["host"].as_str().unwrap().to_string(), time)
        })
        .collect();
    found.sort();
    found
}

fn pairs(host: &str, times: &[&str]) -> Vec<(String, String)> {
    times
        .iter()
        .map(|t| (host.to_string(), t.to_string()))
        .collect()
}

#[test]
fn keep_daily_forgets_per_host_and_leaves_a_sound_repository() {
    let (_tmp, dir) = tempdir();
    let (repo, src) = repository(&dir);
    let before = times_by_host(&repo);

    let plan = repo
        .run(["forget", "--keep-daily", "2", "--dry-run", "--json"])
        .assert_ok()
        .json();
    assert_eq!(times_by_host(&repo), before, "a dry run changes nothing");
    assert_eq!(plan["dry_run"], true);
    let groups = plan["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "one group per host and set of paths");
    let web = groups.iter().find(|g| g["host"] == "web").unwrap();
    let kept: Vec<&str> = web["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["time"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["2024-06-10T02:00:00Z", "2024-06-03T20:00:00Z"]);
    assert_eq!(web["keep"][0]["reasons"][0], "daily snapshot");
    assert_eq!(web["remove"].as_array().unwrap().len(), 4);

    let run = repo.run(["forget", "--keep-daily", "2"]).assert_ok();
    assert!(run.stderr.contains("forgot 4 snapshots"), "{}", run.stderr);
    let mut expected = pairs("db", &DB);
    expected.extend(pairs(
        "web",
        &["2024-06-03T20:00:00Z", "2024-06-10T02:00:00Z"],
    ));
    assert_eq!(times_by_host(&repo), expected);
    let tombstones = std::fs::read_dir(dir.join("repo/forgotten"))
        .unwrap()
        .count();
    assert_eq!(
        tombstones, 1,
        "one tombstone file for the 4 snapshots forgotten"
    );

    // Forgotten on purpose: neither check nor a repairing scrub brings them back.
    repo.run(["check"]).assert_ok();
    let state = dir.join("scrub.state");
    repo.run(["scrub", "--repair", "--state", state.to_str().unwrap()])
        .assert_ok();
    assert_eq!(times_by_host(&repo), expected);

    // What is kept restores, byte for byte.
    let target = dir.join("restored");
    repo.restore(
        &format!("@2024-06-03T20:00:00Z:{}", src.display()),
        &target,
        &["--host", "web"],
    )
    .assert_ok();
    assert_eq!(
        std::fs::read_to_string(target.join("when.txt")).unwrap(),
        "web 2024-06-03T20:00:00Z\n"
    );
}

#[test]
fn named_snapshots_are_forgotten_and_nothing_else() {
    let (_tmp, dir) = tempdir();
    let (repo, _src) = repository(&dir);
    let newest_db = repo
        .snapshots()
        .into_iter()
        .find(|s| s["host"] == "db" && s["time"].as_str().unwrap().starts_with("2024-06-05"))
        .unwrap();
    let prefix = &newest_db["short_id"].as_str().unwrap()[..6];
    repo.run(["forget", prefix, "@2024-06-01T14"]).assert_ok();
    let mut expected = pairs("db", &DB[..1]);
    expected.extend(pairs("web", &[WEB[0], WEB[2], WEB[3], WEB[4], WEB[5]]));
    assert_eq!(times_by_host(&repo), expected);

    // An unknown snapshot is an error, and nothing is forgotten.
    repo.run(["forget", "ffffffff", "latest"])
        .assert_one_line_error(&["ffffffff"]);
    assert_eq!(times_by_host(&repo), expected);
}

#[test]
fn forget_refuses_to_guess() {
    let (_tmp, dir) = tempdir();
    let (repo, _src) = repository(&dir);
    let before = times_by_host(&repo);
    repo.run(["forget"])
        .assert_one_line_error(&["no --keep-* policy", "nothing to forget"]);
    repo.run(["forget", "latest", "--keep-last", "1"])
        .assert_one_line_error(&["not both"]);
    repo.run(["forget", "--keep-within", "30x"]).assert_failed();
    repo.run(["forget", "--keep-last", "1", "--group-by", "hostname"])
        .assert_one_line_error(&["hostname"]);
    assert_eq!(
        times_by_host(&repo),
        before,
        "a refused forget changes nothing"
    );
}

#[test]
fn keep_last_over_one_group_and_filters() {
    let (_tmp, dir) = tempdir();
    let (repo, _src) = repository(&dir);
    // Only web's snapshots are considered; db's are untouched.
    repo.run(["forget", "--keep-last", "2", "--host", "web"])
        .assert_ok();
    let mut expected = pairs("db", &DB);
    expected.extend(pairs("web", &WEB[4..]));
    assert_eq!(times_by_host(&repo), expected);
    // One group for every host: the newest of all is kept.
    repo.run(["forget", "--keep-last", "1", "--group-by", ""])
        .assert_ok();
    assert_eq!(times_by_host(&repo), pairs("web", &WEB[5..]));
}

#[test]
fn a_forget_that_cannot_write_its_tombstones_forgets_nothing() {
    let (_tmp, dir) = tempdir();
    let (repo, _src) = repository(&dir);
    let before = times_by_host(&repo);
    // Tombstones cannot be written where a file stands in for their directory.
    let forgotten = dir.join("repo/forgotten");
    let _ = std::fs::remove_dir(&forgotten);
    std::fs::write(&forgotten, b"in the way").unwrap();
    repo.run(["forget", "--keep-last", "1", "--host", "web"])
        .assert_one_line_error(&["5 of 5 snapshots could not be forgotten"]);
    assert_eq!(
        times_by_host(&repo),
        before,
        "no manifest is removed without its tombstone"
    );
}

/// Forgetting thousands of snapshots writes a tombstone file for each
/// TOMBSTONES_PER_FILE of them, not one each, and leaves a repository that
/// checks and lists exactly what was kept.
#[test]
fn thousands_forgotten_share_a_few_tombstone_files() {
    use rewind::format::TOMBSTONES_PER_FILE;
    use rewind::Snapshot;

    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("file"), b"kept").unwrap();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    repo.backup([arg(&src)]);
    let copies = 2 * TOMBSTONES_PER_FILE + 100;
    {
        let opened = repo.open();
        let template = opened.snapshots().unwrap().pop().unwrap();
        let snapshots: Vec<Snapshot> = (1..=copies)
            .map(|n| Snapshot {
                time: template.time + chrono::Duration::hours(n as i64),
                parent: None,
                ..template.clone()
            })
            .collect();
        opened.save_snapshots(&snapshots).unwrap();
    }
    repo.run(["forget", "--keep-last", "100", "--group-by", ""])
        .assert_ok();
    let files = std::fs::read_dir(dir.join("repo/forgotten"))
        .unwrap()
        .count();
    let forgotten = copies + 1 - 100;
    assert_eq!(files, forgotten.div_ceil(TOMBSTONES_PER_FILE));
    assert_eq!(repo.snapshots().len(), 100);
    repo.run(["check"]).assert_ok();
    assert_eq!(repo.snapshots().len(), 100, "check brings none back");
}

/// contrib/rewind-forget.service's command, run as systemd would (no shell
/// quoting needed, an environment of its own): it keeps the release and
/// what the policy keeps, and forgets the rest.
#[test]
fn the_contrib_forget_unit_applies_its_policy() {
    let (_tmp, dir) = tempdir();
    let (repo, src) = repository(&dir);
    repo.backup([
        arg(&src),
        "--time".as_ref(),
        "2023-01-01T00:00:00Z".as_ref(),
        "--host".as_ref(),
        "web".as_ref(),
        "--tag".as_ref(),
        "release".as_ref(),
    ]);
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/rewind-forget.service"
    ))
    .unwrap();
    let starts: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    let [start] = starts[..] else {
        panic!("one ExecStart in the unit");
    };
    let args: Vec<&str> = start.split_whitespace().collect();
    assert_eq!(args[0], "/usr/bin/rewind");
    let password_file = dir.join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.args(&args[1..])
        .env_clear()
        .env("REWIND_REPO", dir.join("repo"))
        .env("REWIND_PASSWORD_FILE", &password_file);
    run(&mut cmd).assert_ok();
    // 14 daily: every day of web and db that has a snapshot; the release stays.
    let mut expected = pairs("db", &DB);
    expected.extend(pairs(
        "web",
        &["2023-01-01T00:00:00Z", WEB[1], WEB[2], WEB[4], WEB[5]],
    ));
    assert_eq!(times_by_host(&repo), expected);
}
