//! Creating and opening a repository: the config, the key files, and the
//! upgrade of an older format at the first write.

use std::sync::{Arc, Mutex, RwLock};

use super::rekey::Rekey;

use super::crypto::{self, Keys, MASTER_KEY_LEN};
use super::{
    config, parity_name, write_with_parity, Config, Core, Encryption, Id, KeyFile, Opened,
    Repository, RepositoryState, Unwrapped, AUTHENTICATED_VERSION, KEY_FILE_VERSION,
};
use crate::backend::{Backend, FileType, ObjectLock};
use crate::error::{Error, ErrorKind, Result, ResultExt};
use crate::host::hostname;

/// An encrypted repository opened with an unauthenticated (version 1)
/// config or a version 1 key file: at its first write the config gets its
/// MAC and the key file is sealed anew as version 2, so that from then on a
/// config without a MAC is refused.
pub(super) struct Upgrade {
    config: Option<Config>,
    key: Option<(String, KeyFile)>,
}

impl Repository {
    /// Creates a repository. `password` is required unless `encryption` is none.
    pub fn init(
        backend: Arc<dyn Backend>,
        encryption: Encryption,
        password: Option<&[u8]>,
    ) -> Result<Repository> {
        Repository::init_with(backend, encryption, 0, password)
    }

    /// Creates a repository that stores `parity_percent` % of Reed–Solomon
    /// parity beside every file (0: none).
    pub fn init_with(
        backend: Arc<dyn Backend>,
        encryption: Encryption,
        parity_percent: u32,
        password: Option<&[u8]>,
    ) -> Result<Repository> {
        Repository::init_object_locked(backend, encryption, parity_percent, None, password)
    }

    /// [`Repository::init_with`], and with `object_lock` every file but
    /// locks and deletion plans is written under retention (`docs/design.md`
    /// section 7, "Object lock"). The store is asked first whether it can
    /// keep files so: only an S3 bucket with Object Lock enabled can.
    pub fn init_object_locked(
        backend: Arc<dyn Backend>,
        encryption: Encryption,
        parity_percent: u32,
        object_lock: Option<ObjectLock>,
        password: Option<&[u8]>,
    ) -> Result<Repository> {
        let master = match encryption {
            Encryption::Aes256Gcm => Some(Keys::generate_master()?),
            Encryption::None => None,
        };
        let mut config = Config::new(random_id()?, encryption);
        config.object_lock = object_lock;
        create(backend, config, parity_percent, master, password)
    }

    /// Creates an encrypted repository that cuts and names data as
    /// `template` does, so that the two deduplicate against each other and
    /// `copy` moves blobs between them without rewriting trees: the same
    /// chunker parameters, and the same id key (which also seeds the
    /// chunker), under an encryption key and a password of its own
    /// (`docs/design.md`, section 7, "Copy"). An unencrypted repository
    /// derives its id key from its own id, so it cannot share one.
    pub fn init_sharing_ids<S: RepositoryState>(
        backend: Arc<dyn Backend>,
        template: &Repository<S>,
        parity_percent: u32,
        object_lock: Option<ObjectLock>,
        password: &[u8],
    ) -> Result<Repository> {
        let mut config = Config::new(random_id()?, Encryption::Aes256Gcm);
        config.chunker = template.config().chunker;
        config.object_lock = object_lock;
        let master = template.keys().generate_master_sharing_ids()?;
        create(
            backend,
            config,
            parity_percent,
            Some(master),
            Some(password),
        )
    }
}

fn random_id() -> Result<Id> {
    let mut raw_id = [0u8; 32];
    crypto::random_bytes(&mut raw_id)?;
    Ok(Id(raw_id))
}

/// Writes a new repository: the layout, the key file wrapping `master`
/// (none without encryption), and the config last, since a directory with
/// a config is a complete repository.
fn create(
    backend: Arc<dyn Backend>,
    mut config: Config,
    parity_percent: u32,
    master: Option<[u8; MASTER_KEY_LEN]>,
    password: Option<&[u8]>,
) -> Result<Repository> {
    config.parity_percent = parity_percent;
    backend.create()?;
    if let Some(lock) = config.object_lock {
        backend.check_object_lock()?;
        backend.set_object_lock(lock)?;
    }
    let (keys, key_in_use) = match master {
        Some(master) => {
            let password = password
                .ok_or_else(|| Error::usage("a password is needed for an encrypted repository"))?;
            config.sign(&Config::mac_key(&master));
            let key_file = KeyFile::wrap(&master, password, &hostname())?.to_bytes();
            let name = Id::of_bytes(&key_file).to_hex();
            write_with_parity(&*backend, parity_percent, FileType::Key, &name, &key_file)?;
            (Keys::from_master(&master), Some(name))
        }
        None => (Keys::unencrypted(&config.id), None),
    };
    write_with_parity(
        &*backend,
        parity_percent,
        FileType::Config,
        "config",
        &config.to_bytes(),
    )?;
    let rekey = Rekey::new(password, key_in_use.as_slice());
    Ok(Repository::from_core(Core::new(
        backend, config, keys, key_in_use, None, rekey,
    )))
}

impl Repository<Opened> {
    /// Opens a repository; `password` is asked for only if the repository is encrypted.
    pub fn open(
        backend: Arc<dyn Backend>,
        password: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Repository<Opened>> {
        let location = backend.location();
        let config_bytes = backend.read(FileType::Config, "config").map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::new(ErrorKind::NotFound, format!("no repository at {location}"))
                    .with_hint("check --repo / REWIND_REPO, or create one with `rewind init`")
            } else {
                e
            }
        })?;
        let config = Config::from_bytes(&config_bytes, &location)?;
        if let Some(lock) = config.object_lock {
            // A copy of the bucket in a directory still reads; what is
            // written to it is not locked, as nothing there can be.
            if let Err(e) = backend.set_object_lock(lock) {
                crate::log::warn(&format!(
                    "the repository asks for object lock: {e}; files written now get no retention"
                ));
            }
        }
        let names = match backend.list(FileType::Key) {
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            other => other?,
        };
        if config.encryption == Encryption::None {
            if !names.is_empty() {
                return Err(config::tampered(
                    &location,
                    "it says the repository is not encrypted, but the repository has key files",
                ));
            }
            let keys = Keys::unencrypted(&config.id);
            return Ok(Repository::opened_with(Core::new(
                backend,
                config,
                keys,
                None,
                None,
                Rekey::default(),
            )));
        }
        if names.is_empty() {
            return Err(Error::new(ErrorKind::NotFound, format!("{location} has no key files"))
                .with_hint("the keys/ directory is missing or empty; restore it from a copy of the repository"));
        }
        let password = password()?;
        let (name, unwrapped, upgrade) = unlock(&*backend, &names, &password, |name, key, u| {
            authenticate(&config, name, key, u, &location)
        })?;
        let keys = Keys::from_master(&unwrapped.master).with_retired(unwrapped.retired.clone());
        let rekey = Rekey::new(Some(&password), &names);
        Ok(Repository::opened_with(Core::new(
            backend,
            config,
            keys,
            Some(name),
            upgrade,
            rekey,
        )))
    }

    fn opened_with(core: Core) -> Repository<Opened> {
        Repository {
            core: Arc::new(core),
            state: Opened,
        }
    }
}

impl Core {
    fn new(
        backend: Arc<dyn Backend>,
        config: Config,
        keys: Keys,
        key_in_use: Option<String>,
        upgrade: Option<Upgrade>,
        rekey: Rekey,
    ) -> Core {
        Core {
            backend,
            config,
            naming: keys.current_only(),
            keys: RwLock::new(Arc::new(keys)),
            rekey,
            key_in_use: Mutex::new(key_in_use),
            upgrade: Mutex::new(upgrade),
        }
    }
}

impl<S: RepositoryState> Repository<S> {
    /// Brings a repository opened in an older format up to the current one,
    /// once, before anything else is written to it. The config goes first:
    /// a crash after it leaves an authenticated config that the old key
    /// file still opens, and the next write finishes the upgrade.
    pub(super) fn upgrade_before_writing(&self) -> Result<()> {
        let mut pending = self.core.upgrade.lock().unwrap();
        let Some(upgrade) = pending.as_mut() else {
            return Ok(());
        };
        let percent = self.config().parity_percent;
        let backend = self.backend();
        if let Some(config) = &upgrade.config {
            write_with_parity(
                backend,
                percent,
                FileType::Config,
                "config",
                &config.to_bytes(),
            )
            .context("upgrading the config to an authenticated one")?;
            upgrade.config = None;
        }
        if let Some((old_name, new_key)) = &upgrade.key {
            let bytes = new_key.to_bytes();
            let name = Id::of_bytes(&bytes).to_hex();
            write_with_parity(backend, percent, FileType::Key, &name, &bytes)
                .context("upgrading the key file")?;
            *self.core.key_in_use.lock().unwrap() = Some(name);
            backend.remove(FileType::Key, old_name)?;
            backend.remove(FileType::Parity, &parity_name(FileType::Key, old_name))?;
        }
        *pending = None;
        Ok(())
    }
}

/// Opens the first key file that `password` opens and whose master key
/// `accept` takes (it authenticates the config): its name, what it wraps
/// and what `accept` said. Key files of a rotation in progress (version 3)
/// are tried first: a rotation killed before it removed the key files of
/// the old master key leaves both for the same password, and the new one
/// is the one to go on with. A key file of a master key rotated away (the
/// config is signed under the new one) does not stop a later one.
fn unlock<T>(
    backend: &dyn Backend,
    names: &[String],
    password: &[u8],
    accept: impl Fn(&str, &KeyFile, &Unwrapped) -> Result<T>,
) -> Result<(String, Unwrapped, T)> {
    let location = backend.location();
    let mut damaged = Vec::new();
    let mut keys = Vec::new();
    for name in names {
        match backend
            .read(FileType::Key, name)
            .and_then(|b| KeyFile::from_bytes(&b))
        {
            Ok(key) => keys.push((name, key)),
            Err(e) => damaged.push(format!("keys/{name}: {e}")),
        }
    }
    keys.sort_by_key(|(_, key)| std::cmp::Reverse(key.version));
    let mut refused = None;
    for (name, key) in keys {
        match key.unwrap(password) {
            Ok(unwrapped) => match accept(name, &key, &unwrapped) {
                Ok(accepted) => return Ok((name.clone(), unwrapped, accepted)),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            },
            Err(e) if e.kind() == ErrorKind::WrongPassword => {}
            Err(e) => damaged.push(format!("keys/{name}: {e}")),
        }
    }
    if let Some(e) = refused {
        return Err(e);
    }
    if damaged.len() == names.len() {
        return Err(Error::corrupt(format!(
            "no key file of {location} can be read ({})",
            damaged.join("; ")
        ))
        .with_hint("restore the keys/ directory from a copy of the repository"));
    }
    Err(Error::new(
        ErrorKind::WrongPassword,
        format!("wrong password for the repository at {location}"),
    )
    .with_hint("check REWIND_PASSWORD or --password-file"))
}

/// Checks the config of an encrypted repository against the master key,
/// and says what the first write must upgrade. A version 1 config has no
/// MAC: it is accepted only with a version 1 key file, since a version 2
/// key file was written beside an authenticated config (the config was
/// then replaced by an older or forged one).
fn authenticate(
    config: &Config,
    key_name: &str,
    key: &KeyFile,
    unwrapped: &Unwrapped,
    location: &str,
) -> Result<Option<Upgrade>> {
    let mac_key = Config::mac_key(&unwrapped.master);
    let config_upgrade = if config.version >= AUTHENTICATED_VERSION {
        // While a rotation runs, the config may still carry the MAC of
        // the master key being retired (which shares this one's id key).
        let retiring = Keys::from_master(&unwrapped.master).with_retired(unwrapped.retired.clone());
        let signed_by_retired = retiring
            .retired_masters()
            .any(|master| config.verify(&Config::mac_key(&master), location).is_ok());
        if !signed_by_retired {
            config.verify(&mac_key, location)?;
        }
        None
    } else if unwrapped.version >= 2 {
        return Err(config::tampered(
            location,
            &format!("it has no MAC, but the key file keys/{key_name} was made for a repository whose config has one"),
        ));
    } else {
        let mut signed = config.clone();
        signed.sign(&mac_key);
        Some(signed)
    };
    let key_upgrade = if unwrapped.version < KEY_FILE_VERSION {
        Some((key_name.to_string(), key.upgraded(unwrapped)?))
    } else {
        None
    };
    Ok(
        (config_upgrade.is_some() || key_upgrade.is_some()).then_some(Upgrade {
            config: config_upgrade,
            key: key_upgrade,
        }),
    )
}
