// An upstream for bench/r2sim.sh: GET /blob?size=N[&off=O&len=L] answers N (or L) bytes of a
// repeated 1 MiB pseudo-random block with a Content-Length; GET /sha?size=N its sha256 (hex).
//   node origin.mjs PORT
import crypto from 'node:crypto';
import http from 'node:http';

const MB = 1 << 20;
const block = Buffer.alloc(MB);
for (let i = 0; i < MB; i += 64) crypto.createHash('sha512').update(`r2sim ${i}`).digest().copy(block, i);
http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  const size = Number(u.searchParams.get('size'));
  if (u.pathname === '/sha') {
    const h = crypto.createHash('sha256');
    for (let left = size; left > 0; left -= MB) h.update(left >= MB ? block : block.subarray(0, left));
    res.end(h.digest('hex'));
    return;
  }
  const off = Number(u.searchParams.get('off') ?? 0);
  const end = off + Number(u.searchParams.get('len') ?? size - off);
  res.writeHead(200, { 'content-length': end - off, 'content-type': 'application/octet-stream' });
  let pos = off;
  const pump = () => {
    while (pos < end) {
      const s = pos % MB, n = Math.min(MB - s, end - pos);
      pos += n;
      if (!res.write(block.subarray(s, s + n))) { res.once('drain', pump); return; }
    }
    res.end();
  };
  pump();
}).listen(Number(process.argv[2]), '127.0.0.1');
