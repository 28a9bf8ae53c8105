//! Object lock: files a store keeps under retention, which no one (the
//! client that wrote them included) can delete or overwrite before a date.
//! S3 Object Lock is the one store that gives it; `docs/design.md`
//! (section 7, "Object lock") says what it protects against, and
//! `man/rewind-format.5` how a repository records it.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::FileType;

/// How firmly a store keeps a file under retention (S3's two modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    /// A user with the `s3:BypassGovernanceRetention` permission may still
    /// delete or shorten it: protection against everyone else.
    Governance,
    /// No one, the account's root user included, can delete or shorten
    /// it before the date.
    Compliance,
}

impl LockMode {
    /// The value of S3's `x-amz-object-lock-mode` and `<Mode>`.
    pub fn s3_name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn from_s3_name(name: &str) -> Option<LockMode> {
        match name.trim() {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// A repository's object lock: each file it writes is kept for `period`
/// from when it is written, and `rewind retention renew` extends the files
/// the kept snapshots need to `period` from then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    pub mode: LockMode,
    /// In seconds.
    pub period: u64,
}

impl ObjectLock {
    pub fn period(&self) -> Duration {
        Duration::seconds(i64::try_from(self.period).unwrap_or(i64::MAX / 1000))
    }

    /// The retention a file written or renewed at `now` gets, in whole
    /// seconds as S3 keeps it.
    pub fn retention_from(&self, now: DateTime<Utc>) -> Retention {
        Retention {
            mode: self.mode,
            until: (now + self.period()).trunc_subsecs(0),
        }
    }
}

/// Whether the file `name` of `kind` is kept under retention. Locks and
/// deletion plans (and their parity) are not: a lock must be removable when
/// its command ends, and a deletion plan when it has been carried out or
/// replaced; neither holds anything a snapshot needs.
pub fn is_retained(kind: FileType, name: &str) -> bool {
    let removable = [FileType::Lock, FileType::Deletion];
    match kind {
        // Parity is named `<dir of the file it protects>.<its name>`.
        FileType::Parity => !removable
            .iter()
            .any(|k| name.split_once('.').is_some_and(|(dir, _)| dir == k.dir())),
        other => !removable.contains(&other),
    }
}

/// The retention of one stored file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub mode: LockMode,
    pub until: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_spelling_and_s3_names() {
        let lock = ObjectLock {
            mode: LockMode::Compliance,
            period: 30 * 86_400,
        };
        assert_eq!(
            serde_json::to_string(&lock).unwrap(),
            r#"{"mode":"compliance","period":2592000}"#
        );
        for mode in [LockMode::Governance, LockMode::Compliance] {
            assert_eq!(LockMode::from_s3_name(mode.s3_name()), Some(mode));
        }
        assert_eq!(LockMode::from_s3_name("governance"), None);
    }

    #[test]
    fn locks_and_deletion_plans_stay_removable() {
        assert!(is_retained(FileType::Pack, "ab01"));
        assert!(is_retained(FileType::Config, "config"));
        assert!(is_retained(FileType::Parity, "data.ab01"));
        assert!(is_retained(FileType::Parity, "config"));
        assert!(!is_retained(FileType::Lock, "ab01"));
        assert!(!is_retained(FileType::Deletion, "ab01"));
        assert!(!is_retained(FileType::Parity, "deletions.ab01"));
    }
}
