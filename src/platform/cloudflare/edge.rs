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
let used = 0;
// Counts purges: an answer made while one happened may hold what was there before it.
let purges = 0;
const MEMORY_BYTES = 16 * 1024 * 1024;
const ENTRY_BYTES = 1024 * 1024;
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

export async function edge_lookup(key, ifNoneMatch, useHttp) {
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
  if (!useHttp) return undefined;
  const hit = await caches.default.match(httpKey(key));
  if (hit === undefined) return undefined;
  const kept = hit.headers.get('x-edge-entry');
  if (kept === null) return undefined;
  const { headers, tags, expires } = JSON.parse(kept);
  const body = await hit.arrayBuffer();
  const entry = { status: hit.status, headers, body, etag: etagOf(headers), tags, expires: Math.min(expires, now + 3600 * 1000) };
  remember(key, entry);
  return answer(entry, ifNoneMatch);
}

function etagOf(headers) {
  const h = headers.find(([n]) => n.toLowerCase() === 'etag');
  return h === undefined ? null : h[1].replace(/^W\//, '');
}

// Keeps a copy of `response` (its body read on the side, as the client reads the other half)
// and returns the response to send. Only bodies of a known length up to the memory tier's
// entry size are kept in memory; immutable ones also go to the HTTP tier.
export function edge_generation() {
  return purges;
}

export function edge_keep(key, tags, seconds, immutable, useMemory, useHttp, response, length, generation, waitUntil) {
  const memory = useMemory && length >= 0 && length <= ENTRY_BYTES;
  const http = useHttp && immutable;
  const headers = [...response.headers];
  const tagList = tags.split('\n');
  const expires = Date.now() + seconds * 1000;
  if (response.body === null) {
    if (useMemory && purges === generation) remember(key, { status: response.status, headers, body: null, etag: etagOf(headers), tags: tagList, expires });
    return response;
  }
  if (!memory && !http) return response;
  const [send, side] = response.body.tee();
  const stored = new Response(side).arrayBuffer().then(async (body) => {
    if (purges !== generation) return;
    if (memory) remember(key, { status: response.status, headers, body, etag: etagOf(headers), tags: tagList, expires });
    if (http) {
      const entry = JSON.stringify({ headers, tags: tagList, expires });
      await caches.default.put(httpKey(key), new Response(body, {
        status: response.status,
        headers: { 'cache-control': 'max-age=' + seconds, 'x-edge-entry': entry },
      }));
    }
  }).catch(() => {});
  waitUntil(stored);
  return new Response(send, { status: response.status, statusText: response.statusText, headers: response.headers });
}

export function edge_purge_all() {
  purges++;
  entries.clear();
  byTag.clear();
  used = 0;
}

export function edge_purge(tag, useHttp) {
  purges++;
  const keys = byTag.get(tag);
  const gone = keys === undefined ? [] : [...keys];
  for (const k of gone) drop(k);
  // The HTTP tier can only be purged by key: those this isolate kept under the tag.
  return useHttp ? Promise.all(gone.map((k) => caches.default.delete(httpKey(k)))).catch(() => {}) : Promise.resolve();
}
"#)]
extern "C" {
    /// The headers as `name\nvalue\nname\nvalue…` (neither may hold a line break).
    pub fn header_lines(headers: &web_sys::Headers) -> String;
    fn edge_lookup(key: &str, if_none_match: Option<String>, use_http: bool) -> js_sys::Promise;
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
    fn edge_purge_all();
    fn edge_generation() -> f64;
}

pub struct JsEdgeCache {
    pub tiers: EdgeTiers,
    pub background: Rc<dyn Background>,
}

impl JsEdgeCache {
    fn spawn(&self, promise: js_sys::Promise) {
        self.background.spawn(Box::pin(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        }));
    }
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
        let found = wasm_bindgen_futures::JsFuture::from(edge_lookup(key, if_none_match.map(str::to_string), self.tiers.http)).await;
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

    fn purge(&self, tag: &str) {
        if self.tiers.any() {
            self.spawn(edge_purge(tag, self.tiers.http));
        }
    }

    fn purge_all(&self) {
        edge_purge_all();
    }
}
