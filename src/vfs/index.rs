//! The repository's index, loaded on a thread of its own: the mount is
//! ready as soon as the snapshots are listed, and what needs blobs waits
//! for the index here.

use std::sync::{Arc, Condvar, Mutex, OnceLock};

use super::stats::Stats;
use super::VfsResult;
use crate::error::{Error, Result};
use crate::repo::{Opened, Repository};

#[derive(Default)]
pub struct BackgroundIndex {
    /// The indexed repository, or why the index could not be loaded.
    loaded: OnceLock<Result<Repository>>,
    done: (Mutex<()>, Condvar),
}

impl BackgroundIndex {
    /// Starts loading the index of `repo` into `index`. Index files that do
    /// not read are recorded in `stats` (their blobs are then missing,
    /// which `rewind check` shows).
    /// `then` runs on the loaded repository before anyone waiting is let go.
    pub fn load(
        index: &Arc<BackgroundIndex>,
        repo: Repository<Opened>,
        stats: Arc<Stats>,
        then: impl FnOnce(&Repository) + Send + 'static,
    ) -> Result<()> {
        let loader = Arc::clone(index);
        std::thread::Builder::new()
            .name("rewind-index".into())
            .spawn(move || {
                let result = repo.load_index().map(|(repo, errors)| {
                    for e in errors {
                        stats.record_error(format!("{e} (run `rewind check`)"));
                    }
                    then(&repo);
                    repo
                });
                loader.finish(result);
            })
            .map_err(|e| Error::io("cannot start the index loader", e))?;
        Ok(())
    }

    fn finish(&self, result: Result<Repository>) {
        let _ = self.loaded.set(result);
        let _waiting = self.done.0.lock().unwrap();
        self.done.1.notify_all();
    }

    /// The indexed repository, once the load is done, or why it failed.
    pub fn wait(&self) -> std::result::Result<&Repository, &Error> {
        let loaded = match self.loaded.get() {
            Some(loaded) => loaded,
            None => {
                let mut waiting = self.done.0.lock().unwrap();
                loop {
                    if let Some(loaded) = self.loaded.get() {
                        break loaded;
                    }
                    waiting = self.done.1.wait(waiting).unwrap();
                }
            }
        };
        loaded.as_ref()
    }

    /// [`BackgroundIndex::wait`] for a request of the kernel: a failed load
    /// is logged and answered with EIO.
    pub fn wait_for_request(&self) -> VfsResult<&Repository> {
        self.wait().map_err(|e| {
            crate::log::error(&format!("the index could not be loaded: {e}"));
            libc::EIO
        })
    }

    /// [`BackgroundIndex::wait`], with an error of its own that keeps the
    /// kind of the failure.
    pub fn wait_or_error(&self) -> Result<&Repository> {
        self.wait()
            .map_err(|e| Error::new(e.kind(), format!("the index could not be loaded: {e}")))
    }

    /// The indexed repository if it is loaded, without waiting.
    pub fn loaded(&self) -> Option<&Repository> {
        self.loaded.get().and_then(|loaded| loaded.as_ref().ok())
    }

    /// Whether the load is over, successful or not.
    pub fn is_done(&self) -> bool {
        self.loaded.get().is_some()
    }
}
