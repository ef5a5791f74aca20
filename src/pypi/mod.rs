//! The PyPI repository API (hosted projects) under the PyPI base path (`/pypi`):
//!
//! * the simple API (`/simple/`, `/simple/{project}/`; PEP 503, 691, 592, 658, 700, 714),
//! * uploads through the legacy API (`POST /` and `/legacy/`, multipart/form-data streamed
//!   to R2: `upload.rs`),
//! * downloads of hosted files and their PEP 658 metadata (`/packages/{project}/{id}/{file}`),
//! * the JSON API (`/{project}/json`, `/{project}/{version}/json`),
//! * yank, unyank and delete (`/-/yank/…`, `/-/unyank/…`, `/-/releases/…`, `/-/files/…`).
//!
//! Each project has one record (`record.rs`) changed only by serialised jobs (`jobs.rs`);
//! pages are rendered from it. Projects not hosted here go to the pull-through mirror
//! (`proxy.rs`) when an upstream is configured: hosted first, always.

pub mod digest;
pub mod errors;
pub mod filename;
pub mod jobs;
pub mod json_api;
pub mod metadata;
mod module;
pub mod multipart;
pub mod names;
pub mod proxy;
pub mod record;
pub mod rewrite;
pub mod simple;
mod upload;
pub mod wheel;

pub use module::MODULE;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;

use crate::auth::{owners, Action, Auth, Principal};
use crate::config::Protocol;
use crate::error::{Error, Result};
use crate::http::{decode_path, Method, Request, Response};
use crate::platform::{ByteRange, EdgeHint};
use crate::router::App;
use crate::storage::{HookMetadata, Operation, Storage};
use errors::{not_found, unauthorized};
use jobs::{PypiJob, Writer};
use names::{keys, ProjectName, UploadId};
use record::Project;
use simple::Negotiated;

/// What a path segment keeps unescaped in the URLs this registry writes (RFC 3986
/// unreserved characters, and `+` and `!` which wheel and sdist filenames use).
pub const PATH_SEGMENT: &AsciiSet = &UNRESERVED.remove(b'+').remove(b'!');
/// Everything but RFC 3986's unreserved characters is escaped (a query value: `+` too).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Cap on bodies that are a few fields (a yank reason): 16 KiB.
const SMALL_BODY_BYTES: u64 = 16 * 1024;

/// One PyPI request with what every route needs.
pub(crate) struct Ctx<'a> {
    app: &'a App,
    /// `{origin}/pypi`: where generated links point.
    registry_url: String,
    storage: Storage,
    principal: Option<Principal>,
}

impl Ctx<'_> {
    fn anonymous_read(&self) -> bool {
        self.app.config.protocol(Protocol::Pypi).anonymous_read
    }

    /// Read access: anonymous when the protocol allows it, else a credential with read scope.
    fn check_read(&self, name: &ProjectName) -> Result<()> {
        owners::read_access(self.principal.as_ref(), self.anonymous_read(), Protocol::Pypi, name.as_str())
            .map_err(|r| r.into_error(|| unauthorized("authentication required")))
    }

    /// Whom a write is for: the caller must be authenticated and hold the scope. Ownership
    /// is checked early against the record and again by the job under the project's lock.
    fn writer(&self, name: &ProjectName, action: Action) -> Result<Writer> {
        owners::writer(self.principal.as_ref(), Protocol::Pypi, name.as_str(), action)
            .map_err(|r| r.into_error(|| unauthorized("authentication required")))
    }

    fn hook_meta(&self, name: &ProjectName, version: Option<&str>) -> HookMetadata {
        HookMetadata { package: Some(name.to_string()), version: version.map(str::to_string), ..Default::default() }
    }

    /// The hosted record of `name`, if any.
    async fn load(&self, name: &ProjectName) -> Result<Option<Project>> {
        Ok(jobs::load(&*self.app.platform.store, name).await?)
    }

    /// Runs a change of the record under its lock (`Storage::run_job`: the hooks are asked
    /// first and told after).
    async fn run(&self, name: &ProjectName, job: PypiJob) -> Result<serde_json::Value> {
        let operation = if job.deletes() { Operation::Delete } else { Operation::Put };
        let coordinator = &*self.app.platform.coordinator;
        self.storage.run_job(coordinator, &name.lock(), operation, &keys::project(name), self.hook_meta(name, None), &job).await
    }
}

/// Whether `name` is hosted here (its record exists): one HEAD, for the pull-through mirror's
/// hosted-first rule.
pub async fn is_hosted(app: &App, name: &ProjectName) -> Result<bool> {
    Ok(app.platform.store.head(keys::project(name).as_str()).await?.is_some())
}

/// A project name from a URL segment (percent-decoded): 400 when it is not a valid name.
fn project_from(segment: &str) -> Result<ProjectName> {
    let raw = decode_path(segment).ok_or_else(|| Error::invalid("invalid project name"))?;
    ProjectName::parse(&raw).ok_or_else(|| Error::invalid(format!("invalid project name {raw:?}")))
}

/// A PyPI request; its errors are written by `errors::PypiErrors` (see `module.rs`).
pub async fn handle(app: &App, mut req: Request, path: &str) -> Result<Response> {
    let principal = Auth::new(&app.platform, &app.config).principal(&req.headers, Protocol::Pypi).await.map_err(errors::auth)?;
    // Hooks and the upstream provider see who asks (the mirror reads it from the request).
    req.actor = req.actor.identified(principal.as_ref());
    let ctx = Ctx {
        app,
        registry_url: app.config.registry_url(Protocol::Pypi, &req.origin),
        storage: app.storage(Protocol::Pypi, &req.actor),
        principal,
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let read = req.method.is_read();
    match (req.method, segs.as_slice()) {
        (Method::Post, [""] | ["legacy"] | ["legacy", ""]) => upload::upload(&ctx, req).await,
        (_, ["simple"]) if read => Ok(redirect(&req, format!("{}/simple/", ctx.registry_url))),
        (_, ["simple", ""]) if read => root_index(&ctx, &req).await,
        (_, ["simple", project]) if read => Ok(redirect(&req, format!("{}/simple/{project}/", ctx.registry_url))),
        (_, ["simple", project, ""]) if read => project_page(&ctx, &req, project).await,
        (_, ["packages", project, id, file]) if read => download(&ctx, &req, project, id, file).await,
        (_, ["files", project, rest @ ..]) if read && !rest.is_empty() => proxied_file(&ctx, &req, project, &rest.join("/")).await,
        (_, [project, "json"]) if read => json_api(&ctx, project, None).await,
        (_, [project, version, "json"]) if read => json_api(&ctx, project, Some(version)).await,
        (Method::Post, ["-", "yank", project, version]) => yank(&ctx, req, project, version, true).await,
        (Method::Post, ["-", "unyank", project, version]) => yank(&ctx, req, project, version, false).await,
        (Method::Delete, ["-", "releases", project, version]) => delete_release(&ctx, project, version).await,
        (Method::Delete, ["-", "files", project, file]) => delete_file(&ctx, project, file).await,
        _ => Err(not_found()),
    }
}

/// 301 to `location`, keeping the `format` query parameter (PEP 691).
fn redirect(req: &Request, location: String) -> Response {
    let location = match req.query_param("format") {
        Some(f) => format!("{location}?format={}", percent_encoding::utf8_percent_encode(f, UNRESERVED)),
        None => location,
    };
    Response::new(301).with_header("Location", location).with_header("Content-Length", "0")
}

/// The negotiated page format, or 406.
fn negotiated(req: &Request) -> Result<Negotiated> {
    simple::negotiate(req.header("accept"), req.query_param("format"))
        .ok_or_else(|| Error::invalid("none of the requested content types is available (PEP 691)").with_status(406))
}

/// `GET /simple/`: every hosted project the caller may read. The list is one listing of the
/// index markers (`pypi/index/`, one zero-byte object per project written by its first
/// upload), never a read of each record.
async fn root_index(ctx: &Ctx<'_>, req: &Request) -> Result<Response> {
    if ctx.principal.is_none() && !ctx.anonymous_read() {
        return Err(unauthorized("authentication required"));
    }
    let negotiated = negotiated(req)?;
    let mut projects: Vec<(String, String)> = ctx
        .storage
        .list_all(keys::INDEX_PREFIX)
        .await?
        .into_iter()
        .filter_map(|o| {
            let normalised = o.key.strip_prefix(keys::INDEX_PREFIX)?.to_string();
            let display = o.custom.get("name").cloned().unwrap_or_else(|| normalised.clone());
            Some((normalised, display))
        })
        .collect();
    if !ctx.anonymous_read() {
        if let Some(p) = &ctx.principal {
            projects.retain(|(n, _)| p.can(Protocol::Pypi, n, Action::Read));
        }
    }
    let body = simple::root_page(&projects, &ctx.registry_url, negotiated.format);
    Ok(simple::page_response(req, negotiated, body))
}

/// `GET /simple/{project}/`: the hosted page, else the mirror's, else 404. A name not in its
/// normalised spelling is redirected to it (301, as pypi.org).
async fn project_page(ctx: &Ctx<'_>, req: &Request, segment: &str) -> Result<Response> {
    let name = project_from(segment)?;
    if !name.is_spelled(segment) {
        return Ok(redirect(req, format!("{}/simple/{name}/", ctx.registry_url)));
    }
    ctx.check_read(&name)?;
    let negotiated = negotiated(req)?;
    if let Some(project) = ctx.load(&name).await? {
        let body = simple::project_page(&project, &name, &ctx.registry_url, negotiated.format);
        return Ok(simple::page_response(req, negotiated, body).with_edge(EdgeHint::document(vec![keys::project(&name).to_string()])));
    }
    // Not hosted (no record): the mirror's page, when an upstream may serve the name.
    let not_hosted = async |_: &str| Ok(false);
    proxy::project_page(ctx.app, req, &ctx.registry_url, name.as_str(), negotiated.content_type, not_hosted).await?.ok_or_else(not_found)
}

/// `GET /files/{project}/…`: a file of a mirrored project. Hosted projects have none.
async fn proxied_file(ctx: &Ctx<'_>, req: &Request, segment: &str, rest: &str) -> Result<Response> {
    let name = project_from(segment)?;
    ctx.check_read(&name)?;
    let hosted = async |_: &str| is_hosted(ctx.app, &name).await;
    proxy::file(ctx.app, req, &format!("{name}/{rest}"), hosted).await
}

/// The content type a distribution file is served with, by its extension.
fn file_content_type(filename: &str) -> &'static str {
    if filename.ends_with(".whl") || filename.ends_with(".zip") {
        "application/zip"
    } else if filename.ends_with(".tar.gz") {
        // The archive itself: never `Content-Encoding: gzip`, which clients would undo.
        "application/gzip"
    } else {
        keys::FILE.content_type
    }
}

/// `GET|HEAD /packages/{project}/{upload id}/{filename}[.metadata]`: a hosted file or its
/// PEP 658 metadata, streamed from R2, with `Range` (RFC 9110 §14) on GET.
async fn download(ctx: &Ctx<'_>, req: &Request, project: &str, id: &str, file: &str) -> Result<Response> {
    let name = project_from(project)?;
    ctx.check_read(&name)?;
    let id = UploadId::parse(id).ok_or_else(not_found)?;
    let file = decode_path(file).ok_or_else(|| Error::invalid("invalid filename"))?;
    let (dist, is_metadata) = match file.strip_suffix(".metadata") {
        Some(dist) => (dist, true),
        None => (file.as_str(), false),
    };
    if filename::parse(dist).is_none() {
        return Err(Error::invalid(format!("invalid distribution filename {dist:?}")));
    }
    let file_key = keys::file(&name, &id, dist);
    let (key, content_type) = if is_metadata {
        let key = keys::metadata(&file_key);
        let ct = key.kind.content_type;
        (key, ct)
    } else {
        (file_key, file_content_type(dist))
    };
    let meta = ctx.storage.head(key.as_str()).await?.ok_or_else(not_found)?;
    let range = match req.header("range").filter(|_| req.method == Method::Get).and_then(|r| crate::oci::parse_range(r, meta.size)) {
        Some(Err(())) => {
            return Err(Error::invalid("range not satisfiable").with_status(416).header("Content-Range", format!("bytes */{}", meta.size)))
        }
        Some(Ok(r)) => Some(r),
        None => None,
    };
    let etag = format!("\"{}\"", meta.etag);
    let base = |status: u16, length: u64| {
        key.cache_headers(Response::new(status))
            .with_header("Content-Type", content_type)
            .with_header("Content-Length", length.to_string())
            .with_header("ETag", etag.clone())
            .with_header("Accept-Ranges", "bytes")
            // Keeps the runtime from compressing, which would drop Content-Length.
            .with_header("Content-Encoding", "identity")
    };
    if req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag)) {
        return Ok(base(304, meta.size).with_header("Content-Length", "0"));
    }
    if req.method == Method::Head {
        return Ok(base(200, meta.size));
    }
    let byte_range = range.map(|(a, b)| ByteRange::Slice { offset: a, length: b - a + 1 });
    let obj = ctx.storage.get(key.as_str(), byte_range, ctx.hook_meta(&name, None)).await?.ok_or_else(not_found)?;
    let mut resp = match range {
        Some((a, b)) => base(206, b - a + 1).with_header("Content-Range", format!("bytes {a}-{b}/{}", meta.size)),
        None => base(200, meta.size).with_edge(EdgeHint::artifact(vec![key.to_string()])),
    };
    resp.body = obj.body;
    Ok(resp)
}

/// `GET /{project}/json` and `/{project}/{version}/json`: hosted projects only.
async fn json_api(ctx: &Ctx<'_>, project: &str, version: Option<&str>) -> Result<Response> {
    let name = project_from(project)?;
    ctx.check_read(&name)?;
    let record = ctx.load(&name).await?.ok_or_else(not_found)?;
    let version = version.map(|v| decode_path(v).ok_or_else(not_found)).transpose()?;
    let doc = json_api::document(&record, &name, &ctx.registry_url, version.as_deref()).ok_or_else(not_found)?;
    Ok(Response::json(200, &doc).with_header("Cache-Control", crate::storage::key::cache_control::REVALIDATE))
}

/// The optional body of a yank: `{"reason": "…"}`.
#[derive(serde::Deserialize, Default)]
struct YankBody {
    #[serde(default)]
    reason: Option<String>,
}

/// The longest yank reason kept.
const MAX_YANK_REASON: usize = 1000;

/// `POST /-/yank/{project}/{version}` (reason optional) and `/-/unyank/…` (PEP 592).
async fn yank(ctx: &Ctx<'_>, req: Request, project: &str, version: &str, yank: bool) -> Result<Response> {
    let name = project_from(project)?;
    let writer = ctx.writer(&name, Action::Write)?;
    let version = decode_path(version).ok_or_else(not_found)?;
    let body = req.body.read_capped(SMALL_BODY_BYTES).await?;
    let reason = if !yank {
        None
    } else if body.iter().all(u8::is_ascii_whitespace) {
        Some(String::new())
    } else {
        let parsed: YankBody = serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("malformed JSON body: {e}")))?;
        let reason = parsed.reason.unwrap_or_default();
        if reason.chars().count() > MAX_YANK_REASON {
            return Err(Error::invalid(format!("the reason is longer than {MAX_YANK_REASON} characters")));
        }
        Some(reason)
    };
    let result = ctx.run(&name, PypiJob::SetYanked { name: name.to_string(), version, reason, writer }).await?;
    Ok(Response::json(200, &result))
}

/// Deletes the objects a delete job reported gone from the record.
async fn remove_objects(ctx: &Ctx<'_>, name: &ProjectName, result: &serde_json::Value) -> Result<()> {
    let removed: Vec<String> = result
        .get("removed")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|k| k.as_str()).filter(|k| k.starts_with(&name.key_prefix())).map(str::to_string).collect())
        .unwrap_or_default();
    if !removed.is_empty() {
        ctx.storage.delete(&removed, ctx.hook_meta(name, None)).await?;
    }
    Ok(())
}

/// `DELETE /-/releases/{project}/{version}`: the release and its files.
async fn delete_release(ctx: &Ctx<'_>, project: &str, version: &str) -> Result<Response> {
    let name = project_from(project)?;
    let writer = ctx.writer(&name, Action::Delete)?;
    let version = decode_path(version).ok_or_else(not_found)?;
    let result = ctx.run(&name, PypiJob::DeleteRelease { name: name.to_string(), version, writer }).await?;
    remove_objects(ctx, &name, &result).await?;
    Ok(Response::json(200, &json!({"ok": true, "version": result.get("version")})))
}

/// `DELETE /-/files/{project}/{filename}`: one file; its release goes with its last file.
async fn delete_file(ctx: &Ctx<'_>, project: &str, file: &str) -> Result<Response> {
    let name = project_from(project)?;
    let writer = ctx.writer(&name, Action::Delete)?;
    let filename = decode_path(file).filter(|f| filename::parse(f).is_some()).ok_or_else(|| Error::invalid("invalid distribution filename"))?;
    let result = ctx.run(&name, PypiJob::DeleteFile { name: name.to_string(), filename, writer }).await?;
    remove_objects(ctx, &name, &result).await?;
    Ok(Response::json(200, &json!({"ok": true, "release_removed": result.get("release_removed")})))
}

/// The admin API's view of a project's owners (`/-/admin/owners/pypi/{name}`), after
/// replacing them with `new` (users of this registry) when given.
pub async fn admin_owners(app: &App, name: &ProjectName, new: Option<Vec<String>>) -> Result<Vec<String>> {
    let actor = crate::http::Actor { user_id: Some("admin".into()), ..Default::default() };
    let storage = app.storage(Protocol::Pypi, &actor);
    if let Some(new) = new {
        if new.is_empty() || new.len() > 100 {
            return Err(Error::invalid("a project needs between 1 and 100 owners"));
        }
        let auth = Auth::new(&app.platform, &app.config);
        for user in &new {
            if auth.user(user).await.map_err(errors::auth)?.is_none() {
                return Err(Error::not_found(format!("no such user {user:?}")));
            }
        }
        let key = keys::project(name);
        storage.check(Operation::Put, key.as_str(), HookMetadata { package: Some(name.to_string()), ..Default::default() }).await?;
        let mut owners: Vec<String> = Vec::new();
        for user in new {
            if !owners.contains(&user) {
                owners.push(user);
            }
        }
        crate::jobs::run(&*app.platform.coordinator, &name.lock(), Protocol::Pypi, &PypiJob::SetOwners { name: name.to_string(), owners }).await?;
    }
    let project = jobs::load(&*app.platform.store, name).await?.ok_or_else(|| Error::not_found(format!("no hosted project {name}")))?;
    Ok(project.owners)
}
