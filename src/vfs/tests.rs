//! The mount's filesystem, exercised without FUSE on a real repository.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::*;
use crate::backend::LocalBackend;
use crate::backup::{backup, BackupOptions, Source};
use crate::repo::{Encryption, Id, IdSet, Snapshot};
use crate::tree::Extent;
use crate::vfs::inodes::ROOT_INO;

struct Fixture {
    _dir: tempfile::TempDir,
    source: std::path::PathBuf,
    repo_path: std::path::PathBuf,
    vfs: Arc<Vfs>,
}

fn make_source(dir: &Path) -> std::path::PathBuf {
    let source = dir.join("src");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    std::fs::write(source.join("small.txt"), b"hello\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(source.join("sub/big.bin"), &big).unwrap();
    std::fs::hard_link(source.join("small.txt"), source.join("sub/link")).unwrap();
    std::os::unix::fs::symlink("../small.txt", source.join("sub/sym")).unwrap();
    let sparse = std::fs::File::create(source.join("sparse")).unwrap();
    sparse.set_len(10 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"data", 5 << 20).unwrap();
    source
}

fn backup_at(repo: &Arc<Repository>, source: &Path, day: u32, host: &str) {
    let options = BackupOptions {
        host: host.into(),
        tags: vec!["nightly".into()],
        time: Some(Utc.with_ymd_and_hms(2024, 6, day, 2, 0, 0).unwrap()),
        ..BackupOptions::default()
    };
    backup(
        Arc::clone(repo),
        Source::Paths(vec![source.to_path_buf()]),
        &options,
        None,
    )
    .unwrap();
}

/// A new unencrypted repository at `path`.
fn init_repo(path: &Path) -> Arc<Repository> {
    let backend = Arc::new(LocalBackend::new(path));
    Arc::new(Repository::init(backend, Encryption::None, None).unwrap())
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let source = make_source(dir.path());
    let repo_path = dir.path().join("repo");
    let repo = init_repo(&repo_path);
    backup_at(&repo, &source, 1, "db");
    std::fs::write(source.join("small.txt"), b"changed on day two\n").unwrap();
    backup_at(&repo, &source, 2, "web");
    let vfs = Vfs::new(open(&repo_path), VfsOptions::default()).unwrap();
    Fixture {
        _dir: dir,
        source,
        repo_path,
        vfs,
    }
}

fn open(path: &Path) -> Repository<Opened> {
    Repository::open(Arc::new(LocalBackend::new(path)), || unreachable!()).unwrap()
}

fn open_indexed(path: &Path) -> Arc<Repository> {
    Arc::new(open(path).load_index().unwrap().0)
}

/// Looks up a path from the mount root.
fn walk(vfs: &Vfs, path: &str) -> VfsResult<Attr> {
    let mut attr = vfs.getattr(ROOT_INO)?;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        attr = vfs.lookup(attr.ino, part.as_bytes())?;
    }
    Ok(attr)
}

fn read_all(vfs: &Vfs, ino: Ino) -> VfsResult<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let piece = vfs.read(ino, out.len() as u64, 128 * 1024)?;
        if piece.is_empty() {
            break;
        }
        out.extend(piece);
    }
    Ok(out)
}

fn names(vfs: &Vfs, ino: Ino) -> Vec<String> {
    vfs.list(ino)
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.name).unwrap())
        .collect()
}

#[test]
fn layout_follows_the_contract() {
    let f = fixture();
    let root = names(&f.vfs, ROOT_INO);
    assert_eq!(
        root,
        [
            ".",
            "..",
            ".rewind",
            "hosts",
            "ids",
            "tags",
            "@2024-06-01T02:00:00Z",
            "@2024-06-02T02:00:00Z",
            "latest"
        ]
    );
    let latest = walk(&f.vfs, "latest").unwrap();
    assert_eq!(latest.kind, EntryKind::Symlink);
    assert_eq!(
        f.vfs.readlink(latest.ino).unwrap(),
        b"@2024-06-02T02:00:00Z"
    );
    assert_eq!(
        names(&f.vfs, walk(&f.vfs, "hosts").unwrap().ino),
        [".", "..", "db", "web"]
    );
    assert_eq!(
        names(&f.vfs, walk(&f.vfs, "hosts/db").unwrap().ino),
        [".", "..", "@2024-06-01T02:00:00Z", "latest"]
    );
    assert_eq!(
        names(&f.vfs, walk(&f.vfs, "tags/nightly").unwrap().ino).len(),
        5
    );
    let ids = walk(&f.vfs, "ids").unwrap();
    let listed = f.vfs.list(ids.ino).unwrap();
    assert_eq!(listed.len(), 4);
    assert!(f
        .vfs
        .readlink(listed[2].ino)
        .unwrap()
        .starts_with(b"../@2024-06-0"));
    assert!(String::from_utf8(
        read_all(&f.vfs, walk(&f.vfs, ".rewind/status").unwrap().ino).unwrap()
    )
    .unwrap()
    .contains("\"snapshots\": 2"));
}

#[test]
fn time_prefixes_resolve_by_the_selector_rule() {
    let f = fixture();
    let day_one = walk(&f.vfs, "@2024-06-01").unwrap();
    assert_eq!(day_one.kind, EntryKind::Symlink);
    assert_eq!(
        f.vfs.readlink(day_one.ino).unwrap(),
        b"@2024-06-01T02:00:00Z"
    );
    assert_eq!(
        f.vfs
            .readlink(walk(&f.vfs, "@2024-06").unwrap().ino)
            .unwrap(),
        b"@2024-06-02T02:00:00Z"
    );
    assert_eq!(
        f.vfs
            .readlink(walk(&f.vfs, "@2024-06-02T01").unwrap().ino)
            .unwrap(),
        b"@2024-06-01T02:00:00Z"
    );
    assert_eq!(walk(&f.vfs, "@2024-05-31").unwrap_err(), libc::ENOENT);
    assert_eq!(walk(&f.vfs, "@garbage").unwrap_err(), libc::ENOENT);
    assert_eq!(
        f.vfs
            .readlink(walk(&f.vfs, "hosts/web/@2024").unwrap().ino)
            .unwrap(),
        b"@2024-06-02T02:00:00Z"
    );
}

#[test]
fn files_read_back_exactly_with_their_metadata() {
    let f = fixture();
    let base = format!("@2024-06-02T02:00:00Z{}", f.source.display());
    for (name, expected) in [
        ("small.txt", b"changed on day two\n".to_vec()),
        (
            "sub/big.bin",
            std::fs::read(f.source.join("sub/big.bin")).unwrap(),
        ),
    ] {
        let attr = walk(&f.vfs, &format!("{base}/{name}")).unwrap();
        assert_eq!(attr.size, expected.len() as u64);
        assert_eq!(read_all(&f.vfs, attr.ino).unwrap(), expected, "{name}");
        let meta = std::fs::symlink_metadata(f.source.join(name)).unwrap();
        assert_eq!(
            (attr.perm as u32, attr.uid, attr.gid),
            (meta.mode() & 0o7777, meta.uid(), meta.gid())
        );
        assert_eq!(attr.mtime, meta.modified().unwrap());
    }
    let old = walk(
        &f.vfs,
        &format!("@2024-06-01T02:00:00Z{}/small.txt", f.source.display()),
    )
    .unwrap();
    assert_eq!(read_all(&f.vfs, old.ino).unwrap(), b"hello\n");

    let sparse = walk(&f.vfs, &format!("{base}/sparse")).unwrap();
    assert_eq!(sparse.size, 10 << 20);
    assert!(
        sparse.blocks * 512 < 1 << 20,
        "holes hold no blocks: {} blocks",
        sparse.blocks
    );
    assert_eq!(
        f.vfs.read(sparse.ino, (5 << 20) - 2, 8).unwrap(),
        b"\0\0data\0\0"
    );
    assert_eq!(f.vfs.read(sparse.ino, 10 << 20, 8).unwrap(), b"");

    let sym = walk(&f.vfs, &format!("{base}/sub/sym")).unwrap();
    assert_eq!(f.vfs.readlink(sym.ino).unwrap(), b"../small.txt");
}

#[test]
fn random_offsets_read_the_right_bytes() {
    let f = fixture();
    let expected = std::fs::read(f.source.join("sub/big.bin")).unwrap();
    let attr = walk(
        &f.vfs,
        &format!("@2024-06-02T02:00:00Z{}/sub/big.bin", f.source.display()),
    )
    .unwrap();
    let mut x = 12345u64;
    for _ in 0..200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let offset = (x >> 33) % expected.len() as u64;
        let size = ((x >> 13) % 300_000) as u32;
        let end = (offset as usize + size as usize).min(expected.len());
        assert_eq!(
            f.vfs.read(attr.ino, offset, size).unwrap(),
            &expected[offset as usize..end]
        );
    }
}

#[test]
fn hardlinks_share_an_inode_and_numbers_stay_stable() {
    let f = fixture();
    let base = format!("@2024-06-01T02:00:00Z{}", f.source.display());
    let a = walk(&f.vfs, &format!("{base}/small.txt")).unwrap();
    let b = walk(&f.vfs, &format!("{base}/sub/link")).unwrap();
    assert_eq!(a.ino, b.ino);
    assert_eq!(a.nlink, 2);
    assert_eq!(
        walk(&f.vfs, &format!("{base}/small.txt")).unwrap().ino,
        a.ino
    );
    let other_view = walk(
        &f.vfs,
        &format!(
            "hosts/db/@2024-06-01T02:00:00Z{}/small.txt",
            f.source.display()
        ),
    )
    .unwrap();
    assert_ne!(other_view.ino, a.ino, "each view has its own inodes");
}

#[test]
fn xattrs_are_served() {
    let f = fixture();
    let path = f.source.join("small.txt");
    if xattr::set(&path, "user.origin", b"vfs test").is_err() {
        return; // the temporary filesystem has no user xattrs
    }
    let repo = open_indexed(&f.repo_path);
    backup_at(&repo, &f.source, 3, "db");
    let vfs = Vfs::new(open(&f.repo_path), VfsOptions::default()).unwrap();
    let attr = walk(
        &vfs,
        &format!("@2024-06-03T02:00:00Z{}/small.txt", f.source.display()),
    )
    .unwrap();
    assert_eq!(vfs.getxattr(attr.ino, b"user.origin").unwrap(), b"vfs test");
    assert_eq!(vfs.listxattr(attr.ino).unwrap(), b"user.origin\0");
    assert_eq!(
        vfs.getxattr(attr.ino, b"user.none").unwrap_err(),
        libc::ENODATA
    );
}

#[test]
fn new_snapshots_appear_after_refresh() {
    let f = fixture();
    assert!(!f.vfs.refresh().unwrap());
    let repo = open_indexed(&f.repo_path);
    std::fs::write(f.source.join("small.txt"), b"day three").unwrap();
    backup_at(&repo, &f.source, 3, "db");
    assert!(f.vfs.refresh().unwrap());
    assert_eq!(
        f.vfs.readlink(walk(&f.vfs, "latest").unwrap().ino).unwrap(),
        b"@2024-06-03T02:00:00Z"
    );
    let attr = walk(
        &f.vfs,
        &format!("@2024-06-03T02:00:00Z{}/small.txt", f.source.display()),
    )
    .unwrap();
    assert_eq!(read_all(&f.vfs, attr.ino).unwrap(), b"day three");
}

#[test]
fn a_damaged_chunk_gives_eio_and_nothing_else_breaks() {
    let f = fixture();
    let big_path = f.source.join("sub/big.bin");
    let attr = walk(
        &f.vfs,
        &format!("@2024-06-01T02:00:00Z{}", big_path.display()),
    )
    .unwrap();
    // Damage the pack holding the big file's first chunk, in the chunk's bytes.
    let (id, pack) = first_chunk_and_pack(&f.vfs, attr.ino);
    let offset = {
        let repo = f.vfs.index.wait().unwrap();
        let offset = repo.index().get(&id).unwrap().offset;
        offset as u64 + 100
    };
    let pack = pack.to_hex();
    let pack_path = f.repo_path.join("data").join(&pack[..2]).join(&pack);
    let mut bytes = std::fs::read(&pack_path).unwrap();
    bytes[offset as usize] ^= 0xff;
    std::fs::write(&pack_path, bytes).unwrap();

    assert_eq!(f.vfs.read(attr.ino, 0, 4096).unwrap_err(), libc::EIO);
    let small = walk(
        &f.vfs,
        &format!("@2024-06-01T02:00:00Z{}/small.txt", f.source.display()),
    )
    .unwrap();
    assert_eq!(read_all(&f.vfs, small.ino).unwrap(), b"hello\n");
    let status = f.vfs.status();
    assert!(status.contains("\"eio_count\": 1"), "{status}");
    assert!(
        status.contains(&pack[..8]),
        "the log names the pack: {status}"
    );
    assert!(
        status.contains("big.bin"),
        "the log names the path: {status}"
    );
}

#[test]
fn directories_are_not_files_and_links_are_not_directories() {
    let f = fixture();
    assert_eq!(
        f.vfs
            .read(walk(&f.vfs, "hosts").unwrap().ino, 0, 4096)
            .unwrap_err(),
        libc::EISDIR
    );
    // The kernel follows symlinks; the vfs never does.
    assert_eq!(
        f.vfs
            .lookup(walk(&f.vfs, "latest").unwrap().ino, b"x")
            .unwrap_err(),
        libc::ENOTDIR
    );
    assert_eq!(f.vfs.getattr(999_999).unwrap_err(), libc::ENOENT);
}

#[test]
fn the_status_file_is_fresh_at_every_open_and_steady_while_read() {
    let f = fixture();
    // The kernel looks the name up at every open by path (its TTL is 0).
    let status = || walk(&f.vfs, ".rewind/status").unwrap();
    let json = |bytes: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&bytes).unwrap();
    let opened = status();
    let before = read_all(&f.vfs, opened.ino).unwrap();
    assert_eq!(before.len() as u64, opened.size);
    let small = walk(
        &f.vfs,
        &format!("@2024-06-01T02:00:00Z{}/small.txt", f.source.display()),
    )
    .unwrap();
    read_all(&f.vfs, small.ino).unwrap();
    assert_eq!(
        read_all(&f.vfs, opened.ino).unwrap(),
        before,
        "the same text until the next open"
    );
    assert_eq!(f.vfs.getattr(opened.ino).unwrap(), opened);
    let after = json(read_all(&f.vfs, status().ino).unwrap());
    assert!(
        after["bytes_served"].as_u64() > json(before)["bytes_served"].as_u64(),
        "{after:#}"
    );
}

#[test]
fn listings_resume_from_the_position_the_kernel_was_given() {
    let f = fixture();
    for dir in [
        "",
        "ids",
        &format!("@2024-06-01T02:00:00Z{}", f.source.display()),
    ] {
        let ino = walk(&f.vfs, dir).unwrap().ino;
        let whole = f.vfs.list(ino).unwrap();
        // Batches of two, as a kernel with a tiny buffer would ask.
        let (mut batched, mut offset) = (Vec::new(), 0);
        loop {
            let mut batch = Vec::new();
            f.vfs
                .read_dir(ino, offset, |next, entry| {
                    batch.push((next, entry));
                    batch.len() == 2
                })
                .unwrap();
            let Some((next, _)) = batch.last() else { break };
            offset = *next;
            batched.extend(batch.into_iter().map(|(_, entry)| entry));
        }
        assert_eq!(batched, whole, "listing of /{dir}");
        assert!(whole.len() > 3, "/{dir} has entries");
    }
}

/// The first chunk of a file, and the pack that holds it.
fn first_chunk_and_pack(vfs: &Vfs, ino: Ino) -> (Id, Id) {
    let record = vfs.inodes.get(ino).unwrap();
    let node = vfs.trees.entry_node(&record).unwrap().expect("an entry");
    let Extent::Data { id, .. } = node.content[0] else {
        panic!("no data")
    };
    let repo = vfs.index.wait().unwrap();
    let index = repo.index();
    let pack = index.pack(index.get(&id).unwrap().pack()).id;
    (id, pack)
}

#[test]
fn what_the_scrub_marks_damaged_fails_until_it_is_cleared() {
    let f = fixture();
    let mount: &dyn ScrubbedMount = &*f.vfs;
    assert!(mount.indexed_repository().is_ok());
    // A chunk read once stays in memory, verified: each case reads a file
    // not read before.
    for (day, mark_pack) in [(1, false), (2, true)] {
        let path = format!("@2024-06-0{day}T02:00:00Z{}/small.txt", f.source.display());
        let file = walk(&f.vfs, &path).unwrap();
        let (chunk, pack) = first_chunk_and_pack(&f.vfs, file.ino);
        let damaged = if mark_pack { pack } else { chunk };
        mount.set_damaged(IdSet::from_iter([damaged]));
        assert_eq!(f.vfs.read(file.ino, 0, 4096).unwrap_err(), libc::EIO);
        mount.set_damaged(IdSet::default());
        assert_eq!(read_all(&f.vfs, file.ino).unwrap().len() as u64, file.size);
    }
    mount.show_in_status(Box::new(
        || serde_json::json!({ "scrub": { "running": true } }),
    ));
    let status: serde_json::Value = serde_json::from_str(&f.vfs.status()).unwrap();
    assert_eq!(status["scrub"]["running"], true, "{status:#}");
    assert_eq!(status["eio_count"], 2, "{status:#}");
}

/// Looks a path up from the mount root, and the inode of each name on it.
fn walk_path(vfs: &Vfs, path: &str) -> Vec<Ino> {
    let mut inos = vec![ROOT_INO];
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let parent = *inos.last().unwrap();
        inos.push(vfs.lookup(parent, part.as_bytes()).unwrap().ino);
    }
    inos
}

/// Forgets what [`walk_path`] looked up, deepest first, as the kernel does.
fn forget_path(vfs: &Vfs, inos: &[Ino]) {
    for ino in inos[1..].iter().rev() {
        vfs.forget(*ino, 1);
    }
}

#[test]
fn inodes_go_when_forgotten_and_come_back_with_their_number_and_content() {
    let f = fixture();
    let pinned = f.vfs.inodes.len();
    let path = format!("@2024-06-01T02:00:00Z{}/sub/big.bin", f.source.display());
    let inos = walk_path(&f.vfs, &path);
    let big = *inos.last().unwrap();
    let content = read_all(&f.vfs, big).unwrap();
    let dir = inos[inos.len() - 2];
    // Looked up twice: one FORGET of one lookup leaves it held.
    assert_eq!(f.vfs.lookup(dir, b"big.bin").unwrap().ino, big);
    f.vfs.forget(big, 1);
    assert_eq!(f.vfs.getattr(big).unwrap().size, content.len() as u64);

    forget_path(&f.vfs, &inos);
    assert_eq!(
        f.vfs.getattr(big).unwrap_err(),
        libc::ENOENT,
        "gone at zero"
    );
    assert_eq!(f.vfs.getattr(dir).unwrap_err(), libc::ENOENT);
    // The snapshot's `@<time>` directory, above the entries, stays.
    assert_eq!(f.vfs.inodes.len(), pinned + 1, "the table shrank back");

    let again = walk_path(&f.vfs, &path);
    assert_eq!(again, inos, "the same numbers along the path");
    assert_eq!(read_all(&f.vfs, big).unwrap(), content);
    forget_path(&f.vfs, &again);
    assert_eq!(f.vfs.inodes.len(), pinned + 1);
}

#[test]
fn a_forgotten_hard_link_comes_back_as_the_same_inode() {
    let f = fixture();
    let base = format!("@2024-06-01T02:00:00Z{}", f.source.display());
    let first = walk_path(&f.vfs, &format!("{base}/small.txt"));
    let second = walk_path(&f.vfs, &format!("{base}/sub/link"));
    let file = *first.last().unwrap();
    assert_eq!(*second.last().unwrap(), file, "one inode, two names");
    forget_path(&f.vfs, &first);
    assert_eq!(
        f.vfs.getattr(file).unwrap().nlink,
        2,
        "held by the other name"
    );
    forget_path(&f.vfs, &second);
    assert_eq!(f.vfs.getattr(file).unwrap_err(), libc::ENOENT);
    let again = walk_path(&f.vfs, &format!("{base}/sub/link"));
    assert_eq!(*again.last().unwrap(), file);
    assert_eq!(read_all(&f.vfs, file).unwrap(), b"hello\n");
}

#[test]
fn listings_with_attributes_count_only_the_entries_the_kernel_took() {
    let f = fixture();
    let pinned = f.vfs.inodes.len();
    let inos = walk_path(
        &f.vfs,
        &format!("@2024-06-01T02:00:00Z{}", f.source.display()),
    );
    let dir = *inos.last().unwrap();
    let plain = f.vfs.list(dir).unwrap();
    let walked = pinned + inos.len() - 1;
    assert_eq!(f.vfs.inodes.len(), walked, "READDIR makes none");
    // `.`, `..` and one entry fit; the next one does not.
    let mut taken = Vec::new();
    f.vfs
        .read_dir_plus(dir, 0, |_, entry, attr| {
            assert_eq!(entry.ino, attr.ino);
            if taken.len() == 3 {
                return true;
            }
            taken.push(entry.clone());
            false
        })
        .unwrap();
    assert_eq!(taken, plain[..3], "the numbers READDIR showed");
    assert_eq!(f.vfs.inodes.len(), walked + 1, "one entry held");
    f.vfs.forget(taken[2].ino, 1);
    assert_eq!(f.vfs.inodes.len(), walked);
}

#[test]
fn past_the_budget_cold_directories_are_given_up_and_those_in_use_spared() {
    let f = fixture();
    let options = VfsOptions {
        max_inodes: 4,
        ..VfsOptions::default()
    };
    let vfs = Vfs::new(open(&f.repo_path), options).unwrap();
    let base = format!("@2024-06-01T02:00:00Z{}", f.source.display());
    let path = walk_path(&vfs, &format!("{base}/sub"));
    assert!(
        vfs.surplus_names(Duration::ZERO).is_empty(),
        "within budget"
    );
    let (src, sub) = (path[path.len() - 2], path[path.len() - 1]);
    let entries = vfs.list(sub).unwrap();
    for entry in &entries[2..] {
        vfs.lookup(sub, &entry.name).unwrap();
    }
    let held = vfs.inodes.entries();
    assert!(held > 4, "{held}");
    let names = vfs.surplus_names(Duration::ZERO);
    assert!(
        names.iter().all(|(parent, _)| *parent != sub),
        "the entries of a directory in use stay: {names:?}"
    );

    // Once `sub` is not used, it goes whole, not entry by entry.
    std::thread::sleep(Duration::from_millis(1100));
    let names = vfs.surplus_names(Duration::ZERO);
    assert!(names.contains(&(src, b"sub".to_vec())), "{names:?}");
    assert!(names.iter().all(|(parent, _)| *parent != sub), "{names:?}");
    // What the kernel does once told: it forgets `sub` and what is in it.
    for entry in &entries[2..] {
        vfs.forget(entry.ino, 1);
    }
    vfs.forget(sub, 1);
    assert_eq!(vfs.inodes.entries(), held - (entries.len() - 2) - 1);
}

/// Every entry of `dir` in batches of `batch`, as a kernel asks: the
/// entries and the number of batches.
fn list_in_batches(vfs: &Vfs, ino: Ino, batch: usize) -> (usize, usize) {
    let (mut entries, mut batches, mut offset) = (0, 0, 0);
    loop {
        let mut taken = 0;
        let mut next_offset = offset;
        vfs.read_dir(ino, offset, |next, _| {
            taken += 1;
            next_offset = next;
            taken == batch
        })
        .unwrap();
        if taken == 0 {
            return (entries, batches);
        }
        entries += taken;
        batches += 1;
        offset = next_offset;
    }
}

/// A repository of `count` snapshots on three hosts, made from one backup
/// (`Repository::save_snapshots`, as `benches/make_snapshots.rs` does).
fn many_snapshots(count: usize) -> (tempfile::TempDir, Arc<Vfs>) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("file"), b"one file\n").unwrap();
    let repo_path = dir.path().join("repo");
    let repo = init_repo(&repo_path);
    backup_at(&repo, &source, 1, "host-0");
    let template = repo.snapshots().unwrap().pop().unwrap();
    let copies: Vec<Snapshot> = (1..count)
        .map(|n| Snapshot {
            time: template.time + chrono::Duration::minutes(n as i64),
            host: format!("host-{}", n % 3),
            ..template.clone()
        })
        .collect();
    assert_eq!(repo.save_snapshots(&copies).unwrap().len(), count - 1);
    let vfs = Vfs::new(open(&repo_path), VfsOptions::default()).unwrap();
    (dir, vfs)
}

#[test]
fn listings_above_the_snapshots_cost_what_they_pass_on() {
    // The entries made to list the root, ids/ and one host's directory in
    // batches of 16, at 1,000 and at 2,000 snapshots: twice the snapshots
    // may cost twice the work, not four times (a listing that made every
    // entry for every batch was quadratic).
    let work = |count: usize| {
        let (_dir, vfs) = many_snapshots(count);
        let made = || {
            vfs.names
                .virtual_entries_made
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let before = made();
        let mut listed = 0;
        for dir in ["", "ids", "hosts/host-1"] {
            let ino = walk(&vfs, dir).unwrap().ino;
            let (entries, batches) = list_in_batches(&vfs, ino, 16);
            assert!(entries > count / 3, "/{dir} lists its snapshots");
            assert!(batches > count / 3 / 16, "/{dir} comes in many batches");
            listed += entries;
        }
        let made = made() - before;
        // Each batch makes what it passes on, and the entry it has no room for.
        assert!(made <= listed as u64 * 2, "{made} made for {listed} listed");
        made
    };
    let (small, large) = (work(1000), work(2000));
    assert!(
        large <= small * 21 / 10,
        "{small} entries made at 1,000 snapshots, {large} at 2,000"
    );
}

/// A repository holding one directory of `count` files (`n00000`, ...),
/// split; the directory's path in the mount.
fn wide_directory(count: usize) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    let wide = source.join("wide");
    std::fs::create_dir_all(&wide).unwrap();
    for i in 0..count {
        std::fs::write(wide.join(format!("n{i:05}")), format!("{i}\n")).unwrap();
    }
    let repo_path = dir.path().join("repo");
    let repo = init_repo(&repo_path);
    backup_at(&repo, &source, 1, "db");
    let path = format!("@2024-06-01T02:00:00Z{}", wide.display());
    (dir, repo_path, path)
}

#[test]
fn a_split_directory_lists_in_batches_and_finds_names_in_one_part() {
    let count: usize = 20_000;
    let (_dir, repo_path, path) = wide_directory(count);
    let vfs = Vfs::new(open(&repo_path), VfsOptions::default()).unwrap();
    let ino = walk(&vfs, &path).unwrap().ino;
    let top = {
        let entry = vfs.trees.entry_node(&vfs.inodes.record(ino).unwrap());
        let subtree = entry.unwrap().unwrap().subtree.unwrap();
        vfs.trees.tree(&subtree, ino).unwrap()
    };
    assert!(top.parts.len() > 5, "{} parts", top.parts.len());

    let expected: Vec<String> = (0..count).map(|i| format!("n{i:05}")).collect();
    let listed = names(&vfs, ino);
    assert_eq!(listed[2..], expected[..]);
    assert_eq!(
        list_in_batches(&vfs, ino, 97),
        (count + 2, (count + 2).div_ceil(97))
    );

    for i in (0..count).step_by(997).chain([count - 1]) {
        let attr = walk(&vfs, &format!("{path}/n{i:05}")).unwrap();
        assert_eq!(
            read_all(&vfs, attr.ino).unwrap(),
            format!("{i}\n").as_bytes()
        );
    }
    // Before the first part, between two names, after the last.
    for missing in ["a", "n00100x", "z"] {
        assert_eq!(
            vfs.lookup(ino, missing.as_bytes()).unwrap_err(),
            libc::ENOENT
        );
    }
    // Each part's first name is found in its own part.
    for part in &top.parts {
        vfs.lookup(ino, &part.first).unwrap();
    }
}

#[test]
fn a_listing_wider_than_twice_the_budget_gives_up_its_oldest_entries() {
    let count: usize = 20_000;
    let (_dir, repo_path, path) = wide_directory(count);
    let options = VfsOptions {
        max_inodes: 1_000,
        ..VfsOptions::default()
    };
    let vfs = Vfs::new(open(&repo_path), options).unwrap();
    let ino = walk(&vfs, &path).unwrap().ino;
    // READDIRPLUS in batches of 500, the kernel forgetting what it is
    // told to after each: the directory is in use throughout, and an
    // entry the kernel was given is in use for a second.
    let (mut offset, mut listed) = (0, 0);
    let mut held_after_trim = Vec::new();
    loop {
        if listed == 10_000 {
            std::thread::sleep(Duration::from_millis(1_100));
        }
        let mut batch = Vec::new();
        vfs.read_dir_plus(ino, offset, |next, entry, _| {
            batch.push((next, entry.ino));
            batch.len() == 500
        })
        .unwrap();
        let Some((next, _)) = batch.last() else { break };
        offset = *next;
        listed += batch.len();
        loop {
            let names = vfs.surplus_names(Duration::ZERO);
            if names.is_empty() {
                break;
            }
            for (parent, name) in names {
                assert_eq!(parent, ino, "only entries of the listed directory go");
                // Its one lookup from the listing, and this one.
                let child = vfs.lookup(parent, &name).unwrap();
                vfs.forget(child.ino, 2);
            }
        }
        held_after_trim.push(vfs.inodes.entries());
    }
    assert_eq!(listed, count + 2);
    // Within its second, all 9,998 are held; past it, the listing keeps
    // twice the budget and what it was given in the last second.
    assert!(held_after_trim[19] >= 9_900, "{held_after_trim:?}");
    assert!(held_after_trim[20] <= 2_000, "{held_after_trim:?}");
}

#[test]
fn the_chunk_cache_shrinks_as_the_index_grows() {
    assert_eq!(automatic_cache_bytes(0), 64 << 20);
    assert_eq!(automatic_cache_bytes(1_000_000), 64 << 20);
    assert_eq!(automatic_cache_bytes(3_000_000), (112 << 20) - 90_000_000);
    assert_eq!(automatic_cache_bytes(10_000_000), 16 << 20);
    // A size given stays once the index is loaded (the fixture's index
    // is too small for the default to move).
    let f = fixture();
    let given = VfsOptions {
        cache_bytes: Some(1 << 20),
        ..VfsOptions::default()
    };
    let vfs = Vfs::new(open(&f.repo_path), given).unwrap();
    let attr = walk(
        &vfs,
        &format!("@2024-06-01T02:00:00Z{}/small.txt", f.source.display()),
    );
    read_all(&vfs, attr.unwrap().ino).unwrap();
    assert_eq!(vfs.files.chunks().budget(), 1 << 20);
}
