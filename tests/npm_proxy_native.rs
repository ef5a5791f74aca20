//! The npm pull-through cache against a scripted upstream on the in-memory platform: cache
//! states, rewriting, integrity, hosted-first, TTLs, stale-if-error, negative entries,
//! retries, the circuit breaker and credentials.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::upstream::{Answer, FakeUpstream, Fault};
use common::*;
use edgeregistry::platform::Clock;
use edgeregistry::http::{Body, Method, Request, Response};
use serde_json::{json, Value};

const UPSTREAM: &str = "https://up.example";
const ABBREV: &str = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";

/// Makes the fake upstream serve `name` (packument with an ETag, tarballs linked on
/// `UPSTREAM`) at these versions; returns the tarballs.
fn add_package(up: &FakeUpstream, name: &str, versions: &[&str]) -> Vec<(String, Vec<u8>)> {
    let tgzs: Vec<(String, Vec<u8>)> = versions.iter().map(|v| (v.to_string(), tarball(name, v))).collect();
    let pairs: Vec<(&str, &[u8])> = tgzs.iter().map(|(v, t)| (v.as_str(), t.as_slice())).collect();
    serve_packument(up, name, &packument(name, &pairs, UPSTREAM));
    for (v, t) in &tgzs {
        up.serve(&format!("{UPSTREAM}/{}", tarball_path(name, v)), Answer::bytes(200, "application/octet-stream", t.clone()));
    }
    tgzs
}

/// The packument at `/{name}` (a scope's slash escaped, as npm asks), with an ETag.
fn serve_packument(up: &FakeUpstream, name: &str, doc: &Value) {
    let etag = format!("\"{}\"", sha256_hex(doc.to_string().as_bytes()));
    up.serve(&format!("/{}", name.replace('/', "%2f")), Answer::json(200, doc).with_header("ETag", &etag));
}

fn setup(extra: &[(&str, &str)]) -> (Reg, FakeUpstream) {
    let mut vars = vec![(
        "NPM_UPSTREAMS",
        r#"{"upstreams":[{"id":"up","url":"https://up.example","resilience":{"maxRetries":2,"retryDelayMs":100,"timeoutMs":5000,"circuitBreakerThreshold":3}}],
            "cache":{"defaultTtlSeconds":300,"staleMaxAgeSeconds":600,"negativeCacheTtlSeconds":60}}"#,
    )];
    vars.extend_from_slice(extra);
    let reg = Reg::with_vars(&vars);
    let up = FakeUpstream::install(&reg.mem);
    (reg, up)
}

fn get_abbrev(reg: &Reg, path: &str) -> Resp {
    reg.send(Request::new(Method::Get, path).with_header("Accept", ABBREV))
}

fn calls_to(up: &FakeUpstream, needle: &str) -> usize {
    up.calls_with(needle)
}

/// What the upstream was asked: (URL, headers with lower-case names).
fn log(up: &FakeUpstream) -> Vec<(String, Vec<(String, String)>)> {
    up.calls().into_iter().map(|c| (c.url, c.headers.iter().map(|(k, v)| (k.to_lowercase(), v.to_string())).collect())).collect()
}

#[test]
fn packument_miss_then_hit_with_tarball_links_rewritten() {
    let (reg, up) = setup(&[]);
    add_package(&up, "left-pad", &["1.0.0", "1.1.0"]);
    let r = get_abbrev(&reg, "/npm/left-pad");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-cache"), Some("MISS"));
    assert_eq!(r.header("x-cache-upstream"), Some("up"));
    let doc = r.json();
    assert_eq!(doc["versions"]["1.1.0"]["dist"]["tarball"], "http://localhost/npm/left-pad/-/left-pad-1.1.0.tgz");
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0");
    let accept = log(&up)[0].1.clone();
    assert!(accept.iter().any(|(k, v)| k == "accept" && v.contains("install-v1")), "abbreviated asked upstream: {accept:?}");
    let again = get_abbrev(&reg, "/npm/left-pad");
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.json(), doc);
    assert_eq!(calls_to(&up, "/left-pad"), 1, "a hit does not ask the upstream");
    // The full view is a separate cache entry, fetched with its own Accept.
    let full = reg.send(Request::new(Method::Get, "/npm/left-pad"));
    assert_eq!(full.header("x-cache"), Some("MISS"));
    assert_eq!(calls_to(&up, "/left-pad"), 2);
    // Our own validator answers 304.
    let etag = again.header("etag").unwrap().to_string();
    let not_modified = reg.send(Request::new(Method::Get, "/npm/left-pad").with_header("Accept", ABBREV).with_header("If-None-Match", &etag));
    assert_eq!(not_modified.status, 304);
}

#[test]
fn scoped_packages_and_a_changed_registry_url() {
    let (reg, up) = setup(&[]);
    add_package(&up, "@types/thing", &["2.0.0"]);
    let r = get_abbrev(&reg, "/npm/@types%2fthing");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(log(&up)[0].0.ends_with("/@types%2fthing"), "scoped names are escaped upstream");
    assert_eq!(r.json()["versions"]["2.0.0"]["dist"]["tarball"], "http://localhost/npm/@types/thing/-/thing-2.0.0.tgz");
    // Another origin (no PUBLIC_URL): links follow the request, from the same cached copy.
    let mut req = Request::new(Method::Get, "/npm/@types%2fthing").with_header("Accept", ABBREV);
    req.origin = "https://mirror.example".into();
    let other = reg.send(req);
    assert_eq!(other.header("x-cache"), Some("HIT"));
    assert_eq!(other.json()["versions"]["2.0.0"]["dist"]["tarball"], "https://mirror.example/npm/@types/thing/-/thing-2.0.0.tgz");
    let tgz = reg.send(Request::new(Method::Get, "/npm/@types/thing/-/thing-2.0.0.tgz"));
    assert_eq!(tgz.status, 200, "{tgz:?}");
}

#[test]
fn tarball_is_verified_cached_and_then_served_without_the_upstream() {
    for streamed in [false, true] {
        let (reg, up) = setup(&[]);
        up.stream_bodies(streamed);
        let tgzs = add_package(&up, "lodash", &["4.17.21"]);
        // No packument fetched yet: the tarball request fetches it to learn the integrity.
        let r = reg.send(Request::new(Method::Get, "/npm/lodash/-/lodash-4.17.21.tgz"));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-cache"), Some("MISS"));
        assert_eq!(r.body, tgzs[0].1);
        assert_eq!(r.header("content-length"), Some(tgzs[0].1.len().to_string().as_str()));
        // Immutable, but never `public`: shared caches must not reuse answers to requests
        // that carried credentials (RFC 9111 §3.5).
        assert_eq!(r.header("cache-control"), Some("max-age=31536000, immutable"), "streamed={streamed}");
        assert_eq!(reg.keys_with("npm/cache/lodash/-/"), vec!["npm/cache/lodash/-/lodash-4.17.21.tgz".to_string()]);
        up.forget(&format!("{UPSTREAM}/lodash/-/lodash-4.17.21.tgz"));
        let hit = reg.send(Request::new(Method::Get, "/npm/lodash/-/lodash-4.17.21.tgz"));
        assert_eq!(hit.header("x-cache"), Some("HIT"));
        assert_eq!(hit.body, tgzs[0].1, "streamed={streamed}");
        assert_eq!(hit.header("cache-control"), r.header("cache-control"));
    }
}

#[test]
fn a_flipped_byte_is_never_cached() {
    for streamed in [false, true] {
        let (reg, up) = setup(&[]);
        up.stream_bodies(streamed);
        add_package(&up, "evil", &["1.0.0"]);
        let url = format!("{UPSTREAM}/evil/-/evil-1.0.0.tgz");
        up.fail(&url, Fault::FlipByte, 1);
        let r = reg.send(Request::new(Method::Get, "/npm/evil/-/evil-1.0.0.tgz"));
        if !streamed {
            assert_eq!(r.status, 502, "{r:?}");
            assert!(r.json()["error"].as_str().unwrap().contains("integrity"));
        }
        // (Streamed, the Worker cuts the client's copy short before its last chunk; natively
        // the bytes were already all there, so only the store can be checked.)
        assert!(reg.keys_with("npm/cache/evil/-/").is_empty(), "streamed={streamed}");
    }
}

#[test]
fn hosted_packages_are_never_shadowed_by_upstream_ones() {
    let (reg, up) = setup(&[]);
    add_package(&up, "internal-lib", &["9.9.9"]);
    let token = reg.user_with_token("dev");
    reg.publish_ok(&token, "internal-lib", "1.0.0");
    let doc = reg.send(Request::new(Method::Get, "/npm/internal-lib")).json();
    let versions: Vec<&String> = doc["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions, ["1.0.0"]);
    let tgz = reg.send(Request::new(Method::Get, "/npm/internal-lib/-/internal-lib-9.9.9.tgz"));
    assert_eq!(tgz.status, 404);
    assert!(log(&up).is_empty(), "the upstream is never asked about a hosted name: {:?}", log(&up));
}

#[test]
fn a_cached_tarball_costs_two_store_reads() {
    // Without the edge cache (another isolate, or `EDGE_CACHE=off`).
    let (reg, up) = setup(&[("EDGE_CACHE", "off")]);
    add_package(&up, "lodash", &["4.17.21"]);
    let path = "/npm/lodash/-/lodash-4.17.21.tgz";
    assert_eq!(reg.send(Request::new(Method::Get, path)).header("x-cache"), Some("MISS"));
    let before = reg.mem.store.reads();
    let hit = reg.send(Request::new(Method::Get, path));
    assert_eq!((hit.status, hit.header("x-cache")), (200, Some("HIT")));
    assert_eq!(reg.mem.store.reads() - before, 2, "the hosted copy, then the cached one");
}

#[test]
fn a_cold_packument_and_tarball_cost_few_store_operations() {
    let (reg, up) = setup(&[("EDGE_CACHE", "off")]);
    add_package(&up, "lodash", &["4.17.21"]);
    let (r0, w0) = (reg.mem.store.reads(), reg.mem.store.writes());
    assert_eq!(get_abbrev(&reg, "/npm/lodash").header("x-cache"), Some("MISS"));
    let (r1, w1) = (reg.mem.store.reads(), reg.mem.store.writes());
    // Reads: the hosted packument, the cache entry (its validators go to the refresh), the
    // new entry, its copy. Writes: the copy, the tarball records, the entry. (The full view
    // that could stand in is never read when the upstream answers.)
    assert_eq!((r1 - r0, w1 - w0), (4, 3), "a cold packument's reads and writes");
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/lodash/-/lodash-4.17.21.tgz")).header("x-cache"), Some("MISS"));
    let (r2, w2) = (reg.mem.store.reads(), reg.mem.store.writes());
    // Reads: the hosted tarball, the cached one, whether the name is hosted, the tarball
    // records, and (natively, where the bytes are stored before they are served) the copy.
    assert_eq!((r2 - r1, w2 - w1), (5, 1), "a cold tarball's reads and writes");
}

#[test]
fn first_answers_are_kept_at_the_edge_so_a_second_install_reads_no_storage() {
    let (reg, up) = setup(&[]);
    let tgzs = add_package(&up, "lodash", &["4.17.21"]);
    let path = "/npm/lodash/-/lodash-4.17.21.tgz";
    // As npm installs: the packument (its refresh writes, and purges, the cache entry), then
    // the tarball (verified on its way).
    let doc = get_abbrev(&reg, "/npm/lodash");
    assert_eq!((doc.status, doc.header("x-cache")), (200, Some("MISS")));
    let tgz = reg.send(Request::new(Method::Get, path));
    assert_eq!((tgz.status, tgz.header("x-cache")), (200, Some("MISS")));
    let calls = up.calls().len();
    let before = reg.mem.store.reads();
    let doc_again = get_abbrev(&reg, "/npm/lodash");
    assert_eq!(doc_again.header("x-edge-cache"), Some("HIT"), "the first packument answer was kept");
    assert_eq!(doc_again.header("x-cache"), Some("HIT"));
    assert_eq!(doc_again.body, doc.body);
    for method in [Method::Get, Method::Head] {
        let again = reg.send(Request::new(method.clone(), path));
        assert_eq!((again.status, again.header("x-cache"), again.header("x-edge-cache")), (200, Some("HIT"), Some("HIT")), "{method:?}");
        if method == Method::Get {
            assert_eq!(again.body, tgzs[0].1);
        }
    }
    assert_eq!(reg.mem.store.reads() - before, 0, "no store operation at all");
    assert_eq!(up.calls().len(), calls, "nor the upstream");

    // A new copy of the packument (its TTL passed) replaces the kept one.
    up.forget("/lodash");
    add_package(&up, "lodash", &["4.17.21", "4.18.0"]);
    reg.mem.clock.advance(301_000.0);
    // Past its TTL: served stale (never kept) while the refresh runs, then the new copy.
    let stale = get_abbrev(&reg, "/npm/lodash");
    assert_eq!((stale.header("x-cache"), stale.header("x-edge-cache")), (Some("STALE"), None));
    let newer = get_abbrev(&reg, "/npm/lodash");
    assert_ne!(newer.header("x-edge-cache"), Some("HIT"));
    assert!(newer.json()["versions"]["4.18.0"].is_object(), "{newer:?}");
    let kept = get_abbrev(&reg, "/npm/lodash");
    assert_eq!(kept.header("x-edge-cache"), Some("HIT"));
    assert!(kept.json()["versions"]["4.18.0"].is_object(), "the kept answer is the new copy");
}

#[test]
fn a_tarball_fetched_without_integrity_is_not_kept_at_the_edge() {
    let (reg, up) = setup(&[]);
    let tgz = tarball("loose", "1.0.0");
    let mut doc = packument("loose", &[("1.0.0", &tgz)], UPSTREAM);
    let dist = doc["versions"]["1.0.0"]["dist"].as_object_mut().unwrap();
    dist.remove("integrity");
    dist.remove("shasum");
    serve_packument(&up, "loose", &doc);
    up.serve(&format!("{UPSTREAM}/{}", tarball_path("loose", "1.0.0")), Answer::bytes(200, "application/octet-stream", tgz.clone()));
    let path = "/npm/loose/-/loose-1.0.0.tgz";
    assert_eq!(get_abbrev(&reg, "/npm/loose").status, 200);
    for _ in 0..2 {
        let r = reg.send(Request::new(Method::Get, path));
        assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")), "passed through, never kept");
        assert_eq!(r.header("x-edge-cache"), None);
        assert_eq!(r.body, tgz);
    }
}

#[test]
fn the_first_hosted_publish_of_a_name_purges_its_cached_upstream_copies() {
    let (reg, up) = setup(&[]);
    add_package(&up, "taken", &["1.0.0"]);
    add_package(&up, "taken-too", &["1.0.0"]);
    for path in ["/npm/taken/-/taken-1.0.0.tgz", "/npm/taken-too/-/taken-too-1.0.0.tgz"] {
        assert_eq!(reg.send(Request::new(Method::Get, path)).status, 200, "{path}");
    }
    assert!(!reg.keys_with("npm/cache/taken/").is_empty());
    let token = reg.user_with_token("dev");
    reg.publish_ok(&token, "taken", "2.0.0");
    assert!(reg.keys_with("npm/cache/taken/").is_empty(), "left: {:?}", reg.keys_with("npm/cache/taken/"));
    let calls = log(&up).len();
    for method in [Method::Get, Method::Head] {
        let r = reg.send(Request::new(method, "/npm/taken/-/taken-1.0.0.tgz"));
        assert_eq!(r.status, 404, "{method:?}: the upstream's version of a hosted name is gone");
    }
    assert_eq!(log(&up).len(), calls, "and the upstream is not asked for it");
    // Another package whose name starts the same keeps its copies.
    assert_eq!(reg.keys_with("npm/cache/taken-too/-/").len(), 1);
    let r = reg.send(Request::new(Method::Get, "/npm/taken-too/-/taken-too-1.0.0.tgz"));
    assert_eq!(r.header("x-cache"), Some("HIT"));
}

#[test]
fn the_admin_api_purges_one_package_from_the_cache() {
    let (reg, up) = setup(&[]);
    add_package(&up, "@scope/pkg", &["1.0.0"]);
    add_package(&up, "@scope/pkg-two", &["1.0.0"]);
    for path in ["/npm/@scope/pkg/-/pkg-1.0.0.tgz", "/npm/@scope/pkg-two/-/pkg-two-1.0.0.tgz"] {
        assert_eq!(reg.send(Request::new(Method::Get, path)).status, 200, "{path}");
    }
    let cached = reg.keys_with("npm/cache/@scope/pkg/").len();
    assert!(cached >= 2, "a packument entry and a tarball at least");
    let r = reg.send(admin(Method::Delete, "/-/admin/cache/npm/@scope%2fpkg"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["purged"], cached);
    assert!(reg.keys_with("npm/cache/@scope/pkg/").is_empty());
    assert!(!reg.keys_with("npm/cache/@scope/pkg-two/").is_empty(), "a package whose name starts the same keeps its copies");
    let again = reg.send(Request::new(Method::Get, "/npm/@scope/pkg/-/pkg-1.0.0.tgz"));
    assert_eq!((again.status, again.header("x-cache")), (200, Some("MISS")));
    assert_eq!(reg.send(admin(Method::Delete, "/-/admin/cache/npm/..%2f..")).status, 400);
    let token = reg.user_with_token("dev");
    assert_eq!(reg.send(bearer(Request::new(Method::Delete, "/-/admin/cache/npm/@scope/pkg"), &token)).status, 403);
}

#[test]
fn stale_copies_are_served_and_revalidated_conditionally() {
    let (reg, up) = setup(&[]);
    add_package(&up, "chalk", &["5.0.0"]);
    assert_eq!(get_abbrev(&reg, "/npm/chalk").header("x-cache"), Some("MISS"));
    reg.mem.clock.advance(301_000.0);
    // Past the TTL, inside the stale window: served at once, refreshed in the background
    // (which `send` runs after the response) with the upstream's ETag.
    let stale = get_abbrev(&reg, "/npm/chalk");
    assert_eq!(stale.header("x-cache"), Some("STALE"));
    let last = log(&up).last().unwrap().1.clone();
    assert!(last.iter().any(|(k, _)| k == "if-none-match"), "revalidation is conditional: {last:?}");
    assert_eq!(get_abbrev(&reg, "/npm/chalk").header("x-cache"), Some("HIT"), "the 304 renewed the entry");
    // Past the stale window: revalidated before answering; a new version shows up.
    add_package(&up, "chalk", &["5.0.0", "5.1.0"]);
    reg.mem.clock.advance(2_000_000.0);
    let fresh = get_abbrev(&reg, "/npm/chalk");
    assert_eq!(fresh.header("x-cache"), Some("MISS"));
    assert_eq!(fresh.json()["dist-tags"]["latest"], "5.1.0");
    reg.mem.clock.advance(2_000_000.0);
    let revalidated = get_abbrev(&reg, "/npm/chalk");
    assert_eq!(revalidated.header("x-cache"), Some("REVALIDATED"));
    // The replaced copy is gone: one stored document per view.
    let docs: Vec<String> = reg.keys_with("npm/cache/chalk/abbreviated-");
    assert_eq!(docs.len(), 1, "{docs:?}");
}

#[test]
fn upstream_failures_fall_back_to_stale_copies_or_a_clear_error() {
    let (reg, up) = setup(&[]);
    add_package(&up, "express", &["4.0.0"]);
    get_abbrev(&reg, "/npm/express");
    reg.mem.clock.advance(10_000_000.0);
    let url = format!("{UPSTREAM}/express");
    up.fail(&url, Fault::status(503), 3);
    let r = get_abbrev(&reg, "/npm/express");
    assert_eq!(r.status, 200, "stale-if-error: {r:?}");
    assert_eq!(r.header("x-cache"), Some("STALE"));
    assert_eq!(calls_to(&up, "/express"), 4, "one try and two retries");
    // Only the full view cached (npm view, or npm fetching a dependency): it stands in for
    // the install view while the upstream is down.
    add_package(&up, "commander", &["12.0.0"]);
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/commander")).status, 200);
    reg.mem.clock.advance(10_000_000.0);
    up.fail(&format!("{UPSTREAM}/commander"), Fault::status(503), 3);
    let r = get_abbrev(&reg, "/npm/commander");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["versions"]["12.0.0"]["dist"]["tarball"], "http://localhost/npm/commander/-/commander-12.0.0.tgz");
    // Nothing cached at all: a 502 in npm's shape.
    up.fail(&format!("{UPSTREAM}/koa"), Fault::status(500), 3);
    let r = get_abbrev(&reg, "/npm/koa");
    assert_eq!(r.status, 502);
    assert!(r.json()["error"].as_str().unwrap().contains("upstream unavailable"));
}

#[test]
fn rate_limits_are_waited_out_with_retry_after() {
    let (reg, up) = setup(&[]);
    add_package(&up, "react", &["18.0.0"]);
    up.fail(&format!("{UPSTREAM}/react"), Fault::rate_limited(2), 1);
    let before = reg.mem.clock.now_ms();
    let r = get_abbrev(&reg, "/npm/react");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(reg.mem.clock.now_ms() - before >= 2000.0, "waited as Retry-After said");
    // A Retry-After beyond the longest backoff is not waited for.
    up.fail(&format!("{UPSTREAM}/vue"), Fault::rate_limited(3600), 1);
    assert_eq!(get_abbrev(&reg, "/npm/vue").status, 502);
}

#[test]
fn not_found_upstream_is_remembered_for_a_while() {
    let (reg, up) = setup(&[]);
    assert_eq!(get_abbrev(&reg, "/npm/no-such-pkg").status, 404);
    let neg = get_abbrev(&reg, "/npm/no-such-pkg");
    assert_eq!(neg.status, 404);
    assert_eq!(neg.header("x-cache"), Some("HIT"));
    assert_eq!(calls_to(&up, "no-such-pkg"), 1);
    add_package(&up, "no-such-pkg", &["1.0.0"]);
    reg.mem.clock.advance(61_000.0);
    assert_eq!(get_abbrev(&reg, "/npm/no-such-pkg").status, 200, "asked again after the negative TTL");
}

#[test]
fn the_circuit_breaker_stops_calling_a_failing_upstream() {
    let (reg, up) = setup(&[]);
    for i in 0..3 {
        up.fail(&format!("{UPSTREAM}/p{i}"), Fault::status(500), 3);
        assert_eq!(get_abbrev(&reg, &format!("/npm/p{i}")).status, 502);
    }
    let before = log(&up).len();
    add_package(&up, "healthy", &["1.0.0"]);
    assert_eq!(get_abbrev(&reg, "/npm/healthy").status, 502, "breaker open");
    assert_eq!(log(&up).len(), before, "no call while open");
    reg.mem.clock.advance(31_000.0);
    assert_eq!(get_abbrev(&reg, "/npm/healthy").status, 200, "half-open trial succeeds");
}

#[test]
fn slow_and_truncated_packuments_are_not_cached() {
    let (reg, up) = setup(&[]);
    let doc = packument("cut", &[("1.0.0", b"x")], UPSTREAM);
    let text = doc.to_string();
    reg.mem.fetcher.set_handler(move |_url, _req| {
        let cut = text.as_bytes()[..text.len() - 3].to_vec();
        Response::bytes(200, "application/json", cut)
    });
    let r = get_abbrev(&reg, "/npm/cut");
    assert_eq!(r.status, 502, "{r:?}");
    assert!(reg.keys_with("npm/cache/cut/").is_empty(), "{:?}", reg.keys_with("npm/cache/cut/"));
    drop(up);
}

#[test]
fn scope_rules_and_credentials_go_only_where_configured() {
    let reg = Reg::with_vars(&[
        (
            "NPM_UPSTREAMS",
            r#"[{"id":"corp","url":"https://corp.example","priority":1,"scopeRules":[{"pattern":"@corp/*","action":"include"}],
                 "auth":{"type":"bearer","tokenSecret":"CORP_TOKEN"}},
                {"id":"public","url":"https://up.example","priority":2,"scopeRules":[{"pattern":"@corp/*","action":"exclude"}]}]"#,
        ),
        ("CORP_TOKEN", "corp-secret-token"),
    ]);
    let up = FakeUpstream::install(&reg.mem);
    let tgz = tarball("@corp/tool", "1.0.0");
    // The corp registry keeps its tarballs on another host.
    serve_packument(&up, "@corp/tool", &packument("@corp/tool", &[("1.0.0", &tgz)], "https://cdn.example"));
    up.serve("https://cdn.example/@corp/tool/-/tool-1.0.0.tgz", Answer::bytes(200, "application/octet-stream", tgz.clone()));
    assert_eq!(get_abbrev(&reg, "/npm/@corp%2ftool").status, 200);
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/@corp/tool/-/tool-1.0.0.tgz")).body, tgz);
    let calls = log(&up);
    let auth = |i: usize| calls[i].1.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone());
    assert_eq!(auth(0).as_deref(), Some("Bearer corp-secret-token"), "credentials to the upstream");
    assert!(calls[1].0.starts_with("https://cdn.example"));
    assert_eq!(auth(1), None, "never to another host");
    // `@corp/*` is excluded from the public upstream and only the corp one is asked.
    let before = calls.len();
    assert_eq!(get_abbrev(&reg, "/npm/@corp%2fmissing").status, 404);
    assert_eq!(log(&up).len(), before + 1);
}

#[test]
fn without_upstreams_unknown_packages_are_404() {
    let reg = Reg::new();
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/left-pad")).status, 404);
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/left-pad/-/left-pad-1.0.0.tgz")).status, 404);
}

#[test]
fn a_version_of_a_proxied_package() {
    let (reg, up) = setup(&[]);
    add_package(&up, "semver", &["7.5.0", "7.6.0"]);
    let v = reg.send(Request::new(Method::Get, "/npm/semver/7.5.0"));
    assert_eq!(v.status, 200, "{v:?}");
    assert_eq!(v.json()["version"], "7.5.0");
    assert_eq!(v.json()["dist"]["tarball"], "http://localhost/npm/semver/-/semver-7.5.0.tgz");
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/semver/latest")).json()["version"], "7.6.0");
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/semver/9.9.9")).status, 404);
}

#[test]
fn npm_audit_is_passed_to_the_upstream() {
    let (reg, _up) = setup(&[]);
    let seen: Rc<RefCell<Vec<(String, Vec<u8>)>>> = Rc::default();
    let s = seen.clone();
    reg.mem.fetcher.set_handler(move |url, req| {
        let body = match req.body {
            Body::Bytes(b) => b,
            other => panic!("audit bodies are sent as bytes (retried): {other:?}"),
        };
        s.borrow_mut().push((url.to_string(), body));
        Response::json(200, &json!({"lodash": [{"id": 1, "severity": "high"}]}))
    });
    let body = json!({"lodash": ["4.17.20"]}).to_string();
    let r = reg.send(
        Request::new(Method::Post, "/npm/-/npm/v1/security/advisories/bulk")
            .with_header("Content-Type", "application/json")
            .with_body(body.clone()),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["lodash"][0]["severity"], "high");
    let seen = seen.borrow();
    assert_eq!(seen[0].0, format!("{UPSTREAM}/-/npm/v1/security/advisories/bulk"));
    assert_eq!(seen[0].1, body.as_bytes());
    // Without an upstream there is nobody to ask.
    let bare = Reg::new();
    assert_eq!(bare.send(Request::new(Method::Post, "/npm/-/npm/v1/security/advisories/bulk").with_body(body)).status, 404);
}

/// A provider that picks the upstream per request: here, only for one user.
struct OnlyFor(String, Rc<edgeregistry::upstream::ProtocolUpstreams>);

#[async_trait::async_trait(?Send)]
impl edgeregistry::upstream::UpstreamProvider for OnlyFor {
    async fn resolve(&self, ctx: &edgeregistry::upstream::ResolveContext<'_>) -> Option<Rc<edgeregistry::upstream::ProtocolUpstreams>> {
        (ctx.actor.user_id.as_deref() == Some(self.0.as_str())).then(|| self.1.clone())
    }
}

#[test]
fn a_custom_provider_chooses_upstreams_per_request() {
    let (reg, up) = setup(&[]);
    add_package(&up, "left-pad", &["1.0.0"]);
    let upstreams = reg.app.config.upstreams.values().next().unwrap().clone();
    let reg = Reg { mem: reg.mem, app: reg.app.with_upstream_provider(Rc::new(OnlyFor("alice".into(), upstreams))) };
    let alice = reg.user_with_token("alice");
    let bob = reg.user_with_token("bob");
    assert_eq!(reg.send(get("/npm/left-pad", &bob)).status, 404, "no upstream for bob");
    assert_eq!(reg.send(get("/npm/left-pad", &alice)).status, 200);
}

#[test]
fn search_lists_hosted_packages_first_then_the_upstreams() {
    let (reg, _up) = setup(&[]);
    let token = reg.user_with_token("dev");
    reg.publish_ok(&token, "pad-local", "1.0.0");
    reg.publish_ok(&token, "left-pad", "1.0.0");
    reg.mem.fetcher.set_handler(|url, _req| {
        assert!(url.starts_with(&format!("{UPSTREAM}/-/v1/search?text=pad&size=")), "{url}");
        let o = |n: &str| json!({"package": {"name": n, "version": "9.0.0"}, "score": {"final": 1.0}, "searchScore": 1.0});
        Response::json(200, &json!({"objects": [o("left-pad"), o("pad-upstream")], "total": 2, "time": "now"}))
    });
    let r = reg.send(Request::new(Method::Get, "/npm/-/v1/search?text=pad&size=10"));
    assert_eq!(r.status, 200, "{r:?}");
    let names: Vec<String> = r.json()["objects"].as_array().unwrap().iter().map(|o| o["package"]["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names[..2].contains(&"left-pad".to_string()) && names[..2].contains(&"pad-local".to_string()), "hosted first: {names:?}");
    assert_eq!(names[2], "pad-upstream", "the upstream's left-pad is not listed over the hosted one");
    // The upstream failing leaves the hosted results.
    reg.mem.fetcher.set_handler(|_, _| Response::json(500, &json!({})));
    let r = reg.send(Request::new(Method::Get, "/npm/-/v1/search?text=pad&size=10"));
    assert_eq!(r.json()["objects"].as_array().unwrap().len(), 2);
}
