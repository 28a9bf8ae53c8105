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
/// A key file written while the master key is rotated: beside the new
/// master key it seals the encryption keys being retired, which still open
/// what they sealed (`docs/design.md`, section 7, "Keys").
pub const ROTATING_KEY_FILE_VERSION: u32 = 3;

/// A key file opened with its password.
pub struct Unwrapped {
    pub master: [u8; MASTER_KEY_LEN],
    /// The version sealed with the master key (1 when none is).
    pub version: u32,
    /// The encryption keys a rotation is retiring (version 3 only).
    pub retired: Vec<[u8; 32]>,
    /// The key that wraps the master key, kept to rewrap it at an upgrade
    /// without asking for the password again.
    kek: [u8; 32],
}

impl KeyFile {
    pub fn wrap(master: &[u8; MASTER_KEY_LEN], password: &[u8], host: &str) -> Result<KeyFile> {
        KeyFile::wrap_rotating(master, &[], password, host)
    }

    /// A key file for `master` that also carries the `retired` encryption
    /// keys (version 3; with none, a plain version 2 key file).
    pub fn wrap_rotating(
        master: &[u8; MASTER_KEY_LEN],
        retired: &[[u8; 32]],
        password: &[u8],
        host: &str,
    ) -> Result<KeyFile> {
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
        let version = if retired.is_empty() {
            KEY_FILE_VERSION
        } else {
            ROTATING_KEY_FILE_VERSION
        };
        let mut key = KeyFile {
            version,
            created: chrono::Utc::now().to_rfc3339(),
            host: host.to_string(),
            username: crate::host::current_user(),
            label: None,
            kdf,
            nonce: Vec::new(),
            wrapped: Vec::new(),
        };
        key.seal(&kek, master, retired)?;
        Ok(key)
    }

    /// This key file as the current version, wrapping the same master key
    /// under the same password.
    pub fn upgraded(&self, unwrapped: &Unwrapped) -> Result<KeyFile> {
        let mut key = KeyFile {
            version: KEY_FILE_VERSION,
            ..self.clone()
        };
        key.seal(&unwrapped.kek, &unwrapped.master, &unwrapped.retired)?;
        Ok(key)
    }

    /// Seals the master key, this file's version and the retired keys
    /// under `kek`.
    fn seal(
        &mut self,
        kek: &[u8; 32],
        master: &[u8; MASTER_KEY_LEN],
        retired: &[[u8; 32]],
    ) -> Result<()> {
        let mut plain = master.to_vec();
        plain.push(self.version as u8);
        for key in retired {
            plain.extend_from_slice(key);
        }
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
        let plain = Sealer::with_key(&kek)
            .open(&sealed)
            .map_err(|_| Error::new(ErrorKind::WrongPassword, "wrong password"))?;
        // Version 1 sealed the master key alone; later ones add their
        // version, and version 3 the retired keys after it.
        let (version, retired) = match plain.len() {
            MASTER_KEY_LEN => (1, &[][..]),
            n if n > MASTER_KEY_LEN => (
                u32::from(plain[MASTER_KEY_LEN]),
                &plain[MASTER_KEY_LEN + 1..],
            ),
            _ => {
                return Err(Error::corrupt(
                    "key file holds a master key of the wrong size",
                ))
            }
        };
        let retired_fit = match version {
            ROTATING_KEY_FILE_VERSION => !retired.is_empty() && retired.len() % 32 == 0,
            _ => retired.is_empty(),
        };
        if version != self.version
            || !(1..=ROTATING_KEY_FILE_VERSION).contains(&version)
            || !retired_fit
        {
            return Err(Error::corrupt(format!(
                "key file says it is version {} but was sealed as version {version} with {} more bytes",
                self.version,
                retired.len()
            )));
        }
        let retired = retired
            .chunks_exact(32)
            .map(|key| key.try_into().expect("32 bytes"))
            .collect();
        let master = plain[..MASTER_KEY_LEN]
            .try_into()
            .expect("MASTER_KEY_LEN bytes");
        Ok(Unwrapped {
            master,
            version,
            retired,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotating_key_file_carries_its_retired_keys_and_a_plain_one_none() {
        let master = [4u8; MASTER_KEY_LEN];
        let plain = KeyFile::wrap(&master, b"pw", "h").unwrap();
        assert_eq!(plain.version, KEY_FILE_VERSION);
        let opened = plain.unwrap(b"pw").unwrap();
        assert_eq!((opened.master, opened.retired.len()), (master, 0));

        let retired = [[7u8; 32], [8u8; 32]];
        let rotating = KeyFile::wrap_rotating(&master, &retired, b"pw", "h").unwrap();
        assert_eq!(rotating.version, ROTATING_KEY_FILE_VERSION);
        let opened = KeyFile::from_bytes(&rotating.to_bytes())
            .unwrap()
            .unwrap(b"pw")
            .unwrap();
        assert_eq!(opened.master, master);
        assert_eq!(opened.retired, retired);
        assert_eq!(
            rotating.unwrap(b"other").err().map(|e| e.kind()),
            Some(ErrorKind::WrongPassword)
        );

        // The version outside the seal must match the one inside it.
        let mut relabelled = rotating.clone();
        relabelled.version = KEY_FILE_VERSION;
        assert_eq!(
            relabelled.unwrap(b"pw").err().map(|e| e.kind()),
            Some(ErrorKind::Corrupt)
        );
    }
}
