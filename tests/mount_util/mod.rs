//! Helpers for the mount tests: running the real `rewind` binary and the
//! ordinary tools (diff, cp, rsync, tar, find, stat, getfattr, sha256sum)
//! the way a user would, a guard that always unmounts, and listings of a
//! tree that two trees can be compared by.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

// The shared helpers, included here rather than from the crate root because
// tests/postgres.rs uses this module without declaring `mod common;`. A
// crate that declares both (tests/restore_tools.rs) compiles it twice, which
// is harmless.
#[allow(clippy::duplicate_mod)]
#[path = "../common/mod.rs"]
mod common;

// What the mount tests (and tests/postgres.rs) use from it; not every
// test crate that includes this module uses all of it.
#[allow(unused_imports)]
pub use self::common::{
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

// ------------------------------------------------------------------- mounts

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

// --------------------------------------------- what the ordinary tools see

/// Lines of one listing of a tree, sorted, for comparing two trees.
pub type Listing = Vec<String>;

fn sorted(mut lines: Vec<String>) -> Listing {
    lines.sort();
    lines
}

/// Splits NUL-terminated records.
fn records(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|r| !r.is_empty())
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect()
}

/// `find . -ls` run inside `root`, without the inode number and block count
/// columns; for directories also without the link count and size, which
/// describe the filesystem, not the backed-up data.
#[track_caller]
pub fn find_ls(root: &Path) -> Listing {
    let out = run(Command::new("find").arg(".").arg("-ls").current_dir(root)).assert_ok();
    sorted(
        out.text()
            .lines()
            .map(|line| {
                let mut fields: Vec<&str> = line.split_whitespace().collect();
                assert!(fields.len() > 7, "unexpected find -ls line {line:?}");
                if fields[2].starts_with('d') {
                    fields[3] = "-";
                    fields[6] = "-";
                }
                fields[2..].join(" ")
            })
            .collect(),
    )
}

/// `stat` of every entry under `root` (names relative to it): type, mode,
/// owner, size, link count, device numbers and mtime with nanoseconds. Size
/// and link count of directories are left out (see [`find_ls`]).
#[track_caller]
pub fn stat_listing(root: &Path) -> Listing {
    let out = run(Command::new("find")
        .args([".", "-exec", "stat", "--printf"])
        .arg("%n|%F|%a|%u:%g|%s|%h|%t:%T|%y\\0")
        .args(["{}", "+"])
        .current_dir(root))
    .assert_ok();
    sorted(
        records(&out.stdout)
            .into_iter()
            .map(|record| {
                let mut fields: Vec<&str> = record.split('|').collect();
                let n = fields.len();
                // The name may contain '|': count fields from the end.
                if fields[n - 7] == "directory" {
                    fields[n - 4] = "-";
                    fields[n - 3] = "-";
                }
                fields.join("|")
            })
            .collect(),
    )
}

/// `getfattr -R -P -h -d -m - -e hex .` in `root`: every extended attribute
/// of every entry, one sorted block per entry.
#[track_caller]
pub fn xattr_listing(root: &Path) -> Listing {
    let out = run(Command::new("getfattr")
        .args(["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "."])
        .current_dir(root))
    .assert_ok();
    sorted(
        out.text()
            .split("\n\n")
            .map(str::trim)
            .filter(|block| !block.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// `sha256sum` of every regular file under `root`.
#[track_caller]
pub fn sha256_listing(root: &Path) -> Listing {
    let out = run(Command::new("find")
        .args([".", "-type", "f", "-exec", "sha256sum", "--", "{}", "+"])
        .current_dir(root))
    .assert_ok();
    sorted(out.text().lines().map(str::to_string).collect())
}

/// `diff -r --no-dereference A B`: the lines that say the trees differ.
/// For two special files of one type GNU diff compares no content, only
/// whether they look like the same file (ctime included), so it reports
/// every pair of copied fifos, sockets and device nodes: those lines do not
/// count (`stat_listing` compares their type, mode, owner and numbers).
pub fn diff_r(a: &Path, b: &Path) -> Vec<String> {
    let out = run(Command::new("diff")
        .args(["-r", "--no-dereference", "--"])
        .arg(a)
        .arg(b));
    let special_pair = |line: &str| {
        line.starts_with("File ")
            && [
                "fifo",
                "socket",
                "character special file",
                "block special file",
            ]
            .iter()
            .any(|kind| {
                line.ends_with(&format!(" is a {kind}"))
                    && line.contains(&format!(" is a {kind} while file "))
            })
    };
    let mut problems: Vec<String> = out
        .text()
        .lines()
        .filter(|line| !special_pair(line))
        .map(str::to_string)
        .collect();
    if !matches!(out.code, Some(0) | Some(1)) {
        problems.push(format!("diff exited with {:?}: {}", out.code, out.stderr));
    }
    problems
}

/// Fails with the lines only one side has.
#[track_caller]
pub fn assert_same(expected: &Listing, actual: &Listing, what: &str) {
    if expected == actual {
        return;
    }
    let missing: Vec<&String> = expected.iter().filter(|l| !actual.contains(l)).collect();
    let extra: Vec<&String> = actual.iter().filter(|l| !expected.contains(l)).collect();
    panic!(
        "{what}: the listings differ\nexpected but missing:\n  {}\nunexpected:\n  {}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        extra
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// `readlink PATH`.
#[track_caller]
pub fn readlink(path: &Path) -> String {
    run(Command::new("readlink").arg(path))
        .assert_ok()
        .text()
        .trim_end_matches('\n')
        .to_string()
}

/// `stat -c FORMAT PATH`.
#[track_caller]
pub fn stat(format: &str, path: &Path) -> String {
    run(Command::new("stat").arg("-c").arg(format).arg(path))
        .assert_ok()
        .text()
        .trim_end_matches('\n')
        .to_string()
}

/// A path in a mount or copy: `root` joined with the absolute `path` of the
/// source (a snapshot keeps absolute paths).
pub fn inside(root: &Path, absolute: &Path) -> PathBuf {
    root.join(absolute.strip_prefix("/").unwrap())
}

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}
