//! Snapshot selectors (a contract, see docs/design.md section 4): `latest`, an id
//! prefix of at least 4 hex digits, or `@TIME` for the newest snapshot taken
//! at or before the end of the named period.

use chrono::{DateTime, Duration, FixedOffset, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::error::{Error, Result};
use crate::repo::Snapshot;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Latest,
    IdPrefix(String),
    /// Snapshots taken strictly before this instant are candidates.
    Before {
        text: String,
        end: DateTime<Utc>,
    },
}

/// Which snapshots a selector may choose from.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub host: Option<String>,
    pub tags: Vec<String>,
}

impl Filter {
    pub fn accepts(&self, s: &Snapshot) -> bool {
        self.host.as_ref().is_none_or(|h| &s.host == h)
            && self.tags.iter().all(|t| s.tags.contains(t))
    }
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector> {
        let (selector, rest) = split_selector(text)?;
        if !rest.is_empty() {
            return Err(Error::usage(format!("'{text}' is not a snapshot selector")));
        }
        Ok(selector)
    }

    /// The chosen snapshot among `snapshots` (oldest first).
    pub fn select<'a>(
        &self,
        snapshots: impl IntoIterator<Item = &'a Snapshot>,
        filter: &Filter,
    ) -> Result<&'a Snapshot> {
        let candidates: Vec<&Snapshot> = snapshots
            .into_iter()
            .filter(|s| filter.accepts(s))
            .collect();
        if candidates.is_empty() {
            return Err(Error::usage(
                "the repository has no snapshots (that match the host and tag filters)",
            ));
        }
        match self {
            Selector::Latest => Ok(candidates[candidates.len() - 1]),
            Selector::IdPrefix(prefix) => {
                let matches: Vec<_> = candidates
                    .iter()
                    .filter(|s| s.id.to_hex().starts_with(prefix))
                    .collect();
                match matches.len() {
                    1 => Ok(matches[0]),
                    0 => Err(
                        Error::usage(format!("no snapshot has an id starting with {prefix}"))
                            .with_hint("`rewind snapshots` lists them"),
                    ),
                    n => Err(Error::usage(format!(
                        "{n} snapshots have ids starting with {prefix}; give more digits"
                    ))),
                }
            }
            Selector::Before { text, end } => candidates
                .iter()
                .rev()
                .find(|s| s.time < *end)
                .copied()
                .ok_or_else(|| {
                    Error::usage(format!(
                        "no snapshot was taken at or before @{text}; the earliest is @{} ({})",
                        candidates[0].time_label(),
                        candidates[0].id.short()
                    ))
                }),
        }
    }
}

/// Splits `SNAP[:PATH]`: the selector ends at the first `:` its own grammar
/// does not use. Returns the selector and the path (empty when absent).
pub fn split_selector(text: &str) -> Result<(Selector, &str)> {
    let (selector, rest) = if let Some(time) = text.strip_prefix('@') {
        let (end, consumed) = parse_time_prefix(time).ok_or_else(|| {
            Error::usage(format!(
                "'@{time}' is not a time: use @YYYY[-MM[-DD[THH[:MM[:SS]]]]][Z|±HH:MM]"
            ))
        })?;
        let rest = &time[consumed..];
        (
            Selector::Before {
                text: time[..consumed].to_string(),
                end,
            },
            rest,
        )
    } else {
        let word_end = text.find(':').unwrap_or(text.len());
        let word = &text[..word_end];
        let selector = if word == "latest" {
            Selector::Latest
        } else if word.len() >= 4 && word.len() <= 64 && word.bytes().all(|b| b.is_ascii_hexdigit())
        {
            Selector::IdPrefix(word.to_ascii_lowercase())
        } else {
            return Err(Error::usage(format!(
                "'{word}' is not a snapshot selector: use latest, an id (4+ hex digits) or @TIME"
            )));
        };
        (selector, &text[word_end..])
    };
    match rest.strip_prefix(':') {
        Some(path) => Ok((selector, path)),
        None if rest.is_empty() => Ok((selector, rest)),
        None => Err(Error::usage(format!(
            "'{text}': unexpected '{rest}' after the snapshot selector"
        ))),
    }
}

/// Parses the longest ISO 8601 prefix at the start of `s`; returns the end of
/// the named period and how many bytes were used.
pub fn parse_time_prefix(s: &str) -> Option<(DateTime<Utc>, usize)> {
    parse_time_period(s).map(|(_, end, used)| (end, used))
}

/// [`parse_time_prefix`], with the start of the named period too: `2024-06`
/// is from 2024-06-01T00:00:00Z to 2024-07-01T00:00:00Z.
pub fn parse_time_period(s: &str) -> Option<(DateTime<Utc>, DateTime<Utc>, usize)> {
    let b = s.as_bytes();
    let digits = |at: usize, n: usize| -> Option<u32> {
        let part = b.get(at..at + n)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let year = digits(0, 4)? as i32;
    let mut pos = 4;
    let mut fields = [1u32, 1, 0, 0, 0]; // month, day, hour, minute, second
    let mut precision = 0; // how many of `fields` were given
    let separators = [b'-', b'-', b'T', b':', b':'];
    for (i, sep) in separators.iter().enumerate() {
        let sep_ok = b.get(pos) == Some(sep) || (*sep == b'T' && b.get(pos) == Some(&b't'));
        match (sep_ok, digits(pos + 1, 2)) {
            (true, Some(v)) => {
                fields[i] = v;
                pos += 3;
                precision = i + 1;
            }
            _ => break,
        }
    }
    let mut nanos_given = false;
    let mut nanos = 0u32;
    if precision == 5 && b.get(pos) == Some(&b'.') {
        let frac: String = s[pos + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if !frac.is_empty() && frac.len() <= 9 {
            nanos = format!("{frac:0<9}").parse().ok()?;
            pos += 1 + frac.len();
            nanos_given = true;
        }
    }
    let mut offset_secs = 0i32;
    if precision >= 2 {
        if matches!(b.get(pos), Some(b'Z') | Some(b'z')) {
            pos += 1;
        } else if let Some(&sign @ (b'+' | b'-')) = b.get(pos) {
            if let (Some(h), Some(b':'), Some(m)) =
                (digits(pos + 1, 2), b.get(pos + 3), digits(pos + 4, 2))
            {
                offset_secs = (h * 3600 + m * 60) as i32 * if sign == b'-' { -1 } else { 1 };
                pos += 6;
            }
        }
    }
    let date = NaiveDate::from_ymd_opt(year, fields[0], fields[1])?;
    let start: NaiveDateTime = date.and_hms_nano_opt(fields[2], fields[3], fields[4], nanos)?;
    let end = match precision {
        0 => start.checked_add_months(Months::new(12))?,
        1 => start.checked_add_months(Months::new(1))?,
        2 => start + Duration::days(1),
        3 => start + Duration::hours(1),
        4 => start + Duration::minutes(1),
        _ if nanos_given => start + Duration::nanoseconds(1),
        _ => start + Duration::seconds(1),
    };
    let offset = FixedOffset::east_opt(offset_secs)?;
    let in_utc =
        |t: NaiveDateTime| Some(offset.from_local_datetime(&t).single()?.with_timezone(&Utc));
    Some((in_utc(start)?, in_utc(end)?, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(s: &str) -> String {
        let (e, used) = parse_time_prefix(s).unwrap();
        assert_eq!(used, s.len(), "{s}");
        e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    #[test]
    fn periods_end_where_expected() {
        assert_eq!(end("2024"), "2025-01-01T00:00:00Z");
        assert_eq!(end("2024-12"), "2025-01-01T00:00:00Z");
        assert_eq!(end("2024-06-01"), "2024-06-02T00:00:00Z");
        assert_eq!(end("2024-06-01T02"), "2024-06-01T03:00:00Z");
        assert_eq!(end("2024-06-01T02:00"), "2024-06-01T02:01:00Z");
        assert_eq!(end("2024-06-01T02:00:00Z"), "2024-06-01T02:00:01Z");
        assert_eq!(end("2024-06-01T02:00:00+02:00"), "2024-06-01T00:00:01Z");
        assert_eq!(end("2024-06-01+02:00"), "2024-06-01T22:00:00Z");
    }

    #[test]
    fn selector_ends_at_the_first_foreign_colon() {
        let (s, path) = split_selector("@2024-06-01T02:00:00Z:/etc/hosts").unwrap();
        assert!(matches!(s, Selector::Before { .. }));
        assert_eq!(path, "/etc/hosts");
        let (_, path) = split_selector("@2024-06-01T02:/etc").unwrap();
        assert_eq!(path, "/etc");
        let (s, path) = split_selector("latest:/etc/hosts").unwrap();
        assert_eq!((s, path), (Selector::Latest, "/etc/hosts"));
        let (s, path) = split_selector("ABCD1234:etc").unwrap();
        assert_eq!((s, path), (Selector::IdPrefix("abcd1234".into()), "etc"));
        assert!(split_selector("abc").is_err());
        assert!(split_selector("@20").is_err());
        assert!(split_selector("@2024-13").is_err());
    }

    #[test]
    fn periods_start_where_expected() {
        let start = |s: &str| {
            let (start, _, used) = parse_time_period(s).unwrap();
            assert_eq!(used, s.len(), "{s}");
            start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        assert_eq!(start("2024"), "2024-01-01T00:00:00Z");
        assert_eq!(start("2024-06-01T02"), "2024-06-01T02:00:00Z");
        assert_eq!(start("2024-06-01+02:00"), "2024-05-31T22:00:00Z");
    }

    #[test]
    fn invalid_dates_are_errors() {
        assert!(parse_time_prefix("2024-02-30").is_none());
        assert!(Selector::parse("@2024x").is_err());
    }
}
