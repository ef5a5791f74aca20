//! The Worker as a pull-through cache of crates.io in workerd: cargo, with crates.io replaced by
//! the Worker (the Cargo book, "Source Replacement"), fetches this project's own Cargo.lock
//! through it from the real crates.io (cold, warm, then with the upstream cut off); a local
//! static sparse registry behind a fault-injecting proxy shows what corrupt, failing, throttling
//! and hanging upstreams do. Downloads follow the `dl` of the upstream's config.json.

mod common;

use std::time::{Duration, Instant};

use common::e2e::cargo::*;
use common::e2e::upstreams::{Fault, FaultProxy};
use common::e2e::*;
use serde_json::json;

/// A scratch dir whose cargo takes crates.io from the sparse index `index`.
fn mirrored(index: &str) -> Scratch {
    let s = Scratch::new();
    cargo_config(&s, &mirror_config(index));
    s
}

/// A project in `s/dir` depending on crates.io crates (`name = "req"` lines) and fetched.
fn fetch_app(s: &Scratch, dir: &str, deps: &str) -> (bool, String) {
    write_app(s, dir, deps, "");
    cargo(s, dir, &["fetch"], &[])
}

#[test]
fn cargo_fetches_this_projects_lockfile_through_the_worker_cold_warm_and_with_crates_io_cut_off() {
    let mut origin = PublicCrates::start();
    let w = Worker::start(&[("CARGO_UPSTREAMS", &cargo_upstreams(origin.url(), 2))]);

    let cold = mirrored(&w.cargo_index());
    let crates = lockfile_project(&cold, "project");
    assert!(crates > 100, "this project's lockfile names {crates} registry crates");
    let t = Instant::now();
    ok(cargo(&cold, "project", &["fetch", "--locked"], &[]));
    eprintln!("cold fetch of {crates} crates: {:?}", t.elapsed());
    assert_eq!(downloaded_crates(&cold), crates, "every crate of the lockfile was downloaded");
    let fetched = origin.count("DOWNLOAD ");
    assert!(fetched >= crates, "the .crate files came through the forwarder: {fetched}");

    // The download URLs are the Worker's, and what was fetched is cached and verified.
    let config = request("GET", &format!("{}config.json", w.cargo_index()), None, &[], None).json();
    assert_eq!(config["dl"], format!("{}/cargo/api/v1/crates", w.url), "{config}");
    let serde = request("GET", &format!("{}{}", w.cargo_index(), index_path("serde")), None, &[], None);
    assert_eq!((serde.status, serde.header("x-cache-upstream")), (200, Some("origin")), "{}", serde.text());
    let lock = std::fs::read_to_string(cold.path().join("project/Cargo.lock")).unwrap();
    let serde_version = lock.split("name = \"serde\"\nversion = \"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    let line = serde.text().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).find(|l| l["vers"] == serde_version.as_str()).unwrap();
    let dl = request("GET", &format!("{}/cargo/api/v1/crates/serde/{serde_version}/download", w.url), None, &[], None);
    assert_eq!((dl.status, dl.header("x-cache")), (200, Some("HIT")), "serde {serde_version} was cached");
    assert_eq!(sha256_hex(&dl.body), line["cksum"].as_str().unwrap());

    // Warm: a fresh CARGO_HOME; the Worker fetches no .crate again.
    let warm = mirrored(&w.cargo_index());
    lockfile_project(&warm, "project");
    let t = Instant::now();
    ok(cargo(&warm, "project", &["fetch", "--locked"], &[]));
    eprintln!("warm fetch: {:?}", t.elapsed());
    assert_eq!(downloaded_crates(&warm), crates);
    assert_eq!(origin.count("DOWNLOAD "), fetched, "the warm fetch was served from the cache");

    // crates.io out of reach and the index files past their TTL: the fetch works from the cache.
    origin.stop();
    std::thread::sleep(Duration::from_secs(3));
    let down = mirrored(&w.cargo_index());
    lockfile_project(&down, "project");
    ok(cargo(&down, "project", &["fetch", "--locked"], &[]));
    assert_eq!(downloaded_crates(&down), crates);
    let stale = request("GET", &format!("{}{}", w.cargo_index(), index_path("serde")), None, &[], None);
    assert_eq!((stale.status, stale.header("x-cache")), (200, Some("STALE")), "stale-if-error while the upstream is down");
    let never = request("GET", &format!("{}{}", w.cargo_index(), index_path("never-fetched-crate-e2e")), None, &[], None);
    assert!(never.status >= 500 && !never.text().is_empty(), "never fetched, upstream down: {} {}", never.status, never.text());
}

#[test]
fn the_crates_io_preset_mirrors_the_public_index() {
    let w = Worker::start(&[("CARGO_UPSTREAMS", "crates-io")]);
    let s = mirrored(&w.cargo_index());
    ok(fetch_app(&s, "app", "itoa = \"=1.0.15\"\ncfg-if = \"1\""));
    assert_eq!(downloaded_crates(&s), 2);
    let dl = request("GET", &format!("{}/cargo/api/v1/crates/itoa/1.0.15/download", w.url), None, &[], None);
    assert_eq!((dl.status, dl.header("x-cache")), (200, Some("HIT")), "{:?}", dl.headers);
}

/// The local origin works for cargo on its own, directly and through the fault proxy: what the
/// fault tests below build on.
#[test]
fn the_local_static_registry_serves_cargo_directly() {
    let s = Scratch::new();
    let a = package_crate(&s, "a", "e2e-origin-a", "1.0.0", "");
    let b = package_crate(&s, "b", "e2e-origin-a", "1.1.0", "");
    let origin = StaticRegistry::start(&[a, b.clone()]);
    let proxy = FaultProxy::start(origin.url());
    for url in [origin.url(), proxy.url.as_str()] {
        let c = mirrored(&format!("{url}/"));
        ok(fetch_app(&c, "app", "e2e-origin-a = \"1\""));
        assert_eq!(downloaded_crates(&c), 1);
        let lock = std::fs::read_to_string(c.path().join("app/Cargo.lock")).unwrap();
        assert!(lock.contains(&format!("name = \"e2e-origin-a\"\nversion = \"1.1.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"", b.cksum)), "{lock}");
    }
    assert_eq!(origin.count("/crates/e2e-origin-a/e2e-origin-a-1.1.0.crate"), 2);
    assert_eq!(proxy.count("/crates/e2e-origin-a/e2e-origin-a-1.1.0.crate"), 1, "the proxy's config.json sends downloads through it");
}

/// A local static registry holding `e2e-fault`, `e2e-stale`, `e2e-retry` and `e2e-shadow`
/// 9.0.0, behind a fault-injecting proxy, and a Worker mirroring it.
struct Faulty {
    _origin: StaticRegistry,
    proxy: FaultProxy,
    worker: Worker,
    fault: Packaged,
}

fn faulty() -> Faulty {
    let s = Scratch::new();
    let fault = package_crate(&s, "fault", "e2e-fault", "1.0.0", "");
    let crates = [
        fault.clone(),
        package_crate(&s, "stale", "e2e-stale", "1.0.0", ""),
        package_crate(&s, "retry", "e2e-retry", "1.0.0", ""),
        package_crate(&s, "shadow", "e2e-shadow", "9.0.0", ""),
    ];
    let origin = StaticRegistry::start(&crates);
    let proxy = FaultProxy::start(origin.url());
    let worker = Worker::start(&[("CARGO_UPSTREAMS", &cargo_upstreams(&proxy.url, 2))]);
    Faulty { _origin: origin, proxy, worker, fault }
}

#[test]
fn a_flipped_byte_is_never_cached_and_failing_throttling_or_hanging_upstreams_serve_stale_index_files() {
    let f = faulty();
    let index = f.worker.cargo_index();
    let file = "e2e-fault-1.0.0.crate";

    // A flipped byte in the .crate: cargo's checksum fails or the Worker refuses it.
    f.proxy.set(Fault::FlipByte);
    let s = mirrored(&index);
    let bad = fetch_app(&s, "flipped", "e2e-fault = \"1\"");
    assert!(!bad.0, "a corrupt crate was accepted:\n{}", bad.1);
    f.proxy.set(Fault::None);
    let fetched_before = f.proxy.count(file);
    let url = format!("{}/cargo/api/v1/crates/e2e-fault/1.0.0/download", f.worker.url);
    let clean = request("GET", &url, None, &[], None);
    assert_eq!((clean.status, clean.header("x-cache")), (200, Some("MISS")), "the corrupt copy was not cached");
    assert_eq!(clean.body, f.fault.bytes());
    assert_eq!(f.proxy.count(file), fetched_before + 1);
    ok(fetch_app(&mirrored(&index), "clean", "e2e-fault = \"1\""));
    assert_eq!(request("GET", &url, None, &[], None).header("x-cache"), Some("HIT"));

    // 429 with Retry-After: waited out, then fetched.
    f.proxy.set(Fault::Status { status: 429, retry_after: Some(1), count: 1 });
    let t = Instant::now();
    let r = request("GET", &format!("{index}{}", index_path("e2e-retry")), None, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(t.elapsed() >= Duration::from_millis(900), "Retry-After was honoured: {:?}", t.elapsed());
    assert_eq!(f.proxy.count(&format!("/{}", index_path("e2e-retry"))), 2, "asked twice: {:?}", f.proxy.requests.lock().unwrap());
    ok(fetch_app(&mirrored(&index), "retry", "e2e-retry = \"1\""));

    // Cached once, then the upstream fails (5xx) past the TTL: the stale index file is served.
    ok(fetch_app(&mirrored(&index), "stale-1", "e2e-stale = \"1\""));
    std::thread::sleep(Duration::from_secs(3));
    f.proxy.set(Fault::Status { status: 503, retry_after: None, count: 1000 });
    ok(fetch_app(&mirrored(&index), "stale-2", "e2e-stale = \"1\""));
    let r = request("GET", &format!("{index}{}", index_path("e2e-stale")), None, &[], None);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")), "{}", r.text());
    let never = request("GET", &format!("{index}{}", index_path("e2e-never")), None, &[], None);
    assert!(never.status >= 500 && !never.text().is_empty(), "{} {}", never.status, never.text());

    // A hanging upstream: the stale index file comes within the deadline (500 ms by default).
    f.proxy.set(Fault::Delay(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    let r = request("GET", &format!("{index}{}", index_path("e2e-stale")), None, &[], None);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")), "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(3), "the stale index file waited {:?}", t.elapsed());
    let t = Instant::now();
    ok(fetch_app(&mirrored(&index), "stale-3", "e2e-stale = \"1\""));
    assert!(t.elapsed() < Duration::from_secs(15), "cargo waited {:?} on a hanging upstream", t.elapsed());
    f.proxy.set(Fault::None);
}

#[test]
fn a_hosted_crate_is_never_shadowed_by_the_upstream() {
    let f = faulty();
    let w = &f.worker;
    let s = Scratch::new();
    cargo_config(&s, &hosted_config(&w.cargo_index()));
    write_crate(&s, "shadow", "e2e-shadow", "1.0.0", "", "");
    let publish = ["publish", "--registry", "edge", "--allow-dirty", "--no-verify"];
    // A name the upstream has is not claimed silently: a plain token is refused, and cargo
    // prints why; a token granted that crate by an admin publishes it.
    let plain = w.cargo_token("cargo-shadow", json!({}));
    let refused = cargo(&s, "shadow", &publish, &[("CARGO_REGISTRIES_EDGE_TOKEN", &plain)]);
    assert!(!refused.0 && refused.1.contains("403") && refused.1.contains("e2e-shadow"), "{}", refused.1);
    let granted = w.cargo_token("cargo-shadow-owner", json!({"scopes": ["cargo:crate:e2e-shadow:write"]}));
    ok(cargo(&s, "shadow", &publish, &[("CARGO_REGISTRIES_EDGE_TOKEN", &granted)]));

    let m = mirrored(&w.cargo_index());
    ok(fetch_app(&m, "app", "e2e-shadow = \"*\""));
    let lock = std::fs::read_to_string(m.path().join("app/Cargo.lock")).unwrap();
    assert!(lock.contains("name = \"e2e-shadow\"\nversion = \"1.0.0\""), "the hosted 1.0.0, not the upstream's 9.0.0:\n{lock}");
    let text = request("GET", &format!("{}{}", w.cargo_index(), index_path("e2e-shadow")), None, &[], None).text();
    assert!(text.contains("\"1.0.0\"") && !text.contains("9.0.0"), "only the hosted versions: {text}");
    assert_eq!(f.proxy.count("e2e-shadow-9.0.0"), 0, "the upstream's crate was never fetched");
}
