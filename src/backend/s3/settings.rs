//! What the `REWIND_S3_*` variables (and `AWS_CA_BUNDLE`) tune: addressing
//! style, connections, timeouts, multipart part size and retries. Each has
//! a default that suits AWS and self-hosted stores alike; `man/rewind.1`
//! (ENVIRONMENT) documents them.

use std::path::PathBuf;
use std::time::Duration;

use super::credentials::Environment;
use crate::error::{Error, Result};

/// S3's smallest part (all but the last) in a multipart upload.
const MIN_PART_SIZE: usize = 5 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `Some(true)`: path-style requests, `Some(false)`: virtual-host
    /// style; `None`: path-style for a custom endpoint, virtual-host for AWS.
    pub path_style: Option<bool>,
    /// Requests in flight at once, over all threads.
    pub connections: usize,
    /// How long a connection may take, and how long one read or write may
    /// stall, before the request fails (and is retried).
    pub timeout: Duration,
    /// Objects larger than this go up in parts of this size.
    pub part_size: usize,
    /// Tries of one operation before it fails, the first included.
    pub attempts: u32,
    /// PEM file of the certificate authorities to trust instead of the
    /// built-in ones (a private CA).
    pub ca_bundle: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            path_style: None,
            connections: 16,
            timeout: Duration::from_secs(60),
            part_size: 64 << 20,
            attempts: 8,
            ca_bundle: None,
        }
    }
}

impl Settings {
    pub fn from_env(env: &Environment) -> Result<Settings> {
        let defaults = Settings::default();
        let number = |name: &str, min: u64, max: u64| -> Result<Option<u64>> {
            env.var(name)
                .map(|value| {
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (min..=max).contains(n))
                        .ok_or_else(|| {
                            Error::usage(format!(
                                "{name}={value} is not a number from {min} to {max}"
                            ))
                        })
                })
                .transpose()
        };
        let path_style = match env.var("REWIND_S3_PATH_STYLE").as_deref() {
            None => None,
            Some("1" | "true" | "yes") => Some(true),
            Some("0" | "false" | "no") => Some(false),
            Some(other) => {
                return Err(Error::usage(format!(
                    "REWIND_S3_PATH_STYLE={other}: say true or false"
                )))
            }
        };
        Ok(Settings {
            path_style,
            connections: number("REWIND_S3_CONNECTIONS", 1, 1024)?
                .map_or(defaults.connections, |n| n as usize),
            timeout: number("REWIND_S3_TIMEOUT", 1, 86_400)?
                .map_or(defaults.timeout, Duration::from_secs),
            part_size: number("REWIND_S3_PART_SIZE", (MIN_PART_SIZE >> 20) as u64, 5 << 10)?
                .map_or(defaults.part_size, |mib| (mib as usize) << 20),
            attempts: number("REWIND_S3_RETRIES", 0, 100)?
                .map_or(defaults.attempts, |retries| retries as u32 + 1),
            ca_bundle: env.var("AWS_CA_BUNDLE").map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        Settings::from_env(&Environment::new(&lookup))
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(settings(&[]).unwrap(), Settings::default());
        let s = settings(&[
            ("REWIND_S3_PATH_STYLE", "false"),
            ("REWIND_S3_CONNECTIONS", "4"),
            ("REWIND_S3_TIMEOUT", "5"),
            ("REWIND_S3_PART_SIZE", "5"),
            ("REWIND_S3_RETRIES", "0"),
            ("AWS_CA_BUNDLE", "/etc/ca.pem"),
        ])
        .unwrap();
        assert_eq!(s.path_style, Some(false));
        assert_eq!(s.connections, 4);
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.part_size, 5 << 20);
        assert_eq!(s.attempts, 1);
        assert_eq!(s.ca_bundle, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (name, value) in [
            ("REWIND_S3_PART_SIZE", "4"),
            ("REWIND_S3_CONNECTIONS", "0"),
            ("REWIND_S3_TIMEOUT", "soon"),
            ("REWIND_S3_PATH_STYLE", "maybe"),
        ] {
            let e = settings(&[(name, value)]).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}
