//! Cargo hosted crates beside the pull-through mirror, through the real routes: hosted first,
//! and a name the upstream has cannot be claimed by a first publish unless an admin allows it.

mod common;

use common::cargo_proxy::{crate_bytes, index_line, index_path, serve_config, serve_index};
use common::upstream::{Answer, FakeUpstream};
use common::*;
use edgeregistry::http::{Method, Request};
use serde_json::json;

const UP: &str = "https://index.up.example";

fn mirror() -> (Reg, FakeUpstream) {
    let upstreams = format!(r#"{{"upstreams":[{{"id":"up","url":"{UP}","resilience":{{"maxRetries":0}}}}]}}"#);
    let reg = Reg::with_vars(&[("CARGO_UPSTREAMS", upstreams.as_str())]);
    let up = FakeUpstream::install(&reg.mem);
    serve_config(&up, &format!("{UP}/dl"));
    (reg, up)
}

fn publish(reg: &Reg, token: &str, name: &str, version: &str) -> Resp {
    let body = cargo_publish_body(&cargo_metadata(name, version, json!({})), &crate_file(name, version, 10));
    reg.send(Request::new(Method::Put, "/cargo/api/v1/crates/new").with_header("Authorization", token).with_body(body))
}

#[test]
fn a_name_the_upstream_has_is_not_claimed_without_an_admin() {
    let (reg, up) = mirror();
    serve_index(&up, "popular", &[index_line("popular", "1.0.0", &crate_bytes("popular", "1.0.0"))]);
    up.serve("/dl/popular/1.0.0/download", Answer::bytes(200, "application/octet-stream", crate_bytes("popular", "1.0.0")));
    reg.create_user("alice");
    let alice = reg.create_token("alice", json!({"protocol": "cargo"}));
    // The mirror serves the upstream's crate.
    let r = reg.send(Request::new(Method::Get, &format!("/cargo/{}", index_path("popular"))));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text().lines().count(), 1);
    assert!(!reg.keys_with("cargo/cache/index/popular/").is_empty(), "the mirror kept the upstream's index file");
    let before = reg.keys_with("cargo/");
    let r = publish(&reg, &alice, "popular", "9.0.0");
    assert_eq!(r.status, 403, "{r:?}");
    let detail = r.json()["errors"][0]["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("`popular` exists on an upstream") && detail.contains("admin"), "{detail}");
    assert_eq!(reg.keys_with("cargo/"), before, "nothing stored");
    // Another spelling is the same name upstream too.
    assert_eq!(publish(&reg, &alice, "Popular", "9.0.0").status, 403);
    // A name the upstream does not have is claimed by its first publish, and served hosted.
    up.serve(&format!("/{}", index_path("private-thing")), Answer::status(404));
    assert_eq!(publish(&reg, &alice, "private-thing", "0.1.0").status, 200);
    let r = reg.send(Request::new(Method::Get, &format!("/cargo/{}", index_path("private-thing"))));
    assert_eq!(serde_json::from_str::<serde_json::Value>(r.text().trim()).unwrap()["vers"], "0.1.0");
    // An admin grant naming the crate allows the claim; from then on the hosted crate is the
    // one served, never the upstream's (hosted first), and the cached copy is gone.
    let r = reg.send(admin(Method::Post, "/-/admin/tokens").with_body(json_body(&json!({"user": "alice", "protocol": "cargo", "scopes": ["cargo:crate:popular:write"]}))));
    let granted = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(publish(&reg, &granted, "popular", "9.0.0").status, 200);
    let r = reg.send(Request::new(Method::Get, &format!("/cargo/{}", index_path("popular"))));
    let vers: Vec<String> = r.text().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["vers"].as_str().unwrap().to_string()).collect();
    assert_eq!(vers, vec!["9.0.0"]);
    assert_eq!(reg.send(Request::new(Method::Get, "/cargo/api/v1/crates/popular/1.0.0/download")).status, 404, "the upstream's versions are not served for a hosted name");
    assert_eq!(reg.keys_with("cargo/cache/index/popular/"), Vec::<String>::new(), "the first hosted publish forgot the cached copy");
}
