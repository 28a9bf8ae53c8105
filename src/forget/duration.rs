//! The durations of `--keep-within*`: restic's spelling (`30d`, `2y5m7d3h`),
//! plus `w` for weeks, and their display in the reasons a snapshot was kept.

use chrono::Duration;

use crate::error::{Error, Result};

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// The units a keep duration may use, and their length in seconds. Months
/// and years are fixed lengths (30 and 365 days) rather than calendar ones,
/// so that a duration is one number: `--keep-within 1y` keeps 365 days
/// before the newest snapshot, where restic would keep back to the same
/// date a year earlier (a day more across a leap day).
const UNITS: [(char, i64); 5] = [
    ('y', 365 * DAY),
    ('m', 30 * DAY),
    ('w', 7 * DAY),
    ('d', DAY),
    ('h', HOUR),
];

/// Parses a keep duration: one or more `<number><unit>` terms, each unit
/// (`y`, `m`, `w`, `d`, `h`) at most once, such as `30d`, `1w` or
/// `2y5m7d3h`. Months count as 30 days and years as 365, not calendar ones.
pub fn parse_keep_duration(text: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(format!(
            "'{text}' is not a keep duration: use numbers with y, m, w, d or h \
             (years of 365 days, months of 30), such as 30d or 1y6m"
        ))
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut seen = Vec::new();
    let mut seconds: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let count: i64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = rest[digits..].chars().next().ok_or_else(bad)?;
        let (_, length) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?;
        if seen.contains(&unit) {
            return Err(bad());
        }
        seen.push(unit);
        seconds = count
            .checked_mul(*length)
            .and_then(|term| seconds.checked_add(term))
            .ok_or_else(bad)?;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Duration::try_seconds(seconds).ok_or_else(bad)
}

/// Shows a keep duration in days and hours (`30d`, `2d12h`, `365d`): the
/// exact span the rule applied, whatever units it was given in.
pub(super) fn show_keep_duration(duration: Duration) -> String {
    let seconds = duration.num_seconds();
    let (days, hours) = (seconds / DAY, seconds % DAY / HOUR);
    let minutes = seconds % HOUR / 60;
    let mut text = String::new();
    if days > 0 {
        text.push_str(&format!("{days}d"));
    }
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 || text.is_empty() {
        text.push_str(&format!("{minutes}min"));
    }
    text
}
