//! Mounts and the processes behind them: what /proc/self/mounts lists,
//! guards that always unmount, and checking on or signalling a daemon.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::command::run;
use super::files::mkdirs;

/// Is something mounted exactly at `mountpoint` (per /proc/self/mounts)?
pub fn is_mounted(mountpoint: &Path) -> bool {
    mounts_at(mountpoint) > 0
}

/// How many mounts the mount table lists at `mountpoint` (stacked mounts
/// count each), as the calling thread sees them: tests/fstab.rs mounts in
/// a thread with a mount namespace of its own.
pub fn mounts_at(mountpoint: &Path) -> usize {
    let mounts = std::fs::read("/proc/thread-self/mounts").unwrap();
    mounts
        .split(|b| *b == b'\n')
        .filter(|line| {
            line.split(|b| *b == b' ').nth(1).is_some_and(|field| {
                unescape_mount_field(field) == mountpoint.as_os_str().as_bytes()
            })
        })
        .count()
}

/// /proc/mounts writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_field(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if field[i] == b'\\' => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// Detaches (`umount -l`) every mount stacked at `mountpoint`.
pub fn unmount_all(mountpoint: &Path) {
    for _ in 0..4 {
        if !is_mounted(mountpoint) {
            break;
        }
        let _ = run(Command::new("umount").arg("-l").arg(mountpoint));
    }
}

/// Detaches (`umount -l`) every mount left at a path when dropped.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        unmount_all(&self.0);
    }
}

/// Is `pid` a live process (not gone, not a zombie waiting to be reaped)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // "pid (comm) S ...": the state follows the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill has no memory effects; pid is a process this test started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

/// Unmounts on drop, so a failing test does not leave a mount behind.
pub struct Mount(pub PathBuf);

impl Mount {
    pub fn tmpfs(dir: &Path, size: &str) -> Mount {
        mkdirs(dir);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs on {}", dir.display());
        Mount(dir.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
