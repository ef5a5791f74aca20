//! The Cloudflare side of the platform seam: R2, KV, Durable Objects and fetch, plus the
//! Worker's entry point. Compiled for wasm32 only.

mod durable;
mod edge;
mod kv;
mod net;
mod r2;
mod sessions;

use std::rc::Rc;

use worker::{event, Context, Env};

use crate::config::{Config, VarSource};
use crate::http::{Actor, Body, Headers, Method, Request, Response};
use crate::platform::stream::PlatformStream;
use crate::platform::{Clock, Platform};
use crate::router::App;

pub use durable::JobRunner;
pub use sessions::UploadSession;

/// Binding names in wrangler.toml.
pub const BUCKET: &str = "BUCKET";
pub const KV: &str = "KV";
pub const JOBS: &str = "JOBS";
pub const UPLOADS: &str = "UPLOADS";

pub struct JsClock;

impl Clock for JsClock {
    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    fn sleep(&self, ms: u64) -> futures::future::LocalBoxFuture<'static, ()> {
        Box::pin(worker::Delay::from(std::time::Duration::from_millis(ms)))
    }
}

/// `ctx.wait_until`: the runtime keeps the request's isolate alive until the work ends.
struct WaitUntil(Context);

impl crate::platform::Background for WaitUntil {
    fn spawn(&self, work: futures::future::LocalBoxFuture<'static, ()>) {
        self.0.wait_until(work);
    }
}

struct EnvVars<'a>(&'a Env);

impl VarSource for EnvVars<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .secret(name)
            .or_else(|_| self.0.var(name))
            .ok()
            .map(|v| v.to_string())
    }
}

fn platform(env: &Env, ctx: Context, config: &Config, req: &web_sys::Request) -> worker::Result<Platform> {
    let background: Rc<dyn crate::platform::Background> = Rc::new(WaitUntil(ctx));
    Ok(Platform {
        edge: Rc::new(edge::JsEdgeCache { tiers: config.edge_cache, background: background.clone(), request: Some(Clone::clone(req)), purges: Default::default() }),
        store: Rc::new(r2::R2Store::new(env.bucket(BUCKET)?)),
        kv: Rc::new(kv::Kv::new(env.kv(KV)?)),
        coordinator: Rc::new(durable::DurableCoordinator::new(env.durable_object(JOBS)?)),
        sessions: Rc::new(sessions::DurableSessions::new(env.durable_object(UPLOADS)?)),
        fetcher: Rc::new(net::WorkerFetcher),
        clock: Rc::new(JsClock),
        crypto: Rc::new(WebCrypto),
        background,
    })
}

/// Converts the runtime's request; the body stays a JS stream. The runtime's `cf` object (which `worker::Request` builds eagerly) is never touched: a cached GET costs
/// less than those did.
fn request(req: &web_sys::Request) -> worker::Result<Request> {
    let url = url::Url::parse(&req.url()).map_err(|e| worker::Error::RustError(format!("request URL: {e}")))?;
    let headers = headers_of(&req.headers());
    let length = headers.get("content-length").and_then(|l| l.parse().ok());
    let body = match req.body() {
        Some(stream) => Body::Stream(PlatformStream::new(stream, length)),
        None => Body::Empty,
    };
    let origin = url.origin().ascii_serialization();
    Ok(Request {
        method: Method::parse(req.method().as_str()),
        origin,
        path: url.path().to_string(),
        query: url.query().map(crate::http::parse_query).unwrap_or_default(),
        actor: Actor {
            ip: headers.get("cf-connecting-ip").map(str::to_string),
            user_agent: headers.get("user-agent").map(str::to_string),
            ..Default::default()
        },
        headers,
        body,
    })
}

/// The runtime's headers as ours, in one call (`edge::header_lines`) rather than three
/// crossings per header.
pub(crate) fn headers_of(runtime: &web_sys::Headers) -> Headers {
    let mut headers = Headers::new();
    let lines = edge::header_lines(runtime);
    let mut fields = lines.split('\n');
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        headers.append(name, value);
    }
    headers
}

/// Converts back to the runtime's response; stream bodies pass through untouched. A reason
/// phrase is set on the JS response itself (`statusText`): the crate's builder has none.
pub(crate) fn response(resp: Response) -> worker::Result<web_sys::Response> {
    let reason = resp.reason.clone();
    let built: web_sys::Response = runtime_response(resp)?.into();
    let Some(reason) = reason else {
        return Ok(built);
    };
    let init = web_sys::ResponseInit::new();
    init.set_status(built.status());
    init.set_status_text(&reason);
    init.set_headers(&built.headers());
    Ok(web_sys::Response::new_with_opt_readable_stream_and_init(built.body().as_ref(), &init)?)
}

fn runtime_response(resp: Response) -> worker::Result<worker::Response> {
    let headers = worker::Headers::new();
    for (k, v) in resp.headers.iter() {
        headers.append(k, v)?;
    }
    let body = match resp.body {
        Body::Empty => worker::ResponseBody::Empty,
        Body::Bytes(b) => worker::ResponseBody::Body(b),
        Body::Stream(s) => worker::ResponseBody::Stream(s.raw),
    };
    Ok(worker::Response::builder()
        .with_status(resp.status)
        .with_headers(headers)
        .body(body))
}

thread_local! {
    /// The settings, read once per isolate: vars and secrets cannot change under a running
    /// isolate (a new deploy or `wrangler secret put` starts new ones), and reading some
    /// thirty bindings and parsing the upstream lists on every request cost more than
    /// answering a cached GET.
    static CONFIG: std::cell::RefCell<Option<Rc<Config>>> = const { std::cell::RefCell::new(None) };
}

fn config(env: &Env) -> Result<Rc<Config>, crate::config::ConfigError> {
    if let Some(c) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(c);
    }
    let c = Rc::new(Config::from_vars(&EnvVars(env))?);
    CONFIG.with(|slot| *slot.borrow_mut() = Some(c.clone()));
    Ok(c)
}

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    let config = match config(&env) {
        Ok(c) => c,
        Err(e) => {
            crate::logging::error(&e.to_string());
            return response(Response::json(500, &serde_json::json!({"error": e.to_string()})));
        }
    };
    let app = App::new(platform(&env, ctx, &config, &req)?, config);
    let resp = app.handle(request(&req)?).await;
    response(resp)
}

/// PBKDF2 through WebCrypto: runs natively in the runtime, not in wasm.
pub struct WebCrypto;

#[async_trait::async_trait(?Send)]
impl crate::platform::Crypto for WebCrypto {
    async fn pbkdf2_sha256(&self, password: &str, salt: &[u8], iterations: u32) -> crate::platform::StoreResult<[u8; 32]> {
        use wasm_bindgen::JsCast;
        use wasm_bindgen_futures::JsFuture;
        let err = |e: wasm_bindgen::JsValue| crate::platform::StoreError::Backend(format!("WebCrypto: {}", crate::platform::error_line(&format!("{e:?}"))));
        let subtle = js_sys::global()
            .unchecked_into::<web_sys::WorkerGlobalScope>()
            .crypto()
            .map_err(err)?
            .subtle();
        let usages = js_sys::Array::of1(&"deriveBits".into());
        let raw = js_sys::Uint8Array::from(password.as_bytes());
        let key = JsFuture::from(subtle.import_key_with_str("raw", &raw, "PBKDF2", false, &usages).map_err(err)?)
            .await
            .map_err(err)?;
        let params = web_sys::Pbkdf2Params::new_with_str("PBKDF2", "SHA-256", iterations, &js_sys::Uint8Array::from(salt));
        let bits = JsFuture::from(subtle.derive_bits_with_object(&params, &key.unchecked_into(), 256).map_err(err)?)
            .await
            .map_err(err)?;
        let mut out = [0u8; 32];
        js_sys::Uint8Array::new(&bits).copy_to(&mut out);
        Ok(out)
    }
}
