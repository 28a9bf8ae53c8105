//! A running process taking the new master key of a rotation.
//!
//! A rotation (`docs/design.md`, section 7, "Keys") replaces the master
//! key's encryption key while mounts, restores and backups that opened the
//! repository before it keep running. What the rotation re-seals, such a
//! process cannot open with the keys it took at its start. When opening
//! fails as damage would, it reads the key files that appeared since, with
//! the password it opened the repository with (kept in memory for this: it
//! gives nothing the master key it already holds does not), and takes a
//! master key that shares its id key; then it tries once more. Damage
//! costs a listing of `keys/`, and unwraps nothing unless a key file is new.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::{KeyFile, Keys, Repository, RepositoryState};
use crate::backend::FileType;
use crate::error::{ErrorKind, Result};

/// What a process needs to take a new master key.
#[derive(Default)]
pub(super) struct Rekey {
    /// The password that opened the repository (none when unencrypted).
    password: Option<Vec<u8>>,
    /// The key files already unwrapped or tried with it.
    tried: Mutex<BTreeSet<String>>,
}

impl Rekey {
    /// For a repository `password` opened when `keys/` held `names`.
    pub(super) fn new(password: Option<&[u8]>, names: &[String]) -> Rekey {
        Rekey {
            password: password.map(<[u8]>::to_vec),
            tried: Mutex::new(names.iter().cloned().collect()),
        }
    }

    /// The password that opened the repository.
    pub(super) fn password(&self) -> Option<&[u8]> {
        self.password.as_deref()
    }
}

impl<S: RepositoryState> Repository<S> {
    /// Runs `open` with the keys in use; when it fails as damage does and
    /// a rotation has given the repository a new master key since this
    /// process took its keys, runs it again with the new keys.
    pub(super) fn with_current_keys<T>(&self, open: impl Fn(&Keys) -> Result<T>) -> Result<T> {
        let keys = self.keys();
        match open(&keys) {
            Err(e) if e.kind() == ErrorKind::Corrupt && self.take_new_master_key(&keys) => {
                open(&self.keys())
            }
            other => other,
        }
    }

    /// Whether keys newer than `seen` are in use now: another thread took
    /// them already, or a key file that appeared since gives them.
    pub(super) fn take_new_master_key(&self, seen: &Arc<Keys>) -> bool {
        let rekey = &self.core.rekey;
        let Some(password) = &rekey.password else {
            return false;
        };
        // One thread at a time unwraps: the others find its keys after.
        let mut tried = rekey.tried.lock().unwrap();
        if !Arc::ptr_eq(&self.keys(), seen) {
            return true;
        }
        let Ok(names) = self.backend().list(FileType::Key) else {
            return false;
        };
        let fresh: Vec<String> = names.into_iter().filter(|n| !tried.contains(n)).collect();
        tried.extend(fresh.iter().cloned());
        for name in fresh {
            let unwrapped = self
                .backend()
                .read(FileType::Key, &name)
                .and_then(|bytes| KeyFile::from_bytes(&bytes))
                .and_then(|key| key.unwrap(password));
            let Ok(unwrapped) = unwrapped else {
                continue;
            };
            if let Some(keys) = seen.succeeded_by(&unwrapped.master, &unwrapped.retired) {
                crate::log::info(&format!(
                    "the repository's master key was rotated; reading on with keys/{}",
                    &name[..8.min(name.len())]
                ));
                self.use_keys(keys, name);
                return true;
            }
        }
        false
    }

    /// Makes `keys`, which the key file `key_file` wraps, the keys of this
    /// process from now on.
    pub(super) fn use_keys(&self, keys: Keys, key_file: String) {
        *self.core.keys.write().unwrap() = Arc::new(keys);
        *self.core.key_in_use.lock().unwrap() = Some(key_file);
    }
}
