//! The S3 backend against a real S3 server (`s3s-fs`, started by each test
//! on 127.0.0.1 over a fresh directory) through the real binary: every
//! command on an S3 repository, a mount read with `cp -a` and `diff -r`,
//! a damaged pack repaired in place, nothing ever written outside the
//! prefix, the errors an admin meets (wrong keys, a missing bucket, an
//! unreachable endpoint) each in one line, a store that dies during a
//! backup, and `copy` from a local repository to S3 and back.

mod common;
mod mount_util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

const BUCKET: &str = "backups";
const PREFIX: &str = "host1";

/// A server with the test bucket, and a repository handle in it.
fn server_and_repo(dir: &Path) -> (S3Server, S3Repo) {
    let server = S3Server::start(dir);
    server.create_bucket(BUCKET);
    let repo = S3Repo::at(&server.url(BUCKET, PREFIX));
    (server, repo)
}

/// A path as an argument (the test paths are UTF-8).
fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 test path")
}

#[track_caller]
fn snapshot_count(repo: &S3Repo) -> usize {
    repo.run(["snapshots", "--json"])
        .assert_ok()
        .json()
        .as_array()
        .expect("a JSON list")
        .len()
}

#[track_caller]
fn assert_same_tree(a: &Path, b: &Path) {
    let run = run(Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b));
    assert!(
        run.ok(),
        "diff -r {} {}:\n{}{}",
        a.display(),
        b.display(),
        run.text(),
        run.stderr
    );
}

#[test]
fn every_command_works_on_an_s3_repository() {
    let (_tmp, dir) = tempdir();
    require_root_and_xattrs(&dir);
    let mut rng = Rng::new(seed("every_command_works_on_an_s3_repository"));
    let src = dir.join("src");
    mkdirs(&src);
    build_full_tree(&src, &mut rng);
    // More than the packers can hold in packs under 5 MiB.
    write(&src.join("large.bin"), &rng.bytes(40 << 20));
    let expected = freeze(&src);
    let (server, repo) = server_and_repo(&dir);
    // Objects over 5 MiB go up in parts, so the first pack is a multipart upload.
    let repo = repo.with_env("REWIND_S3_PART_SIZE", "5");

    let created = repo.run(["init", "--parity", "10"]).assert_ok();
    assert!(created.text().contains(&repo.url), "{}", created.text());
    repo.run(["init"])
        .assert_one_line_error(&["a repository already exists", &repo.url]);

    let first = repo
        .run([
            "backup",
            "--json",
            "--host",
            "h",
            "--time",
            "2024-06-01T02:00:00Z",
            text(&src),
        ])
        .assert_ok()
        .json();
    assert_eq!(first["warnings"], json!([]), "{first:#}");
    let packs: Vec<String> = server
        .keys(BUCKET)
        .into_iter()
        .filter(|k| k.starts_with(&format!("{PREFIX}/data/")))
        .collect();
    assert!(
        packs
            .iter()
            .any(|k| std::fs::metadata(server.object_path(BUCKET, k))
                .unwrap()
                .len()
                > 5 << 20),
        "no pack was large enough for a multipart upload: {packs:?}"
    );

    assert_eq!(snapshot_count(&repo), 1);
    let listing = repo
        .run(["ls", "--json", &spec("latest", &src)])
        .assert_ok()
        .json();
    let names: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("/random.bin")),
        "{names:?}"
    );
    let small = repo
        .run(["cat", &spec("latest", &src.join("small.txt"))])
        .assert_ok();
    assert_eq!(small.text(), "hello, world\n");

    let target = dir.join("restored");
    repo.run(["restore", "latest", "--verify", "--target", text(&target)])
        .assert_ok();
    expected.assert_same(&Manifest::of(&under(&target, &src)), "restore from S3");
    repo.run(["check", "--read-data"]).assert_ok();

    // A second backup of a changed tree, then retention and pruning.
    write(&src.join("small.txt"), b"changed\n");
    repo.run([
        "backup",
        "--host",
        "h",
        "--time",
        "2024-06-02T02:00:00Z",
        text(&src),
    ])
    .assert_ok();
    assert_eq!(snapshot_count(&repo), 2);
    repo.run(["diff", "@2024-06-01", "@2024-06-02"])
        .assert_code(1);
    repo.run(["forget", "--keep-last", "1", "--prune"])
        .assert_ok();
    assert_eq!(snapshot_count(&repo), 1);
    repo.run(["prune"]).assert_ok();
    repo.run(["check", "--read-data"]).assert_ok();
    let state = dir.join("scrub-state.json");
    repo.run(["scrub", "--state", text(&state)]).assert_ok();
    repo.run(["restore-test", "--json"]).assert_ok();
    let status = repo.run(["status", "--json"]).assert_ok().json();
    assert_eq!(status["repository"], json!(repo.url), "{status:#}");

    // Every command removed its lock.
    let locks = repo.run(["locks", "--json"]).assert_ok().json();
    assert_eq!(locks, json!([]), "{locks:#}");
    assert!(
        !server
            .keys(BUCKET)
            .iter()
            .any(|k| k.starts_with(&format!("{PREFIX}/locks/"))),
        "lock objects are left: {:?}",
        server.keys(BUCKET)
    );
}

#[test]
fn a_mount_of_an_s3_repository_serves_the_snapshot() {
    let (_tmp, dir) = tempdir();
    mount_util::require_root();
    let mut rng = Rng::new(seed("a_mount_of_an_s3_repository_serves_the_snapshot"));
    let src = dir.join("src");
    build_bulk_tree(&src, &mut rng, 200, 3, 3 << 20);
    write(&src.join("text.log"), &rng.text(1 << 20));
    let (_server, repo) = server_and_repo(&dir);
    repo.run(["init"]).assert_ok();
    repo.run(["backup", text(&src)]).assert_ok();

    let mountpoint = dir.join("mnt");
    let mount = mount_util::Mount::start_with(repo.command(), &mountpoint, &[]);
    let copy = dir.join("copy");
    let from = mount.path("latest").join(src.strip_prefix("/").unwrap());
    let copied = run(Command::new("cp").arg("-a").arg(&from).arg(&copy));
    assert!(
        copied.ok(),
        "cp -a: {}\nlog:\n{}",
        copied.stderr,
        mount.log_text()
    );
    assert_same_tree(&src, &copy);
    assert_same_tree(&src, &from);
}

#[test]
fn scrub_repairs_a_damaged_pack_in_place() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("scrub_repairs_a_damaged_pack_in_place"));
    let src = dir.join("src");
    build_bulk_tree(&src, &mut rng, 20, 2, 1 << 20);
    let (server, repo) = server_and_repo(&dir);
    repo.run(["init", "--parity", "20"]).assert_ok();
    repo.run(["backup", text(&src)]).assert_ok();

    let pack = server
        .keys(BUCKET)
        .into_iter()
        .find(|k| k.starts_with(&format!("{PREFIX}/data/")))
        .expect("a pack");
    let path = server.object_path(BUCKET, &pack);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    repo.run(["check", "--read-data"]).assert_failed();

    // The rebuilt pack goes back under its name: the conditional create
    // finds the damaged object and replaces it.
    let state = dir.join("scrub-state.json");
    let repaired = repo
        .run(["scrub", "--repair", "--state", text(&state)])
        .assert_code(4);
    assert!(
        repaired.stderr.contains("replacing it"),
        "{}",
        repaired.stderr
    );
    repo.run(["check", "--read-data"]).assert_ok();
}

#[test]
fn nothing_is_written_outside_the_prefix() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    write_tree(
        &src,
        &[("a.txt", b"a\n".to_vec()), ("b.txt", b"b\n".to_vec())],
    );
    let (server, _) = server_and_repo(&dir);
    // Neighbours: a prefix that the repository's prefix is a string prefix
    // of, and an object at the bucket's root.
    let neighbours = [format!("{PREFIX}-other/config"), "notes.txt".to_string()];
    for key in &neighbours {
        write(&server.object_path(BUCKET, key), b"not rewind's\n");
    }

    // The AWS form, with the endpoint and the credentials where the AWS
    // SDKs look for them: AWS_ENDPOINT_URL and a profile.
    let credentials = dir.join("aws-credentials");
    write(
        &credentials,
        format!(
            "[offsite]\naws_access_key_id = {S3_ACCESS_KEY}\naws_secret_access_key = {S3_SECRET_KEY}\n"
        )
        .as_bytes(),
    );
    let mut repo = S3Repo::at(&format!("s3://{BUCKET}/{PREFIX}/"));
    repo.env.clear();
    let repo = repo
        .with_env("AWS_ENDPOINT_URL", &server.endpoint())
        .with_env("AWS_PROFILE", "offsite")
        .with_env("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap())
        .with_env("AWS_CONFIG_FILE", "/nonexistent/config");

    repo.run(["init"]).assert_ok();
    for time in ["2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z"] {
        repo.run(["backup", "--time", time, text(&src)]).assert_ok();
    }
    repo.run(["forget", "--keep-last", "1", "--prune"])
        .assert_ok();
    repo.run(["unlock"]).assert_ok();
    repo.run(["check", "--read-data"]).assert_ok();

    let keys = server.keys(BUCKET);
    let outside: Vec<&String> = keys
        .iter()
        .filter(|k| !k.starts_with(&format!("{PREFIX}/")) && !neighbours.contains(k))
        .collect();
    assert!(outside.is_empty(), "written outside {PREFIX}/: {outside:?}");
    assert!(keys.contains(&format!("{PREFIX}/config")), "{keys:?}");
    for key in &neighbours {
        assert_eq!(
            std::fs::read(server.object_path(BUCKET, key)).unwrap(),
            b"not rewind's\n",
            "{key} was touched"
        );
    }
}

#[test]
fn wrong_credentials_give_one_clear_line() {
    let (_tmp, dir) = tempdir();
    let (server, repo) = server_and_repo(&dir);
    repo.run(["init"]).assert_ok();
    let endpoint = server.endpoint();

    let wrong_secret = S3Repo::at(&repo.url).with_env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    wrong_secret.run(["snapshots"]).assert_one_line_error(&[
        &endpoint,
        BUCKET,
        "HTTP 403",
        "secret key does not match",
        S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY",
    ]);
    let unknown_key = S3Repo::at(&repo.url).with_env("AWS_ACCESS_KEY_ID", "nobody");
    unknown_key
        .run(["backup", "/etc/hostname"])
        .assert_one_line_error(&[&endpoint, BUCKET, "HTTP 403", "nobody"]);
    let mut no_credentials = S3Repo::at(&repo.url);
    no_credentials
        .env
        .retain(|(name, _)| name != "AWS_ACCESS_KEY_ID" && name != "AWS_SECRET_ACCESS_KEY");
    no_credentials
        .run(["snapshots"])
        .assert_one_line_error(&["no S3 credentials", "AWS_ACCESS_KEY_ID"]);
}

#[test]
fn a_missing_bucket_gives_one_clear_line() {
    let (_tmp, dir) = tempdir();
    let (server, _) = server_and_repo(&dir);
    let repo = S3Repo::at(&server.url("no-such-bucket", PREFIX));
    let needles = [
        server.endpoint(),
        "no-such-bucket".into(),
        "the bucket does not exist".into(),
        "HTTP 404".into(),
    ];
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    repo.run(["init"]).assert_one_line_error(&needles);
    repo.run(["snapshots"]).assert_one_line_error(&needles);
    assert!(!server.root.join("no-such-bucket").exists());
}

#[test]
fn an_unknown_scheme_is_not_a_directory() {
    let (_tmp, dir) = tempdir();
    let run = run(Command::new(bin())
        .current_dir(&dir)
        .env_remove("REWIND_PASSWORD")
        .args([
            "--repo",
            "sftp:host:/srv/repo",
            "init",
            "--encryption",
            "none",
        ]));
    run.assert_one_line_error(&["unknown repository scheme sftp"]);
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "something was created"
    );
}

#[test]
fn an_unreachable_endpoint_fails_after_retries() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{closed_port}");
    let repo =
        S3Repo::at(&format!("s3:{endpoint}/{BUCKET}/{PREFIX}")).with_env("REWIND_S3_RETRIES", "2");
    let run = repo.run(["snapshots"]).assert_failed();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "two retries and the failure:\n{}",
        run.stderr
    );
    for retry in &lines[..2] {
        assert!(retry.contains("trying again in"), "{}", run.stderr);
    }
    let last = lines[2];
    for needle in [
        endpoint.as_str(),
        BUCKET,
        "connection refused",
        "failed 3 times",
        "is the S3 server running",
    ] {
        assert!(last.contains(needle), "{needle:?} missing in: {last}");
    }
}

#[test]
fn a_store_that_dies_during_a_backup_leaves_no_snapshot() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("a_store_that_dies_during_a_backup_leaves_no_snapshot"));
    let src = dir.join("src");
    build_bulk_tree(&src, &mut rng, 100, 12, 8 << 20);
    let (mut server, repo) = server_and_repo(&dir);
    let repo = repo
        .with_env("REWIND_S3_RETRIES", "2")
        .with_env("REWIND_S3_TIMEOUT", "5");
    repo.run(["init"]).assert_ok();

    let backup = repo
        .command()
        .arg("backup")
        .arg(&src)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the backup once it has stored a pack, kill the store under it,
    // and let it go on: it runs into the dead store.
    let data = format!("{PREFIX}/data/");
    let stored = wait_for(Duration::from_secs(120), || {
        server.keys(BUCKET).iter().any(|k| k.starts_with(&data))
    });
    assert!(stored.is_some(), "the backup stored no pack");
    kill(backup.id(), libc::SIGSTOP);
    server.kill();
    kill(backup.id(), libc::SIGCONT);
    let output = backup.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the backup succeeded:\n{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("no snapshot was written"), "{stderr}");
    assert!(last.contains(&server.endpoint()), "{stderr}");
    assert!(stderr.contains("trying again in"), "no retries:\n{stderr}");

    server.restart();
    assert_eq!(snapshot_count(&repo), 0);
    assert!(
        !server
            .keys(BUCKET)
            .iter()
            .any(|k| k.starts_with(&format!("{PREFIX}/snapshots/"))),
        "a snapshot manifest was written"
    );
    repo.run(["backup", text(&src)]).assert_ok();
    assert_eq!(snapshot_count(&repo), 1);
    repo.run(["check", "--read-data"]).assert_ok();
}

#[test]
fn the_backend_keeps_the_promises_the_repository_relies_on() {
    use rewind::format::FileType;
    use rewind::ErrorKind;

    let (_tmp, dir) = tempdir();
    let (_server, repo) = server_and_repo(&dir);
    let vars = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some(S3_ACCESS_KEY.to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some(S3_SECRET_KEY.to_string()),
        "REWIND_S3_PART_SIZE" => Some("5".to_string()),
        _ => None,
    };
    let backend =
        rewind::open_location_with(&repo.url, &rewind::S3Environment::new(&vars)).unwrap();
    let name = |i: u32| blake3::hash(&i.to_le_bytes()).to_hex().to_string();

    backend.create().unwrap();
    backend.write(FileType::Config, "config", b"{}").unwrap();
    let again = backend.create().unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");

    // Listings go on past a page (1000 objects).
    for i in 0..1100 {
        backend.write(FileType::Lock, &name(i), b"lock").unwrap();
    }
    let mut locks = backend.list(FileType::Lock).unwrap();
    locks.sort();
    let mut expected: Vec<String> = (0..1100).map(name).collect();
    expected.sort();
    assert_eq!(locks, expected);

    // Packs are found under their fan-out directories; one is larger than
    // a part.
    let mut rng = Rng::new(seed(
        "the_backend_keeps_the_promises_the_repository_relies_on",
    ));
    let packs: Vec<(String, Vec<u8>)> = [1000, 70_000, 6 << 20]
        .into_iter()
        .enumerate()
        .map(|(i, len)| (name(10_000 + i as u32), rng.bytes(len)))
        .collect();
    for (pack, bytes) in &packs {
        backend.write(FileType::Pack, pack, bytes).unwrap();
    }
    let mut listed = backend.list(FileType::Pack).unwrap();
    listed.sort();
    let mut pack_names: Vec<String> = packs.iter().map(|(n, _)| n.clone()).collect();
    pack_names.sort();
    assert_eq!(listed, pack_names);
    for (pack, bytes) in &packs {
        assert_eq!(&backend.read(FileType::Pack, pack).unwrap(), bytes);
        assert_eq!(
            backend.size(FileType::Pack, pack).unwrap(),
            bytes.len() as u64
        );
        let (offset, length) = (bytes.len() / 3, bytes.len() / 2);
        let range = backend
            .read_range(FileType::Pack, pack, offset as u64, length as u32)
            .unwrap();
        assert_eq!(range, bytes[offset..offset + length]);
        let past_end = backend
            .read_range(FileType::Pack, pack, bytes.len() as u64 - 10, 20)
            .unwrap_err();
        assert_eq!(past_end.kind(), ErrorKind::Corrupt, "{past_end}");
    }

    // Writing a file again: the same bytes are kept, other bytes (a
    // damaged copy) are replaced.
    let (pack, bytes) = &packs[1];
    backend.write(FileType::Pack, pack, bytes).unwrap();
    assert_eq!(&backend.read(FileType::Pack, pack).unwrap(), bytes);
    backend.write(FileType::Pack, pack, b"other bytes").unwrap();
    assert_eq!(backend.read(FileType::Pack, pack).unwrap(), b"other bytes");

    // A missing file is NotFound; removing one is not an error.
    let missing = name(99_999);
    for error in [
        backend.read(FileType::Index, &missing).unwrap_err(),
        backend
            .read_range(FileType::Pack, &missing, 0, 10)
            .unwrap_err(),
        backend.size(FileType::Snapshot, &missing).unwrap_err(),
    ] {
        assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    }
    backend.remove(FileType::Pack, pack).unwrap();
    backend.remove(FileType::Pack, pack).unwrap();
    assert_eq!(
        backend.read(FileType::Pack, pack).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // A name that would leave its directory is refused.
    for bad in ["..", "a/b", ""] {
        assert!(
            backend.write(FileType::Index, bad, b"x").is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn copy_goes_from_a_local_repository_to_s3_and_back() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("copy_goes_from_a_local_repository_to_s3_and_back"));
    let src = dir.join("src");
    mkdirs(&src);
    write(&src.join("large.bin"), &rng.bytes(6 << 20));
    write(&src.join("notes.txt"), &rng.text(64 * 1024));
    let local = Repo::init(&dir.join("local"), rewind::Encryption::Aes256Gcm);
    local.backup([text(&src)]);
    let (_server, s3) = server_and_repo(&dir);
    s3.run(["init"]).assert_ok();

    // local -> S3: everything, then nothing the second time.
    let copy_to_s3 = |s3: &S3Repo| {
        let mut cmd = s3.command();
        cmd.args(["copy", "--json", "--from-repo", text(&local.path)])
            .env("REWIND_FROM_PASSWORD", PASSWORD);
        run(&mut cmd).assert_ok().json()
    };
    let first = copy_to_s3(&s3);
    assert_eq!(first["copied"].as_array().unwrap().len(), 1, "{first:#}");
    let again = copy_to_s3(&s3);
    assert!(again["copied"].as_array().unwrap().is_empty(), "{again:#}");
    s3.run(["check", "--read-data"]).assert_ok();
    let from_s3 = dir.join("from-s3");
    s3.run(["restore", "latest", "--target", text(&from_s3)])
        .assert_ok();
    assert_same_tree(&src, &under(&from_s3, &src));

    // S3 -> a second local repository, the source's credentials from the
    // environment as for --repo.
    let back = Repo::init(&dir.join("back"), rewind::Encryption::Aes256Gcm);
    let mut cmd = back.command();
    cmd.args(["copy", "--json", "--from-repo", &s3.url])
        .env("REWIND_FROM_PASSWORD", PASSWORD)
        .env("NO_PROXY", "127.0.0.1,localhost");
    for (name, value) in &s3.env {
        cmd.env(name, value);
    }
    let report = run(&mut cmd).assert_ok().json();
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report:#}");
    let restored = dir.join("back-restored");
    back.restore("latest", &restored, &[]).assert_ok();
    assert_same_tree(&src, &under(&restored, &src));
}
