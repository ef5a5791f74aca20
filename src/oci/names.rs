//! OCI names, references and digests, and where objects live.

/// A repository name that satisfies the distribution spec grammar ([`valid_repository`]):
/// handlers receive one only after the route's name was checked, so they never see raw
/// request text where a name belongs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Repository(String);

impl Repository {
    pub fn parse(name: &str) -> Option<Repository> {
        valid_repository(name).then(|| Repository(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token scope for `actions` on this repository, `repository:{name}:{actions}`
    /// (Docker registry token authentication, "Token Scope Documentation").
    pub fn scope(&self, actions: &str) -> String {
        format!("repository:{}:{actions}", self.0)
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Repository {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

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

/// The digest algorithms this registry stores: the two the OCI image spec registers
/// (`descriptor.md`, "Registered algorithms"): `sha256` (64 lowercase hex characters, the
/// canonical one) and `sha512` (128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded hash.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// The digest of `bytes` in this algorithm.
    pub fn digest(self, bytes: &[u8]) -> Digest {
        let mut h = Hasher::new(self);
        h.update(bytes);
        h.finish()
    }
}

/// A digest in one of the [`Algorithm`]s, as `algorithm:hex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest(String);

/// Why a string is not a usable digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestError {
    /// Not `algorithm:encoded` as the image spec's grammar has it, or an encoding the
    /// algorithm does not allow.
    Malformed,
    /// Well-formed, in an algorithm this registry does not implement.
    Unsupported,
}

impl Digest {
    pub fn parse(s: &str) -> Option<Digest> {
        Digest::check(s).ok()
    }

    /// Parses `s`, telling a malformed digest from one in an algorithm not supported here.
    pub fn check(s: &str) -> Result<Digest, DigestError> {
        let (algorithm, encoded) = s.split_once(':').ok_or(DigestError::Malformed)?;
        // Image spec `descriptor.md`: algorithm-component ([a-z0-9]+) joined by [+._-];
        // encoded [a-zA-Z0-9=_-]+.
        let component_ok = !algorithm.is_empty()
            && algorithm.split(['+', '.', '_', '-']).all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        let encoded_ok = !encoded.is_empty() && encoded.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
        if !component_ok || !encoded_ok {
            return Err(DigestError::Malformed);
        }
        let alg = Algorithm::parse(algorithm).ok_or(DigestError::Unsupported)?;
        let hex_ok = encoded.len() == alg.hex_len() && encoded.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        if !hex_ok {
            return Err(DigestError::Malformed);
        }
        Ok(Digest(s.to_string()))
    }

    /// The sha256 digest of `bytes` (the canonical algorithm).
    pub fn of(bytes: &[u8]) -> Digest {
        Algorithm::Sha256.digest(bytes)
    }

    /// From the bytes of a hash in `alg`.
    pub fn from_hash(alg: Algorithm, hash: &[u8]) -> Digest {
        Digest(format!("{}:{}", alg.name(), hex::encode(hash)))
    }

    /// From the bytes of a SHA-256 hash.
    pub fn from_bytes(hash: &[u8]) -> Digest {
        Digest::from_hash(Algorithm::Sha256, hash)
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.0.split_once(':') {
            Some(("sha512", _)) => Algorithm::Sha512,
            _ => Algorithm::Sha256,
        }
    }

    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or_default()
    }

    /// The raw digest bytes (for R2's checksum check).
    pub fn raw(&self) -> Vec<u8> {
        hex::decode(self.hex()).unwrap_or_default()
    }

    /// The checksum R2 verifies a put against.
    pub fn checksum(&self) -> crate::platform::Checksum {
        match self.algorithm() {
            Algorithm::Sha256 => crate::platform::Checksum::Sha256(self.raw()),
            Algorithm::Sha512 => crate::platform::Checksum::Sha512(self.raw()),
        }
    }

    /// How the digest appears as the last part of a key: the bare hex for sha256 (the keys
    /// written before other algorithms were stored), `algorithm:hex` otherwise. Neither has a
    /// `/`, and a repository name never has a `:`.
    pub fn key_part(&self) -> String {
        match self.algorithm() {
            Algorithm::Sha256 => self.hex().to_string(),
            Algorithm::Sha512 => self.0.clone(),
        }
    }

    /// The digest a key part names (see [`Digest::key_part`]).
    pub fn from_key_part(part: &str) -> Option<Digest> {
        if part.contains(':') {
            Digest::parse(part)
        } else {
            Digest::parse(&format!("sha256:{part}"))
        }
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

/// A running hash in one [`Algorithm`], which can be saved between requests and resumed
/// exactly (sha2's `SerializableState`).
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(alg: Algorithm) -> Hasher {
        use sha2::Digest as _;
        match alg {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        use sha2::Digest as _;
        match self {
            Hasher::Sha256(h) => Digest::from_hash(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_hash(Algorithm::Sha512, &h.finalize()),
        }
    }

    /// The state as hex (104 bytes for sha256, 200 for sha512).
    pub fn save(&self) -> String {
        use sha2::digest::common::hazmat::SerializableState;
        match self {
            Hasher::Sha256(h) => hex::encode(h.serialize().as_slice()),
            Hasher::Sha512(h) => hex::encode(h.serialize().as_slice()),
        }
    }

    /// A state saved by [`Hasher::save`] for `alg`.
    pub fn restore(alg: Algorithm, saved: &str) -> Option<Hasher> {
        use sha2::digest::common::hazmat::{SerializableState, SerializedState};
        let bytes = hex::decode(saved).ok()?;
        match alg {
            Algorithm::Sha256 => {
                let state = SerializedState::<sha2::Sha256>::try_from(bytes.as_slice()).ok()?;
                sha2::Sha256::deserialize(&state).ok().map(Hasher::Sha256)
            }
            Algorithm::Sha512 => {
                let state = SerializedState::<sha2::Sha512>::try_from(bytes.as_slice()).ok()?;
                sha2::Sha512::deserialize(&state).ok().map(Hasher::Sha512)
            }
        }
    }
}

/// Object-store keys, each with the kind of object under it. Blobs are global and
/// content-addressed; a per-repository link says a repository may serve a blob (so a private
/// repository's layers cannot be read through another repository by digest). The key strings
/// are those stored data was written under: they never change.
pub mod keys {
    use super::{Digest, Repository};
    use crate::storage::key::{cache_control, Key, ObjectKind, JSON_RECORD, MARKER};

    /// Blob bytes: immutable, but served with `max-age` only, never `public`: blobs of
    /// private repositories are answered to requests with `Authorization`, which a shared
    /// cache may reuse only for a `public` response (RFC 9111 §3.5).
    pub const BLOB: ObjectKind = ObjectKind::new("application/octet-stream", "max-age=31536000");
    /// A tag: the manifest digest as text, with the manifest's size and media type in its
    /// custom metadata.
    pub const TAG: ObjectKind = ObjectKind::new("text/plain", cache_control::NONE);
    /// Bytes of an upload in progress, never served.
    pub const UPLOAD_DATA: ObjectKind = ObjectKind::new("application/octet-stream", cache_control::NONE);

    /// A manifest stored as `media_type` (one of the manifest types; by digest, it never
    /// changes, but it is served by tag too, so it carries no `Cache-Control`).
    pub const fn manifest_kind(media_type: &'static str) -> ObjectKind {
        ObjectKind::new(media_type, cache_control::NONE)
    }

    pub fn blob(d: &Digest) -> Key {
        Key::new(format!("oci/blobs/{}/{}", d.algorithm().name(), d.hex()), BLOB)
    }
    /// Where a chunked upload's multipart object lives; the blob key then points at it.
    pub fn blob_data(upload: &str) -> Key {
        Key::new(format!("oci/blob-data/{upload}"), BLOB)
    }
    /// Zero bytes: its existence lets `repo` serve the blob.
    pub fn link(repo: &Repository, d: &Digest) -> Key {
        Key::new(format!("oci/links/{repo}/{}", d.key_part()), MARKER)
    }
    /// A manifest read back (its stored content type says what it is) or written as an OCI
    /// image manifest; [`manifest_as`] writes it as another type.
    pub fn manifest(repo: &Repository, d: &Digest) -> Key {
        manifest_as(repo, d, crate::oci::MANIFEST_MEDIA_TYPE)
    }
    pub fn manifest_as(repo: &Repository, d: &Digest, media_type: &'static str) -> Key {
        Key::new(format!("oci/manifests/{repo}/{d}"), manifest_kind(media_type))
    }
    pub fn tag(repo: &Repository, tag: &str) -> Key {
        Key::new(format!("{}{tag}", tags_prefix(repo)), TAG)
    }
    pub fn tags_prefix(repo: &Repository) -> String {
        format!("oci/tags/{repo}/")
    }
    pub fn referrers_prefix(repo: &Repository, subject: &Digest) -> String {
        format!("oci/referrers/{repo}/{}/", subject.key_part())
    }
    /// Zero bytes listing `d` among `subject`'s referrers; its custom metadata holds what the
    /// referrers API answers.
    pub fn referrer(repo: &Repository, subject: &Digest, d: &Digest) -> Key {
        Key::new(format!("{}{}", referrers_prefix(repo, subject), d.key_part()), MARKER)
    }
    pub const REPOSITORIES: &str = "oci/repositories/";
    /// Zero bytes saying the repository is hosted here; its owners are in its custom metadata.
    pub fn repository(repo: &Repository) -> Key {
        Key::new(format!("{REPOSITORIES}{repo}"), MARKER)
    }
    /// The pull-through cache's copies (`repo` is a validated repository name). Blobs are
    /// shared by digest; a repository may serve one only through its link.
    pub fn cached_blob(d: &Digest) -> Key {
        Key::new(format!("oci/cache/blobs/{}/{}", d.algorithm().name(), d.hex()), BLOB)
    }
    pub fn cached_link(repo: &str, d: &Digest) -> Key {
        Key::new(format!("{}{}", cache_prefix("links", repo), d.key_part()), MARKER)
    }
    /// A cached manifest; it keeps the media type its upstream served it as.
    pub fn cached_manifest(repo: &str, d: &Digest) -> Key {
        Key::new(format!("{}{}", cache_prefix("manifests", repo), d.key_part()), manifest_kind(crate::oci::MANIFEST_MEDIA_TYPE))
    }
    /// The cache entry of a tag: which digest it pointed to, when, from which upstream.
    pub fn cached_tag_entry(repo: &str, tag: &str) -> Key {
        Key::new(format!("{}{tag}.entry.json", cache_prefix("tags", repo)), JSON_RECORD)
    }
    /// Where the cache keeps one `kind` (`tags`, `manifests`, `links`) of `repo`'s objects.
    pub fn cache_prefix(kind: &str, repo: &str) -> String {
        format!("oci/cache/{kind}/{repo}/")
    }
    pub fn upload_tail(upload: &str, n: u64) -> Key {
        Key::new(format!("oci/uploads/{upload}/tail-{n}"), UPLOAD_DATA)
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
        let repo = Repository::parse("library/nginx").unwrap();
        assert_eq!((repo.as_str(), repo.scope("pull,push").as_str()), ("library/nginx", "repository:library/nginx:pull,push"));
        assert!(Repository::parse("a//b").is_none() && Repository::parse("").is_none());
    }

    #[test]
    fn keys_keep_their_strings_and_say_their_kind() {
        use crate::storage::key::MARKER;
        let repo = Repository::parse("a/b").unwrap();
        let d = Digest::of(b"");
        let d512 = Algorithm::Sha512.digest(b"");
        let manifest = keys::manifest_as(&repo, &d, crate::oci::INDEX_MEDIA_TYPE);
        assert_eq!(manifest.path, format!("oci/manifests/a/b/{d}"));
        assert_eq!(manifest.kind.content_type, crate::oci::INDEX_MEDIA_TYPE);
        assert_eq!(keys::manifest(&repo, &d).kind.content_type, crate::oci::MANIFEST_MEDIA_TYPE);
        assert_eq!(keys::tag(&repo, "v1").path, "oci/tags/a/b/v1");
        assert_eq!(keys::tags_prefix(&repo), "oci/tags/a/b/");
        let referrer = keys::referrer(&repo, &d, &d512);
        assert_eq!(referrer.path, format!("oci/referrers/a/b/{}/{d512}", d.hex()));
        assert_eq!(keys::repository(&repo).path, "oci/repositories/a/b");
        assert_eq!(keys::blob_data("u1").path, "oci/blob-data/u1");
        assert_eq!(keys::upload_tail("u1", 3).path, "oci/uploads/u1/tail-3");
        assert_eq!((keys::link(&repo, &d).kind, referrer.kind, keys::repository(&repo).kind), (MARKER, MARKER, MARKER));
        // Blobs answer requests that carry credentials: never `public` (RFC 9111 §3.5).
        assert_eq!(keys::blob(&d).kind, keys::BLOB);
        assert!(!keys::BLOB.cache_control.contains("public") && keys::BLOB.cache_control.contains("max-age"));
    }

    #[test]
    fn tags_and_digests() {
        assert!(valid_tag("latest") && valid_tag("v1.2.3-rc_1") && valid_tag("_x"));
        assert!(!valid_tag("") && !valid_tag(".x") && !valid_tag("a/b") && !valid_tag(&"a".repeat(129)));
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_some());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_none());
        assert!(Digest::parse("sha256:abc").is_none());
        let d512 = Digest::parse(&format!("sha512:{}", "a".repeat(128))).unwrap();
        assert_eq!((d512.algorithm(), d512.hex().len(), d512.raw().len()), (Algorithm::Sha512, 128, 64));
        assert_eq!(Digest::check(&format!("sha512:{}", "a".repeat(64))), Err(DigestError::Malformed));
        assert_eq!(Digest::check(&format!("sha384:{}", "a".repeat(96))), Err(DigestError::Unsupported));
        assert_eq!(Digest::check("blake3+x.y:abc="), Err(DigestError::Unsupported));
        assert_eq!(Digest::check("Sha256:abc"), Err(DigestError::Malformed));
        assert_eq!(Digest::check("sha256:"), Err(DigestError::Malformed));
        assert_eq!(Digest::check("sha256"), Err(DigestError::Malformed));
        assert_eq!(Digest::from_key_part(&d512.key_part()), Some(d512.clone()));
        let d256 = Digest::of(b"");
        assert_eq!(Digest::from_key_part(&d256.key_part()), Some(d256.clone()));
        let ab = Repository::parse("a/b").unwrap();
        assert_eq!(keys::blob(&d256).path, format!("oci/blobs/sha256/{}", d256.hex()));
        assert_eq!(keys::link(&ab, &d256).path, format!("oci/links/a/b/{}", d256.hex()));
        assert_eq!(keys::link(&ab, &d512).path, format!("oci/links/a/b/{d512}"));
        assert_eq!(keys::blob(&d512).path, format!("oci/blobs/sha512/{}", "a".repeat(128)));
        assert_eq!(
            Algorithm::Sha512.digest(b"abc").to_string(),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        // A hash saved between requests resumes exactly.
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut h = Hasher::new(alg);
            h.update(b"ab");
            let mut resumed = Hasher::restore(alg, &h.save()).unwrap();
            resumed.update(b"c");
            assert_eq!(resumed.finish(), alg.digest(b"abc"));
            assert!(Hasher::restore(alg, "00").is_none());
        }
        assert_eq!(Digest::of(b"").hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
