//! Key files (`keys/<id>`): the master key, wrapped by a key derived from a
//! password with Argon2id. Several key files can open the same repository.
//!
//! A version 2 key file seals its version beside the master key: it says,
//! where only the password can change it, that the repository's config is
//! authenticated, so a config stripped of its MAC cannot pass for one made
//! before configs had one.

use serde::{Deserialize, Serialize};

use super::crypto::{random_bytes, Sealer, MASTER_KEY_LEN, NONCE_LEN};
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KdfParams {
    pub algorithm: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    #[serde(with = "hex::serde")]
    pub salt: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: String,
    pub host: String,
    /// Who made it; not authenticated, like `created` and `host`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// What the admin called it (`key add --label`); not authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub kdf: KdfParams,
    #[serde(with = "hex::serde")]
    pub nonce: Vec<u8>,
    /// The 64-byte master key, AES-256-GCM sealed (80 bytes with the tag).
    #[serde(with = "hex::serde")]
    pub wrapped: Vec<u8>,
}

/// The newest key file version; see the module documentation.
pub const KEY_FILE_VERSION: u32 = 2;

/// A key file opened with its password.
pub struct Unwrapped {
    pub master: [u8; MASTER_KEY_LEN],
    /// The version sealed with the master key (1 when none is).
    pub version: u32,
    /// The key that wraps the master key, kept to rewrap it at an upgrade
    /// without asking for the password again.
    kek: [u8; 32],
}

impl KeyFile {
    pub fn wrap(master: &[u8; MASTER_KEY_LEN], password: &[u8], host: &str) -> Result<KeyFile> {
        let mut salt = vec![0u8; 16];
        random_bytes(&mut salt)?;
        let kdf = KdfParams {
            algorithm: "argon2id".into(),
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
            salt,
        };
        let kek = derive(&kdf, password)?;
        let mut key = KeyFile {
            version: KEY_FILE_VERSION,
            created: chrono::Utc::now().to_rfc3339(),
            host: host.to_string(),
            username: crate::host::current_user(),
            label: None,
            kdf,
            nonce: Vec::new(),
            wrapped: Vec::new(),
        };
        key.seal(&kek, master)?;
        Ok(key)
    }

    /// This key file as the current version, wrapping the same master key
    /// under the same password.
    pub fn upgraded(&self, unwrapped: &Unwrapped) -> Result<KeyFile> {
        let mut key = KeyFile {
            version: KEY_FILE_VERSION,
            ..self.clone()
        };
        key.seal(&unwrapped.kek, &unwrapped.master)?;
        Ok(key)
    }

    /// Seals the master key and this file's version under `kek`.
    fn seal(&mut self, kek: &[u8; 32], master: &[u8; MASTER_KEY_LEN]) -> Result<()> {
        let mut plain = master.to_vec();
        plain.push(self.version as u8);
        let mut sealed = Sealer::with_key(kek).seal(plain)?;
        self.wrapped = sealed.split_off(NONCE_LEN);
        self.nonce = sealed;
        Ok(())
    }

    /// The master key, or `WrongPassword` if this password does not open it.
    pub fn unwrap_master(&self, password: &[u8]) -> Result<[u8; MASTER_KEY_LEN]> {
        self.unwrap(password).map(|u| u.master)
    }

    /// The master key and the version sealed with it.
    pub fn unwrap(&self, password: &[u8]) -> Result<Unwrapped> {
        if self.nonce.len() != NONCE_LEN {
            return Err(Error::corrupt("key file has a nonce of the wrong size"));
        }
        let kek = derive(&self.kdf, password)?;
        let sealed = [self.nonce.as_slice(), &self.wrapped].concat();
        let mut plain = Sealer::with_key(&kek)
            .open(&sealed)
            .map_err(|_| Error::new(ErrorKind::WrongPassword, "wrong password"))?;
        // Version 1 sealed the master key alone.
        let version = match plain.len() {
            MASTER_KEY_LEN => 1,
            n if n == MASTER_KEY_LEN + 1 => u32::from(plain.pop().expect("not empty")),
            _ => {
                return Err(Error::corrupt(
                    "key file holds a master key of the wrong size",
                ))
            }
        };
        if version != self.version || !(1..=KEY_FILE_VERSION).contains(&version) {
            return Err(Error::corrupt(format!(
                "key file says it is version {} but was sealed as version {version}",
                self.version
            )));
        }
        let master = plain.try_into().expect("MASTER_KEY_LEN bytes");
        Ok(Unwrapped {
            master,
            version,
            kek,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key file serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<KeyFile> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("key file is damaged: {e}")))
    }
}

fn derive(kdf: &KdfParams, password: &[u8]) -> Result<[u8; 32]> {
    if kdf.algorithm != "argon2id" {
        return Err(Error::corrupt(format!(
            "unknown key derivation '{}'",
            kdf.algorithm
        )));
    }
    // Bounds keep a damaged key file from asking for terabytes of memory.
    if kdf.memory_kib > 4 * 1024 * 1024 || kdf.iterations > 100 || kdf.parallelism > 64 {
        return Err(Error::corrupt(
            "key file asks for out-of-range key derivation parameters",
        ));
    }
    let params = argon2::Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| Error::corrupt(format!("key derivation parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(password, &kdf.salt, &mut out)
        .map_err(|e| Error::corrupt(format!("key derivation: {e}")))?;
    Ok(out)
}
