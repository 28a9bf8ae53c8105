//! A restore never writes outside its target, whatever the repository holds
//! and whatever a local user does to the target while root restores into it
//! (issue 10, finding 1). Every operation resolves beneath the target
//! through no symlink, so a planted or a swapped-in symlink is refused.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use rewind::Encryption;
use rewind::NodeKind;

/// A root-only directory outside every target: nothing may appear in it,
/// and its mode must not change.
struct Victim {
    path: std::path::PathBuf,
}

impl Victim {
    fn new(dir: &Path) -> Victim {
        let path = dir.join("victim");
        mkdirs(&path);
        chmod(&path, 0o700);
        write(&path.join("precious"), b"root's own");
        Victim { path }
    }

    fn assert_untouched(&self, what: &str) {
        let names: Vec<_> = list_dir(&self.path);
        assert_eq!(
            names,
            vec![b"precious".to_vec()],
            "{what}: the victim gained entries"
        );
        let mode = std::fs::metadata(&self.path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{what}: the victim's mode changed");
        assert_eq!(
            std::fs::read(self.path.join("precious")).unwrap(),
            b"root's own"
        );
    }
}

/// A crafted snapshot whose root names a directory `d` holding a file, and
/// then a symlink also named `d` that points at the victim.
#[test]
fn a_planted_symlink_in_a_crafted_snapshot_is_never_followed() {
    let (_tmp, dir) = tempdir();
    let victim = Victim::new(&dir);
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let lib = repo.open();
    let inner = store_tree(
        &lib,
        vec![file_node(&lib, b"planted", b"written through a link")],
    );
    let mut d = dir_node(b"d", inner);
    d.mode = 0o777;
    let mut link = node(b"d", NodeKind::Symlink);
    link.link_target = victim.path.as_os_str().as_bytes().to_vec();
    let root = store_tree(&lib, vec![d, link]);
    save_snapshot(&lib, root, &["/"]);

    let options: [&[&str]; 3] = [&[], &["--delete"], &["--delete", "--overwrite", "always"]];
    for (i, extra) in options.into_iter().enumerate() {
        let target = dir.join(format!("target{i}"));
        let run = repo.restore("latest", &target, extra);
        assert!(
            !run.ok(),
            "restore {extra:?} reported success:\n{}",
            run.text()
        );
        victim.assert_untouched(&format!("restore {extra:?}"));
    }
    // The restore drill restores into scratch space the same way.
    let run = repo.run([
        "restore-test".as_ref(),
        "latest".as_ref(),
        "--scratch".as_ref(),
        dir.as_os_str(),
    ]);
    assert!(!run.ok(), "restore-test passed:\n{}", run.text());
    victim.assert_untouched("restore-test");
}

/// A user who owns a directory inside the target (from an earlier restore)
/// swaps a subdirectory for a symlink to a root-only directory while root
/// restores into it again. The restore is stopped (SIGSTOP) once it has
/// begun writing files into that subdirectory, the swap is made, and the
/// restore continued: what is left to write must not land in the victim,
/// nor the subdirectory's mode be given to it.
#[test]
fn a_directory_swapped_for_a_symlink_during_a_restore_is_not_followed() {
    let (_tmp, dir) = tempdir();
    let victim = Victim::new(&dir);
    let mut rng = Rng::new(seed("a_directory_swapped_for_a_symlink"));
    let src = dir.join("src");
    let sub = src.join("home/user/sub");
    mkdirs(&sub);
    chmod(&sub, 0o777);
    // Enough files that writing them takes a while, each unlike the others.
    for i in 0..400 {
        write(&sub.join(format!("file{i:03}")), &rng.bytes(256 * 1024));
    }
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    repo.backup([arg(&src)]);
    let target = dir.join("target");
    let snap = spec("latest", &src);
    repo.restore(&snap, &target, &[]).assert_ok();
    let user_dir = target.join("home/user");
    lchown(&user_dir, 1000, 1000);
    let restored_sub = user_dir.join("sub");

    // Root restores again, rewriting every file.
    let child = repo
        .command()
        .args(["restore", &snap, "--overwrite", "always", "--target"])
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Files are rewritten by removing and creating them: wait for the first
    // one that is new, then stop the restore there.
    let born: Vec<u64> = (0..400)
        .map(|i| inode(&restored_sub.join(format!("file{i:03}"))))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rewritten = (0..400).any(|i| {
            let ino = std::fs::symlink_metadata(restored_sub.join(format!("file{i:03}")))
                .map_or(0, |m| m.ino());
            ino != born[i]
        });
        if rewritten {
            kill(pid, libc::SIGSTOP);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restore never rewrote a file"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    // The user's move, as the user could make it in their own directory.
    std::fs::rename(&restored_sub, user_dir.join("sub.old")).unwrap();
    symlink(victim.path.to_str().unwrap(), &restored_sub);
    kill(pid, libc::SIGCONT);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    victim.assert_untouched("a restore racing a swapped directory");
    assert!(
        !output.status.success(),
        "the restore reported success:\n{stderr}"
    );
    assert!(
        stderr.contains("symlink is in the way"),
        "the refusal is named:\n{stderr}"
    );
    // The symlink is still the user's: it was not followed, not replaced.
    assert_eq!(std::fs::read_link(&restored_sub).unwrap(), victim.path);
}

/// `--delete` removes a symlink that the snapshot does not have, never
/// what it points at, and never descends through one.
#[test]
fn delete_removes_links_not_what_they_point_at() {
    let (_tmp, dir) = tempdir();
    let victim = Victim::new(&dir);
    let src = dir.join("src");
    write_tree(&src, &[("keep/a.txt", b"a".to_vec())]);
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    repo.backup([arg(&src)]);
    let target = dir.join("target");
    let snap = spec("latest", &src);
    repo.restore(&snap, &target, &[]).assert_ok();
    symlink(
        victim.path.to_str().unwrap(),
        &target.join("keep/extra-link"),
    );
    symlink(victim.path.to_str().unwrap(), &target.join("extra-top"));
    repo.restore(&snap, &target, &["--delete"]).assert_ok();
    victim.assert_untouched("restore --delete");
    assert!(std::fs::symlink_metadata(target.join("keep/extra-link")).is_err());
    assert!(std::fs::symlink_metadata(target.join("extra-top")).is_err());
    assert_eq!(std::fs::read(target.join("keep/a.txt")).unwrap(), b"a");
}

fn inode(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).unwrap().ino()
}

/// A tree that gives a chunk another length than the chunk has is
/// malformed: the restore refuses the file (as the mount does), instead of
/// laying the chunks over one another.
#[test]
fn a_chunk_length_the_tree_misstates_is_refused() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let lib = repo.open();
    let mut file = file_node(&lib, b"f", &[7u8; 100]);
    let second = file_node(&lib, b"g", &[9u8; 50]).content[0];
    if let rewind::Extent::Data { len, .. } = &mut file.content[0] {
        *len = 10;
    }
    file.content.push(second);
    file.size = 60;
    let root = store_tree(&lib, vec![file]);
    save_snapshot(&lib, root, &["/"]);
    let target = dir.join("target");
    let run = repo.restore("latest", &target, &[]).assert_code(1);
    assert!(
        run.stderr
            .contains("a length of 10 bytes, the chunk has 100"),
        "{}",
        run.stderr
    );
    assert!(std::fs::symlink_metadata(target.join("f")).is_err());
}
