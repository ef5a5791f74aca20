//! Salted, slow password hashes (PBKDF2-HMAC-SHA256) for the user records in KV.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PasswordHash {
    pub algorithm: String,
    pub iterations: u32,
    pub salt: String,
    pub hash: String,
}

fn derive(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

impl PasswordHash {
    pub fn new(password: &str, iterations: u32) -> PasswordHash {
        let salt = crate::util::random_hex();
        PasswordHash {
            algorithm: "pbkdf2-sha256".into(),
            iterations,
            hash: hex::encode(derive(password, salt.as_bytes(), iterations)),
            salt,
        }
    }

    pub fn verify(&self, password: &str) -> bool {
        if self.algorithm != "pbkdf2-sha256" {
            return false;
        }
        let Ok(want) = hex::decode(&self.hash) else {
            return false;
        };
        crate::util::secret_eq(&derive(password, self.salt.as_bytes(), self.iterations), &want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_right_password_and_salts_differ() {
        let a = PasswordHash::new("s3cret", 1000);
        let b = PasswordHash::new("s3cret", 1000);
        assert!(a.verify("s3cret"));
        assert!(!a.verify("s3cret "));
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn matches_rfc7914_pbkdf2_sha256_vector() {
        let mut out = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"passwd", b"salt", 1, &mut out);
        assert_eq!(&hex::encode(out)[..32], "55ac046e56e3089fec1691c22544b605");
    }
}
