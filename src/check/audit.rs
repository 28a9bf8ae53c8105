//! The audit trail's part of `check`: every record must open (one that
//! does not was altered or damaged), every digest a record follows must be
//! a record the repository holds, and each host's numbers must run without
//! a gap (a record missing from either was deleted). What the chain cannot
//! see is in `docs/design.md`, section 7.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::repo::{AuditFile, AuditTrail, Id, Repository, RepositoryState};

use super::CheckReport;

/// What to do about a record that does not open.
const ALTERED_HINT: &str = "an audit record that does not open was altered or damaged: keep the \
     file as evidence; `rewind scrub --repair` rebuilds it when the repository keeps parity, \
     and `rewind copy --from-repo` brings it back from a copy of this repository that has it";

/// What to do about a record that is gone.
const DELETED_HINT: &str = "audit records were deleted from the repository (rewind never \
     deletes one): find out who could write to it, and bring them back with `rewind copy \
     --from-repo` from a copy of this repository made before";

/// Reads every record and adds what is wrong with the trail to `report`.
pub(super) fn check_audit_trail<S: RepositoryState>(
    repo: &Repository<S>,
    report: &mut CheckReport,
) -> Result<()> {
    let trail = repo.audit_trail()?;
    report.audit_records = trail.records.len();
    let problems = problems(&trail);
    if problems.altered > 0 {
        report.hints.push(ALTERED_HINT.into());
    }
    if problems.deleted > 0 {
        report.hints.push(DELETED_HINT.into());
    }
    report.errors.extend(problems.messages);
    Ok(())
}

/// What is wrong with a trail, in words.
#[derive(Default)]
struct Problems {
    messages: Vec<String>,
    altered: usize,
    deleted: usize,
}

fn problems(trail: &AuditTrail) -> Problems {
    let mut found = Problems::default();
    for (name, why) in &trail.unreadable {
        found.altered += 1;
        let why = why.to_string();
        let file = format!("audit/{name}");
        // The reason names the file, as a rule.
        let which = if why.contains(&file) {
            String::new()
        } else {
            format!(" {file}")
        };
        found.messages.push(format!(
            "audit record{which} does not open (altered or damaged): {why}"
        ));
    }
    // A record that does not open has no digest or number to show: what
    // it stood for looks missing.
    let or_unreadable = if trail.unreadable.is_empty() {
        ""
    } else {
        " (deleted, or one of the records above that do not open)"
    };
    for (digest, followers) in missing_followed(trail) {
        found.deleted += 1;
        let first = followers[0];
        let also = match followers.len() - 1 {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        found.messages.push(format!(
            "audit record {} is missing{or_unreadable}: audit/{} ({}) follows it{also}",
            digest.short(),
            first.name,
            describe(first)
        ));
    }
    for gap in gaps(trail) {
        found.deleted += 1;
        let numbers = match gap.missing {
            (first, last) if first == last => format!("record {first}"),
            (first, last) => format!("records {first} to {last}"),
        };
        let neighbours: Vec<String> = [gap.before, gap.after]
            .into_iter()
            .flatten()
            .map(|f| format!("{} is audit/{}", f.record.sequence, f.name))
            .collect();
        found.messages.push(format!(
            "audit {numbers} of host {} (written in repository {}) {} missing{or_unreadable}: its record {}",
            gap.host,
            gap.repository.short(),
            if gap.missing.0 == gap.missing.1 {
                "is"
            } else {
                "are"
            },
            neighbours.join(", its record ")
        ));
    }
    found
}

/// Digests that records follow and no record has, with the records that
/// follow each.
fn missing_followed(trail: &AuditTrail) -> BTreeMap<Id, Vec<&AuditFile>> {
    let held = trail.digests();
    let mut missing: BTreeMap<Id, Vec<&AuditFile>> = BTreeMap::new();
    for file in &trail.records {
        for digest in &file.record.follows {
            if !held.contains(digest) {
                missing.entry(*digest).or_default().push(file);
            }
        }
    }
    missing
}

/// Numbers missing from one host's records in one repository.
struct Gap<'a> {
    repository: Id,
    host: &'a str,
    /// The first and last number missing.
    missing: (u64, u64),
    /// The records on either side (none before a gap at the start).
    before: Option<&'a AuditFile>,
    after: Option<&'a AuditFile>,
}

fn gaps(trail: &AuditTrail) -> Vec<Gap<'_>> {
    let mut gaps = Vec::new();
    for ((repository, host), numbers) in trail.by_writer() {
        let mut previous: Option<(u64, &AuditFile)> = None;
        for (&number, files) in &numbers {
            let expected = previous.map_or(1, |(n, _)| n + 1);
            if number > expected {
                gaps.push(Gap {
                    repository,
                    host,
                    missing: (expected, number - 1),
                    before: previous.map(|(_, f)| f),
                    after: Some(files[0]),
                });
            }
            previous = Some((number, files[0]));
        }
    }
    gaps
}

/// A record in a few words: who, what and when.
fn describe(file: &AuditFile) -> String {
    let entry = &file.record.entry;
    format!(
        "{} on {} at {}",
        entry.command,
        entry.host,
        entry
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{AuditEntry, AuditRecord, AUDIT_RECORD_VERSION};

    /// A trail written in order by `hosts` (one record each), every
    /// record following the one before.
    fn chain(hosts: &[&str]) -> AuditTrail {
        let repository = Id([7; 32]);
        let mut trail = AuditTrail::default();
        for (i, host) in hosts.iter().enumerate() {
            let mut entry = AuditEntry::starting("backup", vec![]);
            entry.host = host.to_string();
            let record = AuditRecord {
                version: AUDIT_RECORD_VERSION,
                repository,
                sequence: trail.last_sequence(&repository, host) + 1,
                entry,
                follows: trail.heads(),
            };
            let plaintext = serde_json::to_vec(&record).unwrap();
            trail.records.push(AuditFile {
                name: format!("file{i}"),
                digest: Id::of_bytes(&plaintext),
                record,
            });
        }
        trail
    }

    #[test]
    fn a_whole_chain_has_no_problems() {
        let trail = chain(&["a", "b", "a", "a", "b"]);
        assert_eq!(trail.heads(), vec![trail.records[4].digest]);
        assert!(problems(&trail).messages.is_empty());
    }

    #[test]
    fn a_record_deleted_from_the_middle_is_named_by_its_follower_and_its_gap() {
        let mut trail = chain(&["a", "a", "a", "b"]);
        let gone = trail.records.remove(1);
        let found = problems(&trail);
        assert_eq!(found.deleted, 2, "{:?}", found.messages);
        assert!(found.messages[0].contains(&gone.digest.short()));
        assert!(found.messages[0].contains("audit/file2"));
        assert!(found.messages[1].contains("record 2 of host a"));
        assert!(
            found.messages[1].contains("audit/file0") && found.messages[1].contains("audit/file2")
        );
    }

    #[test]
    fn a_record_no_one_follows_is_found_by_its_hosts_gap() {
        // Host a's second record is a head beside b's branch: nothing
        // follows it, but a's third record leaves a gap.
        let mut trail = chain(&["a", "a", "a"]);
        trail.records[2].record.follows.clear();
        let gone = trail.records.remove(1);
        let found = problems(&trail);
        assert_eq!(found.messages.len(), 1, "{:?}", found.messages);
        assert!(found.messages[0].contains("record 2 of host a"));
        assert!(!found.messages[0].contains(&gone.digest.short()));
    }

    #[test]
    fn the_newest_record_deleted_goes_unseen() {
        // The limit the design documents: nothing names it yet.
        let mut trail = chain(&["a", "b", "a"]);
        trail.records.pop();
        assert!(problems(&trail).messages.is_empty());
    }

    #[test]
    fn the_first_records_of_a_host_missing_is_a_gap() {
        let mut trail = chain(&["a", "a", "b"]);
        trail.records.remove(0);
        trail.records[0].record.follows.clear();
        let found = problems(&trail);
        assert_eq!(found.messages.len(), 1, "{:?}", found.messages);
        assert!(found.messages[0].contains("record 1 of host a"));
    }
}
