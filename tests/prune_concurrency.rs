//! Prune beside the other users of a repository, as real processes:
//! backups running at the same time as `forget --prune`; a backup stopped
//! (SIGSTOP) across a prune, with its lock live or removed, either after it
//! read data a forgotten snapshot holds or after it stored packs no index
//! names yet; and a running mount reading a file whose packs a prune
//! repacks. The rule they check is in docs/design.md section 7 (prune):
//! never a snapshot that points at missing data, and a plan waits for the
//! writers that may rely on it.

mod common;
mod mount_util;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use common::*;
use rewind::{Encryption, Extent, Id};

/// Every snapshot `repo` lists restores to what it backed up, `check
/// --read-data` passes, and a prune leaves no deletion plan behind.
#[track_caller]
fn assert_sound_and_clean(repo: &Repo, known: &[Snap], scratch: &Path) {
    assert_listed_restore(repo, known, scratch);
    repo.check_read_data();
    let report = repo.prune(&[]);
    assert_eq!(report["plans_waiting"], serde_json::json!([]), "{report:#}");
    assert!(
        repo.deletion_plan_files().is_empty(),
        "deletion plans left: {:?}",
        repo.deletion_plan_files()
    );
    repo.check_read_data();
    assert_listed_restore(repo, known, scratch);
}

#[test]
fn backups_and_forget_with_prune_at_the_same_time() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let mut lineages: Vec<Lineage> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|name| Lineage::new(&dir, &format!("concurrent {name}")))
        .collect();
    let mut known: Vec<Snap> = Vec::new();
    for lineage in &mut lineages {
        for _ in 0..2 {
            known.push(lineage.back_up_next(&repo));
        }
    }

    let copies: Vec<PathBuf> = lineages.iter_mut().map(|l| l.advance()).collect();
    let backups: Vec<Child> = lineages
        .iter()
        .map(|l| {
            l.backup_command(&repo)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let forget = repo
        .command()
        .args(["forget", "--keep-last", "1", "--prune", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut newest = Vec::new();
    for ((backup, lineage), copy) in backups.into_iter().zip(&lineages).zip(copies) {
        let out = backup.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a backup beside forget --prune: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let snapshot: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        newest.push(lineage.snap(&snapshot, copy));
    }
    let out = forget.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "forget --prune beside backups: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let listed: Vec<String> = repo
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    for snap in &newest {
        assert!(listed.contains(&snap.id), "the backups' snapshots stay");
    }
    known.extend(newest);
    assert_sound_and_clean(&repo, &known, &dir.join("restored"));
}

/// `rewind backup --stdin-name NAME` reading from a pipe the test holds.
struct PipedBackup {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl PipedBackup {
    fn start(repo: &Repo, name: &str) -> PipedBackup {
        let mut child = repo
            .command()
            .args(["backup", "--json", "--stdin-name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the rewind binary runs");
        let stdin = child.stdin.take();
        PipedBackup {
            child: Some(child),
            stdin,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Writes `data` and waits until the backup has read all of it.
    fn feed(&mut self, data: &[u8]) -> std::io::Result<()> {
        let pipe = self.stdin.as_mut().unwrap();
        pipe.write_all(data)?;
        let fd = pipe.as_raw_fd();
        let drained = wait_for(Duration::from_secs(60), || {
            let mut queued: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int; fd is our open end of the pipe.
            let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
            rc == 0 && queued == 0
        });
        assert!(drained.is_some(), "the backup does not read its input");
        Ok(())
    }

    /// Ends the input and waits for the backup to finish.
    fn finish(mut self) -> Run {
        self.stdin.take();
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        Run {
            what: "rewind backup --json --stdin-name".into(),
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for PipedBackup {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `pid` holds a live lock of `repo`.
#[track_caller]
fn wait_for_lock(repo: &Repo, pid: u32) {
    let holds = || {
        let locks = repo.run(["locks", "--json"]).assert_ok().json();
        locks
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["pid"].as_u64() == Some(pid as u64) && l["stale"] == false)
    };
    assert!(
        wait_for(Duration::from_secs(60), holds).is_some(),
        "no lock of {pid}"
    );
}

/// The data chunks of the file at `path` (absolute, as backed up) in the
/// tree `root`, in file order, with their lengths.
fn file_extents(repo: &rewind::Repository, root: &Id, path: &Path) -> Vec<(Id, u64)> {
    let mut tree = *root;
    let mut names: Vec<&[u8]> = path
        .strip_prefix("/")
        .unwrap()
        .iter()
        .map(std::os::unix::ffi::OsStrExt::as_bytes)
        .collect();
    let file = names.pop().unwrap();
    for name in names {
        let nodes = repo.read_tree(&tree).unwrap().nodes;
        let dir = nodes.iter().find(|n| n.name == name).unwrap();
        tree = dir.subtree.unwrap();
    }
    let nodes = repo.read_tree(&tree).unwrap().nodes;
    let node = nodes.iter().find(|n| n.name == file).unwrap();
    node.content
        .iter()
        .filter_map(|e| match e {
            Extent::Data { id, len } => Some((*id, *len as u64)),
            _ => None,
        })
        .collect()
}

/// The pack of each blob, as `repo`'s index places it.
fn packs_of(repo: &rewind::Repository, blobs: &[Id]) -> Vec<String> {
    let index = repo.index();
    blobs
        .iter()
        .map(|id| {
            let location = index.get(id).expect("an indexed blob");
            index.pack(location.pack()).id.to_hex()
        })
        .collect()
}

/// A repository with one snapshot S1 of `x.bin` (content X), and a backup
/// of standard input as `x.bin` that has read X again (so it deduplicates
/// against S1's packs) and is stopped (SIGSTOP) holding its lock.
struct StoppedBackup {
    repo: Repo,
    x: Vec<u8>,
    s1: serde_json::Value,
    s1_packs: BTreeSet<String>,
    s1_chunks: Vec<Id>,
    backup: PipedBackup,
    rng: Rng,
}

impl StoppedBackup {
    fn start(dir: &Path, name: &str) -> StoppedBackup {
        let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
        let mut rng = Rng::new(seed(name));
        let x = rng.bytes(4 << 20);
        let s1 = repo
            .run_with_stdin(["backup", "--json", "--stdin-name", "x.bin"], Some(&x))
            .assert_ok()
            .json();
        let s1_packs = repo.pack_files();
        let s1_tree = Id::from_hex(s1["tree"].as_str().unwrap()).unwrap();
        let s1_chunks = file_extents(&repo.open(), &s1_tree, Path::new("/x.bin"))
            .into_iter()
            .map(|(id, _)| id)
            .collect();

        let mut backup = PipedBackup::start(&repo, "x.bin");
        wait_for_lock(&repo, backup.pid());
        backup.feed(&x).unwrap();
        // Time to cut and look up what it read.
        std::thread::sleep(Duration::from_millis(500));
        kill(backup.pid(), libc::SIGSTOP);
        StoppedBackup {
            repo,
            x,
            s1,
            s1_packs,
            s1_chunks,
            backup,
            rng,
        }
    }

    /// Forgets S1 and prunes; the report.
    fn forget_s1_and_prune(&self) -> serde_json::Value {
        let s1_id = self.s1["id"].as_str().unwrap();
        let run = self
            .repo
            .run(["forget", s1_id, "--prune", "--json"])
            .assert_ok();
        run.json()["prune"].clone()
    }

    /// Lets the backup go on: more input, then the end of it. Returns its
    /// run, and what its snapshot must restore to (the id is the caller's
    /// to fill in from the run).
    fn resume(mut self, dir: &Path) -> (Run, Repo, Snap) {
        kill(self.backup.pid(), libc::SIGCONT);
        let y = self.rng.bytes(1 << 20);
        // A backup that gave up may have closed its input already.
        let _ = self.backup.feed(&y);
        let run = self.backup.finish();
        let expected = dir.join("expected");
        let mut content = self.x.clone();
        content.extend_from_slice(&y);
        write(&expected.join("x.bin"), &content);
        let snap = Snap {
            id: String::new(),
            src: PathBuf::from("/"),
            copy: expected,
        };
        (run, self.repo, snap)
    }
}

/// A prune report with nothing done: no pack deleted, repacked or found
/// unindexed (plans may wait).
#[track_caller]
fn assert_nothing_to_do_but_wait(report: &serde_json::Value) {
    for field in [
        "packs_unused",
        "packs_repacked",
        "packs_unindexed",
        "packs_rescued",
        "packs_deleted",
    ] {
        assert_eq!(number(report, field), 0, "{field} in {report:#}");
    }
}

#[test]
fn a_backup_stopped_across_a_prune_keeps_what_it_relies_on() {
    let (_tmp, dir) = tempdir();
    let stopped = StoppedBackup::start(&dir, "prune stopped backup");
    let pid = stopped.backup.pid();
    let (s1_packs, s1_chunks) = (stopped.s1_packs.clone(), stopped.s1_chunks.clone());

    let report = stopped.forget_s1_and_prune();
    let waiting = report["plans_waiting"].as_array().unwrap();
    assert_eq!(
        waiting.len(),
        1,
        "the plan waits for the backup: {report:#}"
    );
    let waits_for = waiting[0]["waits_for"].to_string();
    assert!(
        waits_for.contains(&format!("pid {pid}")) && waits_for.contains("backup"),
        "{report:#}"
    );
    assert_eq!(number(&report, "packs_deleted"), 0, "{report:#}");
    assert!(
        s1_packs.is_subset(&stopped.repo.pack_files()),
        "a waiting plan deletes nothing"
    );
    // A waiting plan is a sound state: its packs are neither lost nor damage.
    stopped.repo.check_read_data();
    let state = dir.join("scrub.state");
    let scrub = stopped
        .repo
        .run(["scrub", "--json", "--state", state.to_str().unwrap()])
        .assert_ok()
        .json();
    assert_eq!(scrub["findings"], serde_json::json!([]), "{scrub:#}");

    let (run, repo, mut snap) = stopped.resume(&dir);
    let snapshot = run.assert_ok().json();
    snap.id = snapshot["id"].as_str().unwrap().to_string();
    let tree = Id::from_hex(snapshot["tree"].as_str().unwrap()).unwrap();
    let chunks = file_extents(&repo.open(), &tree, Path::new("/x.bin"));
    assert!(
        chunks.iter().any(|(id, _)| s1_chunks.contains(id)),
        "the backup cut X as S1 did (it had S1's blobs to rely on)"
    );
    let scratch = dir.join("restored");
    snap.assert_restores(&repo, &scratch);

    // The backup stored again what it relied on: the next prune carries
    // out the plan whole, with nothing to bring back.
    let second = repo.prune(&[]);
    assert_eq!(second["plans_waiting"], serde_json::json!([]), "{second:#}");
    assert_eq!(number(&second, "packs_rescued"), 0, "{second:#}");
    let left: Vec<String> = s1_packs.intersection(&repo.pack_files()).cloned().collect();
    assert!(left.is_empty(), "packs of S1 left: {left:?}; {second:#}");
    assert_sound_and_clean(&repo, &[snap], &scratch);
}

/// A prune while a plan waits for a stopped backup has nothing to do: the
/// plan's packs are on their way out, not leftovers of a killed writer to
/// plan again, and the index needs no rewrite.
#[test]
fn a_prune_while_a_plan_waits_leaves_it_waiting_and_changes_nothing() {
    let (_tmp, dir) = tempdir();
    let stopped = StoppedBackup::start(&dir, "prune while a plan waits");
    let report = stopped.forget_s1_and_prune();
    assert_eq!(report["plans_waiting"].as_array().unwrap().len(), 1);

    let listing = stopped.repo.listing();
    let again = stopped.repo.prune(&[]);
    assert_eq!(again["plans_waiting"], report["plans_waiting"], "{again:#}");
    assert_nothing_to_do_but_wait(&again);
    assert_eq!(
        stopped.repo.listing(),
        listing,
        "a prune with only a waiting plan changes no file: {again:#}"
    );

    let (run, repo, mut snap) = stopped.resume(&dir);
    snap.id = run.assert_ok().json()["id"].as_str().unwrap().to_string();
    assert_sound_and_clean(&repo, &[snap], &dir.join("restored"));
}

#[test]
fn a_backup_whose_lock_was_removed_never_saves_a_snapshot_of_pruned_data() {
    let (_tmp, dir) = tempdir();
    let stopped = StoppedBackup::start(&dir, "prune unlocked backup");
    let (s1_packs, s1_chunks) = (stopped.s1_packs.clone(), stopped.s1_chunks.clone());

    let unlocked = stopped.repo.run(["unlock"]).assert_ok();
    assert!(unlocked.stderr.contains("was live"), "{}", unlocked.stderr);
    let report = stopped.forget_s1_and_prune();
    assert_eq!(report["plans_waiting"], serde_json::json!([]), "{report:#}");
    let left: Vec<String> = s1_packs
        .intersection(&stopped.repo.pack_files())
        .cloned()
        .collect();
    assert!(
        left.is_empty(),
        "with no lock live, the plan is carried out at once: {left:?}; {report:#}"
    );

    let (run, repo, mut snap) = stopped.resume(&dir);
    let scratch = dir.join("restored");
    let mut known = Vec::new();
    if run.ok() {
        snap.id = run.json()["id"].as_str().unwrap().to_string();
        snap.assert_restores(&repo, &scratch);
        known.push(snap);
    } else {
        // What is gone: a pack of S1, or a blob that was only in them.
        let pruned: Vec<String> = s1_packs
            .iter()
            .map(|pack| pack[..8].to_string())
            .chain(s1_chunks.iter().map(|id| id.to_hex()[..8].to_string()))
            .collect();
        assert!(
            pruned.iter().any(|name| run.stderr.contains(name.as_str())),
            "a backup that lost what it relied on should name what is missing \
             (a pack or blob of {pruned:?}):\n{}",
            run.stderr
        );
        assert!(repo.snapshots().is_empty(), "and save no snapshot");
    }
    repo.check_read_data();
    assert_sound_and_clean(&repo, &known, &scratch);
}

/// Feeds a backup random data, 2 MiB at a time, until it has stored a
/// pack of its own (one of `repo`'s packs that is not in `before`): a pack
/// no index file names until the backup finishes. Returns what it fed.
fn feed_until_it_stores_a_pack(
    backup: &mut PipedBackup,
    repo: &Repo,
    before: &BTreeSet<String>,
    rng: &mut Rng,
) -> Vec<u8> {
    let mut fed = Vec::new();
    while fed.len() < 256 << 20 {
        let more = rng.bytes(2 << 20);
        backup.feed(&more).unwrap();
        fed.extend_from_slice(&more);
        let stored = wait_for(Duration::from_millis(100), || {
            repo.pack_files().difference(before).next().is_some()
        });
        if stored.is_some() {
            return fed;
        }
    }
    panic!("the backup stored no pack of the 256 MiB it read");
}

/// A backup of standard input stopped (SIGSTOP) after it stored a pack
/// that no index names yet, in a repository with nothing else.
struct InFlight {
    repo: Repo,
    backup: PipedBackup,
    fed: Vec<u8>,
    /// The backup's packs stored so far.
    packs: BTreeSet<String>,
    rng: Rng,
}

impl InFlight {
    fn start(dir: &Path, name: &str) -> InFlight {
        // Packs closed at 1 MiB, the least a config allows, so that the
        // backup stores some while it runs however many packers it has
        // (an unencrypted config is plain JSON).
        let repo = Repo::init(&dir.join("repo"), Encryption::None);
        let config_path = repo.path.join("config");
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        config["pack_size"] = (1 << 20).into();
        std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
        let mut rng = Rng::new(seed(name));
        let mut backup = PipedBackup::start(&repo, "big.bin");
        wait_for_lock(&repo, backup.pid());
        let fed = feed_until_it_stores_a_pack(&mut backup, &repo, &BTreeSet::new(), &mut rng);
        kill(backup.pid(), libc::SIGSTOP);
        let packs = repo.pack_files();
        InFlight {
            repo,
            backup,
            fed,
            packs,
            rng,
        }
    }

    /// Lets the backup go on and finish, as `StoppedBackup::resume`.
    fn resume(mut self, dir: &Path) -> (Run, Repo, Snap) {
        kill(self.backup.pid(), libc::SIGCONT);
        let tail = self.rng.bytes(1 << 20);
        let _ = self.backup.feed(&tail);
        let run = self.backup.finish();
        let expected = dir.join("expected");
        self.fed.extend_from_slice(&tail);
        write(&expected.join("big.bin"), &self.fed);
        let snap = Snap {
            id: String::new(),
            src: PathBuf::from("/"),
            copy: expected,
        };
        (run, self.repo, snap)
    }
}

/// A backup has indexed its packs and not yet written its manifest when a
/// prune writes the index anew without them (nothing uses them yet) and is
/// killed before it carries out its plan: the next prune finds the
/// snapshot's trees in packs no index file names, and indexes them again
/// rather than failing or losing them.
#[test]
fn a_prune_killed_while_a_backup_commits_leaves_its_packs_to_the_next_prune() {
    let (_tmp, dir) = tempdir();
    let mut history = History::build(&dir, "prune killed beside a commit", 1, &[]);
    let copy = history.lineage.advance();
    let gate = dir.join("commit-gate");
    let backup = spawn_held_at(
        &mut history.lineage.backup_command(&history.repo),
        "backup-committing",
        &gate,
    );
    let killed = run(history
        .repo
        .command()
        .args(["prune"])
        .env("REWIND_CRASH_AT", "prune-planned"));
    assert_eq!(killed.code, None, "prune is killed: {}", killed.stderr);
    release_and_check(history, backup, &gate, copy);
}

/// Opens `gate` for the held `backup`, which must then succeed; every
/// snapshot of `history`, the backup's among them, restores and checks.
fn release_and_check(
    mut history: History,
    backup: std::process::Child,
    gate: &std::path::Path,
    copy: std::path::PathBuf,
) {
    write(gate, b"");
    let out = backup.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    history.snaps.push(history.lineage.snap(&snapshot, copy));
    let scratch = history.scratch.clone();
    assert_sound_and_clean(&history.repo, &history.snaps, &scratch);
}

/// A backup's snapshot copy is indexed before its manifest is written: a
/// prune that looks in between sees a copy without a manifest, which is a
/// lost manifest only when no writer is live.
#[test]
fn a_prune_between_a_backups_snapshot_copy_and_its_manifest_goes_on() {
    let (_tmp, dir) = tempdir();
    let mut history = History::build(&dir, "prune beside a manifest", 1, &[]);
    let copy = history.lineage.advance();
    let gate = dir.join("manifest-gate");
    let backup = spawn_held_at(
        &mut history.lineage.backup_command(&history.repo),
        "snapshot-copy-indexed",
        &gate,
    );
    let pruned = run(history.repo.command().args(["prune"]));
    assert_eq!(
        pruned.code,
        Some(0),
        "prune beside a backup writing its manifest: {}",
        pruned.stderr
    );
    release_and_check(history, backup, &gate, copy);
}

#[test]
fn the_packs_a_running_backup_has_not_indexed_yet_stay() {
    let (_tmp, dir) = tempdir();
    let in_flight = InFlight::start(&dir, "prune beside packs in flight");
    let pid = in_flight.backup.pid();
    let packs = in_flight.packs.clone();

    let report = in_flight.repo.prune(&[]);
    assert!(number(&report, "packs_unindexed") > 0, "{report:#}");
    assert_eq!(number(&report, "packs_deleted"), 0, "{report:#}");
    let waiting = report["plans_waiting"].to_string();
    assert!(waiting.contains(&format!("pid {pid}")), "{report:#}");
    assert!(packs.is_subset(&in_flight.repo.pack_files()));

    let (run, repo, mut snap) = in_flight.resume(&dir);
    let run = run.assert_ok();
    snap.id = run.json()["id"].as_str().unwrap().to_string();
    // The plan is due now, but the packs it named are the backup's own,
    // indexed now: they stay, and nothing was stored twice.
    let second = repo.prune(&[]);
    assert!(
        number(&second, "packs_deleted") == 0 && packs.is_subset(&repo.pack_files()),
        "the backup's packs {packs:?} should stay: {second:#}\nthe backup said:\n{}",
        run.stderr
    );
    assert_sound_and_clean(&repo, &[snap], &dir.join("restored"));
}

#[test]
fn a_backup_whose_unindexed_packs_were_pruned_saves_no_snapshot_of_them() {
    let (_tmp, dir) = tempdir();
    let in_flight = InFlight::start(&dir, "prune unlocked packs in flight");
    let packs = in_flight.packs.clone();
    in_flight.repo.run(["unlock"]).assert_ok();
    let report = in_flight.repo.prune(&[]);
    assert!(
        packs.is_disjoint(&in_flight.repo.pack_files()),
        "with no lock live, packs no index names are deleted at once: {report:#}"
    );

    let (run, repo, mut snap) = in_flight.resume(&dir);
    let mut known = Vec::new();
    if run.ok() {
        snap.id = run.json()["id"].as_str().unwrap().to_string();
        snap.assert_restores(&repo, &dir.join("restored"));
        known.push(snap);
    } else {
        assert!(
            repo.snapshots().is_empty(),
            "a failed backup saves no snapshot:\n{}",
            run.stderr
        );
    }
    repo.check_read_data();
    assert_sound_and_clean(&repo, &known, &dir.join("restored"));
}

/// Where a reader of a file made of `extents` (stored in `packs`) can
/// stop, as near its middle as may be, so that a chunk from a pack that
/// `repacked` names lies beyond what the mount has read ahead by then (up
/// to 4 chunks ahead of a sequential reader, `VfsOptions::readahead_chunks`,
/// and the kernel's read-ahead within one more).
fn offset_before_an_unread_repacked_chunk(
    extents: &[(Id, u64)],
    packs: &[String],
    repacked: &[String],
) -> Option<u64> {
    const READ_AHEAD_CHUNKS: usize = 5;
    let starts: Vec<u64> = extents
        .iter()
        .scan(0, |offset, (_, len)| {
            let start = *offset;
            *offset += len;
            Some(start)
        })
        .collect();
    let size: u64 = extents.iter().map(|(_, len)| len).sum();
    (1..extents.len())
        .filter(|&i| {
            packs
                .iter()
                .skip(i + READ_AHEAD_CHUNKS)
                .any(|pack| repacked.contains(pack))
        })
        .map(|i| starts[i])
        .min_by_key(|split| split.abs_diff(size / 2))
}

#[test]
fn a_running_mount_reads_on_while_prune_repacks_under_it() {
    mount_util::require_root();
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let mut rng = Rng::new(seed("prune under a mount"));
    let src = dir.join("src");
    let kept = rng.bytes(20 << 20);
    write(&src.join("kept.bin"), &kept);
    let junk: Vec<PathBuf> = (0..32)
        .map(|i| src.join(format!("junk/file-{i:02}.bin")))
        .collect();
    for path in &junk {
        write(path, &rng.bytes(32 * 1024));
    }
    let (first_time, second_time) = ("2024-06-01T10:00:00Z", "2024-06-02T10:00:00Z");
    let first = repo.backup([arg(&src), "--time".as_ref(), first_time.as_ref()]);
    std::fs::remove_dir_all(src.join("junk")).unwrap();
    write(&src.join("later.txt"), b"after the junk went\n");
    let second = repo.backup([arg(&src), "--time".as_ref(), second_time.as_ref()]);
    let copy = dir.join("copy");
    run(Command::new("cp").arg("-a").arg(&src).arg(&copy)).assert_ok();

    // The packs of kept.bin that also hold junk: once the first snapshot
    // (the junk's only one) is forgotten, a prune with --max-unused 0%
    // repacks them.
    let lib = repo.open();
    let tree_of =
        |snapshot: &serde_json::Value| Id::from_hex(snapshot["tree"].as_str().unwrap()).unwrap();
    let extents = file_extents(&lib, &tree_of(&second), &src.join("kept.bin"));
    let ids: Vec<Id> = extents.iter().map(|(id, _)| *id).collect();
    let kept_packs = packs_of(&lib, &ids);
    let junk_ids: Vec<Id> = junk
        .iter()
        .flat_map(|path| file_extents(&lib, &tree_of(&first), path))
        .map(|(id, _)| id)
        .collect();
    let junk_packs = packs_of(&lib, &junk_ids);
    drop(lib);
    let repacked: Vec<String> = kept_packs
        .iter()
        .filter(|p| junk_packs.contains(p))
        .cloned()
        .collect();
    let split = offset_before_an_unread_repacked_chunk(&extents, &kept_packs, &repacked)
        .expect("a chunk of kept.bin far enough from its start shares a pack with the junk");

    let mount =
        mount_util::Mount::start_with(repo.command(), &dir.join("mnt"), &["--refresh", "1"]);
    let (first_label, second_label) = (format!("@{first_time}"), format!("@{second_time}"));
    let in_mount = |label: &str| mount_util::inside(&mount.path(label), &src);
    let mut open = std::fs::File::open(in_mount(&second_label).join("kept.bin")).unwrap();
    let mut read = vec![0u8; split as usize];
    std::io::Read::read_exact(&mut open, &mut read).unwrap();

    // Forget first and wait for the mount to drop the snapshot: that
    // refresh loads no index (forget writes none), so what the mount reads
    // after the prune it reads with the index it had before, and must find
    // the repacked blobs anew.
    repo.run(["forget", first["id"].as_str().unwrap()])
        .assert_ok();
    let gone = wait_for(Duration::from_secs(10), || {
        !mount.top_names().contains(&first_label)
    });
    assert!(
        gone.is_some(),
        "the forgotten snapshot is still shown: {:?}\nlog:\n{}",
        mount.top_names(),
        mount.log_text()
    );
    let report = repo.prune(&["--max-unused", "0%"]);
    let packs_now = repo.pack_files();
    for pack in &repacked {
        assert!(
            !packs_now.contains(pack),
            "pack {pack} of kept.bin is repacked and deleted: {report:#}"
        );
    }

    std::io::Read::read_to_end(&mut open, &mut read).unwrap_or_else(|e| {
        panic!(
            "reading on after the prune: {e}\nlog:\n{}",
            mount.log_text()
        )
    });
    assert!(
        read == kept,
        "a file open across the prune reads its own bytes ({} of {} read)",
        read.len(),
        kept.len()
    );
    let through_mount = dir.join("through-mount");
    run(Command::new("cp")
        .arg("-a")
        .arg(in_mount(&second_label))
        .arg(&through_mount))
    .assert_ok();
    let diff = mount_util::diff_r(&copy, &through_mount);
    assert!(
        diff.is_empty(),
        "the kept snapshot through the mount: {diff:?}"
    );

    assert!(mount.top_names().contains(&second_label));
    drop(open); // a lazy unmount waits for open files
    drop(mount);
    repo.check_read_data();
}
