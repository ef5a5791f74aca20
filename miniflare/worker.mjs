// Runs the built Worker as `wrangler dev` does (wrangler's own startWorker API, wrangler.toml,
// local R2/KV/Durable Objects persisted under STATE_DIR, the same workerd), but with no file
// watching and wrangler's devtools inspector off. The tests and benchmarks use it.
// Watching: `wrangler dev` reloads the Worker when it sees its sources or build change (its
// custom build watches `src/` even with watching off, so the custom build is off here), and
// its proxy answers a PUT/POST caught by a reload with 503 "Your worker restarted mid-request"
// (seen in CI on a concurrent-publish test); nothing here ever needs a reload.
// Inspector: `wrangler dev` cannot turn it off from the command line, and its
// InspectorProxyWorker enables the Network domain on the Worker's isolate and forwards every
// event (one `Network.dataReceived` per chunk of every subrequest body) to the wrangler node
// process as an HTTP POST, besides buffering each one while no devtools client is attached:
// a pull-through cache streaming 1 GiB from its upstream then spends more CPU on that than on
// the bytes, and the wrangler process runs out of heap (see README, Benchmarks).
//   node worker.mjs --port PORT --persist STATE_DIR [--local-protocol http|https]
//                   [--log-level warn|info|log|debug] [--var NAME:VALUE]... [--config WRANGLER_TOML]
// (--config: another Worker, e.g. bench/lib/r2sim/wrangler.toml; default this repo's wrangler.toml)
// Runs until SIGTERM/SIGINT; the build must exist (build/worker/shim.mjs).
// It also prints `worker.mjs: direct URL`, the Worker's own listener behind wrangler's proxy:
// plain-HTTP tests talk to it. That proxy (a second workerd in front of the Worker, absent in
// production) holds up requests after the Worker refuses a chunked body it has partly read
// (it answers 503 "Your worker restarted mid-request" or stops answering for minutes), and
// adds a hop to every request.
// Two repairs of the local runtime, neither of which exists in production:
// R2 simulator backpressure: miniflare's R2 simulator (a Durable Object in workerd, compatibility
// date 2023-07-24) reads a multipart object by piping part after part through a JS
// TransformStream, and before workerd's `fixup-transform-stream-backpressure` flag (default
// from 2024-12-16) such a stream applies no backpressure: one GET of a 1 GiB multipart blob
// pulled the whole object into workerd's memory (RSS +1.1 GB) while the client read at
// 30-60 MB/s, and workerd's thread did nothing else until it had (every other request, a
// /-/health included, waited 4-14 s). A single-put object, streamed natively, never did. We
// give the simulator's service that flag; see backpressureInR2Simulator below.
// A dead runtime: miniflare does not notice its workerd process exiting, and wrangler's proxy
// in front of it (a second workerd) then holds every request forever without an answer. We
// watch the runtime's processes and exit when one disappears, saying so.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
let port, persist, logLevel = 'warn', secure = false, config = path.join(root, 'wrangler.toml');
const bindings = {};
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--port') port = Number(args[++i]);
  else if (a === '--persist') persist = path.resolve(args[++i]);
  else if (a === '--log-level') logLevel = args[++i];
  else if (a === '--local-protocol') secure = args[++i] === 'https';
  else if (a === '--config') config = path.resolve(args[++i]);
  else if (a === '--var') { const v = args[++i]; const k = v.indexOf(':'); bindings[v.slice(0, k)] = { type: 'plain_text', value: v.slice(k + 1) }; }
  else { console.error(`worker.mjs: unknown argument ${a}`); process.exit(2); }
}
if (!(port > 0) || !persist) { console.error('usage: worker.mjs --port PORT --persist STATE_DIR [--var NAME:VALUE]...'); process.exit(2); }
process.env.EDGEREGISTRY_SKIP_BUILD = '1';
process.env.CLOUDFLARE_CF_FETCH_ENABLED = 'false';
process.env.WRANGLER_SEND_METRICS = 'false';

const wranglerCli = path.join(root, 'miniflare/node_modules/wrangler/wrangler-dist/cli.js');
backpressureInR2Simulator(createRequire(wranglerCli)('miniflare'));
const { unstable_DevEnv } = await import(wranglerCli);
const devEnv = new unstable_DevEnv();
// Where the Worker itself listens: told to the proxy once the runtime is ready.
let reportDirect;
const direct = new Promise((resolve) => { reportDirect = resolve; });
const onReloadComplete = devEnv.proxy.onReloadComplete.bind(devEnv.proxy);
devEnv.proxy.onReloadComplete = (event) => {
  const u = event?.proxyData?.userWorkerUrl;
  if (u) reportDirect(`${u.protocol}//${u.hostname}:${u.port}`);
  return onReloadComplete(event);
};
const worker = await devEnv.startWorker({
  config,
  // No custom build: wrangler would watch `src/` for it whatever `dev.watch` says, and reload
  // the Worker (a new runtime on a new port, requests in flight reset) when a file changes.
  build: { custom: { command: '' } },
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
console.log(`worker.mjs: direct ${await direct}/`);
let stopping = false;
const stop = async (code = 0) => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(code), 10000).unref();
  try { await worker.dispose(); } finally { process.exit(code); }
};
process.on('SIGTERM', () => stop());
process.on('SIGINT', () => stop());
watchRuntimes();

// Adds `fixup-transform-stream-backpressure` to the compatibility flags of miniflare's R2
// simulator service (the worker holding the R2BucketObject Durable Object), whichever
// Miniflare instance wrangler creates. `miniflare` is resolved from wrangler's own location, so
// this is the module instance wrangler uses. Fails loudly if a miniflare upgrade moves things.
function backpressureInR2Simulator(miniflare) {
  const FLAG = 'fixup-transform-stream-backpressure';
  const r2 = miniflare.PLUGINS?.r2;
  if (typeof r2?.getServices !== 'function') throw new Error('worker.mjs: miniflare has no R2 plugin to patch (PLUGINS.r2.getServices)');
  const getServices = r2.getServices;
  r2.getServices = async function (opts) {
    const result = await getServices.call(this, opts);
    const services = Array.isArray(result) ? result : result?.services ?? [];
    const buckets = Object.keys(opts?.options?.r2Buckets ?? {}).length;
    const simulators = services.filter((s) => s.worker?.durableObjectNamespaces?.some((ns) => ns.className === 'R2BucketObject'));
    if (buckets > 0 && simulators.length === 0) throw new Error('worker.mjs: no R2BucketObject service found to give ' + FLAG);
    for (const s of simulators) {
      const flags = s.worker.compatibilityFlags ?? [];
      if (!flags.includes(FLAG)) s.worker.compatibilityFlags = [...flags, FLAG];
    }
    return result;
  };
}

// The runtime processes (workerd) this process started: the Worker's and wrangler's proxy's.
function runtimes() {
  const found = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === process.pid && name === 'workerd' && state !== 'Z') found.push(Number(pid));
    } catch {}
  }
  return found;
}

function watchRuntimes() {
  if (!fs.existsSync('/proc/self/stat')) return;
  let watched = runtimes(), missing = 0;
  console.log(`worker.mjs: runtime processes ${watched.join(' ')}`);
  const timer = setInterval(() => {
    const alive = runtimes();
    const gone = watched.filter((p) => !alive.includes(p));
    // A runtime miniflare replaced itself (none do after startup here) is not a death: fewer
    // runtimes than before, twice in a row, is.
    if (gone.length === 0 || alive.length >= watched.length) {
      if (alive.length >= watched.length && alive.join(' ') !== watched.join(' ')) console.log(`worker.mjs: runtime processes ${alive.join(' ')}`);
      if (alive.length >= watched.length) watched = alive;
      missing = 0;
      return;
    }
    if (++missing < 2 || stopping) return;
    clearInterval(timer);
    console.error(`worker.mjs: runtime process ${gone.join(' ')} (workerd) exited unexpectedly (killed? out of memory? see dmesg); stopping, so that clients get refused connections instead of waiting for answers that cannot come`);
    stop(1);
  }, 1000);
  timer.unref();
}
