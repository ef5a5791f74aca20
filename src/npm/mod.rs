//! The npm registry API (hosted packages): packuments, tarballs, publish, dist-tags,
//! deprecate, unpublish, search, login, whoami and tokens.
//!
//! Packuments are stored canonically and their tarball URLs are written at serve time from
//! the registry URL, so moving the registry never leaves stale links. Every change to a
//! packument runs as a serialised job (`jobs.rs`). Handlers return [`crate::error::Error`]s,
//! which [`errors::NpmErrors`] writes in npm's `{"error", "reason"}` shape.

pub mod errors;
pub mod jobs;
mod module;
pub mod names;
pub mod packument;
mod passthrough;
pub mod proxy;
pub mod rewrite;
pub mod search;

pub use module::MODULE;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::auth::{Action, Auth, NewToken, Principal};
use crate::config::Protocol;
use crate::error::{Error, Result};
use crate::http::{decode_path, Method, Request, Response};
use crate::platform::{Checksum, EdgeHint, PutOutcome};
use crate::router::App;
use crate::storage::key::Key;
use crate::storage::{HookMetadata, Operation, Storage};
use crate::upstream::engine::{resolve, Resolved};
use errors::{not_found, unauthorized};
use jobs::{NpmJob, Writer};
use names::{keys, valid_tag, valid_version, PackageName};
use packument::ABBREVIATED_MEDIA_TYPE;

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
    fn check_read(&self, name: &PackageName) -> Result<()> {
        match &self.principal {
            None if self.protocol_config().anonymous_read => Ok(()),
            None => Err(unauthorized("authentication required")),
            Some(p) if p.can(Protocol::Npm, name.as_str(), Action::Read) => Ok(()),
            Some(_) if self.protocol_config().anonymous_read => Ok(()),
            Some(p) => Err(Error::denied(format!("user {} may not read {name}", p.user))),
        }
    }

    /// May the caller write `name` at all (token scopes)? Ownership is checked with the
    /// packument at hand ([`Ctx::check_owner`]) and again by the job under the package lock.
    fn check(&self, name: &PackageName, action: Action) -> Result<&Principal> {
        match &self.principal {
            None => Err(unauthorized("authentication required")),
            Some(p) if p.can(Protocol::Npm, name.as_str(), action) => Ok(p),
            Some(p) if p.readonly => Err(Error::denied("this token is read-only")),
            Some(p) => Err(Error::denied(format!("user {} may not {} {name}", p.user, action.as_str()))),
        }
    }

    /// [`Ctx::check`], then the writer a job checks ownership for.
    fn writer(&self, name: &PackageName, action: Action) -> Result<Writer> {
        let p = self.check(name, action)?;
        Ok(Writer { user: p.user.clone(), may_override: crate::auth::owners::bypasses(p, Protocol::Npm, name.as_str(), action) })
    }

    /// Early refusal for a writer who does not maintain an existing package (the job checks
    /// again under the lock).
    fn check_owner(&self, doc: &Value, name: &PackageName, writer: &Writer) -> Result<()> {
        Ok(jobs::check_owner(doc, name, writer)?)
    }

    /// Read access to npm data in general (search, audit): anonymous when allowed, else a
    /// credential with some npm read scope.
    fn check_read_any(&self) -> Result<()> {
        match &self.principal {
            _ if self.protocol_config().anonymous_read => Ok(()),
            None => Err(unauthorized("authentication required")),
            Some(p) if p.scopes.iter().any(|s| (s.protocol == "npm" || s.protocol == "*") && s.allows(&s.protocol, &s.resource_type, &s.name, Action::Read)) => Ok(()),
            Some(p) => Err(Error::denied(format!("user {} may not read npm packages", p.user))),
        }
    }

    fn logged_in(&self) -> Result<&Principal> {
        self.principal.as_ref().ok_or_else(|| unauthorized("authentication required"))
    }

    /// The pull-through cache for `name`, when an upstream may serve it.
    async fn proxy(&self, resource: &str, resource_type: &str) -> Option<proxy::NpmProxy> {
        let ctx = crate::upstream::ResolveContext { protocol: Protocol::Npm, resource, resource_type, actor: &self.actor };
        let upstreams = self.app.upstreams.resolve(&ctx).await?;
        let p = proxy::NpmProxy::new(self.app.platform.clone(), upstreams, self.registry_url.clone());
        p.serves_name(resource).then_some(p)
    }

    /// The upstreams for a request about no one package (search, audit).
    async fn upstreams(&self, resource_type: &str) -> Option<std::rc::Rc<crate::upstream::ProtocolUpstreams>> {
        let ctx = crate::upstream::ResolveContext { protocol: Protocol::Npm, resource: "", resource_type, actor: &self.actor };
        self.app.upstreams.resolve(&ctx).await
    }

    /// Hosted first (the packument key exists): where a request for `name` goes. `absent`:
    /// the caller has just found no packument.
    async fn resolve(&self, name: &PackageName, resource_type: &str, absent: bool) -> Result<Resolved<proxy::NpmProxy>> {
        let ctx = crate::upstream::ResolveContext { protocol: Protocol::Npm, resource: name.as_str(), resource_type, actor: &self.actor };
        let upstreams = self.app.upstreams.resolve(&ctx).await;
        let is_hosted = async {
            match absent {
                true => Ok(false),
                false => Ok(self.storage.head(keys::packument(name).as_str()).await?.is_some()),
            }
        };
        let proxy = |engine| proxy::NpmProxy::with_engine(engine, self.registry_url.clone());
        resolve(&self.app.platform, upstreams, name.as_str(), is_hosted, proxy).await
    }

    /// Runs a change of the packument under its lock. The storage hooks are asked first, as
    /// for any write (the job itself runs where no request context exists): `READ_ONLY`
    /// refuses every change before it happens.
    async fn run(&self, name: &PackageName, job: NpmJob) -> Result<Value> {
        let operation = if matches!(job, NpmJob::DeletePackage { .. }) { Operation::Delete } else { Operation::Put };
        let key = keys::packument(name);
        let meta = HookMetadata { package: Some(name.to_string()), content_type: Some(key.kind.content_type.into()), ..Default::default() };
        self.storage.check(operation, key.as_str(), meta.clone()).await?;
        let result = crate::jobs::run(&*self.app.platform.coordinator, &name.lock(), Protocol::Npm, &job).await?;
        self.storage.notify(operation, key.as_str(), meta).await;
        Ok(result)
    }

    async fn load_packument(&self, name: &PackageName) -> Result<Option<(Value, String)>> {
        let meta = HookMetadata { package: Some(name.to_string()), ..Default::default() };
        let Some(obj) = self.storage.get(keys::packument(name).as_str(), None, meta).await? else {
            return Ok(None);
        };
        let etag = obj.meta.etag.clone();
        let bytes = obj.body.read_capped(u64::MAX).await.map_err(Error::internal)?;
        let doc = serde_json::from_slice(&bytes).map_err(|e| Error::internal(format!("corrupt packument {name}: {e}")))?;
        Ok(Some((doc, etag)))
    }

    /// The hosted packument, or 404.
    async fn hosted_packument(&self, name: &PackageName) -> Result<(Value, String)> {
        self.load_packument(name).await?.ok_or_else(not_found)
    }

    /// The request body, refused past `limit` (413) before more than that is read.
    async fn body_bytes(&self, req: Request, limit: u64) -> Result<Vec<u8>> {
        Ok(req.body.read_capped(limit).await?)
    }

    /// A small JSON body (login, tokens, dist-tags) into a typed struct.
    async fn small_json<T: serde::de::DeserializeOwned>(&self, req: Request) -> Result<T> {
        let bytes = self.body_bytes(req, SMALL_BODY_BYTES).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("malformed JSON body: {e}")))
    }

    /// A user record or account operation of this registry (logins, tokens).
    fn auth(&self) -> Auth<'_> {
        Auth::new(&self.app.platform, &self.app.config)
    }
}

/// Cap on bodies that are a few fields (login, token creation, a dist-tag): 16 KiB.
const SMALL_BODY_BYTES: u64 = 16 * 1024;
/// Values a publish body may hold outside its tarballs (manifests, readme metadata): bounds
/// the `Value` trees built from it. A publish of a large package has a few thousand.
const MAX_PUBLISH_VALUES: usize = 100_000;

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

/// The package a path names and the segments after it; `legacy` admits old mixed-case names.
fn parse_package_path(path: &str, legacy: bool) -> Result<(PackageName, Vec<String>)> {
    let (raw_name, rest) = split_package(path).ok_or_else(|| Error::invalid("invalid package path"))?;
    let name = PackageName::parse(&raw_name, legacy).ok_or_else(|| Error::invalid(format!("invalid package name {raw_name:?}")))?;
    Ok((name, rest))
}

/// The npm API under the registry's npm base path; every error is written the npm way.
/// An npm request; its errors are written by `errors::NpmErrors` (see `module.rs`).
pub async fn handle(app: &App, req: Request, path: &str) -> Result<Response> {
    let auth = Auth::new(&app.platform, &app.config);
    let principal = auth.principal(&req.headers, Protocol::Npm).await.map_err(errors::auth)?;
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
        (Method::Get, ["-", "ping"]) => Ok(Response::json(200, &json!({}))),
        (Method::Get, ["-", "whoami"]) => Ok(Response::json(200, &json!({"username": ctx.logged_in()?.user}))),
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
            ctx.check_read_any()?;
            match ctx.upstreams("audit").await {
                Some(u) => passthrough::audit(&ctx.app.platform, &u, req, path).await,
                None => Err(Error::not_found("npm audit needs an upstream registry")),
            }
        }
        (_, ["-", ..]) => Err(not_found()),
        _ => package_routes(&ctx, req, path).await,
    }
}

async fn package_routes(ctx: &Ctx<'_>, req: Request, path: &str) -> Result<Response> {
    let (name, rest) = parse_package_path(path, req.method.is_read())?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (req.method, rest.as_slice()) {
        (Method::Get | Method::Head, []) => get_packument(ctx, &req, &name).await,
        (Method::Put, []) => publish(ctx, req, &name).await,
        (Method::Get | Method::Head, ["-", file]) => get_tarball(ctx, &req, &name, file).await,
        (Method::Put, ["-rev", _]) => put_revision(ctx, req, &name).await,
        (Method::Delete, ["-rev", _]) | (Method::Delete, []) => unpublish_package(ctx, &name).await,
        (Method::Delete, ["-", file, "-rev", _]) | (Method::Delete, ["-", file]) => delete_tarball(ctx, &name, file).await,
        (Method::Get | Method::Head, [version]) => get_version(ctx, &name, version).await,
        _ => Err(Error::invalid("method not allowed").with_status(405)),
    }
}

async fn get_packument(ctx: &Ctx<'_>, req: &Request, name: &PackageName) -> Result<Response> {
    ctx.check_read(name)?;
    let Some((mut doc, etag)) = ctx.load_packument(name).await? else {
        return match ctx.resolve(name, "packument", true).await? {
            Resolved::Proxied(p) => p.packument(req, name).await,
            _ => Err(not_found()),
        };
    };
    let abbreviated = req.header("accept").is_some_and(|a| a.contains(ABBREVIATED_MEDIA_TYPE));
    // The ETag names the stored revision and the view, so clients revalidate cheaply.
    let etag = format!("\"{}{}\"", etag, if abbreviated { "-a" } else { "" });
    if req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag)) {
        return Ok(Response::new(304).with_header("ETag", etag));
    }
    packument::rewrite_tarballs(&mut doc, name, &ctx.registry_url);
    let key = keys::packument(name);
    let (body, content_type) = if abbreviated {
        (packument::abbreviate(&doc), ABBREVIATED_MEDIA_TYPE)
    } else {
        (doc, key.kind.content_type)
    };
    let body = serde_json::to_vec(&body).map_err(Error::internal)?;
    Ok(key
        .cache_headers(Response::bytes(200, content_type, body))
        .with_header("ETag", etag)
        .with_header("Vary", "Accept")
        .with_edge(EdgeHint::document(vec![key.to_string()])))
}

async fn get_version(ctx: &Ctx<'_>, name: &PackageName, version_or_tag: &str) -> Result<Response> {
    ctx.check_read(name)?;
    let Some((doc, _)) = ctx.load_packument(name).await? else {
        return match ctx.resolve(name, "packument", true).await? {
            Resolved::Proxied(p) => p.version(name, version_or_tag, ctx.app.config.max_body_bytes).await,
            _ => Err(not_found()),
        };
    };
    let mut v = packument::version_doc(&doc, version_or_tag)
        .cloned()
        .ok_or_else(|| Error::not_found(format!("version not found: {version_or_tag}")))?;
    let version = v.get("version").and_then(Value::as_str).unwrap_or(version_or_tag).to_string();
    packument::set_tarball_url(&mut v, name, &version, &ctx.registry_url);
    Ok(Response::json(200, &v))
}

async fn get_tarball(ctx: &Ctx<'_>, req: &Request, name: &PackageName, file: &str) -> Result<Response> {
    ctx.check_read(name)?;
    let version = name.version_of_tarball(file).ok_or_else(not_found)?;
    let key = keys::tarball(name, file);
    if req.method == Method::Head {
        return match ctx.storage.head(key.as_str()).await? {
            Some(m) => Ok(tarball_response(Response::new(200), &m)),
            None => tarball_from_upstream(ctx, req, name, file).await,
        };
    }
    let meta = HookMetadata { package: Some(name.to_string()), version: Some(version.to_string()), ..Default::default() };
    let Some(obj) = ctx.storage.get(key.as_str(), None, meta).await? else {
        return tarball_from_upstream(ctx, req, name, file).await;
    };
    if req.header("if-none-match") == Some(&format!("\"{}\"", obj.meta.etag)) {
        return Ok(Response::new(304).with_header("ETag", format!("\"{}\"", obj.meta.etag)));
    }
    let mut r = tarball_response(Response::new(200), &obj.meta).with_edge(EdgeHint::artifact(vec![key.to_string()]));
    r.body = obj.body;
    Ok(r)
}

/// A tarball this registry does not host, from the pull-through cache.
async fn tarball_from_upstream(ctx: &Ctx<'_>, req: &Request, name: &PackageName, file: &str) -> Result<Response> {
    let proxy = ctx.proxy(name.as_str(), "tarball").await.ok_or_else(not_found)?;
    // A hosted package has nothing in the cache (its first publish purges it: see
    // `jobs::publish`), so a cached copy is served without asking whether the name is hosted.
    if let Some(r) = proxy.cached_tarball(req, name, file).await? {
        return Ok(r);
    }
    match ctx.resolve(name, "tarball", false).await? {
        Resolved::Proxied(p) => p.fetch_tarball(req, name, file).await,
        _ => Err(not_found()),
    }
}

/// A tarball's headers (hosted or cached copy): its kind's type and `Cache-Control`.
fn tarball_response(r: Response, meta: &crate::platform::ObjectMeta) -> Response {
    r.with_header("Content-Type", keys::TARBALL.content_type)
        .with_header("Content-Length", meta.size.to_string())
        // Keeps the runtime from compressing, which would drop Content-Length.
        .with_header("Content-Encoding", "identity")
        .with_header("ETag", format!("\"{}\"", meta.etag))
        .with_header("Cache-Control", keys::TARBALL.cache_control)
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
fn decode_attachments(name: &PackageName, versions: &[String], raw: BTreeMap<String, RawAttachment<'_>>) -> Result<Vec<Attachment>> {
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
            .ok_or_else(|| Error::invalid(format!("attachment {file} matches no version in the publish")))?;
        // Two file names can name one version (`@s/p-1.0.0.tgz` and `p-1.0.0.tgz`).
        if out.iter().any(|a| a.version == version) {
            return Err(Error::invalid(format!("more than one attachment for version {version}")));
        }
        let bytes = crate::util::b64_decode(&att.data).ok_or_else(|| Error::invalid(format!("attachment {file} is not valid base64")))?;
        drop(att.data);
        if let Some(len) = att.length {
            if len != bytes.len() as u64 {
                return Err(Error::invalid(format!("attachment {file} is {} bytes, not the {len} announced", bytes.len())));
            }
        }
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(Error::invalid(format!("attachment {file} is not a gzipped tarball")));
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

async fn publish(ctx: &Ctx<'_>, req: Request, name: &PackageName) -> Result<Response> {
    if !ctx.protocol_config().feature("publish") {
        return Err(errors::disabled("publishing"));
    }
    let writer = ctx.writer(name, Action::Write)?;
    let bytes = ctx.body_bytes(req, ctx.app.config.max_body_bytes).await?;
    let raw = serde_json::from_slice::<PublishAttachments>(&bytes)
        .map_err(|e| Error::invalid(format!("malformed publish body: {e}")))?
        .attachments
        .unwrap_or_default();
    if raw.is_empty() {
        drop(raw);
        return update_metadata(ctx, name, &bytes, writer).await;
    }
    let mut body = crate::json::parse_bounded::<PublishRest>(&bytes, MAX_PUBLISH_VALUES)?.0;
    if body.get("name").and_then(Value::as_str) != Some(name.as_str()) {
        return Err(Error::invalid(format!("the name in the body does not match the URL ({name})")));
    }
    let Some(Value::Object(mut versions)) = body.remove("versions") else {
        return Err(Error::invalid("versions must be an object"));
    };
    let version_names: Vec<String> = versions.keys().cloned().collect();
    let attachments = decode_attachments(name, &version_names, raw)?;
    // The request bytes are not needed past this point; the tarballs are decoded.
    drop(bytes);
    if versions.is_empty() || versions.len() != attachments.len() {
        return Err(Error::invalid("a publish must carry one tarball for each version"));
    }
    // Early refusals (republish, not a maintainer), before any tarball is written; the job
    // checks both again under the package's lock.
    if let Ok(Some((existing, _))) = ctx.load_packument(name).await {
        ctx.check_owner(&existing, name, &writer)?;
        if let Some(v) = versions.keys().find(|v| has_version(&existing, v)) {
            return Err(Error::denied(format!("cannot publish over the previously published version {v}")));
        }
    }
    for (version, manifest) in versions.iter_mut() {
        let att = attachments.iter().find(|a| &a.version == version);
        complete_manifest(ctx, name, version, manifest, att, &writer)?;
    }
    // Tarballs first, then the packument that points at them.
    let mut written = Vec::new();
    for att in attachments {
        let key = keys::tarball(name, &name.tarball_filename(&att.version));
        match store_tarball(ctx, name, &key, att).await {
            Ok(true) => written.push(key.path),
            Ok(false) => {}
            Err(e) => {
                discard(ctx, &written).await;
                return Err(e);
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
        Ok(result) => Ok(Response::json(201, &result)),
        Err(e) => {
            discard(ctx, &written).await;
            Err(e)
        }
    }
}

/// Checks a published version's manifest against the package and its tarball, then records
/// the tarball's hashes, its URL here, `_id` and the publisher.
fn complete_manifest(ctx: &Ctx<'_>, name: &PackageName, version: &str, manifest: &mut Value, att: Option<&Attachment>, writer: &Writer) -> Result<()> {
    if !valid_version(version) {
        return Err(Error::invalid(format!("invalid version {version:?}")));
    }
    let Some(m) = manifest.as_object_mut() else {
        return Err(Error::invalid(format!("version {version} must be an object")));
    };
    if m.get("version").and_then(Value::as_str) != Some(version) || m.get("name").and_then(Value::as_str) != Some(name.as_str()) {
        return Err(Error::invalid(format!("version {version}: name and version must match the package")));
    }
    let att = att.ok_or_else(|| Error::invalid(format!("version {version} has no tarball")))?;
    let dist = m.entry("dist").or_insert_with(|| json!({}));
    let Some(dist) = dist.as_object_mut() else {
        return Err(Error::invalid(format!("version {version}: dist must be an object")));
    };
    if let Some(s) = dist.get("shasum").and_then(Value::as_str) {
        if !s.eq_ignore_ascii_case(&att.shasum) {
            return Err(Error::invalid(format!("version {version}: shasum {s} does not match the tarball ({})", att.shasum)));
        }
    }
    if let Some(i) = dist.get("integrity").and_then(Value::as_str) {
        if i.starts_with("sha512-") && i != att.integrity {
            return Err(Error::invalid(format!("version {version}: integrity does not match the tarball")));
        }
    }
    dist.insert("shasum".into(), json!(att.shasum));
    dist.insert("integrity".into(), json!(att.integrity));
    dist.insert("tarball".into(), json!(format!("{}/{}/-/{}", ctx.registry_url, name, name.tarball_filename(version))));
    m.insert("_id".into(), json!(format!("{name}@{version}")));
    m.insert("_npmUser".into(), json!({"name": writer.user}));
    Ok(())
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
async fn store_tarball(ctx: &Ctx<'_>, name: &PackageName, key: &Key, att: Attachment) -> Result<bool> {
    let meta = HookMetadata {
        size: Some(att.bytes.len() as u64),
        content_type: Some(key.kind.content_type.into()),
        digest: Some(att.integrity.clone()),
        package: Some(name.to_string()),
        version: Some(att.version.clone()),
    };
    let mut custom = BTreeMap::new();
    custom.insert("integrity".to_string(), att.integrity.clone());
    custom.insert("shasum".to_string(), att.shasum.clone());
    let opts = |condition| crate::platform::PutOptions {
        checksum: Some(Checksum::Sha512(att.sha512.clone())),
        condition: Some(condition),
        ..key.put_options(custom.clone())
    };
    let bytes = att.bytes;
    for _ in 0..2 {
        let outcome = ctx.storage.put(key.as_str(), bytes.clone().into(), opts(crate::platform::Condition::DoesNotExist), meta.clone()).await?;
        match outcome {
            PutOutcome::Stored(_) => return Ok(true),
            PutOutcome::ChecksumMismatch => return Err(Error::internal("tarball checksum mismatch on write")),
            PutOutcome::ConditionFailed => {}
        }
        let Some(existing) = ctx.storage.head(key.as_str()).await? else {
            continue;
        };
        if existing.custom.get("integrity") == Some(&att.integrity) {
            return Ok(false);
        }
        let stale = ctx.app.platform.now_ms() - existing.uploaded_ms > 10.0 * 60.0 * 1000.0;
        if !stale {
            return Err(Error::conflict(format!("another publish of {name}@{} is in progress", att.version)));
        }
        ctx.storage.delete(std::slice::from_ref(&key.path), meta.clone()).await?;
    }
    Err(Error::conflict(format!("could not store the tarball of {name}@{}", att.version)))
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
async fn update_metadata(ctx: &Ctx<'_>, name: &PackageName, bytes: &[u8], writer: Writer) -> Result<Response> {
    let body: DeprecateBody = serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("malformed JSON body: {e}")))?;
    if body.name.as_deref() != Some(name.as_str()) {
        return Err(Error::invalid(format!("the name in the body does not match the URL ({name})")));
    }
    let versions = body.versions.ok_or_else(|| Error::invalid("versions must be an object"))?;
    let (stored, _) = ctx.hosted_packument(name).await?;
    ctx.check_owner(&stored, name, &writer)?;
    let mut messages = BTreeMap::new();
    for (version, manifest) in versions {
        let Some(old) = stored.get("versions").and_then(|all| all.get(&version)) else {
            return Err(Error::invalid(format!("version {version} does not exist; publish it with its tarball")));
        };
        let new_msg = match &manifest.deprecated {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) => Some(m.as_str()),
            Some(_) => return Err(Error::invalid(format!("version {version}: deprecated must be a string"))),
        };
        let old_msg = old.get("deprecated").and_then(Value::as_str);
        if new_msg != old_msg {
            messages.insert(version, new_msg.map(str::to_string));
        }
    }
    if messages.is_empty() {
        return Ok(unchanged(name, &stored));
    }
    let result = ctx.run(name, NpmJob::Deprecate { name: name.to_string(), messages, writer }).await?;
    Ok(Response::json(200, &result))
}

/// The answer to a change that changes nothing: the stored revision.
fn unchanged(name: &PackageName, stored: &Value) -> Response {
    let rev = stored.get("_rev").cloned().unwrap_or(Value::Null);
    Response::json(200, &json!({"ok": true, "id": name.as_str(), "rev": rev}))
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
async fn put_revision(ctx: &Ctx<'_>, req: Request, name: &PackageName) -> Result<Response> {
    // Authorised before the body is read: an unpublish needs delete, an owner change write.
    ctx.check(name, Action::Write).or_else(|_| ctx.check(name, Action::Delete))?;
    let bytes = ctx.body_bytes(req, ctx.app.config.max_body_bytes).await?;
    let body: RevisionBody = serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("malformed JSON body: {e}")))?;
    drop(bytes);
    match body {
        RevisionBody { versions: Some(kept), .. } => unpublish_versions(ctx, name, kept.into_keys().collect()).await,
        RevisionBody { versions: None, maintainers: Some(m) } => set_maintainers(ctx, name, m).await,
        _ => Err(Error::invalid("expected versions (unpublish) or maintainers (owner change)")),
    }
}

/// `npm owner add/rm`: every maintainer must be a user of this registry; only a maintainer
/// (or an admin, or a grant) may change the list, and it never becomes empty.
async fn set_maintainers(ctx: &Ctx<'_>, name: &PackageName, wanted: Vec<Maintainer>) -> Result<Response> {
    let writer = ctx.writer(name, Action::Write)?;
    let names: Vec<String> = wanted.into_iter().map(|m| m.name).collect();
    let maintainers = maintainers_of(ctx.app, &names).await?;
    let result = ctx.run(name, NpmJob::SetMaintainers { name: name.to_string(), maintainers, writer }).await?;
    Ok(Response::json(200, &result))
}

/// The admin API's view of a package's owners (`/-/admin/owners/npm/{name}`): the maintainer
/// names, after replacing them with `new` (users of this registry) when given. The change
/// runs as any other packument change: serialised, and asked of the storage hooks.
pub async fn admin_owners(app: &App, name: &str, new: Option<Vec<String>>) -> Result<Vec<String>> {
    let name = PackageName::parse(name, true).ok_or_else(|| Error::invalid(format!("invalid package name {name:?}")))?;
    let actor = crate::http::Actor { user_id: Some("admin".into()), ..Default::default() };
    let storage = app.storage(Protocol::Npm, &actor);
    let key = keys::packument(&name);
    if let Some(new) = new {
        let maintainers = maintainers_of(app, &new).await?;
        let meta = HookMetadata { package: Some(name.to_string()), ..Default::default() };
        storage.check(Operation::Put, key.as_str(), meta).await?;
        let writer = Writer { user: "admin".into(), may_override: true };
        let job = NpmJob::SetMaintainers { name: name.to_string(), maintainers, writer };
        crate::jobs::run(&*app.platform.coordinator, &name.lock(), Protocol::Npm, &job).await?;
    }
    let meta = HookMetadata { package: Some(name.to_string()), ..Default::default() };
    let obj = storage.get(key.as_str(), None, meta).await?.ok_or_else(|| Error::not_found(format!("no hosted package {name}")))?;
    let bytes = obj.body.read_capped(app.config.max_body_bytes).await.map_err(Error::internal)?;
    #[derive(serde::Deserialize)]
    struct Owners {
        #[serde(default)]
        maintainers: Vec<Maintainer>,
    }
    let doc: Owners = serde_json::from_slice(&bytes).map_err(|e| Error::internal(format!("corrupt packument {name}: {e}")))?;
    Ok(doc.maintainers.into_iter().map(|m| m.name).collect())
}

/// The maintainer entries (`{name, email?}`) for a new owner list: at least one, at most 100,
/// each a user of this registry, each once.
async fn maintainers_of(app: &App, names: &[String]) -> Result<Vec<Value>> {
    if names.is_empty() {
        return Err(Error::invalid("a package needs at least one maintainer"));
    }
    if names.len() > 100 {
        return Err(Error::invalid("at most 100 maintainers"));
    }
    let auth = Auth::new(&app.platform, &app.config);
    let mut seen = std::collections::BTreeSet::new();
    let mut maintainers = Vec::new();
    for name in names.iter().filter(|n| seen.insert(n.as_str())) {
        match auth.user(name).await {
            Ok(Some(u)) => maintainers.push(maintainer_json(&u)),
            Ok(None) => return Err(Error::not_found(format!("no such user {name:?}"))),
            Err(e) => return Err(Error::internal(format!("user lookup failed: {e:?}"))),
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

/// The user a `/-/user/org.couchdb.user:{name}` segment names.
fn couchdb_user(segment: &str) -> Option<String> {
    decode_path(segment).and_then(|u| u.strip_prefix("org.couchdb.user:").map(str::to_string))
}

/// `GET /-/user/org.couchdb.user:{name}`: a user's public record (`npm owner add` checks the
/// new owner exists this way), for authenticated callers.
async fn get_user(ctx: &Ctx<'_>, segment: &str) -> Result<Response> {
    ctx.logged_in()?;
    let user = couchdb_user(segment).ok_or_else(not_found)?;
    let u = ctx.auth().user(&user).await.map_err(errors::auth)?.ok_or_else(not_found)?;
    let mut doc = maintainer_json(&u);
    if let Some(fields) = doc.as_object_mut() {
        fields.insert("_id".into(), json!(format!("org.couchdb.user:{}", u.name)));
    }
    Ok(Response::json(200, &doc))
}

/// `npm unpublish pkg@version`: PUT `/{pkg}/-rev/{rev}` with the remaining versions.
async fn unpublish_versions(ctx: &Ctx<'_>, name: &PackageName, kept: Vec<String>) -> Result<Response> {
    if !ctx.protocol_config().feature("unpublish") {
        return Err(errors::disabled("unpublishing"));
    }
    let writer = ctx.writer(name, Action::Delete)?;
    let (stored, _) = ctx.hosted_packument(name).await?;
    ctx.check_owner(&stored, name, &writer)?;
    let removed: Vec<String> = stored
        .get("versions")
        .and_then(Value::as_object)
        .map(|all| all.keys().filter(|v| !kept.contains(v)).cloned().collect())
        .unwrap_or_default();
    if removed.is_empty() {
        return Ok(unchanged(name, &stored));
    }
    // The packument change is asked of the hooks before anything goes (see `Ctx::run`).
    let result = ctx.run(name, NpmJob::RemoveVersions { name: name.to_string(), versions: removed.clone(), writer }).await?;
    let tarballs: Vec<String> = removed.iter().map(|v| keys::tarball(name, &name.tarball_filename(v)).path).collect();
    let meta = HookMetadata { package: Some(name.to_string()), ..Default::default() };
    ctx.storage.delete(&tarballs, meta).await?;
    Ok(Response::json(200, &result))
}

/// `npm unpublish pkg --force`: removes the packument and every tarball.
async fn unpublish_package(ctx: &Ctx<'_>, name: &PackageName) -> Result<Response> {
    if !ctx.protocol_config().feature("unpublish") {
        return Err(errors::disabled("unpublishing"));
    }
    let writer = ctx.writer(name, Action::Delete)?;
    // The job checks ownership under the lock; `run` asks the hooks first.
    ctx.run(name, NpmJob::DeletePackage { name: name.to_string(), writer }).await?;
    // Every object under the package's prefix: tarballs, including orphans.
    let all: Vec<String> = ctx.storage.list_all(&name.key_prefix()).await?.into_iter().map(|o| o.key).collect();
    let meta = HookMetadata { package: Some(name.to_string()), ..Default::default() };
    ctx.storage.delete(&all, meta).await?;
    Ok(Response::json(200, &json!({"ok": true})))
}

/// npm deletes a tarball after unpublishing its version; a tarball still referenced stays.
async fn delete_tarball(ctx: &Ctx<'_>, name: &PackageName, file: &str) -> Result<Response> {
    let writer = ctx.writer(name, Action::Delete)?;
    let version = name.version_of_tarball(file).ok_or_else(not_found)?;
    // A whole-package unpublish removed the packument first; its tarballs went with it.
    let (doc, _) = ctx.hosted_packument(name).await?;
    ctx.check_owner(&doc, name, &writer)?;
    if doc.get("versions").and_then(|all| all.get(version)).is_some() {
        return Err(Error::invalid(format!("version {version} is still published; unpublish it first")));
    }
    let meta = HookMetadata { package: Some(name.to_string()), version: Some(version.into()), ..Default::default() };
    ctx.storage.delete(&[keys::tarball(name, file).path], meta).await?;
    Ok(Response::json(200, &json!({"ok": true})))
}

/// `/-/package/{pkg}/dist-tags[/{tag}]`.
async fn dist_tags(ctx: &Ctx<'_>, req: Request, path: &str) -> Result<Response> {
    let (name, rest) = parse_package_path(path, true)?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (req.method, rest.as_slice()) {
        (Method::Get, ["dist-tags"]) => {
            ctx.check_read(&name)?;
            match ctx.load_packument(&name).await? {
                Some((doc, _)) => Ok(Response::json(200, doc.get("dist-tags").unwrap_or(&json!({})))),
                None => proxied_dist_tags(ctx, &name).await,
            }
        }
        (Method::Put | Method::Post, ["dist-tags", tag]) => {
            let writer = ctx.writer(&name, Action::Write)?;
            if !valid_tag(tag) {
                return Err(Error::invalid(format!("invalid dist-tag {tag:?}: tags may not look like versions or ranges")));
            }
            let version: String = ctx.small_json(req).await?;
            ctx.run(&name, NpmJob::SetDistTag { name: name.to_string(), tag: tag.to_string(), version, writer }).await?;
            Ok(Response::json(201, &json!({"ok": true})))
        }
        (Method::Delete, ["dist-tags", tag]) => {
            let writer = ctx.writer(&name, Action::Write)?;
            ctx.run(&name, NpmJob::RemoveDistTag { name: name.to_string(), tag: tag.to_string(), writer }).await?;
            Ok(Response::json(200, &json!({"ok": true})))
        }
        _ => Err(not_found()),
    }
}

/// `npm dist-tag ls` of a package the pull-through cache serves: the tags of its packument
/// (the install view, the one installs keep cached). Only `dist-tags` is deserialised; the
/// versions are skipped without building a tree.
async fn proxied_dist_tags(ctx: &Ctx<'_>, name: &PackageName) -> Result<Response> {
    let Resolved::Proxied(proxy) = ctx.resolve(name, "packument", true).await? else {
        return Err(not_found());
    };
    let req = Request::new(Method::Get, "/").with_header("Accept", ABBREVIATED_MEDIA_TYPE);
    let resp = proxy.packument(&req, name).await?;
    // A negative entry answers 404 with its cache headers.
    if resp.status != 200 {
        return Ok(resp);
    }
    let cache_headers: Vec<(String, String)> = ["x-cache", "x-cache-upstream"]
        .iter()
        .filter_map(|h| Some((h.to_string(), resp.headers.get(h)?.to_string())))
        .collect();
    #[derive(serde::Deserialize)]
    struct DistTags {
        #[serde(rename = "dist-tags", default)]
        dist_tags: BTreeMap<String, String>,
    }
    let bytes = resp.body.read_capped(ctx.app.config.max_body_bytes).await.map_err(|e| Error::upstream(format!("packument of {name} unreadable: {e}")))?;
    let tags: DistTags = serde_json::from_slice(&bytes).map_err(|e| Error::upstream(format!("packument of {name} unreadable: {e}")))?;
    let mut out = Response::json(200, &tags.dist_tags);
    for (k, v) in cache_headers {
        out = out.with_header(&k, v);
    }
    Ok(out)
}

async fn search(ctx: &Ctx<'_>, req: &Request) -> Result<Response> {
    if !ctx.protocol_config().feature("search") {
        return Err(Error::not_found("search is disabled on this registry"));
    }
    if ctx.principal.is_none() && !ctx.protocol_config().anonymous_read {
        return Err(unauthorized("authentication required"));
    }
    let text = req.query_param("text").unwrap_or_default().to_string();
    let size = req.query_param("size").and_then(|s| s.parse().ok()).unwrap_or(20usize).clamp(1, 250);
    let from = req.query_param("from").and_then(|s| s.parse().ok()).unwrap_or(0usize);
    let mut candidates: Vec<search::Summary> =
        ctx.storage.list_all(keys::SEARCH_PREFIX).await?.iter().filter_map(|o| search::Summary::from_metadata(&o.custom)).collect();
    // Every hosted name, readable by the caller or not: an upstream package of that name is
    // never listed instead.
    let hosted: std::collections::BTreeSet<String> = candidates.iter().map(|c| c.name.clone()).collect();
    // Private packages stay private: only those the caller may read are listed.
    if !ctx.protocol_config().anonymous_read {
        let p = ctx.logged_in()?;
        candidates.retain(|s| p.can(Protocol::Npm, &s.name, Action::Read));
    }
    let mut result = search::search(candidates, &text, size, from, &ctx.app.platform.now_iso());
    // A merged view: hosted results first, then the upstream's for names not hosted here.
    let Some(upstreams) = ctx.upstreams("search").await else {
        return Ok(Response::json(200, &result));
    };
    match passthrough::merge_search(&ctx.app.platform, &upstreams, &mut result, &text, size, from, &hosted).await {
        Ok(()) => Ok(Response::json(200, &result)),
        // The hosted results (perhaps none) still answer; npm prints an `npm-notice` header
        // as `npm notice …`, so the user learns the list is partial. A 5xx would say it too,
        // but npm retries those for over a minute before printing anything. npm prints the
        // notice only for an answer it does not keep in its HTTP cache (npm-registry-fetch
        // skips it when `x-local-cache` is set), and a partial list should not be kept anyway.
        Err(e) => {
            log::log("warn", &format!("npm search: {}", e.detail));
            Ok(Response::json(200, &result)
                .with_header("npm-notice", format!("{}; only packages hosted here are listed", e.detail))
                .with_header("Cache-Control", "no-store"))
        }
    }
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
fn account_manager<'a>(ctx: &'a Ctx<'_>) -> Result<&'a Principal> {
    let p = ctx.logged_in()?;
    if !p.may_manage_account() {
        return Err(Error::denied("token management needs a write-capable token or the password of the user"));
    }
    Ok(p)
}

/// Checks `user`'s password (failed attempts count toward the login limiter); `refusal` is
/// the 401's message.
async fn verify_password(ctx: &Ctx<'_>, user: &str, password: &str, refusal: &str) -> Result<()> {
    match ctx.auth().login(user, password, crate::auth::client_ip(&ctx.headers)).await.map_err(errors::auth)? {
        Some(_) => Ok(()),
        None => Err(unauthorized(refusal)),
    }
}

/// Legacy `npm login`/`npm adduser`: PUT `/-/user/org.couchdb.user:{name}`.
async fn login(ctx: &Ctx<'_>, user_segment: &str, req: Request) -> Result<Response> {
    let user = couchdb_user(user_segment).ok_or_else(|| Error::invalid("expected /-/user/org.couchdb.user:NAME"))?;
    let body: LoginBody = ctx.small_json(req).await?;
    let (Some(name), Some(password)) = (body.name.as_deref(), body.password.as_deref()) else {
        return Err(Error::invalid("name and password are required"));
    };
    if name != user {
        return Err(Error::invalid("the name in the body does not match the URL"));
    }
    verify_password(ctx, name, password, "bad username or password").await?;
    let opts = NewToken { protocol: Some(Protocol::Npm), readonly: ctx.app.config.npm_default_readonly, ..Default::default() };
    let (token, _) = ctx.auth().create_token(name, opts).await.map_err(errors::auth)?;
    Ok(Response::json(201, &json!({"ok": true, "id": format!("org.couchdb.user:{name}"), "rev": "1-0", "token": token})))
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

async fn list_tokens(ctx: &Ctx<'_>) -> Result<Response> {
    let p = account_manager(ctx)?;
    let tokens = ctx.auth().list_tokens(&p.user).await.map_err(errors::auth)?;
    let objects: Vec<Value> = tokens.iter().map(npm_token_json).collect();
    Ok(Response::json(200, &json!({"objects": objects, "total": objects.len(), "urls": {}})))
}

async fn create_token(ctx: &Ctx<'_>, req: Request) -> Result<Response> {
    let p = account_manager(ctx)?.clone();
    let body: NewTokenBody = ctx.small_json(req).await?;
    verify_password(ctx, &p.user, &body.password, "password is incorrect").await?;
    let readonly = body.readonly.unwrap_or(ctx.app.config.npm_default_readonly);
    let cidr = body.cidr_whitelist.unwrap_or_default();
    if cidr.len() > 32 {
        return Err(Error::invalid("at most 32 CIDR ranges"));
    }
    let expires_in_secs = body.expires.map(|days| days.saturating_mul(86_400));
    let opts = NewToken { protocol: Some(Protocol::Npm), readonly, cidr_whitelist: cidr, expires_in_secs, ..Default::default() };
    let (token, record) = ctx.auth().create_token(&p.user, opts).await.map_err(errors::auth)?;
    let mut j = npm_token_json(&record);
    if let Some(fields) = j.as_object_mut() {
        fields.insert("token".into(), json!(token));
    }
    Ok(Response::json(201, &j))
}

async fn revoke_token(ctx: &Ctx<'_>, key: &str) -> Result<Response> {
    let p = account_manager(ctx)?;
    if ctx.auth().revoke_token(&p.user, key).await.map_err(errors::auth)? {
        Ok(Response::new(204))
    } else {
        Err(Error::not_found("no such token"))
    }
}
