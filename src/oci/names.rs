//! OCI names, references and digests, and where objects live.

/// Repository names per the distribution spec grammar
/// (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`), at most 255
/// characters.
pub fn valid_repository(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    name.split('/').all(|component| {
        let b = component.as_bytes();
        let alnum = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !alnum(b.first()) || !alnum(b.last()) {
            return false;
        }
        // Separators: `.`, `_`, `__` or runs of `-`, each between alphanumerics.
        let mut rest = b;
        while let Some((&c, tail)) = rest.split_first() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                rest = tail;
                continue;
            }
            let n = rest.iter().take_while(|c| matches!(c, b'.' | b'_' | b'-')).count();
            let (sep, tail) = rest.split_at(n);
            let ok = sep == b"." || sep == b"_" || sep == b"__" || (!sep.is_empty() && sep.iter().all(|c| *c == b'-'));
            if !ok {
                return false;
            }
            rest = tail;
        }
        true
    })
}

/// Tags: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    b.len() <= 128
        && b.first().is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A sha256 digest; only sha256 is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Option<Digest> {
        let hex = s.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))).then(|| Digest(s.to_string()))
    }

    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", crate::util::sha256_hex(bytes)))
    }

    /// From the bytes of a SHA-256 hash.
    pub fn from_bytes(hash: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(hash)))
    }

    pub fn hex(&self) -> &str {
        self.0.strip_prefix("sha256:").unwrap_or_default()
    }

    /// The 32 digest bytes (for R2's checksum check).
    pub fn raw(&self) -> Vec<u8> {
        hex::decode(self.hex()).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Object-store keys. Blobs are global and content-addressed; a per-repository link says a
/// repository may serve a blob (so a private repository's layers cannot be read through
/// another repository by digest).
pub mod keys {
    use super::Digest;

    pub fn blob(d: &Digest) -> String {
        format!("oci/blobs/sha256/{}", d.hex())
    }
    /// Where a chunked upload's multipart object lives; the blob key then points at it.
    pub fn blob_data(upload: &str) -> String {
        format!("oci/blob-data/{upload}")
    }
    pub fn link(repo: &str, d: &Digest) -> String {
        format!("oci/links/{repo}/{}", d.hex())
    }
    pub fn manifest(repo: &str, d: &Digest) -> String {
        format!("oci/manifests/{repo}/{d}")
    }
    pub fn tag(repo: &str, tag: &str) -> String {
        format!("oci/tags/{repo}/{tag}")
    }
    pub fn tags_prefix(repo: &str) -> String {
        format!("oci/tags/{repo}/")
    }
    pub fn referrers_prefix(repo: &str, subject: &Digest) -> String {
        format!("oci/referrers/{repo}/{}/", subject.hex())
    }
    pub fn referrer(repo: &str, subject: &Digest, d: &Digest) -> String {
        format!("{}{}", referrers_prefix(repo, subject), d.hex())
    }
    pub const REPOSITORIES: &str = "oci/repositories/";
    pub fn repository(repo: &str) -> String {
        format!("{REPOSITORIES}{repo}")
    }
    pub fn upload_tail(upload: &str, n: u64) -> String {
        format!("oci/uploads/{upload}/tail-{n}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn repository_grammar() {
        for ok in ["a", "library/nginx", "a.b/c_d/e__f", "x-y--z", "0/1/2"] {
            assert!(valid_repository(ok), "{ok}");
        }
        for bad in ["", "A", "a/", "/a", "a//b", "-a", "a-", "a___b", "a..b", "a/../b", "a/./b", "a b", "a%2fb"] {
            assert!(!valid_repository(bad), "{bad}");
        }
        assert!(!valid_repository(&"a".repeat(256)));
    }

    #[test]
    fn tags_and_digests() {
        assert!(valid_tag("latest") && valid_tag("v1.2.3-rc_1") && valid_tag("_x"));
        assert!(!valid_tag("") && !valid_tag(".x") && !valid_tag("a/b") && !valid_tag(&"a".repeat(129)));
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_some());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_none());
        assert!(Digest::parse("sha256:abc").is_none());
        assert!(Digest::parse(&format!("sha512:{}", "a".repeat(128))).is_none());
        assert_eq!(Digest::of(b"").hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
