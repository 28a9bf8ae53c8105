//! Running a command (the binary or an ordinary tool) to its end and
//! checking what it did, and waiting for a condition.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    pub(super) fn of(what: String, out: std::process::Output) -> Run {
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

/// Starts `cmd` (its output piped) held at the pause point `point` (see
/// `src/testing.rs`) and returns once it is there; it goes on when the
/// file `gate` is created.
#[track_caller]
pub fn spawn_held_at(
    cmd: &mut Command,
    point: &str,
    gate: &std::path::Path,
) -> std::process::Child {
    let child = cmd
        .env("REWIND_PAUSE_AT", format!("{point}:{}", gate.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let arrived = std::path::PathBuf::from(format!("{}.{}", gate.display(), child.id()));
    assert!(
        wait_for(Duration::from_secs(60), || arrived.exists()).is_some(),
        "{point} is reached"
    );
    child
}
