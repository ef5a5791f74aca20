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
