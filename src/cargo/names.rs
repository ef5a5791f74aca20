//! Crate names and versions as crates.io and cargo treat them.
//!
//! A crate is published under a name spelled as its author wrote it (the Cargo book,
//! "Registry Web API", publish); the index file and storage keys use the lower-cased name
//! (the Cargo book, "Registry Index", index files), and crates.io refuses a name that differs
//! from an existing one only in case or in `-` versus `_` (`canonical`).

/// Longest crate name crates.io accepts (crates.io's `MAX_NAME_LENGTH`).
pub const MAX_NAME_LEN: usize = 64;

/// Longest version string accepted: far more than any real version needs, short enough to
/// keep keys and index lines small.
pub const MAX_VERSION_LEN: usize = 256;

/// File names Windows reserves in every directory (cargo's `restricted_names::is_windows_reserved`):
/// a crate so named could not be unpacked there.
const WINDOWS_RESERVED: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9", "lpt1", "lpt2", "lpt3", "lpt4",
    "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// A valid crate name, spelled as published (case kept).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CrateName(String);

impl CrateName {
    /// A name as crates.io accepts it: ASCII letters, digits, `-` and `_`, starting with a
    /// letter, 1 to 64 characters, not a name Windows reserves. Only these characters can
    /// ever reach a key or a URL path, so a valid name never traverses into another key.
    pub fn parse(s: &str) -> Option<CrateName> {
        let mut chars = s.chars();
        let first = chars.next()?;
        let valid = s.len() <= MAX_NAME_LEN
            && first.is_ascii_alphabetic()
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !WINDOWS_RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s));
        valid.then(|| CrateName(s.to_owned()))
    }

    /// The name as published.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased name: the index file's name and the storage key.
    pub fn lower(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// Lower case with `-` for `_`: two names clash when their canonical forms are equal
    /// (crates.io refuses `Foo_bar` when `foo-bar` exists).
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase().replace('_', "-")
    }

    /// The index file's path (the Cargo book, "Registry Index", index files): `1/{n}`,
    /// `2/{n}`, `3/{first char}/{n}`, else `{chars 1-2}/{chars 3-4}/{n}`, all lower-cased.
    pub fn index_path(&self) -> String {
        let lower = self.lower();
        format!("{}/{lower}", prefix(&lower))
    }
}

impl std::fmt::Display for CrateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The directories before the file name in an index path, for a name of ASCII characters
/// (the `{prefix}` marker of `dl` in the Cargo book, "Registry Index", config.json): `1`,
/// `2`, `3/{c}`, `{c1c2}/{c3c4}`. Case is kept: callers lower-case when they need to.
pub fn prefix(name: &str) -> String {
    let head = |n: usize| name.get(..n).unwrap_or_default();
    match name.len() {
        1 => "1".to_owned(),
        2 => "2".to_owned(),
        3 => format!("3/{}", head(1)),
        _ => format!("{}/{}", head(2), name.get(2..4).unwrap_or_default()),
    }
}

/// The crate name an index request path (after the base path, e.g. `se/rd/serde`) names,
/// when it has cargo's shape exactly: the prefix directories match the name and everything is
/// lower case (cargo always asks for the lower-cased path). Else `None`.
pub fn name_from_index_path(path: &str) -> Option<CrateName> {
    let file = path.rsplit('/').next()?;
    let name = CrateName::parse(file)?;
    (name.as_str() == name.lower() && name.index_path() == path).then_some(name)
}

/// Whether `v` is a version cargo accepts: semver 2.0.0 (semver.org), at most
/// `MAX_VERSION_LEN` bytes.
pub fn valid_version(v: &str) -> bool {
    v.len() <= MAX_VERSION_LEN && semver::Version::parse(v).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths() {
        let path = |n: &str| CrateName::parse(n).unwrap().index_path();
        assert_eq!(path("a"), "1/a");
        assert_eq!(path("AB"), "2/ab");
        assert_eq!(path("Abc"), "3/a/abc");
        assert_eq!(path("serde"), "se/rd/serde");
        assert_eq!(path("Serde_Json"), "se/rd/serde_json");
        assert_eq!(name_from_index_path("se/rd/serde").unwrap().as_str(), "serde");
        assert!(name_from_index_path("se/rd/Serde").is_none());
        assert!(name_from_index_path("xx/rd/serde").is_none());
        assert!(name_from_index_path("3/b/abc").is_none());
        assert!(name_from_index_path("../se/rd/serde").is_none());
    }
}
