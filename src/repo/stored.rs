//! The repository's files as stored, below the format: what scrub and
//! check need to verify files byte for byte, rebuild them from parity and
//! remove what cannot be saved, and what object lock needs to keep them
//! under retention. Removal, hiding and renewal take a file's parity with it.

use super::{parity, parity_name, Config};
use crate::backend::{Backend, FileType, Retention};
use crate::error::{ErrorKind, Result};

pub struct StoredFiles<'a> {
    backend: &'a dyn Backend,
    parity_percent: u32,
}

impl<'a> StoredFiles<'a> {
    pub(super) fn new(backend: &'a dyn Backend, parity_percent: u32) -> StoredFiles<'a> {
        StoredFiles {
            backend,
            parity_percent,
        }
    }

    /// The files of a repository that does not open (its config or key
    /// files are damaged): parity is kept as the config, if it reads, says.
    pub fn before_open(backend: &'a dyn Backend) -> StoredFiles<'a> {
        let location = backend.location();
        let parity_percent = backend
            .read(FileType::Config, "config")
            .and_then(|bytes| Config::from_bytes(&bytes, &location))
            .map_or(0, |config| config.parity_percent);
        StoredFiles::new(backend, parity_percent)
    }

    /// The same files, with parity kept at `percent` (a config repaired
    /// from its parity says how much the repository keeps).
    pub fn with_parity_percent(&self, percent: u32) -> StoredFiles<'a> {
        StoredFiles::new(self.backend, percent)
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// How much parity the repository keeps (percent of each file; 0: none).
    pub fn parity_percent(&self) -> u32 {
        self.parity_percent
    }

    /// The names of the files of a kind; a directory that older
    /// repositories lack (tombstones, locks, deletion plans, audit records)
    /// lists as empty.
    pub fn list(&self, kind: FileType) -> Result<Vec<String>> {
        match self.backend.list(kind) {
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    && matches!(
                        kind,
                        FileType::Forgotten | FileType::Lock | FileType::Deletion | FileType::Audit
                    ) =>
            {
                Ok(Vec::new())
            }
            other => other,
        }
    }

    pub fn read(&self, kind: FileType, name: &str) -> Result<Vec<u8>> {
        self.backend.read(kind, name)
    }

    /// The parity that protects `kind/name`.
    pub fn read_parity(&self, kind: FileType, name: &str) -> Result<Vec<u8>> {
        self.backend
            .read(FileType::Parity, &parity_name(kind, name))
    }

    /// Puts back a file rebuilt from its parity (and verified by the caller).
    pub fn replace(&self, kind: FileType, name: &str, rebuilt: &[u8]) -> Result<()> {
        self.backend.write(kind, name, rebuilt)
    }

    /// Computes and stores anew the parity of a sound file.
    pub fn write_parity(&self, kind: FileType, name: &str, data: &[u8]) -> Result<()> {
        if self.parity_percent == 0 {
            return Ok(());
        }
        self.backend.write(
            FileType::Parity,
            &parity_name(kind, name),
            &parity::compute(data, self.parity_percent)?,
        )
    }

    pub fn size(&self, kind: FileType, name: &str) -> Result<u64> {
        self.backend.size(kind, name)
    }

    /// Removes a file and its parity (a missing one is not an error). A
    /// file under retention stays: [`ErrorKind::Retained`].
    pub fn remove(&self, kind: FileType, name: &str) -> Result<()> {
        self.backend.remove(kind, name)?;
        if kind != FileType::Config {
            self.backend
                .remove(FileType::Parity, &parity_name(kind, name))?;
        }
        Ok(())
    }

    /// Makes a file that is under retention, and its parity, vanish from
    /// listings and reads until a removal after its date deletes them (see
    /// `Backend::hide`).
    pub fn hide(&self, kind: FileType, name: &str) -> Result<()> {
        self.backend.hide(kind, name)?;
        if kind == FileType::Config || self.parity_percent == 0 {
            return Ok(());
        }
        self.backend
            .hide(FileType::Parity, &parity_name(kind, name))
    }

    /// The retention of a file; `None` when it has none.
    pub fn retention(&self, kind: FileType, name: &str) -> Result<Option<Retention>> {
        self.backend.retention(kind, name)
    }

    /// Sets the retention of a file and of its parity, if it has parity;
    /// the caller checks that this extends it.
    pub fn extend_retention(&self, kind: FileType, name: &str, to: Retention) -> Result<()> {
        self.backend.extend_retention(kind, name, to)?;
        if self.parity_percent == 0 {
            return Ok(());
        }
        match self
            .backend
            .extend_retention(FileType::Parity, &parity_name(kind, name), to)
        {
            // Parity that scrub has not added yet.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}
