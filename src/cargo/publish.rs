//! The body of `PUT /api/v1/crates/new` (the Cargo book, "Registry Web API", publish): a
//! 32-bit little-endian length, that many bytes of JSON metadata, a 32-bit little-endian
//! length, that many bytes of `.crate` file (a gzipped tarball).
//!
//! `FrameParser` is a push parser fed chunks as they arrive: it holds the metadata until it
//! is whole (bounded by `Limits::max_json`), then hands the crate bytes on as they come, so
//! it never holds the crate. `PublishMetadata::validate` checks the metadata; `CrateFileCheck`
//! checks the crate bytes as they stream past (that cargo can unpack them as this crate).

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

// ---------------------------------------------------------------------------------------
// The .crate file

/// How much a `.crate` file may unpack to (crates.io's default `max_unpack_size`, 512 MiB):
/// inflating is work, and a small file can inflate to a great deal.
pub const MAX_UNPACKED: u64 = 512 * 1024 * 1024;

/// Longest path (or PAX header) in a `.crate` file kept while checking it.
const MAX_TAR_PATH: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrateFileError {
    /// Not a gzipped tarball cargo can unpack as this crate (says why).
    Invalid(String),
    /// It unpacks to more than the limit.
    TooLarge,
}

impl fmt::Display for CrateFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrateFileError::Invalid(why) => write!(f, "invalid .crate file: {why}"),
            CrateFileError::TooLarge => write!(f, "the .crate file unpacks to more than {} MiB", MAX_UNPACKED / (1024 * 1024)),
        }
    }
}

impl std::error::Error for CrateFileError {}

fn invalid(why: impl Into<String>) -> CrateFileError {
    CrateFileError::Invalid(why.into())
}

/// Checks a `.crate` file as it streams past, holding no more than a gzip window, a tar
/// header and a long path: a gzip stream (RFC 1952) whose CRC-32 and length match, holding a
/// tar archive whose every entry lies under `{name}-{vers}/` with no `..` (cargo refuses to
/// unpack any other, cargo's `unpack_package`), no links (as crates.io refuses them), with a
/// `{name}-{vers}/Cargo.toml`.
pub struct CrateFileCheck {
    prefix: String,
    max_unpacked: u64,
    gzip: Gzip,
    inflater: Box<miniz_oxide::inflate::stream::InflateState>,
    /// Where inflated bytes land on their way to the tar reader.
    window: Vec<u8>,
    crc: crc32fast::Hasher,
    unpacked: u64,
    tar: Tar,
}

enum Gzip {
    /// The header so far (its length depends on its flags).
    Header(Vec<u8>),
    Deflate,
    /// The CRC-32 and length after the deflate stream.
    Trailer(Vec<u8>),
    Done,
}

struct Tar {
    /// The 512-byte header being read.
    header: Vec<u8>,
    /// Bytes of entry data (and padding) still to skip or collect.
    skip: u64,
    /// Collecting a GNU long name (`L`) or a PAX header (`x`): its data.
    collect: Option<(u8, Vec<u8>)>,
    /// The path the next entry has, from a long name or PAX header.
    next_path: Option<String>,
    zero_blocks: u8,
    has_manifest: bool,
}

impl CrateFileCheck {
    pub fn new(name: &str, vers: &str, max_unpacked: u64) -> Self {
        CrateFileCheck {
            prefix: format!("{name}-{vers}"),
            max_unpacked,
            gzip: Gzip::Header(Vec::new()),
            inflater: miniz_oxide::inflate::stream::InflateState::new_boxed(miniz_oxide::DataFormat::Raw),
            window: vec![0u8; 32 * 1024],
            crc: crc32fast::Hasher::new(),
            unpacked: 0,
            tar: Tar { header: Vec::with_capacity(512), skip: 0, collect: None, next_path: None, zero_blocks: 0, has_manifest: false },
        }
    }

    /// The next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), CrateFileError> {
        // The inflater may hold output it had no room for, even with no input left.
        let mut pending = false;
        while !data.is_empty() || pending {
            pending = false;
            match &mut self.gzip {
                Gzip::Header(buf) => {
                    let room = MAX_TAR_PATH.saturating_sub(buf.len()).min(data.len());
                    buf.extend_from_slice(data.get(..room).unwrap_or_default());
                    match gzip_header_len(buf)? {
                        Some(len) => {
                            let rest = buf.split_off(len);
                            self.gzip = Gzip::Deflate;
                            let consumed_before = room - rest.len();
                            data = data.get(consumed_before..).unwrap_or_default();
                        }
                        None if buf.len() >= MAX_TAR_PATH => return Err(invalid("the gzip header is too long")),
                        None => data = data.get(room..).unwrap_or_default(),
                    }
                }
                Gzip::Deflate => {
                    use miniz_oxide::inflate::stream::inflate;
                    use miniz_oxide::{MZError, MZFlush, MZStatus};
                    let result = inflate(&mut self.inflater, data, &mut self.window, MZFlush::None);
                    data = data.get(result.bytes_consumed..).unwrap_or_default();
                    pending = result.bytes_written == self.window.len();
                    let written = self.window.get(..result.bytes_written).unwrap_or_default();
                    self.crc.update(written);
                    self.unpacked += written.len() as u64;
                    if self.unpacked > self.max_unpacked {
                        return Err(CrateFileError::TooLarge);
                    }
                    self.tar.feed(written, &self.prefix)?;
                    match result.status {
                        Ok(MZStatus::StreamEnd) => self.gzip = Gzip::Trailer(Vec::with_capacity(8)),
                        Ok(_) => {}
                        // No progress: everything given is consumed and more is needed.
                        Err(MZError::Buf) if result.bytes_consumed == 0 && result.bytes_written == 0 => break,
                        Err(MZError::Buf) => {}
                        Err(_) => return Err(invalid("the gzip stream does not inflate")),
                    }
                }
                Gzip::Trailer(buf) => {
                    let room = 8usize.saturating_sub(buf.len()).min(data.len());
                    buf.extend_from_slice(data.get(..room).unwrap_or_default());
                    data = data.get(room..).unwrap_or_default();
                    if buf.len() == 8 {
                        let word = |at: usize| buf.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_le_bytes);
                        let crc = std::mem::take(&mut self.crc).finalize();
                        if word(0) != Some(crc) {
                            return Err(invalid("its CRC-32 does not match (corrupted?)"));
                        }
                        if word(4) != Some(self.unpacked as u32) {
                            return Err(invalid("its gzip length does not match"));
                        }
                        self.gzip = Gzip::Done;
                    }
                }
                // What follows the first gzip member is not read by cargo (flate2's GzDecoder).
                Gzip::Done => break,
            }
        }
        Ok(())
    }

    /// The file is over: fails unless it was whole and held the crate's Cargo.toml.
    pub fn finish(self) -> Result<(), CrateFileError> {
        if !matches!(self.gzip, Gzip::Done) {
            return Err(invalid("the gzip stream is truncated"));
        }
        if self.tar.zero_blocks == 0 && (!self.tar.header.is_empty() || self.tar.skip > 0) {
            return Err(invalid("the tar archive is truncated"));
        }
        if !self.tar.has_manifest {
            return Err(invalid(format!("it has no {}/Cargo.toml", self.prefix)));
        }
        Ok(())
    }
}

/// The length of a complete gzip member header (RFC 1952 §2.3) at the start of `buf`, or
/// `None` while more is needed.
fn gzip_header_len(buf: &[u8]) -> Result<Option<usize>, CrateFileError> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let fixed = match buf.get(..10) {
        Some(fixed) => fixed,
        None => {
            let magic = [0x1f, 0x8b, 8];
            return if buf.iter().zip(magic.iter()).all(|(a, b)| a == b) { Ok(None) } else { Err(invalid("it is not gzip")) };
        }
    };
    if fixed.get(..3) != Some(&[0x1f, 0x8b, 8][..]) {
        return Err(invalid("it is not gzip (deflate)"));
    }
    let flags = fixed.get(3).copied().unwrap_or(0);
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let Some(len) = buf.get(at..at + 2) else { return Ok(None) };
        at += 2 + usize::from(u16::from_le_bytes([len.first().copied().unwrap_or(0), len.get(1).copied().unwrap_or(0)]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            match buf.get(at..).and_then(|rest| rest.iter().position(|&b| b == 0)) {
                Some(nul) => at += nul + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    Ok((buf.len() >= at).then_some(at))
}

impl Tar {
    /// The next bytes of the archive (POSIX ustar with GNU and PAX extensions, as the `tar`
    /// crate cargo uses writes them).
    fn feed(&mut self, mut data: &[u8], prefix: &str) -> Result<(), CrateFileError> {
        while !data.is_empty() {
            if self.zero_blocks >= 2 {
                // The end-of-archive blocks, then padding: nothing more is read.
                return Ok(());
            }
            if self.skip > 0 {
                let n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(data.len());
                if let Some((_, buf)) = &mut self.collect {
                    let keep = MAX_TAR_PATH.saturating_sub(buf.len()).min(n);
                    buf.extend_from_slice(data.get(..keep).unwrap_or_default());
                }
                self.skip -= n as u64;
                data = data.get(n..).unwrap_or_default();
                if self.skip == 0 {
                    if let Some((kind, buf)) = self.collect.take() {
                        if let Some(path) = extended_path(kind, &buf)?.filter(|p| !p.is_empty()) {
                            self.next_path = Some(path);
                        }
                    }
                }
                continue;
            }
            let n = (512 - self.header.len()).min(data.len());
            self.header.extend_from_slice(data.get(..n).unwrap_or_default());
            data = data.get(n..).unwrap_or_default();
            if self.header.len() == 512 {
                let header = std::mem::replace(&mut self.header, Vec::with_capacity(512));
                self.entry(&header, prefix)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, header: &[u8], prefix: &str) -> Result<(), CrateFileError> {
        if header.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            return Ok(());
        }
        if self.zero_blocks > 0 {
            return Err(invalid("the tar archive has an entry after an empty block"));
        }
        let field = |from: usize, to: usize| header.get(from..to).unwrap_or_default();
        // The checksum: the sum of the header's bytes, the checksum field counted as spaces.
        let sum: u64 = header.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) }).sum();
        if octal(field(148, 156)) != Some(sum) {
            return Err(invalid("a tar header checksum does not match"));
        }
        let size = octal(field(124, 136)).ok_or_else(|| invalid("a tar header has no size"))?;
        let kind = header.get(156).copied().unwrap_or(0);
        self.skip = size.div_ceil(512) * 512;
        match kind {
            b'L' | b'x' => {
                self.collect = Some((kind, Vec::new()));
                if size > MAX_TAR_PATH as u64 {
                    return Err(invalid("a tar path is too long"));
                }
                return Ok(());
            }
            // Global PAX headers and long link names name no entry.
            b'g' | b'K' => return Ok(()),
            b'1' | b'2' => return Err(invalid("it holds a link")),
            _ => {}
        }
        let path = match self.next_path.take() {
            Some(path) => path,
            None => {
                let name = until_nul(field(0, 100));
                // POSIX ustar keeps the start of a long path in `prefix`; GNU's "ustar  " does not.
                let ustar_prefix = if field(257, 263) == b"ustar\0" { until_nul(field(345, 500)) } else { "" };
                if ustar_prefix.is_empty() { name.to_owned() } else { format!("{ustar_prefix}/{name}") }
            }
        };
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        if parts.next() != Some(prefix) || path.starts_with('/') {
            return Err(invalid(format!("it holds {path:?}, not under {prefix}/")));
        }
        let rest: Vec<&str> = parts.collect();
        if rest.iter().any(|p| *p == ".." || *p == ".") {
            return Err(invalid(format!("it holds {path:?}")));
        }
        if rest == ["Cargo.toml"] && matches!(kind, b'0' | 0) {
            self.has_manifest = true;
        }
        Ok(())
    }
}

/// The path a GNU long name (`L`: the name, NUL-terminated) or a PAX header (`x`: records
/// `{length} {key}={value}\n`, POSIX.1-2001 `pax`) gives the next entry.
fn extended_path(kind: u8, data: &[u8]) -> Result<Option<String>, CrateFileError> {
    if kind == b'L' {
        return Ok(Some(until_nul(data).to_owned()));
    }
    let mut rest = data;
    while !rest.is_empty() && rest.first() != Some(&0) {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(|| invalid("a PAX header is malformed"))?;
        let len: usize = std::str::from_utf8(rest.get(..space).unwrap_or_default()).ok().and_then(|s| s.parse().ok()).ok_or_else(|| invalid("a PAX header is malformed"))?;
        let record = rest.get(space + 1..len).ok_or_else(|| invalid("a PAX header is malformed"))?;
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(path) = record.strip_prefix(b"path=") {
            return Ok(Some(String::from_utf8_lossy(path).into_owned()));
        }
        rest = rest.get(len..).unwrap_or_default();
    }
    Ok(None)
}

fn until_nul(field: &[u8]) -> &str {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    std::str::from_utf8(field.get(..end).unwrap_or_default()).unwrap_or("\u{fffd}")
}

/// A tar number: octal digits (space or NUL padded), or base-256 when the first byte has its
/// high bit set (GNU, for sizes of 8 GiB and more).
fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field.first()? & 0x7f);
        for &b in field.get(1..)? {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let text = std::str::from_utf8(field).ok()?.trim_matches(|c: char| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}
