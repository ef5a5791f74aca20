//! The one seam to the platform. Protocol code talks only to these traits, so the same code
//! runs natively against in-memory backends (`memory`) and in workerd against R2, KV, Durable
//! Objects and fetch (`cloudflare`, wasm32 only).

use std::collections::BTreeMap;
use std::rc::Rc;

use async_trait::async_trait;

use crate::http::{Body, Request, Response};

pub mod conformance;
pub mod digest;
#[cfg(not(target_arch = "wasm32"))]
pub mod memory;
pub mod stream;

#[cfg(target_arch = "wasm32")]
pub mod cloudflare;

/// Everything a request handler may use, cheap to clone.
#[derive(Clone)]
pub struct Platform {
    pub store: Rc<dyn ObjectStore>,
    pub kv: Rc<dyn KvStore>,
    pub coordinator: Rc<dyn Coordinator>,
    pub sessions: Rc<dyn SessionStore>,
    pub fetcher: Rc<dyn Fetcher>,
    pub clock: Rc<dyn Clock>,
    pub crypto: Rc<dyn Crypto>,
    pub background: Rc<dyn Background>,
    pub edge: Rc<dyn EdgeCache>,
}

/// Why a platform call (R2, KV, a Durable Object, fetch, WebCrypto) failed. A checksum that
/// does not match is not an error but an outcome ([`PutOutcome::ChecksumMismatch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The backend failed or refused the call; the message is one short line.
    Backend(String),
    /// A stored record could not be read back as what it should be.
    Corrupt(String),
}

impl StoreError {
    pub fn backend(message: impl std::fmt::Display) -> StoreError {
        StoreError::Backend(message.to_string())
    }

    pub fn corrupt(message: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt(message.to_string())
    }

    pub fn message(&self) -> &str {
        match self {
            StoreError::Backend(m) | StoreError::Corrupt(m) => m,
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Backend(m) => f.write_str(m),
            StoreError::Corrupt(m) => write!(f, "corrupt record: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the object store knows about an object, without its body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Opaque version tag, usable in conditional operations.
    pub etag: String,
    pub content_type: Option<String>,
    pub custom: BTreeMap<String, String>,
    /// Milliseconds since the epoch.
    pub uploaded_ms: f64,
}

/// A byte range as R2 understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `length` bytes from `offset`.
    Slice { offset: u64, length: u64 },
    /// From `offset` to the end.
    From { offset: u64 },
    /// The last `length` bytes.
    Suffix { length: u64 },
}

/// Conditions for conditional reads and writes, compared against the object's etag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Only if the object exists with this etag.
    EtagMatches(String),
    /// Only if the object does not exist (create-only write).
    DoesNotExist,
}

/// A checksum the store verifies on write; the write fails if the bytes disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Sha1(Vec<u8>),
    Sha256(Vec<u8>),
    Sha512(Vec<u8>),
    Md5(Vec<u8>),
}

#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub custom: BTreeMap<String, String>,
    pub checksum: Option<Checksum>,
    pub condition: Option<Condition>,
}

#[derive(Debug)]
pub enum PutOutcome {
    Stored(ObjectMeta),
    /// The condition did not hold; nothing was written.
    ConditionFailed,
    /// The bytes did not match the checksum; nothing was written.
    ChecksumMismatch,
}

#[derive(Debug)]
pub struct Object {
    pub meta: ObjectMeta,
    pub body: Body,
    /// The range served when one was asked for: (offset, length).
    pub range: Option<(u64, u64)>,
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    pub delimiter: Option<String>,
    pub start_after: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    /// Common prefixes when a delimiter was given.
    pub prefixes: Vec<String>,
    /// Present when more results follow.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: u16,
    pub etag: String,
}

/// R2 and its in-memory twin.
#[async_trait(?Send)]
pub trait ObjectStore {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>>;
    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<Option<Object>>;
    async fn put(&self, key: &str, body: Body, opts: PutOptions) -> StoreResult<PutOutcome>;
    async fn delete(&self, keys: &[String]) -> StoreResult<()>;
    async fn list(&self, prefix: &str, opts: ListOptions) -> StoreResult<ListPage>;

    async fn create_multipart(&self, key: &str, opts: PutOptions) -> StoreResult<String>;
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        body: Body,
    ) -> StoreResult<UploadedPart>;
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> StoreResult<ObjectMeta>;
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()>;
}

/// Workers KV and its in-memory twin: read-mostly records such as users and token hashes.
#[async_trait(?Send)]
pub trait KvStore {
    async fn get(&self, key: &str) -> StoreResult<Option<String>>;
    async fn put(&self, key: &str, value: &str, expiration_ttl_secs: Option<u64>)
        -> StoreResult<()>;
    async fn delete(&self, key: &str) -> StoreResult<()>;
    /// Keys under a prefix, one page at a time.
    async fn list(&self, prefix: &str, cursor: Option<String>)
        -> StoreResult<(Vec<String>, Option<String>)>;
}

/// Serialised read-modify-write of shared documents: every job for one `lock` runs alone, in
/// order, inside one Durable Object (in memory: behind one async mutex). Jobs are data
/// addressed to a protocol ([`JobRequest`](crate::jobs::JobRequest)); `crate::jobs::execute`
/// finds who runs them.
#[async_trait(?Send)]
pub trait Coordinator {
    async fn run(&self, lock: &str, job: crate::jobs::JobRequest) -> crate::jobs::JobResult;
}

/// What to remove when a session expires or is cancelled: an open multipart upload and
/// temporary objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cleanup {
    pub multipart: Option<(String, String)>,
    pub keys: Vec<String>,
}

/// Short-lived sessions (OCI uploads) with compare-and-set updates; a session idle past its
/// time-to-live is cleaned up by the platform (a Durable Object alarm in the Worker).
#[async_trait(?Send)]
pub trait SessionStore {
    async fn create(&self, id: &str, record: &serde_json::Value, cleanup: &Cleanup, ttl_ms: f64) -> StoreResult<()>;
    /// The record and its version.
    async fn get(&self, id: &str) -> StoreResult<Option<(serde_json::Value, u64)>>;
    /// Replaces the record if its version is still `version`; false when another request won.
    async fn update(&self, id: &str, version: u64, record: &serde_json::Value, cleanup: &Cleanup, ttl_ms: f64) -> StoreResult<bool>;
    /// Forgets the session (its objects are the caller's to remove or keep).
    async fn delete(&self, id: &str) -> StoreResult<()>;
}

/// A runtime error as one short line: the message without the JavaScript stack trace that
/// follows it, so nothing of the runtime's internals reaches a log line or, worse, a body.
pub fn error_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("unknown error");
    line.chars().take(200).collect()
}

/// Every item of a paged listing: `page(cursor)` gives one page and the cursor of the next
/// (`None` after the last). The one loop over listing cursors, for R2 and KV alike.
pub async fn follow_pages<T, F, Fut>(mut page: F) -> StoreResult<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = StoreResult<(Vec<T>, Option<String>)>>,
{
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let (items, next) = page(cursor).await?;
        out.extend(items);
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Every object under `prefix`, following the listing's pages.
pub async fn list_all(store: &dyn ObjectStore, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
    follow_pages(|cursor| async move {
        let page = store.list(prefix, ListOptions { cursor, ..Default::default() }).await?;
        Ok((page.objects, page.cursor))
    })
    .await
}

/// Every KV key under `prefix`, following the listing's pages.
pub async fn kv_list_all(kv: &dyn KvStore, prefix: &str) -> StoreResult<Vec<String>> {
    follow_pages(|cursor| kv.list(prefix, cursor)).await
}

/// Aborts the multipart upload and deletes the temporary objects of a session.
pub async fn run_cleanup(store: &dyn ObjectStore, cleanup: &Cleanup) {
    if let Some((key, upload)) = &cleanup.multipart {
        let _ = store.abort_multipart(key, upload).await;
    }
    if !cleanup.keys.is_empty() {
        let _ = store.delete(&cleanup.keys).await;
    }
}

/// Outbound HTTP (upstream registries).
///
/// One request, one response: a fetcher never follows redirects. A 301, 302, 303, 307 or 308
/// comes back as it is, with its `Location` header (its body may be dropped), as the Fetch
/// standard's `redirect: "manual"` would give it to a server. `upstream::client` follows them,
/// so that credentials never travel to an origin they were not meant for.
#[async_trait(?Send)]
pub trait Fetcher {
    async fn fetch(&self, url: &str, req: Request) -> StoreResult<Response>;
}

/// The statuses a `Location` is followed for (RFC 9110 §15.4).
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

pub trait Clock {
    fn now_ms(&self) -> f64;
    /// Resolves after `ms` milliseconds (timeouts, retry backoff).
    fn sleep(&self, ms: u64) -> futures::future::LocalBoxFuture<'static, ()>;
}

/// Work that goes on after the response is sent: cache fills, background revalidation. In the
/// Worker this is `ctx.wait_until`, which keeps the isolate alive for it.
pub trait Background {
    fn spawn(&self, work: futures::future::LocalBoxFuture<'static, ()>);
}

/// Slow key derivation, run by the platform's native crypto where there is one (WebCrypto in
/// the Worker), so password checks do not burn wasm CPU time.
#[async_trait(?Send)]
pub trait Crypto {
    async fn pbkdf2_sha256(&self, password: &str, salt: &[u8], iterations: u32) -> StoreResult<[u8; 32]>;
}

/// Which tiers of the edge cache are on (`EDGE_CACHE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeTiers {
    /// Answers kept in this isolate's memory.
    pub memory: bool,
    /// Immutable answers kept in the data center's HTTP cache (the Cache API).
    pub http: bool,
}

impl EdgeTiers {
    pub const ALL: EdgeTiers = EdgeTiers { memory: true, http: true };
    pub const NONE: EdgeTiers = EdgeTiers { memory: false, http: false };

    pub fn any(&self) -> bool {
        self.memory || self.http
    }
}

/// How a handler lets the router keep its answer (`Response::edge`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeHint {
    /// The storage keys the answer was made from: a write to any of them (through
    /// `Storage`) purges it.
    pub tags: Vec<String>,
    /// How long it may be served without asking storage again.
    pub seconds: u32,
    /// The same bytes forever under this URL (an artifact, a content-addressed blob): also
    /// kept in the HTTP tier.
    pub immutable: bool,
    /// The handler read what it answers with after its own writes (a refresh of the cache
    /// it then serves): the purges this request made do not stop the answer being kept, any
    /// other purge since the request began still does.
    pub after_own_writes: bool,
}

impl EdgeHint {
    /// How long another isolate may serve a hosted document after a write here (this one
    /// purges at once; the HTTP tier never holds documents).
    pub const DOCUMENT_SECONDS: u32 = 2;
    /// Artifacts: a day in the HTTP tier (a deleted one may be served that long by data
    /// centers other than the one that deleted it, as from any CDN).
    pub const ARTIFACT_SECONDS: u32 = 86_400;
    /// The most a mirrored document is kept, whatever the upstream's TTL.
    pub const MIRRORED_SECONDS: u32 = 300;

    /// A hosted document made from the storage keys `tags`.
    pub fn document(tags: Vec<String>) -> EdgeHint {
        EdgeHint { tags, seconds: Self::DOCUMENT_SECONDS, immutable: false, after_own_writes: false }
    }

    /// A mirrored document fresh for `fresh_ms` more in the pull-through cache.
    pub fn mirrored(tags: Vec<String>, fresh_ms: f64) -> Option<EdgeHint> {
        let seconds = (fresh_ms / 1000.0).floor().min(f64::from(Self::MIRRORED_SECONDS));
        (seconds >= 1.0).then_some(EdgeHint { tags, seconds: seconds as u32, immutable: false, after_own_writes: false })
    }

    /// An artifact: the same bytes forever under its URL.
    pub fn artifact(tags: Vec<String>) -> EdgeHint {
        EdgeHint { tags, seconds: Self::ARTIFACT_SECONDS, immutable: true, after_own_writes: false }
    }

    /// The same hint for an answer read after this request's own writes (see
    /// `after_own_writes`).
    pub fn after_own_writes(self, after: bool) -> EdgeHint {
        EdgeHint { after_own_writes: after, ..self }
    }
}

/// Answers to anonymous GETs kept in front of the object store, so a hot path costs no
/// storage operation. The router looks answers up by request (URL and `Accept`) and keeps
/// those a handler marked with an [`EdgeHint`]; `Storage` purges by tag on every write.
#[async_trait(?Send)]
pub trait EdgeCache {
    /// A kept answer for `key` (a 304 when `if_none_match` names its ETag).
    async fn lookup(&self, key: &str, if_none_match: Option<&str>) -> Option<Response>;
    /// A number that changes with every purge: an answer made while it changed may have
    /// been read before a write and must not be kept.
    fn generation(&self) -> u64;
    /// How many purges went through this handle: the request's own, where the platform
    /// gives each request its handle (the Worker); all of them otherwise.
    fn own_purges(&self) -> u64 {
        self.generation()
    }
    /// Keeps a copy of a 200 answer as it is sent, unless a purge came after `generation`
    /// (taken before the answer was made) by the time it is kept; returns what to send.
    async fn keep(&self, key: &str, hint: &EdgeHint, generation: u64, resp: Response) -> Response;
    /// Forgets every answer made from the storage key `tag`.
    async fn purge(&self, tag: &str);
    /// Forgets every answer this isolate keeps (the admin API's cache purge).
    async fn purge_all(&self);
    /// What this isolate keeps (in `GET /-/admin/stats`): counts, never keys.
    fn stats(&self) -> serde_json::Value {
        serde_json::json!({})
    }
}

/// No edge cache (`EDGE_CACHE=off`, and platforms without one).
pub struct NoEdgeCache;

#[async_trait(?Send)]
impl EdgeCache for NoEdgeCache {
    async fn lookup(&self, _key: &str, _if_none_match: Option<&str>) -> Option<Response> {
        None
    }

    fn generation(&self) -> u64 {
        0
    }

    async fn keep(&self, _key: &str, _hint: &EdgeHint, _generation: u64, resp: Response) -> Response {
        resp
    }

    async fn purge(&self, _tag: &str) {}

    async fn purge_all(&self) {}
}

impl Platform {
    pub fn now_ms(&self) -> f64 {
        self.clock.now_ms()
    }

    /// Current time as an RFC 3339 string with milliseconds, as npm writes it.
    pub fn now_iso(&self) -> String {
        crate::util::iso8601(self.now_ms())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_lines_drop_stack_traces() {
        let js = "JsValue(TypeError: Invalid expiration_ttl of 1\n    at KvNamespace.put (kv.js:12:3)\n    at worker.js:1:1)";
        assert_eq!(super::error_line(js), "JsValue(TypeError: Invalid expiration_ttl of 1");
        assert_eq!(super::error_line("\n\n"), "unknown error");
        assert_eq!(super::error_line(&"x".repeat(500)).len(), 200);
    }
}
