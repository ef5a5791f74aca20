// Pushes a one-layer image to an origin registry with the layer generated on the fly: SIZE
// bytes of deterministic pseudo-random data (AES-128-CTR keystream of a fixed key, IV from
// SEED: incompressible, identical on every run) streamed in one PATCH while it is hashed, so
// it is never on disk nor all in memory; then PUT ?digest=, a small config blob and the OCI
// manifest by tag. Prints one JSON line: layer and manifest digests, sizes, seconds.
//   node oci-origin.mjs --base URL --repo NAME --tag TAG --size BYTES [--seed N] [--header 'Name: value']...
// Bounded: every request and the whole push time out after 900 s.
import crypto from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { options } from './cli.mjs';

const o = options('oci-origin', {
  base: { type: 'string' }, repo: { type: 'string' }, tag: { type: 'string', default: 'bench' },
  size: { type: 'string' }, seed: { type: 'string', default: '0' },
});
const { base, repo, tag, headers } = o;
const size = Number(o.size), seed = Number(o.seed);
if (!base || !repo || !(Number.isSafeInteger(size) && size > 0)) {
  console.error('usage: oci-origin.mjs --base URL --repo NAME --tag TAG --size BYTES [opts]'); process.exit(2);
}
const TIMEOUT_MS = 900_000;
setTimeout(() => { console.error('oci-origin: overall deadline hit'); process.exit(3); }, TIMEOUT_MS).unref();
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(method, url, extra, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(url, base);
    const req = http.request({ method, agent, host: u.hostname, port: u.port, path: u.pathname + u.search, headers: { ...headers, ...extra } }, (res) => {
      const parts = [];
      res.on('data', (c) => { if (parts.length < 64) parts.push(c); });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString('utf8').slice(0, 2000) }));
      res.on('error', reject);
    });
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`${method} ${u.pathname}: timeout`)));
    req.on('error', reject);
    if (body && typeof body.pipe === 'function') { body.on('error', (e) => req.destroy(e)); body.pipe(req); } else req.end(body);
  });
}
const expect = (r, status, what) => {
  if (r.status !== status) throw new Error(`${what}: HTTP ${r.status} (wanted ${status}): ${r.text}`);
  return r;
};
const withDigest = (loc, d) => `${loc}${loc.includes('?') ? '&' : '?'}digest=${encodeURIComponent(d)}`;
const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
const uploads = `${base}/v2/${repo}/blobs/uploads/`;

/** The layer: 1 MiB blocks of keystream, hashed as they go out. */
function layerStream(hash) {
  const key = Buffer.from('edgeregistry-oci'), iv = Buffer.alloc(16, 0);
  iv.writeUInt32BE(seed >>> 0, 0);
  const cipher = crypto.createCipheriv('aes-128-ctr', key, iv);
  const zeros = Buffer.alloc(1024 * 1024);
  let done = 0;
  return new Readable({
    highWaterMark: 4 * 1024 * 1024,
    read() {
      if (done >= size) { this.push(null); return; }
      const n = Math.min(zeros.length, size - done);
      const block = cipher.update(n === zeros.length ? zeros : zeros.subarray(0, n));
      hash.update(block);
      done += n;
      this.push(block);
    },
  });
}

const t0 = performance.now();
try {
  let r = expect(await request('POST', uploads, { 'content-length': '0' }), 202, 'layer POST');
  const hash = crypto.createHash('sha256');
  r = await request('PATCH', r.headers.location, { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' }, layerStream(hash));
  expect(r, 202, 'layer PATCH');
  const digest = `sha256:${hash.digest('hex')}`;
  expect(await request('PUT', withDigest(r.headers.location, digest), { 'content-length': '0' }), 201, 'layer PUT ?digest=');

  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digest] },
    config: { Labels: { 'org.opencontainers.image.description': 'edgeregistry pull-through benchmark' } },
  }));
  const configDigest = sha256(config);
  r = expect(await request('POST', uploads, { 'content-length': '0' }), 202, 'config POST');
  expect(await request('PUT', withDigest(r.headers.location, configDigest),
    { 'content-type': 'application/octet-stream', 'content-length': String(config.length) }, config), 201, 'config PUT');

  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size }],
  }));
  expect(await request('PUT', `${base}/v2/${repo}/manifests/${tag}`,
    { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(manifest.length) }, manifest), 201, 'manifest PUT');
  console.log(JSON.stringify({ layer_digest: digest, size, config_digest: configDigest, manifest_digest: sha256(manifest), seconds: (performance.now() - t0) / 1000 }));
  agent.destroy();
} catch (e) {
  console.error(`oci-origin: ${e.message}`);
  process.exit(1);
}
