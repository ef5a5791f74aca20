//! PyPI pull-through cache: project pages and files of projects that are not hosted here come
//! from the upstreams (`PYPI_UPSTREAMS`) and are kept in R2, by the engine in
//! `crate::upstream::engine`. This adapter declares PyPI's part:
//!
//! * **Project pages** are documents: asked for with a PEP 691 `Accept` that prefers JSON
//!   (pypi.org and devpi answer JSON, pypiserver HTML), revalidated with the upstream's
//!   ETag / Last-Modified, and normalised once, as they stream into the cache, to PEP 691
//!   JSON whose file URLs point here (`rewrite::PageRewriter`). JSON clients get that copy
//!   as R2 streams it; HTML clients get it rendered to PEP 503 as it streams out
//!   (`rewrite::Renderer`). One copy per project, constant memory either way.
//! * **Files** are blobs under stateless URLs:
//!   `{registry}/files/{project}/{sha256|-}/{metadata sha256|u|-}/{base64url(upstream URL)}/{filename}`.
//!   Nothing needs to be looked up to serve one: the handler decodes the upstream URL,
//!   refuses it unless its origin is one of the upstream's (its index origin, its `filesUrl`,
//!   pypi.org's `https://files.pythonhosted.org`), and keeps the file under a
//!   content-addressed key, verified against the sha256 from the path on its way into R2
//!   (a flipped byte is neither cached nor delivered whole). `{file URL}.metadata` is the
//!   PEP 658 file, verified against the metadata sha256 the same way. A file (or metadata
//!   file) the upstream listed without a sha256 is passed through unverified and not cached.
//!   Credentials of an upstream go only to its own origin (the engine's client), never to
//!   its files origin; and a file on an upstream's own origin is fetched with its
//!   credentials only when the project's cached page lists that very link (one streaming
//!   pass over the page), so a forged link cannot make this registry read other paths of
//!   that origin with them.
//! * **Hosted first**: a project hosted here is never served from an upstream, neither its
//!   page nor any file URL naming it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine as _;
use futures::future::{FutureExt, LocalBoxFuture};
use futures::StreamExt;

use super::rewrite::{last_segment, Event, FileEntry, JsonScanner, PageRewriter, Relink, Renderer, Scanner};
use crate::config::Protocol;
use crate::error::{Error, Result};
use crate::http::{Body, BodyError, Headers, Method, PlatformStream, Request, Response};
use crate::platform::Checksum;
use crate::router::App;
use crate::storage::key::{self, Key};
use crate::upstream::cache::{self, Entry};
use crate::upstream::client::{Failures, UpstreamRequest};
use crate::upstream::engine::{resolve, Adapter, Blob, DocumentError, Fetched, NewCopy, Refresh, Resolved};
use crate::upstream::config::UpstreamAuth;
use crate::upstream::{mark, CacheStatus, Engine, ProtocolUpstreams, ResolveContext, Upstream};

/// PEP 691's JSON media type: what the cached copy is.
pub const JSON_MEDIA_TYPE: &str = "application/vnd.pypi.simple.v1+json";
/// PEP 691: JSON preferred, HTML accepted (pypiserver serves only `text/html`).
const UPSTREAM_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
/// The largest upstream page kept (pypi.org's biggest are tens of MB).
const MAX_PAGE: u64 = 1 << 30;
/// The `pypi` preset's files origin: pypi.org lists files on files.pythonhosted.org.
pub const PYPI_ORG: (&str, &str) = ("https://pypi.org", "https://files.pythonhosted.org");

/// Everything under which a project's cached page lives (files are content-addressed and
/// shared by every project: purges leave them).
pub fn cache_prefix(project: &str) -> String {
    format!("pypi/cache/projects/{project}/")
}

fn entry_key(project: &str) -> String {
    format!("{}page.entry.json", cache_prefix(project))
}

/// Where a file (or metadata file) of this sha256 is kept, whichever project listed it.
pub fn file_key(sha256_hex: &str) -> Key {
    Key::new(format!("pypi/cache/files/sha256/{sha256_hex}"), key::ARTIFACT)
}

/// A PEP 503 normalised project name: lowercase letters, digits and single inner dashes.
pub fn is_normalized(project: &str) -> bool {
    !project.is_empty()
        && project.len() <= 200
        && project.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !project.starts_with('-')
        && !project.ends_with('-')
        && !project.contains("--")
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// The origins an upstream's files may be fetched from: its own, its `filesUrl`'s, and for
/// pypi.org, files.pythonhosted.org.
pub fn file_origins(u: &Upstream) -> Vec<String> {
    let mut origins = vec![u.origin().to_ascii_lowercase()];
    if let Some(f) = &u.files_url {
        origins.push(crate::upstream::config::origin_of(f).to_ascii_lowercase());
    }
    if u.origin() == PYPI_ORG.0 {
        origins.push(PYPI_ORG.1.to_string());
    }
    origins
}

/// The origin (`scheme://host[:port]`, RFC 6454) of a parsed URL, as `Upstream::origin`
/// writes it.
fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// Forgets the cached page of `project` (normalised): its first hosted upload calls this.
pub async fn purge_for_hosted(store: &dyn crate::platform::ObjectStore, project: &str) -> crate::platform::StoreResult<usize> {
    crate::upstream::engine::purge_for_hosted(store, "pypi", project, &cache_prefix(project)).await
}

/// `DELETE /-/admin/cache/pypi/{name}`: forgets the project's cached page (and its entry);
/// files stay, being content-addressed and shared. The number of objects removed.
pub async fn purge_cache(app: &App, name: &str) -> Result<usize> {
    let project = super::filename::normalize(name);
    if !is_normalized(&project) {
        return Err(Error::invalid(format!("invalid project name: {name:?}")));
    }
    Ok(cache::purge(&*app.platform.store, &cache_prefix(&project)).await?)
}

/// PyPI's wording of the engine's failures.
struct PypiAdapter;

impl Adapter for PypiAdapter {
    fn not_found(&self, what: &str) -> Error {
        Error::not_found(format!("Not Found: {what}"))
    }

    fn unavailable(&self, why: &Failures) -> Error {
        Error::upstream(format!("upstream unavailable: {why}"))
    }

    fn corrupt(&self, why: &Failures) -> Error {
        Error::upstream(why.to_string())
    }
}

/// The upstreams that may serve `project` for this request (the provider's, by scope rules).
async fn upstreams(app: &App, req: &Request, project: &str, resource_type: &str) -> Option<Rc<ProtocolUpstreams>> {
    let ctx = ResolveContext { protocol: Protocol::Pypi, resource: project, resource_type, actor: &req.actor };
    app.upstreams.resolve(&ctx).await
}

/// `GET {registry}/simple/{project}/` for a project that is not hosted here: the page from
/// the pull-through cache in `media_type` (the negotiated PEP 691 type: JSON when it ends in
/// `+json`, else HTML under that type). `None` when the project is hosted (`is_hosted`,
/// asked only when an upstream may serve it) or no upstream may serve it: the hosted
/// handlers answer then. `registry_url` is the protocol's base URL (`…/pypi`).
pub async fn project_page(
    app: &App,
    req: &Request,
    registry_url: &str,
    project: &str,
    media_type: &str,
    is_hosted: impl AsyncFnOnce(&str) -> Result<bool>,
) -> Result<Option<Response>> {
    if !is_normalized(project) {
        return Err(Error::invalid(format!("not a normalised project name: {project:?}")));
    }
    let found = upstreams(app, req, project, "project").await;
    let proxy = |engine| PypiProxy { engine, registry_url: registry_url.trim_end_matches('/').to_string() };
    match resolve(&app.platform, found, project, is_hosted(project), proxy).await? {
        Resolved::Proxied(p) => p.page(req, project, media_type).await.map(Some),
        Resolved::Hosted | Resolved::Absent => Ok(None),
    }
}

/// `GET|HEAD {registry}/files/{rest}`: a file (or its `.metadata`) of a project that is not
/// hosted here, from the cache or its upstream. `rest` is the path after `/files/`, as the
/// rewritten pages give it.
pub async fn file(app: &App, req: &Request, rest: &str, is_hosted: impl AsyncFnOnce(&str) -> Result<bool>) -> Result<Response> {
    let link = FileLink::parse(rest)?;
    let found = upstreams(app, req, &link.project, "file").await;
    let origin = origin(&link.url);
    let refused = || Error::denied(format!("{} is not a file origin of an upstream of {}", origin, link.project));
    let Some(upstreams) = found else { return Err(PypiAdapter.not_found(&link.filename)) };
    let engine = Engine::new(app.platform.clone(), upstreams);
    let upstream = engine.select(&link.project).into_iter().find(|u| file_origins(u).contains(&origin)).cloned().ok_or_else(refused)?;
    if is_hosted(&link.project).await? {
        return Err(PypiAdapter.not_found(&link.filename));
    }
    let proxy = PypiProxy { engine, registry_url: String::new() };
    // A request carrying the upstream's credentials goes only to what its page listed: a
    // forged link must not make this registry fetch other paths of that origin with them.
    let credentialed = upstream.auth != UpstreamAuth::None && origin == upstream.origin().to_ascii_lowercase();
    let file_path = rest.trim_start_matches('/');
    let file_path = if link.metadata { file_path.strip_suffix(".metadata").unwrap_or(file_path) } else { file_path };
    if credentialed && !proxy.listed(&link.project, &format!("/files/{file_path}")).await {
        return Err(PypiAdapter.not_found(&link.filename));
    }
    proxy.fetch_file(req, &link, &upstream).await
}

/// A proxied file URL, decoded.
struct FileLink {
    project: String,
    /// The sha256 the page gave for what is asked (the file, or its metadata file).
    sha256: Option<String>,
    /// The upstream URL of what is asked.
    url: url::Url,
    filename: String,
    metadata: bool,
}

impl FileLink {
    fn parse(rest: &str) -> Result<FileLink> {
        let bad = |why: &str| Error::not_found(format!("Not Found: {why}"));
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let [project, sha, meta, encoded, filename] = parts.as_slice() else { return Err(bad("no such file")) };
        if !is_normalized(project) {
            return Err(bad("invalid project name"));
        }
        let hash = |s: &str, none: &[&str]| -> Result<Option<String>> {
            match s {
                s if is_sha256_hex(s) => Ok(Some(s.to_string())),
                s if none.contains(&s) => Ok(None),
                _ => Err(bad("invalid hash")),
            }
        };
        let file_sha = hash(sha, &["-"])?;
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).map_err(|_| bad("invalid link"))?;
        let text = String::from_utf8(decoded).map_err(|_| bad("invalid link"))?;
        let file_url = url::Url::parse(&text).map_err(|_| bad("invalid link"))?;
        if !matches!(file_url.scheme(), "http" | "https") {
            return Err(bad("invalid link"));
        }
        let name = percent_encoding::percent_decode_str(filename).decode_utf8().map_err(|_| bad("invalid file name"))?.into_owned();
        let upstream_name = last_segment(file_url.as_str());
        if name == upstream_name {
            return Ok(FileLink { project: project.to_string(), sha256: file_sha, url: file_url, filename: name, metadata: false });
        }
        // PEP 658: the metadata file is at the file's URL with `.metadata` appended.
        if name.strip_suffix(".metadata") == Some(upstream_name.as_str()) && *meta != "-" {
            let sha256 = hash(meta, &["u"])?;
            let meta_url = url::Url::parse(&format!("{}.metadata", file_url.as_str().split('#').next().unwrap_or_default())).map_err(|_| bad("invalid link"))?;
            return Ok(FileLink { project: project.to_string(), sha256, url: meta_url, filename: name, metadata: true });
        }
        Err(bad("no such file"))
    }

    fn content_type(&self) -> &'static str {
        if self.metadata {
            "text/plain; charset=utf-8"
        } else {
            key::ARTIFACT.content_type
        }
    }
}

/// The proxy for one request: owned, so background work can carry it past the response.
#[derive(Clone)]
struct PypiProxy {
    engine: Engine,
    registry_url: String,
}

/// The URL this registry (at `registry_url`, the protocol's base URL) serves a file of
/// `project` at, given its entry from the upstream's page with an absolute `url`; `None`
/// for a link that cannot be one (not http(s), or a file name that is not the URL's last
/// segment, which the file handler checks).
pub fn file_url(registry_url: &str, project: &str, f: &FileEntry) -> Option<String> {
    let mut absolute = url::Url::parse(&f.url).ok()?;
    absolute.set_fragment(None);
    let safe_name = !f.filename.is_empty() && f.filename != "." && f.filename != ".." && !f.filename.contains(['/', '\\']) && !f.filename.chars().any(char::is_control);
    if !safe_name || !matches!(absolute.scheme(), "http" | "https") || last_segment(absolute.as_str()) != f.filename {
        return None;
    }
    let sha = f.hashes.get("sha256").map(|h| h.to_ascii_lowercase()).filter(|h| is_sha256_hex(h)).unwrap_or_else(|| "-".into());
    let meta = match f.metadata() {
        None => "-".to_string(),
        Some(m) => m.sha256().map(str::to_ascii_lowercase).filter(|h| is_sha256_hex(h)).unwrap_or_else(|| "u".into()),
    };
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(absolute.as_str());
    let name = percent_encoding::utf8_percent_encode(&f.filename, FILENAME);
    Some(format!("{}/files/{project}/{sha}/{meta}/{encoded}/{name}", registry_url.trim_end_matches('/')))
}

/// Points each file of an upstream page (fetched from `page_url`) at this registry; drops
/// links that cannot be served (see [`file_url`]).
fn relink_to_registry(registry_url: &str, project: &str, page_url: &str) -> Relink {
    let (registry_url, project) = (registry_url.to_string(), project.to_string());
    let base = url::Url::parse(page_url).ok();
    Box::new(move |f: &mut FileEntry| {
        // PEP 691 and PEP 503 links may be relative to the page.
        let absolute = match &base {
            Some(b) => b.join(&f.url),
            None => url::Url::parse(&f.url),
        };
        let Ok(absolute) = absolute else { return false };
        f.url = absolute.to_string();
        // Only an advertised metadata file is kept, under both PEP 714 names.
        let metadata = f.metadata().cloned();
        f.set_metadata(metadata);
        match file_url(&registry_url, &project, f) {
            Some(url) => {
                f.url = url;
                true
            }
            None => false,
        }
    })
}

/// Characters left as they are in a file name in a URL path (RFC 3986 unreserved, and `+`
/// and `!`, which distributions use).
const FILENAME: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'+').remove(b'!');

/// Moves file URLs of a copy cached for registry URL `old` to `new`.
fn relink_between(old: &str, new: &str) -> Relink {
    let (old, new) = (format!("{}/", old.trim_end_matches('/')), format!("{}/", new.trim_end_matches('/')));
    Box::new(move |f: &mut FileEntry| {
        if let Some(rest) = f.url.strip_prefix(&old) {
            f.url = format!("{new}{rest}");
        }
        true
    })
}

impl PypiProxy {
    async fn page(&self, req: &Request, project: &str, media_type: &str) -> Result<Response> {
        let refresh = |known| self.refresh_collapsed(project, known);
        match self.engine.document(&entry_key(project), project, || async { None }, refresh).await {
            Ok(doc) => {
                let resp = self.serve_page(req, project, media_type, &doc.entry, doc.status, true).await?;
                // An upload of the project here (its hosted record) ends the mirrored answer.
                let hosted = super::names::ProjectName::parse(project).map(|n| super::names::keys::project(&n).to_string());
                Ok(resp.with_edge(doc.edge_hint(self.engine.platform.now_ms(), hosted.into_iter().collect())))
            }
            Err(DocumentError::Store(e)) => Err(Error::internal(format!("pypi proxy: cache storage failed for {project}: {e}"))),
            Err(DocumentError::Upstream(why)) => Err(PypiAdapter.failed(&why)),
        }
    }

    /// Refreshes the page of `project`, collapsed with concurrent refreshes of it.
    fn refresh_collapsed(&self, project: &str, known: Option<Entry>) -> LocalBoxFuture<'static, Refresh> {
        let (this, p) = (self.clone(), project.to_string());
        let work = async move { this.refresh(&p, known).await }.boxed_local();
        self.engine.refresh(&entry_key(project), ("pypi", project.to_string(), "page".to_string()), work)
    }

    /// Asks the upstreams for the page (conditionally when the cached copy came from the
    /// same one); a new copy is normalised on its way into the store.
    async fn refresh(&self, project: &str, known: Option<Entry>) -> Refresh {
        // The upstream that answers is the one whose request was built last (they are asked
        // in turn): its page URL resolves relative links.
        let page_url = RefCell::new(String::new());
        let request = |u: &Upstream| {
            let url = format!("{}/{project}/", u.url);
            *page_url.borrow_mut() = url.clone();
            let mut headers = Headers::new();
            headers.set("Accept", UPSTREAM_ACCEPT);
            UpstreamRequest { method: Method::Get, url, headers, body: None }
        };
        let data_prefix = format!("{}page", cache_prefix(project));
        let storing = (data_prefix.as_str(), JSON_MEDIA_TYPE, MAX_PAGE);
        let rewriter = || {
            let url = page_url.borrow().clone();
            PageRewriter::new(project, &url, relink_to_registry(&self.registry_url, project, &url))
        };
        let key = entry_key(project);
        let NewCopy { entry, old, output, .. } = match self.engine.fetch_document(&key, project, known, request, storing, rewriter).await? {
            Fetched::Revalidated => return Ok(CacheStatus::Revalidated),
            Fetched::Absent => return Ok(CacheStatus::Miss),
            Fetched::Stored(copy) => *copy,
        };
        let extra = BTreeMap::from([("base".to_string(), self.registry_url.clone()), ("source".to_string(), output.source.to_string())]);
        self.engine.replace(&key, &Entry { extra, ..entry }, old).await?;
        Ok(CacheStatus::Miss)
    }

    async fn serve_page(&self, req: &Request, project: &str, media_type: &str, entry: &Entry, status: CacheStatus, retry: bool) -> Result<Response> {
        let now = self.engine.platform.now_ms();
        let marked = |r: Response| {
            mark(r, status, &entry.upstream)
                .with_header("Age", entry.age_seconds(now).to_string())
                .with_header("Vary", "Accept")
                .with_header("Cache-Control", key::cache_control::REVALIDATE)
        };
        if entry.status != 200 {
            return Err(PypiAdapter.not_found(project).header("X-Cache", status.as_str()).header("X-Cache-Upstream", entry.upstream.clone()));
        }
        let Some(data_key) = &entry.data_key else { return Err(Error::internal("cache entry without data")) };
        let json = media_type.ends_with("+json");
        // Our own validator: the stored copy, the URL it is written for, and the format.
        let etag = format!("\"{}\"", crate::util::sha256_hex(format!("{data_key} {} {media_type}", self.registry_url).as_bytes()));
        if req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag)) {
            return Ok(marked(Response::new(304).with_header("ETag", etag)));
        }
        let Some(obj) = self.engine.platform.store.get(data_key, None).await? else {
            // Replaced by a refresh in between: serve the new copy.
            return match cache::load(&*self.engine.platform.store, &entry_key(project)).await {
                Ok(Some(e)) if retry && e.data_key != entry.data_key => Box::pin(self.serve_page(req, project, media_type, &e, status, false)).await,
                _ => Err(Error::upstream("cached page missing")),
            };
        };
        let mut resp = Response::new(200).with_header("Content-Type", media_type).with_header("ETag", etag);
        let base = entry.extra.get("base").map(String::as_str).unwrap_or_default();
        if json && base == self.registry_url {
            // The usual case: R2's stream goes out untouched.
            resp.body = obj.body;
        } else {
            let renderer = Rc::new(RefCell::new(Renderer::new(project, json, relink_between(base, &self.registry_url))));
            let last = renderer.clone();
            let rendered = obj
                .body
                .into_chunks()
                .map(move |chunk| {
                    let mut out = Vec::new();
                    renderer.borrow_mut().feed(&chunk?, &mut out).map_err(BodyError::Io)?;
                    Ok(out)
                })
                .chain(futures::stream::once(async move {
                    let mut out = Vec::new();
                    last.borrow_mut().finish(&mut out).map_err(BodyError::Io)?;
                    Ok(out)
                }))
                .boxed_local();
            resp.body = Body::Stream(PlatformStream::from_chunks(rendered).await.map_err(Error::internal)?);
        }
        Ok(marked(resp))
    }

    /// Whether the cached page of `project` links to a URL ending in `path` (one pass over
    /// the page, one entry at a time).
    async fn listed(&self, project: &str, path: &str) -> bool {
        let store = &self.engine.platform.store;
        let Some(data_key) = cache::load(&**store, &entry_key(project)).await.ok().flatten().and_then(|e| e.data_key) else { return false };
        let Ok(Some(obj)) = store.get(&data_key, None).await else { return false };
        let (mut scanner, mut events) = (JsonScanner::new(), Vec::new());
        let mut chunks = obj.body.into_chunks();
        while let Some(Ok(chunk)) = chunks.next().await {
            if scanner.feed(&chunk, &mut events).is_err() {
                return false;
            }
            if events.drain(..).any(|e| matches!(e, Event::File(f) if f.url.ends_with(path))) {
                return true;
            }
        }
        false
    }

    /// A file from the cache, or from `upstream` verified into the cache on the way.
    async fn fetch_file(&self, req: &Request, link: &FileLink, upstream: &Upstream) -> Result<Response> {
        let kind = key::ObjectKind::new(link.content_type(), key::cache_control::IMMUTABLE);
        let head = req.method == Method::Head;
        let cached_key = link.sha256.as_deref().map(file_key);
        // The project's first upload here (its hosted record) ends the mirrored answer.
        let hosted = super::names::ProjectName::parse(&link.project).map(|n| super::names::keys::project(&n).to_string()).unwrap_or_default();
        if let Some(k) = &cached_key {
            if let Some(hit) = self.engine.cached_blob(head, k.as_str(), kind).await? {
                return Ok(hit.purged_by(hosted));
            }
        }
        let mut headers = Headers::new();
        headers.set("Accept", "*/*");
        let request = UpstreamRequest { method: Method::Get, url: link.url.to_string(), headers, body: None };
        let checksum = link.sha256.as_deref().and_then(|h| hex::decode(h).ok()).map(Checksum::Sha256);
        let key = cached_key.map(|k| k.path).unwrap_or_default();
        let blob = Blob { key, checksum, marker: None, label: format!("{}/{}", link.project, link.filename) };
        Ok(self.engine.fetch_blob(head, upstream, &link.project, request, blob, kind, &PypiAdapter, &link.filename).await?.purged_by(hosted))
    }
}
