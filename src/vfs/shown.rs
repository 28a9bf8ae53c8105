//! The snapshots the mount shows, named by `layout`, and their refresh:
//! snapshots backed up or forgotten while mounted come and go.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::index::BackgroundIndex;
use super::layout::Layout;
use super::stats::Stats;
use crate::error::Result;
use crate::repo::{Opened, Repository, Snapshot};

pub struct ShownSnapshots {
    /// Snapshots are listed from the repository as opened, without waiting
    /// for the index.
    repo: Repository<Opened>,
    index: Arc<BackgroundIndex>,
    stats: Arc<Stats>,
    layout: RwLock<Arc<Layout>>,
    /// When the snapshots shown last changed: the mtime of the directories
    /// above them, which tells the kernel to drop the listings it cached.
    changed: Mutex<SystemTime>,
    refresh_running: AtomicBool,
}

impl ShownSnapshots {
    /// Lists the repository's snapshots.
    pub fn list(
        repo: Repository<Opened>,
        index: Arc<BackgroundIndex>,
        stats: Arc<Stats>,
    ) -> Result<ShownSnapshots> {
        let layout = Layout::new(repo.snapshots()?);
        Ok(ShownSnapshots {
            repo,
            index,
            stats,
            layout: RwLock::new(Arc::new(layout)),
            changed: Mutex::new(SystemTime::now()),
            refresh_running: AtomicBool::new(false),
        })
    }

    /// Where the repository is (a path or a URL).
    pub fn location(&self) -> String {
        self.repo.location()
    }

    /// The snapshots shown now, and their names.
    pub fn layout(&self) -> Arc<Layout> {
        Arc::clone(&self.layout.read().unwrap())
    }

    pub fn changed_at(&self) -> SystemTime {
        *self.changed.lock().unwrap()
    }

    /// Picks up snapshots added or removed since the last look; returns
    /// whether anything changed. New index files are loaded first, so a new
    /// snapshot is readable as soon as it is listed. A refresh asked for
    /// while one runs returns at once.
    pub fn refresh(&self) -> Result<bool> {
        if self.refresh_running.swap(true, Relaxed) {
            return Ok(false);
        }
        let result = self.refresh_now();
        self.refresh_running.store(false, Relaxed);
        result
    }

    fn refresh_now(&self) -> Result<bool> {
        let names: HashSet<String> = self.repo.snapshot_names()?.into_iter().collect();
        let layout = self.layout();
        let known: HashSet<String> = layout.snapshots.iter().map(|s| s.id.to_hex()).collect();
        if names == known {
            return Ok(false);
        }
        if let Ok(repo) = self.index.wait_for_request() {
            for e in repo.refresh_index()?.1 {
                self.stats.record_error(e.to_string());
            }
        }
        let mut snapshots: Vec<Snapshot> = layout
            .snapshots
            .iter()
            .filter(|s| names.contains(&s.id.to_hex()))
            .map(|s| (**s).clone())
            .collect();
        for name in names.difference(&known) {
            match self.repo.read_snapshot(name) {
                Ok(s) => snapshots.push(s),
                Err(e) => self.stats.record_error(e.to_string()),
            }
        }
        *self.layout.write().unwrap() = Arc::new(Layout::after(snapshots, &layout));
        *self.changed.lock().unwrap() = SystemTime::now();
        Ok(true)
    }
}
