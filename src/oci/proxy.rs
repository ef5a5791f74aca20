//! OCI pull-through cache: repositories that are not hosted here are pulled from the
//! upstreams (`OCI_UPSTREAMS`) and kept in R2.
//!
//! * Blobs and manifests by digest are immutable: cached forever, verified against their
//!   digest (R2 checks a blob's sha256 on the way in while the client already receives it;
//!   the client's copy holds back its last chunk until R2 has accepted the bytes).
//! * Tags are mutable: a cache entry points at the manifest digest, renewed after its TTL
//!   with a HEAD (free of Docker Hub's pull rate limit), served stale while revalidating and
//!   when the upstream fails.
//! * Each repository has its own links to the cached blobs, so one repository's cached
//!   layers are never served through another that the upstream would not serve them from.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures::future::{FutureExt, LocalBoxFuture};

use super::names::{valid_tag, Digest};
use super::{error, manifest_response, serve_blob, Ctx, MANIFEST_MEDIA_TYPE, MAX_MANIFEST};
use crate::http::{Body, Headers, Method, Request, Response};
use crate::platform::{Platform, PutOptions, PutOutcome};
use crate::upstream::cache::{self, Entry};
use crate::upstream::client::{fetch_first, fetch_one, Fetched, Outcome, UpstreamRequest};
use crate::upstream::{cache_while_streaming, cached_document, mark, refresh_document, CacheStatus, DocumentError, ProtocolUpstreams, Upstream};

/// Every manifest type a client may meet; indexes first, so multi-arch images stay whole.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5";

mod keys {
    use super::Digest;

    pub fn manifest(repo: &str, d: &Digest) -> String {
        format!("oci/cache/manifests/{repo}/{}", d.key_part())
    }
    pub fn tag_entry(repo: &str, tag: &str) -> String {
        format!("oci/cache/tags/{repo}/{tag}.entry.json")
    }
    pub fn blob(d: &Digest) -> String {
        format!("oci/cache/blobs/{}/{}", d.algorithm().name(), d.hex())
    }
    pub fn link(repo: &str, d: &Digest) -> String {
        format!("oci/cache/links/{repo}/{}", d.key_part())
    }
}

/// Forgets what the cache kept for `repo` (its tags, manifests and blob links; the blobs
/// themselves are shared by digest and stay); returns how many objects went. Nested
/// repositories (`{repo}/…`) keep theirs.
pub async fn purge_repository(store: &dyn crate::platform::ObjectStore, repo: &str) -> crate::platform::StoreResult<usize> {
    let mut gone = 0;
    for kind in ["tags", "manifests", "links"] {
        let prefix = format!("oci/cache/{kind}/{repo}/");
        gone += cache::purge_where(store, &prefix, |rest| !rest.contains('/')).await?;
    }
    Ok(gone)
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    error(502, "UNAVAILABLE", format!("upstream unavailable: {e}"))
}

/// The proxy for one request: owned, so background work can carry it past the response.
#[derive(Clone)]
pub struct OciProxy {
    platform: Platform,
    upstreams: Rc<ProtocolUpstreams>,
}

impl OciProxy {
    pub fn new(platform: Platform, upstreams: Rc<ProtocolUpstreams>) -> OciProxy {
        OciProxy { platform, upstreams }
    }

    pub fn serves(&self, name: &str) -> bool {
        !self.upstreams.select(name).is_empty()
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

    fn by_id(&self, name: &str, id: &str) -> Option<Upstream> {
        self.upstreams.select(name).into_iter().find(|u| u.id == id).cloned()
    }

    // ---- manifests ----

    pub async fn manifest(&self, req: &Request, name: &str, reference: &str) -> Response {
        if let Some(digest) = Digest::parse(reference) {
            return match self.manifest_by_digest(name, &digest, None).await {
                Ok((status, upstream)) => self.serve_manifest(req, name, &digest, status, &upstream).await,
                Err(r) => r,
            };
        }
        if !valid_tag(reference) {
            return error(400, "TAG_INVALID", format!("invalid tag {reference:?}"));
        }
        let policy = |entry: &Entry| self.by_id(name, &entry.upstream).map(|u| u.cache).unwrap_or_default();
        let refresh = || self.refresh_collapsed(name, reference);
        match cached_document(&self.platform, &keys::tag_entry(name, reference), policy, refresh).await {
            Ok((entry, status)) => self.serve_tag(req, name, reference, &entry, status).await,
            Err(DocumentError::Store(e)) => unavailable(e),
            Err(DocumentError::Upstream { error: e, stale: Some(entry) }) => {
                crate::logging::log("warn", &format!("serving stale {name}:{reference}: {e}"));
                self.serve_tag(req, name, reference, &entry, CacheStatus::Stale).await
            }
            Err(DocumentError::Upstream { error: e, stale: None }) => unavailable(e),
        }
    }

    /// Refreshes `name:tag`, collapsed with concurrent refreshes of it.
    fn refresh_collapsed(&self, name: &str, tag: &str) -> LocalBoxFuture<'static, cache::Refresh> {
        let (this, n, t) = (self.clone(), name.to_string(), tag.to_string());
        let work = async move { this.refresh_tag(&n, &t).await }.boxed_local();
        refresh_document(&self.platform, keys::tag_entry(name, tag), ("oci", name.to_string(), tag.to_string()), work)
    }

    /// HEAD the tag upstream; fetch the manifest by digest only when it moved.
    async fn refresh_tag(&self, name: &str, tag: &str) -> cache::Refresh {
        let store = self.platform.store.clone();
        let key = keys::tag_entry(name, tag);
        let old = cache::load(&*store, &key).await.ok().flatten().filter(|e| e.status == 200);
        let selected = self.upstreams.select(name);
        let tail = format!("manifests/{tag}");
        let fetched = fetch_first(&self.platform, &selected, name, |u| Some(Self::request(u, Method::Head, name, &tail, MANIFEST_ACCEPT))).await;
        let now = self.platform.now_ms();
        let (upstream, head) = match fetched {
            Fetched::Found { upstream, response } => (upstream, response),
            Fetched::NotFound => {
                let entry = Entry::absent(selected.first().copied(), now);
                cache::save(&*store, &key, &entry).await.map_err(|e| e.to_string())?;
                return Ok(CacheStatus::Miss);
            }
            Fetched::Unavailable(e) => return Err(e),
        };
        let announced = head.headers.get("docker-content-digest").and_then(Digest::parse);
        let unchanged = announced.as_ref().is_some_and(|d| old.as_ref().and_then(|o| o.extra.get("digest")) == Some(&d.to_string()));
        let (digest, status) = match announced {
            Some(d) if unchanged => (d, CacheStatus::Revalidated),
            Some(d) => {
                self.manifest_by_digest(name, &d, Some(&upstream)).await.map_err(|r| format!("manifest {d}: status {}", r.status))?;
                (d, CacheStatus::Miss)
            }
            // No digest on the HEAD: GET the tag and hash what came.
            None => (self.fetch_manifest(name, &upstream, tag, None).await?, CacheStatus::Miss),
        };
        let entry = Entry {
            status: 200,
            data_key: Some(keys::manifest(name, &digest)),
            upstream: upstream.id.clone(),
            fetched_ms: now,
            expires_ms: now + upstream.cache.default_ttl_seconds as f64 * 1000.0,
            etag: None,
            last_modified: None,
            content_type: None,
            size: 0,
            extra: BTreeMap::from([("digest".to_string(), digest.to_string())]),
        };
        cache::save(&*store, &key, &entry).await.map_err(|e| e.to_string())?;
        Ok(status)
    }

    /// Makes sure the manifest is cached (from `upstream`, or the first that has it).
    async fn manifest_by_digest(&self, name: &str, digest: &Digest, upstream: Option<&Upstream>) -> Result<(CacheStatus, String), Response> {
        let key = keys::manifest(name, digest);
        if let Ok(Some(meta)) = self.platform.store.head(&key).await {
            return Ok((CacheStatus::Hit, meta.custom.get("upstream").cloned().unwrap_or_default()));
        }
        let candidates: Vec<Upstream> = match upstream {
            Some(u) => vec![u.clone()],
            None => self.upstreams.select(name).into_iter().cloned().collect(),
        };
        let mut failures = Vec::new();
        for u in &candidates {
            match self.fetch_manifest(name, u, digest.as_str(), Some(digest)).await {
                Ok(_) => return Ok((CacheStatus::Miss, u.id.clone())),
                Err(e) if e == "not found" => {}
                Err(e) => failures.push(format!("{}: {e}", u.id)),
            }
        }
        if failures.is_empty() {
            Err(error(404, "MANIFEST_UNKNOWN", format!("manifest {name}@{digest} not found")))
        } else {
            Err(unavailable(failures.join("; ")))
        }
    }

    /// GETs a manifest by tag or digest from one upstream, checks it against `expect` (or the
    /// digest the upstream announces), and stores it under its digest.
    async fn fetch_manifest(&self, name: &str, u: &Upstream, reference: &str, expect: Option<&Digest>) -> Result<Digest, String> {
        let req = Self::request(u, Method::Get, name, &format!("manifests/{reference}"), MANIFEST_ACCEPT);
        let resp = match fetch_one(&self.platform, u, name, req).await {
            Outcome::Answer(r) if r.status == 200 => r,
            Outcome::Answer(r) => return Err(format!("status {}", r.status)),
            Outcome::NotFound => return Err("not found".into()),
            Outcome::Failed(e) => return Err(e),
        };
        let content_type = resp
            .headers
            .get("content-type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
            .unwrap_or_else(|| MANIFEST_MEDIA_TYPE.into());
        let announced = resp.headers.get("docker-content-digest").and_then(Digest::parse);
        let bytes = resp.body.read_capped(MAX_MANIFEST).await.map_err(|e| e.to_string())?;
        // Hashed in the algorithm of the digest it must match (sha256 when nothing says).
        let want = expect.or(announced.as_ref());
        let digest = want.map(|w| w.algorithm()).unwrap_or(super::names::Algorithm::Sha256).digest(&bytes);
        if let Some(want) = want {
            if *want != digest {
                return Err(format!("manifest digest mismatch: expected {want}, got {digest}"));
            }
        }
        let opts = PutOptions {
            content_type: Some(content_type),
            custom: BTreeMap::from([("upstream".to_string(), u.id.clone())]),
            checksum: Some(digest.checksum()),
            condition: None,
        };
        match self.platform.store.put(&keys::manifest(name, &digest), Body::Bytes(bytes), opts).await {
            Ok(PutOutcome::Stored(_)) => Ok(digest),
            Ok(other) => Err(format!("manifest refused by the cache: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn serve_tag(&self, req: &Request, name: &str, tag: &str, entry: &Entry, status: CacheStatus) -> Response {
        if entry.status != 200 {
            return mark(error(404, "MANIFEST_UNKNOWN", format!("manifest {name}:{tag} not found")), status, &entry.upstream);
        }
        let Some(digest) = entry.extra.get("digest").and_then(|d| Digest::parse(d)) else {
            return super::internal("tag entry without a digest");
        };
        self.serve_manifest(req, name, &digest, status, &entry.upstream).await
    }

    async fn serve_manifest(&self, req: &Request, name: &str, digest: &Digest, status: CacheStatus, upstream: &str) -> Response {
        let key = keys::manifest(name, digest);
        let found = if req.method == Method::Head {
            self.platform.store.head(&key).await.map(|m| m.map(|m| (m, Body::Empty)))
        } else {
            self.platform.store.get(&key, None).await.map(|o| o.map(|o| (o.meta, o.body)))
        };
        let (meta, body) = match found {
            Ok(Some(f)) => f,
            Ok(None) => return error(404, "MANIFEST_UNKNOWN", format!("manifest {name}@{digest} not found")),
            Err(e) => return super::internal(e),
        };
        let mut r = manifest_response(&meta, digest);
        r.body = body;
        mark(r, status, upstream)
    }

    // ---- blobs ----

    pub async fn blob(&self, ctx: &Ctx<'_>, req: &Request, name: &str, digest: &Digest) -> Response {
        let store = self.platform.store.clone();
        let key = keys::blob(digest);
        let link = keys::link(name, digest);
        let (meta, linked) = futures::join!(store.head(&key), store.head(&link));
        if let (Ok(Some(meta)), Ok(linked)) = (meta, linked) {
            let upstream = meta.custom.get("upstream").cloned().unwrap_or_default();
            // Cached through another repository: serve it here only if the upstream does.
            if linked.is_some() || self.upstream_has_blob(name, digest).await {
                if linked.is_none() {
                    let _ = store.put(&link, Body::Empty, PutOptions::default()).await;
                }
                return mark(serve_blob(ctx, req, name, digest, &key, &meta).await, CacheStatus::Hit, &upstream);
            }
        }
        let selected = self.upstreams.select(name);
        let tail = format!("blobs/{digest}");
        let method = if req.method == Method::Head { Method::Head } else { Method::Get };
        let fetched = fetch_first(&self.platform, &selected, name, |u| Some(Self::request(u, method, name, &tail, "*/*"))).await;
        let (upstream, resp) = match fetched {
            Fetched::Found { upstream, response } if response.status == 200 => (upstream, response),
            Fetched::Found { response, .. } => return unavailable(format!("status {}", response.status)),
            Fetched::NotFound => return error(404, "BLOB_UNKNOWN", format!("blob {digest} not found")),
            Fetched::Unavailable(e) => return unavailable(e),
        };
        let length = resp.body.known_length().filter(|_| req.method != Method::Head).or_else(|| {
            resp.headers.get("content-length").and_then(|l| l.parse().ok())
        });
        let respond = |body: Body| {
            let mut r = Response::new(200)
                .with_header("Content-Type", "application/octet-stream")
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
            return respond(Body::Empty);
        }
        let opts = PutOptions {
            content_type: Some("application/octet-stream".into()),
            custom: BTreeMap::from([
                ("upstream".to_string(), upstream.id.clone()),
                ("fetched".to_string(), crate::util::iso8601(self.platform.now_ms())),
            ]),
            checksum: Some(digest.checksum()),
            condition: None,
        };
        match resp.body {
            Body::Stream(s) if s.length().is_some() => {
                let gated = cache_while_streaming(&self.platform, key, s, opts, Some(link), format!("{name}@{digest}"));
                respond(Body::Stream(gated))
            }
            Body::Stream(s) => {
                // No length: R2 cannot take it as it comes; pass it on uncached.
                crate::logging::log("warn", &format!("{name}@{digest}: upstream sent no length; not cached"));
                respond(Body::Stream(s))
            }
            // Bytes already in memory (the in-memory platform): store first, answer only with
            // what was verified.
            body => {
                let bytes = match body.read_capped(u64::MAX).await {
                    Ok(b) => b,
                    Err(e) => return unavailable(e),
                };
                match store.put(&key, Body::Bytes(bytes), opts).await {
                    Ok(PutOutcome::Stored(meta)) => {
                        let _ = store.put(&link, Body::Empty, PutOptions::default()).await;
                        mark(serve_blob(ctx, req, name, digest, &key, &meta).await, CacheStatus::Miss, &upstream.id)
                    }
                    Ok(PutOutcome::ChecksumMismatch) => error(502, "DIGEST_INVALID", format!("blob {digest} from {} failed verification", upstream.id)),
                    Ok(PutOutcome::ConditionFailed) => super::internal("unexpected write condition"),
                    Err(e) => super::internal(e),
                }
            }
        }
    }

    async fn upstream_has_blob(&self, name: &str, digest: &Digest) -> bool {
        let selected = self.upstreams.select(name);
        let tail = format!("blobs/{digest}");
        matches!(
            fetch_first(&self.platform, &selected, name, |u| Some(Self::request(u, Method::Head, name, &tail, "*/*"))).await,
            Fetched::Found { ref response, .. } if response.status == 200
        )
    }

    // ---- tags list ----

    /// The upstream's tag list, passed through (not cached), named as the client named it.
    pub async fn tags(&self, req: &Request, name: &str) -> Response {
        let selected = self.upstreams.select(name);
        let mut query = Vec::new();
        for k in ["n", "last"] {
            if let Some(v) = req.query_param(k) {
                query.push(format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)));
            }
        }
        let tail = if query.is_empty() { "tags/list".to_string() } else { format!("tags/list?{}", query.join("&")) };
        match fetch_first(&self.platform, &selected, name, |u| Some(Self::request(u, Method::Get, name, &tail, "application/json"))).await {
            Fetched::Found { upstream, response } => {
                let bytes = match response.body.read_capped(MAX_TAG_LIST).await {
                    Ok(b) => b,
                    Err(e) => return unavailable(e),
                };
                match tag_list(&bytes, name) {
                    Ok(body) => {
                        drop(bytes);
                        mark(Response::bytes(200, "application/json", body), CacheStatus::Miss, &upstream.id)
                    }
                    Err(e) => unavailable(format!("malformed tag list: {e}")),
                }
            }
            Fetched::NotFound => error(404, "NAME_UNKNOWN", format!("repository {name} not known")),
            Fetched::Unavailable(e) => unavailable(e),
        }
    }
}

/// The largest upstream tag list passed on (it is held twice: as read and as rewritten).
pub const MAX_TAG_LIST: u64 = 8 * 1024 * 1024;

/// An upstream's tag list (`{"name": …, "tags": [...]}`, distribution spec "Listing Tags") as
/// this registry answers it: named as the client named the repository, with the tags that are
/// valid tags. Anything else upstream (an array, tags that are not strings) is an error, not a
/// panic; the tags are copied as they are read, never held as a tree.
pub fn tag_list(bytes: &[u8], name: &str) -> Result<Vec<u8>, String> {
    use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;
    use std::fmt;

    /// Appends each valid tag to the output as a JSON string.
    struct Tags<'o>(&'o mut Vec<u8>);
    impl<'de> DeserializeSeed<'de> for Tags<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Tags<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of tags")
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(()) // `"tags": null`: none
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(tag) = seq.next_element::<Cow<'de, str>>()? {
                if !valid_tag(&tag) {
                    continue;
                }
                if self.0.last() != Some(&b'[') {
                    self.0.push(b',');
                }
                // A valid tag needs no escaping.
                self.0.push(b'"');
                self.0.extend_from_slice(tag.as_bytes());
                self.0.push(b'"');
            }
            Ok(())
        }
    }

    struct List<'o>(&'o mut Vec<u8>);
    impl<'de> Visitor<'de> for List<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a tag list object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = false;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == "tags" && !seen {
                    seen = true;
                    map.next_value_seed(Tags(&mut *self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    let mut out = serde_json::to_vec(&serde_json::json!({ "name": name })).map_err(|e| e.to_string())?;
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"tags\":[");
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_map(List(&mut out)).map_err(|e| super::manifest::excerpt(&e.to_string(), 200))?;
    de.end().map_err(|e| e.to_string())?;
    out.extend_from_slice(b"]}");
    Ok(out)
}
