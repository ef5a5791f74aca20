//! The body of `PUT /api/v1/crates/new` (the Cargo book, "Registry Web API", publish): a
//! 32-bit little-endian length, that many bytes of JSON metadata, a 32-bit little-endian
//! length, that many bytes of `.crate` file (a gzipped tarball).
//!
//! `FrameParser` is a push parser fed chunks as they arrive: it holds the metadata until it
//! is whole (bounded by `Limits::max_json`), then hands the crate bytes on as they come, so
//! it never holds the crate.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use super::names::{valid_version, CrateName};

/// How large the two parts of a publish body may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of JSON metadata (it carries the README, so a few MiB at most in practice).
    pub max_json: u32,
    /// Bytes of the `.crate` file (crates.io's default cap is 10 MiB).
    pub max_crate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_json: 8 * 1024 * 1024, max_crate: 10 * 1024 * 1024 }
    }
}

/// One step through the body, in the order of the body.
// One `Metadata` per body: its size does not matter, and unboxed it matches by value.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The whole metadata, parsed (not yet validated: see `PublishMetadata::validate`).
    Metadata(PublishMetadata),
    /// The next bytes of the `.crate` file (never empty).
    CrateData(Vec<u8>),
    /// The `.crate` file is complete, and so is the body.
    End,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// The body ended before its declared lengths were met.
    Truncated,
    /// The metadata or the crate exceeds the limits (names which).
    TooLarge(&'static str),
    /// The metadata is not the JSON cargo sends.
    Malformed(String),
    /// Bytes after the end of the crate.
    Trailing,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Truncated => f.write_str("the publish request ended before the lengths it declares (truncated upload?)"),
            PublishError::TooLarge(what) => write!(f, "{what} is too large"),
            PublishError::Malformed(why) => write!(f, "invalid publish metadata: {why}"),
            PublishError::Trailing => f.write_str("the publish request has bytes after the end of the crate file"),
        }
    }
}

impl std::error::Error for PublishError {}

#[derive(Debug)]
enum State {
    /// Reading a 32-bit length: the bytes of it seen so far.
    JsonLen(Vec<u8>),
    /// Reading the metadata: the bytes so far and the declared length.
    Json { buf: Vec<u8>, len: usize },
    CrateLen(Vec<u8>),
    /// Reading the crate: bytes still expected.
    Crate { left: u64 },
    Done,
    /// After an error: the parser is spent.
    Failed,
}

/// The parser. Feed it the body in chunks of any size, then call `finish`.
pub struct FrameParser {
    limits: Limits,
    state: State,
}

impl FrameParser {
    pub fn new(limits: Limits) -> Self {
        FrameParser { limits, state: State::JsonLen(Vec::with_capacity(4)) }
    }

    /// Parses `chunk`, appending what it completes to `out`. After an error the parser is
    /// spent (every later call fails): the request must be refused.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), PublishError> {
        if matches!(self.state, State::Failed) {
            return Err(spent());
        }
        let result = self.step_all(chunk, out);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn step_all(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), PublishError> {
        while !chunk.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Failed);
            let (next, used) = match state {
                State::JsonLen(mut len) => {
                    let used = take_len(&mut len, chunk);
                    match u32_le(&len) {
                        Some(n) if n > self.limits.max_json => return Err(PublishError::TooLarge("the crate metadata")),
                        Some(0) => return Err(PublishError::Malformed("the metadata is empty".to_owned())),
                        Some(n) => (State::Json { buf: Vec::with_capacity(n.min(64 * 1024) as usize), len: n as usize }, used),
                        None => (State::JsonLen(len), used),
                    }
                }
                State::Json { mut buf, len } => {
                    let want = len.saturating_sub(buf.len()).min(chunk.len());
                    buf.extend_from_slice(chunk.get(..want).unwrap_or_default());
                    if buf.len() == len {
                        out.push(Event::Metadata(parse_metadata(&buf)?));
                        (State::CrateLen(Vec::with_capacity(4)), want)
                    } else {
                        (State::Json { buf, len }, want)
                    }
                }
                State::CrateLen(mut len) => {
                    let used = take_len(&mut len, chunk);
                    match u32_le(&len) {
                        Some(n) if u64::from(n) > self.limits.max_crate => return Err(PublishError::TooLarge("the crate file")),
                        Some(0) => {
                            out.push(Event::End);
                            (State::Done, used)
                        }
                        Some(n) => (State::Crate { left: u64::from(n) }, used),
                        None => (State::CrateLen(len), used),
                    }
                }
                State::Crate { left } => {
                    let want = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
                    out.push(Event::CrateData(chunk.get(..want).unwrap_or_default().to_vec()));
                    let left = left - want as u64;
                    if left == 0 {
                        out.push(Event::End);
                        (State::Done, want)
                    } else {
                        (State::Crate { left }, want)
                    }
                }
                State::Done => return Err(PublishError::Trailing),
                State::Failed => return Err(spent()),
            };
            self.state = next;
            chunk = chunk.get(used..).unwrap_or_default();
        }
        Ok(())
    }

    /// The body is over: fails unless it was whole.
    pub fn finish(self) -> Result<(), PublishError> {
        match self.state {
            State::Done => Ok(()),
            State::Failed => Err(spent()),
            _ => Err(PublishError::Truncated),
        }
    }
}

fn spent() -> PublishError {
    PublishError::Malformed("the request was already refused".to_owned())
}

/// Moves bytes of a 32-bit length from `chunk` into `len` (up to 4 in all); returns how many.
fn take_len(len: &mut Vec<u8>, chunk: &[u8]) -> usize {
    let want = 4usize.saturating_sub(len.len()).min(chunk.len());
    len.extend_from_slice(chunk.get(..want).unwrap_or_default());
    want
}

fn u32_le(bytes: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(bytes).ok().map(u32::from_le_bytes)
}

fn parse_metadata(json: &[u8]) -> Result<PublishMetadata, PublishError> {
    serde_json::from_slice(json).map_err(|e| PublishError::Malformed(e.to_string()))
}

/// The metadata cargo sends (cargo's `crates-io` crate, `NewCrate`; the Cargo book, "Registry
/// Web API", publish). Every field but `name` and `vers` may be missing; unknown fields are
/// ignored, so a newer cargo still publishes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct PublishMetadata {
    pub name: String,
    pub vers: String,
    #[serde(default)]
    pub deps: Vec<PublishDep>,
    #[serde(default)]
    pub features: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub documentation: Option<String>,
    #[serde(default)]
    pub homepage: Option<String>,
    /// The README's content.
    #[serde(default)]
    pub readme: Option<String>,
    /// The README's path in the package.
    #[serde(default)]
    pub readme_file: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub license_file: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    /// Deprecated in cargo; kept as sent.
    #[serde(default)]
    pub badges: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub links: Option<String>,
    #[serde(default)]
    pub rust_version: Option<String>,
}

/// One dependency as cargo sends it (cargo's `NewCrateDependency`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct PublishDep {
    /// The real name of the dependency's crate.
    pub name: String,
    pub version_req: String,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub optional: bool,
    #[serde(default = "yes")]
    pub default_features: bool,
    /// A `cfg(...)` expression or a target triple, for a target-specific dependency.
    #[serde(default)]
    pub target: Option<String>,
    /// `normal`, `dev` or `build`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The index URL of the dependency's registry; `None` for this registry. Cargo sends
    /// `https://github.com/rust-lang/crates.io-index` for a dependency on crates.io.
    #[serde(default)]
    pub registry: Option<String>,
    /// The name in the depending crate's Cargo.toml when it renames the dependency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_name_in_toml: Option<String>,
    /// Artifact dependencies (unstable in cargo): passed to the index as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindep_target: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub lib: bool,
}

/// Serde's default for `default_features`: cargo's default is on.
pub(crate) fn yes() -> bool {
    true
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// Bounds on the metadata beyond its total size: index lines stay small and every list is
/// short (crates.io allows 5 keywords and categories and 300 features by default).
const MAX_DEPS: usize = 1000;
const MAX_FEATURES: usize = 1000;
const MAX_FEATURE_VALUES: usize = 5000;
const MAX_LIST: usize = 100;
const MAX_SHORT: usize = 1024;
const MAX_TEXT: usize = 64 * 1024;

impl PublishMetadata {
    /// Checks what the index and the storage keys rely on: the crate name and version, every
    /// dependency's name and requirement (a `semver::VersionReq`, as cargo writes them) and
    /// kind, the feature names and values, and the sizes of lists and strings. The message
    /// is for cargo to print.
    pub fn validate(&self) -> Result<(), String> {
        if CrateName::parse(&self.name).is_none() {
            return Err(format!(
                "invalid crate name `{}`: crate names are 1 to 64 ASCII letters, digits, `-` or `_`, starting with a letter",
                truncate(&self.name)
            ));
        }
        if !valid_version(&self.vers) {
            return Err(format!("invalid version `{}`: versions are semver 2.0 (semver.org)", truncate(&self.vers)));
        }
        if self.deps.len() > MAX_DEPS {
            return Err(format!("too many dependencies (at most {MAX_DEPS})"));
        }
        for dep in &self.deps {
            dep.validate()?;
        }
        if self.features.len() > MAX_FEATURES {
            return Err(format!("too many features (at most {MAX_FEATURES})"));
        }
        let values: usize = self.features.values().map(Vec::len).sum();
        if values > MAX_FEATURE_VALUES {
            return Err(format!("too many feature values (at most {MAX_FEATURE_VALUES})"));
        }
        for (feature, enables) in &self.features {
            if !valid_feature_name(feature) {
                return Err(format!("invalid feature name `{}`", truncate(feature)));
            }
            if let Some(bad) = enables.iter().find(|v| !valid_feature_value(v)) {
                return Err(format!("invalid value `{}` of feature `{feature}`", truncate(bad)));
            }
        }
        for (what, list) in [("authors", &self.authors), ("keywords", &self.keywords), ("categories", &self.categories)] {
            if list.len() > MAX_LIST {
                return Err(format!("too many {what} (at most {MAX_LIST})"));
            }
            if list.iter().any(|s| s.len() > MAX_SHORT) {
                return Err(format!("an entry of {what} is longer than {MAX_SHORT} bytes"));
            }
        }
        let short = [
            ("documentation", &self.documentation),
            ("homepage", &self.homepage),
            ("readme_file", &self.readme_file),
            ("license", &self.license),
            ("license_file", &self.license_file),
            ("repository", &self.repository),
            ("links", &self.links),
            ("rust_version", &self.rust_version),
        ];
        for (what, value) in short {
            if value.as_ref().is_some_and(|v| v.len() > MAX_SHORT) {
                return Err(format!("{what} is longer than {MAX_SHORT} bytes"));
            }
        }
        if self.description.as_ref().is_some_and(|d| d.len() > MAX_TEXT) {
            return Err(format!("the description is longer than {MAX_TEXT} bytes"));
        }
        if self.links.as_deref().is_some_and(|l| l.is_empty()) {
            return Err("`links` is empty".to_owned());
        }
        if let Some(rv) = &self.rust_version {
            if !valid_rust_version(rv) {
                return Err(format!("invalid rust-version `{}`", truncate(rv)));
            }
        }
        Ok(())
    }
}

impl PublishDep {
    fn validate(&self) -> Result<(), String> {
        if CrateName::parse(&self.name).is_none() {
            return Err(format!("invalid dependency name `{}`", truncate(&self.name)));
        }
        if let Some(alias) = &self.explicit_name_in_toml {
            if CrateName::parse(alias).is_none() {
                return Err(format!("invalid name `{}` of dependency `{}`", truncate(alias), self.name));
            }
        }
        if self.version_req.len() > MAX_SHORT || semver::VersionReq::parse(&self.version_req).is_err() {
            return Err(format!("invalid version requirement `{}` of dependency `{}`", truncate(&self.version_req), self.name));
        }
        if !matches!(self.kind.as_deref(), None | Some("normal" | "dev" | "build")) {
            return Err(format!("invalid kind of dependency `{}`: one of normal, dev, build", self.name));
        }
        if self.features.len() > MAX_LIST || self.features.iter().any(|f| !valid_feature_value(f)) {
            return Err(format!("invalid features of dependency `{}`", self.name));
        }
        let short = [("target", &self.target), ("registry", &self.registry), ("bindep_target", &self.bindep_target)];
        if let Some((what, _)) = short.iter().find(|(_, v)| v.as_ref().is_some_and(|v| v.len() > MAX_SHORT || v.is_empty())) {
            return Err(format!("invalid {what} of dependency `{}`", self.name));
        }
        if self.artifact.as_ref().is_some_and(|a| a.len() > MAX_LIST || a.iter().any(|s| s.len() > MAX_SHORT)) {
            return Err(format!("invalid artifact of dependency `{}`", self.name));
        }
        Ok(())
    }
}

/// A feature name as crates.io accepts it: a Unicode XID start character, `_` or a digit,
/// then XID continue characters, `+`, `-` or `.` (crates.io's `validate_feature_name`; the
/// alphanumeric classes of `char` stand for the XID ones).
pub fn valid_feature_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else { return false };
    name.len() <= MAX_SHORT
        && (first.is_alphanumeric() || first == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'))
}

/// A value a feature enables (the Cargo book, "Features"): a feature, `dep:{dependency}`,
/// `{dependency}/{feature}` or `{dependency}?/{feature}`.
pub fn valid_feature_value(value: &str) -> bool {
    if let Some(dep) = value.strip_prefix("dep:") {
        return CrateName::parse(dep).is_some();
    }
    match value.split_once('/') {
        Some((dep, feature)) => {
            let dep = dep.strip_suffix('?').unwrap_or(dep);
            CrateName::parse(dep).is_some() && valid_feature_name(feature)
        }
        None => valid_feature_name(value),
    }
}

/// `rust-version` as the Cargo book ("The Manifest", rust-version) allows: a bare version with
/// two or three components, no pre-release or build.
fn valid_rust_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// At most 100 characters of a value quoted back in a message.
fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}
