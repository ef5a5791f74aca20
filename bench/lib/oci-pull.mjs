// Pulls one blob with a GET, streaming the body to nowhere, and prints one JSON line: bytes,
// time to the first body byte, total time and MB/s (10^6 bytes). With --digest the bytes are
// also hashed and checked (that costs client CPU: use it for a verification run, not a timed one).
//   node oci-pull.mjs [--header 'Name: value']... [--size BYTES] [--digest sha256:HEX] [--timeout SECONDS] URL
import crypto from 'node:crypto';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { options } from './cli.mjs';

const o = options('oci-pull', {
  size: { type: 'string' }, digest: { type: 'string' }, timeout: { type: 'string', default: '600' },
}, { positionals: true });
const { digest, headers } = o;
const size = o.size === undefined ? undefined : Number(o.size), timeoutS = Number(o.timeout);
const url = o.positionals.length ? new URL(o.positionals[0]) : null;
if (!url) { console.error('usage: oci-pull.mjs [opts] URL'); process.exit(2); }
setTimeout(() => { console.error('oci-pull: overall deadline hit'); process.exit(3); }, timeoutS * 1000).unref();

const fail = (m) => { console.error(`oci-pull: ${m}`); process.exit(1); };
const t0 = performance.now();
let ttfb = null, bytes = 0;
const hash = digest ? crypto.createHash('sha256') : null;
const req = http.get({ host: url.hostname, port: url.port, path: url.pathname + url.search, headers }, (res) => {
  if (res.statusCode !== 200) fail(`HTTP ${res.statusCode} for ${url.pathname}`);
  const length = Number(res.headers['content-length']);
  res.on('data', (c) => {
    if (ttfb === null) ttfb = performance.now() - t0;
    bytes += c.length;
    if (hash) hash.update(c);
  });
  res.on('error', (e) => fail(e.message));
  res.on('end', () => {
    const ms = performance.now() - t0;
    if (size !== undefined && bytes !== size) fail(`got ${bytes} bytes, expected ${size}`);
    if (res.headers['content-length'] !== undefined && length !== bytes) fail(`got ${bytes} bytes, Content-Length said ${length}`);
    const out = { bytes, ttfb_ms: ttfb, total_ms: ms, mbps: bytes / 1e6 / (ms / 1000), content_length: res.headers['content-length'] ?? null };
    if (hash) {
      out.digest = `sha256:${hash.digest('hex')}`;
      if (out.digest !== digest) fail(`content is ${out.digest}, expected ${digest}`);
    }
    console.log(JSON.stringify(out));
  });
});
req.setTimeout(timeoutS * 1000, () => req.destroy(new Error('timeout')));
req.on('error', (e) => fail(e.message));
