//! Streaming rewriters of simple-API project pages, in constant memory whatever the page's
//! size (a project with thousands of files is several MB).
//!
//! An upstream page comes as PEP 691 JSON (pypi.org, devpi) or as PEP 503 HTML (pypiserver);
//! a scanner turns either into events, one file entry at a time ([`JsonScanner`],
//! [`HtmlScanner`]), and a writer turns the events into the output ([`JsonWriter`],
//! [`HtmlWriter`]). The cache keeps one copy per project, normalised to PEP 691 JSON with
//! every file URL pointing at this registry ([`PageRewriter`]); clients asking for HTML get
//! it rendered from that copy as it streams out ([`Renderer`]).
//!
//! What is kept of each file: filename, URL, hashes, `requires-python`, PEP 592 `yanked`,
//! PEP 658/714 core metadata (only when the upstream advertised it), PEP 700 `size` and
//! `upload-time`; of the page, PEP 700 `versions`. Anything else (PEP 708 tracks, GPG
//! signatures, PEP 740 provenance, which would send clients to the upstream) is left out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::simple::escape_html;

/// The longest single file entry, `meta` or version string kept while it is read.
pub const MAX_CAPTURE: usize = 64 * 1024;
/// The deepest nesting accepted in a JSON page.
const MAX_DEPTH: usize = 64;
/// The longest HTML tag or anchor text read.
const MAX_TAG: usize = 64 * 1024;

/// PEP 658/714 core metadata: advertised (`true`), or with its hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetadataRef {
    Flag(bool),
    Hashes(BTreeMap<String, String>),
}

impl MetadataRef {
    /// Whether the upstream serves a `.metadata` file for the file.
    pub fn advertised(&self) -> bool {
        !matches!(self, MetadataRef::Flag(false))
    }

    pub fn sha256(&self) -> Option<&str> {
        match self {
            MetadataRef::Hashes(h) => h.get("sha256").map(String::as_str),
            MetadataRef::Flag(_) => None,
        }
    }
}

/// PEP 592: yanked, with or without a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Yanked {
    Flag(bool),
    Reason(String),
}

/// One file of a PEP 691 project page, with the fields this mirror keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub filename: String,
    pub url: String,
    #[serde(default)]
    pub hashes: BTreeMap<String, String>,
    #[serde(rename = "requires-python", default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    #[serde(rename = "core-metadata", default, skip_serializing_if = "Option::is_none")]
    pub core_metadata: Option<MetadataRef>,
    #[serde(rename = "dist-info-metadata", default, skip_serializing_if = "Option::is_none")]
    pub dist_info_metadata: Option<MetadataRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked: Option<Yanked>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(rename = "upload-time", default, skip_serializing_if = "Option::is_none")]
    pub upload_time: Option<String>,
}

impl FileEntry {
    /// The core metadata as advertised: PEP 714's `core-metadata`, else PEP 658's older name.
    pub fn metadata(&self) -> Option<&MetadataRef> {
        self.core_metadata.as_ref().or(self.dist_info_metadata.as_ref()).filter(|m| m.advertised())
    }

    /// Advertises the core metadata under both names, as pypi.org does (PEP 714: clients
    /// read `core-metadata` first, older ones `dist-info-metadata`).
    pub fn set_metadata(&mut self, m: Option<MetadataRef>) {
        self.core_metadata = m.clone();
        self.dist_info_metadata = m;
    }
}

/// What a scanner found.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    File(FileEntry),
    /// A PEP 700 `versions` entry.
    Version(String),
    /// The page's project name, as the upstream wrote it.
    Name(String),
}

/// Turns the bytes of a page into [`Event`]s, tolerating any chunk split.
pub trait Scanner {
    fn feed(&mut self, chunk: &[u8], events: &mut Vec<Event>) -> Result<(), String>;
    /// The end of the page: an error when it was incomplete.
    fn finish(&mut self, events: &mut Vec<Event>) -> Result<(), String>;
    /// Whether the end of the page has been seen.
    fn complete(&self) -> bool;
    /// Bytes held between calls (for the memory bound).
    fn held(&self) -> usize;
}

// ------------------------------------------------------------------ JSON scanner

/// Which top-level member of the page a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Name,
    Files,
    Versions,
    Other,
}

/// A streaming PEP 691 page scanner: tracks strings and nesting byte by byte and captures
/// only one `files` or `versions` element (or the `name`) at a time.
#[derive(Default)]
pub struct JsonScanner {
    /// Open containers: `true` for an object.
    stack: Vec<bool>,
    in_string: bool,
    string_end: crate::json::StringEnd,
    /// In the top-level object, the next string is a key.
    expecting_key: bool,
    reading_key: bool,
    key: Vec<u8>,
    member: Option<Member>,
    capture: Vec<u8>,
    /// Depth at which the value being captured started, if one is.
    capture_depth: Option<usize>,
    /// The captured value is a number or literal (it ends at a delimiter).
    scalar: bool,
    done: bool,
}

impl JsonScanner {
    pub fn new() -> JsonScanner {
        JsonScanner::default()
    }

    fn wanted(&self) -> Option<Member> {
        let depth = self.stack.len();
        match self.member? {
            Member::Name if depth == 1 => Some(Member::Name),
            Member::Files | Member::Versions if depth == 2 && self.stack.last() == Some(&false) => self.member,
            _ => None,
        }
    }

    /// A value starts here: captured when it is one the page is read for.
    fn value_starts(&mut self, scalar: bool) -> Result<(), String> {
        if self.capture_depth.is_some() {
            return Ok(());
        }
        let depth = self.stack.len();
        if depth == 1 && matches!(self.member, Some(Member::Files | Member::Versions)) && scalar {
            return Err("`files` and `versions` must be arrays".into());
        }
        if self.wanted().is_some() {
            self.capture.clear();
            self.capture_depth = Some(depth);
            self.scalar = scalar;
        }
        Ok(())
    }

    fn push(&mut self, b: u8) -> Result<(), String> {
        if self.capture_depth.is_some() {
            if self.capture.len() >= MAX_CAPTURE {
                return Err(format!("a page entry longer than {MAX_CAPTURE} bytes"));
            }
            self.capture.push(b);
        }
        Ok(())
    }

    fn end_capture(&mut self, events: &mut Vec<Event>) {
        self.capture_depth = None;
        self.scalar = false;
        let bytes = std::mem::take(&mut self.capture);
        match self.member {
            Some(Member::Files) => match serde_json::from_slice::<FileEntry>(&bytes) {
                Ok(f) => events.push(Event::File(f)),
                // One unreadable entry does not cost the whole project.
                Err(e) => crate::logging::log("warn", &format!("pypi page: file entry skipped: {e}")),
            },
            Some(Member::Versions) => {
                if let Ok(v) = serde_json::from_slice::<String>(&bytes) {
                    events.push(Event::Version(v));
                }
            }
            Some(Member::Name) => {
                if let Ok(n) = serde_json::from_slice::<String>(&bytes) {
                    events.push(Event::Name(n));
                }
            }
            Some(Member::Other) | None => {}
        }
        self.capture = bytes;
        self.capture.clear();
    }

    /// A number or literal being captured ends before `b`.
    fn scalar_ends(&mut self, events: &mut Vec<Event>) {
        if self.scalar && self.capture_depth == Some(self.stack.len()) {
            self.end_capture(events);
        }
    }
}

impl Scanner for JsonScanner {
    fn feed(&mut self, chunk: &[u8], events: &mut Vec<Event>) -> Result<(), String> {
        for &b in chunk {
            if self.in_string {
                if self.reading_key {
                    if self.string_end.closes(b) {
                        self.in_string = false;
                        self.reading_key = false;
                        continue;
                    }
                    if self.key.len() < 64 {
                        self.key.push(b);
                    }
                    continue;
                }
                self.push(b)?;
                if self.string_end.closes(b) {
                    self.in_string = false;
                    if self.capture_depth == Some(self.stack.len()) {
                        self.end_capture(events);
                    }
                }
                continue;
            }
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => {
                    self.scalar_ends(events);
                    if self.capture_depth.is_some() {
                        self.push(b)?;
                    }
                }
                _ if self.done => return Err("data after the end of the page".into()),
                b'"' if self.stack.len() == 1 && self.expecting_key => {
                    self.in_string = true;
                    self.reading_key = true;
                    self.key.clear();
                }
                b'"' => {
                    self.value_starts(false)?;
                    self.in_string = true;
                    self.push(b)?;
                }
                b'{' | b'[' => {
                    if self.stack.is_empty() && b != b'{' {
                        return Err("a project page must be a JSON object".into());
                    }
                    if !self.stack.is_empty() {
                        self.value_starts(false)?;
                        self.push(b)?;
                    }
                    if self.stack.len() >= MAX_DEPTH {
                        return Err("the page nests too deeply".into());
                    }
                    self.stack.push(b == b'{');
                    if self.stack.len() == 1 {
                        self.expecting_key = true;
                    }
                }
                b'}' | b']' => {
                    self.scalar_ends(events);
                    let object = self.stack.pop().ok_or("unbalanced brackets")?;
                    if object != (b == b'}') {
                        return Err("mismatched brackets".into());
                    }
                    self.push(b)?;
                    if self.capture_depth == Some(self.stack.len()) {
                        self.end_capture(events);
                    }
                    if self.stack.is_empty() {
                        self.done = true;
                    }
                }
                b':' if self.stack.len() == 1 => {
                    self.expecting_key = false;
                    self.member = Some(match self.key.as_slice() {
                        b"name" => Member::Name,
                        b"files" => Member::Files,
                        b"versions" => Member::Versions,
                        _ => Member::Other,
                    });
                }
                b',' => {
                    self.scalar_ends(events);
                    self.push(b)?;
                    if self.stack.len() == 1 {
                        self.expecting_key = true;
                        self.member = None;
                    }
                }
                _ if self.stack.is_empty() => return Err("a project page must be a JSON object".into()),
                _ => {
                    if self.capture_depth.is_none() {
                        self.value_starts(true)?;
                    }
                    self.push(b)?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, _events: &mut Vec<Event>) -> Result<(), String> {
        if !self.done || self.in_string {
            return Err("truncated page".into());
        }
        Ok(())
    }

    fn complete(&self) -> bool {
        self.done && !self.in_string
    }

    fn held(&self) -> usize {
        self.capture.capacity() + self.key.capacity() + self.stack.capacity()
    }
}

// ------------------------------------------------------------------ HTML scanner

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum HtmlState {
    #[default]
    Text,
    Tag,
    Comment,
}

/// A tag's attributes: (lowercased name, unescaped value).
type Attributes = Vec<(String, String)>;

/// A streaming PEP 503 page scanner: reads each `<a …>filename</a>` (with `href`,
/// `data-requires-python`, `data-yanked`, `data-core-metadata` / `data-dist-info-metadata`)
/// and skips everything else. Relative links are resolved against the page's URL.
pub struct HtmlScanner {
    base: Option<url::Url>,
    state: HtmlState,
    /// The tag being read (between `<` and `>`).
    tag: Vec<u8>,
    quote: Option<u8>,
    /// The anchor being read: its attributes, and its text so far.
    anchor: Option<(Attributes, Vec<u8>)>,
    /// The last bytes of a comment (to find `-->`).
    tail: [u8; 2],
    closed: bool,
}

impl HtmlScanner {
    /// `page_url`: where the page was fetched from, for relative links.
    pub fn new(page_url: &str) -> HtmlScanner {
        HtmlScanner { base: url::Url::parse(page_url).ok(), state: HtmlState::Text, tag: Vec::new(), quote: None, anchor: None, tail: [0; 2], closed: false }
    }

    fn tag_ends(&mut self, events: &mut Vec<Event>) {
        let tag = std::mem::take(&mut self.tag);
        let text = String::from_utf8_lossy(&tag);
        let name_end = text.find(|c: char| c.is_ascii_whitespace() || c == '/' && !text.starts_with('/')).unwrap_or(text.len());
        let name = text.get(..name_end).unwrap_or_default().to_ascii_lowercase();
        match name.as_str() {
            "a" => {
                self.anchor_ends(events);
                self.anchor = Some((attributes(text.get(name_end..).unwrap_or_default()), Vec::new()));
            }
            "/a" => self.anchor_ends(events),
            "/html" => {
                self.anchor_ends(events);
                self.closed = true;
            }
            _ => {}
        }
        self.tag = tag;
        self.tag.clear();
    }

    fn anchor_ends(&mut self, events: &mut Vec<Event>) {
        let Some((attrs, text)) = self.anchor.take() else { return };
        let attr = |name: &str| attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let Some(href) = attr("href") else { return };
        let (link, fragment) = href.split_once('#').map(|(l, f)| (l.to_string(), Some(f.to_string()))).unwrap_or((href.clone(), None));
        let url = match &self.base {
            Some(base) => match base.join(&link) {
                Ok(u) => u.to_string(),
                Err(_) => return,
            },
            None => link,
        };
        let text = unescape(String::from_utf8_lossy(&text).trim());
        let filename = if text.is_empty() { last_segment(&url) } else { text };
        let mut hashes = BTreeMap::new();
        if let Some((algo, hex)) = fragment.as_deref().and_then(|f| f.split_once('=')) {
            hashes.insert(algo.to_ascii_lowercase(), hex.to_ascii_lowercase());
        }
        let metadata = attr("data-core-metadata").or_else(|| attr("data-dist-info-metadata")).map(|v| match v.split_once('=') {
            Some((algo, hex)) => MetadataRef::Hashes(BTreeMap::from([(algo.to_ascii_lowercase(), hex.to_ascii_lowercase())])),
            None => MetadataRef::Flag(v != "false"),
        });
        let mut entry = FileEntry {
            filename,
            url,
            hashes,
            requires_python: attr("data-requires-python").filter(|r| !r.is_empty()),
            yanked: attr("data-yanked").map(|r| if r.is_empty() { Yanked::Flag(true) } else { Yanked::Reason(r) }),
            ..FileEntry::default()
        };
        entry.set_metadata(metadata.filter(MetadataRef::advertised));
        events.push(Event::File(entry));
    }
}

impl Scanner for HtmlScanner {
    fn feed(&mut self, chunk: &[u8], events: &mut Vec<Event>) -> Result<(), String> {
        for &b in chunk {
            if self.closed {
                // Whatever follows `</html>` is not part of the page.
                return Ok(());
            }
            match self.state {
                HtmlState::Text => {
                    if b == b'<' {
                        self.state = HtmlState::Tag;
                        self.tag.clear();
                        self.quote = None;
                    } else if let Some((_, text)) = self.anchor.as_mut() {
                        if text.len() >= MAX_TAG {
                            return Err(format!("an anchor text longer than {MAX_TAG} bytes"));
                        }
                        text.push(b);
                    }
                }
                HtmlState::Tag => {
                    match (self.quote, b) {
                        (Some(q), _) if q == b => self.quote = None,
                        (Some(_), _) => {}
                        (None, b'"' | b'\'') => self.quote = Some(b),
                        (None, b'>') => {
                            self.state = HtmlState::Text;
                            self.tag_ends(events);
                            continue;
                        }
                        _ => {}
                    }
                    if self.tag.len() >= MAX_TAG {
                        return Err(format!("an HTML tag longer than {MAX_TAG} bytes"));
                    }
                    self.tag.push(b);
                    if self.tag == b"!--" {
                        self.state = HtmlState::Comment;
                        self.tail = [0; 2];
                    }
                }
                HtmlState::Comment => {
                    if b == b'>' && self.tail == *b"--" {
                        self.state = HtmlState::Text;
                    }
                    self.tail = [self.tail[1], b];
                }
            }
        }
        Ok(())
    }

    /// A page cut short is not cached: PEP 503 pages end with `</html>` (pypi.org,
    /// pypiserver and devpi all write it), and nothing else tells that the body is whole.
    fn finish(&mut self, events: &mut Vec<Event>) -> Result<(), String> {
        self.anchor_ends(events);
        if !self.closed {
            return Err("truncated page (no closing </html>)".into());
        }
        Ok(())
    }

    fn complete(&self) -> bool {
        self.closed
    }

    fn held(&self) -> usize {
        self.tag.capacity() + self.anchor.as_ref().map(|(a, t)| t.capacity() + a.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()).unwrap_or(0)
    }
}

/// The attributes of a tag (after its name): names lowercased, values unescaped.
fn attributes(s: &str) -> Attributes {
    let mut out = Vec::new();
    let mut rest = s.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
    while !rest.is_empty() {
        let name_end = rest.find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '/').unwrap_or(rest.len());
        let name = rest.get(..name_end).unwrap_or_default().to_ascii_lowercase();
        rest = rest.get(name_end..).unwrap_or_default().trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (v, remaining) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = after.get(1..).unwrap_or_default();
                    let end = body.find(q).unwrap_or(body.len());
                    (body.get(..end).unwrap_or_default(), body.get(end + 1..).unwrap_or_default())
                }
                _ => {
                    let end = after.find(|c: char| c.is_ascii_whitespace()).unwrap_or(after.len());
                    (after.get(..end).unwrap_or_default(), after.get(end..).unwrap_or_default())
                }
            };
            value = unescape(v);
            rest = remaining;
        }
        if !name.is_empty() {
            out.push((name, value));
        }
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
    }
    out
}

/// HTML character references: the named ones a page uses and numeric ones.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 1..).unwrap_or_default();
        let decoded = after.find(';').filter(|&j| j <= 10).and_then(|j| {
            let name = after.get(..j)?;
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let num = name.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, j))
        });
        match decoded {
            Some((c, j)) => {
                out.push(c);
                rest = after.get(j + 1..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The last path segment of a URL, percent-decoded.
pub fn last_segment(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let seg = path.rsplit('/').next().unwrap_or_default();
    percent_encoding::percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

// ------------------------------------------------------------------ writers

/// Turns events into a page.
pub trait Writer {
    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> Result<(), String>;
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String>;
}

/// Changes a file entry on its way through (its URL, to point here), or drops it (`false`).
pub type Relink = Box<dyn FnMut(&mut FileEntry) -> bool>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Files,
    Versions,
}

/// Writes PEP 691 JSON: `{"name":…,"files":[…],"versions":[…],"meta":{"api-version":…}}`,
/// one file entry per line. `meta` comes last: the API version it claims (1.1 with PEP 700
/// `versions`, else 1.0) is known only at the end.
pub struct JsonWriter {
    name: String,
    relink: Relink,
    section: Section,
    started: bool,
    first_in_section: bool,
    files_seen: bool,
    versions_seen: bool,
    /// Files written.
    pub files: usize,
}

impl JsonWriter {
    pub fn new(name: &str, relink: Relink) -> JsonWriter {
        JsonWriter { name: name.to_string(), relink, section: Section::None, started: false, first_in_section: true, files_seen: false, versions_seen: false, files: 0 }
    }

    fn start(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if !self.started {
            self.started = true;
            out.extend_from_slice(b"{\"name\":");
            out.extend_from_slice(&serde_json::to_vec(&self.name).map_err(|e| e.to_string())?);
        }
        Ok(())
    }

    fn enter(&mut self, section: Section, out: &mut Vec<u8>) -> Result<(), String> {
        self.start(out)?;
        if self.section == section {
            return Ok(());
        }
        self.close(out);
        let seen = match section {
            Section::Files => std::mem::replace(&mut self.files_seen, true),
            Section::Versions => std::mem::replace(&mut self.versions_seen, true),
            Section::None => false,
        };
        if seen {
            return Err("the page lists its files or versions twice".into());
        }
        out.extend_from_slice(if section == Section::Files { b",\"files\":[" } else { b",\"versions\":[" });
        self.section = section;
        self.first_in_section = true;
        Ok(())
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.section != Section::None {
            out.extend_from_slice(if self.section == Section::Files { b"\n]" } else { b"]" });
            self.section = Section::None;
        }
    }

    fn separator(&mut self, out: &mut Vec<u8>) {
        if !std::mem::replace(&mut self.first_in_section, false) {
            out.push(b',');
        }
    }
}

impl Writer for JsonWriter {
    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> Result<(), String> {
        match event {
            Event::File(mut f) => {
                if !(self.relink)(&mut f) {
                    return Ok(());
                }
                self.enter(Section::Files, out)?;
                self.separator(out);
                out.push(b'\n');
                out.extend_from_slice(&serde_json::to_vec(&f).map_err(|e| e.to_string())?);
                self.files += 1;
            }
            Event::Version(v) => {
                self.enter(Section::Versions, out)?;
                self.separator(out);
                out.extend_from_slice(&serde_json::to_vec(&v).map_err(|e| e.to_string())?);
            }
            Event::Name(_) => {}
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        self.start(out)?;
        self.close(out);
        if !self.files_seen {
            out.extend_from_slice(b",\"files\":[]");
        }
        let api = if self.versions_seen { "1.1" } else { "1.0" };
        out.extend_from_slice(format!(",\"meta\":{{\"api-version\":\"{api}\"}}}}").as_bytes());
        Ok(())
    }
}

/// Writes a PEP 503 page (with the PEP 592, 658 and 714 attributes), one anchor per file.
pub struct HtmlWriter {
    name: String,
    relink: Relink,
    started: bool,
}

impl HtmlWriter {
    pub fn new(name: &str, relink: Relink) -> HtmlWriter {
        HtmlWriter { name: name.to_string(), relink, started: false }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !std::mem::replace(&mut self.started, true) {
            let name = escape_html(&self.name);
            out.extend_from_slice(
                format!("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.0\">\n    <title>Links for {name}</title>\n  </head>\n  <body>\n    <h1>Links for {name}</h1>\n")
                    .as_bytes(),
            );
        }
    }
}

/// The anchor of one file in a PEP 503 page.
pub fn anchor(f: &FileEntry) -> String {
    let fragment = f.hashes.get_key_value("sha256").or_else(|| f.hashes.iter().next()).map(|(k, v)| format!("#{k}={v}")).unwrap_or_default();
    let mut a = format!("<a href=\"{}{}\"", escape_html(&f.url), escape_html(&fragment));
    if let Some(rp) = &f.requires_python {
        a.push_str(&format!(" data-requires-python=\"{}\"", escape_html(rp)));
    }
    match &f.yanked {
        Some(Yanked::Reason(r)) => a.push_str(&format!(" data-yanked=\"{}\"", escape_html(r))),
        Some(Yanked::Flag(true)) => a.push_str(" data-yanked=\"\""),
        _ => {}
    }
    if let Some(m) = f.metadata() {
        let value = m.sha256().map(|h| format!("sha256={h}")).unwrap_or_else(|| "true".into());
        a.push_str(&format!(" data-core-metadata=\"{}\" data-dist-info-metadata=\"{}\"", escape_html(&value), escape_html(&value)));
    }
    a.push_str(&format!(">{}</a><br />\n", escape_html(&f.filename)));
    a
}

impl Writer for HtmlWriter {
    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> Result<(), String> {
        self.start(out);
        if let Event::File(mut f) = event {
            if (self.relink)(&mut f) {
                out.extend_from_slice(b"    ");
                out.extend_from_slice(anchor(&f).as_bytes());
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        self.start(out);
        out.extend_from_slice(b"  </body>\n</html>\n");
        Ok(())
    }
}

// ------------------------------------------------------------------ pipelines

/// A scanner feeding a writer, one chunk at a time. The writer's closing bytes are written
/// as soon as the scanner has seen the end of the page, so a consumer that writes what each
/// `feed` produced (the engine's store) has the whole page without a last call.
pub struct Pipeline<S: Scanner, W: Writer> {
    pub scanner: S,
    pub writer: W,
    events: Vec<Event>,
    closed: bool,
    /// The most bytes the scanner held between chunks so far.
    pub high_water: usize,
}

impl<S: Scanner, W: Writer> Pipeline<S, W> {
    pub fn new(scanner: S, writer: W) -> Self {
        Pipeline { scanner, writer, events: Vec::new(), closed: false, high_water: 0 }
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.scan(chunk)?;
        self.write(out)
    }

    fn scan(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.scanner.feed(chunk, &mut self.events)?;
        self.high_water = self.high_water.max(self.scanner.held());
        Ok(())
    }

    fn write(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        for e in self.events.drain(..) {
            self.writer.event(e, out)?;
        }
        if self.scanner.complete() && !std::mem::replace(&mut self.closed, true) {
            self.writer.finish(out)?;
        }
        Ok(())
    }

    /// The end of the input: an error when the page was incomplete.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        self.scanner.finish(&mut self.events)?;
        self.write(out)
    }
}

/// What [`PageRewriter`] learned from the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSummary {
    pub files: usize,
    /// `"json"` or `"html"`: what the upstream sent.
    pub source: &'static str,
    /// The most bytes the rewriter's scanner held between chunks.
    pub high_water: usize,
}

/// The upstream's page format, told by its first byte: PEP 691 JSON is an object, anything
/// else is taken for PEP 503 HTML.
enum Source {
    Undecided(Relink),
    Json(Pipeline<JsonScanner, JsonWriter>),
    Html(Pipeline<HtmlScanner, JsonWriter>),
    Failed,
}

/// Normalises an upstream page (PEP 691 JSON or PEP 503 HTML, told apart by the first byte)
/// into the cached PEP 691 JSON, each file passed through `relink` (which points it here).
/// Refuses a page for another project than `project` (normalised) and a truncated one.
pub struct PageRewriter {
    project: String,
    page_url: String,
    source: Source,
}

impl PageRewriter {
    /// `page_url`: where the page was fetched, for relative links.
    pub fn new(project: &str, page_url: &str, relink: Relink) -> PageRewriter {
        PageRewriter { project: project.to_string(), page_url: page_url.to_string(), source: Source::Undecided(relink) }
    }

    /// Bytes the scanner holds between chunks right now.
    pub fn held(&self) -> usize {
        match &self.source {
            Source::Json(p) => p.scanner.held(),
            Source::Html(p) => p.scanner.held(),
            Source::Undecided(_) | Source::Failed => 0,
        }
    }

    /// The name the upstream gave must be this project's (pypi.org answers for the
    /// normalised name; a mix-up upstream must not land in another project's cache).
    fn check_name(&self, events: &[Event]) -> Result<(), String> {
        for e in events {
            if let Event::Name(n) = e {
                if super::filename::normalize(n) != self.project {
                    return Err(format!("the upstream answered for {n:?}, not {}", self.project));
                }
            }
        }
        Ok(())
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if let Source::Undecided(_) = self.source {
            let Some(first) = chunk.iter().find(|b| !b.is_ascii_whitespace()) else { return Ok(()) };
            let Source::Undecided(relink) = std::mem::replace(&mut self.source, Source::Failed) else { return Err("rewriter reused".into()) };
            let writer = JsonWriter::new(&self.project, relink);
            self.source = if *first == b'{' {
                Source::Json(Pipeline::new(JsonScanner::new(), writer))
            } else {
                Source::Html(Pipeline::new(HtmlScanner::new(&self.page_url), writer))
            };
        }
        match &mut self.source {
            Source::Json(p) => {
                p.scan(chunk)?;
                let events = std::mem::take(&mut p.events);
                self.check_name(&events)?;
                if let Source::Json(p) = &mut self.source {
                    p.events = events;
                    p.write(out)?;
                }
                Ok(())
            }
            Source::Html(p) => p.feed(chunk, out),
            Source::Undecided(_) | Source::Failed => Ok(()),
        }
    }

    pub fn finish(mut self) -> Result<PageSummary, String> {
        let mut out = Vec::new();
        let (files, source, high_water) = match &mut self.source {
            Source::Json(p) => {
                p.finish(&mut out)?;
                (p.writer.files, "json", p.high_water)
            }
            Source::Html(p) => {
                p.finish(&mut out)?;
                (p.writer.files, "html", p.high_water)
            }
            Source::Undecided(_) | Source::Failed => return Err("empty page".into()),
        };
        if !out.is_empty() {
            return Err("the page ended before the rewriter closed it".into());
        }
        Ok(PageSummary { files, source, high_water })
    }
}

/// The engine streams an upstream page through the rewriter into the store.
impl crate::upstream::engine::Rewrite for PageRewriter {
    type Output = PageSummary;

    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        PageRewriter::feed(self, chunk, out)
    }

    fn finish(self) -> Result<PageSummary, String> {
        PageRewriter::finish(self)
    }
}

/// Renders the cached PEP 691 JSON of a project for a client: as JSON (file URLs moved to
/// another registry URL by `relink`) or as PEP 503 HTML.
pub enum Renderer {
    Json(Pipeline<JsonScanner, JsonWriter>),
    Html(Pipeline<JsonScanner, HtmlWriter>),
}

impl Renderer {
    pub fn new(name: &str, json: bool, relink: Relink) -> Renderer {
        if json {
            Renderer::Json(Pipeline::new(JsonScanner::new(), JsonWriter::new(name, relink)))
        } else {
            Renderer::Html(Pipeline::new(JsonScanner::new(), HtmlWriter::new(name, relink)))
        }
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Renderer::Json(p) => p.feed(chunk, out),
            Renderer::Html(p) => p.feed(chunk, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Renderer::Json(p) => p.finish(out),
            Renderer::Html(p) => p.finish(out),
        }
    }
}
