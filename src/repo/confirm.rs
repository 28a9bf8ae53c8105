//! What a writer checks just before its manifest: that the snapshot relies
//! only on packs that stay. A prune records the packs it means to delete in
//! a deletion plan and deletes them once every writer that may rely on them
//! is gone (`docs/design.md`, section 7, prune); a writer that loaded the
//! index before the plan stores the blobs it took from those packs again,
//! and one whose lock lapsed (stopped, asleep) also checks that every pack
//! it relies on still exists.

use super::{BlobKind, Id, IdSet, PackSaver, Repository, RepositoryLock, Snapshot};
use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::tree::Extent;

impl Repository {
    /// Writes `snapshot`'s manifest once everything its tree references is
    /// in a pack that stays: blobs in packs a deletion plan names are
    /// stored again first. With a `lock` that was held throughout, only
    /// the plans are checked; without one, or after it lapsed, the packs
    /// themselves too, before and after the manifest is written. Returns
    /// the manifest's id and how many blobs were stored again.
    pub fn commit_snapshot(
        &self,
        snapshot: &Snapshot,
        lock: Option<&RepositoryLock>,
    ) -> Result<(Id, u64)> {
        crate::testing::pause_point("backup-committing");
        if let Some(lock) = lock {
            lock.refresh();
        }
        let restored = match self.store_again_what_leaves(&snapshot.tree, lapsed(lock)) {
            Ok(restored) => restored,
            Err(e) => {
                if lapsed(lock) {
                    self.remove_written_index_files()?;
                }
                return Err(e);
            }
        };
        // After the blobs are stored again: they are found by the index as
        // it was loaded, which still places them in the packs that leave.
        self.index_again_if_superseded()?;
        let id = self.save_snapshot(snapshot)?;
        if lapsed(lock) {
            // Stopped between the check and the manifest for longer than a
            // lock stays live: a prune may have run meanwhile.
            let mut written = snapshot.clone();
            written.id = id;
            if let Err(e) = self.store_again_what_leaves(&snapshot.tree, true) {
                self.opened().forget_snapshot(&written)?;
                self.remove_written_index_files()?;
                return Err(e.context(format!(
                    "snapshot {} was written and then forgotten",
                    id.short()
                )));
            }
        }
        Ok((id, restored))
    }

    /// Indexes again the packs this writer stored that no index file names
    /// any more. A prune that ran while we wrote took them for unused,
    /// wrote the index anew without them and superseded our index file;
    /// its plan spares them once an index file names them, but if it was
    /// killed before it carried the plan out, nothing else would name them
    /// again and our snapshot would need packs no index knows.
    fn index_again_if_superseded(&self) -> Result<()> {
        let dropped: Vec<String> = self
            .written_packs_no_longer_indexed()?
            .iter()
            .map(Id::to_hex)
            .collect();
        if !dropped.is_empty() {
            self.index_from_trailers(&dropped, |_| true)?;
        }
        Ok(())
    }

    /// Stores again the blobs under `root` that sit in packs a deletion
    /// plan names (or, `thorough`, that are gone); fails, naming the blob
    /// and the pack file it cannot read, when one is already deleted.
    fn store_again_what_leaves(&self, root: &Id, thorough: bool) -> Result<u64> {
        let (plans, errors) = self.deletion_plans()?;
        // A plan may name packs this writer stored and had not indexed yet
        // when the plan was made; a prune spares them once an index file
        // names them, as ours now does.
        let ours = self.written_packs();
        let mut leaving: IdSet = plans
            .iter()
            .flat_map(|(_, plan)| plan.packs.iter().copied())
            .filter(|pack| !ours.contains(pack))
            .collect();
        if thorough || !errors.is_empty() {
            let stored: IdSet = self
                .list(FileType::Pack)?
                .iter()
                .filter_map(|name| Id::from_hex(name).ok())
                .collect();
            let index = self.index();
            leaving.extend(
                index
                    .packs()
                    .iter()
                    .map(|pack| pack.id)
                    .filter(|id| !stored.contains(id)),
            );
        }
        let leaving_numbers: std::collections::HashSet<usize> = {
            let index = self.index();
            leaving
                .iter()
                .filter_map(|pack| index.pack_number(pack))
                .collect()
        };
        if leaving_numbers.is_empty() {
            return Ok(0);
        }
        let saver = PackSaver::new(self.clone());
        let mut writer = saver.new_pack()?;
        let mut stored_again = 0u64;
        let mut pending = vec![*root];
        let mut seen = IdSet::default();
        let mut copied = IdSet::default();
        while let Some(tree_id) = pending.pop() {
            if !seen.insert(tree_id) {
                continue;
            }
            let mut blobs = vec![(tree_id, BlobKind::Tree)];
            // A split directory's parts are trees of their own here.
            let tree = self.read_tree_blob(&tree_id).map_err(relied_on_pack_gone)?;
            pending.extend(tree.part_ids());
            for node in &tree.nodes {
                pending.extend(node.subtree);
                for extent in &node.content {
                    if let Extent::Data { id, .. } = extent {
                        blobs.push((*id, BlobKind::Data));
                    }
                }
            }
            for (id, kind) in blobs {
                let leaves = self
                    .index()
                    .get(&id)
                    .is_some_and(|location| leaving_numbers.contains(&location.pack()));
                if !leaves || !copied.insert(id) {
                    continue;
                }
                let plaintext = self.read_blob(&id).map_err(relied_on_pack_gone)?;
                writer.add(kind, id, &plaintext, self.config().compression_level)?;
                stored_again += 1;
                saver.cut_when_full(&mut writer)?;
            }
        }
        saver.save_last(writer)?;
        saver.finish()?;
        Ok(stored_again)
    }
}

fn lapsed(lock: Option<&RepositoryLock>) -> bool {
    lock.is_none_or(|lock| !lock.held_throughout())
}

fn relied_on_pack_gone(e: Error) -> Error {
    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Corrupt) {
        e.context(
            "this backup relies on a blob it cannot read now; if it was stopped or asleep, a \
             prune may have deleted it meanwhile (its lock lapsed); no snapshot was written",
        )
        .with_hint("run the backup again: it stores what is missing")
    } else {
        e
    }
}
