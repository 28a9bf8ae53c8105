//! Fault injection for `rewind scrub`, `scrub --repair`, `status` and the
//! mount's background scrub, against repositories made by the real binary
//! (three backups each: one encrypted with `--parity 10`, one unencrypted
//! without parity) and through a real mount.
//!
//! For each fault: the scrub reports exactly the damaged files and, for a
//! pack, the snapshots and paths that need the damaged blobs; with parity,
//! `scrub --repair` puts back the very bytes that were damaged, so that
//! `check --read-data` passes and restores equal the sources; damage beyond
//! parity is reported lost and everything else still restores; through the
//! mount, damaged chunks give EIO and every other byte is right. Nothing
//! panics. Faults are random: each test prints its seed, and
//! REWIND_TEST_SEED replays it.

mod common;
mod scrub_util;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::*;
use rewind::format::BlobKind;
use rewind::Id;
use scrub_util::*;
use serde_json::Value;

/// Picks one element.
fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len() as u64) as usize]
}

/// The one file under a repository directory (`keys/…`).
fn only_file(repo: &Repo, dir: &str) -> String {
    let files = files_under(&repo.path.join(dir));
    assert_eq!(files.len(), 1, "{dir}: {files:?}");
    format!("{dir}/{}", files.first().unwrap())
}

/// The largest of some packs.
fn biggest(fx: &Fixture, packs: &[String]) -> String {
    packs
        .iter()
        .max_by_key(|p| fx.model.packs[*p].size)
        .unwrap()
        .clone()
}

/// `check --read-data` passes, a new scrub finds nothing, and every
/// snapshot restores exactly.
#[track_caller]
fn assert_whole(fx: &Fixture, repo: &Repo, state: &std::path::Path, work: &std::path::Path) {
    rewind(repo, ["check", "--read-data"]).assert_ok();
    let report = scrub(repo, state, &[], 0);
    assert_findings(&report, &BTreeSet::new(), "", "a scrub after the repair");
    for (i, backup) in fx.backups.iter().enumerate() {
        restore_all_but(
            repo,
            backup,
            &work.join(format!("restore-{i}")),
            &BTreeSet::new(),
        );
    }
}

/// One fault at a time in every kind of file of a repository with parity:
/// the scrub reports exactly that file (and, for a pack, exactly the paths
/// that need its damaged blobs); `scrub --repair` rebuilds the very bytes
/// and exits 4; in the end the repository checks and restores exactly.
#[test]
fn every_kind_of_file_with_flipped_bits_is_found_and_repaired_from_parity() {
    let fx = parity_fixture();
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed(
        "every_kind_of_file_with_flipped_bits_is_found_and_repaired_from_parity",
    ));
    let repo = fx.copy_to(&dir.join("repo"));
    let state = dir.join("scrub-state.json");
    let snapshots = repo.snapshots();

    let clean = scrub(&repo, &state, &[], 0);
    assert_findings(&clean, &BTreeSet::new(), "", "the pristine repository");
    assert_eq!(clean["packs_checked"], fx.model.packs.len());
    assert_eq!(clean["pass_complete"], true);

    let b = &fx.backups;
    let data_packs: Vec<&str> = b
        .iter()
        .flat_map(|b| b.data_packs.iter().map(String::as_str))
        .collect();
    let tree_packs: Vec<&str> = b
        .iter()
        .flat_map(|b| b.tree_packs.iter().map(String::as_str))
        .collect();
    let copy_packs: Vec<&str> = b.iter().map(|b| b.copy_pack.as_str()).collect();
    let index_files: Vec<&str> = b
        .iter()
        .flat_map(|b| b.index_files.iter().map(String::as_str))
        .collect();
    let manifests: Vec<&str> = b.iter().map(|b| b.manifest.as_str()).collect();
    let key = only_file(&repo, "keys");
    let size = |file: &str| std::fs::metadata(repo.path.join(file)).unwrap().len() as usize;

    let mut targets: Vec<(&str, String)> = vec![
        (
            "one bit of a data pack",
            pick(&mut rng, &data_packs).to_string(),
        ),
        (
            "a burst in a data pack",
            pick(&mut rng, &data_packs).to_string(),
        ),
        (
            "one bit of a tree pack",
            pick(&mut rng, &tree_packs).to_string(),
        ),
        (
            "a burst in a snapshot-copy pack",
            pick(&mut rng, &copy_packs).to_string(),
        ),
        (
            "a truncated data pack",
            pick(&mut rng, &data_packs).to_string(),
        ),
        (
            "one bit of an index file",
            pick(&mut rng, &index_files).to_string(),
        ),
        (
            "a burst in an index file",
            pick(&mut rng, &index_files).to_string(),
        ),
        (
            "one bit of a snapshot manifest",
            pick(&mut rng, &manifests).to_string(),
        ),
        (
            "a burst in a snapshot manifest",
            pick(&mut rng, &manifests).to_string(),
        ),
        ("one bit of the key file", key.clone()),
        ("a burst in the key file", key.clone()),
        ("one bit of the config", "config".into()),
        ("a burst in the config", "config".into()),
    ];
    // The parity files themselves: damaged parity protects nothing.
    for (what, of) in [
        (
            "one bit of a pack's parity",
            pick(&mut rng, &data_packs).to_string(),
        ),
        (
            "one bit of an index file's parity",
            pick(&mut rng, &index_files).to_string(),
        ),
        (
            "one bit of a manifest's parity",
            pick(&mut rng, &manifests).to_string(),
        ),
        ("one bit of the key file's parity", key.clone()),
        ("one bit of the config's parity", "config".into()),
    ] {
        targets.push((what, fx.parity_of(&of).unwrap()));
    }

    for (i, (what, file)) in targets.iter().enumerate() {
        let fault = if what.starts_with("one bit") {
            Fault::flip(&mut rng, size(file))
        } else if what.starts_with("a truncated") {
            Fault::truncate(&mut rng, size(file))
        } else if file.starts_with("data/") && fx.model.packs[file].size > 1 << 20 {
            Fault::burst(&mut rng, size(file), 8192)
        } else {
            // Small files have 64-byte shards: at most two of them.
            Fault::burst(&mut rng, size(file), 64)
        };
        let context = format!("{what} ({file}, {fault:?})");
        let original = fault.apply(&repo.path, file, &mut rng);
        let damaged = BTreeSet::from([file.clone()]);
        let report = scrub(&repo, &state, &[], 1);
        assert_findings(&report, &damaged, "damaged", &context);
        if let Some(pack) = fx.model.packs.get(file) {
            let blobs =
                fx.model
                    .damaged_blobs(file, &original, bytes_of(&repo.path, file).as_deref());
            let expected = fx.model.affected(&blobs);
            let finding = &findings(&report)[file];
            assert_eq!(
                affected_by_time(finding, &snapshots),
                expected,
                "{context}: the paths that need the damaged blobs of a {:?} pack",
                pack.kind
            );
            if pack.kind == BlobKind::Data && !blobs.is_empty() {
                assert!(
                    !expected.is_empty(),
                    "{context}: a damaged chunk costs a file"
                );
            }
        }
        if i == 0 {
            // Without the key's help too: the pack does not hash to its name.
            let report = scrub(&repo, &state, &["--shallow"], 1);
            assert_findings(
                &report,
                &damaged,
                "damaged",
                &format!("{context}, --shallow"),
            );
        }

        let report = scrub(&repo, &state, &["--repair"], 4);
        assert_findings(&report, &damaged, "repaired", &context);
        assert!(
            bytes_of(&repo.path, file).as_deref() == Some(&original[..]),
            "{context}: the repair did not put back the original bytes"
        );
    }
    assert_whole(fx, &repo, &state, &dir);
}

/// Several faults at once in packs, index files, manifests and parity
/// files (never a file and its own parity): one scrub finds every damaged
/// file and nothing else, one `scrub --repair` rebuilds them all.
#[test]
fn many_faults_at_once_are_all_found_and_all_repaired() {
    let fx = parity_fixture();
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("many_faults_at_once_are_all_found_and_all_repaired"));
    let repo = fx.copy_to(&dir.join("repo"));
    let state = dir.join("scrub-state.json");

    // The config and key files are left out: while they are damaged the
    // repository cannot be opened, so nothing else can be scrubbed (they
    // have their own cases above).
    let candidates: Vec<String> = files_under(&repo.path)
        .into_iter()
        .filter(|f| f != "config" && !f.starts_with("keys/"))
        .filter(|f| f != "parity/config" && !f.starts_with("parity/keys."))
        .collect();
    let mut chosen: BTreeSet<String> = BTreeSet::new();
    while chosen.len() < 7 {
        let file = pick(&mut rng, &candidates).clone();
        let partner = match file.strip_prefix("parity/") {
            Some(rest) => {
                let (dir, name) = rest.split_once('.').unwrap();
                match dir {
                    "data" => format!("data/{}/{name}", &name[..2]),
                    _ => format!("{dir}/{name}"),
                }
            }
            None => fx.parity_of(&file).unwrap(),
        };
        if !chosen.contains(&partner) {
            chosen.insert(file);
        }
    }
    let mut originals = BTreeMap::new();
    for file in &chosen {
        let size = std::fs::metadata(repo.path.join(file)).unwrap().len() as usize;
        let is_big_pack = fx.model.packs.get(file).is_some_and(|p| p.size > 1 << 20);
        let fault = match (rng.below(3), is_big_pack) {
            (0, _) => Fault::flip(&mut rng, size),
            (1, true) => Fault::burst(&mut rng, size, 8192),
            (2, true) => Fault::truncate(&mut rng, size),
            _ => Fault::burst(&mut rng, size, 64),
        };
        originals.insert(file.clone(), fault.apply(&repo.path, file, &mut rng));
    }

    let report = scrub(&repo, &state, &[], 1);
    assert_findings(&report, &chosen, "damaged", "every fault at once");
    let report = scrub(&repo, &state, &["--repair"], 4);
    assert_findings(&report, &chosen, "repaired", "every fault at once");
    for (file, original) in &originals {
        assert!(
            bytes_of(&repo.path, file).as_deref() == Some(&original[..]),
            "{file}: the repair did not put back the original bytes"
        );
    }
    let status = rewind(
        &repo,
        ["status", "--json", "--state", state.to_str().unwrap()],
    )
    .assert_ok()
    .json();
    assert_eq!(
        (&status["damaged"], &status["repaired"], &status["lost"]),
        (&Value::from(0), &Value::from(chosen.len()), &Value::from(0)),
        "{status:#}"
    );
    assert_whole(fx, &repo, &state, &dir);
}

/// A deleted pack, a pack replaced by another pack's bytes, and a pack
/// truncated to 40%: parity cannot rebuild them, so `scrub --repair`
/// reports them lost, each with the snapshots and paths that need its
/// unreadable blobs; every other file still restores exactly.
#[test]
fn damage_beyond_parity_is_reported_lost_and_everything_else_restores() {
    let fx = parity_fixture();
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed(
        "damage_beyond_parity_is_reported_lost_and_everything_else_restores",
    ));
    let repo = fx.copy_to(&dir.join("repo"));
    let state = dir.join("scrub-state.json");
    let snapshots = repo.snapshots();
    let [a, b, c] = [&fx.backups[0], &fx.backups[1], &fx.backups[2]];

    let truncated = biggest(fx, &c.data_packs);
    let faults = [
        (biggest(fx, &a.data_packs), Fault::Delete),
        (
            biggest(fx, &b.data_packs),
            Fault::Replace {
                with: a.tree_packs[0].clone(),
            },
        ),
        (
            truncated.clone(),
            Fault::Truncate {
                to: fx.model.packs[&truncated].size * 2 / 5,
            },
        ),
    ];
    let mut expected: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (file, fault) in &faults {
        let original = fault.apply(&repo.path, file, &mut rng);
        let blobs = fx
            .model
            .damaged_blobs(file, &original, bytes_of(&repo.path, file).as_deref());
        expected.insert(file.clone(), fx.model.affected(&blobs));
    }
    let lost_files = BTreeSet::from_iter(expected.keys().cloned());

    for (extra, code, status) in [(&[][..], 1, "damaged"), (&["--repair"][..], 1, "lost")] {
        let report = scrub(&repo, &state, extra, code);
        assert_findings(&report, &lost_files, status, &format!("scrub {extra:?}"));
        for (file, finding) in findings(&report) {
            assert_eq!(
                affected_by_time(&finding, &snapshots),
                expected[&file],
                "scrub {extra:?}: the paths that lose data with {file}"
            );
            assert!(
                finding["problem"].as_str().unwrap().contains("parity"),
                "the finding says why parity does not help: {finding:#}"
            );
        }
    }
    let status = rewind(
        &repo,
        ["status", "--json", "--state", state.to_str().unwrap()],
    )
    .assert_ok()
    .json();
    assert_eq!(status["lost"], 3, "{status:#}");

    let check = rewind(&repo, ["check", "--read-data", "--json"])
        .assert_code(1)
        .json();
    let damaged: BTreeSet<String> = check["damaged_packs"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| format!("data/{}/{k}", &k[..2]))
        .collect();
    assert_eq!(damaged, lost_files, "{check:#}");

    for (i, backup) in fx.backups.iter().enumerate() {
        let lost: BTreeSet<String> = expected
            .values()
            .filter_map(|by_time| by_time.get(backup.time))
            .flatten()
            .cloned()
            .collect();
        assert!(!lost.is_empty(), "every snapshot lost something");
        restore_all_but(&repo, backup, &dir.join(format!("restore-{i}")), &lost);
    }
}

/// Without parity: damaged index files are rebuilt from the pack trailers
/// and a damaged snapshot manifest from its copy in the packs, after which
/// the repository checks and restores exactly; a damaged pack is reported
/// lost with the paths that need it, and the rest restores.
#[test]
fn without_parity_repair_rebuilds_indexes_and_manifests_from_the_packs() {
    let fx = plain_fixture();
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed(
        "without_parity_repair_rebuilds_indexes_and_manifests_from_the_packs",
    ));
    let repo = fx.copy_to(&dir.join("repo"));
    let state = dir.join("scrub-state.json");
    let [a, b, c] = [&fx.backups[0], &fx.backups[1], &fx.backups[2]];
    let size = |file: &str| std::fs::metadata(repo.path.join(file)).unwrap().len() as usize;

    let index_a = pick(&mut rng, &a.index_files).clone();
    let index_b = pick(&mut rng, &b.index_files).clone();
    let faults = [
        (index_a.clone(), Fault::flip(&mut rng, size(&index_a))),
        (index_b.clone(), Fault::burst(&mut rng, size(&index_b), 64)),
        (c.manifest.clone(), Fault::flip(&mut rng, size(&c.manifest))),
    ];
    for (file, fault) in &faults {
        fault.apply(&repo.path, file, &mut rng);
    }
    let damaged = BTreeSet::from_iter(faults.iter().map(|(f, _)| f.clone()));

    let report = scrub(&repo, &state, &[], 1);
    assert_findings(&report, &damaged, "damaged", "without parity");
    let report = scrub(&repo, &state, &["--repair"], 4);
    assert_findings(&report, &damaged, "repaired", "without parity");
    for file in &damaged {
        assert!(!repo.path.join(file).exists(), "{file} was replaced");
    }
    let listed = repo.snapshots();
    let listed: Vec<(&str, &str)> = listed
        .iter()
        .map(|s| (s["time"].as_str().unwrap(), s["tree"].as_str().unwrap()))
        .collect();
    let trees: Vec<String> = fx
        .model
        .snapshots
        .iter()
        .map(|s| s.root.id.to_hex())
        .collect();
    let want: Vec<(&str, &str)> = DAYS
        .iter()
        .copied()
        .zip(trees.iter().map(String::as_str))
        .collect();
    assert_eq!(listed, want, "the snapshot list is whole again");
    let check = rewind(&repo, ["check", "--read-data", "--json"])
        .assert_ok()
        .json();
    assert_eq!(
        check["warnings"],
        serde_json::json!([]),
        "every pack is indexed again"
    );
    assert_whole(fx, &repo, &state, &dir.join("first"));

    // A damaged chunk without parity: lost, with exactly the paths that
    // need it. The chunk is one of big.bin's (random bytes, stored as they
    // are), so any flip in it breaks its hash.
    let snapshots = repo.snapshots();
    let big = &fx.model.files(b.time)[&format!("{}/big.bin", b.src.display())];
    let (_, _, victim) = *pick(&mut rng, big);
    let blob = fx.model.blob(&victim);
    let pack_file = fx.model.pack_of(&victim).file.clone();
    let fault = Fault::Flip {
        offset: (blob.offset + rng.below(blob.stored_len as u64) as u32) as usize,
        bit: rng.below(8) as u8,
    };
    let original = fault.apply(&repo.path, &pack_file, &mut rng);
    let blobs = fx.model.damaged_blobs(
        &pack_file,
        &original,
        bytes_of(&repo.path, &pack_file).as_deref(),
    );
    assert_eq!(blobs, HashSet::from([victim]));
    let expected = fx.model.affected(&blobs);
    assert_eq!(
        expected,
        BTreeMap::from([(
            b.time.to_string(),
            BTreeSet::from([format!("{}/big.bin", b.src.display())])
        )])
    );
    let report = scrub(&repo, &state, &["--repair"], 1);
    let pack = BTreeSet::from([pack_file.clone()]);
    assert_findings(&report, &pack, "lost", "a damaged pack without parity");
    let finding = &findings(&report)[&pack_file];
    assert_eq!(affected_by_time(finding, &snapshots), expected);
    // Blob by blob, unless the chunk was alone in its pack (packer threads
    // fill packs of their own, so a pack may hold a single chunk).
    let blobs_in_pack = fx.model.packs[&pack_file].blobs.len();
    assert_eq!(
        finding["damaged_blobs"],
        if blobs_in_pack > 1 {
            serde_json::json!([victim.to_hex()])
        } else {
            Value::Null
        },
        "{finding:#}"
    );
    for (i, backup) in fx.backups.iter().enumerate() {
        let lost = expected.get(backup.time).cloned().unwrap_or_default();
        restore_all_but(&repo, backup, &dir.join(format!("restore-{i}")), &lost);
    }
}

/// Reads `len` bytes at `offset` with O_DIRECT (so exactly this range is
/// asked of the file system, not the pages around it).
fn read_direct(path: &std::path::Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// Through a real mount with a background scrub: one flipped chunk of a
/// file, a pack replaced by another pack's bytes, and one flipped directory
/// listing. The scrub's pass reports the three packs and the paths they
/// cost in `.rewind/status`; then every chunk of every file is read: the
/// damaged ones give EIO, every other byte equals the source.
#[test]
fn through_the_mount_damaged_ranges_give_eio_and_every_other_byte_is_right() {
    let fx = parity_fixture();
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed(
        "through_the_mount_damaged_ranges_give_eio_and_every_other_byte_is_right",
    ));
    let repo = fx.copy_to(&dir.join("repo"));
    let snapshots = repo.snapshots();
    let [a, b, c] = [&fx.backups[0], &fx.backups[1], &fx.backups[2]];

    // One chunk of a's big.bin.
    let big = &fx.model.files(a.time)[&format!("{}/big.bin", a.src.display())];
    assert!(big.len() >= 2, "big.bin has several chunks: {big:?}");
    let (_, _, victim) = *pick(&mut rng, big);
    let blob = fx.model.blob(&victim).clone();
    // c's sub/ directory listing.
    let sub = format!("{}/sub", c.src.display());
    let sub_tree = fx.model.dir(c.time, &sub).id;
    let tree_blob = fx.model.blob(&sub_tree).clone();
    let faults = [
        (
            fx.model.pack_of(&victim).file.clone(),
            Fault::Flip {
                offset: (blob.offset + rng.below(blob.stored_len as u64) as u32) as usize,
                bit: rng.below(8) as u8,
            },
        ),
        (
            biggest(fx, &b.data_packs),
            Fault::Replace {
                with: c.copy_pack.clone(),
            },
        ),
        (
            fx.model.pack_of(&sub_tree).file.clone(),
            Fault::Burst {
                offset: (tree_blob.offset + rng.below(tree_blob.stored_len as u64 - 8) as u32)
                    as usize,
                len: 8,
            },
        ),
    ];
    let mut damaged: HashSet<Id> = HashSet::new();
    let mut by_pack = BTreeMap::new();
    for (file, fault) in &faults {
        let original = fault.apply(&repo.path, file, &mut rng);
        let blobs = fx
            .model
            .damaged_blobs(file, &original, bytes_of(&repo.path, file).as_deref());
        damaged.extend(blobs.iter().copied());
        by_pack.insert(file.clone(), blobs);
    }
    assert!(damaged.contains(&victim) && damaged.contains(&sub_tree));
    // A listing that cannot be read hides what is below it, so every
    // finding names it too (its files may need the pack of that finding).
    let expected: BTreeMap<String, _> = by_pack
        .into_iter()
        .map(|(file, mut blobs)| {
            blobs.insert(sub_tree);
            (file, fx.model.affected(&blobs))
        })
        .collect();

    let mountpoint = dir.join("mnt");
    let mount = ForegroundMount::start(
        &repo,
        &mountpoint,
        &dir.join("cache"),
        &["--scrub=200", "--refresh", "1"],
    );
    let status = mount.wait_for_scrub_pass(Duration::from_secs(60));
    let scrub = &status["scrub"];
    assert_eq!(scrub["coverage"], 1.0, "{status:#}");
    assert_eq!(scrub["packs_total"], fx.model.packs.len(), "{status:#}");
    assert_eq!(
        (&scrub["damaged"], &scrub["lost"]),
        (&Value::from(3), &Value::from(0)),
        "{status:#}"
    );
    let pass = serde_json::json!({ "findings": scrub["findings"] });
    let files = BTreeSet::from_iter(expected.keys().cloned());
    assert_findings(&pass, &files, "damaged", "the background scrub");
    for (file, finding) in findings(&pass) {
        assert_eq!(
            affected_by_time(&finding, &snapshots),
            expected[&file],
            "background scrub: the paths that lose data with {file}"
        );
    }

    let mut eio = 0;
    for backup in &fx.backups {
        let root = mountpoint.join(format!("@{}", backup.time));
        for (path, extents) in fx.model.files(backup.time) {
            if path.starts_with(&format!("{sub}/")) {
                continue; // below the damaged listing
            }
            let in_mount = root.join(path.strip_prefix('/').unwrap());
            let source = &backup.files[&path];
            for (offset, len, id) in &extents {
                let got = read_direct(&in_mount, *offset, *len as usize);
                if damaged.contains(id) {
                    let e = got.expect_err(&format!(
                        "{path}: the damaged chunk at {offset}+{len} was served"
                    ));
                    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{path} at {offset}: {e}");
                    eio += 1;
                } else {
                    let got = got.unwrap_or_else(|e| panic!("{path} at {offset}+{len}: {e}"));
                    assert!(
                        got == source[*offset as usize..(*offset + *len as u64) as usize],
                        "{path}: wrong bytes at {offset}+{len}"
                    );
                }
            }
            // And read as any program reads it, through the page cache.
            let whole = std::fs::read(&in_mount);
            if extents.iter().any(|(_, _, id)| damaged.contains(id)) {
                let e = whole.expect_err(&format!("{path} was read whole despite damage"));
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{path}: {e}");
                eio += 1;
            } else {
                let whole = whole.unwrap_or_else(|e| panic!("{path}: {e}"));
                assert!(
                    whole == *source,
                    "{path}: wrong bytes through the page cache"
                );
            }
        }
    }
    // The damaged listing: EIO for it, its parent lists fine.
    let c_root = mountpoint.join(format!("@{}", c.time));
    let e = std::fs::read_dir(c_root.join(sub.strip_prefix('/').unwrap()))
        .and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>())
        .expect_err("a damaged directory listing was served");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    let parent: BTreeSet<String> = std::fs::read_dir(c_root.join(c.src.strip_prefix("/").unwrap()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        parent.contains("sub") && parent.contains("big.bin"),
        "{parent:?}"
    );

    let status = mount.status();
    assert!(
        status["eio_count"].as_u64().unwrap() >= eio,
        "{eio} reads failed with EIO: {status:#}"
    );
    drop(mount);
    let stderr = std::fs::read_to_string(mountpoint.with_extension("stderr")).unwrap();
    assert_no_panic("rewind mount", &stderr);
}

/// `scrub --rate 1` killed after a second keeps its position and what it
/// found; `status` shows the partial coverage; the next `scrub` checks only
/// the packs after that position, completing the pass; `--restart` checks
/// every pack again.
#[test]
fn a_killed_scrub_resumes_where_it_stopped_and_restart_starts_over() {
    let fx = plain_fixture();
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed(
        "a_killed_scrub_resumes_where_it_stopped_and_restart_starts_over",
    ));
    let repo = fx.copy_to(&dir.join("repo"));
    let state = dir.join("scrub-state.json");
    let total = fx.model.packs.len();
    // Packs are scrubbed in name order; damage the first, which a killed
    // run has checked.
    let names: Vec<&String> = fx.model.packs.keys().collect();
    let first = names[0].clone();
    let size = fx.model.packs[&first].size;
    let original = Fault::flip(&mut rng, size).apply(&repo.path, &first, &mut rng);

    // Before any scrub: nothing covered, never run.
    let status = rewind(
        &repo,
        ["status", "--json", "--state", state.to_str().unwrap()],
    )
    .assert_ok()
    .json();
    assert_eq!(status["scrub_coverage"], 0.0, "{status:#}");
    assert!(status["scrub"]["last_run"].is_null(), "{status:#}");

    let mut child = repo
        .command()
        .args(["scrub", "--json", "--rate", "1", "--state"])
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let saved = |path: &std::path::Path| -> Option<Value> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    };
    while saved(&state).is_none_or(|s| s["packs_checked"].as_u64() < Some(1))
        || started.elapsed() < Duration::from_secs(1)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the scrub saved no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the scrub at 1 MiB/s ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_no_panic("scrub --rate 1", &String::from_utf8_lossy(&out.stderr));

    let killed = saved(&state).unwrap();
    let checked = killed["packs_checked"].as_u64().unwrap() as usize;
    eprintln!("killed after {checked} of {total} packs");
    assert!((1..total).contains(&checked), "{killed:#}");
    let position = names[checked - 1].rsplit('/').next().unwrap();
    assert_eq!(killed["position"], position, "{killed:#}");
    assert!(killed["last_full_pass"].is_null());
    let kept = serde_json::json!({ "findings": killed["findings"] });
    assert_findings(
        &kept,
        &BTreeSet::from([first.clone()]),
        "damaged",
        "the killed run",
    );

    let status = rewind(
        &repo,
        ["status", "--json", "--state", state.to_str().unwrap()],
    )
    .assert_ok()
    .json();
    // (serde_json may read a float back one ulp off.)
    let coverage = checked as f64 / total as f64;
    let reported = status["scrub_coverage"].as_f64().unwrap();
    assert!((reported - coverage).abs() < 1e-9, "{status:#}");
    assert_eq!(status["scrub"]["position"], position);
    assert!(status["scrub"]["last_full_pass"].is_null());
    assert_eq!(status["damaged"], 1, "{status:#}");
    assert_eq!(status["hosts"].as_object().unwrap().len(), 1, "{status:#}");
    let metrics = rewind(
        &repo,
        ["status", "--prometheus", "--state", state.to_str().unwrap()],
    )
    .assert_ok()
    .stdout_text();
    let metric = |name: &str, labels: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("rewind_{name}{{")) && l.contains(labels))
            .unwrap_or_else(|| panic!("no {name} with {labels}:\n{metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(metric("scrub_coverage_ratio", ""), coverage);
    assert_eq!(metric("scrub_last_full_pass_timestamp_seconds", ""), 0.0);
    assert_eq!(metric("scrub_findings", "status=\"damaged\""), 1.0);
    assert_eq!(metric("snapshots", ""), 3.0);

    // Continue: only the packs after the position, and the pass completes;
    // what the killed run found is part of the pass's report.
    let report = scrub(&repo, &state, &[], 1);
    assert_eq!(report["packs_checked"], total - checked, "{report:#}");
    assert_eq!(report["pass_complete"], true);
    assert_eq!(report["coverage"], 1.0);
    let damaged = BTreeSet::from([first.clone()]);
    assert_findings(
        &report,
        &damaged,
        "damaged",
        "the run that completes the pass",
    );
    let status = rewind(
        &repo,
        ["status", "--json", "--state", state.to_str().unwrap()],
    )
    .assert_ok()
    .json();
    assert_eq!(status["scrub_coverage"], 1.0, "{status:#}");
    assert!(status["scrub"]["position"].is_null(), "{status:#}");
    assert!(!status["scrub"]["last_full_pass"].is_null(), "{status:#}");
    assert_eq!(status["damaged"], 1, "{status:#}");

    // Start over: every pack again.
    let report = scrub(&repo, &state, &["--restart"], 1);
    assert_eq!(report["packs_checked"], total, "{report:#}");
    assert_findings(&report, &damaged, "damaged", "--restart");

    // The pack is mended (say, copied back from elsewhere): the next pass
    // finds nothing, and the status no longer reports the damage.
    write(&repo.path.join(&first), &original);
    let report = scrub(&repo, &state, &[], 0);
    assert_eq!(report["packs_checked"], total, "{report:#}");
    assert_findings(&report, &BTreeSet::new(), "", "after the mend");
    let status = rewind(
        &repo,
        ["status", "--json", "--state", state.to_str().unwrap()],
    )
    .assert_ok()
    .json();
    assert_eq!(
        (&status["damaged"], &status["repaired"], &status["lost"]),
        (&Value::from(0), &Value::from(0), &Value::from(0)),
        "{status:#}"
    );
}
