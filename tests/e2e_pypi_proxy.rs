//! The Worker as a PyPI pull-through cache in workerd: pip and uv install real public packages
//! through it from pypi.org (cold, warm, then with the upstream cut off), and a local origin
//! (pypiserver, fallback off) behind a fault-injecting proxy shows what corrupt, failing and
//! hanging upstreams do. File URLs are only taken from the pages.

mod common;

use std::time::{Duration, Instant};

use common::e2e::pypi::*;
use common::e2e::upstreams::{Fault, FaultProxy, Forwarder};
use common::e2e::*;
use serde_json::json;

/// Public packages: requests and its four dependencies, wheels of pure and binary projects,
/// and docopt, which has only an sdist (built through the Worker with setuptools from it).
const PUBLIC: &[&str] = &["requests", "six", "attrs", "packaging", "iniconfig", "pluggy", "typing-extensions", "markupsafe", "docopt"];
const PUBLIC_DEPS: &[&str] = &["charset-normalizer", "idna", "urllib3", "certifi"];

fn assert_all_installed(s: &Scratch, dir: &str) {
    let got = installed(s, dir);
    for name in PUBLIC.iter().chain(PUBLIC_DEPS) {
        assert!(got.contains_key(*name), "{name} is not in {dir}: {got:?}");
    }
}

/// File fetches (not PEP 658 metadata) the forwarder passed on.
fn file_fetches(origin: &Forwarder) -> usize {
    origin.count("/files/") - origin.count(".metadata")
}

#[test]
fn pip_and_uv_install_public_packages_cold_warm_and_with_pypi_cut_off() {
    let mut origin = PublicPypi::start();
    let w = Worker::start(&[("PYPI_UPSTREAMS", &pypi_upstreams(&format!("{}/simple", origin.url()), 2))]);
    let simple = format!("{}/pypi/simple/", w.url);
    let s = Scratch::new();

    ok(pip_install(&s, "cold", &simple, PUBLIC, &[]));
    assert_all_installed(&s, "cold");
    let fetched = file_fetches(&origin);
    assert!(fetched >= PUBLIC.len() + PUBLIC_DEPS.len(), "the cold install fetched the files through the origin: {fetched}");

    // The links point at the Worker, and what was installed is cached.
    let page = request("GET", &format!("{simple}requests/"), None, &[("accept", "application/vnd.pypi.simple.v1+json")], None);
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.header("x-cache-upstream"), Some("origin"));
    let wheel = page.json()["files"].as_array().unwrap().iter().rev().find(|f| f["filename"].as_str().unwrap().ends_with(".whl")).unwrap().clone();
    let url = file_url(&format!("{simple}requests/"), wheel["url"].as_str().unwrap());
    assert!(url.starts_with(&format!("{}/pypi/files/", w.url)), "file links lead to the Worker: {url}");

    // Warm: a fresh pip, no cache of its own: the Worker fetches no file again.
    ok(pip_install(&s, "warm-pip", &simple, PUBLIC, &[]));
    assert_all_installed(&s, "warm-pip");
    assert_eq!(file_fetches(&origin), fetched, "the warm install was served from the cache");
    ok(uv_install(&s, "warm-uv", &simple, PUBLIC, &["--no-cache"]));
    assert_all_installed(&s, "warm-uv");
    let installed_wheel = installed(&s, "warm-pip");
    let cached = request("GET", &url, None, &[], None);
    assert_eq!(cached.status, 200);
    if installed_wheel.get("requests").is_some_and(|v| wheel["filename"].as_str().unwrap().contains(&format!("-{v}-"))) {
        assert_eq!(cached.header("x-cache"), Some("HIT"), "the installed wheel was cached");
        assert_eq!(sha256_hex(&cached.body), wheel["hashes"]["sha256"].as_str().unwrap());
    }

    // PyPI out of reach and the pages past their TTL: installs work from the cache.
    origin.stop();
    std::thread::sleep(Duration::from_secs(3));
    ok(pip_install(&s, "down-pip", &simple, PUBLIC, &[]));
    assert_all_installed(&s, "down-pip");
    ok(uv_install(&s, "down-uv", &simple, PUBLIC, &["--no-cache"]));
    assert_all_installed(&s, "down-uv");
    let stale = request("GET", &format!("{simple}requests/"), None, &[], None);
    assert_eq!((stale.status, stale.header("x-cache")), (200, Some("STALE")), "stale-if-error while the upstream is down");
    let never = request("GET", &format!("{simple}never-fetched-project/"), None, &[], None);
    assert!(never.status >= 500 && !never.text().is_empty(), "never fetched, upstream down: {} {}", never.status, never.text());
}

#[test]
fn the_pypi_preset_mirrors_the_public_index() {
    let w = Worker::start(&[("PYPI_UPSTREAMS", "pypi")]);
    let simple = format!("{}/pypi/simple/", w.url);
    let s = Scratch::new();
    ok(uv_install(&s, "uv", &simple, &["six", "idna"], &["--no-cache"]));
    ok(pip_install(&s, "pip", &simple, &["six==1.17.0"], &["--only-binary", ":all:"]));
    assert_eq!(installed(&s, "pip").get("six").map(String::as_str), Some("1.17.0"));
    assert!(installed(&s, "uv").contains_key("idna"));
    let html = request("GET", &format!("{simple}six/"), None, &[("accept", "text/html")], None);
    assert_eq!(html.status, 200, "{}", html.text());
    assert!(html.text().contains("/pypi/files/") && !html.text().contains("files.pythonhosted.org"), "links are rewritten");
}

/// A local origin: pypiserver holding `e2e-fault`, `e2e-stale` and `e2e-shadow`, behind a
/// fault-injecting proxy, and a Worker mirroring it.
struct Faulty {
    _origin: PypiServer,
    proxy: FaultProxy,
    worker: Worker,
    simple: String,
    s: Scratch,
}

fn faulty() -> Faulty {
    let origin = PypiServer::start();
    let s = Scratch::new();
    for (name, version) in [("e2e-fault", "1.0.0"), ("e2e-stale", "1.0.0"), ("e2e-shadow", "9.0.0")] {
        let d = build_project(&s, name, name, version, &[]);
        origin.add(&d.files());
    }
    let proxy = FaultProxy::start(origin.url());
    let worker = Worker::start(&[("PYPI_UPSTREAMS", &pypi_upstreams(&format!("{}/simple", proxy.url), 2))]);
    let simple = format!("{}/pypi/simple/", worker.url);
    Faulty { _origin: origin, proxy, worker, simple, s }
}

#[test]
fn a_flipped_byte_is_never_cached_and_failing_or_hanging_upstreams_serve_stale_pages() {
    let f = faulty();
    let (s, simple) = (&f.s, f.simple.as_str());

    // A flipped byte in the wheel: pip refuses it or the Worker never delivers it whole.
    f.proxy.set(Fault::FlipByte);
    let bad = pip_install(s, "flipped", simple, &["e2e-fault"], &["--only-binary", ":all:"]);
    assert!(!bad.0, "a corrupt wheel was installed:\n{}", bad.1);
    f.proxy.set(Fault::None);
    let page = request("GET", &format!("{simple}e2e-fault/"), None, &[("accept", "application/vnd.pypi.simple.v1+json")], None);
    let entry = file_entry(&page.json(), "e2e_fault-1.0.0-py3-none-any.whl");
    let url = file_url(&format!("{simple}e2e-fault/"), entry["url"].as_str().unwrap());
    let fetched_before = f.proxy.count("e2e_fault-1.0.0-py3-none-any.whl");
    let clean = request("GET", &url, None, &[], None);
    assert_eq!((clean.status, clean.header("x-cache")), (200, Some("MISS")), "the corrupt copy was not cached");
    assert_eq!(sha256_hex(&clean.body), entry["hashes"]["sha256"].as_str().unwrap());
    assert_eq!(f.proxy.count("e2e_fault-1.0.0-py3-none-any.whl"), fetched_before + 1);
    ok(pip_install(s, "clean", simple, &["e2e-fault"], &["--only-binary", ":all:"]));
    assert_eq!(request("GET", &url, None, &[], None).header("x-cache"), Some("HIT"));

    // Cached once, then the upstream fails (5xx) past the TTL: the stale page is served.
    ok(pip_install(s, "stale-1", simple, &["e2e-stale"], &[]));
    std::thread::sleep(Duration::from_secs(3));
    f.proxy.set(Fault::Status { status: 503, retry_after: None, count: 1000 });
    ok(pip_install(s, "stale-2", simple, &["e2e-stale"], &[]));
    let r = request("GET", &format!("{simple}e2e-stale/"), None, &[], None);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")), "{}", r.text());
    let never = request("GET", &format!("{simple}e2e-never/"), None, &[], None);
    assert!(never.status >= 500 && !never.text().is_empty(), "{} {}", never.status, never.text());

    // A hanging upstream: the stale page comes within the deadline (500 ms by default).
    f.proxy.set(Fault::Delay(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    let r = request("GET", &format!("{simple}e2e-stale/"), None, &[], None);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("STALE")), "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(3), "the stale page waited {:?}", t.elapsed());
    let t = Instant::now();
    ok(pip_install(s, "stale-3", simple, &["e2e-stale"], &[]));
    assert!(t.elapsed() < Duration::from_secs(15), "pip waited {:?} on a hanging upstream", t.elapsed());
    f.proxy.set(Fault::None);
}

#[test]
fn a_hosted_project_is_never_shadowed_by_the_upstream() {
    let f = faulty();
    let index = Index::worker(&f.worker);
    let token = f.worker.user_with_token("py-hosted", json!({"protocol": "pypi"}));
    let d = build_project(&f.s, "shadow", "e2e-shadow", "1.0.0", &[]);
    ok(twine_upload(&f.s, &index, "__token__", &token, &d.files()));
    ok(pip_install(&f.s, "shadow", &f.simple, &["e2e-shadow"], &[]));
    assert_eq!(installed(&f.s, "shadow").get("e2e-shadow").map(String::as_str), Some("1.0.0"), "the hosted 1.0.0, not the upstream's 9.0.0");
    let doc = page_json(&index, "e2e-shadow").json();
    let files: Vec<&str> = doc["files"].as_array().unwrap().iter().map(|x| x["filename"].as_str().unwrap()).collect();
    assert!(files.iter().all(|n| n.contains("-1.0.0")), "only hosted files: {files:?}");
    assert_eq!(f.proxy.count("e2e_shadow-9.0.0"), 0, "the upstream's files were never fetched");
}
