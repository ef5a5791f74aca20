// A forwarding proxy in front of an origin registry whose behaviour can be switched while it
// runs, to see how a mirror behind it copes when its upstream misbehaves:
//   healthy  forward every request to the origin
//   down     stop listening (connections are refused)
//   error    answer every request with 500
//   hang     accept requests and never answer
// The mode is set through a control port: `curl -X PUT http://127.0.0.1:CONTROL/MODE`.
// Prints one JSON line {"port", "control"} once both listen.
//   node fault-proxy.mjs ORIGIN_URL
import http from 'node:http';

const origin = new URL(process.argv[2] || '');
let mode = 'healthy';
let port = 0;
const hung = new Set();

const proxy = http.createServer((req, res) => {
  if (mode === 'error') {
    res.writeHead(500, { 'content-type': 'text/plain' }).end('injected failure\n');
    return;
  }
  if (mode === 'hang') {
    hung.add(res);
    res.on('close', () => hung.delete(res));
    return;
  }
  const upstream = http.request(
    { host: origin.hostname, port: origin.port, method: req.method, path: req.url, headers: { ...req.headers, host: origin.host } },
    (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    },
  );
  upstream.on('error', () => res.destroy());
  req.pipe(upstream);
});
proxy.keepAliveTimeout = 60_000;

function listen() {
  return new Promise((resolve) => proxy.listen(port, '127.0.0.1', () => {
    port = proxy.address().port;
    resolve();
  }));
}

const control = http.createServer(async (req, res) => {
  const want = req.url.slice(1);
  if (!['healthy', 'down', 'error', 'hang'].includes(want)) {
    res.writeHead(400).end(`unknown mode ${want}\n`);
    return;
  }
  for (const r of hung) r.destroy();
  hung.clear();
  if (want === 'down' && proxy.listening) {
    proxy.close();
    proxy.closeAllConnections();
  } else if (want !== 'down' && !proxy.listening) {
    await listen();
  }
  mode = want;
  res.writeHead(200).end(`${mode}\n`);
});

await listen();
control.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port, control: control.address().port }));
});
