//! The pull-through engine when the upstream misbehaves, on the in-memory platform with a
//! virtual clock whose timers really wait (time moves only when every task is stuck on one),
//! so a slow or hung upstream takes time as it would in the Worker: a client with a cached
//! copy is answered within the deadline, refreshes go on in the background, faults of every
//! kind open the circuit breaker, client errors never do, and a recovered upstream is probed
//! within a minute.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::task::{Poll, Waker};

use async_trait::async_trait;
use common::*;
use edgeregistry::config::Config;
use edgeregistry::http::{Method, Request, Response};
use edgeregistry::platform::memory::MemoryPlatform;
use edgeregistry::platform::{Background, Clock, Fetcher, Platform, StoreError, StoreResult};
use edgeregistry::App;
use futures::executor::{LocalPool, LocalSpawner};
use futures::future::LocalBoxFuture;
use futures::task::LocalSpawnExt;
use serde_json::{json, Value};

const UPSTREAM: &str = "https://up.example";
const ABBREV: &str = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";
/// Per try; with one retry and a 100 ms backoff a hung upstream costs 10.1 s.
const TIMEOUT_MS: f64 = 5000.0;

/// Timers that fire only when the test moves time on to them.
#[derive(Clone, Default)]
struct VirtualClock(Rc<RefCell<Timers>>);

#[derive(Default)]
struct Timers {
    now: f64,
    waiting: Vec<(f64, Waker)>,
}

impl VirtualClock {
    /// Moves time to the next timer and wakes what waits for it; false when none is set.
    fn advance_to_next(&self) -> bool {
        let mut t = self.0.borrow_mut();
        let Some(next) = t.waiting.iter().map(|(at, _)| *at).reduce(f64::min) else { return false };
        t.now = t.now.max(next);
        let now = t.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut t.waiting).into_iter().partition(|(at, _)| *at <= now);
        t.waiting = later;
        drop(t);
        due.into_iter().for_each(|(_, w)| w.wake());
        true
    }

    fn advance(&self, ms: f64) {
        self.0.borrow_mut().now += ms;
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> f64 {
        self.0.borrow().now
    }

    fn sleep(&self, ms: u64) -> LocalBoxFuture<'static, ()> {
        let timers = self.0.clone();
        let until = self.now_ms() + ms as f64;
        Box::pin(futures::future::poll_fn(move |cx| {
            let mut t = timers.borrow_mut();
            if t.now >= until {
                return Poll::Ready(());
            }
            t.waiting.push((until, cx.waker().clone()));
            Poll::Pending
        }))
    }
}

/// Background work runs as its own task, after and alongside the responses.
struct PoolBackground(LocalSpawner);

impl Background for PoolBackground {
    fn spawn(&self, work: LocalBoxFuture<'static, ()>) {
        self.0.spawn_local(work).expect("spawn");
    }
}

/// How the scripted upstream behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Healthy,
    /// Answers after this many milliseconds.
    Slow(u64),
    /// Accepts the request and never answers.
    Hang,
    /// Connection refused.
    Refused,
    /// Answers every request with this status.
    Status(u16),
}

#[derive(Default)]
struct Script {
    mode: Option<Mode>,
    /// Package → its versions.
    packages: BTreeMap<String, Vec<String>>,
    calls: Vec<String>,
}

struct ScriptedUpstream {
    script: Rc<RefCell<Script>>,
    clock: VirtualClock,
}

fn packument(name: &str, versions: &[String]) -> Value {
    let mut vs = serde_json::Map::new();
    for v in versions {
        let tgz = tarball(name, v);
        let dist = json!({"tarball": format!("{UPSTREAM}/{name}/-/{name}-{v}.tgz"), "integrity": integrity(&tgz), "shasum": sha1_hex(&tgz)});
        vs.insert(v.clone(), json!({"name": name, "version": v, "dist": dist}));
    }
    json!({"name": name, "dist-tags": {"latest": versions.last()}, "versions": vs})
}

#[async_trait(?Send)]
impl Fetcher for ScriptedUpstream {
    async fn fetch(&self, url: &str, _req: Request) -> StoreResult<Response> {
        let mode = {
            let mut s = self.script.borrow_mut();
            s.calls.push(url.to_string());
            s.mode.unwrap_or(Mode::Healthy)
        };
        match mode {
            Mode::Healthy => {}
            Mode::Slow(ms) => self.clock.sleep(ms).await,
            Mode::Hang => futures::future::pending::<()>().await,
            Mode::Refused => return Err(StoreError::backend("connection refused")),
            Mode::Status(status) => return Ok(Response::json(status, &json!({"error": format!("upstream says {status}")}))),
        }
        let name = url.strip_prefix(&format!("{UPSTREAM}/")).unwrap_or_default();
        let s = self.script.borrow();
        Ok(match s.packages.get(name) {
            Some(versions) => Response::json(200, &packument(name, versions)),
            None => Response::json(404, &json!({"error": "Not found"})),
        })
    }
}

/// A response and how long (virtual milliseconds) it took.
type Timed = (Resp, f64);

/// A registry mirroring the scripted upstream, on the virtual clock.
struct World {
    app: Rc<App>,
    clock: VirtualClock,
    script: Rc<RefCell<Script>>,
    pool: RefCell<LocalPool>,
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
        let mem = MemoryPlatform::new();
        let clock = VirtualClock::default();
        clock.advance(1_767_225_600_000.0);
        let script: Rc<RefCell<Script>> = Rc::default();
        let pool = LocalPool::new();
        let platform = Platform {
            clock: Rc::new(clock.clone()),
            fetcher: Rc::new(ScriptedUpstream { script: script.clone(), clock: clock.clone() }),
            background: Rc::new(PoolBackground(pool.spawner())),
            ..mem.platform.clone()
        };
        let config = Config::from_vars(&vars(&[("NPM_UPSTREAMS", &upstreams.to_string())])).expect("config");
        World { app: Rc::new(App::new(platform, config)), clock, script, pool: RefCell::new(pool) }
    }

    fn mode(&self, mode: Mode) {
        self.script.borrow_mut().mode = Some(mode);
    }

    fn publish_upstream(&self, name: &str, versions: &[&str]) {
        self.script.borrow_mut().packages.insert(name.into(), versions.iter().map(|v| v.to_string()).collect());
    }

    fn calls(&self) -> usize {
        self.script.borrow().calls.len()
    }

    fn now(&self) -> f64 {
        self.clock.now_ms()
    }

    /// Sends the requests at once; answers each with the virtual time it took. Background work
    /// runs alongside, and whatever is left of it when the last answer came stays queued.
    fn send_all(&self, reqs: Vec<Request>) -> Vec<Timed> {
        let start = self.now();
        let answers: Rc<RefCell<Vec<Option<Timed>>>> = Rc::new(RefCell::new(reqs.iter().map(|_| None).collect()));
        let spawner = self.pool.borrow().spawner();
        for (i, req) in reqs.into_iter().enumerate() {
            let (app, clock, answers) = (self.app.clone(), self.clock.clone(), answers.clone());
            spawner
                .spawn_local(async move {
                    let r = send_async(&app, req).await;
                    answers.borrow_mut()[i] = Some((r, clock.now_ms() - start));
                })
                .expect("spawn");
        }
        loop {
            self.pool.borrow_mut().run_until_stalled();
            if answers.borrow().iter().all(Option::is_some) {
                break;
            }
            assert!(self.clock.advance_to_next(), "a request waits for nothing that will ever come");
        }
        let done = answers.borrow_mut().drain(..).map(Option::unwrap).collect();
        done
    }

    fn send(&self, req: Request) -> (Resp, f64) {
        self.send_all(vec![req]).remove(0)
    }

    fn get(&self, name: &str) -> (Resp, f64) {
        self.send(Request::new(Method::Get, &format!("/npm/{name}")).with_header("Accept", ABBREV))
    }

    /// Lets the background work finish (or wait forever on a hung upstream that no timer
    /// will end).
    fn settle(&self) {
        loop {
            self.pool.borrow_mut().run_until_stalled();
            if !self.clock.advance_to_next() {
                return;
            }
        }
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
    w.clock.advance(EXPIRED);
    w.publish_upstream("slowpkg", &["1.0.0", "1.1.0"]);
    w.mode(Mode::Slow(3000));
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
    w.clock.advance(EXPIRED);
    w.mode(Mode::Hang);
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

#[test]
fn with_nothing_cached_the_client_waits_for_the_upstream_but_the_breaker_keeps_that_short() {
    let w = World::new(json!({}));
    w.mode(Mode::Hang);
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
    w.mode(Mode::Slow(1000));
    let reqs = (0..5).map(|_| Request::new(Method::Get, "/npm/popular").with_header("Accept", ABBREV)).collect();
    let answers = w.send_all(reqs);
    for (r, took) in &answers {
        assert_eq!((r.status, *took), (200, 1000.0), "{r:?}");
    }
    assert_eq!(w.calls(), 1, "{:?}", w.script.borrow().calls);
    // Expired and slow again: the stale answers share one background refresh too.
    w.clock.advance(EXPIRED);
    let reqs = (0..5).map(|_| Request::new(Method::Get, "/npm/popular").with_header("Accept", ABBREV)).collect();
    for (r, took) in w.send_all(reqs) {
        assert_eq!((r.status, r.header("x-cache"), took), (200, Some("STALE"), 500.0));
    }
    w.settle();
    assert_eq!(w.calls(), 2);
}

#[test]
fn client_errors_never_open_the_breaker_and_audits_pass_them_through() {
    let w = World::new(json!({}));
    w.publish_upstream("after-audits", &["1.0.0"]);
    w.mode(Mode::Status(405));
    let audit = || Request::new(Method::Post, "/npm/-/npm/v1/security/audits/quick").with_header("Content-Type", "application/json").with_body(b"{}".to_vec());
    for _ in 0..5 {
        let (r, took) = w.send(audit());
        assert_eq!(r.status, 405, "the upstream's own status: {r:?}");
        assert_eq!(r.json()["error"], "upstream says 405", "and its own body");
        assert_eq!(took, 0.0, "a client error is not retried");
    }
    // The same for documents: a 403 is no reason to stop asking for other packages.
    w.mode(Mode::Status(403));
    for i in 0..5 {
        assert_eq!(w.get(&format!("forbidden{i}")).0.status, 502);
    }
    assert_eq!(w.calls(), 10, "one call each");
    w.mode(Mode::Healthy);
    let (r, _) = w.get("after-audits");
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")), "breaker still closed: {r:?}");
}

#[test]
fn refused_connections_5xx_429_and_timeouts_open_the_breaker_and_a_prompt_probe_closes_it() {
    for mode in [Mode::Refused, Mode::Status(500), Mode::Status(503), Mode::Status(429), Mode::Hang] {
        let w = World::new(json!({}));
        w.publish_upstream("healthy", &["1.0.0"]);
        w.mode(mode);
        for i in 0..3 {
            assert_eq!(w.get(&format!("p{i}")).0.status, 502, "{mode:?}");
        }
        assert_eq!(w.calls(), 6, "{mode:?}: three documents, two tries each");
        w.mode(Mode::Healthy);
        let (r, _) = w.get("healthy");
        assert_eq!(r.status, 502, "{mode:?}: open");
        assert_eq!(w.calls(), 6, "{mode:?}: no call while open");
        w.clock.advance(1000.0);
        let (r, _) = w.get("healthy");
        assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")), "{mode:?}: the trial after the reset time closes it");
        assert_eq!(w.get("p0").0.status, 404, "{mode:?}: closed");
    }
}

#[test]
fn the_open_period_stops_doubling_at_a_minute() {
    let w = World::new(json!({"maxRetries": 0, "circuitBreakerResetMs": 1000}));
    w.publish_upstream("back", &["1.0.0"]);
    w.mode(Mode::Status(500));
    for i in 0..3 {
        assert_eq!(w.get(&format!("p{i}")).0.status, 502);
    }
    // Ten failed trials, each after a minute: the wait would double past ten minutes.
    let trials = Cell::new(0);
    for _ in 0..10 {
        w.clock.advance(60_000.0);
        let before = w.calls();
        assert_eq!(w.get("back").0.status, 502);
        trials.set(trials.get() + w.calls() - before);
    }
    assert_eq!(trials.get(), 10, "a trial every minute");
    w.mode(Mode::Healthy);
    w.clock.advance(60_000.0);
    assert_eq!(w.get("back").0.status, 200, "the upstream that came back is asked within a minute");
}
