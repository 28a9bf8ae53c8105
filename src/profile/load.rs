//! Finding a profile by name and reading it: every error names the file,
//! the line and the key.

use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::position::{key_at, line_of, span_of, KeyPath};
use super::validate::{problems, resolve_relative_paths};
use super::Profile;
use crate::error::{Error, ErrorKind, Result};

/// Where system-wide profiles live.
const SYSTEM_DIR: &str = "/etc/rewind";

/// A profile and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    /// The name it was asked for by (`-P NAME`).
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    pub profile: Profile,
}

/// Where the profile `name` is looked for, in order: a name with a `/` is
/// a path; any other is `/etc/rewind/NAME.toml`, then
/// `$XDG_CONFIG_HOME/rewind/NAME.toml` (else `~/.config/rewind/NAME.toml`).
pub fn profile_places(name: &str) -> Vec<PathBuf> {
    if name.contains('/') {
        return vec![PathBuf::from(name)];
    }
    let file = format!("{name}.toml");
    let mut places = vec![Path::new(SYSTEM_DIR).join(&file)];
    if let Some(config) = config_home() {
        places.push(config.join("rewind").join(&file));
    }
    places
}

/// The user's configuration directory, as the XDG base directory
/// specification defines it.
fn config_home() -> Option<PathBuf> {
    let absolute = |value: std::ffi::OsString| {
        let path = PathBuf::from(value);
        path.is_absolute().then_some(path)
    };
    std::env::var_os("XDG_CONFIG_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".config"))
        })
}

/// The file the profile `name` is read from: the first of
/// [`profile_places`] that exists.
pub fn find_profile(name: &str) -> Result<PathBuf> {
    if name.is_empty() {
        return Err(Error::usage("the profile name is empty"));
    }
    let places = profile_places(name);
    if let Some(found) = places.iter().find(|p| p.exists()) {
        // Absolute, so that the paths in it and the steps of `run` do not
        // depend on the working directory.
        return Ok(std::path::absolute(found).unwrap_or_else(|_| found.clone()));
    }
    let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
    Err(Error::new(
        ErrorKind::NotFound,
        format!("no profile {name}: there is no {}", looked.join(" nor ")),
    )
    .with_hint(format!(
        "write one (see rewind-profile(5)), or name a file by its path: -P ./{name}.toml"
    )))
}

/// Finds the profile `name` and reads it.
pub fn load_profile(name: &str) -> Result<LoadedProfile> {
    let path = find_profile(name)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("cannot read the profile {}", path.display()), e))?;
    let profile = parse_profile(&text, &path)?;
    Ok(LoadedProfile {
        name: name.to_string(),
        path,
        profile,
    })
}

/// Reads a profile's text; `path` names it in errors, and its directory is
/// where relative paths in it start.
pub fn parse_profile(text: &str, path: &Path) -> Result<Profile> {
    let document = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|span| line_of(text, span.start));
        located(path, line, &KeyPath::default(), e.message())
    })?;
    let mut profile: Profile = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => located(
            path,
            Some(line_of(text, span.start)),
            &key_at(&document, span.start),
            e.message(),
        ),
        None => located(path, None, &KeyPath::default(), e.message()),
    })?;
    let directory = path.parent().unwrap_or(Path::new("."));
    resolve_relative_paths(&mut profile, directory);
    let found = problems(&profile);
    if !found.is_empty() {
        let mut located_problems: Vec<(Option<usize>, String)> = found
            .iter()
            .map(|(key, why)| {
                let line = span_of(&document, key).map(|span| line_of(text, span.start));
                (line, located(path, line, key, why).to_string())
            })
            .collect();
        located_problems.sort_by_key(|(line, _)| *line);
        let lines: Vec<String> = located_problems.into_iter().map(|(_, l)| l).collect();
        return Err(Error::usage(lines.join("; ")).with_hint(SCHEMA_HINT));
    }
    Ok(profile)
}

const SCHEMA_HINT: &str = "every key, its type and its default are in rewind-profile(5)";

/// `FILE:LINE: KEY: why`.
fn located(path: &Path, line: Option<usize>, key: &KeyPath, why: &str) -> Error {
    let mut message = path.display().to_string();
    if let Some(line) = line {
        message.push_str(&format!(":{line}"));
    }
    if !key.is_empty() {
        message.push_str(&format!(": {key}"));
    }
    message.push_str(&format!(": {why}"));
    Error::usage(message).with_hint(SCHEMA_HINT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile> {
        parse_profile(text, Path::new("/etc/rewind/nightly.toml"))
    }

    #[test]
    fn the_issues_example_reads() {
        let profile = parse(
            r#"
repository = "/srv/backup/repo"
password-file = "/root/.rewind-pw"

[[backup]]
paths = ["/etc", "/srv/www"]
exclude = ["/srv/www/cache"]
tags = ["nightly"]

[[backup]]
stdin-command = ["pg_dump", "--format=custom", "app"]   # a failed command never becomes a snapshot
stdin-name = "db/app.dump"

[forget]
keep-daily = 14
keep-weekly = 8
prune = true

[check]
read-data-subset = "1/7"

[copy]
to = "s3://offsite/host1"

[hooks]
on-failure = ["curl", "-fsS", "-m", "10", "https://hc.example/fail"]
"#,
        )
        .unwrap();
        assert_eq!(profile.backup.len(), 2);
        assert_eq!(profile.backup[0].name(), "/etc,/srv/www");
        assert_eq!(profile.backup[1].name(), "db/app.dump");
        assert_eq!(profile.forget.as_ref().unwrap().keep_daily, Some(14));
        assert!(profile.forget.unwrap().prune);
        assert_eq!(profile.copy.unwrap().to, "s3://offsite/host1");
        assert_eq!(profile.hooks.on_failure[0], "curl");
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let e = parse("repository = \"/r\"\n[forget]\nkeep-dayly = 3\n").unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with("/etc/rewind/nightly.toml:3: forget.keep-dayly: unknown field"),
            "{message}"
        );
    }

    #[test]
    fn wrong_types_name_file_line_and_key() {
        let e = parse("[forget]\nkeep-daily = \"14\"\n").unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with("/etc/rewind/nightly.toml:2: forget.keep-daily: invalid type"),
            "{message}"
        );
        let e = parse("[[backup]]\npaths = [\"/a\"]\n[[backup]]\npaths = \"/b\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/rewind/nightly.toml:4: backup[2].paths: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("repository = \"/r\"\n[forget\n").unwrap_err();
        assert!(
            e.to_string().starts_with("/etc/rewind/nightly.toml:2: "),
            "{e}"
        );
    }

    #[test]
    fn problems_beyond_types_name_their_key() {
        let e = parse("[[backup]]\npaths = [\"/a\"]\n\n[check]\nread-data-subset = \"8/7\"\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/rewind/nightly.toml:5: check.read-data-subset: "),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_start_at_the_profiles_directory() {
        let profile = parse(
            "repository = \"repo\"\npassword-file = \"pw\"\n[[backup]]\npaths = [\"data\", \"/abs\"]\n[copy]\nto = \"s3://b/p\"\n",
        )
        .unwrap();
        assert_eq!(profile.repository.as_deref(), Some("/etc/rewind/repo"));
        assert_eq!(
            profile.password_file.as_deref(),
            Some(Path::new("/etc/rewind/pw"))
        );
        assert_eq!(
            profile.backup[0].paths,
            [PathBuf::from("/etc/rewind/data"), PathBuf::from("/abs")]
        );
        assert_eq!(profile.copy.unwrap().to, "s3://b/p");
    }

    #[test]
    fn names_with_a_slash_are_paths() {
        assert_eq!(profile_places("./x.toml"), [PathBuf::from("./x.toml")]);
        assert_eq!(
            profile_places("nightly")[0],
            PathBuf::from("/etc/rewind/nightly.toml")
        );
    }
}
