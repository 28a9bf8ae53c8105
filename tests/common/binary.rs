//! The real `rewind` binary driven the way a user drives it: a repository
//! in its environment, and the paths and snapshot specs it takes.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rewind::Encryption;

use super::command::Run;

pub const PASSWORD: &str = "correct horse battery staple";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rewind")
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
