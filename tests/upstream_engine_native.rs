//! The pull-through engine when the upstream misbehaves, on the in-memory platform whose
//! clock's timers really wait (time moves only when every task is stuck on one), with the
//! shared `FakeUpstream`: a slow or hung upstream takes time as it would in the Worker, a
//! client with a cached copy is answered within the deadline, refreshes go on in the
//! background, faults of every kind open the circuit breaker, client errors never do, and a
//! recovered upstream is probed within a minute.

mod common;

use std::cell::Cell;

use common::upstream::{Answer, FakeUpstream, Fault};
use common::*;
use edgeregistry::http::{Method, Request};
use serde_json::{json, Value};

const UPSTREAM: &str = "https://up.example";
const ABBREV: &str = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";
/// Per try; with one retry and a 100 ms backoff a hung upstream costs 10.1 s.
const TIMEOUT_MS: f64 = 5000.0;

/// A registry mirroring the fake upstream.
struct World {
    reg: Reg,
    up: FakeUpstream,
}

static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl World {
    /// `resilience` is merged into the defaults of these tests (one retry, 5 s timeouts,
    /// breaker threshold 3, reset 1 s); the cache keeps metadata 10 s, stale 10 s more.
    fn new(resilience: Value) -> World {
        let mut r = json!({"maxRetries": 1, "retryDelayMs": 100, "timeoutMs": TIMEOUT_MS as u64, "circuitBreakerThreshold": 3, "circuitBreakerResetMs": 1000});
        for (k, v) in resilience.as_object().cloned().unwrap_or_default() {
            r[k] = v;
        }
        // Breakers live per isolate (thread) by upstream id: a fresh id per world.
        let id = format!("up{}", NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        let upstreams = json!({"upstreams": [{"id": id, "url": UPSTREAM}], "resilience": r,
            "cache": {"defaultTtlSeconds": 10, "staleMaxAgeSeconds": 10, "negativeCacheTtlSeconds": 60}});
        let reg = Reg::with_vars(&[("NPM_UPSTREAMS", &upstreams.to_string())]);
        let up = FakeUpstream::install(&reg.mem);
        World { reg, up }
    }

    /// The upstream misbehaves so from now on (`None`: healthy again).
    fn mode(&self, fault: Option<Fault>) {
        self.up.recover();
        if let Some(fault) = fault {
            self.up.go_down(fault);
        }
    }

    fn publish_upstream(&self, name: &str, versions: &[&str]) {
        let tgzs: Vec<(&str, Vec<u8>)> = versions.iter().map(|v| (*v, tarball(name, v))).collect();
        let versions: Vec<(&str, &[u8])> = tgzs.iter().map(|(v, t)| (*v, t.as_slice())).collect();
        self.up.serve(&format!("/{name}"), Answer::json(200, &packument(name, &versions, UPSTREAM)));
    }

    fn calls(&self) -> usize {
        self.up.total()
    }

    fn advance(&self, ms: f64) {
        self.reg.mem.clock.advance(ms);
    }

    fn document_request(name: &str) -> Request {
        Request::new(Method::Get, &format!("/npm/{name}")).with_header("Accept", ABBREV)
    }

    /// The document of `name` and how long (virtual milliseconds) it took; the background
    /// work runs alongside, and what is left of it when the answer came stays queued.
    fn get(&self, name: &str) -> (Resp, f64) {
        self.reg.answer(World::document_request(name))
    }

    /// Lets the background work finish (or wait forever on a hung upstream that no timer
    /// will end).
    fn settle(&self) {
        self.reg.settle();
    }
}

fn latest(r: &Resp) -> String {
    r.json()["dist-tags"]["latest"].as_str().unwrap_or_default().to_string()
}

/// Past the TTL and the stale window of what the tests cache.
const EXPIRED: f64 = 25_000.0;

#[test]
fn a_slow_upstream_never_holds_a_request_with_a_cached_copy_past_the_deadline() {
    let w = World::new(json!({}));
    w.publish_upstream("slowpkg", &["1.0.0"]);
    let (r, _) = w.get("slowpkg");
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    w.advance(EXPIRED);
    w.publish_upstream("slowpkg", &["1.0.0", "1.1.0"]);
    w.mode(Some(Fault::Delay(3000)));
    let (r, took) = w.get("slowpkg");
    assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")), "{r:?}");
    assert_eq!(latest(&r), "1.0.0", "the expired copy");
    assert!(took <= 500.0, "answered within the default deadline of 500 ms, not after the upstream's 3 s: {took}");
    // The refresh went on in the background and updated the cache when it completed.
    w.settle();
    let calls = w.calls();
    let (r, took) = w.get("slowpkg");
    assert_eq!((r.header("x-cache"), latest(&r).as_str(), took), (Some("HIT"), "1.1.0", 0.0));
    assert_eq!(calls, 2, "one fetch, one refresh");
    assert_eq!(w.calls(), calls, "a hit asks no upstream");
}

#[test]
fn a_hung_upstream_never_holds_requests_with_cached_copies_past_the_configured_deadline() {
    let w = World::new(json!({"deadlineMs": 250}));
    let names: Vec<String> = (0..6).map(|i| format!("hung{i}")).collect();
    for n in &names {
        w.publish_upstream(n, &["1.0.0"]);
        assert_eq!(w.get(n).0.status, 200);
    }
    w.advance(EXPIRED);
    w.mode(Some(Fault::Hang));
    for n in &names {
        let (r, took) = w.get(n);
        assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")), "{n}: {r:?}");
        assert!(took <= 250.0, "{n}: took {took} ms");
    }
    // Every request came before any refresh timed out, so all six refreshes are out, each
    // retried once: the hung upstream was asked twelve times in all, and no more.
    w.settle();
    assert_eq!(w.calls(), 6 + 12);
    // Their timeouts opened the breaker: the next expired document is served at once, without
    // asking the upstream.
    let calls = w.calls();
    let (r, took) = w.get("hung0");
    assert_eq!((r.status, r.header("x-cache"), took), (200, Some("STALE"), 0.0));
    w.settle();
    assert_eq!(w.calls(), calls, "breaker open: no call");
}

/// A client that resolves dependencies one after the other (npm does) must not pay the
/// deadline for every document while the upstream hangs: once one refresh kept a client past
/// the deadline, the upstream lags, and documents with a cached copy are served at once until
/// it answers again.
#[test]
fn once_an_upstream_lags_the_next_cached_documents_are_served_without_waiting() {
    let w = World::new(json!({"deadlineMs": 400}));
    let names: Vec<String> = (0..5).map(|i| format!("serial{i}")).collect();
    for n in &names {
        w.publish_upstream(n, &["1.0.0"]);
        assert_eq!(w.get(n).0.status, 200);
    }
    w.advance(EXPIRED);
    w.mode(Some(Fault::Hang));
    let took: Vec<f64> = names.iter().map(|n| w.get(n)).map(|(r, took)| {
        assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")), "{r:?}");
        took
    }).collect();
    assert_eq!(took, [400.0, 0.0, 0.0, 0.0, 0.0], "the first waits out the deadline, the rest do not wait");
    // Back to health: the first answer ends the lag, and a slow refresh is waited for again.
    w.mode(None);
    w.settle();
    w.advance(EXPIRED);
    w.publish_upstream("serial0", &["1.0.0", "2.0.0"]);
    let (r, took) = w.get("serial0");
    assert_eq!((r.header("x-cache"), latest(&r).as_str(), took), (Some("MISS"), "2.0.0", 0.0), "{r:?}");
    w.advance(EXPIRED);
    w.mode(Some(Fault::Delay(300)));
    let (r, took) = w.get("serial1");
    assert_eq!((r.header("x-cache"), took), (Some("MISS"), 300.0), "within the deadline: waited for: {r:?}");
}

#[test]
fn with_nothing_cached_the_client_waits_for_the_upstream_but_the_breaker_keeps_that_short() {
    let w = World::new(json!({}));
    w.mode(Some(Fault::Hang));
    for i in 0..3 {
        let (r, took) = w.get(&format!("never{i}"));
        assert_eq!(r.status, 502, "{r:?}");
        assert!(r.json()["error"].as_str().unwrap().contains("timed out"), "{r:?}");
        assert_eq!(took, 2.0 * TIMEOUT_MS + 100.0, "two tries of 5 s and the backoff between");
    }
    let calls = w.calls();
    let (r, took) = w.get("never3");
    assert_eq!((r.status, took), (502, 0.0), "the open breaker answers at once");
    assert!(r.json()["error"].as_str().unwrap().contains("circuit breaker open"), "{r:?}");
    assert_eq!(w.calls(), calls);
}

#[test]
fn concurrent_requests_for_one_document_make_one_upstream_call() {
    let w = World::new(json!({}));
    w.publish_upstream("popular", &["1.0.0"]);
    w.mode(Some(Fault::Delay(1000)));
    let answers = w.reg.answer_all((0..5).map(|_| World::document_request("popular")).collect());
    for (r, took) in &answers {
        assert_eq!((r.status, *took), (200, 1000.0), "{r:?}");
    }
    assert_eq!(w.calls(), 1, "{:?}", w.up.calls());
    // Expired and slow again: the stale answers share one background refresh too.
    w.advance(EXPIRED);
    for (r, took) in w.reg.answer_all((0..5).map(|_| World::document_request("popular")).collect()) {
        assert_eq!((r.status, r.header("x-cache"), took), (200, Some("STALE"), 500.0));
    }
    w.settle();
    assert_eq!(w.calls(), 2);
}

#[test]
fn client_errors_never_open_the_breaker_and_audits_pass_them_through() {
    let w = World::new(json!({}));
    w.publish_upstream("after-audits", &["1.0.0"]);
    w.mode(Some(Fault::status(405)));
    let audit = || Request::new(Method::Post, "/npm/-/npm/v1/security/audits/quick").with_header("Content-Type", "application/json").with_body(b"{}".to_vec());
    for _ in 0..5 {
        let (r, took) = w.reg.answer(audit());
        assert_eq!(r.status, 405, "the upstream's own status: {r:?}");
        assert_eq!(r.json()["error"], "upstream says 405", "and its own body");
        assert_eq!(took, 0.0, "a client error is not retried");
    }
    // The same for documents: a 403 is no reason to stop asking for other packages.
    w.mode(Some(Fault::status(403)));
    for i in 0..5 {
        assert_eq!(w.get(&format!("forbidden{i}")).0.status, 502);
    }
    assert_eq!(w.calls(), 10, "one call each");
    w.mode(None);
    let (r, _) = w.get("after-audits");
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")), "breaker still closed: {r:?}");
}

#[test]
fn refused_connections_5xx_429_and_timeouts_open_the_breaker_and_a_prompt_probe_closes_it() {
    for mode in [Fault::Refused, Fault::status(500), Fault::status(503), Fault::status(429), Fault::Hang] {
        let w = World::new(json!({}));
        w.publish_upstream("healthy", &["1.0.0"]);
        w.mode(Some(mode.clone()));
        for i in 0..3 {
            assert_eq!(w.get(&format!("p{i}")).0.status, 502, "{mode:?}");
        }
        assert_eq!(w.calls(), 6, "{mode:?}: three documents, two tries each");
        w.mode(None);
        let (r, _) = w.get("healthy");
        assert_eq!(r.status, 502, "{mode:?}: open");
        assert_eq!(w.calls(), 6, "{mode:?}: no call while open");
        w.advance(1000.0);
        let (r, _) = w.get("healthy");
        assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")), "{mode:?}: the trial after the reset time closes it");
        assert_eq!(w.get("p0").0.status, 404, "{mode:?}: closed");
    }
}

#[test]
fn the_open_period_stops_doubling_at_a_minute() {
    let w = World::new(json!({"maxRetries": 0, "circuitBreakerResetMs": 1000}));
    w.publish_upstream("back", &["1.0.0"]);
    w.mode(Some(Fault::status(500)));
    for i in 0..3 {
        assert_eq!(w.get(&format!("p{i}")).0.status, 502);
    }
    // Ten failed trials, each after a minute: the wait would double past ten minutes.
    let trials = Cell::new(0);
    for _ in 0..10 {
        w.advance(60_000.0);
        let before = w.calls();
        assert_eq!(w.get("back").0.status, 502);
        trials.set(trials.get() + w.calls() - before);
    }
    assert_eq!(trials.get(), 10, "a trial every minute");
    w.mode(None);
    w.advance(60_000.0);
    assert_eq!(w.get("back").0.status, 200, "the upstream that came back is asked within a minute");
}
