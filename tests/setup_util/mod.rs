//! Helpers for tests/setup_walk.rs, which walks the README's "Set up a
//! server" section on this machine: the section cut into steps, the
//! admin's root shell that runs them, a stand-in for systemd where it is
//! not PID 1, a health-check listener, and a guard that removes what the
//! walk wrote under /etc. Built on `crate::common`: a test file that
//! declares `mod setup_util;` declares `mod common;` too.

mod health_check;
mod section;
mod system_files;
mod unit;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use self::{health_check::*, section::*, system_files::*, unit::*};
use crate::common::{run, Run};

/// A root shell as an admin has one: the usual PATH, so that `rewind` is
/// the installed /usr/bin/rewind, and nothing of the test's environment
/// (no REWIND_* or AWS_* variables); HOME is a scratch directory, so that
/// no file of the real root's home is read or written.
pub struct AdminShell {
    pub cwd: PathBuf,
    pub home: PathBuf,
}

impl AdminShell {
    pub fn new(cwd: &Path, home: &Path) -> AdminShell {
        std::fs::create_dir_all(cwd).unwrap();
        std::fs::create_dir_all(home).unwrap();
        AdminShell {
            cwd: cwd.to_path_buf(),
            home: home.to_path_buf(),
        }
    }

    /// Runs `script` in `bash` with `set -euo pipefail`, to its end.
    pub fn run(&self, script: &str) -> Run {
        run(Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", &self.home)
            .env("USER", "root")
            .env("LOGNAME", "root")
            .env("LANG", "C.UTF-8")
            .current_dir(&self.cwd))
    }
}
