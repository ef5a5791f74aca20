//! Salted, slow password hashes (PBKDF2-HMAC-SHA256) for the user records in KV. The
//! derivation itself runs on the platform's crypto (WebCrypto in the Worker).

use serde::{Deserialize, Serialize};

use crate::platform::{Crypto, StoreResult};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PasswordHash {
    pub algorithm: String,
    pub iterations: u32,
    pub salt: String,
    pub hash: String,
}

impl PasswordHash {
    pub async fn new(crypto: &dyn Crypto, password: &str, iterations: u32) -> StoreResult<PasswordHash> {
        let salt = crate::util::random_hex();
        let hash = crypto.pbkdf2_sha256(password, salt.as_bytes(), iterations).await?;
        Ok(PasswordHash {
            algorithm: "pbkdf2-sha256".into(),
            iterations,
            hash: hex::encode(hash),
            salt,
        })
    }

    /// A hash no password matches, for answering an unknown user with the same work as a
    /// known one.
    pub fn decoy(iterations: u32) -> PasswordHash {
        PasswordHash {
            algorithm: "pbkdf2-sha256".into(),
            iterations,
            salt: "0".repeat(32),
            hash: "0".repeat(64),
        }
    }

    pub async fn verify(&self, crypto: &dyn Crypto, password: &str) -> StoreResult<bool> {
        if self.algorithm != "pbkdf2-sha256" {
            return Ok(false);
        }
        let Ok(want) = hex::decode(&self.hash) else {
            return Ok(false);
        };
        let got = crypto.pbkdf2_sha256(password, self.salt.as_bytes(), self.iterations).await?;
        Ok(crate::util::secret_eq(&got, &want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::memory::RustCrypto;
    use futures::executor::block_on;

    #[test]
    fn verifies_only_the_right_password_and_salts_differ() {
        let a = block_on(PasswordHash::new(&RustCrypto, "s3cret", 1000)).unwrap();
        let b = block_on(PasswordHash::new(&RustCrypto, "s3cret", 1000)).unwrap();
        assert!(block_on(a.verify(&RustCrypto, "s3cret")).unwrap());
        assert!(!block_on(a.verify(&RustCrypto, "s3cret ")).unwrap());
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn matches_rfc7914_pbkdf2_sha256_vector() {
        let out = block_on(RustCrypto.pbkdf2_sha256("passwd", b"salt", 1)).unwrap();
        assert_eq!(hex::encode(out), "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc");
    }
}
