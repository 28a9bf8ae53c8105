//! The repository's `config` file: plain JSON, readable without the key, so
//! that a repository explains itself (format version, encryption, chunker).
//! In an encrypted repository it carries a MAC under a key derived from the
//! master key, so whoever can write the repository cannot change what the
//! client does (turn encryption off, change the chunker, ...).

use serde::{Deserialize, Serialize};

use super::crypto::MASTER_KEY_LEN;
use crate::backend::ObjectLock;
use crate::chunker::ChunkerParams;
use crate::error::{Error, ErrorKind, Result};
use crate::id::Id;

const RESTORE_CONFIG: &str = "someone who can write the repository may have changed the file `config`; restore it from a copy of the repository, and do not back up to it until then";

/// The error for a config that does not authenticate.
pub fn tampered(location: &str, why: &str) -> Error {
    Error::corrupt(format!("the config of {location} cannot be trusted: {why}"))
        .with_hint(RESTORE_CONFIG)
}

/// The newest repository format this build reads and writes. Version 2
/// authenticates the config; version 1 repositories are still read, and
/// upgraded at their first write.
pub const FORMAT_VERSION: u32 = 2;

/// The first version whose encrypted configs carry a MAC.
pub const AUTHENTICATED_VERSION: u32 = 2;

/// Bounds of `pack_size`. A pack may exceed it by its last blob and its
/// trailer, and blob offsets are 32-bit: the upper bound keeps every pack
/// well below 4 GiB.
pub const MIN_PACK_SIZE: u32 = 1024 * 1024;
pub const MAX_PACK_SIZE: u32 = 1024 * 1024 * 1024;

/// The longest object lock period, in seconds: 100 years (S3 allows 100).
pub const MAX_LOCK_PERIOD: u64 = 100 * 365 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encryption {
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Always "rewind": tells a rewind repository from anything else.
    pub format: String,
    pub version: u32,
    pub id: Id,
    pub encryption: Encryption,
    /// zstd level; 0 stores data uncompressed.
    pub compression_level: i32,
    pub chunker: ChunkerParams,
    /// Packs are closed once they reach this many bytes.
    pub pack_size: u32,
    /// Reed–Solomon parity stored beside every file, in percent of its
    /// size; 0 for none. Absent in repositories made before parity existed.
    #[serde(default)]
    pub parity_percent: u32,
    /// S3 Object Lock: every file but locks and deletion plans is written
    /// under this retention (`docs/design.md` section 7, "Object lock").
    /// Absent without; an older rewind refuses a config that has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
    /// Encrypted repositories from version 2 on: the MAC of every other
    /// field (see `Config::mac_input`), in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Config {
    pub fn new(id: Id, encryption: Encryption) -> Config {
        Config {
            format: "rewind".into(),
            version: FORMAT_VERSION,
            id,
            encryption,
            compression_level: 3,
            chunker: ChunkerParams::default(),
            pack_size: 16 * 1024 * 1024,
            parity_percent: 0,
            object_lock: None,
            mac: None,
        }
    }

    /// The key of the config's MAC, derived from the master key.
    pub fn mac_key(master: &[u8; MASTER_KEY_LEN]) -> [u8; 32] {
        blake3::derive_key("rewind 2026-11 config mac key", master)
    }

    /// What the MAC covers: every field but `mac`, as compact JSON in the
    /// order of the struct, so that a change to any of them is caught.
    fn mac_input(&self) -> Vec<u8> {
        let unsigned = Config {
            mac: None,
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).expect("config serializes")
    }

    fn compute_mac(&self, key: &[u8; 32]) -> blake3::Hash {
        blake3::keyed_hash(key, &self.mac_input())
    }

    /// Sets the MAC (and makes the config the current version).
    pub fn sign(&mut self, key: &[u8; 32]) {
        self.version = FORMAT_VERSION;
        self.mac = Some(self.compute_mac(key).to_hex().to_string());
    }

    /// Checks the MAC; `location` names the repository in errors.
    pub fn verify(&self, key: &[u8; 32], location: &str) -> Result<()> {
        let expected = self.compute_mac(key);
        // blake3::Hash compares in constant time.
        let authentic = self
            .mac
            .as_deref()
            .and_then(|mac| blake3::Hash::from_hex(mac).ok())
            .is_some_and(|mac| mac == expected);
        if authentic {
            Ok(())
        } else {
            Err(tampered(
                location,
                "its MAC is missing or does not match its content",
            ))
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("config serializes");
        out.push(b'\n');
        out
    }

    /// Parses and validates a config; `location` names the repository in errors.
    pub fn from_bytes(bytes: &[u8], location: &str) -> Result<Config> {
        // Read the version first: a newer format may have fields we do not know.
        #[derive(Deserialize)]
        struct Probe {
            format: Option<String>,
            version: Option<u32>,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| {
            Error::corrupt(format!("the config of {location} is not valid JSON: {e}"))
                .with_hint("the file `config` is damaged; restore it from a copy of the repository")
        })?;
        if probe.format.as_deref() != Some("rewind") {
            return Err(Error::corrupt(format!(
                "{location} is not a rewind repository"
            )));
        }
        match probe.version {
            Some(v) if v > FORMAT_VERSION => {
                return Err(Error::new(
                    ErrorKind::UnsupportedVersion,
                    format!("{location} uses repository format version {v}; this rewind reads versions up to {FORMAT_VERSION}"),
                )
                .with_hint("upgrade rewind to open this repository"))
            }
            Some(0) | None => return Err(Error::corrupt(format!("the config of {location} has no valid version"))),
            Some(_) => {}
        }
        let config: Config = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("the config of {location} is damaged: {e}")))?;
        match (
            config.version >= AUTHENTICATED_VERSION,
            config.encryption,
            &config.mac,
        ) {
            (true, Encryption::Aes256Gcm, None) => {
                return Err(tampered(location, "it is encrypted but has no MAC"))
            }
            (_, Encryption::None, Some(_)) | (false, _, Some(_)) => {
                return Err(tampered(
                    location,
                    "it has a MAC where its version and encryption have none",
                ))
            }
            _ => {}
        }
        config.chunker.validate()?;
        if !(0..=22).contains(&config.compression_level)
            || !(MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&config.pack_size)
            || config
                .object_lock
                .is_some_and(|lock| !(1..=MAX_LOCK_PERIOD).contains(&lock.period))
        {
            return Err(Error::corrupt(format!(
                "the config of {location} has out-of-range values"
            )));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LockMode;

    fn signed(object_lock: Option<ObjectLock>) -> (Config, [u8; 32]) {
        let mut config = Config::new(Id([7; 32]), Encryption::Aes256Gcm);
        config.object_lock = object_lock;
        let key = Config::mac_key(&[9; MASTER_KEY_LEN]);
        config.sign(&key);
        (config, key)
    }

    #[test]
    fn a_config_without_object_lock_is_written_as_before() {
        let (config, _) = signed(None);
        let text = String::from_utf8(config.to_bytes()).unwrap();
        assert!(!text.contains("object_lock"), "{text}");
    }

    #[test]
    fn the_mac_covers_the_object_lock() {
        let lock = ObjectLock {
            mode: LockMode::Compliance,
            period: 30 * 86_400,
        };
        let (config, key) = signed(Some(lock));
        let read = Config::from_bytes(&config.to_bytes(), "repo").unwrap();
        assert_eq!(read.object_lock, Some(lock));
        read.verify(&key, "repo").unwrap();
        for tampered in [
            None,
            Some(ObjectLock {
                mode: LockMode::Governance,
                ..lock
            }),
            Some(ObjectLock { period: 60, ..lock }),
        ] {
            let changed = Config {
                object_lock: tampered,
                ..read.clone()
            };
            assert!(changed.verify(&key, "repo").is_err(), "{tampered:?}");
        }
    }

    #[test]
    fn an_object_lock_period_out_of_range_is_refused() {
        for period in [0, MAX_LOCK_PERIOD + 1] {
            let (config, _) = signed(Some(ObjectLock {
                mode: LockMode::Governance,
                period,
            }));
            let error = Config::from_bytes(&config.to_bytes(), "repo").unwrap_err();
            assert!(error.to_string().contains("out-of-range"), "{error}");
        }
    }
}
