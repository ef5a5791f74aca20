// Pushes one image the way a client does, the layer as POST, PATCH…, PUT ?digest=; then a
// small config blob (POST + PUT with the body) and the OCI manifest referencing both, by tag.
// --mode chunked (default): PATCH chunks of --chunk bytes with Content-Range and
//   Content-Length (distribution spec "chunked upload"), each streamed from the layer file;
// --mode stream: one PATCH of the whole layer, no Content-Range, no Content-Length (sent with
//   chunked transfer encoding), as docker, containerd and crane push a layer.
// Prints one JSON line with the total time and its parts (every PATCH timed on its own).
//   node oci-push.mjs --base URL --repo NAME --tag TAG --layer FILE --digest sha256:HEX
//                     [--mode chunked|stream] [--chunk BYTES] [--header 'Name: value']... [--timeout SECONDS]
// Bounded: every request has the timeout (default 600 s), and so has the whole push.
import fs from 'node:fs';
import http from 'node:http';
import crypto from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { options } from './cli.mjs';

const o = options('oci-push', {
  base: { type: 'string' }, repo: { type: 'string' }, tag: { type: 'string', default: 'bench' },
  layer: { type: 'string' }, digest: { type: 'string' }, chunk: { type: 'string', default: String(48 * 1024 * 1024) },
  timeout: { type: 'string', default: '600' }, mode: { type: 'string', default: 'chunked' },
});
const mode = o.mode;
if (mode !== 'chunked' && mode !== 'stream') { console.error(`oci-push: unknown --mode ${mode}`); process.exit(2); }
const { base, repo, tag, layer, digest, headers } = o;
const chunk = Number(o.chunk), timeoutS = Number(o.timeout);
if (!base || !repo || !layer || !/^sha256:[0-9a-f]{64}$/.test(digest || '') || !(chunk > 0)) {
  console.error('usage: oci-push.mjs --base URL --repo NAME --layer FILE --digest sha256:HEX [opts]'); process.exit(2);
}
setTimeout(() => { console.error('oci-push: overall deadline hit'); process.exit(3); }, timeoutS * 1000).unref();
const size = fs.statSync(layer).size;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One request; `body` is a Buffer, a readable stream or nothing. Resolves with status, headers, text. */
function request(method, url, extra, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(url, base);
    const req = http.request({ method, agent, host: u.hostname, port: u.port, path: u.pathname + u.search, headers: { ...headers, ...extra } }, (res) => {
      const parts = [];
      res.on('data', (c) => { if (parts.length < 64) parts.push(c); });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString('utf8').slice(0, 2000) }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutS * 1000, () => req.destroy(new Error(`${method} ${u.pathname}: timeout`)));
    req.on('error', reject);
    if (body && typeof body.pipe === 'function') {
      body.on('error', (e) => req.destroy(e));
      body.pipe(req);
    } else req.end(body);
  });
}

function expect(r, status, what) {
  if (r.status !== status) throw new Error(`${what}: HTTP ${r.status} (wanted ${status}): ${r.text}`);
  return r;
}

const withDigest = (loc, d) => `${loc}${loc.includes('?') ? '&' : '?'}digest=${encodeURIComponent(d)}`;
const blobsUrl = `${base}/v2/${repo}/blobs/uploads/`;

/** POST, then PUT with the whole body: the small-blob path of every client. */
async function pushSmall(bytes, d) {
  const start = expect(await request('POST', blobsUrl, { 'content-length': '0' }), 202, 'config POST');
  expect(await request('PUT', withDigest(start.headers.location, d),
    { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) }, bytes), 201, 'config PUT');
}

const t0 = performance.now();
const lap = () => performance.now();
const out = { mode, bytes: size, chunk_bytes: mode === 'stream' ? size : chunk, chunks_ms: [] };
try {
  let t = lap();
  let r = expect(await request('POST', blobsUrl, { 'content-length': '0' }), 202, 'layer POST');
  out.post_ms = lap() - t;
  let location = r.headers.location;
  if (mode === 'stream') {
    t = lap();
    // Connection: close: after a large chunked-encoded request body, local workerd (with the
    // Worker before this change too) sometimes resets the connection when it is reused, so the
    // PUT that follows would fail with ECONNRESET; the PUT gets a new connection instead.
    r = await request('PATCH', location, { 'content-type': 'application/octet-stream', connection: 'close' },
      fs.createReadStream(layer, { highWaterMark: 1024 * 1024 }));
    expect(r, 202, 'streamed PATCH');
    out.chunks_ms.push(lap() - t);
    if (r.headers.range !== `0-${size - 1}`) throw new Error(`streamed PATCH: server says Range ${r.headers.range}`);
    location = r.headers.location || location;
  }
  for (let offset = 0; mode === 'chunked' && offset < size; offset += chunk) {
    const end = Math.min(size, offset + chunk) - 1;
    t = lap();
    r = await request('PATCH', location, {
      'content-type': 'application/octet-stream',
      'content-length': String(end - offset + 1),
      'content-range': `${offset}-${end}`,
    }, fs.createReadStream(layer, { start: offset, end, highWaterMark: 1024 * 1024 }));
    expect(r, 202, `PATCH ${offset}-${end}`);
    out.chunks_ms.push(lap() - t);
    if (r.headers.range !== `0-${end}`) throw new Error(`PATCH ${offset}-${end}: server says Range ${r.headers.range}`);
    location = r.headers.location || location;
  }
  t = lap();
  let put;
  for (let attempt = 0; ; attempt++) {
    try {
      put = await request('PUT', withDigest(location, digest), { 'content-length': '0' });
      // A PUT that was done before its connection broke: the blob is there.
      if (attempt > 0 && put.status === 404 && (await request('HEAD', `${base}/v2/${repo}/blobs/${digest}`, {})).status === 200) put.status = 201;
      break;
    } catch (e) {
      // The same local workerd quirk, on new connections too for a while after a 1 GiB
      // streamed PATCH (seen in runs of this script, with the Worker before this change too):
      // sent again with a growing pause, at most 6 times (a PUT without a body can be
      // repeated). The retries and pauses count in finalize_ms; put_retries says how many.
      if (e.code !== 'ECONNRESET' || attempt >= 6) throw e;
      out.put_retries = attempt + 1;
      await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
  }
  expect(put, 201, 'layer PUT ?digest=');
  out.finalize_ms = lap() - t;

  t = lap();
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digest] },
    config: { Labels: { 'org.opencontainers.image.description': 'edgeregistry OCI benchmark' } },
  }));
  const configDigest = `sha256:${crypto.createHash('sha256').update(config).digest('hex')}`;
  await pushSmall(config, configDigest);
  out.config_ms = lap() - t;

  t = lap();
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size }],
  }));
  r = expect(await request('PUT', `${base}/v2/${repo}/manifests/${tag}`,
    { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(manifest.length) }, manifest), 201, 'manifest PUT');
  out.manifest_ms = lap() - t;
  out.manifest_digest = `sha256:${crypto.createHash('sha256').update(manifest).digest('hex')}`;
  if (r.headers['docker-content-digest'] && r.headers['docker-content-digest'] !== out.manifest_digest) {
    throw new Error(`manifest PUT: server says ${r.headers['docker-content-digest']}, expected ${out.manifest_digest}`);
  }
  out.total_ms = lap() - t0;
  out.mbps = size / 1e6 / (out.total_ms / 1000);
  console.log(JSON.stringify(out));
  agent.destroy();
} catch (e) {
  console.error(`oci-push: ${e.message} (after ${out.chunks_ms.length} chunks, ${((lap() - t0) / 1000).toFixed(1)} s)`);
  console.error(`oci-push: chunk times so far (ms): ${out.chunks_ms.map((m) => m.toFixed(0)).join(' ')}`);
  process.exit(1);
}
