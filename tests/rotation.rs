//! `rewind key rotate`: a new master key, every file sealed anew under it,
//! as real processes. A rotation killed at each of its steps (and by a
//! kill -9 at a random moment) while backups run, one of them stopped
//! (SIGSTOP) across several passes with the old key, is resumed until it
//! ends; then every snapshot restores byte for byte, `check --read-data`
//! passes, and the old key files with the old password open nothing left
//! in the repository. A mount that opened the repository before the
//! rotation reads on after it. The sequence is in docs/design.md,
//! section 7, "Keys".

mod common;
mod mount_util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rewind::format::{crypto, pack, KeyFile, Keys};
use rewind::Encryption;

const SECOND_PASSWORD: &str = "another password";

/// Every key file of `repo` as it is now, by name.
fn key_files(repo: &Repo) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(repo.path.join("keys"))
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

/// The keys that the key files `files` give `password`.
fn keys_of(files: &BTreeMap<String, Vec<u8>>, password: &str) -> Vec<Keys> {
    files
        .values()
        .filter_map(|bytes| {
            KeyFile::from_bytes(bytes)
                .ok()?
                .unwrap_master(password.as_bytes())
                .ok()
        })
        .map(|master| Keys::from_master(&master))
        .collect()
}

/// The files of the repository sealed with keys: packs, index files,
/// manifests, tombstones, deletion plans, audit records and locks.
fn sealed_files(repo: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in [
        "data",
        "index",
        "snapshots",
        "forgotten",
        "deletions",
        "audit",
        "locks",
    ] {
        for path in walk(&repo.join(dir)) {
            if path.is_file() {
                let name = path.strip_prefix(repo).unwrap().display().to_string();
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    files
}

/// Whether `keys` open the sealed file `name` (a pack's trailer, or a
/// metadata file's `salt || sealed` content).
fn opens(keys: &Keys, name: &str, bytes: &[u8]) -> bool {
    if name.starts_with("data/") {
        return pack::read_trailer(keys, bytes).is_ok();
    }
    let Some((salt, sealed)) = bytes.split_at_checked(crypto::SALT_LEN) else {
        return false;
    };
    keys.sealer(salt.try_into().unwrap()).open(sealed).is_ok()
}

/// The old keys open nothing in the repository, and the current key opens
/// everything (so the first check is not true for want of a way to open).
#[track_caller]
fn assert_only_the_new_key_opens(repo: &Repo, old: &[Keys]) {
    let current = keys_of(&key_files(repo), repo.password.as_deref().unwrap());
    assert_eq!(current.len(), 1, "one key file for the password in use");
    let files = sealed_files(&repo.path);
    assert!(files.iter().any(|(name, _)| name.starts_with("data/")));
    for (name, bytes) in &files {
        assert!(opens(&current[0], name, bytes), "the new key opens {name}");
        for keys in old {
            assert!(!opens(keys, name, bytes), "an old key still opens {name}");
        }
    }
}

/// `key rotate ARGS`, killed when it reaches `crash_at` (if it does).
fn rotate(repo: &Repo, args: &[&str], crash_at: Option<&str>) -> Run {
    let mut cmd = repo.command();
    cmd.args(["key", "rotate"]).args(args);
    if let Some(point) = crash_at {
        cmd.env("REWIND_CRASH_AT", point);
    }
    run(&mut cmd)
}

#[track_caller]
fn assert_killed(run: &Run, point: &str) {
    assert_eq!(
        run.code,
        None,
        "key rotate reaches {point} and is killed there:\n{}{}",
        run.text(),
        run.stderr
    );
}

/// A backup of the lineage's next generation, started in the background.
fn spawn_backup(lineage: &mut Lineage, repo: &Repo) -> (Child, PathBuf) {
    let copy = lineage.advance();
    let child = lineage
        .backup_command(repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, copy)
}

/// Waits for a background backup; it must have succeeded.
#[track_caller]
fn finish_backup(lineage: &Lineage, (child, copy): (Child, PathBuf)) -> Snap {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a backup beside the rotation: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    lineage.snap(&serde_json::from_slice(&out.stdout).unwrap(), copy)
}

/// Every snapshot `repo` lists restores to what it backed up; a rotation
/// changes the ids of manifests, so they are found by path and time (each
/// generation of a lineage has its own hour).
#[track_caller]
fn assert_all_restore(repo: &Repo, known: &[Snap], scratch: &Path) {
    let listed = repo.snapshots();
    assert_eq!(listed.len(), known.len(), "{listed:#?}");
    for snapshot in listed {
        let path = snapshot["paths"][0].as_str().unwrap();
        let time = snapshot["time"].as_str().unwrap();
        let hour: usize = time[11..13].parse().unwrap();
        let snap = known
            .iter()
            .find(|s| s.src == Path::new(path) && s.copy.ends_with(format!("generation-{hour}")))
            .unwrap_or_else(|| panic!("snapshot of {path} at {time} was never made"));
        Snap {
            id: snapshot["id"].as_str().unwrap().to_string(),
            ..snap.clone()
        }
        .assert_restores(repo, scratch);
    }
}

#[test]
fn a_rotation_killed_at_every_step_while_backups_run_ends_with_only_the_new_key() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let scratch = dir.join("restored");
    let mut lineages: Vec<Lineage> = ["north", "south", "west"]
        .iter()
        .map(|name| Lineage::new(&dir, &format!("rotation {name}")))
        .collect();
    let mut known: Vec<Snap> = Vec::new();
    for lineage in &mut lineages {
        for _ in 0..2 {
            known.push(lineage.back_up_next(&repo));
        }
    }
    // A tombstone and a deletion plan to seal anew, and a second password.
    let forgotten = known.remove(0);
    repo.run(["forget", &forgotten.id]).assert_ok();
    repo.run(["prune"]).assert_ok();
    repo.command()
        .args(["key", "add", "--label", "second"])
        .env("REWIND_NEW_PASSWORD", SECOND_PASSWORD)
        .status()
        .unwrap();
    let old_key_files = key_files(&repo);
    assert_eq!(old_key_files.len(), 2);
    let mut old_keys = keys_of(&old_key_files, PASSWORD);
    old_keys.extend(keys_of(&old_key_files, SECOND_PASSWORD));
    assert_eq!(old_keys.len(), 2);

    // A backup that opened the repository with the old key, held at its
    // commit (its packs and index written, its lock live) and stopped
    // there; it goes on only after several passes. Waiting for the pause
    // point, not for its lock file, since a small backup can hold its lock
    // for less time than a poll takes.
    let (west, rest) = lineages.split_last_mut().unwrap();
    let gate = dir.join("commit-gate");
    let copy = west.advance();
    let child = spawn_held_at(&mut west.backup_command(&repo), "backup-committing", &gate);
    kill(child.id(), libc::SIGSTOP);
    let stopped = (child, copy);

    assert_killed(
        &rotate(&repo, &[], Some("rotate-key-written")),
        "rotate-key-written",
    );
    // The rotation is in progress: keys cannot change, nor a second
    // rotation begin, and the repository reads on.
    repo.command()
        .args(["key", "add"])
        .env("REWIND_NEW_PASSWORD", "third")
        .output()
        .map(|out| assert!(!out.status.success()))
        .unwrap();
    rotate(&repo, &[], None).assert_fails_with("in progress");
    known[0].assert_restores(&repo, &scratch);

    let mut running: Vec<(Child, PathBuf)> = rest
        .iter_mut()
        .map(|lineage| spawn_backup(lineage, &repo))
        .collect();
    for point in ["rotate-old-keys-removed", "prune-repacked", "prune-indexed"] {
        assert_killed(
            &rotate(&repo, &["--resume", "--no-wait"], Some(point)),
            point,
        );
    }
    // A kill -9 at a random moment of a pass.
    let mut rng = Rng::new(seed("rotation kill -9"));
    let child = repo
        .command()
        .args(["key", "rotate", "--resume", "--no-wait"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(rng.range(50, 600)));
    kill(child.id(), libc::SIGKILL);
    let _ = { child }.wait();

    for (lineage, backup) in rest.iter().zip(running.drain(..)) {
        known.push(finish_backup(lineage, backup));
    }
    running = rest
        .iter_mut()
        .map(|lineage| spawn_backup(lineage, &repo))
        .collect();
    for point in [
        "prune-planned",
        "rotate-resealed-snapshot",
        "rotate-resealed-file",
    ] {
        assert_killed(
            &rotate(&repo, &["--resume", "--no-wait"], Some(point)),
            point,
        );
    }
    // The stopped backup still holds its lock: the rotation cannot end.
    let waiting = rotate(&repo, &["--resume", "--no-wait", "--json"], None).assert_code(3);
    let report = waiting.json();
    assert_eq!(report["finished"], false);
    assert!(
        report["waiting_for"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("backup")),
        "{report:#}"
    );

    write(&gate, b"");
    kill(stopped.0.id(), libc::SIGCONT);
    known.push(finish_backup(west, stopped));
    for (lineage, backup) in rest.iter().zip(running.drain(..)) {
        known.push(finish_backup(lineage, backup));
    }
    for point in ["rotate-config-signed", "rotate-final-key-written"] {
        assert_killed(&rotate(&repo, &["--resume"], Some(point)), point);
    }
    let done = rotate(&repo, &["--resume", "--json"], None)
        .assert_ok()
        .json();
    assert_eq!(done["finished"], true, "{done:#}");

    assert_all_restore(&repo, &known, &scratch);
    repo.check_read_data();
    assert_only_the_new_key_opens(&repo, &old_keys);

    // The old key files with their passwords open nothing: not beside
    // the new key file, not alone.
    let new_key_files = key_files(&repo);
    for (name, bytes) in &old_key_files {
        std::fs::write(repo.path.join("keys").join(name), bytes).unwrap();
    }
    for password in [PASSWORD, SECOND_PASSWORD] {
        let old = Repo {
            password: Some(password.to_string()),
            ..Repo::at(&repo.path, Encryption::Aes256Gcm)
        };
        let listed = old.run(["snapshots", "--json"]);
        if password == PASSWORD {
            // The new key file is tried too: the password still opens it.
            listed.assert_ok();
        } else {
            listed.assert_failed();
        }
    }
    for name in new_key_files.keys() {
        std::fs::remove_file(repo.path.join("keys").join(name)).unwrap();
    }
    repo.run(["snapshots"]).assert_failed();
    for name in old_key_files.keys() {
        std::fs::remove_file(repo.path.join("keys").join(name)).unwrap();
    }
    for (name, bytes) in &new_key_files {
        std::fs::write(repo.path.join("keys").join(name), bytes).unwrap();
    }

    // Other passwords are added again; the rotation left the repository as
    // a fresh one: another rotation runs, and the audit trail holds.
    repo.command()
        .args(["key", "add"])
        .env("REWIND_NEW_PASSWORD", SECOND_PASSWORD)
        .status()
        .unwrap();
    let second = Repo {
        password: Some(SECOND_PASSWORD.to_string()),
        ..Repo::at(&repo.path, Encryption::Aes256Gcm)
    };
    assert_eq!(second.snapshots().len(), known.len());
    rotate(&repo, &[], None).assert_ok();
    assert_all_restore(&repo, &known, &scratch);
    repo.run(["check"]).assert_ok();
}

#[test]
fn a_mount_that_opened_the_repository_before_the_rotation_reads_on_after_it() {
    mount_util::require_root();
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let mut rng = Rng::new(seed("rotation under a mount"));
    let src = dir.join("src");
    let big = rng.bytes(12 << 20);
    write(&src.join("big.bin"), &big);
    write(&src.join("small.txt"), &rng.text(5000));
    let time = "2024-06-01T10:00:00Z";
    repo.backup([arg(&src), "--time".as_ref(), time.as_ref()]);
    let copy = dir.join("copy");
    run(Command::new("cp").arg("-a").arg(&src).arg(&copy)).assert_ok();

    let mount =
        mount_util::Mount::start_with(repo.command(), &dir.join("mnt"), &["--refresh", "1"]);
    let in_mount = |label: &str| mount_util::inside(&mount.path(label), &src);
    let label = format!("@{time}");
    let mut open = std::fs::File::open(in_mount(&label).join("big.bin")).unwrap();
    let mut read = vec![0u8; 1 << 20];
    std::io::Read::read_exact(&mut open, &mut read).unwrap();

    let report = rotate(&repo, &["--json"], None).assert_ok().json();
    assert_eq!(report["finished"], true, "{report:#}");
    assert!(report["packs_deleted"].as_u64().unwrap() > 0, "{report:#}");

    std::io::Read::read_to_end(&mut open, &mut read).unwrap_or_else(|e| {
        panic!(
            "reading on after the rotation: {e}\nlog:\n{}",
            mount.log_text()
        )
    });
    assert!(
        read == big,
        "a file open across the rotation reads its own bytes"
    );
    let through_mount = dir.join("through-mount");
    run(Command::new("cp")
        .arg("-a")
        .arg(in_mount(&label))
        .arg(&through_mount))
    .assert_ok();
    assert_eq!(
        mount_util::diff_r(&copy, &through_mount),
        Vec::<String>::new()
    );

    // A backup after the rotation shows up in the running mount, whose
    // manifest only the new key opens.
    let later = "2024-06-02T10:00:00Z";
    write(&src.join("later.txt"), b"after the rotation\n");
    repo.backup([arg(&src), "--time".as_ref(), later.as_ref()]);
    let shown = wait_for(Duration::from_secs(15), || {
        mount.top_names().contains(&format!("@{later}"))
    });
    assert!(
        shown.is_some(),
        "{:?}\nlog:\n{}",
        mount.top_names(),
        mount.log_text()
    );
    assert_eq!(
        std::fs::read(in_mount(&format!("@{later}")).join("later.txt")).unwrap(),
        b"after the rotation\n"
    );
    drop(open);
    drop(mount);
    repo.check_read_data();
}
