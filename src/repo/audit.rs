//! Audit records (`audit/<name>`): who ran which command on the repository,
//! when, on which snapshots, and how it ended. Each record names the
//! records it follows (the heads of the trail when it was written) by the
//! BLAKE3 digest of their plaintext, and carries its number among the
//! records its host wrote, so that `check` finds a record that was deleted
//! or altered. The digest is of the plaintext, not of the sealed file, so a
//! record keeps it when `copy` seals it again under another repository's
//! keys. The bytes are in `man/rewind-format.5` (AUDIT RECORDS), what the
//! chain detects and what it cannot in `docs/design.md`, section 7.
//!
//! Records are sealed metadata files like tombstones. Nothing removes
//! one (prune and forget leave them alone); only appending and `copy` add.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{read_each, write_with_parity, Repository, RepositoryState};
use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::id::Id;

pub const AUDIT_RECORD_VERSION: u32 = 1;

/// What a command says about itself; appending it makes it a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the command started.
    pub time: DateTime<Utc>,
    /// The machine and the user that ran it.
    pub host: String,
    pub user: String,
    /// The command, such as `backup` or `key add`.
    pub command: String,
    /// Its arguments as given, with the value of every option whose name
    /// says it is a password, secret or token left out.
    pub arguments: Vec<String>,
    /// The snapshots it made, read, forgot or copied.
    #[serde(default)]
    pub snapshots: Vec<Id>,
    #[serde(default)]
    pub bytes: AuditBytes,
    pub result: AuditResult,
    /// Why it failed, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub exit_code: i32,
    pub duration_secs: f64,
}

impl AuditEntry {
    /// The entry of `command`, starting now on this machine as this user;
    /// the caller fills in what happened when it is over.
    pub fn starting(command: &str, arguments: Vec<String>) -> AuditEntry {
        AuditEntry {
            time: Utc::now(),
            host: crate::host::hostname(),
            user: crate::host::current_user(),
            command: command.to_string(),
            arguments,
            snapshots: Vec::new(),
            bytes: AuditBytes::default(),
            result: AuditResult::Ok,
            error: None,
            exit_code: 0,
            duration_secs: 0.0,
        }
    }

    pub fn failed(&self) -> bool {
        self.result == AuditResult::Failed
    }
}

/// How a command ended: `ok` when it exited 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    Ok,
    Failed,
}

/// The bytes a command moved, as fits it: source bytes a backup read and
/// the bytes it added, what a restore wrote out, what a prune deleted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditBytes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
}

/// An audit record: an entry and its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub version: u32,
    /// The id of the repository the record was written in; a record
    /// copied from another repository keeps that one's.
    pub repository: Id,
    /// The record's number among those its host wrote in `repository`,
    /// from 1: a number missing in between is a record deleted.
    pub sequence: u64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// The digests of the records that no record followed when this one
    /// was written (the heads); two written at once follow the same heads,
    /// and the next names both.
    pub follows: Vec<Id>,
}

/// A record read from its file.
#[derive(Debug, Clone)]
pub struct AuditFile {
    /// The name of its file (the hash of its sealed bytes, which differ
    /// from one repository to another).
    pub name: String,
    /// BLAKE3 of its plaintext: what `follows` names, the same in every
    /// repository that holds the record.
    pub digest: Id,
    pub record: AuditRecord,
}

/// Every record of a repository, oldest first, and the files that do not
/// open or decode.
#[derive(Debug, Default)]
pub struct AuditTrail {
    pub records: Vec<AuditFile>,
    /// Record files that do not read, with why: altered or damaged.
    pub unreadable: Vec<(String, Error)>,
}

impl AuditTrail {
    /// The digests of the records no other record follows, in order.
    pub fn heads(&self) -> Vec<Id> {
        let followed: BTreeSet<Id> = self
            .records
            .iter()
            .flat_map(|f| f.record.follows.iter().copied())
            .collect();
        let heads: BTreeSet<Id> = self
            .records
            .iter()
            .map(|f| f.digest)
            .filter(|digest| !followed.contains(digest))
            .collect();
        heads.into_iter().collect()
    }

    /// The highest number `host` gave a record in `repository` (0: none).
    pub fn last_sequence(&self, repository: &Id, host: &str) -> u64 {
        self.records
            .iter()
            .map(|f| &f.record)
            .filter(|r| r.repository == *repository && r.entry.host == host)
            .map(|r| r.sequence)
            .max()
            .unwrap_or(0)
    }

    /// The digests of the records held.
    pub fn digests(&self) -> BTreeSet<Id> {
        self.records.iter().map(|f| f.digest).collect()
    }

    /// The records of each host in each repository, by sequence number:
    /// (repository, host) -> sequence -> the records with that number
    /// (two processes of one host appending at once may share one).
    pub fn by_writer(&self) -> BTreeMap<(Id, &str), BTreeMap<u64, Vec<&AuditFile>>> {
        let mut writers: BTreeMap<(Id, &str), BTreeMap<u64, Vec<&AuditFile>>> = BTreeMap::new();
        for file in &self.records {
            let record = &file.record;
            writers
                .entry((record.repository, record.entry.host.as_str()))
                .or_default()
                .entry(record.sequence)
                .or_default()
                .push(file);
        }
        writers
    }
}

/// What copying records from another repository did.
#[derive(Debug, Default)]
pub struct CopiedRecords {
    /// Records this repository lacked and now holds.
    pub copied: usize,
    /// Records of the source that do not read (`check` on the source
    /// reports them), with why.
    pub unreadable: Vec<(String, Error)>,
}

impl<S: RepositoryState> Repository<S> {
    /// Reads one record and checks it against its name.
    pub fn read_audit_record(&self, name: &str) -> Result<AuditFile> {
        let plaintext = self.read_verified(FileType::Audit, name)?;
        let record = decode(name, &plaintext)?;
        Ok(AuditFile {
            name: name.to_string(),
            digest: Id::of_bytes(&plaintext),
            record,
        })
    }

    /// Every record, oldest first (by time, then host and number), and the
    /// files that do not read.
    pub fn audit_trail(&self) -> Result<AuditTrail> {
        let names = self.list(FileType::Audit)?;
        let (results, _) = read_each(&names, |name| {
            Ok(self
                .read_audit_record(name)
                .map_err(|e| (name.to_string(), e)))
        });
        let (mut records, mut unreadable) = (Vec::new(), Vec::new());
        for result in results {
            match result {
                Ok(file) => records.push(file),
                Err(named) => unreadable.push(named),
            }
        }
        unreadable.sort_by(|a, b| a.0.cmp(&b.0));
        records.sort_by(|a, b| order(a).cmp(&order(b)));
        Ok(AuditTrail {
            records,
            unreadable,
        })
    }

    /// Appends `entry` to the trail: reads every record to find the heads
    /// it follows and its host's next number, then writes it. Records that
    /// do not read are left out of the heads (`check` reports them).
    pub fn append_audit(&self, entry: AuditEntry) -> Result<AuditFile> {
        let trail = self.audit_trail()?;
        let repository = self.config().id;
        let record = AuditRecord {
            version: AUDIT_RECORD_VERSION,
            repository,
            sequence: trail.last_sequence(&repository, &entry.host) + 1,
            entry,
            follows: trail.heads(),
        };
        crate::testing::pause_point("audit-append");
        let plaintext = serde_json::to_vec(&record).expect("audit records serialize");
        let name = self.write_audit_file(&plaintext)?;
        Ok(AuditFile {
            name,
            digest: Id::of_bytes(&plaintext),
            record,
        })
    }

    /// Copies the records of `source` that this repository lacks (by
    /// digest), their plaintext as it is, sealed under this repository's
    /// keys: the chain holds across repositories.
    pub fn copy_audit_records_from<T: RepositoryState>(
        &self,
        source: &Repository<T>,
    ) -> Result<CopiedRecords> {
        let have = self.audit_trail()?.digests();
        let theirs = source.audit_trail()?;
        let mut copied = CopiedRecords {
            unreadable: theirs.unreadable,
            ..CopiedRecords::default()
        };
        for file in theirs.records.iter().filter(|f| !have.contains(&f.digest)) {
            let plaintext = source.read_verified(FileType::Audit, &file.name)?;
            if Id::of_bytes(&plaintext) != file.digest {
                return Err(Error::corrupt(format!(
                    "audit/{} of {} changed while it was copied",
                    file.name,
                    source.location()
                )));
            }
            self.write_audit_file(&plaintext)?;
            copied.copied += 1;
        }
        Ok(copied)
    }

    /// Seals and stores a record, with its parity. Unlike other writes it
    /// does not first upgrade an older repository's format: a record is
    /// no reason to, and commands that only read data leave the format as
    /// it is (`man/rewind-format.5`, FORMAT VERSION).
    fn write_audit_file(&self, plaintext: &[u8]) -> Result<String> {
        let bytes = self.seal_file(plaintext)?;
        let name = Id::of_bytes(&bytes).to_hex();
        write_with_parity(
            self.backend(),
            self.config().parity_percent,
            FileType::Audit,
            &name,
            &bytes,
        )?;
        Ok(name)
    }
}

/// Oldest first: by time, then host and number.
fn order(file: &AuditFile) -> (DateTime<Utc>, &str, u64, Id) {
    let record = &file.record;
    (
        record.entry.time,
        &record.entry.host,
        record.sequence,
        file.digest,
    )
}

fn decode(name: &str, plaintext: &[u8]) -> Result<AuditRecord> {
    let record: AuditRecord = serde_json::from_slice(plaintext)
        .map_err(|e| Error::corrupt(format!("audit/{name} does not decode: {e}")))?;
    if record.version != AUDIT_RECORD_VERSION {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "audit/{name} is an audit record of version {}; this rewind reads version {AUDIT_RECORD_VERSION}",
                record.version
            ),
        )
        .with_hint("use a newer rewind"));
    }
    Ok(record)
}
