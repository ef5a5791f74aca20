//! The project record: one JSON object per hosted project holding its owners, releases and
//! files. Only jobs (`jobs.rs`) write it; the simple pages and the JSON API are rendered
//! from it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One hosted project.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Project {
    /// The name as its first upload spelled it (shown in pages; keys use the normalised one).
    pub name: String,
    /// The users who may change it (the first uploader; `auth::owners`).
    #[serde(default)]
    pub owners: Vec<String>,
    /// Counts every change, as pypi.org's `last_serial`.
    #[serde(default)]
    pub serial: u64,
    /// Releases by version as first uploaded.
    #[serde(default)]
    pub releases: BTreeMap<String, Release>,
    /// Filenames once uploaded and since deleted: never accepted again (as pypi.org), so a
    /// filename always names the same bytes.
    #[serde(default)]
    pub retired: BTreeSet<String>,
}

/// One version of a project.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Release {
    /// The core metadata of the release's first upload (the form fields of the upload).
    pub metadata: ReleaseMetadata,
    /// PEP 592: yanked, with the reason given (possibly empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked: Option<String>,
    #[serde(default)]
    pub files: Vec<FileRecord>,
}

/// The metadata fields of the legacy upload API (packaging.python.org "Core metadata
/// specifications", sent by twine, uv and poetry as form fields).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReleaseMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintainer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintainer_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_page: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires_dist: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides_extra: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classifiers: Vec<String>,
    /// `Label, URL` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub project_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platform: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic: Vec<String>,
}

impl From<super::metadata::CoreMetadata> for ReleaseMetadata {
    fn from(m: super::metadata::CoreMetadata) -> Self {
        let text = |s: String| (!s.is_empty()).then_some(s);
        ReleaseMetadata {
            metadata_version: text(m.metadata_version),
            summary: m.summary,
            description: m.description,
            description_content_type: m.description_content_type,
            author: m.author,
            author_email: m.author_email,
            maintainer: m.maintainer,
            maintainer_email: m.maintainer_email,
            // An SPDX expression (PEP 639) where there is one, else the free text.
            license: m.license_expression.or(m.license),
            keywords: m.keywords,
            home_page: m.home_page,
            download_url: m.download_url,
            requires_python: m.requires_python,
            requires_dist: m.requires_dist,
            provides_extra: m.provides_extra,
            classifiers: m.classifiers,
            project_urls: m.project_urls,
            platform: m.platforms,
            dynamic: m.dynamic,
        }
    }
}

/// One stored distribution file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileRecord {
    pub filename: String,
    /// The upload id its object lives under (`names::keys::file`).
    pub upload_id: String,
    pub sha256: String,
    pub md5: String,
    pub blake2b_256: String,
    pub size: u64,
    /// RFC 3339 UTC, as PEP 700's `upload-time`.
    pub upload_time: String,
    /// `bdist_wheel` or `sdist`.
    pub filetype: String,
    /// `py3`, `cp312`, … for wheels; `source` for sdists.
    pub pyversion: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    /// sha256 of the PEP 658 metadata file, when one was extracted and stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_metadata_sha256: Option<String>,
    /// Who uploaded it.
    #[serde(default)]
    pub uploader: String,
}

impl Project {
    /// The release key naming the same version as `version` (PEP 440 equivalence as far as
    /// `filename::same_version` goes), if any.
    pub fn release_key(&self, version: &str) -> Option<String> {
        self.releases.keys().find(|v| super::filename::same_version(v, version)).cloned()
    }

    /// Where a file of this name is, if any: (version, index in its files).
    pub fn find_file(&self, filename: &str) -> Option<(String, usize)> {
        self.releases
            .iter()
            .find_map(|(v, r)| r.files.iter().position(|f| f.filename == filename).map(|i| (v.clone(), i)))
    }

    /// Versions in PEP 440 order, lowest first.
    pub fn sorted_versions(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.releases.keys().map(String::as_str).collect();
        v.sort_by(|a, b| VersionKey::of(a).cmp(&VersionKey::of(b)).then(a.cmp(b)));
        v
    }

    /// The version pypi.org's JSON API describes in `info`: the highest that is not yanked
    /// nor a pre-release, else the highest not yanked, else the highest.
    pub fn latest(&self) -> Option<&str> {
        let sorted = self.sorted_versions();
        let live = |v: &&str| self.releases.get(*v).is_some_and(|r| r.yanked.is_none() && !r.files.is_empty());
        sorted
            .iter()
            .rev()
            .find(|v| live(v) && !VersionKey::of(v).pre)
            .or_else(|| sorted.iter().rev().find(|v| live(v)))
            .or(sorted.last())
            .copied()
    }
}

/// An ordering key for PEP 440 versions good enough to pick the latest: the release numbers,
/// then whether it is a pre- or dev-release (those sort below the release), then the rest of
/// the text. Versions that do not parse sort below every parsed one.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct VersionKey {
    parsed: bool,
    epoch: u64,
    release: Vec<u64>,
    /// A final release sorts above its pre-releases: `!pre` compares higher.
    final_release: bool,
    pre: bool,
    tail: String,
}

impl VersionKey {
    fn of(version: &str) -> VersionKey {
        let v = version.trim().to_ascii_lowercase();
        let v = v.strip_prefix('v').unwrap_or(&v);
        let (epoch, rest) = match v.split_once('!') {
            Some((e, r)) => (e.parse().ok(), r),
            None => (Some(0), v),
        };
        let digits_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (numbers, tail) = rest.split_at(digits_end);
        let release: Option<Vec<u64>> = numbers.trim_end_matches('.').split('.').map(|n| n.parse().ok()).collect();
        let mut release = release.unwrap_or_default();
        while release.last() == Some(&0) {
            release.pop();
        }
        let tail = tail.trim_start_matches(['.', '-', '_']).to_string();
        let pre = ["a", "b", "c", "rc", "alpha", "beta", "pre", "preview", "dev"].iter().any(|p| tail.starts_with(p));
        VersionKey {
            parsed: epoch.is_some() && !numbers.is_empty(),
            epoch: epoch.unwrap_or(0),
            release,
            final_release: !pre,
            pre,
            tail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(versions: &[(&str, bool)]) -> Project {
        let mut p = Project::default();
        for (v, yanked) in versions {
            let release = Release {
                yanked: yanked.then(String::new),
                files: vec![FileRecord { filename: format!("p-{v}.tar.gz"), ..Default::default() }],
                ..Default::default()
            };
            p.releases.insert(v.to_string(), release);
        }
        p
    }

    #[test]
    fn versions_sort_as_pep_440_for_the_cases_that_matter() {
        let p = project(&[("1.10", false), ("1.9", false), ("1.10rc1", false), ("2.0.dev1", false), ("0.1", false)]);
        assert_eq!(p.sorted_versions(), vec!["0.1", "1.9", "1.10rc1", "1.10", "2.0.dev1"]);
        assert_eq!(p.latest(), Some("1.10"));
    }

    #[test]
    fn latest_skips_yanked_then_falls_back() {
        assert_eq!(project(&[("1.0", false), ("2.0", true)]).latest(), Some("1.0"));
        assert_eq!(project(&[("1.0b1", false)]).latest(), Some("1.0b1"));
        assert_eq!(project(&[("1.0", true)]).latest(), Some("1.0"));
    }

    #[test]
    fn upload_form_fields_become_the_release_metadata() {
        let form = [("classifiers", "A"), ("classifiers", "B"), ("summary", ""), ("summary", "s"), ("license_expression", "MIT"), ("license", "text"), ("unknown", "x")];
        let m = ReleaseMetadata::from(crate::pypi::metadata::from_upload_form(form));
        assert_eq!(m.classifiers, vec!["A", "B"]);
        assert_eq!(m.summary.as_deref(), Some("s"));
        assert_eq!(m.license.as_deref(), Some("MIT"));
        assert_eq!(m.metadata_version, None);
    }
}
