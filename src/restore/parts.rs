//! Large files restored by several workers at once: each part (a run of
//! extents, [`Unit::Part`]) is written at its offset through one shared
//! descriptor, so that one large file (a database dump, a disk image) is
//! read and written by every worker instead of one. The first part to
//! start decides what to do with the file and creates it; the last to
//! finish sets its size and metadata, or removes it if any part failed.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::sync::atomic::{
    AtomicUsize,
    Ordering::{AcqRel, Acquire},
};
use std::sync::{Arc, Mutex, OnceLock};

use super::batches::Unit;
use super::work::{Chunks, Tally};
use super::{Action, FileJob, Restorer};
use crate::error::{Error, Result};

/// The state of every file restored in parts, by its place in the job list.
pub(super) struct SplitFiles(HashMap<usize, SplitFile>);

pub(super) struct SplitFile {
    prepared: OnceLock<Prepared>,
    parts_left: AtomicUsize,
    /// The first error of any part.
    failure: Mutex<Option<Error>>,
}

enum Prepared {
    /// Being written. The last part takes the descriptor, so that it is
    /// closed when the file is done, not at the end of the restore.
    Writing {
        file: Mutex<Option<Arc<File>>>,
        action: Action,
    },
    /// Nothing to write (kept, skipped), or it could not be decided or
    /// created: the result the last part reports.
    Settled(Mutex<Option<Result<Action>>>),
}

impl SplitFiles {
    pub(super) fn for_units(units: &[Unit]) -> SplitFiles {
        let mut files: HashMap<usize, SplitFile> = HashMap::new();
        for unit in units {
            if let Unit::Part { file, .. } = unit {
                let state = files.entry(*file).or_insert_with(|| SplitFile {
                    prepared: OnceLock::new(),
                    parts_left: AtomicUsize::new(0),
                    failure: Mutex::new(None),
                });
                *state.parts_left.get_mut() += 1;
            }
        }
        SplitFiles(files)
    }

    pub(super) fn state(&self, file: usize) -> &SplitFile {
        &self.0[&file]
    }

    /// The files created but not finished (an interrupted restore): they
    /// are removed, so that what a restore leaves is always complete.
    pub(super) fn unfinished(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().filter_map(|(file, state)| {
            let writing = matches!(state.prepared.get(), Some(Prepared::Writing { .. }));
            (writing && state.parts_left.load(Acquire) > 0).then_some(*file)
        })
    }
}

impl Restorer<'_> {
    /// Writes one part of a split file: the file's result once its last
    /// part is done, `None` before.
    pub(super) fn restore_part(
        &self,
        job: &FileJob,
        state: &SplitFile,
        part: (Range<usize>, u64),
        tally: &Tally,
    ) -> Option<Result<Action>> {
        let prepared = state
            .prepared
            .get_or_init(|| self.prepare_split(job, tally));
        if let Prepared::Writing { file, .. } = prepared {
            let file = file.lock().unwrap().clone();
            let failed = state.failure.lock().unwrap().is_some();
            if let (Some(file), false) = (file, failed) {
                let shown = self.target.show(&job.rel);
                let mut chunks = Chunks::default();
                if let Err(e) = self.write_extents(&file, &shown, &job.node, part, &mut chunks) {
                    state.failure.lock().unwrap().get_or_insert(e);
                }
            }
        }
        if state.parts_left.fetch_sub(1, AcqRel) != 1 {
            return None;
        }
        Some(match prepared {
            Prepared::Settled(result) => result
                .lock()
                .unwrap()
                .take()
                .unwrap_or_else(|| Err(Error::internal("a split file was reported twice"))),
            Prepared::Writing { file, action } => {
                let file = file.lock().unwrap().take();
                let shown = self.target.show(&job.rel);
                let failure = state.failure.lock().unwrap().take();
                let finished = match (failure, file) {
                    (Some(e), _) => Err(e),
                    (None, Some(file)) => self.finish_file(&file, &shown, &job.node),
                    (None, None) => Err(Error::internal("a split file was finished twice")),
                };
                match finished {
                    Ok(()) => {
                        self.count(*action, &job.node, tally);
                        Ok(*action)
                    }
                    Err(e) => {
                        let _ = self.target.remove(&job.rel, false);
                        Err(e)
                    }
                }
            }
        })
    }

    /// What the first part of a split file does: decide, and create the
    /// file or settle it.
    fn prepare_split(&self, job: &FileJob, tally: &Tally) -> Prepared {
        let settled = |result| Prepared::Settled(Mutex::new(Some(result)));
        let rel = &job.rel;
        match self.decide_file(job) {
            Ok((action @ (Action::Create | Action::Replace), _)) => {
                match self.create_file(rel, action) {
                    Ok(file) => Prepared::Writing {
                        file: Mutex::new(Some(Arc::new(file))),
                        action,
                    },
                    Err(e) => settled(Err(e)),
                }
            }
            Ok((action, kept)) => {
                settled(self.restore_file(job, action, kept, &mut Chunks::default(), tally))
            }
            Err(e) => settled(Err(e)),
        }
    }
}
