//! The scripts in contrib/: a dump that fails half-way never becomes a
//! snapshot, and one that succeeds is stored whole. (pg-nightly-backup.sh
//! runs against a real server in tests/postgres.rs.)

mod common;

use std::process::Command;

use common::*;
use rewind::Encryption;

/// Runs `stream_to_rewind NAME --tag t -- bash -c SCRIPT` from
/// contrib/stream-to-rewind.sh against `repo`; its exit status.
fn stream(repo: &Repo, name: &str, script: &str) -> Option<i32> {
    let contrib = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/stream-to-rewind.sh");
    // The repository and password as `rewind` would get them.
    let rewind = repo.command();
    let env = rewind
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())));
    let status = Command::new("bash")
        .envs(env)
        .env("REWIND", bin())
        .arg("-c")
        .arg(r#"set -euo pipefail; source "$1"; stream_to_rewind "$2" --tag t -- bash -c "$3""#)
        .args(["bash", contrib, name, script])
        .status()
        .unwrap();
    status.code()
}

#[test]
fn a_dump_that_fails_half_way_is_not_stored() {
    let (_tmp, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);

    // Megabytes are written before the failure: rewind has read and stored
    // chunks of them by then, but must not write a snapshot.
    let failing = "head -c 20000000 /dev/urandom; exit 3";
    assert_eq!(stream(&repo, "db/broken.sql", failing), Some(3));
    assert!(repo.snapshots().is_empty(), "no snapshot of a failed dump");

    let whole = "seq 1 2000000";
    assert_eq!(stream(&repo, "db/whole.sql", whole), Some(0));
    let snapshots = repo.snapshots();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["tags"], serde_json::json!(["t"]));
    let cat = repo.run(["cat", "latest:/db/whole.sql"]).assert_ok();
    let expected: String = (1..=2_000_000).map(|i| format!("{i}\n")).collect();
    assert!(
        cat.stdout == expected.as_bytes(),
        "the dump is stored whole"
    );
}
