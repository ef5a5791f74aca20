// Publishes package directories the way `npm publish` does, without starting npm once per
// package: packs each directory (every regular file under package/, deterministic tar, gzip),
// and PUTs the publish document (manifest + dist with shasum/integrity + the tarball as an
// attachment) to REGISTRY/NAME with the token. Prints one JSON line: count and seconds.
//   node npm-publish.mjs --registry URL --token TOKEN [--concurrency N] DIR...
// Bounded: every request has a 60 s timeout, and the whole run a 600 s deadline.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { options } from './cli.mjs';

const o = options('npm-publish', {
  registry: { type: 'string' }, token: { type: 'string' }, concurrency: { type: 'string', default: '2' },
}, { positionals: true });
const registry = o.registry?.replace(/\/+$/, ''), token = o.token, concurrency = Number(o.concurrency), dirs = o.positionals;
if (!registry || !token || !dirs.length || !(concurrency > 0)) {
  console.error('usage: npm-publish.mjs --registry URL --token TOKEN [--concurrency N] DIR...'); process.exit(2);
}
setTimeout(() => { console.error('npm-publish: overall deadline hit'); process.exit(3); }, 600_000).unref();

/** One ustar entry: header + data padded to 512 bytes. */
function tarEntry(name, data) {
  const h = Buffer.alloc(512);
  const put = (s, off, len) => h.write(s, off, Math.min(len, Buffer.byteLength(s)), 'utf8');
  const oct = (n, len) => n.toString(8).padStart(len - 1, '0') + '\0';
  put(name, 0, 100);
  put(oct(0o644, 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(data.length, 12), 124, 12);
  put(oct(499162500, 12), 136, 12); // npm's fixed mtime (1985-10-26)
  h.fill(' ', 148, 156);
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return [h, data, pad];
}

function pack(dir) {
  const files = [];
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) { if (e.name !== 'node_modules') walk(r); } else if (e.isFile()) files.push(r);
    }
  };
  walk('');
  const parts = files.flatMap((f) => tarEntry(`package/${f}`, fs.readFileSync(path.join(dir, f))));
  parts.push(Buffer.alloc(1024));
  return zlib.gzipSync(Buffer.concat(parts), { level: 9 });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
function put(url, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({
      method: 'PUT', agent, host: u.hostname, port: u.port, path: u.pathname,
      headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${token}`, 'npm-command': 'publish' },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`PUT ${u.pathname}: timeout`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function publish(dir) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const { name, version } = manifest;
  const tgz = pack(dir);
  const file = `${name.split('/').pop()}-${version}.tgz`;
  const doc = {
    _id: name, name, description: manifest.description,
    'dist-tags': { latest: version },
    versions: {
      [version]: {
        ...manifest, _id: `${name}@${version}`,
        dist: {
          shasum: crypto.createHash('sha1').update(tgz).digest('hex'),
          integrity: `sha512-${crypto.createHash('sha512').update(tgz).digest('base64')}`,
          tarball: `${registry}/${name}/-/${file}`,
        },
      },
    },
    _attachments: { [file]: { content_type: 'application/octet-stream', data: tgz.toString('base64'), length: tgz.length } },
  };
  const r = await put(`${registry}/${name.replace('/', '%2f')}`, Buffer.from(JSON.stringify(doc)));
  if (r.status !== 200 && r.status !== 201) throw new Error(`publish ${name}@${version}: HTTP ${r.status}: ${r.text.slice(0, 500)}`);
}

const t0 = performance.now();
let next = 0;
try {
  await Promise.all(Array.from({ length: Math.min(concurrency, dirs.length) }, async () => {
    while (next < dirs.length) await publish(dirs[next++]);
  }));
} catch (e) {
  console.error(`npm-publish: ${e.message}`);
  process.exit(1);
}
console.log(JSON.stringify({ published: dirs.length, seconds: (performance.now() - t0) / 1000 }));
agent.destroy();
