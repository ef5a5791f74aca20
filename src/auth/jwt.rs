//! HS256 JSON Web Tokens (unpadded base64url), as the OCI token endpoint issues them, and
//! the principal their claims stand for.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use super::{CredentialKind, Principal, Scope};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn sign(secret: &[u8], signing_input: &str) -> Vec<u8> {
    // HMAC takes keys of any length, so this never fails; an empty tag would fail every check.
    let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(secret) else {
        return Vec::new();
    };
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
    let [header_text, payload, sig] = parts[..] else {
        return Err(JwtError::Malformed);
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(header_text)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(JwtError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(JwtError::Malformed);
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| JwtError::Malformed)?;
    let expected = sign(secret, &format!("{header_text}.{payload}"));
    if expected.is_empty() || !crate::util::secret_eq(&sig, &expected) {
        return Err(JwtError::BadSignature);
    }
    let claims: Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(JwtError::Malformed)?;
    // `exp` is required and must be an integer NumericDate (RFC 7519 §2, §4.1.4); a token
    // without one would never expire. `nbf`, when present, likewise.
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or(JwtError::Malformed)?;
    if exp <= now_secs {
        return Err(JwtError::Expired);
    }
    match claims.get("nbf") {
        None => {}
        Some(nbf) => match nbf.as_i64() {
            Some(nbf) if nbf > now_secs => return Err(JwtError::NotYetValid),
            Some(_) => {}
            None => return Err(JwtError::Malformed),
        },
    }
    Ok(claims)
}

/// A principal from the claims of a token the OCI token endpoint issued: `access` as in the
/// Docker registry token specification (`[{"type": "repository", "name", "actions"}]`, and
/// `registry:catalog:*`), plus this registry's `grants`, `ro` (read-only) and `adm` (admin).
pub fn principal_from_claims(claims: &Value) -> Option<Principal> {
    let scopes = claims
        .get("access")?
        .as_array()?
        .iter()
        .flat_map(|a| {
            // The catalog grant stands for pulling every repository (it was only given so).
            if a.get("type").and_then(Value::as_str) == Some("registry") {
                return Scope::parse("oci:repository:*:pull").into_iter().collect::<Vec<_>>();
            }
            if a.get("type").and_then(Value::as_str) != Some("repository") {
                return Vec::new();
            }
            let name = a.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let actions: Vec<String> = a.get("actions").and_then(Value::as_array).map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default();
            actions.into_iter().filter_map(|act| Scope::parse(&format!("oci:repository:{name}:{act}"))).collect()
        })
        .collect();
    let grants = claims
        .get("grants")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(|s| Scope::parse(s.as_str()?)).collect())
        .unwrap_or_default();
    Some(Principal {
        user: claims.get("sub")?.as_str()?.to_string(),
        token_key: None,
        kind: CredentialKind::Jwt,
        scopes,
        grants,
        readonly: claims.get("ro").and_then(Value::as_bool).unwrap_or(false),
        // An admin credential's token keeps admin rights for OCI (never for the admin API).
        admin: claims.get("adm").and_then(Value::as_bool).unwrap_or(false),
    })
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
        // A token that never expires, or whose times are not integers, is refused.
        for claims in [json!({"sub": "a"}), json!({"exp": "999999"}), json!({"exp": 200.5}), json!({"exp": 200, "nbf": "1"})] {
            assert_eq!(decode(b"k", &encode(b"k", &claims), 150), Err(JwtError::Malformed), "{claims}");
        }
        let mut tampered = t.clone();
        tampered.insert(t.find('.').unwrap() + 2, 'A');
        assert!(decode(b"k", &tampered, 150).is_err());
    }

    #[test]
    fn claims_become_a_principal() {
        let claims = json!({"sub": "alice", "ro": true, "grants": ["oci:repository:x:push"], "access": [
            {"type": "repository", "name": "a/b", "actions": ["pull", "push"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
            {"type": "other", "name": "n", "actions": ["pull"]}]});
        let p = principal_from_claims(&claims).unwrap();
        assert_eq!((p.user.as_str(), p.kind, p.readonly, p.admin), ("alice", CredentialKind::Jwt, true, false));
        let scopes: Vec<String> = p.scopes.iter().map(|s| s.to_string()).collect();
        assert_eq!(scopes, ["oci:repository:a/b:pull", "oci:repository:a/b:push", "oci:repository:*:pull"]);
        assert_eq!(p.grants.iter().map(|s| s.to_string()).collect::<Vec<_>>(), ["oci:repository:x:push"]);
        assert!(principal_from_claims(&json!({"access": []})).is_none(), "no subject");
        assert!(principal_from_claims(&json!({"sub": "alice"})).is_none(), "no access list");
    }

    #[test]
    fn matches_a_known_hs256_vector() {
        // Header and payload of the jwt.io example, secret "your-256-bit-secret".
        let input = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ";
        let sig = URL_SAFE_NO_PAD.encode(sign(b"your-256-bit-secret", input));
        assert_eq!(sig, "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
    }
}
