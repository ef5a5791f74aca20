//! HS256 JSON Web Tokens (unpadded base64url), as the OCI token endpoint issues them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn sign(secret: &[u8], signing_input: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(signing_input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Signs `claims` (a JSON object) with `secret`.
pub fn encode(secret: &[u8], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let sig = URL_SAFE_NO_PAD.encode(sign(secret, &input));
    format!("{input}.{sig}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    BadSignature,
    Expired,
    NotYetValid,
}

/// Checks the signature (constant time), `exp` and `nbf` against `now_secs`; returns the claims.
pub fn decode(secret: &[u8], token: &str, now_secs: i64) -> Result<Value, JwtError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, sig] = parts[..] else {
        return Err(JwtError::Malformed);
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(JwtError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(JwtError::Malformed);
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| JwtError::Malformed)?;
    let expected = sign(secret, &format!("{}.{}", parts[0], payload));
    if !crate::util::secret_eq(&sig, &expected) {
        return Err(JwtError::BadSignature);
    }
    let claims: Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(JwtError::Malformed)?;
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
        if exp <= now_secs {
            return Err(JwtError::Expired);
        }
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
        if nbf > now_secs {
            return Err(JwtError::NotYetValid);
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let t = encode(b"k", &json!({"sub": "alice", "nbf": 100, "exp": 200}));
        assert_eq!(decode(b"k", &t, 150).unwrap()["sub"], "alice");
        assert_eq!(decode(b"other", &t, 150), Err(JwtError::BadSignature));
        assert_eq!(decode(b"k", &t, 200), Err(JwtError::Expired));
        assert_eq!(decode(b"k", &t, 99), Err(JwtError::NotYetValid));
        assert_eq!(decode(b"k", "a.b", 150), Err(JwtError::Malformed));
        let mut tampered = t.clone();
        tampered.insert(t.find('.').unwrap() + 2, 'A');
        assert!(decode(b"k", &tampered, 150).is_err());
    }

    #[test]
    fn matches_a_known_hs256_vector() {
        // Header and payload of the jwt.io example, secret "your-256-bit-secret".
        let input = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ";
        let sig = URL_SAFE_NO_PAD.encode(sign(b"your-256-bit-secret", input));
        assert_eq!(sig, "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
    }
}
