//! `rewind prune` end to end with the real binary: a forget with `--prune`
//! frees what only the forgotten snapshots held and nothing the kept ones
//! need, a second prune finds nothing to do, a dry run touches nothing,
//! `--max-unused 0%` repacks every partly used pack, two prunes never run
//! at once, a damaged index stops a prune, and the parity of what a prune
//! deletes goes with it.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

/// A history of five generations with the oldest `forgotten` forgotten
/// (no prune yet).
fn forgotten_history(dir: &std::path::Path, name: &str, forgotten: usize) -> History {
    let history = History::build(dir, name, 5, &[]);
    let keep = (5 - forgotten).to_string();
    history
        .repo
        .run(["forget", "--keep-last", &keep])
        .assert_ok();
    history
}

#[test]
fn forget_with_prune_frees_what_only_forgotten_snapshots_held() {
    let (_tmp, dir) = tempdir();
    let history = History::build(&dir, "prune keep last", 5, &[]);
    let repo = &history.repo;
    let du_before = repo.disk_usage();

    let run = repo
        .run(["forget", "--keep-last", "2", "--prune", "--json"])
        .assert_ok();
    let documents = json_documents(&run);
    assert_eq!(
        documents.len(),
        1,
        "one document: forget's, prune's report in it: {documents:#?}"
    );
    let forgotten = documents[0]["groups"][0]["remove"].as_array().unwrap();
    assert_eq!(forgotten.len(), 3, "{:#}", documents[0]);
    let report = &documents[0]["prune"];
    assert_eq!(number(report, "snapshots"), 2, "{report:#}");
    assert!(number(report, "packs_deleted") > 0, "{report:#}");
    assert!(
        number(report, "bytes_after") < number(report, "bytes_before"),
        "{report:#}"
    );
    assert_eq!(report["plans_waiting"], serde_json::json!([]), "{report:#}");
    assert!(repo.deletion_plan_files().is_empty());

    // The replaced files of the three forgotten generations were held by
    // nothing else: all of them go but what stays unused under the default
    // --max-unused (5% of the repository).
    let du_after = repo.disk_usage();
    let only_forgotten = 3 * REPLACED_RANDOM_BYTES;
    assert!(
        du_before - du_after >= only_forgotten - du_after / 20,
        "the repository went from {du_before} to {du_after} bytes; the forgotten \
         generations alone held {only_forgotten}: {report:#}"
    );

    let kept: Vec<String> = history
        .assert_listed_restore()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let newest: Vec<String> = history.snaps[3..].iter().map(|s| s.id.clone()).collect();
    assert_eq!(
        kept.iter().collect::<BTreeSet<_>>(),
        newest.iter().collect()
    );
    repo.check_read_data();

    let listing = repo.listing();
    let again = repo.prune(&[]);
    assert_nothing_to_do(&again, "a second prune");
    assert_eq!(
        number(&again, "bytes_unused_kept"),
        number(report, "bytes_unused_kept")
    );
    assert_eq!(
        repo.listing(),
        listing,
        "a prune with nothing to do changes no file"
    );
}

#[test]
fn a_dry_run_changes_no_file_and_foretells_the_prune() {
    let (_tmp, dir) = tempdir();
    let history = forgotten_history(&dir, "prune dry run", 4);
    let repo = &history.repo;
    let listing = repo.listing();

    let plan = repo
        .run(["prune", "--dry-run", "--json"])
        .assert_ok()
        .json();
    assert_eq!(plan["dry_run"], true);
    assert!(number(&plan, "packs_unused") > 0, "{plan:#}");
    let text = repo
        .run(["prune", "-n", "--max-unused", "0%"])
        .assert_ok()
        .text();
    assert!(text.contains("would delete"), "{text}");
    repo.run(["forget", "--keep-last", "1", "--prune", "--dry-run"])
        .assert_ok();
    assert_eq!(repo.listing(), listing, "a dry run changes no file");
    assert!(
        repo.run(["locks", "--json"]).assert_ok().json() == serde_json::json!([]),
        "a dry run leaves no lock"
    );

    let report = repo.prune(&[]);
    for field in [
        "blobs_used",
        "bytes_before",
        "bytes_after",
        "packs_unused",
        "bytes_unused",
        "packs_repacked",
        "bytes_repacked",
        "bytes_repack_dropped",
        "bytes_unused_kept",
    ] {
        assert_eq!(
            number(&report, field),
            number(&plan, field),
            "{field}: the dry run said {plan:#}, the prune did {report:#}"
        );
    }
    history.assert_listed_restore();
    repo.check_read_data();
}

#[test]
fn max_unused_zero_repacks_every_partly_used_pack() {
    let (_tmp, dir) = tempdir();
    let history = forgotten_history(&dir, "prune max unused", 3);
    let repo = &history.repo;

    let lenient = repo
        .run(["prune", "--dry-run", "--json", "--max-unused", "unlimited"])
        .assert_ok()
        .json();
    assert_eq!(number(&lenient, "packs_repacked"), 0, "{lenient:#}");
    assert!(
        number(&lenient, "bytes_unused_kept") > 0,
        "the history leaves partly used packs: {lenient:#}"
    );
    let strict = repo
        .run(["prune", "--dry-run", "--json", "--max-unused", "0%"])
        .assert_ok()
        .json();
    let partly_used = number(&strict, "packs_repacked");
    assert!(partly_used > 0, "{strict:#}");
    assert_eq!(number(&strict, "bytes_unused_kept"), 0, "{strict:#}");

    let report = repo.prune(&["--max-unused", "0%"]);
    assert_eq!(number(&report, "packs_repacked"), partly_used, "{report:#}");
    assert_eq!(number(&report, "bytes_unused_kept"), 0, "{report:#}");
    assert!(number(&report, "packs_written") > 0, "{report:#}");
    assert!(repo.deletion_plan_files().is_empty());

    // Nothing unused is left anywhere, even for the most lenient prune.
    let after = repo
        .run(["prune", "--dry-run", "--json", "--max-unused", "unlimited"])
        .assert_ok()
        .json();
    assert_eq!(number(&after, "bytes_unused_kept"), 0, "{after:#}");
    assert_eq!(number(&after, "packs_unused"), 0, "{after:#}");
    history.assert_listed_restore();
    repo.check_read_data();
    assert_nothing_to_do(&repo.prune(&["--max-unused", "0%"]), "a second prune");
}

/// Is `pid` stopped (state T in /proc)?
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state == "T")
        })
        .unwrap_or(false)
}

/// Whether `repo` lists an exclusive lock of prune held by `pid`.
fn holds_exclusive_lock(repo: &Repo, pid: u32) -> bool {
    let locks = repo.run(["locks", "--json"]).assert_ok().json();
    locks.as_array().unwrap().iter().any(|lock| {
        lock["pid"].as_u64() == Some(pid as u64)
            && lock["kind"] == "exclusive"
            && lock["command"] == "prune"
            && lock["stale"] == false
    })
}

/// A prune stopped (SIGSTOP) while it holds the exclusive lock: prunes are
/// started and watched (a lock file appearing under locks/) until one is
/// caught holding it.
fn prune_stopped_holding_the_lock(repo: &Repo) -> Child {
    let locks_dir = repo.path.join("locks");
    for _ in 0..50 {
        let mut prune = repo
            .command()
            .args(["prune", "--max-unused", "0%"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = prune.id();
        while prune.try_wait().unwrap().is_none() {
            if std::fs::read_dir(&locks_dir).unwrap().next().is_none() {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            kill(pid, libc::SIGSTOP);
            let stopped_in_time = wait_for(Duration::from_secs(10), || {
                stopped(pid) || prune.try_wait().unwrap().is_some()
            });
            assert!(stopped_in_time.is_some(), "prune {pid} does not stop");
            if stopped(pid) && holds_exclusive_lock(repo, pid) {
                return prune;
            }
            kill(pid, libc::SIGCONT);
            // Not yet listed (or already let go): watch on.
            std::thread::sleep(Duration::from_millis(1));
        }
        prune.wait().unwrap();
    }
    panic!("no prune was caught holding its lock in 50 tries");
}

#[test]
fn a_prune_while_another_holds_the_lock_fails_naming_it() {
    let (_tmp, dir) = tempdir();
    let history = forgotten_history(&dir, "prune lock", 3);
    let repo = &history.repo;
    let mut first = prune_stopped_holding_the_lock(repo);
    let pid = first.id();
    let listing = repo.listing();

    let second = repo.run(["prune"]).assert_one_line_error(&[
        "locked",
        "exclusive",
        "prune",
        &format!("pid {pid}"),
        &rewind::hostname(),
    ]);
    assert_eq!(second.code, Some(1));
    assert_eq!(repo.listing(), listing, "a refused prune changes nothing");
    // forget needs only a shared lock (here it has nothing to forget); the
    // prune it goes on to gives way.
    repo.run(["forget", "--keep-last", "2", "--prune"])
        .assert_fails_with(&format!("pid {pid}"));
    assert_eq!(repo.snapshots().len(), 2);

    kill(pid, libc::SIGCONT);
    let status = first.wait().unwrap();
    assert!(status.success(), "the first prune, let go: {status}");
    assert_eq!(
        repo.run(["locks", "--json"]).assert_ok().json(),
        serde_json::json!([]),
        "no lock is left behind"
    );
    history.assert_listed_restore();
    repo.check_read_data();
    assert_nothing_to_do(&repo.prune(&["--max-unused", "0%"]), "a prune after both");
}

#[test]
fn a_damaged_index_file_stops_prune_until_scrub_repairs_it() {
    let (_tmp, dir) = tempdir();
    let history = forgotten_history(&dir, "prune damaged index", 3);
    let repo = &history.repo;
    let index_dir = repo.path.join("index");
    let victim = std::fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .expect("an index file");
    let size = std::fs::metadata(&victim).unwrap().len();
    write_at(&victim, size / 2, b"\xff\x00damaged\x00\xff");
    let listing = repo.listing();

    repo.run(["prune"])
        .assert_one_line_error(&["index", "scrub --repair"]);
    repo.run(["prune", "--dry-run"])
        .assert_one_line_error(&["index", "scrub --repair"]);
    assert_eq!(repo.listing(), listing, "a refused prune changes nothing");

    let state = dir.join("scrub.state");
    repo.run(["scrub", "--repair", "--state", state.to_str().unwrap()])
        .assert_code(4); // damage found, all of it repaired
    let report = repo.prune(&[]);
    assert!(number(&report, "packs_deleted") > 0, "{report:#}");
    history.assert_listed_restore();
    repo.check_read_data();
}

#[test]
fn the_parity_of_what_a_prune_deletes_goes_with_it() {
    let (_tmp, dir) = tempdir();
    let history = History::build(&dir, "prune parity", 4, &["--parity", "10"]);
    let repo = &history.repo;
    let packs_before = repo.pack_files();
    let parity = repo.path.join("parity");
    for pack in &packs_before {
        assert!(
            parity.join(format!("data.{pack}")).is_file(),
            "every pack has parity"
        );
    }

    let run = repo
        .run([
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--max-unused",
            "0%",
            "--json",
        ])
        .assert_ok();
    let report = &run.json()["prune"];
    let packs_after = repo.pack_files();
    let deleted: Vec<&String> = packs_before.difference(&packs_after).collect();
    assert!(!deleted.is_empty(), "{report:#}");
    assert_eq!(deleted.len() as u64, number(report, "packs_deleted"));
    for pack in &deleted {
        assert!(
            !parity.join(format!("data.{pack}")).exists(),
            "the parity of deleted pack {pack} is left"
        );
    }
    // Every parity file protects a file that exists, and every pack
    // (the repacked ones too) has its parity.
    for entry in std::fs::read_dir(&parity).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some((kind, file)) = name.split_once('.') else {
            assert_eq!(name, "config");
            continue;
        };
        let protected = match kind {
            "data" => repo.path.join("data").join(&file[..2]).join(file),
            other => repo.path.join(other).join(file),
        };
        assert!(
            protected.is_file(),
            "parity/{name} protects nothing: {}",
            protected.display()
        );
    }
    for pack in &packs_after {
        assert!(parity.join(format!("data.{pack}")).is_file(), "pack {pack}");
    }

    let state = dir.join("scrub.state");
    let scrub = repo
        .run(["scrub", "--json", "--state", state.to_str().unwrap()])
        .assert_ok()
        .json();
    assert_eq!(scrub["findings"], serde_json::json!([]), "{scrub:#}");
    assert_eq!(scrub["pass_complete"], true, "{scrub:#}");
    repo.check_read_data();
    history.assert_listed_restore();
}
