//! Helpers shared by the integration tests: running the real binary, seeded
//! randomness, generating trees with every kind of entry, comparing trees
//! entry by entry (lstat, xattrs, link targets, content), and crafting
//! repository objects with the library.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rewind::backend::LocalBackend;
use rewind::repo::{BlobKind, Encryption, Id, PackSaver, Repository, Snapshot, Summary};
use rewind::tree::{Node, NodeKind, Timestamp, Tree};

pub const PASSWORD: &str = "correct horse battery staple";

// ---------------------------------------------------------------- randomness

/// Seed for a test: `REWIND_TEST_SEED` if set, else a fixed value derived
/// from the test's name. Printed, so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("REWIND_TEST_SEED") {
        Ok(s) => s.parse().expect("REWIND_TEST_SEED must be a u64"),
        Err(_) => u64::from_le_bytes(
            blake3::hash(test.as_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap(),
        ),
    };
    eprintln!("{test}: seed {seed} (set REWIND_TEST_SEED={seed} to replay)");
    seed
}

/// SplitMix64 for decisions, BLAKE3 in XOF mode for bulk bytes (fast even in
/// an unoptimized test build).
pub struct Rng {
    state: u64,
    streams: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            streams: 0,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    /// `len` incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        self.streams += 1;
        key[8..16].copy_from_slice(&self.streams.to_le_bytes());
        let mut out = vec![0u8; len];
        blake3::Hasher::new_keyed(&key)
            .finalize_xof()
            .fill(&mut out);
        out
    }

    /// About `len` bytes of log-like text that compresses well.
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "INFO",
            "WARN",
            "request",
            "served",
            "user",
            "GET",
            "/index.html",
            "200",
            "404",
            "latency",
            "ms",
            "backend",
            "cache",
            "miss",
            "hit",
            "session",
            "closed",
        ];
        let mut out = Vec::with_capacity(len + 100);
        let mut line = 0u64;
        while out.len() < len {
            line += 1;
            out.extend_from_slice(
                format!("2024-06-01T02:{:02}:{:02}Z ", line / 60 % 60, line % 60).as_bytes(),
            );
            for _ in 0..self.range(4, 12) {
                out.extend_from_slice(WORDS[self.below(WORDS.len() as u64) as usize].as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(format!("id={}\n", self.below(100_000)).as_bytes());
        }
        out.truncate(len);
        out
    }

    /// `lines` compressible lines of text.
    pub fn lines(&mut self, lines: usize) -> Vec<u8> {
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
        let mut all = all_paths(root);
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

// ------------------------------------------------------------ running rewind

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rewind")
}

/// Runs a command to its end, capturing both outputs; stdin is /dev/null.
pub fn run(cmd: &mut Command) -> Run {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    Run::of(what, out)
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

/// The result of one run of a command (the binary or an ordinary tool).
pub struct Run {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    fn of(what: String, out: std::process::Output) -> Run {
        Run {
            what,
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stdout_text(&self) -> String {
        self.text()
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Fails the test, showing the run, unless `holds`.
    #[track_caller]
    fn assert_that(self, holds: bool, expected: &str) -> Run {
        assert!(
            holds,
            "`{}` {expected}; exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.code,
            self.text(),
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_ok(self) -> Run {
        let holds = self.ok();
        self.assert_that(holds, "failed")
    }

    /// A failure whose stderr says `why` (e.g. "Read-only file system").
    #[track_caller]
    pub fn assert_fails_with(self, why: &str) -> Run {
        let holds = !self.ok() && self.stderr.contains(why);
        self.assert_that(holds, &format!("should fail with {why:?}"))
    }

    #[track_caller]
    pub fn assert_code(self, code: i32) -> Run {
        let holds = self.code == Some(code);
        self.assert_that(holds, &format!("should exit with code {code}"))
    }

    #[track_caller]
    pub fn assert_failed(self) -> Run {
        let holds = matches!(self.code, Some(c) if c != 0);
        self.assert_that(holds, "should fail with a non-zero exit code")
    }

    /// A failure explained in exactly one line of stderr, which contains
    /// every one of `needles` (case-insensitive).
    #[track_caller]
    pub fn assert_one_line_error(self, needles: &[&str]) -> Run {
        let run = self.assert_failed();
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "`{}` should explain itself in one line of stderr, got:\n{}",
            run.what,
            run.stderr
        );
        let line = lines[0].to_lowercase();
        for needle in needles {
            assert!(
                line.contains(&needle.to_lowercase()),
                "`{}`: stderr should mention {needle:?}:\n{}",
                run.what,
                run.stderr
            );
        }
        run
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` did not print JSON ({e}):\n{}\nstderr:\n{}",
                self.what,
                self.stdout_text(),
                self.stderr
            )
        })
    }
}

/// A repository driven through the real binary.
pub struct Repo {
    pub path: PathBuf,
    pub password: Option<String>,
    /// Run the binary as this uid/gid (with `setpriv`), not as ourselves.
    pub run_as: Option<u32>,
}

impl Repo {
    /// A handle on a repository at `path` that may not exist yet.
    pub fn at(path: &Path, encryption: Encryption) -> Repo {
        Repo {
            path: path.to_path_buf(),
            password: (encryption == Encryption::Aes256Gcm).then(|| PASSWORD.to_string()),
            run_as: None,
        }
    }

    /// Creates a repository at `path` with `rewind init`.
    pub fn init(path: &Path, encryption: Encryption) -> Repo {
        let repo = Repo::at(path, encryption);
        let flag = match encryption {
            Encryption::Aes256Gcm => "aes-256-gcm",
            Encryption::None => "none",
        };
        repo.run(["init", "--encryption", flag]).assert_ok();
        repo
    }

    pub fn command(&self) -> Command {
        let mut cmd = match self.run_as {
            Some(id) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={id}"))
                    .arg(format!("--regid={id}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.env_remove("REWIND_PASSWORD")
            .env_remove("REWIND_REPO")
            .env("REWIND_REPO", &self.path)
            .stdin(Stdio::null());
        if let Some(p) = &self.password {
            cmd.env("REWIND_PASSWORD", p);
        }
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin<I, S>(&self, args: I, stdin: Option<&[u8]>) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let what = format!(
            "rewind {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut cmd = self.command();
        cmd.args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("the rewind binary runs");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            let input = input.to_vec();
            // A writer thread, so a large input cannot deadlock against output.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        Run::of(what, child.wait_with_output().unwrap())
    }

    /// `rewind backup --json ARGS...`, which must succeed; the snapshot as JSON.
    #[track_caller]
    pub fn backup<I, S>(&self, args: I) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<OsString> = vec!["backup".into(), "--json".into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        let run = self.run(&all).assert_ok();
        run.json()
    }

    #[track_caller]
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        let run = self.run(["snapshots", "--json"]).assert_ok();
        run.json().as_array().expect("a JSON list").clone()
    }

    /// `rewind ls --json SPEC`: path → entry.
    #[track_caller]
    pub fn ls(&self, spec: &str) -> BTreeMap<String, serde_json::Value> {
        let run = self.run(["ls", "--json", spec]).assert_ok();
        run.json()
            .as_array()
            .expect("a JSON list")
            .iter()
            .map(|e| (e["path"].as_str().unwrap().to_string(), e.clone()))
            .collect()
    }

    /// `rewind restore SPEC --target TARGET EXTRA...` (not checked).
    pub fn restore(&self, spec: &str, target: &Path, extra: &[&str]) -> Run {
        let mut args: Vec<OsString> = vec!["restore".into(), spec.into(), "--target".into()];
        args.push(target.as_os_str().to_owned());
        args.extend(extra.iter().map(OsString::from));
        self.run(args)
    }

    /// The repository through the library, index loaded.
    pub fn open(&self) -> Arc<Repository> {
        let password = self.password.clone().unwrap_or_default();
        let repo = Repository::open(Arc::new(LocalBackend::new(&self.path)), || {
            Ok(password.into_bytes())
        })
        .expect("the repository opens");
        let (repo, errors) = repo.load_index().unwrap();
        assert!(errors.is_empty(), "damaged index files: {errors:?}");
        Arc::new(repo)
    }
}

/// A path as a command-line argument (non-UTF-8 safe).
pub fn arg(path: &Path) -> &OsStr {
    path.as_os_str()
}

/// `SNAP:PATH` for an absolute path on this machine.
pub fn spec(snap: &str, path: &Path) -> String {
    format!("{snap}:{}", path.to_str().expect("test paths are UTF-8"))
}

/// Where an absolute source path lands in a restore of a whole snapshot.
pub fn under(target: &Path, absolute: &Path) -> PathBuf {
    target.join(absolute.strip_prefix("/").unwrap())
}

/// A directory with these files in it.
pub fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) {
    mkdirs(root);
    for (name, data) in files {
        write(&root.join(name), data);
    }
}

/// A temporary directory with a canonical path (snapshot paths are compared).
pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

// ------------------------------------------------------------- system calls

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

#[track_caller]
fn check_rc(rc: libc::c_int, what: &str, path: &Path) {
    assert_eq!(
        rc,
        0,
        "{what} {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

pub fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let ts = |(sec, nsec): (i64, i64)| libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    let times = [ts(atime), ts(mtime)];
    let c = cpath(path);
    // SAFETY: valid path, two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check_rc(rc, "utimensat", path);
}

pub fn lchown(path: &Path, uid: u32, gid: u32) {
    let c = cpath(path);
    // SAFETY: valid path.
    check_rc(
        unsafe { libc::lchown(c.as_ptr(), uid, gid) },
        "lchown",
        path,
    );
}

pub fn chmod(path: &Path, mode: u32) {
    let c = cpath(path);
    // SAFETY: valid path.
    check_rc(
        unsafe { libc::chmod(c.as_ptr(), mode as libc::mode_t) },
        "chmod",
        path,
    );
}

pub fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    let c = cpath(path);
    // SAFETY: valid path.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o640, libc::makedev(major, minor)) };
    check_rc(rc, "mknod", path);
}

pub fn mkfifo(path: &Path) {
    let c = cpath(path);
    // SAFETY: valid path.
    check_rc(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, "mkfifo", path);
}

/// A hard link that does not follow a symlink at `from`.
pub fn hard_link(from: &Path, to: &Path) {
    let (a, b) = (cpath(from), cpath(to));
    // SAFETY: valid paths.
    let rc = unsafe { libc::linkat(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), 0) };
    check_rc(rc, "link", to);
}

/// Writes a file, making its parent directories first.
pub fn write(path: &Path, data: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Writes `data` at `offset` without truncating (keeps the inode and holes).
pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(data, offset).unwrap();
}

pub fn mkdirs(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
}

pub fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

/// The names in a directory, read without updating its access time.
pub fn list_dir(path: &Path) -> Vec<Vec<u8>> {
    let c = cpath(path);
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut names = Vec::new();
    // SAFETY: valid path; the DIR stream is used and closed here only.
    unsafe {
        let mut fd = libc::open(c.as_ptr(), flags | libc::O_NOATIME);
        if fd < 0 {
            fd = libc::open(c.as_ptr(), flags);
        }
        assert!(
            fd >= 0,
            "open {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        let dir = libc::fdopendir(fd);
        assert!(!dir.is_null());
        loop {
            let entry = libc::readdir(dir);
            if entry.is_null() {
                break;
            }
            let name = CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        libc::closedir(dir);
    }
    names.sort();
    names
}

/// A file's content, read without updating its access time.
pub fn read_noatime(path: &Path) -> Vec<u8> {
    let open = |flags| {
        OpenOptions::new()
            .read(true)
            .custom_flags(flags | libc::O_NOFOLLOW)
            .open(path)
    };
    let mut file = open(libc::O_NOATIME)
        .or_else(|_| open(0))
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut data = Vec::new();
    file.read_to_end(&mut data).unwrap();
    data
}

fn xattrs_of(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut attrs: Vec<_> = match xattr::list(path) {
        Ok(names) => names
            .map(|n| {
                let value = xattr::get(path, &n).ok().flatten().unwrap_or_default();
                (n.as_bytes().to_vec(), value)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    attrs.sort();
    attrs
}

pub fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

pub fn show(rel: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(rel).escape_debug())
}

// --------------------------------------------------------------- manifests

/// Everything about one entry that a restore must reproduce (and, apart
/// from `ino` and `blocks`, is compared).
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// `st_mode`: file type and every permission bit.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// None for directories, whose size depends on the filesystem.
    pub size: Option<u64>,
    pub nlink: u64,
    pub rdev: u64,
    pub mtime: (i64, i64),
    pub atime: (i64, i64),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub link: Option<Vec<u8>>,
    /// BLAKE3 of a regular file's content.
    pub content: Option<[u8; 32]>,
    pub ino: u64,
    pub blocks: u64,
}

impl Meta {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// Every entry under a root, by path relative to it (the root is "").
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub entries: BTreeMap<Vec<u8>, Meta>,
}

impl Manifest {
    /// Walks `root` in pre-order, taking each entry's lstat before anything
    /// reads it, and reading without updating access times where it can.
    pub fn of(root: &Path) -> Manifest {
        let mut m = Manifest::default();
        m.walk(root, Vec::new(), true);
        m
    }

    /// Like [`Manifest::of`] without reading file contents (`content` is None).
    pub fn of_metadata(root: &Path) -> Manifest {
        let mut m = Manifest::default();
        m.walk(root, Vec::new(), false);
        m
    }

    fn walk(&mut self, root: &Path, rel: Vec<u8>, contents: bool) {
        let path = join(root, &rel);
        let st = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let kind = st.mode() & libc::S_IFMT;
        let is_dir = kind == libc::S_IFDIR;
        let link = (kind == libc::S_IFLNK).then(|| {
            std::fs::read_link(&path)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        });
        let content = (contents && kind == libc::S_IFREG)
            .then(|| *blake3::hash(&read_noatime(&path)).as_bytes());
        let meta = Meta {
            mode: st.mode(),
            uid: st.uid(),
            gid: st.gid(),
            size: (!is_dir).then(|| st.size()),
            nlink: st.nlink(),
            rdev: if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
                st.rdev()
            } else {
                0
            },
            mtime: (st.mtime(), st.mtime_nsec()),
            atime: (st.atime(), st.atime_nsec()),
            xattrs: xattrs_of(&path),
            link,
            content,
            ino: st.ino(),
            blocks: st.blocks(),
        };
        // Reading a symlink moves its access time; a later link to the same
        // inode must show the time from before that, as a backup records it.
        let mut meta = meta;
        if !is_dir && meta.nlink > 1 {
            if let Some(first) = self.entries.values().find(|m| m.ino == meta.ino) {
                meta.atime = first.atime;
            }
        }
        self.entries.insert(rel.clone(), meta);
        if is_dir {
            for name in list_dir(&path) {
                let mut child = rel.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(&name);
                self.walk(root, child, contents);
            }
        }
    }

    /// The entries under `rel` (a directory), re-rooted there.
    pub fn subtree(&self, rel: &[u8]) -> Manifest {
        let mut prefix = rel.to_vec();
        prefix.push(b'/');
        let mut out = Manifest::default();
        for (path, meta) in &self.entries {
            if path == rel {
                out.entries.insert(Vec::new(), meta.clone());
            } else if let Some(rest) = path.strip_prefix(prefix.as_slice()) {
                out.entries.insert(rest.to_vec(), meta.clone());
            }
        }
        out
    }

    /// The same manifest with every access time zeroed, for tests where
    /// reading the tree between backups moves them and that is not the point.
    pub fn without_atimes(&self) -> Manifest {
        let mut out = self.clone();
        for meta in out.entries.values_mut() {
            meta.atime = (0, 0);
        }
        out
    }

    pub fn without(&self, rel: &[u8]) -> Manifest {
        let mut out = self.clone();
        out.entries.remove(rel);
        out
    }

    /// Sets every entry's times back to the recorded ones, deepest first,
    /// undoing the access-time updates of reading symlinks and directories.
    pub fn reset_times(&self, root: &Path) {
        for (rel, meta) in self.entries.iter().rev() {
            set_times(&join(root, rel), meta.atime, meta.mtime);
        }
    }

    /// Differences from `self` (expected) to `actual`; empty if they match.
    ///
    /// A non-directory's link count must be the number of its links inside
    /// the tree, and entries linked together (same inode) must be linked
    /// together in `actual` too, and only those.
    pub fn diff(&self, actual: &Manifest) -> Vec<String> {
        let mut out = Vec::new();
        for rel in self.entries.keys() {
            if !actual.entries.contains_key(rel) {
                out.push(format!("{}: missing", show(rel)));
            }
        }
        for rel in actual.entries.keys() {
            if !self.entries.contains_key(rel) {
                out.push(format!("{}: unexpected", show(rel)));
            }
        }
        let mut groups: HashMap<u64, Vec<&Vec<u8>>> = HashMap::new();
        for (rel, meta) in &self.entries {
            if !meta.is_dir() {
                groups.entry(meta.ino).or_default().push(rel);
            }
        }
        let mut actual_inodes: HashMap<u64, u64> = HashMap::new(); // actual ino -> expected ino
        for (rel, want) in &self.entries {
            let Some(got) = actual.entries.get(rel) else {
                continue;
            };
            let p = show(rel);
            let mut field = |name: &str, w: String, g: String| {
                if w != g {
                    out.push(format!("{p}: {name} expected {w}, got {g}"));
                }
            };
            field(
                "mode",
                format!("{:o}", want.mode),
                format!("{:o}", got.mode),
            );
            field("uid", want.uid.to_string(), got.uid.to_string());
            field("gid", want.gid.to_string(), got.gid.to_string());
            field(
                "size",
                format!("{:?}", want.size),
                format!("{:?}", got.size),
            );
            field("rdev", want.rdev.to_string(), got.rdev.to_string());
            field(
                "mtime",
                format!("{:?}", want.mtime),
                format!("{:?}", got.mtime),
            );
            field(
                "atime",
                format!("{:?}", want.atime),
                format!("{:?}", got.atime),
            );
            field(
                "xattrs",
                format!("{:?}", want.xattrs),
                format!("{:?}", got.xattrs),
            );
            field(
                "link target",
                format!(
                    "{:?}",
                    want.link.as_ref().map(|l| String::from_utf8_lossy(l))
                ),
                format!(
                    "{:?}",
                    got.link.as_ref().map(|l| String::from_utf8_lossy(l))
                ),
            );
            field(
                "content",
                format!("{:?}", want.content.map(hex::encode)),
                format!("{:?}", got.content.map(hex::encode)),
            );
            let want_links = if want.is_dir() {
                want.nlink
            } else {
                groups[&want.ino].len() as u64
            };
            field("nlink", want_links.to_string(), got.nlink.to_string());
            if !want.is_dir() {
                match actual_inodes.insert(got.ino, want.ino) {
                    Some(other) if other != want.ino => {
                        out.push(format!("{p}: hard-linked to an entry it was not linked to"))
                    }
                    _ => {}
                }
            }
        }
        for members in groups.values() {
            let inodes: Vec<Option<u64>> = members
                .iter()
                .map(|rel| actual.entries.get(*rel).map(|m| m.ino))
                .collect();
            if inodes.windows(2).any(|w| w[0] != w[1]) {
                out.push(format!(
                    "{}: these hard links were restored as separate files",
                    members
                        .iter()
                        .map(|r| show(r))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        out
    }

    #[track_caller]
    pub fn assert_same(&self, actual: &Manifest, context: &str) {
        let diff = self.diff(actual);
        assert!(
            diff.is_empty(),
            "{context}: {} differences:\n{}",
            diff.len(),
            diff.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

// ---------------------------------------------------------- tree generation

/// Names of interesting entries in a generated tree (relative paths).
pub struct FullTree {
    pub random_file: &'static str,
    pub sparse_file: &'static str,
    pub hole_only_file: &'static str,
    pub hard_links: [&'static str; 3],
    pub subdir: &'static str,
}

/// Fills `root` (which must exist) with every kind of entry rewind must keep:
/// files (empty, small, random MiBs, compressible text, sparse), nested and
/// empty directories, symlinks (relative, absolute, dangling, hard-linked),
/// hard links, a fifo, a socket, device nodes, odd names, setuid/setgid/
/// sticky modes, foreign owners, xattrs, and times with nanoseconds.
/// Returns names of some of them. Call [`freeze`] before backing it up.
pub fn build_full_tree(root: &Path, rng: &mut Rng) -> FullTree {
    let p = |rel: &str| root.join(rel);
    write(&p("empty"), b"");
    write(&p("small.txt"), b"hello, world\n");
    write(&p("random.bin"), &rng.bytes(5 * 1024 * 1024 + 12345));
    write(&p("text.log"), &rng.text(3 * 1024 * 1024));
    write(&p("name with  spaces "), b"spaces\n");
    write(&p("new\nline"), b"a newline in the name\n");
    write(
        &root.join(OsStr::from_bytes(b"latin1-\xe9t\xe9-\xff")),
        b"not UTF-8\n",
    );
    mkdirs(&p("dir/sub/deeper"));
    mkdirs(&p("dir/sub/empty-dir"));
    write(&p("dir/sub/deeper/file.txt"), b"deep\n");
    write(&p("dir/sub/medium.bin"), &rng.bytes(300_000));
    for i in 0..20 {
        write(
            &p(&format!("dir/many-{i:02}.txt")),
            format!("file {i}\n").repeat(i + 1).as_bytes(),
        );
    }

    mkdirs(&p("links"));
    std::os::unix::fs::symlink("../small.txt", p("links/relative")).unwrap();
    std::os::unix::fs::symlink(p("small.txt"), p("links/absolute")).unwrap();
    std::os::unix::fs::symlink("no/such/target", p("links/dangling")).unwrap();
    std::os::unix::fs::symlink("../dir", p("links/to-dir")).unwrap();

    // Three links to one file, one of them in another directory; and a
    // hard-linked symlink and fifo.
    mkdirs(&p("hard"));
    write(&p("hard/a"), &rng.bytes(100_000));
    hard_link(&p("hard/a"), &p("hard/b"));
    hard_link(&p("hard/a"), &p("dir/hard-c"));
    std::os::unix::fs::symlink("a", p("hard/sym1")).unwrap();
    hard_link(&p("hard/sym1"), &p("hard/sym2"));
    mkfifo(&p("hard/fifo1"));
    hard_link(&p("hard/fifo1"), &p("hard/fifo2"));

    mkdirs(&p("special"));
    mkfifo(&p("special/fifo"));
    mknod(&p("special/null"), libc::S_IFCHR, 1, 3);
    mknod(&p("special/loop"), libc::S_IFBLK, 7, 200);
    drop(std::os::unix::net::UnixListener::bind(p("special/socket")).unwrap());

    // Sparse: data at 0 and at 40 MiB, a hole after that to 64 MiB; and a
    // file that is one hole.
    mkdirs(&p("sparse"));
    {
        let f = File::create(p("sparse/holes.img")).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&rng.bytes(1 << 20), 0).unwrap();
        f.write_all_at(&rng.bytes(1 << 20), 40 << 20).unwrap();
        f.set_len(64 << 20).unwrap();
    }
    File::create(p("sparse/hole-only"))
        .unwrap()
        .set_len(16 << 20)
        .unwrap();

    mkdirs(&p("perms/sticky"));
    mkdirs(&p("perms/setgid-dir"));
    mkdirs(&p("perms/read-only-dir"));
    write(&p("perms/read-only-dir/inside"), b"x\n");
    for (name, mode) in [
        ("setuid", 0o4755),
        ("setgid", 0o2711),
        ("private", 0o600),
        ("read-only", 0o444),
        ("no-permissions", 0o000),
        ("all", 0o7777),
    ] {
        write(&p(&format!("perms/{name}")), name.as_bytes());
        chmod(&p(&format!("perms/{name}")), mode);
    }
    chmod(&p("perms/sticky"), 0o1777);
    chmod(&p("perms/setgid-dir"), 0o2750);
    chmod(&p("perms/read-only-dir"), 0o555);

    mkdirs(&p("owners/dir"));
    write(&p("owners/unknown-user"), b"owned by nobody we know\n");
    lchown(&p("owners/unknown-user"), 1234, 5678);
    write(&p("owners/nobody"), b"nobody\n");
    lchown(&p("owners/nobody"), 65534, 65534);
    lchown(&p("owners/dir"), 4321, 4321);
    chmod(&p("owners/dir"), 0o750);
    std::os::unix::fs::symlink("nobody", p("owners/link")).unwrap();
    lchown(&p("owners/link"), 1234, 1234);
    write(
        &p("owners/setuid-other"),
        b"setuid, owned by someone else\n",
    );
    lchown(&p("owners/setuid-other"), 1234, 5678);
    chmod(&p("owners/setuid-other"), 0o6755);

    mkdirs(&p("xattrs/dir"));
    write(&p("xattrs/file"), b"with attributes\n");
    for target in ["xattrs/file", "xattrs/dir"] {
        xattr::set(p(target), "user.comment", b"hello").unwrap();
        xattr::set(p(target), "user.binary", b"\x00\xff\x10\n").unwrap();
        xattr::set(p(target), "user.empty", b"").unwrap();
        xattr::set(p(target), "trusted.rewind-test", b"root only").unwrap();
    }
    xattr::set(p("random.bin"), "user.big", &rng.bytes(2000)).unwrap();

    // Times: every entry gets random times with nanoseconds; one is before 1970.
    let mut all = all_paths(root);
    all.sort();
    for path in all.iter().rev() {
        let mut t = || {
            (
                rng.range(1, 2_000_000_000) as i64,
                rng.below(1_000_000_000) as i64,
            )
        };
        let (a, m) = (t(), t());
        set_times(path, a, m);
    }
    set_times(
        &p("small.txt"),
        (-86_400 * 365, 5),
        (-1_000_000, 999_999_999),
    );

    FullTree {
        random_file: "random.bin",
        sparse_file: "sparse/holes.img",
        hole_only_file: "sparse/hole-only",
        hard_links: ["hard/a", "hard/b", "dir/hard-c"],
        subdir: "dir",
    }
}

/// Checks that the test filesystem does what the generated tree needs.
pub fn require_root_and_xattrs(dir: &Path) {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests create device nodes and foreign owners: run them as root"
    );
    let probe = dir.join(".xattr-probe");
    write(&probe, b"");
    xattr::set(&probe, "user.probe", b"1")
        .expect("the temporary filesystem must support user.* extended attributes");
    std::fs::remove_file(&probe).unwrap();
}

/// The tree's manifest as a backup will see it: takes the manifest and then
/// resets the access times that taking it moved (symlinks, directories).
pub fn freeze(root: &Path) -> Manifest {
    let m = Manifest::of(root);
    m.reset_times(root);
    m
}

/// Many small files in nested directories and some large random ones.
pub fn build_bulk_tree(root: &Path, rng: &mut Rng, small: usize, large: usize, large_size: usize) {
    for i in 0..small {
        let dir = root.join(format!("d{:02}/e{}", i % 37, i % 5));
        mkdirs(&dir);
        let len = rng.range(0, 8192) as usize;
        write(&dir.join(format!("f{i}")), &rng.bytes(len));
    }
    mkdirs(&root.join("large"));
    for i in 0..large {
        write(&root.join(format!("large/big{i}")), &rng.bytes(large_size));
    }
}

// ---------------------------------------------------- crafting repositories

/// A tree node with plain defaults.
pub fn node(name: &[u8], kind: NodeKind) -> Node {
    let stamp = Timestamp {
        sec: 1_717_200_000,
        nsec: 0,
    };
    Node {
        name: name.to_vec(),
        kind,
        mode: if kind == NodeKind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime: stamp,
        atime: stamp,
        ctime: stamp,
        size: 0,
        device: 1,
        inode: 0,
        links: 1,
        rdev: 0,
        link_target: vec![],
        xattrs: vec![],
        content: vec![],
        subtree: None,
    }
}

/// Stores blobs in one new pack with an index file; returns their ids.
pub fn store_blobs(repo: &Repository, blobs: &[(BlobKind, Vec<u8>)]) -> Vec<Id> {
    let saver = PackSaver::new(repo.clone());
    let mut writer = saver.new_pack().unwrap();
    let mut ids = Vec::new();
    for (kind, data) in blobs {
        let id = repo.blob_id(data);
        writer.add(*kind, id, data, 3).unwrap();
        ids.push(id);
    }
    saver.save(writer.finish().unwrap()).unwrap();
    saver.finish().unwrap();
    ids
}

/// A file node whose content is stored in the repository.
pub fn file_node(repo: &Repository, name: &[u8], content: &[u8]) -> Node {
    let id = store_blobs(repo, &[(BlobKind::Data, content.to_vec())])[0];
    let mut n = node(name, NodeKind::File);
    n.size = content.len() as u64;
    n.content = vec![rewind::tree::Extent::Data {
        id,
        len: content.len() as u32,
    }];
    n
}

/// Stores a tree (as given: not sorted, not checked) and returns its id.
pub fn store_tree(repo: &Repository, nodes: Vec<Node>) -> Id {
    store_blobs(repo, &[(BlobKind::Tree, Tree { nodes }.encode())])[0]
}

pub fn dir_node(name: &[u8], subtree: Id) -> Node {
    let mut n = node(name, NodeKind::Dir);
    n.subtree = Some(subtree);
    n
}

/// Writes a snapshot manifest for a root tree.
pub fn save_snapshot(repo: &Repository, tree: Id, paths: &[&str]) -> Id {
    let snapshot = Snapshot {
        id: Id::default(),
        version: rewind::repo::SNAPSHOT_VERSION,
        time: chrono::Utc::now(),
        host: "crafted".into(),
        username: "root".into(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        tags: vec![],
        tree,
        parent: None,
        program: "rewind tests".into(),
        summary: Summary::default(),
    };
    repo.save_snapshot(&snapshot).unwrap()
}

/// Every regular file of a snapshot: path (as `check` prints it) → its data blob ids.
pub fn file_chunks(repo: &Repository, tree: &Id) -> BTreeMap<String, Vec<Id>> {
    fn walk(repo: &Repository, tree: &Id, dir: &str, out: &mut BTreeMap<String, Vec<Id>>) {
        for n in repo.read_tree(tree).unwrap().nodes {
            let path = format!("{dir}/{}", n.name_lossy());
            if let Some(sub) = n.subtree {
                walk(repo, &sub, &path, out);
            } else if n.kind == NodeKind::File {
                let ids = n
                    .content
                    .iter()
                    .filter_map(|e| match e {
                        rewind::tree::Extent::Data { id, .. } => Some(*id),
                        _ => None,
                    })
                    .collect();
                out.insert(path, ids);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(repo, tree, "", &mut out);
    out
}

/// The path of a pack file in a local repository.
pub fn pack_path(repo_dir: &Path, pack: &Id) -> PathBuf {
    let hex = pack.to_hex();
    repo_dir.join("data").join(&hex[..2]).join(hex)
}

/// Every file under a directory (recursively), for "nothing else was written" checks.
pub fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        out.push(p.to_path_buf());
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
            for name in list_dir(p) {
                walk(&p.join(OsStr::from_bytes(&name)), out);
            }
        }
    }
    walk(root, &mut out);
    out
}

/// Every path under `root` (not `root` itself), parents before children.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    all_paths(root).split_off(1)
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
