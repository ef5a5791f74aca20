// bench/r2sim.sh's plain-JS Worker: the same R2 and stream operations the registry's Worker
// does on a blob, with no wasm and nothing else, so their cost is the runtime's and the local
// R2 simulator's. ?u= is an upstream URL answering with a Content-Length.
//   /pass?u=             the upstream body straight to the client (no R2)
//   /put?k=&u=&sha=      one streamed put of the upstream body (sha256 checked by R2)
//   /mput?k=&u=&size=&part=  a multipart upload of it, one ranged upstream GET per part
//   /get?k=              the object's body straight to the client
//   /head?k=             200 once the object exists (a tee's put has finished), else 404
//   /delete?k=           deletes it
//   /tee?k=&u=&sha=      the upstream body to the client and, through a tee, into one put
//                        (a cold fill's shape, without the registry's verification gate);
//                        &client=pieces / &store=pieces re-read that branch in 256 KiB pieces
//   /small?op=&n=&size=  n sequential small operations (op: put, get, head, miss = a get of
//                        a key that is not there) on `size`-byte objects: what one R2
//                        operation costs, as a registry's metadata reads and writes are
//   /const?n=            n bytes from memory: the runtime's floor for a cached answer (what
//                        no Worker in this runtime can beat; bench/cargo.sh measures it)
// The registry's way of re-reading a body in 256 KiB pieces (src/platform/stream.rs).
function pieces(readable, size) {
  const reader = readable.getReader({ mode: 'byob' });
  return new ReadableStream({
    async pull(controller) {
      for (;;) {
        const { value, done } = await reader.readAtLeast(size, new Uint8Array(size));
        if (value !== undefined && value.byteLength > 0) { controller.enqueue(value); return; }
        if (done) { controller.close(); return; }
      }
    },
    cancel(reason) { return reader.cancel(reason); },
  });
}
function fixedLength(readable, length) {
  const f = new FixedLengthStream(length);
  readable.pipeTo(f.writable).catch(() => {});
  return f.readable;
}
let kept = new Uint8Array(0);
const constant = (n) => (kept.byteLength === n ? kept : (kept = new Uint8Array(n).fill(0x20)));
const hex = (h) => new Uint8Array(h.match(/../g).map((x) => parseInt(x, 16)));
const headers = (n) => ({ 'content-length': String(n), 'content-encoding': 'identity' });

export default {
  async fetch(req, env, ctx) {
    const u = new URL(req.url);
    const q = (k) => u.searchParams.get(k);
    const t0 = Date.now();
    const opts = q('sha') ? { sha256: hex(q('sha')) } : {};
    switch (u.pathname) {
      case '/small': {
        const n = Number(q('n')), body = new Uint8Array(Number(q('size'))).fill(0x61);
        for (let i = 0; i < n; i++) {
          const k = 'small/' + i;
          switch (q('op')) {
            case 'put': await env.BUCKET.put(k, body); break;
            case 'get': await (await env.BUCKET.get(k)).arrayBuffer(); break;
            case 'head': await env.BUCKET.head(k); break;
            case 'miss': await env.BUCKET.get('missing/' + i); break;
            default: return new Response('unknown op', { status: 400 });
          }
        }
        return Response.json({ ms: Date.now() - t0 });
      }
      case '/const': return new Response(constant(Number(q('n'))), { headers: { 'content-type': 'application/json' } });
      case '/pass': {
        const r = await fetch(q('u'));
        return new Response(r.body, { headers: headers(r.headers.get('content-length')) });
      }
      case '/put': {
        const r = await fetch(q('u'));
        const o = await env.BUCKET.put(q('k'), r.body, opts);
        return Response.json({ ms: Date.now() - t0, size: o.size });
      }
      case '/mput': {
        const size = Number(q('size')), part = Number(q('part'));
        const m = await env.BUCKET.createMultipartUpload(q('k'));
        const parts = [];
        for (let off = 0, n = 1; off < size; off += part, n++) {
          const r = await fetch(`${q('u')}&off=${off}&len=${Math.min(part, size - off)}`);
          parts.push(await m.uploadPart(n, r.body));
        }
        const o = await m.complete(parts);
        return Response.json({ ms: Date.now() - t0, size: o.size });
      }
      case '/get': {
        const o = await env.BUCKET.get(q('k'));
        if (o === null) return new Response('not found', { status: 404 });
        return new Response(o.body, { headers: headers(o.size) });
      }
      case '/tee': {
        const r = await fetch(q('u'));
        const length = Number(r.headers.get('content-length'));
        let [client, store] = r.body.tee();
        // &client=pieces: the client's branch re-read in pieces (as the registry's gate does)
        if (q('client') === 'pieces') client = fixedLength(pieces(client, 256 * 1024), length);
        if (q('store') === 'pieces') store = fixedLength(pieces(store, 256 * 1024), length);
        ctx.waitUntil(env.BUCKET.put(q('k'), store, opts));
        return new Response(client, { headers: headers(length) });
      }
      case '/delete':
        await env.BUCKET.delete(q('k'));
        return new Response(null, { status: 204 });
      case '/head':
        return new Response(null, { status: (await env.BUCKET.head(q('k'))) === null ? 404 : 200 });
      default:
        return new Response('r2sim');
    }
  },
};
