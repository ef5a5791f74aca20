//! The pull-through conformance suite, written once for every protocol that mirrors an
//! upstream. A protocol plugs in through [`Mirror`] (how to host a name, ask for a document
//! and a blob, have the fake upstream serve them, purge); `tests/pullthrough_conformance.rs`
//! runs every case for each protocol with [`conformance!`](crate::conformance).
//!
//! Every mirror is configured alike (see [`upstreams_json`]): one upstream `up` at
//! `https://up.example`, two retries 100 ms apart, a 5 s timeout, a breaker that opens after
//! three failures for 30 s; documents fresh for 300 s then served stale for 600 s, "not
//! found" remembered for 60 s.

use edgeregistry::platform::Clock;

use super::upstream::{Fault, FakeUpstream};
use super::{admin, bearer, Reg, Resp};
use edgeregistry::http::{Method, Request};

pub const UPSTREAM: &str = "https://up.example";
pub const TTL_MS: f64 = 300_000.0;
pub const STALE_MS: f64 = 600_000.0;
pub const NEGATIVE_TTL_MS: f64 = 60_000.0;
pub const TIMEOUT_MS: f64 = 5_000.0;
pub const RETRY_DELAY_MS: f64 = 100.0;
pub const BREAKER_THRESHOLD: usize = 3;
pub const BREAKER_RESET_MS: f64 = 30_000.0;
/// The pull-through deadline the deadline cases configure (`resilience.deadlineMs`).
pub const DEADLINE_MS: f64 = 250.0;
/// The longest a client with nothing cached waits for an upstream that never answers: every
/// try (one and `maxRetries`) times out, with the backoff between them.
pub const GIVE_UP_MS: f64 = 3.0 * TIMEOUT_MS + RETRY_DELAY_MS + 2.0 * RETRY_DELAY_MS;

/// The upstream settings every mirror in the suite runs with; `extra_resilience` is added to
/// the resilience object (e.g. `"deadlineMs":500`).
pub fn upstreams_json(extra_resilience: &str) -> String {
    let extra = if extra_resilience.is_empty() { String::new() } else { format!(",{extra_resilience}") };
    format!(
        r#"{{"upstreams":[{{"id":"up","url":"{UPSTREAM}","resilience":{{"maxRetries":2,"retryDelayMs":100,"timeoutMs":5000,
              "circuitBreakerThreshold":3,"circuitBreakerResetMs":30000{extra}}}}}],
            "cache":{{"defaultTtlSeconds":300,"staleMaxAgeSeconds":600,"negativeCacheTtlSeconds":60}}}}"#
    )
}

/// One protocol's pull-through mirror in front of a [`FakeUpstream`].
pub trait Mirror {
    /// A registry configured with [`upstreams_json`]`(extra_resilience)` and its fake upstream.
    fn start(extra_resilience: &str) -> Self;
    fn reg(&self) -> &Reg;
    /// Sends the requests at once; each response with how long it took (the registry's
    /// `answer_all`, unless the mirror routes some requests itself).
    fn answer_all(&self, reqs: Vec<Request>) -> Vec<(Resp, f64)> {
        self.reg().answer_all(reqs)
    }
    /// Sends a request and reads its response, and how long it took.
    fn answer(&self, req: Request) -> (Resp, f64) {
        self.answer_all(vec![req]).remove(0)
    }
    /// Sends a request, then lets the background work it left finish.
    fn send(&self, req: Request) -> Resp {
        let (resp, _) = self.answer(req);
        self.reg().settle();
        resp
    }
    fn upstream(&self) -> &FakeUpstream;
    /// Has the upstream serve `name` — a document (npm packument, OCI tag) and one blob
    /// (npm tarball, OCI layer) — in its `generation`-th form: the document changes with the
    /// generation, the blob never does.
    fn upstream_serves(&self, name: &str, generation: u32);
    /// Publishes `name` on the registry itself (hosted), with a blob unlike the upstream's.
    fn host(&self, name: &str);
    /// The request for the document of `name` (npm packument, OCI tag manifest).
    fn document_request(&self, name: &str) -> Request;
    /// Asks the mirror for the document of `name`.
    fn document(&self, name: &str) -> Resp {
        self.send(self.document_request(name))
    }
    /// The generation a document served by the mirror is in.
    fn generation(&self, doc: &Resp) -> u32;
    /// The request for the blob of `name` (npm tarball, OCI layer).
    fn blob_request(&self, name: &str) -> Request;
    /// Asks the mirror for the blob of `name`.
    fn blob(&self, name: &str) -> Resp {
        self.send(self.blob_request(name))
    }
    /// The bytes of the upstream's blob of `name`.
    fn blob_bytes(&self, name: &str) -> Vec<u8>;
    /// The upstream path the mirror asks first for the document (what a fault there hits).
    fn document_path(&self, name: &str) -> String;
    /// The upstream path whose answer carries the document's bytes.
    fn document_body_path(&self, name: &str, generation: u32) -> String;
    /// The upstream path of the blob.
    fn blob_path(&self, name: &str) -> String;
    /// The admin API's purge of `name` from the cache.
    fn purge_path(&self, name: &str) -> String;
    /// Is the blob of `name` in the cache?
    fn blob_cached(&self, name: &str) -> bool;
    /// Cached objects that belong to `name` alone (not blobs shared by digest).
    fn cached(&self, name: &str) -> Vec<String>;
    /// A request the mirror passes to the upstream as it is (npm audit), and the upstream path
    /// that answers it, if the protocol has one.
    fn passthrough(&self) -> Option<(Request, String)>;
}

fn cache_state(r: &Resp) -> Option<&str> {
    r.header("x-cache")
}

fn now(m: &impl Mirror) -> f64 {
    m.reg().mem.clock.now_ms()
}

/// The time between successive upstream calls to `path`: the backoff (an answer comes at
/// once, and the timeout timer of an attempt starts only once the attempt is waiting).
fn gaps(m: &impl Mirror, path: &str) -> Vec<f64> {
    let at: Vec<f64> = m.upstream().calls().iter().filter(|c| c.path == path).map(|c| c.at_ms).collect();
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Asks for the document and asserts a 200 with this cache state.
fn document_is(m: &impl Mirror, name: &str, state: &str) -> Resp {
    let r = m.document(name);
    assert_eq!((r.status, cache_state(&r)), (200, Some(state)), "document of {name}: {r:?}");
    r
}

/// Documents and blobs: the first request fetches (MISS), the next ones never ask the upstream (HIT).
pub fn miss_then_hit<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("alpha", 1);
    let doc = document_is(&m, "alpha", "MISS");
    assert_eq!(m.generation(&doc), 1);
    assert_eq!(doc.header("x-cache-upstream"), Some("up"));
    let asked = m.upstream().total();
    assert!(asked >= 1);
    let hit = document_is(&m, "alpha", "HIT");
    assert_eq!(hit.body, doc.body);
    let blob = m.blob("alpha");
    assert_eq!((blob.status, cache_state(&blob)), (200, Some("MISS")), "{blob:?}");
    assert_eq!(blob.body, m.blob_bytes("alpha"));
    assert_eq!(m.upstream().calls_to(&m.blob_path("alpha")), 1);
    let asked = m.upstream().total();
    let again = m.blob("alpha");
    assert_eq!((again.status, cache_state(&again)), (200, Some("HIT")));
    assert_eq!(again.body, m.blob_bytes("alpha"));
    assert_eq!(m.upstream().total(), asked, "hits never ask the upstream");
}

/// A blob with one byte flipped is refused, never cached, and the client never gets it
/// whole; the next good copy is fetched.
pub fn flipped_byte_is_never_cached<M: Mirror>() {
    for streamed in [false, true] {
        let m = M::start("");
        m.upstream().stream_bodies(streamed);
        m.upstream_serves("alpha", 1);
        m.upstream().fail(&m.blob_path("alpha"), Fault::FlipByte, 1);
        let r = m.blob("alpha");
        // Natively a streamed body is all there before it is checked, so only what was stored
        // tells (the Worker cuts the client's copy short: tests/e2e_*_proxy.rs).
        if !streamed {
            assert_eq!(r.status, 502, "{r:?}");
        }
        assert_ne!(r.body, m.blob_bytes("alpha"), "streamed={streamed}");
        assert!(!m.blob_cached("alpha"), "streamed={streamed}: a corrupt blob was cached");
        let good = m.blob("alpha");
        assert_eq!((good.status, cache_state(&good)), (200, Some("MISS")), "streamed={streamed}");
        assert_eq!(good.body, m.blob_bytes("alpha"));
        assert!(m.blob_cached("alpha"));
    }
}

/// A blob the upstream sends on elsewhere (a CDN) is fetched from there and cached.
pub fn redirected_blobs_are_followed<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("alpha", 1);
    let cdn = "https://cdn.example/signed/alpha?sig=1";
    m.upstream().serve(cdn, super::upstream::Answer::bytes(200, "application/octet-stream", m.blob_bytes("alpha")));
    m.upstream().fail(&m.blob_path("alpha"), Fault::Redirect { status: 302, location: cdn.to_string() }, 1);
    let r = m.blob("alpha");
    assert_eq!((r.status, cache_state(&r)), (200, Some("MISS")), "{r:?}");
    assert_eq!(r.body, m.blob_bytes("alpha"));
    assert_eq!(m.upstream().calls_to(cdn), 1);
    assert!(m.blob_cached("alpha"));
}

/// A body shorter than its Content-Length (blob or document) is an upstream error: a 502,
/// nothing cached.
pub fn truncation_is_an_upstream_error<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("alpha", 1);
    m.upstream().fail(&m.blob_path("alpha"), Fault::Truncate, 1);
    let r = m.blob("alpha");
    assert_eq!(r.status, 502, "{r:?}");
    assert!(!m.blob_cached("alpha"));
    m.upstream_serves("beta", 1);
    m.upstream().fail(&m.document_body_path("beta", 1), Fault::Truncate, 1);
    let r = m.document("beta");
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(m.cached("beta"), Vec::<String>::new());
}

/// 5xx answers are retried with exponential backoff (100 ms, then 200 ms) up to `maxRetries`.
pub fn failures_are_retried_with_backoff<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("alpha", 1);
    let path = m.document_path("alpha");
    m.upstream().fail(&path, Fault::status(503), 2);
    document_is(&m, "alpha", "MISS");
    assert_eq!(m.upstream().calls_to(&path), 3, "one try and two retries");
    assert_eq!(gaps(&m, &path), vec![RETRY_DELAY_MS, 2.0 * RETRY_DELAY_MS], "backoff doubles");
    // One more failure than retries: an error, and nothing negative remembered.
    m.upstream_serves("beta", 1);
    m.upstream().fail(&m.document_path("beta"), Fault::status(500), 3);
    assert_eq!(m.document("beta").status, 502);
    assert_eq!(m.upstream().calls_to(&m.document_path("beta")), 3);
    document_is(&m, "beta", "MISS");
}

/// A 429's Retry-After is waited out when it is within the longest backoff, and not at all
/// beyond it.
pub fn retry_after_is_honoured<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("alpha", 1);
    let path = m.document_path("alpha");
    m.upstream().fail(&path, Fault::rate_limited(2), 1);
    document_is(&m, "alpha", "MISS");
    assert_eq!(gaps(&m, &path), vec![2000.0], "retried when Retry-After said");
    m.upstream_serves("beta", 1);
    m.upstream().fail(&m.document_path("beta"), Fault::rate_limited(3600), 1);
    let before = now(&m);
    assert_eq!(m.document("beta").status, 502);
    assert_eq!(m.upstream().calls_to(&m.document_path("beta")), 1, "not retried");
    assert!(now(&m) - before < 3_600_000.0, "not waited for");
}

/// An upstream that does not answer within `timeoutMs` is given up on and retried.
pub fn timeouts_are_retried<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("alpha", 1);
    let path = m.document_path("alpha");
    m.upstream().fail(&path, Fault::Hang, 1);
    document_is(&m, "alpha", "MISS");
    assert_eq!(m.upstream().calls_to(&path), 2, "retried once the timeout passed");
    assert_eq!(gaps(&m, &path), vec![TIMEOUT_MS + RETRY_DELAY_MS], "after the timeout and the backoff");
    // An answer later than the timeout counts as none.
    m.upstream_serves("beta", 1);
    m.upstream().fail(&m.document_path("beta"), Fault::Delay(TIMEOUT_MS as u64 + 1), 1);
    document_is(&m, "beta", "MISS");
    assert_eq!(m.upstream().calls_to(&m.document_path("beta")), 2);
    // Never any answer: an error after every try.
    m.upstream().go_down(Fault::Hang);
    let before = now(&m);
    assert_eq!(m.document("delta").status, 502);
    assert_eq!(m.upstream().calls_to(&m.document_path("delta")), 3);
    assert_eq!(now(&m) - before, 3.0 * TIMEOUT_MS + 3.0 * RETRY_DELAY_MS);
}

/// A cached document past its TTL and stale window is still served (STALE) while the
/// upstream fails; cached blobs are served as ever.
pub fn stale_is_served_while_the_upstream_is_down<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("alpha", 1);
    document_is(&m, "alpha", "MISS");
    assert_eq!(m.blob("alpha").status, 200);
    m.reg().mem.clock.advance(TTL_MS + STALE_MS + 1.0);
    m.upstream().go_down(Fault::status(503));
    let stale = document_is(&m, "alpha", "STALE");
    assert_eq!(m.generation(&stale), 1);
    let blob = m.blob("alpha");
    assert_eq!((blob.status, cache_state(&blob)), (200, Some("HIT")));
    assert_eq!(blob.body, m.blob_bytes("alpha"));
    // Back up: the next request past the window fetches the new generation.
    m.upstream().recover();
    m.upstream_serves("alpha", 2);
    m.reg().mem.clock.advance(BREAKER_RESET_MS);
    let fresh = m.document("alpha");
    assert_eq!(fresh.status, 200, "{fresh:?}");
    assert_eq!(m.generation(&fresh), 2);
}

/// Inside the stale window the cached copy is served at once and refreshed behind it.
pub fn stale_while_revalidate<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("alpha", 1);
    document_is(&m, "alpha", "MISS");
    m.upstream_serves("alpha", 2);
    m.reg().mem.clock.advance(TTL_MS + 1.0);
    let stale = document_is(&m, "alpha", "STALE");
    assert_eq!(m.generation(&stale), 1);
    // `Reg::send` ran the background refresh after the response.
    let fresh = document_is(&m, "alpha", "HIT");
    assert_eq!(m.generation(&fresh), 2);
}

/// "Not found" upstream is remembered for the negative TTL, then asked again.
pub fn negative_entries_expire<M: Mirror>() {
    let m = M::start("");
    assert_eq!(m.document("ghost").status, 404);
    let asked = m.upstream().total();
    let again = m.document("ghost");
    assert_eq!(again.status, 404);
    assert_eq!(m.upstream().total(), asked, "the negative entry answered");
    m.upstream_serves("ghost", 1);
    m.reg().mem.clock.advance(NEGATIVE_TTL_MS - 1_000.0);
    assert_eq!(m.document("ghost").status, 404, "still remembered");
    m.reg().mem.clock.advance(2_000.0);
    document_is(&m, "ghost", "MISS");
}

/// Fails one request per fault (documents `down0`, `down1`, …: `circuitBreakerThreshold`
/// of them, which the upstream has), then checks that the breaker is open: the upstream is
/// back and serves `alpha`, yet the mirror answers 502 without asking it.
fn open_breaker(m: &impl Mirror, faults: &[Fault]) {
    assert_eq!(faults.len(), BREAKER_THRESHOLD);
    for (i, fault) in faults.iter().enumerate() {
        let name = format!("down{i}");
        m.upstream_serves(&name, 1);
        m.upstream().go_down(fault.clone());
        assert_eq!(m.document(&name).status, 502, "{fault:?}");
    }
    m.upstream().recover();
    m.upstream_serves("alpha", 1);
    let asked = m.upstream().total();
    assert_eq!(m.document("alpha").status, 502, "breaker open");
    assert_eq!(m.upstream().total(), asked, "no call while open");
}

/// After `circuitBreakerThreshold` failed requests the upstream is not called at all; after
/// the reset time one trial goes through and a success closes the breaker.
pub fn breaker_opens_and_closes<M: Mirror>() {
    let m = M::start("");
    open_breaker(&m, &[Fault::status(500), Fault::status(500), Fault::status(500)]);
    m.reg().mem.clock.advance(BREAKER_RESET_MS + 1.0);
    document_is(&m, "alpha", "MISS");
    m.upstream_serves("beta", 1);
    document_is(&m, "beta", "MISS");
}

/// A name published here is never served from (nor asked of) the upstream.
pub fn hosted_names_are_never_fetched<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("mine", 1);
    m.host("mine");
    let doc = m.document("mine");
    assert_eq!(doc.status, 200, "{doc:?}");
    assert_eq!(cache_state(&doc), None, "the hosted document, not a cached one");
    let blob = m.blob("mine");
    assert_eq!(blob.status, 404, "the upstream's blob of a hosted name: {blob:?}");
    assert_eq!(m.upstream().total(), 0, "{:?}", m.upstream().calls());
}

/// The admin API purges a name's cached copies; the next request fetches again.
pub fn purge_through_the_admin_api<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("alpha", 1);
    m.upstream_serves("alpha-two", 1);
    for name in ["alpha", "alpha-two"] {
        document_is(&m, name, "MISS");
    }
    let cached = m.cached("alpha");
    assert!(!cached.is_empty());
    let r = m.send(admin(Method::Delete, &m.purge_path("alpha")));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["purged"], cached.len());
    assert_eq!(m.cached("alpha"), Vec::<String>::new());
    assert!(!m.cached("alpha-two").is_empty(), "a name that starts the same keeps its copies");
    m.upstream_serves("alpha", 2);
    let again = document_is(&m, "alpha", "MISS");
    assert_eq!(m.generation(&again), 2);
    let user = m.reg().user_with_token("not-admin");
    assert_eq!(m.send(bearer(Request::new(Method::Delete, &m.purge_path("alpha")), &user)).status, 403);
}

/// Simultaneous misses of one document and one blob reach the upstream once each. The
/// document's upstream answers after a second, so all four requests wait on one fetch.
/// (The blob's answers at once, so natively those run one after the other and this holds
/// through the cache; overlapping blob fetches are the Worker's, tests/e2e_*_proxy.rs.)
pub fn simultaneous_misses_fetch_once<M: Mirror>() {
    let m = M::start("");
    m.upstream_serves("alpha", 1);
    m.upstream().fail(&m.document_path("alpha"), Fault::Delay(1000), 1);
    let docs = m.answer_all((0..4).map(|_| m.document_request("alpha")).collect());
    m.reg().settle();
    assert!(docs.iter().all(|(r, took)| r.status == 200 && *took == 1000.0), "{docs:?}");
    assert_eq!(m.upstream().calls_to(&m.document_path("alpha")), 1);
    let blobs = m.answer_all((0..4).map(|_| m.blob_request("alpha")).collect());
    m.reg().settle();
    assert!(blobs.iter().all(|(r, _)| r.status == 200 && r.body == m.blob_bytes("alpha")), "{blobs:?}");
    assert_eq!(m.upstream().calls_to(&m.blob_path("alpha")), 1);
}

// ------------------------------------------------ bounds (issue 10 item 6)

/// A client with a copy past its TTL and stale window is answered with it (STALE) within
/// `deadlineMs` while the upstream hangs, several at once as well; each refresh goes on in
/// the background, and the upstream being back by its retry updates the cache.
pub fn a_hung_upstream_never_holds_a_cached_copy_past_the_deadline<M: Mirror>() {
    let m = M::start(&format!(r#""deadlineMs":{DEADLINE_MS}"#));
    let names = ["alpha", "beta", "gamma"];
    for name in names {
        m.upstream_serves(name, 1);
        document_is(&m, name, "MISS");
    }
    m.reg().mem.clock.advance(TTL_MS + STALE_MS + 1.0);
    for name in names {
        m.upstream_serves(name, 2);
    }
    m.upstream().go_down(Fault::Hang);
    let answers = m.answer_all(names.iter().map(|name| m.document_request(name)).collect());
    for (name, (r, took)) in names.iter().zip(&answers) {
        assert_eq!((r.status, cache_state(r)), (200, Some("STALE")), "{name}: {r:?}");
        assert_eq!(m.generation(r), 1, "{name}: the expired copy");
        assert_eq!(*took, DEADLINE_MS, "{name}: answered at the deadline, not after the upstream's timeouts");
    }
    // Back while the first tries still hang: their timeouts end them, the retries succeed.
    m.upstream().recover();
    m.reg().settle();
    for name in names {
        let path = m.document_path(name);
        assert_eq!(m.upstream().calls_to(&path), 3, "{name}: the miss, the hung try, its retry");
        assert_eq!(gaps(&m, &path).last(), Some(&(TIMEOUT_MS + RETRY_DELAY_MS)), "{name}: retried once the timeout passed");
        let fresh = document_is(&m, name, "HIT");
        assert_eq!(m.generation(&fresh), 2, "{name}: the refresh updated the cache");
    }
}

/// With nothing cached a client gets a 502 no later than the tries, their timeouts and the
/// backoff between them allow: a hung upstream costs every timeout, a refused connection
/// only the backoff, a stalled body at most every timeout.
pub fn with_nothing_cached_an_error_comes_within_the_timeouts_and_retries<M: Mirror>() {
    for (fault, bound) in [(Fault::Hang, GIVE_UP_MS), (Fault::Refused, 3.0 * RETRY_DELAY_MS), (Fault::StallBody, GIVE_UP_MS)] {
        let m = M::start("");
        m.upstream_serves("alpha", 1);
        m.upstream().go_down(fault.clone());
        let (r, took) = m.answer(m.document_request("alpha"));
        assert_eq!(r.status, 502, "{fault:?}: {r:?}");
        assert!(took <= bound, "{fault:?}: took {took} ms, more than {bound}");
        if fault != Fault::StallBody {
            assert_eq!(took, bound, "{fault:?}: every try");
            assert_eq!(m.upstream().calls_to(&m.document_path("alpha")), 3, "{fault:?}: one try and two retries");
        }
        assert_eq!(m.cached("alpha"), Vec::<String>::new(), "{fault:?}: nothing cached");
    }
}

/// Refused connections count as failures and open the breaker; so do bodies that stall after
/// their headers came (OCI: after a HEAD that was answered well).
pub fn refused_connections_and_stalled_bodies_open_the_breaker<M: Mirror>() {
    for fault in [Fault::Refused, Fault::StallBody] {
        let m = M::start("");
        open_breaker(&m, &[fault.clone(), fault.clone(), fault]);
    }
}

/// Answers that say "not here, not like that" (405) are the client's business: they never
/// open the breaker.
pub fn method_not_allowed_never_opens_the_breaker<M: Mirror>() {
    let m = M::start("");
    m.upstream().go_down(Fault::status(405));
    for i in 0..5 {
        let r = m.document(&format!("refused{i}"));
        assert_ne!(r.status, 200, "{r:?}");
    }
    assert_eq!(m.upstream().total(), 5, "each asked once: a 405 is not retried");
    m.upstream().recover();
    m.upstream_serves("alpha", 1);
    document_is(&m, "alpha", "MISS");
    if let Some((_, path)) = m.passthrough() {
        m.upstream().go_down(Fault::status(405));
        for (req, _) in std::iter::from_fn(|| m.passthrough()).take(5) {
            let r = m.send(req);
            assert_eq!(r.status, 405, "the upstream's answer passed on: {r:?}");
        }
        assert_eq!(m.upstream().calls_to(&path), 5);
        m.upstream().recover();
        m.upstream_serves("beta", 1);
        document_is(&m, "beta", "MISS");
    }
}

/// 5xx answers and timeouts alike count as failures and open the breaker.
pub fn errors_and_timeouts_open_the_breaker<M: Mirror>() {
    let m = M::start("");
    open_breaker(&m, &[Fault::status(503), Fault::Hang, Fault::status(500)]);
}

/// After the reset time the first request is the probe: one upstream call, and its success
/// closes the breaker for the very next request.
pub fn a_probe_after_the_reset_closes_the_breaker<M: Mirror>() {
    let m = M::start("");
    open_breaker(&m, &[Fault::status(500), Fault::status(500), Fault::status(500)]);
    m.upstream_serves("beta", 1);
    m.reg().mem.clock.advance(BREAKER_RESET_MS);
    let asked = m.upstream().total();
    document_is(&m, "alpha", "MISS");
    assert_eq!(m.upstream().calls_to(&m.document_path("alpha")), 1, "one probe");
    assert!(m.upstream().total() > asked);
    document_is(&m, "beta", "MISS");
}

/// Runs every conformance case for a [`Mirror`]: `conformance!(npm, NpmMirror);` makes a
/// module `npm` with one test per case.
#[macro_export]
macro_rules! conformance {
    ($module:ident, $mirror:ty) => {
        mod $module {
            use super::*;
            use common::pullthrough as suite;

            #[test]
            fn miss_then_hit() {
                suite::miss_then_hit::<$mirror>();
            }
            #[test]
            fn flipped_byte_is_never_cached() {
                suite::flipped_byte_is_never_cached::<$mirror>();
            }
            #[test]
            fn redirected_blobs_are_followed() {
                suite::redirected_blobs_are_followed::<$mirror>();
            }
            #[test]
            fn truncation_is_an_upstream_error() {
                suite::truncation_is_an_upstream_error::<$mirror>();
            }
            #[test]
            fn failures_are_retried_with_backoff() {
                suite::failures_are_retried_with_backoff::<$mirror>();
            }
            #[test]
            fn retry_after_is_honoured() {
                suite::retry_after_is_honoured::<$mirror>();
            }
            #[test]
            fn timeouts_are_retried() {
                suite::timeouts_are_retried::<$mirror>();
            }
            #[test]
            fn stale_is_served_while_the_upstream_is_down() {
                suite::stale_is_served_while_the_upstream_is_down::<$mirror>();
            }
            #[test]
            fn stale_while_revalidate() {
                suite::stale_while_revalidate::<$mirror>();
            }
            #[test]
            fn negative_entries_expire() {
                suite::negative_entries_expire::<$mirror>();
            }
            #[test]
            fn breaker_opens_and_closes() {
                suite::breaker_opens_and_closes::<$mirror>();
            }
            #[test]
            fn hosted_names_are_never_fetched() {
                suite::hosted_names_are_never_fetched::<$mirror>();
            }
            #[test]
            fn purge_through_the_admin_api() {
                suite::purge_through_the_admin_api::<$mirror>();
            }
            #[test]
            fn simultaneous_misses_fetch_once() {
                suite::simultaneous_misses_fetch_once::<$mirror>();
            }

            /// The bounds of issue 10 item 6.
            mod bounds {
                use super::*;

                #[test]
                fn method_not_allowed_never_opens_the_breaker() {
                    suite::method_not_allowed_never_opens_the_breaker::<$mirror>();
                }
                #[test]
                fn errors_and_timeouts_open_the_breaker() {
                    suite::errors_and_timeouts_open_the_breaker::<$mirror>();
                }
                #[test]
                fn a_probe_after_the_reset_closes_the_breaker() {
                    suite::a_probe_after_the_reset_closes_the_breaker::<$mirror>();
                }
                #[test]
                fn a_hung_upstream_never_holds_a_cached_copy_past_the_deadline() {
                    suite::a_hung_upstream_never_holds_a_cached_copy_past_the_deadline::<$mirror>();
                }
                #[test]
                fn with_nothing_cached_an_error_comes_within_the_timeouts_and_retries() {
                    suite::with_nothing_cached_an_error_comes_within_the_timeouts_and_retries::<$mirror>();
                }
                #[test]
                fn refused_connections_and_stalled_bodies_open_the_breaker() {
                    suite::refused_connections_and_stalled_bodies_open_the_breaker::<$mirror>();
                }
            }
        }
    };
}
