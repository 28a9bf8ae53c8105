//! Helpers for the mount tests: running the real `rewind` binary and the
//! ordinary tools (diff, cp, rsync, tar, find, stat, getfattr, sha256sum)
//! the way a user would, a guard that always unmounts, and listings of a
//! tree that two trees can be compared by. Built on `crate::common`: a test
//! file that declares `mod mount_util;` declares `mod common;` too.

// Each test file is its own crate and uses only some of these helpers; the
// rest would be reported as dead code in every one of them.
#![allow(dead_code)]

mod daemon;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

// Re-exported so that test files `use` one path; a test file that uses
// nothing of one module would otherwise be told its import is unused.
#[allow(unused_imports)]
pub use self::{daemon::*, tools::*};

// What the mount tests (and tests/postgres.rs) use from `common`, through
// this module because `common` has a `Repo`, a `Mount` and a `tempdir` of
// its own and a test file cannot glob-import both; not every test file that
// declares this module uses all of them.
#[allow(unused_imports)]
pub use crate::common::{
    alive, bin, chmod, hard_link, is_mounted, kill, lchown, mkdirs, mounts_at, run, set_times,
    symlink, unmount_all, wait_for, walk, write, write_at, Rng, Run, Unmount,
};

pub const PASSWORD: &str = "mount tests are real";

/// `bash -c SCRIPT` with `set -eo pipefail`: pass paths in through
/// `.env(...)` so that any byte in them is safe.
pub fn sh(script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(format!("set -eo pipefail\n{script}"));
    cmd
}

/// A command run as the unprivileged `nobody` (uid/gid 65534, no groups).
pub fn as_nobody(program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        program,
    ]);
    cmd
}

#[track_caller]
pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the mount tests mount for real and create device nodes: run them as root"
    );
    assert!(
        Path::new("/dev/fuse").exists(),
        "the mount tests need /dev/fuse (scripts/install-deps.sh installs fuse3)"
    );
}

/// A temporary directory with a canonical path that other users may enter.
pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    chmod(&path, 0o755);
    (dir, path)
}

// ---------------------------------------------------------------- the binary

/// A repository driven through the real binary.
pub struct Repo {
    pub path: PathBuf,
}

impl Repo {
    #[track_caller]
    pub fn init(path: &Path) -> Repo {
        let repo = Repo {
            path: path.to_path_buf(),
        };
        run(repo.cmd().arg("init")).assert_ok();
        repo
    }

    /// `rewind` with this repository and its password in the environment.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.env("REWIND_REPO", &self.path)
            .env("REWIND_PASSWORD", PASSWORD);
        cmd
    }

    /// `rewind backup --json --time TIME --host HOST [--tag T]... PATH`,
    /// which must succeed without warnings; the snapshot as JSON.
    #[track_caller]
    pub fn backup(&self, path: &Path, time: &str, host: &str, tags: &[&str]) -> serde_json::Value {
        let mut cmd = self.cmd();
        cmd.args(["backup", "--json", "--time", time, "--host", host]);
        for tag in tags {
            cmd.args(["--tag", tag]);
        }
        cmd.arg(path);
        let snapshot = run(&mut cmd).assert_ok().json();
        assert_eq!(
            snapshot["warnings"],
            serde_json::json!([]),
            "backup of {} warned: {snapshot:#}",
            path.display()
        );
        snapshot
    }
}
