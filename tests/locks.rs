//! Repository locks seen from outside, with real processes: a running
//! backup shows its shared lock, a killed one leaves a lock that `locks`
//! calls stale and `unlock --stale` removes, while a live (stopped) one's
//! lock stays until it finishes.

mod common;

use std::io::Write;
use std::process::{Child, ChildStdin, Stdio};
use std::time::Duration;

use common::*;
use rewind::Encryption;

/// A backup of standard input, which waits for more input until `stdin`
/// is closed.
struct SlowBackup {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl SlowBackup {
    fn start(repo: &Repo, name: &str) -> SlowBackup {
        let mut child = repo
            .command()
            .args(["backup", "--stdin-name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the rewind binary runs");
        let mut stdin = child.stdin.take();
        stdin.as_mut().unwrap().write_all(&[7u8; 1 << 16]).unwrap();
        SlowBackup { child, stdin }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the input and waits for the backup to finish.
    fn finish(mut self) -> Run {
        self.stdin.take();
        let out = std::mem::replace(&mut self.child, dummy_child())
            .wait_with_output()
            .unwrap();
        Run {
            what: "rewind backup --stdin-name".into(),
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A finished process to put in place of one taken out of a `SlowBackup`.
fn dummy_child() -> Child {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    child
}

impl Drop for SlowBackup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn locks(repo: &Repo) -> Vec<serde_json::Value> {
    let run = repo.run(["locks", "--json"]).assert_ok();
    run.json().as_array().expect("a JSON list").clone()
}

fn lock_of(repo: &Repo, pid: u32) -> Option<serde_json::Value> {
    locks(repo)
        .into_iter()
        .find(|lock| lock["pid"].as_u64() == Some(pid as u64))
}

/// Waits until the process's lock is listed, and returns it.
#[track_caller]
fn wait_for_lock(repo: &Repo, pid: u32) -> serde_json::Value {
    wait_for(Duration::from_secs(60), || lock_of(repo, pid).is_some())
        .expect("the backup's lock appears");
    lock_of(repo, pid).unwrap()
}

#[test]
fn a_killed_backups_lock_is_stale_and_unlock_stale_removes_only_it() {
    let (_dir, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);

    let killed = SlowBackup::start(&repo, "killed.bin");
    let lock = wait_for_lock(&repo, killed.pid());
    kill(killed.pid(), libc::SIGSTOP);
    assert_eq!(lock["kind"], "shared");
    assert_eq!(lock["command"], "backup");
    assert_eq!(lock["host"], rewind::hostname());
    assert_eq!(lock["stale"], false);
    for field in ["user", "started", "refreshed", "id", "short_id"] {
        assert!(lock[field].is_string(), "{field} in {lock}");
    }

    let live = SlowBackup::start(&repo, "live.bin");
    wait_for_lock(&repo, live.pid());
    kill(live.pid(), libc::SIGSTOP);

    let killed_pid = killed.pid();
    drop(killed); // SIGKILL, and reaped: its pid is gone
    let left = lock_of(&repo, killed_pid).expect("a killed backup leaves its lock");
    assert_eq!(left["stale"], true, "same host, dead pid: {left}");
    assert_eq!(lock_of(&repo, live.pid()).unwrap()["stale"], false);

    let text = repo.run(["locks"]).assert_ok().text();
    assert!(
        text.contains(&killed_pid.to_string()) && text.contains("2 locks"),
        "{text}"
    );

    let unlocked = repo.run(["unlock", "--stale"]).assert_ok();
    assert!(
        unlocked.text().contains(&format!("pid {killed_pid}")),
        "{}",
        unlocked.text()
    );
    let remaining: Vec<u64> = locks(&repo)
        .iter()
        .map(|l| l["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(
        remaining,
        [live.pid() as u64],
        "only the stale lock is removed"
    );

    kill(live.pid(), libc::SIGCONT);
    live.finish().assert_ok();
    assert!(
        locks(&repo).is_empty(),
        "a finished backup removes its lock"
    );
    assert_eq!(repo.snapshots().len(), 1);
}

#[test]
fn unlock_without_stale_removes_live_locks_and_warns() {
    let (_dir, dir) = tempdir();
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    let live = SlowBackup::start(&repo, "live.bin");
    wait_for_lock(&repo, live.pid());

    let unlocked = repo.run(["unlock"]).assert_ok();
    assert!(unlocked.stderr.contains("was live"), "{}", unlocked.stderr);
    assert!(locks(&repo).is_empty());
    // The backup goes on without its lock and still finishes.
    live.finish().assert_ok();
}
