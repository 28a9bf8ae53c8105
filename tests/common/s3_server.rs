//! A real S3 server on loopback for the S3 tests: `s3s-fs`, which
//! `scripts/install-deps.sh` installs outside the checkout, serving a
//! fresh directory (a bucket is a directory in it, an object a file), and
//! the `rewind` binary pointed at it the way a user points it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::binary::{bin, PASSWORD};
use super::command::{run, wait_for, Run};

pub const S3_ACCESS_KEY: &str = "rewind-test-key";
pub const S3_SECRET_KEY: &str = "rewind-test-secret";

/// Where `scripts/install-deps.sh` puts its tools: `REWIND_TEST_TOOLS`,
/// else /var/cache/rewind-test-tools for root, else under ~/.cache.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("REWIND_TEST_TOOLS") {
        return PathBuf::from(dir);
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/cache/rewind-test-tools");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    cache.join("rewind-test-tools")
}

/// The `s3s-fs` binary; a missing one fails the test (CI installs it, so
/// a silent skip would hide that the S3 tests never ran).
pub fn s3s_fs() -> PathBuf {
    let binary = tools_dir().join("bin/s3s-fs");
    assert!(
        binary.is_file(),
        "the S3 tests need the s3s-fs server at {}: run scripts/install-deps.sh",
        binary.display()
    );
    binary
}

/// A running `s3s-fs`. Dropping it kills it.
pub struct S3Server {
    /// The directory it serves: one subdirectory per bucket.
    pub root: PathBuf,
    log: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl S3Server {
    /// Starts a server on a port the system picks, serving `dir/s3`.
    #[track_caller]
    pub fn start(dir: &Path) -> S3Server {
        let root = dir.join("s3");
        std::fs::create_dir_all(&root).unwrap();
        let mut server = S3Server {
            root,
            log: dir.join("s3s-fs.log"),
            port: 0,
            child: None,
        };
        server.spawn(0);
        server
    }

    /// Starts `s3s-fs` on `port` (0: any) and waits until it listens.
    #[track_caller]
    fn spawn(&mut self, port: u16) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&self.root)
            .env("RUST_LOG", "s3s_fs=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("s3s-fs starts");
        self.child = Some(child);
        // It logs the address it listens on (the port it was given, or the
        // one the system picked).
        let listening = wait_for(Duration::from_secs(30), || {
            port_after(&self.log_text(), "server is running at http://127.0.0.1:")
                .map(|p| self.port = p)
                .is_some()
        });
        assert!(
            listening.is_some(),
            "s3s-fs did not start listening:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// restic's spelling of a repository in this server.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!("s3:{}/{bucket}/{prefix}", self.endpoint())
    }

    /// Creates a bucket: s3s-fs keeps each bucket in a directory.
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.root.join(bucket)).unwrap();
    }

    /// Where an object's bytes lie on disk.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// The keys of every object of a bucket, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let base = self.root.join(bucket);
        let mut keys: Vec<String> = walk_files(&base)
            .iter()
            .map(|p| p.strip_prefix(&base).unwrap().to_str().unwrap().to_string())
            .collect();
        keys.sort();
        keys
    }

    /// Kills the server at once (SIGKILL), as a crashed store.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, over the same data.
    #[track_caller]
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.spawn(port);
        assert_eq!(self.port, port, "s3s-fs came back on another port");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            files.extend(walk_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A repository in an S3 bucket, driven through the real binary with a
/// clean environment: only the variables set here reach it.
#[derive(Clone)]
pub struct S3Repo {
    /// The `--repo` value.
    pub url: String,
    /// Further variables (AWS_*, REWIND_S3_*) for every run.
    pub env: Vec<(String, String)>,
}

impl S3Repo {
    /// A repository at `url` with the test server's credentials.
    pub fn at(url: &str) -> S3Repo {
        S3Repo {
            url: url.to_string(),
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), S3_ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY".into(), S3_SECRET_KEY.into()),
                // Not the developer's ~/.aws.
                (
                    "AWS_SHARED_CREDENTIALS_FILE".into(),
                    "/nonexistent/credentials".into(),
                ),
                ("AWS_CONFIG_FILE".into(), "/nonexistent/config".into()),
            ],
        }
    }

    /// The same with a variable set (or replaced).
    pub fn with_env(mut self, name: &str, value: &str) -> S3Repo {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
        self
    }

    /// `rewind` with this repository, its password and its variables; the
    /// AWS_* and REWIND_* variables of the test's own environment are
    /// removed, so that a developer's AWS profile never leaks in.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin());
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("AWS_") || name.starts_with("REWIND_") {
                cmd.env_remove(name.as_ref());
            }
        }
        cmd.env("REWIND_REPO", &self.url)
            .env("REWIND_PASSWORD", PASSWORD)
            .env("NO_PROXY", "127.0.0.1,localhost");
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        cmd
    }

    /// Runs `rewind ARGS...` to its end.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.command().args(args))
    }
}

/// The port a server logged after `marker` (the text before the digits),
/// once it has.
pub fn port_after(log: &str, marker: &str) -> Option<u16> {
    let rest = log.split(marker).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
