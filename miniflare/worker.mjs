// Runs the built Worker as `wrangler dev` does (wrangler's own startWorker API, wrangler.toml,
// local R2/KV/Durable Objects persisted under STATE_DIR, the same workerd), but with no file
// watching and wrangler's devtools inspector off. The tests and benchmarks use it.
// Watching: `wrangler dev` reloads the Worker when it sees its sources or build change, and
// its proxy answers a PUT/POST caught by a reload with 503 "Your worker restarted mid-request"
// (seen in CI on a concurrent-publish test); nothing here ever needs a reload.
// Inspector: `wrangler dev` cannot turn it off from the command line, and its
// InspectorProxyWorker enables the Network domain on the Worker's isolate and forwards every
// event (one `Network.dataReceived` per chunk of every subrequest body) to the wrangler node
// process as an HTTP POST, besides buffering each one while no devtools client is attached:
// a pull-through cache streaming 1 GiB from its upstream then spends more CPU on that than on
// the bytes, and the wrangler process runs out of heap (see README, Benchmarks).
//   node worker.mjs --port PORT --persist STATE_DIR [--local-protocol http|https]
//                   [--log-level warn|info|log|debug] [--var NAME:VALUE]...
// Runs until SIGTERM/SIGINT; the build must exist (build/worker/shim.mjs).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
let port, persist, logLevel = 'warn', secure = false;
const bindings = {};
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--port') port = Number(args[++i]);
  else if (a === '--persist') persist = path.resolve(args[++i]);
  else if (a === '--log-level') logLevel = args[++i];
  else if (a === '--local-protocol') secure = args[++i] === 'https';
  else if (a === '--var') { const v = args[++i]; const k = v.indexOf(':'); bindings[v.slice(0, k)] = { type: 'plain_text', value: v.slice(k + 1) }; }
  else { console.error(`worker.mjs: unknown argument ${a}`); process.exit(2); }
}
if (!(port > 0) || !persist) { console.error('usage: worker.mjs --port PORT --persist STATE_DIR [--var NAME:VALUE]...'); process.exit(2); }
process.env.EDGEREGISTRY_SKIP_BUILD = '1';
process.env.CLOUDFLARE_CF_FETCH_ENABLED = 'false';
process.env.WRANGLER_SEND_METRICS = 'false';

const { unstable_startWorker } = await import(path.join(root, 'miniflare/node_modules/wrangler/wrangler-dist/cli.js'));
const worker = await unstable_startWorker({
  config: path.join(root, 'wrangler.toml'),
  bindings,
  dev: {
    server: { hostname: '127.0.0.1', port, secure },
    inspector: false,
    persist,
    watch: false,
    liveReload: false,
    logLevel,
  },
});
await worker.ready;
console.log(`worker.mjs: ready on ${(await worker.url).href}`);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  try { await worker.dispose(); } finally { process.exit(0); }
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
