//! npm pull-through cache: packuments and tarballs of packages that are not hosted here come
//! from the upstreams (`NPM_UPSTREAMS`) and are kept in R2.
//!
//! * Packuments (full and abbreviated, cached apart) pass once through the streaming
//!   rewriter, which points tarball links here and records each tarball's upstream URL and
//!   hashes; the rewritten bytes go to R2 part by part and are served from there, straight
//!   from R2 when the registry URL has not changed. Mutable: TTL, stale-while-revalidate,
//!   stale-if-error, conditional revalidation, negative entries for 404s.
//! * Tarballs are immutable: streamed to the client and into R2 at once (`tee`), R2 checking
//!   `dist.integrity` (or `shasum`) on the way in; the client's copy holds back its last
//!   chunk until R2 has accepted the bytes, so a corrupt upstream byte is neither cached nor
//!   delivered whole.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures::future::{select, Either, FutureExt, LocalBoxFuture};
use futures::StreamExt;

use super::error;
use super::names::PackageName;
use super::packument::ABBREVIATED_MEDIA_TYPE;
use super::rewrite::{DistRecord, Rewriter};
use crate::http::{Body, Headers, Method, PlatformStream, Request, Response};
use crate::platform::{Checksum, Platform, PutOptions, PutOutcome};
use crate::storage::writer::ObjectWriter;
use crate::upstream::cache::{self, Entry};
use crate::upstream::client::{fetch_first, fetch_one, Fetched, Outcome, UpstreamRequest};
use crate::upstream::{cache_while_streaming, cached_document, mark, refresh_document, CachePolicy, DocumentError, CacheStatus, ProtocolUpstreams, Upstream};

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
}

fn entry_key(name: &PackageName, v: Variant) -> String {
    format!("npm/cache/{name}/{}.entry.json", v.as_str())
}

fn dist_key(name: &PackageName) -> String {
    format!("npm/cache/{name}/dist.json")
}

pub fn tarball_key(name: &PackageName, file: &str) -> String {
    format!("npm/cache/{name}/-/{file}")
}

/// Everything under which a package's cached copies live.
pub fn cache_prefix(name: &PackageName) -> String {
    format!("npm/cache/{name}/")
}

/// Which upstream served the tarballs of a package, and their records.
#[derive(serde::Serialize, serde::Deserialize)]
struct DistIndex {
    upstream: String,
    files: BTreeMap<String, DistRecord>,
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

    /// Whether any upstream may serve `name` (scope rules).
    pub fn serves_name(&self, name: &str) -> bool {
        !self.upstreams.select(name).is_empty()
    }

    fn upstream(&self, name: &PackageName, id: &str) -> Option<Upstream> {
        self.upstreams.select(name.as_str()).into_iter().find(|u| u.id == id).cloned()
    }

    fn policy(&self, name: &PackageName, upstream_id: &str) -> CachePolicy {
        self.upstream(name, upstream_id)
            .or_else(|| self.upstreams.select(name.as_str()).first().map(|u| (*u).clone()))
            .map(|u| u.cache)
            .unwrap_or_default()
    }

    // ---- packuments ----

    pub async fn packument(&self, req: &Request, name: &PackageName) -> Response {
        let variant = Variant::of(req);
        let policy = |entry: &Entry| self.policy(name, &entry.upstream);
        let refresh = || self.refresh_collapsed(name, variant);
        match cached_document(&self.platform, &entry_key(name, variant), policy, refresh).await {
            Ok((entry, status)) => self.serve_packument(req, name, variant, &entry, status).await,
            Err(DocumentError::Store(e)) => {
                crate::logging::error(&format!("npm proxy: cache storage failed for {name}: {e}"));
                error(502, "the cache's storage failed")
            }
            // Stale-if-error: an old copy beats no answer. A client asking for the install
            // view accepts the full document too (its Accept lists application/json), so
            // a cached full copy stands in for a missing abbreviated one.
            Err(DocumentError::Upstream { error: e, stale }) => {
                let mut fallback = stale.map(|c| (variant, c));
                if fallback.is_none() && variant == Variant::Abbreviated {
                    let full = cache::load(&*self.platform.store, &entry_key(name, Variant::Full)).await.ok().flatten();
                    fallback = full.filter(|c| c.status == 200).map(|c| (Variant::Full, c));
                }
                match fallback {
                    Some((v, entry)) => {
                        crate::logging::log("warn", &format!("serving stale {name}: {e}"));
                        self.serve_packument(req, name, v, &entry, CacheStatus::Stale).await
                    }
                    None => error(502, format!("upstream unavailable: {e}")),
                }
            }
        }
    }

    /// Refreshes one view of `name`, collapsed with concurrent refreshes of it.
    fn refresh_collapsed(&self, name: &PackageName, variant: Variant) -> LocalBoxFuture<'static, cache::Refresh> {
        let (this, n) = (self.clone(), name.clone());
        let work = async move { this.refresh(&n, variant).await }.boxed_local();
        let label = ("npm", name.to_string(), variant.as_str().to_string());
        refresh_document(&self.platform, entry_key(name, variant), label, work)
    }

    /// Asks the upstreams (conditionally, when the cached copy came from the same one) and
    /// records the result.
    async fn refresh(&self, name: &PackageName, variant: Variant) -> cache::Refresh {
        let store = self.platform.store.clone();
        let key = entry_key(name, variant);
        let old = cache::load(&*store, &key).await.ok().flatten().filter(|e| e.status == 200);
        let selected = self.upstreams.select(name.as_str());
        let fetched = fetch_first(&self.platform, &selected, name.as_str(), |u| {
            let mut headers = Headers::new();
            headers.set("Accept", variant.accept());
            if let Some(old) = old.as_ref().filter(|o| o.upstream == u.id) {
                if let Some(etag) = &old.etag {
                    headers.set("If-None-Match", etag.clone());
                }
                if let Some(lm) = &old.last_modified {
                    headers.set("If-Modified-Since", lm.clone());
                }
            }
            Some(UpstreamRequest { method: Method::Get, url: format!("{}/{}", u.url, name.escaped()), headers, body: None })
        })
        .await;
        let now = self.platform.now_ms();
        match fetched {
            Fetched::Found { upstream, response } if response.status == 304 => {
                let Some(mut entry) = old else { return Err("304 without a cached copy".into()) };
                entry.fetched_ms = now;
                entry.expires_ms = now + upstream.cache.default_ttl_seconds as f64 * 1000.0;
                cache::save(&*store, &key, &entry).await.map_err(|e| e.to_string())?;
                Ok(CacheStatus::Revalidated)
            }
            Fetched::Found { upstream, response } => {
                self.store_packument(name, variant, &upstream, response, old).await?;
                Ok(CacheStatus::Miss)
            }
            Fetched::NotFound => {
                let entry = Entry::absent(selected.first().copied(), now);
                cache::save(&*store, &key, &entry).await.map_err(|e| e.to_string())?;
                Ok(CacheStatus::Miss)
            }
            Fetched::Unavailable(e) => Err(e),
        }
    }

    /// Streams the upstream document through the rewriter into a new object, then points the
    /// entry (and the tarball index) at it.
    async fn store_packument(
        &self,
        name: &PackageName,
        variant: Variant,
        upstream: &Upstream,
        response: Response,
        old: Option<Entry>,
    ) -> Result<(), String> {
        let store = self.platform.store.clone();
        let content_type = match variant {
            Variant::Full => "application/json",
            Variant::Abbreviated => ABBREVIATED_MEDIA_TYPE,
        };
        let data_key = format!("npm/cache/{name}/{}-{}.json", variant.as_str(), uuid::Uuid::new_v4().simple());
        let opts = PutOptions { content_type: Some(content_type.into()), ..Default::default() };
        let mut writer = ObjectWriter::new(store.clone(), &data_key, opts);
        let mut rewriter = Rewriter::new(name, &self.registry_url);
        let etag = response.headers.get("etag").map(str::to_string);
        let last_modified = response.headers.get("last-modified").map(str::to_string);
        let mut chunks = response.body.into_chunks();
        let mut out = Vec::new();
        let timeout = upstream.resilience.timeout_ms;
        let copied: Result<(), String> = async {
            loop {
                let next = match select(chunks.next(), self.platform.clock.sleep(timeout)).await {
                    Either::Left((next, _)) => next,
                    Either::Right(_) => return Err(format!("upstream body stalled for {timeout} ms")),
                };
                let Some(chunk) = next else { return Ok(()) };
                let chunk = chunk.map_err(|e| e.to_string())?;
                out.clear();
                rewriter.feed(&chunk, &mut out)?;
                writer.write(&out).await.map_err(|e| e.to_string())?;
            }
        }
        .await;
        let records = match copied.and_then(|_| rewriter.finish()) {
            Ok(r) => r,
            Err(e) => {
                writer.abort().await;
                return Err(format!("{}: {e}", upstream.id));
            }
        };
        let meta = writer.finish().await.map_err(|e| e.to_string())?;
        let index = DistIndex { upstream: upstream.id.clone(), files: records };
        let index_body = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
        store
            .put(&dist_key(name), Body::Bytes(index_body), PutOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let now = self.platform.now_ms();
        let entry = Entry {
            status: 200,
            data_key: Some(data_key),
            upstream: upstream.id.clone(),
            fetched_ms: now,
            expires_ms: now + upstream.cache.default_ttl_seconds as f64 * 1000.0,
            etag,
            last_modified,
            content_type: Some(content_type.into()),
            size: meta.size,
            extra: BTreeMap::from([("base".to_string(), self.registry_url.clone())]),
        };
        cache::save(&*store, &entry_key(name, variant), &entry).await.map_err(|e| e.to_string())?;
        if let Some(old_key) = old.and_then(|o| o.data_key) {
            let _ = store.delete(&[old_key]).await;
        }
        Ok(())
    }

    async fn serve_packument(&self, req: &Request, name: &PackageName, variant: Variant, entry: &Entry, status: CacheStatus) -> Response {
        let now = self.platform.now_ms();
        let marked = |r: Response| {
            mark(r, status, &entry.upstream)
                .with_header("Age", entry.age_seconds(now).to_string())
                .with_header("Vary", "Accept")
                .with_header("Cache-Control", "no-cache")
        };
        if entry.status != 200 {
            return marked(error(404, "Not found"));
        }
        let Some(data_key) = &entry.data_key else { return error(500, "cache entry without data") };
        // Our own validator: the stored copy's key, and the URL it was rewritten for.
        let etag = format!("\"{}\"", crate::util::sha256_hex(format!("{data_key} {}", self.registry_url).as_bytes()));
        if req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag)) {
            return marked(Response::new(304).with_header("ETag", etag));
        }
        let obj = match self.platform.store.get(data_key, None).await {
            Ok(Some(o)) => o,
            // Replaced by a refresh in between: serve the new copy.
            Ok(None) => {
                return match cache::load(&*self.platform.store, &entry_key(name, variant)).await {
                    Ok(Some(e)) if e.data_key != entry.data_key && e.data_key.is_some() => {
                        Box::pin(self.serve_packument(req, name, variant, &e, status)).await
                    }
                    _ => error(502, "cached packument missing"),
                };
            }
            Err(e) => return error(500, e.to_string()),
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
            match PlatformStream::from_chunks(rewritten).await {
                Ok(s) => resp.body = Body::Stream(s),
                Err(e) => return error(500, e.to_string()),
            }
        }
        marked(resp)
    }

    /// `GET /{name}/{version-or-tag}`: one version from the cached full packument (its
    /// tarball link already points here).
    pub async fn version(&self, name: &PackageName, version_or_tag: &str, cap: u64) -> Response {
        let mut req = Request::new(Method::Get, "/");
        req.headers.set("Accept", "application/json");
        let full = self.packument(&req, name).await;
        if full.status != 200 {
            return full;
        }
        let (status, upstream) = (full.headers.get("x-cache").unwrap_or("MISS").to_string(), full.headers.get("x-cache-upstream").unwrap_or("").to_string());
        let bytes = match full.body.read_capped(cap).await {
            Ok(b) => b,
            Err(e) => return error(502, format!("packument too large to pick a version from: {e}")),
        };
        let doc: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(d) => d,
            Err(e) => return error(502, format!("cached packument unreadable: {e}")),
        };
        match super::packument::version_doc(&doc, version_or_tag) {
            Some(v) => Response::json(200, v).with_header("X-Cache", status).with_header("X-Cache-Upstream", upstream),
            None => error(404, format!("version not found: {version_or_tag}")),
        }
    }

    // ---- tarballs ----

    /// The cached copy of a tarball, if there is one (an error when the store fails).
    pub async fn cached_tarball(&self, req: &Request, name: &PackageName, file: &str) -> Option<Response> {
        let key = tarball_key(name, file);
        let store = &self.platform.store;
        if req.method == Method::Head {
            let meta = store.head(&key).await.ok().flatten()?;
            let upstream = meta.custom.get("upstream").cloned().unwrap_or_default();
            return Some(mark(super::tarball_response(Response::new(200), &meta), CacheStatus::Hit, &upstream));
        }
        match store.get(&key, None).await {
            Ok(Some(obj)) => {
                let upstream = obj.meta.custom.get("upstream").cloned().unwrap_or_default();
                let mut r = super::tarball_response(Response::new(200), &obj.meta);
                r.body = obj.body;
                Some(mark(r, CacheStatus::Hit, &upstream))
            }
            Ok(None) => None,
            Err(e) => Some(error(500, e.to_string())),
        }
    }

    /// A tarball that is not cached: from its upstream, verified into the cache on the way.
    pub async fn fetch_tarball(&self, req: &Request, name: &PackageName, file: &str) -> Response {
        let key = tarball_key(name, file);
        let store = self.platform.store.clone();
        let Some((upstream_id, record)) = self.dist_record(name, file).await else {
            return error(404, "Not found");
        };
        let Some(upstream) = self.upstream(name, &upstream_id) else {
            return error(404, "Not found");
        };
        let mut headers = Headers::new();
        headers.set("Accept", "application/octet-stream, */*");
        let request = UpstreamRequest { method: Method::Get, url: record.tarball.clone(), headers, body: None };
        let response = match fetch_one(&self.platform, &upstream, name.as_str(), request).await {
            Outcome::Answer(r) if r.status == 200 => r,
            Outcome::Answer(r) => return error(502, format!("upstream answered {}", r.status)),
            Outcome::NotFound => return error(404, "Not found"),
            Outcome::Failed(e) => return error(502, format!("upstream unavailable: {e}")),
        };
        let checksum = expected_checksum(&record);
        let opts = PutOptions {
            content_type: Some("application/octet-stream".into()),
            custom: BTreeMap::from([
                ("upstream".to_string(), upstream.id.clone()),
                ("fetched".to_string(), crate::util::iso8601(self.platform.now_ms())),
            ]),
            checksum: checksum.clone(),
            condition: None,
        };
        let respond = |body: Body, length: Option<u64>| {
            let mut r = Response::new(200)
                .with_header("Content-Type", "application/octet-stream")
                .with_header("Content-Encoding", "identity")
                .with_header("Cache-Control", "public, max-age=31536000, immutable");
            if let Some(n) = length {
                r = r.with_header("Content-Length", n.to_string());
            }
            r.body = body;
            mark(r, CacheStatus::Miss, &upstream.id)
        };
        if req.method == Method::Head {
            let length = response.body.known_length();
            return respond(Body::Empty, length);
        }
        if checksum.is_none() {
            crate::logging::log("warn", &format!("{name}/{file}: no integrity to verify against; not cached"));
            let length = response.body.known_length();
            return respond(response.body, length);
        }
        match response.body {
            Body::Stream(s) if s.length().is_some() => {
                let length = s.length();
                let gated = cache_while_streaming(&self.platform, key, s, opts, None, format!("{name}/{file}"));
                respond(Body::Stream(gated), length)
            }
            Body::Stream(s) => {
                // No length: R2 cannot take it as it comes, and holding it in the isolate to
                // verify it first could take all its memory. npm checks the integrity itself.
                crate::logging::log("warn", &format!("{name}/{file}: upstream sent no length; not cached"));
                respond(Body::Stream(s), None)
            }
            // Bytes already in memory (the in-memory platform): store first, answer only with
            // what was verified.
            body => {
                let bytes = match body.read_capped(u64::MAX).await {
                    Ok(b) => b,
                    Err(e) => return error(502, format!("upstream body: {e}")),
                };
                match store.put(&key, Body::Bytes(bytes), opts).await {
                    // Served from the verified copy, which R2 streams.
                    Ok(PutOutcome::Stored(_)) => match store.get(&key, None).await {
                        Ok(Some(obj)) => respond(obj.body, Some(obj.meta.size)),
                        Ok(None) => error(502, "cached tarball vanished"),
                        Err(e) => error(500, e.to_string()),
                    },
                    Ok(PutOutcome::ChecksumMismatch) => error(502, format!("{file} from {} failed its integrity check", upstream.id)),
                    Ok(PutOutcome::ConditionFailed) => error(500, "unexpected write condition"),
                    Err(e) => error(500, e.to_string()),
                }
            }
        }
    }

    /// The record for `file`; refetches the packument once if it is not known yet (a version
    /// published after the cached copy was made).
    async fn dist_record(&self, name: &PackageName, file: &str) -> Option<(String, DistRecord)> {
        let store = self.platform.store.clone();
        let lookup = || async {
            let obj = store.get(&dist_key(name), None).await.ok()??;
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
        let recent = entry.is_some_and(|e| self.platform.now_ms() - e.fetched_ms < 10_000.0);
        if recent {
            return None;
        }
        self.refresh_collapsed(name, Variant::Abbreviated).await.ok()?;
        lookup().await
    }

    // ---- search ----

    /// Appends the first upstream's search results for names not hosted here (and that the
    /// upstream may serve) to `result`, up to `size` objects. The upstream failing (no
    /// answer, an error status, a body that is not a search result) is an
    /// [`Kind::Upstream`](crate::error::Kind::Upstream) error and leaves `result` as it is;
    /// the caller decides whether the hosted results alone answer.
    pub async fn merge_search(&self, result: &mut serde_json::Value, text: &str, size: usize, from: usize, hosted: &std::collections::BTreeSet<String>) -> crate::error::Result<()> {
        let Some(mut upstream) = self.upstreams.upstreams.iter().find(|u| u.enabled).cloned() else { return Ok(()) };
        // Search is a nicety: one quick try, no retries, rather than a slow answer.
        upstream.resilience.max_retries = 0;
        upstream.resilience.timeout_ms = upstream.resilience.timeout_ms.min(5000);
        let have = result["objects"].as_array().map(Vec::len).unwrap_or(0);
        if have >= size {
            return Ok(());
        }
        let hosted_total = result["total"].as_u64().unwrap_or(0) as usize;
        // Past the hosted results, the upstream's pages continue where they left off.
        let upstream_from = from.saturating_sub(hosted_total);
        let q = |v: &str| percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
        let url = format!("{}/-/v1/search?text={}&size={}&from={upstream_from}", upstream.url, q(text), size - have);
        let mut headers = Headers::new();
        headers.set("Accept", "application/json");
        let request = UpstreamRequest { method: Method::Get, url, headers, body: None };
        let failed = |why: String| crate::error::Error::upstream(format!("the search of upstream {} failed: {why}", upstream.id));
        let resp = match fetch_one(&self.platform, &upstream, "-search", request).await {
            Outcome::Answer(resp) => resp,
            Outcome::NotFound => return Err(failed("it has no search".into())),
            Outcome::Failed(e) => return Err(failed(e)),
        };
        let bytes = resp.body.read_capped(8 * 1024 * 1024).await.map_err(|e| failed(e.to_string()))?;
        let found = serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| failed(format!("unreadable answer: {e}")))?;
        let extra: Vec<serde_json::Value> = found
            .get("objects")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter(|o| {
                let name = o.pointer("/package/name").and_then(serde_json::Value::as_str).unwrap_or_default();
                !name.is_empty() && !hosted.contains(name) && upstream.admits(name)
            })
            .take(size - have)
            .cloned()
            .collect();
        if let Some(objects) = result.get_mut("objects").and_then(serde_json::Value::as_array_mut) {
            objects.extend(extra);
        }
        let upstream_total = found.get("total").and_then(serde_json::Value::as_u64).unwrap_or(0) as usize;
        if let Some(fields) = result.as_object_mut() {
            fields.insert("total".into(), serde_json::json!(hosted_total.saturating_add(upstream_total)));
        }
        Ok(())
    }

    // ---- npm audit ----

    /// Passes `/-/npm/v1/security/*` to the first upstream (nothing is cached).
    pub async fn audit(&self, req: Request, path: &str) -> Response {
        let Some(upstream) = self.upstreams.upstreams.iter().find(|u| u.enabled).cloned() else {
            return error(404, "no upstream for audits");
        };
        let mut headers = Headers::new();
        for h in ["content-type", "content-encoding", "accept", "npm-command"] {
            if let Some(v) = req.header(h) {
                headers.set(h, v.to_string());
            }
        }
        let method = req.method;
        let body = match req.body.read_capped(8 * 1024 * 1024).await {
            Ok(b) => b,
            Err(e) => return error(413, e.to_string()),
        };
        let request = UpstreamRequest { method, url: format!("{}{path}", upstream.url), headers, body: Some(body) };
        match fetch_one(&self.platform, &upstream, "-audit", request).await {
            Outcome::Answer(r) => {
                let mut out = Response::new(r.status);
                for h in ["content-type", "content-encoding"] {
                    if let Some(v) = r.headers.get(h) {
                        out = out.with_header(h, v);
                    }
                }
                out.body = r.body;
                mark(out, CacheStatus::Miss, &upstream.id)
            }
            Outcome::NotFound => error(404, "Not found"),
            Outcome::Failed(e) => error(502, format!("upstream unavailable: {e}")),
        }
    }
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
