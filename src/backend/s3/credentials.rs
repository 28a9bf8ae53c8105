//! Credentials and region, found where the AWS SDKs look: the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION` / `AWS_DEFAULT_REGION`), then the profile `AWS_PROFILE`
//! (else `default`) in `~/.aws/credentials` and `~/.aws/config` (or the
//! files `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` name).

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The region when nothing names one, as in the AWS SDKs.
const DEFAULT_REGION: &str = "us-east-1";

/// A key pair, and the token of temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    /// Never prints the secret, so that credentials can sit in a struct
    /// that is debug-printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// Where credentials and region come from: a variable lookup, so tests can
/// give their own environment.
pub struct Environment<'a> {
    var: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Environment<'a> {
    pub fn new(var: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Environment { var }
    }

    /// A variable's value; set but empty counts as unset, as in the SDKs.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.is_empty())
    }

    fn profile_name(&self) -> (String, bool) {
        match self.var("AWS_PROFILE") {
            Some(name) => (name, true),
            None => ("default".to_string(), false),
        }
    }

    fn aws_file(&self, variable: &str, default_name: &str) -> Option<PathBuf> {
        self.var(variable).map(PathBuf::from).or_else(|| {
            self.var("HOME")
                .map(|home| PathBuf::from(home).join(".aws").join(default_name))
        })
    }

    /// The `[profile]` section of the shared credentials file and the
    /// `[profile NAME]` (or `[default]`) section of the config file, the
    /// former first.
    fn profile_sections(&self) -> Result<(Vec<Section>, String, bool)> {
        let (name, named) = self.profile_name();
        let mut sections = Vec::new();
        if let Some(path) = self.aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials") {
            sections.extend(read_profile(&path, &name)?);
        }
        if let Some(path) = self.aws_file("AWS_CONFIG_FILE", "config") {
            let header = if name == "default" {
                name.clone()
            } else {
                format!("profile {name}")
            };
            sections.extend(read_profile(&path, &header)?);
        }
        Ok((sections, name, named))
    }

    /// The credentials: from the environment, else from the profile.
    pub fn credentials(&self) -> Result<Credentials> {
        let from_env = (
            self.var("AWS_ACCESS_KEY_ID"),
            self.var("AWS_SECRET_ACCESS_KEY"),
        );
        match from_env {
            (Some(access_key), Some(secret_key)) => {
                return Ok(Credentials {
                    access_key,
                    secret_key,
                    session_token: self.var("AWS_SESSION_TOKEN"),
                })
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::usage(
                    "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set; set both",
                ))
            }
            (None, None) => {}
        }
        let (sections, name, named) = self.profile_sections()?;
        let value = |key: &str| sections.iter().find_map(|s| s.get(key));
        match (value("aws_access_key_id"), value("aws_secret_access_key")) {
            (Some(access_key), Some(secret_key)) => Ok(Credentials {
                access_key,
                secret_key,
                session_token: value("aws_session_token"),
            }),
            _ if named => Err(Error::usage(format!(
                "the AWS profile {name:?} (AWS_PROFILE) has no aws_access_key_id and \
                 aws_secret_access_key in ~/.aws/credentials or ~/.aws/config"
            ))),
            _ => Err(Error::usage("no S3 credentials").with_hint(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a \
                 profile in ~/.aws/credentials",
            )),
        }
    }

    /// The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's
    /// `region`, else us-east-1.
    pub fn region(&self) -> Result<String> {
        if let Some(region) = self
            .var("AWS_REGION")
            .or_else(|| self.var("AWS_DEFAULT_REGION"))
        {
            return Ok(region);
        }
        let (sections, _, _) = self.profile_sections()?;
        Ok(sections
            .iter()
            .find_map(|s| s.get("region"))
            .unwrap_or_else(|| DEFAULT_REGION.to_string()))
    }
}

/// One `[section]` of an INI file: its `key = value` lines.
struct Section {
    entries: Vec<(String, String)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// The section `[header]` of the INI file at `path`; a missing file has none.
fn read_profile(path: &std::path::Path, header: &str) -> Result<Option<Section>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_section(&text, header)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

fn parse_section(text: &str, header: &str) -> Option<Section> {
    let mut found: Option<Section> = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == header;
            if inside && found.is_none() {
                found = Some(Section {
                    entries: Vec::new(),
                });
            }
            continue;
        }
        if let (true, Some((key, value)), Some(section)) =
            (inside, line.split_once('='), found.as_mut())
        {
            section
                .entries
                .push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::error::ErrorKind;

    fn env_of(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn with_env<T>(vars: &HashMap<String, String>, f: impl FnOnce(&Environment) -> T) -> T {
        let lookup = |name: &str| vars.get(name).cloned();
        f(&Environment::new(&lookup))
    }

    #[test]
    fn the_environment_comes_first() {
        let vars = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_DEFAULT_REGION", "eu-west-3"),
            ("HOME", "/nonexistent"),
        ]);
        let (credentials, region) = with_env(&vars, |e| (e.credentials().unwrap(), e.region()));
        assert_eq!(credentials.access_key, "AKID");
        assert_eq!(credentials.session_token.as_deref(), Some("token"));
        assert_eq!(region.unwrap(), "eu-west-3");
        assert!(!format!("{credentials:?}").contains("secret"));
    }

    #[test]
    fn a_profile_supplies_what_the_environment_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let aws = dir.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = d\n\n\
             [offsite]\n# a comment\naws_access_key_id=OFFSITEKEY\naws_secret_access_key = s3cr=t\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            "[default]\nregion = us-west-2\n[profile offsite]\nregion = eu-central-1\n",
        )
        .unwrap();
        let home = dir.path().to_str().unwrap();

        let vars = env_of(&[("HOME", home)]);
        let (credentials, region) = with_env(&vars, |e| (e.credentials().unwrap(), e.region()));
        assert_eq!(credentials.access_key, "DEFAULTKEY");
        assert_eq!(region.unwrap(), "us-west-2");

        let vars = env_of(&[("HOME", home), ("AWS_PROFILE", "offsite")]);
        let (credentials, region) = with_env(&vars, |e| (e.credentials().unwrap(), e.region()));
        assert_eq!(credentials.access_key, "OFFSITEKEY");
        assert_eq!(credentials.secret_key, "s3cr=t");
        assert_eq!(region.unwrap(), "eu-central-1");

        let vars = env_of(&[("HOME", home), ("AWS_PROFILE", "missing")]);
        let error = with_env(&vars, |e| e.credentials().unwrap_err());
        assert!(error.to_string().contains("\"missing\""), "{error}");
    }

    #[test]
    fn nothing_at_all_is_a_clear_error() {
        let vars = env_of(&[("HOME", "/nonexistent")]);
        let error = with_env(&vars, |e| e.credentials().unwrap_err());
        assert_eq!(error.kind(), ErrorKind::Usage);
        assert!(error.hint().unwrap().contains("AWS_ACCESS_KEY_ID"));
        assert_eq!(with_env(&vars, |e| e.region().unwrap()), "us-east-1");

        let vars = env_of(&[("AWS_ACCESS_KEY_ID", "AKID")]);
        assert!(with_env(&vars, |e| e.credentials()).is_err());
    }
}
