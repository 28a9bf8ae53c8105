//! Groups, the order of equal times, and the parsers of `--group-by` and
//! the keep durations.

use super::*;

#[test]
fn groups_follow_group_by_and_sort_by_key() {
    let snapshots = [
        snapshot("2025-01-01 10:00", "a", &["/x", "/y"], &["t1"], "1"),
        snapshot("2025-01-02 10:00", "a", &["/y", "/x"], &["t2"], "2"),
        snapshot("2025-01-03 10:00", "b", &["/x", "/y"], &["t1"], "3"),
        snapshot("2025-01-04 10:00", "a", &["/z"], &["t1", "t2"], "4"),
        snapshot("2025-01-05 10:00", "a", &["/z"], &["t2", "t1", "t2"], "5"),
    ];
    let strings = |items: &[&str]| Some(items.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let last = KeepPolicy {
        last: Some(1),
        ..Default::default()
    };
    let run = |group_by: &str| {
        let groups = apply_policy(&snapshots, &last, GroupBy::parse(group_by).unwrap(), utc());
        groups
            .into_iter()
            .map(|g| {
                let keep = show(g.keep.iter().map(|k| k.snapshot.time));
                let remove = show(g.remove.iter().map(|s| s.time));
                (g.key, keep, remove)
            })
            .collect::<Vec<_>>()
    };

    // host and paths; the order a backup named its paths in does not count.
    assert_eq!(
        run("host,paths"),
        [
            (
                GroupKey {
                    host: Some("a".into()),
                    paths: strings(&["/x", "/y"]),
                    tags: None
                },
                show([at("2025-01-02 10:00")]),
                show([at("2025-01-01 10:00")])
            ),
            (
                GroupKey {
                    host: Some("a".into()),
                    paths: strings(&["/z"]),
                    tags: None
                },
                show([at("2025-01-05 10:00")]),
                show([at("2025-01-04 10:00")])
            ),
            (
                GroupKey {
                    host: Some("b".into()),
                    paths: strings(&["/x", "/y"]),
                    tags: None
                },
                show([at("2025-01-03 10:00")]),
                vec![]
            ),
        ]
    );
    assert_eq!(
        run("host"),
        [
            (
                GroupKey {
                    host: Some("a".into()),
                    paths: None,
                    tags: None
                },
                show([at("2025-01-05 10:00")]),
                show([
                    at("2025-01-04 10:00"),
                    at("2025-01-02 10:00"),
                    at("2025-01-01 10:00")
                ])
            ),
            (
                GroupKey {
                    host: Some("b".into()),
                    paths: None,
                    tags: None
                },
                show([at("2025-01-03 10:00")]),
                vec![]
            ),
        ]
    );
    // Tag sets sorted and without repeats: {t1}, {t1, t2}, {t2}.
    assert_eq!(
        run("tags"),
        [
            (
                GroupKey {
                    host: None,
                    paths: None,
                    tags: strings(&["t1"])
                },
                show([at("2025-01-03 10:00")]),
                show([at("2025-01-01 10:00")])
            ),
            (
                GroupKey {
                    host: None,
                    paths: None,
                    tags: strings(&["t1", "t2"])
                },
                show([at("2025-01-05 10:00")]),
                show([at("2025-01-04 10:00")])
            ),
            (
                GroupKey {
                    host: None,
                    paths: None,
                    tags: strings(&["t2"])
                },
                show([at("2025-01-02 10:00")]),
                vec![]
            ),
        ]
    );
    let one_group = run("");
    assert_eq!(one_group.len(), 1);
    assert_eq!(
        one_group[0].0,
        GroupKey {
            host: None,
            paths: None,
            tags: None
        }
    );
    assert_eq!(one_group[0].1, show([at("2025-01-05 10:00")]));
}

#[test]
fn keep_within_counts_from_each_groups_newest() {
    // Host b stopped backing up in 2024: "within 1d" keeps its last day, not
    // nothing, while host a keeps its own last day.
    let snapshots = [
        snapshot("2024-03-01 08:00", "b", &["/"], &[], "b1"),
        snapshot("2024-03-02 08:00", "b", &["/"], &[], "b2"),
        snapshot("2024-03-02 20:00", "b", &["/"], &[], "b3"),
        snapshot("2025-06-01 08:00", "a", &["/"], &[], "a1"),
        snapshot("2025-06-02 07:00", "a", &["/"], &[], "a2"),
        snapshot("2025-06-03 07:00", "a", &["/"], &[], "a3"),
    ];
    let policy = KeepPolicy {
        within: days(1),
        ..Default::default()
    };
    let groups = apply_policy(&snapshots, &policy, GroupBy::default(), utc());
    let kept: Vec<_> = groups
        .iter()
        .map(|g| show(g.keep.iter().map(|k| k.snapshot.time)))
        .collect();
    assert_eq!(
        kept,
        [
            show([at("2025-06-03 07:00"), at("2025-06-02 07:00")]),
            show([at("2024-03-02 20:00"), at("2024-03-02 08:00")])
        ]
    );
}

#[test]
fn equal_times_are_ordered_by_id_whatever_the_input_order() {
    let snapshots = vec![
        snapshot("2025-01-01 12:00", "h", &["/"], &[], "one"),
        snapshot("2025-01-01 12:00", "h", &["/"], &[], "two"),
        snapshot("2025-01-01 12:00", "h", &["/"], &[], "three"),
        snapshot("2025-01-01 09:00", "h", &["/"], &[], "four"),
    ];
    let mut same_time: Vec<Id> = snapshots[..3].iter().map(|s| s.id).collect();
    same_time.sort();
    let policy = KeepPolicy {
        last: Some(2),
        daily: Some(1),
        ..Default::default()
    };
    let mut reversed = snapshots.clone();
    reversed.reverse();
    for input in [snapshots, reversed] {
        let group = apply_policy(&input, &policy, GroupBy::default(), utc()).remove(0);
        let kept: Vec<Id> = group.keep.iter().map(|k| k.snapshot.id).collect();
        let removed: Vec<Id> = group.remove.iter().map(|s| s.id).collect();
        // The lowest id of the three comes first: kept by last and daily;
        // the next by last; the third and the older one go.
        assert_eq!(kept, same_time[..2]);
        assert_eq!(group.keep[0].reasons, ["last snapshot", "daily snapshot"]);
        assert_eq!(group.keep[1].reasons, ["last snapshot"]);
        assert_eq!(removed, [same_time[2], Id::of_bytes(b"four")]);
    }
}

#[test]
fn group_by_parses_its_words() {
    assert_eq!(GroupBy::parse("host,paths").unwrap(), GroupBy::default());
    assert_eq!(
        GroupBy::parse("host").unwrap(),
        GroupBy {
            host: true,
            paths: false,
            tags: false
        }
    );
    assert_eq!(
        GroupBy::parse(" tags , host ").unwrap(),
        GroupBy {
            host: true,
            paths: false,
            tags: true
        }
    );
    assert_eq!(
        GroupBy::parse("").unwrap(),
        GroupBy {
            host: false,
            paths: false,
            tags: false
        }
    );
    let error = GroupBy::parse("host,hosts").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Usage);
    assert!(error.to_string().contains("'hosts'"), "{error}");
}

#[test]
fn keep_durations_parse_like_restics() {
    let hours = |h: i64| Duration::hours(h);
    for (text, expected) in [
        ("30d", hours(30 * 24)),
        ("12h", hours(12)),
        ("1w", hours(7 * 24)),
        ("1m", hours(30 * 24)),
        ("1y", hours(365 * 24)),
        // 2 * 365 + 5 * 30 + 7 = 887 days, and 3 hours.
        ("2y5m7d3h", hours(887 * 24 + 3)),
        ("3h1d", hours(27)),
        (" 0d ", hours(0)),
    ] {
        assert_eq!(parse_keep_duration(text).unwrap(), expected, "{text}");
    }
    for text in [
        "",
        "d",
        "30",
        "3x",
        "-1d",
        "1d1d",
        "1.5d",
        "30 d",
        "1s",
        "99999999999999999999y",
        "9999999999999y",
    ] {
        let error = parse_keep_duration(text).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Usage, "{text}");
        assert!(error.to_string().contains(&format!("'{text}'")), "{error}");
    }
}

#[test]
fn durations_show_in_days_and_hours() {
    use super::duration::show_keep_duration;
    assert_eq!(show_keep_duration(Duration::days(30)), "30d");
    assert_eq!(show_keep_duration(Duration::hours(60)), "2d12h");
    assert_eq!(show_keep_duration(Duration::hours(5)), "5h");
    assert_eq!(show_keep_duration(Duration::minutes(90)), "1h30min");
}
