//! A `rewind mount` daemon started the way a user starts it, found through
//! /proc, and a guard that always unmounts it and makes sure it is gone.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::Repo;
use crate::common::{alive, bin, is_mounted, kill, run, unmount_all, wait_for, Run, Unmount};

/// The live `rewind mount` daemons serving `mountpoint` (found through
/// /proc: their command line names our binary, `mount` and the mountpoint).
pub fn daemons_of(mountpoint: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.first() == Some(&bin().as_bytes())
            && args.contains(&b"mount".as_slice())
            && args.contains(&mountpoint.as_os_str().as_bytes())
            && alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

/// A running `rewind mount` daemon. Dropping it always unmounts (`umount
/// -l`) and makes sure the daemon is gone, even when the test panicked.
pub struct Mount {
    /// False once another daemon took over the mountpoint (see [`Mount::disarm`]).
    armed: bool,
    pub mountpoint: PathBuf,
    pub log: PathBuf,
    pub pid: u32,
    /// What `rewind mount` printed.
    pub started: Run,
}

impl Mount {
    /// `rewind mount MOUNTPOINT --log-file LOG EXTRA...`, which must succeed
    /// and leave exactly one daemon behind.
    #[track_caller]
    pub fn start(repo: &Repo, mountpoint: &Path, extra: &[&str]) -> Mount {
        Mount::start_with(repo.cmd(), mountpoint, extra)
    }

    /// [`Mount::start`] with a prepared `rewind` command (say, one run in
    /// another directory).
    #[track_caller]
    pub fn start_with(mut rewind: Command, mountpoint: &Path, extra: &[&str]) -> Mount {
        // A stale mount answers ENOTCONN: leave it for `rewind mount`.
        if let Err(e) = std::fs::symlink_metadata(mountpoint) {
            if e.kind() == std::io::ErrorKind::NotFound {
                std::fs::create_dir_all(mountpoint).unwrap();
            }
        }
        let log = mountpoint.with_extension("log");
        let started = run(rewind
            .arg("mount")
            .arg(mountpoint)
            .arg("--log-file")
            .arg(&log)
            .args(extra));
        // Whatever happens next, a mount that exists gets cleaned up.
        let mut guard = Mount {
            armed: true,
            mountpoint: mountpoint.to_path_buf(),
            log,
            pid: 0,
            started,
        };
        assert!(
            guard.started.ok(),
            "`{}` failed with {:?}\nstderr:\n{}\nlog:\n{}",
            guard.started.what,
            guard.started.code,
            guard.started.stderr,
            guard.log_text()
        );
        assert!(
            is_mounted(mountpoint),
            "`rewind mount` returned but {} is not in /proc/mounts",
            mountpoint.display()
        );
        let pids = daemons_of(mountpoint);
        assert_eq!(
            pids.len(),
            1,
            "expected one daemon serving {}, found {pids:?}",
            mountpoint.display()
        );
        guard.pid = pids[0];
        guard
    }

    /// For a daemon that is gone: from now on only its leftover mount is
    /// looked after, by the returned guard, which detaches whatever is still
    /// mounted at the mountpoint when it is dropped.
    pub fn disarm(mut self) -> Unmount {
        assert!(!alive(self.pid), "disarm only a daemon that is gone");
        self.armed = false;
        Unmount(self.mountpoint.clone())
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mountpoint.join(rel)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `.rewind/status`, read with `cat` and parsed.
    #[track_caller]
    pub fn status(&self) -> serde_json::Value {
        run(Command::new("cat").arg(self.path(".rewind/status")))
            .assert_ok()
            .json()
    }

    /// The names at the top of the mount, read with `ls -A`.
    pub fn top_names(&self) -> Vec<String> {
        let out = run(Command::new("ls").arg("-A").arg(&self.mountpoint));
        out.text().lines().map(str::to_string).collect()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        unmount_all(&self.mountpoint);
        if self.pid != 0
            && wait_for(Duration::from_secs(5), || !alive(self.pid)).is_none()
            && daemons_of(&self.mountpoint).contains(&self.pid)
        {
            eprintln!(
                "daemon {} outlived the unmount of {}: killing it",
                self.pid,
                self.mountpoint.display()
            );
            kill(self.pid, libc::SIGKILL);
        }
    }
}
