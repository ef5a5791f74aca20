//! The edge cache in front of storage (`platform::EdgeCache`, kept and looked up by the
//! router): anonymous GETs are served from it, every write through `Storage` purges what it
//! made stale at once, and nothing private or partial is ever kept.

mod common;

use common::*;
use edgeregistry::http::{Method, Request};
use edgeregistry::platform::{EdgeHint, ObjectStore, PutOptions};
use futures::executor::block_on;
use serde_json::json;

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

fn anonymous(path: &str) -> Request {
    Request::new(Method::Get, path)
}

fn edge_hit(r: &Resp) -> bool {
    r.headers.get("x-edge-cache") == Some("HIT")
}

#[test]
fn a_hosted_packument_is_served_from_the_edge_cache_until_a_publish_changes_it() {
    let reg = Reg::new();
    let alice = reg.user_with_token("alice");
    reg.publish_ok(&alice, "pkg", "1.0.0");
    let first = reg.send(anonymous("/npm/pkg"));
    assert_eq!(first.status, 200);
    assert!(!edge_hit(&first), "the first GET reads storage");
    let second = reg.send(anonymous("/npm/pkg"));
    assert!(edge_hit(&second), "{:?}", second.headers);
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers.get("etag"), first.headers.get("etag"));
    assert_eq!(second.headers.get("x-content-type-options"), Some("nosniff"));

    // Publish, dist-tag and unpublish each show at once, with no time passing.
    reg.publish_ok(&alice, "pkg", "1.1.0");
    let after = reg.send(anonymous("/npm/pkg"));
    assert!(!edge_hit(&after));
    assert_eq!(after.json()["dist-tags"]["latest"], "1.1.0");
    let r = reg.send(put_json("/npm/-/package/pkg/dist-tags/beta", &alice, &json!("1.0.0")));
    assert!(r.status < 300, "{r:?}");
    reg.send(anonymous("/npm/pkg"));
    assert_eq!(reg.send(anonymous("/npm/pkg")).json()["dist-tags"]["beta"], "1.0.0");
    let r = reg.send(bearer(Request::new(Method::Delete, "/npm/pkg/-rev/1"), &alice));
    assert!(r.status < 300, "{r:?}");
    assert_eq!(reg.send(anonymous("/npm/pkg")).status, 404);
}

#[test]
fn views_are_kept_apart_and_a_kept_etag_answers_304() {
    let reg = Reg::new();
    let alice = reg.user_with_token("alice");
    reg.publish_ok(&alice, "pkg", "1.0.0");
    let abbreviated = || anonymous("/npm/pkg").with_header("Accept", ABBREVIATED);
    let full = reg.send(anonymous("/npm/pkg"));
    reg.send(abbreviated());
    let short = reg.send(abbreviated());
    assert!(edge_hit(&short));
    assert_eq!(short.headers.get("content-type"), Some(ABBREVIATED));
    assert_ne!(short.body, full.body, "the abbreviated view is not the full one");
    let etag = short.headers.get("etag").unwrap().to_string();
    let revalidated = reg.send(abbreviated().with_header("If-None-Match", &etag));
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
}

#[test]
fn a_tarball_is_kept_and_gone_once_its_package_is_unpublished() {
    let reg = Reg::new();
    let alice = reg.user_with_token("alice");
    let tgz = reg.publish_ok(&alice, "pkg", "1.0.0");
    reg.publish_ok(&alice, "pkg", "1.1.0");
    let path = "/npm/pkg/-/pkg-1.0.0.tgz";
    reg.send(anonymous(path));
    let hit = reg.send(anonymous(path));
    assert!(edge_hit(&hit));
    assert_eq!(hit.body, tgz);
    let r = reg.send(bearer(Request::new(Method::Delete, "/npm/pkg/-rev/1"), &alice));
    assert!(r.status < 300, "{r:?}");
    assert_eq!(reg.send(anonymous(path)).status, 404);
}

#[test]
fn requests_with_credentials_or_ranges_and_private_protocols_bypass_it() {
    let reg = Reg::new();
    let alice = reg.user_with_token("alice");
    reg.publish_ok(&alice, "pkg", "1.0.0");
    for _ in 0..2 {
        assert!(!edge_hit(&reg.send(get("/npm/pkg", &alice))));
        assert!(!edge_hit(&reg.send(anonymous("/npm/pkg/-/pkg-1.0.0.tgz").with_header("Range", "bytes=0-9"))));
    }
    assert!(reg.mem.edge.is_empty(), "nothing kept for requests with credentials or ranges");

    let private = Reg::with_vars(&[("ANONYMOUS_READ", "pypi")]);
    let alice = private.user_with_token("alice");
    private.publish_ok(&alice, "pkg", "1.0.0");
    for _ in 0..2 {
        assert_eq!(private.send(get("/npm/pkg", &alice)).status, 200);
        assert_eq!(private.send(anonymous("/npm/pkg")).status, 401);
    }
    assert!(private.mem.edge.is_empty(), "npm is not anonymous here: nothing is kept");

    let off = Reg::with_vars(&[("EDGE_CACHE", "off")]);
    let alice = off.user_with_token("alice");
    off.publish_ok(&alice, "pkg", "1.0.0");
    for _ in 0..2 {
        assert!(!edge_hit(&off.send(anonymous("/npm/pkg"))));
    }
    assert!(off.mem.edge.is_empty());
}

#[test]
fn a_write_no_request_here_made_is_seen_once_the_document_seconds_pass() {
    // As when another isolate publishes: this one has nothing to purge.
    let reg = Reg::new();
    let alice = reg.user_with_token("alice");
    reg.publish_ok(&alice, "pkg", "1.0.0");
    let original = reg.send(anonymous("/npm/pkg")).body;
    let key = reg.keys_with("npm/").into_iter().find(|k| k.ends_with("pkg/index.json")).expect("the packument's key");
    let key = key.as_str();
    let stored = block_on(reg.mem.store.get(key, None)).unwrap().unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&block_on(stored.body.read_capped(1 << 20)).unwrap()).unwrap();
    doc["dist-tags"]["elsewhere"] = json!("1.0.0");
    block_on(reg.mem.store.put(key, serde_json::to_vec(&doc).unwrap().into(), PutOptions::default())).unwrap();
    assert_eq!(reg.send(anonymous("/npm/pkg")).body, original, "kept for DOCUMENT_SECONDS");
    reg.mem.clock.advance(f64::from(EdgeHint::DOCUMENT_SECONDS) * 1000.0);
    assert_eq!(reg.send(anonymous("/npm/pkg")).json()["dist-tags"]["elsewhere"], "1.0.0");
}
