//! The edge cache in the Worker (see `platform::EdgeCache`): this isolate's memory, then the
//! data center's HTTP cache through the Cache API (`caches.default`). Both live on the
//! JavaScript side: a hit never copies a body into wasm, and bodies kept in memory count
//! against the isolate's heap, not the wasm memory.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::http::{Body, PlatformStream, Response};
use crate::platform::{Background, EdgeCache, EdgeHint, EdgeTiers};

#[wasm_bindgen(inline_js = r#"
// Memory tier: key -> { status, headers (array of [name, value]), body (ArrayBuffer), etag,
// tags, expires (ms) }; a Map keeps insertion order, so re-inserting on a hit makes it LRU.
const entries = new Map();
const byTag = new Map();
// Keys this isolate put in the HTTP tier, by tag, so a purge can delete them (bounded: the
// HTTP tier's own expiry covers what this forgets).
const httpByTag = new Map();
const HTTP_TAGGED = 10000;
let used = 0;
// Counts purges: an answer made while one happened may hold what was there before it.
let purges = 0;
const MEMORY_BYTES = 16 * 1024 * 1024;
const ENTRY_BYTES = 1024 * 1024;
const HTTP_BYTES = 32 * 1024 * 1024;
// The HTTP tier's keys: a URL of our own, never fetched.
const httpKey = (key) => new Request('https://edge-cache.invalid/' + encodeURIComponent(key));

export function header_lines(headers) {
  const out = [];
  for (const [name, value] of headers) out.push(name, value);
  return out.join('\n');
}

// A HEAD's answer is kept with no body.
const size = (body) => (body === null ? 0 : body.byteLength);

function drop(key) {
  const e = entries.get(key);
  if (e === undefined) return;
  entries.delete(key);
  used -= size(e.body);
  for (const t of e.tags) {
    const keys = byTag.get(t);
    if (keys !== undefined) { keys.delete(key); if (keys.size === 0) byTag.delete(t); }
  }
}

function remember(key, entry) {
  drop(key);
  if (size(entry.body) > ENTRY_BYTES) return;
  while (used + size(entry.body) > MEMORY_BYTES && entries.size > 0) drop(entries.keys().next().value);
  entries.set(key, entry);
  used += size(entry.body);
  for (const t of entry.tags) {
    let keys = byTag.get(t);
    if (keys === undefined) byTag.set(t, keys = new Set());
    keys.add(key);
  }
}

function answer(e, ifNoneMatch) {
  if (ifNoneMatch && e.etag && ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === e.etag)) {
    return new Response(null, { status: 304, headers: [['etag', e.etag]] });
  }
  return new Response(e.body, { status: e.status, headers: e.headers });
}

export async function edge_lookup(key, ifNoneMatch, useMemory, useHttp) {
  const now = Date.now();
  const e = entries.get(key);
  if (e !== undefined) {
    if (e.expires > now) {
      entries.delete(key);
      entries.set(key, e);
      return answer(e, ifNoneMatch);
    }
    drop(key);
  }
  if (!useHttp || typeof caches === 'undefined') return undefined;
  const hit = await caches.default.match(httpKey(key));
  if (hit === undefined) return undefined;
  const kept = hit.headers.get('x-edge-entry');
  if (kept === null) return undefined;
  const { headers, tags, expires } = JSON.parse(kept);
  const length = Number(hit.headers.get('content-length'));
  if (!(length <= ENTRY_BYTES)) {
    const e = { status: hit.status, headers, body: null, etag: etagOf(headers) };
    if (answer(e, ifNoneMatch).status === 304) return answer(e, ifNoneMatch);
    return new Response(hit.body, { status: hit.status, headers });
  }
  // Small: into memory too, for this isolate's next requests.
  const entry = { status: hit.status, headers, body: await hit.arrayBuffer(), etag: etagOf(headers), tags, expires: Math.min(expires, now + 3600 * 1000) };
  if (useMemory) remember(key, entry);
  return answer(entry, ifNoneMatch);
}

export function edge_generation() {
  return purges;
}

function etagOf(headers) {
  const h = headers.find(([n]) => n.toLowerCase() === 'etag');
  return h === undefined ? null : h[1].replace(/^W\//, '');
}

// Keeps a copy of `response` as the client reads the other half of its body, and returns the
// response to send. Memory keeps bodies of a known length up to ENTRY_BYTES; the HTTP tier
// keeps immutable ones up to HTTP_BYTES, streamed into `cache.put` (never read whole here:
// a tee holds what its slower branch has not read yet, hence the bound).
export function edge_keep(key, tags, seconds, immutable, useMemory, useHttp, response, length, generation, waitUntil) {
  const memory = useMemory && length >= 0 && length <= ENTRY_BYTES;
  const http = useHttp && immutable && length >= 0 && length <= HTTP_BYTES && typeof caches !== 'undefined';
  const headers = [...response.headers];
  const tagList = tags.split('\n');
  const expires = Date.now() + seconds * 1000;
  const entry = (body) => ({ status: response.status, headers, body, etag: etagOf(headers), tags: tagList, expires });
  if (response.body === null) {
    if (useMemory && purges === generation) remember(key, entry(null));
    return response;
  }
  if (!memory && !http) return response;
  const [send, side] = response.body.tee();
  const toHttp = (body) => {
    if (httpByTag.size >= HTTP_TAGGED) httpByTag.clear();
    for (const t of tagList) {
      let keys = httpByTag.get(t);
      if (keys === undefined) httpByTag.set(t, keys = new Set());
      keys.add(key);
    }
    return putHttp(body);
  };
  const putHttp = (body) => caches.default.put(httpKey(key), new Response(body, {
    status: response.status,
    headers: { 'cache-control': 'max-age=' + seconds, 'x-edge-entry': JSON.stringify({ headers, tags: tagList, expires }) },
  }));
  const stored = memory
    ? new Response(side).arrayBuffer().then((body) => {
      if (purges !== generation) return;
      remember(key, entry(body));
      if (http) return toHttp(body);
    })
    // A purge while it streamed in: it may be what was deleted.
    : toHttp(side).then(() => (purges !== generation ? caches.default.delete(httpKey(key)) : undefined));
  waitUntil(stored.catch(() => {}));
  return new Response(send, { status: response.status, statusText: response.statusText, headers: response.headers });
}

export function edge_purge_all(useHttp) {
  purges++;
  entries.clear();
  byTag.clear();
  used = 0;
  const kept = new Set([...httpByTag.values()].flatMap((keys) => [...keys]));
  httpByTag.clear();
  if (!useHttp || typeof caches === 'undefined') return Promise.resolve();
  return Promise.all([...kept].map((k) => caches.default.delete(httpKey(k)))).catch(() => {});
}

export function edge_purge(tag, useHttp) {
  purges++;
  const keys = byTag.get(tag);
  for (const k of keys === undefined ? [] : [...keys]) drop(k);
  // The HTTP tier can only be purged by key: those this isolate put there under the tag.
  const kept = httpByTag.get(tag);
  httpByTag.delete(tag);
  if (!useHttp || kept === undefined || typeof caches === 'undefined') return Promise.resolve();
  return Promise.all([...kept].map((k) => caches.default.delete(httpKey(k)))).catch(() => {});
}
"#)]
extern "C" {
    /// The headers as `name\nvalue\nname\nvalue…` (neither may hold a line break).
    pub fn header_lines(headers: &web_sys::Headers) -> String;
    fn edge_lookup(key: &str, if_none_match: Option<String>, use_memory: bool, use_http: bool) -> js_sys::Promise;
    #[allow(clippy::too_many_arguments)]
    fn edge_keep(
        key: &str,
        tags: &str,
        seconds: u32,
        immutable: bool,
        use_memory: bool,
        use_http: bool,
        response: &web_sys::Response,
        length: f64,
        generation: f64,
        wait_until: &js_sys::Function,
    ) -> web_sys::Response;
    fn edge_purge(tag: &str, use_http: bool) -> js_sys::Promise;
    fn edge_purge_all(use_http: bool) -> js_sys::Promise;
    fn edge_generation() -> f64;
}

pub struct JsEdgeCache {
    pub tiers: EdgeTiers,
    pub background: Rc<dyn Background>,
}

/// The runtime's response as ours: headers in one call, the body left a JS stream.
fn from_runtime(resp: &web_sys::Response) -> Response {
    let headers = super::headers_of(&resp.headers());
    let length = headers.get("content-length").and_then(|l| l.parse().ok());
    let body = match resp.body() {
        Some(stream) => Body::Stream(PlatformStream::new(stream, length)),
        None => Body::Empty,
    };
    Response { status: resp.status(), reason: None, headers, body, edge: None }
}

#[async_trait::async_trait(?Send)]
impl EdgeCache for JsEdgeCache {
    async fn lookup(&self, key: &str, if_none_match: Option<&str>) -> Option<Response> {
        if !self.tiers.any() {
            return None;
        }
        let found = wasm_bindgen_futures::JsFuture::from(edge_lookup(key, if_none_match.map(str::to_string), self.tiers.memory, self.tiers.http)).await;
        let resp: web_sys::Response = found.ok()?.dyn_into().ok()?;
        Some(from_runtime(&resp))
    }

    fn generation(&self) -> u64 {
        edge_generation() as u64
    }

    async fn keep(&self, key: &str, hint: &EdgeHint, generation: u64, resp: Response) -> Response {
        if !self.tiers.any() {
            return resp;
        }
        let (status, reason, headers) = (resp.status, resp.reason.clone(), resp.headers.clone());
        let length = resp.body.known_length();
        let Ok(runtime) = super::response(resp) else {
            return Response::new(500);
        };
        let background = self.background.clone();
        let wait_until = Closure::once_into_js(move |promise: js_sys::Promise| {
            background.spawn(Box::pin(async move {
                let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
            }));
        });
        let sent = edge_keep(
            key,
            &hint.tags.join("\n"),
            hint.seconds,
            hint.immutable,
            self.tiers.memory,
            self.tiers.http,
            &runtime,
            length.map_or(-1.0, |l| l as f64),
            generation as f64,
            wait_until.unchecked_ref(),
        );
        let body = match sent.body() {
            Some(stream) => Body::Stream(PlatformStream::new(stream, length)),
            None => Body::Empty,
        };
        Response { status, reason, headers, body, edge: None }
    }

    async fn purge(&self, tag: &str) {
        if self.tiers.any() {
            let _ = wasm_bindgen_futures::JsFuture::from(edge_purge(tag, self.tiers.http)).await;
        }
    }

    async fn purge_all(&self) {
        let _ = wasm_bindgen_futures::JsFuture::from(edge_purge_all(self.tiers.http)).await;
    }
}
