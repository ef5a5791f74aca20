//! PyPI pull-through cache (owned by the proxy work; these are the signatures the hosted
//! handlers call, as stubs that serve nothing).

use super::names::ProjectName;
use super::simple::Negotiated;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::router::App;
use crate::upstream::Engine;

/// Everything under which a project's cached copies live.
pub fn cache_prefix(name: &ProjectName) -> String {
    format!("pypi/cache/{name}/")
}

/// Forgets the cached copies of `name`: its first hosted upload calls this (inside the job).
pub async fn purge_for_hosted(store: &dyn crate::platform::ObjectStore, name: &ProjectName) -> crate::platform::StoreResult<usize> {
    crate::upstream::engine::purge_for_hosted(store, "pypi", name.as_str(), &cache_prefix(name)).await
}

/// `GET /pypi/simple/{project}/` of a project not hosted here that an upstream may serve
/// (`engine` is the resolved mirror; the caller checked read access and hosted-first).
/// `registry_url` is `{origin}/pypi`: rewritten file links go under
/// `{registry_url}/files/{project}/…`. `Ok(None)`: the upstream has no such project (404).
pub async fn project_page(
    _app: &App,
    _engine: Engine,
    _req: &Request,
    _name: &ProjectName,
    _negotiated: Negotiated,
    _registry_url: &str,
) -> Result<Option<Response>> {
    Ok(None)
}

/// `GET|HEAD /pypi/files/{project}/{rest…}` (a link of a rewritten page; `rest` is the
/// path after the project, still percent-encoded) of a project not hosted here. `engine` is
/// `None` when no upstream serves the project now (a cached copy may still be served).
/// `Ok(None)`: not found.
pub async fn file(
    _app: &App,
    _engine: Option<Engine>,
    _req: &Request,
    _name: &ProjectName,
    _rest: &str,
) -> Result<Option<Response>> {
    Ok(None)
}
