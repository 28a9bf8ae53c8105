//! The policy against a table of snapshot times. Every expectation below is
//! worked out from the rules by hand (the reasoning is in the comments),
//! not copied from the code's output.

use chrono::{DateTime, Duration, FixedOffset, NaiveDateTime, Utc};

use super::*;
use crate::error::ErrorKind;
use crate::id::Id;
use crate::repo::Summary;

mod grouping;

/// Two years of one host's backups, in UTC, oldest first: several a day,
/// gaps of weeks and months, a year boundary and ISO weeks that straddle it
/// (2024-12-30 is in 2025-W01), and one snapshot exactly at midnight.
/// Tags: `release` and `manual` on a few.
const TABLE: &[(&str, &[&str])] = &[
    ("2024-01-05 10:00", &[]), // Fri, 2024-W01
    ("2024-01-05 22:00", &[]),
    ("2024-02-10 08:00", &[]), // 2024-W06
    ("2024-03-15 12:00", &[]), // 2024-W11
    ("2024-06-01 09:00", &[]), // Sat, 2024-W22
    ("2024-06-01 09:30", &[]),
    ("2024-06-30 23:30", &[]), // Sun, 2024-W26; at +03:00 Mon 07-01
    ("2024-07-01 00:30", &[]), // Mon, 2024-W27
    ("2024-11-20 14:00", &["release"]),
    ("2024-12-29 18:00", &[]), // Sun, 2024-W52
    ("2024-12-30 07:00", &[]), // Mon, 2025-W01
    ("2024-12-31 23:00", &[]), // 2025-W01; at +03:00 2025-01-01 02:00
    ("2025-01-01 01:00", &[]),
    ("2025-01-01 13:00", &[]),
    ("2025-02-14 12:00", &[]),                    // 2025-W07
    ("2025-03-01 00:15", &["manual", "release"]), // 2025-W09
    ("2025-03-31 20:00", &[]),                    // Mon, 2025-W14
    ("2025-04-01 10:00", &[]),
    ("2025-05-05 05:05", &[]), // 2025-W19
    ("2025-05-06 06:06", &[]),
    ("2025-05-12 12:00", &["release", "manual"]), // 2025-W20
    ("2025-05-20 08:00", &[]),                    // 2025-W21
    ("2025-05-27 08:00", &[]),                    // 2025-W22
    ("2025-05-31 23:00", &[]),                    // Sat, 2025-W22; at +03:00 Sun 06-01
    ("2025-06-01 01:00", &[]),                    // Sun, 2025-W22
    ("2025-06-01 02:00", &[]),
    ("2025-06-02 09:00", &[]), // Mon, 2025-W23
    ("2025-06-03 09:00", &[]),
    ("2025-06-03 21:00", &[]),
    ("2025-06-04 09:00", &[]),
    ("2025-06-04 09:45", &["manual"]),
    ("2025-06-04 10:15", &[]),
    ("2025-06-05 00:00", &[]),
    ("2025-06-05 23:59", &[]),
    ("2025-06-06 12:00", &[]),
    ("2025-06-07 08:00", &[]),
    ("2025-06-08 08:00", &[]), // Sun, 2025-W23
    ("2025-06-08 20:00", &[]),
    ("2025-06-08 20:30", &[]),
    ("2025-06-08 21:00", &[]), // the newest; at +03:00 Mon 06-09 00:00, 2025-W24
];

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M";

fn at(text: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(text, TIME_FORMAT)
        .expect("a table time")
        .and_utc()
}

fn snapshot(time: &str, host: &str, paths: &[&str], tags: &[&str], name: &str) -> Snapshot {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
    Snapshot {
        id: Id::of_bytes(name.as_bytes()),
        version: crate::repo::SNAPSHOT_VERSION,
        time: at(time),
        host: host.into(),
        username: "root".into(),
        paths: strings(paths),
        tags: strings(tags),
        tree: Id::of_bytes(b"tree"),
        parent: None,
        program: "rewind test".into(),
        summary: Summary::default(),
        original: None,
        resealed_from: None,
    }
}

fn table() -> Vec<Snapshot> {
    TABLE
        .iter()
        .map(|(time, tags)| snapshot(time, "db1", &["/srv"], tags, time))
        .collect()
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).unwrap()
}

fn plus_three() -> FixedOffset {
    FixedOffset::east_opt(3 * 3600).unwrap()
}

fn show(snapshots: impl IntoIterator<Item = DateTime<Utc>>) -> Vec<String> {
    snapshots
        .into_iter()
        .map(|time| time.format(TIME_FORMAT).to_string())
        .collect()
}

/// The table's single group under `policy`, checked for consistency: every
/// snapshot is either kept or removed, both lists newest first.
fn verdict(policy: &KeepPolicy, tz: FixedOffset) -> PolicyGroup {
    let mut groups = apply_policy(&table(), policy, GroupBy::default(), tz);
    assert_eq!(groups.len(), 1);
    let group = groups.pop().unwrap();
    assert_eq!(group.keep.len() + group.remove.len(), TABLE.len());
    for list in [
        group
            .keep
            .iter()
            .map(|k| k.snapshot.time)
            .collect::<Vec<_>>(),
        group.remove.iter().map(|s| s.time).collect(),
    ] {
        assert!(list.windows(2).all(|w| w[0] > w[1]), "newest first");
    }
    assert!(group.keep.iter().all(|k| !k.reasons.is_empty()) || policy.is_empty());
    group
}

fn kept_times(policy: &KeepPolicy, tz: FixedOffset) -> Vec<String> {
    show(verdict(policy, tz).keep.iter().map(|k| k.snapshot.time))
}

fn reasons_of(group: &PolicyGroup, time: &str) -> Vec<String> {
    let kept = group.keep.iter().find(|k| k.snapshot.time == at(time));
    kept.expect("kept").reasons.clone()
}

fn days(n: i64) -> Option<Duration> {
    Some(Duration::days(n))
}

#[test]
fn each_rule_keeps_what_it_should() {
    let utc = utc();
    // One line per case: what, the policy, the calendar, the kept times
    // newest first, and above it why.
    #[rustfmt::skip]
    let cases: Vec<(&str, KeepPolicy, FixedOffset, &[&str])> = vec![
        // The three newest.
        ("last 3", KeepPolicy { last: Some(3), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-06-08 20:30", "2025-06-08 20:00"]),
        // 06-08 21h, 20h (20:30; 20:00 shares its hour), 08h, then 06-07 08h
        // and 06-06 12h make five.
        ("hourly 5", KeepPolicy { hourly: Some(5), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-06-08 20:30", "2025-06-08 08:00", "2025-06-07 08:00",
           "2025-06-06 12:00"]),
        // The newest of each of the days 06-08 back to 06-02.
        ("daily 7", KeepPolicy { daily: Some(7), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-06-07 08:00", "2025-06-06 12:00", "2025-06-05 23:59",
           "2025-06-04 10:15", "2025-06-03 21:00", "2025-06-02 09:00"]),
        // W23 (06-02..06-08), W22 (its newest is Sun 06-01 02:00), W21, W20.
        ("weekly 4", KeepPolicy { weekly: Some(4), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-06-01 02:00", "2025-05-20 08:00", "2025-05-12 12:00"]),
        // June, May (05-31), April (04-01), March (03-31, not 03-01),
        // February, January 2025.
        ("monthly 6", KeepPolicy { monthly: Some(6), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-05-31 23:00", "2025-04-01 10:00", "2025-03-31 20:00",
           "2025-02-14 12:00", "2025-01-01 13:00"]),
        // Only two years have snapshots: a count beyond them keeps both.
        ("yearly 10", KeepPolicy { yearly: Some(10), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2024-12-31 23:00"]),
        // Unlimited: the newest of every month that has a snapshot, 13.
        ("monthly -1", KeepPolicy { monthly: Some(-1), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-05-31 23:00", "2025-04-01 10:00", "2025-03-31 20:00",
           "2025-02-14 12:00", "2025-01-01 13:00", "2024-12-31 23:00", "2024-11-20 14:00",
           "2024-07-01 00:30", "2024-06-30 23:30", "2024-03-15 12:00", "2024-02-10 08:00",
           "2024-01-05 22:00"]),
        // last: 21:00, 20:30. daily: 06-08 (21:00, already kept), 06-07,
        // 06-06. weekly: W23 (21:00), W22 (06-01 02:00). monthly: June
        // (21:00), May (05-31). yearly: 2025 (21:00), 2024 (12-31).
        ("last 2, daily 3, weekly 2, monthly 2, yearly 2",
         KeepPolicy { last: Some(2), daily: Some(3), weekly: Some(2), monthly: Some(2),
                      yearly: Some(2), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-06-08 20:30", "2025-06-07 08:00", "2025-06-06 12:00",
           "2025-06-01 02:00", "2025-05-31 23:00", "2024-12-31 23:00"]),
        // Since 2025-06-05 21:00, three days before the newest.
        ("within 3d", KeepPolicy { within: days(3), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-06-08 20:30", "2025-06-08 20:00", "2025-06-08 08:00",
           "2025-06-07 08:00", "2025-06-06 12:00", "2025-06-05 23:59"]),
        // Since exactly 2025-06-05 00:00: the snapshot at that instant is
        // within.
        ("within 3d21h",
         KeepPolicy { within: Some(Duration::hours(3 * 24 + 21)), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-06-08 20:30", "2025-06-08 20:00", "2025-06-08 08:00",
           "2025-06-07 08:00", "2025-06-06 12:00", "2025-06-05 23:59", "2025-06-05 00:00"]),
        // Since 2025-06-07 21:00: the hours 06-08 21h, 20h, 08h; 06-07 08:00
        // is before the span.
        ("within-hourly 1d", KeepPolicy { within_hourly: days(1), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-06-08 20:30", "2025-06-08 08:00"]),
        // Since 2025-06-04 21:00: days 06-08, 06-07, 06-06, 06-05 (23:59);
        // 06-04's snapshots are all before the span.
        ("within-daily 4d", KeepPolicy { within_daily: days(4), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-06-07 08:00", "2025-06-06 12:00", "2025-06-05 23:59"]),
        // Since 2025-05-25 21:00: W23 and W22 (06-01 02:00); W21's 05-20 is
        // before the span.
        ("within-weekly 2w", KeepPolicy { within_weekly: days(14), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-06-01 02:00"]),
        // 365 days: since 2024-06-08 21:00. Each month back to June 2024,
        // whose newest (06-30 23:30) is in the span; 2024-06-01 is not, and
        // it is June's anyway.
        ("within-monthly 1y", KeepPolicy { within_monthly: days(365), ..Default::default() }, utc,
         &["2025-06-08 21:00", "2025-05-31 23:00", "2025-04-01 10:00", "2025-03-31 20:00",
           "2025-02-14 12:00", "2025-01-01 13:00", "2024-12-31 23:00", "2024-11-20 14:00",
           "2024-07-01 00:30", "2024-06-30 23:30"]),
        // Both tags, in any order.
        ("tag release,manual",
         KeepPolicy { tags: vec![vec!["release".into(), "manual".into()]], ..Default::default() },
         utc,
         &["2025-05-12 12:00", "2025-03-01 00:15"]),
        // (release and manual) or manual.
        ("tag release,manual or manual",
         KeepPolicy { tags: vec![vec!["release".into(), "manual".into()], vec!["manual".into()]],
                      ..Default::default() }, utc,
         &["2025-06-04 09:45", "2025-05-12 12:00", "2025-03-01 00:15"]),
        // A count of 0 is no rule; daily 1 alone keeps the newest.
        ("last 0, daily 1", KeepPolicy { last: Some(0), daily: Some(1), ..Default::default() }, utc,
         &["2025-06-08 21:00"]),
        // At +03:00 the newest is on 06-09 00:00, 20:30 on 06-08 23:30,
        // 06-07 08:00 at 11:00, 06-06 12:00 at 15:00. (UTC would keep 06-05
        // 23:59, which is 06-06 02:59 at +03:00, instead of 20:30.)
        ("daily 4 at +03:00", KeepPolicy { daily: Some(4), ..Default::default() }, plus_three(),
         &["2025-06-08 21:00", "2025-06-08 20:30", "2025-06-07 08:00", "2025-06-06 12:00"]),
        // At +03:00 the newest opens W24, 20:30 is W23's newest, and 06-01
        // 02:00 (05:00, Sunday) W22's.
        ("weekly 3 at +03:00", KeepPolicy { weekly: Some(3), ..Default::default() }, plus_three(),
         &["2025-06-08 21:00", "2025-06-08 20:30", "2025-06-01 02:00"]),
        // At +03:00 05-31 23:00 is already June; May's newest is 05-27.
        ("monthly 2 at +03:00", KeepPolicy { monthly: Some(2), ..Default::default() }, plus_three(),
         &["2025-06-08 21:00", "2025-05-27 08:00"]),
        // At +03:00 2024-12-31 23:00 is in 2025; 2024's newest is 12-30.
        ("yearly 2 at +03:00", KeepPolicy { yearly: Some(2), ..Default::default() }, plus_three(),
         &["2025-06-08 21:00", "2024-12-30 07:00"]),
    ];
    for (name, policy, tz, expected) in cases {
        assert_eq!(kept_times(&policy, tz), *expected, "{name}");
    }
}

#[test]
fn every_rule_that_keeps_a_snapshot_is_a_reason() {
    // within 1d: since 2025-06-07 21:00, so the four of 06-08. daily 2:
    // 06-08 (the newest) and 06-07 08:00. tag manual: 06-04 09:45, 05-12
    // and 03-01.
    let policy = KeepPolicy {
        last: Some(1),
        daily: Some(2),
        within: days(1),
        tags: vec![vec!["manual".into()]],
        ..Default::default()
    };
    let group = verdict(&policy, utc());
    let kept = show(group.keep.iter().map(|k| k.snapshot.time));
    assert_eq!(
        kept,
        [
            "2025-06-08 21:00",
            "2025-06-08 20:30",
            "2025-06-08 20:00",
            "2025-06-08 08:00",
            "2025-06-07 08:00",
            "2025-06-04 09:45",
            "2025-05-12 12:00",
            "2025-03-01 00:15"
        ]
    );
    assert_eq!(
        reasons_of(&group, "2025-06-08 21:00"),
        ["last snapshot", "daily snapshot", "within 1d"]
    );
    assert_eq!(reasons_of(&group, "2025-06-08 08:00"), ["within 1d"]);
    assert_eq!(reasons_of(&group, "2025-06-07 08:00"), ["daily snapshot"]);
    assert_eq!(reasons_of(&group, "2025-06-04 09:45"), ["tag manual"]);

    let group = verdict(
        &KeepPolicy {
            last: Some(2),
            daily: Some(3),
            weekly: Some(2),
            monthly: Some(2),
            yearly: Some(2),
            ..Default::default()
        },
        utc(),
    );
    assert_eq!(
        reasons_of(&group, "2025-06-08 21:00"),
        [
            "last snapshot",
            "daily snapshot",
            "weekly snapshot",
            "monthly snapshot",
            "yearly snapshot"
        ]
    );
    assert_eq!(reasons_of(&group, "2025-06-08 20:30"), ["last snapshot"]);
    assert_eq!(reasons_of(&group, "2025-06-01 02:00"), ["weekly snapshot"]);
    assert_eq!(reasons_of(&group, "2024-12-31 23:00"), ["yearly snapshot"]);

    let group = verdict(
        &KeepPolicy {
            within_hourly: Some(Duration::hours(36)),
            within_monthly: days(365),
            ..Default::default()
        },
        utc(),
    );
    assert_eq!(
        reasons_of(&group, "2025-06-08 21:00"),
        ["hourly within 1d12h", "monthly within 365d"]
    );

    let tagged = KeepPolicy {
        tags: vec![
            vec!["release".into(), "manual".into()],
            vec!["manual".into()],
        ],
        ..Default::default()
    };
    assert_eq!(
        reasons_of(&verdict(&tagged, utc()), "2025-03-01 00:15"),
        ["tag release,manual", "tag manual"]
    );
}

#[test]
fn an_empty_policy_keeps_everything() {
    for policy in [
        KeepPolicy::default(),
        KeepPolicy {
            last: Some(0),
            within: Some(Duration::zero()),
            tags: vec![vec![]],
            ..Default::default()
        },
    ] {
        assert!(policy.is_empty());
        let group = verdict(&policy, utc());
        assert_eq!(group.keep.len(), TABLE.len());
        assert!(group.keep.iter().all(|k| k.reasons.is_empty()));
    }
    for policy in [
        KeepPolicy {
            yearly: Some(-1),
            ..Default::default()
        },
        KeepPolicy {
            within_daily: Some(Duration::hours(1)),
            ..Default::default()
        },
        KeepPolicy {
            tags: vec![vec!["x".into()]],
            ..Default::default()
        },
    ] {
        assert!(!policy.is_empty(), "{policy:?}");
    }
    assert!(apply_policy(&[], &KeepPolicy::default(), GroupBy::default(), utc()).is_empty());
}
