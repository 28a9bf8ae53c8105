//! Issue 10, repository trust and recovery: an attacker who can write the
//! repository cannot change what the client does (the config is
//! authenticated), other local users cannot read it (private modes), lost
//! index files and manifests are noticed and rebuilt, and no state is
//! written through a shared directory.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rewind::{Encryption, Id};

/// A uid with no entry in the password database: no home directory to fall back on.
const VICTIM: u32 = 54321;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    write_tree(&src, &[("a.txt", b"secret data of root".to_vec())]);
    src
}

fn short_id(repo: &Repo) -> String {
    Id::from_hex(read_config(repo)["id"].as_str().unwrap())
        .unwrap()
        .short()
}

// ------------------------------------------------------------ finding 3

/// Key files, config, packs, index files and manifests are 0600 and every
/// directory 0700, so no other local user can copy a key file or read an
/// unencrypted repository.
#[test]
fn a_new_repository_is_private() {
    let (_tmp, dir) = tempdir();
    let src = source(&dir);
    for encryption in [Encryption::Aes256Gcm, Encryption::None] {
        let repo = Repo::init(&dir.join(format!("repo-{encryption:?}")), encryption);
        repo.backup([arg(&src)]);
        assert_eq!(mode(&repo.path), 0o700, "the repository directory");
        let all = walk(&repo.path);
        assert!(all
            .iter()
            .any(|p| p.starts_with(repo.path.join("data")) && p.is_file()));
        for path in all {
            let want = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(&path), want, "{}", path.display());
        }
    }
}

/// A repository its owner made group-readable stays so: new files are
/// group-readable too, and nothing that exists is changed.
#[test]
fn a_group_readable_repository_keeps_its_modes() {
    let (_tmp, dir) = tempdir();
    let src = source(&dir);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    for path in walk(&repo.path) {
        chmod(&path, if path.is_dir() { 0o750 } else { 0o640 });
    }
    let key = std::fs::read_dir(repo.path.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    chmod(&key, 0o644); // a choice of the owner's, however unwise
    let before: Vec<PathBuf> = walk(&repo.path);
    repo.backup([arg(&src)]);
    assert_eq!(mode(&key), 0o644, "an existing file is not changed");
    let new: Vec<PathBuf> = walk(&repo.path)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!new.is_empty());
    for path in new {
        let want = if path.is_dir() { 0o750 } else { 0o640 };
        assert_eq!(mode(&path), want, "{}", path.display());
    }
}

// ------------------------------------------------------------ finding 8

/// A repository that `VICTIM` owns and backs up to, in a directory others
/// may traverse; and a file of the victim's that an attacker would like
/// overwritten.
struct VictimSetup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    repo: Repo,
    precious: PathBuf,
}

fn victim_setup() -> VictimSetup {
    // SAFETY: getpwuid with any uid is safe; it returns null when unknown.
    assert!(
        unsafe { libc::getpwuid(VICTIM) }.is_null(),
        "uid {VICTIM} must have no home directory for this test"
    );
    let (tmp, dir) = tempdir();
    chmod(&dir, 0o755);
    let home = dir.join("victim");
    mkdirs(&home);
    lchown(&home, VICTIM, VICTIM);
    let src = source(&home);
    lchown(&src, VICTIM, VICTIM);
    lchown(&src.join("a.txt"), VICTIM, VICTIM);
    let precious = home.join("precious");
    write(&precious, b"the victim's own file\n");
    lchown(&precious, VICTIM, VICTIM);
    let mut repo = Repo::at(&home.join("repo"), Encryption::None);
    repo.run_as = Some(VICTIM);
    repo.run(["init", "--encryption", "none"]).assert_ok();
    repo.backup([arg(&src)]);
    VictimSetup {
        _tmp: tmp,
        dir,
        repo,
        precious,
    }
}

/// What an attacker plants in the shared directory the old code fell back
/// to: links from the names rewind would write to the victim's file.
fn plant_links(names: &[String], target: &Path) -> Vec<PathBuf> {
    let shared = Path::new("/tmp/.cache/rewind");
    std::fs::create_dir_all(shared).unwrap();
    chmod(Path::new("/tmp/.cache"), 0o1777);
    chmod(shared, 0o1777);
    names
        .iter()
        .map(|name| {
            let link = shared.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link).unwrap();
            link
        })
        .collect()
}

fn without_home(mut cmd: Command) -> Command {
    cmd.env_remove("HOME").env_remove("XDG_CACHE_HOME");
    cmd
}

/// Without HOME, a user with no home directory gets a clear error instead
/// of a scrub state in /tmp, where a planted link made rewind overwrite a
/// file of the attacker's choosing.
#[test]
fn scrub_state_is_never_written_through_a_shared_directory() {
    let setup = victim_setup();
    let short = short_id(&setup.repo);
    let links = plant_links(
        &[format!("scrub-{short}.json"), format!("scrub-{short}.tmp")],
        &setup.precious,
    );
    let run = run(without_home(setup.repo.command()).arg("scrub"));
    for link in &links {
        let _ = std::fs::remove_file(link);
    }
    assert_eq!(
        std::fs::read(&setup.precious).unwrap(),
        b"the victim's own file\n",
        "the planted link was written through:\n{}",
        run.stderr
    );
    run.assert_one_line_error(&["HOME", "--state"]);
}

/// A state file named with --state is replaced, never written through:
/// a link planted at its name or beside it is not followed.
#[test]
fn scrub_state_replaces_a_planted_link() {
    let setup = victim_setup();
    let state_dir = setup.dir.join("state");
    mkdirs(&state_dir);
    chmod(&state_dir, 0o777);
    let state = state_dir.join("scrub.json");
    std::os::unix::fs::symlink(&setup.precious, &state).unwrap();
    std::os::unix::fs::symlink(&setup.precious, state_dir.join("scrub.tmp")).unwrap();
    setup
        .repo
        .run(["scrub".as_ref(), "--state".as_ref(), state.as_os_str()])
        .assert_ok();
    assert_eq!(
        std::fs::read(&setup.precious).unwrap(),
        b"the victim's own file\n"
    );
    let meta = std::fs::symlink_metadata(&state).unwrap();
    assert!(meta.is_file(), "the link was replaced by the state");
    assert_eq!((meta.uid(), mode(&state)), (VICTIM, 0o600));

    // With a home, the state goes there, in a private directory.
    let home = setup.dir.join("victim");
    let mut cmd = without_home(setup.repo.command());
    run(cmd.env("HOME", &home).arg("scrub")).assert_ok();
    let cache = home.join(".cache/rewind");
    assert_eq!(mode(&cache), 0o700);
    let short = short_id(&setup.repo);
    assert_eq!(mode(&cache.join(format!("scrub-{short}.json"))), 0o600);
}

/// The mount daemon's default log, likewise: no fallback to /tmp.
#[test]
fn mount_log_is_never_opened_through_a_shared_directory() {
    let setup = victim_setup();
    let links = plant_links(&["mount.log".to_string()], &setup.precious);
    let mountpoint = setup.dir.join("victim/mnt");
    mkdirs(&mountpoint);
    lchown(&mountpoint, VICTIM, VICTIM);
    let run = run(without_home(setup.repo.command())
        .arg("mount")
        .arg(&mountpoint));
    // If an old build got as far as mounting, unmount before judging.
    let _ = Command::new("umount")
        .arg("-l")
        .arg(&mountpoint)
        .stderr(std::process::Stdio::null())
        .status();
    for link in &links {
        let _ = std::fs::remove_file(link);
    }
    assert_eq!(
        std::fs::read(&setup.precious).unwrap(),
        b"the victim's own file\n",
        "the planted link was written through:\n{}",
        run.stderr
    );
    run.assert_one_line_error(&["HOME", "--log-file"]);
}

// ------------------------------------------------------------ findings 6 and 7

/// An encrypted repository with two backups of a small tree.
fn two_backups(dir: &Path) -> (Repo, PathBuf, Vec<serde_json::Value>) {
    let src = dir.join("src");
    write_tree(
        &src,
        &[
            ("a.txt", b"first version".to_vec()),
            ("b.bin", Rng::new(7).bytes(300_000)),
        ],
    );
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let first = repo.backup([arg(&src)]);
    write(&src.join("a.txt"), b"second version");
    let second = repo.backup([arg(&src)]);
    (repo, src, vec![first, second])
}

fn scrub(repo: &Repo, state: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["scrub", "--json", "--state", state.to_str().unwrap()];
    args.extend(extra);
    repo.run(args)
}

fn finding_statuses(run: &Run) -> Vec<String> {
    run.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap().to_string())
        .collect()
}

/// Deleting the index file of a backup's packs: `check` says what to run,
/// `scrub` reports it, `scrub --repair` indexes the packs again from their
/// trailers, and then everything checks and restores.
#[test]
fn a_deleted_index_file_is_rebuilt_by_scrub_repair() {
    let (_tmp, dir) = tempdir();
    let (repo, src, _) = two_backups(&dir);
    let expected = freeze(&src);
    let library = repo.open();
    let data_index = std::fs::read_dir(repo.path.join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|name| {
            let file = library.read_index_file(name).unwrap();
            file.packs.iter().any(|p| {
                p.blobs
                    .iter()
                    .any(|b| b.kind == rewind::format::BlobKind::Data)
            })
        })
        .unwrap();
    drop(library);
    std::fs::remove_file(repo.path.join("index").join(&data_index)).unwrap();

    let check = repo.run(["check"]).assert_code(1);
    assert!(
        check.stderr.contains("rewind scrub --repair"),
        "check says what to run:\n{}",
        check.stderr
    );
    let state = dir.join("scrub.json");
    let run = scrub(&repo, &state, &[]).assert_code(1);
    assert_eq!(finding_statuses(&run), ["damaged"], "{}", run.text());
    let run = scrub(&repo, &state, &["--repair"]).assert_code(4);
    assert_eq!(finding_statuses(&run), ["repaired"], "{}", run.text());
    repo.run(["check", "--read-data"]).assert_ok();
    scrub(&repo, &state, &[]).assert_ok();
    let target = dir.join("restore");
    repo.restore("latest", &target, &[]).assert_ok();
    expected.assert_same(&Manifest::of(&under(&target, &src)), "after the rebuild");
}

/// Deleting the latest snapshot's manifest: `check` (with or without
/// --read-data) and `scrub` fail and name the snapshot, and `scrub
/// --repair` brings the manifest back from its copy in the packs, so
/// `latest` is the latest snapshot again.
#[test]
fn a_deleted_manifest_is_reported_and_brought_back() {
    let (_tmp, dir) = tempdir();
    let (repo, _src, backups) = two_backups(&dir);
    let latest = &backups[1];
    let manifest = repo
        .path
        .join("snapshots")
        .join(latest["id"].as_str().unwrap());
    std::fs::remove_file(&manifest).unwrap();

    for args in [&["check"][..], &["check", "--read-data"]] {
        let run = repo.run(args).assert_code(1);
        assert!(
            run.stderr.contains("no readable manifest")
                && run.stderr.contains("rewind scrub --repair"),
            "{args:?} names the loss and the repair:\n{}",
            run.stderr
        );
    }
    let state = dir.join("scrub.json");
    let run = scrub(&repo, &state, &[]).assert_code(1);
    assert_eq!(finding_statuses(&run), ["damaged"], "{}", run.text());
    let run = scrub(&repo, &state, &["--repair"]).assert_code(4);
    assert_eq!(finding_statuses(&run), ["repaired"], "{}", run.text());

    let times: Vec<serde_json::Value> =
        repo.snapshots().iter().map(|s| s["time"].clone()).collect();
    assert_eq!(times, [backups[0]["time"].clone(), latest["time"].clone()]);
    repo.run(["check", "--read-data"]).assert_ok();
    scrub(&repo, &state, &["--repair"]).assert_ok();
}

/// A snapshot forgotten through the library leaves a tombstone: its copy
/// in the packs is not mistaken for a lost manifest, and no repair brings
/// it back.
#[test]
fn a_forgotten_snapshot_is_not_a_lost_one() {
    let (_tmp, dir) = tempdir();
    let (repo, _src, backups) = two_backups(&dir);
    let library = repo.open();
    let first = library
        .snapshots()
        .unwrap()
        .into_iter()
        .find(|s| s.id.to_hex() == backups[0]["id"].as_str().unwrap())
        .unwrap();
    let tombstone = library.forget_snapshot(&first).unwrap();
    assert!(repo
        .path
        .join("forgotten")
        .join(tombstone.to_hex())
        .is_file());
    drop(library);

    assert_eq!(repo.snapshots().len(), 1);
    repo.run(["check", "--read-data"]).assert_ok();
    let state = dir.join("scrub.json");
    scrub(&repo, &state, &["--repair"]).assert_ok();
    assert_eq!(
        repo.snapshots().len(),
        1,
        "the forgotten snapshot stays forgotten"
    );
}

// ------------------------------------------------------------ finding 2

fn read_config(repo: &Repo) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(repo.path.join("config")).unwrap()).unwrap()
}

fn write_config(repo: &Repo, config: &serde_json::Value) {
    write(
        &repo.path.join("config"),
        &serde_json::to_vec_pretty(config).unwrap(),
    );
}

fn pack_count(repo: &Repo) -> usize {
    walk(&repo.path.join("data"))
        .iter()
        .filter(|p| p.is_file())
        .count()
}

/// Turning encryption off in the config no longer makes the next backup
/// run without a password and store plaintext: it is refused, and nothing
/// is written.
#[test]
fn a_config_edited_to_no_encryption_is_refused() {
    let (_tmp, dir) = tempdir();
    let src = source(&dir);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let mut config = read_config(&repo);
    config["encryption"] = "none".into();
    write_config(&repo, &config);
    for strip_mac in [false, true] {
        if strip_mac {
            config.as_object_mut().unwrap().remove("mac");
            write_config(&repo, &config);
        }
        repo.run(["backup".as_ref(), src.as_os_str()])
            .assert_one_line_error(&["config", "cannot be trusted", "restore it"]);
        assert_eq!(pack_count(&repo), 0, "nothing was stored");
    }
}

/// Any change of a field of an encrypted config is caught, with or without
/// its MAC, and so is passing it off as a version 1 config.
#[test]
fn every_config_field_is_authenticated() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let original = read_config(&repo);
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "compression",
            Box::new(|c| c["compression_level"] = 0.into()),
        ),
        (
            "chunker",
            Box::new(|c| c["chunker"]["min_size"] = 65536.into()),
        ),
        ("pack size", Box::new(|c| c["pack_size"] = (2 << 20).into())),
        ("parity", Box::new(|c| c["parity_percent"] = 10.into())),
        ("id", Box::new(|c| c["id"] = hex::encode([7u8; 32]).into())),
        (
            "mac removed",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("mac");
            }),
        ),
        (
            "passed off as version 1",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("mac");
                c["version"] = 1.into();
            }),
        ),
    ];
    for (what, edit) in edits {
        let mut config = original.clone();
        edit(&mut config);
        write_config(&repo, &config);
        let run = repo.run(["snapshots"]);
        assert!(
            !run.ok() && run.stderr.contains("cannot be trusted"),
            "{what}: the edited config must be refused:\n{}",
            run.stderr
        );
    }
    write_config(&repo, &original);
    repo.run(["snapshots"]).assert_ok();
}

/// A key file of format version 1 (the master key sealed alone), built
/// independently of the library with cheap Argon2 parameters.
fn version_1_key_file(master: &[u8; 64], password: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit};
    let salt = b"0123456789abcdef";
    let params = argon2::Params::new(8, 1, 1, Some(32)).unwrap();
    let mut kek = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password, salt, &mut kek)
        .unwrap();
    let nonce = [5u8; 12];
    let wrapped = aes_gcm::Aes256Gcm::new(&kek.into())
        .encrypt(aes_gcm::Nonce::from_slice(&nonce), master.as_slice())
        .unwrap();
    serde_json::to_vec_pretty(&serde_json::json!({
        "version": 1,
        "created": "2024-06-01T02:00:00Z",
        "host": "old",
        "kdf": {"algorithm": "argon2id", "memory_kib": 8, "iterations": 1,
                "parallelism": 1, "salt": hex::encode(salt)},
        "nonce": hex::encode(nonce),
        "wrapped": hex::encode(wrapped),
    }))
    .unwrap()
}

/// A repository made before configs were authenticated (format version 1:
/// no MAC, a version 1 key file) keeps opening; its first write upgrades
/// it, after which stripping the MAC again is refused.
#[test]
fn a_version_1_repository_opens_and_is_upgraded_at_its_first_write() {
    let (_tmp, dir) = tempdir();
    let src = source(&dir);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    for entry in std::fs::read_dir(repo.path.join("keys")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    // Repositories of that time have no audit trail (and the record of the
    // init is sealed under the master key replaced here).
    std::fs::remove_dir_all(repo.path.join("audit")).unwrap();
    let key = version_1_key_file(&[0x5a; 64], PASSWORD.as_bytes());
    let key_name = blake3::hash(&key).to_hex().to_string();
    write(&repo.path.join("keys").join(&key_name), &key);
    let mut config = read_config(&repo);
    config.as_object_mut().unwrap().remove("mac");
    config["version"] = 1.into();
    write_config(&repo, &config);

    repo.run(["snapshots"]).assert_ok();
    assert_eq!(read_config(&repo), config, "reading writes nothing");
    repo.backup([arg(&src)]);
    let upgraded = read_config(&repo);
    assert_eq!(upgraded["version"], 2, "{upgraded:#}");
    assert!(upgraded["mac"].is_string(), "{upgraded:#}");
    let keys: Vec<String> = std::fs::read_dir(repo.path.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0], key_name, "the key file was sealed anew");
    repo.run(["check", "--read-data"]).assert_ok();

    write_config(&repo, &config);
    repo.run(["snapshots"])
        .assert_one_line_error(&["cannot be trusted", "no MAC", "keys/"]);
}

/// An unencrypted repository has nothing to key a MAC with: its config is
/// plain, and a MAC in it is refused.
#[test]
fn an_unencrypted_config_has_no_mac() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let mut config = read_config(&repo);
    assert!(config.get("mac").is_none(), "{config:#}");
    config["mac"] = hex::encode([1u8; 32]).into();
    write_config(&repo, &config);
    repo.run(["snapshots"])
        .assert_one_line_error(&["config", "MAC"]);
}
