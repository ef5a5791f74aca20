// Writes a benchmark layer: SIZE bytes of deterministic pseudo-random data (AES-128-CTR
// keystream of a fixed key, the IV made from SEED: incompressible, identical on every run and
// machine, a different blob per seed), generated and hashed 1 MiB at a time, never all in
// memory. Prints one JSON line {"path","size","digest"}; the digest is also kept in OUT.sha256,
// and a layer that is already there with the right size and digest file is reused as it is.
//   node oci-layer.mjs OUT_FILE [SIZE=1073741824] [SEED=0]
import crypto from 'node:crypto';
import fs from 'node:fs';

const out = process.argv[2];
const size = Number(process.argv[3] || 1024 ** 3);
const seed = Number(process.argv[4] || 0);
if (!out || !(Number.isSafeInteger(size) && size > 0) || !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) {
  console.error('usage: oci-layer.mjs OUT_FILE [SIZE] [SEED]'); process.exit(2);
}
const sidecar = `${out}.sha256`;

const existing = (() => {
  try {
    const digest = fs.readFileSync(sidecar, 'utf8').trim();
    return fs.statSync(out).size === size && /^sha256:[0-9a-f]{64}$/.test(digest) ? digest : null;
  } catch { return null; }
})();
if (existing) {
  console.log(JSON.stringify({ path: out, size, seed, digest: existing, reused: true }));
  process.exit(0);
}

fs.rmSync(sidecar, { force: true });
const key = Buffer.from('edgeregistry-oci'), iv = Buffer.alloc(16, 0);
iv.writeUInt32BE(seed, 0);
const cipher = crypto.createCipheriv('aes-128-ctr', key, iv);
const hash = crypto.createHash('sha256');
const zeros = Buffer.alloc(1024 * 1024);
const fd = fs.openSync(`${out}.tmp`, 'w');
for (let done = 0; done < size;) {
  const n = Math.min(zeros.length, size - done);
  const block = cipher.update(n === zeros.length ? zeros : zeros.subarray(0, n));
  hash.update(block);
  fs.writeSync(fd, block);
  done += n;
}
fs.closeSync(fd);
fs.renameSync(`${out}.tmp`, out);
const digest = `sha256:${hash.digest('hex')}`;
fs.writeFileSync(sidecar, `${digest}\n`);
console.log(JSON.stringify({ path: out, size, seed, digest, reused: false }));
