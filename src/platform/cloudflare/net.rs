//! Outbound fetch through the runtime; response bodies stay JS streams.
//!
//! Redirects are not followed here: the request says `redirect: "manual"` (Fetch standard,
//! "HTTP-redirect fetch"), and workerd then hands back the 3xx itself with its `Location`
//! header (not the opaque-redirect a browser would give). `upstream::client` follows it and
//! decides, hop by hop, which headers go along; followed by the runtime, every header of the
//! first request would be replayed to the next origin.

use async_trait::async_trait;
use wasm_bindgen::JsCast;

use crate::http::{Body, Request, Response};
use crate::platform::stream::PlatformStream;
use crate::platform::{Fetcher, StoreError, StoreResult};

pub struct WorkerFetcher;

fn err(e: impl std::fmt::Debug) -> StoreError {
    StoreError::Backend(format!("fetch: {}", crate::platform::error_line(&format!("{e:?}"))))
}

#[async_trait(?Send)]
impl Fetcher for WorkerFetcher {
    async fn fetch(&self, url: &str, req: Request) -> StoreResult<Response> {
        let init = web_sys::RequestInit::new();
        init.set_method(req.method.as_str());
        init.set_redirect(web_sys::RequestRedirect::Manual);
        let headers = web_sys::Headers::new().map_err(err)?;
        for (k, v) in req.headers.iter() {
            headers.append(k, v).map_err(err)?;
        }
        init.set_headers(&headers);
        match req.body {
            Body::Empty => {}
            Body::Bytes(b) => init.set_body(&js_sys::Uint8Array::from(b.as_slice())),
            Body::Stream(s) => init.set_body(&s.raw),
        }
        let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(err)?;
        let promise = js_sys::global()
            .unchecked_into::<web_sys::WorkerGlobalScope>()
            .fetch_with_request(&request);
        let resp: web_sys::Response = wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .map_err(err)?
            .unchecked_into();
        let out_headers = super::headers_of(&resp.headers());
        let length = out_headers.get("content-length").and_then(|l| l.parse().ok());
        let status = resp.status();
        let body = match resp.body() {
            // Nobody reads a redirect's body: let the runtime drop the connection's bytes now
            // rather than when the stream is collected.
            Some(s) if crate::platform::is_redirect(status) => {
                let _ = s.cancel();
                Body::Empty
            }
            Some(s) => Body::Stream(PlatformStream::new(s, length)),
            None => Body::Empty,
        };
        Ok(Response { status, reason: None, body, headers: out_headers, edge: None })
    }
}
