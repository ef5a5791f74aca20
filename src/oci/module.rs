//! OCI's entry in the protocol list (`crate::protocols`).

use async_trait::async_trait;

use crate::config::Protocol;
use crate::error::{Error, Render};
use crate::http::{Request, Response};
use crate::protocols::{Preset, ProtocolModule};
use crate::router::App;

pub struct Oci;

pub static MODULE: Oci = Oci;

static PRESETS: &[Preset] = &[
    Preset { names: &["dockerhub", "docker.io"], url: "https://registry-1.docker.io", library_prefix: true },
    Preset { names: &["ghcr", "ghcr.io"], url: "https://ghcr.io", library_prefix: false },
    Preset { names: &["quay", "quay.io"], url: "https://quay.io", library_prefix: false },
];

#[async_trait(?Send)]
impl ProtocolModule for Oci {
    fn protocol(&self) -> Protocol {
        Protocol::Oci
    }

    /// The API lives under `{mount}/v2` (OCI distribution spec, "API"); links the handler
    /// writes (upload locations, `Link` pages) carry that prefix.
    async fn handle(&self, app: &App, req: Request, base: &str, rest: &str) -> crate::error::Result<Response> {
        super::handle(app, req, rest, format!("{base}/v2")).await
    }

    fn root_mounts(&self) -> &'static [&'static str] {
        &["/v2"]
    }

    fn errors(&self) -> &'static dyn Render {
        &super::errors::OciErrors
    }

    /// Besides anonymous readers where allowed, a Bearer JWT from the token endpoint that
    /// grants `pull` on the repository: checked by its signature alone, so a pull's HEADs
    /// and GETs can be kept answers (any other credential goes the long way).
    fn edge_reader(&self, app: &App, req: &Request, rest: &str) -> bool {
        let Some(authorization) = req.header("authorization") else {
            return app.config.protocol(Protocol::Oci).anonymous_read;
        };
        let (Some(token), Some(secret)) = (authorization.strip_prefix("Bearer "), app.config.jwt_secret.as_deref()) else {
            return false;
        };
        let Some(repo) = super::parse_route(rest).and_then(|r| r.repository().and_then(super::names::Repository::parse)) else {
            return false;
        };
        let now = (app.platform.now_ms() / 1000.0) as i64;
        crate::auth::jwt::decode(secret.as_bytes(), token.trim(), now)
            .ok()
            .and_then(|claims| crate::auth::jwt::principal_from_claims(&claims))
            .is_some_and(|p| p.can(Protocol::Oci, repo.as_str(), crate::auth::Action::Read))
    }

    fn presets(&self) -> &'static [Preset] {
        PRESETS
    }

    async fn purge_cache(&self, app: &App, name: &str) -> crate::error::Result<usize> {
        if !super::names::valid_repository(name) {
            return Err(Error::invalid(format!("invalid repository name {name:?}")));
        }
        Ok(super::proxy::purge_repository(&*app.platform.store, name).await?)
    }

    async fn admin_owners(&self, app: &App, name: &str, new: Option<Vec<String>>) -> crate::error::Result<Vec<String>> {
        // Once `admin_owners` returns `crate::error::Result`, this is the call alone.
        super::access::admin_owners(app, name, new).await
    }
}
