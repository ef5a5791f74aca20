//! Issue 8 in workerd: wasm memory under hostile bodies, ownership with the real npm client,
//! the failed-login limit through its Durable Object, and CIDR-bound tokens.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use common::e2e::*;

const MIB: u64 = 1024 * 1024;

/// The isolate's wasm memory high-water mark.
fn wasm_memory(w: &Worker) -> u64 {
    let r = request("GET", &format!("{}/-/admin/stats", w.url), Some(ADMIN_TOKEN), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["wasm_memory_bytes"].as_u64().expect("wasm_memory_bytes")
}

/// What wrangler's local dev proxy (in front of the Worker in `startWorker`, absent in
/// production) answers when the Worker refuses a chunked body before reading all of it: its
/// fetch to the Worker fails on the unread body and it reports a restart.
const DEV_PROXY_503: &str = "Your worker restarted mid-request";

/// Sends a raw HTTP/1.1 request, the body chunked (no Content-Length) or with its length, and
/// returns the status. The server may answer before it has read everything: a failed write
/// after that is expected, only the status line matters. For a chunked body the dev proxy's
/// 503 stands for the Worker's refusal (see [`DEV_PROXY_503`]); it is returned as 413.
fn raw(w: &Worker, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], chunked: bool) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n", w.port);
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    }
    let _ = s.write_all(head.as_bytes());
    for piece in body.chunks(64 * 1024) {
        let sent = if chunked {
            s.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).and_then(|_| s.write_all(piece)).and_then(|_| s.write_all(b"\r\n"))
        } else {
            s.write_all(piece)
        };
        if sent.is_err() {
            break;
        }
    }
    if chunked {
        let _ = s.write_all(b"0\r\n\r\n");
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut rest = [0u8; 512];
    if let Ok(n) = s.read(&mut rest) {
        reply.extend_from_slice(&rest[..n]);
    }
    let text = String::from_utf8_lossy(&reply).into_owned();
    let line = text.lines().next().unwrap_or_default().to_string();
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status from {method} {path}: {line:?}"));
    if chunked && status == 503 && text.contains(DEV_PROXY_503) {
        return 413;
    }
    status
}

/// `[0,0,0,…]`: the cheapest bytes for the biggest `Value` tree.
fn zeros(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 2);
    s.push('[');
    while s.len() + 3 < bytes {
        s.push_str("0,");
    }
    s.push_str("0]");
    s
}

/// Memory budget of this Worker under the default `MAX_BODY_BYTES` (32 MiB): the body of the
/// largest request it must hold (a publish) plus its decoded tarball, and the runtime's own.
const BUDGET: u64 = 80 * MIB;

#[test]
fn no_request_shape_grows_wasm_memory_past_the_budget() {
    let w = Worker::start(&[]);
    let alice = w.user_with_token("mem-alice", json!({}));
    let before = wasm_memory(&w);
    let auth = format!("Bearer {alice}");
    let json_ct = ("Content-Type", "application/json");
    let junk = zeros(3 * MIB as usize);
    let mut report = vec![format!("start: {:.1} MiB", before as f64 / MIB as f64)];
    let mut measure = |what: &str, status: u16, want: &[u16]| {
        assert!(want.contains(&status), "{what}: status {status}, wanted {want:?}");
        eprintln!("{what}: {status}");
        let now = wasm_memory(&w);
        report.push(format!("{what}: {status}, {:.1} MiB", now as f64 / MIB as f64));
        assert!(now <= BUDGET, "{what}: wasm memory {} MiB > budget {} MiB\n{}", now / MIB, BUDGET / MIB, report.join("\n"));
    };

    // Unauthenticated: the legacy login reads a small body only, with or without a length.
    for chunked in [false, true] {
        let status = raw(&w, "PUT", "/npm/-/user/org.couchdb.user:x", &[json_ct], junk.as_bytes(), chunked);
        measure(&format!("3 MB array to login (chunked: {chunked})"), status, &[413]);
    }
    // Authenticated writes with hostile JSON: refused before a tree is built.
    let tgz = tarball("mem-pkg", "1.0.0");
    let mut body = publish_body("mem-pkg", "1.0.0", &tgz);
    body["versions"]["1.0.0"]["junk"] = serde_json::from_str(&junk).unwrap();
    let status = raw(&w, "PUT", "/npm/mem-pkg", &[json_ct, ("Authorization", &auth)], body.to_string().as_bytes(), true);
    measure("publish with a 3 MB array in a manifest", status, &[413]);
    let nested = format!("{{\"name\":\"mem-pkg\",\"versions\":{{}},\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let status = raw(&w, "PUT", "/npm/mem-pkg", &[json_ct, ("Authorization", &auth)], nested.as_bytes(), false);
    measure("publish with 100k nested arrays (no such package yet)", status, &[400, 404, 413]);
    for (what, path) in [("dist-tag", "/npm/-/package/mem-pkg/dist-tags/beta"), ("token create", "/npm/-/npm/v1/tokens"), ("admin user", "/-/admin/users")] {
        let token = if what == "admin user" { format!("Bearer {ADMIN_TOKEN}") } else { auth.clone() };
        let status = raw(&w, if path.contains("tokens") || path.contains("admin") { "POST" } else { "PUT" }, path, &[json_ct, ("Authorization", &token)], junk.as_bytes(), true);
        measure(&format!("3 MB array to {what}"), status, &[413]);
    }
    // A real package, then the whole-packument bodies npm sends back (deprecate, unpublish,
    // owner change) with a 20 MB array inside: parsed into typed fields, the rest skipped.
    let status = request("PUT", &format!("{}mem-pkg", w.npm_registry()), Some(&alice), &[json_ct], Some(publish_body("mem-pkg", "1.0.0", &tgz).to_string().into_bytes())).status;
    measure("publish", status, &[201]);
    let big = zeros(20 * MIB as usize);
    let deprecate = format!("{{\"name\":\"mem-pkg\",\"versions\":{{\"1.0.0\":{{\"deprecated\":\"no\",\"junk\":{big}}}}}}}");
    let status = raw(&w, "PUT", "/npm/mem-pkg", &[json_ct, ("Authorization", &auth)], deprecate.as_bytes(), true);
    measure("deprecate with a 20 MB array", status, &[200]);
    let unpublish = format!("{{\"_id\":\"mem-pkg\",\"versions\":{{\"1.0.0\":{big}}},\"junk\":{big}}}");
    let status = raw(&w, "PUT", "/npm/mem-pkg/-rev/1", &[json_ct, ("Authorization", &auth)], unpublish.as_bytes(), false);
    measure("unpublish body of 40 MB (over the cap)", status, &[413]);
    let unpublish = format!("{{\"_id\":\"mem-pkg\",\"versions\":{{\"1.0.0\":{big}}}}}");
    let status = raw(&w, "PUT", "/npm/mem-pkg/-rev/1", &[json_ct, ("Authorization", &auth)], unpublish.as_bytes(), true);
    measure("unpublish body with a 20 MB array", status, &[200]);
    // The largest legitimate publish: a 22 MiB tarball, ~30 MiB of JSON.
    let big_tgz = {
        let mut t = tarball("mem-big", "1.0.0");
        t.extend(pseudo_random(22 * MIB as usize, 7));
        t
    };
    let status = raw(&w, "PUT", "/npm/mem-big", &[json_ct, ("Authorization", &auth)], publish_body("mem-big", "1.0.0", &big_tgz).to_string().as_bytes(), true);
    measure("publish of a 22 MiB tarball", status, &[201]);
    // Just over the cap: refused while reading.
    let over = {
        let mut t = tarball("mem-over", "1.0.0");
        t.extend(pseudo_random(26 * MIB as usize, 8));
        t
    };
    let status = raw(&w, "PUT", "/npm/mem-over", &[json_ct, ("Authorization", &auth)], publish_body("mem-over", "1.0.0", &over).to_string().as_bytes(), true);
    measure("publish over MAX_BODY_BYTES", status, &[413]);
    eprintln!("wasm memory, budget {} MiB:\n{}", BUDGET / MIB, report.join("\n"));
}

#[test]
fn npm_owner_add_ls_rm_with_the_npm_client() {
    let w = Worker::start(&[]);
    let alice = w.user_with_token("own-alice", json!({}));
    let bob = w.user_with_token("own-bob", json!({}));
    let s = Scratch::new();
    let project = |dir: &str, token: &str, version: &str| {
        s.write(&format!("{dir}/.npmrc"), &format!("registry={}\n//127.0.0.1:{}/npm/:_authToken={token}\n", w.npm_registry(), w.port));
        s.write(&format!("{dir}/package.json"), &json!({"name": "own-pkg", "version": version}).to_string());
    };
    project("a", &alice, "1.0.0");
    ok(s.run("a", &npm(), &["publish"], None));
    // bob is not a maintainer: his publish is refused with npm's 403.
    project("b", &bob, "1.1.0");
    let (published, out) = s.run("b", &npm(), &["publish"], None);
    assert!(!published && out.contains("403"), "{out}");
    let (tagged, out) = s.run("b", &npm(), &["dist-tag", "add", "own-pkg@1.0.0", "evil"], None);
    assert!(!tagged && out.contains("403"), "{out}");
    // alice adds him; npm owner ls shows both; bob publishes, then removes alice.
    ok(s.run("a", &npm(), &["owner", "add", "own-bob", "own-pkg"], None));
    let ls = ok(s.run("a", &npm(), &["owner", "ls", "own-pkg"], None));
    assert!(ls.contains("own-alice") && ls.contains("own-bob"), "{ls}");
    ok(s.run("b", &npm(), &["publish"], None));
    ok(s.run("b", &npm(), &["owner", "rm", "own-alice", "own-pkg"], None));
    let ls = ok(s.run("b", &npm(), &["owner", "ls", "own-pkg"], None));
    assert!(!ls.contains("own-alice") && ls.contains("own-bob"), "{ls}");
    project("a", &alice, "1.2.0");
    let (published, out) = s.run("a", &npm(), &["publish"], None);
    assert!(!published && out.contains("403"), "{out}");
    let doc: Value = request("GET", &format!("{}own-pkg", w.npm_registry()), None, &[], None).json();
    assert_eq!(doc["versions"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["1.0.0", "1.1.0"]);
}

#[test]
fn failed_logins_are_limited_across_requests() {
    let w = Worker::start(&[("JWT_SECRET", "e2e-jwt-secret-for-tests")]);
    w.user_with_token("limit-alice", json!({}));
    let login = |password: &str| {
        let body = json!({"name": "limit-alice", "password": password}).to_string().into_bytes();
        request("PUT", &format!("{}-/user/org.couchdb.user:limit-alice", w.npm_registry()), None, &[("content-type", "application/json")], Some(body))
    };
    for _ in 0..10 {
        assert_eq!(login("wrong-password").status, 401);
    }
    let r = login("limit-alice-password");
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    // The OCI token endpoint (docker login) counts against the same limit.
    let basic = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "limit-alice:limit-alice-password"));
    let r = request("GET", &format!("{}/v2/token?service=edgeregistry", w.url), None, &[("authorization", &basic)], None);
    assert_eq!(r.status, 429, "{}", r.text());
}

#[test]
fn cidr_bound_tokens_follow_the_connecting_address() {
    let w = Worker::start(&[]);
    w.user_with_token("cidr-alice", json!({}));
    let make = |ranges: Value| {
        let r = post_json(&format!("{}/-/admin/tokens", w.url), Some(ADMIN_TOKEN), &json!({"user": "cidr-alice", "protocol": "npm", "cidrWhitelist": ranges}));
        assert_eq!(r.0, 201, "{}", r.1);
        serde_json::from_str::<Value>(&r.1).unwrap()["token"].as_str().unwrap().to_string()
    };
    let whoami = |token: &str| request("GET", &format!("{}-/whoami", w.npm_registry()), Some(token), &[], None).status;
    // The test connects from loopback; workerd reports it as the connecting address.
    assert_eq!(whoami(&make(json!(["127.0.0.0/8", "::1/128"]))), 200);
    assert_eq!(whoami(&make(json!(["10.0.0.0/8"]))), 401);
}
