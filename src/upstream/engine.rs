//! The pull-through engine every protocol's mirror runs on. A protocol adapter declares its
//! keys, the upstream request for a document or a blob, how a document is rewritten, what a
//! blob is verified against and how failures are written for its clients ([`Adapter`]); the
//! engine does the rest:
//!
//! * **Hosted first** ([`resolve`]): a name hosted here is never served from an upstream, and
//!   the first hosted publish forgets the cached copies ([`purge_for_hosted`]).
//! * **Documents** (mutable metadata, [`Engine::document`]): fresh for their TTL, then served
//!   stale while one background revalidation runs (RFC 5861 §3), served stale when the
//!   upstream fails (RFC 5861 §4) or does not answer within `resilience.deadlineMs` (the
//!   refresh goes on in the background and updates the cache), remembered as absent after a
//!   404, one refresh per document per isolate at a time. The usual refresh is a conditional
//!   GET ([`Engine::fetch_document`]) streamed through the adapter's rewrite into the store in
//!   constant memory ([`Engine::store_document`]); an adapter may check otherwise (OCI: a HEAD
//!   whose digest says whether a tag moved).
//! * **Blobs** (immutable content, [`Engine::keep_blob`]): streamed to the client and into the
//!   store at once, the store verifying the checksum the adapter names; the client's copy
//!   holds back its last piece until the store accepted the bytes.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use futures::future::{select, Either, FutureExt, LocalBoxFuture};
use futures::StreamExt;

use super::cache::{self, Entry};
use super::client::{self, fetch_first, record_fault, Failure, Failures, UpstreamRequest};
use super::{CachePolicy, CacheStatus, ProtocolUpstreams, Upstream};
use crate::storage::key::ObjectKind;
use crate::error::{Error, Result};
use crate::http::{Body, PlatformStream, Response};
use crate::platform::{Checksum, Clock, ObjectMeta, ObjectStore, Platform, PutOptions, PutOutcome};
use crate::storage::writer::ObjectWriter;

/// Runs `work` for at most `ms` milliseconds; on time, its output, else the unfinished work
/// (to be carried on elsewhere). The timer starts only if `work` does not finish at once.
pub async fn within<F: Future + Unpin>(clock: &dyn Clock, ms: u64, mut work: F) -> std::result::Result<F::Output, F> {
    let first = futures::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut work).poll(cx))).await;
    if let Poll::Ready(out) = first {
        return Ok(out);
    }
    match select(work, clock.sleep(ms)).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right((_, work)) => Err(work),
    }
}

/// How a protocol writes the engine's failures for its clients.
pub trait Adapter {
    /// The thing is at no upstream (404).
    fn not_found(&self, what: &str) -> Error;
    /// No upstream could deliver it: down, slow, refusing, or sending something unusable.
    fn unavailable(&self, why: &Failures) -> Error;
    /// The content failed verification against its checksum.
    fn corrupt(&self, why: &Failures) -> Error;

    /// The error for `why`.
    fn failed(&self, why: &Failures) -> Error {
        if why.checksum_mismatch() {
            self.corrupt(why)
        } else {
            self.unavailable(why)
        }
    }
}

/// Where a request for a name goes.
pub enum Resolved<P> {
    /// Hosted here: served by the protocol's own handlers, never from an upstream.
    Hosted,
    /// Not hosted, and an upstream may serve it.
    Proxied(P),
    /// No upstream may serve it (whether hosted or not, the hosted handlers answer).
    Absent,
}

/// Hosted first: `Proxied` only when some upstream may serve `resource` and `is_hosted` (asked
/// only then) says it is not hosted here, so nobody can shadow a hosted name upstream.
pub async fn resolve<P>(
    platform: &Platform,
    upstreams: Option<Rc<ProtocolUpstreams>>,
    resource: &str,
    is_hosted: impl Future<Output = Result<bool>>,
    proxy: impl FnOnce(Engine) -> P,
) -> Result<Resolved<P>> {
    let Some(upstreams) = upstreams.filter(|u| !u.select(resource).is_empty()) else {
        return Ok(Resolved::Absent);
    };
    if is_hosted.await? {
        return Ok(Resolved::Hosted);
    }
    Ok(Resolved::Proxied(proxy(Engine::new(platform.clone(), upstreams))))
}

/// Forgets every cached copy of a name that has just become hosted here (its first publish):
/// from then on it is never served from the cache. Returns how many objects went.
pub async fn purge_for_hosted(store: &dyn ObjectStore, protocol: &str, name: &str, prefix: &str) -> crate::platform::StoreResult<usize> {
    let purged = cache::purge(store, prefix).await?;
    if purged > 0 {
        crate::logging::event("info", "cache_purged", serde_json::json!({"protocol": protocol, "package": name, "objects": purged}));
    }
    Ok(purged)
}

/// Why [`Engine::document`] has no entry to serve.
pub enum DocumentError {
    /// The refresh failed and no copy is left to serve.
    Upstream(Failures),
    /// The store failed, or lost the entry the refresh had just written.
    Store(String),
}

pub use super::cache::Refresh;

/// What [`Engine::fetch_document`] found.
pub enum Fetched<O> {
    /// Unchanged (304): the entry was renewed.
    Revalidated,
    /// No upstream has it: remembered as absent.
    Absent,
    /// A new copy, stored.
    Stored(Box<NewCopy<O>>),
}

/// A document's new copy, stored at `entry.data_key`; `entry` is not saved yet.
pub struct NewCopy<O> {
    pub upstream: Upstream,
    pub entry: Entry,
    /// The entry it replaces.
    pub old: Option<Entry>,
    /// What the rewrite learned.
    pub output: O,
}

/// A document as [`Engine::document`] serves it.
pub struct Served {
    /// The cache entry's key.
    pub key: String,
    pub entry: Entry,
    pub status: CacheStatus,
    /// The entry is the copy `fallback` found, not this document's own.
    pub fallback: bool,
    /// The entry was read after this request's refresh wrote it (so a cold answer may be
    /// kept despite the purge of its own write).
    pub refreshed: bool,
}

impl Served {
    /// How the router may keep the answer made of this document: while it is fresh, unless
    /// it was served stale or in place of another; a new copy (`Engine::save`) or a write
    /// to a hosted key of `hosted` (a publish of the name here) purges it.
    pub fn edge_hint(&self, now_ms: f64, hosted: Vec<String>) -> Option<crate::platform::EdgeHint> {
        if self.fallback || matches!(self.status, CacheStatus::Stale) || self.entry.status != 200 {
            return None;
        }
        let mut tags = hosted;
        tags.push(self.key.clone());
        crate::platform::EdgeHint::mirrored(tags, self.entry.expires_ms - now_ms).map(|h| h.after_own_writes(self.refreshed))
    }
}

/// What [`Engine::keep_blob`] made of an upstream body.
pub enum Kept {
    /// On its way to the client (and into the store, unless it could not be verified or had
    /// no length): the body and its length.
    Streaming { body: Body, length: Option<u64> },
    /// Already in memory, stored and verified first: the client gets the stored copy.
    Stored(ObjectMeta),
}

/// An immutable object to keep: where, verified against what, and what says it may be served.
pub struct Blob {
    pub key: String,
    /// What the store checks the bytes against. `None`: nothing to verify them with, so they
    /// are passed through and not cached (npm refuses to cache a tarball without integrity).
    pub checksum: Option<Checksum>,
    /// A small object written once the bytes are stored (an OCI repository's link to a blob).
    pub marker: Option<String>,
    /// For logs: `name/file`, `repo@digest`.
    pub label: String,
}

/// A protocol's pull-through cache for one request: the platform and the upstreams that may
/// serve the names asked for. Owned, so background work can carry it past the response.
#[derive(Clone)]
pub struct Engine {
    pub platform: Platform,
    pub upstreams: Rc<ProtocolUpstreams>,
}

impl Engine {
    pub fn new(platform: Platform, upstreams: Rc<ProtocolUpstreams>) -> Engine {
        Engine { platform, upstreams }
    }

    /// Whether any upstream may serve `name` (scope rules).
    pub fn serves(&self, name: &str) -> bool {
        !self.upstreams.select(name).is_empty()
    }

    /// The upstreams that may serve `name`, in the order they are asked.
    pub fn select(&self, name: &str) -> Vec<&Upstream> {
        self.upstreams.select(name)
    }

    /// The upstream `id`, if it may serve `name`.
    pub fn upstream(&self, name: &str, id: &str) -> Option<Upstream> {
        self.upstreams.select(name).into_iter().find(|u| u.id == id).cloned()
    }

    /// The first enabled upstream, whatever the name (pass-through endpoints: npm audit).
    pub fn first(&self) -> Option<Upstream> {
        self.upstreams.first()
    }

    /// The cache policy an entry from upstream `id` is kept under (the first upstream's when
    /// that one is gone from the settings).
    fn policy(&self, name: &str, id: &str) -> CachePolicy {
        let selected = self.upstreams.select(name);
        selected.iter().find(|u| u.id == id).or(selected.first()).map(|u| u.cache.clone()).unwrap_or_default()
    }

    /// How long a client with a cached copy of `name` waits for a refresh: the deadline, or
    /// nothing while the upstream lags (see `breaker::lagging`).
    fn deadline_ms(&self, name: &str) -> u64 {
        let now = self.platform.now_ms();
        match self.upstreams.select(name).first() {
            Some(u) if super::breaker::is_lagging(&client::breaker_key(u), now) => 0,
            Some(u) => u.resilience.deadline_ms,
            None => super::config::Resilience::default().deadline_ms,
        }
    }

    /// The refresh of `name` kept a client past its deadline: its upstream lags.
    fn missed_deadline(&self, name: &str) {
        if let Some(u) = self.upstreams.select(name).first() {
            super::breaker::lagging(&client::breaker_key(u), self.platform.now_ms(), u.resilience.timeout_ms);
        }
    }

    // ---- documents ----

    /// Refreshes the cached document at `key` with `work`: one run per isolate at a time
    /// (concurrent misses wait for it), timed and logged as `protocol` `resource` `view`.
    /// The future owns what it needs, so it can also run after the response.
    pub fn refresh(&self, key: &str, (protocol, resource, view): (&'static str, String, String), work: LocalBoxFuture<'static, Refresh>) -> LocalBoxFuture<'static, Refresh> {
        let clock = self.platform.clock.clone();
        let key = key.to_string();
        async move {
            cache::single_flight(&key, move || {
                async move {
                    let started = clock.now_ms();
                    let result = work.await;
                    log_refresh(protocol, &resource, &view, &result, clock.now_ms() - started);
                    result
                }
                .boxed_local()
            })
            .await
        }
        .boxed_local()
    }

    /// The cached document at `key` (of `name`) and how it is served: a fresh entry as it is;
    /// one within its stale window as it is while `refresh` runs after the response;
    /// otherwise `refresh` now and the entry it wrote. When a copy is kept (an expired one
    /// included, or else what `fallback` finds: a copy that may stand in for this one) the
    /// client waits at most `resilience.deadlineMs` for the refresh: past that, or when the
    /// refresh fails, it gets that copy (`STALE`) and the refresh carries on in the
    /// background, updating the cache when it completes. `refresh` is given the entry read
    /// here (its validators, and the copy a new one replaces), so it need not read it again.
    pub async fn document<F: Future<Output = Option<Entry>>>(
        &self,
        key: &str,
        name: &str,
        fallback: impl FnOnce() -> F,
        refresh: impl Fn(Option<Entry>) -> LocalBoxFuture<'static, Refresh>,
    ) -> std::result::Result<Served, DocumentError> {
        let platform = &self.platform;
        let store = &*platform.store;
        let served = |entry: Entry, status: CacheStatus, fallback: bool| Ok(Served { key: key.to_string(), entry, status, fallback, refreshed: false });
        let cached = cache::load(store, key).await.ok().flatten();
        if let Some(entry) = cached.as_ref() {
            match entry.freshness(platform.now_ms(), &self.policy(name, &entry.upstream)) {
                cache::Freshness::Fresh => return served(entry.clone(), CacheStatus::Hit, false),
                cache::Freshness::Stale => {
                    if !cache::in_flight(key) {
                        platform.background.spawn(refresh(Some(entry.clone())).map(drop).boxed_local());
                    }
                    return served(entry.clone(), CacheStatus::Stale, false);
                }
                cache::Freshness::Expired => {}
            }
        }
        // The client waits at most the deadline when a copy can be served instead: its own
        // (expired), or else what `fallback` finds, looked for only once the refresh has
        // failed or is late (a cold miss that goes well costs no read for it).
        let own = cached.clone().filter(|c| c.status == 200);
        // What may be served instead, and whether it is another document's copy.
        let stand_in = || async move {
            match own {
                Some(own) => Some((own, false)),
                None => fallback().await.map(|other| (other, true)),
            }
        };
        let result = match within(&*platform.clock, self.deadline_ms(name), refresh(cached)).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(failures)) => match stand_in().await {
                Some((stale, fallback)) => {
                    crate::logging::log("warn", &format!("serving stale {key}: {failures}"));
                    return served(stale, CacheStatus::Stale, fallback);
                }
                None => Err(failures),
            },
            Err(unfinished) => match stand_in().await {
                Some((stale, fallback)) => {
                    crate::logging::log("warn", &format!("serving stale {key}: no answer within the deadline"));
                    self.missed_deadline(name);
                    platform.background.spawn(unfinished.map(drop).boxed_local());
                    return served(stale, CacheStatus::Stale, fallback);
                }
                // Nothing to serve instead: the refresh's answer, however long it takes.
                None => unfinished.await,
            },
        };
        match result {
            Ok(status) => match cache::load(store, key).await {
                Ok(Some(entry)) => Ok(Served { key: key.to_string(), entry, status, fallback: false, refreshed: true }),
                Ok(None) => Err(DocumentError::Store("the cache entry vanished".into())),
                Err(e) => Err(DocumentError::Store(e.to_string())),
            },
            Err(failures) => Err(DocumentError::Upstream(failures)),
        }
    }

    /// Remembers that no upstream has the document at `key` (of `name`), for the first
    /// upstream's negative-cache TTL.
    pub async fn save_absent(&self, key: &str, name: &str) -> Refresh {
        let entry = Entry::absent(self.upstreams.select(name).first().copied(), self.platform.now_ms());
        self.save(key, &entry).await?;
        Ok(CacheStatus::Miss)
    }

    /// Writes the entry at `key`.
    pub async fn save(&self, key: &str, entry: &Entry) -> std::result::Result<(), Failures> {
        let saved = cache::save(&*self.platform.store, key, entry).await;
        // Answers made from the old entry are stale now (cache entries are not written
        // through `Storage`, which purges for hosted writes).
        self.platform.edge.purge(key).await;
        saved.map_err(|e| Failures::one(&entry.upstream, Failure::Store(e.to_string())))
    }

    /// A new entry for a document from `upstream`, fresh for its TTL from now.
    pub fn entry(&self, upstream: &Upstream, data_key: String) -> Entry {
        let now = self.platform.now_ms();
        Entry {
            status: 200,
            data_key: Some(data_key),
            upstream: upstream.id.clone(),
            fetched_ms: now,
            expires_ms: now + upstream.cache.default_ttl_seconds as f64 * 1000.0,
            etag: None,
            last_modified: None,
            content_type: None,
            size: 0,
            extra: Default::default(),
        }
    }

    /// Refreshes the document at `key` (of `name`) the usual HTTP way (RFC 9111 §4.3): asks
    /// the upstreams in turn with `request`, conditionally (`If-None-Match` /
    /// `If-Modified-Since`) when the cached copy (`known`: the entry as the caller last read
    /// it) came from the same upstream. A 304 renews the entry; a 404 everywhere is
    /// remembered as absent; a new copy is streamed through the rewrite made by `rewrite`
    /// into a new object next to `data_prefix` and handed back, for the adapter to add what
    /// it needs and [`Engine::replace`] the entry with it.
    pub async fn fetch_document<R: Rewrite>(
        &self,
        key: &str,
        name: &str,
        known: Option<Entry>,
        request: impl Fn(&Upstream) -> UpstreamRequest,
        (data_prefix, content_type, max_bytes): (&str, &str, u64),
        rewrite: impl FnOnce() -> R,
    ) -> std::result::Result<Fetched<R::Output>, Failures> {
        let old = known.filter(|e| e.status == 200);
        let selected = self.upstreams.select(name);
        let fetched = fetch_first(&self.platform, &selected, name, |u| {
            let mut req = request(u);
            if let Some(old) = old.as_ref().filter(|o| o.upstream == u.id) {
                if let Some(etag) = &old.etag {
                    req.headers.set("If-None-Match", etag.clone());
                }
                if let Some(lm) = &old.last_modified {
                    req.headers.set("If-Modified-Since", lm.clone());
                }
            }
            Some(req)
        })
        .await;
        let (upstream, response) = match fetched {
            client::Fetched::Found { upstream, response } => (upstream, response),
            client::Fetched::NotFound => return self.save_absent(key, name).await.map(|_| Fetched::Absent),
            client::Fetched::Unavailable(why) => return Err(why),
        };
        if response.status == 304 {
            let Some(old) = old else { return Err(Failures::one(&upstream.id, Failure::Invalid("304 without a cached copy".into()))) };
            let renewed = self.entry(&upstream, String::new());
            self.save(key, &Entry { fetched_ms: renewed.fetched_ms, expires_ms: renewed.expires_ms, ..old }).await?;
            return Ok(Fetched::Revalidated);
        }
        let data_key = format!("{data_prefix}-{}", uuid::Uuid::new_v4().simple());
        let opts = PutOptions { content_type: Some(content_type.into()), ..Default::default() };
        let header = |h: &str| response.headers.get(h).map(str::to_string);
        let (etag, last_modified) = (header("etag"), header("last-modified"));
        let (meta, output) = self.store_document(&upstream, response.body, &data_key, opts, max_bytes, rewrite()).await?;
        let entry = Entry { etag, last_modified, content_type: Some(content_type.into()), size: meta.size, ..self.entry(&upstream, data_key) };
        Ok(Fetched::Stored(Box::new(NewCopy { upstream: *upstream, entry, old, output })))
    }

    /// Points the document at `key` to its new copy, and drops the copy it replaces.
    pub async fn replace(&self, key: &str, entry: &Entry, old: Option<Entry>) -> std::result::Result<(), Failures> {
        self.save(key, entry).await?;
        if let Some(old_key) = old.and_then(|o| o.data_key).filter(|k| Some(k) != entry.data_key.as_ref()) {
            let _ = self.platform.store.delete(&[old_key]).await;
        }
        Ok(())
    }

    /// Streams an upstream document through `rewrite` into a new object at `data_key`, each
    /// read of the body within the upstream's timeout and the whole within `max_bytes`. A
    /// stalled or broken body counts toward the upstream's circuit breaker; whatever fails,
    /// nothing is left behind.
    pub async fn store_document<R: Rewrite>(
        &self,
        upstream: &Upstream,
        body: Body,
        data_key: &str,
        opts: PutOptions,
        max_bytes: u64,
        mut rewrite: R,
    ) -> std::result::Result<(ObjectMeta, R::Output), Failures> {
        let fail = |f: Failure| Failures::one(&upstream.id, f);
        let mut writer = ObjectWriter::new(self.platform.store.clone(), data_key, opts);
        let mut chunks = body.into_chunks();
        let mut out = Vec::new();
        let mut read: u64 = 0;
        let timeout = upstream.resilience.timeout_ms;
        let copied: std::result::Result<(), Failure> = async {
            loop {
                let next = match within(&*self.platform.clock, timeout, chunks.next()).await {
                    Ok(next) => next,
                    Err(_) => return Err(Failure::Timeout(timeout)),
                };
                let Some(chunk) = next else { return Ok(()) };
                let chunk = chunk.map_err(|e| Failure::Network(e.to_string()))?;
                read = read.saturating_add(chunk.len() as u64);
                if read > max_bytes {
                    return Err(Failure::Invalid(format!("document larger than {max_bytes} bytes")));
                }
                out.clear();
                rewrite.feed(&chunk, &mut out).map_err(Failure::Invalid)?;
                writer.write(&out).await.map_err(|e| Failure::Store(e.to_string()))?;
            }
        }
        .await;
        let finished = copied.and_then(|_| rewrite.finish().map_err(Failure::Invalid));
        let output = match finished {
            Ok(output) => output,
            Err(failure) => {
                writer.abort().await;
                if failure.is_fault() {
                    record_fault(&self.platform, upstream, &failure);
                }
                return Err(fail(failure));
            }
        };
        let meta = writer.finish().await.map_err(|e| fail(Failure::Store(e.to_string())))?;
        Ok((meta, output))
    }

    /// Reads a small upstream body whole (a manifest, a tag list): at most `cap` bytes, within
    /// the upstream's timeout. A stalled or broken body counts toward its circuit breaker.
    pub async fn read_body(&self, upstream: &Upstream, body: Body, cap: u64) -> std::result::Result<Vec<u8>, Failure> {
        let timeout = upstream.resilience.timeout_ms;
        let failure = match within(&*self.platform.clock, timeout, body.read_capped(cap).boxed_local()).await {
            Ok(Ok(bytes)) => return Ok(bytes),
            Ok(Err(crate::http::BodyError::TooLarge { limit })) => return Err(Failure::Invalid(format!("larger than {limit} bytes"))),
            Ok(Err(e)) => Failure::Network(e.to_string()),
            Err(_) => Failure::Timeout(timeout),
        };
        record_fault(&self.platform, upstream, &failure);
        Err(failure)
    }

    // ---- blobs ----

    /// Keeps an upstream's `body` of immutable content as `blob` says. With a checksum and a
    /// known length it is streamed to the client and into the store at once (`tee`): the
    /// store checks the checksum on the way in, and the client's copy holds back its last
    /// piece until the store has accepted the bytes (and the marker is written), so a
    /// corrupt or cut upstream body is neither cached nor delivered whole. Without a length
    /// (the store needs one) or a checksum it is passed through and not cached. A body
    /// already in memory (the in-memory platform) is stored first and only what was
    /// verified is served.
    pub async fn keep_blob(&self, upstream: &Upstream, blob: Blob, content_type: &str, body: Body) -> std::result::Result<Kept, Failures> {
        let fail = |f: Failure| Failures::one(&upstream.id, f);
        let Some(checksum) = blob.checksum.clone() else {
            crate::logging::log("warn", &format!("{}: nothing to verify it against; not cached", blob.label));
            let length = body.known_length();
            return Ok(Kept::Streaming { body, length });
        };
        let opts = PutOptions {
            content_type: Some(content_type.to_string()),
            custom: std::collections::BTreeMap::from([
                ("upstream".to_string(), upstream.id.clone()),
                ("fetched".to_string(), crate::util::iso8601(self.platform.now_ms())),
            ]),
            checksum: Some(checksum),
            condition: None,
        };
        match body {
            Body::Stream(s) if s.length().is_some() => {
                let length = s.length();
                let gated = self.cache_while_streaming(blob, s, opts);
                Ok(Kept::Streaming { body: Body::Stream(gated), length })
            }
            Body::Stream(s) => {
                // R2 cannot take it as it comes, and holding it in the isolate to verify it
                // first could take all its memory.
                crate::logging::log("warn", &format!("{}: upstream sent no length; not cached", blob.label));
                Ok(Kept::Streaming { body: Body::Stream(s), length: None })
            }
            body => {
                let bytes = body.read_capped(u64::MAX).await.map_err(|e| fail(Failure::Network(e.to_string())))?;
                let store = &self.platform.store;
                match store.put(&blob.key, Body::Bytes(bytes), opts).await {
                    Ok(PutOutcome::Stored(meta)) => {
                        if let Some(marker) = &blob.marker {
                            store.put(marker, Body::Empty, PutOptions::default()).await.map_err(|e| fail(Failure::Store(e.to_string())))?;
                        }
                        Ok(Kept::Stored(meta))
                    }
                    Ok(PutOutcome::ChecksumMismatch) => {
                        Err(fail(Failure::ChecksumMismatch(format!("{} from {} failed its integrity check (digest mismatch)", blob.label, upstream.id))))
                    }
                    Ok(PutOutcome::ConditionFailed) => Err(fail(Failure::Store("unexpected write condition".into()))),
                    Err(e) => Err(fail(Failure::Store(e.to_string()))),
                }
            }
        }
    }

    /// The blob kept at `key`, if it is (`HIT`): for a HEAD its headers only. `kind` gives
    /// its content type and caching.
    pub async fn cached_blob(&self, head: bool, key: &str, kind: ObjectKind) -> Result<Option<Response>> {
        let store = &self.platform.store;
        let from = |meta: &ObjectMeta| meta.custom.get("upstream").cloned().unwrap_or_default();
        if head {
            return Ok(store.head(key).await?.map(|meta| blob_response(kind, Body::Empty, Some(meta.size), CacheStatus::Hit, &from(&meta))));
        }
        Ok(store.get(key, None).await?.map(|obj| {
            let upstream = from(&obj.meta);
            blob_response(kind, obj.body, Some(obj.meta.size), CacheStatus::Hit, &upstream)
                .with_edge(crate::platform::EdgeHint::artifact(vec![key.to_string()]))
        }))
    }

    /// A blob fetched from `upstream` with `request` (`MISS`) and kept as `blob` says
    /// ([`Engine::keep_blob`]); for a HEAD only the upstream's headers, nothing kept.
    /// `adapter` writes the failures, a 404 as `not_found(missing)`.
    #[allow(clippy::too_many_arguments)]
    pub async fn fetch_blob(
        &self,
        head: bool,
        upstream: &Upstream,
        resource: &str,
        request: UpstreamRequest,
        blob: Blob,
        kind: ObjectKind,
        adapter: &dyn Adapter,
        missing: &str,
    ) -> Result<Response> {
        let failed = |f: Failure| adapter.failed(&Failures::one(&upstream.id, f));
        let response = match client::fetch_one(&self.platform, upstream, resource, request).await {
            client::Outcome::Answer(r) if r.status == 200 => r,
            client::Outcome::Answer(r) | client::Outcome::Rejected(r) => return Err(failed(Failure::Rejected(r.status))),
            client::Outcome::NotFound => return Err(adapter.not_found(missing)),
            client::Outcome::Failed(e) => return Err(failed(e)),
        };
        let respond = |body: Body, length: Option<u64>| blob_response(kind, body, length, CacheStatus::Miss, &upstream.id);
        if head {
            return Ok(respond(Body::Empty, response.body.known_length()));
        }
        let (key, label) = (blob.key.clone(), blob.label.clone());
        let verified = blob.checksum.is_some();
        // Verified bytes may be kept at the edge as the cached copy's hits are: a copy whose
        // verification fails errors its stream, and an errored body is never kept.
        let kept = |resp: Response| match verified {
            // Read after whatever this request wrote before (the records a tarball needs).
            true => resp.with_edge(crate::platform::EdgeHint::artifact(vec![key.clone()]).after_own_writes(true)),
            false => resp,
        };
        match self.keep_blob(upstream, blob, kind.content_type, response.body).await.map_err(|why| adapter.failed(&why))? {
            Kept::Streaming { body, length: Some(length) } => Ok(kept(respond(body, Some(length)))),
            Kept::Streaming { body, length: None } => Ok(respond(body, None)),
            // Served from the verified copy, which R2 streams.
            Kept::Stored(_) => {
                let obj = self.platform.store.get(&key, None).await?.ok_or_else(|| Error::upstream(format!("{label} vanished from the cache")))?;
                Ok(kept(respond(obj.body, Some(obj.meta.size))))
            }
        }
    }

    /// The `tee` and the gate of [`Engine::keep_blob`]; the stream's length must be known.
    pub(crate) fn cache_while_streaming(&self, blob: Blob, stream: PlatformStream, opts: PutOptions) -> PlatformStream {
        let (to_client, to_store) = stream.tee();
        let (tx, rx) = futures::channel::oneshot::channel::<bool>();
        let store = self.platform.store.clone();
        let Blob { key, marker, label, .. } = blob;
        self.platform.background.spawn(
            async move {
                let stored = match store.put(&key, Body::Stream(to_store), opts).await {
                    Ok(PutOutcome::Stored(meta)) => {
                        crate::logging::event("info", "cache_fill", serde_json::json!({"resource": label, "key": key, "bytes": meta.size}));
                        match marker {
                            Some(m) => store.put(&m, Body::Empty, PutOptions::default()).await.is_ok(),
                            None => true,
                        }
                    }
                    Ok(other) => {
                        crate::logging::event("error", "cache_refused", serde_json::json!({"resource": label, "outcome": format!("{other:?}")}));
                        false
                    }
                    Err(e) => {
                        crate::logging::event("error", "cache_fill_failed", serde_json::json!({"resource": label, "error": e.to_string()}));
                        false
                    }
                };
                let _ = tx.send(stored);
            }
            .boxed_local(),
        );
        to_client.gate(async move { rx.await.unwrap_or(false) }.boxed_local())
    }
}

/// A streaming rewrite of an upstream document on its way into the store: fed the body piece
/// by piece, writing what is kept to `out`, so memory stays constant whatever the size.
pub trait Rewrite {
    /// What the rewrite learned from the whole document (npm: each tarball's record).
    type Output;
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String>;
    /// Called at the end of the body: an error (a truncated document) keeps it out of the cache.
    fn finish(self) -> std::result::Result<Self::Output, String>;
}

/// Keeps the document as it came.
pub struct Verbatim;

impl Rewrite for Verbatim {
    type Output = ();
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
        out.extend_from_slice(chunk);
        Ok(())
    }
    fn finish(self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// The answer for a blob of `kind` (content type and caching), its length when known, how
/// it was served and from which upstream.
pub fn blob_response(kind: ObjectKind, body: Body, length: Option<u64>, status: CacheStatus, upstream: &str) -> Response {
    let mut r = Response::new(200)
        .with_header("Content-Type", kind.content_type)
        // Keeps the runtime from compressing, which would drop Content-Length.
        .with_header("Content-Encoding", "identity");
    if !kind.cache_control.is_empty() {
        r = r.with_header("Cache-Control", kind.cache_control);
    }
    if let Some(n) = length {
        r = r.with_header("Content-Length", n.to_string());
    }
    r.body = body;
    mark(r, status, upstream)
}

/// Marks a response with how it was served and from which upstream.
pub fn mark(resp: Response, status: CacheStatus, upstream: &str) -> Response {
    resp.with_header("X-Cache", status.as_str()).with_header("X-Cache-Upstream", upstream)
}

/// Logs how a metadata refresh went: which document, the outcome, how long it took.
fn log_refresh(protocol: &str, resource: &str, view: &str, result: &Refresh, ms: f64) {
    let (level, outcome) = match result {
        Ok(status) => ("info", status.as_str().to_string()),
        Err(e) => ("warn", format!("failed: {e}")),
    };
    crate::logging::event(
        level,
        "upstream_refresh",
        serde_json::json!({"protocol": protocol, "resource": resource, "view": view, "outcome": outcome, "ms": ms.round()}),
    );
}
