//! The files the snapshots of a repository need: what object lock must keep
//! under retention as snapshots age (`rewind retention renew`,
//! `docs/design.md` section 7, "Object lock").

use super::Repository;
use crate::backend::FileType;
use crate::error::Result;

impl Repository {
    /// The config, the key files, the manifests, the index files in use
    /// and the packs they name: everything a restore of any listed snapshot
    /// reads, and so what renewing retention covers. Packs and index files
    /// on their way out (deletion plans, superseded index files) are not
    /// among them: their retention is left to end.
    pub fn needed_files(&self) -> Result<Vec<(FileType, String)>> {
        let mut files = vec![(FileType::Config, "config".to_string())];
        for kind in [FileType::Key, FileType::Snapshot] {
            files.extend(self.list(kind)?.into_iter().map(|name| (kind, name)));
        }
        let mut index_files = self.index_files_in_use();
        index_files.sort();
        files.extend(index_files.into_iter().map(|name| (FileType::Index, name)));
        files.extend(
            self.index()
                .packs()
                .iter()
                .map(|pack| (FileType::Pack, pack.id.to_hex())),
        );
        Ok(files)
    }
}
