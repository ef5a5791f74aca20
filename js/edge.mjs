// The edge cache of the Worker (the JavaScript half of src/platform/cloudflare/edge.rs): this
// isolate's memory, then the data center's HTTP cache through the Cache API
// (`caches.default`). Bodies stay on the JavaScript side: a hit never copies one into wasm,
// and bodies kept in memory count against the isolate's heap, not the wasm memory.
//
// The front door (`serveKept`, called by js/entry.mjs) answers a request from memory before
// it enters wasm at all, which is most of what a hit costs. It knows an answer by the
// request's own URL and Accept ("door key"), learned each time wasm finds or keeps that answer
// for a request without credentials: the Rust side computes the real key (protocol, decoded
// query, reader rules) and this side only remembers which door keys led to it.

// Memory tier: key -> { status, headers (array of [name, value]), body (ArrayBuffer or null),
// etag, tags, expires (ms), doors (door keys that lead here) }; a Map keeps insertion order,
// so re-inserting on a hit makes it LRU.
const entries = new Map();
const byTag = new Map();
// Door key -> key, for the front door.
const doors = new Map();
// Door keys remembered per entry: one answer reached by more URLs than this (the same query
// spelled differently) is served by wasm for the rest.
const DOORS_PER_ENTRY = 8;
// Keys this isolate put in the HTTP tier, by tag, so a purge can delete them (bounded: the
// HTTP tier's own expiry covers what this forgets).
const httpByTag = new Map();
const HTTP_TAGGED = 10000;
let used = 0;
// Counts purges: an answer made while one happened may hold what was there before it.
let purges = 0;
let doorHits = 0;
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
  for (const d of e.doors) if (doors.get(d) === key) doors.delete(d);
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

// The front door's key for a request wasm may answer from the edge cache for anyone: a GET or
// HEAD with no credentials, cookie, range or date to compare (as the router's `edge_key`
// requires). Null when the request is not such a one.
function doorOf(request) {
  if (request === null || request === undefined) return null;
  const method = request.method;
  if (method !== 'GET' && method !== 'HEAD') return null;
  const h = request.headers;
  if (h.has('authorization') || h.has('cookie') || h.has('range') || h.has('if-modified-since')) return null;
  return (method === 'HEAD' ? 'HEAD ' : '') + request.url + '\n' + (h.get('accept') ?? '');
}

// `door` leads to `key` from now on (wasm found or kept that answer for the request).
function open(door, key) {
  const e = entries.get(key);
  if (door === null || e === undefined || e.doors.has(door) || e.doors.size >= DOORS_PER_ENTRY) return;
  const before = doors.get(door);
  if (before !== undefined && before !== key) entries.get(before)?.doors.delete(door);
  doors.set(door, key);
  e.doors.add(door);
}

// Whether `ifNoneMatch` names the entry's ETag.
const unchanged = (e, ifNoneMatch) => Boolean(ifNoneMatch && e.etag && ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === e.etag));

function answer(e, ifNoneMatch) {
  if (unchanged(e, ifNoneMatch)) return new Response(null, { status: 304, headers: [['etag', e.etag]] });
  return new Response(e.body, { status: e.status, headers: e.headers });
}

// A fresh entry from memory, made the most recently used.
function fresh(key, now) {
  const e = entries.get(key);
  if (e === undefined) return undefined;
  if (e.expires <= now) { drop(key); return undefined; }
  entries.delete(key);
  entries.set(key, e);
  return e;
}

// The front door: the answer for `request` if memory holds one it may be given, else
// undefined (wasm answers). What it sends is what the router sends for an edge-cache hit
// (`App::handle`): the kept answer or a 304, X-Cache rewritten to HIT, X-Edge-Cache: HIT,
// nosniff, and no body for a HEAD.
export function serveKept(request) {
  if (doors.size === 0) return undefined;
  const door = doorOf(request);
  if (door === null) return undefined;
  const head = request.method === 'HEAD';
  // A HEAD's own answer first, then the GET's (as the router looks them up).
  const key = doors.get(door) ?? (head ? doors.get(door.slice('HEAD '.length)) : undefined);
  if (key === undefined) return undefined;
  const e = fresh(key, Date.now());
  if (e === undefined) return undefined;
  doorHits++;
  if (unchanged(e, request.headers.get('if-none-match'))) {
    return new Response(null, { status: 304, headers: [['etag', e.etag], ['x-edge-cache', 'HIT'], ['x-content-type-options', 'nosniff']] });
  }
  e.hitHeaders ??= hitHeaders(e.headers);
  return new Response(head ? null : e.body, { status: e.status, headers: e.hitHeaders });
}

// A kept answer's headers as a hit carries them (made once per entry).
function hitHeaders(kept) {
  const out = kept.filter(([name]) => name !== 'x-edge-cache' && name !== 'x-content-type-options')
    .map(([name, value]) => [name, name === 'x-cache' ? 'HIT' : value]);
  out.push(['x-edge-cache', 'HIT'], ['x-content-type-options', 'nosniff']);
  return out;
}

export async function edge_lookup(key, ifNoneMatch, useMemory, useHttp, request) {
  const now = Date.now();
  const door = doorOf(request);
  const e = fresh(key, now);
  if (e !== undefined) {
    open(door, key);
    return answer(e, ifNoneMatch);
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
    if (unchanged(e, ifNoneMatch)) return answer(e, ifNoneMatch);
    return new Response(hit.body, { status: hit.status, headers });
  }
  // Small: into memory too, for this isolate's next requests.
  const entry = { status: hit.status, headers, body: await hit.arrayBuffer(), etag: etagOf(headers), tags, expires: Math.min(expires, now + 3600 * 1000), doors: new Set() };
  if (useMemory) { remember(key, entry); open(door, key); }
  return answer(entry, ifNoneMatch);
}

export function edge_generation() {
  return purges;
}

// What this isolate's edge cache holds (in the admin API's `GET /-/admin/stats`).
export function edge_stats() {
  return JSON.stringify({ entries: entries.size, bytes: used, doors: doors.size, door_hits: doorHits, purges });
}

function etagOf(headers) {
  const h = headers.find(([n]) => n.toLowerCase() === 'etag');
  return h === undefined ? null : h[1].replace(/^W\//, '');
}

// Keeps a copy of `response` as the client reads the other half of its body, and returns the
// response to send. Memory keeps bodies of a known length up to ENTRY_BYTES; the HTTP tier
// keeps immutable ones up to HTTP_BYTES, streamed into `cache.put` (never read whole here:
// a tee holds what its slower branch has not read yet, hence the bound). `request` is the one
// being answered, so that the front door learns its way to the copy.
export function edge_keep(key, tags, seconds, immutable, useMemory, useHttp, response, length, generation, waitUntil, request) {
  const memory = useMemory && length >= 0 && length <= ENTRY_BYTES;
  const http = useHttp && immutable && length >= 0 && length <= HTTP_BYTES && typeof caches !== 'undefined';
  const headers = [...response.headers];
  const tagList = tags.split('\n');
  const expires = Date.now() + seconds * 1000;
  const door = doorOf(request);
  const entry = (body) => ({ status: response.status, headers, body, etag: etagOf(headers), tags: tagList, expires, doors: new Set() });
  if (response.body === null) {
    if (useMemory && purges === generation) { remember(key, entry(null)); open(door, key); }
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
      open(door, key);
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
  doors.clear();
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

// js/entry.mjs reaches the front door here: this module is bundled into build/index.js, and
// a second copy of it would have memory of its own.
globalThis[Symbol.for('edgeregistry.serveKept')] = serveKept;
