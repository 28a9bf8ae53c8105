//! The scrub in a running mount daemon: a low-priority thread (nice 19,
//! idle I/O class) that yields to readers, marks the packs it finds damaged
//! so reads of them fail at once, and reports in `.rewind/status`. It
//! reaches the mount only through [`ScrubbedMount`].

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::json;

use super::{ScrubOptions, ScrubState, Scrubber, Status};
use crate::backend::FileType;
use crate::error::Result;
use crate::repo::{Id, IdSet, Repository};

/// Reads are "recent" for this long; the scrub waits until none are.
const QUIET: Duration = Duration::from_millis(100);

/// What the background scrub needs of the mount it runs in.
pub trait ScrubbedMount: Send + Sync {
    /// The indexed repository, waiting for the mount to load the index.
    fn indexed_repository(&self) -> Result<&Repository>;
    /// How long no file has been read.
    fn idle_for(&self) -> Duration;
    /// Makes reads of these blobs, and of every blob in these packs, fail
    /// at once; what is no longer listed (repaired) reads again.
    fn set_damaged(&self, blobs_and_packs: IdSet);
    /// Adds the section this returns to the mount's status.
    fn show_in_status(&self, section: Box<dyn Fn() -> serde_json::Value + Send + Sync>);
}

/// A running background scrub. Dropping it ends the scrub once the packs
/// in hand are checked; what it checked is saved, and the next scrub
/// continues from there.
pub struct BackgroundScrub {
    stop: Arc<Stop>,
}

impl Drop for BackgroundScrub {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// Tells the scrub's thread to end, waking it from a pause.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    woken: Condvar,
}

impl Stop {
    fn stop(&self) {
        *self.stopped.lock().unwrap() = true;
        self.woken.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap()
    }

    /// Waits `duration`, or less if stopped meanwhile; true if stopped.
    fn pause(&self, duration: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap();
        let (stopped, _) = self
            .woken
            .wait_timeout_while(stopped, duration, |stopped| !*stopped)
            .unwrap();
        *stopped
    }
}

/// Starts the background scrub; a pass every `interval`, continuing an
/// unfinished pass first.
pub fn start(
    mount: Arc<dyn ScrubbedMount>,
    options: ScrubOptions,
    interval: Duration,
) -> std::io::Result<BackgroundScrub> {
    let shown: Arc<Mutex<(bool, ScrubState)>> =
        Arc::new(Mutex::new((false, ScrubState::default())));
    let for_status = Arc::clone(&shown);
    mount.show_in_status(Box::new(move || {
        let (running, state) = &*for_status.lock().unwrap();
        let count = |status| state.findings.iter().filter(|f| f.status == status).count();
        json!({ "scrub": {
            "running": running,
            "pass_started": state.pass_started,
            "packs_checked": state.packs_checked,
            "packs_total": state.packs_total,
            "bytes_checked": state.bytes_checked,
            "coverage": state.coverage(),
            "last_full_pass": state.last_full_pass,
            "damaged": count(Status::Damaged),
            "lost": count(Status::Lost),
            "findings": state.findings,
        }})
    }));
    let stop = Arc::new(Stop::default());
    let stopped = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("rewind-scrub".into())
        .spawn(move || {
            lower_priority();
            loop {
                shown.lock().unwrap().0 = true;
                if let Err(e) = one_pass(&*mount, &options, &shown, &stopped) {
                    crate::log::error(&format!("background scrub: {e}"));
                }
                shown.lock().unwrap().0 = false;
                if stopped.pause(interval) {
                    break;
                }
            }
        })?;
    Ok(BackgroundScrub { stop })
}

/// Checks packs until the pass is complete or the scrub is stopped.
fn one_pass(
    mount: &dyn ScrubbedMount,
    options: &ScrubOptions,
    shown: &Mutex<(bool, ScrubState)>,
    stop: &Stop,
) -> Result<()> {
    // The mount loads the index in the background; the scrub needs it.
    let repo = mount.indexed_repository()?;
    let mut scrubber = Scrubber::start(repo, options.clone())?;
    mark(mount, scrubber.state());
    shown.lock().unwrap().1 = scrubber.state().clone();
    loop {
        while mount.idle_for() < QUIET {
            if stop.pause(QUIET) {
                return Ok(());
            }
        }
        if stop.is_stopped() {
            return Ok(());
        }
        let Some(findings) = scrubber.step()? else {
            // The pass is complete: show its end (last_full_pass) too.
            shown.lock().unwrap().1 = scrubber.state().clone();
            break;
        };
        for f in findings {
            crate::log::error(&format!("scrub: {} {:?}: {}", f.file, f.status, f.problem));
        }
        mark(mount, scrubber.state());
        shown.lock().unwrap().1 = scrubber.state().clone();
    }
    let report = scrubber.finish();
    crate::log::info(&format!(
        "scrub pass complete: {} packs, {} findings",
        report.packs_checked,
        report.findings.len()
    ));
    Ok(())
}

/// Every blob (or whole pack) the scrub holds damaged or lost fails reads
/// at once; one repaired since reads again.
fn mark(mount: &dyn ScrubbedMount, state: &ScrubState) {
    let mut damaged = IdSet::default();
    for f in state
        .findings
        .iter()
        .filter(|f| f.status != Status::Repaired)
    {
        match &f.damaged_blobs {
            Some(blobs) => damaged.extend(blobs.iter().copied()),
            None => damaged.extend(pack_named(&f.file)),
        }
    }
    mount.set_damaged(damaged);
}

/// The pack a finding's file is, if it is a pack (not its parity, not a
/// metadata file).
fn pack_named(file: &str) -> Option<Id> {
    let name = file.rsplit('/').next()?;
    if FileType::Pack.path(name) != file {
        return None;
    }
    Id::from_hex(name).ok()
}

fn lower_priority() {
    // SAFETY: these calls change only this thread's scheduling.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid as libc::c_long,
            IOPRIO_CLASS_IDLE << 13,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pack_files_name_a_pack() {
        let id = Id([0xab; 32]);
        let pack = FileType::Pack.path(&id.to_hex());
        assert_eq!(pack_named(&pack), Some(id));
        let parity = FileType::Parity.path(&crate::repo::parity_name(FileType::Pack, &id.to_hex()));
        assert_eq!(pack_named(&parity), None);
        assert_eq!(pack_named(&FileType::Index.path(&id.to_hex())), None);
        assert_eq!(pack_named("config"), None);
    }
}
