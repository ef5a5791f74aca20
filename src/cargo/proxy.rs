//! The pull-through mirror of crates.io (and other sparse registries) on the shared engine.
//! STUB written by cargo-hosted so the hosted routes compile: signatures only; cargo-proxy
//! owns this file and replaces it.

use crate::error::Result;
use crate::http::{Request, Response};
use crate::platform::{ObjectStore, StoreResult};
use crate::router::App;

use super::names::CrateName;

/// `GET|HEAD {registry}/{index path}` of a crate not hosted here (the caller checked): the
/// mirror's index file, `None` when no upstream may serve the name.
pub async fn index_file(_app: &App, _req: &Request, _name: &CrateName) -> Result<Option<Response>> {
    Ok(None)
}

/// `GET|HEAD {registry}/api/v1/crates/{crate}/{version}/download` of a crate not hosted here
/// (the caller checked): the mirror's `.crate`, `None` when no upstream may serve the name.
pub async fn download(_app: &App, _req: &Request, _name: &CrateName, _version: &str) -> Result<Option<Response>> {
    Ok(None)
}

/// `DELETE /-/admin/cache/cargo/{name}`: the number of objects removed.
pub async fn purge_cache(_app: &App, _name: &str) -> Result<usize> {
    Ok(0)
}

/// Whether an upstream that may serve `name` has a crate of that name (the hosted publish
/// refuses to claim it silently).
pub async fn upstream_has(_app: &App, _name: &CrateName) -> Result<bool> {
    Ok(false)
}

/// Forgets what the cache kept of `name`: its first hosted publish calls this (in its job).
pub async fn purge_for_hosted(_store: &dyn ObjectStore, _name: &CrateName) -> StoreResult<usize> {
    Ok(0)
}
