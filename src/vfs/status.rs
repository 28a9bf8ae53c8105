//! `.rewind/status`: JSON for admins and monitoring (its fields are listed
//! in `man/rewind-mount.1`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::cache::ChunkCache;
use super::index::BackgroundIndex;
use super::inodes::Inodes;
use super::shown::ShownSnapshots;
use super::stats::Stats;

/// Extra sections of `.rewind/status`, supplied by whoever runs the mount
/// (the background scrub).
pub type StatusExtra = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// `.rewind/status` as last written: made anew at each lookup (every open
/// by path makes one), then served unchanged to getattr and read, so the
/// size and bytes a reader gets belong to one text.
pub struct StatusText {
    pub bytes: Vec<u8>,
    pub made: SystemTime,
}

/// What the status reports on, and the text last made of it.
pub struct StatusFile {
    shown: Arc<ShownSnapshots>,
    index: Arc<BackgroundIndex>,
    inodes: Arc<Inodes>,
    chunks: Arc<ChunkCache>,
    stats: Arc<Stats>,
    extra: Mutex<Option<StatusExtra>>,
    text: Mutex<Arc<StatusText>>,
}

impl StatusFile {
    pub fn new(
        shown: Arc<ShownSnapshots>,
        index: Arc<BackgroundIndex>,
        inodes: Arc<Inodes>,
        chunks: Arc<ChunkCache>,
        stats: Arc<Stats>,
    ) -> StatusFile {
        StatusFile {
            shown,
            index,
            inodes,
            chunks,
            stats,
            extra: Mutex::new(None),
            text: Mutex::new(Arc::new(StatusText {
                bytes: Vec::new(),
                made: UNIX_EPOCH,
            })),
        }
    }

    pub fn set_extra(&self, extra: StatusExtra) {
        *self.extra.lock().unwrap() = Some(extra);
    }

    /// Makes the text anew (the file is being opened).
    pub fn write_text(&self) {
        let text = StatusText {
            bytes: self.render().into_bytes(),
            made: SystemTime::now(),
        };
        *self.text.lock().unwrap() = Arc::new(text);
    }

    /// The text last made.
    pub fn text(&self) -> Arc<StatusText> {
        Arc::clone(&self.text.lock().unwrap())
    }

    /// Up to `size` bytes of the text last made, at `offset`.
    pub fn read(&self, offset: u64, size: u32) -> Vec<u8> {
        let text = self.text();
        let start = (offset as usize).min(text.bytes.len());
        let end = start.saturating_add(size as usize).min(text.bytes.len());
        text.bytes[start..end].to_vec()
    }

    /// The status as of now.
    pub fn render(&self) -> String {
        let layout = self.shown.layout();
        let stats = &self.stats;
        let mounted_at = chrono::DateTime::<chrono::Utc>::from(stats.mounted_at)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut status = json!({
            "repository": self.shown.location(),
            "snapshots": layout.snapshots.len(),
            "newest_snapshot": layout.snapshots.last().map(|s| s.time_label()),
            "mounted_at": mounted_at,
            "index_loaded": self.index.is_done(),
            "inodes": self.inodes.len(),
            "cache": {
                "hits": self.chunks.hits.load(Relaxed),
                "misses": self.chunks.misses.load(Relaxed),
                "bytes": self.chunks.bytes(),
                "budget": self.chunks.budget(),
            },
            "reads": stats.reads.load(Relaxed),
            "bytes_served": stats.bytes_served.load(Relaxed),
            "reads_verified": stats.chunks_verified.load(Relaxed),
            "eio_count": stats.eio.load(Relaxed),
            "recent_errors": stats.recent_errors(),
        });
        if let Some(extra) = self.extra.lock().unwrap().as_ref() {
            if let (Some(map), serde_json::Value::Object(more)) = (status.as_object_mut(), extra())
            {
                map.extend(more);
            }
        }
        let mut text = serde_json::to_string_pretty(&status).expect("status serializes");
        text.push('\n');
        text
    }
}
