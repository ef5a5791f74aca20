//! Upstream redirects in workerd, where fetch follows redirects by itself unless told not to
//! (and would replay every request header, credentials included, to the next origin). The
//! Worker mirrors a scripted upstream on 127.0.0.1 that wants a credential and sends tarballs
//! and blobs on to a second local server, another origin (another port), as npmjs, Docker Hub
//! and ghcr do with their CDNs and signed storage URLs: the download works, the first server
//! saw the credential, the second never did. (workerd, following by itself, drops
//! `Authorization` on a cross-origin redirect as the Fetch standard says, but replays a custom
//! header such as an API key: the npm test and the second OCI test fail with it.)

mod common;

use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;
use common::e2e::upstreams::{Answer, Received, Scripted};
use common::e2e::*;

const KEY_HEADER: &str = "x-upstream-key";
const KEY: &str = "e2e-upstream-key-9f8e7d6c5b4a";

fn answer(status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    (status, headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), body)
}

fn json_answer(status: u16, v: &Value) -> Answer {
    answer(status, &[("content-type", "application/json")], v.to_string().into_bytes())
}

/// Every request's headers, values included, as one string (to look for secrets anywhere).
fn all_headers(r: &Received) -> String {
    r.headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

fn assert_never_saw(server: &Scripted, secrets: &[&str]) {
    let received = server.received();
    assert!(!received.is_empty(), "the second server was asked");
    for r in &received {
        assert!(r.header("authorization").is_none() && r.header(KEY_HEADER).is_none(), "credential header at {}: {r:?}", server.url);
        for s in secrets {
            assert!(!all_headers(r).contains(s), "secret sent to {}: {r:?}", server.url);
        }
    }
}

fn dist(tgz: &[u8], tarball: &str) -> Value {
    json!({
        "tarball": tarball,
        "shasum": hex::encode(sha1::Sha1::digest(tgz)),
        "integrity": format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(tgz))),
    })
}

#[test]
fn npm_tarballs_redirected_to_another_origin_arrive_without_the_upstream_credential() {
    // The "CDN": serves any tarball it is asked for, to anyone.
    let tarballs: Arc<Mutex<Vec<(String, Vec<u8>)>>> = Arc::default();
    let t = tarballs.clone();
    let cdn = Scripted::start(move |r| {
        let path = r.target.split('?').next().unwrap_or("").to_string();
        match t.lock().unwrap().iter().find(|(p, _)| *p == path) {
            Some((_, tgz)) => answer(200, &[("content-type", "application/octet-stream")], tgz.clone()),
            None => json_answer(404, &json!({"error": "not found"})),
        }
    });

    // The upstream: wants the key on everything; 1.0.0's tarball is sent on to the CDN with a
    // signed URL, 1.1.0's to another path of its own (relative Location), 1.2.0's loops.
    let v1 = tarball("redir-pkg", "1.0.0");
    let v11 = tarball("redir-pkg", "1.1.0");
    let v12 = tarball("redir-pkg", "1.2.0");
    tarballs.lock().unwrap().push(("/signed/redir-pkg-1.0.0.tgz".into(), v1.clone()));
    let packument: Arc<Mutex<Value>> = Arc::default();
    let (p, cdn_url, own) = (packument.clone(), cdn.url.clone(), v11.clone());
    let upstream = Scripted::start(move |r| {
        if r.header(KEY_HEADER) != Some(KEY) {
            return json_answer(401, &json!({"error": "no key"}));
        }
        match r.target.as_str() {
            "/redir-pkg" => json_answer(200, &p.lock().unwrap()),
            "/redir-pkg/-/redir-pkg-1.0.0.tgz" => answer(302, &[("location", &format!("{cdn_url}/signed/redir-pkg-1.0.0.tgz?sig=abc&expires=9"))], vec![]),
            "/redir-pkg/-/redir-pkg-1.1.0.tgz" => answer(301, &[("location", "../store/redir-pkg-1.1.0.tgz")], b"moved".to_vec()),
            "/redir-pkg/store/redir-pkg-1.1.0.tgz" => answer(200, &[("content-type", "application/octet-stream")], own.clone()),
            "/redir-pkg/-/redir-pkg-1.2.0.tgz" => answer(307, &[("location", "/redir-pkg/-/redir-pkg-1.2.0.tgz")], vec![]),
            _ => json_answer(404, &json!({"error": "not found"})),
        }
    });
    let base = format!("{}/redir-pkg/-", upstream.url);
    *packument.lock().unwrap() = json!({
        "_id": "redir-pkg", "name": "redir-pkg", "dist-tags": {"latest": "1.0.0"},
        "versions": {
            "1.0.0": {"name": "redir-pkg", "version": "1.0.0", "dist": dist(&v1, &format!("{base}/redir-pkg-1.0.0.tgz"))},
            "1.1.0": {"name": "redir-pkg", "version": "1.1.0", "dist": dist(&v11, &format!("{base}/redir-pkg-1.1.0.tgz"))},
            "1.2.0": {"name": "redir-pkg", "version": "1.2.0", "dist": dist(&v12, &format!("{base}/redir-pkg-1.2.0.tgz"))},
        },
    });

    let upstreams = json!({"upstreams": [{"id": "corp", "url": upstream.url,
        "auth": {"type": "header", "headerName": "X-Upstream-Key", "tokenSecret": "CORP_UPSTREAM_KEY"},
        "resilience": {"timeoutMs": 5000, "maxRetries": 0}}]})
    .to_string();
    let worker = Worker::start(&[("NPM_UPSTREAMS", &upstreams), ("CORP_UPSTREAM_KEY", KEY)]);

    // npm installs it through the Worker: packument from the upstream, tarball from the CDN.
    let s = Scratch::new();
    s.write("app/package.json", &json!({"name": "app", "version": "1.0.0", "private": true}).to_string());
    s.write("app/.npmrc", &format!("registry={}\n", worker.npm_registry()));
    let cache = s.path().join("npm-cache");
    ok(s.run("app", &npm(), &["install", "--no-package-lock", "--cache", cache.to_str().unwrap(), "redir-pkg@1.0.0"], None));
    let installed: Value = serde_json::from_str(&std::fs::read_to_string(s.path().join("app/node_modules/redir-pkg/package.json")).unwrap()).unwrap();
    assert_eq!(installed["version"], "1.0.0");

    let at_cdn = cdn.received();
    assert_eq!(at_cdn.len(), 1, "{at_cdn:?}");
    assert_eq!(at_cdn[0].target, "/signed/redir-pkg-1.0.0.tgz?sig=abc&expires=9", "the signed URL as given");
    assert_never_saw(&cdn, &[KEY]);
    let at_upstream = upstream.received();
    let tgz_hop = at_upstream.iter().find(|r| r.target == "/redir-pkg/-/redir-pkg-1.0.0.tgz").expect("asked the upstream first");
    assert_eq!(tgz_hop.header(KEY_HEADER), Some(KEY), "the upstream itself gets the credential");
    assert!(at_upstream.iter().all(|r| r.header(KEY_HEADER) == Some(KEY)), "{at_upstream:?}");

    // A redirect within the upstream's origin (relative Location) keeps the credential.
    let r = request("GET", &format!("{}redir-pkg/-/redir-pkg-1.1.0.tgz", worker.npm_registry()), None, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, v11);
    let stored = upstream.received().into_iter().find(|r| r.target == "/redir-pkg/store/redir-pkg-1.1.0.tgz").expect("relative Location followed");
    assert_eq!(stored.header(KEY_HEADER), Some(KEY));

    // A loop ends after the cap in an upstream error, and nothing is cached.
    let r = request("GET", &format!("{}redir-pkg/-/redir-pkg-1.2.0.tgz", worker.npm_registry()), None, &[], None);
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("redirects"), "{}", r.text());
    let loops = upstream.received().iter().filter(|r| r.target == "/redir-pkg/-/redir-pkg-1.2.0.tgz").count();
    assert_eq!(loops, 6, "the first request and 5 redirects");
    assert_never_saw(&cdn, &[KEY]);
}

#[test]
fn oci_blob_redirected_to_storage_gets_neither_the_password_nor_the_dance_token() {
    const USER: &str = "robot";
    const PASSWORD: &str = "robot-upstream-password-31";
    const DANCE: &str = "e2e-dance-token-5a4b3c2d1e";
    let layer = pseudo_random(300_000, 11);
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&layer)));

    // Signed storage: serves the layer to anyone.
    let l = layer.clone();
    let storage = Scripted::start(move |_| answer(200, &[("content-type", "application/octet-stream")], l.clone()));

    // The registry and its realm (one origin, as ghcr has it): Basic at the realm gives the
    // token; the registry wants the token and sends the blob on to storage.
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")));
    let (storage_url, d) = (storage.url.clone(), digest.clone());
    let realm: Arc<Mutex<String>> = Arc::default();
    let rl = realm.clone();
    let registry = Scripted::start(move |r| {
        if r.target.starts_with("/token") {
            return if r.header("authorization") == Some(basic.as_str()) {
                json_answer(200, &json!({"token": DANCE, "expires_in": 300}))
            } else {
                json_answer(401, &json!({"errors": []}))
            };
        }
        if r.header("authorization") != Some(&format!("Bearer {DANCE}")) {
            let challenge = format!(r#"Bearer realm="{}/token",service="scripted",scope="repository:team/app:pull""#, rl.lock().unwrap());
            return answer(401, &[("www-authenticate", &challenge), ("content-type", "application/json")], b"{\"errors\":[]}".to_vec());
        }
        if r.target == format!("/v2/team/app/blobs/{d}") {
            return answer(307, &[("location", &format!("{storage_url}/blobs/{d}?X-Amz-Signature=abc"))], vec![]);
        }
        json_answer(404, &json!({"errors": [{"code": "BLOB_UNKNOWN"}]}))
    });
    *realm.lock().unwrap() = registry.url.clone();

    let upstreams = json!({"upstreams": [{"id": "scripted", "url": registry.url,
        "auth": {"type": "basic", "username": USER, "passwordSecret": "SCRIPTED_PASSWORD"},
        "resilience": {"timeoutMs": 5000, "maxRetries": 0}}]})
    .to_string();
    let worker = Worker::start(&[("OCI_UPSTREAMS", &upstreams), ("SCRIPTED_PASSWORD", PASSWORD), ("JWT_SECRET", "redirects-jwt-secret-0123456789")]);
    let token = oci_token(&worker);

    let r = request("GET", &format!("{}/v2/team/app/blobs/{digest}", worker.url), Some(&token), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == layer, "the layer, byte for byte");

    assert_never_saw(&storage, &[PASSWORD, DANCE, &base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))]);
    let at_registry = registry.received();
    assert!(at_registry.iter().any(|r| r.target.starts_with("/token") && r.header("authorization").is_some_and(|a| a.starts_with("Basic "))), "{at_registry:?}");
    assert!(
        at_registry.iter().any(|r| r.target == format!("/v2/team/app/blobs/{digest}") && r.header("authorization") == Some(&format!("Bearer {DANCE}"))),
        "{at_registry:?}"
    );
}

#[test]
fn oci_blob_redirected_to_storage_does_not_carry_a_custom_header_credential() {
    // A registry that takes an API key header (no token dance), as some private registries do.
    let layer = pseudo_random(100_000, 12);
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&layer)));
    let l = layer.clone();
    let storage = Scripted::start(move |_| answer(200, &[("content-type", "application/octet-stream")], l.clone()));
    let (storage_url, d) = (storage.url.clone(), digest.clone());
    let registry = Scripted::start(move |r| {
        if r.header(KEY_HEADER) != Some(KEY) {
            return json_answer(401, &json!({"errors": [{"code": "UNAUTHORIZED"}]}));
        }
        if r.target == format!("/v2/team/app/blobs/{d}") {
            return answer(307, &[("location", &format!("{storage_url}/blobs/{d}?X-Amz-Signature=abc"))], vec![]);
        }
        json_answer(404, &json!({"errors": [{"code": "BLOB_UNKNOWN"}]}))
    });
    let upstreams = json!({"upstreams": [{"id": "keyed", "url": registry.url,
        "auth": {"type": "header", "headerName": "X-Upstream-Key", "tokenSecret": "KEYED_UPSTREAM_KEY"},
        "resilience": {"timeoutMs": 5000, "maxRetries": 0}}]})
    .to_string();
    let worker = Worker::start(&[("OCI_UPSTREAMS", &upstreams), ("KEYED_UPSTREAM_KEY", KEY), ("JWT_SECRET", "redirects-jwt-secret-0123456789")]);
    let token = oci_token(&worker);
    let r = request("GET", &format!("{}/v2/team/app/blobs/{digest}", worker.url), Some(&token), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == layer, "the layer, byte for byte");
    assert_never_saw(&storage, &[KEY]);
    assert!(registry.received().iter().all(|r| r.header(KEY_HEADER) == Some(KEY)));
}

/// An OCI token for a new user of `worker`.
fn oci_token(worker: &Worker) -> String {
    let r = post_json(&format!("{}/-/admin/users", worker.url), Some(ADMIN_TOKEN), &json!({"name": "puller", "password": "puller-password"}));
    assert!(r.0 == 201 || r.0 == 409, "{}", r.1);
    let r = post_json(&format!("{}/-/admin/tokens", worker.url), Some(ADMIN_TOKEN), &json!({"user": "puller", "protocol": "oci"}));
    assert_eq!(r.0, 201, "{}", r.1);
    serde_json::from_str::<Value>(&r.1).unwrap()["token"].as_str().unwrap().to_string()
}
