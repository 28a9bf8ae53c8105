//! The scrub in a running mount daemon: a low-priority thread (nice 19,
//! idle I/O class) that yields to readers, marks the packs it finds damaged
//! so reads of them fail at once, and reports in `.rewind/status`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::{ScrubOptions, ScrubState, Scrubber, Status};
use crate::repo::Id;
use crate::vfs::Vfs;

/// Reads are "recent" for this long; the scrub waits until none are.
const QUIET: Duration = Duration::from_millis(100);

/// Starts the background scrub; a pass every `interval`, continuing an
/// unfinished pass first.
pub fn start(vfs: Arc<Vfs>, options: ScrubOptions, interval: Duration) -> std::io::Result<()> {
    let shown: Arc<Mutex<(bool, ScrubState)>> =
        Arc::new(Mutex::new((false, ScrubState::default())));
    let for_status = Arc::clone(&shown);
    vfs.set_status_extra(Box::new(move || {
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
    std::thread::Builder::new()
        .name("rewind-scrub".into())
        .spawn(move || {
            lower_priority();
            loop {
                shown.lock().unwrap().0 = true;
                if let Err(e) = one_pass(&vfs, &options, &shown) {
                    crate::log::error(&format!("background scrub: {e}"));
                }
                shown.lock().unwrap().0 = false;
                std::thread::sleep(interval);
            }
        })?;
    Ok(())
}

fn one_pass(
    vfs: &Vfs,
    options: &ScrubOptions,
    shown: &Mutex<(bool, ScrubState)>,
) -> crate::Result<()> {
    // The mount loads the index in the background; the scrub needs it.
    let Some(repo) = vfs.indexed_repository() else {
        return Err(crate::Error::corrupt("the index could not be loaded"));
    };
    let mut scrubber = Scrubber::start(repo, options.clone())?;
    mark(vfs, scrubber.state());
    shown.lock().unwrap().1 = scrubber.state().clone();
    loop {
        while vfs.idle_for() < QUIET {
            std::thread::sleep(QUIET);
        }
        let Some(findings) = scrubber.step()? else {
            // The pass is complete: show its end (last_full_pass) too.
            shown.lock().unwrap().1 = scrubber.state().clone();
            break;
        };
        for f in findings {
            crate::log::error(&format!("scrub: {} {:?}: {}", f.file, f.status, f.problem));
        }
        mark(vfs, scrubber.state());
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
fn mark(vfs: &Vfs, state: &ScrubState) {
    let mut damaged = crate::repo::IdSet::default();
    for f in state
        .findings
        .iter()
        .filter(|f| f.status != Status::Repaired)
    {
        match &f.damaged_blobs {
            Some(blobs) => damaged.extend(blobs.iter().copied()),
            None => {
                let pack = f
                    .file
                    .strip_prefix("data/")
                    .and_then(|rest| rest.split('/').nth(1));
                damaged.extend(pack.and_then(|name| Id::from_hex(name).ok()));
            }
        }
    }
    vfs.set_damaged(damaged);
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
