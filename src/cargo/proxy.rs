//! Cargo pull-through cache: index files and `.crate` files of crates that are not hosted
//! here come from the upstreams (`CARGO_UPSTREAMS`, sparse registries such as
//! `https://index.crates.io`) and are kept in R2, by the engine in `crate::upstream::engine`.
//! This adapter declares Cargo's part (the Cargo book, "Registry Index" and "Source
//! Replacement"):
//!
//! * **Index files** are documents at cargo's paths (`1/a`, `2/ab`, `3/a/abc`,
//!   `se/rd/serde`): revalidated with the upstream's ETag / Last-Modified, kept as they came,
//!   but checked line by line on their way into the store (each line a JSON object naming
//!   this crate with a sha256 `cksum`), so a corrupt or cut file is never cached.
//! * **The upstream's `config.json`** is a document too, one per upstream: its `dl` says
//!   where `.crate` files are (crates.io: `https://static.crates.io/crates`), with the
//!   `{crate}`, `{version}`, `{prefix}`, `{lowerprefix}` and `{sha256-checksum}` markers.
//! * **`.crate` files** are blobs kept forever under a content-addressed key, verified on
//!   their way into R2 against the `cksum` of their version's line in the index file (a
//!   flipped byte is neither cached nor delivered whole). A version the index does not list
//!   is a 404, asked of nobody. Credentials of an upstream go only to its own origin (the
//!   engine's client), never to a `dl` on another one.
//! * **Hosted first**: a crate hosted here is never served from an upstream, neither its
//!   index file nor any of its `.crate` files.

use std::rc::Rc;

use futures::future::{FutureExt, LocalBoxFuture};
use futures::StreamExt;
use serde::Deserialize;

use super::index::{download_url, find_version, IndexLine, RegistryConfig};
use super::names::CrateName;
use crate::config::Protocol;
use crate::error::{Error, Result};
use crate::http::{Actor, Headers, Method, Request, Response};
use crate::platform::{Checksum, ObjectStore, StoreResult};
use crate::router::App;
use crate::storage::key::{self, Key};
use crate::upstream::cache::{self, Entry};
use crate::upstream::client::{Failures, UpstreamRequest};
use crate::upstream::engine::{resolve, Adapter, Blob, DocumentError, Fetched, NewCopy, Refresh, Resolved, Rewrite, Served};
use crate::upstream::{mark, CacheStatus, Engine, ProtocolUpstreams, ResolveContext, Upstream};

/// The `crates-io` preset: crates.io's sparse index (the Cargo book, "Registry Index",
/// sparse protocol). Its `config.json` names the download host.
pub const CRATES_IO_INDEX: &str = "https://index.crates.io";
/// What index files are served as.
pub const INDEX_MEDIA_TYPE: &str = "text/plain";
/// The largest upstream index file kept (crates.io's biggest are a few MB).
const MAX_INDEX: u64 = 256 << 20;
/// The longest index line read (one version; crates.io's longest are tens of KB).
const MAX_LINE: usize = 4 << 20;
/// The largest upstream `config.json` read.
const MAX_CONFIG: usize = 64 << 10;
/// A cached index file older than this is asked again when it lacks a version a client
/// wants to download (published since); a younger one would not know it either.
const RECHECK_MS: f64 = 10_000.0;

/// Everything under which the cached index files of a crate live, of every spelling of its
/// name that cargo treats as the same crate (`-` or `_`, any case: `CrateName::canonical`),
/// so one purge forgets them all; `.crate` files are content-addressed and shared: purges
/// leave them.
pub fn cache_prefix(name: &CrateName) -> String {
    format!("cargo/cache/index/{}/", name.canonical())
}

/// Where the index file of this spelling (lower-cased, as its index path) is kept.
fn index_prefix(name: &CrateName) -> String {
    format!("{}{}/", cache_prefix(name), name.lower())
}

fn index_entry_key(name: &CrateName) -> String {
    format!("{}index.entry.json", index_prefix(name))
}

/// Where an upstream's `config.json` is cached (one per upstream id and URL).
fn config_entry_key(u: &Upstream) -> String {
    format!("cargo/cache/upstreams/{}/config.entry.json", crate::util::sha256_hex(format!("{}|{}", u.id, u.url).as_bytes()))
}

/// Where a `.crate` file of this sha256 is kept, whichever upstream served it.
pub fn crate_key(sha256_hex: &str) -> Key {
    Key::new(format!("cargo/cache/crates/sha256/{sha256_hex}"), key::ARTIFACT)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Forgets the cached index files of `name` (every spelling): its first hosted publish
/// calls this.
pub async fn purge_for_hosted(store: &dyn ObjectStore, name: &CrateName) -> StoreResult<usize> {
    crate::upstream::engine::purge_for_hosted(store, "cargo", name.as_str(), &cache_prefix(name)).await
}

/// `DELETE /-/admin/cache/cargo/{name}`: forgets the crate's cached index files (every
/// spelling, and their entries); `.crate` files stay, being content-addressed. The number
/// of objects removed.
pub async fn purge_cache(app: &App, name: &str) -> Result<usize> {
    let name = CrateName::parse(name).ok_or_else(|| Error::invalid(format!("invalid crate name: {name:?}")))?;
    Ok(cache::purge(&*app.platform.store, &cache_prefix(&name)).await?)
}

/// Cargo's wording of the engine's failures (cargo prints the detail).
struct CargoAdapter;

impl Adapter for CargoAdapter {
    fn not_found(&self, what: &str) -> Error {
        Error::not_found(format!("{what} not found"))
    }

    fn unavailable(&self, why: &Failures) -> Error {
        Error::upstream(format!("upstream unavailable: {why}"))
    }

    fn corrupt(&self, why: &Failures) -> Error {
        Error::upstream(why.to_string())
    }
}

/// The upstreams that may serve `name` for `actor` (the provider's, by scope rules).
async fn upstreams(app: &App, actor: &Actor, name: &CrateName, resource_type: &str) -> Option<Rc<ProtocolUpstreams>> {
    let lower = name.lower();
    let ctx = ResolveContext { protocol: Protocol::Cargo, resource: &lower, resource_type, actor };
    app.upstreams.resolve(&ctx).await
}

/// `GET|HEAD {registry}/{index path}` for a crate that is not hosted here (hosted first:
/// the caller has checked every spelling of the name): its index file from the
/// pull-through cache. `None` when no upstream may serve the name; an index file no
/// upstream has is a 404 (`Err`).
pub async fn index_file(app: &App, req: &Request, name: &CrateName) -> Result<Option<Response>> {
    let found = upstreams(app, &req.actor, name, "index").await;
    match resolve(&app.platform, found, &name.lower(), async { Ok(false) }, |engine| CargoProxy { engine }).await? {
        Resolved::Proxied(p) => p.index(req, name).await.map(Some),
        Resolved::Hosted | Resolved::Absent => Ok(None),
    }
}

/// `GET|HEAD {registry}/api/v1/crates/{crate}/{version}/download` for a crate that is not
/// hosted here (the caller has checked, as for [`index_file`]): the `.crate` file from the
/// cache, or from the upstream's `dl` verified into the cache on the way. `None` when no
/// upstream may serve the name.
pub async fn download(app: &App, req: &Request, name: &CrateName, version: &str) -> Result<Option<Response>> {
    let found = upstreams(app, &req.actor, name, "crate").await;
    match resolve(&app.platform, found, &name.lower(), async { Ok(false) }, |engine| CargoProxy { engine }).await? {
        Resolved::Proxied(p) => p.download(req, name, version).await.map(Some),
        Resolved::Hosted | Resolved::Absent => Ok(None),
    }
}

/// Whether an upstream serves a crate of this name (its index file there exists): a first
/// publish of such a name is refused rather than silently shadowing the upstream's crate.
/// Spellings cargo treats as the same crate count too: the name as given, with every `_`
/// as `-`, and with every `-` as `_` (crates.io allows only one of them). `false` when no
/// upstream may serve the name; an error when the upstreams cannot say.
pub async fn upstream_has(app: &App, name: &CrateName) -> Result<bool> {
    let lower = name.lower();
    let mut spellings = vec![lower.replace('_', "-"), lower.replace('-', "_"), lower];
    spellings.sort_unstable();
    spellings.dedup();
    for spelling in spellings.iter().filter_map(|s| CrateName::parse(s)) {
        let Some(found) = upstreams(app, &Actor::default(), &spelling, "index").await else { continue };
        let engine = Engine::new(app.platform.clone(), found);
        if !engine.serves(&spelling.lower()) {
            continue;
        }
        let doc = CargoProxy { engine }.index_document(&spelling).await?;
        if doc.entry.status == 200 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The proxy for one request: owned, so background work can carry it past the response.
#[derive(Clone)]
struct CargoProxy {
    engine: Engine,
}

impl CargoProxy {
    // ---- index files ----

    async fn index(&self, req: &Request, name: &CrateName) -> Result<Response> {
        let doc = self.index_document(name).await?;
        let resp = self.serve_index(req, name, &doc.entry, doc.status, true).await?;
        // A publish of the name here (a hosted index file) ends the mirrored answer.
        Ok(resp.with_edge(doc.edge_hint(self.engine.platform.now_ms(), vec![super::keys::index_file(name).to_string()])))
    }

    /// The cached index file of `name`, refreshed as the engine's rules say.
    async fn index_document(&self, name: &CrateName) -> Result<Served> {
        let refresh = |known| self.refresh_index_collapsed(name, known);
        match self.engine.document(&index_entry_key(name), &name.lower(), || async { None }, refresh).await {
            Ok(doc) => Ok(doc),
            Err(DocumentError::Store(e)) => Err(Error::internal(format!("cargo proxy: cache storage failed for {name}: {e}"))),
            Err(DocumentError::Upstream(why)) => Err(CargoAdapter.failed(&why)),
        }
    }

    /// Refreshes the index file of `name`, collapsed with concurrent refreshes of it.
    fn refresh_index_collapsed(&self, name: &CrateName, known: Option<Entry>) -> LocalBoxFuture<'static, Refresh> {
        let (this, n) = (self.clone(), name.clone());
        let work = async move { this.refresh_index(&n, known).await }.boxed_local();
        self.engine.refresh(&index_entry_key(name), ("cargo", name.lower(), "index".to_string()), work)
    }

    /// Asks the upstreams for the index file (conditionally when the cached copy came from
    /// the same one); a new copy is checked line by line on its way into the store.
    async fn refresh_index(&self, name: &CrateName, known: Option<Entry>) -> Refresh {
        let path = name.index_path();
        let request = |u: &Upstream| UpstreamRequest { method: Method::Get, url: format!("{}/{path}", u.url), headers: Headers::new(), body: None };
        let data_prefix = format!("{}index", index_prefix(name));
        let key = index_entry_key(name);
        let storing = (data_prefix.as_str(), INDEX_MEDIA_TYPE, MAX_INDEX);
        let NewCopy { entry, old, .. } = match self.engine.fetch_document(&key, &name.lower(), known, request, storing, || IndexCheck::new(name)).await? {
            Fetched::Revalidated => return Ok(CacheStatus::Revalidated),
            Fetched::Absent => return Ok(CacheStatus::Miss),
            Fetched::Stored(copy) => *copy,
        };
        self.engine.replace(&key, &entry, old).await?;
        Ok(CacheStatus::Miss)
    }

    async fn serve_index(&self, req: &Request, name: &CrateName, entry: &Entry, status: CacheStatus, retry: bool) -> Result<Response> {
        let now = self.engine.platform.now_ms();
        let marked = |r: Response| {
            mark(r, status, &entry.upstream)
                .with_header("Age", entry.age_seconds(now).to_string())
                .with_header("Cache-Control", key::cache_control::REVALIDATE)
        };
        if entry.status != 200 {
            return Err(CargoAdapter.not_found(name.as_str()).header("X-Cache", status.as_str()).header("X-Cache-Upstream", entry.upstream.clone()));
        }
        let Some(data_key) = &entry.data_key else { return Err(Error::internal("cache entry without data")) };
        // Our own validator: the stored copy is never changed in place.
        let etag = format!("\"{}\"", crate::util::sha256_hex(data_key.as_bytes()));
        if req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag)) {
            return Ok(marked(Response::new(304).with_header("ETag", etag)));
        }
        let Some(obj) = self.engine.platform.store.get(data_key, None).await? else {
            // Replaced by a refresh in between: serve the new copy.
            return match cache::load(&*self.engine.platform.store, &index_entry_key(name)).await {
                Ok(Some(e)) if retry && e.data_key != entry.data_key => Box::pin(self.serve_index(req, name, &e, status, false)).await,
                _ => Err(Error::upstream("cached index file missing")),
            };
        };
        let mut resp = Response::new(200)
            .with_header("Content-Type", INDEX_MEDIA_TYPE)
            .with_header("Content-Length", obj.meta.size.to_string())
            .with_header("ETag", etag);
        if req.method != Method::Head {
            resp.body = obj.body;
        }
        Ok(marked(resp))
    }

    /// The line of `version` in the cached index file of `name`, and the upstream that
    /// served that file. A copy older than [`RECHECK_MS`] without it is asked again once.
    async fn find_line(&self, name: &CrateName, version: &str) -> Result<Option<(IndexLine, String)>> {
        let doc = self.index_document(name).await?;
        if let Some(line) = self.scan(name, &doc.entry, version).await? {
            return Ok(Some((line, doc.entry.upstream)));
        }
        let old = self.engine.platform.now_ms() - doc.entry.fetched_ms >= RECHECK_MS;
        if doc.entry.status != 200 || !old {
            return Ok(None);
        }
        self.refresh_index_collapsed(name, Some(doc.entry)).await.map_err(|why| CargoAdapter.failed(&why))?;
        let Some(entry) = cache::load(&*self.engine.platform.store, &index_entry_key(name)).await? else { return Ok(None) };
        Ok(self.scan(name, &entry, version).await?.map(|line| (line, entry.upstream)))
    }

    /// Reads the index file of `entry` one line at a time for the line of `version`.
    async fn scan(&self, name: &CrateName, entry: &Entry, version: &str) -> Result<Option<IndexLine>> {
        let store = &self.engine.platform.store;
        let Some(data_key) = entry.data_key.as_ref().filter(|_| entry.status == 200) else { return Ok(None) };
        let obj = match store.get(data_key, None).await? {
            Some(obj) => obj,
            // Replaced by a refresh in between: read the new copy.
            None => match cache::load(&**store, &index_entry_key(name)).await?.and_then(|e| e.data_key) {
                Some(k) if &k != data_key => store.get(&k, None).await?.ok_or_else(|| Error::upstream("cached index file missing"))?,
                _ => return Err(Error::upstream("cached index file missing")),
            },
        };
        let (mut lines, mut found) = (Lines::default(), None);
        let mut look = |line: &[u8]| {
            if found.is_none() {
                found = find_version(line, version);
            }
            Ok(())
        };
        let mut chunks = obj.body.into_chunks();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| Error::internal(format!("reading the cached index file of {name}: {e}")))?;
            lines.feed(&chunk, &mut look).map_err(Error::upstream)?;
        }
        lines.finish(&mut look).map_err(Error::upstream)?;
        Ok(found)
    }

    // ---- config.json ----

    /// The `dl` of upstream `u`'s `config.json` (cached as a document of its own).
    async fn dl(&self, u: &Upstream, name: &CrateName) -> Result<String> {
        let only = ProtocolUpstreams { enabled: true, upstreams: vec![u.clone()] };
        let proxy = CargoProxy { engine: Engine::new(self.engine.platform.clone(), Rc::new(only)) };
        let key = config_entry_key(u);
        let refresh = |known| proxy.refresh_config_collapsed(&key, name, known);
        let doc = match proxy.engine.document(&key, &name.lower(), || async { None }, refresh).await {
            Ok(doc) => doc,
            Err(DocumentError::Store(e)) => return Err(Error::internal(format!("cargo proxy: cache storage failed for config.json of {}: {e}", u.id))),
            Err(DocumentError::Upstream(why)) => return Err(CargoAdapter.failed(&why)),
        };
        match doc.entry.extra.get("dl") {
            Some(dl) if doc.entry.status == 200 => Ok(dl.clone()),
            _ => Err(Error::upstream(format!("upstream {} has no config.json", u.id))),
        }
    }

    fn refresh_config_collapsed(&self, key: &str, name: &CrateName, known: Option<Entry>) -> LocalBoxFuture<'static, Refresh> {
        let (this, k, n) = (self.clone(), key.to_string(), name.lower());
        let work = async move { this.refresh_config(&k, &n, known).await }.boxed_local();
        self.engine.refresh(key, ("cargo", "config.json".to_string(), "config".to_string()), work)
    }

    /// Fetches the (only) upstream's `config.json`; its `dl` goes into the entry.
    async fn refresh_config(&self, key: &str, name: &str, known: Option<Entry>) -> Refresh {
        let request = |u: &Upstream| UpstreamRequest { method: Method::Get, url: format!("{}/config.json", u.url), headers: Headers::new(), body: None };
        let data_prefix = key.trim_end_matches(".entry.json").to_string();
        let storing = (data_prefix.as_str(), "application/json", MAX_CONFIG as u64);
        let NewCopy { entry, old, output: dl, .. } = match self.engine.fetch_document(key, name, known, request, storing, ConfigCheck::default).await? {
            Fetched::Revalidated => return Ok(CacheStatus::Revalidated),
            Fetched::Absent => return Ok(CacheStatus::Miss),
            Fetched::Stored(copy) => *copy,
        };
        let mut entry = entry;
        entry.extra.insert("dl".to_string(), dl);
        self.engine.replace(key, &entry, old).await?;
        Ok(CacheStatus::Miss)
    }

    // ---- .crate files ----

    /// A `.crate` file from the cache, or from its upstream verified into the cache.
    async fn download(&self, req: &Request, name: &CrateName, version: &str) -> Result<Response> {
        let not_found = || CargoAdapter.not_found(&format!("{name} {version}"));
        let (line, upstream_id) = self.find_line(name, version).await?.ok_or_else(not_found)?;
        let cksum = line.cksum.to_ascii_lowercase();
        if !is_sha256_hex(&cksum) {
            return Err(Error::upstream(format!("the index line of {name} {version} has no sha256 cksum")));
        }
        let key = crate_key(&cksum);
        let head = req.method == Method::Head;
        // The download URL is the hosted one too: the crate's first publish here (which writes
        // its index file) ends the mirrored answer.
        let hosted = super::keys::index_file(name).to_string();
        if let Some(hit) = self.engine.cached_blob(head, key.as_str(), key.kind).await? {
            return Ok(hit.purged_by(hosted));
        }
        let upstream = self.engine.upstream(&name.lower(), &upstream_id).ok_or_else(not_found)?;
        let dl = self.dl(&upstream, name).await?;
        // `{crate}` is the name as the index spells it (as published).
        let url = download_url(&dl, &line.name, &line.vers, &cksum);
        if !url::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(Error::upstream(format!("upstream {} gives no usable download URL for {name} {version}", upstream.id)));
        }
        let mut headers = Headers::new();
        headers.set("Accept", "*/*");
        let request = UpstreamRequest { method: Method::Get, url, headers, body: None };
        let checksum = hex::decode(&cksum).ok().map(Checksum::Sha256);
        let label = format!("{name} {version}");
        let blob = Blob { key: key.path.clone(), checksum, marker: None, label: label.clone() };
        Ok(self.engine.fetch_blob(head, &upstream, &name.lower(), request, blob, key.kind, &CargoAdapter, &label).await?.purged_by(hosted))
    }
}

/// Splits a byte stream into lines (`\n`), holding one line at a time, at most
/// [`MAX_LINE`] bytes of it.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, mut chunk: &[u8], each: &mut impl FnMut(&[u8]) -> std::result::Result<(), String>) -> std::result::Result<(), String> {
        while let Some(i) = chunk.iter().position(|b| *b == b'\n') {
            let (line, rest) = chunk.split_at(i);
            if self.partial.is_empty() {
                each(line)?;
            } else {
                self.partial.extend_from_slice(line);
                self.bounded()?;
                each(&self.partial)?;
                self.partial.clear();
            }
            chunk = rest.get(1..).unwrap_or_default();
        }
        self.partial.extend_from_slice(chunk);
        self.bounded()
    }

    /// The last line, when the stream did not end with a newline.
    fn finish(self, each: &mut impl FnMut(&[u8]) -> std::result::Result<(), String>) -> std::result::Result<(), String> {
        if self.partial.is_empty() {
            Ok(())
        } else {
            each(&self.partial)
        }
    }

    fn bounded(&self) -> std::result::Result<(), String> {
        if self.partial.len() > MAX_LINE {
            return Err(format!("index line longer than {MAX_LINE} bytes"));
        }
        Ok(())
    }
}

/// Keeps an index file as it came, refusing it unless every line is a version of this crate
/// (the Cargo book, "Registry Index": one JSON object per line, `name` the crate's, `cksum`
/// the sha256 of the `.crate` file): a corrupt or cut file is never cached.
struct IndexCheck {
    name: String,
    lines: Lines,
}

impl IndexCheck {
    fn new(name: &CrateName) -> IndexCheck {
        IndexCheck { name: name.lower(), lines: Lines::default() }
    }
}

/// What is checked of an index line.
#[derive(Deserialize)]
struct LineHead {
    name: String,
    vers: String,
    cksum: String,
}

fn check_line(crate_name: &str, line: &[u8]) -> std::result::Result<(), String> {
    if line.trim_ascii().is_empty() {
        return Ok(());
    }
    let head: LineHead = serde_json::from_slice(line).map_err(|e| format!("index file of {crate_name}: unreadable line: {e}"))?;
    if !head.name.eq_ignore_ascii_case(crate_name) {
        return Err(format!("index file of {crate_name} lists a version of {:?}", head.name));
    }
    if head.vers.is_empty() || !is_sha256_hex(&head.cksum.to_ascii_lowercase()) {
        return Err(format!("index file of {crate_name}: version {:?} without a sha256 cksum", head.vers));
    }
    Ok(())
}

impl Rewrite for IndexCheck {
    type Output = ();

    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
        out.extend_from_slice(chunk);
        let name = &self.name;
        self.lines.feed(chunk, &mut |line| check_line(name, line))
    }

    fn finish(self) -> std::result::Result<(), String> {
        let name = self.name;
        self.lines.finish(&mut |line| check_line(&name, line))
    }
}

/// Keeps an upstream's `config.json` as it came, refusing it unless its `dl` is an http(s)
/// URL (the Cargo book, "Registry Index", index configuration); hands out that `dl`.
#[derive(Default)]
struct ConfigCheck {
    bytes: Vec<u8>,
}

impl Rewrite for ConfigCheck {
    type Output = String;

    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
        if self.bytes.len() + chunk.len() > MAX_CONFIG {
            return Err(format!("config.json larger than {MAX_CONFIG} bytes"));
        }
        self.bytes.extend_from_slice(chunk);
        out.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(self) -> std::result::Result<String, String> {
        let config = RegistryConfig::parse(&self.bytes).ok_or("config.json unreadable or without dl")?;
        // Markers are not URL syntax: check the URL with them filled in.
        let sample = download_url(&config.dl, "a", "0.0.0", &"0".repeat(64));
        match url::Url::parse(&sample) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(config.dl),
            _ => Err(format!("config.json: dl {:?} is not an http(s) URL", config.dl)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> std::result::Result<Vec<Vec<u8>>, String> {
        let (mut lines, mut out) = (Lines::default(), Vec::new());
        let mut each = |l: &[u8]| {
            out.push(l.to_vec());
            Ok(())
        };
        for c in chunks {
            lines.feed(c, &mut each)?;
        }
        lines.finish(&mut each)?;
        Ok(out)
    }

    #[test]
    fn lines_across_chunks() {
        let whole: Vec<Vec<u8>> = vec![b"ab".to_vec(), b"".to_vec(), b"cde".to_vec()];
        assert_eq!(lines_of(&[b"ab\n\ncde\n"]).unwrap(), whole);
        assert_eq!(lines_of(&[b"a", b"b\n", b"\nc", b"d", b"e"]).unwrap(), whole, "no final newline");
        assert!(lines_of(&[&vec![b'x'; MAX_LINE + 1]]).is_err());
    }

    #[test]
    fn any_split_gives_the_same_lines() {
        let file = b"{\"a\":1}\n\n{\"b\":[2,3]}\nlast";
        let whole = lines_of(&[file]).unwrap();
        for i in 0..=file.len() {
            for j in i..=file.len() {
                let (a, rest) = file.split_at(i);
                let (b, c) = rest.split_at(j - i);
                assert_eq!(lines_of(&[a, b, c]).unwrap(), whole, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn index_check_refuses_other_crates_and_cut_lines() {
        let cksum = "a".repeat(64);
        let good = format!("{{\"name\":\"Serde\",\"vers\":\"1.0.0\",\"deps\":[],\"cksum\":\"{cksum}\",\"features\":{{}},\"yanked\":false}}\n");
        let run = |body: &str| {
            let mut check = IndexCheck::new(&CrateName::parse("serde").unwrap());
            let mut out = Vec::new();
            check.feed(body.as_bytes(), &mut out).and_then(|_| check.finish()).map(|_| out)
        };
        assert_eq!(run(&good).unwrap(), good.as_bytes(), "kept as it came");
        assert!(run(&good.replace("Serde", "serde_json")).is_err());
        assert!(run(good.get(..good.len() / 2).unwrap()).is_err(), "cut");
        assert!(run(&good.replace(&cksum, "xyz")).is_err());
    }

    #[test]
    fn config_check_needs_an_http_dl() {
        let run = |body: &str| {
            let mut check = ConfigCheck::default();
            let mut out = Vec::new();
            check.feed(body.as_bytes(), &mut out).and_then(|_| check.finish())
        };
        assert_eq!(run(r#"{"dl":"https://static.crates.io/crates","api":"https://crates.io"}"#).unwrap(), "https://static.crates.io/crates");
        assert_eq!(run(r#"{"dl":"https://x.example/{crate}/{version}.crate"}"#).unwrap(), "https://x.example/{crate}/{version}.crate");
        assert!(run(r#"{"dl":"file:///etc/passwd"}"#).is_err());
        assert!(run(r#"{"api":"https://crates.io"}"#).is_err());
        assert!(run(r#"{"dl":"https://static.crates.io/cr"#).is_err());
    }
}
