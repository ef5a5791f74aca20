//! The edge cache in workerd, and its front door (`js/entry.mjs`): a kept answer is served
//! to anonymous readers without entering wasm, exactly as wasm would serve it, and never to
//! a request wasm must see (credentials, ranges) nor after a write changed it.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use common::e2e::*;

/// The tests count the door's hits, which every test's requests move: one test at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn worker() -> &'static Worker {
    static W: OnceLock<Worker> = OnceLock::new();
    W.get_or_init(|| Worker::start(&[]))
}

/// The edge cache's counters of this isolate (`GET /-/admin/stats`).
fn edge_stats() -> Value {
    let r = request("GET", &format!("{}/-/admin/stats", worker().url), Some(ADMIN_TOKEN), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["edge_cache"].clone()
}

fn door_hits() -> u64 {
    edge_stats()["door_hits"].as_u64().expect("door_hits")
}

/// Waits until the front door knows `more` ways in than `before` (an answer is kept once the
/// client has read it, in the background).
fn wait_for_doors(before: u64, more: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while edge_stats()["doors"].as_u64().unwrap_or(0) < before + more {
        assert!(Instant::now() < deadline, "the front door never learned the answer: {}", edge_stats());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn publish(token: &str, name: &str, version: &str) {
    let body = publish_body(name, version, &tarball(name, version));
    let url = format!("{}{name}", worker().npm_registry());
    let r = request("PUT", &url, Some(token), &[("content-type", "application/json")], Some(body.to_string().into_bytes()));
    assert_eq!(r.status, 201, "{}", r.text());
}

/// The first anonymous GET of `url`: answered by wasm, then kept; returns once the front door
/// knows the way to it.
fn first_answer_kept(url: &str) -> Resp {
    let doors = edge_stats()["doors"].as_u64().unwrap_or(0);
    let first = request("GET", url, None, &[], None);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-edge-cache"), None, "the first GET is answered by wasm");
    wait_for_doors(doors, 1);
    first
}

/// The headers of an answer, as name/value lines, without the ones that differ between two
/// answers of the same content (`date`).
fn header_lines(r: &Resp) -> Vec<String> {
    let mut lines: Vec<String> = r.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("date")).map(|(k, v)| format!("{}: {v}", k.to_ascii_lowercase())).collect();
    lines.sort();
    lines
}

#[test]
fn the_front_door_serves_a_kept_packument_as_wasm_does_and_forgets_it_on_publish() {
    let _one = one_at_a_time();
    let w = worker();
    let token = w.user_with_token("edge-door", json!({}));
    publish(&token, "edge-door-pkg", "1.0.0");
    let url = format!("{}edge-door-pkg", w.npm_registry());
    let first = first_answer_kept(&url);

    let hits = door_hits();
    let door = request("GET", &url, None, &[], None);
    assert_eq!(door.status, 200);
    assert_eq!(door.header("x-edge-cache"), Some("HIT"));
    assert_eq!(door.body, first.body, "the kept packument is the one wasm sent");
    assert_eq!(door_hits(), hits + 1, "the front door answered");

    // `?` leads to the same kept answer through wasm (the door learns that URL only then):
    // both hits carry the same headers and body.
    let through_wasm = request("GET", &format!("{url}?"), None, &[], None);
    assert_eq!(through_wasm.header("x-edge-cache"), Some("HIT"));
    assert_eq!(door_hits(), hits + 1, "wasm answered the `?` URL");
    assert_eq!(header_lines(&door), header_lines(&through_wasm));
    assert_eq!(door.body, through_wasm.body);
    assert_eq!(door.header("x-content-type-options"), Some("nosniff"));

    // HEAD: the GET's headers and no body; If-None-Match: a 304 with the ETag.
    let head = request("HEAD", &url, None, &[], None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), door.header("etag"));
    assert_eq!(door_hits(), hits + 2, "the door answered the HEAD");
    let etag = door.header("etag").expect("a packument has an ETag").to_string();
    let unchanged = request("GET", &url, None, &[("if-none-match", &etag)], None);
    assert_eq!(unchanged.status, 304);
    assert_eq!(unchanged.header("etag"), Some(etag.as_str()));
    assert_eq!(door_hits(), hits + 3);

    // The abbreviated packument is another answer, kept apart by Accept.
    let abbreviated = request("GET", &url, None, &[("accept", "application/vnd.npm.install-v1+json")], None);
    assert_eq!(abbreviated.status, 200);
    assert_eq!(abbreviated.header("x-edge-cache"), None, "never the full packument's kept answer");
    assert!(abbreviated.header("content-type").unwrap_or_default().starts_with("application/vnd.npm.install-v1+json"));

    // Requests wasm must see pass by the door: credentials are checked (a bad token is
    // refused, not served), and ranges are not kept answers.
    let hits = door_hits();
    assert_eq!(request("GET", &url, Some("not-a-token"), &[], None).status, 401);
    let ranged = request("GET", &url, None, &[("range", "bytes=0-0")], None);
    assert_ne!(ranged.header("x-edge-cache"), Some("HIT"));
    assert_eq!(door_hits(), hits, "the door answered a request with credentials or a range");

    // A publish changes the packument: no one is served the old one.
    publish(&token, "edge-door-pkg", "1.1.0");
    let after = request("GET", &url, None, &[], None);
    assert_eq!(after.status, 200);
    assert!(after.json()["versions"]["1.1.0"].is_object(), "a stale packument after a publish");
    assert_eq!(after.header("x-edge-cache"), None);
    assert_eq!(door_hits(), hits, "the door served a purged answer");
}

#[test]
fn the_front_door_serves_kept_tarballs_and_their_heads() {
    let _one = one_at_a_time();
    let w = worker();
    let token = w.user_with_token("edge-door-tgz", json!({}));
    publish(&token, "edge-door-tgz", "2.0.0");
    let url = format!("{}edge-door-tgz/-/edge-door-tgz-2.0.0.tgz", w.npm_registry());
    let first = first_answer_kept(&url);
    let hits = door_hits();
    let again = request("GET", &url, None, &[], None);
    assert_eq!(again.header("x-edge-cache"), Some("HIT"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.body, tarball("edge-door-tgz", "2.0.0"));
    let head = request("HEAD", &url, None, &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length").map(str::to_string), Some(first.body.len().to_string()));
    assert!(head.body.is_empty());
    assert_eq!(door_hits(), hits + 2);
}
