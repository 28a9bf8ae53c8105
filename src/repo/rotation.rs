//! The repository's side of a rotation of the master key (`docs/design.md`,
//! section 7, "Keys"): the key file that begins one, telling which key
//! sealed a file, sealing anew the files that are not packs (prune's
//! repacking seals the packs), and the end: the config signed under the new
//! master key and a key file without the retired ones.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::index::{BlobKey, BlobLocation, PackRef};
use super::keyfile::ROTATING_KEY_FILE_VERSION;
use super::{
    crypto, pack, parallel_map, read_each, write_with_parity, Config, DeletionPlan, Id, IdMap,
    IdSet, KeyFile, Keys, Repository, RepositoryState, Snapshot,
};
use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::host::hostname;
use crate::testing::crash_point;

/// Which key sealed a file.
#[derive(Debug)]
pub enum Sealing {
    /// The master key in use.
    Current,
    /// A key being retired.
    Retired,
    /// Neither opens it: damage (`rewind scrub --repair`), or a file no
    /// key of this repository sealed.
    Unreadable(Error),
}

/// Packs as a rotation sees them.
#[derive(Debug, Default)]
pub struct PackSealing {
    /// Indexed packs a retired key sealed.
    pub retired: IdSet,
    /// Indexed packs whose probe opens under no key.
    pub unreadable: Vec<(Id, Error)>,
}

/// A manifest sealed anew: its id before and after.
#[derive(Debug, Clone, Serialize)]
pub struct ResealedSnapshot {
    pub old: Id,
    pub new: Id,
}

/// What sealing the files of one kind anew did.
#[derive(Debug, Default, Serialize)]
pub struct Resealed {
    /// Files written under the current key (a file whose content a current
    /// file already holds is only removed).
    pub files: u64,
    /// Files no key opens, as `kind/name: error`.
    pub unreadable: Vec<String>,
}

impl<S: RepositoryState> Repository<S> {
    /// Whether a rotation of the master key is in progress: the key file in
    /// use carries retired keys.
    pub fn rotation_in_progress(&self) -> bool {
        !self.keys().retired().is_empty()
    }

    /// When the rotation in progress began: when the key file that carries
    /// the retired keys was written.
    pub fn rotation_started(&self) -> Result<DateTime<Utc>> {
        let name = self
            .key_in_use()
            .ok_or_else(|| Error::usage("the repository is not encrypted"))?;
        let created = self.read_key_file(&name)?.created;
        DateTime::parse_from_rfc3339(&created)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                Error::corrupt(format!(
                    "keys/{name} says it was created at '{created}': {e}"
                ))
            })
    }

    /// Begins a rotation: a key file for the password in use that wraps a
    /// new master key (the same id key, a new encryption key) and the
    /// encryption key it retires, and this process seals under the new key
    /// from now on. Returns the key file's name. The key files of the old
    /// master key stay until [`Repository::remove_other_key_files`].
    pub fn begin_rotation(&self) -> Result<String> {
        let password = self.core.rekey.password().ok_or_else(|| {
            Error::usage("the repository is not encrypted: it has no master key to rotate")
        })?;
        let keys = self.keys();
        let master = keys.master().ok_or_else(|| {
            Error::usage("the repository is not encrypted: it has no master key to rotate")
        })?;
        if keys.retired().is_empty() {
            self.refuse_another_rotation()?;
        } else {
            return Err(Error::usage("a rotation of the master key is in progress")
                .with_hint("resume it with `rewind key rotate --resume`"));
        }
        self.upgrade_before_writing()?;
        let label = match self.key_in_use() {
            Some(name) => self.read_key_file(&name)?.label,
            None => None,
        };
        let new_master = keys.generate_master_sharing_ids()?;
        let retiring: [u8; 32] = master[..32].try_into().expect("32 bytes");
        let mut key = KeyFile::wrap_rotating(&new_master, &[retiring], password, &hostname())?;
        key.label = label;
        let name = self.write_key_file(&key)?;
        crash_point("rotate-key-written");
        let next = keys
            .succeeded_by(&new_master, &[])
            .expect("a new encryption key under the same id key");
        self.use_keys(next, name.clone());
        Ok(name)
    }

    /// A rotation begun with another password leaves a version 3 key file
    /// this password does not open: a second rotation now would retire the
    /// key that one sealed with, which no key file this password opens has.
    fn refuse_another_rotation(&self) -> Result<()> {
        for name in self.backend().list(FileType::Key)? {
            if let Ok(key) = self.read_key_file(&name) {
                if key.version == ROTATING_KEY_FILE_VERSION {
                    return Err(Error::usage(format!(
                        "a rotation of the master key begun with another password is in progress (keys/{})",
                        &name[..8.min(name.len())]
                    ))
                    .with_hint("resume it with `rewind key rotate --resume` and the password it began with"));
                }
            }
        }
        Ok(())
    }

    /// Removes every key file but the one in use (under object lock hides
    /// it): during a rotation they wrap the master key being retired, and
    /// at its end the key file that carried the retired keys. Returns
    /// their names.
    pub fn remove_other_key_files(&self) -> Result<Vec<String>> {
        let keep = self.key_in_use();
        let mut removed = Vec::new();
        for name in self.backend().list(FileType::Key)? {
            if Some(&name) == keep.as_ref() {
                continue;
            }
            match self.stored_files().remove(FileType::Key, &name) {
                Err(e) if e.kind() == ErrorKind::Retained => {
                    self.stored_files().hide(FileType::Key, &name)?
                }
                other => other?,
            }
            removed.push(name);
        }
        Ok(removed)
    }

    /// Which key sealed a metadata file, and its content when a key opens it.
    fn sealing_of(&self, kind: FileType, name: &str) -> (Sealing, Option<Vec<u8>>) {
        let bytes = match self.backend().read(kind, name) {
            Ok(bytes) => bytes,
            Err(e) => return (Sealing::Unreadable(e), None),
        };
        let keys = self.keys();
        let open = |keys: &Keys| -> Result<Vec<u8>> {
            if Id::of_bytes(&bytes).to_hex() != name && kind != FileType::Lock {
                return Err(Error::corrupt("it does not hash to its name"));
            }
            let (salt, sealed) = bytes
                .split_at_checked(crypto::SALT_LEN)
                .ok_or_else(|| Error::corrupt("file is too short"))?;
            let payload = keys.sealer(salt.try_into().unwrap()).open(sealed)?;
            crypto::decompress(&payload, super::MAX_METADATA_LEN)
        };
        match open(&keys.current_only()) {
            Ok(content) => (Sealing::Current, Some(content)),
            Err(_) => match open(&keys) {
                Ok(content) => (Sealing::Retired, Some(content)),
                Err(e) => (Sealing::Unreadable(e.context(kind.path(name))), None),
            },
        }
    }

    /// The files of `kind` that a retired key sealed, and those no key opens.
    pub fn files_sealed_by_retired_keys(
        &self,
        kind: FileType,
    ) -> Result<(Vec<String>, Vec<Error>)> {
        let names = self.list(kind)?;
        let mut retired = Vec::new();
        let mut unreadable = Vec::new();
        for (name, (sealing, _)) in names
            .iter()
            .zip(parallel_map(&names, |name| self.sealing_of(kind, name)))
        {
            match sealing {
                Sealing::Current => {}
                Sealing::Retired => retired.push(name.clone()),
                // Removed while we listed: a lock released, a plan carried out.
                Sealing::Unreadable(e) if e.kind() == ErrorKind::NotFound => {}
                Sealing::Unreadable(e) => unreadable.push(e),
            }
        }
        Ok((retired, unreadable))
    }

    /// Seals anew under the current key every file of `kind` (tombstones,
    /// deletion plans, audit records) that a retired key sealed: the same
    /// content under a new name, then the old file goes. Content a current
    /// file already holds (a rotation killed between the two) is not
    /// written twice. Audit records keep their digests, which are of their
    /// content, so the chain holds.
    pub fn reseal_files(&self, kind: FileType) -> Result<Resealed> {
        let names = self.list(kind)?;
        let files = parallel_map(&names, |name| self.sealing_of(kind, name));
        let mut current: HashSet<Id> = HashSet::new();
        let mut retired = Vec::new();
        let mut resealed = Resealed::default();
        for (name, (sealing, content)) in names.iter().zip(files) {
            match (sealing, content) {
                (Sealing::Current, Some(content)) => {
                    current.insert(Id::of_bytes(&content));
                }
                (Sealing::Retired, Some(content)) => retired.push((name, content)),
                (Sealing::Unreadable(e), _) if e.kind() == ErrorKind::NotFound => {}
                (Sealing::Unreadable(e), _) => resealed.unreadable.push(e.to_string()),
                _ => unreachable!("a file a key opens has content"),
            }
        }
        for (name, content) in retired {
            if current.insert(Id::of_bytes(&content)) {
                let bytes = self.seal_file(&content)?;
                write_with_parity(
                    self.backend(),
                    self.config().parity_percent,
                    kind,
                    &Id::of_bytes(&bytes).to_hex(),
                    &bytes,
                )?;
                resealed.files += 1;
            }
            crash_point("rotate-resealed-file");
            self.remove_or_hide(kind, name)?;
        }
        Ok(resealed)
    }

    /// Removes a file sealed anew; under object lock hides it until a
    /// deletion plan's prune can delete it.
    fn remove_or_hide(&self, kind: FileType, name: &str) -> Result<()> {
        match self.stored_files().remove(kind, name) {
            Err(e) if e.kind() == ErrorKind::Retained => self.stored_files().hide(kind, name),
            other => other,
        }
    }

    /// Removes the locks of stopped processes that a retired key sealed
    /// (`rewind unlock --stale` would too): after the rotation no key opens
    /// them. Returns how many.
    pub fn remove_stale_retired_locks(&self) -> Result<u64> {
        let (retired, _) = self.files_sealed_by_retired_keys(FileType::Lock)?;
        let stale: Vec<String> = self
            .locks()?
            .into_iter()
            .filter(|(id, _, staleness)| {
                *staleness == super::Staleness::Stale && retired.contains(id)
            })
            .map(|(id, _, _)| id)
            .collect();
        for id in &stale {
            self.remove_lock(id)?;
        }
        Ok(stale.len() as u64)
    }

    /// Ends a rotation once nothing a retired key sealed is left: the
    /// config signed under the new master key, then a key file for the
    /// password in use without the retired keys, then the one with them
    /// goes (a crash in between leaves both; the next `--resume` ends it
    /// again). Returns the new key file's name and the names of those
    /// removed.
    pub fn finish_rotation(&self) -> Result<(String, Vec<String>)> {
        let keys = self.keys();
        let (Some(master), Some(password)) = (keys.master(), self.core.rekey.password()) else {
            return Err(Error::usage("the repository is not encrypted"));
        };
        if keys.retired().is_empty() {
            return Err(Error::usage("no rotation of the master key is in progress"));
        }
        let mut config = self.config().clone();
        config.sign(&Config::mac_key(&master));
        write_with_parity(
            self.backend(),
            self.config().parity_percent,
            FileType::Config,
            "config",
            &config.to_bytes(),
        )?;
        crash_point("rotate-config-signed");
        let old = self
            .key_in_use()
            .expect("an encrypted repository has a key in use");
        let mut key = KeyFile::wrap(&master, password, &hostname())?;
        key.label = self.read_key_file(&old)?.label;
        let name = self.write_key_file(&key)?;
        crash_point("rotate-final-key-written");
        self.use_keys(keys.current_only(), name.clone());
        let removed = self.remove_other_key_files()?;
        Ok((name, removed))
    }
}

impl Repository {
    /// Which key sealed each indexed pack, told by opening its smallest
    /// blob: one small read per pack (a pack is sealed under one key).
    pub fn packs_sealed_by_retired_keys(&self) -> Result<PackSealing> {
        let probes: Vec<(PackRef, BlobKey, BlobLocation)> = {
            let index = self.index();
            let mut smallest: BTreeMap<usize, (BlobKey, BlobLocation)> = BTreeMap::new();
            for (key, location) in index.blobs() {
                let slot = smallest.entry(location.pack()).or_insert((key, location));
                if location.stored_len < slot.1.stored_len {
                    *slot = (key, location);
                }
            }
            smallest
                .into_iter()
                .map(|(number, (key, location))| (*index.pack(number), key, location))
                .collect()
        };
        let keys = self.keys();
        let current = keys.current_only();
        let sealings = parallel_map(&probes, |(pack, key, location)| {
            let stored = self.backend().read_range(
                FileType::Pack,
                &pack.id.to_hex(),
                location.offset as u64,
                location.stored_len,
            )?;
            let chunker = &self.config().chunker;
            let open = |keys: &Keys, stored: Vec<u8>| {
                super::index::open_keyed_blob(keys, &pack.salt, stored, key, location, chunker)
            };
            if open(&current, stored.clone()).is_ok() {
                return Ok(Sealing::Current);
            }
            Ok(match open(&keys, stored) {
                Ok(_) => Sealing::Retired,
                Err(e) => Sealing::Unreadable(e),
            })
        });
        let mut packs = PackSealing::default();
        for ((pack, _, _), sealing) in probes.iter().zip(sealings) {
            match sealing {
                Ok(Sealing::Current) => {}
                Ok(Sealing::Retired) => {
                    packs.retired.insert(pack.id);
                }
                Ok(Sealing::Unreadable(e)) | Err(e) => packs.unreadable.push((pack.id, e)),
            }
        }
        Ok(packs)
    }

    /// The unindexed packs no deletion plan names that a retired key
    /// sealed or no key opens (a prune plans such leftovers for deletion).
    pub fn unindexed_packs_not_current(&self) -> Result<Vec<String>> {
        let names = self.unindexed_packs()?;
        let current = self.keys().current_only();
        let (left, _) = read_each(&names, |name| {
            let bytes = self.backend().read(FileType::Pack, name)?;
            Ok(pack::read_trailer(&current, &bytes)
                .is_err()
                .then(|| name.to_string()))
        });
        Ok(left.into_iter().flatten().collect())
    }

    /// Seals anew every manifest a retired key sealed, oldest first, and
    /// those whose parent was sealed anew: the new manifest records the id
    /// it replaces (`resealed_from`) and the id of its first copy
    /// (`original`, so `copy` still knows it), and names its parent's new
    /// id. It is written (with its copy in a pack) before the old one
    /// goes; a resumed rotation finds what an earlier one did by
    /// `resealed_from`. Returns the old and new ids.
    pub fn reseal_snapshots(&self) -> Result<(Vec<ResealedSnapshot>, Vec<String>)> {
        let names = self.list(FileType::Snapshot)?;
        let sealings = parallel_map(&names, |name| self.sealing_of(FileType::Snapshot, name));
        let mut unreadable = Vec::new();
        let mut manifests: Vec<(Snapshot, bool)> = Vec::new();
        for (name, (sealing, content)) in names.iter().zip(sealings) {
            let retired = match sealing {
                Sealing::Current => false,
                Sealing::Retired => true,
                Sealing::Unreadable(e) if e.kind() == ErrorKind::NotFound => continue,
                Sealing::Unreadable(e) => {
                    unreadable.push(e.to_string());
                    continue;
                }
            };
            let content = content.expect("a file a key opens has content");
            match serde_json::from_slice::<Snapshot>(&content) {
                Ok(mut snapshot) => {
                    snapshot.id = Id::from_hex(name)?;
                    manifests.push((snapshot, retired));
                }
                Err(e) => unreadable.push(format!("snapshots/{name} does not decode: {e}")),
            }
        }
        let mut renamed: IdMap<Id> = manifests
            .iter()
            .filter_map(|(s, retired)| Some((s.resealed_from?, s.id)).filter(|_| !retired))
            .collect();
        manifests.sort_by_key(|(snapshot, _)| (snapshot.time, snapshot.id));
        let mut resealed = Vec::new();
        for (snapshot, retired) in manifests {
            let parent_renamed = snapshot.parent.and_then(|p| renamed.get(&p).copied());
            if !retired && parent_renamed.is_none() {
                continue;
            }
            let old = snapshot.id;
            let new = match renamed.get(&old) {
                // Sealed anew by a rotation killed before the old one went.
                Some(new) if retired => *new,
                _ => {
                    let mut next = Snapshot {
                        original: Some(snapshot.origin()),
                        resealed_from: Some(old),
                        ..snapshot.clone()
                    };
                    next.parent = parent_renamed.or(snapshot.parent);
                    let new = self.save_snapshot(&next)?;
                    renamed.insert(old, new);
                    new
                }
            };
            crash_point("rotate-resealed-snapshot");
            self.retire_manifest(&old)?;
            resealed.push(ResealedSnapshot { old, new });
        }
        Ok((resealed, unreadable))
    }

    /// Removes a manifest sealed anew; under object lock hides it, and a
    /// deletion plan deletes it once its retention ends.
    fn retire_manifest(&self, id: &Id) -> Result<()> {
        let name = id.to_hex();
        let stored = self.stored_files();
        match stored.remove(FileType::Snapshot, &name) {
            Err(e) if e.kind() == ErrorKind::Retained => {
                let until = stored.retention(FileType::Snapshot, &name)?;
                self.write_deletion_plan(&DeletionPlan::for_manifests(&[(
                    *id,
                    until.map(|r| r.until),
                )]))?;
                stored.hide(FileType::Snapshot, &name)
            }
            other => other,
        }
    }
}
