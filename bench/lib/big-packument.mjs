// Writes one big package straight into a verdaccio storage directory (publishing thousands of
// versions one by one would rewrite the growing document each time): NAME with as many
// versions 0.0.N as it takes to make its stored document about TARGET_MB (10^6 bytes), each
// version with a full manifest in the shape npmjs serves (description, keywords, scripts, ~60
// dependencies and devDependencies, maintainers, dist with tarball/shasum/integrity) and a
// time entry, plus a 1 MB readme. Deterministic. The tarballs do not exist: the benchmark
// only fetches the document. Written version by version, never all in memory.
//   node big-packument.mjs STORAGE_DIR NAME TARGET_MB ORIGIN_URL
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const [storage, name, targetMb, origin] = process.argv.slice(2);
if (!storage || !name || !(Number(targetMb) > 0) || !origin) {
  console.error('usage: big-packument.mjs STORAGE_DIR NAME TARGET_MB ORIGIN_URL'); process.exit(2);
}
const target = Number(targetMb) * 1e6;
const dir = path.join(storage, name);
fs.mkdirSync(dir, { recursive: true });
const file = path.join(dir, 'package.json');
const fd = fs.openSync(`${file}.tmp`, 'w');
let written = 0;
const write = (s) => { written += fs.writeSync(fd, s); };
const h = (s, alg = 'sha1') => crypto.createHash(alg).update(s);
const words = (seed, n) => Array.from({ length: n }, (_, i) => h(`${seed}/${i}`).digest('hex').slice(0, 4 + (i % 7))).join(' ');
const base = new Date('2020-01-01T00:00:00Z').getTime();

const readme = `# ${name}\n\n${Array.from({ length: 2500 }, (_, i) => `${words(`readme${i}`, 50)}\n`).join('').slice(0, 1_000_000)}`;
const manifest = (v, i) => {
  const deps = {}, dev = {};
  for (let d = 0; d < 60; d++) deps[`dependency-${(i * 7 + d) % 500}-${d}`] = `^${d % 9}.${i % 13}.${d % 5}`;
  for (let d = 0; d < 60; d++) dev[`@scope-${d % 11}/dev-tool-${(i + d) % 300}`] = `~${d % 4}.${d}.0`;
  return {
    name, version: v, description: words(`desc${i}`, 40), main: 'lib/index.js', types: 'lib/index.d.ts',
    keywords: words(`kw${i}`, 20).split(' '),
    scripts: { build: 'tsc -p .', test: 'node --test test/', lint: 'eslint .', prepublishOnly: 'npm run build' },
    repository: { type: 'git', url: `git+https://example.invalid/${name}.git` },
    author: { name: 'Bench Author', email: 'bench@example.invalid' },
    license: 'MIT', dependencies: deps, devDependencies: dev,
    engines: { node: '>=18' }, gitHead: h(`git${i}`).digest('hex'),
    _id: `${name}@${v}`, _nodeVersion: '20.11.0', _npmVersion: '10.2.4',
    dist: {
      shasum: h(`tgz${i}`).digest('hex'),
      integrity: `sha512-${h(`tgz${i}`, 'sha512').digest('base64')}`,
      tarball: `${origin.replace(/\/+$/, '')}/${name}/-/${name}-${v}.tgz`,
      fileCount: 42, unpackedSize: 123456 + i,
    },
    maintainers: [{ name: 'bench', email: 'bench@example.invalid' }],
    directories: {},
  };
};

write(`{"name":${JSON.stringify(name)},"versions":{`);
const times = [];
let n = 0;
while (written + readme.length + times.length * 40 < target) {
  const v = `0.0.${n}`;
  write(`${n ? ',' : ''}${JSON.stringify(v)}:${JSON.stringify(manifest(v, n))}`);
  times.push([v, new Date(base + n * 3_600_000).toISOString()]);
  n++;
}
const latest = `0.0.${n - 1}`;
const time = { modified: times[n - 1][1], created: times[0][1], ...Object.fromEntries(times) };
write(`},"time":${JSON.stringify(time)},"users":{},"dist-tags":{"latest":${JSON.stringify(latest)}},`);
write(`"_uplinks":{},"_distfiles":{},"_attachments":{},"_rev":"1-${h(name).digest('hex').slice(0, 16)}","_id":${JSON.stringify(name)},`);
write(`"readme":${JSON.stringify(readme)}}`);
fs.closeSync(fd);
fs.renameSync(`${file}.tmp`, file);
console.log(JSON.stringify({ name, versions: n, bytes: written }));
