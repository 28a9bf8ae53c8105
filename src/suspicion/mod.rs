//! Finding the last clean snapshot: whether a snapshot looks like the work
//! of ransomware, an unusual share of its files rewritten with
//! incompressible content, judged against the earlier snapshots of the
//! same host and paths. This is the one rule that `backup`, `snapshots`,
//! `status` and `diff` apply (`docs/design.md`, section 7, "Finding the
//! last clean snapshot"); `content` says what incompressible means.

mod content;

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

pub use content::{ChangedBytes, Compressibility};

use crate::forget::GroupBy;
use crate::repo::Snapshot;

/// How many earlier snapshots of a host and paths make up its history.
pub const HISTORY_LEN: usize = 10;
/// Fewer files than this rewritten with incompressible content is never
/// suspicious: in a small tree every file moves the share a lot.
pub const MIN_FILES: u64 = 20;
/// Nor a share of the snapshot's files below this: ransomware encrypts
/// what it can reach, and a day that brings a few new photos or archives
/// stays well below it.
pub const MIN_SHARE: f64 = 0.10;
/// The share must also be this many times the highest share of the
/// history, so that a host whose files are compressed anyway (archives,
/// media) and change every day does not raise an alarm every day.
pub const HISTORY_MULTIPLE: f64 = 3.0;

/// How a snapshot compares with its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspicion {
    pub suspicious: bool,
    /// Files rewritten with incompressible content: changed files, and new
    /// ones up to the number of files the snapshot lost.
    pub files_incompressible: u64,
    /// Files in the snapshot.
    pub files: u64,
    /// `files_incompressible / files`.
    pub share: f64,
    /// The share from which the snapshot would be suspicious (with at
    /// least `MIN_FILES` files); `None` while there is no history.
    pub threshold: Option<f64>,
    /// The highest share of the history.
    pub history_peak: Option<f64>,
    /// How many earlier snapshots the history holds.
    pub history: usize,
}

impl Suspicion {
    /// The numbers, in a sentence.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} of {} files ({}) were rewritten with incompressible content",
            self.files_incompressible,
            self.files,
            percent(self.share)
        );
        match (self.history_peak, self.threshold) {
            (Some(peak), Some(threshold)) => {
                text += &format!(
                    "; the {} backups before it of the same host and paths showed at most {} \
                 (suspicious from {})",
                    self.history,
                    percent(peak),
                    percent(threshold)
                )
            }
            _ => text += "; no earlier backup of the same host and paths to compare it with",
        }
        text
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// Judges every snapshot against the earlier snapshots of its host and
/// paths; the verdicts come in the order of `snapshots`. `None` for a
/// snapshot that does not record its changed data.
///
/// The history of a snapshot is the last `HISTORY_LEN` earlier snapshots
/// of the same host and paths that record their changed data, had a parent
/// (a first backup finds every file new, which says nothing about a day)
/// and were not suspicious themselves (an attack must not raise the bar
/// for the next one). Rewritten files are the changed ones whose new
/// content is incompressible, and as many such new files as the snapshot
/// lost files against its parent (encrypted copies written beside
/// originals that are then deleted): new incompressible files alone are
/// a day that brought photos or archives. A snapshot is suspicious when, with a history, at
/// least `MIN_FILES` of its files were rewritten with incompressible
/// content and their share of its files is at least `MIN_SHARE` and at
/// least `HISTORY_MULTIPLE` times the highest share of the history.
pub fn assess_snapshots(snapshots: &[Snapshot]) -> Vec<Option<Suspicion>> {
    let mut order: Vec<usize> = (0..snapshots.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&snapshots[a], &snapshots[b]);
        a.time.cmp(&b.time).then(a.id.cmp(&b.id))
    });
    let group_by = GroupBy {
        host: true,
        paths: true,
        tags: false,
    };
    let files_of: BTreeMap<_, _> = snapshots.iter().map(|s| (s.id, files(s))).collect();
    let mut histories = BTreeMap::new();
    let mut verdicts = vec![None; snapshots.len()];
    for i in order {
        let snapshot = &snapshots[i];
        let parent_files = snapshot.parent.and_then(|p| files_of.get(&p).copied());
        let history: &mut History = histories.entry(group_by.key_of(snapshot)).or_default();
        verdicts[i] = history.judge(snapshot, parent_files);
    }
    verdicts
}

/// The regular files in a snapshot.
fn files(snapshot: &Snapshot) -> u64 {
    let summary = &snapshot.summary;
    summary.files_new + summary.files_changed + summary.files_unchanged
}

/// The shares of the recent clean snapshots of one host and paths, oldest
/// first.
#[derive(Default)]
struct History {
    shares: VecDeque<f64>,
}

impl History {
    /// Judges the next snapshot (its parent had `parent_files` files, if
    /// it is known), and adds it to the history if it belongs.
    fn judge(&mut self, snapshot: &Snapshot, parent_files: Option<u64>) -> Option<Suspicion> {
        let summary = &snapshot.summary;
        let changed = summary.changed_data?;
        let files = files(snapshot);
        let lost = parent_files
            .unwrap_or(0)
            .saturating_sub(summary.files_changed + summary.files_unchanged);
        let rewritten = changed.files_incompressible + changed.new_files_incompressible.min(lost);
        let share = if files == 0 {
            0.0
        } else {
            rewritten as f64 / files as f64
        };
        let history_peak = self.shares.iter().copied().reduce(f64::max);
        let threshold = history_peak.map(|peak| (peak * HISTORY_MULTIPLE).max(MIN_SHARE));
        let suspicious = threshold.is_some_and(|t| rewritten >= MIN_FILES && share >= t);
        let verdict = Suspicion {
            suspicious,
            files_incompressible: rewritten,
            files,
            share,
            threshold,
            history_peak,
            history: self.shares.len(),
        };
        if snapshot.parent.is_some() && !suspicious {
            if self.shares.len() == HISTORY_LEN {
                self.shares.pop_front();
            }
            self.shares.push_back(share);
        }
        Some(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{ChangedData, Summary};
    use crate::Id;
    use chrono::{Duration, TimeZone, Utc};

    /// Day `day` of host `host`: `files` files, `incompressible` of them
    /// rewritten with incompressible content.
    fn day(host: &str, day: i64, files: u64, incompressible: u64) -> Snapshot {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&day.to_be_bytes());
        id[8] = host.len() as u8;
        Snapshot {
            id: Id(id),
            version: 1,
            time: Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap() + Duration::days(day),
            host: host.into(),
            username: "root".into(),
            paths: vec!["/home".into()],
            tags: vec![],
            tree: Id::default(),
            parent: (day > 0).then(Id::default),
            program: "rewind".into(),
            summary: Summary {
                files_new: if day == 0 { files } else { 0 },
                files_changed: if day == 0 { 0 } else { files / 20 },
                files_unchanged: if day == 0 { 0 } else { files - files / 20 },
                changed_data: Some(ChangedData {
                    files_incompressible: incompressible,
                    ..ChangedData::default()
                }),
                ..Summary::default()
            },
            original: None,
            resealed_from: None,
        }
    }

    fn suspicious(verdicts: &[Option<Suspicion>]) -> Vec<bool> {
        verdicts
            .iter()
            .map(|v| v.as_ref().is_some_and(|v| v.suspicious))
            .collect()
    }

    #[test]
    fn an_attack_stands_out_from_quiet_days() {
        let mut snapshots: Vec<_> = (0..6).map(|d| day("a", d, 1000, 2)).collect();
        snapshots.push(day("a", 6, 1000, 300));
        let verdicts = assess_snapshots(&snapshots);
        assert_eq!(
            suspicious(&verdicts),
            [false, false, false, false, false, false, true]
        );
        let attack = verdicts[6].as_ref().unwrap();
        assert_eq!(attack.history, 5, "the first backup is not history");
        assert_eq!(attack.threshold, Some(MIN_SHARE));
        assert!(
            attack.describe().contains("300 of 1000 files (30.0%)"),
            "{}",
            attack.describe()
        );
    }

    #[test]
    fn new_incompressible_files_count_only_as_far_as_originals_went() {
        let mut snapshots: Vec<_> = (0..6).map(|d| day("a", d, 1000, 2)).collect();
        for (i, snapshot) in snapshots.iter_mut().enumerate() {
            snapshot.id = Id([i as u8 + 1; 32]);
            snapshot.parent = (i > 0).then_some(Id([i as u8; 32]));
        }
        // 300 new photos beside the 1000 files the parent had.
        let mut photos = day("a", 6, 1000, 2);
        photos.parent = Some(Id([6; 32]));
        photos.summary.files_new = 300;
        photos
            .summary
            .changed_data
            .as_mut()
            .unwrap()
            .new_files_incompressible = 300;
        // 300 files encrypted into new names, their originals deleted.
        let mut renamed = photos.clone();
        renamed.summary.files_unchanged -= 300;
        let verdicts = assess_snapshots(&[snapshots.clone(), vec![photos]].concat());
        assert!(!verdicts[6].as_ref().unwrap().suspicious);
        let verdicts = assess_snapshots(&[snapshots, vec![renamed]].concat());
        let attack = verdicts[6].as_ref().unwrap();
        assert!(attack.suspicious);
        assert_eq!(attack.files_incompressible, 302);
    }

    #[test]
    fn a_first_backup_and_the_one_after_it_are_not_judged() {
        let snapshots = vec![day("a", 0, 1000, 900), day("a", 1, 1000, 900)];
        assert_eq!(suspicious(&assess_snapshots(&snapshots)), [false, false]);
    }

    #[test]
    fn a_host_of_compressed_files_is_judged_by_its_own_days() {
        let mut snapshots: Vec<_> = (0..8)
            .map(|d| day("gz", d, 200, 40 + d as u64 % 3 * 10))
            .collect();
        snapshots.push(day("quiet", 0, 200, 0));
        snapshots.push(day("quiet", 1, 200, 0));
        snapshots.push(day("quiet", 2, 200, 60));
        let verdicts = assess_snapshots(&snapshots);
        assert!(
            suspicious(&verdicts[..8]).iter().all(|s| !s),
            "{verdicts:?}"
        );
        assert!(
            verdicts[10].as_ref().unwrap().suspicious,
            "another host's history does not count"
        );
    }

    #[test]
    fn floors_keep_small_changes_quiet() {
        let mut snapshots: Vec<_> = (0..4).map(|d| day("a", d, 100, 0)).collect();
        snapshots.push(day("a", 4, 100, 19));
        snapshots.push(day("a", 5, 10_000, 900));
        assert_eq!(
            suspicious(&assess_snapshots(&snapshots))[4..],
            [false, false]
        );
    }

    #[test]
    fn an_attack_does_not_raise_the_bar_for_the_next_day() {
        let mut snapshots: Vec<_> = (0..4).map(|d| day("a", d, 1000, 1)).collect();
        snapshots.push(day("a", 4, 1000, 300));
        snapshots.push(day("a", 5, 1000, 600));
        assert_eq!(suspicious(&assess_snapshots(&snapshots))[4..], [true, true]);
    }

    #[test]
    fn snapshots_without_the_measure_are_not_judged_nor_history() {
        let mut old = day("a", 1, 1000, 0);
        old.summary.changed_data = None;
        let snapshots = vec![day("a", 0, 1000, 0), old, day("a", 2, 1000, 500)];
        let verdicts = assess_snapshots(&snapshots);
        assert!(verdicts[1].is_none());
        assert!(!verdicts[2].as_ref().unwrap().suspicious, "no history yet");
    }

    #[test]
    fn verdicts_follow_the_order_given_and_judge_by_time() {
        let mut snapshots: Vec<_> = (0..5).map(|d| day("a", d, 1000, 1)).collect();
        snapshots.push(day("a", 5, 1000, 400));
        snapshots.reverse();
        assert!(suspicious(&assess_snapshots(&snapshots))[0]);
    }
}
