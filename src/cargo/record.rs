//! The crate record: one JSON object per hosted crate (under its canonical name) holding its
//! owners and where each version's `.crate` is. The index file (`keys::index_file`) is what
//! cargo reads and is the truth about which versions exist; the record serves downloads,
//! owners and search. Only jobs (`jobs.rs`) write either.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One hosted crate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CrateRecord {
    /// The name as its first publish spelled it: a publish under another spelling of the same
    /// canonical name (`foo_bar` for `foo-bar`, `Foo` for `foo`) is refused, as crates.io does.
    pub name: String,
    /// The users who may publish, yank and change owners (Cargo book, "cargo owner").
    #[serde(default)]
    pub owners: Vec<String>,
    /// Counts every change.
    #[serde(default)]
    pub serial: u64,
    /// Versions by their `vers` as published.
    #[serde(default)]
    pub versions: BTreeMap<String, VersionRecord>,
    /// The description of the latest publish (shown by `cargo search`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One published version.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VersionRecord {
    /// The publish id its `.crate` lives under (`keys::crate_file`).
    pub id: String,
    /// sha256 of the `.crate`, hex (the index line's `cksum`).
    pub cksum: String,
    pub size: u64,
    #[serde(default)]
    pub yanked: bool,
    #[serde(default)]
    pub published_by: String,
    /// RFC 3339 UTC.
    #[serde(default)]
    pub published_at: String,
}

/// Two versions are one when they are equal ignoring build metadata (semver 2.0.0 §10:
/// build metadata does not take part in precedence; crates.io refuses `1.0.0+b` after
/// `1.0.0+a`).
pub fn same_version(a: &str, b: &str) -> bool {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(mut a), Ok(mut b)) => {
            a.build = semver::BuildMetadata::EMPTY;
            b.build = semver::BuildMetadata::EMPTY;
            a == b
        }
        _ => a == b,
    }
}

impl CrateRecord {
    /// The published version equal to `version` (ignoring build metadata), with its record.
    pub fn find(&self, version: &str) -> Option<(&String, &VersionRecord)> {
        self.versions.get_key_value(version).or_else(|| self.versions.iter().find(|(v, _)| same_version(v, version)))
    }

    /// What `cargo search` shows as the version: the highest that is not yanked, else the
    /// highest (semver precedence).
    pub fn max_version(&self) -> Option<&str> {
        let highest = |live: bool| {
            self.versions
                .iter()
                .filter(|(_, r)| !live || !r.yanked)
                .filter_map(|(v, _)| semver::Version::parse(v).ok().map(|p| (p, v)))
                .max_by(|a, b| a.0.cmp_precedence(&b.0).then_with(|| a.1.cmp(b.1)))
                .map(|(_, v)| v.as_str())
        };
        highest(true).or_else(|| highest(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(versions: &[(&str, bool)]) -> CrateRecord {
        let mut r = CrateRecord::default();
        for (v, yanked) in versions {
            r.versions.insert(v.to_string(), VersionRecord { yanked: *yanked, ..Default::default() });
        }
        r
    }

    #[test]
    fn build_metadata_does_not_make_a_new_version() {
        assert!(same_version("1.0.0+a", "1.0.0+b"));
        assert!(same_version("1.0.0", "1.0.0+b"));
        assert!(!same_version("1.0.0", "1.0.1"));
        assert!(!same_version("1.0.0-alpha", "1.0.0"));
        let r = record(&[("1.0.0+a", false)]);
        assert_eq!(r.find("1.0.0").map(|(v, _)| v.as_str()), Some("1.0.0+a"));
        assert!(r.find("1.0.1").is_none());
    }

    #[test]
    fn max_version_is_by_precedence_and_skips_yanked() {
        assert_eq!(record(&[("0.9.0", false), ("0.10.0", false), ("0.10.0-rc.1", false)]).max_version(), Some("0.10.0"));
        assert_eq!(record(&[("1.0.0", false), ("2.0.0", true)]).max_version(), Some("1.0.0"));
        assert_eq!(record(&[("2.0.0", true)]).max_version(), Some("2.0.0"));
        assert_eq!(record(&[]).max_version(), None);
    }
}
