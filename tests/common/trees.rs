//! Source trees to back up: one with every kind of entry rewind must keep,
//! bulk trees of many files, and small trees of given files.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::files::{all_paths, chmod, hard_link, lchown, mkdirs, mkfifo, mknod, set_times, write};
use super::manifest::Manifest;
use super::rng::Rng;

/// A directory with these files in it.
pub fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) {
    mkdirs(root);
    for (name, data) in files {
        write(&root.join(name), data);
    }
}

/// Names of interesting entries in a generated tree (relative paths).
pub struct FullTree {
    pub random_file: &'static str,
    pub sparse_file: &'static str,
    pub hole_only_file: &'static str,
    pub hard_links: [&'static str; 3],
    pub subdir: &'static str,
}

/// Fills `root` (which must exist) with every kind of entry rewind must keep:
/// files (empty, small, random MiBs, compressible text, sparse), nested and
/// empty directories, symlinks (relative, absolute, dangling, hard-linked),
/// hard links, a fifo, a socket, device nodes, odd names, setuid/setgid/
/// sticky modes, foreign owners, xattrs, and times with nanoseconds.
/// Returns names of some of them. Call [`freeze`] before backing it up.
pub fn build_full_tree(root: &Path, rng: &mut Rng) -> FullTree {
    let p = |rel: &str| root.join(rel);
    write(&p("empty"), b"");
    write(&p("small.txt"), b"hello, world\n");
    write(&p("random.bin"), &rng.bytes(5 * 1024 * 1024 + 12345));
    write(&p("text.log"), &rng.text(3 * 1024 * 1024));
    write(&p("name with  spaces "), b"spaces\n");
    write(&p("new\nline"), b"a newline in the name\n");
    write(
        &root.join(OsStr::from_bytes(b"latin1-\xe9t\xe9-\xff")),
        b"not UTF-8\n",
    );
    mkdirs(&p("dir/sub/deeper"));
    mkdirs(&p("dir/sub/empty-dir"));
    write(&p("dir/sub/deeper/file.txt"), b"deep\n");
    write(&p("dir/sub/medium.bin"), &rng.bytes(300_000));
    for i in 0..20 {
        write(
            &p(&format!("dir/many-{i:02}.txt")),
            format!("file {i}\n").repeat(i + 1).as_bytes(),
        );
    }

    mkdirs(&p("links"));
    std::os::unix::fs::symlink("../small.txt", p("links/relative")).unwrap();
    std::os::unix::fs::symlink(p("small.txt"), p("links/absolute")).unwrap();
    std::os::unix::fs::symlink("no/such/target", p("links/dangling")).unwrap();
    std::os::unix::fs::symlink("../dir", p("links/to-dir")).unwrap();

    // Three links to one file, one of them in another directory; and a
    // hard-linked symlink and fifo.
    mkdirs(&p("hard"));
    write(&p("hard/a"), &rng.bytes(100_000));
    hard_link(&p("hard/a"), &p("hard/b"));
    hard_link(&p("hard/a"), &p("dir/hard-c"));
    std::os::unix::fs::symlink("a", p("hard/sym1")).unwrap();
    hard_link(&p("hard/sym1"), &p("hard/sym2"));
    mkfifo(&p("hard/fifo1"));
    hard_link(&p("hard/fifo1"), &p("hard/fifo2"));

    mkdirs(&p("special"));
    mkfifo(&p("special/fifo"));
    mknod(&p("special/null"), libc::S_IFCHR, 1, 3);
    mknod(&p("special/loop"), libc::S_IFBLK, 7, 200);
    drop(std::os::unix::net::UnixListener::bind(p("special/socket")).unwrap());

    // Sparse: data at 0 and at 40 MiB, a hole after that to 64 MiB; and a
    // file that is one hole.
    mkdirs(&p("sparse"));
    {
        let f = File::create(p("sparse/holes.img")).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&rng.bytes(1 << 20), 0).unwrap();
        f.write_all_at(&rng.bytes(1 << 20), 40 << 20).unwrap();
        f.set_len(64 << 20).unwrap();
    }
    File::create(p("sparse/hole-only"))
        .unwrap()
        .set_len(16 << 20)
        .unwrap();

    mkdirs(&p("perms/sticky"));
    mkdirs(&p("perms/setgid-dir"));
    mkdirs(&p("perms/read-only-dir"));
    write(&p("perms/read-only-dir/inside"), b"x\n");
    for (name, mode) in [
        ("setuid", 0o4755),
        ("setgid", 0o2711),
        ("private", 0o600),
        ("read-only", 0o444),
        ("no-permissions", 0o000),
        ("all", 0o7777),
    ] {
        write(&p(&format!("perms/{name}")), name.as_bytes());
        chmod(&p(&format!("perms/{name}")), mode);
    }
    chmod(&p("perms/sticky"), 0o1777);
    chmod(&p("perms/setgid-dir"), 0o2750);
    chmod(&p("perms/read-only-dir"), 0o555);

    mkdirs(&p("owners/dir"));
    write(&p("owners/unknown-user"), b"owned by nobody we know\n");
    lchown(&p("owners/unknown-user"), 1234, 5678);
    write(&p("owners/nobody"), b"nobody\n");
    lchown(&p("owners/nobody"), 65534, 65534);
    lchown(&p("owners/dir"), 4321, 4321);
    chmod(&p("owners/dir"), 0o750);
    std::os::unix::fs::symlink("nobody", p("owners/link")).unwrap();
    lchown(&p("owners/link"), 1234, 1234);
    write(
        &p("owners/setuid-other"),
        b"setuid, owned by someone else\n",
    );
    lchown(&p("owners/setuid-other"), 1234, 5678);
    chmod(&p("owners/setuid-other"), 0o6755);

    mkdirs(&p("xattrs/dir"));
    write(&p("xattrs/file"), b"with attributes\n");
    for target in ["xattrs/file", "xattrs/dir"] {
        xattr::set(p(target), "user.comment", b"hello").unwrap();
        xattr::set(p(target), "user.binary", b"\x00\xff\x10\n").unwrap();
        xattr::set(p(target), "user.empty", b"").unwrap();
        xattr::set(p(target), "trusted.rewind-test", b"root only").unwrap();
    }
    xattr::set(p("random.bin"), "user.big", &rng.bytes(2000)).unwrap();

    // Times: every entry gets random times with nanoseconds; one is before 1970.
    let mut all = all_paths(root);
    all.sort();
    for path in all.iter().rev() {
        let mut t = || {
            (
                rng.range(1, 2_000_000_000) as i64,
                rng.below(1_000_000_000) as i64,
            )
        };
        let (a, m) = (t(), t());
        set_times(path, a, m);
    }
    set_times(
        &p("small.txt"),
        (-86_400 * 365, 5),
        (-1_000_000, 999_999_999),
    );

    FullTree {
        random_file: "random.bin",
        sparse_file: "sparse/holes.img",
        hole_only_file: "sparse/hole-only",
        hard_links: ["hard/a", "hard/b", "dir/hard-c"],
        subdir: "dir",
    }
}

/// Checks that the test filesystem does what the generated tree needs.
pub fn require_root_and_xattrs(dir: &Path) {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests create device nodes and foreign owners: run them as root"
    );
    let probe = dir.join(".xattr-probe");
    write(&probe, b"");
    xattr::set(&probe, "user.probe", b"1")
        .expect("the temporary filesystem must support user.* extended attributes");
    std::fs::remove_file(&probe).unwrap();
}

/// The tree's manifest as a backup will see it: takes the manifest and then
/// resets the access times that taking it moved (symlinks, directories).
pub fn freeze(root: &Path) -> Manifest {
    let m = Manifest::of(root);
    m.reset_times(root);
    m
}

/// Many small files in nested directories and some large random ones.
pub fn build_bulk_tree(root: &Path, rng: &mut Rng, small: usize, large: usize, large_size: usize) {
    for i in 0..small {
        let dir = root.join(format!("d{:02}/e{}", i % 37, i % 5));
        mkdirs(&dir);
        let len = rng.range(0, 8192) as usize;
        write(&dir.join(format!("f{i}")), &rng.bytes(len));
    }
    mkdirs(&root.join("large"));
    for i in 0..large {
        write(&root.join(format!("large/big{i}")), &rng.bytes(large_size));
    }
}

/// `dirs` directories (`d000`, `d001`, ...) of `per_dir` files of 10 to 60
/// bytes (`f0000`, ...), each its own content: the trees of many small
/// files that the memory tests (issue 16) back up, restore, diff and mount.
pub fn small_files_tree(root: &Path, dirs: usize, per_dir: usize) {
    for d in 0..dirs {
        let dir = root.join(format!("d{d:03}"));
        mkdirs(&dir);
        for f in 0..per_dir {
            let body = format!("file {d} {f} {}\n", "x".repeat(f % 50));
            std::fs::write(dir.join(format!("f{f:04}")), body).unwrap();
        }
    }
}
