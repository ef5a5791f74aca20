var __defProp = Object.defineProperty;
var __name = (target, value) => __defProp(target, "name", { value, configurable: true });

// worker.mjs
function pieces(readable, size) {
  const reader = readable.getReader({ mode: "byob" });
  return new ReadableStream({
    async pull(controller) {
      for (; ; ) {
        const { value, done } = await reader.readAtLeast(size, new Uint8Array(size));
        if (value !== void 0 && value.byteLength > 0) {
          controller.enqueue(value);
          return;
        }
        if (done) {
          controller.close();
          return;
        }
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    }
  });
}
__name(pieces, "pieces");
function fixedLength(readable, length) {
  const f = new FixedLengthStream(length);
  readable.pipeTo(f.writable).catch(() => {
  });
  return f.readable;
}
__name(fixedLength, "fixedLength");
var hex = /* @__PURE__ */ __name((h) => new Uint8Array(h.match(/../g).map((x) => parseInt(x, 16))), "hex");
var headers = /* @__PURE__ */ __name((n) => ({ "content-length": String(n), "content-encoding": "identity" }), "headers");
var worker_default = {
  async fetch(req, env, ctx) {
    const u = new URL(req.url);
    const q = /* @__PURE__ */ __name((k) => u.searchParams.get(k), "q");
    const t0 = Date.now();
    const opts = q("sha") ? { sha256: hex(q("sha")) } : {};
    switch (u.pathname) {
      case "/pass": {
        const r = await fetch(q("u"));
        return new Response(r.body, { headers: headers(r.headers.get("content-length")) });
      }
      case "/put": {
        const r = await fetch(q("u"));
        const o = await env.BUCKET.put(q("k"), r.body, opts);
        return Response.json({ ms: Date.now() - t0, size: o.size });
      }
      case "/mput": {
        const size = Number(q("size")), part = Number(q("part"));
        const m = await env.BUCKET.createMultipartUpload(q("k"));
        const parts = [];
        for (let off = 0, n = 1; off < size; off += part, n++) {
          const r = await fetch(`${q("u")}&off=${off}&len=${Math.min(part, size - off)}`);
          parts.push(await m.uploadPart(n, r.body));
        }
        const o = await m.complete(parts);
        return Response.json({ ms: Date.now() - t0, size: o.size });
      }
      case "/get": {
        const o = await env.BUCKET.get(q("k"));
        if (o === null) return new Response("not found", { status: 404 });
        return new Response(o.body, { headers: headers(o.size) });
      }
      case "/tee": {
        const r = await fetch(q("u"));
        const length = Number(r.headers.get("content-length"));
        let [client, store] = r.body.tee();
        if (q("client") === "pieces") client = fixedLength(pieces(client, 256 * 1024), length);
        if (q("store") === "pieces") store = fixedLength(pieces(store, 256 * 1024), length);
        ctx.waitUntil(env.BUCKET.put(q("k"), store, opts));
        return new Response(client, { headers: headers(length) });
      }
      case "/delete":
        await env.BUCKET.delete(q("k"));
        return new Response(null, { status: 204 });
      case "/head":
        return new Response(null, { status: await env.BUCKET.head(q("k")) === null ? 404 : 200 });
      default:
        return new Response("r2sim");
    }
  }
};

// ../../../../main/miniflare/node_modules/wrangler/templates/middleware/middleware-ensure-req-body-drained.ts
var drainBody = /* @__PURE__ */ __name(async (request, env, _ctx, middlewareCtx) => {
  try {
    return await middlewareCtx.next(request, env);
  } finally {
    try {
      if (request.body !== null && !request.bodyUsed) {
        const reader = request.body.getReader();
        while (!(await reader.read()).done) {
        }
      }
    } catch (e) {
      console.error("Failed to drain the unused request body.", e);
    }
  }
}, "drainBody");
var middleware_ensure_req_body_drained_default = drainBody;

// ../../../../main/miniflare/node_modules/wrangler/templates/middleware/middleware-miniflare3-json-error.ts
function reduceError(e) {
  return {
    name: e?.name,
    message: e?.message ?? String(e),
    stack: e?.stack,
    cause: e?.cause === void 0 ? void 0 : reduceError(e.cause)
  };
}
__name(reduceError, "reduceError");
var jsonError = /* @__PURE__ */ __name(async (request, env, _ctx, middlewareCtx) => {
  try {
    return await middlewareCtx.next(request, env);
  } catch (e) {
    const error = reduceError(e);
    return Response.json(error, {
      status: 500,
      headers: { "MF-Experimental-Error-Stack": "true" }
    });
  }
}, "jsonError");
var middleware_miniflare3_json_error_default = jsonError;

// .wrangler/tmp/bundle-29xmNK/middleware-insertion-facade.js
var __INTERNAL_WRANGLER_MIDDLEWARE__ = [
  middleware_ensure_req_body_drained_default,
  middleware_miniflare3_json_error_default
];
var middleware_insertion_facade_default = worker_default;

// ../../../../main/miniflare/node_modules/wrangler/templates/middleware/common.ts
var __facade_middleware__ = [];
function __facade_register__(...args) {
  __facade_middleware__.push(...args.flat());
}
__name(__facade_register__, "__facade_register__");
function __facade_invokeChain__(request, env, ctx, dispatch, middlewareChain) {
  const [head, ...tail] = middlewareChain;
  const middlewareCtx = {
    dispatch,
    next(newRequest, newEnv) {
      return __facade_invokeChain__(newRequest, newEnv, ctx, dispatch, tail);
    }
  };
  return head(request, env, ctx, middlewareCtx);
}
__name(__facade_invokeChain__, "__facade_invokeChain__");
function __facade_invoke__(request, env, ctx, dispatch, finalMiddleware) {
  return __facade_invokeChain__(request, env, ctx, dispatch, [
    ...__facade_middleware__,
    finalMiddleware
  ]);
}
__name(__facade_invoke__, "__facade_invoke__");

// .wrangler/tmp/bundle-29xmNK/middleware-loader.entry.ts
var __Facade_ScheduledController__ = class ___Facade_ScheduledController__ {
  constructor(scheduledTime, cron, noRetry) {
    this.scheduledTime = scheduledTime;
    this.cron = cron;
    this.#noRetry = noRetry;
  }
  static {
    __name(this, "__Facade_ScheduledController__");
  }
  #noRetry;
  noRetry() {
    if (!(this instanceof ___Facade_ScheduledController__)) {
      throw new TypeError("Illegal invocation");
    }
    this.#noRetry();
  }
};
function wrapExportedHandler(worker) {
  if (__INTERNAL_WRANGLER_MIDDLEWARE__ === void 0 || __INTERNAL_WRANGLER_MIDDLEWARE__.length === 0) {
    return worker;
  }
  for (const middleware of __INTERNAL_WRANGLER_MIDDLEWARE__) {
    __facade_register__(middleware);
  }
  const fetchDispatcher = /* @__PURE__ */ __name(function(request, env, ctx) {
    if (worker.fetch === void 0) {
      throw new Error("Handler does not export a fetch() function.");
    }
    return worker.fetch(request, env, ctx);
  }, "fetchDispatcher");
  return {
    ...worker,
    fetch(request, env, ctx) {
      const dispatcher = /* @__PURE__ */ __name(function(type, init) {
        if (type === "scheduled" && worker.scheduled !== void 0) {
          const controller = new __Facade_ScheduledController__(
            Date.now(),
            init.cron ?? "",
            () => {
            }
          );
          return worker.scheduled(controller, env, ctx);
        }
      }, "dispatcher");
      return __facade_invoke__(request, env, ctx, dispatcher, fetchDispatcher);
    }
  };
}
__name(wrapExportedHandler, "wrapExportedHandler");
function wrapWorkerEntrypoint(klass) {
  if (__INTERNAL_WRANGLER_MIDDLEWARE__ === void 0 || __INTERNAL_WRANGLER_MIDDLEWARE__.length === 0) {
    return klass;
  }
  for (const middleware of __INTERNAL_WRANGLER_MIDDLEWARE__) {
    __facade_register__(middleware);
  }
  return class extends klass {
    #fetchDispatcher = /* @__PURE__ */ __name((request, env, ctx) => {
      this.env = env;
      this.ctx = ctx;
      if (super.fetch === void 0) {
        throw new Error("Entrypoint class does not define a fetch() function.");
      }
      return super.fetch(request);
    }, "#fetchDispatcher");
    #dispatcher = /* @__PURE__ */ __name((type, init) => {
      if (type === "scheduled" && super.scheduled !== void 0) {
        const controller = new __Facade_ScheduledController__(
          Date.now(),
          init.cron ?? "",
          () => {
          }
        );
        return super.scheduled(controller);
      }
    }, "#dispatcher");
    fetch(request) {
      return __facade_invoke__(
        request,
        this.env,
        this.ctx,
        this.#dispatcher,
        this.#fetchDispatcher
      );
    }
  };
}
__name(wrapWorkerEntrypoint, "wrapWorkerEntrypoint");
var WRAPPED_ENTRY;
if (typeof middleware_insertion_facade_default === "object") {
  WRAPPED_ENTRY = wrapExportedHandler(middleware_insertion_facade_default);
} else if (typeof middleware_insertion_facade_default === "function") {
  WRAPPED_ENTRY = wrapWorkerEntrypoint(middleware_insertion_facade_default);
}
var middleware_loader_entry_default = WRAPPED_ENTRY;
export {
  __INTERNAL_WRANGLER_MIDDLEWARE__,
  middleware_loader_entry_default as default
};
//# sourceMappingURL=worker.js.map
