//! One configurable fake upstream for every protocol's pull-through tests, on the in-memory
//! platform's network (`MemoryFetcher`): scripted answers by path, faults injected per path
//! or for everything, and a log of what it was asked.
//!
//! The fault vocabulary is the end-to-end `FaultProxy`'s (tests/common/e2e/upstreams.rs):
//! a flipped byte, a truncated body, a status (with `Retry-After`), a delay; natively also a
//! hang, a refused connection, a body that stalls, a redirect. Time is the platform's
//! `ManualClock`, whose timers wait: a delay or a hang costs the client what its own timers
//! (timeouts, deadline, backoff) allow, while other work goes on.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use edgeregistry::http::{Body, Headers, Method, PlatformStream, Request, Response};
use edgeregistry::platform::memory::{ManualClock, MemoryPlatform};
use edgeregistry::platform::{Clock, StoreError, StoreResult};
use futures::future::LocalBoxFuture;
use futures::{FutureExt, StreamExt};
use serde_json::Value;

use super::builders::headers_of;

/// What the upstream answers at a path: status, headers and body. `HEAD` gets the headers
/// only; a request whose `If-None-Match` names the answer's `ETag` gets a 304.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer::json(status, &serde_json::json!({"error": format!("upstream says {status}")}))
    }

    pub fn json(status: u16, v: &Value) -> Answer {
        Answer::bytes(status, "application/json", serde_json::to_vec(v).unwrap())
    }

    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Answer {
        Answer { status, headers: vec![("Content-Type".into(), content_type.into())], body }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn etag(&self) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("etag")).map(|(_, v)| v.as_str())
    }
}

/// What goes wrong with one answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// One byte in the middle of the body flipped.
    FlipByte,
    /// Half the body, under a `Content-Length` of the whole.
    Truncate,
    /// This status instead of the content (`Retry-After` seconds when given).
    Status { status: u16, retry_after: Option<u64> },
    /// Never answers.
    Hang,
    /// The connection is refused: the fetch fails as the network's does, with no response.
    Refused,
    /// The status and headers come, then half the body, then nothing more, ever.
    StallBody,
    /// Answers this many milliseconds (on the platform's clock) after the request.
    Delay(u64),
    /// Sends the client on to `location` with this 3xx status.
    Redirect { status: u16, location: String },
}

impl Fault {
    pub fn status(status: u16) -> Fault {
        Fault::Status { status, retry_after: None }
    }

    pub fn rate_limited(retry_after_secs: u64) -> Fault {
        Fault::Status { status: 429, retry_after: Some(retry_after_secs) }
    }
}

/// One request the upstream received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub url: String,
    /// Path and query of `url`.
    pub path: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// The platform's clock when it arrived.
    pub at_ms: f64,
}

impl Call {
    /// The request `req` to `url`, arrived at `at_ms`.
    pub fn new(url: &str, req: &Request, at_ms: f64) -> Call {
        let body = match &req.body {
            Body::Bytes(b) => b.clone(),
            _ => Vec::new(),
        };
        Call { method: req.method, url: url.to_string(), path: path_of(url), headers: req.headers.clone(), body, at_ms }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

#[derive(Default)]
struct State {
    /// By path-and-query, or by full URL for other hosts (a CDN).
    answers: BTreeMap<String, Answer>,
    /// Faults for the next requests to a path (or URL), one consumed per request.
    faults: BTreeMap<String, VecDeque<Fault>>,
    /// A fault for every request nothing else scripted: the upstream is down.
    down: Option<Fault>,
    stream_bodies: bool,
    calls: Vec<Call>,
}

/// The fake upstream; clones share it.
#[derive(Clone)]
pub struct FakeUpstream {
    state: Rc<RefCell<State>>,
    clock: ManualClock,
}

/// The path and query of an absolute URL (the URL itself when it has none).
fn path_of(url: &str) -> String {
    match url.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| rest.split_at(i).1)) {
        Some(path) => path.to_string(),
        None => "/".to_string(),
    }
}

impl FakeUpstream {
    /// A fake upstream that is the platform's whole network from now on.
    pub fn install(mem: &MemoryPlatform) -> FakeUpstream {
        let up = FakeUpstream { state: Rc::default(), clock: (*mem.clock).clone() };
        let me = up.clone();
        mem.fetcher.set_network(move |url, req| me.handle(url, req));
        up
    }

    /// Serves `answer` at `path` (path and query, any host) or at a full URL.
    pub fn serve(&self, path: &str, answer: Answer) -> &Self {
        self.state.borrow_mut().answers.insert(path.to_string(), answer);
        self
    }

    /// Stops serving `path`: it is 404 from now on.
    pub fn forget(&self, path: &str) {
        self.state.borrow_mut().answers.remove(path);
    }

    /// Bodies as streams (the Worker's usual path) instead of bytes.
    pub fn stream_bodies(&self, on: bool) {
        self.state.borrow_mut().stream_bodies = on;
    }

    /// The next `times` requests to `path` (or a full URL) meet `fault`.
    pub fn fail(&self, path: &str, fault: Fault, times: usize) {
        let mut s = self.state.borrow_mut();
        s.faults.entry(path.to_string()).or_default().extend(std::iter::repeat_n(fault, times));
    }

    /// Every request meets `fault` until [`FakeUpstream::recover`].
    pub fn go_down(&self, fault: Fault) {
        self.state.borrow_mut().down = Some(fault);
    }

    pub fn recover(&self) {
        let mut s = self.state.borrow_mut();
        s.down = None;
        s.faults.clear();
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.borrow().calls.clone()
    }

    /// Requests so far.
    pub fn total(&self) -> usize {
        self.state.borrow().calls.len()
    }

    /// Requests to exactly this path (or full URL).
    pub fn calls_to(&self, path: &str) -> usize {
        self.state.borrow().calls.iter().filter(|c| c.path == path || c.url == path).count()
    }

    /// Requests whose URL contains `needle`.
    pub fn calls_with(&self, needle: &str) -> usize {
        self.state.borrow().calls.iter().filter(|c| c.url.contains(needle)).count()
    }

    fn handle(&self, url: &str, req: Request) -> LocalBoxFuture<'static, StoreResult<Response>> {
        let path = path_of(url);
        let now = self.clock.now_ms();
        let (fault, answer, stream) = {
            let mut s = self.state.borrow_mut();
            s.calls.push(Call::new(url, &req, now));
            let scripted = [url, path.as_str()].into_iter().find_map(|k| s.faults.get_mut(k).and_then(VecDeque::pop_front));
            let fault = scripted.or_else(|| s.down.clone());
            let answer = s.answers.get(url).or_else(|| s.answers.get(&path)).cloned();
            (fault, answer, s.stream_bodies)
        };
        let answer = answer.unwrap_or_else(|| Answer::json(404, &serde_json::json!({"error": "not found"})));
        let response = respond(&req, answer, fault.as_ref(), stream);
        match fault {
            Some(Fault::Hang) => futures::future::pending().boxed_local(),
            Some(Fault::Refused) => futures::future::ready(Err(StoreError::backend(format!("connection refused: {url}")))).boxed_local(),
            Some(Fault::Delay(ms)) => self.clock.sleep(ms).map(move |_| Ok(response)).boxed_local(),
            _ => futures::future::ready(Ok(response)).boxed_local(),
        }
    }
}

fn respond(req: &Request, answer: Answer, fault: Option<&Fault>, stream: bool) -> Response {
    let mut answer = answer;
    match fault {
        Some(Fault::Status { status, retry_after }) => {
            answer = Answer::status(*status);
            if let Some(secs) = retry_after {
                answer = answer.with_header("Retry-After", &secs.to_string());
            }
        }
        Some(Fault::Redirect { status, location }) => answer = Answer::status(*status).with_header("Location", location),
        Some(Fault::FlipByte) if !answer.body.is_empty() => {
            let mid = answer.body.len() / 2;
            if let Some(b) = answer.body.get_mut(mid) {
                *b ^= 0x01;
            }
        }
        _ => {}
    }
    if answer.etag().is_some() && answer.etag() == req.header("if-none-match") && answer.status == 200 {
        return Response { status: 304, reason: None, headers: headers_of(answer.headers.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))), body: Body::Empty, edge: None };
    }
    let full = answer.body.len();
    let mut body = answer.body;
    if matches!(fault, Some(Fault::Truncate | Fault::StallBody)) {
        body.truncate(full / 2);
    }
    let mut response = Response { status: answer.status, reason: None, headers: headers_of(answer.headers), body: Body::Empty, edge: None };
    response.headers.set("Content-Length", full.to_string());
    if req.method != Method::Head {
        response.body = match fault {
            Some(Fault::StallBody) => {
                let never_more = futures::stream::pending();
                Body::Stream(PlatformStream::from_pieces(futures::stream::iter([Ok(body)]).chain(never_more).boxed_local(), Some(full as u64)))
            }
            _ if stream => Body::Stream(PlatformStream::from_bytes(body)),
            _ => Body::Bytes(body),
        };
    }
    response
}
