//! Back up generated trees with the real binary, restore them, and check that
//! content and metadata come back exactly; plus the listing, selection,
//! filtering and incremental behaviour of the command line.

mod common;

use std::path::Path;

use common::*;
use rewind::Encryption;
use serde_json::{json, Value};

fn full_round_trip(encryption: Encryption, test: &str) {
    let (_tmp, dir) = tempdir();
    require_root_and_xattrs(&dir);
    let mut rng = Rng::new(seed(test));
    let src = dir.join("src");
    mkdirs(&src);
    let tree = build_full_tree(&src, &mut rng);
    let expected = freeze(&src);
    let sparse = &expected.entries[tree.sparse_file.as_bytes()];
    assert!(
        sparse.blocks * 512 < 4 << 20,
        "the test filesystem must keep holes (the sparse source uses {} blocks)",
        sparse.blocks
    );

    let repo = Repo::init(&dir.join("repo"), encryption);
    let snapshot = repo.backup([arg(&src)]);
    assert_eq!(snapshot["warnings"], json!([]), "{snapshot:#}");
    assert_eq!(snapshot["paths"], json!([src.to_str().unwrap()]));
    assert_eq!(snapshot["summary"]["errors"], json!(0));

    // The whole snapshot: absolute paths recreated under the target.
    let all = dir.join("restore-all");
    let run = repo.restore("latest", &all, &["--verify"]).assert_ok();
    assert!(run.stderr.contains("verified"), "{}", run.stderr);
    let restored = under(&all, &src);
    let actual = Manifest::of(&restored);
    expected.assert_same(&actual, "restore latest --verify");

    // Again into the same target: everything is replaced, nothing fails.
    repo.restore("latest", &all, &[]).assert_ok();
    expected.assert_same(
        &Manifest::of(&restored),
        "a second restore into the same target",
    );

    // Holes are restored as holes, not as written zeros.
    for (file, max_bytes) in [(tree.sparse_file, 3 << 20), (tree.hole_only_file, 64 << 10)] {
        let got = &actual.entries[file.as_bytes()];
        assert!(
            got.blocks * 512 <= max_bytes,
            "{file}: {} bytes allocated for a sparse file of {} bytes",
            got.blocks * 512,
            got.size.unwrap()
        );
    }
    let links: Vec<u64> = tree
        .hard_links
        .iter()
        .map(|l| actual.entries[l.as_bytes()].ino)
        .collect();
    assert!(
        links.windows(2).all(|w| w[0] == w[1]),
        "hard links share an inode"
    );
    assert_eq!(actual.entries[tree.hard_links[0].as_bytes()].nlink, 3);

    // SNAP:DIR puts the directory's contents into the target.
    let sub = dir.join("restore-dir");
    repo.restore(&spec("latest", &src.join(tree.subdir)), &sub, &[])
        .assert_ok();
    expected
        .subtree(tree.subdir.as_bytes())
        .assert_same(&Manifest::of(&sub), "restore latest:DIR");

    // SNAP:FILE puts the file into the target.
    let one = dir.join("restore-file");
    repo.restore(&spec("latest", &src.join(tree.random_file)), &one, &[])
        .assert_ok();
    let mut want = Manifest::default();
    want.entries.insert(
        tree.random_file.as_bytes().to_vec(),
        expected.entries[tree.random_file.as_bytes()].clone(),
    );
    want.assert_same(&Manifest::of(&one).without(b""), "restore latest:FILE");

    // cat, of a plain and of a sparse file.
    for file in [tree.random_file, tree.sparse_file, "new\nline"] {
        let run = repo
            .run(["cat", &spec("latest", &src.join(file))])
            .assert_ok();
        assert!(
            run.stdout == read_noatime(&src.join(file)),
            "cat {file}: the bytes differ"
        );
    }

    check_listing(&repo, &src);
    check_healthy(&repo);
}

/// `ls --json` describes every kind of entry.
fn check_listing(repo: &Repo, src: &Path) {
    let entries = repo.ls(&spec("latest", src));
    let get = |rel: &str| -> &Value {
        let path = format!("{}/{rel}", src.display());
        entries
            .get(&path)
            .unwrap_or_else(|| panic!("ls lacks {path}; it has {:?}", entries.keys()))
    };
    for (rel, kind) in [
        ("small.txt", "file"),
        ("dir/sub/empty-dir", "dir"),
        ("links/dangling", "symlink"),
        ("special/fifo", "fifo"),
        ("special/null", "chardev"),
        ("special/loop", "blockdev"),
        ("special/socket", "socket"),
        ("name with  spaces ", "file"),
        ("new\nline", "file"),
    ] {
        assert_eq!(get(rel)["type"], json!(kind), "{rel}");
    }
    assert_eq!(get("links/relative")["link_target"], json!("../small.txt"));
    assert_eq!(get("hard/b")["links"], json!(3));
    assert_eq!(get("perms/setuid")["mode"], json!("4755"));
    assert_eq!(get("perms/sticky")["mode"], json!("1777"));
    assert_eq!(get("owners/unknown-user")["uid"], json!(1234));
    assert_eq!(get("owners/unknown-user")["gid"], json!(5678));
    assert_eq!(get("owners/nobody")["user"], json!("nobody"));
    assert_eq!(get("random.bin")["size"], json!(5 * 1024 * 1024 + 12345));
    assert_eq!(get("sparse/holes.img")["size"], json!(64 << 20));
    // The non-UTF-8 name is listed (lossily).
    assert!(
        entries.keys().any(|k| k.contains("latin1-")),
        "the non-UTF-8 name is missing"
    );
}

/// `check` in all its forms passes on a healthy repository, and the two
/// halves of `--read-data-subset` together read every pack once.
fn check_healthy(repo: &Repo) {
    let report = repo.run(["check", "--json"]).assert_ok().json();
    assert_eq!(report["errors"], json!([]), "{report:#}");
    let packs = report["packs"].as_u64().unwrap();
    assert!(packs >= 2, "{report:#}");
    let full = repo
        .run(["check", "--read-data", "--json"])
        .assert_ok()
        .json();
    assert_eq!(full["packs_read"].as_u64(), Some(packs));
    assert!(full["blobs_verified"].as_u64().unwrap() > 0);
    let halves: u64 = ["1/2", "2/2"]
        .iter()
        .map(|part| {
            let r = repo
                .run(["check", "--read-data-subset", part, "--json"])
                .assert_ok()
                .json();
            r["packs_read"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(halves, packs, "1/2 and 2/2 together read every pack once");
    repo.run(["check", "--read-data-subset", "50%"]).assert_ok();
    let none = repo
        .run(["check", "--read-data-subset", "0%", "--json"])
        .assert_ok()
        .json();
    assert_eq!(none["packs_read"], json!(0));
    repo.run(["check", "--read-data-subset", "3/2"])
        .assert_one_line_error(&["3/2"]);
}

#[test]
fn every_kind_of_entry_round_trips_encrypted() {
    full_round_trip(
        Encryption::Aes256Gcm,
        "every_kind_of_entry_round_trips_encrypted",
    );
}

#[test]
fn every_kind_of_entry_round_trips_unencrypted() {
    full_round_trip(
        Encryption::None,
        "every_kind_of_entry_round_trips_unencrypted",
    );
}

/// A file of 256 GiB that is almost all hole: backed up, restored with
/// `--verify`, and still a hole, quickly and in little memory.
#[test]
fn huge_sparse_file_restores_and_verifies() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("huge_sparse_file_restores_and_verifies"));
    let src = dir.join("src");
    mkdirs(&src);
    let file = src.join("disk.img");
    let head = rng.bytes(4096);
    let middle = rng.bytes(8192);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&file).unwrap();
        f.write_all_at(&head, 0).unwrap();
        f.write_all_at(&middle, 100 << 30).unwrap();
        f.set_len(256 << 30).unwrap();
    }
    let expected = Manifest::of_metadata(&src);
    expected.reset_times(&src);
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let snapshot = repo.backup([arg(&src)]);
    assert_eq!(snapshot["summary"]["bytes_read"], json!(4096 + 8192));
    let target = dir.join("restore");
    repo.restore("latest", &target, &["--verify"]).assert_ok();
    let restored = under(&target, &src);
    let actual = Manifest::of_metadata(&restored);
    expected.assert_same(&actual, "huge sparse file");
    let got = &actual.entries[&b"disk.img"[..]];
    assert!(got.blocks * 512 <= 1 << 20, "{} blocks", got.blocks);
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(restored.join("disk.img")).unwrap();
    let mut buf = vec![0u8; 8192];
    f.read_exact_at(&mut buf, 100 << 30).unwrap();
    assert!(buf == middle);
    f.read_exact_at(&mut buf[..4096], 0).unwrap();
    assert!(buf[..4096] == head[..]);
}

#[test]
fn stdin_name_stores_an_absolute_path() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("stdin_name_stores_an_absolute_path"));
    let dump = rng.text(3 << 20);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let run = repo
        .run_with_stdin(
            ["backup", "--json", "--stdin-name", "db/app.sql"],
            Some(&dump),
        )
        .assert_ok();
    let snapshot = run.json();
    assert_eq!(snapshot["paths"], json!(["/db/app.sql"]));
    assert_eq!(snapshot["summary"]["bytes_read"], json!(dump.len()));

    let entries = repo.ls("latest");
    assert_eq!(entries["/db"]["type"], json!("dir"));
    assert_eq!(entries["/db/app.sql"]["type"], json!("file"));
    assert_eq!(entries["/db/app.sql"]["size"], json!(dump.len()));
    for path in ["latest:/db/app.sql", "latest:db/app.sql"] {
        let run = repo.run(["cat", path]).assert_ok();
        assert!(run.stdout == dump, "cat {path}: the bytes differ");
    }
    let one = dir.join("one");
    repo.restore("latest:/db/app.sql", &one, &[]).assert_ok();
    assert!(std::fs::read(one.join("app.sql")).unwrap() == dump);
    let all = dir.join("all");
    repo.restore("latest", &all, &[]).assert_ok();
    assert!(std::fs::read(all.join("db/app.sql")).unwrap() == dump);
}

#[test]
fn snapshots_are_listed_and_selected_by_time_id_host_and_tag() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    mkdirs(&src);
    let file = src.join("version");
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let mut ids = Vec::new();
    for (content, args) in [
        (
            "one",
            &[
                "--time",
                "2024-06-01T02:00:00Z",
                "--tag",
                "daily",
                "--host",
                "alpha",
            ][..],
        ),
        (
            "second",
            &[
                "--time",
                "2024-06-02T02:00:00Z",
                "--tag",
                "daily",
                "--tag",
                "weekly",
                "--host",
                "alpha",
            ],
        ),
        (
            "third!",
            &["--time", "2024-06-03T02:00:00+02:00", "--host", "beta"],
        ),
    ] {
        write(&file, content.as_bytes());
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push(src.to_str().unwrap().into());
        let snapshot = repo.backup(&all);
        ids.push(snapshot["id"].as_str().unwrap().to_string());
    }

    let list = repo.snapshots();
    assert_eq!(list.len(), 3);
    let times: Vec<&str> = list.iter().map(|s| s["time"].as_str().unwrap()).collect();
    assert_eq!(
        times,
        [
            "2024-06-01T02:00:00Z",
            "2024-06-02T02:00:00Z",
            "2024-06-03T00:00:00Z"
        ]
    );
    let listed_ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(listed_ids, ids);
    assert_eq!(list[1]["tags"], json!(["daily", "weekly"]));
    assert_eq!(list[2]["host"], json!("beta"));
    assert_eq!(list[0]["paths"], json!([src.to_str().unwrap()]));
    assert!(ids[1].starts_with(list[1]["short_id"].as_str().unwrap()));
    let alpha = repo
        .run(["snapshots", "--json", "--host", "alpha"])
        .assert_ok()
        .json();
    assert_eq!(alpha.as_array().unwrap().len(), 2);

    let cat = |selector: &str, filters: &[&str]| -> String {
        let mut args = vec!["cat".to_string(), spec(selector, &file)];
        args.extend(filters.iter().map(|s| s.to_string()));
        String::from_utf8(repo.run(&args).assert_ok().stdout).unwrap()
    };
    for (selector, want) in [
        ("latest", "third!"),
        ("@2024", "third!"),
        ("@2024-06", "third!"),
        ("@2024-06-01", "one"),
        ("@2024-06-02T01", "one"),
        ("@2024-06-02T02", "second"),
        ("@2024-06-02T02:00:00Z", "second"),
        ("@2024-06-02T03:30+02:00", "one"),
        ("@2024-06-03T01:00:00+01:00", "third!"),
        ("@2024-06-02", "second"),
        (&ids[0][..8], "one"),
        (&ids[1][..4], "second"),
        (&ids[2], "third!"),
    ] {
        assert_eq!(cat(selector, &[]), want, "selector {selector}");
    }
    assert_eq!(cat("latest", &["--host", "alpha"]), "second");
    assert_eq!(cat("latest", &["--tag", "weekly"]), "second");
    assert_eq!(cat("@2024-06-02", &["--tag", "daily"]), "second");

    // Before the first snapshot: an error that names the earliest one.
    repo.run(["cat", &spec("@2024-05", &file)])
        .assert_one_line_error(&["2024-06-01T02:00:00Z"]);
    repo.run(["cat", &spec("ffffffff", &file)])
        .assert_one_line_error(&["ffffffff"]);
}

#[test]
fn exclude_skips_names_and_paths() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    for rel in [
        "keep.txt",
        "skip.log",
        "sub/also.log",
        "sub/keep.txt",
        "cache/x",
        "deep/cache/y",
    ] {
        let path = src.join(rel);
        mkdirs(path.parent().unwrap());
        write(&path, rel.as_bytes());
    }
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let top_cache = format!("{}/cache", src.display());
    repo.backup([
        "--exclude",
        "*.log",
        "--exclude",
        &top_cache,
        src.to_str().unwrap(),
    ]);
    let entries = repo.ls(&spec("latest", &src));
    let present = |rel: &str| entries.contains_key(&format!("{}/{rel}", src.display()));
    for rel in ["keep.txt", "sub/keep.txt", "deep/cache/y"] {
        assert!(present(rel), "{rel} should be in the snapshot");
    }
    for rel in ["skip.log", "sub/also.log", "cache", "cache/x"] {
        assert!(!present(rel), "{rel} should be excluded");
    }
}

#[test]
fn include_restores_only_matching_paths() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    let files = [
        "top.txt",
        "top.bin",
        "a/x.txt",
        "a/y.bin",
        "b/z.txt",
        "b/c/w.bin",
    ];
    for rel in files {
        let path = src.join(rel);
        mkdirs(path.parent().unwrap());
        write(&path, format!("content of {rel}").as_bytes());
    }
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    repo.backup([arg(&src)]);

    let restored_files = |target: &Path| -> Vec<String> {
        let root = under(target, &src);
        let m = Manifest::of(&root);
        for (rel, meta) in &m.entries {
            if meta.is_file() {
                let name = String::from_utf8(rel.clone()).unwrap();
                assert_eq!(
                    std::fs::read_to_string(root.join(&name)).unwrap(),
                    format!("content of {name}")
                );
            }
        }
        m.entries
            .iter()
            .filter(|(_, m)| m.is_file())
            .map(|(rel, _)| String::from_utf8(rel.clone()).unwrap())
            .collect()
    };

    let t1 = dir.join("t1");
    repo.restore("latest", &t1, &["--include", "*.txt"])
        .assert_ok();
    assert_eq!(restored_files(&t1), ["a/x.txt", "b/z.txt", "top.txt"]);

    let t2 = dir.join("t2");
    let b = format!("{}/b", src.display());
    repo.restore("latest", &t2, &["--include", &b]).assert_ok();
    assert_eq!(restored_files(&t2), ["b/c/w.bin", "b/z.txt"]);
}

#[test]
fn incremental_backup_reads_only_what_changed() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("incremental_backup_reads_only_what_changed"));
    let src = dir.join("src");
    mkdirs(&src);
    build_bulk_tree(&src, &mut rng, 60, 3, 700_000);
    let before = Manifest::of(&src);
    let files = before.entries.values().filter(|m| m.is_file()).count() as u64;
    let total: u64 = before
        .entries
        .values()
        .filter(|m| m.is_file())
        .map(|m| m.size.unwrap())
        .sum();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);

    let first = repo.backup([arg(&src)]);
    let s = &first["summary"];
    assert_eq!(s["files_new"], json!(files), "{s:#}");
    assert_eq!(s["bytes_read"], json!(total), "{s:#}");

    let second = repo.backup([arg(&src)]);
    let s = &second["summary"];
    assert_eq!(second["parent"], first["id"]);
    assert_eq!(s["files_unchanged"], json!(files), "{s:#}");
    assert_eq!(s["files_new"], json!(0), "{s:#}");
    assert_eq!(s["files_changed"], json!(0), "{s:#}");
    assert_eq!(
        s["bytes_read"],
        json!(0),
        "unchanged files must not be read: {s:#}"
    );
    // Other tests change /tmp, an ancestor of the source recorded in the
    // snapshot: only the trees of the ancestors may be new, never data.
    let ancestors = src.components().count() as u64;
    assert!(
        s["blobs_added"].as_u64().unwrap() <= ancestors,
        "only ancestor trees are new: {s:#}"
    );
    let lib = repo.open();
    let src_tree = |snapshot: &Value| {
        let root = rewind::Id::from_hex(snapshot["tree"].as_str().unwrap()).unwrap();
        rewind::find_node(&lib, &root, src.to_str().unwrap())
            .unwrap()
            .unwrap()
            .subtree
    };
    assert_eq!(
        src_tree(&second),
        src_tree(&first),
        "an unchanged tree is the same tree"
    );

    let changed = src.join("large/big1");
    let mut content = std::fs::read(&changed).unwrap();
    content.extend_from_slice(b"appended");
    write(&changed, &content);
    let third = repo.backup([arg(&src)]);
    let s = &third["summary"];
    assert_eq!(third["parent"], second["id"]);
    assert_eq!(s["files_changed"], json!(1), "{s:#}");
    assert_eq!(s["files_unchanged"], json!(files - 1), "{s:#}");
    assert_eq!(
        s["bytes_read"],
        json!(content.len()),
        "only the changed file is read: {s:#}"
    );

    // The newest snapshot restores the new content, the first the old.
    let now = dir.join("now");
    repo.restore("latest", &now, &[]).assert_ok();
    Manifest::of(&src)
        .without_atimes()
        .assert_same(&Manifest::of(&under(&now, &src)).without_atimes(), "latest");
    let old = dir.join("old");
    repo.restore(&first["id"].as_str().unwrap()[..12], &old, &[])
        .assert_ok();
    let old_changed = Manifest::of(&under(&old, &src)).entries[&b"large/big1"[..]].content;
    assert_eq!(old_changed, before.entries[&b"large/big1"[..]].content);
}

/// `rewind ls | head`: a reader that goes away ends the output quietly, as
/// SIGPIPE ends other tools (exit 141, nothing on stderr), for text and
/// JSON alike.
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    for i in 0..3000 {
        write(&src.join(format!("file-{i:04}")), b"x");
    }
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    repo.backup([arg(&src)]);
    for json in [false, true] {
        let script = format!(
            "'{}' ls latest {} | head -c 10 >/dev/null; exit ${{PIPESTATUS[0]}}",
            bin(),
            if json { "--json" } else { "" }
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .env("REWIND_REPO", &repo.path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(141), "{out:?}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
