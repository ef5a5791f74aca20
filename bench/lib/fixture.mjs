// Writes the benchmark fixture: COUNT small packages bench-pkg-00.. (package.json + index.js),
// where the first 80% depend on one of the last 20% and half of those on another, and a
// project depending on all of them (so an install resolves exactly COUNT packages).
//   node fixture.mjs OUT_DIR [COUNT=50]
import fs from 'node:fs';
import path from 'node:path';

const out = process.argv[2];
const count = Number(process.argv[3] || 50);
if (!out || !(count >= 2 && count <= 100)) { console.error('usage: fixture.mjs OUT_DIR [COUNT<=100]'); process.exit(2); }
const name = (i) => `bench-pkg-${String(i).padStart(2, '0')}`;
const leaves = Math.max(1, Math.floor(count / 5));
const firstLeaf = count - leaves;

fs.rmSync(out, { recursive: true, force: true });
for (let i = 0; i < count; i++) {
  const deps = {};
  if (i < firstLeaf) deps[name(firstLeaf + (i % leaves))] = '^1.0.0';
  else if (i < firstLeaf + Math.floor(leaves / 2)) deps[name(firstLeaf + Math.floor(leaves / 2) + ((i - firstLeaf) % Math.ceil(leaves / 2)))] = '^1.0.0';
  const dir = path.join(out, 'packages', name(i));
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name: name(i), version: '1.0.0', description: `edgeregistry benchmark package ${i}`,
    main: 'index.js', license: 'MIT', dependencies: deps,
  }, null, 2) + '\n');
  const requires = Object.keys(deps).map((d) => `  require(${JSON.stringify(d)}),\n`).join('');
  fs.writeFileSync(path.join(dir, 'index.js'),
    `'use strict';\n// ${'x'.repeat(200)}\nmodule.exports = {\n  name: ${JSON.stringify(name(i))},\n  deps: [\n${requires}  ],\n};\n`);
}
const proj = path.join(out, 'project');
fs.mkdirSync(proj, { recursive: true });
const all = {};
for (let i = 0; i < count; i++) all[name(i)] = '^1.0.0';
fs.writeFileSync(path.join(proj, 'package.json'),
  JSON.stringify({ name: 'bench-project', version: '0.0.0', private: true, dependencies: all }, null, 2) + '\n');
console.log(`fixture: ${count} packages (${leaves} leaves) + project in ${out}`);
