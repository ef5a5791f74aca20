//! The OCI pull-through cache on the in-memory platform, in front of a second in-memory
//! registry that wants a token from its realm (the Bearer dance), and in front of scripted
//! upstreams (Docker Hub's `library/` prefix and realm, corrupt answers).

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::upstream::{Answer, FakeUpstream};
use common::*;
use edgeregistry::http::{Body, Method, PlatformStream, Request, Response};
use serde_json::json;


/// Every upstream request: (method, url, had an Authorization header).
type Log = Rc<RefCell<Vec<(Method, String, bool)>>>;

/// A mirror in front of another registry (user `robot`, pulls need a token from its realm).
fn mirror_of_registry() -> (Reg, Rc<Reg>, String, Log) {
    let origin = Rc::new(Reg::oci(&[]));
    origin.create_user("robot");
    let robot = origin.create_token("robot", json!({}));
    let mirror = Reg::oci(&[
        (
            "OCI_UPSTREAMS",
            r#"{"upstreams":[{"id":"origin","url":"https://origin.example",
                "auth":{"type":"basic","username":"robot","passwordSecret":"ORIGIN_PASSWORD"},
                "resilience":{"maxRetries":1,"retryDelayMs":10}}],
               "cache":{"defaultTtlSeconds":300,"staleMaxAgeSeconds":600,"negativeCacheTtlSeconds":60}}"#,
        ),
        ("ORIGIN_PASSWORD", PASSWORD),
    ]);
    let log: Log = Rc::default();
    let (o, l) = (origin.clone(), log.clone());
    mirror.mem.fetcher.set_async_handler(move |url, req| {
        l.borrow_mut().push((req.method, url.to_string(), req.header("authorization").is_some()));
        let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap_or_else(|| "/".into());
        let mut inner = Request::new(req.method, &path);
        inner.headers = req.headers;
        inner.body = req.body;
        let o = o.clone();
        Box::pin(async move { o.app.handle(inner).await })
    });
    mirror.create_user("puller");
    (mirror, origin, robot, log)
}

/// A stored token of the mirror's user `puller` (created by the caller).
fn puller(mirror: &Reg) -> String {
    mirror.create_token("puller", json!({"protocol": "oci"}))
}

fn calls(log: &Log, needle: &str) -> usize {
    log.borrow().iter().filter(|(_, u, _)| u.contains(needle)).count()
}

#[test]
fn tags_are_pulled_through_with_the_token_dance_and_then_served_from_the_cache() {
    let (mirror, origin, robot, log) = mirror_of_registry();
    let (manifest, digest) = origin.push_image(&robot, "team/app", "v1", "one");
    let token = puller(&mirror);
    let r = mirror.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, manifest);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
    assert_eq!(r.header("x-cache"), Some("MISS"));
    assert_eq!(r.header("x-cache-upstream"), Some("origin"));
    assert_eq!(calls(&log, "/oci/v2/token"), 1, "one trip to the realm: {:?}", log.borrow());
    let again = mirror.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token));
    assert_eq!(again.header("x-cache"), Some("HIT"));
    let by_digest = mirror.send(oci(Method::Get, &format!("/v2/team/app/manifests/{digest}"), &token));
    assert_eq!(by_digest.header("x-cache"), Some("HIT"));
    let before = log.borrow().len();
    let head = mirror.send(oci(Method::Head, "/v2/team/app/manifests/v1", &token));
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some(manifest.len().to_string().as_str()));
    assert_eq!(log.borrow().len(), before, "hits never ask the upstream");
    // Pulls through the mirror still need the mirror's own grant.
    assert_eq!(mirror.send(Request::new(Method::Get, "/v2/team/app/manifests/v1")).status, 401);
}

#[test]
fn tags_are_revalidated_with_a_head_after_their_ttl() {
    let (mirror, origin, robot, log) = mirror_of_registry();
    origin.push_image(&robot, "team/app", "v1", "one");
    let token = puller(&mirror);
    mirror.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token));
    // Unchanged upstream, past the stale window: a HEAD, no manifest GET.
    mirror.mem.clock.advance(1_000_000.0);
    let gets_before = log.borrow().iter().filter(|(m, u, _)| *m == Method::Get && u.contains("/manifests/")).count();
    let r = mirror.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token));
    assert_eq!(r.header("x-cache"), Some("REVALIDATED"));
    let gets_after = log.borrow().iter().filter(|(m, u, _)| *m == Method::Get && u.contains("/manifests/")).count();
    assert_eq!(gets_after, gets_before);
    assert!(log.borrow().iter().any(|(m, _, _)| *m == Method::Head));
    // The tag moves upstream; inside the stale window the old one is served once while the
    // background revalidation (run after the response) picks up the new one.
    let (_, new_digest) = origin.push_image(&robot, "team/app", "v1", "two");
    mirror.mem.clock.advance(400_000.0);
    let stale = mirror.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token));
    assert_eq!(stale.header("x-cache"), Some("STALE"));
    assert_ne!(stale.header("docker-content-digest"), Some(new_digest.as_str()));
    let fresh = mirror.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token));
    assert_eq!(fresh.header("x-cache"), Some("HIT"));
    assert_eq!(fresh.header("docker-content-digest"), Some(new_digest.as_str()));
}

#[test]
fn blobs_are_cached_verified_and_linked_per_repository() {
    let (mirror, origin, robot, log) = mirror_of_registry();
    let layer = vec![7u8; 200_000];
    let digest = origin.push_blob(&robot, "team/app", &layer);
    let token = puller(&mirror);
    let r = mirror.send(oci(Method::Get, &format!("/v2/team/app/blobs/{digest}"), &token));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, layer);
    assert_eq!(r.header("x-cache"), Some("MISS"));
    let hit = mirror.send(oci(Method::Get, &format!("/v2/team/app/blobs/{digest}"), &token).with_header("Range", "bytes=10-19"));
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!((hit.status, hit.body.as_slice()), (206, &layer[10..20]));
    // Another repository: the upstream does not serve this blob there, so neither do we.
    let other = mirror.send(oci(Method::Get, &format!("/v2/team/other/blobs/{digest}"), &token));
    assert_eq!(other.status, 404, "{other:?}");
    // Once the upstream has it there too, the cached copy serves it (no second download).
    origin.push_blob(&robot, "team/other", &layer);
    let gets = calls(&log, &format!("blobs/{digest}"));
    let shared = mirror.send(oci(Method::Get, &format!("/v2/team/other/blobs/{digest}"), &token));
    assert_eq!((shared.status, shared.header("x-cache")), (200, Some("HIT")));
    assert_eq!(calls(&log, &format!("blobs/{digest}")), gets + 1, "one HEAD to confirm, no GET");
}

#[test]
fn the_admin_api_purges_one_repository_from_the_cache() {
    let (mirror, origin, robot, log) = mirror_of_registry();
    let (_, digest) = origin.push_image(&robot, "team/app", "v1", "one");
    origin.push_image(&robot, "team/app/sub", "v1", "nested");
    let token = puller(&mirror);
    for repo in ["team/app", "team/app/sub"] {
        assert_eq!(mirror.send(oci(Method::Get, &format!("/v2/{repo}/manifests/v1"), &token)).status, 200, "{repo}");
    }
    let layer = origin.push_blob(&robot, "team/app", b"a layer");
    assert_eq!(mirror.send(oci(Method::Get, &format!("/v2/team/app/blobs/{layer}"), &token)).status, 200);
    let blobs = mirror.keys_with("oci/cache/blobs/");
    assert!(!blobs.is_empty());

    let r = mirror.send(admin(Method::Delete, "/-/admin/cache/oci/team/app"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["purged"], 3, "the tag entry, the manifest, the blob link");
    for kind in ["tags", "manifests", "links"] {
        let left: Vec<String> = mirror.keys_with(&format!("oci/cache/{kind}/team/app/"));
        assert!(left.iter().all(|k| k.contains("/team/app/sub/")), "{kind}: {left:?}");
    }
    assert_eq!(mirror.keys_with("oci/cache/blobs/"), blobs, "blobs are shared by digest and stay");
    let gets = calls(&log, "/manifests/");
    let again = mirror.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token));
    assert_eq!((again.status, again.header("x-cache")), (200, Some("MISS")));
    assert_eq!(again.header("docker-content-digest"), Some(digest.as_str()));
    assert!(calls(&log, "/manifests/") > gets, "fetched again");
    let nested = mirror.send(oci(Method::Get, "/v2/team/app/sub/manifests/v1", &token));
    assert_eq!(nested.header("x-cache"), Some("HIT"), "a nested repository keeps its cache");

    assert_eq!(mirror.send(admin(Method::Delete, "/-/admin/cache/oci/Team/../x")).status, 400);
    assert_eq!(mirror.send(admin(Method::Delete, "/-/admin/cache/maven/x")).status, 404);
    let user_token = mirror.create_token("puller", json!({}));
    assert_eq!(mirror.send(bearer(Request::new(Method::Delete, "/-/admin/cache/oci/team/app"), &user_token)).status, 403);
}

#[test]
fn hosted_repositories_are_never_shadowed() {
    let (mirror, origin, robot, log) = mirror_of_registry();
    origin.push_image(&robot, "mine/app", "v2", "upstream");
    let dev = mirror.user_with_token("dev");
    mirror.push_image(&dev, "mine/app", "v1", "local");
    let r = mirror.send(oci(Method::Get, "/v2/mine/app/manifests/v2", &dev));
    assert_eq!(r.status, 404, "{r:?}");
    assert_oci_error(&r, 404, "MANIFEST_UNKNOWN");
    assert!(log.borrow().is_empty(), "{:?}", log.borrow());
}

#[test]
fn unknown_tags_are_remembered_and_failures_are_reported() {
    let (mirror, _origin, _robot, log) = mirror_of_registry();
    let token = puller(&mirror);
    let r = mirror.send(oci(Method::Get, "/v2/team/none/manifests/v1", &token));
    assert_oci_error(&r, 404, "MANIFEST_UNKNOWN");
    let n = log.borrow().len();
    assert_eq!(mirror.send(oci(Method::Get, "/v2/team/none/manifests/v1", &token)).status, 404);
    assert_eq!(log.borrow().len(), n, "the negative entry answered");
    // The upstream goes down: a clear 502 in the OCI shape for what was never cached.
    mirror.mem.fetcher.set_handler(|_, _| Response::json(503, &json!({})));
    let r = mirror.send(oci(Method::Get, "/v2/team/down/manifests/v1", &token));
    assert_oci_error(&r, 502, "UNAVAILABLE");
}

/// A scripted Docker Hub: challenges, a realm on another host, `library/` names.
#[test]
fn docker_hub_preset_adds_library_and_follows_its_realm() {
    let mirror = Reg::oci(&[("OCI_UPSTREAMS", "dockerhub")]);
    mirror.create_user("puller");
    let token = puller(&mirror);
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec();
    let digest = oci_digest(&manifest);
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let (s, m, d) = (seen.clone(), manifest.clone(), digest.clone());
    mirror.mem.fetcher.set_handler(move |url, req| {
        s.borrow_mut().push(url.to_string());
        if url.starts_with("https://auth.docker.io/token") {
            assert!(req.header("authorization").is_none(), "anonymous at the realm");
            return Response::json(200, &json!({"token": "hub-token", "expires_in": 300}));
        }
        if req.header("authorization") != Some("Bearer hub-token") {
            return Response::json(401, &json!({"errors": []})).with_header(
                "WWW-Authenticate",
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
            );
        }
        let mut r = Response::new(200)
            .with_header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .with_header("Docker-Content-Digest", d.clone());
        if req.method == Method::Get {
            r.body = Body::Stream(PlatformStream::from_bytes(m.clone()));
        }
        r
    });
    let r = mirror.send(oci(Method::Get, "/v2/alpine/manifests/3", &token));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, manifest);
    assert_eq!(r.header("content-type"), Some("application/vnd.oci.image.index.v1+json"));
    let seen = seen.borrow();
    assert_eq!(seen[0], "https://registry-1.docker.io/v2/library/alpine/manifests/3");
    assert!(seen[1].starts_with("https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Falpine%3Apull"), "{}", seen[1]);
    assert_eq!(seen.iter().filter(|u| u.contains("auth.docker.io")).count(), 1, "the token is reused: {seen:?}");
}

#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused() {
    let (mirror, token, up) = mirror_of_fake();
    let wanted = oci_digest(b"the real manifest");
    up.serve(&format!("/v2/x/y/manifests/{wanted}"), Answer::bytes(200, OCI_MANIFEST, b"{\"tampered\":true}".to_vec()));
    let r = mirror.send(oci(Method::Get, &format!("/v2/x/y/manifests/{wanted}"), &token));
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.text().contains("mismatch"), "{}", r.text());
    assert!(mirror.keys_with("oci/cache/").is_empty(), "{:?}", mirror.keys_with("oci/cache/"));
    // A blob whose bytes do not hash to its digest is refused by the store.
    let blob = oci_digest(b"real layer");
    up.serve(&format!("/v2/x/y/blobs/{blob}"), Answer::bytes(200, "application/octet-stream", b"fake layer".to_vec()));
    let r = mirror.send(oci(Method::Get, &format!("/v2/x/y/blobs/{blob}"), &token));
    assert_oci_error(&r, 502, "DIGEST_INVALID");
    assert!(mirror.keys_with("oci/cache/").is_empty());
}

/// A mirror of a fake upstream `https://up.example` that the test scripts.
fn mirror_of_fake() -> (Reg, String, FakeUpstream) {
    let mirror = Reg::oci(&[("OCI_UPSTREAMS", r#"[{"id":"up","url":"https://up.example","resilience":{"maxRetries":0}}]"#)]);
    mirror.create_user("puller");
    let token = puller(&mirror);
    let up = FakeUpstream::install(&mirror.mem);
    (mirror, token, up)
}

#[test]
fn upstream_tag_lists_of_any_shape_are_answered_without_a_panic() {
    for (body, want) in [
        // A JSON array used to panic (`doc["name"] = …` on a non-object).
        (json!(["v1", "v2"]), None),
        (json!("tags"), None),
        (json!({"name": "library/x", "tags": [1, 2]}), None),
        (json!({"name": "library/x", "tags": null}), Some(json!({"name": "x/y", "tags": []}))),
        (json!({"name": "library/x", "tags": ["v1", "not a tag", "v2"], "other": [[[]]]}), Some(json!({"name": "x/y", "tags": ["v1", "v2"]}))),
    ] {
        let (mirror, token, up) = mirror_of_fake();
        up.serve("/v2/x/y/tags/list", Answer::bytes(200, "application/json", body.to_string().into_bytes()));
        let r = mirror.send(oci(Method::Get, "/v2/x/y/tags/list", &token));
        match want {
            Some(doc) => {
                assert_eq!(r.status, 200, "{body}: {r:?}");
                assert_eq!(r.json(), doc, "{body}");
            }
            None => assert_oci_error(&r, 502, "UNAVAILABLE"),
        }
    }
}

#[test]
fn an_upstream_manifest_is_never_served_as_a_non_manifest_type() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#.to_vec();
    let digest = oci_digest(&manifest);
    let (mirror, token, up) = mirror_of_fake();
    up.stream_bodies(true);
    let answer = Answer::bytes(200, "text/html", manifest.clone()).with_header("Docker-Content-Digest", &digest);
    for reference in ["v1", digest.as_str()] {
        up.serve(&format!("/v2/x/y/manifests/{reference}"), answer.clone());
    }
    for reference in ["v1", digest.as_str()] {
        for method in [Method::Get, Method::Head] {
            let r = mirror.send(oci(method, &format!("/v2/x/y/manifests/{reference}"), &token));
            assert_eq!((r.status, r.header("content-type")), (200, Some(OCI_MANIFEST)), "{method:?} {reference}");
        }
    }
}

#[test]
fn a_cached_blob_is_read_once_beside_its_link() {
    let (mirror, origin, robot, log) = mirror_of_registry();
    let layer: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let digest = origin.push_blob(&robot, "team/app", &layer);
    let token = puller(&mirror);
    let path = format!("/v2/team/app/blobs/{digest}");
    assert_eq!(mirror.send(oci(Method::Get, &path, &token)).header("x-cache"), Some("MISS"));
    let (asked, before) = (log.borrow().len(), mirror.mem.store.reads());
    let hit = mirror.send(oci(Method::Get, &path, &token));
    let reads = mirror.mem.store.reads() - before;
    assert_eq!((hit.status, hit.header("x-cache")), (200, Some("HIT")), "{hit:?}");
    assert_eq!(hit.body, layer);
    assert_eq!(hit.header("content-length"), Some(layer.len().to_string().as_str()));
    assert_eq!(hit.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(hit.header("accept-ranges"), Some("bytes"));
    assert_eq!(hit.header("x-cache-upstream"), Some("origin"));
    assert_eq!(log.borrow().len(), asked, "a hit never asks the upstream");
    // The hosted link, the repository record (not hosted), then the cached blob read whole
    // beside its link: no HEAD of the blob before it is read.
    assert_eq!(reads, 4, "store reads for a cached blob GET");
    // HEAD and Range still answer from the blob's size.
    let head = mirror.send(oci(Method::Head, &path, &token));
    assert_eq!((head.status, head.header("content-length")), (200, Some(layer.len().to_string().as_str())));
    let part = mirror.send(oci(Method::Get, &path, &token).with_header("Range", "bytes=-10"));
    assert_eq!((part.status, part.body.as_slice()), (206, &layer[layer.len() - 10..]));
}
