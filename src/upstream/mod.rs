//! The pull-through cache machinery every protocol shares: upstream settings and selection
//! (`config`), talking to upstreams (`client`), circuit breakers (`breaker`) and the cache
//! policy for mutable metadata (`cache`). Protocol adapters (`npm::proxy`, `oci::proxy`) say
//! what to fetch, how to verify it and where to keep it.

pub mod breaker;
pub mod cache;
pub mod client;
pub mod config;

use std::rc::Rc;

use async_trait::async_trait;

pub use config::{CachePolicy, ProtocolUpstreams, Upstream};

use futures::future::FutureExt;

use crate::config::Protocol;
use crate::http::{Actor, Body, PlatformStream};
use crate::platform::{Platform, PutOptions, PutOutcome};

/// What an upstream provider is asked (SPEC §4.2).
pub struct ResolveContext<'a> {
    pub protocol: Protocol,
    /// Package or repository name.
    pub resource: &'a str,
    /// `packument`, `tarball`, `manifest`, `blob`, …
    pub resource_type: &'a str,
    pub actor: &'a Actor,
}

/// Chooses the upstreams for a request: the seam for multi-tenant hosts that pick upstreams
/// per organisation or user.
#[async_trait(?Send)]
pub trait UpstreamProvider {
    async fn resolve(&self, ctx: &ResolveContext<'_>) -> Option<Rc<ProtocolUpstreams>>;
}

/// The upstreams from `<PROTO>_UPSTREAMS`, whatever the resource or actor.
pub struct StaticProvider(pub std::collections::BTreeMap<Protocol, Rc<ProtocolUpstreams>>);

#[async_trait(?Send)]
impl UpstreamProvider for StaticProvider {
    async fn resolve(&self, ctx: &ResolveContext<'_>) -> Option<Rc<ProtocolUpstreams>> {
        self.0.get(&ctx.protocol).filter(|p| p.enabled && !p.upstreams.is_empty()).cloned()
    }
}

/// How a response was served, for the `X-Cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Fresh from the cache.
    Hit,
    /// Fetched from upstream now.
    Miss,
    /// Past its TTL, served while a background revalidation runs, or because the upstream
    /// failed.
    Stale,
    /// Past its TTL, confirmed unchanged by the upstream (304) just now.
    Revalidated,
}

impl CacheStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Revalidated => "REVALIDATED",
        }
    }
}

/// Marks a response with how it was served and from which upstream.
pub fn mark(resp: crate::http::Response, status: CacheStatus, upstream: &str) -> crate::http::Response {
    resp.with_header("X-Cache", status.as_str()).with_header("X-Cache-Upstream", upstream)
}

/// Streams an upstream body to the client and into the store at once (`tee`). The store
/// checks `opts.checksum` on the way in; the client's copy holds back its last chunk until the
/// store has accepted the bytes (and `marker`, a small object saying the copy may be served,
/// is written), so a corrupt or cut upstream body is neither cached nor delivered whole.
/// The stream's length must be known (R2 requires it).
pub fn cache_while_streaming(
    platform: &Platform,
    key: String,
    stream: PlatformStream,
    opts: PutOptions,
    marker: Option<String>,
    label: String,
) -> PlatformStream {
    let (to_client, to_store) = stream.tee();
    let (tx, rx) = futures::channel::oneshot::channel::<bool>();
    let store = platform.store.clone();
    platform.background.spawn(
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

/// Refreshes the cached document at `key`: one run per isolate at a time (concurrent misses
/// wait for it), timed and logged as `protocol` `resource` `view`.
/// The future owns what it needs, so it can also run after the response (`revalidate_later`).
pub fn refresh_document(
    platform: &Platform,
    key: String,
    (protocol, resource, view): (&'static str, String, String),
    work: futures::future::LocalBoxFuture<'static, cache::Refresh>,
) -> futures::future::LocalBoxFuture<'static, cache::Refresh> {
    let clock = platform.clock.clone();
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

/// Why `cached_document` has no entry to serve.
pub enum DocumentError {
    /// The refresh failed; `stale` is the last good copy, if any (stale-if-error).
    Upstream { error: String, stale: Option<cache::Entry> },
    /// The store failed, or lost the entry the refresh had just written.
    Store(String),
}

/// The cached metadata document at `key` and how it is served, by the shared policy: a fresh
/// entry as it is; a stale one (within stale-while-revalidate) as it is while `refresh` runs
/// after the response; otherwise `refresh` now (collapsed with concurrent ones: see
/// `refresh_document`) and the entry it wrote. `policy` gives the TTLs an entry was kept under.
pub async fn cached_document(
    platform: &Platform,
    key: &str,
    policy: impl FnOnce(&cache::Entry) -> CachePolicy,
    refresh: impl Fn() -> futures::future::LocalBoxFuture<'static, cache::Refresh>,
) -> Result<(cache::Entry, CacheStatus), DocumentError> {
    let store = &*platform.store;
    let cached = cache::load(store, key).await.ok().flatten();
    if let Some(entry) = cached.as_ref() {
        match entry.freshness(platform.now_ms(), &policy(entry)) {
            cache::Freshness::Fresh => return Ok((entry.clone(), CacheStatus::Hit)),
            cache::Freshness::Stale => {
                revalidate_later(platform, key, refresh());
                return Ok((entry.clone(), CacheStatus::Stale));
            }
            cache::Freshness::Expired => {}
        }
    }
    match refresh().await {
        Ok(status) => match cache::load(store, key).await {
            Ok(Some(entry)) => Ok((entry, status)),
            Ok(None) => Err(DocumentError::Store("the cache entry vanished".into())),
            Err(e) => Err(DocumentError::Store(e.to_string())),
        },
        Err(error) => Err(DocumentError::Upstream { error, stale: cached.filter(|c| c.status == 200) }),
    }
}

/// Stale-while-revalidate: runs `refresh` after the response, unless a refresh of `key` is
/// already running in this isolate. (Its outcome is logged by `refresh_document`.)
fn revalidate_later(platform: &Platform, key: &str, refresh: futures::future::LocalBoxFuture<'static, cache::Refresh>) {
    if cache::in_flight(key) {
        return;
    }
    platform.background.spawn(
        async move {
            let _ = refresh.await;
        }
        .boxed_local(),
    );
}

/// Logs how a metadata refresh went: which document, the outcome, how long it took.
fn log_refresh(protocol: &str, resource: &str, view: &str, result: &cache::Refresh, ms: f64) {
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
