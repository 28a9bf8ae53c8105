//! What the restore's file workers share: the chunks read for the files a
//! worker is writing, and the counts they add up.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use crate::error::{Error, Result};
use crate::repo::Id;

/// Chunks read for the files a worker is writing, by id.
#[derive(Default)]
pub(super) struct Chunks(pub HashMap<Id, Result<Vec<u8>>>);

impl Chunks {
    /// Whether `id` was read (or failed to be).
    pub fn has(&self, id: &Id) -> bool {
        self.0.contains_key(id)
    }

    /// A chunk that was read. A failure is handed to the first file that
    /// asks; the next one reads the chunk again and fails on its own.
    pub fn take(&mut self, id: &Id) -> Result<&[u8]> {
        if let Some(Err(_)) = self.0.get(id) {
            if let Some(Err(e)) = self.0.remove(id) {
                return Err(e);
            }
        }
        match self.0.get(id) {
            Some(Ok(data)) => Ok(data),
            _ => Err(Error::internal(format!(
                "chunk {} was not read",
                id.short()
            ))),
        }
    }
}

/// What the workers add up.
#[derive(Default)]
pub(super) struct Tally {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub kept: AtomicU64,
    pub kept_bytes: AtomicU64,
    pub skipped: AtomicU64,
    pub verified: AtomicU64,
}
