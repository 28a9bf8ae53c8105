//! Mounting a repository as `rewind mount` does, for any program: its
//! snapshots served read-only through FUSE (`vfs`, `fuse`), new snapshots
//! picked up as backups finish, and, if asked, a scrub in the background
//! that yields to reads. The command line adds only daemonizing, logging
//! and waiting for a signal.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fuse::{self, FuseOptions, Mounted};
use crate::repo::{Opened, Repository};
use crate::scrub::background::{self, BackgroundScrub};
use crate::scrub::ScrubOptions;
use crate::vfs::{Vfs, VfsOptions};

#[derive(Debug, Clone)]
pub struct MountOptions {
    pub vfs: VfsOptions,
    pub fuse: FuseOptions,
    /// How often to look for snapshots added or forgotten (at most once a
    /// second).
    pub refresh: Duration,
    /// A scrub in the background, if wanted.
    pub scrub: Option<MountScrub>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            vfs: VfsOptions::default(),
            fuse: FuseOptions::default(),
            refresh: Duration::from_secs(5),
            scrub: None,
        }
    }
}

/// A scrub that runs while the repository is mounted: one pack at a time,
/// at a low priority, only while no file is being read.
#[derive(Debug, Clone)]
pub struct MountScrub {
    /// MiB/s of reading.
    pub rate: f64,
    /// The pause after a pass, before the next one (at least a second).
    pub interval: Duration,
    /// Where the scrub keeps its progress; None: the default place for the
    /// repository (the one `rewind scrub` uses).
    pub state_file: Option<PathBuf>,
}

/// A mounted repository. Dropping it stops the refresh and the scrub but
/// leaves the mount to whoever unmounts it; [`Mount::unmount`] ends it all.
pub struct Mount {
    vfs: Arc<Vfs>,
    session: Mounted,
    /// Dropping it ends the refresh thread.
    _refreshing: mpsc::Sender<()>,
    /// Dropping it ends the background scrub.
    _scrub: Option<BackgroundScrub>,
}

impl Mount {
    /// Mounts `repo` read-only at `mountpoint` and serves it on threads of
    /// its own until unmounted. `on_end` runs when the kernel ends the
    /// session, an unmount from anywhere included.
    pub fn start(
        repo: Repository<Opened>,
        mountpoint: &Path,
        options: &MountOptions,
        on_end: impl FnOnce() + Send + 'static,
    ) -> Result<Mount> {
        let scrub = match &options.scrub {
            Some(scrub) => Some(scrub_options(&repo, scrub)?),
            None => None,
        };
        let vfs = Vfs::new(repo, options.vfs.clone())?;
        let session = fuse::mount(Arc::clone(&vfs), mountpoint, &options.fuse, on_end)?;
        crate::log::info(&format!(
            "mounted {} at {}",
            vfs.location(),
            mountpoint.display()
        ));
        let started = start_scrub(&vfs, scrub).and_then(|scrub| {
            let refreshing = start_refresh(&vfs, options.refresh)?;
            Ok((refreshing, scrub))
        });
        match started {
            Ok((refreshing, scrub)) => Ok(Mount {
                vfs,
                session,
                _refreshing: refreshing,
                _scrub: scrub,
            }),
            Err(e) => {
                // The caller gets no `Mount` to unmount: leave nothing mounted.
                if let Err(unmounting) = session.unmount() {
                    crate::log::error(&format!("after a failed start: {unmounting}"));
                }
                Err(e)
            }
        }
    }

    /// The mounted filesystem (its status, a refresh on demand).
    pub fn vfs(&self) -> &Arc<Vfs> {
        &self.vfs
    }

    /// Unmounts and waits for the threads that served the mount to end.
    pub fn unmount(self) -> Result<()> {
        self.session.unmount()
    }

    /// Waits until the mount ends (an unmount from anywhere).
    pub fn wait(self) -> Result<()> {
        self.session.wait()
    }
}

/// The background scrub's options: deep, one pack at a time, reporting
/// damage without repairing it.
fn scrub_options(
    repo: &Repository<Opened>,
    scrub: &MountScrub,
) -> Result<(ScrubOptions, Duration)> {
    let state_file = match &scrub.state_file {
        Some(path) => path.clone(),
        None => crate::scrub::state::default_path(&repo.config().id.short())?,
    };
    let options = ScrubOptions {
        rate: Some(scrub.rate),
        restart: false,
        repair: false,
        deep: true,
        // One pack at a time: the background scrub must stay out of the way.
        threads: 1,
        state_file,
    };
    Ok((options, scrub.interval.max(Duration::from_secs(1))))
}

fn start_scrub(
    vfs: &Arc<Vfs>,
    scrub: Option<(ScrubOptions, Duration)>,
) -> Result<Option<BackgroundScrub>> {
    let Some((options, interval)) = scrub else {
        return Ok(None);
    };
    background::start(Arc::clone(vfs) as _, options, interval)
        .map(Some)
        .map_err(|e| Error::io("cannot start the background scrub", e))
}

/// Looks for new snapshots every `period` until the returned sender is
/// dropped.
fn start_refresh(vfs: &Arc<Vfs>, period: Duration) -> Result<mpsc::Sender<()>> {
    let (refreshing, stopped) = mpsc::channel::<()>();
    let vfs = Arc::clone(vfs);
    let period = period.max(Duration::from_secs(1));
    std::thread::Builder::new()
        .name("rewind-refresh".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                if let Err(e) = vfs.refresh() {
                    crate::log::warn(&format!("cannot look for new snapshots: {e}"));
                }
            }
        })
        .map_err(|e| Error::io("cannot start the refresh thread", e))?;
    Ok(refreshing)
}
