//! Talking to upstreams: priority order, credentials (only to the upstream's own origin and
//! its token realm), redirects followed here hop by hop, the Docker token dance on a Bearer
//! challenge, timeouts, retries with exponential backoff or `Retry-After`, and the circuit
//! breaker.
//!
//! Redirects: the platform's fetch does not follow them (`Fetcher` contract; the Fetch
//! standard's `redirect: "manual"`), because a fetch that follows by itself replays every
//! request header, credentials included, to wherever the `Location` points. Here each hop's
//! headers are built anew for the hop's URL: credentials go only to the origin (scheme, host,
//! port; RFC 6454) the chain was meant for — the upstream's own, or its token realm's for a
//! token request — and never to a CDN or signed storage URL a tarball or blob redirects to.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use base64::Engine;

use url::Url;

use super::breaker;
use super::config::{Upstream, UpstreamAuth};
use super::engine::within;
use crate::http::{Headers, Method, Request, Response};
use crate::platform::Platform;

/// What asking the upstreams came to.
pub enum Fetched {
    /// A 2xx or 304 answer, from this upstream.
    Found { upstream: Box<Upstream>, response: Response },
    /// Every upstream asked answered 404 or 410.
    NotFound,
    /// No upstream had it and at least one failed or refused the request: the thing may
    /// exist, so nothing negative may be cached.
    Unavailable(Failures),
}

/// Why one upstream gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connection failed: refused, reset, DNS.
    Network(String),
    /// No answer (or no more of the body) within this many milliseconds.
    Timeout(u64),
    /// A server error, a 429, or a redirect without a `Location`, after the retries.
    Status(u16),
    /// A client error the upstream answered (400, 401, 403, 405, …): an answer, not a fault.
    Rejected(u16),
    /// The circuit breaker is open: the upstream was not asked.
    BreakerOpen,
    /// The upstream sent something unusable: a redirect loop or a bad `Location`, a malformed
    /// token answer or document.
    Invalid(String),
    /// The content did not match the checksum it had to match.
    ChecksumMismatch(String),
    /// This registry's store failed while keeping what came.
    Store(String),
}

impl Failure {
    /// Whether this says the upstream is unwell, so that it counts toward the circuit
    /// breaker. A client error is the upstream's answer to the request (any client can make
    /// an upstream answer 405): it never opens the breaker.
    pub fn is_fault(&self) -> bool {
        matches!(self, Failure::Network(_) | Failure::Timeout(_) | Failure::Status(_) | Failure::Invalid(_))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Network(e) => write!(f, "{e}"),
            Failure::Timeout(ms) => write!(f, "timed out after {ms} ms"),
            Failure::Status(s) | Failure::Rejected(s) => write!(f, "status {s}"),
            Failure::BreakerOpen => f.write_str("circuit breaker open"),
            Failure::Invalid(e) => write!(f, "{e}"),
            Failure::ChecksumMismatch(e) => write!(f, "{e}"),
            Failure::Store(e) => write!(f, "cache storage: {e}"),
        }
    }
}

/// The failures of each upstream asked, by upstream id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failures(pub Vec<(String, Failure)>);

impl Failures {
    pub fn one(upstream: &str, failure: Failure) -> Failures {
        Failures(vec![(upstream.to_string(), failure)])
    }

    /// Whether some upstream failed because of the content it sent.
    pub fn checksum_mismatch(&self) -> bool {
        self.0.iter().any(|(_, f)| matches!(f, Failure::ChecksumMismatch(_)))
    }
}

impl std::fmt::Display for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (id, failure)) in self.0.iter().enumerate() {
            write!(f, "{}{id}: {failure}", if i == 0 { "" } else { "; " })?;
        }
        Ok(())
    }
}

/// One request to send to an upstream.
pub struct UpstreamRequest {
    pub method: Method,
    pub url: String,
    pub headers: Headers,
    /// Sent again on every retry, so kept in memory (small bodies only: npm audit).
    pub body: Option<Vec<u8>>,
}

/// What one upstream answered.
pub enum Outcome {
    /// 2xx or 304.
    Answer(Response),
    /// 404 or 410.
    NotFound,
    /// A client error (4xx other than 404, 410 and 429): passed on by pass-through endpoints.
    Rejected(Response),
    Failed(Failure),
}

thread_local! {
    /// Bearer tokens from upstream realms, by (upstream id, resource): (token, expires at ms).
    static TOKENS: RefCell<HashMap<(String, String), (String, f64)>> = RefCell::new(HashMap::new());
    /// Upstreams that answered with a Basic challenge.
    static BASIC: RefCell<std::collections::HashSet<String>> = RefCell::new(std::collections::HashSet::new());
}

/// RFC 3986 unreserved characters stay as they are in query values.
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

const USER_AGENT: &str = concat!("edgeregistry/", env!("CARGO_PKG_VERSION"));

/// Redirects followed for one request, at most; one more is an upstream error. Registries
/// need one or two (a tarball or blob sent on to a CDN or a signed storage URL); the Fetch
/// standard's limit of 20 is for browsers.
pub const MAX_REDIRECTS: usize = 5;

/// Asks each upstream in turn (they come sorted by priority) until one has it.
/// `build` makes the request for an upstream, or `None` to skip it; `resource` (package or
/// repository name) scopes cached realm tokens.
pub async fn fetch_first(
    platform: &Platform,
    upstreams: &[&Upstream],
    resource: &str,
    build: impl Fn(&Upstream) -> Option<UpstreamRequest>,
) -> Fetched {
    let mut failures = Vec::new();
    for u in upstreams {
        let Some(req) = build(u) else { continue };
        match fetch_one(platform, u, resource, req).await {
            Outcome::Answer(response) => return Fetched::Found { upstream: Box::new((*u).clone()), response },
            Outcome::NotFound => {}
            Outcome::Rejected(response) => failures.push((u.id.clone(), Failure::Rejected(response.status))),
            Outcome::Failed(e) => failures.push((u.id.clone(), e)),
        }
    }
    if failures.is_empty() {
        Fetched::NotFound
    } else {
        Fetched::Unavailable(Failures(failures))
    }
}

/// One upstream, with retries; records the outcome in its circuit breaker: every answer
/// (client errors included) closes it, every fault counts toward opening it.
pub async fn fetch_one(platform: &Platform, u: &Upstream, resource: &str, req: UpstreamRequest) -> Outcome {
    let key = breaker_key(u);
    if !breaker::allow(&key, platform.now_ms()) {
        return Outcome::Failed(Failure::BreakerOpen);
    }
    let head = req.method == Method::Head;
    let outcome = attempts(platform, u, resource, req).await;
    match &outcome {
        Outcome::Failed(e) if e.is_fault() => count_fault(platform, u, e, breaker::failure),
        Outcome::Answer(resp) => breaker::success(&key, !head && resp.status != 304),
        _ => breaker::success(&key, false),
    }
    outcome
}

/// Counts a fault found after the answer came (a body that stalled or broke off) toward the
/// upstream's circuit breaker, as `fetch_one` counts the faults it sees: the answer's
/// success is withdrawn.
pub fn record_fault(platform: &Platform, u: &Upstream, failure: &Failure) {
    count_fault(platform, u, failure, breaker::body_failure);
}

fn count_fault(platform: &Platform, u: &Upstream, failure: &Failure, count: fn(&str, f64, &super::config::Resilience)) {
    let key = breaker_key(u);
    count(&key, platform.now_ms(), &u.resilience);
    crate::logging::log("warn", &format!("upstream {} failed: {failure} (breaker {})", u.id, breaker::describe(&key)));
}

pub fn breaker_key(u: &Upstream) -> String {
    format!("{}|{}", u.id, u.url)
}

async fn attempts(platform: &Platform, u: &Upstream, resource: &str, req: UpstreamRequest) -> Outcome {
    let r = &u.resilience;
    let mut attempt: u32 = 0;
    let mut tried_realm = false;
    let home = upstream_origin(u);
    loop {
        let now = platform.now_ms();
        let headers_for = |hop: &Url| with_credentials(u, &home, resource, hop, &req.headers, now);
        let result = send(platform, &req.method, &req.url, &headers_for, req.body.clone(), r.timeout_ms).await;
        let (why, after) = match result {
            Err(SendError::Fatal(e)) => return Outcome::Failed(e),
            Err(SendError::Transient(e)) => (e, None),
            Ok((_, resp)) if resp.status == 404 || resp.status == 410 => return Outcome::NotFound,
            Ok((_, resp)) if (200..300).contains(&resp.status) || resp.status == 304 => return Outcome::Answer(resp),
            // Only the upstream itself may send us to a realm: a 401 from a CDN or storage
            // origin a redirect led to is an error, not a reason to hand out the password.
            Ok((at, resp)) if resp.status == 401 && !tried_realm && home.as_ref() == Some(&at.origin()) => {
                tried_realm = true;
                let basic_challenge = resp.headers.get("www-authenticate").is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("basic"));
                match bearer_challenge(&resp) {
                    Some(challenge) => match realm_token(platform, u, &challenge, r.timeout_ms).await {
                        Ok((token, expires)) => {
                            TOKENS.with(|t| t.borrow_mut().insert((u.id.clone(), resource.to_string()), (token, expires)));
                            continue;
                        }
                        Err(e) => return Outcome::Failed(e),
                    },
                    // A Basic-auth registry: from now on this isolate sends the password
                    // with the first request.
                    None if basic_challenge && matches!(u.auth, UpstreamAuth::Basic { .. }) && !wants_basic(u) => {
                        BASIC.with(|b| b.borrow_mut().insert(u.id.clone()));
                        continue;
                    }
                    None => return Outcome::Rejected(resp),
                }
            }
            Ok((_, resp)) if resp.status == 429 || resp.status >= 500 => {
                let after = resp
                    .headers.get("retry-after")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(|secs| secs * 1000);
                if after.is_some_and(|ms| ms > r.retry_max_delay_ms) {
                    return Outcome::Failed(Failure::Status(resp.status));
                }
                (Failure::Status(resp.status), after)
            }
            // A client error is the upstream's answer, whoever sent it (a CDN or storage
            // origin a redirect led to included).
            Ok((_, resp)) if (400..500).contains(&resp.status) => return Outcome::Rejected(resp),
            // A 3xx without a Location, a 1xx: not something any caller can use.
            Ok((_, resp)) => return Outcome::Failed(Failure::Status(resp.status)),
        };
        if attempt >= r.max_retries {
            return Outcome::Failed(why);
        }
        let backoff = r.retry_delay_ms.saturating_mul(1u64 << attempt.min(20)).min(r.retry_max_delay_ms);
        platform.clock.sleep(after.unwrap_or(backoff)).await;
        attempt += 1;
    }
}

/// Why a request chain produced no response.
enum SendError {
    /// The network, or the deadline: worth a retry.
    Transient(Failure),
    /// Too many redirects, or a `Location` that cannot be followed: the same again next time.
    Fatal(Failure),
}

/// Sends `method url` and follows redirects (RFC 9110 §15.4) up to [`MAX_REDIRECTS`], all
/// within one deadline. `headers_for` gives each hop's request headers, credentials included
/// or not, from the hop's URL. Answers the last hop's URL and response.
/// (A dropped fetch is not aborted, but nothing waits for it.)
async fn send(
    platform: &Platform,
    method: &Method,
    url: &str,
    headers_for: &dyn Fn(&Url) -> Headers,
    body: Option<Vec<u8>>,
    timeout_ms: u64,
) -> Result<(Url, Response), SendError> {
    let start = Url::parse(url).map_err(|e| SendError::Fatal(Failure::Invalid(format!("bad upstream URL {url:?}: {e}"))))?;
    let chain = follow(platform, *method, start, headers_for, body);
    match within(&*platform.clock, timeout_ms, Box::pin(chain)).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Transient(Failure::Timeout(timeout_ms))),
    }
}

async fn follow(
    platform: &Platform,
    mut method: Method,
    mut url: Url,
    headers_for: &dyn Fn(&Url) -> Headers,
    mut body: Option<Vec<u8>>,
) -> Result<(Url, Response), SendError> {
    let mut redirects = 0;
    loop {
        let mut req = Request::new(method, "/");
        req.headers = headers_for(&url);
        if let Some(b) = &body {
            req.body = crate::http::Body::Bytes(b.clone());
        } else {
            // A body-less request after a 303 (or a POST turned GET) describes no body.
            for h in ["content-type", "content-length", "content-encoding", "content-language", "content-location"] {
                req.headers.remove(h);
            }
        }
        let resp = platform.fetcher.fetch(url.as_str(), req).await.map_err(|e| SendError::Transient(Failure::Network(e.to_string())))?;
        if resp.status == 0 {
            // What a fetch with `redirect: "manual"` gives in a browser (an opaque-redirect
            // response): it hides the Location, so nothing can be followed.
            return Err(SendError::Fatal(Failure::Invalid(format!("opaque redirect from {}", url.origin().ascii_serialization()))));
        }
        if !crate::platform::is_redirect(resp.status) {
            return Ok((url, resp));
        }
        // RFC 9110 §10.2.2: a redirect without a Location is an ordinary response.
        let Some(location) = resp.headers.get("location").map(str::to_string) else {
            return Ok((url, resp));
        };
        if redirects >= MAX_REDIRECTS {
            return Err(SendError::Fatal(Failure::Invalid(format!("more than {MAX_REDIRECTS} redirects (last from {})", url.origin().ascii_serialization()))));
        }
        redirects += 1;
        let next = redirect_target(&url, &location).map_err(|e| SendError::Fatal(Failure::Invalid(e)))?;
        // RFC 9110 §15.4.4: 303 means GET (HEAD stays HEAD); §15.4.2-3: after 301 and 302 a
        // POST may become GET, and every client does so (the Fetch standard too); 307 and 308
        // keep the method and body.
        let to_get = match resp.status {
            303 => method != Method::Head,
            301 | 302 => method == Method::Post,
            _ => false,
        };
        if to_get {
            method = Method::Get;
            body = None;
        }
        url = next;
    }
}

/// The absolute URL a `Location` value names, resolved against the URL that answered
/// (RFC 9110 §10.2.2, relative references as in RFC 3986 §5, parsed as the Fetch standard
/// parses URLs): http(s) only, without a fragment (it is never sent).
fn redirect_target(base: &Url, location: &str) -> Result<Url, String> {
    let mut next = base.join(location.trim()).map_err(|e| format!("bad redirect Location {location:?}: {e}"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(format!("redirect to a {} URL", next.scheme()));
    }
    next.set_fragment(None);
    Ok(next)
}

/// The origin credentials of `u` belong to (`None` for an unparsable URL: then nowhere).
fn upstream_origin(u: &Upstream) -> Option<url::Origin> {
    Url::parse(&u.url).ok().map(|url| url.origin()).filter(|o| o.is_tuple())
}

/// A hop's request headers: the caller's plus credentials when the hop goes to the upstream's
/// own origin (`home`): a realm token for this resource when one is held, else the configured
/// credentials. Anywhere else (a tarball on a CDN, a blob at a signed storage URL, a redirect
/// to another host, port or scheme) nothing that could authenticate goes along.
fn with_credentials(u: &Upstream, home: &Option<url::Origin>, resource: &str, hop: &Url, headers: &Headers, now_ms: f64) -> Headers {
    let mut h = headers.clone();
    h.set("User-Agent", USER_AGENT);
    if home.as_ref() != Some(&hop.origin()) {
        for name in ["authorization", "proxy-authorization", "cookie"] {
            h.remove(name);
        }
        if let UpstreamAuth::Header { name, .. } = &u.auth {
            h.remove(name);
        }
        return h;
    }
    let token = TOKENS.with(|t| {
        t.borrow()
            .get(&(u.id.clone(), resource.to_string()))
            .filter(|(_, expires)| *expires > now_ms)
            .map(|(tok, _)| tok.clone())
    });
    if let Some(token) = token {
        h.set("Authorization", format!("Bearer {token}"));
        return h;
    }
    match &u.auth {
        UpstreamAuth::None => {}
        // A password goes to the registry only once it asked for Basic auth (as docker does):
        // token-auth registries get it at their realm instead.
        UpstreamAuth::Basic { username, password } if wants_basic(u) => h.set("Authorization", basic(username, password)),
        UpstreamAuth::Basic { .. } => {}
        UpstreamAuth::Bearer(token) => h.set("Authorization", format!("Bearer {token}")),
        UpstreamAuth::Header { name, value } => h.set(name, value.clone()),
    }
    h
}

fn wants_basic(u: &Upstream) -> bool {
    BASIC.with(|b| b.borrow().contains(&u.id))
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// `Bearer realm="…",service="…",scope="…"` from a 401.
fn bearer_challenge(resp: &Response) -> Option<BTreeMap<String, String>> {
    let value = resp.headers.get("www-authenticate")?;
    let rest = value.trim().strip_prefix("Bearer ").or_else(|| value.trim().strip_prefix("bearer "))?;
    let params = parse_auth_params(rest);
    params.contains_key("realm").then_some(params)
}

/// `k="v",k2=v2` with commas allowed inside quotes (scopes list actions with commas).
pub fn parse_auth_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let value;
        if let Some(stripped) = after.strip_prefix('"') {
            let (inside, tail) = stripped.split_once('"').unwrap_or((stripped, ""));
            value = inside.to_string();
            rest = tail;
        } else {
            let (token, tail) = after.split_at(after.find(',').unwrap_or(after.len()));
            value = token.trim().to_string();
            rest = tail;
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.insert(key, value);
    }
    out
}

/// The Docker token spec: GET realm?service=&scope= (with the configured Basic credentials,
/// or anonymously), answering `token` or `access_token` and `expires_in`.
async fn realm_token(
    platform: &Platform,
    u: &Upstream,
    challenge: &BTreeMap<String, String>,
    timeout_ms: u64,
) -> Result<(String, f64), Failure> {
    let invalid = |e: String| Failure::Invalid(format!("token realm: {e}"));
    let realm = challenge.get("realm").map(String::as_str).unwrap_or_default();
    if !(realm.starts_with("https://") || realm.starts_with("http://")) {
        return Err(invalid(format!("realm {realm:?} is not an http(s) URL")));
    }
    let mut query = Vec::new();
    for k in ["service", "scope"] {
        if let Some(v) = challenge.get(k) {
            query.push(format!("{k}={}", percent_encoding::utf8_percent_encode(v, QUERY_VALUE)));
        }
    }
    let url = if query.is_empty() { realm.to_string() } else { format!("{realm}{}{}", if realm.contains('?') { '&' } else { '?' }, query.join("&")) };
    let realm_origin = Url::parse(&url).map_err(|e| invalid(format!("realm {realm:?}: {e}")))?.origin();
    // The configured Basic or Bearer credentials go to the realm's own origin only, not on to
    // wherever the realm redirects (the header kind is for the registry alone).
    let headers_for = |hop: &Url| {
        let mut headers = Headers::new();
        headers.set("User-Agent", USER_AGENT);
        headers.set("Accept", "application/json");
        if hop.origin() == realm_origin {
            match &u.auth {
                UpstreamAuth::Basic { username, password } => headers.set("Authorization", basic(username, password)),
                UpstreamAuth::Bearer(token) => headers.set("Authorization", format!("Bearer {token}")),
                _ => {}
            }
        }
        headers
    };
    let (_, resp) = send(platform, &Method::Get, &url, &headers_for, None, timeout_ms).await.map_err(|e| match e {
        SendError::Transient(e) | SendError::Fatal(e) => e,
    })?;
    match resp.status {
        200 => {}
        s if (400..500).contains(&s) && s != 429 => return Err(Failure::Rejected(s)),
        s => return Err(Failure::Status(s)),
    }
    let bytes = resp.body.read_capped(64 * 1024).await.map_err(|e| invalid(e.to_string()))?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("malformed token answer: {e}")))?;
    let text = |field: &str| doc.get(field).and_then(serde_json::Value::as_str);
    let token = text("token").or_else(|| text("access_token")).ok_or_else(|| invalid("answer without a token".into()))?.to_string();
    // The spec's default lifetime is 60 s; renew a little early.
    let expires_in = doc.get("expires_in").and_then(serde_json::Value::as_f64).unwrap_or(60.0).clamp(10.0, 86_400.0);
    Ok((token, platform.now_ms() + (expires_in - 5.0) * 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_params_keep_commas_inside_quotes() {
        let p = parse_auth_params(r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#);
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/alpine:pull,push");
        let p = parse_auth_params("realm=https://x/t, service=s");
        assert_eq!(p["service"], "s");
    }
}
