//! Helpers for the mount tests: running the real `rewind` binary and the
//! ordinary tools (diff, cp, rsync, tar, find, stat, getfattr, sha256sum)
//! the way a user would, a guard that always unmounts, and listings of a
//! tree that two trees can be compared by.

#![allow(dead_code)]

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "mount tests are real";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rewind")
}

// ------------------------------------------------------------ running things

/// What a command did.
pub struct Out {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Out {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    #[track_caller]
    pub fn assert_ok(self) -> Out {
        assert!(
            self.ok(),
            "`{}` failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.code,
            self.text(),
            self.stderr
        );
        self
    }

    /// A failure whose stderr says `why` (e.g. "Read-only file system").
    #[track_caller]
    pub fn assert_fails_with(self, why: &str) -> Out {
        assert!(
            !self.ok() && self.stderr.contains(why),
            "`{}` should fail with {why:?}; exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.code,
            self.text(),
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` did not print JSON ({e}):\n{}\nstderr:\n{}",
                self.what,
                self.text(),
                self.stderr
            )
        })
    }
}

/// Runs a command to its end, capturing both outputs; stdin is /dev/null.
pub fn run(cmd: &mut Command) -> Out {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    Out {
        what,
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

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

/// Polls `check` every 50 ms until it holds or `timeout` passes; returns
/// how long it took.
pub fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// Is something mounted exactly at `mountpoint` (per /proc/self/mounts)?
pub fn is_mounted(mountpoint: &Path) -> bool {
    mounts_at(mountpoint) > 0
}

/// How many mounts /proc/self/mounts lists at `mountpoint` (stacked mounts
/// count each).
pub fn mounts_at(mountpoint: &Path) -> usize {
    let mounts = std::fs::read("/proc/self/mounts").unwrap();
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

pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill has no memory effects; pid is a daemon this test started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
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
    pub started: Out,
}

impl Mount {
    /// `rewind mount MOUNTPOINT --log-file LOG EXTRA...`, which must succeed
    /// and leave exactly one daemon behind.
    #[track_caller]
    pub fn start(repo: &Repo, mountpoint: &Path, extra: &[&str]) -> Mount {
        // A stale mount answers ENOTCONN: leave it for `rewind mount`.
        if let Err(e) = std::fs::symlink_metadata(mountpoint) {
            if e.kind() == std::io::ErrorKind::NotFound {
                std::fs::create_dir_all(mountpoint).unwrap();
            }
        }
        let log = mountpoint.with_extension("log");
        let started = run(repo
            .cmd()
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

/// Detaches (`umount -l`) every mount left at a path when dropped.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        for _ in 0..4 {
            if !is_mounted(&self.0) {
                break;
            }
            let _ = run(Command::new("umount").arg("-l").arg(&self.0));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for _ in 0..4 {
            if !is_mounted(&self.mountpoint) {
                break;
            }
            let _ = run(Command::new("umount").arg("-l").arg(&self.mountpoint));
        }
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

// -------------------------------------------------------- building trees

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

#[track_caller]
fn check(rc: libc::c_int, what: &str, path: &Path) {
    assert_eq!(
        rc,
        0,
        "{what} {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Writes `data` at `offset` without truncating (keeps the inode and holes).
pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(data, offset).unwrap();
}

pub fn mkdirs(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
}

pub fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

/// A hard link that does not follow a symlink at `from`.
pub fn hard_link(from: &Path, to: &Path) {
    let (a, b) = (cpath(from), cpath(to));
    // SAFETY: valid NUL-terminated paths.
    let rc = unsafe { libc::linkat(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), 0) };
    check(rc, "link", to);
}

pub fn chmod(path: &Path, mode: u32) {
    let c = cpath(path);
    // SAFETY: valid NUL-terminated path.
    check(
        unsafe { libc::chmod(c.as_ptr(), mode as libc::mode_t) },
        "chmod",
        path,
    );
}

pub fn lchown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("lchown {}: {e}", path.display()));
}

/// Sets atime and mtime (seconds, nanoseconds) of `path` itself, not of a
/// symlink's target.
pub fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let ts = |(sec, nsec): (i64, i64)| libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    let times = [ts(atime), ts(mtime)];
    let c = cpath(path);
    // SAFETY: a valid path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(rc, "utimensat", path);
}

/// Every path under `root` (not `root` itself), parents before children.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

/// Deterministic pseudo-random numbers and bytes (SplitMix64, BLAKE3 XOF).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new_keyed(blake3::hash(&self.next_u64().to_le_bytes()).as_bytes())
            .finalize_xof()
            .fill(&mut out);
        out
    }

    /// Compressible lines of text.
    pub fn text(&mut self, lines: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..lines {
            out.extend_from_slice(
                format!("line {i}: value {} status ok\n", self.below(1000)).as_bytes(),
            );
        }
        out
    }

    /// Random times with nanoseconds for every entry under `root` and
    /// `root` itself, children first so that directory times stick.
    pub fn set_all_times(&mut self, root: &Path) {
        let mut all = walk(root);
        all.push(root.to_path_buf());
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for path in all {
            let mut t = || {
                (
                    1_000_000_000 + self.below(700_000_000) as i64,
                    self.below(1_000_000_000) as i64,
                )
            };
            let (a, m) = (t(), t());
            set_times(&path, a, m);
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
