//! Lines of the sparse index (the Cargo book, "Registry Index", index files): one JSON
//! object per version of a crate, one per line, in the order published.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use super::names::prefix;
use super::publish::{is_false, yes, PublishMetadata};

/// One version of a crate in the index. Fields in the order crates.io writes them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct IndexLine {
    pub name: String,
    pub vers: String,
    #[serde(default)]
    pub deps: Vec<IndexDep>,
    /// SHA-256 of the `.crate` file, lower-case hex.
    pub cksum: String,
    #[serde(default)]
    pub features: BTreeMap<String, Vec<String>>,
    /// Features using `dep:` or `?/` (cargo 1.60+), kept apart so older cargo, which cannot
    /// read them, skips only these (the Cargo book, "Registry Index", `features2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features2: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub yanked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rust_version: Option<String>,
    /// When the version was published (RFC 3339, e.g. `2025-09-27T16:51:35Z`), as crates.io
    /// writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubtime: Option<String>,
    /// The schema version: 2 when `features2` is present; absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u32>,
}

/// One dependency of an index line.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct IndexDep {
    /// The name the depending crate uses (its alias when renamed: see `package`).
    pub name: String,
    pub req: String,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub optional: bool,
    #[serde(default = "yes")]
    pub default_features: bool,
    #[serde(default)]
    pub target: Option<String>,
    /// `normal`, `dev` or `build`; absent means `normal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The index URL of the dependency's registry; absent or null: this registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The real crate name when `name` is an alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindep_target: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub lib: bool,
}

/// The index line for a publish, as crates.io writes it: `version_req` becomes `req`; a
/// renamed dependency (`explicit_name_in_toml`) is listed under its alias with the real name
/// in `package`; features using `dep:` or `?/`, and those enabling them, go to `features2`
/// with `v: 2`; dependencies
/// sorted by name, then kind, then target.
///
/// `registry` passes through as cargo sent it: cargo already writes it the way the index
/// wants it for the registry it publishes to (null for a dependency from this registry, the
/// index URL otherwise, `https://github.com/rust-lang/crates.io-index` for crates.io).
pub fn line_for(meta: &PublishMetadata, cksum_hex: &str) -> IndexLine {
    let mut deps: Vec<IndexDep> = meta
        .deps
        .iter()
        .map(|d| {
            let (name, package) = match &d.explicit_name_in_toml {
                Some(alias) => (alias.clone(), Some(d.name.clone())),
                None => (d.name.clone(), None),
            };
            IndexDep {
                name,
                req: d.version_req.clone(),
                features: d.features.clone(),
                optional: d.optional,
                default_features: d.default_features,
                target: d.target.clone(),
                kind: Some(d.kind.clone().unwrap_or_else(|| "normal".to_owned())),
                registry: d.registry.clone(),
                package,
                artifact: d.artifact.clone(),
                bindep_target: d.bindep_target.clone(),
                lib: d.lib,
            }
        })
        .collect();
    deps.sort_by(|a, b| (&a.name, kind_rank(&a.kind), &a.target).cmp(&(&b.name, kind_rank(&b.kind), &b.target)));
    let newer = needs_features2(&meta.features);
    let (features2, features): (BTreeMap<_, _>, BTreeMap<_, _>) = meta.features.clone().into_iter().partition(|(name, _)| newer.contains(name.as_str()));
    let (features2, v) = if features2.is_empty() { (None, None) } else { (Some(features2), Some(2)) };
    IndexLine {
        name: meta.name.clone(),
        vers: meta.vers.clone(),
        deps,
        cksum: cksum_hex.to_owned(),
        features,
        features2,
        yanked: false,
        links: meta.links.clone(),
        rust_version: meta.rust_version.clone(),
        v,
        pubtime: None,
    }
}

/// The features that must go to `features2`: those using `dep:` or `?/`, and those enabling
/// such a feature, however indirectly (an older cargo reading `features` would otherwise
/// meet a feature it does not know: crates.io moves them too, e.g. reqwest 0.13's
/// `default`, which enables `default-tls`, which enables `dep:` features).
fn needs_features2(features: &BTreeMap<String, Vec<String>>) -> BTreeSet<&str> {
    // Who enables each feature: walked backwards from the features using the new syntax.
    let mut enabled_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, values) in features {
        for value in values.iter().filter(|v| features.contains_key(v.as_str())) {
            enabled_by.entry(value.as_str()).or_default().push(name.as_str());
        }
    }
    let mut todo: Vec<&str> = features
        .iter()
        .filter(|(_, values)| values.iter().any(|v| v.starts_with("dep:") || v.contains("?/")))
        .map(|(name, _)| name.as_str())
        .collect();
    let mut newer = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if newer.insert(name) {
            todo.extend(enabled_by.get(name).into_iter().flatten());
        }
    }
    newer
}

fn kind_rank(kind: &Option<String>) -> u8 {
    match kind.as_deref() {
        None | Some("normal") => 0,
        Some("build") => 1,
        _ => 2,
    }
}

/// The line as compact JSON: no newline inside, none at the end (the caller joins lines).
pub fn to_json_line(line: &IndexLine) -> String {
    // Serialising plain strings, maps and numbers cannot fail.
    serde_json::to_string(line).unwrap_or_default()
}

/// `file` with `line` appended, every line ending in `\n` (as crates.io writes index files).
pub fn append_line(file: &[u8], line: &IndexLine) -> Vec<u8> {
    let json = to_json_line(line);
    let mut out = Vec::with_capacity(file.len() + json.len() + 2);
    out.extend_from_slice(file);
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(json.as_bytes());
    out.push(b'\n');
    out
}

/// The non-empty lines of an index file.
fn lines(file: &[u8]) -> impl Iterator<Item = &[u8]> {
    file.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace))
}

/// Just the version of a line, read without the rest.
#[derive(Deserialize)]
struct Vers<'a> {
    #[serde(borrow)]
    vers: std::borrow::Cow<'a, str>,
}

fn vers_of(line: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    serde_json::from_slice::<Vers>(line).ok().map(|v| v.vers)
}

/// Every line of an index file that parses, in file order.
pub fn parse_file(file: &[u8]) -> impl Iterator<Item = IndexLine> + '_ {
    lines(file).filter_map(|l| serde_json::from_slice(l).ok())
}

/// The line of `version` (exactly as written) in an index file.
pub fn find_version(file: &[u8], version: &str) -> Option<IndexLine> {
    let line = lines(file).find(|l| vers_of(l).is_some_and(|v| v == version))?;
    serde_json::from_slice(line).ok()
}

/// The version already in the file that `version` would clash with: semver says versions
/// differing only in build metadata are the same version (semver.org, item 10), and
/// crates.io refuses to publish such a pair. `None` when `version` is not semver or is new.
pub fn conflicting_version(file: &[u8], version: &str) -> Option<String> {
    let wanted = semver::Version::parse(version).ok()?;
    lines(file).filter_map(vers_of).find_map(|v| {
        let have = semver::Version::parse(&v).ok()?;
        (have.major == wanted.major && have.minor == wanted.minor && have.patch == wanted.patch && have.pre == wanted.pre)
            .then(|| v.into_owned())
    })
}

/// The file with `yanked` of `version`'s line set, every other byte kept: the line itself
/// keeps its fields, their order and any field this code does not know. `None` when no line
/// has that version.
pub fn set_yanked(file: &[u8], version: &str, yanked: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(file.len() + 8);
    let mut found = false;
    let mut first = true;
    for line in file.split(|&b| b == b'\n') {
        if !first {
            out.push(b'\n');
        }
        first = false;
        if !found && vers_of(line).is_some_and(|v| v == version) {
            found = true;
            let mut value: serde_json::Value = serde_json::from_slice(line).ok()?;
            let object = value.as_object_mut()?;
            if object.get("yanked").and_then(serde_json::Value::as_bool) == Some(yanked) {
                out.extend_from_slice(line);
            } else {
                object.insert("yanked".to_owned(), serde_json::Value::Bool(yanked));
                out.extend_from_slice(serde_json::to_string(&value).ok()?.as_bytes());
            }
        } else {
            out.extend_from_slice(line);
        }
    }
    found.then_some(out)
}

/// The URL of a `.crate` file from the `dl` of a registry's `config.json` (the Cargo book,
/// "Registry Index", index configuration): the markers `{crate}`, `{version}`, `{prefix}`,
/// `{lowerprefix}` and `{sha256-checksum}` are replaced; without any of them,
/// `/{crate}/{version}/download` is appended, as cargo does.
pub fn download_url(dl: &str, name: &str, version: &str, cksum_hex: &str) -> String {
    const MARKERS: [&str; 5] = ["{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}"];
    if !MARKERS.iter().any(|m| dl.contains(m)) {
        return format!("{dl}/{name}/{version}/download");
    }
    let prefix = prefix(name);
    dl.replace("{crate}", name)
        .replace("{version}", version)
        .replace("{prefix}", &prefix)
        .replace("{lowerprefix}", &prefix.to_ascii_lowercase())
        .replace("{sha256-checksum}", cksum_hex)
}

/// A registry's `config.json` at the root of its index (the Cargo book, "Registry Index",
/// index configuration): where crates are downloaded from, the web API, and whether every
/// request needs a token (`auth-required`, cargo 1.74+).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RegistryConfig {
    pub dl: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(rename = "auth-required", default, skip_serializing_if = "is_false")]
    pub auth_required: bool,
}

impl RegistryConfig {
    /// This registry's own: crates downloaded through its web API, as crates.io's
    /// `https://crates.io/api/v1/crates` (`registry` is the public URL of the base path,
    /// without a trailing `/`).
    pub fn for_registry(registry: &str, auth_required: bool) -> RegistryConfig {
        RegistryConfig { dl: format!("{registry}/api/v1/crates"), api: Some(registry.to_owned()), auth_required }
    }

    /// An upstream's `config.json`, read from its bytes; `None` unless it has a `dl`.
    pub fn parse(bytes: &[u8]) -> Option<RegistryConfig> {
        serde_json::from_slice::<RegistryConfig>(bytes).ok().filter(|c| !c.dl.is_empty())
    }
}
