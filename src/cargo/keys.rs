//! Where hosted Cargo objects live in the object store and what kind of object each key
//! holds. Crates are keyed by their canonical name (`CrateName::canonical`: lower case, `-`
//! for `_`), since crates.io treats names that differ only there as one crate; index files by
//! the lower-cased name cargo asks for (Cargo book, "Registry Index": "Index files").

use super::names::CrateName;
use crate::storage::key::{cache_control, Key, ObjectKind, JSON_RECORD, MARKER};

pub const CRATES: &str = "cargo/crates/";
pub const INDEX: &str = "cargo/index/";
/// Listing this prefix is the search: one marker per hosted crate, with its name, highest
/// version and description in custom metadata.
pub const SEARCH_PREFIX: &str = "cargo/search/";

/// An index file: one JSON line per version, changed by publish and yank (revalidated).
pub const INDEX_FILE: ObjectKind = ObjectKind::new("text/plain; charset=utf-8", cache_control::REVALIDATE);
/// A `.crate` (a gzipped tarball): a version is never published twice, so it never changes.
pub const CRATE_FILE: ObjectKind = ObjectKind::new("application/gzip", cache_control::IMMUTABLE);

/// Everything hosted for a crate but its index file and search marker.
pub fn crate_prefix(name: &CrateName) -> String {
    format!("{CRATES}{}/", name.canonical())
}

/// The crate record (owners, versions and where their files are): internal.
pub fn record(name: &CrateName) -> Key {
    Key::new(format!("{}record.json", crate_prefix(name)), JSON_RECORD)
}

pub fn index_file(name: &CrateName) -> Key {
    Key::new(format!("{INDEX}{}", name.lower()), INDEX_FILE)
}

/// The `.crate` of one publish, under an id of its own: R2 multipart uploads have no
/// create-only condition, so two racing publishes of a version never write one object.
pub fn crate_file(name: &CrateName, publish_id: &str, version: &str) -> Key {
    Key::new(format!("{}files/{publish_id}/{}-{version}.crate", crate_prefix(name), name.lower()), CRATE_FILE)
}

pub fn search_marker(name: &CrateName) -> Key {
    Key::new(format!("{SEARCH_PREFIX}{}", name.lower()), MARKER)
}

/// A publish id as stored in the record: 32 lower-case hex digits (`util::random_hex`).
pub fn valid_publish_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_under_the_crate() {
        let n = CrateName::parse("Serde_Json").unwrap();
        assert_eq!(record(&n).path, "cargo/crates/serde-json/record.json");
        assert_eq!(index_file(&n).path, "cargo/index/serde_json");
        let f = crate_file(&n, "0123456789abcdef0123456789abcdef", "1.0.0+build");
        assert_eq!(f.path, "cargo/crates/serde-json/files/0123456789abcdef0123456789abcdef/serde_json-1.0.0+build.crate");
        assert!(f.path.starts_with(&crate_prefix(&n)));
        assert_eq!(search_marker(&n).path, "cargo/search/serde_json");
        assert!(valid_publish_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_publish_id("../0123456789abcdef0123456789abc"));
    }
}
