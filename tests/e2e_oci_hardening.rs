//! OCI against the Worker in workerd where the runtime matters: R2's 2 KiB limit on custom
//! metadata (an over-long `artifactType` or Content-Type used to fail after the manifest was
//! stored: a 500, and a HEAD that then answered 200), manifest media types, `PUBLIC_URL`
//! against a forged Host header, and repository ownership over real HTTP.

mod common;

use std::sync::OnceLock;

use serde_json::{json, Value};
use common::e2e::*;

const PUBLIC_URL: &str = "https://registry.example.com";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

struct Registry {
    worker: Worker,
    alice: String,
    bob: String,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let worker = Worker::start(&[("JWT_SECRET", "e2e-jwt-secret-for-tests"), ("PUBLIC_URL", PUBLIC_URL)]);
        let alice = worker.user_with_token("alice", json!({"protocol": "oci"}));
        let bob = worker.user_with_token("bob", json!({"protocol": "oci"}));
        Registry { worker, alice, bob }
    })
}

fn url(path: &str) -> String {
    format!("{}{path}", registry().worker.url)
}

fn digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn push_blob(token: &str, repo: &str, data: &[u8]) -> String {
    let d = digest(data);
    let r = request("POST", &url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")), Some(token), &[], Some(data.to_vec()));
    assert_eq!(r.status, 201, "{}", r.text());
    d
}

fn put_manifest(token: &str, repo: &str, reference: &str, content_type: &str, body: &[u8]) -> Resp {
    request("PUT", &url(&format!("/v2/{repo}/manifests/{reference}")), Some(token), &[("content-type", content_type)], Some(body.to_vec()))
}

fn head(token: &str, repo: &str, reference: &str) -> Resp {
    request("HEAD", &url(&format!("/v2/{repo}/manifests/{reference}")), Some(token), &[], None)
}

fn code(r: &Resp) -> String {
    r.json()["errors"][0]["code"].as_str().unwrap_or_default().to_string()
}

/// An image manifest over the `{}` config blob, with `extra` members.
fn manifest(config: &str, extra: Value) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": config},
        "layers": [],
    });
    if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    serde_json::to_vec(&m).unwrap()
}

#[test]
fn over_long_metadata_strings_are_refused_and_leave_nothing_behind() {
    let reg = registry();
    let repo = "limits/app";
    let config = push_blob(&reg.alice, repo, b"{}");
    let subject_body = manifest(&config, json!({}));
    let subject = digest(&subject_body);
    assert_eq!(put_manifest(&reg.alice, repo, "v1", OCI_MANIFEST, &subject_body).status, 201);
    let subject_ref = json!({"mediaType": OCI_MANIFEST, "size": subject_body.len(), "digest": subject});

    // A referrer with a 3000-byte artifactType.
    let referrer = manifest(&config, json!({"artifactType": format!("application/{}", "x".repeat(3000)), "subject": subject_ref}));
    let r = put_manifest(&reg.alice, repo, &digest(&referrer), OCI_MANIFEST, &referrer);
    assert_eq!((r.status, code(&r)), (400, "MANIFEST_INVALID".to_string()), "{}", r.text());
    assert_eq!(head(&reg.alice, repo, &digest(&referrer)).status, 404, "the refused referrer is visible");

    // A tag push with a 3000-byte Content-Type.
    let plain = manifest(&config, json!({"annotations": {"n": "1"}}));
    let r = put_manifest(&reg.alice, repo, "long", &format!("application/vnd.{}", "y".repeat(3000)), &plain);
    assert_eq!((r.status, code(&r)), (400, "MANIFEST_INVALID".to_string()), "{}", r.text());
    assert_eq!(head(&reg.alice, repo, "long").status, 404);
    assert_eq!(head(&reg.alice, repo, &digest(&plain)).status, 404);

    // Annotations too long for R2's metadata: stored and listed without them.
    let noted = manifest(&config, json!({"artifactType": "application/vnd.example.sbom", "subject": subject_ref, "annotations": {"note": "n".repeat(3000)}}));
    let r = put_manifest(&reg.alice, repo, "sbom", OCI_MANIFEST, &noted);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("OCI-Subject"), Some(subject.as_str()));
    assert_eq!(head(&reg.alice, repo, "sbom").status, 200);
    let listed = request("GET", &url(&format!("/v2/{repo}/referrers/{subject}")), Some(&reg.alice), &[], None).json();
    assert_eq!(listed["manifests"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["manifests"][0]["artifactType"], "application/vnd.example.sbom");
    assert!(listed["manifests"][0].get("annotations").is_none(), "{listed}");
}

#[test]
fn only_manifest_media_types_are_accepted_and_served() {
    let reg = registry();
    let repo = "types/app";
    let config = push_blob(&reg.alice, repo, b"{}");
    let body = manifest(&config, json!({}));
    for ct in ["text/html", "application/json"] {
        let r = put_manifest(&reg.alice, repo, "html", ct, &body);
        assert_eq!((r.status, code(&r)), (400, "MANIFEST_INVALID".to_string()), "{ct}: {}", r.text());
    }
    assert_eq!(head(&reg.alice, repo, "html").status, 404);
    let mut docker: Value = serde_json::from_slice(&body).unwrap();
    docker["mediaType"] = json!(DOCKER_MANIFEST);
    let docker = serde_json::to_vec(&docker).unwrap();
    assert_eq!(put_manifest(&reg.alice, repo, "docker", DOCKER_MANIFEST, &docker).status, 201);
    let g = request("GET", &url(&format!("/v2/{repo}/manifests/docker")), Some(&reg.alice), &[], None);
    assert_eq!((g.status, g.header("content-type")), (200, Some(DOCKER_MANIFEST)));
    assert_eq!(g.header("x-content-type-options").unwrap_or("nosniff"), "nosniff");
}

#[test]
fn with_public_url_a_forged_host_changes_nothing_generated() {
    let reg = registry();
    let forged = [("host", "evil.example"), ("x-forwarded-host", "evil.example")];
    let check = |r: &Resp, what: &str| {
        for (name, value) in r.headers.iter() {
            assert!(!value.contains("evil"), "{what}: {name}: {value}");
            assert!(!value.contains("127.0.0.1"), "{what}: {name}: {value}");
        }
    };
    let r = request("GET", &url("/v2/hosts/app/tags/list"), None, &forged, None);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer realm=\"{PUBLIC_URL}/oci/v2/token\",service=\"edgeregistry\",scope=\"repository:hosts/app:pull\"").as_str())
    );
    check(&r, "challenge");
    let r = request("POST", &url("/v2/hosts/app/blobs/uploads/"), Some(&reg.alice), &forged, None);
    assert_eq!(r.status, 202, "{}", r.text());
    check(&r, "upload start");
    let location = r.header("location").unwrap().to_string();
    assert!(location.starts_with("/v2/hosts/app/blobs/uploads/"), "{location}");
    let r = request("PUT", &url(&format!("{location}?digest={}", digest(b"abc"))), Some(&reg.alice), &forged, Some(b"abc".to_vec()));
    assert_eq!(r.status, 201, "{}", r.text());
    check(&r, "upload finish");
    for t in ["a", "b"] {
        let config = push_blob(&reg.alice, "hosts/app", b"{}");
        assert_eq!(put_manifest(&reg.alice, "hosts/app", t, OCI_MANIFEST, &manifest(&config, json!({"annotations": {"t": t}}))).status, 201);
    }
    let r = request("GET", &url("/v2/hosts/app/tags/list?n=1"), Some(&reg.alice), &forged, None);
    assert_eq!(r.header("link"), Some("</v2/hosts/app/tags/list?n=1&last=a>; rel=\"next\""));
    check(&r, "tags page");
}

/// A Worker without `PUBLIC_URL`, whose token realm real clients can reach.
fn reachable() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let worker = Worker::start(&[("JWT_SECRET", "e2e-jwt-secret-for-tests")]);
        let alice = worker.user_with_token("alice", json!({"protocol": "oci"}));
        let bob = worker.user_with_token("bob", json!({"protocol": "oci"}));
        Registry { worker, alice, bob }
    })
}

#[test]
fn a_second_user_cannot_write_the_first_pushers_repository() {
    let reg = reachable();
    let url = |path: &str| format!("{}{path}", reg.worker.url);
    let push_blob = |token: &str, repo: &str, data: &[u8]| {
        let d = digest(data);
        let r = request("POST", &url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")), Some(token), &[], Some(data.to_vec()));
        assert_eq!(r.status, 201, "{}", r.text());
        d
    };
    let put_manifest = |token: &str, repo: &str, reference: &str, content_type: &str, body: &[u8]| {
        request("PUT", &url(&format!("/v2/{repo}/manifests/{reference}")), Some(token), &[("content-type", content_type)], Some(body.to_vec()))
    };
    let head = |token: &str, repo: &str, reference: &str| request("HEAD", &url(&format!("/v2/{repo}/manifests/{reference}")), Some(token), &[], None);
    let repo = "owned/app";
    let config = push_blob(&reg.alice, repo, b"{}");
    let body = manifest(&config, json!({}));
    assert_eq!(put_manifest(&reg.alice, repo, "v1", OCI_MANIFEST, &body).status, 201);
    for (method, path, body) in [
        ("PUT", format!("/v2/{repo}/manifests/v2"), Some(body.clone())),
        ("DELETE", format!("/v2/{repo}/manifests/v1"), None),
        ("DELETE", format!("/v2/{repo}/manifests/{}", digest(&body)), None),
        ("POST", format!("/v2/{repo}/blobs/uploads/"), None),
    ] {
        let r = request(method, &url(&path), Some(&reg.bob), &[("content-type", OCI_MANIFEST)], body);
        assert_eq!((r.status, code(&r)), (403, "DENIED".to_string()), "{method} {path}: {}", r.text());
    }
    assert_eq!(head(&reg.bob, repo, "v1").status, 200, "bob may still pull");
    // A real client with bob's password: the token endpoint grants him pull only, and the
    // push ends in a clear denial (not a loop of challenges).
    let s = Scratch::new();
    let host = format!("127.0.0.1:{}", reg.worker.port);
    ok(crane(&s, &["auth", "login", &host, "-u", "bob", "-p", "bob-password"]));
    let layer = layer(&s, "bob", 1000);
    let (pushed, out) = crane(&s, &["append", "-f", layer.to_str().unwrap(), "-t", &format!("{host}/{repo}:bob")]);
    assert!(!pushed && out.contains("DENIED") && out.contains("user bob is not an owner of owned/app"), "{out}");
    ok(crane(&s, &["append", "-f", layer.to_str().unwrap(), "-t", &format!("{host}/bob/app:v1")]));
    // The admin secret may.
    let r = request("DELETE", &url(&format!("/v2/{repo}/manifests/v1")), Some(ADMIN_TOKEN), &[], None);
    assert_eq!(r.status, 202, "{}", r.text());
}
