//! PyPI project names and where hosted PyPI objects live in the object store.
//!
//! A project is known by its normalised name (PEP 503: lower case, runs of `-`, `_` and `.`
//! become one `-`), which is also its only spelling in keys, scopes, locks and URLs: `Foo.Bar`
//! and `foo-bar` are one project.

use super::filename::{normalize, valid_project_name};

/// Longest project name accepted (pypi.org has no documented limit; the longest names on it
/// are well under this).
const MAX_NAME_BYTES: usize = 200;

/// A valid project name, held normalised.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProjectName(String);

impl ProjectName {
    /// A name as written by a client or in a URL: valid per packaging.python.org "Names and
    /// normalization" (ASCII letters and digits, with `.`, `_`, `-` inside), then normalised.
    pub fn parse(raw: &str) -> Option<ProjectName> {
        (raw.len() <= MAX_NAME_BYTES && valid_project_name(raw)).then(|| ProjectName(normalize(raw)))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `raw` is already this name's normalised spelling (else the simple API
    /// redirects to it).
    pub fn is_spelled(&self, raw: &str) -> bool {
        self.0 == raw
    }

    /// The token scope granting `action` on this project: `pypi:package:{name}:{action}`.
    pub fn scope(&self, action: crate::auth::Action) -> String {
        format!("pypi:package:{}:{}", self.0, action.as_str())
    }

    /// The lock (Durable Object name) serialising changes to this project's record.
    pub fn lock(&self) -> String {
        format!("pypi:{}", self.0)
    }

    /// Where everything hosted for this project lives (its record, files and metadata).
    pub fn key_prefix(&self) -> String {
        format!("{}{}/", keys::PACKAGES, self.0)
    }
}

impl std::fmt::Display for ProjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An upload's own id: every uploaded file is stored under a key no other upload uses, so
/// a concurrent upload of the same filename can never overwrite the bytes the record serves
/// (R2 multipart uploads have no create-only condition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadId(String);

impl UploadId {
    pub fn random() -> UploadId {
        UploadId(crate::util::random_hex())
    }

    /// An id as it appears in a file URL: 32 lower-case hex digits, nothing else.
    pub fn parse(s: &str) -> Option<UploadId> {
        (s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then(|| UploadId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where hosted PyPI objects live and what kind of object each key holds.
pub mod keys {
    use super::{ProjectName, UploadId};
    use crate::storage::key::{Key, ObjectKind, ARTIFACT, JSON_RECORD, MARKER};

    pub const PACKAGES: &str = "pypi/packages/";
    /// Listing this prefix is the root index of the simple API: one marker per hosted
    /// project, its display name in custom metadata.
    pub const INDEX_PREFIX: &str = "pypi/index/";

    /// The project record (releases, files, owners): internal, served only as rendered pages.
    pub const PROJECT: ObjectKind = JSON_RECORD;
    /// A distribution file: a filename is never reused (as on pypi.org), so it never changes.
    pub const FILE: ObjectKind = ARTIFACT;
    /// A wheel's core metadata (PEP 658), immutable like its file.
    pub const METADATA: ObjectKind = ObjectKind::new("text/plain; charset=utf-8", crate::storage::key::cache_control::IMMUTABLE);
    pub const INDEX_MARKER: ObjectKind = MARKER;

    pub fn project(name: &ProjectName) -> Key {
        Key::new(format!("{}project.json", name.key_prefix()), PROJECT)
    }

    /// A file of one upload. `filename` must have passed `filename::parse` (no separators).
    pub fn file(name: &ProjectName, id: &UploadId, filename: &str) -> Key {
        Key::new(format!("{}files/{}/{filename}", name.key_prefix(), id.as_str()), FILE)
    }

    /// The PEP 658 metadata file of the file stored under `file`.
    pub fn metadata(file: &Key) -> Key {
        Key::new(format!("{}.metadata", file.path), METADATA)
    }

    pub fn index_marker(name: &ProjectName) -> Key {
        Key::new(format!("{INDEX_PREFIX}{name}"), INDEX_MARKER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_normalised() {
        let n = ProjectName::parse("Foo.Bar__baz").unwrap();
        assert_eq!(n.as_str(), "foo-bar-baz");
        assert!(!n.is_spelled("Foo.Bar__baz"));
        assert!(n.is_spelled("foo-bar-baz"));
        for bad in ["", "..", "../etc", "a/b", "-a", "a-", ".a", "a b", "ü", "a%2fb"] {
            assert!(ProjectName::parse(bad).is_none(), "{bad}");
        }
        assert!(ProjectName::parse(&"a".repeat(201)).is_none());
    }

    #[test]
    fn keys_stay_under_the_project() {
        let n = ProjectName::parse("My_Pkg").unwrap();
        let id = UploadId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let file = keys::file(&n, &id, "my_pkg-1.0-py3-none-any.whl");
        assert_eq!(file.path, "pypi/packages/my-pkg/files/0123456789abcdef0123456789abcdef/my_pkg-1.0-py3-none-any.whl");
        assert_eq!(keys::metadata(&file).path, format!("{}.metadata", file.path));
        assert_eq!(keys::project(&n).path, "pypi/packages/my-pkg/project.json");
        assert!(file.path.starts_with(&n.key_prefix()) && keys::project(&n).path.starts_with(&n.key_prefix()));
        assert_eq!(keys::index_marker(&n).path, "pypi/index/my-pkg");
        assert_eq!(n.scope(crate::auth::Action::Write), "pypi:package:my-pkg:write");
        assert!(UploadId::parse("../x").is_none() && UploadId::parse("0123456789ABCDEF0123456789abcdef").is_none());
    }
}
