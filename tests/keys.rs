//! `rewind key`: several passwords open one repository; passwd replaces
//! the one in use; the last key and the key in use are not removed by
//! mistake; key files are private; no password shows in any output.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use rewind::Encryption;

/// The repository opened with another password.
fn with_password(repo: &Repo, password: &str) -> Repo {
    Repo {
        path: repo.path.clone(),
        password: Some(password.to_string()),
        run_as: None,
    }
}

fn key_list(repo: &Repo) -> Vec<serde_json::Value> {
    let list = repo.run(["key", "list", "--json"]).assert_ok().json();
    list.as_array().unwrap().clone()
}

fn in_use(keys: &[serde_json::Value]) -> String {
    let used: Vec<_> = keys.iter().filter(|k| k["in_use"] == true).collect();
    assert_eq!(used.len(), 1, "{keys:?}");
    used[0]["id"].as_str().unwrap().to_string()
}

#[test]
fn a_second_password_opens_the_repository_and_is_listed_with_its_label() {
    let (_d, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let out = repo
        .command()
        .args(["key", "add", "--label", "laptop"])
        .env("REWIND_NEW_PASSWORD", "second secret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let added = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!added.contains("second secret"));

    let second = with_password(&repo, "second secret");
    let keys = key_list(&second);
    assert_eq!(keys.len(), 2);
    let labelled: Vec<_> = keys.iter().filter(|k| k["label"] == "laptop").collect();
    assert_eq!(labelled.len(), 1);
    assert_eq!(labelled[0]["in_use"], true);
    assert!(labelled[0]["username"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    assert_ne!(in_use(&key_list(&repo)), in_use(&keys));

    for key in std::fs::read_dir(dir.join("repo/keys")).unwrap() {
        let mode = key.unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let config = std::fs::metadata(dir.join("repo/config")).unwrap();
    assert_eq!(config.permissions().mode() & 0o777, 0o600);
}

#[test]
fn passwd_replaces_the_key_in_use_so_the_old_password_fails() {
    let (_d, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let source = dir.join("src");
    write(&source.join("f"), b"kept across a password change");
    repo.backup([arg(&source)]);
    let before = in_use(&key_list(&repo));

    let new_password = dir.join("new-password");
    write(&new_password, b"the new one\n");
    let run = repo
        .run([
            "key",
            "passwd",
            "--new-password-file",
            new_password.to_str().unwrap(),
        ])
        .assert_ok();
    assert!(!run.text().contains("the new one") && !run.stderr.contains("the new one"));

    repo.run(["snapshots"])
        .assert_one_line_error(&["wrong password"]);
    let renewed = with_password(&repo, "the new one");
    let keys = key_list(&renewed);
    assert_eq!(keys.len(), 1);
    assert_ne!(in_use(&keys), before);
    let target = dir.join("out");
    renewed.restore("latest", &target, &[]).assert_ok();
    assert_eq!(
        std::fs::read(under(&target, &source.join("f"))).unwrap(),
        b"kept across a password change"
    );
}

#[test]
fn the_last_key_and_the_key_in_use_are_not_removed() {
    let (_d, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let only = in_use(&key_list(&repo));
    repo.run(["key", "remove", &only[..8]])
        .assert_one_line_error(&["only key file", "key add"]);
    repo.run(["key", "remove", &only[..8], "--force-other"])
        .assert_one_line_error(&["only key file"]);

    let out = repo
        .command()
        .args(["key", "add"])
        .env("REWIND_NEW_PASSWORD", "other")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    repo.run(["key", "remove", &only[..8]])
        .assert_one_line_error(&["opened with", "--force-other"]);
    repo.run(["key", "remove", "ffffffffff"])
        .assert_one_line_error(&["no key file ffffffffff", "key list"]);

    // Another password removes the first key; the first password then fails.
    let other = with_password(&repo, "other");
    other.run(["key", "remove", &only[..8]]).assert_ok();
    assert_eq!(key_list(&other).len(), 1);
    repo.run(["snapshots"])
        .assert_one_line_error(&["wrong password"]);
}

#[test]
fn key_commands_on_an_unencrypted_repository_say_so() {
    let (_d, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    assert!(key_list(&repo).is_empty());
    let out = repo
        .command()
        .args(["key", "add"])
        .env("REWIND_NEW_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not encrypted"));
}
