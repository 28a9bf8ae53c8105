//! A local backend that counts the reads it serves, for tests of what a
//! command asks of its store (the cache, grouped reads).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rewind::format::FileType;
use rewind::{Backend, LocalBackend, Result};

/// A local backend that counts the reads it serves, whole and by range.
pub struct Counting {
    inner: LocalBackend,
    reads: Mutex<HashMap<(FileType, Read), usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Read {
    Whole,
    Range,
}

impl Counting {
    pub fn new(root: &Path) -> Counting {
        Counting {
            inner: LocalBackend::new(root),
            reads: Mutex::new(HashMap::new()),
        }
    }

    fn count(&self, kind: FileType, read: Read) {
        *self.reads.lock().unwrap().entry((kind, read)).or_default() += 1;
    }

    pub fn reads(&self, kind: FileType, read: Read) -> usize {
        self.reads
            .lock()
            .unwrap()
            .get(&(kind, read))
            .copied()
            .unwrap_or(0)
    }
}

impl Backend for Counting {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn list(&self, kind: FileType) -> Result<Vec<String>> {
        self.inner.list(kind)
    }
    fn read(&self, kind: FileType, name: &str) -> Result<Vec<u8>> {
        self.count(kind, Read::Whole);
        self.inner.read(kind, name)
    }
    fn read_range(&self, kind: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        self.count(kind, Read::Range);
        self.inner.read_range(kind, name, offset, length)
    }
    fn write(&self, kind: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write(kind, name, data)
    }
    fn remove(&self, kind: FileType, name: &str) -> Result<()> {
        self.inner.remove(kind, name)
    }
    fn size(&self, kind: FileType, name: &str) -> Result<u64> {
        self.inner.size(kind, name)
    }
}
