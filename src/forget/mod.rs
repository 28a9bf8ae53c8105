//! Retention: which snapshots `rewind forget` keeps. Pure logic over a
//! snapshot list (no repository access): snapshots are grouped
//! ([`GroupBy`]), then a [`KeepPolicy`] with restic's rules and semantics
//! decides per group. Removing what it does not keep is the command's job
//! (`docs/design.md`, section 7).

mod duration;
mod group;
mod policy;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::FixedOffset;

use crate::repo::Snapshot;

pub use duration::parse_keep_duration;
pub use group::{GroupBy, GroupKey};
pub use policy::KeepPolicy;

/// A snapshot the policy keeps, with every rule that keeps it, named like
/// "last snapshot", "daily snapshot", "hourly within 2d", "within 30d" or
/// "tag nightly", in the order of [`KeepPolicy`]'s fields.
#[derive(Debug, Clone)]
pub struct Kept {
    pub snapshot: Snapshot,
    pub reasons: Vec<String>,
}

/// The verdict on one group: what is kept and what is removed, both newest
/// first.
#[derive(Debug, Clone)]
pub struct PolicyGroup {
    pub key: GroupKey,
    pub keep: Vec<Kept>,
    pub remove: Vec<Snapshot>,
}

/// Applies `policy` to each group of `snapshots`; `tz` is the offset whose
/// calendar the hour/day/week/month/year buckets follow (UTC unless
/// `--timezone`). Groups sorted by key.
///
/// Within a group snapshots are taken newest first, and snapshots taken at
/// the same instant by ascending id, so the verdict never depends on the
/// order of `snapshots`. An empty policy keeps everything.
pub fn apply_policy(
    snapshots: &[Snapshot],
    policy: &KeepPolicy,
    group_by: GroupBy,
    tz: FixedOffset,
) -> Vec<PolicyGroup> {
    let mut groups: BTreeMap<GroupKey, Vec<Snapshot>> = BTreeMap::new();
    for snapshot in snapshots {
        groups
            .entry(group_by.key_of(snapshot))
            .or_default()
            .push(snapshot.clone());
    }
    groups
        .into_iter()
        .map(|(key, mut members)| {
            members.sort_by(|a, b| b.time.cmp(&a.time).then(a.id.cmp(&b.id)));
            let (keep, remove) = policy.apply_to_group(members, tz);
            PolicyGroup { key, keep, remove }
        })
        .collect()
}
