//! OCI Distribution v1.1 (hosted): manifests, blobs, uploads, tags, catalog, referrers, and
//! the Docker token endpoint. Reached at the host root `/v2/...` (what every container client
//! requests) and under the OCI base path, with or without `/v2`.
//!
//! Handlers return [`crate::error::Result`] with the codes of [`errors`]; [`handle`] writes
//! the errors as container clients read them.
//!
//! Request and upstream data never reach an `unwrap`, `expect`, `panic!` or slice index here
//! (a panic takes every request of the isolate down with it): clippy enforces it.

pub mod access;
pub mod errors;
pub mod manifest;
mod module;
pub mod names;
pub mod proxy;
pub mod tag_list;
pub mod token;
pub mod upload;

pub use module::MODULE;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use manifest::{excerpt, known_type, Manifest};

use crate::auth::{Action, Auth, AuthError, Principal};
use crate::config::Protocol;
use crate::error::{Error, Result};
use crate::http::{decode_path, Body, Method, Request, Response};
use crate::platform::{ByteRange, EdgeHint, ObjectMeta, PutOptions, PutOutcome};
use crate::router::App;
use crate::storage::key::Key;
use crate::storage::{HookMetadata, Storage};
use errors::{
    BLOB_UNKNOWN, DENIED, DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN, MANIFEST_INVALID, MANIFEST_UNKNOWN, NAME_INVALID, NAME_UNKNOWN,
    SIZE_INVALID, TAG_INVALID, UNAUTHORIZED, UNSUPPORTED,
};
use names::{keys, valid_tag, Digest, Repository};

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
    pub fn challenge(&self, repo: Option<&Repository>, actions: &str) -> Error {
        self.challenge_scope(repo.map(|r| r.scope(actions)).as_deref(), false)
    }

    /// 401 with a Bearer challenge for `scope` (space-separated scopes, as the token
    /// endpoint reads them); `insufficient` when the credential was valid but too narrow.
    pub fn challenge_scope(&self, scope: Option<&str>, insufficient: bool) -> Error {
        let mut value = format!("Bearer realm=\"{}\",service=\"{}\"", self.realm(), token::SERVICE);
        if let Some(s) = scope {
            value.push_str(&format!(",scope=\"{s}\""));
        }
        if insufficient {
            value.push_str(",error=\"insufficient_scope\"");
        }
        UNAUTHORIZED.err("authentication required").header("WWW-Authenticate", value)
    }

    /// Checks `action` on `repo`: anonymous pulls where allowed, else the principal's scopes.
    pub fn check(&self, repo: &Repository, action: Action) -> Result<()> {
        let actions = match action {
            Action::Read => "pull",
            Action::Write => "pull,push",
            Action::Delete => "delete",
        };
        match &self.principal {
            Some(p) if p.can(Protocol::Oci, repo.as_str(), action) => Ok(()),
            _ if action == Action::Read && self.anonymous_read() => Ok(()),
            None => Err(self.challenge(Some(repo), actions)),
            Some(p) if p.readonly => Err(DENIED.err("read-only credentials")),
            // A token without the scope: the client asks the token endpoint for a better one.
            Some(_) => Err(self.challenge_scope(Some(&repo.scope(actions)), true)),
        }
    }

    /// The pull-through cache for `repo`, unless the repository is hosted here (hosted
    /// content is never shadowed) or no upstream may serve it.
    async fn proxy(&self, repo: &Repository, resource_type: &str) -> Option<proxy::OciProxy> {
        let resolve = crate::upstream::ResolveContext { protocol: Protocol::Oci, resource: repo.as_str(), resource_type, actor: &self.actor };
        let upstreams = self.app.upstreams.resolve(&resolve).await;
        // Hosted: the repository record exists.
        let is_hosted = async { Ok(self.storage.head(keys::repository(repo).as_str()).await?.is_some()) };
        match crate::upstream::engine::resolve(&self.app.platform, upstreams, repo.as_str(), is_hosted, proxy::OciProxy::with_engine).await {
            Ok(crate::upstream::engine::Resolved::Proxied(p)) => Some(p),
            _ => None,
        }
    }

    /// The pull-through cache to ask when the hosted answer is a 404 (see [`Ctx::proxy`]);
    /// otherwise the hosted answer back.
    async fn proxy_after(&self, hosted: Result<Response>, repo: &Repository, resource_type: &str) -> std::result::Result<proxy::OciProxy, Result<Response>> {
        match hosted {
            Err(e) if e.status() == 404 => self.proxy(repo, resource_type).await.ok_or(Err(e)),
            hosted => Err(hosted),
        }
    }

    pub fn hook_meta(&self, repo: impl AsRef<str>, digest: Option<&Digest>) -> HookMetadata {
        HookMetadata {
            package: Some(repo.as_ref().to_string()),
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

impl Route {
    /// The repository name the route names, as the client sent it.
    pub(crate) fn repository(&self) -> Option<&str> {
        match self {
            Route::Base | Route::Catalog | Route::Token => None,
            Route::Manifest(n, _) | Route::Blob(n, _) | Route::UploadStart(n) | Route::Upload(n, _) | Route::Tags(n) | Route::Referrers(n, _) => Some(n),
        }
    }
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

/// The entry the router calls: every error is written here, in the shape of [`errors`].
/// An OCI request; its errors are written by `errors::OciErrors` (see `module.rs`).
pub async fn handle(app: &App, req: Request, path: &str, prefix: String) -> Result<Response> {
    let route = parse_route(path).ok_or_else(|| NAME_UNKNOWN.err("unknown path"))?;
    if route == Route::Token {
        return token::handle(app, &req).await;
    }
    let auth = Auth::new(&app.platform, &app.config);
    // Bad or expired credentials count as none: the challenge sends the client for a token.
    let principal = match auth.principal(&req.headers, Protocol::Oci).await {
        Ok(p) => p,
        Err(AuthError::InvalidCredentials) => None,
        Err(e) => return Err(auth_failure(e)),
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

/// A credential check that failed other than by bad credentials (which each caller answers
/// its own way).
fn auth_failure(e: AuthError) -> Error {
    match e {
        AuthError::RateLimited { retry_after_secs } => errors::rate_limited(retry_after_secs),
        e => Error::internal(format!("{e:?}")),
    }
}

/// 405 for a method a route does not take.
fn not_allowed(method: Method) -> Error {
    let detail = match method {
        Method::Delete => "deletion is disabled on this registry",
        _ => "method not allowed",
    };
    UNSUPPORTED.err(detail)
}

async fn route_request(ctx: &Ctx<'_>, req: Request, route: Route) -> Result<Response> {
    let Some(name) = route.repository() else {
        return match (req.method, route) {
            (Method::Get | Method::Head, Route::Base) => {
                if ctx.principal.is_none() && !ctx.anonymous_read() {
                    return Err(ctx.challenge(None, ""));
                }
                Ok(Response::json(200, &json!({})).with_header("Docker-Distribution-API-Version", "registry/2.0"))
            }
            (Method::Get, Route::Catalog) => catalog(ctx, &req).await,
            (method, _) => Err(not_allowed(method)),
        };
    };
    let repo = Repository::parse(name).ok_or_else(|| NAME_INVALID.err(format!("invalid repository name {name:?}")))?;
    let oci = ctx.app.config.protocol(Protocol::Oci);
    let deletion = oci.features.get("deletion").copied().unwrap_or(true);
    match (req.method, route) {
        (Method::Get | Method::Head, Route::Manifest(_, reference)) => {
            let hosted = get_manifest(ctx, &req, &repo, &reference).await;
            match ctx.proxy_after(hosted, &repo, "manifest").await {
                Ok(p) => p.manifest(&req, repo.as_str(), &reference).await,
                Err(hosted) => hosted,
            }
        }
        (Method::Put, Route::Manifest(_, reference)) => put_manifest(ctx, req, &repo, &reference).await,
        (Method::Delete, Route::Manifest(_, reference)) if deletion => delete_manifest(ctx, &repo, &reference).await,
        (Method::Get | Method::Head, Route::Blob(_, digest)) => {
            let hosted = get_blob(ctx, &req, &repo, &digest).await;
            match Digest::parse(&digest) {
                Some(d) => match ctx.proxy_after(hosted, &repo, "blob").await {
                    Ok(p) => p.blob(ctx, &req, repo.as_str(), &d).await,
                    Err(hosted) => hosted,
                },
                None => hosted,
            }
        }
        (Method::Delete, Route::Blob(_, digest)) if deletion => delete_blob(ctx, &repo, &digest).await,
        (Method::Post, Route::UploadStart(_)) => upload::start(ctx, req, &repo).await,
        (Method::Patch, Route::Upload(_, id)) => upload::patch(ctx, req, &repo, &id).await,
        (Method::Put, Route::Upload(_, id)) => upload::finish(ctx, req, &repo, &id).await,
        (Method::Get, Route::Upload(_, id)) => upload::status(ctx, &repo, &id).await,
        (Method::Delete, Route::Upload(_, id)) => upload::cancel(ctx, &repo, &id).await,
        (Method::Get, Route::Tags(_)) => {
            let hosted = tags_list(ctx, &req, &repo).await;
            match ctx.proxy_after(hosted, &repo, "tags").await {
                Ok(p) => p.tags(&req, repo.as_str()).await,
                Err(hosted) => hosted,
            }
        }
        (Method::Get, Route::Referrers(_, digest)) if oci.feature("referrers") => referrers(ctx, &req, &repo, &digest).await,
        // Clients fall back to the referrers tag schema only on a 404 (distribution spec); a
        // 405 made them fail.
        (Method::Get, Route::Referrers(..)) => Err(UNSUPPORTED.err("the referrers API is disabled on this registry").with_status(404)),
        (method, _) => Err(not_allowed(method)),
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

/// The part of a listed key after `prefix`, if it names something directly under it (nested
/// repositories share prefixes; their keys have another `/`).
fn direct_child<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    key.strip_prefix(prefix).filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

async fn catalog(ctx: &Ctx<'_>, req: &Request) -> Result<Response> {
    let all = ctx.storage.list_all(keys::REPOSITORIES).await?;
    // Only repositories the caller may pull are listed.
    let names: Vec<String> = all
        .into_iter()
        .filter_map(|o| o.key.strip_prefix(keys::REPOSITORIES).and_then(Repository::parse))
        .filter(|r| ctx.check(r, Action::Read).is_ok())
        .map(|r| r.as_str().to_string())
        .collect();
    if names.is_empty() && ctx.principal.is_none() && !ctx.anonymous_read() {
        // Name the catalog grant, as distribution does: a client following a challenge
        // without a scope got a token that lists nothing.
        return Err(ctx.challenge_scope(Some("registry:catalog:*"), false));
    }
    let (page, link) = paginate(names, req, &format!("{}/_catalog", ctx.prefix));
    let mut r = Response::json(200, &json!({"repositories": page}));
    if let Some(l) = link {
        r = r.with_header("Link", l);
    }
    Ok(r)
}

async fn tags_list(ctx: &Ctx<'_>, req: &Request, repo: &Repository) -> Result<Response> {
    ctx.check(repo, Action::Read)?;
    let prefix = keys::tags_prefix(repo);
    let listed = ctx.storage.list_all(&prefix).await?;
    let tags: Vec<String> = listed.iter().filter_map(|o| direct_child(&o.key, &prefix)).map(str::to_string).collect();
    if tags.is_empty() && ctx.storage.head(keys::repository(repo).as_str()).await.ok().flatten().is_none() {
        return Err(NAME_UNKNOWN.err(format!("repository {repo} not known")));
    }
    let (page, link) = paginate(tags, req, &format!("{}/{repo}/tags/list", ctx.prefix));
    let mut r = Response::json(200, &json!({"name": repo.as_str(), "tags": page}));
    if let Some(l) = link {
        r = r.with_header("Link", l);
    }
    Ok(r)
}

/// A tag from the client: 400 `TAG_INVALID` unless it fits the grammar.
fn client_tag(tag: &str) -> Result<&str> {
    if valid_tag(tag) {
        Ok(tag)
    } else {
        Err(TAG_INVALID.err(format!("invalid tag {:?}", excerpt(tag, 80))))
    }
}

/// A manifest reference from the client: a digest (tags have no `:`, so a reference with one
/// is a digest, usable or not: an unusable one is a digest error, not a bad tag) or a tag.
fn client_reference(reference: &str) -> Result<std::result::Result<Digest, &str>> {
    if reference.contains(':') {
        upload::client_digest(reference).map(Ok)
    } else {
        client_tag(reference).map(Err)
    }
}

/// Resolves a tag or digest reference to the manifest digest, with the manifest's size and
/// media type when the tag records them (tags written since they do): enough for a HEAD.
async fn resolve(ctx: &Ctx<'_>, repo: &Repository, reference: &str) -> Result<(Digest, Option<ObjectMeta>)> {
    let tag = match client_reference(reference)? {
        Ok(digest) => return Ok((digest, None)),
        Err(tag) => tag,
    };
    let found = ctx.storage.head(keys::tag(repo, tag).as_str()).await?;
    let Some((found, digest)) = found.and_then(|t| t.custom.get("digest").and_then(|d| Digest::parse(d)).map(|d| (t, d))) else {
        return Err(MANIFEST_UNKNOWN.err(format!("manifest {repo}:{tag} not found")));
    };
    let size = found.custom.get("size").and_then(|s| s.parse().ok());
    let media_type = found.custom.get("mediaType").cloned();
    let known = size.zip(media_type).map(|(size, media_type)| ObjectMeta {
        key: keys::manifest(repo, &digest).path,
        size,
        content_type: Some(media_type),
        ..found
    });
    Ok((digest, known))
}

async fn get_manifest(ctx: &Ctx<'_>, req: &Request, repo: &Repository, reference: &str) -> Result<Response> {
    ctx.check(repo, Action::Read)?;
    let (digest, known) = resolve(ctx, repo, reference).await?;
    let key = keys::manifest(repo, &digest);
    let found = if req.method == Method::Head {
        // Clients HEAD a tag before every pull: one read when the tag knows the answer.
        match known {
            Some(meta) => Some((meta, None)),
            None => ctx.storage.head(key.as_str()).await?.map(|m| (m, None)),
        }
    } else {
        ctx.storage.get(key.as_str(), None, ctx.hook_meta(repo, Some(&digest))).await?.map(|o| (o.meta, Some(o.body)))
    };
    let (meta, body) = found.ok_or_else(|| MANIFEST_UNKNOWN.err(format!("manifest {repo}@{digest} not found")))?;
    let etag = format!("\"{digest}\"");
    // By digest the same bytes forever; by tag until the tag moves (a write of its key).
    let hint = match client_reference(reference)? {
        Ok(_) => EdgeHint::artifact(vec![key.to_string()]),
        Err(tag) => EdgeHint::document(vec![keys::tag(repo, tag).to_string(), key.to_string()]),
    };
    let mut r = manifest_response(&meta, &digest).with_edge(hint);
    if req.header("if-none-match") == Some(etag.as_str()) {
        return Ok(Response::new(304).with_header("ETag", etag).with_header("Docker-Content-Digest", digest.to_string()));
    }
    if let Some(b) = body {
        r.body = b;
    }
    Ok(r)
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

fn unsupported_type(t: &str) -> Error {
    MANIFEST_INVALID.err(format!("unsupported manifest media type {:?}", excerpt(t, 80)))
}

/// The media type a pushed manifest is stored with: its Content-Type, else its `mediaType`,
/// else what its shape implies. Only manifest types are accepted, and the two must agree
/// (distribution spec "Pushing Manifests"; image spec `manifest.md`: `mediaType`, when
/// present, is the manifest's media type).
fn manifest_type(content_type: Option<&str>, doc: &Manifest) -> Result<&'static str> {
    let declared = match doc.media_type.as_deref() {
        Some(t) => Some(known_type(t).ok_or_else(|| unsupported_type(t))?),
        None => None,
    };
    match content_type {
        Some(ct) => {
            let ct = known_type(ct).ok_or_else(|| unsupported_type(ct))?;
            match declared {
                Some(d) if d != ct => Err(MANIFEST_INVALID.err(format!("Content-Type {ct} does not match the manifest's mediaType {d}"))),
                _ => Ok(ct),
            }
        }
        None => Ok(declared.unwrap_or_else(|| doc.implied_type())),
    }
}

/// Checks that the key of every item exists, else `missing` names the first absent one.
async fn require_all<T>(ctx: &Ctx<'_>, items: Vec<T>, key: impl Fn(&T) -> Key, missing: impl Fn(&T) -> Error) -> Result<()> {
    for item in &items {
        if ctx.storage.head(key(item).as_str()).await?.is_none() {
            return Err(missing(item));
        }
    }
    Ok(())
}

/// Sorted and without repeats, so each is checked once and the first missing is stable.
fn distinct<'d>(digests: impl Iterator<Item = &'d Digest>) -> Vec<&'d Digest> {
    let mut all: Vec<&Digest> = digests.collect();
    all.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    all.dedup();
    all
}

async fn put_manifest(ctx: &Ctx<'_>, req: Request, repo: &Repository, reference: &str) -> Result<Response> {
    access::authorize_write(ctx, repo, Action::Write).await?;
    // By digest (in the algorithm it names) or by tag (sha256, the canonical algorithm).
    let (by_digest, path_tag) = match client_reference(reference)? {
        Ok(d) => (Some(d), None),
        Err(tag) => (None, Some(tag.to_string())),
    };
    // Distribution spec (draft), "Pushing Manifests": a push by digest may name tags with
    // `?tag=` parameters; each one stored is answered in `OCI-Tag`.
    let query_tags: Vec<&str> = req.query.iter().filter(|(k, _)| k == "tag").map(|(_, v)| v.as_str()).collect();
    if query_tags.len() > MAX_TAGS_PER_PUSH {
        return Err(TAG_INVALID.err(format!("at most {MAX_TAGS_PER_PUSH} tags per push")).with_status(414));
    }
    for t in &query_tags {
        client_tag(t)?;
    }
    let mut tags: Vec<String> = path_tag.into_iter().chain(query_tags.iter().map(|t| t.to_string())).collect();
    let mut seen = std::collections::BTreeSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    let content_type = req.header("content-type").map(str::trim).filter(|c| !c.is_empty()).map(str::to_string);
    // Refused before the body is read.
    if let Some(ct) = content_type.as_deref().filter(|ct| known_type(ct).is_none()) {
        return Err(unsupported_type(ct));
    }
    let bytes = match req.body.read_capped(MAX_MANIFEST).await {
        Ok(b) => b,
        Err(crate::http::BodyError::TooLarge { .. }) => return Err(SIZE_INVALID.err("manifest larger than 4 MiB").with_status(413)),
        Err(e) => return Err(MANIFEST_INVALID.err(e.to_string())),
    };
    let digest = match &by_digest {
        Some(want) => {
            let actual = want.algorithm().digest(&bytes);
            if &actual != want {
                return Err(DIGEST_INVALID.err(format!("manifest digest is {actual}, not {want}")));
            }
            actual
        }
        None => Digest::of(&bytes),
    };
    let doc = Manifest::parse(&bytes).map_err(|e| MANIFEST_INVALID.err(format!("manifest is not valid: {e}")))?;
    if doc.schema_version != Some(2) {
        return Err(MANIFEST_INVALID.err("only schemaVersion 2 manifests are accepted"));
    }
    let media_type = manifest_type(content_type.as_deref(), &doc)?;
    if let Some(a) = doc.artifact_type.as_deref().filter(|a| !manifest::valid_media_type(a)) {
        return Err(MANIFEST_INVALID.err(format!("artifactType {:?} is not a media type (RFC 6838)", excerpt(a, 80))));
    }
    // Everything the manifest references must be here, except its subject and layers that
    // clients fetch from elsewhere.
    let blobs = distinct(doc.config.iter().chain(doc.layers.iter().filter(|l| !l.external())).map(|d| &d.digest));
    require_all(ctx, blobs, |b| keys::link(repo, b), |b| MANIFEST_BLOB_UNKNOWN.err(format!("blob {b} is not in {repo}"))).await?;
    let children = distinct(doc.manifests.iter().map(|d| &d.digest));
    require_all(ctx, children, |m| keys::manifest(repo, m), |m| MANIFEST_BLOB_UNKNOWN.err(format!("manifest {m} is not in {repo}"))).await?;
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
        return Err(MANIFEST_INVALID.err("the manifest's media types and annotations are too long to store"));
    }
    access::claim(ctx, repo).await?;
    // The manifest first, then what points at it; whatever this request wrote goes again if
    // a later write fails, so a failed push leaves nothing visible.
    let manifest_key = keys::manifest_as(repo, &digest, media_type);
    let opts = PutOptions { checksum: Some(digest.checksum()), ..manifest_key.put_options(manifest_custom) };
    let mut written: Vec<String> = write_new(ctx, repo, &digest, &manifest_key, bytes.into(), opts).await?.into_iter().collect();
    let mut pointers: Vec<(Key, Body, BTreeMap<String, String>)> = Vec::new();
    if let (Some(s), Some(custom)) = (&subject, referrer_custom) {
        pointers.push((keys::referrer(repo, s, &digest), Body::Empty, custom));
    }
    for t in &tags {
        pointers.push((keys::tag(repo, t), digest.to_string().into_bytes().into(), tag_custom.clone()));
    }
    for (key, body, custom) in pointers {
        let opts = key.put_options(custom);
        match write_new(ctx, repo, &digest, &key, body, opts).await {
            Ok(new) => written.extend(new),
            Err(e) => return Err(undo(ctx, &written, e).await),
        }
    }
    let mut r = Response::new(201)
        .with_header("Location", format!("{}/{repo}/manifests/{digest}", ctx.prefix))
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
    Ok(r)
}

/// Writes `key` through the hooks; returns it if it is new (this request's to undo).
async fn write_new(ctx: &Ctx<'_>, repo: &Repository, digest: &Digest, key: &Key, body: Body, opts: PutOptions) -> Result<Option<String>> {
    let existed = ctx.storage.head(key.as_str()).await?.is_some();
    let meta = HookMetadata { content_type: opts.content_type.clone(), ..ctx.hook_meta(repo, Some(digest)) };
    match ctx.storage.put(key.as_str(), body, opts, meta).await? {
        PutOutcome::Stored(_) => Ok((!existed).then(|| key.path.clone())),
        other => Err(Error::internal(format!("write of {key} refused: {other:?}"))),
    }
}

/// Removes what a failed request wrote, then gives back its failure.
async fn undo(ctx: &Ctx<'_>, written: &[String], failure: Error) -> Error {
    if let Err(e) = ctx.storage.discard(written).await {
        crate::logging::error(&format!("oci: could not remove {written:?} after a failed push: {e}"));
    }
    failure
}

async fn delete_manifest(ctx: &Ctx<'_>, repo: &Repository, reference: &str) -> Result<Response> {
    access::authorize_write(ctx, repo, Action::Delete).await?;
    let digest = match client_reference(reference)? {
        Ok(digest) => digest,
        Err(tag) => {
            let key = keys::tag(repo, tag);
            if ctx.storage.head(key.as_str()).await?.is_none() {
                return Err(MANIFEST_UNKNOWN.err(format!("tag {tag} not found")));
            }
            ctx.storage.delete(&[key.path], ctx.hook_meta(repo, None)).await?;
            return Ok(Response::new(202));
        }
    };
    let key = keys::manifest(repo, &digest);
    let meta = ctx.storage.head(key.as_str()).await?.ok_or_else(|| MANIFEST_UNKNOWN.err(format!("manifest {digest} not found")))?;
    let mut doomed = vec![key.path];
    // Tags pointing at it go too, and its entry in its subject's referrers.
    let prefix = keys::tags_prefix(repo);
    let tags = ctx.storage.list_all(&prefix).await?;
    doomed.extend(
        tags.into_iter()
            .filter(|t| direct_child(&t.key, &prefix).is_some())
            .filter(|t| t.custom.get("digest").map(String::as_str) == Some(digest.as_str()))
            .map(|t| t.key),
    );
    if let Some(s) = meta.custom.get("subject").and_then(|s| Digest::parse(s)) {
        doomed.push(keys::referrer(repo, &s, &digest).path);
    }
    ctx.storage.delete(&doomed, ctx.hook_meta(repo, Some(&digest))).await?;
    Ok(Response::new(202))
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
pub(crate) async fn blob_meta(ctx: &Ctx<'_>, digest: &Digest) -> Result<Option<(String, ObjectMeta)>> {
    let key = keys::blob(digest);
    let Some(meta) = ctx.storage.head(key.as_str()).await? else {
        return Ok(None);
    };
    match meta.custom.get("location") {
        Some(loc) => Ok(ctx.storage.head(loc).await?.map(|m| (loc.clone(), m))),
        None => Ok(Some((key.path, meta))),
    }
}

fn unknown_blob(digest: &Digest) -> Error {
    BLOB_UNKNOWN.err(format!("blob {digest} not found"))
}

async fn get_blob(ctx: &Ctx<'_>, req: &Request, repo: &Repository, digest: &str) -> Result<Response> {
    ctx.check(repo, Action::Read)?;
    let digest = upload::client_digest(digest)?;
    if ctx.storage.head(keys::link(repo, &digest).as_str()).await?.is_none() {
        return Err(unknown_blob(&digest));
    }
    let (key, meta) = blob_meta(ctx, &digest).await?.ok_or_else(|| unknown_blob(&digest))?;
    let resp = blob_response(ctx, req, repo.as_str(), &digest, &key, &meta).await?;
    // Kept until the blob leaves the repository (its link) or the registry.
    Ok(resp.with_edge(EdgeHint::artifact(vec![keys::link(repo, &digest).to_string(), key])))
}

/// The headers of a blob answer ([`keys::BLOB`]) of `length` bytes.
pub(crate) fn blob_headers(digest: &Digest, status: u16, length: u64) -> Response {
    Response::new(status)
        .with_header("Content-Type", keys::BLOB.content_type)
        .with_header("Content-Length", length.to_string())
        .with_header("Docker-Content-Digest", digest.to_string())
        .with_header("ETag", format!("\"{digest}\""))
        .with_header("Accept-Ranges", "bytes")
        .with_header("Cache-Control", keys::BLOB.cache_control)
        // Keeps the runtime from compressing, which would drop Content-Length.
        .with_header("Content-Encoding", "identity")
}

/// A stored blob with its headers ([`keys::BLOB`]), whole or the asked-for range.
pub(crate) async fn blob_response(ctx: &Ctx<'_>, req: &Request, name: &str, digest: &Digest, key: &str, meta: &ObjectMeta) -> Result<Response> {
    // (Range applies to GET only: a HEAD answers for the whole blob whatever it asks.)
    let range = match req.header("range").filter(|_| req.method == Method::Get).and_then(|r| parse_range(r, meta.size)) {
        Some(Err(())) => {
            return Err(BLOB_UNKNOWN.err("range not satisfiable").with_status(416).header("Content-Range", format!("bytes */{}", meta.size)))
        }
        Some(Ok(r)) => Some(r),
        None => None,
    };
    let base = |status: u16, length: u64| blob_headers(digest, status, length);
    if req.method == Method::Head {
        return Ok(base(200, meta.size));
    }
    let byte_range = range.map(|(a, b)| ByteRange::Slice { offset: a, length: b - a + 1 });
    let obj = ctx.storage.get(key, byte_range, ctx.hook_meta(name, Some(digest))).await?.ok_or_else(|| unknown_blob(digest))?;
    let mut r = match range {
        Some((a, b)) => base(206, b - a + 1).with_header("Content-Range", format!("bytes {a}-{b}/{}", meta.size)),
        None => base(200, meta.size),
    };
    r.body = obj.body;
    Ok(r)
}

async fn delete_blob(ctx: &Ctx<'_>, repo: &Repository, digest: &str) -> Result<Response> {
    access::authorize_write(ctx, repo, Action::Delete).await?;
    let digest = upload::client_digest(digest)?;
    let link = keys::link(repo, &digest);
    if ctx.storage.head(link.as_str()).await?.is_none() {
        return Err(unknown_blob(&digest));
    }
    // The blob leaves this repository; its bytes stay for others that link it.
    ctx.storage.delete(&[link.path], ctx.hook_meta(repo, Some(&digest))).await?;
    Ok(Response::new(202))
}

async fn referrers(ctx: &Ctx<'_>, req: &Request, repo: &Repository, digest: &str) -> Result<Response> {
    ctx.check(repo, Action::Read)?;
    let subject = upload::client_digest(digest)?;
    let prefix = keys::referrers_prefix(repo, &subject);
    let all = ctx.storage.list_all(&prefix).await?;
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
    Ok(r)
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
    fn references_are_digests_when_they_have_a_colon_else_tags() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(client_reference(&d).unwrap(), Ok(Digest::parse(&d).unwrap()));
        assert_eq!(client_reference("v1.2").unwrap(), Err("v1.2"));
        // An unusable digest is a digest error, never a bad tag.
        assert_eq!(client_reference("sha256:12").unwrap_err().code, Some(&DIGEST_INVALID));
        assert_eq!(client_reference(".v1").unwrap_err().code, Some(&TAG_INVALID));
    }

    #[test]
    fn methods_a_route_does_not_take_are_405_unsupported() {
        for (method, detail) in [(Method::Delete, "deletion is disabled on this registry"), (Method::Patch, "method not allowed")] {
            let e = not_allowed(method);
            assert_eq!((e.status(), e.code.map(|c| c.name), e.detail.as_str()), (405, Some("UNSUPPORTED"), detail));
        }
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
