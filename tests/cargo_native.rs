//! Cargo hosted registry natively (in-memory platform): config.json, sparse index files,
//! publish (streamed frame), download, yank/unyank, search, owners, auth and every refusal
//! leaving nothing stored.

mod common;

use common::*;
use edgeregistry::http::{Body, BodyError, Method, PlatformStream, Request};
use serde_json::{json, Value};

/// A cargo token for `user` (the admin API, `{"protocol": "cargo"}`), the user made first.
fn cargo_token(reg: &Reg, user: &str) -> String {
    reg.create_user(user);
    reg.create_token(user, json!({"protocol": "cargo"}))
}

/// A request as cargo sends it: the token raw in `Authorization`, no scheme.
fn raw(method: Method, path: &str, token: &str) -> Request {
    Request::new(method, path).with_header("Authorization", token)
}

fn publish_req(token: &str, body: Vec<u8>) -> Request {
    let len = body.len().to_string();
    raw(Method::Put, "/cargo/api/v1/crates/new", token).with_header("Content-Length", &len).with_body(body)
}

/// Publishes `name@version` with a small `.crate`, asserting cargo's success answer; the bytes.
fn publish_ok(reg: &Reg, token: &str, name: &str, version: &str) -> Vec<u8> {
    let krate = crate_file(name, version, 100);
    let r = reg.send(publish_req(token, cargo_publish_body(&cargo_metadata(name, version, json!({})), &krate)));
    assert_eq!(r.status, 200, "publish {name}@{version}: {r:?}");
    assert_eq!(r.json(), json!({"warnings": {"invalid_categories": [], "invalid_badges": [], "other": []}}));
    krate
}

/// Every object under `cargo/`.
fn cargo_keys(reg: &Reg) -> Vec<String> {
    reg.keys_with("cargo/")
}

/// Asserts cargo's error shape `{"errors":[{"detail"}]}` with `status`, the detail holding
/// `needle`; returns the detail.
fn assert_cargo_error(r: &Resp, status: u16, needle: &str) -> String {
    assert_eq!(r.status, status, "{r:?}");
    let doc = r.json();
    assert_eq!(doc.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec!["errors".to_string()]), "{r:?}");
    let detail = doc["errors"][0]["detail"].as_str().unwrap_or_else(|| panic!("no detail: {r:?}")).to_string();
    assert!(detail.contains(needle), "{detail:?} should mention {needle:?}");
    detail
}

/// A request that must be refused with `status` and leave the store as it was.
fn refused(reg: &Reg, req: Request, status: u16, needle: &str) -> Resp {
    let before = cargo_keys(reg);
    let r = reg.send(req);
    assert_cargo_error(&r, status, needle);
    assert_eq!(cargo_keys(reg), before, "a refused request ({needle}) changed the store");
    assert_eq!(reg.mem.store.open_uploads(), 0, "multipart upload left open");
    r
}

fn index_lines(reg: &Reg, path: &str) -> Vec<Value> {
    let r = reg.send(Request::new(Method::Get, &format!("/cargo/{path}")));
    assert_eq!(r.status, 200, "{path}: {r:?}");
    r.text().lines().map(|l| serde_json::from_str(l).expect("an index line is JSON")).collect()
}

// ---------------------------------------------------------------- config.json

#[test]
fn config_json_points_cargo_at_this_registry() {
    let reg = Reg::new();
    let r = reg.send(Request::new(Method::Get, "/cargo/config.json"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), json!({"dl": "http://localhost/cargo/api/v1/crates", "api": "http://localhost/cargo"}));
    let public = Reg::with_vars(&[("PUBLIC_URL", "https://reg.example.com")]);
    let r = public.send(Request::new(Method::Get, "/cargo/config.json"));
    assert_eq!(r.json()["dl"], "https://reg.example.com/cargo/api/v1/crates");
    assert_eq!(r.json()["api"], "https://reg.example.com/cargo");
}

#[test]
fn without_anonymous_read_config_json_asks_for_the_token_then_says_auth_required() {
    let reg = Reg::with_vars(&[("ANONYMOUS_READ", "none")]);
    let token = cargo_token(&reg, "alice");
    // Cargo book, "Sparse authentication": the anonymous request gets a 401, cargo retries
    // with its token.
    let r = reg.send(Request::new(Method::Get, "/cargo/config.json"));
    assert_cargo_error(&r, 401, "token");
    assert_eq!(r.header("WWW-Authenticate"), Some("Cargo"));
    let r = reg.send(raw(Method::Get, "/cargo/config.json", &token));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["auth-required"], true);
    // Index files and downloads need the token too.
    publish_ok(&reg, &token, "private", "1.0.0");
    assert_cargo_error(&reg.send(Request::new(Method::Get, "/cargo/pr/iv/private")), 401, "token");
    assert_eq!(reg.send(raw(Method::Get, "/cargo/pr/iv/private", &token)).status, 200);
    assert_cargo_error(&reg.send(Request::new(Method::Get, "/cargo/api/v1/crates/private/1.0.0/download")), 401, "token");
    assert_eq!(reg.send(raw(Method::Get, "/cargo/api/v1/crates/private/1.0.0/download", &token)).status, 200);
    assert_cargo_error(&reg.send(Request::new(Method::Get, "/cargo/api/v1/crates?q=priv")), 401, "token");
    // A token for another crate only cannot read this one.
    reg.create_user("bob");
    let narrow = reg.create_token("bob", json!({"protocol": "cargo", "scopes": ["cargo:crate:other:read"]}));
    assert_cargo_error(&reg.send(raw(Method::Get, "/cargo/pr/iv/private", &narrow)), 403, "may not read");
    let r = reg.send(raw(Method::Get, "/cargo/api/v1/crates?q=priv", &narrow));
    assert_eq!(r.json()["meta"]["total"], 0, "search lists only what the token may read: {r:?}");
}

// ---------------------------------------------------------------- publish and index

#[test]
fn publish_then_index_file_and_download() {
    let reg = Reg::new();
    let token = cargo_token(&reg, "alice");
    let krate = publish_ok(&reg, &token, "hello-world", "0.1.0");
    let r = reg.send(Request::new(Method::Get, "/cargo/he/ll/hello-world"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("Content-Type").is_some_and(|c| c.starts_with("text/plain")), "{r:?}");
    assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    let etag = r.header("ETag").expect("an ETag").to_string();
    let text = r.text();
    assert!(text.ends_with('\n') && text.lines().count() == 1, "{text:?}");
    let line: Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(line["name"], "hello-world");
    assert_eq!(line["vers"], "0.1.0");
    assert_eq!(line["cksum"], sha256_hex(&krate));
    assert_eq!(line["yanked"], false);
    assert_eq!(line["deps"][0]["name"], "serde");
    assert_eq!(line["deps"][0]["req"], "^1.0");
    // Revalidation: the same ETag is a 304 without a body.
    let r = reg.send(Request::new(Method::Get, "/cargo/he/ll/hello-world").with_header("If-None-Match", &etag));
    assert_eq!(r.status, 304, "{r:?}");
    assert!(r.body.is_empty());
    let r = reg.send(Request::new(Method::Head, "/cargo/he/ll/hello-world"));
    assert_eq!((r.status, r.body.len()), (200, 0), "{r:?}");
    let modified = r.header("Last-Modified").expect("a Last-Modified").to_string();
    assert!(modified.ends_with(" GMT"), "{modified}");
    let r = reg.send(Request::new(Method::Get, "/cargo/he/ll/hello-world").with_header("If-Modified-Since", &modified));
    assert_eq!(r.status, 304, "{r:?}");
    let r = reg.send(Request::new(Method::Get, "/cargo/he/ll/hello-world").with_header("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"));
    assert_eq!(r.status, 200, "{r:?}");
    // The download is the published bytes, immutable.
    let r = reg.send(Request::new(Method::Get, "/cargo/api/v1/crates/hello-world/0.1.0/download"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, krate);
    assert_eq!(r.header("Content-Type"), Some("application/gzip"));
    assert_eq!(r.header("Cache-Control"), Some("max-age=31536000, immutable"));
    assert_eq!(r.header("Content-Length"), Some(krate.len().to_string().as_str()));
    let r = reg.send(Request::new(Method::Head, "/cargo/api/v1/crates/hello-world/0.1.0/download"));
    assert_eq!((r.status, r.header("Content-Length"), r.body.len()), (200, Some(krate.len().to_string().as_str()), 0));
    // A second version appends a line, and the ETag changes.
    publish_ok(&reg, &token, "hello-world", "0.2.0-beta.1");
    let r = reg.send(Request::new(Method::Get, "/cargo/he/ll/hello-world").with_header("If-None-Match", &etag));
    assert_eq!(r.status, 200, "a changed file is sent again: {r:?}");
    let vers: Vec<Value> = index_lines(&reg, "he/ll/hello-world").iter().map(|l| l["vers"].clone()).collect();
    assert_eq!(vers, vec![json!("0.1.0"), json!("0.2.0-beta.1")]);
    // Unknown versions and crates are 404s in cargo's shape.
    assert_cargo_error(&reg.send(Request::new(Method::Get, "/cargo/api/v1/crates/hello-world/9.9.9/download")), 404, "9.9.9");
    assert_cargo_error(&reg.send(Request::new(Method::Get, "/cargo/api/v1/crates/nothing/1.0.0/download")), 404, "nothing");
    assert_cargo_error(&reg.send(Request::new(Method::Get, "/cargo/no/th/nothing")), 404, "nothing");
}

#[test]
fn index_paths_of_every_name_length_and_only_cargos_shapes() {
    let reg = Reg::new();
    let token = cargo_token(&reg, "alice");
    for (name, path) in [("a", "1/a"), ("ab", "2/ab"), ("abc", "3/a/abc"), ("abcd", "ab/cd/abcd"), ("Serde_Json", "se/rd/serde_json")] {
        publish_ok(&reg, &token, name, "1.0.0");
        let lines = index_lines(&reg, path);
        assert_eq!(lines.len(), 1, "{path}");
        assert_eq!(lines[0]["name"], name, "the index keeps the published spelling");
    }
    // Downloads find the crate by any spelling of its name (crates.io's canonical lookup);
    // index paths are lower-case only, as cargo asks for them.
    for spelling in ["Serde_Json", "serde_json", "SERDE-JSON"] {
        let r = reg.send(Request::new(Method::Get, &format!("/cargo/api/v1/crates/{spelling}/1.0.0/download")));
        assert_eq!(r.status, 200, "{spelling}: {r:?}");
    }
    for bad in ["3/b/abc", "se/rd/Serde_Json", "Se/rd/serde_json", "x/abcd", "ab/abcd", "1/ab", "2/a", "ab/cd/ef/abcd", "ab/cd/..", "..%2f..%2fx", "ab/cd/abcd%2f"] {
        assert_cargo_error(&reg.send(Request::new(Method::Get, &format!("/cargo/{bad}"))), 404, "");
    }
}

#[test]
fn raw_and_bearer_tokens_work_and_bad_ones_are_401() {
    let reg = Reg::new();
    let token = cargo_token(&reg, "alice");
    publish_ok(&reg, &token, "rawtok", "1.0.0");
    let krate = crate_file("rawtok", "1.1.0", 10);
    let body = cargo_publish_body(&cargo_metadata("rawtok", "1.1.0", json!({})), &krate);
    let r = reg.send(bearer(Request::new(Method::Put, "/cargo/api/v1/crates/new"), &token).with_body(body.clone()));
    assert_eq!(r.status, 200, "Bearer: {r:?}");
    let r = refused(&reg, publish_req("not-a-token", body.clone()), 401, "not valid");
    assert_eq!(r.header("WWW-Authenticate"), Some("Cargo"));
    let r = refused(&reg, Request::new(Method::Put, "/cargo/api/v1/crates/new").with_body(body), 401, "token");
    assert_eq!(r.header("WWW-Authenticate"), Some("Cargo"));
}

// ---------------------------------------------------------------- refusals

#[test]
fn refused_publishes_store_nothing() {
    let reg = Reg::new();
    let token = cargo_token(&reg, "alice");
    publish_ok(&reg, &token, "taken", "1.0.0");
    let krate = crate_file("taken", "2.0.0", 100);
    let body = |name: &str, vers: &str, extra: Value| cargo_publish_body(&cargo_metadata(name, vers, extra), &krate);
    // A version already there, with or without other build metadata.
    refused(&reg, publish_req(&token, body("taken", "1.0.0", json!({}))), 400, "crate version `1.0.0` is already uploaded");
    refused(&reg, publish_req(&token, body("taken", "1.0.0+other", json!({}))), 400, "already uploaded");
    // Another spelling of an existing name (as crates.io refuses it).
    refused(&reg, publish_req(&token, body("Taken", "2.0.0", json!({}))), 400, "previously named `taken`");
    publish_ok(&reg, &token, "foo-bar", "1.0.0");
    refused(&reg, publish_req(&token, body("foo_bar", "2.0.0", json!({}))), 400, "previously named `foo-bar`");
    refused(&reg, publish_req(&token, body("FOO_BAR", "2.0.0", json!({}))), 400, "previously named");
    // Bad metadata: names (traversal too), versions, dependency requirements.
    for bad in ["../etc", "a/b", "", "1abc", "con", &"x".repeat(65)] {
        refused(&reg, publish_req(&token, body(bad, "1.0.0", json!({}))), 400, "invalid crate name");
    }
    refused(&reg, publish_req(&token, body("fine", "1.0", json!({}))), 400, "invalid version");
    refused(&reg, publish_req(&token, body("fine", "1.0.0", json!({"deps": [{"name": "x", "version_req": "not a req", "features": [], "optional": false, "default_features": true, "target": null, "kind": "normal"}]}))), 400, "");
    // Malformed frames: truncated, garbage, trailing bytes, a crate length that lies.
    let full = body("fine", "1.0.0", json!({}));
    refused(&reg, publish_req(&token, full[..full.len() - 10].to_vec()), 400, "");
    refused(&reg, publish_req(&token, full[..3].to_vec()), 400, "");
    refused(&reg, publish_req(&token, b"\xff\xff\xff\x7fgarbage".to_vec()), 413, "");
    refused(&reg, publish_req(&token, b"\x05\x00\x00\x00{nope\x00\x00\x00\x00".to_vec()), 400, "");
    let mut trailing = full.clone();
    trailing.extend_from_slice(b"more");
    refused(&reg, publish_req(&token, trailing), 400, "");
    refused(&reg, publish_req(&token, Vec::new()), 400, "");
    // The .crate must be a gzipped tarball of `fine-1.0.0/…` with a Cargo.toml.
    for krate in [b"PK\x03\x04 a zip".as_slice(), b"", b"\x1f"] {
        refused(&reg, publish_req(&token, cargo_publish_body(&cargo_metadata("fine", "1.0.0", json!({})), krate)), 400, "invalid .crate file");
    }
    let other = crate_file("other", "1.0.0", 10);
    refused(&reg, publish_req(&token, cargo_publish_body(&cargo_metadata("fine", "1.0.0", json!({})), &other)), 400, "invalid .crate file");
    let mut flipped = crate_file("fine", "1.0.0", 10);
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    refused(&reg, publish_req(&token, cargo_publish_body(&cargo_metadata("fine", "1.0.0", json!({})), &flipped)), 400, "invalid .crate file");
    // Nothing of `fine` was kept anywhere.
    assert!(cargo_keys(&reg).iter().all(|k| !k.contains("fine")), "{:?}", cargo_keys(&reg));
}

#[test]
fn oversize_crates_are_413_with_or_without_a_length() {
    let reg = Reg::new();
    let token = cargo_token(&reg, "alice");
    // Announced by its length: refused before a byte is read.
    let mut req = publish_req(&token, Vec::new());
    req.headers.set("Content-Length", (200u64 << 20).to_string());
    req.body = Body::Stream(PlatformStream::from_pieces(Box::pin(futures::stream::empty()), Some(200 << 20)));
    refused(&reg, req, 413, "limit");
    // A frame declaring a crate over the limit, streamed with no length.
    let meta = serde_json::to_vec(&cargo_metadata("huge", "1.0.0", json!({}))).unwrap();
    let mut body = (meta.len() as u32).to_le_bytes().to_vec();
    body.extend_from_slice(&meta);
    body.extend_from_slice(&((11u32 << 20).to_le_bytes()));
    body.extend_from_slice(&vec![7u8; 11 << 20]);
    let pieces: Vec<Result<Vec<u8>, BodyError>> = body.chunks(1 << 20).map(|c| Ok(c.to_vec())).collect();
    let mut req = publish_req(&token, Vec::new());
    req.headers.remove("Content-Length");
    req.body = Body::Stream(PlatformStream::from_pieces(Box::pin(futures::stream::iter(pieces)), None));
    refused(&reg, req, 413, "");
    // Just under the limit is accepted (incompressible filler: the .crate stays that large).
    let krate = crate_file("big", "1.0.0", (10 << 20) - (64 << 10));
    assert!(krate.len() < 10 << 20 && krate.len() > (10 << 20) - (64 << 10), "{}", krate.len());
    let r = reg.send(publish_req(&token, cargo_publish_body(&cargo_metadata("big", "1.0.0", json!({})), &krate)));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(reg.send(Request::new(Method::Get, "/cargo/api/v1/crates/big/1.0.0/download")).body.len(), krate.len());
}

#[test]
fn scopes_read_only_tokens_and_strangers() {
    let reg = Reg::new();
    let token = cargo_token(&reg, "alice");
    publish_ok(&reg, &token, "owned", "1.0.0");
    let krate = crate_file("owned", "1.1.0", 10);
    let body = cargo_publish_body(&cargo_metadata("owned", "1.1.0", json!({})), &krate);
    let readonly = reg.create_token("alice", json!({"protocol": "cargo", "readonly": true}));
    refused(&reg, publish_req(&readonly, body.clone()), 403, "read-only");
    refused(&reg, raw(Method::Delete, "/cargo/api/v1/crates/owned/1.0.0/yank", &readonly), 403, "read-only");
    let other_scope = reg.create_token("alice", json!({"protocol": "cargo", "scopes": ["cargo:crate:something-else:write"]}));
    refused(&reg, publish_req(&other_scope, body.clone()), 403, "may not write");
    let npm_token = reg.create_token("alice", json!({"protocol": "npm"}));
    refused(&reg, publish_req(&npm_token, body.clone()), 401, "");
    let bob = cargo_token(&reg, "bob");
    refused(&reg, publish_req(&bob, body.clone()), 403, "not an owner");
    refused(&reg, raw(Method::Delete, "/cargo/api/v1/crates/owned/1.0.0/yank", &bob), 403, "not an owner");
    refused(&reg, raw(Method::Put, "/cargo/api/v1/crates/owned/owners", &bob).with_body(json_body(&json!({"users": ["bob"]}))), 403, "not an owner");
    // An admin grant naming the crate writes it whoever owns it.
    let granted = reg.send(admin(Method::Post, "/-/admin/tokens").with_body(json_body(&json!({"user": "bob", "protocol": "cargo", "scopes": ["cargo:crate:owned:write"]}))));
    assert_eq!(granted.status, 201, "{granted:?}");
    let granted = granted.json()["token"].as_str().unwrap().to_string();
    assert_eq!(reg.send(publish_req(&granted, body)).status, 200);
    // So does the admin secret, sent raw as cargo sends tokens; owners stay as they were.
    let krate = crate_file("owned", "1.2.0", 10);
    assert_eq!(reg.send(publish_req(ADMIN_TOKEN, cargo_publish_body(&cargo_metadata("owned", "1.2.0", json!({})), &krate))).status, 200);
    let owners = reg.send(Request::new(Method::Get, "/cargo/api/v1/crates/owned/owners")).json();
    assert_eq!(owners["users"].as_array().map(|u| u.len()), Some(1));
    assert_eq!(owners["users"][0]["login"], "alice");
}

#[test]
fn read_only_mode_refuses_publishes_before_anything_is_stored() {
    let reg = Reg::with_vars(&[("READ_ONLY", "true")]);
    let token = cargo_token(&reg, "alice");
    let krate = crate_file("frozen", "1.0.0", 10);
    refused(&reg, publish_req(&token, cargo_publish_body(&cargo_metadata("frozen", "1.0.0", json!({})), &krate)), 403, "");
}

// ---------------------------------------------------------------- concurrency

#[test]
fn twenty_concurrent_publishes_of_one_crate_all_survive() {
    let reg = Reg::new();
    let token = cargo_token(&reg, "alice");
    let crates: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("1.0.{i}"), crate_file("racy", &format!("1.0.{i}"), 50 + i))).collect();
    let reqs = crates.iter().map(|(v, c)| publish_req(&token, cargo_publish_body(&cargo_metadata("racy", v, json!({})), c))).collect();
    for (r, _) in reg.answer_all(reqs) {
        assert_eq!(r.status, 200, "{r:?}");
    }
    reg.settle();
    let lines = index_lines(&reg, "ra/cy/racy");
    assert_eq!(lines.len(), 20);
    for (v, c) in &crates {
        let line = lines.iter().find(|l| l["vers"] == v.as_str()).unwrap_or_else(|| panic!("{v} lost"));
        assert_eq!(line["cksum"], sha256_hex(c));
        assert_eq!(&reg.send(Request::new(Method::Get, &format!("/cargo/api/v1/crates/racy/{v}/download"))).body, c);
    }
    // Racing publishes of one version: exactly one wins, the loser's object is gone.
    let krates: Vec<Vec<u8>> = (0..5).map(|i| crate_file("racy", "2.0.0", 10 + i)).collect();
    let reqs = krates.iter().map(|c| publish_req(&token, cargo_publish_body(&cargo_metadata("racy", "2.0.0", json!({})), c))).collect();
    let statuses: Vec<u16> = reg.answer_all(reqs).into_iter().map(|(r, _)| r.status).collect();
    reg.settle();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{statuses:?}");
    assert_eq!(reg.keys_with("cargo/crates/racy/files/").len(), 21, "one object per accepted version");
}

// ---------------------------------------------------------------- yank

#[test]
fn yank_and_unyank_rewrite_one_line() {
    let reg = Reg::new();
    let token = cargo_token(&reg, "alice");
    publish_ok(&reg, &token, "yanky", "1.0.0");
    publish_ok(&reg, &token, "yanky", "1.1.0+meta");
    let before = index_lines(&reg, "ya/nk/yanky");
    let r = reg.send(raw(Method::Delete, "/cargo/api/v1/crates/yanky/1.0.0/yank", &token));
    assert_eq!((r.status, r.json()), (200, json!({"ok": true})), "{r:?}");
    let after = index_lines(&reg, "ya/nk/yanky");
    assert_eq!(after[0]["yanked"], true);
    assert_eq!(after[1], before[1], "the other line is untouched");
    let mut expected = before[0].clone();
    expected["yanked"] = json!(true);
    assert_eq!(after[0], expected, "only `yanked` changed");
    // Still downloadable (cargo keeps using yanked versions a lockfile names).
    assert_eq!(reg.send(Request::new(Method::Get, "/cargo/api/v1/crates/yanky/1.0.0/download")).status, 200);
    // A version named without its build metadata is the same version.
    let r = reg.send(raw(Method::Delete, "/cargo/api/v1/crates/yanky/1.1.0/yank", &token));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(index_lines(&reg, "ya/nk/yanky")[1]["yanked"], true);
    let r = reg.send(raw(Method::Put, "/cargo/api/v1/crates/yanky/1.0.0/unyank", &token));
    assert_eq!((r.status, r.json()), (200, json!({"ok": true})));
    assert_eq!(index_lines(&reg, "ya/nk/yanky")[0], before[0]);
    refused(&reg, raw(Method::Delete, "/cargo/api/v1/crates/yanky/3.0.0/yank", &token), 404, "3.0.0");
    refused(&reg, raw(Method::Delete, "/cargo/api/v1/crates/nope/1.0.0/yank", &token), 404, "nope");
    refused(&reg, raw(Method::Delete, "/cargo/api/v1/crates/yanky/not-semver/yank", &token), 400, "");
    refused(&reg, raw(Method::Delete, "/cargo/api/v1/crates/..%2f..%2fx/1.0.0/yank", &token), 400, "invalid crate name");
    refused(&reg, Request::new(Method::Delete, "/cargo/api/v1/crates/yanky/1.0.0/yank"), 401, "");
}

// ---------------------------------------------------------------- search

#[test]
fn search_matches_names_and_descriptions_with_paging() {
    let reg = Reg::new();
    let token = cargo_token(&reg, "alice");
    for (name, description) in [("serde-lite", "fast serialization"), ("serde", "the serializer"), ("tokio-x", "async runtime"), ("other", "Uses SERDE inside")] {
        let krate = crate_file(name, "1.0.0", 10);
        let r = reg.send(publish_req(&token, cargo_publish_body(&cargo_metadata(name, "1.0.0", json!({"description": description})), &krate)));
        assert_eq!(r.status, 200, "{r:?}");
    }
    publish_ok(&reg, &token, "serde", "1.2.0");
    let search = |q: &str| reg.send(Request::new(Method::Get, &format!("/cargo/api/v1/crates?{q}"))).json();
    let r = search("q=serde&per_page=10");
    let names: Vec<&str> = r["crates"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["serde", "other", "serde-lite"], "the exact name first, then by name");
    assert_eq!(r["meta"]["total"], 3);
    assert_eq!(r["crates"][0]["max_version"], "1.2.0");
    assert_eq!(r["crates"][0]["description"], "serde, a crate for tests");
    let r = search("q=runtime");
    assert_eq!(r["crates"][0]["name"], "tokio-x");
    assert_eq!(r["crates"][0]["description"], "async runtime");
    let r = search("q=serde&per_page=1&page=2");
    assert_eq!((r["crates"].as_array().unwrap().len(), r["crates"][0]["name"].clone(), r["meta"]["total"].clone()), (1, json!("other"), json!(3)));
    assert_eq!(search("q=")["meta"]["total"], 4);
    assert_eq!(search("q=zzz"), json!({"crates": [], "meta": {"total": 0}}));
    assert_eq!(search("q=e&per_page=1000")["crates"].as_array().unwrap().len(), 4, "per_page is capped, not refused");
    assert_cargo_error(&reg.send(Request::new(Method::Get, "/cargo/api/v1/crates?q=a&per_page=-1")), 400, "per_page");
    // A yanked highest version is not the one shown.
    assert_eq!(reg.send(raw(Method::Delete, "/cargo/api/v1/crates/serde/1.2.0/yank", &token)).status, 200);
    assert_eq!(search("q=serde")["crates"][0]["max_version"], "1.0.0");
}

// ---------------------------------------------------------------- owners

#[test]
fn owners_list_add_and_remove() {
    let reg = Reg::new();
    let alice = cargo_token(&reg, "alice");
    let bob = cargo_token(&reg, "bob");
    publish_ok(&reg, &alice, "shared", "1.0.0");
    let owners = |reg: &Reg| reg.send(Request::new(Method::Get, "/cargo/api/v1/crates/shared/owners")).json();
    assert_eq!(owners(&reg), json!({"users": [{"id": 1, "login": "alice", "name": "alice", "kind": "user"}]}));
    let body = json_body(&json!({"users": ["bob"]}));
    let r = reg.send(raw(Method::Put, "/cargo/api/v1/crates/shared/owners", &alice).with_body(body.clone()));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["ok"], true);
    assert!(r.json()["msg"].as_str().unwrap().contains("bob"), "{r:?}");
    let logins: Vec<Value> = owners(&reg)["users"].as_array().unwrap().iter().map(|u| u["login"].clone()).collect();
    assert_eq!(logins, vec![json!("alice"), json!("bob")]);
    publish_ok(&reg, &bob, "shared", "1.1.0");
    // Bob removes alice; then the last owner cannot go.
    let r = reg.send(raw(Method::Delete, "/cargo/api/v1/crates/shared/owners", &bob).with_body(json_body(&json!({"users": ["alice"]}))));
    assert_eq!((r.status, r.json()["ok"].clone()), (200, json!(true)), "{r:?}");
    refused(&reg, raw(Method::Put, "/cargo/api/v1/crates/shared/owners", &alice).with_body(body.clone()), 403, "not an owner");
    refused(&reg, raw(Method::Delete, "/cargo/api/v1/crates/shared/owners", &bob).with_body(body), 400, "all individual owners");
    refused(&reg, raw(Method::Put, "/cargo/api/v1/crates/shared/owners", &bob).with_body(json_body(&json!({"users": ["nobody"]}))), 404, "nobody");
    refused(&reg, raw(Method::Put, "/cargo/api/v1/crates/shared/owners", &bob).with_body(b"not json".to_vec()), 400, "malformed");
    assert_cargo_error(&reg.send(Request::new(Method::Get, "/cargo/api/v1/crates/missing/owners")), 404, "missing");
    // The admin API sees and replaces them.
    assert_eq!(reg.send(admin(Method::Get, "/-/admin/owners/cargo/shared")).json(), json!({"owners": ["bob"]}));
    let r = reg.send(admin(Method::Put, "/-/admin/owners/cargo/shared").with_body(json_body(&json!({"owners": ["alice"]}))));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(owners(&reg)["users"][0]["login"], "alice");
}

#[test]
fn unknown_routes_are_cargo_404s() {
    let reg = Reg::new();
    for path in ["/cargo/api/v1/nothing", "/cargo/api/v2/crates", "/cargo/"] {
        assert_cargo_error(&reg.send(Request::new(Method::Get, path)), 404, "");
    }
    assert_cargo_error(&reg.send(Request::new(Method::Post, "/cargo/api/v1/crates/new")), 404, "");
}
