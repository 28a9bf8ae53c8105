//! `rewind copy` between two local repositories, with the real binary: what
//! is copied restores exactly and checks clean, a second copy copies
//! nothing, one snapshot can be picked, a later copy reads only what
//! changed, repositories made with `init --copy-chunker-params`
//! deduplicate against each other, a wrong source password is one line,
//! and a prune on the destination while a copy leans on its data stays
//! safe (`docs/design.md`, section 7, "Copy"; `man/rewind-copy.1`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rewind::Encryption;
use serde_json::{json, Value};

/// A destination's password, unlike the source's, so that a copy that
/// used one for the other would fail.
const DEST_PASSWORD: &str = "another password for the copy";

/// An encrypted repository at `path` with its own password.
fn init_dest(path: &Path, init_args: &[&str]) -> Repo {
    let repo = Repo {
        password: Some(DEST_PASSWORD.into()),
        ..Repo::at(path, Encryption::Aes256Gcm)
    };
    let mut args = vec!["init"];
    args.extend_from_slice(init_args);
    repo.run(args).assert_ok();
    repo
}

/// `rewind copy --json --from-repo SOURCE ARGS...` run on `dest`, with the
/// source's password in REWIND_FROM_PASSWORD.
fn copy_command(dest: &Repo, source: &Repo, args: &[&str]) -> Command {
    let mut cmd = dest.command();
    cmd.args(["copy", "--json", "--from-repo"])
        .arg(&source.path)
        .args(args)
        .env_remove("REWIND_FROM_PASSWORD")
        .env_remove("REWIND_FROM_PASSWORD_FILE");
    if let Some(password) = &source.password {
        cmd.env("REWIND_FROM_PASSWORD", password);
    }
    cmd
}

/// A copy that must succeed; its report.
#[track_caller]
fn copy(dest: &Repo, source: &Repo, args: &[&str]) -> Value {
    run(&mut copy_command(dest, source, args))
        .assert_ok()
        .json()
}

/// The destination snapshot that `report` says `source_id` was copied to.
#[track_caller]
fn copied_to(report: &Value, source_id: &str) -> String {
    report["copied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"] == json!(source_id))
        .unwrap_or_else(|| panic!("{source_id} was not copied: {report:#}"))["destination"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `snap` as it is in the destination, under the id of its copy.
fn in_dest(snap: &Snap, report: &Value) -> Snap {
    Snap {
        id: copied_to(report, &snap.id),
        ..snap.clone()
    }
}

#[track_caller]
fn number(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {report:#}"))
}

#[test]
fn a_copy_restores_exactly_and_a_second_copy_copies_nothing() {
    let (_tmp, dir) = tempdir();
    require_root_and_xattrs(&dir);
    let source = Repo::init(&dir.join("source"), Encryption::Aes256Gcm);
    // Every kind of entry and attribute, holes, hard links...
    let full = dir.join("full");
    mkdirs(&full);
    build_full_tree(&full, &mut Rng::new(seed("copy: full tree")));
    let expected = freeze(&full);
    let full_id = source.backup([arg(&full)])["id"]
        .as_str()
        .unwrap()
        .to_string();
    // ...and a history whose generations share most of their data.
    let mut lineage = Lineage::new(&dir, "copy lineage");
    let snaps: Vec<Snap> = (0..3).map(|_| lineage.back_up_next(&source)).collect();

    let dest = init_dest(&dir.join("dest"), &[]);
    let report = copy(&dest, &source, &[]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 4, "{report:#}");
    assert_eq!(report["same_ids"], json!(false));
    assert!(number(&report, "blobs_sent") > 0, "{report:#}");

    // Each copy records what it copies and keeps what the snapshot recorded.
    let listed = dest.snapshots();
    assert_eq!(listed.len(), 4);
    for original in source.snapshots() {
        let id = original["id"].as_str().unwrap();
        let copy = listed
            .iter()
            .find(|s| s["id"] == json!(copied_to(&report, id)))
            .unwrap();
        assert_eq!(copy["original"], json!(id));
        for field in ["time", "host", "paths", "tags", "username"] {
            assert_eq!(copy[field], original[field], "{field}");
        }
        assert_ne!(
            copy["tree"], original["tree"],
            "ids are keyed per repository"
        );
    }

    let restored = dir.join("restored-full");
    dest.restore(&copied_to(&report, &full_id), &restored, &[])
        .assert_ok();
    expected.assert_same(
        &Manifest::of(&under(&restored, &full)),
        "the copy of the full tree, restored",
    );
    for snap in &snaps {
        in_dest(snap, &report).assert_restores(&dest, &dir.join("scratch"));
    }
    dest.check_read_data();

    let before = dest.listing();
    let again = copy(&dest, &source, &[]);
    assert_eq!(again["copied"], json!([]), "{again:#}");
    assert_eq!(number(&again, "present"), 4);
    for field in ["blobs_read", "blobs_sent", "bytes_sent"] {
        assert_eq!(number(&again, field), 0, "{field}: {again:#}");
    }
    assert_eq!(
        dest.listing(),
        before,
        "a second copy changed the destination"
    );
}

#[test]
fn one_snapshot_by_id_then_the_rest() {
    let (_tmp, dir) = tempdir();
    let source = Repo::init(&dir.join("source"), Encryption::Aes256Gcm);
    let mut lineage = Lineage::new(&dir, "copy one");
    let snaps: Vec<Snap> = (0..3).map(|_| lineage.back_up_next(&source)).collect();
    let dest = init_dest(&dir.join("dest"), &[]);

    let middle = &snaps[1];
    let report = copy(&dest, &source, &[&middle.id[..8]]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report:#}");
    let listed = dest.snapshots();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["original"], json!(middle.id));
    in_dest(middle, &report).assert_restores(&dest, &dir.join("scratch"));

    // A dry run names the rest and changes nothing.
    let before = dest.listing();
    let plan = copy(&dest, &source, &["--dry-run"]);
    assert_eq!(plan["dry_run"], json!(true));
    let planned: Vec<&Value> = plan["to_copy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["source"])
        .collect();
    assert_eq!(planned, [&json!(snaps[0].id), &json!(snaps[2].id)]);
    assert_eq!(plan["present"][0]["source"], json!(middle.id));
    assert_eq!(dest.listing(), before, "a dry run changed the destination");

    let rest = copy(&dest, &source, &[]);
    assert_eq!(rest["copied"].as_array().unwrap().len(), 2, "{rest:#}");
    assert_eq!(number(&rest, "present"), 1);
    for snap in [&snaps[0], &snaps[2]] {
        in_dest(snap, &rest).assert_restores(&dest, &dir.join("scratch"));
    }
    // The newest generation's copy names the copy of its parent.
    let newest = dest
        .snapshots()
        .into_iter()
        .find(|s| s["original"] == json!(snaps[2].id))
        .unwrap();
    assert_eq!(
        newest["parent"],
        json!(copied_to(&report, &middle.id)),
        "{newest:#}"
    );
    dest.check_read_data();
}

#[test]
fn a_later_copy_reads_only_what_changed() {
    let (_tmp, dir) = tempdir();
    let source = Repo::init(&dir.join("source"), Encryption::Aes256Gcm);
    let mut lineage = Lineage::new(&dir, "copy later");
    let first = lineage.back_up_next(&source);
    let dest = init_dest(&dir.join("dest"), &[]);
    let report = copy(&dest, &source, &[]);
    let first_read = number(&report, "bytes_read");
    assert!(first_read > 2_000_000, "{report:#}");

    // The next generation keeps the large lasting file and the first
    // generation's added file, and replaces or adds about 630 KB.
    let second = lineage.back_up_next(&source);
    let report = copy(&dest, &source, &[]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 1);
    let read = number(&report, "bytes_read");
    assert!(
        read < 700_000,
        "a copy of one more generation read {read} bytes of the source: {report:#}"
    );
    assert!(number(&report, "blobs_skipped") > 0, "{report:#}");
    for snap in [&first, &second] {
        let copy_id = dest
            .snapshots()
            .into_iter()
            .find(|s| s["original"] == json!(snap.id))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        Snap {
            id: copy_id,
            ..snap.clone()
        }
        .assert_restores(&dest, &dir.join("scratch"));
    }
    dest.check_read_data();
}

#[test]
fn repositories_made_with_copy_chunker_params_deduplicate() {
    let (_tmp, dir) = tempdir();
    let source = Repo::init(&dir.join("source"), Encryption::Aes256Gcm);
    let mut lineage = Lineage::new(&dir, "copy dedup");
    // Large enough for several chunks: chunks of smaller files are whole
    // files whatever the chunker's seed, and would deduplicate anyway.
    lineage.put("large.bin", &Rng::new(7).bytes(8 << 20));
    let snap = lineage.back_up_next(&source);
    // The same data under another path: no parent snapshot to lean on, so
    // a backup of it reads and chunks every file.
    let elsewhere = dir.join("elsewhere");
    run(Command::new("cp").arg("-a").arg(&snap.copy).arg(&elsewhere)).assert_ok();

    let mut added = Vec::new();
    for (name, shared) in [("shared", true), ("plain", false)] {
        let dest = Repo {
            password: Some(DEST_PASSWORD.into()),
            ..Repo::at(&dir.join(name), Encryption::Aes256Gcm)
        };
        let mut init = dest.command();
        init.arg("init");
        if shared {
            init.args(["--copy-chunker-params", "--from-repo"])
                .arg(&source.path)
                .env("REWIND_FROM_PASSWORD", source.password.as_deref().unwrap());
        }
        run(&mut init).assert_ok();

        let report = copy(&dest, &source, &[]);
        assert_eq!(report["same_ids"], json!(shared), "{report:#}");
        in_dest(&snap, &report).assert_restores(&dest, &dir.join("scratch"));
        dest.check_read_data();

        let backup = dest.backup([arg(&elsewhere)]);
        added.push(backup["summary"]["bytes_added"].as_u64().unwrap());
        dest.check_read_data();
    }
    let (shared, plain) = (added[0], added[1]);
    assert!(
        plain > 1_500_000,
        "without shared parameters the data is stored again ({plain} bytes)"
    );
    assert!(
        shared * 50 < plain,
        "a backup of copied data added {shared} bytes with shared chunker parameters, \
         {plain} without"
    );
}

#[test]
fn a_wrong_source_password_is_one_clear_line() {
    let (_tmp, dir) = tempdir();
    let source = Repo::init(&dir.join("source"), Encryption::Aes256Gcm);
    let mut lineage = Lineage::new(&dir, "copy password");
    lineage.back_up_next(&source);
    let dest = init_dest(&dir.join("dest"), &[]);
    let before = dest.listing();

    let wrong = Repo {
        password: Some("not the password".into()),
        ..Repo::at(&source.path, Encryption::Aes256Gcm)
    };
    run(&mut copy_command(&dest, &wrong, &[])).assert_one_line_error(&[
        "source repository",
        "wrong password",
        "REWIND_FROM_PASSWORD",
    ]);
    assert_eq!(dest.listing(), before);
    assert_eq!(
        std::fs::read_dir(dest.path.join("locks")).unwrap().count(),
        0,
        "a failed copy left its lock"
    );

    // init --copy-chunker-params opens the source first: nothing is created.
    let new = dir.join("new");
    let mut init = dest.command();
    init.env("REWIND_REPO", &new)
        .args(["init", "--copy-chunker-params", "--from-repo"])
        .arg(&source.path)
        .env("REWIND_FROM_PASSWORD", "not the password");
    run(&mut init).assert_one_line_error(&["source repository", "wrong password"]);
    assert!(!new.exists(), "a failed init created {}", new.display());
}

#[test]
fn a_prune_beside_a_copy_that_leans_on_what_it_deletes_stays_sound() {
    let (_tmp, dir) = tempdir();
    let source = Repo::init(&dir.join("source"), Encryption::Aes256Gcm);
    let mut lineage = Lineage::new(&dir, "copy beside prune");
    let first = lineage.back_up_next(&source);
    let dest = init_dest(&dir.join("dest"), &[]);
    let report = copy(&dest, &source, &[]);
    let first_copy = copied_to(&report, &first.id);

    // The next generation keeps most of the first one's data, which the
    // copy takes from the destination's copy of the first, and adds a
    // large file that keeps the copy busy for a while.
    write(
        &lineage.src.join("large.bin"),
        &Rng::new(seed("copy beside prune: large")).bytes(64 << 20),
    );
    let second = lineage.back_up_next(&source);

    // Stopped once it has stored its first pack: it has loaded the index
    // and leans on the first copy's packs.
    let packs_before = dest.pack_files();
    let mut child = copy_command(&dest, &source, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while dest.pack_files() == packs_before {
        assert!(Instant::now() < deadline, "the copy stored no pack");
        assert!(child.try_wait().unwrap().is_none(), "the copy ended early");
        std::thread::sleep(Duration::from_millis(1));
    }
    kill(child.id(), libc::SIGSTOP);

    // The first copy is forgotten and pruned: its packs are planned for
    // deletion, and the plan waits for the copy's live lock.
    dest.run(["forget", &first_copy]).assert_ok();
    let pruned = dest.prune(&[]);
    assert_ne!(pruned["plans_waiting"], json!([]), "{pruned:#}");

    kill(child.id(), libc::SIGCONT);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the copy beside a prune failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        number(&report, "blobs_stored_again") > 0,
        "the copy should have stored again what it took from leaving packs: {report:#}"
    );

    // Now the plan is due and its packs go; the copy stays whole.
    let pruned = dest.prune(&[]);
    assert_eq!(pruned["plans_waiting"], json!([]), "{pruned:#}");
    assert!(dest.deletion_plan_files().is_empty());
    dest.check_read_data();
    in_dest(&second, &report).assert_restores(&dest, &dir.join("scratch"));
}
