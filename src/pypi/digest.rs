//! The three digests PyPI's legacy upload API names (`md5_digest`, `sha256_digest`,
//! `blake2_256_digest`, see the "Upload API" of warehouse.pypa.io), computed in one pass over
//! the file as it streams to storage, and the check of the ones a client sent.

use base64::Engine;
use blake2::Blake2b256;
use sha2::{Digest, Sha256};
use std::fmt;

/// SHA-256, MD5 and BLAKE2b-256 of one stream, fed in pieces.
#[derive(Clone)]
pub struct Hasher {
    sha256: Sha256,
    md5: md5::Md5,
    blake2b_256: Blake2b256,
    size: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    pub fn new() -> Self {
        Hasher { sha256: Sha256::new(), md5: md5::Md5::new(), blake2b_256: Blake2b256::new(), size: 0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.md5.update(data);
        self.blake2b_256.update(data);
        self.size = self.size.saturating_add(data.len() as u64);
    }

    pub fn finish(self) -> Digests {
        Digests {
            sha256: self.sha256.finalize().into(),
            md5: self.md5.finalize().into(),
            blake2b_256: self.blake2b_256.finalize().into(),
            size: self.size,
        }
    }
}

/// The digests and length of one uploaded file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digests {
    pub sha256: [u8; 32],
    pub md5: [u8; 16],
    /// BLAKE2b with a 32-byte output (Python's `hashlib.blake2b(digest_size=32)`), not a
    /// truncated BLAKE2b-512: the output length is part of BLAKE2's parameter block.
    pub blake2b_256: [u8; 32],
    pub size: u64,
}

impl Digests {
    /// The digests of a whole byte string (tests and small files).
    pub fn of(data: &[u8]) -> Digests {
        let mut hasher = Hasher::new();
        hasher.update(data);
        hasher.finish()
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    pub fn md5_hex(&self) -> String {
        hex::encode(self.md5)
    }

    pub fn blake2b_256_hex(&self) -> String {
        hex::encode(self.blake2b_256)
    }

    /// Checks the digests a client sent (`sha256_digest`, `md5_digest`, `blake2_256_digest`):
    /// hex in either case; md5 also URL-safe base64 without padding as pypi.org accepts. `None`
    /// or empty (possibly blank) means not given. The first digest that does not match, in
    /// the order sha256, blake2, md5, is the error.
    pub fn verify(&self, sha256: Option<&str>, md5: Option<&str>, blake2_256: Option<&str>) -> Result<(), DigestMismatch> {
        if let Some(v) = given(sha256) {
            if !hex_matches(v, &self.sha256) {
                return Err(DigestMismatch { field: "sha256_digest" });
            }
        }
        if let Some(v) = given(blake2_256) {
            if !hex_matches(v, &self.blake2b_256) {
                return Err(DigestMismatch { field: "blake2_256_digest" });
            }
        }
        if let Some(v) = given(md5) {
            if !hex_matches(v, &self.md5) && !base64_matches(v, &self.md5) {
                return Err(DigestMismatch { field: "md5_digest" });
            }
        }
        Ok(())
    }
}

/// A digest field's value, `None` when absent or blank.
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn hex_matches(given: &str, want: &[u8]) -> bool {
    hex::decode(given).is_ok_and(|bytes| bytes == want)
}

/// URL-safe base64, padded or not (setuptools' old `upload` command sent it this way).
fn base64_matches(given: &str, want: &[u8]) -> bool {
    let unpadded = given.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded).is_ok_and(|bytes| bytes == want)
}

/// A digest the client sent that is not the digest of the bytes it uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestMismatch {
    /// The form field: `sha256_digest`, `md5_digest` or `blake2_256_digest`.
    pub field: &'static str,
}

impl fmt::Display for DigestMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} does not match the uploaded file", self.field)
    }
}

impl std::error::Error for DigestMismatch {}
