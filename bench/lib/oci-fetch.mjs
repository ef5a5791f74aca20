// Pulls one single-layer image the way a client does, timing each step: GET the manifest by
// tag (every manifest type in Accept), GET the config blob, then GET the layer blob streamed
// to nowhere. Prints one JSON line: the layer's bytes, time to its first byte, its time and
// MB/s (10^6 bytes), the manifest time, the whole pull's time, and each answer's X-Cache.
// With --verify the layer is also hashed and checked against the manifest (that costs client
// CPU: use it for a check, not a timed pull).
//   node oci-fetch.mjs --base URL --repo NAME --tag TAG [--header 'Name: value']... [--verify] [--timeout SECONDS]
import crypto from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { options } from './cli.mjs';

const o = options('oci-fetch', {
  base: { type: 'string' }, repo: { type: 'string' }, tag: { type: 'string', default: 'bench' },
  verify: { type: 'boolean', default: false }, timeout: { type: 'string', default: '900' },
});
const { base, repo, tag, verify, headers } = o;
const timeoutS = Number(o.timeout);
if (!base || !repo) { console.error('usage: oci-fetch.mjs --base URL --repo NAME --tag TAG [opts]'); process.exit(2); }
setTimeout(() => { console.error('oci-fetch: overall deadline hit'); process.exit(3); }, timeoutS * 1000).unref();
const ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, '
  + 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const fail = (m) => { console.error(`oci-fetch: ${m}`); process.exit(1); };

/** GET; the body is kept (small documents) or counted and optionally hashed (blobs). */
function get(path, extra, { keep = false, hash = null } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const u = new URL(`${base}${path}`);
    const req = http.get({ agent, host: u.hostname, port: u.port, path: u.pathname, headers: { ...headers, ...extra } }, (res) => {
      if (res.statusCode !== 200) {
        let text = '';
        res.on('data', (c) => { text += c; });
        res.on('end', () => reject(new Error(`GET ${u.pathname}: HTTP ${res.statusCode}: ${text.slice(0, 500)}`)));
        return;
      }
      const parts = [];
      let bytes = 0, ttfb = null;
      res.on('data', (c) => {
        if (ttfb === null) ttfb = performance.now() - t0;
        bytes += c.length;
        if (keep) parts.push(c);
        if (hash) hash.update(c);
      });
      res.on('error', reject);
      res.on('end', () => {
        const length = res.headers['content-length'];
        if (length !== undefined && Number(length) !== bytes) return reject(new Error(`GET ${u.pathname}: ${bytes} bytes, Content-Length said ${length}`));
        if (!res.complete) return reject(new Error(`GET ${u.pathname}: connection closed early after ${bytes} bytes`));
        resolve({ bytes, ttfb_ms: ttfb ?? 0, ms: performance.now() - t0, body: keep ? Buffer.concat(parts) : null, cache: res.headers['x-cache'] ?? null });
      });
    });
    req.setTimeout(timeoutS * 1000, () => req.destroy(new Error(`GET ${u.pathname}: timeout`)));
    req.on('error', reject);
  });
}

try {
  const t0 = performance.now();
  const m = await get(`/v2/${repo}/manifests/${tag}`, { accept: ACCEPT }, { keep: true });
  const manifest = JSON.parse(m.body.toString('utf8'));
  const layer = manifest.layers?.[0];
  if (!layer || !manifest.config) fail(`unexpected manifest: ${m.body.toString('utf8').slice(0, 300)}`);
  const c = await get(`/v2/${repo}/blobs/${manifest.config.digest}`, {}, { keep: true });
  const hash = verify ? crypto.createHash('sha256') : null;
  const b = await get(`/v2/${repo}/blobs/${layer.digest}`, {}, { hash });
  if (b.bytes !== layer.size) fail(`layer: got ${b.bytes} bytes, the manifest says ${layer.size}`);
  const out = {
    bytes: b.bytes, ttfb_ms: b.ttfb_ms, blob_ms: b.ms, mbps: b.bytes / 1e6 / (b.ms / 1000),
    manifest_ms: m.ms, config_ms: c.ms, total_ms: performance.now() - t0,
    cache: { manifest: m.cache, config: c.cache, layer: b.cache },
  };
  if (hash) {
    out.digest = `sha256:${hash.digest('hex')}`;
    if (out.digest !== layer.digest) fail(`layer content is ${out.digest}, the manifest says ${layer.digest}`);
  }
  console.log(JSON.stringify(out));
  agent.destroy();
} catch (e) {
  fail(e.message);
}
