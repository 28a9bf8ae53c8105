//! Planning a prune (`rewind::plan_prune`): which packs a forget left
//! unused, which are worth repacking, and the refusals when what is used
//! cannot be known.

mod common;

use common::*;
use rewind::format::BlobKind;
use rewind::{plan_prune, Encryption, Extent, NodeKind, PackFate, PruneOptions};

fn short_id(snapshot: &serde_json::Value) -> String {
    snapshot["id"].as_str().unwrap()[..8].to_string()
}

#[test]
fn the_packs_only_a_forgotten_snapshot_used_are_deleted() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut rng = Rng::new(seed("prune plan delete"));
    std::fs::write(src.join("a.bin"), rng.bytes(1 << 20)).unwrap();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    repo.backup([arg(&src)]);
    std::fs::write(src.join("b.bin"), rng.bytes(1 << 20)).unwrap();
    let second = repo.backup([arg(&src)]);

    let lib = repo.open();
    let before = plan_prune(&lib, &PruneOptions::default()).unwrap();
    assert!(
        before.packs.iter().all(|p| p.fate == PackFate::Keep),
        "with every snapshot listed, nothing goes: {before:#?}"
    );
    assert_eq!(before.deleted_bytes(), 0);

    repo.run(["forget", &short_id(&second)]).assert_ok();
    let lib = repo.open();
    let plan = plan_prune(&lib, &PruneOptions::default()).unwrap();
    let deleted: Vec<_> = plan
        .packs
        .iter()
        .filter(|p| p.fate == PackFate::Delete)
        .collect();
    // b.bin's chunks, the second snapshot's new trees and its packed
    // manifest copy: each in a pack of its own kind, none of them used.
    assert!(deleted.len() >= 2, "{plan:#?}");
    assert!(
        plan.deleted_bytes() >= 1 << 20,
        "b.bin's megabyte goes: {plan:#?}"
    );
    assert!(deleted.iter().all(|p| p.used_blobs == 0));
    assert!(plan
        .packs
        .iter()
        .filter(|p| p.fate == PackFate::Keep)
        .all(|p| p.used_blobs > 0));
    assert_eq!(plan.repacked_bytes(), (0, 0));
}

#[test]
fn a_partly_used_pack_is_repacked_only_above_max_unused() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let lib = repo.open();
    // One pack with a used chunk (100 kB) and an unused one (300 kB): a
    // snapshot names only the first.
    let mut rng = Rng::new(seed("prune plan repack"));
    let (keep, drop) = (rng.bytes(100_000), rng.bytes(300_000));
    let ids = store_blobs(
        &lib,
        &[(BlobKind::Data, keep.clone()), (BlobKind::Data, drop)],
    );
    let mut file = node(b"keep.bin", NodeKind::File);
    file.size = keep.len() as u64;
    file.content = vec![Extent::Data {
        id: ids[0],
        len: keep.len() as u32,
    }];
    let root = store_tree(&lib, vec![file]);
    save_snapshot(&lib, root, &["/src"]);

    let lib = repo.open();
    let strict = PruneOptions {
        max_unused: 0.0,
        ..PruneOptions::default()
    };
    let plan = plan_prune(&lib, &strict).unwrap();
    let repacked: Vec<_> = plan
        .packs
        .iter()
        .filter(|p| p.fate == PackFate::Repack)
        .collect();
    assert_eq!(repacked.len(), 1, "the shared data pack: {plan:#?}");
    let (used, unused) = plan.repacked_bytes();
    assert!(
        used >= 100_000 && unused >= 300_000,
        "{used} used, {unused} unused"
    );

    let lenient = PruneOptions {
        max_unused: 1.0,
        ..PruneOptions::default()
    };
    let plan = plan_prune(&lib, &lenient).unwrap();
    assert!(plan.packs.iter().all(|p| p.fate != PackFate::Repack));
    assert!(plan.unused_kept_bytes() >= 300_000);

    let capped = PruneOptions {
        max_unused: 0.0,
        max_repack_bytes: Some(1000),
    };
    let plan = plan_prune(&lib, &capped).unwrap();
    assert!(
        plan.packs.iter().all(|p| p.fate != PackFate::Repack),
        "over --max-repack"
    );
}

#[test]
fn a_lost_manifest_or_tree_stops_the_plan() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("file"), b"content\n").unwrap();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let snapshot = repo.backup([arg(&src)]);

    // Deleted, not forgotten: its data must not look unused.
    let manifest = dir
        .join("repo/snapshots")
        .join(snapshot["id"].as_str().unwrap());
    let saved = std::fs::read(&manifest).unwrap();
    std::fs::remove_file(&manifest).unwrap();
    let err = plan_prune(&repo.open(), &PruneOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no manifest"), "{err}");
    assert!(
        err.hint().unwrap_or("").contains("scrub --repair"),
        "{err:?}"
    );
    std::fs::write(&manifest, saved).unwrap();

    // A tree that does not read: everything under it is unknown.
    let lib = repo.open();
    let tree_packs: Vec<_> = {
        let index = lib.index();
        index
            .blobs()
            .filter(|(_, l)| l.kind() == rewind::format::BlobKind::Tree)
            .map(|(_, l)| index.pack(l.pack()).id.to_hex())
            .collect()
    };
    for pack in &tree_packs {
        let path = dir.join("repo/data").join(&pack[..2]).join(pack);
        std::fs::write(&path, b"not a pack any more").unwrap();
    }
    let err = plan_prune(&repo.open(), &PruneOptions::default()).unwrap_err();
    assert!(err.to_string().contains("cannot be known"), "{err}");
}
