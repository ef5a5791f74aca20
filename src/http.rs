//! The request, response and body types every protocol handler sees.
//!
//! `Body::Stream` carries the platform's own stream (a JS `ReadableStream` in the Worker)
//! opaquely: a download or a pass-through upload never copies bytes into wasm. A handler that
//! must look at the bytes asks for them explicitly, under a cap, with [`Body::read_capped`].

use serde::Serialize;

pub use crate::platform::stream::PlatformStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }

    /// GET and HEAD only read.
    pub fn is_read(&self) -> bool {
        matches!(self, Method::Get | Method::Head)
    }
}

/// Header list with case-insensitive lookup; order and duplicates are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every header of this name.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.0.push((name.to_string(), value.into()));
    }

    pub fn append(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_string(), value.into()));
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is larger than the cap the caller set.
    TooLarge { limit: u64 },
    /// The stream failed (client went away, upstream reset).
    Io(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { limit } => write!(f, "body larger than {limit} bytes"),
            BodyError::Io(e) => write!(f, "body stream failed: {e}"),
        }
    }
}

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    Stream(PlatformStream),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => write!(f, "Body::Empty"),
            Body::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            Body::Stream(s) => write!(f, "Body::Stream(length {:?})", s.length()),
        }
    }
}

impl Body {
    /// Length when known without reading.
    pub fn known_length(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Bytes(b) => Some(b.len() as u64),
            Body::Stream(s) => s.length(),
        }
    }

    /// Reads the whole body into memory, refusing more than `limit` bytes.
    pub async fn read_capped(self, limit: u64) -> Result<Vec<u8>, BodyError> {
        match self {
            Body::Empty => Ok(Vec::new()),
            Body::Bytes(b) if b.len() as u64 > limit => Err(BodyError::TooLarge { limit }),
            Body::Bytes(b) => Ok(b),
            Body::Stream(s) => {
                if s.length().is_some_and(|n| n > limit) {
                    return Err(BodyError::TooLarge { limit });
                }
                s.read_capped(limit).await
            }
        }
    }
}

/// A body read piece by piece, for the few handlers that must see every byte (hashing) but
/// must not hold them all.
pub type Chunks = futures::stream::LocalBoxStream<'static, Result<Vec<u8>, BodyError>>;

impl Body {
    pub fn into_chunks(self) -> Chunks {
        use futures::StreamExt;
        match self {
            Body::Empty => futures::stream::empty().boxed_local(),
            Body::Bytes(b) => futures::stream::once(async move { Ok(b) }).boxed_local(),
            Body::Stream(s) => s.into_chunks(),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body::Bytes(v)
    }
}

impl From<String> for Body {
    fn from(v: String) -> Self {
        Body::Bytes(v.into_bytes())
    }
}

/// Who sent a request: informational only (audit, hooks, upstream selection), never a grant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Actor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// Scheme, host and port the client used, e.g. `http://127.0.0.1:8787`.
    pub origin: String,
    /// Path exactly as sent, still percent-encoded, without the query string.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Headers,
    pub body: Body,
    pub actor: Actor,
}

impl Request {
    /// A request for tests and internal calls.
    pub fn new(method: Method, path_and_query: &str) -> Request {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_string(), parse_query(q)),
            None => (path_and_query.to_string(), Vec::new()),
        };
        Request {
            method,
            origin: "http://localhost".to_string(),
            path,
            query,
            headers: Headers::new(),
            body: Body::Empty,
            actor: Actor::default(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.append(name, value);
        self
    }

    pub fn with_body(mut self, body: impl Into<Body>) -> Request {
        self.body = body.into();
        self
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// Splits and percent-decodes a query string (`+` means space, as in forms).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_query_part(k), decode_query_part(v))
        })
        .collect()
}

fn decode_query_part(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-decodes one path segment; `None` when the result is not UTF-8.
pub fn decode_path(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// A reason phrase other than the status's standard one (RFC 9112 §4): PyPI clients
    /// (twine) print it as the error message, as pypi.org sends it.
    pub reason: Option<String>,
    pub headers: Headers,
    pub body: Body,
    /// Set by a handler whose answer the router may keep in the edge cache.
    pub edge: Option<Box<crate::platform::EdgeHint>>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: None,
            headers: Headers::new(),
            body: Body::Empty,
            edge: None,
        }
    }

    /// Lets the router keep this answer in the edge cache (see `platform::EdgeCache`); `None`
    /// leaves it as it is.
    pub fn with_edge(mut self, hint: impl Into<Option<crate::platform::EdgeHint>>) -> Response {
        if let Some(hint) = hint.into() {
            self.edge = Some(Box::new(hint));
        }
        self
    }

    /// A kept copy of this answer (if it may be kept at all) is also forgotten when `tag` is
    /// written: a mirrored artifact by its name's first hosted publish.
    pub fn purged_by(mut self, tag: impl Into<String>) -> Response {
        if let Some(hint) = self.edge.as_mut() {
            hint.tags.push(tag.into());
        }
        self
    }

    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Response::bytes(status, "application/json", bytes)
    }

    pub fn bytes(status: u16, content_type: &str, bytes: Vec<u8>) -> Response {
        let mut r = Response::new(status);
        r.headers.set("Content-Type", content_type);
        r.headers.set("Content-Length", bytes.len().to_string());
        r.body = Body::Bytes(bytes);
        r
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.set(name, value);
        self
    }

    /// With `reason` as the reason phrase: visible ASCII and spaces only (anything else
    /// becomes `?`), at most 300 bytes, so the runtime always accepts it.
    pub fn with_reason(mut self, reason: &str) -> Response {
        let safe: String = reason.chars().map(|c| if c == ' ' || c.is_ascii_graphic() { c } else { '?' }).take(300).collect();
        self.reason = Some(safe).filter(|r| !r.trim().is_empty());
        self
    }

    /// Drops the body but keeps every header (Content-Length included), for HEAD.
    pub fn without_body(mut self) -> Response {
        self.body = Body::Empty;
        self
    }

    /// Reads a response body (tests and small internal documents).
    pub async fn into_bytes(self) -> Vec<u8> {
        self.body.read_capped(u64::MAX).await.unwrap_or_default()
    }
}
