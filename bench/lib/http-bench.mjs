// Tiny HTTP load generator: GETs (or HEADs) a list of URLs round-robin with a fixed concurrency
// over keep-alive connections, and prints one JSON line with throughput and latency.
//   node http-bench.mjs --requests N --concurrency C --warmup W [--method GET|HEAD] [--header 'Name: value']... URL...
// Bounded: exactly W + N requests, each with a 10 s timeout, and a 300 s overall deadline.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { options } from './cli.mjs';

const o = options('http-bench', {
  requests: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '16' },
  warmup: { type: 'string', default: '200' }, method: { type: 'string', default: 'GET' },
}, { positionals: true });
const requests = Number(o.requests), concurrency = Number(o.concurrency), warmup = Number(o.warmup);
const method = o.method.toUpperCase(), headers = o.headers, urls = o.positionals.map((u) => new URL(u));
if (!urls.length || !(requests > 0) || !(concurrency > 0) || !['GET', 'HEAD'].includes(method)) { console.error('usage: http-bench.mjs [opts] URL...'); process.exit(2); }

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const deadline = Date.now() + 300_000;
setTimeout(() => { console.error('http-bench: overall deadline hit'); process.exit(3); }, 300_000).unref();

function get(u) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.request({ method, agent, host: u.hostname, port: u.port, path: u.pathname + u.search, headers }, (res) => {
      let bytes = 0;
      res.on('data', (c) => { bytes += c.length; });
      res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0, bytes }));
      res.on('error', () => resolve({ status: 0, ms: performance.now() - t0, bytes }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t0, bytes: 0 }));
    req.end();
  });
}

async function run(total) {
  let next = 0;
  const lat = [], statuses = {};
  let bytes = 0;
  async function worker() {
    while (next < total && Date.now() < deadline) {
      const i = next++;
      const r = await get(urls[i % urls.length]);
      lat.push(r.ms); bytes += r.bytes;
      statuses[r.status] = (statuses[r.status] || 0) + 1;
    }
  }
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return { seconds: (performance.now() - t0) / 1000, lat, statuses, bytes };
}

if (warmup > 0) await run(warmup);
const r = await run(requests);
r.lat.sort((a, b) => a - b);
const pct = (p) => r.lat[Math.min(r.lat.length - 1, Math.floor((p / 100) * r.lat.length))];
const ok = r.statuses[200] || 0;
console.log(JSON.stringify({
  requests: r.lat.length, ok, statuses: r.statuses,
  rps: r.lat.length / r.seconds, seconds: r.seconds,
  p50_ms: pct(50), p99_ms: pct(99), avg_bytes: r.bytes / Math.max(1, r.lat.length),
}));
agent.destroy();
