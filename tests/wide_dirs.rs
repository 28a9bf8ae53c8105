//! Wide directories, stored split across several trees (tree version 2,
//! rewind-format(5) TREES), end to end with the real binary: such a
//! directory is backed up whole, restores and checks clean, a change to
//! it stores one part again, diff finds exactly what changed, prune keeps
//! every part a kept snapshot names (and frees those only a forgotten one
//! named), and a copy to a repository of another key restores the same.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use rewind::{Encryption, Id, Repository, Tree};
use serde_json::json;

/// Entries of the wide directory: about 3 MB of tree, so a few dozen parts.
const WIDE: usize = 30_000;

/// `root/wide` with `WIDE` small files, and a few other entries.
fn wide_tree(root: &Path) {
    let wide = root.join("wide");
    mkdirs(&wide);
    for i in 0..WIDE {
        write(
            &wide.join(format!("entry-{i:06}")),
            format!("{i}\n").as_bytes(),
        );
    }
    mkdirs(&wide.join("a-subdirectory"));
    write(
        &wide.join("a-subdirectory/inner"),
        b"inside a wide directory\n",
    );
    write(&root.join("beside"), b"next to it\n");
}

/// The stored top tree of the directory `rel` (relative to the backed-up
/// `root`) in snapshot `snapshot`.
fn stored_tree(lib: &Repository, snapshot: &str, root: &Path, rel: &str) -> Tree {
    let listed = lib.snapshots().unwrap();
    let snapshot = listed
        .iter()
        .find(|s| s.id.to_hex().starts_with(snapshot))
        .expect("the snapshot is listed");
    let mut id: Id = snapshot.tree;
    let path = root.join(rel);
    for name in path.strip_prefix("/").unwrap().iter() {
        let tree = lib.read_tree(&id).unwrap();
        let node = tree
            .find(name.as_encoded_bytes())
            .unwrap_or_else(|| panic!("{} is not in the snapshot", path.display()));
        id = node.subtree.unwrap();
    }
    lib.read_tree_blob(&id).unwrap()
}

fn snapshot_id(backup: &serde_json::Value) -> String {
    assert_eq!(backup["warnings"], json!([]), "{backup:#}");
    backup["id"].as_str().unwrap().to_string()
}

#[track_caller]
fn assert_restores(repo: &Repo, snapshot: &str, source: &Path, expected: &Manifest, what: &str) {
    // An expected manifest without access times (taken after a backup)
    // is compared without them.
    let atimes = expected.entries.values().any(|m| m.atime != (0, 0));
    let target = tempfile::tempdir().unwrap();
    repo.restore(snapshot, target.path(), &[]).assert_ok();
    let mut restored = Manifest::of(&under(target.path(), source));
    if !atimes {
        restored = restored.without_atimes();
    }
    expected.assert_same(&restored, what);
}

#[test]
fn a_wide_directory_round_trips_and_prune_keeps_every_part() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let source = dir.join("source");
    wide_tree(&source);
    let first_state = freeze(&source);
    let first = snapshot_id(&repo.backup([arg(&source)]));

    let lib = repo.open();
    let top = stored_tree(&lib, &first, &source, "wide");
    assert!(
        top.is_split() && top.nodes.is_empty() && top.parts.len() >= 10,
        "{WIDE} entries make a split tree of several parts: {} parts",
        top.parts.len()
    );
    let whole = lib
        .read_tree(
            &stored_tree(&lib, &first, &source, "")
                .find(b"wide")
                .unwrap()
                .subtree
                .unwrap(),
        )
        .unwrap();
    assert_eq!(whole.nodes.len(), WIDE + 1);
    drop(lib);

    // ls goes through the parts.
    let listed = repo.ls(&spec(&first, &source.join("wide")));
    let names: Vec<&str> = listed
        .keys()
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    assert!(names.len() > WIDE, "{} entries listed", names.len());
    assert!(names.contains(&"entry-012345") && names.contains(&"a-subdirectory"));

    // Nothing is forgotten, and every pack with anything unused would be
    // repacked: a part no walk named would go here.
    repo.prune(&["--max-unused", "0%"]);
    repo.check_read_data();
    assert_restores(
        &repo,
        &first,
        &source,
        &first_state,
        "the first snapshot, after a prune",
    );

    // One file changed, one added, one removed: two parts change at most.
    let wide = source.join("wide");
    write(&wide.join("entry-012345"), b"changed\n");
    write(&wide.join("entry-020000-new"), b"added\n");
    std::fs::remove_file(wide.join("entry-029999")).unwrap();
    // Taken after the backup: taking it resets access times, which moves
    // every file's ctime, and so every entry would differ.
    let backup = repo.backup([arg(&source)]);
    let second = snapshot_id(&backup);
    // The parent's parts were read beside the walk: the other files of
    // the wide directory are known unchanged, and not read again.
    let summary = &backup["summary"];
    // All but the changed and the removed file, and the two elsewhere.
    assert_eq!(
        summary["files_unchanged"],
        json!(WIDE - 2 + 2),
        "{summary:#}"
    );
    assert_eq!(summary["files_changed"], json!(1), "{summary:#}");
    assert_eq!(summary["files_new"], json!(1), "{summary:#}");
    let second_state = freeze(&source).without_atimes();
    let lib = repo.open();
    let before: BTreeSet<Id> = stored_tree(&lib, &first, &source, "wide")
        .part_ids()
        .collect();
    let after: BTreeSet<Id> = stored_tree(&lib, &second, &source, "wide")
        .part_ids()
        .collect();
    let new = after.difference(&before).count();
    assert!(
        (1..=3).contains(&new),
        "{new} of {} parts are new for three changes",
        after.len()
    );
    drop(lib);

    let diff = repo.run(["diff", "--json", &first, &second]);
    assert_eq!(diff.code, Some(1), "the snapshots differ: {}", diff.stderr);
    let changed: BTreeSet<String> = diff.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let expected: BTreeSet<String> = ["entry-012345", "entry-020000-new", "entry-029999"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(changed, expected);

    // Restored over the first with --delete: the removed file goes, the
    // names of every part are kept.
    let target = tempfile::tempdir().unwrap();
    repo.restore(&first, target.path(), &[]).assert_ok();
    repo.restore(&second, target.path(), &["--delete"])
        .assert_ok();
    let restored = Manifest::of(&under(target.path(), &source)).without_atimes();
    second_state.assert_same(
        &restored,
        "the second snapshot restored over the first with --delete",
    );

    // The first snapshot's own parts go with it; the second's stay.
    repo.run(["forget", &first]).assert_ok();
    let report = repo.prune(&["--max-unused", "0%"]);
    assert!(
        number(&report, "packs_deleted") + number(&report, "packs_repacked") > 0,
        "{report:#}"
    );
    repo.check_read_data();
    assert_restores(
        &repo,
        &second,
        &source,
        &second_state,
        "the second snapshot, after the first is pruned",
    );

    // A copy under another key makes its own parts, and restores the same.
    let dest = Repo {
        password: Some("the copy's own password".into()),
        ..Repo::at(&dir.join("dest"), Encryption::Aes256Gcm)
    };
    dest.run(["init"]).assert_ok();
    let mut copy = dest.command();
    copy.args(["copy", "--json", "--from-repo"])
        .arg(&repo.path)
        .env("REWIND_FROM_PASSWORD", repo.password.as_ref().unwrap());
    let report = run(&mut copy).assert_ok().json();
    let copied = report["copied"][0]["destination"]
        .as_str()
        .unwrap()
        .to_string();
    let lib = dest.open();
    let copied_top = stored_tree(&lib, &copied, &source, "wide");
    assert!(copied_top.is_split(), "the copy is split too");
    drop(lib);
    dest.check_read_data();
    assert_restores(&dest, &copied, &source, &second_state, "the copy");
}
