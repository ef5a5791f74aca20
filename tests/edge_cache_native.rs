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

#[test]
fn a_cargo_index_file_is_kept_until_a_publish_or_yank_changes_it() {
    let reg = Reg::new();
    reg.create_user("carol");
    let token = reg.create_token("carol", json!({"protocol": "cargo"}));
    reg.publish_crate(&token, "edgecrate", "0.1.0");
    let path = "/cargo/ed/ge/edgecrate";
    reg.send(anonymous(path));
    let hit = reg.send(anonymous(path));
    assert!(edge_hit(&hit), "{:?}", hit.headers);
    assert_eq!(hit.text().lines().count(), 1);
    reg.publish_crate(&token, "edgecrate", "0.2.0");
    let after = reg.send(anonymous(path));
    assert!(!edge_hit(&after));
    assert_eq!(after.text().lines().count(), 2);
    let r = reg.send(Request::new(Method::Delete, "/cargo/api/v1/crates/edgecrate/0.1.0/yank").with_header("Authorization", &token));
    assert_eq!(r.status, 200, "{r:?}");
    let yanked = reg.send(anonymous(path)).text();
    assert!(yanked.lines().next().unwrap().contains("\"yanked\":true"), "{yanked}");
    let download = "/cargo/api/v1/crates/edgecrate/0.1.0/download";
    reg.send(anonymous(download));
    assert!(edge_hit(&reg.send(anonymous(download))), "a .crate is kept as an artifact");
}

#[test]
fn a_pypi_page_is_kept_until_an_upload_yank_or_delete_changes_it() {
    let reg = Reg::new();
    reg.create_user("pat");
    let token = reg.create_token("pat", json!({"protocol": "pypi"}));
    reg.upload_pypi_sdist(&token, "edge-proj", "0.1.0");
    let page = || anonymous("/pypi/simple/edge-proj/").with_header("Accept", "application/vnd.pypi.simple.v1+json");
    reg.send(page());
    let hit = reg.send(page());
    assert!(edge_hit(&hit), "{:?}", hit.headers);
    assert_eq!(hit.json()["files"].as_array().unwrap().len(), 1);
    reg.upload_pypi_sdist(&token, "edge-proj", "0.2.0");
    let files = reg.send(page()).json()["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2, "the new upload shows at once");
    let r = reg.send(basic(Request::new(Method::Post, "/pypi/-/yank/edge-proj/0.1.0"), "__token__", &token));
    assert!(r.status < 300, "{r:?}");
    let files = reg.send(page()).json()["files"].as_array().unwrap().clone();
    assert!(files.iter().any(|f| f["yanked"] != json!(false)), "the yank shows at once: {files:?}");

    // A file kept as an artifact is gone as soon as it is deleted.
    let url = files.iter().find(|f| f["filename"].as_str().unwrap().contains("0.2.0")).unwrap()["url"].as_str().unwrap().to_string();
    let path = url.strip_prefix("http://localhost").unwrap().to_string();
    reg.send(anonymous(&path));
    assert!(edge_hit(&reg.send(anonymous(&path))));
    let filename = files.iter().find(|f| f["filename"].as_str().unwrap().contains("0.2.0")).unwrap()["filename"].as_str().unwrap().to_string();
    let r = reg.send(basic(Request::new(Method::Delete, &format!("/pypi/-/files/edge-proj/{filename}")), "__token__", &token));
    assert!(r.status < 300, "{r:?}");
    assert_eq!(reg.send(anonymous(&path)).status, 404);
    assert_eq!(reg.send(page()).json()["files"].as_array().unwrap().len(), 1);
}

#[test]
fn an_oci_tag_is_kept_for_holders_of_a_pull_token_until_it_moves() {
    let reg = Reg::oci(&[]);
    reg.create_user("olive");
    reg.create_user("mallory");
    let push = reg.jwt_for("olive", &["repository:team/app:pull,push"]);
    let (_, first) = reg.push_image(&push, "team/app", "latest", "one");
    let pull = reg.jwt_for("olive", &["repository:team/app:pull"]);
    let head = || oci(Method::Head, "/v2/team/app/manifests/latest", &pull);
    assert_eq!(reg.send(head()).header("docker-content-digest"), Some(first.as_str()));
    let before = reg.mem.store.reads();
    let hit = reg.send(head());
    assert!(edge_hit(&hit), "{:?}", hit.headers);
    assert_eq!(hit.header("docker-content-digest"), Some(first.as_str()));
    assert_eq!(reg.mem.store.reads(), before, "a kept HEAD reads nothing");
    assert!(hit.body.is_empty());

    // A token granting nothing on this repository is never given the kept answer.
    let stranger = reg.jwt_for("mallory", &["repository:other/app:pull"]);
    let refused = reg.send(oci(Method::Head, "/v2/team/app/manifests/latest", &stranger));
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(!edge_hit(&refused));
    assert_eq!(reg.send(Request::new(Method::Head, "/v2/team/app/manifests/latest")).status, 401);

    // Moving the tag shows at once.
    let (_, second) = reg.push_image(&push, "team/app", "latest", "two");
    assert_ne!(first, second);
    assert_eq!(reg.send(head()).header("docker-content-digest"), Some(second.as_str()));
    let r = reg.send(oci(Method::Get, "/v2/team/app/manifests/latest", &pull));
    assert_eq!(r.header("docker-content-digest"), Some(second.as_str()));
}

#[test]
fn an_oci_blob_is_kept_until_it_leaves_the_repository() {
    let reg = Reg::oci(&[]);
    reg.create_user("olive");
    let all = reg.jwt_for("olive", &["repository:team/app:pull,push,delete"]);
    let data = b"a small layer".to_vec();
    let digest = reg.push_blob(&all, "team/app", &data);
    let path = format!("/v2/team/app/blobs/{digest}");
    assert_eq!(reg.send(oci(Method::Get, &path, &all)).body, data);
    let hit = reg.send(oci(Method::Get, &path, &all));
    assert!(edge_hit(&hit));
    assert_eq!(hit.body, data);
    let r = reg.send(oci(Method::Delete, &path, &all));
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(reg.send(oci(Method::Get, &path, &all)).status, 404);
}

#[test]
fn queries_that_decode_alike_do_not_share_an_answer() {
    let reg = Reg::new();
    reg.create_user("pat");
    let token = reg.create_token("pat", json!({"protocol": "pypi"}));
    reg.upload_pypi_sdist(&token, "edge-proj", "0.1.0");
    // `format` is JSON and `x` is y …
    let plain = "/pypi/simple/edge-proj/?format=application/vnd.pypi.simple.v1%2Bjson&x=y";
    assert_eq!(reg.send(anonymous(plain)).status, 200);
    assert!(edge_hit(&reg.send(anonymous(plain))));
    // … against one `format` whose value is all of that text: its own answer, not the kept one.
    let folded = reg.send(anonymous("/pypi/simple/edge-proj/?format=application/vnd.pypi.simple.v1%2Bjson%26x%3Dy"));
    assert!(!edge_hit(&folded), "{:?}", folded.headers);
    assert_ne!(folded.status, 200, "{folded:?}");
}
