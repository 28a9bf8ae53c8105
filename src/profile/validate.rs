//! What a profile's types cannot say: a backup backs up paths or a
//! command's output, not both; a forget has a policy; values such as
//! durations and subsets parse as the command line would parse them (with
//! the same parsers), so that a mistake is found when the profile is read,
//! with its line, and not at night halfway through a run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::position::KeyPath;
use super::{Profile, ProfileBackup};
use crate::backend::{check_location, is_remote};
use crate::check::Subset;
use crate::forget::{parse_keep_duration, GroupBy};
use crate::restore::drill::parse_duration;

/// A key and what is wrong with it.
pub type Problem = (KeyPath, String);

/// Everything wrong with `profile` beyond its types.
pub fn problems(profile: &Profile) -> Vec<Problem> {
    let root = KeyPath::default;
    let mut found = Vec::new();
    let mut check = |path: KeyPath, result: crate::Result<()>| {
        if let Err(e) = result {
            found.push((path, e.to_string()));
        }
    };
    if let Some(location) = &profile.repository {
        check(root().key("repository"), check_location(location));
    }
    if let Some(copy) = &profile.copy {
        check(root().key("copy").key("to"), check_location(&copy.to));
    }
    if let Some(forget) = &profile.forget {
        for (key, value) in forget.within() {
            if let Some(text) = value {
                check(
                    root().key("forget").key(key),
                    parse_keep_duration(text).map(drop),
                );
            }
        }
        if let Some(text) = &forget.group_by {
            check(
                root().key("forget").key("group-by"),
                GroupBy::parse(text).map(drop),
            );
        }
    }
    if let Some(text) = profile
        .check
        .as_ref()
        .and_then(|c| c.read_data_subset.as_ref())
    {
        check(
            root().key("check").key("read-data-subset"),
            Subset::parse(text).map(drop),
        );
    }
    if let Some(text) = profile
        .restore_test
        .as_ref()
        .and_then(|r| r.max_age.as_ref())
    {
        check(
            root().key("restore-test").key("max-age"),
            parse_duration(text).map(drop),
        );
    }
    found.extend(backup_problems(&profile.backup));
    found.extend(section_problems(profile));
    found
}

/// Sections that say too little or contradict themselves.
fn section_problems(profile: &Profile) -> Vec<Problem> {
    let mut found = Vec::new();
    if profile.forget.as_ref().is_some_and(|f| !f.has_policy()) {
        found.push((
            KeyPath::default().key("forget"),
            "a [forget] needs a policy: keep-last, keep-daily, keep-within, keep-tag ...".into(),
        ));
    }
    if let Some(check) = &profile.check {
        if check.read_data && check.read_data_subset.is_some() {
            found.push((
                KeyPath::default().key("check").key("read-data-subset"),
                "read-data reads everything: give read-data or read-data-subset, not both".into(),
            ));
        }
    }
    if let (Some(copy), Some(repository)) = (&profile.copy, &profile.repository) {
        if &copy.to == repository {
            found.push((
                KeyPath::default().key("copy").key("to"),
                "the copy goes to the profile's own repository".into(),
            ));
        }
    }
    for (key, argv) in [
        ("before", &profile.hooks.before),
        ("after", &profile.hooks.after),
        ("on-success", &profile.hooks.on_success),
        ("on-failure", &profile.hooks.on_failure),
    ] {
        if argv.first().is_some_and(|program| program.is_empty()) {
            found.push((
                KeyPath::default().key("hooks").key(key),
                "the program (the first word) is empty".into(),
            ));
        }
    }
    found
}

fn backup_problems(backups: &[ProfileBackup]) -> Vec<Problem> {
    let mut found = Vec::new();
    let mut names = BTreeSet::new();
    for (index, backup) in backups.iter().enumerate() {
        let at = |key: &str| KeyPath::default().key("backup").index(index).key(key);
        let whole = KeyPath::default().key("backup").index(index);
        let from_command = !backup.stdin_command.is_empty();
        match (backup.paths.is_empty(), from_command) {
            (true, false) if backup.stdin_name.is_some() => found.push((
                at("stdin-name"),
                "a profile has no standard input: give stdin-command, the command whose output \
                 is stored under stdin-name"
                    .into(),
            )),
            (true, false) => found.push((
                whole.clone(),
                "a [[backup]] needs paths, or stdin-command and stdin-name".into(),
            )),
            (false, true) => found.push((
                at("stdin-command"),
                "a [[backup]] backs up paths or a command's output, not both".into(),
            )),
            (true, true) if backup.stdin_name.is_none() => found.push((
                at("stdin-command"),
                "stdin-command needs stdin-name, the path its output is stored as".into(),
            )),
            _ => {}
        }
        if backup.stdin_command.first().is_some_and(|p| p.is_empty()) {
            found.push((
                at("stdin-command"),
                "the program (the first word) is empty".into(),
            ));
        }
        let name = backup.name();
        if name.is_empty() || name.contains(char::is_whitespace) {
            let key = if backup.name.is_some() {
                at("name")
            } else {
                whole.clone()
            };
            found.push((
                key,
                format!(
                    "'{name}' cannot name a backup (run's summary and REWIND_FAILED_STEPS \
                     list steps by name): give a name without spaces"
                ),
            ));
        } else if !names.insert(name.clone()) {
            let key = if backup.name.is_some() {
                at("name")
            } else {
                whole
            };
            found.push((
                key,
                format!("a backup before this one is named '{name}' too: give each a name"),
            ));
        }
    }
    found
}

/// Makes the relative paths of `profile` relative to `directory` (the
/// profile's own), so that a profile means the same from any working
/// directory (a systemd unit runs in `/`).
pub fn resolve_relative_paths(profile: &mut Profile, directory: &Path) {
    let path = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = directory.join(&*p);
        }
    };
    // A location that does not parse is left as written, for its error.
    let location = |l: &mut String| {
        let local = check_location(l).is_ok() && !is_remote(l);
        if local && Path::new(l.as_str()).is_relative() {
            *l = directory.join(l.as_str()).to_string_lossy().into_owned();
        }
    };
    profile.repository.as_mut().map(location);
    profile.password_file.as_mut().map(path);
    profile.cache_dir.as_mut().map(path);
    for backup in &mut profile.backup {
        backup.paths.iter_mut().for_each(path);
    }
    if let Some(copy) = &mut profile.copy {
        location(&mut copy.to);
        copy.password_file.as_mut().map(path);
    }
    if let Some(test) = &mut profile.restore_test {
        for p in [&mut test.scratch, &mut test.against, &mut test.junit] {
            p.as_mut().map(path);
        }
    }
}
