//! Typed storage keys: where an object lives together with how it is stored and served
//! (content type and `Cache-Control`), so a protocol declares each kind of object once in
//! its `keys` module instead of repeating `format!` strings and headers across handlers.

use std::collections::BTreeMap;

use crate::platform::PutOptions;

/// `Cache-Control` values shared by every protocol.
pub mod cache_control {
    /// Content addressed by its digest or by an immutable version: never changes. Not
    /// `public`: that would let shared caches answer requests carrying `Authorization` with it
    /// (RFC 9111 §3.5), and a private package's tarball must not reach another client.
    pub const IMMUTABLE: &str = "max-age=31536000, immutable";
    /// Mutable metadata (packuments, tags, index files): revalidate on every use.
    pub const REVALIDATE: &str = "no-cache";
    /// Internal records that are never served.
    pub const NONE: &str = "";
}

/// What kind of object a key holds: its content type and how clients may cache it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKind {
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

impl ObjectKind {
    pub const fn new(content_type: &'static str, cache_control: &'static str) -> ObjectKind {
        ObjectKind { content_type, cache_control }
    }
}

/// Opaque bytes that never change (tarballs, blobs, wheels, crates).
pub const ARTIFACT: ObjectKind = ObjectKind::new("application/octet-stream", cache_control::IMMUTABLE);
/// Mutable JSON metadata.
pub const JSON_DOCUMENT: ObjectKind = ObjectKind::new("application/json", cache_control::REVALIDATE);
/// Internal JSON records (cache entries, indexes, owner lists).
pub const JSON_RECORD: ObjectKind = ObjectKind::new("application/json", cache_control::NONE);
/// Zero-byte markers whose existence is the information (links).
pub const MARKER: ObjectKind = ObjectKind::new("application/octet-stream", cache_control::NONE);

/// A storage key and the kind of object under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub path: String,
    pub kind: ObjectKind,
}

impl Key {
    pub fn new(path: impl Into<String>, kind: ObjectKind) -> Key {
        Key { path: path.into(), kind }
    }

    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Options for storing an object under this key, with `custom` metadata.
    pub fn put_options(&self, custom: BTreeMap<String, String>) -> PutOptions {
        PutOptions { content_type: Some(self.kind.content_type.to_string()), custom, ..Default::default() }
    }

    /// `resp` with this kind's `Cache-Control` (when it has one).
    pub fn cache_headers(&self, resp: crate::http::Response) -> crate::http::Response {
        if self.kind.cache_control.is_empty() {
            resp
        } else {
            resp.with_header("Cache-Control", self.kind.cache_control)
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
}

/// A key reads as its path wherever a store takes `&str`.
impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        &self.path
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.path
    }
}
