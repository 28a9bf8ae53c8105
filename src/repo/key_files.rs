//! The key files of an encrypted repository as an admin manages them: list,
//! add, remove (`rewind key`). Each key file wraps the same master key
//! under its own password (`man/rewind-format.5`, KEYS), so adding one
//! gives a new password access and removing one takes it away, without
//! touching any data.

use serde::Serialize;

use super::{write_with_parity, Id, KeyFile, Repository, RepositoryState};
use crate::backend::FileType;
use crate::error::{Error, ErrorKind, Result};
use crate::host::hostname;

/// A key file as `rewind key list` shows it. Everything but the name is
/// what the file says of itself, which only the password authenticates.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// The key file's name (`keys/<name>`).
    pub id: String,
    pub created: String,
    pub host: String,
    pub username: String,
    pub label: Option<String>,
    /// Whether this process opened the repository with it.
    pub in_use: bool,
}

impl<S: RepositoryState> Repository<S> {
    /// The name of the key file this repository was opened with.
    pub fn key_in_use(&self) -> Option<String> {
        self.core.key_in_use.lock().unwrap().clone()
    }

    /// Every key file, oldest first, beside the errors of those that do not
    /// read.
    pub fn key_files(&self) -> Result<(Vec<KeyInfo>, Vec<Error>)> {
        let in_use = self.key_in_use();
        let names = self.backend().list(FileType::Key)?;
        let (mut keys, errors) = super::read_each(&names, |name| {
            let key = self.read_key_file(name)?;
            Ok(KeyInfo {
                id: name.to_string(),
                created: key.created,
                host: key.host,
                username: key.username,
                label: key.label,
                in_use: in_use.as_deref() == Some(name),
            })
        });
        keys.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        Ok((keys, errors))
    }

    pub(super) fn read_key_file(&self, name: &str) -> Result<KeyFile> {
        let bytes = self.backend().read(FileType::Key, name)?;
        KeyFile::from_bytes(&bytes).map_err(|e| e.context(format!("keys/{name}")))
    }

    /// Adds a key file that opens the repository with `password`; its name.
    pub fn add_key(&self, password: &[u8], label: Option<&str>) -> Result<String> {
        let keys = self.keys();
        let master = keys.master().ok_or_else(|| {
            Error::usage("the repository is not encrypted: it has no keys to add to")
        })?;
        if !keys.retired().is_empty() {
            // A key added now would have to carry the keys being retired,
            // and no rotation could then retire them from it.
            return Err(Error::usage(
                "a rotation of the master key is in progress: keys cannot be added or changed until it ends",
            )
            .with_hint("finish it with `rewind key rotate --resume`"));
        }
        self.upgrade_before_writing()?;
        let mut key = KeyFile::wrap(&master, password, &hostname())?;
        key.label = label.map(str::to_string);
        self.write_key_file(&key)
    }

    /// Stores a key file (with its parity) under the hash of its bytes; its name.
    pub(super) fn write_key_file(&self, key: &KeyFile) -> Result<String> {
        let bytes = key.to_bytes();
        let name = Id::of_bytes(&bytes).to_hex();
        write_with_parity(
            self.backend(),
            self.config().parity_percent,
            FileType::Key,
            &name,
            &bytes,
        )?;
        Ok(name)
    }

    /// The full name of the key file `id` names (a unique prefix will do).
    pub fn find_key(&self, id: &str) -> Result<String> {
        let names = self.backend().list(FileType::Key)?;
        let mut found = names.iter().filter(|name| name.starts_with(id));
        match (found.next(), found.next()) {
            (Some(name), None) if !id.is_empty() => Ok(name.clone()),
            (Some(_), Some(_)) => Err(Error::usage(format!(
                "more than one key file starts with {id}"
            ))
            .with_hint("give more of its id (`rewind key list`)")),
            _ => Err(Error::new(ErrorKind::NotFound, format!("no key file {id}"))
                .with_hint("`rewind key list` shows the key files")),
        }
    }

    /// Removes the key file `name`: never the last one, and the one in use
    /// only when `in_use_too` (the caller then holds another password).
    pub fn remove_key(&self, name: &str, in_use_too: bool) -> Result<()> {
        let names = self.backend().list(FileType::Key)?;
        if !names.iter().any(|n| n == name) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no key file {name}"),
            ));
        }
        if names.len() == 1 {
            return Err(Error::usage(format!(
                "keys/{name} is the repository's only key file: without it no password opens the repository"
            ))
            .with_hint("add another key first (`rewind key add`)"));
        }
        if self.key_in_use().as_deref() == Some(name) && !in_use_too {
            return Err(Error::usage(format!(
                "keys/{name} is the key this command was opened with"
            ))
            .with_hint(
                "open the repository with another password to remove it, or pass --force-other",
            ));
        }
        self.upgrade_before_writing()?;
        match self.stored_files().remove(FileType::Key, name) {
            // Under object lock the store keeps the file until its
            // retention ends; hidden behind a delete marker, no password
            // finds it, which is what removing a key means.
            Err(e) if e.kind() == ErrorKind::Retained => {
                self.stored_files().hide(FileType::Key, name)
            }
            other => other,
        }
    }

    /// Replaces the key in use by one for `password` with the same label:
    /// the new key file first, so that a crash between the two leaves both
    /// passwords working, never neither. The new key file's name.
    pub fn change_password(&self, password: &[u8]) -> Result<String> {
        let old = self
            .key_in_use()
            .ok_or_else(|| Error::usage("the repository is not encrypted: it has no password"))?;
        let label = self.read_key_file(&old)?.label;
        let new = self.add_key(password, label.as_deref())?;
        // The upgrade in add_key may have renamed the key in use.
        let old = self.key_in_use().unwrap_or(old);
        self.remove_key(&old, true)?;
        *self.core.key_in_use.lock().unwrap() = Some(new.clone());
        Ok(new)
    }
}
