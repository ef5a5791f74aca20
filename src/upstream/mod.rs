//! The pull-through cache machinery every protocol shares: upstream settings and selection
//! (`config`), talking to upstreams with typed failures (`client`), circuit breakers
//! (`breaker`), cache entries and single-flight (`cache`), and the engine that runs a mirror
//! on them (`engine`). Protocol adapters (`npm::proxy`, `oci::proxy`) declare what to fetch,
//! how to rewrite and verify it, where to keep it and how failures are written.

pub mod breaker;
pub mod cache;
pub mod client;
pub mod config;
pub mod engine;

use std::rc::Rc;

use async_trait::async_trait;

pub use config::{CachePolicy, ProtocolUpstreams, Upstream};
pub use engine::{mark, Engine};

use crate::config::Protocol;
use crate::http::Actor;

/// What an upstream provider is asked: which protocol, resource and kind of resource, for
/// whom.
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

