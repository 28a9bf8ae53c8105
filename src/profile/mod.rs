//! Profiles: one TOML file that says what to back up, where, how long to
//! keep it, how to check it and whom to tell (`man/rewind-profile.5`).
//! Every key stands for a command-line option of the same name, so that a
//! profile means exactly what the command line means; `rewind -P NAME`
//! takes its defaults from one, and `rewind -P NAME run` runs it whole.
//!
//! This module holds the schema ([`Profile`] and its sections), finding and
//! reading the file (`load.rs`), the checks beyond types (`validate.rs`),
//! and turning byte offsets into the line and key an error names
//! (`position.rs`).

mod load;
mod position;
mod validate;

use std::path::PathBuf;

use serde::Deserialize;

pub use load::{find_profile, load_profile, parse_profile, profile_places, LoadedProfile};

/// A profile as written. Keys are kebab-case; unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profile {
    /// `--repo`: a directory, `s3://BUCKET/PREFIX`, or `s3:http(s)://...`.
    pub repository: Option<String>,
    /// `--password-file`.
    pub password_file: Option<PathBuf>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// The backups `run` makes, in order (`[[backup]]`).
    #[serde(default)]
    pub backup: Vec<ProfileBackup>,
    /// Retention after the backups (`[forget]`).
    pub forget: Option<ProfileForget>,
    /// `[check]`.
    pub check: Option<ProfileCheck>,
    /// The offsite copy (`[copy]`).
    pub copy: Option<ProfileCopy>,
    /// The restore drill (`[restore-test]`).
    pub restore_test: Option<ProfileRestoreTest>,
    /// Commands run around `run` (`[hooks]`).
    #[serde(default)]
    pub hooks: ProfileHooks,
}

/// One `[[backup]]`: paths, or the output of a command (`stdin-command`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileBackup {
    /// What `run`'s summary and hooks call this backup; default: its
    /// `stdin-name`, else its paths joined with commas.
    pub name: Option<String>,
    /// The positional PATH arguments.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// `--stdin-command`: argv of the command whose output is stored.
    #[serde(default)]
    pub stdin_command: Vec<String>,
    /// `--stdin-name`.
    pub stdin_name: Option<String>,
    /// `--exclude` (each).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `--tag` (each).
    #[serde(default)]
    pub tags: Vec<String>,
    /// `--host`.
    pub host: Option<String>,
    /// `--one-file-system`.
    #[serde(default)]
    pub one_file_system: bool,
}

impl ProfileBackup {
    /// The name given, or the one made from what it backs up.
    pub fn name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        if let Some(name) = &self.stdin_name {
            return name.clone();
        }
        let paths: Vec<String> = self
            .paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        paths.join(",")
    }
}

/// `[forget]`: the options of `rewind forget`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileForget {
    pub keep_last: Option<i64>,
    pub keep_hourly: Option<i64>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub keep_monthly: Option<i64>,
    pub keep_yearly: Option<i64>,
    pub keep_within: Option<String>,
    pub keep_within_hourly: Option<String>,
    pub keep_within_daily: Option<String>,
    pub keep_within_weekly: Option<String>,
    pub keep_within_monthly: Option<String>,
    pub keep_within_yearly: Option<String>,
    /// `--keep-tag` (each; an entry may be a comma-separated list).
    #[serde(default)]
    pub keep_tag: Vec<String>,
    pub group_by: Option<String>,
    pub timezone: Option<String>,
    pub host: Option<String>,
    /// `--tag` (each).
    #[serde(default)]
    pub tags: Vec<String>,
    /// `--path` (each).
    #[serde(default)]
    pub paths: Vec<String>,
    /// `--prune`.
    #[serde(default)]
    pub prune: bool,
    pub max_unused: Option<String>,
    pub max_repack: Option<String>,
}

impl ProfileForget {
    /// Whether any `keep-*` rule is given (forget refuses to run without one).
    pub fn has_policy(&self) -> bool {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        counts.iter().any(Option::is_some)
            || self.within().iter().any(|(_, d)| d.is_some())
            || !self.keep_tag.is_empty()
    }

    /// The `keep-within*` keys and their values.
    pub fn within(&self) -> [(&'static str, &Option<String>); 6] {
        [
            ("keep-within", &self.keep_within),
            ("keep-within-hourly", &self.keep_within_hourly),
            ("keep-within-daily", &self.keep_within_daily),
            ("keep-within-weekly", &self.keep_within_weekly),
            ("keep-within-monthly", &self.keep_within_monthly),
            ("keep-within-yearly", &self.keep_within_yearly),
        ]
    }
}

/// `[check]`: the options of `rewind check`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileCheck {
    #[serde(default)]
    pub read_data: bool,
    pub read_data_subset: Option<String>,
}

/// `[copy]`: copy the profile's repository into `to` (`rewind copy`, run
/// with `--repo TO --from-repo REPOSITORY`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileCopy {
    /// The destination repository.
    pub to: String,
    /// The destination's password file; default: the profile's.
    pub password_file: Option<PathBuf>,
    pub host: Option<String>,
    /// `--tag` (each).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `[restore-test]`: the options of `rewind restore-test`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileRestoreTest {
    /// The SNAP[:PATH] argument.
    pub snapshot: Option<String>,
    pub sample: Option<String>,
    pub scratch: Option<PathBuf>,
    pub against: Option<PathBuf>,
    pub max_age: Option<String>,
    #[serde(default)]
    pub keep_scratch: bool,
    #[serde(default)]
    pub reread: bool,
    pub junit: Option<PathBuf>,
    pub host: Option<String>,
    /// `--tag` (each).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `[hooks]`: each an argv (program and arguments, no shell).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileHooks {
    /// Before the first step; when it fails, no step runs.
    #[serde(default)]
    pub before: Vec<String>,
    /// After the last step, whatever the result.
    #[serde(default)]
    pub after: Vec<String>,
    /// Last, when every step and hook so far succeeded.
    #[serde(default)]
    pub on_success: Vec<String>,
    /// Last, when a step or hook failed.
    #[serde(default)]
    pub on_failure: Vec<String>,
}

impl ProfileHooks {
    /// The hooks given, by key, in the order `run` may run them.
    pub fn given(&self) -> Vec<(&'static str, &[String])> {
        [
            ("before", &self.before),
            ("after", &self.after),
            ("on-success", &self.on_success),
            ("on-failure", &self.on_failure),
        ]
        .into_iter()
        .filter(|(_, argv)| !argv.is_empty())
        .map(|(key, argv)| (key, argv.as_slice()))
        .collect()
    }
}
