//! Talking to upstreams: priority order, credentials (only to the upstream's own origin and
//! its token realm), the Docker token dance on a Bearer challenge, timeouts, retries with
//! exponential backoff or `Retry-After`, and the circuit breaker.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use futures::future::{select, Either};

use super::breaker;
use super::config::{origin_of, Upstream, UpstreamAuth};
use crate::http::{Headers, Method, Request, Response};
use crate::platform::Platform;

/// What asking the upstreams came to.
pub enum Fetched {
    /// A 2xx or 304 answer, from this upstream.
    Found { upstream: Upstream, response: Response },
    /// Every upstream asked answered 404 or 410.
    NotFound,
    /// No upstream had it and at least one failed (error, timeout, 5xx, 429, open breaker):
    /// the thing may exist, so nothing negative may be cached.
    Unavailable(String),
}

/// One request to send to an upstream.
pub struct UpstreamRequest {
    pub method: Method,
    pub url: String,
    pub headers: Headers,
    /// Sent again on every retry, so kept in memory (small bodies only: npm audit).
    pub body: Option<Vec<u8>>,
}

pub enum Outcome {
    Answer(Response),
    NotFound,
    Failed(String),
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
            Outcome::Answer(response) => return Fetched::Found { upstream: (*u).clone(), response },
            Outcome::NotFound => {}
            Outcome::Failed(e) => failures.push(format!("{}: {e}", u.id)),
        }
    }
    if failures.is_empty() {
        Fetched::NotFound
    } else {
        Fetched::Unavailable(failures.join("; "))
    }
}

/// One upstream, with retries; records the outcome in its circuit breaker.
pub async fn fetch_one(platform: &Platform, u: &Upstream, resource: &str, req: UpstreamRequest) -> Outcome {
    let key = breaker_key(u);
    if !breaker::allow(&key, platform.now_ms()) {
        return Outcome::Failed("circuit breaker open".into());
    }
    let outcome = attempts(platform, u, resource, req).await;
    match &outcome {
        Outcome::Answer(_) | Outcome::NotFound => breaker::success(&key),
        Outcome::Failed(e) => {
            breaker::failure(&key, platform.now_ms(), &u.resilience);
            crate::logging::log(
                "warn",
                &format!("upstream {} failed: {e} (breaker {})", u.id, breaker::describe(&key)),
            );
        }
    }
    outcome
}

fn breaker_key(u: &Upstream) -> String {
    format!("{}|{}", u.id, u.url)
}

async fn attempts(platform: &Platform, u: &Upstream, resource: &str, req: UpstreamRequest) -> Outcome {
    let r = &u.resilience;
    let mut attempt: u32 = 0;
    let mut tried_realm = false;
    loop {
        let headers = with_credentials(u, resource, &req.url, &req.headers, platform.now_ms());
        let result = send(platform, &req.method, &req.url, headers, req.body.clone(), r.timeout_ms).await;
        let (why, after) = match result {
            Ok(resp) if resp.status == 404 || resp.status == 410 => return Outcome::NotFound,
            Ok(resp) if (200..300).contains(&resp.status) || resp.status == 304 => return Outcome::Answer(resp),
            Ok(resp) if resp.status == 401 && !tried_realm => {
                tried_realm = true;
                let basic_challenge = resp.headers.get("www-authenticate").is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("basic"));
                match bearer_challenge(&resp) {
                    Some(challenge) => match realm_token(platform, u, &challenge, r.timeout_ms).await {
                        Ok((token, expires)) => {
                            TOKENS.with(|t| t.borrow_mut().insert((u.id.clone(), resource.to_string()), (token, expires)));
                            continue;
                        }
                        Err(e) => return Outcome::Failed(format!("token realm: {e}")),
                    },
                    // A Basic-auth registry: from now on this isolate sends the password
                    // with the first request.
                    None if basic_challenge && matches!(u.auth, UpstreamAuth::Basic { .. }) && !wants_basic(u) => {
                        BASIC.with(|b| b.borrow_mut().insert(u.id.clone()));
                        continue;
                    }
                    None => return Outcome::Failed("401 Unauthorized".into()),
                }
            }
            Ok(resp) if resp.status == 429 || resp.status >= 500 => {
                let after = resp
                    .headers.get("retry-after")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(|secs| secs * 1000);
                if after.is_some_and(|ms| ms > r.retry_max_delay_ms) {
                    return Outcome::Failed(format!("{} with Retry-After beyond {} ms", resp.status, r.retry_max_delay_ms));
                }
                (format!("status {}", resp.status), after)
            }
            Ok(resp) => return Outcome::Failed(format!("status {}", resp.status)),
            Err(e) => (e, None),
        };
        if attempt >= r.max_retries {
            return Outcome::Failed(format!("{why} after {} attempts", attempt + 1));
        }
        let backoff = r.retry_delay_ms.saturating_mul(1u64 << attempt.min(20)).min(r.retry_max_delay_ms);
        platform.clock.sleep(after.unwrap_or(backoff)).await;
        attempt += 1;
    }
}

/// Sends with a deadline. (A dropped fetch is not aborted, but nothing waits for it.)
async fn send(platform: &Platform, method: &Method, url: &str, headers: Headers, body: Option<Vec<u8>>, timeout_ms: u64) -> Result<Response, String> {
    let mut req = Request::new(*method, "/");
    req.headers = headers;
    if let Some(b) = body {
        req.body = crate::http::Body::Bytes(b);
    }
    let fetch = platform.fetcher.fetch(url, req);
    match select(fetch, platform.clock.sleep(timeout_ms)).await {
        Either::Left((Ok(resp), _)) => Ok(resp),
        Either::Left((Err(e), _)) => Err(e.to_string()),
        Either::Right(_) => Err(format!("timed out after {timeout_ms} ms")),
    }
}

/// The request headers plus credentials: a realm token for this resource when one is held,
/// else the configured credentials; never to another origin (tarballs on a CDN, say).
fn with_credentials(u: &Upstream, resource: &str, url: &str, headers: &Headers, now_ms: f64) -> Headers {
    let mut h = headers.clone();
    h.set("User-Agent", USER_AGENT);
    if origin_of(url) != u.origin() {
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
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(stripped) = rest.strip_prefix('"') {
            let end = stripped.find('"').unwrap_or(stripped.len());
            value = stripped[..end].to_string();
            rest = stripped.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
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
) -> Result<(String, f64), String> {
    let realm = &challenge["realm"];
    if !(realm.starts_with("https://") || realm.starts_with("http://")) {
        return Err(format!("realm {realm:?} is not an http(s) URL"));
    }
    let mut query = Vec::new();
    for k in ["service", "scope"] {
        if let Some(v) = challenge.get(k) {
            query.push(format!("{k}={}", percent_encoding::utf8_percent_encode(v, QUERY_VALUE)));
        }
    }
    let url = if query.is_empty() { realm.clone() } else { format!("{realm}{}{}", if realm.contains('?') { '&' } else { '?' }, query.join("&")) };
    let mut headers = Headers::new();
    headers.set("User-Agent", USER_AGENT);
    headers.set("Accept", "application/json");
    match &u.auth {
        UpstreamAuth::Basic { username, password } => headers.set("Authorization", basic(username, password)),
        UpstreamAuth::Bearer(token) => headers.set("Authorization", format!("Bearer {token}")),
        _ => {}
    }
    let resp = send(platform, &Method::Get, &url, headers, None, timeout_ms).await?;
    if resp.status != 200 {
        return Err(format!("status {}", resp.status));
    }
    let bytes = resp.body.read_capped(64 * 1024).await.map_err(|e| e.to_string())?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| format!("malformed token answer: {e}"))?;
    let token = doc["token"]
        .as_str()
        .or_else(|| doc["access_token"].as_str())
        .ok_or("token answer without a token")?
        .to_string();
    // The spec's default lifetime is 60 s; renew a little early.
    let expires_in = doc["expires_in"].as_f64().unwrap_or(60.0).max(10.0);
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
