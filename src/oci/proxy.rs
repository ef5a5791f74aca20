//! OCI pull-through cache: repositories that are not hosted here are pulled from the
//! upstreams (`OCI_UPSTREAMS`) and kept in R2, by the engine in `crate::upstream::engine`.
//! This adapter declares the OCI distribution spec's part:
//!
//! * Blobs and manifests by digest are immutable: cached forever, verified against their
//!   digest (a blob's on the way into R2 while the client already receives it).
//! * Tags are documents: an entry points at the manifest digest, revalidated after its TTL
//!   with a HEAD (free of Docker Hub's pull rate limit) whose `Docker-Content-Digest` says
//!   whether the tag moved.
//! * Each repository has its own links to the cached blobs, so one repository's cached
//!   layers are never served through another that the upstream would not serve them from.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures::future::{FutureExt, LocalBoxFuture};

use super::errors::{BLOB_UNKNOWN, DIGEST_INVALID, MANIFEST_UNKNOWN, NAME_UNKNOWN, TAG_INVALID, UNAVAILABLE};
use super::names::{keys, valid_tag, Digest};
use super::{blob_headers, blob_response, manifest_response, Ctx, MANIFEST_MEDIA_TYPE, MAX_MANIFEST};
use crate::error::{Error, Result};
use crate::http::{Body, Headers, Method, Request, Response};
use crate::platform::{Platform, PutOptions, PutOutcome};
use crate::storage::{HookMetadata, Operation};
use crate::upstream::cache::{self, Entry};
use crate::upstream::client::{fetch_first, fetch_one, Failure, Failures, Fetched, Outcome, UpstreamRequest};
use crate::upstream::engine::{Adapter, Blob, DocumentError, Kept, Refresh};
use crate::upstream::{mark, CacheStatus, Engine, ProtocolUpstreams, Upstream};

/// Every manifest type a client may meet; indexes first, so multi-arch images stay whole.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5";


/// Forgets what the cache kept for `repo` (its tags, manifests and blob links; the blobs
/// themselves are shared by digest and stay); returns how many objects went. Nested
/// repositories (`{repo}/…`) keep theirs.
pub async fn purge_repository(store: &dyn crate::platform::ObjectStore, repo: &str) -> crate::platform::StoreResult<usize> {
    let mut gone = 0;
    for kind in ["tags", "manifests", "links"] {
        let prefix = keys::cache_prefix(kind, repo);
        gone += cache::purge_where(store, &prefix, |rest| !rest.contains('/')).await?;
    }
    Ok(gone)
}

/// OCI's errors for the engine's failures, with the distribution spec's codes.
struct OciAdapter;

impl Adapter for OciAdapter {
    fn not_found(&self, what: &str) -> Error {
        NAME_UNKNOWN.err(format!("{what} not known"))
    }

    fn unavailable(&self, why: &Failures) -> Error {
        UNAVAILABLE.err(format!("upstream unavailable: {why}"))
    }

    /// What failed its digest is the upstream's fault, so a 502 rather than the spec's 400.
    fn corrupt(&self, why: &Failures) -> Error {
        DIGEST_INVALID.err(why.to_string()).with_status(502)
    }
}

/// The proxy for one request: owned, so background work can carry it past the response.
#[derive(Clone)]
pub struct OciProxy {
    engine: Engine,
}

impl OciProxy {
    pub fn new(platform: Platform, upstreams: Rc<ProtocolUpstreams>) -> OciProxy {
        OciProxy { engine: Engine::new(platform, upstreams) }
    }

    /// The proxy over what `resolve` found.
    pub fn with_engine(engine: Engine) -> OciProxy {
        OciProxy { engine }
    }

    fn platform(&self) -> &Platform {
        &self.engine.platform
    }

    /// The repository's name upstream: Docker Hub keeps official images under `library/`.
    fn upstream_name(u: &Upstream, name: &str) -> String {
        if u.library_prefix && !name.contains('/') {
            format!("library/{name}")
        } else {
            name.to_string()
        }
    }

    fn request(u: &Upstream, method: Method, name: &str, tail: &str, accept: &str) -> UpstreamRequest {
        let mut headers = Headers::new();
        headers.set("Accept", accept);
        UpstreamRequest {
            method,
            url: format!("{}/v2/{}/{tail}", u.url, Self::upstream_name(u, name)),
            headers,
            body: None,
        }
    }

    // ---- manifests ----

    pub async fn manifest(&self, req: &Request, name: &str, reference: &str) -> Result<Response> {
        if let Some(digest) = Digest::parse(reference) {
            return match self.manifest_by_digest(name, &digest, None).await {
                Ok(Some((status, upstream))) => self.serve_manifest(req, name, &digest, status, &upstream).await,
                Ok(None) => Err(MANIFEST_UNKNOWN.err(format!("manifest {name}@{digest} not found"))),
                Err(why) => Err(OciAdapter.failed(&why)),
            };
        }
        if !valid_tag(reference) {
            return Err(TAG_INVALID.err(format!("invalid tag {reference:?}")));
        }
        let refresh = |known| self.refresh_collapsed(name, reference, known);
        match self.engine.document(&keys::cached_tag_entry(name, reference), name, || async { None }, refresh).await {
            Ok(doc) => self.serve_tag(req, name, reference, &doc.entry, doc.status).await,
            Err(DocumentError::Store(e)) => Err(OciAdapter.unavailable(&Failures::one("cache", Failure::Store(e)))),
            Err(DocumentError::Upstream(why)) => Err(OciAdapter.failed(&why)),
        }
    }

    /// Refreshes `name:tag`, collapsed with concurrent refreshes of it.
    fn refresh_collapsed(&self, name: &str, tag: &str, known: Option<Entry>) -> LocalBoxFuture<'static, Refresh> {
        let (this, n, t) = (self.clone(), name.to_string(), tag.to_string());
        let work = async move { this.refresh_tag(&n, &t, known).await }.boxed_local();
        self.engine.refresh(&keys::cached_tag_entry(name, tag), ("oci", name.to_string(), tag.to_string()), work)
    }

    /// HEAD the tag upstream; fetch the manifest by digest only when it moved (`known`: the
    /// tag's entry as the caller read it).
    async fn refresh_tag(&self, name: &str, tag: &str, known: Option<Entry>) -> Refresh {
        let key = keys::cached_tag_entry(name, tag);
        let old = known.filter(|e| e.status == 200);
        let selected = self.engine.select(name);
        let tail = format!("manifests/{tag}");
        let fetched = fetch_first(self.platform(), &selected, name, |u| Some(Self::request(u, Method::Head, name, &tail, MANIFEST_ACCEPT))).await;
        let (upstream, head) = match fetched {
            Fetched::Found { upstream, response } => (upstream, response),
            Fetched::NotFound => return self.engine.save_absent(&key, name).await,
            Fetched::Unavailable(why) => return Err(why),
        };
        let vanished = || Failures::one(&upstream.id, Failure::Invalid(format!("{name}:{tag} vanished between HEAD and GET")));
        let announced = head.headers.get("docker-content-digest").and_then(Digest::parse);
        let unchanged = announced.as_ref().is_some_and(|d| old.as_ref().and_then(|o| o.extra.get("digest")) == Some(&d.to_string()));
        let (digest, status) = match announced {
            Some(d) if unchanged => (d, CacheStatus::Revalidated),
            Some(d) => {
                self.manifest_by_digest(name, &d, Some(&upstream)).await?.ok_or_else(vanished)?;
                (d, CacheStatus::Miss)
            }
            // No digest on the HEAD: GET the tag and hash what came.
            None => {
                let fetched = self.fetch_manifest(name, &upstream, tag, None).await.map_err(|f| Failures::one(&upstream.id, f))?;
                (fetched.ok_or_else(vanished)?, CacheStatus::Miss)
            }
        };
        let entry = Entry {
            extra: BTreeMap::from([("digest".to_string(), digest.to_string())]),
            ..self.engine.entry(&upstream, keys::cached_manifest(name, &digest).path)
        };
        self.engine.save(&key, &entry).await?;
        Ok(status)
    }

    /// Makes sure the manifest is cached (from `upstream`, or the first that has it): how it
    /// was served and by which upstream, or `None` when no upstream has it.
    async fn manifest_by_digest(&self, name: &str, digest: &Digest, upstream: Option<&Upstream>) -> std::result::Result<Option<(CacheStatus, String)>, Failures> {
        let key = keys::cached_manifest(name, digest);
        if let Ok(Some(meta)) = self.platform().store.head(&key).await {
            return Ok(Some((CacheStatus::Hit, meta.custom.get("upstream").cloned().unwrap_or_default())));
        }
        let candidates: Vec<Upstream> = match upstream {
            Some(u) => vec![u.clone()],
            None => self.engine.select(name).into_iter().cloned().collect(),
        };
        let mut failures = Vec::new();
        for u in &candidates {
            match self.fetch_manifest(name, u, digest.as_str(), Some(digest)).await {
                Ok(Some(_)) => return Ok(Some((CacheStatus::Miss, u.id.clone()))),
                Ok(None) => {}
                Err(e) => failures.push((u.id.clone(), e)),
            }
        }
        if failures.is_empty() {
            Ok(None)
        } else {
            Err(Failures(failures))
        }
    }

    /// GETs a manifest by tag or digest from one upstream, checks it against `expect` (or the
    /// digest the upstream announces), and stores it under its digest; `None` when the
    /// upstream does not have it.
    async fn fetch_manifest(&self, name: &str, u: &Upstream, reference: &str, expect: Option<&Digest>) -> std::result::Result<Option<Digest>, Failure> {
        let req = Self::request(u, Method::Get, name, &format!("manifests/{reference}"), MANIFEST_ACCEPT);
        let resp = match fetch_one(self.platform(), u, name, req).await {
            Outcome::Answer(r) if r.status == 200 => r,
            Outcome::Answer(r) | Outcome::Rejected(r) => return Err(Failure::Rejected(r.status)),
            Outcome::NotFound => return Ok(None),
            Outcome::Failed(e) => return Err(e),
        };
        let content_type = resp
            .headers
            .get("content-type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
            .unwrap_or_else(|| MANIFEST_MEDIA_TYPE.into());
        let announced = resp.headers.get("docker-content-digest").and_then(Digest::parse);
        let bytes = self.engine.read_body(u, resp.body, MAX_MANIFEST).await?;
        // Hashed in the algorithm of the digest it must match (sha256 when nothing says).
        let want = expect.or(announced.as_ref());
        let digest = want.map(|w| w.algorithm()).unwrap_or(super::names::Algorithm::Sha256).digest(&bytes);
        if let Some(want) = want {
            if *want != digest {
                return Err(Failure::ChecksumMismatch(format!("manifest digest mismatch: expected {want}, got {digest}")));
            }
        }
        let opts = PutOptions {
            content_type: Some(content_type),
            custom: BTreeMap::from([("upstream".to_string(), u.id.clone())]),
            checksum: Some(digest.checksum()),
            condition: None,
        };
        match self.platform().store.put(&keys::cached_manifest(name, &digest), Body::Bytes(bytes), opts).await {
            Ok(PutOutcome::Stored(_)) => Ok(Some(digest)),
            Ok(other) => Err(Failure::Store(format!("manifest refused by the cache: {other:?}"))),
            Err(e) => Err(Failure::Store(e.to_string())),
        }
    }

    async fn serve_tag(&self, req: &Request, name: &str, tag: &str, entry: &Entry, status: CacheStatus) -> Result<Response> {
        if entry.status != 200 {
            let e = MANIFEST_UNKNOWN.err(format!("manifest {name}:{tag} not found"));
            return Err(e.header("X-Cache", status.as_str()).header("X-Cache-Upstream", entry.upstream.clone()));
        }
        let digest = entry.extra.get("digest").and_then(|d| Digest::parse(d)).ok_or_else(|| Error::internal("tag entry without a digest"))?;
        self.serve_manifest(req, name, &digest, status, &entry.upstream).await
    }

    async fn serve_manifest(&self, req: &Request, name: &str, digest: &Digest, status: CacheStatus, upstream: &str) -> Result<Response> {
        let key = keys::cached_manifest(name, digest);
        let store = &self.platform().store;
        let found = if req.method == Method::Head {
            store.head(&key).await?.map(|m| (m, Body::Empty))
        } else {
            store.get(&key, None).await?.map(|o| (o.meta, o.body))
        };
        let (meta, body) = found.ok_or_else(|| MANIFEST_UNKNOWN.err(format!("manifest {name}@{digest} not found")))?;
        let mut r = manifest_response(&meta, digest);
        r.body = body;
        Ok(mark(r, status, upstream))
    }

    // ---- blobs ----

    pub async fn blob(&self, ctx: &Ctx<'_>, req: &Request, name: &str, digest: &Digest) -> Result<Response> {
        let store = self.platform().store.clone();
        let key = keys::cached_blob(digest);
        let link = keys::cached_link(name, digest);
        // A whole GET reads the bytes at once, beside the link: R2 answers a GET with the
        // object's size and metadata, so a hit costs one round trip and two reads, not a HEAD
        // before the GET. (HEAD and Range need the size first: RFC 9110 §14.1.2, 416.)
        if req.method == Method::Get && req.header("range").is_none() {
            let (obj, linked) = futures::join!(store.get(&key, None), store.head(&link));
            if let (Ok(Some(obj)), Ok(linked)) = (obj, linked) {
                if linked.is_some() || self.upstream_has_blob(name, digest).await {
                    // The storage hooks see the read they would see through `Storage::get`.
                    let hook = ctx.hook_meta(name, Some(digest));
                    ctx.storage.check(Operation::Get, &key, hook.clone()).await?;
                    if linked.is_none() {
                        let _ = store.put(&link, Body::Empty, PutOptions::default()).await;
                    }
                    ctx.storage.notify(Operation::Get, &key, HookMetadata { size: Some(obj.meta.size), ..hook }).await;
                    let upstream = obj.meta.custom.get("upstream").cloned().unwrap_or_default();
                    let mut r = blob_headers(digest, 200, obj.meta.size);
                    r.body = obj.body;
                    return Ok(mark(r, CacheStatus::Hit, &upstream));
                }
            }
        }
        let (meta, linked) = futures::join!(store.head(&key), store.head(&link));
        if let (Ok(Some(meta)), Ok(linked)) = (meta, linked) {
            let upstream = meta.custom.get("upstream").cloned().unwrap_or_default();
            // Cached through another repository: serve it here only if the upstream does.
            if linked.is_some() || self.upstream_has_blob(name, digest).await {
                if linked.is_none() {
                    let _ = store.put(&link, Body::Empty, PutOptions::default()).await;
                }
                return Ok(mark(blob_response(ctx, req, name, digest, &key, &meta).await?, CacheStatus::Hit, &upstream));
            }
        }
        let selected = self.engine.select(name);
        let tail = format!("blobs/{digest}");
        let method = if req.method == Method::Head { Method::Head } else { Method::Get };
        let fetched = fetch_first(self.platform(), &selected, name, |u| Some(Self::request(u, method, name, &tail, "*/*"))).await;
        let (upstream, resp) = match fetched {
            Fetched::Found { upstream, response } if response.status == 200 => (upstream, response),
            Fetched::Found { upstream, response } => return Err(OciAdapter.unavailable(&Failures::one(&upstream.id, Failure::Rejected(response.status)))),
            Fetched::NotFound => return Err(BLOB_UNKNOWN.err(format!("blob {digest} not found"))),
            Fetched::Unavailable(why) => return Err(OciAdapter.failed(&why)),
        };
        let length = resp.body.known_length().filter(|_| req.method != Method::Head).or_else(|| {
            resp.headers.get("content-length").and_then(|l| l.parse().ok())
        });
        let respond = |body: Body| {
            let mut r = Response::new(200)
                .with_header("Content-Type", key.kind.content_type)
                .with_header("Docker-Content-Digest", digest.to_string())
                .with_header("ETag", format!("\"{digest}\""))
                .with_header("Content-Encoding", "identity");
            if let Some(n) = length {
                r = r.with_header("Content-Length", n.to_string());
            }
            r.body = body;
            mark(r, CacheStatus::Miss, &upstream.id)
        };
        if req.method == Method::Head {
            return Ok(respond(Body::Empty));
        }
        let blob = Blob { key: key.path.clone(), checksum: Some(digest.checksum()), marker: Some(link.path), label: format!("{name}@{digest}") };
        match self.engine.keep_blob(&upstream, blob, key.kind.content_type, resp.body).await.map_err(|why| OciAdapter.failed(&why))? {
            Kept::Streaming { body, .. } => Ok(respond(body)),
            Kept::Stored(meta) => Ok(mark(blob_response(ctx, req, name, digest, &key, &meta).await?, CacheStatus::Miss, &upstream.id)),
        }
    }

    async fn upstream_has_blob(&self, name: &str, digest: &Digest) -> bool {
        let selected = self.engine.select(name);
        let tail = format!("blobs/{digest}");
        matches!(
            fetch_first(self.platform(), &selected, name, |u| Some(Self::request(u, Method::Head, name, &tail, "*/*"))).await,
            Fetched::Found { ref response, .. } if response.status == 200
        )
    }

    // ---- tags list ----

    /// The upstream's tag list, passed through (not cached), named as the client named it.
    pub async fn tags(&self, req: &Request, name: &str) -> Result<Response> {
        let selected = self.engine.select(name);
        let mut query = Vec::new();
        for k in ["n", "last"] {
            if let Some(v) = req.query_param(k) {
                query.push(format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)));
            }
        }
        let tail = if query.is_empty() { "tags/list".to_string() } else { format!("tags/list?{}", query.join("&")) };
        let (upstream, response) = match fetch_first(self.platform(), &selected, name, |u| Some(Self::request(u, Method::Get, name, &tail, "application/json"))).await {
            Fetched::Found { upstream, response } => (upstream, response),
            Fetched::NotFound => return Err(NAME_UNKNOWN.err(format!("repository {name} not known"))),
            Fetched::Unavailable(why) => return Err(OciAdapter.failed(&why)),
        };
        let failed = |f: Failure| OciAdapter.failed(&Failures::one(&upstream.id, f));
        let bytes = self.engine.read_body(&upstream, response.body, super::tag_list::MAX_UPSTREAM).await.map_err(failed)?;
        let body = super::tag_list::rewrite(&bytes, name).map_err(|e| failed(Failure::Invalid(format!("malformed tag list: {e}"))))?;
        drop(bytes);
        Ok(mark(Response::bytes(200, "application/json", body), CacheStatus::Miss, &upstream.id))
    }
}
