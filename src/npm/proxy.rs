//! npm pull-through cache: packuments and tarballs of packages that are not hosted here come
//! from the upstreams (`NPM_UPSTREAMS`) and are kept in R2, by the engine in
//! `crate::upstream::engine`. This adapter declares npm's part:
//!
//! * Packuments (full and abbreviated, cached apart) are documents: asked for with the view's
//!   `Accept` and revalidated with the upstream's ETag / Last-Modified; they pass once through
//!   the streaming rewriter, which points tarball links here and records each tarball's
//!   upstream URL and hashes; served straight from R2 when the registry URL has not changed.
//!   A cached full packument stands in for a missing install view when the upstream fails.
//! * Tarballs are blobs, verified against `dist.integrity` (or `shasum`) from the packument;
//!   without either they are passed through and not cached.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures::future::{FutureExt, LocalBoxFuture};
use futures::StreamExt;

use super::names::{keys, PackageName};
use super::packument::ABBREVIATED_MEDIA_TYPE;
use super::rewrite::{DistRecord, Rewriter};
use crate::error::{Error, Result};
use crate::http::{Body, Headers, Method, PlatformStream, Request, Response};
use crate::platform::{Checksum, Platform, PutOptions};
use crate::upstream::cache::{self, Entry};
use crate::upstream::client::{Failure, Failures, UpstreamRequest};
use crate::upstream::engine::{Adapter, Blob, DocumentError, Fetched, NewCopy, Refresh};
use crate::upstream::{mark, CacheStatus, Engine, ProtocolUpstreams, Upstream};

/// The two packument views npm asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Full,
    Abbreviated,
}

impl Variant {
    pub fn of(req: &Request) -> Variant {
        if req.header("accept").is_some_and(|a| a.contains(ABBREVIATED_MEDIA_TYPE)) {
            Variant::Abbreviated
        } else {
            Variant::Full
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Variant::Full => "full",
            Variant::Abbreviated => "abbreviated",
        }
    }

    fn accept(&self) -> &'static str {
        match self {
            Variant::Full => "application/json",
            Variant::Abbreviated => "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        }
    }

    fn content_type(&self) -> &'static str {
        match self {
            Variant::Full => "application/json",
            Variant::Abbreviated => ABBREVIATED_MEDIA_TYPE,
        }
    }
}

fn entry_key(name: &PackageName, v: Variant) -> String {
    keys::cache_entry(name, v.as_str()).path
}

/// Forgets the cached copies of `name`: its first hosted publish calls this.
pub async fn purge_for_hosted(store: &dyn crate::platform::ObjectStore, name: &PackageName) -> crate::platform::StoreResult<usize> {
    crate::upstream::engine::purge_for_hosted(store, "npm", name.as_str(), &keys::cache_prefix(name)).await
}

/// The largest upstream packument kept (the biggest on npmjs are a few hundred MB).
const MAX_PACKUMENT: u64 = 1 << 30;

/// Which upstream served the tarballs of a package, and their records.
#[derive(serde::Serialize, serde::Deserialize)]
struct DistIndex {
    upstream: String,
    files: BTreeMap<String, DistRecord>,
}

/// npm's errors for the engine's failures, in npm's `{"error": …}` shape.
pub(super) struct NpmAdapter;

impl Adapter for NpmAdapter {
    fn not_found(&self, _what: &str) -> Error {
        Error::not_found("Not found")
    }

    fn unavailable(&self, why: &Failures) -> Error {
        Error::upstream(format!("upstream unavailable: {why}"))
    }

    fn corrupt(&self, why: &Failures) -> Error {
        Error::upstream(why.to_string())
    }
}

/// The proxy for one request: owned, so background work can carry it past the response.
#[derive(Clone)]
pub struct NpmProxy {
    platform: Platform,
    upstreams: Rc<ProtocolUpstreams>,
    registry_url: String,
}

impl NpmProxy {
    pub fn new(platform: Platform, upstreams: Rc<ProtocolUpstreams>, registry_url: String) -> NpmProxy {
        NpmProxy { platform, upstreams, registry_url }
    }

    /// The proxy over what `resolve` found.
    pub fn with_engine(engine: Engine, registry_url: String) -> NpmProxy {
        NpmProxy::new(engine.platform, engine.upstreams, registry_url)
    }

    fn engine(&self) -> Engine {
        Engine::new(self.platform.clone(), self.upstreams.clone())
    }

    /// Whether any upstream may serve `name` (scope rules).
    pub fn serves_name(&self, name: &str) -> bool {
        self.engine().serves(name)
    }

    // ---- packuments ----

    pub async fn packument(&self, req: &Request, name: &PackageName) -> Result<Response> {
        let variant = Variant::of(req);
        let engine = self.engine();
        // A client asking for the install view accepts the full document too (its Accept
        // lists application/json), so a cached full copy stands in for a missing abbreviated
        // one when the upstream fails or is slow.
        let full_copy = || async {
            if variant == Variant::Full {
                return None;
            }
            cache::load(&*self.platform.store, &entry_key(name, Variant::Full)).await.ok().flatten().filter(|c| c.status == 200)
        };
        let refresh = |known| self.refresh_collapsed(name, variant, known);
        match engine.document(&entry_key(name, variant), name.as_str(), full_copy, refresh).await {
            Ok(doc) => {
                let served = if doc.fallback { Variant::Full } else { variant };
                let resp = self.serve_packument(req, name, served, &doc.entry, doc.status).await?;
                Ok(resp.with_edge(doc.edge_hint(self.platform.now_ms(), vec![keys::packument(name).to_string()])))
            }
            Err(DocumentError::Store(e)) => Err(Error::internal(format!("npm proxy: cache storage failed for {name}: {e}"))),
            Err(DocumentError::Upstream(why)) => Err(NpmAdapter.failed(&why)),
        }
    }

    /// Refreshes one view of `name`, collapsed with concurrent refreshes of it.
    fn refresh_collapsed(&self, name: &PackageName, variant: Variant, known: Option<Entry>) -> LocalBoxFuture<'static, Refresh> {
        let (this, n) = (self.clone(), name.clone());
        let work = async move { this.refresh(&n, variant, known).await }.boxed_local();
        self.engine().refresh(&entry_key(name, variant), ("npm", name.to_string(), variant.as_str().to_string()), work)
    }

    /// Asks the upstreams for the view (conditionally, when the cached copy came from the same
    /// one); a new copy is rewritten on its way into the store, and the tarball records it
    /// yields are kept for the tarball route.
    async fn refresh(&self, name: &PackageName, variant: Variant, known: Option<Entry>) -> Refresh {
        let engine = self.engine();
        let key = entry_key(name, variant);
        let request = |u: &Upstream| {
            let mut headers = Headers::new();
            headers.set("Accept", variant.accept());
            UpstreamRequest { method: Method::Get, url: format!("{}/{}", u.url, name.escaped()), headers, body: None }
        };
        let data_prefix = keys::cache_data_prefix(name, variant.as_str());
        let storing = (data_prefix.as_str(), variant.content_type(), MAX_PACKUMENT);
        let rewriter = || Rewriter::new(name, &self.registry_url);
        let NewCopy { upstream, entry, old, output: records } = match engine.fetch_document(&key, name.as_str(), known, request, storing, rewriter).await? {
            Fetched::Revalidated => return Ok(CacheStatus::Revalidated),
            Fetched::Absent => return Ok(CacheStatus::Miss),
            Fetched::Stored(copy) => *copy,
        };
        let index = DistIndex { upstream: upstream.id.clone(), files: records };
        let store_failed = |e: String| Failures::one(&upstream.id, Failure::Store(e));
        let index_body = serde_json::to_vec(&index).map_err(|e| store_failed(e.to_string()))?;
        self.platform.store.put(keys::cache_dist_index(name).as_str(), Body::Bytes(index_body), PutOptions::default()).await.map_err(|e| store_failed(e.to_string()))?;
        let entry = Entry { extra: BTreeMap::from([("base".to_string(), self.registry_url.clone())]), ..entry };
        engine.replace(&key, &entry, old).await?;
        Ok(CacheStatus::Miss)
    }

    async fn serve_packument(&self, req: &Request, name: &PackageName, variant: Variant, entry: &Entry, status: CacheStatus) -> Result<Response> {
        let now = self.platform.now_ms();
        let marked = |r: Response| {
            mark(r, status, &entry.upstream)
                .with_header("Age", entry.age_seconds(now).to_string())
                .with_header("Vary", "Accept")
                .with_header("Cache-Control", "no-cache")
        };
        if entry.status != 200 {
            let e = NpmAdapter.not_found(name.as_str());
            return Ok(marked(crate::error::Render::render(&super::errors::NpmErrors, &e)));
        }
        let Some(data_key) = &entry.data_key else { return Err(Error::internal("cache entry without data")) };
        // Our own validator: the stored copy's key, and the URL it was rewritten for.
        let etag = format!("\"{}\"", crate::util::sha256_hex(format!("{data_key} {}", self.registry_url).as_bytes()));
        if req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag)) {
            return Ok(marked(Response::new(304).with_header("ETag", etag)));
        }
        let Some(obj) = self.platform.store.get(data_key, None).await? else {
            // Replaced by a refresh in between: serve the new copy.
            return match cache::load(&*self.platform.store, &entry_key(name, variant)).await {
                Ok(Some(e)) if e.data_key != entry.data_key && e.data_key.is_some() => Box::pin(self.serve_packument(req, name, variant, &e, status)).await,
                _ => Err(Error::upstream("cached packument missing")),
            };
        };
        let content_type = entry.content_type.clone().unwrap_or_else(|| "application/json".into());
        let mut resp = Response::new(200).with_header("Content-Type", content_type).with_header("ETag", etag);
        if entry.extra.get("base") == Some(&self.registry_url) {
            // The usual case: R2's stream goes out untouched.
            resp.body = obj.body;
        } else {
            let mut rewriter = Rewriter::new(name, &self.registry_url);
            let rewritten = obj
                .body
                .into_chunks()
                .map(move |chunk| {
                    let chunk = chunk?;
                    let mut out = Vec::with_capacity(chunk.len());
                    rewriter.feed(&chunk, &mut out).map_err(crate::http::BodyError::Io)?;
                    Ok(out)
                })
                .boxed_local();
            resp.body = Body::Stream(PlatformStream::from_chunks(rewritten).await.map_err(Error::internal)?);
        }
        Ok(marked(resp))
    }

    /// `GET /{name}/{version-or-tag}`: one version from the cached full packument (its
    /// tarball link already points here).
    pub async fn version(&self, name: &PackageName, version_or_tag: &str, cap: u64) -> Result<Response> {
        let mut req = Request::new(Method::Get, "/");
        req.headers.set("Accept", "application/json");
        let full = self.packument(&req, name).await?;
        if full.status != 200 {
            return Ok(full);
        }
        let (status, upstream) = (full.headers.get("x-cache").unwrap_or("MISS").to_string(), full.headers.get("x-cache-upstream").unwrap_or("").to_string());
        let bytes = full.body.read_capped(cap).await.map_err(|e| Error::upstream(format!("packument too large to pick a version from: {e}")))?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::upstream(format!("cached packument unreadable: {e}")))?;
        match super::packument::version_doc(&doc, version_or_tag) {
            Some(v) => Ok(Response::json(200, v).with_header("X-Cache", status).with_header("X-Cache-Upstream", upstream)),
            None => Err(Error::not_found(format!("version not found: {version_or_tag}"))),
        }
    }

    // ---- tarballs ----

    /// The cached copy of a tarball, if there is one.
    pub async fn cached_tarball(&self, req: &Request, name: &PackageName, file: &str) -> Result<Option<Response>> {
        let key = keys::cached_tarball(name, file);
        let store = &self.platform.store;
        if req.method == Method::Head {
            let Ok(Some(meta)) = store.head(key.as_str()).await else { return Ok(None) };
            let upstream = meta.custom.get("upstream").cloned().unwrap_or_default();
            return Ok(Some(mark(super::tarball_response(Response::new(200), &meta), CacheStatus::Hit, &upstream)));
        }
        let Some(obj) = store.get(key.as_str(), None).await? else { return Ok(None) };
        let upstream = obj.meta.custom.get("upstream").cloned().unwrap_or_default();
        let mut r = super::tarball_response(Response::new(200), &obj.meta);
        r.body = obj.body;
        let kept = mark(r, CacheStatus::Hit, &upstream).with_edge(crate::platform::EdgeHint::artifact(vec![key.to_string()]));
        Ok(Some(ended_by_hosting(kept, name, file)))
    }

    /// A tarball that is not cached: from its upstream, verified into the cache on the way.
    pub async fn fetch_tarball(&self, req: &Request, name: &PackageName, file: &str) -> Result<Response> {
        let key = keys::cached_tarball(name, file);
        let engine = self.engine();
        let (upstream_id, record) = self.dist_record(name, file).await.ok_or_else(|| NpmAdapter.not_found(file))?;
        let upstream = engine.upstream(name.as_str(), &upstream_id).ok_or_else(|| NpmAdapter.not_found(file))?;
        let mut headers = Headers::new();
        headers.set("Accept", "application/octet-stream, */*");
        let request = UpstreamRequest { method: Method::Get, url: record.tarball.clone(), headers, body: None };
        let blob = Blob { key: key.path.clone(), checksum: expected_checksum(&record), marker: None, label: format!("{name}/{file}") };
        let fetched = engine.fetch_blob(req.method == Method::Head, &upstream, name.as_str(), request, blob, key.kind, &NpmAdapter, file).await?;
        Ok(ended_by_hosting(fetched, name, file))
    }

    /// The record for `file`; refetches the packument once if it is not known yet (a version
    /// published after the cached copy was made).
    async fn dist_record(&self, name: &PackageName, file: &str) -> Option<(String, DistRecord)> {
        let store = self.platform.store.clone();
        let lookup = || async {
            let obj = store.get(keys::cache_dist_index(name).as_str(), None).await.ok()??;
            let bytes = obj.body.read_capped(64 * 1024 * 1024).await.ok()?;
            let index: DistIndex = serde_json::from_slice(&bytes).ok()?;
            let rec = index.files.get(file)?.clone();
            Some((index.upstream, rec))
        };
        if let Some(found) = lookup().await {
            return Some(found);
        }
        let entry = cache::load(&*store, &entry_key(name, Variant::Abbreviated)).await.ok().flatten();
        // A copy fetched moments ago will not know it either: spare the upstream.
        let recent = entry.as_ref().is_some_and(|e| self.platform.now_ms() - e.fetched_ms < 10_000.0);
        if recent {
            return None;
        }
        self.refresh_collapsed(name, Variant::Abbreviated, entry).await.ok()?;
        lookup().await
    }
}

/// A mirrored tarball's kept answer ends when the name is hosted here: its first publish
/// writes the packument (and a publish of that version, the tarball's hosted key).
fn ended_by_hosting(resp: Response, name: &PackageName, file: &str) -> Response {
    resp.purged_by(keys::tarball(name, file).to_string()).purged_by(keys::packument(name).to_string())
}

/// What R2 checks the tarball against: sha512 from `integrity`, else sha1 from `shasum`.
fn expected_checksum(record: &DistRecord) -> Option<Checksum> {
    let from_integrity = record.integrity.as_deref().and_then(|sri| {
        sri.split_whitespace().find_map(|h| {
            let b64 = h.strip_prefix("sha512-")?;
            crate::util::b64_decode(b64).filter(|d| d.len() == 64).map(Checksum::Sha512)
        })
    });
    from_integrity.or_else(|| {
        let hex = record.shasum.as_deref()?;
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
            .collect::<Option<Vec<u8>>>()?;
        (bytes.len() == 20).then_some(Checksum::Sha1(bytes))
    })
}
