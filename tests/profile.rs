//! Profiles through the real binary: `-P` gives any command the profile's
//! repository and defaults (flags and the environment override it);
//! `run` makes every step, a failed dump never becomes a snapshot and
//! only skips the forget that depends on it, the hooks see the result;
//! mistakes in a profile name file, line and key; `config check`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rewind::Encryption;

/// A scratch directory with two repositories (`repo`, and `offsite` for
/// the copy), a password file, and files to back up.
struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    repo: Repo,
    offsite: Repo,
    data: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let (tmp, dir) = tempdir();
        let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
        let offsite = Repo::init(&dir.join("offsite"), Encryption::Aes256Gcm);
        std::fs::write(dir.join("password"), format!("{PASSWORD}\n")).unwrap();
        let data = dir.join("data");
        mkdirs(&data);
        write(&data.join("notes.txt"), b"back up early, back up often\n");
        Setup {
            _tmp: tmp,
            dir,
            repo,
            offsite,
            data,
        }
    }

    /// Writes `text` as the profile `name`.toml; its path.
    fn profile(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A profile with a backup of `data`, a dump that fails while the file
    /// `fail` exists, forget, check, a copy to `offsite`, and hooks that
    /// write their environment to `after.env` and `on-failure.env`.
    fn nightly(&self) -> PathBuf {
        let dir = self.dir.display();
        self.profile(
            "nightly",
            &format!(
                r#"
# Relative paths start at the profile's directory.
repository = "repo"
password-file = "password"

[[backup]]
paths = ["{data}"]
tags = ["files"]

[[backup]]
name = "db"
stdin-command = ["sh", "-c", "head -c 300000 /dev/urandom; test ! -e \"$0\"", "{dir}/fail"]
stdin-name = "db/app.dump"
tags = ["db"]

[forget]
keep-last = 1
prune = true

[check]

[copy]
to = "offsite"

[hooks]
after = ["sh", "-c", "env > \"$0\"", "{dir}/after.env"]
on-success = ["sh", "-c", "env > \"$0\"", "{dir}/on-success.env"]
on-failure = ["sh", "-c", "env > \"$0\"", "{dir}/on-failure.env"]
"#,
                data = self.data.display(),
            ),
        )
    }

    /// `rewind ARGS...` with no repository or password in the environment.
    fn rewind(&self, args: &[&str]) -> Run {
        self.rewind_with(&[], args)
    }

    /// `rewind ARGS...` with these variables set.
    fn rewind_with(&self, variables: &[(&str, &Path)], args: &[&str]) -> Run {
        let mut command = self.command();
        for (name, value) in variables {
            command.env(name, value);
        }
        run(command.args(args))
    }

    /// The binary run from `/`, so that only paths resolved against the
    /// profile's directory find anything.
    fn command(&self) -> Command {
        let mut command = Command::new(bin());
        for name in [
            "REWIND_REPO",
            "REWIND_PASSWORD",
            "REWIND_PASSWORD_FILE",
            "REWIND_PROFILE",
        ] {
            command.env_remove(name);
        }
        command.current_dir("/");
        command
    }

    /// The variables a hook wrote with `env > FILE`.
    fn hook_environment(&self, file: &str) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_else(|e| panic!("the hook did not write {file}: {e}"));
        text.lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.starts_with("REWIND_"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

fn variable<'a>(environment: &'a [(String, String)], name: &str) -> &'a str {
    environment
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{name} is not set: {environment:?}"))
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_failed_dump_fails_the_run_but_not_the_file_backup() {
    let setup = Setup::new();
    let profile = setup.nightly();
    write(&setup.dir.join("fail"), b"");
    let run = setup.rewind(&["-P", text(&profile), "run"]).assert_code(1);

    // One line names the failed step; the summary says what was skipped and why.
    assert!(
        run.stderr.contains("rewind: profile /") && run.stderr.contains("backup:db failed"),
        "{}",
        run.stderr
    );
    let summary = run.text();
    let line = |label: &str| {
        summary
            .lines()
            .skip(1)
            .find(|l| l.split_whitespace().any(|w| w == label))
            .unwrap_or_else(|| panic!("no {label} in the summary:\n{summary}"))
            .to_string()
    };
    assert!(line("backup:db").contains("FAILED"), "{summary}");
    assert!(
        line("backup:db").contains("exited with status 1"),
        "{summary}"
    );
    assert!(line("forget").contains("skipped"), "{summary}");
    assert!(line("forget").contains("backup:db failed"), "{summary}");
    for step in ["check", "copy", "hook:after", "hook:on-failure"] {
        assert!(line(step).trim_start().starts_with("ok"), "{summary}");
    }

    // The file backup is there, the failed dump is not.
    let snapshots = setup.repo.snapshots();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(
        snapshots[0]["paths"],
        serde_json::json!([text(&setup.data)])
    );
    assert_eq!(snapshots[0]["tags"], serde_json::json!(["files"]));
    let files_snapshot = snapshots[0]["id"].as_str().unwrap().to_string();
    // The copy took it offsite.
    assert_eq!(setup.offsite.snapshots().len(), 1);

    // The hooks saw the failure.
    let environment = setup.hook_environment("on-failure.env");
    assert_eq!(variable(&environment, "REWIND_RESULT"), "failure");
    assert_eq!(variable(&environment, "REWIND_FAILED_STEPS"), "backup:db");
    assert_eq!(variable(&environment, "REWIND_SKIPPED_STEPS"), "forget");
    assert_eq!(variable(&environment, "REWIND_SNAPSHOTS"), files_snapshot);
    assert_eq!(variable(&environment, "REWIND_PROFILE"), text(&profile));
    let after = setup.hook_environment("after.env");
    assert_eq!(variable(&after, "REWIND_RESULT"), "failure");
    assert!(!setup.dir.join("on-success.env").exists());

    // Each step left the audit record it leaves from the command line.
    let log = setup.repo.run(["log", "--json"]).assert_ok().json();
    let backups: Vec<&serde_json::Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["command"] == "backup")
        .collect();
    assert_eq!(backups.len(), 2, "{log:#}");
    assert_eq!(backups[0]["result"], "ok");
    assert_eq!(backups[1]["result"], "failed");
    assert!(backups[1]["error"]
        .as_str()
        .unwrap()
        .contains("no snapshot is written"));
}

#[test]
fn a_run_that_succeeds_forgets_prunes_and_reports_in_json() {
    let setup = Setup::new();
    let profile = setup.nightly();
    setup.rewind(&["-P", text(&profile), "run"]).assert_ok();
    let run = setup
        .rewind(&["-P", text(&profile), "run", "--json"])
        .assert_ok();
    let summary = run.json();
    assert_eq!(summary["result"], "success");
    assert_eq!(summary["failed_steps"], serde_json::json!([]));
    let steps = summary["steps"].as_array().unwrap();
    let labels: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    let files = format!("backup:{}", setup.data.display());
    assert_eq!(
        labels,
        [
            files.as_str(),
            "backup:db",
            "forget",
            "check",
            "copy",
            "hook:after",
            "hook:on-success"
        ]
    );
    assert!(
        steps.iter().all(|s| s["result"] == "success"),
        "{summary:#}"
    );
    // keep-last 1 in each group (host and paths): the first run's two go.
    let forget = &steps[2];
    assert_eq!(forget["snapshots"].as_array().unwrap().len(), 2);
    assert!(
        forget["reports"][0]["prune"]["packs_deleted"].is_u64(),
        "{forget:#}"
    );
    let made = summary["snapshots"].as_array().unwrap();
    assert_eq!(made.len(), 2);
    let mut kept: Vec<String> = setup
        .repo
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let mut made: Vec<String> = made
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    kept.sort();
    made.sort();
    assert_eq!(kept, made, "the run's own snapshots are the ones kept");
    // The dump is stored whole.
    setup
        .repo
        .run(["cat", "latest:/db/app.dump", "--tag", "db"])
        .assert_ok();
    let environment = setup.hook_environment("on-success.env");
    assert_eq!(variable(&environment, "REWIND_RESULT"), "success");
    assert_eq!(variable(&environment, "REWIND_FAILED_STEPS"), "");
}

#[test]
fn any_command_takes_the_profile_and_flags_override_it() {
    let setup = Setup::new();
    setup.repo.backup([arg(&setup.data)]);
    let profile = setup.profile(
        "plain",
        "repository = \"repo\"\npassword-file = \"password\"\n",
    );
    let listed = |run: Run| run.assert_ok().json().as_array().unwrap().len();

    let run = setup.rewind(&["-P", text(&profile), "snapshots", "--json"]);
    assert_eq!(listed(run), 1);
    // A flag, before or after the command, names another repository.
    let offsite = text(&setup.offsite.path);
    let run = setup.rewind(&[
        "-P",
        text(&profile),
        "--repo",
        offsite,
        "snapshots",
        "--json",
    ]);
    assert_eq!(listed(run), 0);
    let run = setup.rewind(&[
        "snapshots",
        "--json",
        "--repo",
        offsite,
        "-P",
        text(&profile),
    ]);
    assert_eq!(listed(run), 0);
    // So does the environment, and REWIND_PROFILE names the profile.
    let run = setup.rewind_with(
        &[
            ("REWIND_PROFILE", &profile),
            ("REWIND_REPO", &setup.offsite.path),
        ],
        &["snapshots", "--json"],
    );
    assert_eq!(listed(run), 0);

    // A name is looked for in the user's configuration directory.
    let config = setup.dir.join("config");
    mkdirs(&config.join("rewind"));
    let named = format!(
        "repository = \"{}\"\npassword-file = \"{}\"\n",
        setup.repo.path.display(),
        setup.dir.join("password").display()
    );
    std::fs::write(config.join("rewind/rewind-test-plain.toml"), named).unwrap();
    let run = setup.rewind_with(
        &[("XDG_CONFIG_HOME", &config)],
        &["-P", "rewind-test-plain", "snapshots", "--json"],
    );
    assert_eq!(listed(run), 1);
    setup
        .rewind(&["-P", "rewind-test-no-such-profile", "snapshots"])
        .assert_fails_with("no profile rewind-test-no-such-profile");
}

#[test]
fn mistakes_name_the_file_the_line_and_the_key() {
    let setup = Setup::new();
    let unknown = setup.profile(
        "unknown",
        "repository = \"repo\"\n\n[forget]\nkeep-daily = 7\nkeep-wekly = 4\n",
    );
    let run = setup
        .rewind(&["-P", text(&unknown), "snapshots"])
        .assert_one_line_error(&["unknown field `keep-wekly`"]);
    let at = format!("{}:5: forget.keep-wekly: ", unknown.display());
    assert!(run.stderr.contains(&at), "{}", run.stderr);

    let wrong = setup.profile(
        "wrong",
        "repository = \"repo\"\n[[backup]]\npaths = [\"/etc\"]\n[[backup]]\npaths = \"/srv\"\n",
    );
    let run = setup
        .rewind(&["-P", text(&wrong), "config", "check"])
        .assert_one_line_error(&["invalid type"]);
    let at = format!("{}:5: backup[2].paths: ", wrong.display());
    assert!(run.stderr.contains(&at), "{}", run.stderr);

    let value = setup.profile("value", "[check]\nread-data-subset = \"8/7\"\n");
    let run = setup
        .rewind(&["-P", text(&value), "check"])
        .assert_one_line_error(&["not a subset"]);
    let at = format!("{}:2: check.read-data-subset: ", value.display());
    assert!(run.stderr.contains(&at), "{}", run.stderr);
}

#[test]
fn config_check_passes_a_good_profile_and_fails_a_bad_one() {
    let setup = Setup::new();
    let good = setup.nightly();
    let run = setup
        .rewind(&["-P", text(&good), "config", "check"])
        .assert_ok();
    assert!(run.text().contains("OK: 0 errors"), "{}", run.text());
    assert!(
        run.text().contains("backup:db: rewind --profile"),
        "{}",
        run.text()
    );

    // A backup path that is missing is a warning; a password file that
    // cannot be read, and a value the command rejects, are errors.
    let bad = setup.profile(
        "bad",
        &format!(
            "repository = \"repo\"\npassword-file = \"missing-password\"\n\
             [[backup]]\npaths = [\"{}/gone\"]\n[forget]\nkeep-last = 3\nmax-unused = \"lots\"\n",
            setup.dir.display()
        ),
    );
    let run = setup
        .rewind(&["-P", text(&bad), "config", "check", "--json"])
        .assert_code(1);
    let report = run.json();
    assert_eq!(report["ok"], false);
    let errors = report["errors"].to_string();
    assert!(errors.contains("missing-password"), "{errors}");
    assert!(
        errors.contains("forget: ") && errors.contains("lots"),
        "{errors}"
    );
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("gone does not exist"), "{warnings}");
    assert!(run.stderr.contains("rewind: profile"), "{}", run.stderr);
}

#[test]
fn backup_stdin_command_stores_the_output_of_a_command_that_succeeds() {
    let setup = Setup::new();
    let run = setup.repo.run([
        "backup",
        "--stdin-name",
        "db/seq.txt",
        "--stdin-command",
        "seq",
        "-s",
        "-",
        "5",
    ]);
    run.assert_ok();
    let cat = setup.repo.run(["cat", "latest:/db/seq.txt"]).assert_ok();
    assert_eq!(cat.text(), "1-2-3-4-5\n");
    setup
        .repo
        .run([
            "backup",
            "--stdin-name",
            "db/killed.txt",
            "--stdin-command",
            "sh",
            "-c",
            "echo partial; kill -9 $$",
        ])
        .assert_fails_with("killed by signal 9");
    assert_eq!(setup.repo.snapshots().len(), 1);
}

#[test]
fn the_example_profile_in_contrib_reads() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/profile-example.toml"
    ));
    let text = std::fs::read_to_string(path).unwrap();
    let profile = rewind::parse_profile(&text, path).unwrap();
    let names: Vec<String> = profile.backup.iter().map(|b| b.name()).collect();
    assert_eq!(names, ["/etc,/home,/srv/www", "db"]);
    assert!(profile.forget.unwrap().prune);
    assert_eq!(profile.copy.unwrap().to, "s3://offsite/host1");
    assert!(!profile.hooks.on_failure.is_empty());
}
