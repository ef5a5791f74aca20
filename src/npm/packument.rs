//! Packument documents: what is stored, and the full, abbreviated and single-version views
//! served to clients.

use serde_json::{json, Map, Value};

use super::names::PackageName;

/// Fields of a version that the abbreviated (install) packument keeps, as the npm registry does.
const INSTALL_FIELDS: &[&str] = &[
    "name",
    "version",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "_hasShrinkwrap",
    "hasInstallScript",
    "cpu",
    "os",
    "libc",
    "deprecated",
    "funding",
    "license",
];

/// Top-level fields a publish of the new `latest` version refreshes.
pub const PACKAGE_FIELDS: &[&str] = &[
    "description",
    "readme",
    "readmeFilename",
    "keywords",
    "license",
    "homepage",
    "repository",
    "bugs",
    "author",
    "contributors",
];

pub const ABBREVIATED_MEDIA_TYPE: &str = "application/vnd.npm.install-v1+json";

/// Points every version's `dist.tarball` at this registry.
pub fn rewrite_tarballs(doc: &mut Value, name: &PackageName, registry_url: &str) {
    if let Some(versions) = doc.get_mut("versions").and_then(Value::as_object_mut) {
        for (version, v) in versions.iter_mut() {
            set_tarball_url(v, name, version, registry_url);
        }
    }
}

pub fn set_tarball_url(version_doc: &mut Value, name: &PackageName, version: &str, registry_url: &str) {
    let url = format!("{}/{}/-/{}", registry_url, name.as_str(), name.tarball_filename(version));
    if let Some(dist) = version_doc.get_mut("dist").and_then(Value::as_object_mut) {
        dist.insert("tarball".into(), Value::String(url));
    }
}

/// The install view: `name`, `modified`, `dist-tags` and install fields of each version.
pub fn abbreviate(doc: &Value) -> Value {
    let mut versions = Map::new();
    if let Some(all) = doc.get("versions").and_then(Value::as_object) {
        for (v, manifest) in all {
            let mut slim = Map::new();
            if let Some(m) = manifest.as_object() {
                for f in INSTALL_FIELDS {
                    if let Some(val) = m.get(*f) {
                        slim.insert((*f).to_string(), val.clone());
                    }
                }
            }
            versions.insert(v.clone(), Value::Object(slim));
        }
    }
    json!({
        "name": doc.get("name").cloned().unwrap_or(Value::Null),
        "modified": doc.pointer("/time/modified").cloned().unwrap_or(Value::Null),
        "dist-tags": doc.get("dist-tags").cloned().unwrap_or_else(|| json!({})),
        "versions": versions,
    })
}

/// Resolves a version or dist-tag to its version document.
pub fn version_doc<'a>(doc: &'a Value, version_or_tag: &str) -> Option<&'a Value> {
    let versions = doc.get("versions")?;
    versions.get(version_or_tag).or_else(|| {
        let v = doc.get("dist-tags")?.get(version_or_tag)?.as_str()?;
        versions.get(v)
    })
}

/// The highest version, preferring releases over prereleases, among `versions`.
pub fn highest<'a>(versions: impl Iterator<Item = &'a String>) -> Option<String> {
    let mut parsed: Vec<semver::Version> = versions.filter_map(|v| semver::Version::parse(v).ok()).collect();
    parsed.sort();
    parsed
        .iter()
        .rev()
        .find(|v| v.pre.is_empty())
        .or(parsed.last())
        .map(|v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        json!({
            "name": "@s/p",
            "dist-tags": {"latest": "1.0.0", "next": "2.0.0-rc.1"},
            "time": {"modified": "2026-01-01T00:00:00.000Z"},
            "versions": {
                "1.0.0": {"name": "@s/p", "version": "1.0.0", "readme": "long", "scripts": {"test": "x"},
                          "dependencies": {"a": "^1"}, "dist": {"tarball": "old", "shasum": "s"}},
                "2.0.0-rc.1": {"name": "@s/p", "version": "2.0.0-rc.1", "dist": {"tarball": "old"}, "deprecated": "no"}
            }
        })
    }

    #[test]
    fn abbreviated_keeps_install_fields_only() {
        let a = abbreviate(&doc());
        assert_eq!(a["modified"], "2026-01-01T00:00:00.000Z");
        assert_eq!(a["versions"]["1.0.0"]["dependencies"]["a"], "^1");
        assert!(a["versions"]["1.0.0"].get("readme").is_none());
        assert!(a["versions"]["1.0.0"].get("scripts").is_none());
        assert_eq!(a["versions"]["2.0.0-rc.1"]["deprecated"], "no");
    }

    #[test]
    fn tarball_urls_point_at_the_registry() {
        let mut d = doc();
        let n = PackageName::parse("@s/p", false).unwrap();
        rewrite_tarballs(&mut d, &n, "https://r.example/npm");
        assert_eq!(d["versions"]["1.0.0"]["dist"]["tarball"], "https://r.example/npm/@s/p/-/p-1.0.0.tgz");
    }

    #[test]
    fn resolves_tags_and_picks_highest_release() {
        let d = doc();
        assert_eq!(version_doc(&d, "next").unwrap()["version"], "2.0.0-rc.1");
        assert_eq!(version_doc(&d, "1.0.0").unwrap()["version"], "1.0.0");
        assert!(version_doc(&d, "9.9.9").is_none());
        let vs = ["1.0.0".to_string(), "2.0.0-rc.1".to_string(), "1.10.0".to_string()];
        assert_eq!(highest(vs.iter()).unwrap(), "1.10.0");
        let pre = ["2.0.0-rc.1".to_string()];
        assert_eq!(highest(pre.iter()).unwrap(), "2.0.0-rc.1");
    }
}
