//! A `rewind mount --foreground` child whose standard error is kept, for
//! the background scrub of a mount.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{is_mounted, mkdirs, unmount_all, wait_for, Repo};

/// `rewind mount MOUNTPOINT --foreground EXTRA...` in a child process, its
/// standard error in a file (the detached daemon sends it to /dev/null,
/// where a panic message would be lost). Dropping it always unmounts
/// (`umount -l`) and ends the process.
pub struct ForegroundMount {
    pub mountpoint: PathBuf,
    pub stderr_file: PathBuf,
    child: std::process::Child,
}

impl ForegroundMount {
    /// Mounts and waits until the mount is in /proc/self/mounts. The scrub
    /// state goes under `cache_home` (`XDG_CACHE_HOME`).
    #[track_caller]
    pub fn start(
        repo: &Repo,
        mountpoint: &Path,
        cache_home: &Path,
        extra: &[&str],
    ) -> ForegroundMount {
        mkdirs(mountpoint);
        let stderr_file = mountpoint.with_extension("stderr");
        let child = repo
            .command()
            .arg("mount")
            .arg(mountpoint)
            .arg("--foreground")
            .args(extra)
            .env("XDG_CACHE_HOME", cache_home)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr_file).unwrap())
            .spawn()
            .expect("rewind mount starts");
        let mut mount = ForegroundMount {
            mountpoint: mountpoint.to_path_buf(),
            stderr_file,
            child,
        };
        let started = Instant::now();
        while !is_mounted(mountpoint) {
            if let Some(status) = mount.child.try_wait().unwrap() {
                panic!(
                    "rewind mount ended with {status} before mounting:\n{}",
                    mount.stderr()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no mount at {} after 30 s:\n{}",
                mountpoint.display(),
                mount.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        mount
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// `.rewind/status`, parsed.
    #[track_caller]
    pub fn status(&self) -> Value {
        let bytes = std::fs::read(self.mountpoint.join(".rewind/status")).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Waits for the background scrub's first complete pass (polling the
    /// status slowly: every read makes the scrub yield for a while).
    #[track_caller]
    pub fn wait_for_scrub_pass(&self, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let status = self.status();
            if !status["scrub"]["last_full_pass"].is_null() {
                eprintln!("background scrub pass done after {:.1?}", started.elapsed());
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "no complete scrub pass after {timeout:?}: {status:#}\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for ForegroundMount {
    fn drop(&mut self) {
        unmount_all(&self.mountpoint);
        if wait_for(Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten().is_some()
        })
        .is_none()
        {
            eprintln!("rewind mount outlived its unmount: killing it");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
