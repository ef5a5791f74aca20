//! OCI Distribution v1.1 (hosted): manifests, blobs, uploads, tags, catalog, referrers, and
//! the Docker token endpoint. Reached at the host root `/v2/...` (what every container client
//! requests) and under the OCI base path, with or without `/v2`.
//!
//! Request and upstream data never reach an `unwrap`, `expect`, `panic!` or slice index here
//! (a panic takes every request of the isolate down with it): clippy enforces it.

pub mod access;
pub mod errors;
pub mod manifest;
pub mod names;
pub mod proxy;
pub mod token;
pub mod upload;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use manifest::{excerpt, known_type, Manifest};

use crate::auth::{Action, Auth, AuthError, Principal};
use crate::config::Protocol;
use crate::http::{decode_path, Body, Method, Request, Response};
use crate::platform::{ByteRange, ObjectMeta, PutOptions, PutOutcome};
use crate::router::App;
use crate::storage::{HookMetadata, Storage, StorageError};
use names::{keys, valid_repository, valid_tag, Digest};

/// Manifests larger than this are refused, as distribution does.
pub(crate) const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// Tags one manifest push may name with `?tag=` (the draft distribution spec asks for at
/// least 10; each costs a store write, and a Worker request makes at most ~1000).
pub const MAX_TAGS_PER_PUSH: usize = 100;

pub const INDEX_MEDIA_TYPE: &str = manifest::OCI_INDEX;
pub const MANIFEST_MEDIA_TYPE: &str = manifest::OCI_MANIFEST;

/// R2 refuses more than 2 KiB of custom metadata (keys and values) on one object.
pub const MAX_CUSTOM_METADATA: usize = 2048;

/// Whether custom metadata fits on an R2 object.
pub fn metadata_fits(custom: &BTreeMap<String, String>) -> bool {
    custom.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() <= MAX_CUSTOM_METADATA
}

pub fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    Response::json(status, &json!({"errors": [{"code": code, "message": message.into(), "detail": null}]}))
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
    crate::logging::error(&format!("oci: {e}"));
    error(500, "UNKNOWN", "internal error")
}

pub(crate) fn storage_error(e: StorageError) -> Response {
    match e {
        StorageError::Denied(reason) => error(403, "DENIED", reason),
        StorageError::Store(e) => internal(e),
    }
}

/// One OCI request with what every route needs.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub req_origin: String,
    pub storage: Storage,
    pub principal: Option<Principal>,
    /// Where clients reach the API: `/v2` at the root, or `{base}/v2`.
    pub prefix: String,
    pub actor: crate::http::Actor,
}

impl Ctx<'_> {
    fn anonymous_read(&self) -> bool {
        self.app.config.protocol(Protocol::Oci).anonymous_read
    }

    pub fn realm(&self) -> String {
        let origin = self.app.config.public_url.as_deref().unwrap_or(&self.req_origin);
        format!("{origin}{}/v2/token", self.app.config.protocol(Protocol::Oci).base_path)
    }

    /// 401 with the Bearer challenge naming what the client must ask the token endpoint for.
    pub fn challenge(&self, repo: Option<&str>, actions: &str) -> Response {
        self.challenge_scope(repo.map(|r| format!("repository:{r}:{actions}")).as_deref(), false)
    }

    /// 401 with a Bearer challenge for `scope` (space-separated scopes, as the token
    /// endpoint reads them); `insufficient` when the credential was valid but too narrow.
    pub fn challenge_scope(&self, scope: Option<&str>, insufficient: bool) -> Response {
        let mut value = format!("Bearer realm=\"{}\",service=\"{}\"", self.realm(), token::SERVICE);
        if let Some(s) = scope {
            value.push_str(&format!(",scope=\"{s}\""));
        }
        if insufficient {
            value.push_str(",error=\"insufficient_scope\"");
        }
        error(401, "UNAUTHORIZED", "authentication required").with_header("WWW-Authenticate", value)
    }

    /// Checks `action` on `repo`: anonymous pulls where allowed, else the principal's scopes.
    pub fn check(&self, repo: &str, action: Action) -> Result<(), Response> {
        let actions = match action {
            Action::Read => "pull",
            Action::Write => "pull,push",
            Action::Delete => "delete",
        };
        match &self.principal {
            Some(p) if p.can(Protocol::Oci, repo, action) => Ok(()),
            _ if action == Action::Read && self.anonymous_read() => Ok(()),
            None => Err(self.challenge(Some(repo), actions)),
            Some(p) if p.readonly => Err(error(403, "DENIED", "read-only credentials")),
            // A token without the scope: the client asks the token endpoint for a better one.
            Some(_) => Err(self.challenge_scope(Some(&format!("repository:{repo}:{actions}")), true)),
        }
    }

    /// The pull-through cache for `repo`, unless the repository is hosted here (hosted
    /// content is never shadowed) or no upstream may serve it.
    async fn proxy(&self, repo: &str, resource_type: &str) -> Option<proxy::OciProxy> {
        let resolve = crate::upstream::ResolveContext { protocol: Protocol::Oci, resource: repo, resource_type, actor: &self.actor };
        let upstreams = self.app.upstreams.resolve(&resolve).await;
        // Hosted: the repository record exists.
        let is_hosted = async { Ok(self.storage.head(&keys::repository(repo)).await?.is_some()) };
        match crate::upstream::engine::resolve(&self.app.platform, upstreams, repo, is_hosted, proxy::OciProxy::with_engine).await {
            Ok(crate::upstream::engine::Resolved::Proxied(p)) => Some(p),
            _ => None,
        }
    }

    pub fn hook_meta(&self, repo: &str, digest: Option<&Digest>) -> HookMetadata {
        HookMetadata {
            package: Some(repo.to_string()),
            digest: digest.map(|d| d.to_string()),
            ..Default::default()
        }
    }
}

/// The parsed path of an OCI request.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Base,
    Catalog,
    Token,
    Manifest(String, String),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Tags(String),
    Referrers(String, String),
}

/// Parses from the right: names may contain slashes; the last marker wins.
pub fn parse_route(path: &str) -> Option<Route> {
    let p = path.trim_start_matches('/');
    let p = p.strip_prefix("v2").filter(|r| r.is_empty() || r.starts_with('/')).unwrap_or(p);
    let p = p.trim_start_matches('/');
    if p.is_empty() {
        return Some(Route::Base);
    }
    if p == "_catalog" {
        return Some(Route::Catalog);
    }
    if p == "token" {
        return Some(Route::Token);
    }
    let p = decode_path(p)?;
    if let Some(name) = p.strip_suffix("/tags/list") {
        return Some(Route::Tags(name.to_string()));
    }
    if let Some(name) = p.strip_suffix("/blobs/uploads").or_else(|| p.strip_suffix("/blobs/uploads/")) {
        return Some(Route::UploadStart(name.to_string()));
    }
    for (marker, make) in [
        ("/blobs/uploads/", Route::Upload as fn(String, String) -> Route),
        ("/manifests/", Route::Manifest),
        ("/blobs/", Route::Blob),
        ("/referrers/", Route::Referrers),
    ] {
        if let Some((name, rest)) = p.rsplit_once(marker) {
            if !rest.is_empty() && !rest.contains('/') {
                return Some(make(name.to_string(), rest.to_string()));
            }
        }
    }
    None
}

pub async fn handle(app: &App, req: Request, path: &str, prefix: String) -> Response {
    let route = match parse_route(path) {
        Some(r) => r,
        None => return error(404, "NAME_UNKNOWN", "unknown path"),
    };
    if route == Route::Token {
        return token::handle(app, &req).await;
    }
    let auth = Auth::new(&app.platform, &app.config);
    // Bad or expired credentials count as none: the challenge sends the client for a token.
    let principal = match auth.principal(&req.headers, Protocol::Oci).await {
        Ok(p) => p,
        Err(AuthError::InvalidCredentials) => None,
        Err(AuthError::RateLimited { retry_after_secs }) => {
            return error(429, "TOOMANYREQUESTS", "too many failed logins; try again later")
                .with_header("Retry-After", retry_after_secs.to_string())
        }
        Err(e) => return internal(format!("{e:?}")),
    };
    let actor = req.actor.identified(principal.as_ref());
    let ctx = Ctx {
        app,
        req_origin: req.origin.clone(),
        storage: app.storage(Protocol::Oci, &actor),
        principal,
        prefix,
        actor,
    };
    route_request(&ctx, req, route).await
}

async fn route_request(ctx: &Ctx<'_>, req: Request, route: Route) -> Response {
    let repo = match &route {
        Route::Manifest(n, _) | Route::Blob(n, _) | Route::UploadStart(n) | Route::Upload(n, _) | Route::Tags(n) | Route::Referrers(n, _) => {
            Some(n.clone())
        }
        _ => None,
    };
    if let Some(r) = &repo {
        if !valid_repository(r) {
            return error(400, "NAME_INVALID", format!("invalid repository name {r:?}"));
        }
    }
    let features = &ctx.app.config.protocol(Protocol::Oci).features;
    let deletion = features.get("deletion").copied().unwrap_or(true);
    match (req.method, route) {
        (Method::Get | Method::Head, Route::Base) => {
            if ctx.principal.is_none() && !ctx.anonymous_read() {
                return ctx.challenge(None, "");
            }
            Response::json(200, &json!({})).with_header("Docker-Distribution-API-Version", "registry/2.0")
        }
        (Method::Get, Route::Catalog) => catalog(ctx, &req).await,
        (Method::Get | Method::Head, Route::Manifest(name, reference)) => {
            let hosted = get_manifest(ctx, &req, &name, &reference).await;
            match hosted.status {
                404 => match ctx.proxy(&name, "manifest").await {
                    Some(p) => crate::error::finish(&errors::OciErrors, "oci", p.manifest(&req, &name, &reference).await),
                    None => hosted,
                },
                _ => hosted,
            }
        }
        (Method::Put, Route::Manifest(name, reference)) => put_manifest(ctx, req, &name, &reference).await,
        (Method::Delete, Route::Manifest(name, reference)) if deletion => delete_manifest(ctx, &name, &reference).await,
        (Method::Get | Method::Head, Route::Blob(name, digest)) => {
            let hosted = get_blob(ctx, &req, &name, &digest).await;
            match (hosted.status, Digest::parse(&digest)) {
                (404, Some(d)) => match ctx.proxy(&name, "blob").await {
                    Some(p) => crate::error::finish(&errors::OciErrors, "oci", p.blob(ctx, &req, &name, &d).await),
                    None => hosted,
                },
                _ => hosted,
            }
        }
        (Method::Delete, Route::Blob(name, digest)) if deletion => delete_blob(ctx, &name, &digest).await,
        (Method::Post, Route::UploadStart(name)) => upload::start(ctx, req, &name).await,
        (Method::Patch, Route::Upload(name, id)) => upload::patch(ctx, req, &name, &id).await,
        (Method::Put, Route::Upload(name, id)) => upload::finish(ctx, req, &name, &id).await,
        (Method::Get, Route::Upload(name, id)) => upload::status(ctx, &name, &id).await,
        (Method::Delete, Route::Upload(name, id)) => upload::cancel(ctx, &name, &id).await,
        (Method::Get, Route::Tags(name)) => {
            let hosted = tags_list(ctx, &req, &name).await;
            match hosted.status {
                404 => match ctx.proxy(&name, "tags").await {
                    Some(p) => crate::error::finish(&errors::OciErrors, "oci", p.tags(&req, &name).await),
                    None => hosted,
                },
                _ => hosted,
            }
        }
        (Method::Get, Route::Referrers(name, digest)) if ctx.app.config.protocol(Protocol::Oci).feature("referrers") => {
            referrers(ctx, &req, &name, &digest).await
        }
        // Clients fall back to the referrers tag schema only on a 404 (distribution spec); a
        // 405 made them fail.
        (Method::Get, Route::Referrers(..)) => error(404, "UNSUPPORTED", "the referrers API is disabled on this registry"),
        (Method::Delete, _) => error(405, "UNSUPPORTED", "deletion is disabled on this registry"),
        _ => error(405, "UNSUPPORTED", "method not allowed"),
    }
}

/// `?n=&last=` pagination over sorted names, with the `Link` header for the next page.
fn paginate(all: Vec<String>, req: &Request, link_base: &str) -> (Vec<String>, Option<String>) {
    let n = req.query_param("n").and_then(|n| n.parse::<usize>().ok());
    let last = req.query_param("last").unwrap_or_default();
    let mut items: Vec<String> = all.into_iter().filter(|t| last.is_empty() || t.as_str() > last).collect();
    items.sort();
    match n {
        // n=0 first: an empty list and no Link (distribution spec). Matched after the arm
        // below, it sent `Link: ?n=0&last=`, which a client follows forever.
        Some(0) => (vec![], None),
        Some(n) if items.len() > n => {
            items.truncate(n);
            let link = format!("<{link_base}?n={n}&last={}>; rel=\"next\"", items.last().cloned().unwrap_or_default());
            (items, Some(link))
        }
        _ => (items, None),
    }
}

async fn list_all(ctx: &Ctx<'_>, prefix: &str) -> Result<Vec<ObjectMeta>, Response> {
    ctx.storage.list_all(prefix).await.map_err(storage_error)
}

/// The part of a listed key after `prefix`, if it names something directly under it (nested
/// repositories share prefixes; their keys have another `/`).
fn direct_child<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    key.strip_prefix(prefix).filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

async fn catalog(ctx: &Ctx<'_>, req: &Request) -> Response {
    let all = match list_all(ctx, keys::REPOSITORIES).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    // Only repositories the caller may pull are listed.
    let names: Vec<String> = all
        .into_iter()
        .filter_map(|o| o.key.strip_prefix(keys::REPOSITORIES).map(str::to_string))
        .filter(|r| ctx.check(r, Action::Read).is_ok())
        .collect();
    if names.is_empty() && ctx.principal.is_none() && !ctx.anonymous_read() {
        // Name the catalog grant, as distribution does: a client following a challenge
        // without a scope got a token that lists nothing.
        let mut r = ctx.challenge(None, "");
        let value = format!("{},scope=\"registry:catalog:*\"", r.headers.get("WWW-Authenticate").unwrap_or_default());
        r.headers.set("WWW-Authenticate", value);
        return r;
    }
    let (page, link) = paginate(names, req, &format!("{}/_catalog", ctx.prefix));
    let mut r = Response::json(200, &json!({"repositories": page}));
    if let Some(l) = link {
        r = r.with_header("Link", l);
    }
    r
}

async fn tags_list(ctx: &Ctx<'_>, req: &Request, name: &str) -> Response {
    if let Err(r) = ctx.check(name, Action::Read) {
        return r;
    }
    let prefix = keys::tags_prefix(name);
    let tags: Vec<String> = match list_all(ctx, &prefix).await {
        Ok(a) => a.iter().filter_map(|o| direct_child(&o.key, &prefix)).map(str::to_string).collect(),
        Err(r) => return r,
    };
    if tags.is_empty() && ctx.storage.head(&keys::repository(name)).await.ok().flatten().is_none() {
        return error(404, "NAME_UNKNOWN", format!("repository {name} not known"));
    }
    let (page, link) = paginate(tags, req, &format!("{}/{name}/tags/list", ctx.prefix));
    let mut r = Response::json(200, &json!({"name": name, "tags": page}));
    if let Some(l) = link {
        r = r.with_header("Link", l);
    }
    r
}

/// Resolves a tag or digest reference to the manifest digest, with the manifest's size and
/// media type when the tag records them (tags written since they do): enough for a HEAD.
async fn resolve(ctx: &Ctx<'_>, name: &str, reference: &str) -> Result<(Digest, Option<ObjectMeta>), Response> {
    // Tags have no `:`: a reference with one is a digest, usable or not.
    if reference.contains(':') {
        return upload::client_digest(reference).map(|d| (d, None));
    }
    if !valid_tag(reference) {
        return Err(error(400, "TAG_INVALID", format!("invalid tag {:?}", excerpt(reference, 80))));
    }
    let tag = ctx.storage.head(&keys::tag(name, reference)).await.map_err(storage_error)?;
    let Some((tag, digest)) = tag.and_then(|t| t.custom.get("digest").and_then(|d| Digest::parse(d)).map(|d| (t, d))) else {
        return Err(error(404, "MANIFEST_UNKNOWN", format!("manifest {name}:{reference} not found")));
    };
    let size = tag.custom.get("size").and_then(|s| s.parse().ok());
    let media_type = tag.custom.get("mediaType").cloned();
    let known = size.zip(media_type).map(|(size, media_type)| ObjectMeta {
        key: keys::manifest(name, &digest),
        size,
        content_type: Some(media_type),
        ..tag
    });
    Ok((digest, known))
}

async fn get_manifest(ctx: &Ctx<'_>, req: &Request, name: &str, reference: &str) -> Response {
    if let Err(r) = ctx.check(name, Action::Read) {
        return r;
    }
    let (digest, known) = match resolve(ctx, name, reference).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let key = keys::manifest(name, &digest);
    let found = if req.method == Method::Head {
        // Clients HEAD a tag before every pull: one read when the tag knows the answer.
        match known {
            Some(meta) => Ok(Some((meta, None))),
            None => ctx.storage.head(&key).await.map(|m| m.map(|m| (m, None))),
        }
    } else {
        ctx.storage
            .get(&key, None, ctx.hook_meta(name, Some(&digest)))
            .await
            .map(|o| o.map(|o| (o.meta, Some(o.body))))
    };
    let (meta, body) = match found {
        Ok(Some(f)) => f,
        Ok(None) => return error(404, "MANIFEST_UNKNOWN", format!("manifest {name}@{digest} not found")),
        Err(e) => return storage_error(e),
    };
    let etag = format!("\"{digest}\"");
    let mut r = manifest_response(&meta, &digest);
    if req.header("if-none-match") == Some(etag.as_str()) {
        return Response::new(304).with_header("ETag", etag).with_header("Docker-Content-Digest", digest.to_string());
    }
    if let Some(b) = body {
        r.body = b;
    }
    r
}

/// The media type a stored manifest is served with: only ever a manifest type (a type stored
/// before pushes were checked, or an upstream's, could be anything, e.g. `text/html`).
pub(crate) fn served_type(stored: Option<&str>) -> &'static str {
    stored.and_then(manifest::servable_type).unwrap_or(MANIFEST_MEDIA_TYPE)
}

/// A stored manifest's headers (its body is the caller's to attach).
pub(crate) fn manifest_response(meta: &ObjectMeta, digest: &Digest) -> Response {
    Response::new(200)
        .with_header("Content-Type", served_type(meta.content_type.as_deref()))
        .with_header("Content-Length", meta.size.to_string())
        .with_header("Docker-Content-Digest", digest.to_string())
        .with_header("ETag", format!("\"{digest}\""))
        // Keeps the runtime from compressing, which would drop Content-Length.
        .with_header("Content-Encoding", "identity")
}

fn invalid(message: impl Into<String>) -> Response {
    error(400, "MANIFEST_INVALID", message)
}

/// The media type a pushed manifest is stored with: its Content-Type, else its `mediaType`,
/// else what its shape implies. Only manifest types are accepted, and the two must agree
/// (distribution spec "Pushing Manifests"; image spec `manifest.md`: `mediaType`, when
/// present, is the manifest's media type).
fn manifest_type(content_type: Option<&str>, doc: &Manifest) -> Result<&'static str, Response> {
    let unsupported = |t: &str| invalid(format!("unsupported manifest media type {:?}", excerpt(t, 80)));
    let declared = match doc.media_type.as_deref() {
        Some(t) => Some(known_type(t).ok_or_else(|| unsupported(t))?),
        None => None,
    };
    match content_type {
        Some(ct) => {
            let ct = known_type(ct).ok_or_else(|| unsupported(ct))?;
            match declared {
                Some(d) if d != ct => Err(invalid(format!("Content-Type {ct} does not match the manifest's mediaType {d}"))),
                _ => Ok(ct),
            }
        }
        None => Ok(declared.unwrap_or_else(|| doc.implied_type())),
    }
}

async fn put_manifest(ctx: &Ctx<'_>, req: Request, name: &str, reference: &str) -> Response {
    if let Err(r) = access::authorize_write(ctx, name, Action::Write).await {
        return r;
    }
    // By digest (in the algorithm it names) or by tag (sha256, the canonical algorithm).
    let (by_digest, path_tag) = if reference.contains(':') {
        // An unusable digest (malformed, an unknown algorithm) is a digest error, not TAG_INVALID.
        match upload::client_digest(reference) {
            Ok(d) => (Some(d), None),
            Err(r) => return r,
        }
    } else if valid_tag(reference) {
        (None, Some(reference.to_string()))
    } else {
        return error(400, "TAG_INVALID", format!("invalid tag {:?}", excerpt(reference, 80)));
    };
    // Distribution spec (draft), "Pushing Manifests": a push by digest may name tags with
    // `?tag=` parameters; each one stored is answered in `OCI-Tag`.
    let query_tags: Vec<&str> = req.query.iter().filter(|(k, _)| k == "tag").map(|(_, v)| v.as_str()).collect();
    if query_tags.len() > MAX_TAGS_PER_PUSH {
        return error(414, "TAG_INVALID", format!("at most {MAX_TAGS_PER_PUSH} tags per push"));
    }
    if let Some(bad) = query_tags.iter().find(|t| !valid_tag(t)) {
        return error(400, "TAG_INVALID", format!("invalid tag {:?}", excerpt(bad, 80)));
    }
    let mut tags: Vec<String> = path_tag.into_iter().chain(query_tags.iter().map(|t| t.to_string())).collect();
    let mut seen = std::collections::BTreeSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    let content_type = req.header("content-type").map(str::trim).filter(|c| !c.is_empty()).map(str::to_string);
    // Refused before the body is read.
    if let Some(ct) = content_type.as_deref().filter(|ct| known_type(ct).is_none()) {
        return invalid(format!("unsupported manifest media type {:?}", excerpt(ct, 80)));
    }
    let bytes = match req.body.read_capped(MAX_MANIFEST).await {
        Ok(b) => b,
        Err(crate::http::BodyError::TooLarge { .. }) => return error(413, "SIZE_INVALID", "manifest larger than 4 MiB"),
        Err(e) => return invalid(e.to_string()),
    };
    let digest = match &by_digest {
        Some(want) => {
            let actual = want.algorithm().digest(&bytes);
            if &actual != want {
                return error(400, "DIGEST_INVALID", format!("manifest digest is {actual}, not {want}"));
            }
            actual
        }
        None => Digest::of(&bytes),
    };
    let doc = match Manifest::parse(&bytes) {
        Ok(d) => d,
        Err(e) => return invalid(format!("manifest is not valid: {e}")),
    };
    if doc.schema_version != Some(2) {
        return invalid("only schemaVersion 2 manifests are accepted");
    }
    let media_type = match manifest_type(content_type.as_deref(), &doc) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Some(a) = doc.artifact_type.as_deref().filter(|a| !manifest::valid_media_type(a)) {
        return invalid(format!("artifactType {:?} is not a media type (RFC 6838)", excerpt(a, 80)));
    }
    // Everything the manifest references must be here, except its subject and layers that
    // clients fetch from elsewhere.
    let mut blobs: Vec<&Digest> = doc.config.iter().chain(doc.layers.iter().filter(|l| !l.external())).map(|d| &d.digest).collect();
    blobs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    blobs.dedup();
    for b in blobs {
        match ctx.storage.head(&keys::link(name, b)).await {
            Ok(Some(_)) => {}
            Ok(None) => return error(400, "MANIFEST_BLOB_UNKNOWN", format!("blob {b} is not in {name}")),
            Err(e) => return storage_error(e),
        }
    }
    let mut children: Vec<&Digest> = doc.manifests.iter().map(|d| &d.digest).collect();
    children.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    children.dedup();
    for m in children {
        match ctx.storage.head(&keys::manifest(name, m)).await {
            Ok(Some(_)) => {}
            Ok(None) => return error(400, "MANIFEST_BLOB_UNKNOWN", format!("manifest {m} is not in {name}")),
            Err(e) => return storage_error(e),
        }
    }
    let subject = doc.subject.as_ref().map(|s| s.digest.clone());
    // What goes into object metadata, all bounded: known media types, digests, numbers, an
    // artifactType of at most 255 characters, annotations of at most 1 KiB (else left out).
    let size = bytes.len();
    let manifest_custom: BTreeMap<String, String> = subject.iter().map(|s| ("subject".to_string(), s.to_string())).collect();
    let referrer_custom = subject.as_ref().map(|_| {
        let mut custom = BTreeMap::from([("mediaType".to_string(), media_type.to_string()), ("size".to_string(), size.to_string())]);
        // OCI distribution spec, "Listing Referrers": an image manifest without artifactType
        // is listed with its config's media type; an index without one is listed without.
        let artifact_type = doc.artifact_type.clone().or_else(|| doc.config.as_ref().and_then(|c| c.media_type.clone()));
        if let Some(a) = artifact_type {
            custom.insert("artifactType".to_string(), a);
        }
        if let Some(a) = &doc.annotations {
            custom.insert("annotations".to_string(), a.clone());
            if !metadata_fits(&custom) {
                custom.remove("annotations");
            }
        }
        custom
    });
    let tag_custom = BTreeMap::from([
        ("digest".to_string(), digest.to_string()),
        ("size".to_string(), size.to_string()),
        ("mediaType".to_string(), media_type.to_string()),
    ]);
    drop(doc);
    if ![Some(&manifest_custom), referrer_custom.as_ref(), Some(&tag_custom)].into_iter().flatten().all(metadata_fits) {
        return invalid("the manifest's media types and annotations are too long to store");
    }
    if let Err(r) = access::claim(ctx, name).await {
        return r;
    }
    // The manifest first, then what points at it; whatever this request wrote goes again if
    // a later write fails, so a failed push leaves nothing visible.
    let manifest_key = keys::manifest(name, &digest);
    let mut written = Vec::new();
    match write_new(ctx, name, &digest, &manifest_key, bytes.into(), PutOptions {
        content_type: Some(media_type.to_string()),
        custom: manifest_custom,
        checksum: Some(digest.checksum()),
        condition: None,
    })
    .await
    {
        Ok(new) => written.extend(new),
        Err(r) => return r,
    }
    if let (Some(s), Some(custom)) = (&subject, referrer_custom) {
        let key = keys::referrer(name, s, &digest);
        match write_new(ctx, name, &digest, &key, Body::Empty, PutOptions { custom, ..Default::default() }).await {
            Ok(new) => written.extend(new),
            Err(r) => return undo(ctx, &written, r).await,
        }
    }
    for t in &tags {
        let opts = PutOptions { custom: tag_custom.clone(), ..Default::default() };
        match write_new(ctx, name, &digest, &keys::tag(name, t), digest.to_string().into_bytes().into(), opts).await {
            Ok(new) => written.extend(new),
            Err(r) => return undo(ctx, &written, r).await,
        }
    }
    let mut r = Response::new(201)
        .with_header("Location", format!("{}/{name}/manifests/{digest}", ctx.prefix))
        .with_header("Docker-Content-Digest", digest.to_string())
        .with_header("Content-Length", "0");
    // Only a registry serving the referrers API may say it processed the subject: without
    // the header clients maintain the referrers tag schema themselves.
    if let Some(s) = subject.filter(|_| ctx.app.config.protocol(Protocol::Oci).feature("referrers")) {
        r = r.with_header("OCI-Subject", s.to_string());
    }
    if !query_tags.is_empty() {
        // One field with the list is the same as one field per tag (RFC 9110 §5.3).
        r = r.with_header("OCI-Tag", tags.join(", "));
    }
    r
}

/// Writes `key` through the hooks; returns it if it is new (this request's to undo).
async fn write_new(ctx: &Ctx<'_>, name: &str, digest: &Digest, key: &str, body: Body, opts: PutOptions) -> Result<Option<String>, Response> {
    let existed = ctx.storage.head(key).await.map_err(storage_error)?.is_some();
    let meta = HookMetadata { content_type: opts.content_type.clone(), ..ctx.hook_meta(name, Some(digest)) };
    match ctx.storage.put(key, body, opts, meta).await {
        Ok(PutOutcome::Stored(_)) => Ok((!existed).then(|| key.to_string())),
        Ok(other) => Err(internal(format!("write of {key} refused: {other:?}"))),
        Err(e) => Err(storage_error(e)),
    }
}

/// Removes what a failed request wrote, then answers with its failure.
async fn undo(ctx: &Ctx<'_>, written: &[String], failure: Response) -> Response {
    if let Err(e) = ctx.storage.discard(written).await {
        crate::logging::error(&format!("oci: could not remove {written:?} after a failed push: {e}"));
    }
    failure
}

async fn delete_manifest(ctx: &Ctx<'_>, name: &str, reference: &str) -> Response {
    if let Err(r) = access::authorize_write(ctx, name, Action::Delete).await {
        return r;
    }
    let digest = if reference.contains(':') {
        // As in put_manifest: a digest we cannot use is a digest error, not a bad tag.
        match upload::client_digest(reference) {
            Ok(d) => Some(d),
            Err(r) => return r,
        }
    } else {
        None
    };
    let Some(digest) = digest else {
        if !valid_tag(reference) {
            return error(400, "TAG_INVALID", format!("invalid tag {:?}", excerpt(reference, 80)));
        }
        let key = keys::tag(name, reference);
        return match ctx.storage.head(&key).await {
            Ok(Some(_)) => match ctx.storage.delete(&[key], ctx.hook_meta(name, None)).await {
                Ok(()) => Response::new(202),
                Err(e) => storage_error(e),
            },
            Ok(None) => error(404, "MANIFEST_UNKNOWN", format!("tag {reference} not found")),
            Err(e) => storage_error(e),
        };
    };
    let key = keys::manifest(name, &digest);
    let meta = match ctx.storage.head(&key).await {
        Ok(Some(m)) => m,
        Ok(None) => return error(404, "MANIFEST_UNKNOWN", format!("manifest {digest} not found")),
        Err(e) => return storage_error(e),
    };
    let mut doomed = vec![key];
    // Tags pointing at it go too, and its entry in its subject's referrers.
    let prefix = keys::tags_prefix(name);
    match list_all(ctx, &prefix).await {
        Ok(tags) => doomed.extend(
            tags.into_iter()
                .filter(|t| direct_child(&t.key, &prefix).is_some())
                .filter(|t| t.custom.get("digest").map(String::as_str) == Some(digest.as_str()))
                .map(|t| t.key),
        ),
        Err(r) => return r,
    }
    if let Some(s) = meta.custom.get("subject").and_then(|s| Digest::parse(s)) {
        doomed.push(keys::referrer(name, &s, &digest));
    }
    match ctx.storage.delete(&doomed, ctx.hook_meta(name, Some(&digest))).await {
        Ok(()) => Response::new(202),
        Err(e) => storage_error(e),
    }
}

/// `Range: bytes=a-b`, `bytes=a-` or `bytes=-n` (RFC 9110 §14.1.2) against an object of
/// `size` bytes: `None` to serve it whole (an unusable header, or several ranges),
/// `Some(Err(()))` when not satisfiable (as Go's `http.ServeContent`, which distribution uses).
pub fn parse_range(header: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // several ranges: serve the whole blob
    }
    let (a, b) = spec.split_once('-')?;
    let range = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            if n == 0 {
                return Some(Err(()));
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (a, "") => (a.parse().ok()?, size.saturating_sub(1)),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(size.saturating_sub(1))),
    };
    if range.0 >= size || range.0 > range.1 {
        return Some(Err(()));
    }
    Some(Ok(range))
}

/// The blob object, following the pointer a chunked upload leaves.
pub(crate) async fn blob_meta(ctx: &Ctx<'_>, digest: &Digest) -> Result<Option<(String, ObjectMeta)>, Response> {
    let Some(meta) = ctx.storage.head(&keys::blob(digest)).await.map_err(storage_error)? else {
        return Ok(None);
    };
    match meta.custom.get("location") {
        Some(loc) => Ok(ctx.storage.head(loc).await.map_err(storage_error)?.map(|m| (loc.clone(), m))),
        None => Ok(Some((keys::blob(digest), meta))),
    }
}

async fn get_blob(ctx: &Ctx<'_>, req: &Request, name: &str, digest: &str) -> Response {
    if let Err(r) = ctx.check(name, Action::Read) {
        return r;
    }
    let digest = match upload::client_digest(digest) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let unknown = || error(404, "BLOB_UNKNOWN", format!("blob {digest} not found"));
    match ctx.storage.head(&keys::link(name, &digest)).await {
        Ok(Some(_)) => {}
        Ok(None) => return unknown(),
        Err(e) => return storage_error(e),
    }
    let (key, meta) = match blob_meta(ctx, &digest).await {
        Ok(Some(found)) => found,
        Ok(None) => return unknown(),
        Err(r) => return r,
    };
    serve_blob(ctx, req, name, &digest, &key, &meta).await
}

/// A stored blob with its headers, whole or the asked-for range; straight from the store.
pub(crate) async fn serve_blob(ctx: &Ctx<'_>, req: &Request, name: &str, digest: &Digest, key: &str, meta: &ObjectMeta) -> Response {
    let unknown = || error(404, "BLOB_UNKNOWN", format!("blob {digest} not found"));
    // (Range applies to GET only: a HEAD answers for the whole blob whatever it asks.)
    let range = match req.header("range").filter(|_| req.method == Method::Get).and_then(|r| parse_range(r, meta.size)) {
        Some(Err(())) => {
            return error(416, "BLOB_UNKNOWN", "range not satisfiable").with_header("Content-Range", format!("bytes */{}", meta.size))
        }
        Some(Ok(r)) => Some(r),
        None => None,
    };
    let base = |status: u16, length: u64| {
        Response::new(status)
            .with_header("Content-Type", "application/octet-stream")
            .with_header("Content-Length", length.to_string())
            .with_header("Docker-Content-Digest", digest.to_string())
            .with_header("ETag", format!("\"{digest}\""))
            .with_header("Accept-Ranges", "bytes")
            .with_header("Cache-Control", "max-age=31536000")
            // Keeps the runtime from compressing, which would drop Content-Length.
            .with_header("Content-Encoding", "identity")
    };
    if req.method == Method::Head {
        return base(200, meta.size);
    }
    let byte_range = range.map(|(a, b)| ByteRange::Slice { offset: a, length: b - a + 1 });
    match ctx.storage.get(key, byte_range, ctx.hook_meta(name, Some(digest))).await {
        Ok(Some(obj)) => {
            let mut r = match range {
                Some((a, b)) => base(206, b - a + 1).with_header("Content-Range", format!("bytes {a}-{b}/{}", meta.size)),
                None => base(200, meta.size),
            };
            r.body = obj.body;
            r
        }
        Ok(None) => unknown(),
        Err(e) => storage_error(e),
    }
}

async fn delete_blob(ctx: &Ctx<'_>, name: &str, digest: &str) -> Response {
    if let Err(r) = access::authorize_write(ctx, name, Action::Delete).await {
        return r;
    }
    let digest = match upload::client_digest(digest) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let link = keys::link(name, &digest);
    match ctx.storage.head(&link).await {
        // The blob leaves this repository; its bytes stay for others that link it.
        Ok(Some(_)) => match ctx.storage.delete(&[link], ctx.hook_meta(name, Some(&digest))).await {
            Ok(()) => Response::new(202),
            Err(e) => storage_error(e),
        },
        Ok(None) => error(404, "BLOB_UNKNOWN", format!("blob {digest} not found")),
        Err(e) => storage_error(e),
    }
}

async fn referrers(ctx: &Ctx<'_>, req: &Request, name: &str, digest: &str) -> Response {
    if let Err(r) = ctx.check(name, Action::Read) {
        return r;
    }
    let subject = match upload::client_digest(digest) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let prefix = keys::referrers_prefix(name, &subject);
    let all = match list_all(ctx, &prefix).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let filter = req.query_param("artifactType").filter(|f| !f.is_empty());
    let manifests: Vec<Value> = all
        .iter()
        .filter_map(|o| direct_child(&o.key, &prefix).and_then(Digest::from_key_part).map(|d| (o, d)))
        .filter(|(o, _)| filter.is_none() || o.custom.get("artifactType").map(String::as_str) == filter)
        .map(|(o, d)| {
            let mut m = serde_json::Map::new();
            m.insert("mediaType".into(), json!(served_type(o.custom.get("mediaType").map(String::as_str))));
            m.insert("size".into(), json!(o.custom.get("size").and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)));
            m.insert("digest".into(), json!(d.to_string()));
            if let Some(a) = o.custom.get("artifactType") {
                m.insert("artifactType".into(), json!(a));
            }
            if let Some(a) = o.custom.get("annotations").and_then(|a| serde_json::from_str::<Value>(a).ok()).filter(Value::is_object) {
                m.insert("annotations".into(), a);
            }
            Value::Object(m)
        })
        .collect();
    let body = json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests});
    let mut r = Response::bytes(200, INDEX_MEDIA_TYPE, serde_json::to_vec(&body).unwrap_or_default());
    if filter.is_some() {
        r = r.with_header("OCI-Filters-Applied", "artifactType");
    }
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_the_right() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parse_route("/v2/"), Some(Route::Base));
        assert_eq!(parse_route("/v2"), Some(Route::Base));
        assert_eq!(parse_route(""), Some(Route::Base));
        assert_eq!(parse_route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(parse_route("/v2/a/b/manifests/latest"), Some(Route::Manifest("a/b".into(), "latest".into())));
        assert_eq!(parse_route(&format!("/a/blobs/{d}")), Some(Route::Blob("a".into(), d.clone())));
        assert_eq!(parse_route("/v2/x/manifests/y/blobs/uploads/"), Some(Route::UploadStart("x/manifests/y".into())));
        assert_eq!(parse_route("/v2/x/blobs/uploads/abc"), Some(Route::Upload("x".into(), "abc".into())));
        assert_eq!(parse_route("/v2/x/tags/list"), Some(Route::Tags("x".into())));
        assert_eq!(parse_route(&format!("/v2/x/referrers/{d}")), Some(Route::Referrers("x".into(), d)));
        assert_eq!(parse_route("/v2/x/unknown"), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=5-2", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
