//! The README's "Set up a server" section, walked on this machine as an
//! admin would walk it: the Debian package of this build installed with
//! the section's own `dpkg -i` line, then every `sh` block of the section
//! run in order in a root shell, as written, with these substitutions:
//! /srv under a scratch directory; the S3 endpoint and keys those of an
//! s3s-fs server on loopback; healthchecks.io a listener of the test's;
//! and today as the restore test's day of the week. systemd is not PID 1
//! here, so the test stands in for the lines that need it: the timer is
//! enabled without `--now` (and its link checked), `systemctl start` runs
//! the service's ExecStart line from the installed unit file with its
//! drop-ins' environment and nothing else (setup_util/unit.rs), and the
//! journal and the list of timers are not read.
//!
//! Then it checks what the section promises: two snapshots (files, and the
//! database dump) in the local repository and in the offsite bucket, the
//! restore test in the audit trail, the nightly ping; and with the
//! database gone, that the run fails, the file backup and the copy still
//! happen, and the failure ping carries the summary.
//!
//! A section whose commands no longer work fails this test, and so does
//! one that changed where the test stands in or substitutes: each stand-in
//! must match exactly one command, and each substituted text must occur.
//! The package and everything the walk wrote under /etc are removed at the
//! end, after a failure too (tests/common/debian.rs, setup_util).

mod common;
mod setup_util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use setup_util::*;

const BEGIN: &str = "<!-- setup-walk:begin";
const END: &str = "<!-- setup-walk:end -->";
/// What the walk makes outside its scratch directory: absent before it,
/// and removed after it.
const WALK_MAKES: [&str; 3] = [
    "/etc/rewind",
    "/etc/systemd/system/rewind@nightly.service.d",
    TIMER_LINK,
];

/// The section's lines the test stands in for (beside the `dpkg -i` line,
/// which runs as written, under the package's guard).
const BUILD: &str = "./scripts/build-deb.sh";
const ENABLE: &str = "systemctl enable --now rewind@nightly.timer";
const START: &str = "systemctl start rewind@nightly.service";
const JOURNAL: &str = "journalctl -u rewind@nightly";
const TIMERS: &str = "systemctl list-timers 'rewind@*'";

const SERVICE: &str = "rewind@nightly.service";
const TIMER_LINK: &str = "/etc/systemd/system/timers.target.wants/rewind@nightly.timer";

#[test]
fn the_readme_sets_up_a_server_that_backs_up_copies_tests_and_alerts() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "dpkg -i needs root");
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let section = Section::between(&readme, BEGIN, END);
    let (_tmp, dir) = tempdir();
    let srv = dir.join("srv");
    let database = make_server_data(&srv);

    let s3 = S3Server::start(&dir);
    s3.create_bucket("offsite");
    let health = HealthCheck::start();
    let today = run(Command::new("date").arg("+%u")).assert_ok().text();
    let substitutions = [
        ("/srv/", format!("{}/", srv.display())),
        ("https://s3.example.net", s3.endpoint()),
        ("YOUR-KEY-ID", S3_ACCESS_KEY.to_string()),
        ("YOUR-SECRET-KEY", S3_SECRET_KEY.to_string()),
        ("https://hc-ping.com", health.url()),
        (
            "[ $(date +%u) != 7 ]",
            format!("[ $(date +%u) != {} ]", today.trim()),
        ),
    ];

    // The checkout the section's first block runs in: the package is
    // built where scripts/build-deb.sh puts it, from this build's binary.
    let checkout = dir.join("checkout");
    let deb = DebPackage::build(&checkout.join("target/debian"));
    let install = format!(
        "dpkg -i target/debian/{}",
        deb.path.file_name().unwrap().to_str().unwrap()
    );
    let shell = AdminShell::new(&checkout, &dir.join("home"));

    let mut lock = Some(SystemWideLock::take());
    for path in WALK_MAKES {
        assert!(
            Path::new(path).symlink_metadata().is_err(),
            "{path} exists: the walk would overwrite it and then remove it"
        );
    }
    let mut installed = None;
    let etc_files = SystemFiles::record(&["/etc/rewind", "/etc/systemd/system"]);
    let stand_ins = [BUILD, install.as_str(), ENABLE, START, JOURNAL, TIMERS];
    for step in section.steps(&stand_ins, &substitutions) {
        match step {
            Step::Shell(script) => {
                shell.run(&script).assert_ok();
            }
            Step::StandIn {
                written,
                substituted,
            } => match written.as_str() {
                // Built above, by the same script, from the test build.
                BUILD => {}
                line if line == install => {
                    let lock = lock.take().unwrap();
                    installed = Some(deb.install_with(lock, |_| {
                        shell.run(&substituted).assert_ok();
                    }));
                }
                // Offline, `systemctl enable` makes the timer's link; with
                // no systemd running there is nothing to start `--now`.
                ENABLE => {
                    shell.run(&substituted.replace(" --now", "")).assert_ok();
                }
                START => {
                    Service::load(SERVICE).start().assert_ok();
                }
                JOURNAL | TIMERS => {}
                other => unreachable!("no stand-in for {other}"),
            },
        }
    }
    assert!(installed.is_some(), "the section installs the package");
    let which = shell.run("command -v rewind").assert_ok().text();
    assert_eq!(
        which.trim(),
        "/usr/bin/rewind",
        "the walk ran the package's binary"
    );

    check_systemd_setup();
    let password = std::fs::read_to_string("/etc/rewind/password").unwrap();
    assert!(password.trim().len() >= 32, "a long random password");
    for (path, mode) in [
        ("/etc/rewind", 0o700),
        ("/etc/rewind/password", 0o600),
        ("/etc/rewind/nightly.env", 0o600),
    ] {
        let found = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(found, mode, "{path} is root's alone: {found:o}");
    }

    // The night: both backups, in the local repository and offsite.
    let local = snapshots(&shell, "");
    let offsite_repo = format!("--repo s3:{}/offsite/host1", s3.endpoint());
    let offsite = snapshots(&shell, &offsite_repo);
    assert_eq!(tags_of(&local), ["db", "files"], "{local:#?}");
    assert_eq!(tags_of(&offsite), ["db", "files"], "{offsite:#?}");
    let files = local.iter().find(|s| s["tags"][0] == "files").unwrap();
    let listed = shell
        .run(&format!(
            "rewind -P nightly ls --json {}:{}",
            files["id"].as_str().unwrap(),
            srv.join("www").display()
        ))
        .assert_ok()
        .text();
    assert!(listed.contains("index.html"), "{listed}");
    assert!(!listed.contains("cache"), "the cache is excluded: {listed}");
    let dump = shell
        .run("rewind -P nightly cat --tag db latest:/db/app.sql")
        .assert_ok()
        .text();
    let expected_dump = run(Command::new("sqlite3")
        .arg("-readonly")
        .arg(&database)
        .arg(".dump"))
    .assert_ok()
    .text();
    assert_eq!(dump, expected_dump, "the dump in the snapshot");

    // The restore test ran (today is its day), and passed.
    let tests = shell
        .run("rewind -P nightly log --json --command restore-test")
        .assert_ok()
        .json();
    let results: Vec<&str> = tests
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["ok"], "{tests:#}");

    let pings = health.pings();
    assert_eq!(
        pings
            .iter()
            .map(|p| (p.method.as_str(), p.path.as_str()))
            .collect::<Vec<_>>(),
        [("GET", "/YOUR-UUID")],
        "one success ping: {pings:#?}"
    );

    // A night the database is gone: the dump fails, the run fails, and
    // the alert says why; the file backup and the copy still happen.
    std::fs::rename(&database, database.with_extension("moved")).unwrap();
    let failed = Service::load(SERVICE).start();
    assert_eq!(failed.code, Some(1), "the run fails: {}", failed.stderr);
    let summary = failed.text();
    assert!(
        summary.contains("backup:db failed") && summary.contains("skipped"),
        "the summary names the failed dump and the skipped forget:\n{summary}"
    );
    let pings = health.pings();
    let alert = pings.last().unwrap();
    assert_eq!(
        (alert.method.as_str(), alert.path.as_str()),
        ("POST", "/YOUR-UUID/fail"),
        "{pings:#?}"
    );
    assert!(
        alert.body.contains("backup:db failed") && alert.body.contains("FAILED"),
        "the alert carries the summary: {}",
        alert.body
    );
    assert_eq!(tags_of(&snapshots(&shell, "")), ["db", "files", "files"]);
    assert_eq!(
        tags_of(&snapshots(&shell, &offsite_repo)),
        ["db", "files", "files"]
    );

    drop(etc_files);
    drop(installed);
    for path in WALK_MAKES {
        assert!(
            Path::new(path).symlink_metadata().is_err(),
            "{path} is left after the walk"
        );
    }
}

/// The admin's server before the walk: a web root with a cache the
/// profile excludes, and a SQLite database; the database's path.
fn make_server_data(srv: &Path) -> PathBuf {
    let www = srv.join("www");
    std::fs::create_dir_all(www.join("cache")).unwrap();
    std::fs::write(www.join("index.html"), "<h1>hello</h1>\n").unwrap();
    std::fs::write(www.join("cache/page.tmp"), "cached\n").unwrap();
    std::fs::create_dir_all(srv.join("app")).unwrap();
    let database = srv.join("app/app.db");
    run(Command::new("sqlite3").arg(&database).arg(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT); \
         INSERT INTO orders (item) VALUES ('tea'), ('bread'), ('soap');",
    ))
    .assert_ok();
    database
}

/// The timer is enabled (its link where `systemctl enable` puts it), and
/// the service with the section's drop-in and the timer pass
/// `systemd-analyze verify`.
fn check_systemd_setup() {
    // systemctl links to /lib or /usr/lib, one directory on a merged /usr.
    assert_eq!(
        std::fs::canonicalize(TIMER_LINK).unwrap(),
        std::fs::canonicalize("/usr/lib/systemd/system/rewind@.timer").unwrap(),
        "{TIMER_LINK} is the package's timer"
    );
    let service = Service::load(SERVICE);
    assert!(
        service
            .sources
            .iter()
            .any(|s| s.starts_with("/etc/systemd/system/rewind@nightly.service.d")),
        "the drop-in is read: {:?}",
        service.sources
    );
    for unit in [SERVICE, "rewind@nightly.timer"] {
        // verify runs man for each Documentation= page; man saves no
        // formatted copy in /var/cache/man at a width other than 80.
        let verified = run(Command::new("systemd-analyze")
            .args(["verify", unit])
            .env("MANWIDTH", "100"))
        .assert_ok();
        assert!(
            verified.stderr.trim().is_empty(),
            "systemd-analyze verify {unit}:\n{}",
            verified.stderr
        );
    }
}

/// `rewind -P nightly [OPTIONS] snapshots --json` in the admin's shell,
/// with the bucket's keys read as the section reads them.
fn snapshots(shell: &AdminShell, options: &str) -> Vec<serde_json::Value> {
    let listed = shell
        .run(&format!(
            "set -a; . /etc/rewind/nightly.env; set +a\n\
             rewind -P nightly {options} snapshots --json"
        ))
        .assert_ok()
        .json();
    listed.as_array().unwrap().clone()
}

/// The first tag of each snapshot, sorted.
fn tags_of(snapshots: &[serde_json::Value]) -> Vec<String> {
    let mut tags: Vec<String> = snapshots
        .iter()
        .map(|s| s["tags"][0].as_str().unwrap_or_default().to_string())
        .collect();
    tags.sort();
    tags
}
