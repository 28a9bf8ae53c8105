//! The retention rules of `rewind forget` and how they walk one group of
//! snapshots, newest to oldest. The semantics are restic's, which admins
//! already know; `docs/design.md` (section 7) places forget in the whole.

use chrono::{DateTime, Datelike, Duration, FixedOffset, Timelike, Utc};

use super::duration::show_keep_duration;
use crate::repo::Snapshot;

/// What to keep: restic's `forget` flags and semantics. None = rule unused;
/// Some(-1) (counts) = unlimited, as in restic.
///
/// As in restic, a count of 0, a duration that is not positive and an empty
/// tag set are no rule at all. Any negative count means unlimited. The
/// `within*` durations count back from the group's newest snapshot, not from
/// now, so a host that stopped backing up keeps its last ones; they are
/// fixed spans (months of 30 days, years of 365, see
/// [`parse_keep_duration`](super::parse_keep_duration)), and a snapshot
/// exactly at the span's start is within it.
#[derive(Debug, Clone, Default)]
pub struct KeepPolicy {
    pub last: Option<i64>,
    pub hourly: Option<i64>,
    pub daily: Option<i64>,
    pub weekly: Option<i64>,
    pub monthly: Option<i64>,
    pub yearly: Option<i64>,
    pub within: Option<Duration>,
    pub within_hourly: Option<Duration>,
    pub within_daily: Option<Duration>,
    pub within_weekly: Option<Duration>,
    pub within_monthly: Option<Duration>,
    pub within_yearly: Option<Duration>,
    /// Each entry is a set of tags a snapshot must all have to be kept
    /// (`--keep-tag a,b --keep-tag c`: (a and b) or c).
    pub tags: Vec<Vec<String>>,
}

/// The span a snapshot's time is bucketed by: a bucket rule keeps the newest
/// snapshot of each span. `Snapshot` makes every snapshot its own bucket,
/// which is what keep-last is.
#[derive(Debug, Clone, Copy)]
enum Period {
    Snapshot,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// A number that is the same for two times exactly when they fall in
    /// the same period of the calendar `time` is expressed in. `position`
    /// (in the group, newest first) stands for the snapshot itself.
    fn of(self, time: &DateTime<FixedOffset>, position: usize) -> i64 {
        let year = i64::from(time.year());
        let month = year * 100 + i64::from(time.month());
        let day = month * 100 + i64::from(time.day());
        match self {
            Period::Snapshot => position as i64,
            Period::Hour => day * 100 + i64::from(time.hour()),
            Period::Day => day,
            // ISO weeks: Monday to Sunday, numbered within their ISO year.
            Period::Week => {
                let week = time.iso_week();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Period::Month => month,
            Period::Year => year,
        }
    }

    fn adjective(self) -> &'static str {
        match self {
            Period::Snapshot => "last",
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }
}

/// One rule, with the state it carries from one snapshot to the next older.
struct Rule {
    test: Test,
    /// How a kept snapshot's reasons name this rule.
    reason: String,
}

enum Test {
    /// The newest snapshot of each period, at or after `since` (if any),
    /// until `remaining` (if any) runs out.
    Periods {
        period: Period,
        since: Option<DateTime<Utc>>,
        remaining: Option<u64>,
        last_kept: Option<i64>,
    },
    /// Every snapshot at or after this time.
    Since(DateTime<Utc>),
    /// Every snapshot that has all these tags.
    Tags(Vec<String>),
}

impl Rule {
    /// Whether this rule keeps `snapshot`, the `position`th newest of its
    /// group; `local` is its time in the calendar of the buckets.
    fn keeps(
        &mut self,
        snapshot: &Snapshot,
        local: &DateTime<FixedOffset>,
        position: usize,
    ) -> bool {
        match &mut self.test {
            Test::Periods {
                period,
                since,
                remaining,
                last_kept,
            } => {
                if since.is_some_and(|since| snapshot.time < since) || *remaining == Some(0) {
                    return false;
                }
                let bucket = period.of(local, position);
                if *last_kept == Some(bucket) {
                    return false;
                }
                *last_kept = Some(bucket);
                if let Some(remaining) = remaining {
                    *remaining -= 1;
                }
                true
            }
            Test::Since(since) => snapshot.time >= *since,
            Test::Tags(tags) => tags.iter().all(|tag| snapshot.tags.contains(tag)),
        }
    }
}

impl KeepPolicy {
    /// Whether no rule is given (see [`KeepPolicy`] for what counts).
    pub fn is_empty(&self) -> bool {
        self.counts()
            .iter()
            .all(|(_, count)| count_rule(*count).is_none())
            && self
                .within_durations()
                .iter()
                .all(|(_, d)| span(*d).is_none())
            && self.tags.iter().all(Vec::is_empty)
    }

    fn counts(&self) -> [(Period, Option<i64>); 6] {
        [
            (Period::Snapshot, self.last),
            (Period::Hour, self.hourly),
            (Period::Day, self.daily),
            (Period::Week, self.weekly),
            (Period::Month, self.monthly),
            (Period::Year, self.yearly),
        ]
    }

    /// The within durations; `None` as the period is plain `within`.
    fn within_durations(&self) -> [(Option<Period>, Option<Duration>); 6] {
        [
            (None, self.within),
            (Some(Period::Hour), self.within_hourly),
            (Some(Period::Day), self.within_daily),
            (Some(Period::Week), self.within_weekly),
            (Some(Period::Month), self.within_monthly),
            (Some(Period::Year), self.within_yearly),
        ]
    }

    /// The rules in the order kept snapshots list them as reasons, fresh for
    /// a group whose newest snapshot was taken at `newest`.
    fn rules(&self, newest: DateTime<Utc>) -> Vec<Rule> {
        let mut rules = Vec::new();
        for (period, count) in self.counts() {
            if let Some(remaining) = count_rule(count) {
                rules.push(Rule {
                    test: Test::Periods {
                        period,
                        since: None,
                        remaining,
                        last_kept: None,
                    },
                    reason: format!("{} snapshot", period.adjective()),
                });
            }
        }
        for (period, duration) in self.within_durations() {
            let Some(duration) = span(duration) else {
                continue;
            };
            let since = newest
                .checked_sub_signed(duration)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            let within = format!("within {}", show_keep_duration(duration));
            rules.push(match period {
                None => Rule {
                    test: Test::Since(since),
                    reason: within,
                },
                Some(period) => Rule {
                    test: Test::Periods {
                        period,
                        since: Some(since),
                        remaining: None,
                        last_kept: None,
                    },
                    reason: format!("{} {within}", period.adjective()),
                },
            });
        }
        for tags in self.tags.iter().filter(|tags| !tags.is_empty()) {
            rules.push(Rule {
                test: Test::Tags(tags.clone()),
                reason: format!("tag {}", tags.join(",")),
            });
        }
        rules
    }

    /// Splits one group, sorted newest first, into the snapshots kept (with
    /// every rule that keeps each) and the ones removed, both newest first.
    /// An empty policy keeps everything, with no reasons.
    pub(super) fn apply_to_group(
        &self,
        newest_first: Vec<Snapshot>,
        tz: FixedOffset,
    ) -> (Vec<super::Kept>, Vec<Snapshot>) {
        let Some(newest) = newest_first.first().map(|snapshot| snapshot.time) else {
            return (Vec::new(), Vec::new());
        };
        let keep_all = self.is_empty();
        let mut rules = self.rules(newest);
        let (mut keep, mut remove) = (Vec::new(), Vec::new());
        for (position, snapshot) in newest_first.into_iter().enumerate() {
            let local = snapshot.time.with_timezone(&tz);
            // Every rule sees every snapshot: a bucket rule's state must
            // advance even when an earlier rule already keeps the snapshot.
            let reasons: Vec<String> = rules
                .iter_mut()
                .filter_map(|rule| {
                    let keeps = rule.keeps(&snapshot, &local, position);
                    keeps.then(|| rule.reason.clone())
                })
                .collect();
            if keep_all || !reasons.is_empty() {
                keep.push(super::Kept { snapshot, reasons });
            } else {
                remove.push(snapshot);
            }
        }
        (keep, remove)
    }
}

/// The limit of a count rule: `None` if the count is no rule, `Some(None)`
/// for no limit.
fn count_rule(count: Option<i64>) -> Option<Option<u64>> {
    match count? {
        0 => None,
        n if n < 0 => Some(None),
        n => Some(Some(n as u64)),
    }
}

/// A within duration that is a rule: a positive one.
fn span(duration: Option<Duration>) -> Option<Duration> {
    duration.filter(|d| *d > Duration::zero())
}
