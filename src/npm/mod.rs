//! The npm registry API (hosted packages): packuments, tarballs, publish, dist-tags,
//! deprecate, unpublish, search, login, whoami and tokens.
//!
//! Packuments are stored canonically and their tarball URLs are written at serve time from
//! the registry URL, so moving the registry never leaves stale links. Every change to a
//! packument runs as a serialised job (`jobs.rs`).

pub mod errors;
pub mod jobs;
pub mod names;
pub mod packument;
pub mod proxy;
pub mod rewrite;
pub mod search;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::auth::{Action, Auth, AuthError, NewToken, Principal};
use crate::config::Protocol;
use crate::http::{decode_path, Method, Request, Response};
use crate::jobs::{Job, JobError};
use crate::json::JsonError;
use crate::platform::{Checksum, PutOptions, PutOutcome};
use crate::error::{finish, respond};
use crate::router::App;
use crate::upstream::engine::{resolve, Resolved};
use crate::storage::{HookMetadata, Operation, Storage, StorageError};
use errors::NpmErrors;
use jobs::{NpmJob, Writer};
use names::{valid_tag, valid_version, PackageName};
use packument::ABBREVIATED_MEDIA_TYPE;

fn error(status: u16, message: impl Into<String>) -> Response {
    let message = message.into();
    Response::json(status, &json!({"error": message, "reason": message}))
}

fn unauthorized(message: &str) -> Response {
    error(401, message).with_header("WWW-Authenticate", "Bearer realm=\"edgeregistry\"")
}

fn storage_error(e: StorageError) -> Response {
    match e {
        StorageError::Denied(reason) => error(403, reason),
        StorageError::Store(e) => internal(e),
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    log::error(&format!("npm: {e}"));
    error(500, "internal error")
}

fn auth_error(e: AuthError) -> Response {
    match e {
        AuthError::InvalidCredentials => unauthorized("invalid or expired credentials"),
        AuthError::RateLimited { retry_after_secs } => {
            error(429, "too many failed logins; try again later").with_header("Retry-After", retry_after_secs.to_string())
        }
        AuthError::BadRequest(m) => error(400, m),
        AuthError::Conflict(m) => error(409, m),
        AuthError::Storage(m) => internal(m),
    }
}

fn job_error(e: JobError) -> Response {
    if e.status >= 500 {
        return internal(e.message);
    }
    error(e.status, e.message)
}

use crate::logging as log;

/// One npm request with what every route needs.
struct Ctx<'a> {
    app: &'a App,
    registry_url: String,
    storage: Storage,
    principal: Option<Principal>,
    actor: crate::http::Actor,
    headers: crate::http::Headers,
}

impl Ctx<'_> {
    fn protocol_config(&self) -> &crate::config::ProtocolConfig {
        self.app.config.protocol(Protocol::Npm)
    }

    /// Read access: anonymous when the protocol allows it, else a token with read scope.
    fn check_read(&self, name: &PackageName) -> Option<Response> {
        match &self.principal {
            None if self.protocol_config().anonymous_read => None,
            None => Some(unauthorized("authentication required")),
            Some(p) if p.can(Protocol::Npm, name.as_str(), Action::Read) => None,
            Some(_) if self.protocol_config().anonymous_read => None,
            Some(p) => Some(error(403, format!("user {} may not read {name}", p.user))),
        }
    }

    /// May the caller write `name` at all (token scopes)? Ownership is checked with the
    /// packument at hand ([`Ctx::check_owner`]) and again by the job under the package lock.
    fn check(&self, name: &PackageName, action: Action) -> Result<&Principal, Response> {
        match &self.principal {
            None => Err(unauthorized("authentication required")),
            Some(p) if p.can(Protocol::Npm, name.as_str(), action) => Ok(p),
            Some(p) if p.readonly => Err(error(403, "this token is read-only")),
            Some(p) => Err(error(403, format!("user {} may not {} {name}", p.user, action.as_str()))),
        }
    }

    /// [`Ctx::check`], then the writer a job checks ownership for.
    fn writer(&self, name: &PackageName, action: Action) -> Result<Writer, Response> {
        let p = self.check(name, action)?;
        Ok(Writer { user: p.user.clone(), may_override: crate::auth::owners::bypasses(p, Protocol::Npm, name.as_str(), action) })
    }

    /// Early refusal for a writer who does not maintain an existing package (the job checks
    /// again under the lock).
    fn check_owner(&self, doc: &Value, name: &PackageName, writer: &Writer) -> Result<(), Response> {
        jobs::check_owner(doc, name, writer).map_err(job_error)
    }

    /// Read access to npm data in general (search, audit): anonymous when allowed, else a
    /// credential with some npm read scope.
    fn check_read_any(&self) -> Option<Response> {
        match &self.principal {
            _ if self.protocol_config().anonymous_read => None,
            None => Some(unauthorized("authentication required")),
            Some(p) if p.scopes.iter().any(|s| (s.protocol == "npm" || s.protocol == "*") && s.allows(&s.protocol, &s.resource_type, &s.name, Action::Read)) => None,
            Some(p) => Some(error(403, format!("user {} may not read npm packages", p.user))),
        }
    }

    fn logged_in(&self) -> Result<&Principal, Response> {
        self.principal.as_ref().ok_or_else(|| unauthorized("authentication required"))
    }

    /// The pull-through cache for `name`, when an upstream may serve it.
    async fn proxy(&self, resource: &str, resource_type: &str) -> Option<proxy::NpmProxy> {
        let ctx = crate::upstream::ResolveContext { protocol: Protocol::Npm, resource, resource_type, actor: &self.actor };
        let upstreams = self.app.upstreams.resolve(&ctx).await?;
        let p = proxy::NpmProxy::new(self.app.platform.clone(), upstreams, self.registry_url.clone());
        (matches!(resource_type, "audit" | "search") || p.serves_name(resource)).then_some(p)
    }

    /// Hosted first (the packument key exists): where a request for `name` goes. `absent`:
    /// the caller has just found no packument.
    async fn resolve(&self, name: &PackageName, resource_type: &str, absent: bool) -> Result<Resolved<proxy::NpmProxy>, Response> {
        let ctx = crate::upstream::ResolveContext { protocol: Protocol::Npm, resource: name.as_str(), resource_type, actor: &self.actor };
        let upstreams = self.app.upstreams.resolve(&ctx).await;
        let is_hosted = async {
            match absent {
                true => Ok(false),
                false => Ok(self.storage.head(&name.packument_key()).await?.is_some()),
            }
        };
        let proxy = |engine| proxy::NpmProxy::with_engine(engine, self.registry_url.clone());
        resolve(&self.app.platform, upstreams, name.as_str(), is_hosted, proxy).await.map_err(|e| respond(&NpmErrors, "npm", &e))
    }

    /// Runs a change of the packument under its lock. The storage hooks are asked first, as
    /// for any write (the job itself runs where no request context exists): `READ_ONLY`
    /// refuses every change before it happens.
    async fn run(&self, name: &PackageName, job: NpmJob) -> Result<Value, Response> {
        let operation = if matches!(job, NpmJob::DeletePackage { .. }) { Operation::Delete } else { Operation::Put };
        let meta = HookMetadata { package: Some(name.to_string()), content_type: Some("application/json".into()), ..Default::default() };
        let key = name.packument_key();
        self.storage.check(operation, &key, meta.clone()).await.map_err(storage_error)?;
        let result = self.app.platform.coordinator.run(&name.lock(), Job::Npm(job)).await.map_err(job_error)?;
        self.storage.notify(operation, &key, meta).await;
        Ok(result)
    }

    async fn load_packument(&self, name: &PackageName) -> Result<Option<(Value, String)>, Response> {
        let meta = HookMetadata { package: Some(name.to_string()), ..Default::default() };
        let Some(obj) = self.storage.get(&name.packument_key(), None, meta).await.map_err(storage_error)? else {
            return Ok(None);
        };
        let etag = obj.meta.etag.clone();
        let bytes = obj.body.read_capped(u64::MAX).await.map_err(internal)?;
        let doc = serde_json::from_slice(&bytes).map_err(|e| internal(format!("corrupt packument {name}: {e}")))?;
        Ok(Some((doc, etag)))
    }

    /// The request body, refused past `limit` (413) before more than that is read.
    async fn body_bytes(&self, req: Request, limit: u64) -> Result<Vec<u8>, Response> {
        req.body.read_capped(limit).await.map_err(|e| match e {
            crate::http::BodyError::TooLarge { .. } => error(413, format!("request body larger than {limit} bytes")),
            crate::http::BodyError::Io(_) => error(400, "could not read the request body"),
        })
    }

    /// A small JSON body (login, tokens, dist-tags) into a typed struct.
    async fn small_json<T: serde::de::DeserializeOwned>(&self, req: Request) -> Result<T, Response> {
        let bytes = self.body_bytes(req, SMALL_BODY_BYTES).await?;
        serde_json::from_slice(&bytes).map_err(|e| error(400, format!("malformed JSON body: {e}")))
    }
}

/// Cap on bodies that are a few fields (login, token creation, a dist-tag): 16 KiB.
const SMALL_BODY_BYTES: u64 = 16 * 1024;
/// Values a publish body may hold outside its tarballs (manifests, readme metadata): bounds
/// the `Value` trees built from it. A publish of a large package has a few thousand.
const MAX_PUBLISH_VALUES: usize = 100_000;

fn json_error(e: JsonError) -> Response {
    match e {
        JsonError::TooComplex { .. } => error(413, e.to_string()),
        JsonError::Malformed(_) => error(400, e.to_string()),
    }
}

/// Whether a packument has (or had: npm never reuses a number) this version.
fn has_version(doc: &Value, version: &str) -> bool {
    doc.get("versions").and_then(|v| v.get(version)).is_some() || doc.get("time").and_then(|t| t.get(version)).is_some()
}

/// Splits `@scope%2fname/rest`, `@scope/name/rest` or `name/rest` into the name and the rest.
fn split_package(path: &str) -> Option<(String, Vec<String>)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let first = decode_path(segments.first()?)?;
    let (name, rest) = if first.starts_with('@') && !first.contains('/') {
        let second = decode_path(segments.get(1)?)?;
        (format!("{first}/{second}"), segments.get(2..).unwrap_or_default())
    } else {
        (first, segments.get(1..).unwrap_or_default())
    };
    let rest = rest.iter().map(|s| decode_path(s)).collect::<Option<Vec<_>>>()?;
    Some((name, rest))
}

pub async fn handle(app: &App, req: Request, path: &str) -> Response {
    let auth = Auth::new(&app.platform, &app.config);
    let principal = match auth.principal(&req.headers, Protocol::Npm).await {
        Ok(p) => p,
        Err(e) => return auth_error(e),
    };
    let actor = req.actor.identified(principal.as_ref());
    let ctx = Ctx {
        app,
        registry_url: app.config.registry_url(Protocol::Npm, &req.origin),
        storage: app.storage(Protocol::Npm, &actor),
        principal,
        actor,
        headers: req.headers.clone(),
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method, segs.as_slice()) {
        (Method::Get, ["-", "ping"]) => Response::json(200, &json!({})),
        (Method::Get, ["-", "whoami"]) => match ctx.logged_in() {
            Ok(p) => Response::json(200, &json!({"username": p.user})),
            Err(r) => r,
        },
        (Method::Get, ["-", "v1", "search"]) => search(&ctx, &req).await,
        (Method::Put, ["-", "user", user]) => login(&ctx, user, req).await,
        (Method::Get, ["-", "user", user]) => get_user(&ctx, user).await,
        (Method::Get, ["-", "npm", "v1", "tokens"]) => list_tokens(&ctx).await,
        (Method::Post, ["-", "npm", "v1", "tokens"]) => create_token(&ctx, req).await,
        (Method::Delete, ["-", "npm", "v1", "tokens", "token", key]) => revoke_token(&ctx, key).await,
        (_, ["-", "package", rest @ ..]) => dist_tags(&ctx, req, &rest.join("/")).await,
        (Method::Post, ["-", "npm", "v1", "security", ..]) => {
            // The pass-through reveals what the caller depends on and spends the registry's
            // upstream credentials: the same read right as package data, before any body.
            if let Some(r) = ctx.check_read_any() {
                return r;
            }
            match ctx.proxy("", "audit").await {
                Some(p) => finish(&NpmErrors, "npm", p.audit(req, path).await),
                None => error(404, "npm audit needs an upstream registry"),
            }
        }
        (_, ["-", ..]) => error(404, "Not found"),
        _ => package_routes(&ctx, req, path).await,
    }
}

async fn package_routes(ctx: &Ctx<'_>, req: Request, path: &str) -> Response {
    let Some((raw_name, rest)) = split_package(path) else {
        return error(400, "invalid package path");
    };
    let Some(name) = PackageName::parse(&raw_name, req.method.is_read()) else {
        return error(400, format!("invalid package name {raw_name:?}"));
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (req.method, rest.as_slice()) {
        (Method::Get | Method::Head, []) => get_packument(ctx, &req, &name).await,
        (Method::Put, []) => publish(ctx, req, &name).await,
        (Method::Get | Method::Head, ["-", file]) => get_tarball(ctx, &req, &name, file).await,
        (Method::Put, ["-rev", _]) => put_revision(ctx, req, &name).await,
        (Method::Delete, ["-rev", _]) | (Method::Delete, []) => unpublish_package(ctx, &name).await,
        (Method::Delete, ["-", file, "-rev", _]) | (Method::Delete, ["-", file]) => delete_tarball(ctx, &name, file).await,
        (Method::Get | Method::Head, [version]) => get_version(ctx, &name, version).await,
        _ => error(405, "method not allowed"),
    }
}

async fn get_packument(ctx: &Ctx<'_>, req: &Request, name: &PackageName) -> Response {
    if let Some(r) = ctx.check_read(name) {
        return r;
    }
    let (mut doc, etag) = match ctx.load_packument(name).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return match ctx.resolve(name, "packument", true).await {
                Ok(Resolved::Proxied(p)) => finish(&NpmErrors, "npm", p.packument(req, name).await),
                Ok(_) => error(404, "Not found"),
                Err(r) => r,
            }
        }
        Err(r) => return r,
    };
    let abbreviated = req.header("accept").is_some_and(|a| a.contains(ABBREVIATED_MEDIA_TYPE));
    // The ETag names the stored revision and the view, so clients revalidate cheaply.
    let etag = format!("\"{}{}\"", etag, if abbreviated { "-a" } else { "" });
    if req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag)) {
        return Response::new(304).with_header("ETag", etag);
    }
    packument::rewrite_tarballs(&mut doc, name, &ctx.registry_url);
    let (body, content_type) = if abbreviated {
        (packument::abbreviate(&doc), ABBREVIATED_MEDIA_TYPE)
    } else {
        (doc, "application/json")
    };
    Response::bytes(200, content_type, serde_json::to_vec(&body).unwrap_or_default())
        .with_header("ETag", etag)
        .with_header("Cache-Control", "no-cache")
        .with_header("Vary", "Accept")
}

async fn get_version(ctx: &Ctx<'_>, name: &PackageName, version_or_tag: &str) -> Response {
    if let Some(r) = ctx.check_read(name) {
        return r;
    }
    let doc = match ctx.load_packument(name).await {
        Ok(Some((doc, _))) => doc,
        Ok(None) => {
            return match ctx.resolve(name, "packument", true).await {
                Ok(Resolved::Proxied(p)) => finish(&NpmErrors, "npm", p.version(name, version_or_tag, ctx.app.config.max_body_bytes).await),
                Ok(_) => error(404, "Not found"),
                Err(r) => r,
            }
        }
        Err(r) => return r,
    };
    match packument::version_doc(&doc, version_or_tag) {
        Some(v) => {
            let mut v = v.clone();
            let version = v.get("version").and_then(Value::as_str).unwrap_or(version_or_tag).to_string();
            packument::set_tarball_url(&mut v, name, &version, &ctx.registry_url);
            Response::json(200, &v)
        }
        None => error(404, format!("version not found: {version_or_tag}")),
    }
}

async fn get_tarball(ctx: &Ctx<'_>, req: &Request, name: &PackageName, file: &str) -> Response {
    if let Some(r) = ctx.check_read(name) {
        return r;
    }
    let Some(version) = name.version_of_tarball(file) else {
        return error(404, "Not found");
    };
    let key = name.tarball_key(file);
    let meta = HookMetadata { package: Some(name.to_string()), version: Some(version.to_string()), ..Default::default() };
    if req.method == Method::Head {
        return match ctx.storage.head(&key).await {
            Ok(Some(m)) => tarball_response(Response::new(200), &m),
            Ok(None) => tarball_from_upstream(ctx, req, name, file).await,
            Err(e) => storage_error(e),
        };
    }
    match ctx.storage.get(&key, None, meta).await {
        Ok(Some(obj)) => {
            if req.header("if-none-match") == Some(&format!("\"{}\"", obj.meta.etag)) {
                return Response::new(304).with_header("ETag", format!("\"{}\"", obj.meta.etag));
            }
            let mut r = tarball_response(Response::new(200), &obj.meta);
            r.body = obj.body;
            r
        }
        Ok(None) => tarball_from_upstream(ctx, req, name, file).await,
        Err(e) => storage_error(e),
    }
}

/// A tarball this registry does not host, from the pull-through cache.
async fn tarball_from_upstream(ctx: &Ctx<'_>, req: &Request, name: &PackageName, file: &str) -> Response {
    let Some(proxy) = ctx.proxy(name.as_str(), "tarball").await else {
        return error(404, "Not found");
    };
    // A hosted package has nothing in the cache (its first publish purges it: see
    // `jobs::publish`), so a cached copy is served without asking whether the name is hosted.
    match proxy.cached_tarball(req, name, file).await {
        Ok(Some(r)) => return r,
        Ok(None) => {}
        Err(e) => return respond(&NpmErrors, "npm", &e),
    }
    match ctx.resolve(name, "tarball", false).await {
        Ok(Resolved::Proxied(p)) => finish(&NpmErrors, "npm", p.fetch_tarball(req, name, file).await),
        Ok(_) => error(404, "Not found"),
        Err(r) => r,
    }
}

fn tarball_response(r: Response, meta: &crate::platform::ObjectMeta) -> Response {
    r.with_header("Content-Type", "application/octet-stream")
        .with_header("Content-Length", meta.size.to_string())
        // Keeps the runtime from compressing, which would drop Content-Length.
        .with_header("Content-Encoding", "identity")
        .with_header("ETag", format!("\"{}\"", meta.etag))
        .with_header("Cache-Control", "public, max-age=31536000, immutable")
        .with_header("Accept-Ranges", "none")
}

/// A tarball decoded from a publish, with the hashes npm records.
struct Attachment {
    version: String,
    bytes: Vec<u8>,
    shasum: String,
    integrity: String,
    sha512: Vec<u8>,
}

/// The tarballs of a publish body, read in place: each base64 text stays borrowed from the
/// request bytes until it is decoded, so a publish of N bytes peaks near 1.75 N.
#[derive(serde::Deserialize)]
struct PublishAttachments<'a> {
    #[serde(rename = "_attachments", borrow, default)]
    attachments: Option<BTreeMap<String, RawAttachment<'a>>>,
}

#[derive(serde::Deserialize)]
struct RawAttachment<'a> {
    #[serde(borrow)]
    data: std::borrow::Cow<'a, str>,
    #[serde(default)]
    length: Option<u64>,
}

/// A publish body without its tarballs (skipped, never copied).
struct PublishRest(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for PublishRest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = PublishRest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PublishRest, A::Error> {
                let mut out = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "_attachments" {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    } else {
                        out.insert(key, map.next_value()?);
                    }
                }
                Ok(PublishRest(out))
            }
        }
        d.deserialize_map(Fields)
    }
}

/// Decodes and hashes each tarball, pairing it with the version it belongs to.
fn decode_attachments(name: &PackageName, versions: &[String], raw: BTreeMap<String, RawAttachment<'_>>) -> Result<Vec<Attachment>, Response> {
    // A single attachment for a single version pairs up whatever its file name.
    let single = versions.len() == 1 && raw.len() == 1;
    let mut out: Vec<Attachment> = Vec::new();
    for (file, att) in raw {
        // npm names attachments `{name}-{version}.tgz`, scoped ones with their scope.
        let version = versions
            .iter()
            .find(|v| file == format!("{}-{}.tgz", name.as_str(), v) || file == name.tarball_filename(v))
            .or(if single { versions.first() } else { None })
            .cloned()
            .ok_or_else(|| error(400, format!("attachment {file} matches no version in the publish")))?;
        // Two file names can name one version (`@s/p-1.0.0.tgz` and `p-1.0.0.tgz`).
        if out.iter().any(|a| a.version == version) {
            return Err(error(400, format!("more than one attachment for version {version}")));
        }
        let bytes = crate::util::b64_decode(&att.data).ok_or_else(|| error(400, format!("attachment {file} is not valid base64")))?;
        drop(att.data);
        if let Some(len) = att.length {
            if len != bytes.len() as u64 {
                return Err(error(400, format!("attachment {file} is {} bytes, not the {len} announced", bytes.len())));
            }
        }
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(error(400, format!("attachment {file} is not a gzipped tarball")));
        }
        let sha512 = sha2::Sha512::digest(&bytes).to_vec();
        out.push(Attachment {
            version,
            shasum: crate::util::sha1_hex(&bytes),
            integrity: format!("sha512-{}", crate::util::b64(&sha512)),
            sha512,
            bytes,
        });
    }
    Ok(out)
}

async fn publish(ctx: &Ctx<'_>, req: Request, name: &PackageName) -> Response {
    if !ctx.protocol_config().feature("publish") {
        return error(405, "publishing is disabled on this registry");
    }
    let writer = match ctx.writer(name, Action::Write) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let bytes = match ctx.body_bytes(req, ctx.app.config.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let raw = match serde_json::from_slice::<PublishAttachments>(&bytes) {
        Ok(p) => p.attachments.unwrap_or_default(),
        Err(e) => return error(400, format!("malformed publish body: {e}")),
    };
    if raw.is_empty() {
        drop(raw);
        return update_metadata(ctx, name, &bytes, writer).await;
    }
    let mut body = match crate::json::parse_bounded::<PublishRest>(&bytes, MAX_PUBLISH_VALUES) {
        Ok(b) => b.0,
        Err(e) => return json_error(e),
    };
    if body.get("name").and_then(Value::as_str) != Some(name.as_str()) {
        return error(400, format!("the name in the body does not match the URL ({name})"));
    }
    let Some(Value::Object(mut versions)) = body.remove("versions") else {
        return error(400, "versions must be an object");
    };
    let version_names: Vec<String> = versions.keys().cloned().collect();
    let attachments = match decode_attachments(name, &version_names, raw) {
        Ok(a) => a,
        Err(r) => return r,
    };
    // The request bytes are not needed past this point; the tarballs are decoded.
    drop(bytes);
    if versions.is_empty() || versions.len() != attachments.len() {
        return error(400, "a publish must carry one tarball for each version");
    }
    // Early refusals (republish, not a maintainer), before any tarball is written; the job
    // checks both again under the package's lock.
    if let Ok(Some((existing, _))) = ctx.load_packument(name).await {
        if let Err(r) = ctx.check_owner(&existing, name, &writer) {
            return r;
        }
        if let Some(v) = versions.keys().find(|v| has_version(&existing, v)) {
            return error(403, format!("cannot publish over the previously published version {v}"));
        }
    }
    for (version, manifest) in versions.iter_mut() {
        if !valid_version(version) {
            return error(400, format!("invalid version {version:?}"));
        }
        let Some(m) = manifest.as_object_mut() else {
            return error(400, format!("version {version} must be an object"));
        };
        if m.get("version").and_then(Value::as_str) != Some(version) || m.get("name").and_then(Value::as_str) != Some(name.as_str()) {
            return error(400, format!("version {version}: name and version must match the package"));
        }
        let Some(att) = attachments.iter().find(|a| &a.version == version) else {
            return error(400, format!("version {version} has no tarball"));
        };
        let dist = m.entry("dist").or_insert_with(|| json!({}));
        let Some(dist) = dist.as_object_mut() else {
            return error(400, format!("version {version}: dist must be an object"));
        };
        if let Some(s) = dist.get("shasum").and_then(Value::as_str) {
            if !s.eq_ignore_ascii_case(&att.shasum) {
                return error(400, format!("version {version}: shasum {s} does not match the tarball ({})", att.shasum));
            }
        }
        if let Some(i) = dist.get("integrity").and_then(Value::as_str) {
            if i.starts_with("sha512-") && i != att.integrity {
                return error(400, format!("version {version}: integrity does not match the tarball"));
            }
        }
        dist.insert("shasum".into(), json!(att.shasum));
        dist.insert("integrity".into(), json!(att.integrity));
        dist.insert("tarball".into(), json!(format!("{}/{}/-/{}", ctx.registry_url, name, name.tarball_filename(version))));
        m.insert("_id".into(), json!(format!("{name}@{version}")));
        m.insert("_npmUser".into(), json!({"name": writer.user}));
    }
    // Tarballs first, then the packument that points at them.
    let mut written = Vec::new();
    for att in attachments {
        let key = name.tarball_key(&name.tarball_filename(&att.version));
        match store_tarball(ctx, name, &key, att).await {
            Ok(newly) => {
                if newly {
                    written.push(key)
                }
            }
            Err(r) => {
                discard(ctx, &written).await;
                return r;
            }
        }
    }
    let dist_tags: BTreeMap<String, String> = body
        .get("dist-tags")
        .and_then(Value::as_object)
        .map(|t| t.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).filter(|(k, _)| valid_tag(k)).collect())
        .unwrap_or_default();
    let package_fields: Map<String, Value> = packument::PACKAGE_FIELDS
        .iter()
        .filter_map(|f| Some((f.to_string(), body.get(*f)?.clone())))
        .collect();
    let job = NpmJob::Publish {
        name: name.to_string(),
        versions,
        dist_tags,
        package_fields,
        writer,
    };
    match ctx.run(name, job).await {
        Ok(result) => Response::json(201, &result),
        Err(r) => {
            discard(ctx, &written).await;
            r
        }
    }
}

/// Removes tarballs a failed publish wrote, so nothing unreferenced is left.
async fn discard(ctx: &Ctx<'_>, keys: &[String]) {
    if let Err(e) = ctx.storage.discard(keys).await {
        log::error(&format!("could not remove tarballs of a failed publish: {e}"));
    }
}

/// Writes a tarball create-only, R2 verifying its sha512. Returns whether this call created it.
/// An existing object with the same content is accepted (a retried publish); one left by a
/// failed publish more than ten minutes ago is replaced; anything else is a conflict.
async fn store_tarball(ctx: &Ctx<'_>, name: &PackageName, key: &str, att: Attachment) -> Result<bool, Response> {
    let meta = HookMetadata {
        size: Some(att.bytes.len() as u64),
        content_type: Some("application/octet-stream".into()),
        digest: Some(att.integrity.clone()),
        package: Some(name.to_string()),
        version: Some(att.version.clone()),
    };
    let mut custom = BTreeMap::new();
    custom.insert("integrity".to_string(), att.integrity.clone());
    custom.insert("shasum".to_string(), att.shasum.clone());
    let opts = |condition| PutOptions {
        content_type: Some("application/octet-stream".into()),
        custom: custom.clone(),
        checksum: Some(Checksum::Sha512(att.sha512.clone())),
        condition: Some(condition),
    };
    let bytes = att.bytes;
    for _ in 0..2 {
        let outcome = ctx
            .storage
            .put(key, bytes.clone().into(), opts(crate::platform::Condition::DoesNotExist), meta.clone())
            .await
            .map_err(storage_error)?;
        match outcome {
            PutOutcome::Stored(_) => return Ok(true),
            PutOutcome::ChecksumMismatch => return Err(internal("tarball checksum mismatch on write")),
            PutOutcome::ConditionFailed => {}
        }
        let Some(existing) = ctx.storage.head(key).await.map_err(storage_error)? else {
            continue;
        };
        if existing.custom.get("integrity") == Some(&att.integrity) {
            return Ok(false);
        }
        let stale = ctx.app.platform.now_ms() - existing.uploaded_ms > 10.0 * 60.0 * 1000.0;
        if !stale {
            return Err(error(409, format!("another publish of {name}@{} is in progress", att.version)));
        }
        ctx.storage.delete(&[key.to_string()], meta.clone()).await.map_err(storage_error)?;
    }
    Err(error(409, format!("could not store the tarball of {name}@{}", att.version)))
}

/// What `npm deprecate` sends: the whole packument back, of which only each version's
/// `deprecated` field matters. Everything else is skipped without building a tree.
#[derive(serde::Deserialize)]
struct DeprecateBody {
    name: Option<String>,
    versions: Option<BTreeMap<String, DeprecateVersion>>,
}

#[derive(serde::Deserialize)]
struct DeprecateVersion {
    #[serde(default)]
    deprecated: Option<Value>,
}

/// A PUT without attachments: `npm deprecate` (and undeprecate) sends the whole packument
/// back with `deprecated` fields changed; only those changes are applied.
async fn update_metadata(ctx: &Ctx<'_>, name: &PackageName, bytes: &[u8], writer: Writer) -> Response {
    let body: DeprecateBody = match serde_json::from_slice(bytes) {
        Ok(b) => b,
        Err(e) => return error(400, format!("malformed JSON body: {e}")),
    };
    if body.name.as_deref() != Some(name.as_str()) {
        return error(400, format!("the name in the body does not match the URL ({name})"));
    }
    let Some(versions) = body.versions else {
        return error(400, "versions must be an object");
    };
    let stored = match ctx.load_packument(name).await {
        Ok(Some((doc, _))) => doc,
        Ok(None) => return error(404, "Not found"),
        Err(r) => return r,
    };
    if let Err(r) = ctx.check_owner(&stored, name, &writer) {
        return r;
    }
    let mut messages = BTreeMap::new();
    for (version, manifest) in versions {
        let Some(old) = stored.get("versions").and_then(|all| all.get(&version)) else {
            return error(400, format!("version {version} does not exist; publish it with its tarball"));
        };
        let new_msg = match &manifest.deprecated {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) => Some(m.as_str()),
            Some(_) => return error(400, format!("version {version}: deprecated must be a string")),
        };
        let old_msg = old.get("deprecated").and_then(Value::as_str);
        if new_msg != old_msg {
            messages.insert(version, new_msg.map(str::to_string));
        }
    }
    if messages.is_empty() {
        let rev = stored.get("_rev").cloned().unwrap_or(Value::Null);
        return Response::json(200, &json!({"ok": true, "id": name.as_str(), "rev": rev}));
    }
    match ctx.run(name, NpmJob::Deprecate { name: name.to_string(), messages, writer }).await {
        Ok(result) => Response::json(200, &result),
        Err(r) => r,
    }
}

/// What a PUT to `/{pkg}/-rev/{rev}` carries: the versions to keep (`npm unpublish
/// pkg@version`) or the new maintainers (`npm owner add/rm`).
#[derive(serde::Deserialize)]
struct RevisionBody {
    versions: Option<BTreeMap<String, serde::de::IgnoredAny>>,
    maintainers: Option<Vec<Maintainer>>,
}

#[derive(serde::Deserialize)]
struct Maintainer {
    name: String,
}

/// PUT `/{pkg}/-rev/{rev}`: an unpublish of versions, or an owner change.
async fn put_revision(ctx: &Ctx<'_>, req: Request, name: &PackageName) -> Response {
    // Authorised before the body is read: an unpublish needs delete, an owner change write.
    if let Err(r) = ctx.check(name, Action::Write).or_else(|_| ctx.check(name, Action::Delete)) {
        return r;
    }
    let bytes = match ctx.body_bytes(req, ctx.app.config.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let body: RevisionBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return error(400, format!("malformed JSON body: {e}")),
    };
    drop(bytes);
    match body {
        RevisionBody { versions: Some(kept), .. } => unpublish_versions(ctx, name, kept.into_keys().collect()).await,
        RevisionBody { versions: None, maintainers: Some(m) } => set_maintainers(ctx, name, m).await,
        _ => error(400, "expected versions (unpublish) or maintainers (owner change)"),
    }
}

/// `npm owner add/rm`: every maintainer must be a user of this registry; only a maintainer
/// (or an admin, or a grant) may change the list, and it never becomes empty.
async fn set_maintainers(ctx: &Ctx<'_>, name: &PackageName, wanted: Vec<Maintainer>) -> Response {
    let writer = match ctx.writer(name, Action::Write) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let names: Vec<String> = wanted.into_iter().map(|m| m.name).collect();
    let maintainers = match maintainers_of(ctx.app, &names).await {
        Ok(m) => m,
        Err((status, message)) => return error(status, message),
    };
    match ctx.run(name, NpmJob::SetMaintainers { name: name.to_string(), maintainers, writer }).await {
        Ok(result) => Response::json(200, &result),
        Err(r) => r,
    }
}

/// The admin API's view of a package's owners (`/-/admin/owners/npm/{name}`): the maintainer
/// names, after replacing them with `new` (users of this registry) when given. The change
/// runs as any other packument change: serialised, and asked of the storage hooks.
pub async fn admin_owners(app: &App, name: &str, new: Option<Vec<String>>) -> Result<Vec<String>, (u16, String)> {
    let name = PackageName::parse(name, true).ok_or((400, format!("invalid package name {name:?}")))?;
    let actor = crate::http::Actor { user_id: Some("admin".into()), ..Default::default() };
    let storage = app.storage(Protocol::Npm, &actor);
    if let Some(new) = new {
        let maintainers = maintainers_of(app, &new).await?;
        let meta = HookMetadata { package: Some(name.to_string()), ..Default::default() };
        storage.check(Operation::Put, &name.packument_key(), meta).await.map_err(|e| (403, e.to_string()))?;
        let writer = Writer { user: "admin".into(), may_override: true };
        let job = NpmJob::SetMaintainers { name: name.to_string(), maintainers, writer };
        app.platform.coordinator.run(&name.lock(), Job::Npm(job)).await.map_err(|e| (e.status, if e.status >= 500 { "internal error".into() } else { e.message }))?;
    }
    let meta = HookMetadata { package: Some(name.to_string()), ..Default::default() };
    let obj = storage.get(&name.packument_key(), None, meta).await.map_err(|e| (500, e.to_string()))?.ok_or((404, format!("no hosted package {name}")))?;
    let bytes = obj.body.read_capped(app.config.max_body_bytes).await.map_err(|_| (500, "internal error".to_string()))?;
    #[derive(serde::Deserialize)]
    struct Owners {
        #[serde(default)]
        maintainers: Vec<Maintainer>,
    }
    let doc: Owners = serde_json::from_slice(&bytes).map_err(|_| (500, "internal error".to_string()))?;
    Ok(doc.maintainers.into_iter().map(|m| m.name).collect())
}

/// The maintainer entries (`{name, email?}`) for a new owner list: at least one, at most 100,
/// each a user of this registry, each once.
async fn maintainers_of(app: &App, names: &[String]) -> Result<Vec<Value>, (u16, String)> {
    if names.is_empty() {
        return Err((400, "a package needs at least one maintainer".into()));
    }
    if names.len() > 100 {
        return Err((400, "at most 100 maintainers".into()));
    }
    let auth = Auth::new(&app.platform, &app.config);
    let mut seen = std::collections::BTreeSet::new();
    let mut maintainers = Vec::new();
    for name in names.iter().filter(|n| seen.insert(n.as_str())) {
        match auth.user(name).await {
            Ok(Some(u)) => maintainers.push(maintainer_json(&u)),
            Ok(None) => return Err((404, format!("no such user {name:?}"))),
            Err(e) => {
                log::error(&format!("npm: user lookup failed: {e:?}"));
                return Err((500, "internal error".into()));
            }
        }
    }
    Ok(maintainers)
}

fn maintainer_json(u: &crate::auth::UserRecord) -> Value {
    match &u.email {
        Some(e) => json!({"name": u.name, "email": e}),
        None => json!({"name": u.name}),
    }
}

/// `GET /-/user/org.couchdb.user:{name}`: a user's public record (`npm owner add` checks the
/// new owner exists this way), for authenticated callers.
async fn get_user(ctx: &Ctx<'_>, segment: &str) -> Response {
    if let Err(r) = ctx.logged_in() {
        return r;
    }
    let Some(user) = decode_path(segment).and_then(|u| u.strip_prefix("org.couchdb.user:").map(str::to_string)) else {
        return error(404, "Not found");
    };
    let auth = Auth::new(&ctx.app.platform, &ctx.app.config);
    match auth.user(&user).await {
        Ok(Some(u)) => {
            let mut doc = maintainer_json(&u);
            if let Some(fields) = doc.as_object_mut() {
                fields.insert("_id".into(), json!(format!("org.couchdb.user:{}", u.name)));
            }
            Response::json(200, &doc)
        }
        Ok(None) => error(404, "Not found"),
        Err(e) => auth_error(e),
    }
}

/// `npm unpublish pkg@version`: PUT `/{pkg}/-rev/{rev}` with the remaining versions.
async fn unpublish_versions(ctx: &Ctx<'_>, name: &PackageName, kept: Vec<String>) -> Response {
    if !ctx.protocol_config().feature("unpublish") {
        return error(405, "unpublishing is disabled on this registry");
    }
    let writer = match ctx.writer(name, Action::Delete) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let stored = match ctx.load_packument(name).await {
        Ok(Some((doc, _))) => doc,
        Ok(None) => return error(404, "Not found"),
        Err(r) => return r,
    };
    if let Err(r) = ctx.check_owner(&stored, name, &writer) {
        return r;
    }
    let removed: Vec<String> = stored
        .get("versions")
        .and_then(Value::as_object)
        .map(|all| all.keys().filter(|v| !kept.contains(v)).cloned().collect())
        .unwrap_or_default();
    if removed.is_empty() {
        return Response::json(200, &json!({"ok": true, "id": name.as_str(), "rev": stored.get("_rev")}));
    }
    // The packument change is asked of the hooks before anything goes (see `Ctx::run`).
    let result = match ctx.run(name, NpmJob::RemoveVersions { name: name.to_string(), versions: removed.clone(), writer }).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let keys: Vec<String> = removed.iter().map(|v| name.tarball_key(&name.tarball_filename(v))).collect();
    let meta = HookMetadata { package: Some(name.to_string()), ..Default::default() };
    if let Err(e) = ctx.storage.delete(&keys, meta).await {
        return storage_error(e);
    }
    Response::json(200, &result)
}

/// `npm unpublish pkg --force`: removes the packument and every tarball.
async fn unpublish_package(ctx: &Ctx<'_>, name: &PackageName) -> Response {
    if !ctx.protocol_config().feature("unpublish") {
        return error(405, "unpublishing is disabled on this registry");
    }
    let writer = match ctx.writer(name, Action::Delete) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let meta = HookMetadata { package: Some(name.to_string()), ..Default::default() };
    // The job checks ownership under the lock; `run` asks the hooks first.
    if let Err(r) = ctx.run(name, NpmJob::DeletePackage { name: name.to_string(), writer }).await {
        return r;
    }
    // Every object under the package's prefix: tarballs, including orphans.
    let keys: Vec<String> = match ctx.storage.list_all(&name.prefix()).await {
        Ok(all) => all.into_iter().map(|o| o.key).collect(),
        Err(e) => return storage_error(e),
    };
    if let Err(e) = ctx.storage.delete(&keys, meta).await {
        return storage_error(e);
    }
    Response::json(200, &json!({"ok": true}))
}

/// npm deletes a tarball after unpublishing its version; a tarball still referenced stays.
async fn delete_tarball(ctx: &Ctx<'_>, name: &PackageName, file: &str) -> Response {
    let writer = match ctx.writer(name, Action::Delete) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let Some(version) = name.version_of_tarball(file) else {
        return error(404, "Not found");
    };
    match ctx.load_packument(name).await {
        Ok(Some((doc, _))) => {
            if let Err(r) = ctx.check_owner(&doc, name, &writer) {
                return r;
            }
            if doc.get("versions").and_then(|all| all.get(version)).is_some() {
                return error(400, format!("version {version} is still published; unpublish it first"));
            }
        }
        // A whole-package unpublish removed the packument first; its tarballs went with it.
        Ok(None) => return error(404, "Not found"),
        Err(r) => return r,
    }
    let meta = HookMetadata { package: Some(name.to_string()), version: Some(version.into()), ..Default::default() };
    match ctx.storage.delete(&[name.tarball_key(file)], meta).await {
        Ok(()) => Response::json(200, &json!({"ok": true})),
        Err(e) => storage_error(e),
    }
}

/// `/-/package/{pkg}/dist-tags[/{tag}]`.
async fn dist_tags(ctx: &Ctx<'_>, req: Request, path: &str) -> Response {
    let Some((raw_name, rest)) = split_package(path) else {
        return error(400, "invalid package path");
    };
    let Some(name) = PackageName::parse(&raw_name, true) else {
        return error(400, format!("invalid package name {raw_name:?}"));
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (req.method, rest.as_slice()) {
        (Method::Get, ["dist-tags"]) => {
            if let Some(r) = ctx.check_read(&name) {
                return r;
            }
            match ctx.load_packument(&name).await {
                Ok(Some((doc, _))) => Response::json(200, doc.get("dist-tags").unwrap_or(&json!({}))),
                Ok(None) => error(404, "Not found"),
                Err(r) => r,
            }
        }
        (Method::Put | Method::Post, ["dist-tags", tag]) => {
            let writer = match ctx.writer(&name, Action::Write) {
                Ok(w) => w,
                Err(r) => return r,
            };
            if !valid_tag(tag) {
                return error(400, format!("invalid dist-tag {tag:?}: tags may not look like versions or ranges"));
            }
            let version: String = match ctx.small_json(req).await {
                Ok(v) => v,
                Err(r) => return r,
            };
            let job = NpmJob::SetDistTag { name: name.to_string(), tag: tag.to_string(), version, writer };
            match ctx.run(&name, job).await {
                Ok(_) => Response::json(201, &json!({"ok": true})),
                Err(r) => r,
            }
        }
        (Method::Delete, ["dist-tags", tag]) => {
            let writer = match ctx.writer(&name, Action::Write) {
                Ok(w) => w,
                Err(r) => return r,
            };
            match ctx.run(&name, NpmJob::RemoveDistTag { name: name.to_string(), tag: tag.to_string(), writer }).await {
                Ok(_) => Response::json(200, &json!({"ok": true})),
                Err(r) => r,
            }
        }
        _ => error(404, "Not found"),
    }
}

async fn search(ctx: &Ctx<'_>, req: &Request) -> Response {
    if !ctx.protocol_config().feature("search") {
        return error(404, "search is disabled on this registry");
    }
    if ctx.principal.is_none() && !ctx.protocol_config().anonymous_read {
        return unauthorized("authentication required");
    }
    let text = req.query_param("text").unwrap_or_default().to_string();
    let size = req.query_param("size").and_then(|s| s.parse().ok()).unwrap_or(20usize).clamp(1, 250);
    let from = req.query_param("from").and_then(|s| s.parse().ok()).unwrap_or(0usize);
    let mut candidates: Vec<search::Summary> = match ctx.storage.list_all(names::SEARCH_PREFIX).await {
        Ok(all) => all.iter().filter_map(|o| search::Summary::from_metadata(&o.custom)).collect(),
        Err(e) => return storage_error(e),
    };
    // Every hosted name, readable by the caller or not: an upstream package of that name is
    // never listed instead.
    let hosted: std::collections::BTreeSet<String> = candidates.iter().map(|c| c.name.clone()).collect();
    // Private packages stay private: only those the caller may read are listed.
    if !ctx.protocol_config().anonymous_read {
        let Some(p) = ctx.principal.as_ref() else {
            return unauthorized("authentication required");
        };
        candidates.retain(|s| p.can(Protocol::Npm, &s.name, Action::Read));
    }
    let mut result = search::search(candidates, &text, size, from, &ctx.app.platform.now_iso());
    // A merged view: hosted results first, then the upstream's for names not hosted here.
    if let Some(p) = ctx.proxy("", "search").await {
        p.merge_search(&mut result, &text, size, from, &hosted).await;
    }
    Response::json(200, &result)
}

/// The fields of a legacy login body that matter (npm also sends `_id`, `type`, `roles`,
/// `date`, `email`).
#[derive(serde::Deserialize)]
struct LoginBody {
    name: Option<String>,
    password: Option<String>,
}

/// `npm token create`'s body.
#[derive(serde::Deserialize)]
struct NewTokenBody {
    #[serde(default)]
    password: String,
    readonly: Option<bool>,
    #[serde(default)]
    cidr_whitelist: Option<Vec<String>>,
    /// Days.
    expires: Option<u64>,
}

/// Token management is for a user's own stored token or password, never a read-only token
/// nor an OCI JWT: a leaked read-only token must not be able to mint or revoke others.
fn account_manager<'a>(ctx: &'a Ctx<'_>) -> Result<&'a Principal, Response> {
    let p = ctx.logged_in()?;
    if !p.may_manage_account() {
        return Err(error(403, "token management needs a write-capable token or the password of the user"));
    }
    Ok(p)
}

/// Legacy `npm login`/`npm adduser`: PUT `/-/user/org.couchdb.user:{name}`.
async fn login(ctx: &Ctx<'_>, user_segment: &str, req: Request) -> Response {
    let Some(user) = decode_path(user_segment).and_then(|u| u.strip_prefix("org.couchdb.user:").map(str::to_string)) else {
        return error(400, "expected /-/user/org.couchdb.user:NAME");
    };
    let body: LoginBody = match ctx.small_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (Some(name), Some(password)) = (body.name.as_deref(), body.password.as_deref()) else {
        return error(400, "name and password are required");
    };
    if name != user {
        return error(400, "the name in the body does not match the URL");
    }
    let auth = Auth::new(&ctx.app.platform, &ctx.app.config);
    match auth.login(name, password, crate::auth::client_ip(&ctx.headers)).await {
        Ok(Some(_)) => {}
        Ok(None) => return unauthorized("bad username or password"),
        Err(e) => return auth_error(e),
    }
    let opts = NewToken { protocol: Some(Protocol::Npm), readonly: ctx.app.config.npm_default_readonly, ..Default::default() };
    match auth.create_token(name, opts).await {
        Ok((token, _)) => Response::json(
            201,
            &json!({"ok": true, "id": format!("org.couchdb.user:{name}"), "rev": "1-0", "token": token}),
        ),
        Err(e) => auth_error(e),
    }
}

fn npm_token_json(t: &crate::auth::TokenRecord) -> Value {
    let time = crate::util::iso8601(t.created_ms);
    // npm prints `token` with its own ellipsis, and any non-null whitelist.
    let cidr = if t.cidr_whitelist.is_empty() { Value::Null } else { json!(t.cidr_whitelist) };
    json!({
        "token": t.preview,
        "key": t.key,
        "readonly": t.readonly,
        "cidr_whitelist": cidr,
        "created": time,
        "updated": time,
    })
}

async fn list_tokens(ctx: &Ctx<'_>) -> Response {
    let p = match account_manager(ctx) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let auth = Auth::new(&ctx.app.platform, &ctx.app.config);
    match auth.list_tokens(&p.user).await {
        Ok(tokens) => {
            let objects: Vec<Value> = tokens.iter().map(npm_token_json).collect();
            Response::json(200, &json!({"objects": objects, "total": objects.len(), "urls": {}}))
        }
        Err(e) => auth_error(e),
    }
}

async fn create_token(ctx: &Ctx<'_>, req: Request) -> Response {
    let p = match account_manager(ctx) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let body: NewTokenBody = match ctx.small_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let password = body.password.as_str();
    let auth = Auth::new(&ctx.app.platform, &ctx.app.config);
    match auth.login(&p.user, password, crate::auth::client_ip(&ctx.headers)).await {
        Ok(Some(_)) => {}
        Ok(None) => return unauthorized("password is incorrect"),
        Err(e) => return auth_error(e),
    }
    let readonly = body.readonly.unwrap_or(ctx.app.config.npm_default_readonly);
    let cidr = body.cidr_whitelist.unwrap_or_default();
    if cidr.len() > 32 {
        return error(400, "at most 32 CIDR ranges");
    }
    let expires_in_secs = body.expires.map(|days| days.saturating_mul(86_400));
    let opts = NewToken { protocol: Some(Protocol::Npm), readonly, cidr_whitelist: cidr, expires_in_secs, ..Default::default() };
    match auth.create_token(&p.user, opts).await {
        Ok((token, record)) => {
            let mut j = npm_token_json(&record);
            if let Some(fields) = j.as_object_mut() {
                fields.insert("token".into(), json!(token));
            }
            Response::json(201, &j)
        }
        Err(e) => auth_error(e),
    }
}

async fn revoke_token(ctx: &Ctx<'_>, key: &str) -> Response {
    let p = match account_manager(ctx) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let auth = Auth::new(&ctx.app.platform, &ctx.app.config);
    match auth.revoke_token(&p.user, key).await {
        Ok(true) => Response::new(204),
        Ok(false) => error(404, "no such token"),
        Err(e) => auth_error(e),
    }
}
