//! Reading many data blobs at once: those that lie close together in one
//! pack come in one ranged read. On object storage every read is a round
//! trip, so a restore of small files that asked for each chunk on its own
//! would spend its time waiting; on a disk it saves system calls. See
//! `docs/design.md`, section 7, "S3 and other stores".

use std::collections::HashMap;

use super::{crypto, index, Id, Repository};
use crate::backend::FileType;
use crate::error::Result;

/// Blobs this far apart (or closer) in a pack are read together, gap and
/// all: fetching a few hundred unneeded bytes costs less than another
/// request.
const MAX_GAP: u64 = 256 << 10;
/// No single read is longer than this, so that what is held in memory at
/// once stays bounded whatever a caller asks for.
const MAX_RUN: u64 = 8 << 20;

/// One ranged read of a pack and the blobs it holds.
struct Run {
    pack: index::PackRef,
    start: u64,
    end: u64,
    blobs: Vec<(Id, index::BlobLocation)>,
}

impl Repository {
    /// The plaintext of every blob in `ids` (each verified against its id),
    /// read with as few backend reads as their places in the packs allow.
    /// The blobs of a pack that cannot be read, and those the index does
    /// not place, are read on their own, as [`Repository::read_blob`] does
    /// (which follows a prune that moved them); the map holds each blob's
    /// error, if any.
    pub fn read_blobs(&self, ids: &[Id]) -> HashMap<Id, Result<Vec<u8>>> {
        let mut found = HashMap::with_capacity(ids.len());
        let (runs, elsewhere) = self.plan_runs(ids);
        for run in runs {
            self.read_run(run, &mut found);
        }
        for id in elsewhere {
            found.entry(id).or_insert_with(|| self.read_blob(&id));
        }
        found
    }

    /// Groups the blobs by pack into runs of nearby blobs; the ids the
    /// index does not place as data come back apart.
    fn plan_runs(&self, ids: &[Id]) -> (Vec<Run>, Vec<Id>) {
        let mut by_pack: HashMap<usize, Vec<(Id, index::BlobLocation)>> = HashMap::new();
        let mut elsewhere = Vec::new();
        let index = self.index();
        for id in ids {
            match index.get(id) {
                Some(location) if location.kind() == super::BlobKind::Data => by_pack
                    .entry(location.pack())
                    .or_default()
                    .push((*id, location)),
                _ => elsewhere.push(*id),
            }
        }
        let mut runs = Vec::new();
        for (pack, mut blobs) in by_pack {
            blobs.sort_unstable_by_key(|(id, location)| (location.offset, *id));
            blobs.dedup_by_key(|(id, _)| *id);
            let pack = *index.pack(pack);
            for (id, location) in blobs {
                let start = u64::from(location.offset);
                let end = start + u64::from(location.stored_len);
                match runs.last_mut() {
                    Some(Run {
                        pack: last,
                        start: run_start,
                        end: run_end,
                        blobs,
                    }) if last.id == pack.id
                        && start >= *run_end
                        && start - *run_end <= MAX_GAP
                        && end - *run_start <= MAX_RUN =>
                    {
                        *run_end = end;
                        blobs.push((id, location));
                    }
                    _ => runs.push(Run {
                        pack,
                        start,
                        end,
                        blobs: vec![(id, location)],
                    }),
                }
            }
        }
        (runs, elsewhere)
    }

    fn read_run(&self, run: Run, found: &mut HashMap<Id, Result<Vec<u8>>>) {
        let name = run.pack.id.to_hex();
        let length = u32::try_from(run.end - run.start).expect("runs are bounded by MAX_RUN");
        let bytes = match self
            .backend()
            .read_range(FileType::Pack, &name, run.start, length)
        {
            Ok(bytes) => bytes,
            // Read each on its own: that tells which blobs are lost, and
            // finds those a prune moved elsewhere.
            Err(_) => {
                for (id, _) in run.blobs {
                    found.insert(id, self.read_blob(&id));
                }
                return;
            }
        };
        for (id, location) in run.blobs {
            let at = (u64::from(location.offset) - run.start) as usize;
            let stored = bytes[at..at + location.stored_len as usize].to_vec();
            // The pack is there and the blob sits where the index says:
            // a blob that does not open is damaged, and reading it again
            // alone would read the same bytes (packs are named by their
            // hash, so none is replaced under its name).
            let plaintext = self
                .open_stored_blob(&id, location, &run.pack, stored)
                .map(crypto::unframe);
            found.insert(id, plaintext);
        }
    }
}
