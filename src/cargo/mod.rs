//! Cargo's registry protocols (the Cargo book, "Registries", "Registry Index", "Registry Web
//! API") under the Cargo base path (`/cargo`; clients use `sparse+http://HOST/cargo/`):
//!
//! * `config.json`, generated per request from the registry URL (`dl`, `api`, and
//!   `auth-required` when reads need a token),
//! * sparse index files at cargo's paths (`1/a`, `2/ab`, `3/a/abc`, `se/rd/serde`), hosted
//!   crates first, else the pull-through mirror's (`proxy.rs`),
//! * publish (`PUT api/v1/crates/new`, streamed: `upload.rs`), download, yank and unyank,
//!   search and owners.
//!
//! Each hosted crate has an index file and a record (`record.rs`), changed only by serialised
//! jobs (`jobs.rs`). The byte formats are `publish.rs` (the publish body), `index.rs` (index
//! lines) and `names.rs` (crate names and index paths).

pub mod errors;
pub mod index;
pub mod jobs;
pub mod keys;
mod module;
pub mod names;
pub mod proxy;
pub mod publish;
pub mod record;
mod upload;

pub use module::MODULE;

use serde::Deserialize;
use serde_json::json;

use crate::auth::{owners, Action, Auth, Principal};
use crate::config::Protocol;
use crate::error::{Error, Result};
use crate::http::{decode_path, Method, Request, Response};
use crate::platform::EdgeHint;
use crate::router::App;
use crate::storage::{HookMetadata, Operation, Storage};
use errors::{not_found, unauthorized};
use jobs::{CargoJob, Writer};
use names::CrateName;
use record::CrateRecord;

/// Cap on bodies that are a few fields (an owners change): 16 KiB.
const SMALL_BODY_BYTES: u64 = 16 * 1024;

/// One Cargo request with what every route needs.
pub(crate) struct Ctx<'a> {
    app: &'a App,
    /// `{origin}/cargo`: what `config.json` points cargo at.
    registry_url: String,
    storage: Storage,
    principal: Option<Principal>,
}

impl Ctx<'_> {
    fn anonymous_read(&self) -> bool {
        self.app.config.protocol(Protocol::Cargo).anonymous_read
    }

    /// Read access: anonymous when the protocol allows it, else a token with read scope.
    fn check_read(&self, name: &CrateName) -> Result<()> {
        owners::read_access(self.principal.as_ref(), self.anonymous_read(), Protocol::Cargo, name.as_str())
            .map_err(|r| r.into_error(|| unauthorized("this registry requires a token to read (`cargo login`)")))
    }

    /// Whom a write is for: the caller must be authenticated and hold the scope
    /// (`cargo:crate:{name}:{action}`). Ownership is checked early against the record and
    /// again by the job under the crate's lock.
    fn writer(&self, name: &CrateName, action: Action) -> Result<Writer> {
        owners::writer(self.principal.as_ref(), Protocol::Cargo, name.as_str(), action)
            .map_err(|r| r.into_error(|| unauthorized("this action requires a token (`cargo login`, or `--token`)")))
    }

    fn hook_meta(&self, name: &CrateName, version: Option<&str>) -> HookMetadata {
        HookMetadata { package: Some(name.as_str().to_string()), version: version.map(str::to_string), ..Default::default() }
    }

    /// The hosted record of `name` (any spelling of its canonical name), if any.
    async fn load(&self, name: &CrateName) -> Result<Option<CrateRecord>> {
        Ok(jobs::load(&*self.app.platform.store, name).await?)
    }

    /// Runs a change of the crate under its lock. The storage hooks are asked first, as for
    /// any write (the job itself runs where no request context exists).
    async fn run(&self, name: &CrateName, job: CargoJob) -> Result<serde_json::Value> {
        let coordinator = &*self.app.platform.coordinator;
        self.storage.run_job(coordinator, &lock(name), Operation::Put, &keys::index_file(name), self.hook_meta(name, None), &job).await
    }
}

/// The lock (Durable Object name) serialising changes to a crate: its canonical name, so two
/// spellings of one name never race each other's first publish.
pub fn lock(name: &CrateName) -> String {
    format!("cargo:{}", name.canonical())
}

/// Whether `name` is hosted here under any spelling of its canonical name (its record
/// exists): one HEAD, for the pull-through mirror's hosted-first rule. A hosted `foo-bar`
/// keeps an upstream `foo_bar` out too, as cargo and crates.io treat them as one name.
pub async fn is_hosted(app: &App, name: &CrateName) -> Result<bool> {
    Ok(app.platform.store.head(keys::record(name).as_str()).await?.is_some())
}

/// A crate name from a URL segment (percent-decoded): 400 when it is not a valid name.
fn crate_from(segment: &str) -> Result<CrateName> {
    let raw = decode_path(segment).ok_or_else(|| Error::invalid("invalid crate name"))?;
    CrateName::parse(&raw).ok_or_else(|| Error::invalid(format!("invalid crate name {raw:?}")))
}

/// A version from a URL segment: a semver version, else 400.
fn version_from(segment: &str) -> Result<String> {
    decode_path(segment)
        .filter(|v| names::valid_version(v))
        .ok_or_else(|| Error::invalid(format!("invalid version {segment:?}: not a semver version")))
}

/// A Cargo request; its errors are written by `errors::CargoErrors` (see `module.rs`).
pub async fn handle(app: &App, mut req: Request, path: &str) -> Result<Response> {
    let principal = Auth::new(&app.platform, &app.config).principal(&req.headers, Protocol::Cargo).await.map_err(errors::auth)?;
    // Hooks and the upstream provider see who asks (the mirror reads it from the request).
    req.actor = req.actor.identified(principal.as_ref());
    let ctx = Ctx {
        app,
        registry_url: app.config.registry_url(Protocol::Cargo, &req.origin),
        storage: app.storage(Protocol::Cargo, &req.actor),
        principal,
    };
    let rest = path.trim_start_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    let read = req.method.is_read();
    match (req.method, segs.as_slice()) {
        (_, ["config.json"]) if read => config_json(&ctx),
        (Method::Put, ["api", "v1", "crates", "new"]) => upload::publish(&ctx, req).await,
        (_, ["api", "v1", "crates"]) if read => search(&ctx, &req).await,
        (_, ["api", "v1", "crates", krate, version, "download"]) if read => download(&ctx, &req, krate, version).await,
        (Method::Delete, ["api", "v1", "crates", krate, version, "yank"]) => yank(&ctx, krate, version, true).await,
        (Method::Put, ["api", "v1", "crates", krate, version, "unyank"]) => yank(&ctx, krate, version, false).await,
        (_, ["api", "v1", "crates", krate, "owners"]) if read => owners(&ctx, krate).await,
        (Method::Put, ["api", "v1", "crates", krate, "owners"]) => change_owners(&ctx, req, krate, true).await,
        (Method::Delete, ["api", "v1", "crates", krate, "owners"]) => change_owners(&ctx, req, krate, false).await,
        (_, ["api", ..]) => Err(not_found("Not Found")),
        _ if read => index_file(&ctx, &req, rest).await,
        _ => Err(not_found("Not Found")),
    }
}

/// `GET config.json` (Cargo book, "Registry Index": "Index configuration"). When reads need
/// a token, an anonymous request is a 401: cargo then asks again with its token and, seeing
/// `auth-required`, sends it with every request ("Sparse authentication").
fn config_json(ctx: &Ctx<'_>) -> Result<Response> {
    let auth_required = !ctx.anonymous_read();
    if auth_required && ctx.principal.is_none() {
        return Err(unauthorized("this registry requires a token to read (`cargo login`)"));
    }
    let config = index::RegistryConfig::for_registry(&ctx.registry_url, auth_required);
    Ok(Response::json(200, &config).with_header("Cache-Control", crate::storage::key::cache_control::REVALIDATE))
}

/// Whether a client's `If-None-Match` names `etag` (RFC 9110 §13.1.2, weak comparison).
fn etag_matches(req: &Request, etag: &str) -> bool {
    req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag))
}

/// `GET|HEAD {index path}`: the hosted index file (ETag, 304, revalidated on every use),
/// else the mirror's, else 404. A path not of cargo's shape for its name is a 404 (cargo
/// only asks for its own paths).
async fn index_file(ctx: &Ctx<'_>, req: &Request, path: &str) -> Result<Response> {
    let path = decode_path(path).ok_or_else(|| not_found("Not Found"))?;
    let name = names::name_from_index_path(&path).ok_or_else(|| not_found("Not Found"))?;
    ctx.check_read(&name)?;
    let key = keys::index_file(&name);
    if let Some(obj) = ctx.storage.get(key.as_str(), None, ctx.hook_meta(&name, None)).await? {
        let etag = format!("\"{}\"", obj.meta.etag);
        let modified = crate::util::http_date(obj.meta.uploaded_ms);
        let base = |status: u16| key.cache_headers(Response::new(status)).with_header("ETag", etag.clone()).with_header("Last-Modified", modified.clone());
        // RFC 9110 §13.1.3: If-Modified-Since counts only without If-None-Match; cargo sends
        // back the Last-Modified it was given, so the same date means unchanged.
        let unchanged = match req.header("if-none-match") {
            Some(_) => etag_matches(req, &etag),
            None => req.header("if-modified-since").is_some_and(|d| d.trim() == modified),
        };
        if unchanged {
            return Ok(base(304));
        }
        let mut resp = base(200)
            .with_header("Content-Type", key.kind.content_type)
            .with_header("Content-Length", obj.meta.size.to_string())
            .with_edge(EdgeHint::document(vec![key.to_string()]));
        resp.body = obj.body;
        return Ok(resp);
    }
    let missing = || not_found(format!("crate `{}` not found", name.as_str()));
    // A crate hosted under another spelling of the name is never looked for upstream.
    if is_hosted(ctx.app, &name).await? {
        return Err(missing());
    }
    proxy::index_file(ctx.app, req, &name).await?.ok_or_else(missing)
}

/// `GET|HEAD api/v1/crates/{crate}/{version}/download`: a hosted `.crate` streamed from R2,
/// else the mirror's, else 404.
async fn download(ctx: &Ctx<'_>, req: &Request, krate: &str, version: &str) -> Result<Response> {
    let name = crate_from(krate)?;
    let version = version_from(version)?;
    ctx.check_read(&name)?;
    let missing = || not_found(format!("crate `{}` does not have a version `{version}`", name.as_str()));
    let Some(record) = ctx.load(&name).await? else {
        return proxy::download(ctx.app, req, &name, &version).await?.ok_or_else(missing);
    };
    let (vers, file) = record.find(&version).ok_or_else(missing)?;
    // Any spelling of the canonical name finds the crate; its files are under the published one.
    let published = CrateName::parse(&record.name).filter(|_| keys::valid_publish_id(&file.id));
    let published = published.ok_or_else(|| Error::internal(format!("record of {} is corrupt", name.as_str())))?;
    let key = keys::crate_file(&published, &file.id, vers);
    let meta = ctx.storage.head(key.as_str()).await?.ok_or_else(missing)?;
    let etag = format!("\"{}\"", meta.etag);
    let base = |status: u16| {
        key.cache_headers(Response::new(status))
            .with_header("Content-Type", key.kind.content_type)
            .with_header("ETag", etag.clone())
            // Keeps the runtime from compressing, which would drop Content-Length.
            .with_header("Content-Encoding", "identity")
    };
    if etag_matches(req, &etag) {
        return Ok(base(304));
    }
    if req.method == Method::Head {
        return Ok(base(200).with_header("Content-Length", meta.size.to_string()));
    }
    let obj = ctx.storage.get(key.as_str(), None, ctx.hook_meta(&name, Some(vers))).await?.ok_or_else(missing)?;
    let mut resp = base(200).with_header("Content-Length", obj.meta.size.to_string()).with_edge(EdgeHint::artifact(vec![key.to_string()]));
    resp.body = obj.body;
    Ok(resp)
}

/// `DELETE …/{version}/yank` and `PUT …/{version}/unyank` (Registry Web API): `{"ok":true}`.
async fn yank(ctx: &Ctx<'_>, krate: &str, version: &str, yanked: bool) -> Result<Response> {
    let name = crate_from(krate)?;
    let writer = ctx.writer(&name, Action::Write)?;
    let version = version_from(version)?;
    ctx.run(&name, CargoJob::SetYanked { name: name.as_str().to_string(), version, yanked, writer }).await?;
    Ok(Response::json(200, &json!({"ok": true})))
}

/// The most results a search page holds (crates.io's limit).
const MAX_PER_PAGE: usize = 100;

/// `GET api/v1/crates?q=&per_page=&page=` (Registry Web API, "Search"): hosted crates whose
/// name or description holds `q` (case-insensitive), exact names first, then by name.
async fn search(ctx: &Ctx<'_>, req: &Request) -> Result<Response> {
    if ctx.principal.is_none() && !ctx.anonymous_read() {
        return Err(unauthorized("this registry requires a token to read (`cargo login`)"));
    }
    let query = req.query_param("q").unwrap_or("").trim().to_lowercase();
    let number = |param: &str, default: usize| match req.query_param(param) {
        None | Some("") => Ok(default),
        Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| Error::invalid(format!("invalid {param} {v:?}"))),
    };
    let per_page = number("per_page", 10)?.min(MAX_PER_PAGE);
    let page = number("page", 1)?;
    let mut found: Vec<(String, String, String)> = ctx
        .storage
        .list_all(keys::SEARCH_PREFIX)
        .await?
        .into_iter()
        .filter_map(|o| {
            let lower = o.key.strip_prefix(keys::SEARCH_PREFIX)?.to_string();
            let name = o.custom.get("name").cloned().unwrap_or_else(|| lower.clone());
            let description = o.custom.get("description").cloned().unwrap_or_default();
            let max_version = o.custom.get("max_version").cloned().unwrap_or_default();
            let hit = lower.contains(&query) || description.to_lowercase().contains(&query);
            hit.then_some((name, max_version, description))
        })
        .collect();
    if !ctx.anonymous_read() {
        if let Some(p) = &ctx.principal {
            found.retain(|(n, _, _)| p.can(Protocol::Cargo, n, Action::Read));
        }
    }
    found.sort_by(|a, b| (a.0.to_lowercase() != query).cmp(&(b.0.to_lowercase() != query)).then_with(|| a.0.cmp(&b.0)));
    let total = found.len();
    let crates: Vec<serde_json::Value> = found
        .into_iter()
        .skip(per_page.saturating_mul(page - 1))
        .take(per_page)
        .map(|(name, max_version, description)| json!({"name": name, "max_version": max_version, "description": description}))
        .collect();
    Ok(Response::json(200, &json!({"crates": crates, "meta": {"total": total}})).with_header("Cache-Control", "no-store"))
}

/// A user as the owners API lists them (crates.io's `EncodableOwner`): this registry's user
/// names are their own logins; `id` is the position in the list, stable enough for cargo,
/// which prints only `login` and `name`.
fn owner_list(owners: &[String]) -> serde_json::Value {
    let users: Vec<serde_json::Value> =
        owners.iter().enumerate().map(|(i, o)| json!({"id": i + 1, "login": o, "name": o, "kind": "user"})).collect();
    json!({"users": users})
}

/// `GET api/v1/crates/{crate}/owners`.
async fn owners(ctx: &Ctx<'_>, krate: &str) -> Result<Response> {
    let name = crate_from(krate)?;
    ctx.check_read(&name)?;
    let record = ctx.load(&name).await?.ok_or_else(|| not_found(format!("crate `{}` does not exist", name.as_str())))?;
    Ok(Response::json(200, &owner_list(&record.owners)))
}

/// The body of an owners change: `{"users": ["login", …]}`.
#[derive(Deserialize)]
struct OwnersBody {
    users: Vec<String>,
}

/// `PUT|DELETE api/v1/crates/{crate}/owners`: adds or removes owners (users of this registry;
/// added at once, there are no invitations here).
async fn change_owners(ctx: &Ctx<'_>, req: Request, krate: &str, add: bool) -> Result<Response> {
    let name = crate_from(krate)?;
    let writer = ctx.writer(&name, Action::Write)?;
    let body = req.body.read_capped(SMALL_BODY_BYTES).await?;
    let parsed: OwnersBody = serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("malformed owners body: {e}")))?;
    if parsed.users.is_empty() || parsed.users.len() > 100 {
        return Err(Error::invalid("name between 1 and 100 users"));
    }
    let record = ctx.load(&name).await?.ok_or_else(|| not_found(format!("crate `{}` does not exist", name.as_str())))?;
    jobs::check_owner(&record, &writer)?;
    if add {
        let auth = Auth::new(&ctx.app.platform, &ctx.app.config);
        for user in &parsed.users {
            if auth.user(user).await.map_err(errors::auth)?.is_none() {
                return Err(Error::not_found(format!("could not find user with login `{user}`")));
            }
        }
    }
    let users = parsed.users.join("`, `");
    let (job, msg) = if add {
        let msg = format!("user(s) `{users}` added as owner(s) of crate `{}`", name.as_str());
        (CargoJob::ChangeOwners { name: name.as_str().to_string(), add: parsed.users, remove: Vec::new(), writer }, msg)
    } else {
        let msg = format!("owner(s) `{users}` removed from crate `{}`", name.as_str());
        (CargoJob::ChangeOwners { name: name.as_str().to_string(), add: Vec::new(), remove: parsed.users, writer }, msg)
    };
    ctx.run(&name, job).await?;
    Ok(Response::json(200, &json!({"ok": true, "msg": msg})))
}

/// The admin API's view of a crate's owners (`/-/admin/owners/cargo/{name}`), after
/// replacing them with `new` (users of this registry) when given.
pub async fn admin_owners(app: &App, name: &CrateName, new: Option<Vec<String>>) -> Result<Vec<String>> {
    let actor = crate::http::Actor { user_id: Some("admin".into()), ..Default::default() };
    let storage = app.storage(Protocol::Cargo, &actor);
    if let Some(new) = new {
        let owners = owners::admin_owner_list(&Auth::new(&app.platform, &app.config), new).await?;
        let meta = HookMetadata { package: Some(name.as_str().to_string()), ..Default::default() };
        let job = CargoJob::SetOwners { name: name.as_str().to_string(), owners };
        storage.run_job(&*app.platform.coordinator, &lock(name), Operation::Put, &keys::record(name), meta, &job).await?;
    }
    let record = jobs::load(&*app.platform.store, name).await?.ok_or_else(|| Error::not_found(format!("no hosted crate {}", name.as_str())))?;
    Ok(record.owners)
}
