//! The indexed repository: the index in memory, which index files it was
//! loaded from, and everything that needs it (blobs, trees, the snapshot
//! copies kept in packs).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{crypto, read_each};
use super::{
    index, pack, snapshot_key, sort_by_time, BlobKind, Core, Id, IdSet, Index, IndexFile, Indexed,
    IndexedPack, Opened, PackSaver, PackedBlob, Repository, Snapshot, SnapshotKey, Tombstone,
};
use crate::backend::{Backend, FileType};
use crate::error::{Error, ErrorKind, Result, ResultExt};
use crate::tree::Tree;

/// A rewritten index is split into files of about this many blobs (some
/// 10 MB each), so that no single file is huge.
const BLOBS_PER_REWRITTEN_INDEX_FILE: usize = 200_000;

/// Index files read again together when their records are needed whole
/// (`Repository::indexed_records`): enough for every reading thread,
/// few enough to hold at once.
const INDEX_FILES_REREAD_AT_ONCE: usize = 16;

/// How a refresh gets hold of the index to change it.
#[derive(Clone, Copy)]
enum Access {
    Wait,
    Try,
}

/// The index and the names of the index files it holds.
pub(super) struct LoadedIndex {
    index: RwLock<Index>,
    /// Every index file listed when the index was loaded or refreshed,
    /// read or not (a damaged one is reported once, not at every refresh).
    files: Mutex<HashSet<String>>,
    /// Those of `files` that another of them supersedes: loaders skip them,
    /// and they stay only until a deletion plan removes them (under object
    /// lock, until their retention ends).
    superseded: Mutex<HashSet<String>>,
    /// What this process stored through pack savers.
    written: Mutex<Written>,
}

#[derive(Default)]
struct Written {
    packs: IdSet,
    /// Index files naming those packs (not a prune's rewritten ones).
    index_files: Vec<Id>,
}

impl Repository<Opened> {
    /// Loads every index file into memory. Damaged index files are skipped
    /// and reported: the blobs they list are then missing, which `check` shows.
    pub fn load_index(&self) -> Result<(Repository, Vec<Error>)> {
        let repo = Repository {
            core: Arc::clone(&self.core),
            state: Indexed::empty(),
        };
        let errors = repo.reload_index()?;
        Ok((repo, errors))
    }
}

impl Indexed {
    fn empty() -> Indexed {
        Indexed {
            index: Arc::new(LoadedIndex {
                index: RwLock::new(Index::new()),
                files: Mutex::new(HashSet::new()),
                superseded: Mutex::new(HashSet::new()),
                written: Mutex::new(Written::default()),
            }),
        }
    }
}

impl Repository {
    /// A repository that was just created: its index is empty and complete.
    pub(super) fn from_core(core: Core) -> Repository {
        Repository {
            core: Arc::new(core),
            state: Indexed::empty(),
        }
    }

    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.state.index.index.read().unwrap()
    }

    /// Loads the index again from every index file (after a repair, or
    /// after a prune rewrote it). Readers keep the old index until the new
    /// one is complete.
    pub fn reload_index(&self) -> Result<Vec<Error>> {
        Ok(self.reload_index_with(Access::Wait)?.unwrap_or_default())
    }

    /// [`Repository::reload_index`]; `None` when `access` could not get
    /// the index to change it.
    fn reload_index_with(&self, access: Access) -> Result<Option<Vec<Error>>> {
        let names = self.list(FileType::Index)?;
        // Each file goes into the load as soon as it is decoded, so that
        // the decoded files are never all held (`docs/design.md`, 6.1).
        let load = Mutex::new(index::IndexLoad::default());
        let numbered: Vec<(usize, &String)> = names.iter().enumerate().collect();
        let errors: Vec<Error> = crate::parallel::parallel_map(&numbered, |(order, name)| {
            let id = Id::from_hex(name)?;
            let file = self.read_index_file(name)?;
            load.lock().unwrap().add(*order, id, file);
            Ok(())
        })
        .into_iter()
        .filter_map(Result::err)
        // Removed since it was listed: superseded by a prune.
        .filter(|e: &Error| e.kind() != ErrorKind::NotFound)
        .collect();
        let load = load.into_inner().unwrap();
        let superseded = load.superseded();
        let index = load.finish();
        self.retain_packs_of(&index);
        let Some(mut loaded) = self.index_to_change(access) else {
            return Ok(None);
        };
        *loaded = index;
        *self.state.index.superseded.lock().unwrap() = names
            .iter()
            .filter(|name| Id::from_hex(name).is_ok_and(|id| superseded.contains(&id)))
            .cloned()
            .collect();
        *self.state.index.files.lock().unwrap() = names.into_iter().collect();
        Ok(Some(errors))
    }

    /// Loads the index files written since the index was loaded or last
    /// refreshed (a running mount picks up new backups this way); when one
    /// of them supersedes others (a prune ran), loads the whole index
    /// again. Returns how many files were new, and the errors of those
    /// that did not read.
    pub fn refresh_index(&self) -> Result<(usize, Vec<Error>)> {
        self.refresh_index_with(Access::Wait)
    }

    fn refresh_index_with(&self, access: Access) -> Result<(usize, Vec<Error>)> {
        let mut names = self.list(FileType::Index)?;
        {
            let known = self.state.index.files.lock().unwrap();
            names.retain(|name| !known.contains(name));
        }
        if names.is_empty() {
            return Ok((0, Vec::new()));
        }
        let (files, errors) = self.read_index_files(&names);
        if files.iter().any(|(_, file)| !file.supersedes.is_empty()) {
            return Ok(match self.reload_index_with(access)? {
                Some(errors) => (names.len(), errors),
                None => (0, Vec::new()),
            });
        }
        {
            let Some(mut index) = self.index_to_change(access) else {
                return Ok((0, Vec::new()));
            };
            for (_, file) in &files {
                index.add_file(file);
            }
            index.compact();
        }
        let new = names.len();
        self.state.index.files.lock().unwrap().extend(names);
        Ok((new, errors))
    }

    /// Tells the backend which packs `index`, about to become the whole
    /// index, names: a cache lets go of the packs a prune removed.
    fn retain_packs_of(&self, index: &Index) {
        self.backend()
            .retain_packs(&|name| Id::from_hex(name).is_ok_and(|id| index.has_pack(&id)));
    }

    /// The index, to change it. `Access::Try` gives up after a moment
    /// rather than wait for a reader that may be this very thread (a walk
    /// that holds the index while it reads a blob).
    fn index_to_change(&self, access: Access) -> Option<RwLockWriteGuard<'_, Index>> {
        let lock = &self.state.index.index;
        match access {
            Access::Wait => Some(lock.write().unwrap()),
            Access::Try => (0..100).find_map(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                lock.try_write().ok()
            }),
        }
    }

    /// Reads index files by name. One that was removed since it was
    /// listed was superseded by a prune: it is skipped, not an error.
    fn read_index_files(&self, names: &[String]) -> (Vec<(Id, IndexFile)>, Vec<Error>) {
        let (files, errors) = read_each(names, |name| {
            Ok((Id::from_hex(name)?, self.read_index_file(name)?))
        });
        let errors = errors
            .into_iter()
            .filter(|e| e.kind() != ErrorKind::NotFound)
            .collect();
        (files, errors)
    }

    /// How many index files the loaded index was read from (not counting
    /// superseded ones).
    pub fn index_file_count(&self) -> usize {
        self.index_files_in_use().len()
    }

    /// The index files the loaded index was read from, less those another
    /// supersedes: what the snapshots need of the index.
    pub fn index_files_in_use(&self) -> Vec<String> {
        let superseded = self.state.index.superseded.lock().unwrap();
        self.state
            .index
            .files
            .lock()
            .unwrap()
            .iter()
            .filter(|name| !superseded.contains(*name))
            .cloned()
            .collect()
    }

    pub fn read_index_file(&self, name: &str) -> Result<IndexFile> {
        let content = self.read_verified(FileType::Index, name)?;
        match content.split_first() {
            Some((&index::INDEX_VERSION, rest)) => postcard::from_bytes(rest)
                .map_err(|e| Error::corrupt(format!("index/{name} does not decode: {e}"))),
            _ => Err(Error::corrupt(format!(
                "index/{name} has an unknown version"
            ))),
        }
    }

    /// Writes an index file for these stored packs and adds it to the
    /// index; the one place index files are made (see `PackSaver`).
    pub(super) fn write_index_file(
        &self,
        packs: Vec<IndexedPack>,
        supersedes: Vec<Id>,
    ) -> Result<Id> {
        let file_supersedes_nothing = supersedes.is_empty();
        let file = IndexFile { supersedes, packs };
        let mut content = vec![index::INDEX_VERSION];
        content.extend(postcard::to_stdvec(&file).expect("index serializes"));
        let id = self.write_named(FileType::Index, &content)?;
        self.state.index.files.lock().unwrap().insert(id.to_hex());
        if file_supersedes_nothing {
            self.state
                .index
                .written
                .lock()
                .unwrap()
                .index_files
                .push(id);
        }
        Ok(id)
    }

    /// Writes the index anew without the packs in `dropped`, with the packs
    /// in `added` as they were saved (the loaded index may place their
    /// blobs in a dropped pack): a few index files that name every other
    /// loaded pack and supersede every index file loaded or written so
    /// far, durable before this returns, and then the index in memory. Returns the superseded files, which stay
    /// until a deletion plan removes them; loaders ignore them meanwhile.
    /// Index files of other writers that were not loaded are not touched.
    pub(crate) fn rewrite_index(
        &self,
        dropped: &IdSet,
        added: Vec<IndexedPack>,
    ) -> Result<Vec<Id>> {
        let mut superseded: Vec<Id> = self
            .state
            .index
            .files
            .lock()
            .unwrap()
            .iter()
            .filter_map(|name| Id::from_hex(name).ok())
            .collect();
        superseded.sort();
        let added_ids: IdSet = added.iter().map(|pack| pack.id).collect();
        let mut packs = self
            .indexed_records(|pack| !dropped.contains(&pack.id) && !added_ids.contains(&pack.id))?;
        packs.extend(added);
        let index = Index::from_packs(packs.iter());
        let mut written = HashSet::new();
        let mut batch: Vec<IndexedPack> = Vec::new();
        let mut blobs_in_batch = 0;
        let last = packs.len();
        for (n, pack) in packs.into_iter().enumerate() {
            blobs_in_batch += pack.blobs.len();
            batch.push(pack);
            if blobs_in_batch >= BLOBS_PER_REWRITTEN_INDEX_FILE || n + 1 == last {
                let id = self.write_index_file(std::mem::take(&mut batch), superseded.clone())?;
                written.insert(id.to_hex());
                blobs_in_batch = 0;
            }
        }
        if written.is_empty() {
            // Nothing is left to index; the old files must still be superseded.
            let id = self.write_index_file(Vec::new(), superseded.clone())?;
            written.insert(id.to_hex());
        }
        self.retain_packs_of(&index);
        *self.state.index.index.write().unwrap() = index;
        // The superseded files stay known until they are gone (under
        // object lock, for their retention): a later rewrite supersedes
        // them again.
        let mut files = self.state.index.files.lock().unwrap();
        *self.state.index.superseded.lock().unwrap() =
            files.difference(&written).cloned().collect();
        files.extend(written);
        drop(files);
        Ok(superseded)
    }

    /// The blobs the loaded index places in the packs that `wanted`
    /// accepts, as index file records with their whole ids, which memory
    /// does not keep (`docs/design.md`, section 6): read again from the
    /// index files in use, each record checked against the loaded index.
    /// In pack number order, each pack's blobs by offset; a pack in which
    /// the index places no blob is left out. Fails, changing nothing, when
    /// the files no longer account for every such blob (one of them no
    /// longer reads, or was changed).
    pub(super) fn indexed_records(
        &self,
        wanted: impl Fn(&index::PackRef) -> bool,
    ) -> Result<Vec<IndexedPack>> {
        let (packs, expected) = {
            let index = self.index();
            let packs: Vec<(index::PackRef, bool)> = index
                .packs()
                .iter()
                .map(|pack| (*pack, wanted(pack)))
                .collect();
            let expected = index.blobs().filter(|(_, l)| packs[l.pack()].1).count();
            (packs, expected)
        };
        let mut blobs: Vec<Vec<PackedBlob>> = vec![Vec::new(); packs.len()];
        let mut first_error = None;
        for names in self.index_files_in_use().chunks(INDEX_FILES_REREAD_AT_ONCE) {
            let (files, errors) = self.read_index_files(names);
            first_error = first_error.or(errors.into_iter().next());
            let index = self.index();
            for pack in files.iter().flat_map(|(_, file)| &file.packs) {
                let Some(number) = index.pack_number(&pack.id) else {
                    continue;
                };
                if !packs.get(number).is_some_and(|(_, wanted)| *wanted) {
                    continue;
                }
                blobs[number].extend(
                    pack.blobs
                        .iter()
                        .filter(|blob| {
                            index.get(&blob.id)
                                == Some(index::BlobLocation::of(number as u32, blob))
                        })
                        .cloned(),
                );
            }
        }
        let mut found = 0;
        for list in &mut blobs {
            // A pack indexed twice is listed twice.
            list.sort_unstable_by_key(|blob| (blob.offset, blob.id));
            list.dedup_by(|a, b| a.id == b.id);
            found += list.len();
        }
        if found != expected {
            let cause = first_error.map_or(String::new(), |e| format!(" ({e})"));
            return Err(Error::corrupt(format!(
                "the index files in use list {found} of the {expected} blobs loaded from them{cause}"
            ))
            .with_hint("nothing was changed; run the command again, and `rewind check` if this persists"));
        }
        Ok(packs
            .into_iter()
            .zip(blobs)
            .filter(|((_, wanted), blobs)| *wanted && !blobs.is_empty())
            .map(|((pack, _), blobs)| IndexedPack {
                id: pack.id,
                salt: pack.salt,
                blobs,
            })
            .collect())
    }

    /// Records a pack this process stored (see `PackSaver::save`).
    pub(super) fn note_written_pack(&self, pack: Id) {
        self.state.index.written.lock().unwrap().packs.insert(pack);
    }

    /// The packs this process stored.
    pub(super) fn written_packs(&self) -> IdSet {
        self.state.index.written.lock().unwrap().packs.clone()
    }

    /// The packs this process stored that no loaded index file names any
    /// more: another index file superseded ours without them (a prune took
    /// them for unused while we wrote). Refreshes the index first.
    pub(super) fn written_packs_no_longer_indexed(&self) -> Result<Vec<Id>> {
        if self
            .state
            .index
            .written
            .lock()
            .unwrap()
            .index_files
            .is_empty()
        {
            return Ok(Vec::new());
        }
        self.refresh_index()?;
        let written = self.written_packs();
        let index = self.index();
        Ok(written
            .into_iter()
            .filter(|pack| !index.has_pack(pack))
            .collect())
    }

    /// Removes the index files this process wrote for the packs it stored,
    /// when what they name can no longer become a snapshot (a backup whose
    /// packs a prune deleted while its lock had lapsed): an index file must
    /// never name a pack that is gone. Packs of theirs that remain become
    /// unindexed, which a later prune deletes or brings back if some
    /// snapshot uses them.
    pub(super) fn remove_written_index_files(&self) -> Result<()> {
        let files = std::mem::take(&mut self.state.index.written.lock().unwrap().index_files);
        self.remove_index_files(&files)
    }

    /// Makes a stored pack's blobs findable in memory (its index file
    /// follows, see `PackSaver`).
    pub(super) fn add_to_index(&self, pack: &IndexedPack) {
        let mut index = self.state.index.index.write().unwrap();
        index.add_pack(pack.id, pack.salt, &pack.blobs);
    }

    // ---- blobs ----

    /// A blob's plaintext, verified against its id.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        self.read_blob_framed(id).map(crypto::unframe)
    }

    /// [`Repository::read_blob`], left where it was decoded in its buffer.
    pub fn read_blob_framed(&self, id: &Id) -> Result<pack::Framed> {
        let keys = self.keys();
        match self.read_blob_once(id) {
            // A prune may have moved the blob to a new pack since the index
            // was loaded (`docs/design.md`, section 7): if new index files
            // say so, read it from where it is now.
            // Not for a blob that is indexed and fails its checks: that is
            // damage, and a listing of index files will not mend it.
            Err(e) if e.kind() == ErrorKind::NotFound || !self.index().contains(id) => {
                match self.refresh_index_with(Access::Try) {
                    Ok((new, _)) if new > 0 => self.read_blob_once(id),
                    _ => Err(e),
                }
            }
            // A rotation may have sealed it under a master key this process
            // has not taken yet (see `rekey.rs`).
            Err(e) if e.kind() == ErrorKind::Corrupt && self.take_new_master_key(&keys) => {
                self.read_blob_once(id)
            }
            other => other,
        }
    }

    fn read_blob_once(&self, id: &Id) -> Result<pack::Framed> {
        let (location, pack) = {
            let index = self.index();
            let location = index.get(id).ok_or_else(|| {
                Error::corrupt(format!("blob {} is not in the index", id.short()))
                    .with_hint("run `rewind check` to see which snapshots are affected")
            })?;
            (location, *index.pack(location.pack()))
        };
        let read_range = match location.kind() {
            BlobKind::Tree => <dyn Backend>::read_tree_range,
            _ => <dyn Backend>::read_range,
        };
        let stored = read_range(
            self.backend(),
            FileType::Pack,
            &pack.id.to_hex(),
            location.offset as u64,
            location.stored_len,
        )?;
        self.open_stored_blob(id, location, &pack, stored)
    }

    /// Opens the stored bytes of a blob the index places at `location` in
    /// `pack`, and checks them against its id.
    pub(super) fn open_stored_blob(
        &self,
        id: &Id,
        location: index::BlobLocation,
        pack: &index::PackRef,
        stored: Vec<u8>,
    ) -> Result<pack::Framed> {
        let claim = pack::BlobClaim {
            id,
            kind: location.kind(),
            raw_len: location.raw_len,
        };
        pack::open_blob_framed(
            &self.keys(),
            &pack.salt,
            stored,
            claim,
            &self.config().chunker,
        )
        .map_err(|e| e.context(format!("pack {}", pack.id.short())))
    }

    /// Tells the backend which pack bytes these blobs will be read from, so
    /// that it can fetch them while earlier ones are being decoded.
    pub fn prefetch_blobs(&self, ids: &[Id]) {
        let mut ranges: HashMap<Id, (u64, u64)> = HashMap::new();
        {
            let index = self.index();
            for location in ids.iter().filter_map(|id| index.get(id)) {
                let start = location.offset as u64;
                let end = start + location.stored_len as u64;
                let pack = index.pack(location.pack()).id;
                let range = ranges.entry(pack).or_insert((start, end));
                *range = (range.0.min(start), range.1.max(end));
            }
        }
        for (pack, (start, end)) in ranges {
            self.backend()
                .prefetch(FileType::Pack, &pack.to_hex(), Some((start, end - start)));
        }
    }

    /// Starts reading every pack that holds directory trees: an incremental
    /// backup reads the parent's tree of every directory it walks, and on a
    /// cold cache each of those would otherwise be a disk wait.
    pub fn prefetch_tree_packs(&self) {
        let index = self.index();
        let packs: std::collections::BTreeSet<usize> = index
            .blobs()
            .filter(|(_, l)| l.kind() == BlobKind::Tree)
            .map(|(_, l)| l.pack())
            .collect();
        for pack in packs {
            self.backend()
                .prefetch(FileType::Pack, &index.pack(pack).id.to_hex(), None);
        }
    }

    /// A directory's tree with all its entries: a split directory's parts
    /// are read, checked against its top and joined (its `parts` say which
    /// they were). What it holds grows with the directory's width; a
    /// reader that needs one part at a time uses [`Self::read_tree_blob`].
    pub fn read_tree(&self, id: &Id) -> Result<Tree> {
        let top = self.read_tree_blob(id)?;
        if !top.is_split() {
            return Ok(top);
        }
        // Grown as parts come, not sized by the counts the top declares:
        // a crafted top may declare billions.
        let mut nodes = Vec::new();
        self.each_part(id, &top, |part| {
            nodes.extend(part.nodes);
            Ok::<(), Error>(())
        })??;
        Ok(Tree {
            nodes,
            parts: top.parts,
        })
    }

    /// A directory's entries a part at a time, for readers that go through
    /// them in order: `each` gets the whole tree, or each part of a split
    /// one in turn (checked against its top as [`Self::read_tree`] checks
    /// it), so at most one part of a wide directory is held. The outer
    /// error is the repository's (a tree that does not read); the inner
    /// one is the first that `each` returned, which ends the walk.
    pub fn for_each_tree_part<E>(
        &self,
        id: &Id,
        mut each: impl FnMut(Tree) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let top = self.read_tree_blob(id)?;
        if !top.is_split() {
            return Ok(each(top));
        }
        self.each_part(id, &top, each)
    }

    /// Reads, checks and hands over each part of the split tree `id`,
    /// whose top is `top`.
    fn each_part<E>(
        &self,
        id: &Id,
        top: &Tree,
        mut each: impl FnMut(Tree) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        for (index, part) in top.parts.iter().enumerate() {
            let read = self.read_tree_blob(&part.tree)?;
            crate::tree::check_part(&top.parts, index, &read)
                .context(format!("tree {}", id.short()))?;
            if let Err(e) = each(read) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// One tree blob as stored: a whole directory, or the top of a split
    /// one (its parts, no entries) or one of its parts.
    pub fn read_tree_blob(&self, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(id)?;
        Tree::decode(&bytes).context(format!("tree {}", id.short()))
    }

    // ---- snapshots and their copies in packs ----

    /// Writes a manifest; call only once its trees and data are indexed durably.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let mut ids = self.save_snapshots(std::slice::from_ref(snapshot))?;
        Ok(ids.remove(0))
    }

    /// Writes many manifests at once: each with a copy in a pack, indexed,
    /// before the manifest (if the manifest is lost, `scrub --repair`
    /// rebuilds it from the packs alone); the copies share packs and one
    /// index file, and the manifests are written in parallel. The ids, in order. Tools that
    /// make thousands of snapshots (the benchmarks of `docs/design.md`,
    /// section 6) would otherwise spend a pack and an index file on each.
    pub fn save_snapshots(&self, snapshots: &[Snapshot]) -> Result<Vec<Id>> {
        let contents: Vec<Vec<u8>> = snapshots
            .iter()
            .map(|snapshot| serde_json::to_vec(snapshot).expect("snapshots serialize"))
            .collect();
        let saver = PackSaver::new(self.clone());
        let mut writer = saver.new_pack()?;
        let mut added = HashSet::new();
        for content in &contents {
            let copy = self.blob_id(content);
            if self.index().contains(&copy) || !added.insert(copy) {
                continue;
            }
            writer.add(
                BlobKind::Snapshot,
                copy,
                content,
                self.config().compression_level,
            )?;
            saver.cut_when_full(&mut writer)?;
        }
        saver.save_last(writer)?;
        saver.finish()?;
        crate::testing::pause_point("snapshot-copy-indexed");
        crate::parallel::parallel_map_on(crate::parallel::WAITING_THREADS, &contents, |content| {
            self.write_named(FileType::Snapshot, content)
        })
        .into_iter()
        .collect()
    }

    /// The snapshot copies kept in packs (see `save_snapshot`), each with
    /// its blob id.
    pub fn snapshot_copies(&self) -> Vec<(Id, Result<Snapshot>)> {
        let ids = self.index().snapshot_copies();
        ids.into_iter()
            .map(|id| {
                let copy = self.read_blob(&id).and_then(|content| {
                    serde_json::from_slice(&content).map_err(|e| {
                        Error::corrupt(format!("snapshot copy {} does not decode: {e}", id.short()))
                    })
                });
                (id, copy)
            })
            .collect()
    }

    /// Snapshots whose copy in the packs has no manifest among `manifests`
    /// (the readable ones) and no tombstone: their manifest was deleted or
    /// is damaged. Returned beside the errors of unreadable tombstones, any
    /// of which may be the one that explains a copy.
    pub fn snapshots_without_manifest(
        &self,
        manifests: &[Snapshot],
    ) -> Result<(Vec<Snapshot>, Vec<Error>)> {
        self.copies_without_manifest(manifests, &self.snapshot_copies())
    }

    /// [`Repository::snapshots_without_manifest`] among copies already read.
    pub fn copies_without_manifest(
        &self,
        manifests: &[Snapshot],
        copies: &[(Id, Result<Snapshot>)],
    ) -> Result<(Vec<Snapshot>, Vec<Error>)> {
        let (tombstones, errors) = self.tombstones()?;
        let accounted: HashSet<SnapshotKey> = manifests
            .iter()
            .map(snapshot_key)
            .chain(tombstones.iter().map(Tombstone::key))
            .collect();
        let mut missing: Vec<Snapshot> = copies
            .iter()
            // An unreadable copy is damage in a pack, which the pack checks report.
            .filter_map(|(_, copy)| copy.as_ref().ok())
            .filter(|copy| !accounted.contains(&snapshot_key(copy)))
            .cloned()
            .collect();
        sort_by_time(&mut missing);
        missing.dedup_by(|a, b| snapshot_key(a) == snapshot_key(b));
        Ok((missing, errors))
    }
}

#[cfg(test)]
mod tests;
