//! Streaming packument rewriter for upstream documents: points every
//! `versions.*.dist.tarball` at this registry and collects each version's tarball URL and
//! hashes, in one pass over the bytes, in constant memory (popular packuments are tens of MB;
//! the isolate has 128 MB). Everything else is copied byte for byte. It also notices a
//! truncated or malformed document, so one is never cached.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::names::PackageName;

/// What the cache needs to fetch and verify one tarball.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistRecord {
    pub version: String,
    /// Where the upstream serves it.
    pub tarball: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shasum: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Versions,
    Version,
    Dist,
    Other,
}

#[derive(Debug)]
struct Frame {
    role: Role,
    object: bool,
    expecting_key: bool,
    /// The current key, when short enough to matter.
    key: Option<String>,
    /// For a `Version` frame: its version string.
    version: Option<String>,
}

/// What the string being read is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    None,
    Key,
    Name,
    Tarball,
    Integrity,
    Shasum,
}

const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 8192;

pub struct Rewriter {
    registry_url: String,
    name: PackageName,
    stack: Vec<Frame>,
    in_string: bool,
    string_end: crate::json::StringEnd,
    capture: Capture,
    captured: Vec<u8>,
    overflow: bool,
    done: bool,
    root_name: Option<String>,
    dist: (Option<String>, Option<String>, Option<String>),
    /// Tarball file name → record.
    pub records: BTreeMap<String, DistRecord>,
}

impl Rewriter {
    pub fn new(name: &PackageName, registry_url: &str) -> Rewriter {
        Rewriter {
            registry_url: registry_url.trim_end_matches('/').to_string(),
            name: name.clone(),
            stack: Vec::new(),
            in_string: false,
            string_end: Default::default(),
            capture: Capture::None,
            captured: Vec::new(),
            overflow: false,
            done: false,
            root_name: None,
            dist: (None, None, None),
            records: BTreeMap::new(),
        }
    }

    /// Rewrites one chunk into `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut copy_from = 0;
        for (i, &b) in input.iter().enumerate() {
            if self.in_string {
                if self.string_end.closes(b) {
                    self.in_string = false;
                    if self.capture == Capture::Tarball {
                        out.extend_from_slice(self.end_tarball()?.as_bytes());
                        copy_from = i;
                    } else {
                        self.end_string()?;
                    }
                    continue;
                }
                if self.capture != Capture::None {
                    if self.captured.len() < MAX_VALUE {
                        self.captured.push(b);
                    } else {
                        self.overflow = true;
                    }
                }
                continue;
            }
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => {}
                _ if self.done => return Err("data after the end of the document".into()),
                b'"' => {
                    self.in_string = true;
                    self.captured.clear();
                    self.overflow = false;
                    self.capture = self.string_role();
                    if self.capture == Capture::Tarball {
                        // Copy through the opening quote; the URL itself is replaced.
                        out.extend_from_slice(input.get(copy_from..=i).unwrap_or_default());
                        copy_from = i + 1;
                    }
                }
                b'{' | b'[' => {
                    let role = match self.stack.last() {
                        None if b == b'{' => Role::Root,
                        None => return Err("a packument must be a JSON object".into()),
                        Some(parent) if parent.object => match (parent.role, parent.key.as_deref()) {
                            (Role::Root, Some("versions")) => Role::Versions,
                            (Role::Versions, Some(_)) => Role::Version,
                            (Role::Version, Some("dist")) => Role::Dist,
                            _ => Role::Other,
                        },
                        Some(_) => Role::Other,
                    };
                    let role = if b == b'[' { Role::Other } else { role };
                    let version = if role == Role::Version { self.stack.last().and_then(|p| p.key.clone()) } else { None };
                    if role == Role::Dist {
                        self.dist = (None, None, None);
                    }
                    self.stack.push(Frame { role, object: b == b'{', expecting_key: b == b'{', key: None, version });
                }
                b'}' | b']' => {
                    let frame = self.stack.pop().ok_or("unbalanced brackets")?;
                    if frame.object != (b == b'}') {
                        return Err("mismatched brackets".into());
                    }
                    if frame.role == Role::Dist {
                        self.end_dist();
                    }
                    if self.stack.is_empty() {
                        self.done = true;
                    }
                }
                b':' => {
                    if let Some(top) = self.stack.last_mut() {
                        top.expecting_key = false;
                    }
                }
                b',' => {
                    if let Some(top) = self.stack.last_mut() {
                        if top.object {
                            top.expecting_key = true;
                            top.key = None;
                        }
                    }
                }
                _ if self.stack.is_empty() => return Err("a packument must be a JSON object".into()),
                _ => {} // numbers, true, false, null: copied as they are
            }
        }
        if !(self.in_string && self.capture == Capture::Tarball) {
            out.extend_from_slice(input.get(copy_from..).unwrap_or_default());
        }
        Ok(())
    }

    /// Checks the document was complete and well formed; returns the records.
    pub fn finish(self) -> Result<BTreeMap<String, DistRecord>, String> {
        if !self.done || self.in_string {
            return Err("truncated document".into());
        }
        match &self.root_name {
            Some(n) if n == self.name.as_str() => Ok(self.records),
            Some(n) => Err(format!("the upstream answered for {n:?}, not {}", self.name)),
            None => Err("packument without a name".into()),
        }
    }

    fn string_role(&self) -> Capture {
        let Some(top) = self.stack.last() else { return Capture::None };
        if top.object && top.expecting_key {
            return Capture::Key;
        }
        match (top.role, top.key.as_deref()) {
            (Role::Root, Some("name")) => Capture::Name,
            (Role::Dist, Some("tarball")) => Capture::Tarball,
            (Role::Dist, Some("integrity")) => Capture::Integrity,
            (Role::Dist, Some("shasum")) => Capture::Shasum,
            _ => Capture::None,
        }
    }

    fn decoded(&self) -> Result<String, String> {
        let mut quoted = Vec::with_capacity(self.captured.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(&self.captured);
        quoted.push(b'"');
        serde_json::from_slice(&quoted).map_err(|e| format!("bad string: {e}"))
    }

    fn end_string(&mut self) -> Result<(), String> {
        let capture = std::mem::replace(&mut self.capture, Capture::None);
        if capture == Capture::None {
            return Ok(());
        }
        let value = if self.overflow || (capture == Capture::Key && self.captured.len() > MAX_KEY) {
            None
        } else {
            Some(self.decoded()?)
        };
        match capture {
            Capture::Key => {
                if let Some(top) = self.stack.last_mut() {
                    top.key = value;
                }
            }
            Capture::Name => self.root_name = value,
            Capture::Integrity => self.dist.1 = value,
            Capture::Shasum => self.dist.2 = value,
            Capture::None | Capture::Tarball => {}
        }
        Ok(())
    }

    /// The replacement for the tarball URL just read (escaped for JSON, without quotes).
    fn end_tarball(&mut self) -> Result<String, String> {
        self.capture = Capture::None;
        if self.overflow {
            return Err("tarball URL too long".into());
        }
        let upstream = self.decoded()?;
        let file = upstream.rsplit('/').next().unwrap_or_default();
        let safe = !file.is_empty()
            && file.len() <= 214
            && file.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'));
        self.dist.0 = Some(upstream.clone());
        let url = if safe {
            format!("{}/{}/-/{}", self.registry_url, self.name.as_str(), file)
        } else {
            // Leave what cannot be a cache key pointing upstream.
            upstream
        };
        let json = serde_json::to_string(&url).map_err(|e| e.to_string())?;
        // The JSON string's contents, without its quotes.
        Ok(json.strip_prefix('"').and_then(|j| j.strip_suffix('"')).unwrap_or_default().to_string())
    }

    fn end_dist(&mut self) {
        let (tarball, integrity, shasum) = std::mem::take(&mut self.dist);
        let version = self.stack.last().and_then(|v| v.version.clone());
        if let (Some(tarball), Some(version)) = (tarball, version) {
            if let Some(file) = tarball.rsplit('/').next().filter(|f| !f.is_empty()) {
                self.records.insert(file.to_string(), DistRecord { version, tarball, integrity, shasum });
            }
        }
    }
}

/// The engine streams an upstream packument through the rewriter into the store.
impl crate::upstream::engine::Rewrite for Rewriter {
    type Output = BTreeMap<String, DistRecord>;

    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        Rewriter::feed(self, chunk, out)
    }

    fn finish(self) -> Result<Self::Output, String> {
        Rewriter::finish(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(doc: &str, chunk: usize) -> (String, Result<BTreeMap<String, DistRecord>, String>) {
        let name = PackageName::parse(&serde_json::from_str::<serde_json::Value>(doc).map(|d| d["name"].as_str().unwrap_or("x").to_string()).unwrap_or("x".into()), true).unwrap();
        let mut r = Rewriter::new(&name, "https://me.example/npm/");
        let mut out = Vec::new();
        for piece in doc.as_bytes().chunks(chunk) {
            if let Err(e) = r.feed(piece, &mut out) {
                return (String::from_utf8_lossy(&out).into(), Err(e));
            }
        }
        (String::from_utf8(out).unwrap(), r.finish())
    }

    const DOC: &str = r#"{"_id":"@s/p","name":"@s/p","dist-tags":{"latest":"1.0.0"},
      "versions":{"1.0.0":{"name":"@s/p","version":"1.0.0","description":"has \"tarball\": inside",
        "dist":{"shasum":"abc","tarball":"https://registry.npmjs.org/@s/p/-/p-1.0.0.tgz","integrity":"sha512-xyz"}},
      "2.0.0-rc.1":{"dist":{"tarball":"https://cdn.example/p-2.0.0-rc.1.tgz","shasum":"def"},"x":[{"tarball":"no"}]}},
      "readme":"see dist.tarball"}"#;

    #[test]
    fn rewrites_tarballs_at_every_chunk_size_and_keeps_the_rest() {
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let (out, records) = run(DOC, chunk);
            let records = records.unwrap();
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["versions"]["1.0.0"]["dist"]["tarball"], "https://me.example/npm/@s/p/-/p-1.0.0.tgz");
            assert_eq!(v["versions"]["2.0.0-rc.1"]["dist"]["tarball"], "https://me.example/npm/@s/p/-/p-2.0.0-rc.1.tgz");
            assert_eq!(v["versions"]["2.0.0-rc.1"]["x"][0]["tarball"], "no");
            assert_eq!(v["versions"]["1.0.0"]["description"], "has \"tarball\": inside");
            assert_eq!(v["readme"], "see dist.tarball");
            assert_eq!(records["p-1.0.0.tgz"].integrity.as_deref(), Some("sha512-xyz"));
            assert_eq!(records["p-1.0.0.tgz"].version, "1.0.0");
            assert_eq!(records["p-2.0.0-rc.1.tgz"].tarball, "https://cdn.example/p-2.0.0-rc.1.tgz");
            assert_eq!(records["p-2.0.0-rc.1.tgz"].shasum.as_deref(), Some("def"));
            // Only the URLs changed: the rest is byte for byte the same.
            let original = DOC.replace("https://registry.npmjs.org/@s/p/-/p-1.0.0.tgz", "https://me.example/npm/@s/p/-/p-1.0.0.tgz")
                .replace("https://cdn.example/p-2.0.0-rc.1.tgz", "https://me.example/npm/@s/p/-/p-2.0.0-rc.1.tgz");
            assert_eq!(out, original, "chunk size {chunk}");
        }
    }

    #[test]
    fn refuses_truncated_malformed_and_foreign_documents() {
        assert!(run(&DOC[..DOC.len() - 1], 5).1.is_err(), "truncated");
        assert!(run(&DOC[..DOC.len() / 2], 5).1.is_err(), "truncated in the middle");
        assert!(run(r#"{"name":"a"}}"#, 3).1.is_err(), "unbalanced");
        assert!(run(r#"{"name":"a"} x"#, 3).1.is_err(), "trailing data");
        assert!(run(r#"["name"]"#, 3).1.is_err(), "not an object");
        assert!(run(r#"{"_id":"a"}"#, 3).1.is_err(), "no name");
        let name = PackageName::parse("wanted", true).unwrap();
        let mut r = Rewriter::new(&name, "https://me");
        r.feed(br#"{"name":"other"}"#, &mut Vec::new()).unwrap();
        assert!(r.finish().unwrap_err().contains("other"));
    }
}
