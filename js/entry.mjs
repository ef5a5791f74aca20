// The Worker's entry (wrangler.toml `main`): the Rust Worker that worker-build makes
// (build/index.js), with a front door. A GET or HEAD whose answer this isolate keeps in the
// edge cache's memory, for anyone, is answered here without entering wasm (see
// js/edge.mjs `serveKept`); everything else goes to the Rust Worker. Entering wasm was most
// of what a kept answer cost: answered here, a Cargo index file went from ~1,570 to ~2,400
// req/s locally, close to what a JavaScript Worker answering a constant does (README,
// Benchmarks).
import RustWorker from '../build/index.js';

export * from '../build/index.js';

// Set by js/edge.mjs, which build/index.js holds (and evaluates before this module).
const serveKept = globalThis[Symbol.for('edgeregistry.serveKept')] ?? (() => undefined);

export default class EdgeRegistry extends RustWorker {
  fetch(request) {
    let kept;
    try {
      kept = serveKept(request);
    } catch {
      // Whatever went wrong, the Rust Worker can still answer.
    }
    return kept ?? super.fetch(request);
  }
}
