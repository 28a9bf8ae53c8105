//! How long commands show how far they got, from the counts the library
//! keeps ([`rewind::Progress`]): a bar with rate and ETA when stderr is a
//! terminal; a plain line every `REWIND_PROGRESS_INTERVAL` seconds (10 by
//! default) when it is not (journald, cron); JSON lines on stderr with
//! `--json` (stdout keeps the command's one document); nothing with
//! `--quiet`, which also silences the summaries commands print on stderr
//! (`docs/design.md`, section 1.4, "Progress").

use std::collections::VecDeque;
use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rewind::progress::Reading;
use rewind::Progress;
use serde_json::Value;

use super::size::human_bytes;
use super::Global;

const INTERVAL_VARIABLE: &str = "REWIND_PROGRESS_INTERVAL";
/// `lines`: plain lines even with `--json` (the steps of `rewind run`,
/// whose `--json` is for `run` to read, and whose stderr is run's).
pub const FORMAT_VARIABLE: &str = "REWIND_PROGRESS";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// How often a bar is redrawn.
const BAR_PERIOD: Duration = Duration::from_millis(150);
/// Rates are measured over the recent past, so that an ETA follows a
/// change of pace (small files, then large ones).
const RATE_WINDOW: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Bar,
    Lines(Duration),
    Json(Duration),
}

impl Global {
    /// Shows the progress of `command` (its `--json` given) until the
    /// returned value is dropped; pass its [`Shown::progress`] to the work.
    pub fn show_progress(&self, command: &'static str, json: bool) -> Shown {
        let plain_lines = std::env::var(FORMAT_VARIABLE).is_ok_and(|v| v == "lines");
        let mode = if self.quiet {
            None
        } else if plain_lines {
            Some(Mode::Lines(interval()))
        } else if json {
            Some(Mode::Json(interval()))
        } else if std::io::stderr().is_terminal() {
            Some(Mode::Bar)
        } else {
            Some(Mode::Lines(interval()))
        };
        match mode {
            Some(mode) => Shown::start(command, mode),
            None => Shown {
                progress: Progress::default(),
                drawer: None,
            },
        }
    }

    /// A line for people about a command that went well (a summary), on
    /// stderr unless `--quiet`.
    pub fn tell(&self, line: impl Display) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}

/// `REWIND_PROGRESS_INTERVAL`: seconds between two lines (a fraction for tests).
fn interval() -> Duration {
    let Ok(text) = std::env::var(INTERVAL_VARIABLE) else {
        return DEFAULT_INTERVAL;
    };
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Duration::from_secs_f64(seconds),
        _ => {
            rewind::log::warn(&format!(
                "{INTERVAL_VARIABLE}={text} is not a number of seconds; using {}",
                DEFAULT_INTERVAL.as_secs()
            ));
            DEFAULT_INTERVAL
        }
    }
}

/// Progress being shown; dropping it stops the drawing and clears the bar.
pub struct Shown {
    progress: Progress,
    drawer: Option<Drawer>,
}

struct Drawer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl Shown {
    fn start(command: &'static str, mode: Mode) -> Shown {
        let progress = Progress::counting();
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::new(PERMILLE);
            // Warnings while the bar is drawn go above it, not through it.
            let around = bar.clone();
            rewind::log::around_stderr(Some(Box::new(move |write| around.suspend(write))));
            bar
        });
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let (progress, bar, stop) = (progress.clone(), bar.clone(), Arc::clone(&stop));
            std::thread::spawn(move || draw(command, mode, &progress, bar.as_ref(), &stop))
        };
        Shown {
            progress,
            drawer: Some(Drawer { stop, thread, bar }),
        }
    }

    /// Where the work counts what it did.
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        let Some(drawer) = self.drawer.take() else {
            return;
        };
        *drawer.stop.0.lock().unwrap() = true;
        drawer.stop.1.notify_all();
        let _ = drawer.thread.join();
        if let Some(bar) = drawer.bar {
            rewind::log::around_stderr(None);
            bar.finish_and_clear();
        }
    }
}

/// A bar's length: its position is the share done, in thousandths.
const PERMILLE: u64 = 1000;

/// Draws until told to stop: a bar every `BAR_PERIOD`, a line every interval.
fn draw(
    command: &str,
    mode: Mode,
    progress: &Progress,
    bar: Option<&ProgressBar>,
    stop: &(Mutex<bool>, Condvar),
) {
    let period = match mode {
        Mode::Bar => BAR_PERIOD,
        Mode::Lines(interval) | Mode::Json(interval) => interval,
    };
    let mut meter = Meter::default();
    let mut bar_style = None;
    loop {
        let (stopped, _) = stop
            .1
            .wait_timeout_while(stop.0.lock().unwrap(), period, |stopped| !*stopped)
            .unwrap();
        if *stopped {
            return;
        }
        drop(stopped);
        let Some(reading) = progress.read() else {
            continue;
        };
        let view = meter.view(reading, Instant::now());
        match (mode, bar) {
            (Mode::Bar, Some(bar)) => {
                let fraction = view.fraction();
                if bar_style != Some(fraction.is_some()) {
                    bar_style = Some(fraction.is_some());
                    bar.set_style(style(fraction.is_some()));
                }
                bar.set_prefix(view.label(command));
                bar.set_position((fraction.unwrap_or(0.0) * PERMILLE as f64) as u64);
                bar.set_message(view.message());
                bar.tick();
            }
            (Mode::Json(_), _) => eprintln!("{}", view.json(command)),
            _ => eprintln!("{}: {}", view.label(command), view.line()),
        }
    }
}

fn style(with_bar: bool) -> ProgressStyle {
    let template = if with_bar {
        "{spinner} {prefix} [{bar:20}] {wide_msg}"
    } else {
        "{spinner} {prefix} {wide_msg}"
    };
    ProgressStyle::with_template(template)
        .expect("the templates are valid")
        .progress_chars("=> ")
}

/// Rates of the current stage, measured over `RATE_WINDOW`.
#[derive(Default)]
struct Meter {
    stage_number: u64,
    samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    items: u64,
    bytes: u64,
}

/// A reading with what follows from it.
#[derive(Debug)]
struct View {
    reading: Reading,
    elapsed: Duration,
    items_per_second: Option<f64>,
    bytes_per_second: Option<f64>,
    eta: Option<Duration>,
}

impl Meter {
    fn view(&mut self, reading: Reading, now: Instant) -> View {
        if reading.stage_number != self.stage_number {
            self.stage_number = reading.stage_number;
            self.samples.clear();
            self.samples.push_back(Sample {
                at: reading.began,
                items: 0,
                bytes: 0,
            });
        }
        self.samples.push_back(Sample {
            at: now,
            items: reading.items_done,
            bytes: reading.bytes_done,
        });
        // The oldest sample kept is the last one at or before the window's start.
        while self.samples.len() > 2 && now - self.samples[1].at >= RATE_WINDOW {
            self.samples.pop_front();
        }
        let first = self.samples[0];
        let span = (now - first.at).as_secs_f64();
        let rate =
            |done: u64, then: u64| (span >= 0.5).then(|| done.saturating_sub(then) as f64 / span);
        let items_per_second = rate(reading.items_done, first.items);
        let bytes_per_second = rate(reading.bytes_done, first.bytes);
        let totals = reading.totals;
        // By bytes when their total is known (even once passed), else by items.
        let eta = match totals.bytes {
            Some(total) => time_left(total, reading.bytes_done, bytes_per_second),
            None => totals
                .items
                .and_then(|total| time_left(total, reading.items_done, items_per_second)),
        };
        View {
            reading,
            elapsed: now - reading.began,
            items_per_second,
            bytes_per_second,
            eta,
        }
    }
}

/// None when the total is already passed (an estimate), or when nothing
/// is moving.
fn time_left(total: u64, done: u64, per_second: Option<f64>) -> Option<Duration> {
    let left = total.checked_sub(done)?;
    let per_second = per_second.filter(|r| *r > 0.0)?;
    Some(Duration::from_secs_f64(left as f64 / per_second))
}

impl View {
    /// `backup`, or `prune (repack)` for a stage not named as its command.
    fn label(&self, command: &str) -> String {
        match self.reading.stage.name {
            name if name == command => command.to_string(),
            name => format!("{command} ({name})"),
        }
    }

    fn counts_items(&self) -> bool {
        !self.reading.stage.items.is_empty()
    }

    fn counts_bytes(&self) -> bool {
        self.reading.bytes_done > 0 || self.reading.totals.bytes.is_some()
    }

    /// The share done, by bytes if their total is known, else by items;
    /// None past an estimate.
    fn fraction(&self) -> Option<f64> {
        let r = &self.reading;
        let (done, total) = match (r.totals.bytes, r.totals.items) {
            (Some(total), _) => (r.bytes_done, total),
            (None, Some(total)) if self.counts_items() => (r.items_done, total),
            _ => return None,
        };
        match total {
            0 => Some(1.0),
            _ if done > total => None,
            _ => Some(done as f64 / total as f64),
        }
    }

    /// A plain line: `1234 of ~5000 files, 1.2 GiB of ~5.0 GiB, 24%,
    /// 50.0 MiB/s, ETA 1m 20s`.
    fn line(&self) -> String {
        let parts = self.parts();
        let percent = self.fraction().map(|f| format!("{:.0}%", f * 100.0));
        join([
            parts.items,
            parts.bytes,
            percent,
            parts.rate,
            parts.eta,
            parts.elapsed,
        ])
    }

    /// Beside a bar, which shows the share done, in the little room left:
    /// what matters most first.
    fn message(&self) -> String {
        let parts = self.parts();
        join([
            parts.bytes,
            parts.rate,
            parts.eta,
            parts.items,
            parts.elapsed,
        ])
    }

    fn parts(&self) -> Parts {
        let r = &self.reading;
        // An estimate already passed is no longer worth showing.
        let of = |done: u64, total: Option<u64>, show: &dyn Fn(u64) -> String| match total {
            Some(total) if !(r.totals.estimated && done > total) => {
                let about = if r.totals.estimated { "~" } else { "" };
                format!("{} of {about}{}", show(done), show(total))
            }
            _ => show(done),
        };
        let items = self.counts_items().then(|| {
            let count = of(r.items_done, r.totals.items, &|n| n.to_string());
            format!("{count} {}", r.stage.items)
        });
        let bytes = self
            .counts_bytes()
            .then(|| of(r.bytes_done, r.totals.bytes, &human_bytes));
        let rate = match (self.bytes_per_second, self.items_per_second) {
            (Some(rate), _) if self.counts_bytes() => {
                Some(format!("{}/s", human_bytes(rate as u64)))
            }
            (_, Some(rate)) if self.counts_items() => {
                Some(format!("{rate:.1} {}/s", r.stage.items))
            }
            _ => None,
        };
        let nothing_counted = items.is_none() && bytes.is_none();
        Parts {
            items,
            bytes,
            rate,
            eta: self.eta.map(|eta| format!("ETA {}", short_duration(eta))),
            elapsed: nothing_counted.then(|| format!("{} elapsed", short_duration(self.elapsed))),
        }
    }

    /// A JSON line: `{"progress":"backup","stage":"backup","files_done":..,
    /// "files_total":..,"bytes_done":..,"bytes_total":..,"estimated":..,
    /// "elapsed_s":..,"bytes_per_s":..,"files_per_s":..,"eta_s":..}`, in
    /// that order; unknown values are null.
    fn json(&self, command: &str) -> String {
        let r = &self.reading;
        let items = r.stage.items;
        let mut fields: Vec<(String, Value)> = vec![
            ("progress".into(), command.into()),
            ("stage".into(), r.stage.name.into()),
        ];
        if self.counts_items() {
            fields.push((format!("{items}_done"), r.items_done.into()));
            fields.push((format!("{items}_total"), r.totals.items.into()));
        }
        fields.extend([
            ("bytes_done".into(), r.bytes_done.into()),
            ("bytes_total".into(), r.totals.bytes.into()),
            ("estimated".into(), r.totals.estimated.into()),
            (
                "elapsed_s".into(),
                round_tenths(self.elapsed.as_secs_f64()).into(),
            ),
            (
                "bytes_per_s".into(),
                self.bytes_per_second.map(|r| r.round() as u64).into(),
            ),
        ]);
        if self.counts_items() {
            let rate = self.items_per_second.map(round_tenths);
            fields.push((format!("{items}_per_s"), rate.into()));
        }
        fields.push(("eta_s".into(), self.eta.map(|eta| eta.as_secs()).into()));
        serde_json::to_string(&InOrder(fields)).expect("JSON values serialize")
    }
}

/// The pieces of a progress text, each there when it means something.
struct Parts {
    items: Option<String>,
    bytes: Option<String>,
    rate: Option<String>,
    eta: Option<String>,
    elapsed: Option<String>,
}

fn join<const N: usize>(parts: [Option<String>; N]) -> String {
    parts.into_iter().flatten().collect::<Vec<_>>().join(", ")
}

/// A JSON object with its fields in the order given (a `Value` sorts them).
struct InOrder(Vec<(String, Value)>);

impl serde::Serialize for InOrder {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

fn round_tenths(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `42s`, `5m 20s`, `2h 05m`.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rewind::Totals;

    /// The view of `progress` as it stands `seconds` after its stage began.
    fn view_after(meter: &mut Meter, progress: &Progress, seconds: u64) -> View {
        let reading = progress.read().unwrap();
        meter.view(reading, reading.began + Duration::from_secs(seconds))
    }

    fn parsed(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn a_line_says_how_much_of_how_much_how_fast_and_how_long() {
        let progress = Progress::counting();
        progress.begin("restore", "files", Totals::known(Some(10), Some(100 << 20)));
        progress.add(3, 25 << 20);
        let view = view_after(&mut Meter::default(), &progress, 5);
        assert_eq!(
            view.line(),
            "3 of 10 files, 25.0 MiB of 100.0 MiB, 25%, 5.0 MiB/s, ETA 15s"
        );
        assert_eq!(
            view.message(),
            "25.0 MiB of 100.0 MiB, 5.0 MiB/s, ETA 15s, 3 of 10 files"
        );
        assert_eq!(view.label("restore"), "restore");
        assert_eq!(view.label("restore-test"), "restore-test (restore)");
        let line = view.json("restore");
        assert!(line.starts_with(r#"{"progress":"restore","stage":"restore","files_done":3,"#));
        let line = parsed(&line);
        assert_eq!(line["files_total"], 10);
        assert_eq!(line["bytes_done"], 25 << 20);
        assert_eq!(line["bytes_total"], 100 << 20);
        assert_eq!(line["bytes_per_s"], 5 << 20);
        assert_eq!(line["eta_s"], 15);
    }

    #[test]
    fn an_estimate_is_marked_and_left_out_once_passed() {
        let progress = Progress::counting();
        let estimate = Totals {
            items: Some(4),
            bytes: Some(4000),
            estimated: true,
        };
        progress.begin("backup", "files", estimate);
        progress.add(1, 1000);
        let mut meter = Meter::default();
        let view = view_after(&mut meter, &progress, 2);
        assert_eq!(
            view.line(),
            "1 of ~4 files, 1000 B of ~3.9 KiB, 25%, 500 B/s, ETA 6s"
        );
        assert_eq!(parsed(&view.json("backup"))["estimated"], true);
        progress.add(5, 5000);
        let view = view_after(&mut meter, &progress, 4);
        assert_eq!(view.eta, None, "no ETA by files either");
        assert_eq!(view.fraction(), None);
        assert_eq!(view.line(), "6 files, 5.9 KiB, 1.5 KiB/s");
    }

    #[test]
    fn without_totals_there_is_a_rate_but_no_eta() {
        let progress = Progress::counting();
        progress.begin("scan", "trees", Totals::UNKNOWN);
        progress.add(40, 0);
        let view = view_after(&mut Meter::default(), &progress, 4);
        assert_eq!(view.line(), "40 trees, 10.0 trees/s");
        let line = parsed(&view.json("prune"));
        assert_eq!(line["eta_s"], Value::Null);
        assert_eq!(line["bytes_total"], Value::Null);
        assert_eq!(line["trees_per_s"], 10.0);
    }

    #[test]
    fn a_stage_without_counts_shows_its_time() {
        let progress = Progress::counting();
        progress.begin("delete", "", Totals::UNKNOWN);
        let view = view_after(&mut Meter::default(), &progress, 75);
        assert_eq!(view.line(), "1m 15s elapsed");
        assert_eq!(view.label("prune"), "prune (delete)");
    }

    #[test]
    fn the_rate_follows_the_recent_pace() {
        let progress = Progress::counting();
        progress.begin("scrub", "packs", Totals::known(Some(1000), None));
        let mut meter = Meter::default();
        // Fast for a minute, then slow: the window sees only the slow part.
        progress.add(600, 0);
        view_after(&mut meter, &progress, 60);
        progress.add(30, 0);
        let view = view_after(&mut meter, &progress, 90);
        assert_eq!(view.items_per_second, Some(1.0));
        assert_eq!(view.eta, Some(Duration::from_secs(370)));
    }

    #[test]
    fn a_new_stage_starts_a_new_rate() {
        let progress = Progress::counting();
        let mut meter = Meter::default();
        progress.begin("scan", "trees", Totals::UNKNOWN);
        progress.add(1000, 0);
        view_after(&mut meter, &progress, 10);
        progress.begin("repack", "packs", Totals::known(Some(10), Some(1000)));
        progress.add(1, 100);
        let view = view_after(&mut meter, &progress, 10);
        assert_eq!(view.bytes_per_second, Some(10.0));
        assert_eq!(view.eta, Some(Duration::from_secs(90)));
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_secs(42)), "42s");
        assert_eq!(short_duration(Duration::from_secs(320)), "5m 20s");
        assert_eq!(short_duration(Duration::from_secs(7500)), "2h 05m");
    }
}
