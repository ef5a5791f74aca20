//! Upstream redirects on the in-memory platform: the client follows them itself, hop by hop,
//! and the upstream's credentials (basic, bearer, a custom header, or a token from the Docker
//! token dance) reach only the upstream's own origin (scheme, host, port) and its token realm;
//! a CDN or signed storage URL that a tarball or blob is sent on to still answers, without
//! them. Relative `Location`s, the redirect cap and the RFC 9110 method rules are covered
//! through `upstream::client::fetch_one` directly.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use base64::Engine;
use common::upstream::Call;
use common::*;
use edgeregistry::config::Protocol;
use edgeregistry::http::{Method, Request, Response};
use edgeregistry::platform::memory::MemoryPlatform;
use edgeregistry::upstream::client::{fetch_one, Outcome, UpstreamRequest, MAX_REDIRECTS};
use edgeregistry::upstream::Upstream;
use futures::executor::block_on;
use serde_json::json;

/// One request the scripted network saw.
type Seen = Call;

trait Credentials {
    /// Whether any header carries any of `secrets` (in any header, under any name).
    fn carries_any(&self, secrets: &[String]) -> bool;
    fn origin(&self) -> String;
}

impl Credentials for Seen {
    fn carries_any(&self, secrets: &[String]) -> bool {
        self.headers.iter().any(|(_, v)| secrets.iter().any(|s| v.contains(s.as_str())))
    }

    fn origin(&self) -> String {
        let u = url::Url::parse(&self.url).unwrap();
        u.origin().ascii_serialization()
    }
}

type Log = Rc<RefCell<Vec<Seen>>>;

fn record(log: &Log, url: &str, req: &Request) {
    log.borrow_mut().push(Call::new(url, req, 0.0));
}

/// A fresh upstream id: realm tokens, Basic challenges and circuit breakers are remembered per
/// upstream id for the isolate's (here: the test thread's) lifetime.
fn fresh_id(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

fn redirect(status: u16, location: &str) -> Response {
    Response::new(status).with_header("Location", location)
}

fn basic_value(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

// ---- the kinds of credentials ----

const USER: &str = "robot";
const SECRET: &str = "s3cret-upstream-credential-42";
const DANCE_TOKEN: &str = "dance-token-from-the-realm-77";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Basic,
    Bearer,
    Header,
}

const KINDS: [Kind; 3] = [Kind::Basic, Kind::Bearer, Kind::Header];

impl Kind {
    fn auth_json(self) -> &'static str {
        match self {
            Kind::Basic => r#"{"type":"basic","username":"robot","passwordSecret":"UP_SECRET"}"#,
            Kind::Bearer => r#"{"type":"bearer","tokenSecret":"UP_SECRET"}"#,
            Kind::Header => r#"{"type":"header","headerName":"X-Api-Key","tokenSecret":"UP_SECRET"}"#,
        }
    }

    /// Is `seen` authenticated the configured way?
    fn authenticated(self, seen: &Seen) -> bool {
        match self {
            Kind::Basic => seen.header("authorization") == Some(format!("Basic {}", basic_value(USER, SECRET)).as_str()),
            Kind::Bearer => seen.header("authorization") == Some(format!("Bearer {SECRET}").as_str()),
            Kind::Header => seen.header("x-api-key") == Some(SECRET),
        }
    }
}

/// Every form a credential of ours could take on the wire.
fn secrets() -> Vec<String> {
    vec![SECRET.to_string(), basic_value(USER, SECRET), DANCE_TOKEN.to_string()]
}

/// Asserts that no request to an origin outside `trusted` carried any credential, nor any
/// `Authorization` or `X-Api-Key` header at all.
fn assert_nothing_leaked(log: &Log, trusted: &[&str]) {
    for seen in log.borrow().iter() {
        if trusted.contains(&seen.origin().as_str()) {
            continue;
        }
        assert!(!seen.carries_any(&secrets()), "credential sent to {}: {seen:?}", seen.url);
        assert!(seen.header("authorization").is_none() && seen.header("x-api-key").is_none(), "{seen:?}");
    }
}

// ---- npm through the registry ----

const UP: &str = "https://up.example";
const CDN: &str = "https://cdn.example";

/// A mirror of `UP` with `kind` credentials. `UP` wants them on everything (a Basic
/// challenge when the Basic kind is missing), serves `pkg` whose tarball link 302s to a
/// signed URL on `CDN`, and the CDN serves it to anyone.
fn npm_mirror(kind: Kind, location: &str) -> (Reg, Log, Vec<u8>) {
    let upstreams = format!(
        r#"{{"upstreams":[{{"id":"{}","url":"{UP}","auth":{},"resilience":{{"maxRetries":0}}}}]}}"#,
        fresh_id("up"),
        kind.auth_json()
    );
    let reg = Reg::with_vars(&[("NPM_UPSTREAMS", upstreams.as_str()), ("UP_SECRET", SECRET)]);
    let tgz = tarball("pkg", "1.0.0");
    let doc = json!({"_id": "pkg", "name": "pkg", "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": {
        "name": "pkg", "version": "1.0.0",
        "dist": {"tarball": format!("{UP}/pkg/-/pkg-1.0.0.tgz"), "shasum": sha1_hex(&tgz), "integrity": integrity(&tgz)}}}});
    let log: Log = Rc::default();
    let (l, t, location) = (log.clone(), tgz.clone(), location.to_string());
    reg.mem.fetcher.set_handler(move |url, req| {
        record(&l, url, &req);
        let seen = l.borrow().last().cloned().unwrap();
        if url.starts_with(CDN) {
            return Response::bytes(200, "application/octet-stream", t.clone());
        }
        if !kind.authenticated(&seen) {
            return Response::json(401, &json!({"error": "unauthorized"})).with_header("WWW-Authenticate", r#"Basic realm="up""#);
        }
        match url.strip_prefix(UP) {
            Some("/pkg") => Response::json(200, &doc),
            Some("/pkg/-/pkg-1.0.0.tgz") => redirect(302, &location),
            Some("/pkg/-/elsewhere/pkg-1.0.0.tgz") => Response::bytes(200, "application/octet-stream", t.clone()),
            _ => Response::json(404, &json!({"error": "not found"})),
        }
    });
    (reg, log, tgz)
}

#[test]
fn npm_tarball_redirected_to_a_cdn_arrives_without_any_kind_of_credential() {
    for kind in KINDS {
        let (reg, log, tgz) = npm_mirror(kind, &format!("{CDN}/t/pkg-1.0.0.tgz?sig=abc&exp=9"));
        let r = reg.send(Request::new(Method::Get, "/npm/pkg/-/pkg-1.0.0.tgz"));
        assert_eq!(r.status, 200, "{kind:?}: {r:?} {:?}", log.borrow());
        assert_eq!(r.body, tgz, "{kind:?}");
        assert_eq!(r.header("x-cache"), Some("MISS"));
        let seen = log.borrow().clone();
        let cdn: Vec<&Seen> = seen.iter().filter(|s| s.url.starts_with(CDN)).collect();
        assert_eq!(cdn.len(), 1, "{kind:?}: the CDN hop once: {seen:?}");
        assert_eq!(cdn[0].url, format!("{CDN}/t/pkg-1.0.0.tgz?sig=abc&exp=9"), "the signed URL as given");
        assert_eq!(cdn[0].method, Method::Get);
        assert!(seen.iter().any(|s| s.url == format!("{UP}/pkg/-/pkg-1.0.0.tgz") && kind.authenticated(s)), "{kind:?}: the upstream got its credential: {seen:?}");
        assert_nothing_leaked(&log, &[UP]);
        // Cached: the next one asks nobody.
        let before = log.borrow().len();
        let hit = reg.send(Request::new(Method::Get, "/npm/pkg/-/pkg-1.0.0.tgz"));
        assert_eq!((hit.status, hit.header("x-cache")), (200, Some("HIT")));
        assert_eq!(log.borrow().len(), before);
    }
}

#[test]
fn npm_same_origin_redirect_keeps_the_credential_and_relative_locations_resolve() {
    for kind in KINDS {
        // Relative to /pkg/-/pkg-1.0.0.tgz: same origin, so the upstream still wants (and gets)
        // its credential.
        let (reg, log, tgz) = npm_mirror(kind, "elsewhere/pkg-1.0.0.tgz");
        let r = reg.send(Request::new(Method::Get, "/npm/pkg/-/pkg-1.0.0.tgz"));
        assert_eq!(r.status, 200, "{kind:?}: {r:?} {:?}", log.borrow());
        assert_eq!(r.body, tgz);
        let seen = log.borrow().clone();
        let hop = seen.iter().find(|s| s.url == format!("{UP}/pkg/-/elsewhere/pkg-1.0.0.tgz")).expect("relative Location resolved");
        assert!(kind.authenticated(hop), "{kind:?}: {hop:?}");
    }
}

#[test]
fn npm_redirect_to_the_same_host_on_another_scheme_or_port_is_another_origin() {
    for target in [
        "http://up.example/pkg/-/elsewhere/pkg-1.0.0.tgz",
        "https://up.example:8443/pkg/-/elsewhere/pkg-1.0.0.tgz",
        "https://up.example@cdn.example/pkg-1.0.0.tgz",
        "https://up.example.cdn.example/pkg-1.0.0.tgz",
        "//cdn.example/pkg-1.0.0.tgz",
        "https:\\\\cdn.example\\pkg-1.0.0.tgz",
    ] {
        let (reg, log, _) = npm_mirror(Kind::Header, target);
        // Whoever answers, the hop must not carry the key.
        reg.mem.fetcher.set_handler({
            let log = log.clone();
            let tgz = tarball("pkg", "1.0.0");
            let doc = json!({"_id": "pkg", "name": "pkg", "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": {
                "name": "pkg", "version": "1.0.0",
                "dist": {"tarball": format!("{UP}/pkg/-/pkg-1.0.0.tgz"), "shasum": sha1_hex(&tgz), "integrity": integrity(&tgz)}}}});
            let target = target.to_string();
            move |url, req| {
                record(&log, url, &req);
                match url {
                    u if u == format!("{UP}/pkg") => Response::json(200, &doc),
                    u if u == format!("{UP}/pkg/-/pkg-1.0.0.tgz") => redirect(302, &target),
                    _ => Response::bytes(200, "application/octet-stream", tgz.clone()),
                }
            }
        });
        let r = reg.send(Request::new(Method::Get, "/npm/pkg/-/pkg-1.0.0.tgz"));
        assert_eq!(r.status, 200, "{target}: {r:?}");
        let seen = log.borrow().clone();
        assert_eq!(seen.len(), 3, "{target}: {seen:?}");
        assert_ne!(seen[2].origin(), UP, "{target} resolved to {}", seen[2].url);
        assert_nothing_leaked(&log, &[UP]);
    }
}

#[test]
fn npm_redirect_loop_ends_in_an_upstream_error_after_the_cap() {
    let (reg, log, _) = npm_mirror(Kind::Bearer, "/pkg/-/pkg-1.0.0.tgz");
    let r = reg.send(Request::new(Method::Get, "/npm/pkg/-/pkg-1.0.0.tgz"));
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.text().contains("redirects"), "{}", r.text());
    let loops = log.borrow().iter().filter(|s| s.url.ends_with(".tgz")).count();
    assert_eq!(loops, MAX_REDIRECTS + 1, "the first request and {MAX_REDIRECTS} redirects, no retries");
    assert!(reg.keys_with("npm/cache/pkg/-/").is_empty());
}

// ---- OCI with the Docker token dance ----

const REG: &str = "https://reg.example";
const AUTH: &str = "https://auth.example";
const S3: &str = "https://s3.example";

/// A mirror of `REG`, which wants a bearer token from its realm on `AUTH` (given for the
/// configured Basic or Bearer credential); its blobs 307 to `blob_location`, and `S3` serves
/// them to anyone (a signed URL). The realm redirects to `realm_location` when set.
fn oci_mirror(kind: Kind, blob_location: &str, realm_location: Option<&str>) -> (Reg, Log, Vec<u8>, String) {
    let upstreams = format!(
        r#"{{"upstreams":[{{"id":"{}","url":"{REG}","auth":{},"resilience":{{"maxRetries":0}}}}]}}"#,
        fresh_id("reg"),
        kind.auth_json()
    );
    let reg = Reg::oci(&[("OCI_UPSTREAMS", upstreams.as_str()), ("UP_SECRET", SECRET)]);
    let layer = pseudo_random(50_000, 7);
    let digest = oci_digest(&layer);
    let log: Log = Rc::default();
    let (l, data, d) = (log.clone(), layer.clone(), digest.clone());
    let (blob_location, realm_location) = (blob_location.to_string(), realm_location.map(str::to_string));
    reg.mem.fetcher.set_handler(move |url, req| {
        record(&l, url, &req);
        let seen = l.borrow().last().cloned().unwrap();
        if url.starts_with(S3) || url.starts_with(&format!("{AUTH}/blob-store")) {
            return Response::bytes(200, "application/octet-stream", data.clone());
        }
        if url.starts_with(&format!("{AUTH}/token")) || url.starts_with("https://other-auth.example/token") {
            if let (Some(to), false) = (&realm_location, url.contains("moved=1")) {
                return redirect(302, to);
            }
            // A realm hands a token to anyone (anonymous pulls), but this one checks what it
            // is given when it is given something.
            if seen.header("authorization").is_some() && !kind.authenticated(&seen) {
                return Response::json(401, &json!({"error": "bad credentials"}));
            }
            return Response::json(200, &json!({"token": DANCE_TOKEN, "expires_in": 300}));
        }
        if url.starts_with(REG) {
            if seen.header("authorization") != Some(format!("Bearer {DANCE_TOKEN}").as_str()) {
                return Response::json(401, &json!({"errors": []})).with_header(
                    "WWW-Authenticate",
                    format!(r#"Bearer realm="{AUTH}/token",service="reg.example",scope="repository:team/app:pull""#),
                );
            }
            if url == format!("{REG}/v2/team/app/blobs/{d}") {
                return redirect(307, &blob_location);
            }
        }
        Response::json(404, &json!({"errors": []}))
    });
    (reg, log, layer, digest)
}

fn pull_blob(reg: &Reg, digest: &str) -> Resp {
    reg.create_user("puller");
    let token = reg.create_token("puller", json!({"protocol": "oci"}));
    reg.send(oci(Method::Get, &format!("/v2/team/app/blobs/{digest}"), &token))
}

#[test]
fn oci_blob_redirected_to_storage_gets_neither_the_dance_token_nor_the_credential() {
    for kind in [Kind::Basic, Kind::Bearer] {
        let (reg, log, layer, digest) = oci_mirror(kind, &format!("{S3}/blobs/x?X-Amz-Signature=abc"), None);
        let r = pull_blob(&reg, &digest);
        assert_eq!(r.status, 200, "{kind:?}: {r:?} {:?}", log.borrow());
        assert_eq!(r.body, layer);
        let seen = log.borrow().clone();
        assert!(seen.iter().any(|s| s.url.starts_with(&format!("{AUTH}/token")) && kind.authenticated(s)), "{kind:?}: the realm got the credential: {seen:?}");
        assert!(
            seen.iter().any(|s| s.url.ends_with(&format!("/blobs/{digest}")) && s.header("authorization") == Some(&format!("Bearer {DANCE_TOKEN}"))),
            "the registry got the dance token: {seen:?}"
        );
        assert_eq!(seen.iter().filter(|s| s.url.starts_with(S3)).count(), 1);
        assert_nothing_leaked(&log, &[REG, AUTH]);
    }
}

#[test]
fn oci_redirect_to_the_realm_origin_is_not_a_token_request_and_gets_nothing() {
    // Credentials are for the registry's origin and for token requests at the realm: a blob
    // the registry sends on to the realm's host gets neither the dance token nor the password.
    for kind in [Kind::Basic, Kind::Bearer] {
        let (reg, log, layer, digest) = oci_mirror(kind, &format!("{AUTH}/blob-store/x"), None);
        let r = pull_blob(&reg, &digest);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, layer);
        let seen = log.borrow().clone();
        let hop = seen.iter().find(|s| s.url.starts_with(&format!("{AUTH}/blob-store"))).unwrap();
        assert!(!hop.carries_any(&secrets()) && hop.header("authorization").is_none(), "{kind:?}: {hop:?}");
    }
}

#[test]
fn oci_realm_redirects_keep_the_credential_on_the_realm_origin_only() {
    for kind in [Kind::Basic, Kind::Bearer] {
        // Same origin: still the realm.
        let (reg, log, _, digest) = oci_mirror(kind, &format!("{S3}/b"), Some("/token?moved=1&scope=repository%3Ateam%2Fapp%3Apull"));
        assert_eq!(pull_blob(&reg, &digest).status, 200);
        let seen = log.borrow().clone();
        let moved = seen.iter().find(|s| s.url.contains("moved=1")).expect("followed");
        assert!(kind.authenticated(moved), "{kind:?}: {moved:?}");

        // Another origin: the token is still fetched there, anonymously.
        let (reg, log, _, digest) = oci_mirror(kind, &format!("{S3}/b"), Some("https://other-auth.example/token?moved=1"));
        let r = pull_blob(&reg, &digest);
        assert_eq!(r.status, 200, "{r:?} {:?}", log.borrow());
        let seen = log.borrow().clone();
        assert!(seen.iter().any(|s| s.url.starts_with(&format!("{AUTH}/token")) && kind.authenticated(s)), "the realm itself gets it: {seen:?}");
        let hop = seen.iter().find(|s| s.url.starts_with("https://other-auth.example")).expect("followed");
        assert!(hop.header("authorization").is_none(), "{kind:?}: {hop:?}");
        assert_nothing_leaked(&log, &[REG, AUTH]);
    }
}

#[test]
fn a_bearer_challenge_from_a_redirect_target_starts_no_token_dance() {
    // A storage origin answering 401 with its own realm must not be handed the password.
    let (reg, log, _, digest) = oci_mirror(Kind::Basic, &format!("{S3}/b"), None);
    reg.mem.fetcher.set_handler({
        let log = log.clone();
        let d = digest.clone();
        move |url, req| {
            record(&log, url, &req);
            let seen = log.borrow().last().cloned().unwrap();
            if url.starts_with(S3) {
                return Response::json(401, &json!({})).with_header("WWW-Authenticate", r#"Bearer realm="https://evil.example/token",service="s3""#);
            }
            if url.starts_with("https://evil.example") {
                return Response::json(200, &json!({"token": "evil"}));
            }
            if url.starts_with(&format!("{AUTH}/token")) {
                return Response::json(200, &json!({"token": DANCE_TOKEN}));
            }
            if seen.header("authorization") != Some(format!("Bearer {DANCE_TOKEN}").as_str()) {
                return Response::json(401, &json!({})).with_header("WWW-Authenticate", format!(r#"Bearer realm="{AUTH}/token",service="reg""#));
            }
            if url == format!("{REG}/v2/team/app/blobs/{d}") {
                return redirect(307, &format!("{S3}/b"));
            }
            Response::json(404, &json!({}))
        }
    });
    let r = pull_blob(&reg, &digest);
    assert!(r.status >= 500, "{r:?}");
    assert!(!log.borrow().iter().any(|s| s.url.starts_with("https://evil.example")), "{:?}", log.borrow());
    assert_nothing_leaked(&log, &[REG, AUTH]);
}

// ---- the client on its own: Location forms, the cap, methods ----

fn upstream(kind: Kind) -> Upstream {
    let vars = vars(&[
        (
            "NPM_UPSTREAMS",
            &format!(r#"[{{"id":"{}","url":"{UP}","auth":{},"resilience":{{"maxRetries":2,"retryDelayMs":1}}}}]"#, fresh_id("direct"), kind.auth_json()),
        ),
        ("UP_SECRET", SECRET),
    ]);
    edgeregistry::upstream::config::from_vars(Protocol::Npm, &vars).unwrap().unwrap().upstreams.remove(0)
}

/// Runs one `fetch_one` against `handler`, returning the outcome's status (or the error) and
/// what the network saw.
fn direct(kind: Kind, method: Method, url: &str, body: Option<&[u8]>, handler: impl Fn(&str, &Request) -> Response + 'static) -> (Result<u16, String>, Vec<Seen>) {
    let mem = MemoryPlatform::new();
    let log: Log = Rc::default();
    let l = log.clone();
    mem.fetcher.set_handler(move |url, req| {
        record(&l, url, &req);
        handler(url, &req)
    });
    let mut headers = edgeregistry::http::Headers::new();
    headers.set("Accept", "application/json");
    if body.is_some() {
        headers.set("Content-Type", "application/json");
    }
    let req = UpstreamRequest { method, url: url.to_string(), headers, body: body.map(<[u8]>::to_vec) };
    let outcome = block_on(fetch_one(&mem.platform, &upstream(kind), "res", req));
    let result = match outcome {
        Outcome::Answer(r) => Ok(r.status),
        Outcome::NotFound => Ok(404),
        Outcome::Rejected(r) => Err(format!("status {}", r.status)),
        Outcome::Failed(e) => Err(e.to_string()),
    };
    let seen = log.borrow().clone();
    (result, seen)
}

#[test]
fn relative_locations_of_every_form_are_resolved_against_the_hop_that_answered() {
    let (result, seen) = direct(Kind::Header, Method::Get, &format!("{UP}/a/x"), None, |url, _| match url {
        "https://up.example/a/x" => redirect(301, "y"),
        "https://up.example/a/y" => redirect(302, "../b/./z"),
        "https://up.example/b/z" => redirect(307, "/c?sig=1#frag"),
        "https://up.example/c?sig=1" => redirect(308, "?sig=2"),
        "https://up.example/c?sig=2" => redirect(302, "//cdn.example/d"),
        "https://cdn.example/d" => Response::bytes(200, "text/plain", b"ok".to_vec()),
        other => panic!("unexpected {other}"),
    });
    assert_eq!(result, Ok(200));
    let urls: Vec<&str> = seen.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(
        urls,
        ["https://up.example/a/x", "https://up.example/a/y", "https://up.example/b/z", "https://up.example/c?sig=1", "https://up.example/c?sig=2", "https://cdn.example/d"]
    );
    for s in &seen[..5] {
        assert!(Kind::Header.authenticated(s), "same origin keeps the key: {s:?}");
        assert_eq!(s.header("accept"), Some("application/json"), "the caller's headers go along");
    }
    assert_eq!(seen[5].header("x-api-key"), None);
    assert_eq!(seen[5].header("accept"), Some("application/json"));
}

#[test]
fn the_redirect_cap_counts_redirects_and_one_more_is_an_error_without_retries() {
    let chain = |n: usize| {
        move |url: &str, _: &Request| {
            let i: usize = url.rsplit('/').next().unwrap().parse().unwrap();
            if i < n {
                redirect(302, &format!("/hop/{}", i + 1))
            } else {
                Response::bytes(200, "text/plain", b"ok".to_vec())
            }
        }
    };
    let (result, seen) = direct(Kind::Bearer, Method::Get, &format!("{UP}/hop/0"), None, chain(MAX_REDIRECTS));
    assert_eq!(result, Ok(200), "{MAX_REDIRECTS} redirects are followed");
    assert_eq!(seen.len(), MAX_REDIRECTS + 1);
    let (result, seen) = direct(Kind::Bearer, Method::Get, &format!("{UP}/hop/0"), None, chain(MAX_REDIRECTS + 1));
    let e = result.unwrap_err();
    assert!(e.contains(&format!("more than {MAX_REDIRECTS} redirects")), "{e}");
    assert_eq!(seen.len(), MAX_REDIRECTS + 1, "not retried (maxRetries is 2): {seen:?}");
    // A loop between two origins: the same, and the foreign side never sees the token.
    let (result, seen) = direct(Kind::Bearer, Method::Get, &format!("{UP}/loop"), None, |url, _| {
        if url.starts_with(UP) { redirect(302, "https://cdn.example/loop") } else { redirect(302, "https://up.example/loop") }
    });
    assert!(result.unwrap_err().contains("redirects"));
    assert_eq!(seen.len(), MAX_REDIRECTS + 1);
    for s in &seen {
        assert_eq!(s.header("authorization").is_some(), s.url.starts_with(UP), "{s:?}");
    }
}

#[test]
fn methods_and_bodies_follow_rfc_9110() {
    let body = br#"{"audit":true}"#;
    let to = |status: u16| move |url: &str, _: &Request| if url.ends_with("/from") { redirect(status, "/to") } else { Response::json(200, &json!({})) };
    // 303: GET without the body or its headers (HEAD stays HEAD).
    for (status, method, want) in [
        (303, Method::Post, Method::Get),
        (303, Method::Head, Method::Head),
        (303, Method::Get, Method::Get),
        (301, Method::Post, Method::Get),
        (302, Method::Post, Method::Get),
        (307, Method::Post, Method::Post),
        (308, Method::Post, Method::Post),
        (302, Method::Head, Method::Head),
    ] {
        let sent = (method == Method::Post).then_some(&body[..]);
        let (result, seen) = direct(Kind::Header, method, &format!("{UP}/from"), sent, to(status));
        assert_eq!(result, Ok(200), "{status} {method:?}");
        let second = &seen[1];
        assert_eq!(second.method, want, "{status} {method:?}");
        if want == Method::Post {
            assert_eq!(second.body, body, "{status} keeps the body");
            assert_eq!(second.header("content-type"), Some("application/json"));
        } else {
            assert!(second.body.is_empty(), "{status} {method:?}");
            assert_eq!(second.header("content-type"), None, "{status} {method:?}");
        }
    }
}

#[test]
fn unusable_redirects_are_upstream_errors() {
    for location in ["file:///etc/passwd", "data:text/plain,hi", "javascript:alert(1)", "http://[::1"] {
        let (result, seen) = direct(Kind::Bearer, Method::Get, &format!("{UP}/x"), None, move |_, _| redirect(302, location));
        assert!(result.is_err(), "{location}");
        assert_eq!(seen.len(), 1, "{location}: nothing followed, nothing retried");
    }
    // A 3xx without a Location is an ordinary (failed) answer; 304 is an answer.
    let (result, _) = direct(Kind::Bearer, Method::Get, &format!("{UP}/x"), None, |_, _| Response::new(302));
    assert_eq!(result.unwrap_err(), "status 302");
    let (result, _) = direct(Kind::Bearer, Method::Get, &format!("{UP}/x"), None, |_, _| Response::new(304));
    assert_eq!(result, Ok(304));
}

#[test]
fn requests_that_start_on_another_origin_get_no_credentials_until_they_reach_the_upstream() {
    // An npm tarball link may name a CDN that sends us back to the upstream itself.
    let (result, seen) = direct(Kind::Basic, Method::Get, "https://cdn.example/t.tgz", None, |url, _| {
        if url.starts_with(CDN) { redirect(302, "https://up.example/t.tgz") } else { Response::bytes(200, "x", vec![1]) }
    });
    assert_eq!(result, Ok(200));
    assert!(seen[0].header("authorization").is_none());
    // (Basic goes to the registry only after it asked for it; bearer from the start.)
    let (_, seen) = direct(Kind::Bearer, Method::Get, "https://cdn.example/t.tgz", None, |url, _| {
        if url.starts_with(CDN) { redirect(302, "https://UP.example:443/t.tgz") } else { Response::bytes(200, "x", vec![1]) }
    });
    assert!(seen[0].header("authorization").is_none());
    assert_eq!(seen[1].url, "https://up.example/t.tgz", "host case and the default port do not make another origin");
    assert!(Kind::Bearer.authenticated(&seen[1]));
}
