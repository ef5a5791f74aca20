//! The protocols this build serves, in one list ([`all`]). Routing, `/-/health`, the admin
//! API's cache purge and owners, upstream presets, `ENABLED_PROTOCOLS` and the job runner are
//! all derived from it; nothing outside a protocol's folder and this list names a protocol's
//! code.
//!
//! Adding a protocol: a folder (`src/pypi/`) with its handler and a `MODULE` implementing
//! [`ProtocolModule`], and one line in [`ALL`]. A protocol without a module (`Protocol::Maven`
//! today) is refused by `ENABLED_PROTOCOLS`.

use async_trait::async_trait;

use crate::config::Protocol;
use crate::error::{Error, Render};
use crate::http::{Request, Response};
use crate::jobs::{JobEnv, JobError, JobResult};
use crate::router::App;

/// A public registry an upstream may name instead of a URL (`"preset": "npmjs"`).
#[derive(Debug, PartialEq, Eq)]
pub struct Preset {
    /// The preset's name and its aliases (`dockerhub`, `docker.io`).
    pub names: &'static [&'static str],
    pub url: &'static str,
    /// Docker Hub: single-segment repository names live under `library/`.
    pub library_prefix: bool,
}

/// What a protocol brings to the registry. Only `protocol`, `handle` and `errors` are
/// required; a protocol without jobs, cache or owners keeps the defaults, which refuse.
#[async_trait(?Send)]
pub trait ProtocolModule: Sync {
    fn protocol(&self) -> Protocol;

    /// Answers a request under one of the protocol's mounts: `base` is where it is mounted
    /// (its base path, or `""` for a root mount), `rest` the path after it. An error is
    /// written by [`ProtocolModule::errors`].
    async fn handle(&self, app: &App, req: Request, base: &str, rest: &str) -> crate::error::Result<Response>;

    /// Paths at the host root the protocol also answers, whatever its base path: container
    /// clients always call `/v2/` there (OCI distribution spec, "API").
    fn root_mounts(&self) -> &'static [&'static str] {
        &[]
    }

    /// How the protocol writes errors for its clients.
    fn errors(&self) -> &'static dyn Render;

    /// Whether the caller of a GET or HEAD of `rest` may be given an answer the edge cache
    /// kept (`platform::EdgeCache`), checked without any storage read: by default callers
    /// without credentials, where anyone may read the protocol's packages.
    fn edge_reader(&self, app: &App, req: &Request, _rest: &str) -> bool {
        req.header("authorization").is_none() && app.config.protocol(self.protocol()).anonymous_read
    }

    /// Upstream presets for `<PROTO>_UPSTREAMS`.
    fn presets(&self) -> &'static [Preset] {
        &[]
    }

    /// Runs one of the protocol's serialised jobs (see `crate::jobs`), given as the JSON it
    /// was sent as.
    async fn run_job(&self, _env: &JobEnv, _job: serde_json::Value) -> JobResult {
        Err(JobError::internal(format!("{} runs no jobs", self.protocol().as_str())))
    }

    /// `DELETE /-/admin/cache/{protocol}/{name}`: forgets what the pull-through cache kept
    /// for one name; the number of objects removed.
    async fn purge_cache(&self, _app: &App, _name: &str) -> crate::error::Result<usize> {
        Err(Error::not_found(format!("no pull-through cache for {}", self.protocol().as_str())))
    }

    /// `GET|PUT /-/admin/owners/{protocol}/{name}`: the owners of a name, after replacing
    /// them with `new` when given.
    async fn admin_owners(&self, _app: &App, _name: &str, _new: Option<Vec<String>>) -> crate::error::Result<Vec<String>> {
        Err(Error::not_found(format!("no owners for {}", self.protocol().as_str())))
    }
}

/// Every protocol of this build. Root mounts are tried in this order, base paths longest
/// first.
pub static ALL: &[&dyn ProtocolModule] = &[&crate::oci::MODULE, &crate::npm::MODULE, &crate::pypi::MODULE, &crate::cargo::MODULE];

pub fn all() -> &'static [&'static dyn ProtocolModule] {
    ALL
}

/// The module of a protocol, when this build has one.
pub fn find(protocol: Protocol) -> Option<&'static dyn ProtocolModule> {
    ALL.iter().copied().find(|m| m.protocol() == protocol)
}

/// The module named `name` (`"npm"`), as URLs and jobs name them.
pub fn by_name(name: &str) -> Option<&'static dyn ProtocolModule> {
    Protocol::parse(name).and_then(find)
}

/// A protocol's upstream preset by one of its names.
pub fn preset(protocol: Protocol, name: &str) -> Option<&'static Preset> {
    find(protocol)?.presets().iter().find(|p| p.names.iter().any(|n| n.eq_ignore_ascii_case(name.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_appears_once() {
        let mut seen: Vec<Protocol> = ALL.iter().map(|m| m.protocol()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), ALL.len());
    }

    #[test]
    fn presets_belong_to_their_protocol() {
        assert_eq!(preset(Protocol::Npm, "npmjs").map(|p| p.url), Some("https://registry.npmjs.org"));
        assert!(preset(Protocol::Oci, "DockerHub").is_some_and(|p| p.library_prefix));
        assert_eq!(preset(Protocol::Oci, "ghcr.io").map(|p| p.url), Some("https://ghcr.io"));
        assert!(preset(Protocol::Oci, "npmjs").is_none());
        assert_eq!(preset(Protocol::Pypi, "pypi").map(|p| p.url), Some("https://pypi.org/simple"));
        assert!(preset(Protocol::Pypi, "npmjs").is_none());
        assert!(preset(Protocol::Maven, "pypi").is_none());
        assert_eq!(preset(Protocol::Cargo, "crates-io").map(|p| p.url), Some("https://index.crates.io"));
        assert!(preset(Protocol::Cargo, "pypi").is_none());
    }
}
