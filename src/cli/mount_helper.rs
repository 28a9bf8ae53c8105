//! `mount.fuse.rewind`: the helper mount(8) runs for a `fuse.rewind` line in
//! /etc/fstab, so that `mount /mnt/backups` (and systemd's mount units at
//! boot, which run mount(8)) mount a repository:
//!
//! ```text
//! /srv/backup/repo  /mnt/backups  fuse.rewind  ro,allow_other,password_file=/root/.rewind-pw,nofail  0 0
//! ```
//!
//! For a type `fuse.SUBTYPE`, libmount runs `/sbin/mount.fuse.SUBTYPE SOURCE
//! MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTIONS]` before it falls back to fuse3's
//! `mount.fuse`. The package installs that name as a link to the rewind
//! binary, which sees the name it was run by and mounts as
//! `rewind --repo SOURCE mount MOUNTPOINT` would, each option becoming the
//! flag of the same name.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;

use super::Cli;

/// The name mount(8) runs the helper by.
pub const NAME: &str = "mount.fuse.rewind";

/// mount(8)'s exit status for a mount that failed (its man page, EXIT
/// STATUS); 1 is for an invalid invocation.
const MOUNT_FAILURE: u8 = 32;

/// Was this process started as the mount helper?
pub fn invoked() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|argv0| Path::new(&argv0).file_name() == Some(OsStr::new(NAME)))
}

/// Runs the helper: mounts, or names on stderr what is wrong.
pub fn main() -> ExitCode {
    let (request, cli) = match prepare(std::env::args_os().skip(1)) {
        Ok(prepared) => prepared,
        Err(why) => {
            eprintln!("{NAME}: {why}");
            return ExitCode::from(1);
        }
    };
    if request.verbose {
        eprintln!("{NAME}: {}", request.shown());
    }
    if request.fake {
        return ExitCode::SUCCESS;
    }
    match super::run_parsed(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{NAME}: {}", super::describe(&err));
            ExitCode::from(MOUNT_FAILURE)
        }
    }
}

/// What mount(8) asked for, and the `rewind mount` command that does it;
/// the audit trail is told to record that command, with its password file
/// hidden as always, rather than mount(8)'s list of options.
fn prepare(args: impl Iterator<Item = OsString>) -> Result<(Request, Cli), String> {
    let request = Request::parse(args).map_err(|e| super::describe(&e))?;
    let args = request.command_line().map_err(|e| super::describe(&e))?;
    let mut cli = Cli::try_parse_from(&args).map_err(|e| first_line_of(&e))?;
    if let super::Command::Mount(mount) = &mut cli.command {
        mount.source_name = Some(request.source.to_string_lossy().into_owned());
    }
    let recorded = args[1..].iter().map(|a| a.to_string_lossy().into_owned());
    super::audit::record_arguments_as(recorded.collect());
    Ok((request, cli))
}

/// clap's message without its usage lines, which name `rewind mount`'s
/// flags rather than the options in fstab.
fn first_line_of(err: &clap::Error) -> String {
    let text = err.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// What mount(8) asked for.
#[derive(Debug, Default)]
struct Request {
    source: OsString,
    mountpoint: OsString,
    options: Vec<String>,
    /// `-s`: ignore options the helper does not know instead of failing.
    sloppy: bool,
    /// `-f`: check everything, mount nothing.
    fake: bool,
    /// `-v`: say what is run.
    verbose: bool,
}

impl Request {
    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Request> {
        let mut request = Request::default();
        let mut positional = Vec::new();
        while let Some(arg) = args.next() {
            match arg.to_str() {
                Some("-o") => {
                    let Some(list) = args.next() else {
                        bail!("-o needs a list of options");
                    };
                    let Some(list) = list.to_str() else {
                        bail!(
                            "the options are not valid UTF-8: {}",
                            list.to_string_lossy()
                        );
                    };
                    request.options.extend(split_options(list)?);
                }
                // The type is ours: libmount chose this helper by it.
                Some("-t") => {
                    args.next();
                }
                Some("-s") => request.sloppy = true,
                Some("-f") => request.fake = true,
                Some("-v") => request.verbose = true,
                // There is no /etc/mtab to leave alone.
                Some("-n") => {}
                Some("-N") => bail!("mounting in another mount namespace (-N) is not supported"),
                Some("-h" | "--help") => bail!(
                    "usage: {NAME} REPOSITORY MOUNTPOINT [-o OPTIONS]; run by mount(8) for \
                     fstab lines of type fuse.rewind (see rewind-mount(1), FSTAB)"
                ),
                Some(flag) if flag.starts_with('-') => bail!("unknown flag {flag}"),
                _ => positional.push(arg),
            }
        }
        let [source, mountpoint] = <[OsString; 2]>::try_from(positional).map_err(|given| {
            anyhow::anyhow!(
                "expected a repository and a mountpoint, got {} arguments (usage: {NAME} \
                 REPOSITORY MOUNTPOINT [-o OPTIONS])",
                given.len()
            )
        })?;
        request.source = source;
        request.mountpoint = mountpoint;
        Ok(request)
    }

    /// The `rewind` command line that mounts what was asked.
    fn command_line(&self) -> Result<Vec<OsString>> {
        let mut args: Vec<OsString> = ["rewind", "mount"].map(OsString::from).into();
        args.push(self.mountpoint.clone());
        args.push("--repo".into());
        args.push(self.source.clone());
        for option in &self.options {
            match translate(option) {
                Translation::Flag(flag) => args.push(flag.into()),
                Translation::Nothing => {}
                Translation::Refused(why) => bail!("{option}: {why}"),
                Translation::Unknown if self.sloppy => {
                    eprintln!("{NAME}: ignoring unknown option {option} (-s)");
                }
                Translation::Unknown => bail!(
                    "unknown option {option} (rewind's options: {}; see rewind-mount(1), FSTAB)",
                    REWIND_OPTIONS.map(|o| o.name).join(", ")
                ),
            }
        }
        Ok(args)
    }

    /// The request as one line, for `-v`.
    fn shown(&self) -> String {
        let options = self.options.join(",");
        format!(
            "mounting {} at {} with {}",
            self.source.to_string_lossy(),
            self.mountpoint.to_string_lossy(),
            if options.is_empty() {
                "no options"
            } else {
                &options
            }
        )
    }
}

/// Splits mount(8)'s comma-separated list; a value in double quotes may
/// hold commas (`password_file="/root/a,b"`), as libmount allows.
fn split_options(list: &str) -> Result<Vec<String>> {
    let mut options = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in list.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => options.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        bail!("unbalanced double quote in the options {list}");
    }
    options.push(current);
    options.retain(|o| !o.is_empty());
    Ok(options)
}

/// An option of rewind's own: the flag of `rewind` or `rewind mount` with
/// the same name, `_` for `-`.
struct RewindOption {
    name: &'static str,
    value: Value,
}

#[derive(PartialEq)]
enum Value {
    Required,
    Forbidden,
    Optional,
}

const REWIND_OPTIONS: [RewindOption; 13] = [
    RewindOption {
        name: "password_file",
        value: Value::Required,
    },
    RewindOption {
        name: "cache_dir",
        value: Value::Required,
    },
    RewindOption {
        name: "no_cache",
        value: Value::Forbidden,
    },
    RewindOption {
        name: "allow_other",
        value: Value::Forbidden,
    },
    RewindOption {
        name: "noexec",
        value: Value::Forbidden,
    },
    RewindOption {
        name: "cache_size",
        value: Value::Required,
    },
    RewindOption {
        name: "max_inodes",
        value: Value::Required,
    },
    RewindOption {
        name: "log_file",
        value: Value::Required,
    },
    RewindOption {
        name: "refresh",
        value: Value::Required,
    },
    RewindOption {
        name: "scrub",
        value: Value::Optional,
    },
    RewindOption {
        name: "scrub_interval",
        value: Value::Required,
    },
    RewindOption {
        name: "busy_poll",
        value: Value::Required,
    },
    RewindOption {
        name: "max_entries",
        value: Value::Required,
    },
];

/// Options for mount(8), systemd or other filesystems that ask nothing of
/// a rewind mount: `rw` is what mount(8) passes when fstab says `defaults`
/// (a rewind mount is read-only whatever it is told), and a read-only mount
/// never updates access times nor writes synchronously.
const NOTHING_TO_DO: [&str; 28] = [
    "ro",
    "rw",
    "nosuid",
    "nodev",
    "exec",
    "defaults",
    "auto",
    "noauto",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "nofail",
    "_netdev",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "diratime",
    "nodiratime",
    "sync",
    "async",
    "dirsync",
];

enum Translation {
    Flag(String),
    Nothing,
    Refused(&'static str),
    Unknown,
}

fn translate(option: &str) -> Translation {
    let (name, value) = match option.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (option, None),
    };
    // x-systemd.*, x-gvfs-show and the like are for the tools that read
    // fstab; mount(8) keeps most of them to itself, and passes the
    // user=NAME of a user mount.
    let for_others = name.starts_with("x-") || name.starts_with("X-");
    if for_others || (["user", "comment"].contains(&name) && value.is_some()) {
        return Translation::Nothing;
    }
    if NOTHING_TO_DO.contains(&option) {
        return Translation::Nothing;
    }
    if ["suid", "dev"].contains(&option) {
        return Translation::Refused("a rewind mount is always nosuid and nodev");
    }
    let Some(known) = REWIND_OPTIONS.iter().find(|o| o.name == name) else {
        return Translation::Unknown;
    };
    let flag = format!("--{}", name.replace('_', "-"));
    match (value, &known.value) {
        (None, Value::Required) => Translation::Refused("needs a value (NAME=VALUE)"),
        (Some(_), Value::Forbidden) => Translation::Refused("takes no value"),
        (Some(value), _) => Translation::Flag(format!("{flag}={value}")),
        (None, _) => Translation::Flag(flag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(args: &[&str]) -> Result<Request> {
        Request::parse(args.iter().map(OsString::from))
    }

    fn command_line(args: &[&str]) -> Result<Vec<String>> {
        let line = request(args)?.command_line()?;
        Ok(line
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect())
    }

    #[test]
    fn the_fstab_line_of_the_manual_becomes_rewind_mount() {
        let line = command_line(&[
            "/srv/backup/repo",
            "/mnt/backups",
            "-o",
            "rw,ro,allow_other,password_file=/root/.rewind-pw,nofail,_netdev",
        ])
        .unwrap();
        assert_eq!(
            line,
            [
                "rewind",
                "mount",
                "/mnt/backups",
                "--repo",
                "/srv/backup/repo",
                "--allow-other",
                "--password-file=/root/.rewind-pw",
            ]
        );
        assert!(Cli::try_parse_from(&line).is_ok(), "{line:?} parses");
    }

    #[test]
    fn every_rewind_option_is_a_flag_rewind_mount_takes() {
        let options: Vec<String> = REWIND_OPTIONS
            .iter()
            .map(|o| match o.value {
                Value::Required => format!("{}=7", o.name),
                _ => o.name.to_string(),
            })
            .collect();
        let line = command_line(&["repo", "/mnt", "-o", &options.join(",")]).unwrap();
        if let Err(e) = Cli::try_parse_from(&line) {
            panic!("{line:?}: {e}");
        }
    }

    #[test]
    fn what_a_user_mount_and_systemd_add_is_accepted() {
        let line = command_line(&[
            "repo",
            "/mnt",
            "-n",
            "-v",
            "-o",
            "noexec,nosuid,nodev,user=alice,x-systemd.automount,noatime",
            "-t",
            "fuse.rewind",
        ])
        .unwrap();
        assert_eq!(line[5..], ["--noexec"]);
    }

    #[test]
    fn a_quoted_value_keeps_its_commas() {
        let line =
            command_line(&["repo", "/mnt", "-o", r#"password_file="/root/a,b",ro"#]).unwrap();
        assert_eq!(line[5..], ["--password-file=/root/a,b"]);
    }

    #[test]
    fn unknown_and_impossible_options_are_refused_by_name() {
        let err = command_line(&["repo", "/mnt", "-o", "ro,bogus=1"]).unwrap_err();
        assert!(
            err.to_string().starts_with("unknown option bogus=1"),
            "{err}"
        );
        let err = command_line(&["repo", "/mnt", "-o", "suid"]).unwrap_err();
        assert!(err.to_string().contains("nosuid"), "{err}");
        let err = command_line(&["repo", "/mnt", "-o", "password_file"]).unwrap_err();
        assert!(err.to_string().contains("needs a value"), "{err}");
        let err = command_line(&["repo", "/mnt", "-o", "foreground"]).unwrap_err();
        assert!(err.to_string().starts_with("unknown option"), "{err}");
        // -s: mount(8)'s sloppy mode ignores them instead.
        let line = command_line(&["repo", "/mnt", "-s", "-o", "bogus"]).unwrap();
        assert_eq!(line.len(), 5);
    }

    #[test]
    fn a_missing_mountpoint_is_an_error() {
        let err = request(&["repo"]).unwrap_err();
        assert!(
            err.to_string().contains("a repository and a mountpoint"),
            "{err}"
        );
    }
}
