//! npm package names, versions and where they live in the object store.

/// Characters `encodeURIComponent` leaves alone: what npm allows in a name part.
fn url_safe(part: &str) -> bool {
    part.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'!' | b'\'' | b'(' | b')' | b'*'))
}

fn valid_part(part: &str) -> bool {
    !part.is_empty() && !part.starts_with('.') && !part.starts_with('_') && url_safe(part)
}

/// A validated package name, `name` or `@scope/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageName(String);

impl PackageName {
    /// Names as `validate-npm-package-name` accepts them for new packages; `legacy` also lets
    /// old mixed-case names through (for reading, never for publishing).
    pub fn parse(name: &str, legacy: bool) -> Option<PackageName> {
        if name.is_empty() || name.len() > 214 || name.trim() != name {
            return None;
        }
        if !legacy && name.to_lowercase() != name {
            return None;
        }
        let ok = match name.strip_prefix('@') {
            Some(scoped) => {
                let (scope, pkg) = scoped.split_once('/')?;
                valid_part(scope) && valid_part(pkg)
            }
            None => valid_part(name) && !matches!(name, "node_modules" | "favicon.ico"),
        };
        ok.then(|| PackageName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without its scope: tarballs are `{basename}-{version}.tgz`.
    pub fn basename(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// `@scope%2fname` as npm puts scoped names in URLs.
    pub fn escaped(&self) -> String {
        self.0.replacen('/', "%2f", 1)
    }

    pub fn tarball_filename(&self, version: &str) -> String {
        format!("{}-{}.tgz", self.basename(), version)
    }

    /// Where everything hosted for this package lives (the packument and its tarballs).
    pub fn key_prefix(&self) -> String {
        format!("{}{}/", keys::PACKAGES, self.0)
    }

    /// The token scope granting `action` on this package: `npm:package:{name}:{action}`.
    pub fn scope(&self, action: crate::auth::Action) -> String {
        format!("npm:package:{}:{}", self.0, action.as_str())
    }

    /// The lock (Durable Object name) serialising changes to this package.
    pub fn lock(&self) -> String {
        format!("npm:{}", self.0)
    }

    /// The version a tarball filename names, if it is one of this package's.
    pub fn version_of_tarball<'a>(&self, filename: &'a str) -> Option<&'a str> {
        let v = filename
            .strip_prefix(self.basename())?
            .strip_prefix('-')?
            .strip_suffix(".tgz")?;
        valid_version(v).then_some(v)
    }
}

/// Where hosted npm objects live and what kind of object each key holds, so handlers and
/// jobs never spell a key or its content type and `Cache-Control` themselves.
pub mod keys {
    use super::PackageName;
    use crate::storage::key::{Key, ObjectKind, ARTIFACT, JSON_DOCUMENT, JSON_RECORD, MARKER};

    pub const PACKAGES: &str = "npm/packages/";
    /// Listing this prefix is the search index (one marker per hosted package).
    pub const SEARCH_PREFIX: &str = "npm/search/";

    /// The packument: mutable JSON that clients revalidate on every use.
    pub const PACKUMENT: ObjectKind = JSON_DOCUMENT;
    /// A version's tarball: its version number is never reused, so it never changes.
    pub const TARBALL: ObjectKind = ARTIFACT;
    /// A zero-byte object whose custom metadata is the package's search summary.
    pub const SEARCH_MARKER: ObjectKind = MARKER;

    pub fn packument(name: &PackageName) -> Key {
        Key::new(format!("{}index.json", name.key_prefix()), PACKUMENT)
    }

    pub fn tarball(name: &PackageName, filename: &str) -> Key {
        Key::new(format!("{}{filename}", name.key_prefix()), TARBALL)
    }

    pub fn search_marker(name: &PackageName) -> Key {
        Key::new(format!("{SEARCH_PREFIX}{name}"), SEARCH_MARKER)
    }

    /// Everything the pull-through cache keeps for a package lives under this prefix (its
    /// purge removes the prefix).
    pub fn cache_prefix(name: &PackageName) -> String {
        format!("npm/cache/{name}/")
    }

    /// The cache entry (freshness, validators, where the data is) of one packument variant
    /// (`full`, `abbreviated`).
    pub fn cache_entry(name: &PackageName, variant: &str) -> Key {
        Key::new(format!("{}{variant}.entry.json", cache_prefix(name)), JSON_RECORD)
    }

    /// Where the cached data of a packument variant is written (one object per refresh).
    pub fn cache_data_prefix(name: &PackageName, variant: &str) -> String {
        format!("{}{variant}", cache_prefix(name))
    }

    /// Which upstream served the package's tarballs, with their checksums.
    pub fn cache_dist_index(name: &PackageName) -> Key {
        Key::new(format!("{}dist.json", cache_prefix(name)), JSON_RECORD)
    }

    /// A tarball kept by the pull-through cache.
    pub fn cached_tarball(name: &PackageName, filename: &str) -> Key {
        Key::new(format!("{}-/{filename}", cache_prefix(name)), TARBALL)
    }
}

impl std::fmt::Display for PackageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Strict semver, as the registry requires for published versions.
pub fn valid_version(v: &str) -> bool {
    v.len() <= 256 && semver::Version::parse(v).is_ok()
}

/// Dist-tags may not look like versions or ranges (npm refuses them), nor hold odd characters.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && url_safe(tag)
        && semver::VersionReq::parse(tag).is_err()
        && semver::Version::parse(tag.trim_start_matches('v')).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_npm_names_and_refuses_the_rest() {
        for ok in ["left-pad", "@scope/pkg", "a.b_c~d", "x", "@s/x.y"] {
            assert!(PackageName::parse(ok, false).is_some(), "{ok}");
        }
        for bad in [
            "", ".hidden", "_private", "../etc", "@scope/../x", "@../x", "a/b", "@scope", "@scope/",
            "Upper", "sp ace", " lead", "node_modules", "a%2fb", "@s/x/y", "ü",
        ] {
            assert!(PackageName::parse(bad, false).is_none(), "{bad}");
        }
        assert!(PackageName::parse("JSONStream", true).is_some());
        assert!(PackageName::parse(&"a".repeat(215), false).is_none());
    }

    #[test]
    fn keys_and_filenames() {
        let n = PackageName::parse("@scope/pkg", false).unwrap();
        assert_eq!(keys::packument(&n).path, "npm/packages/@scope/pkg/index.json");
        assert_eq!(n.tarball_filename("1.0.0"), "pkg-1.0.0.tgz");
        assert_eq!(n.escaped(), "@scope%2fpkg");
        assert_eq!(n.version_of_tarball("pkg-1.0.0-beta.1.tgz"), Some("1.0.0-beta.1"));
        assert_eq!(n.version_of_tarball("pkg-../../x.tgz"), None);
        assert_eq!(n.version_of_tarball("other-1.0.0.tgz"), None);
    }

    #[test]
    fn keys_carry_their_kind_and_stay_under_the_package() {
        let n = PackageName::parse("@scope/pkg", false).unwrap();
        let tarball = keys::tarball(&n, &n.tarball_filename("1.0.0"));
        assert_eq!(tarball.path, "npm/packages/@scope/pkg/pkg-1.0.0.tgz");
        assert_eq!(tarball.kind.cache_control, crate::storage::key::cache_control::IMMUTABLE);
        assert_eq!(keys::packument(&n).kind.cache_control, crate::storage::key::cache_control::REVALIDATE);
        assert!(keys::packument(&n).path.starts_with(&n.key_prefix()) && tarball.path.starts_with(&n.key_prefix()));
        assert_eq!(keys::search_marker(&n).path, "npm/search/@scope/pkg");
        assert_eq!(n.scope(crate::auth::Action::Write), "npm:package:@scope/pkg:write");
    }

    #[test]
    fn tags_must_not_look_like_versions() {
        assert!(valid_tag("latest"));
        assert!(valid_tag("next"));
        assert!(!valid_tag("1.0.0"));
        assert!(!valid_tag("v1.2.3"));
        assert!(!valid_tag("^1"));
        assert!(!valid_tag("a/b"));
    }
}
