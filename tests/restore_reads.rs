//! What a restore asks of its store: the chunks of small files come in
//! grouped reads, a few per pack, not one per file (on object storage each
//! read is a round trip), and a damaged chunk in a group fails only the
//! file that has it.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Counting, Read};
use rewind::format::FileType;
use rewind::{backup, find_node, restore, BackupOptions, Encryption, Extent, LockKind};
use rewind::{Backend, Repository, RestoreOptions, Source};

const FILES: usize = 400;

/// `FILES` small files of distinct content, backed up into a repository
/// read through a counting store; the store, the repository and the
/// snapshot's root tree.
fn backed_up(scratch: &Path) -> (Arc<Counting>, Repository, rewind::Id) {
    let source = scratch.join("src");
    for i in 0..FILES {
        let dir = source.join(format!("d{}", i % 20));
        std::fs::create_dir_all(&dir).unwrap();
        let content = format!("file {i}: ").repeat(50 + i % 200);
        std::fs::write(dir.join(format!("f{i}")), content).unwrap();
    }
    let store = Arc::new(Counting::new(&scratch.join("repo")));
    let repo = Repository::init(store.clone(), Encryption::Aes256Gcm, Some(b"pw")).unwrap();
    let options = BackupOptions {
        host: "h".into(),
        ..BackupOptions::default()
    };
    let lock = repo.lock(LockKind::Shared, "backup").unwrap();
    let repo = Arc::new(repo);
    let outcome = backup(
        repo.clone(),
        Source::Paths(vec![source]),
        &options,
        Some(&lock),
    );
    drop(lock);
    let tree = outcome.unwrap().snapshot.tree;
    let repo = Arc::try_unwrap(repo)
        .ok()
        .expect("the backup let go of the repository");
    (store, repo, tree)
}

/// Flips a byte of chunk `id` in its pack in the local repository at
/// `dir`; the pack's id.
fn damage_chunk(repo: &Repository, dir: &Path, id: &rewind::Id) -> rewind::Id {
    let (pack, offset) = {
        let index = repo.index();
        let location = index.get(id).unwrap();
        (index.pack(location.pack()).id, location.offset)
    };
    let path = common::pack_path(dir, &pack);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offset as usize + 20] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    pack
}

fn restore_options() -> RestoreOptions {
    RestoreOptions {
        threads: 4,
        ..RestoreOptions::default()
    }
}

fn assert_same_files(source: &Path, restored: &Path, except: Option<&Path>) {
    for entry in walkdir(source) {
        let rel = entry.strip_prefix(source).unwrap();
        if Some(rel) == except {
            assert!(
                !restored.join(rel).exists(),
                "{} was restored",
                rel.display()
            );
        } else {
            assert_eq!(
                std::fs::read(&entry).unwrap(),
                std::fs::read(restored.join(rel)).unwrap(),
                "{}",
                rel.display()
            );
        }
    }
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    common::walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
}

#[test]
fn small_files_come_in_a_few_reads_per_pack() {
    let (_scratch, scratch) = common::tempdir();
    let (store, repo, tree) = backed_up(&scratch);
    let packs = store.list(FileType::Pack).unwrap().len();
    let source = scratch.join("src");
    let restore_into = |target: &Path, dry_run: bool| {
        let before = store.reads(FileType::Pack, Read::Range);
        let options = RestoreOptions {
            dry_run,
            ..restore_options()
        };
        let report = restore(&repo, &tree, &source.to_string_lossy(), target, &options).unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        store.reads(FileType::Pack, Read::Range) - before
    };
    // A dry run reads the trees as the restore does, and no file content.
    let tree_reads = restore_into(&scratch.join("dry"), true);
    let reads = restore_into(&scratch.join("out"), false);
    assert_same_files(&source, &scratch.join("out"), None);

    // One read per file would be FILES reads.
    let content_reads = reads - tree_reads;
    assert!(
        content_reads <= 4 * packs,
        "{content_reads} ranged reads of {packs} packs for {FILES} files"
    );
}

#[test]
fn a_damaged_chunk_in_a_group_fails_only_its_file() {
    let (_scratch, scratch) = common::tempdir();
    let (_store, repo, tree) = backed_up(&scratch);
    let source = scratch.join("src");
    let victim = source.join("d7/f107");
    let node = find_node(&repo, &tree, &victim.to_string_lossy())
        .unwrap()
        .unwrap();
    let Some(Extent::Data { id, .. }) = node.content.first() else {
        panic!("the file has data");
    };
    let pack = damage_chunk(&repo, &scratch.join("repo"), id);

    let target = scratch.join("out");
    let report = restore(
        &repo,
        &tree,
        &source.to_string_lossy(),
        &target,
        &restore_options(),
    )
    .unwrap();
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.errors[0].path.ends_with("d7/f107"));
    assert!(
        report.errors[0].error.contains(&pack.short()),
        "{}",
        report.errors[0].error
    );
    assert_eq!(report.files, FILES as u64 - 1);
    assert_same_files(&source, &target, Some(Path::new("d7/f107")));
}

#[test]
fn a_large_file_is_written_by_several_workers_and_removed_if_a_part_fails() {
    let (_scratch, scratch) = common::tempdir();
    let source = scratch.join("src");
    std::fs::create_dir_all(&source).unwrap();
    // 24 MiB of distinct bytes with a hole in the middle: several parts.
    let mut big = common::Rng::new(7).bytes(24 << 20);
    big[8 << 20..9 << 20].fill(0);
    std::fs::write(source.join("big"), &big).unwrap();
    std::fs::write(source.join("small"), b"beside it").unwrap();
    let store = Arc::new(Counting::new(&scratch.join("repo")));
    let repo = Repository::init(store, Encryption::Aes256Gcm, Some(b"pw")).unwrap();
    let lock = repo.lock(LockKind::Shared, "backup").unwrap();
    let repo = Arc::new(repo);
    let options = BackupOptions {
        host: "h".into(),
        ..BackupOptions::default()
    };
    let outcome = backup(
        repo.clone(),
        Source::Paths(vec![source.clone()]),
        &options,
        Some(&lock),
    );
    drop(lock);
    let tree = outcome.unwrap().snapshot.tree;
    let options = RestoreOptions {
        threads: 8,
        verify: true,
        ..RestoreOptions::default()
    };
    let restore_into =
        |target: &Path| restore(&repo, &tree, &source.to_string_lossy(), target, &options).unwrap();
    let report = restore_into(&scratch.join("out"));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.files, report.verified), (2, 2));
    assert_same_files(&source, &scratch.join("out"), None);

    // Damage a chunk in the file's last part: the file fails and is not
    // left half written; the other file is restored.
    let node = find_node(&repo, &tree, &source.join("big").to_string_lossy())
        .unwrap()
        .unwrap();
    let Some(Extent::Data { id, .. }) = node.content.last() else {
        panic!("the file ends with data");
    };
    damage_chunk(&repo, &scratch.join("repo"), id);
    let report = restore_into(&scratch.join("again"));
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.errors[0].path.ends_with("/big"));
    assert_same_files(&source, &scratch.join("again"), Some(Path::new("big")));
}
