//! `-P NAME` (or `REWIND_PROFILE`): a profile's values become the default
//! values of the options they stand for, before clap parses the command
//! line. So every option means exactly what it means when typed, values
//! go through the same parsers, and the order of precedence is clap's
//! own: an option given on the command line, then its environment
//! variable, then the profile, then the built-in default.
//!
//! The keys and the options they stand for are listed in
//! `man/rewind-profile.5`; a key maps to an argument by its clap id, and
//! the tests below apply every key, so a renamed option fails them.

use std::ffi::OsString;

use anyhow::Result;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use rewind::{Profile, ProfileForget};

use super::Cli;

/// Parses `argv` as `Cli::parse` does (exiting on an error or `--help`),
/// with the defaults of the profile it names, which it loads.
pub fn parse_from(argv: Vec<OsString>) -> Result<Cli> {
    let first = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(&argv)
        .ok();
    let name = first
        .as_ref()
        .and_then(|m| m.get_one::<String>("profile").cloned());
    let Some(name) = name else {
        return Ok(Cli::parse_from_matches(
            Cli::command().get_matches_from(argv),
        ));
    };
    let loaded = rewind::load_profile(&name)?;
    let subcommand = first.as_ref().and_then(ArgMatches::subcommand);
    let command = with_defaults(Cli::command(), &loaded.profile, subcommand);
    let mut cli = Cli::parse_from_matches(command.get_matches_from(argv));
    cli.global.loaded_profile = Some(loaded);
    Ok(cli)
}

/// Parses `argv` with `profile`'s defaults as [`parse_from`] does, but
/// returns the error instead of exiting (`config check` parses each step's
/// command line this way).
pub fn try_parse_with(profile: &Profile, argv: &[OsString]) -> Result<Cli, clap::Error> {
    let first = Cli::command().try_get_matches_from(argv)?;
    let command = with_defaults(Cli::command(), profile, first.subcommand());
    Cli::from_arg_matches(&command.try_get_matches_from(argv)?)
}

impl Cli {
    fn parse_from_matches(matches: ArgMatches) -> Cli {
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// An argument (by clap id) and the values the profile gives it, as they
/// would be typed.
type Defaults = Vec<(&'static str, Vec<String>)>;

/// `command` with the profile's values as defaults: the global options,
/// and the options of `subcommand` (as first parsed, without them).
pub fn with_defaults(
    command: clap::Command,
    profile: &Profile,
    subcommand: Option<(&str, &ArgMatches)>,
) -> clap::Command {
    let name = subcommand.map(|(name, _)| name);
    let mut command = apply(command, global_defaults(profile, name));
    if let Some((name, matches)) = subcommand {
        let defaults = command_defaults(profile, name, matches);
        if !defaults.is_empty() {
            command = command.mut_subcommand(name, |sub| apply(sub, defaults));
        }
    }
    command
}

fn apply(mut command: clap::Command, defaults: Defaults) -> clap::Command {
    for (id, values) in defaults {
        command = command.mut_arg(id, |arg| arg.default_values(values));
    }
    command
}

/// The repository, its password file and the cache: for `copy`, whose
/// `--repo` is the destination, the `[copy]` section's.
fn global_defaults(profile: &Profile, subcommand: Option<&str>) -> Defaults {
    let mut defaults = Defaults::new();
    let copying = profile.copy.as_ref().filter(|_| subcommand == Some("copy"));
    let repository = match copying {
        Some(copy) => Some(copy.to.clone()),
        None => profile.repository.clone(),
    };
    add(&mut defaults, "repo", repository);
    // REWIND_PASSWORD overrides the profile's password file, as it would a
    // password file from nowhere else; a copy's own password file stays.
    let password_file = match copying.and_then(|c| c.password_file.as_ref()) {
        Some(own) => Some(own.clone()),
        None if std::env::var_os("REWIND_PASSWORD").is_some() => None,
        None => profile.password_file.clone(),
    };
    add(&mut defaults, "password_file", path_text(password_file));
    add(
        &mut defaults,
        "cache_dir",
        path_text(profile.cache_dir.clone()),
    );
    defaults
}

/// The defaults a section gives its command (`[forget]` also gives
/// `prune` its limits).
fn command_defaults(profile: &Profile, subcommand: &str, matches: &ArgMatches) -> Defaults {
    let mut defaults = Defaults::new();
    match subcommand {
        "forget" => {
            if let Some(forget) = &profile.forget {
                // Snapshots named on the command line are forgotten
                // instead of a policy: the profile's policy would refuse them.
                let named = matches.value_source("snapshots") == Some(ValueSource::CommandLine);
                if !named {
                    forget_policy(&mut defaults, forget);
                }
                forget_selection(&mut defaults, forget);
                flag(&mut defaults, "prune", forget.prune);
                prune_limits(&mut defaults, forget);
            }
        }
        "prune" => {
            if let Some(forget) = &profile.forget {
                prune_limits(&mut defaults, forget);
            }
        }
        "check" => {
            if let Some(check) = &profile.check {
                flag(&mut defaults, "read_data", check.read_data);
                add(
                    &mut defaults,
                    "read_data_subset",
                    check.read_data_subset.clone(),
                );
            }
        }
        "copy" => {
            if let Some(copy) = &profile.copy {
                add(&mut defaults, "from_repo", profile.repository.clone());
                add(
                    &mut defaults,
                    "from_password_file",
                    path_text(profile.password_file.clone()),
                );
                add(&mut defaults, "host", copy.host.clone());
                list(&mut defaults, "tags", &copy.tags);
            }
        }
        "restore-test" => {
            if let Some(test) = &profile.restore_test {
                add(&mut defaults, "snapshot", test.snapshot.clone());
                add(&mut defaults, "sample", test.sample.clone());
                add(&mut defaults, "scratch", path_text(test.scratch.clone()));
                add(&mut defaults, "against", path_text(test.against.clone()));
                add(&mut defaults, "max_age", test.max_age.clone());
                flag(&mut defaults, "keep_scratch", test.keep_scratch);
                flag(&mut defaults, "reread", test.reread);
                add(&mut defaults, "junit", path_text(test.junit.clone()));
                add(&mut defaults, "host", test.host.clone());
                list(&mut defaults, "tags", &test.tags);
            }
        }
        _ => {}
    }
    defaults
}

fn forget_policy(defaults: &mut Defaults, forget: &ProfileForget) {
    let counts = [
        ("keep_last", forget.keep_last),
        ("keep_hourly", forget.keep_hourly),
        ("keep_daily", forget.keep_daily),
        ("keep_weekly", forget.keep_weekly),
        ("keep_monthly", forget.keep_monthly),
        ("keep_yearly", forget.keep_yearly),
    ];
    for (id, count) in counts {
        add(defaults, id, count.map(|n| n.to_string()));
    }
    let ids = [
        "keep_within",
        "keep_within_hourly",
        "keep_within_daily",
        "keep_within_weekly",
        "keep_within_monthly",
        "keep_within_yearly",
    ];
    for (id, (_, value)) in ids.into_iter().zip(forget.within()) {
        add(defaults, id, value.clone());
    }
    list(defaults, "keep_tag", &forget.keep_tag);
}

fn forget_selection(defaults: &mut Defaults, forget: &ProfileForget) {
    add(defaults, "group_by", forget.group_by.clone());
    add(defaults, "timezone", forget.timezone.clone());
    add(defaults, "host", forget.host.clone());
    list(defaults, "tags", &forget.tags);
    list(defaults, "paths", &forget.paths);
}

fn prune_limits(defaults: &mut Defaults, forget: &ProfileForget) {
    add(defaults, "max_unused", forget.max_unused.clone());
    add(defaults, "max_repack", forget.max_repack.clone());
}

fn add(defaults: &mut Defaults, id: &'static str, value: Option<String>) {
    if let Some(value) = value {
        defaults.push((id, vec![value]));
    }
}

fn list(defaults: &mut Defaults, id: &'static str, values: &[String]) {
    if !values.is_empty() {
        defaults.push((id, values.to_vec()));
    }
}

/// A switch is on by default when the profile turns it on; a profile
/// cannot turn off what the command line turns on.
fn flag(defaults: &mut Defaults, id: &'static str, on: bool) {
    if on {
        defaults.push((id, vec!["true".to_string()]));
    }
}

fn path_text(path: Option<std::path::PathBuf>) -> Option<String> {
    path.map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every key the defaults read, with a value unlike any built-in default.
    const EVERY_KEY: &str = r#"
repository = "/srv/repo"
password-file = "/etc/rewind/pw"
cache-dir = "/var/cache/x"

[[backup]]
paths = ["/etc"]

[forget]
keep-last = 1
keep-hourly = 2
keep-daily = 3
keep-weekly = 4
keep-monthly = 5
keep-yearly = 6
keep-within = "1d"
keep-within-hourly = "2d"
keep-within-daily = "3d"
keep-within-weekly = "4w"
keep-within-monthly = "5m"
keep-within-yearly = "6y"
keep-tag = ["release", "a,b"]
group-by = "host"
timezone = "+02:00"
host = "h"
tags = ["t"]
paths = ["/etc"]
prune = true
max-unused = "10%"
max-repack = "2G"

[check]
read-data-subset = "2/7"

[copy]
to = "/srv/offsite"
password-file = "/etc/rewind/offsite-pw"
host = "ch"
tags = ["ct"]

[restore-test]
snapshot = "latest:/etc"
sample = "5%"
scratch = "/var/tmp"
against = "/etc"
max-age = "26h"
keep-scratch = true
reread = true
junit = "/var/lib/rewind/junit.xml"
host = "rh"
tags = ["rt"]
"#;

    fn profile() -> Profile {
        rewind::parse_profile(EVERY_KEY, Path::new("/etc/rewind/test.toml")).unwrap()
    }

    /// The matches of `rewind ARGS...` under the profile.
    fn parsed(args: &[&str]) -> ArgMatches {
        let argv: Vec<OsString> = std::iter::once("rewind")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let first = Cli::command().try_get_matches_from(&argv).unwrap();
        with_defaults(Cli::command(), &profile(), first.subcommand())
            .try_get_matches_from(&argv)
            .unwrap()
    }

    fn one(matches: &ArgMatches, id: &str) -> String {
        let value = matches.get_raw(id).and_then(|mut v| v.next());
        value.unwrap().to_string_lossy().into_owned()
    }

    fn all(matches: &ArgMatches, id: &str) -> Vec<String> {
        let values = matches.get_raw(id).into_iter().flatten();
        values.map(|v| v.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn the_repository_and_password_file_are_defaults_of_every_command() {
        let matches = parsed(&["snapshots"]);
        assert_eq!(one(&matches, "repo"), "/srv/repo");
        assert_eq!(one(&matches, "password_file"), "/etc/rewind/pw");
        assert_eq!(one(&matches, "cache_dir"), "/var/cache/x");
        let matches = parsed(&["snapshots", "--repo", "/other"]);
        let (_, sub) = matches.subcommand().unwrap();
        assert_eq!(one(sub, "repo"), "/other", "a flag overrides the profile");
    }

    #[test]
    fn forget_takes_every_key_of_its_section() {
        let matches = parsed(&["forget", "--keep-daily", "30"]);
        let (_, forget) = matches.subcommand().unwrap();
        for (id, value) in [
            ("keep_last", "1"),
            ("keep_hourly", "2"),
            ("keep_daily", "30"),
            ("keep_weekly", "4"),
            ("keep_monthly", "5"),
            ("keep_yearly", "6"),
            ("keep_within", "1d"),
            ("keep_within_hourly", "2d"),
            ("keep_within_daily", "3d"),
            ("keep_within_weekly", "4w"),
            ("keep_within_monthly", "5m"),
            ("keep_within_yearly", "6y"),
            ("group_by", "host"),
            ("timezone", "+02:00"),
            ("host", "h"),
            ("prune", "true"),
            ("max_unused", "10%"),
            ("max_repack", "2G"),
        ] {
            assert_eq!(one(forget, id), value, "{id}");
        }
        assert_eq!(all(forget, "keep_tag"), ["release", "a,b"]);
        assert_eq!(all(forget, "tags"), ["t"]);
        assert_eq!(all(forget, "paths"), ["/etc"]);
    }

    #[test]
    fn named_snapshots_replace_the_policy() {
        let matches = parsed(&["forget", "abcd"]);
        let (_, forget) = matches.subcommand().unwrap();
        assert!(forget.get_raw("keep_daily").is_none());
        assert!(forget.get_raw("keep_tag").is_none());
        assert_eq!(one(forget, "host"), "h");
    }

    #[test]
    fn prune_check_and_restore_test_take_their_sections() {
        let matches = parsed(&["prune"]);
        let (_, prune) = matches.subcommand().unwrap();
        assert_eq!(one(prune, "max_repack"), "2G");
        let matches = parsed(&["check"]);
        let (_, check) = matches.subcommand().unwrap();
        assert_eq!(one(check, "read_data_subset"), "2/7");
        let matches = parsed(&["restore-test"]);
        let (_, test) = matches.subcommand().unwrap();
        for (id, value) in [
            ("snapshot", "latest:/etc"),
            ("sample", "5%"),
            ("scratch", "/var/tmp"),
            ("against", "/etc"),
            ("max_age", "26h"),
            ("keep_scratch", "true"),
            ("reread", "true"),
            ("junit", "/var/lib/rewind/junit.xml"),
            ("host", "rh"),
        ] {
            assert_eq!(one(test, id), value, "{id}");
        }
        assert_eq!(all(test, "tags"), ["rt"]);
    }

    #[test]
    fn copy_goes_from_the_repository_to_the_copy() {
        let matches = parsed(&["copy"]);
        assert_eq!(one(&matches, "repo"), "/srv/offsite");
        assert_eq!(one(&matches, "password_file"), "/etc/rewind/offsite-pw");
        let (_, copy) = matches.subcommand().unwrap();
        assert_eq!(one(copy, "from_repo"), "/srv/repo");
        assert_eq!(one(copy, "from_password_file"), "/etc/rewind/pw");
        assert_eq!(one(copy, "host"), "ch");
        assert_eq!(all(copy, "tags"), ["ct"]);
    }
}
