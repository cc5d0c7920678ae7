//! The key Holdfast signs with, behind the [`Signer`] seam so that an HSM or a KMS can take
//! the place of the local keystore. The key never leaves the signer and is never logged
//! (`Debug` shows the address only); the keystore's password is read from a file and
//! dropped after decryption.

use std::path::Path;

use alloy::primitives::{Address, B256, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    #[error("keystore {path}: {message}")]
    Keystore { path: String, message: String },
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Signs 32-byte hashes (a safeTxHash, a transaction's signing hash).
pub trait Signer: Send + Sync + std::fmt::Debug {
    fn address(&self) -> Address;
    fn sign_hash(&self, hash: &B256) -> Result<Signature, SignerError>;
}

/// A secp256k1 key held in memory, from an encrypted JSON keystore.
pub struct LocalKeySigner {
    inner: PrivateKeySigner,
}

impl std::fmt::Debug for LocalKeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeySigner")
            .field("address", &self.inner.address())
            .finish_non_exhaustive()
    }
}

impl LocalKeySigner {
    /// Decrypts a JSON keystore (as geth, cast and clef write them) with the password in
    /// `password_file` (its first line).
    pub fn from_keystore(
        keystore: &Path,
        password_file: &Path,
    ) -> Result<LocalKeySigner, SignerError> {
        let err = |path: &Path, message: String| SignerError::Keystore {
            path: path.display().to_string(),
            message,
        };
        let password = std::fs::read_to_string(password_file)
            .map_err(|e| err(password_file, format!("reading the password file: {e}")))?;
        let password = password.lines().next().unwrap_or_default().to_owned();
        let inner = PrivateKeySigner::decrypt_keystore(keystore, password).map_err(|e| {
            err(
                keystore,
                format!("cannot decrypt (wrong password or not a keystore): {e}"),
            )
        })?;
        Ok(LocalKeySigner { inner })
    }

    /// Wraps a key already in memory (tests, the demo).
    pub fn new(inner: PrivateKeySigner) -> LocalKeySigner {
        LocalKeySigner { inner }
    }
}

impl Signer for LocalKeySigner {
    fn address(&self) -> Address {
        self.inner.address()
    }

    fn sign_hash(&self, hash: &B256) -> Result<Signature, SignerError> {
        self.inner
            .sign_hash_sync(hash)
            .map_err(|e| SignerError::Sign(e.to_string()))
    }
}
