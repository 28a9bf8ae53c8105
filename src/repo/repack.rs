//! Repacking: the blobs still used in packs that are mostly unused move to
//! new packs, through the pack saver like every write, so that the old
//! packs can go (`docs/design.md`, section 7, prune).

use super::{Id, IdSet, IndexedPack, PackSaver, PackedBlob, Repository};
use crate::backend::FileType;
use crate::error::Result;
use crate::progress::{Progress, Totals};

impl Repository {
    /// Copies the blobs of `packs` that `keep` names into new packs, stored
    /// and indexed through `saver` (call its `finish` after). Each blob is
    /// checked against its id on the way; a blob that does not read or is
    /// damaged fails the repack, naming its pack, and nothing is deleted.
    /// `progress` counts the packs done and the bytes of blobs copied.
    pub(crate) fn repack(
        &self,
        packs: &[Id],
        keep: &IdSet,
        saver: &PackSaver,
        progress: &Progress,
    ) -> Result<()> {
        let work = self.blobs_to_copy(packs, keep);
        let bytes = work
            .iter()
            .flat_map(|pack| &pack.blobs)
            .map(|blob| u64::from(blob.stored_len))
            .sum();
        progress.begin(
            "repack",
            "packs",
            Totals::known(Some(work.len() as u64), Some(bytes)),
        );
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stripes: Vec<&[IndexedPack]> =
            work.chunks(work.len().div_ceil(threads).max(1)).collect();
        std::thread::scope(|scope| {
            let workers: Vec<_> = stripes
                .into_iter()
                .map(|stripe| scope.spawn(move || self.copy_stripe(stripe, saver, progress)))
                .collect();
            workers
                .into_iter()
                .try_for_each(|worker| worker.join().expect("repack workers do not panic"))
        })
    }

    /// For each pack to repack, its salt and the blobs to copy out of it.
    fn blobs_to_copy(&self, packs: &[Id], keep: &IdSet) -> Vec<IndexedPack> {
        let index = self.index();
        let mut work: Vec<IndexedPack> = Vec::new();
        let mut slot = vec![usize::MAX; index.packs().len()];
        for id in packs {
            if let Some(number) = index.pack_number(id) {
                slot[number] = work.len();
                work.push(IndexedPack {
                    id: *id,
                    salt: index.pack(number).salt,
                    blobs: Vec::new(),
                });
            }
        }
        // Those kept are looked up, rather than the index walked: a walk
        // gives keys, and a blob is copied under its whole id.
        for (id, location) in keep.iter().filter_map(|id| Some((*id, index.get(id)?))) {
            let s = slot[location.pack()];
            if s != usize::MAX {
                work[s].blobs.push(PackedBlob {
                    kind: location.kind(),
                    id,
                    offset: location.offset,
                    stored_len: location.stored_len,
                    raw_len: location.raw_len,
                });
            }
        }
        work
    }

    fn copy_stripe(
        &self,
        stripe: &[IndexedPack],
        saver: &PackSaver,
        progress: &Progress,
    ) -> Result<()> {
        let mut writer = saver.new_pack()?;
        for pack in stripe {
            let path = FileType::Pack.path(&pack.id.to_hex());
            let mut blobs: Vec<&PackedBlob> = pack.blobs.iter().collect();
            blobs.sort_unstable_by_key(|blob| blob.offset);
            for run in runs(&blobs) {
                let (start, end) = (run[0].offset, span_end(run));
                let bytes = self
                    .backend()
                    .read_range(FileType::Pack, &pack.id.to_hex(), start as u64, end - start)
                    .map_err(|e| e.context("its blobs cannot be repacked"))?;
                for blob in run {
                    let at = (blob.offset - start) as usize;
                    let stored = &bytes[at..at + blob.stored_len as usize];
                    writer
                        .copy_blob(
                            &self.keys(),
                            &pack.salt,
                            stored,
                            blob,
                            &self.config().chunker,
                        )
                        .map_err(|e| {
                            e.context(&path)
                                .with_hint("run `rewind scrub --repair`, then prune again")
                        })?;
                    saver.cut_when_full(&mut writer)?;
                }
                progress.add_bytes(run.iter().map(|blob| u64::from(blob.stored_len)).sum());
            }
            progress.add(1, 0);
        }
        saver.save_last(writer)
    }
}

/// Blobs read together: neighbours closer than `RUN_GAP`, at most
/// `RUN_BYTES` in all (a single larger blob is a run of its own). Reading
/// runs rather than whole packs keeps a repack's memory to a pack being
/// filled and one run per thread, and skips what is not used.
const RUN_GAP: u32 = 256 * 1024;
const RUN_BYTES: u32 = 4 * 1024 * 1024;

fn runs<'a>(blobs: &'a [&'a PackedBlob]) -> impl Iterator<Item = &'a [&'a PackedBlob]> {
    let mut rest = blobs;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let mut len = 1;
        while let Some(next) = rest.get(len) {
            let end = span_end(&rest[..len]);
            if next.offset > end + RUN_GAP
                || next.offset + next.stored_len - first.offset > RUN_BYTES
            {
                break;
            }
            len += 1;
        }
        let (run, tail) = rest.split_at(len);
        rest = tail;
        Some(run)
    })
}

/// Where the last blob of a run ends.
fn span_end(run: &[&PackedBlob]) -> u32 {
    run.iter()
        .map(|blob| blob.offset + blob.stored_len)
        .max()
        .unwrap_or(0)
}
