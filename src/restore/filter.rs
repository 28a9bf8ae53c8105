//! Which entries of a snapshot a restore (or a comparison) takes: `--include`
//! and `--exclude` globs on the entry's absolute path in the snapshot, and
//! the deterministic sample of `restore-test --sample`.

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::repo::Id;

/// A deterministic sample of files: a file is in it when a keyed hash of its
/// path falls below the fraction. The key is a snapshot's id, so running
/// again on the same snapshot checks the same files, and each new snapshot
/// gets a different sample: nightly runs cover the whole tree over time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    fraction: f64,
    key: [u8; 32],
}

impl Sample {
    /// `text` is a percentage such as `5%` or `0.5%`.
    pub fn parse(text: &str, key: &Id) -> Result<Sample> {
        let percent: f64 = text
            .strip_suffix('%')
            .and_then(|p| p.trim().parse().ok())
            .filter(|p| (0.0..=100.0).contains(p) && *p > 0.0)
            .ok_or_else(|| {
                Error::usage(format!(
                    "'{text}' is not a sample size: use a percentage such as 5%"
                ))
            })?;
        Ok(Sample {
            fraction: percent / 100.0,
            key: key.0,
        })
    }

    pub fn percent(&self) -> f64 {
        self.fraction * 100.0
    }

    pub fn contains(&self, path: &str) -> bool {
        Id(*blake3::keyed_hash(&self.key, path.as_bytes()).as_bytes()).fraction() < self.fraction
    }
}

#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    includes: Option<GlobSet>,
    excludes: Option<GlobSet>,
    sample: Option<Sample>,
}

fn glob_set(patterns: &[String], flag: &str) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(
            Glob::new(pattern).map_err(|e| Error::usage(format!("bad {flag} '{pattern}': {e}")))?,
        );
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| Error::usage(format!("bad {flag}: {e}")))
}

/// Whether `path` or one of its parent directories matches.
fn matches_here_or_above(globs: &GlobSet, path: &str) -> bool {
    Path::new(path).ancestors().any(|a| globs.is_match(a))
}

impl PathFilter {
    pub fn new(includes: &[String], excludes: &[String], sample: Option<Sample>) -> Result<Self> {
        Ok(PathFilter {
            includes: glob_set(includes, "--include")?,
            excludes: glob_set(excludes, "--exclude")?,
            sample,
        })
    }

    fn excluded(&self, path: &str) -> bool {
        self.excludes
            .as_ref()
            .is_some_and(|g| matches_here_or_above(g, path))
    }

    fn included(&self, path: &str) -> bool {
        self.includes
            .as_ref()
            .is_none_or(|g| matches_here_or_above(g, path))
    }

    /// Whether the entry at `path` (absolute, in the snapshot) is taken. A
    /// directory is walked unless excluded, since something below it may be
    /// included.
    pub fn admits(&self, path: &str, is_dir: bool) -> bool {
        if self.excluded(path) {
            return false;
        }
        is_dir || (self.included(path) && self.sample.is_none_or(|s| s.contains(path)))
    }

    /// Whether an entry at `path` that the snapshot does not have may be
    /// deleted by `restore --delete`: it is inside what the globs select
    /// (a directory only if it, or a parent, matches an include).
    pub fn owns(&self, path: &str) -> bool {
        !self.excluded(path) && self.included(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn includes_and_excludes_apply_to_paths_and_what_they_contain() {
        let f = PathFilter::new(&strings(&["/etc/ssh"]), &strings(&["*.bak"]), None).unwrap();
        assert!(f.admits("/etc/ssh/sshd_config", false));
        assert!(f.admits("/etc/ssh/keys/k", false));
        assert!(!f.admits("/etc/hosts", false));
        assert!(f.admits("/etc", true), "walked: it may contain a match");
        assert!(!f.admits("/etc/ssh/old.bak", false));
        assert!(
            !f.admits("/etc/ssh/x.bak", true),
            "excluded directories are not walked"
        );
        assert!(!f.admits("/etc/ssh/x.bak/inner", false));
        assert!(f.owns("/etc/ssh/extra"));
        assert!(!f.owns("/etc/extra"), "outside the includes: never deleted");
        assert!(!f.owns("/etc/ssh/extra.bak"));
        assert!(PathFilter::new(&strings(&["["]), &[], None).is_err());
    }

    #[test]
    fn samples_are_deterministic_and_about_the_right_size() {
        let key = Id([3; 32]);
        let s = Sample::parse("5%", &key).unwrap();
        let paths: Vec<String> = (0..20_000).map(|i| format!("/data/f{i}")).collect();
        let chosen: Vec<&String> = paths.iter().filter(|p| s.contains(p)).collect();
        assert!(
            (800..1200).contains(&chosen.len()),
            "{} of 20000 files in a 5% sample",
            chosen.len()
        );
        let again: Vec<&String> = paths.iter().filter(|p| s.contains(p)).collect();
        assert_eq!(chosen, again);
        let other = Sample::parse("5%", &Id([4; 32])).unwrap();
        assert!(paths
            .iter()
            .filter(|p| other.contains(p))
            .ne(chosen.iter().copied()));
        assert!(paths
            .iter()
            .all(|p| Sample::parse("100%", &key).unwrap().contains(p)));
        for bad in ["5", "0%", "101%", "x%", ""] {
            assert!(Sample::parse(bad, &key).is_err(), "{bad}");
        }
        let f = PathFilter::new(&[], &[], Some(s)).unwrap();
        assert!(f.admits("/data", true), "directories are always walked");
        assert!(f.admits(chosen[0], false));
    }
}
