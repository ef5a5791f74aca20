//! The edge cache in the Worker (see `platform::EdgeCache`): this isolate's memory, then the
//! data center's HTTP cache through the Cache API (`caches.default`). Both live on the
//! JavaScript side (`js/edge.mjs`): a hit never copies a body into wasm, bodies kept in memory
//! count against the isolate's heap, not the wasm memory, and the front door (`js/entry.mjs`)
//! answers memory hits before a request enters wasm.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::http::{Body, PlatformStream, Response};
use crate::platform::{Background, EdgeCache, EdgeHint, EdgeTiers};

#[wasm_bindgen(module = "/js/edge.mjs")]
extern "C" {
    /// The headers as `name\nvalue\nname\nvalue…` (neither may hold a line break).
    pub fn header_lines(headers: &web_sys::Headers) -> String;
    fn edge_lookup(key: &str, if_none_match: Option<String>, use_memory: bool, use_http: bool, request: Option<web_sys::Request>) -> js_sys::Promise;
    #[allow(clippy::too_many_arguments)]
    fn edge_keep(
        key: &str,
        tags: &str,
        seconds: u32,
        immutable: bool,
        use_memory: bool,
        use_http: bool,
        response: &web_sys::Response,
        length: f64,
        generation: f64,
        wait_until: &js_sys::Function,
        request: Option<web_sys::Request>,
    ) -> web_sys::Response;
    fn edge_purge(tag: &str, use_http: bool) -> js_sys::Promise;
    fn edge_purge_all(use_http: bool) -> js_sys::Promise;
    fn edge_generation() -> f64;
    fn edge_stats() -> String;
}

pub struct JsEdgeCache {
    pub tiers: EdgeTiers,
    pub background: Rc<dyn Background>,
    /// The request being answered: the front door learns which of its URLs lead to a kept
    /// answer (only for requests without credentials; see `js/edge.mjs`).
    pub request: Option<web_sys::Request>,
    /// Purges made through this handle: each request has its own.
    pub purges: std::cell::Cell<u64>,
}

/// The runtime's response as ours: headers in one call, the body left a JS stream.
fn from_runtime(resp: &web_sys::Response) -> Response {
    let headers = super::headers_of(&resp.headers());
    let length = headers.get("content-length").and_then(|l| l.parse().ok());
    let body = match resp.body() {
        Some(stream) => Body::Stream(PlatformStream::new(stream, length)),
        None => Body::Empty,
    };
    Response { status: resp.status(), reason: None, headers, body, edge: None }
}

#[async_trait::async_trait(?Send)]
impl EdgeCache for JsEdgeCache {
    async fn lookup(&self, key: &str, if_none_match: Option<&str>) -> Option<Response> {
        if !self.tiers.any() {
            return None;
        }
        let found = wasm_bindgen_futures::JsFuture::from(edge_lookup(key, if_none_match.map(str::to_string), self.tiers.memory, self.tiers.http, self.request.clone())).await;
        let resp: web_sys::Response = found.ok()?.dyn_into().ok()?;
        Some(from_runtime(&resp))
    }

    fn generation(&self) -> u64 {
        edge_generation() as u64
    }

    fn own_purges(&self) -> u64 {
        self.purges.get()
    }

    async fn keep(&self, key: &str, hint: &EdgeHint, generation: u64, resp: Response) -> Response {
        if !self.tiers.any() {
            return resp;
        }
        let (status, reason, headers) = (resp.status, resp.reason.clone(), resp.headers.clone());
        let length = resp.body.known_length();
        let Ok(runtime) = super::response(resp) else {
            return Response::new(500);
        };
        let background = self.background.clone();
        let wait_until = Closure::once_into_js(move |promise: js_sys::Promise| {
            background.spawn(Box::pin(async move {
                let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
            }));
        });
        let sent = edge_keep(
            key,
            &hint.tags.join("\n"),
            hint.seconds,
            hint.immutable,
            self.tiers.memory,
            self.tiers.http,
            &runtime,
            length.map_or(-1.0, |l| l as f64),
            generation as f64,
            wait_until.unchecked_ref(),
            self.request.clone(),
        );
        let body = match sent.body() {
            Some(stream) => Body::Stream(PlatformStream::new(stream, length)),
            None => Body::Empty,
        };
        Response { status, reason, headers, body, edge: None }
    }

    async fn purge(&self, tag: &str) {
        if self.tiers.any() {
            self.purges.set(self.purges.get() + 1);
            let _ = wasm_bindgen_futures::JsFuture::from(edge_purge(tag, self.tiers.http)).await;
        }
    }

    async fn purge_all(&self) {
        self.purges.set(self.purges.get() + 1);
        let _ = wasm_bindgen_futures::JsFuture::from(edge_purge_all(self.tiers.http)).await;
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&edge_stats()).unwrap_or_default()
    }
}
