//! The Worker as a pull-through cache for container images, in workerd, in front of real
//! upstreams: Debian's docker-registry (open, and behind htpasswd Basic auth), a second Worker
//! (Bearer token dance through its realm), and a fault-injecting proxy. crane and skopeo pull
//! through it, then again with the upstream stopped.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use common::e2e::upstreams::{docker_registry, Fault, FaultProxy};
use common::e2e::*;

const PASSWORD: &str = "puller-password";




fn last_line(out: &str) -> String {
    out.lines().last().unwrap_or_default().trim().to_string()
}


/// Pushes a one-layer image to `host/repo:tag`; returns its digest and the layer's digest.
fn push_image(s: &Scratch, host: &str, repo: &str, tag: &str, size: usize) -> (String, String) {
    let tar = layer(s, &format!("{}-{tag}", repo.replace('/', "-")), size);
    let image = format!("{host}/{repo}:{tag}");
    ok(crane(s, &["append", "-f", tar.to_str().unwrap(), "-t", &image]));
    let digest = last_line(&ok(crane(s, &["digest", &image])));
    let manifest: Value = serde_json::from_str(&last_line(&ok(crane(s, &["manifest", &image])))).unwrap();
    (digest, manifest["layers"][0]["digest"].as_str().unwrap().to_string())
}

fn upstreams_var(id: &str, url: &str, extra: Value) -> String {
    let mut u = json!({"id": id, "url": url,
                       "resilience": {"timeoutMs": 5000, "maxRetries": 1, "retryDelayMs": 100, "retryMaxDelayMs": 1000}});
    if let (Some(o), Some(e)) = (u.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    json!({"upstreams": [u], "cache": {"defaultTtlSeconds": 2, "staleMaxAgeSeconds": 2, "negativeCacheTtlSeconds": 2}}).to_string()
}

/// A Worker in front of `upstreams`, with a user that may pull, logged in for crane in `s`.
fn mirror(s: &Scratch, upstreams: &str, extra: &[(&str, &str)]) -> (Worker, String) {
    let mut vars = vec![("OCI_UPSTREAMS", upstreams), ("JWT_SECRET", "mirror-jwt-secret-for-tests")];
    vars.extend_from_slice(extra);
    let w = Worker::start(&vars);
    let token = oci_user(&w, "puller");
    let host = format!("127.0.0.1:{}", w.port);
    ok(crane(s, &["auth", "login", &host, "-u", "puller", "-p", PASSWORD]));
    (w, token)
}

/// A user with a password and an OCI token (for raw requests).
fn oci_user(w: &Worker, name: &str) -> String {
    let r = post_json(&format!("{}/-/admin/users", w.url), Some(ADMIN_TOKEN), &json!({"name": name, "password": PASSWORD}));
    assert!(r.0 == 201 || r.0 == 409, "{}", r.1);
    let r = post_json(&format!("{}/-/admin/tokens", w.url), Some(ADMIN_TOKEN), &json!({"user": name, "protocol": "oci"}));
    assert_eq!(r.0, 201, "{}", r.1);
    serde_json::from_str::<Value>(&r.1).unwrap()["token"].as_str().unwrap().to_string()
}

fn blob_sha(s: &Scratch, image_at_digest: &str) -> String {
    let out = s.path().join("blob.out");
    let r = s.run(".", std::path::Path::new("bash"), &["-c", &format!("{} blob --insecure {image_at_digest} > {}", oci_tool("crane").display(), out.display())], None);
    ok(r);
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(std::fs::read(out).unwrap())))
}

#[test]
fn crane_and_skopeo_pull_through_the_cache_then_with_the_upstream_down() {
    let s = Scratch::new();
    let mut upstream = docker_registry(None);
    let up_host = format!("127.0.0.1:{}", upstream.port);
    let (digest, layer_digest) = push_image(&s, &up_host, "team/app", "v1", 3 * 1024 * 1024 + 17);
    let (w, token) = mirror(&s, &upstreams_var("registry", &upstream.url, json!({})), &[]);
    let host = format!("127.0.0.1:{}", w.port);

    // Tag → the upstream's digest; the layer comes back byte-identical (crane checks digests).
    assert_eq!(last_line(&ok(crane(&s, &["digest", &format!("{host}/team/app:v1")]))), digest);
    ok(crane(&s, &["pull", &format!("{host}/team/app:v1"), s.path().join("img.tar").to_str().unwrap()]));
    assert_eq!(blob_sha(&s, &format!("{host}/team/app@{layer_digest}")), layer_digest);
    let copied = s.path().join("copied");
    ok(s.run(".", std::path::Path::new("skopeo"), &["copy", "--src-tls-verify=false", "--src-creds", &format!("puller:{PASSWORD}"),
        &format!("docker://{host}/team/app:v1"), &format!("dir:{}", copied.display())], None));
    assert!(copied.join(layer_digest.trim_start_matches("sha256:")).exists());

    let blob = request("GET", &format!("{}/v2/team/app/blobs/{layer_digest}", w.url), Some(&token), &[], None);
    assert_eq!(blob.header("x-cache"), Some("HIT"));
    assert_eq!(blob.header("x-cache-upstream"), Some("registry"));
    let tags = request("GET", &format!("{}/v2/team/app/tags/list", w.url), Some(&token), &[], None);
    assert_eq!(tags.json()["tags"], json!(["v1"]));

    // The upstream goes away and the tag's TTL runs out: pulls still work from the cache.
    upstream.stop();
    std::thread::sleep(Duration::from_secs(5));
    let image = format!("{host}/team/app:v1");
    assert_eq!(last_line(&ok(crane(&s, &["digest", &image]))), digest);
    ok(crane(&s, &["pull", &image, s.path().join("img2.tar").to_str().unwrap()]));
    let m = request("GET", &format!("{}/v2/team/app/manifests/v1", w.url), Some(&token), &[], None);
    assert_eq!(m.status, 200);
    assert_eq!(m.header("x-cache"), Some("STALE"));
    // Never pulled: a clear error in the OCI shape.
    let unknown = request("GET", &format!("{}/v2/team/other/manifests/v1", w.url), Some(&token), &[], None);
    assert_eq!(unknown.status, 502, "{}", unknown.text());
    assert_eq!(unknown.json()["errors"][0]["code"], "UNAVAILABLE");
}

#[test]
fn htpasswd_basic_auth_upstream() {
    let s = Scratch::new();
    let hash = bcrypt::hash("registry-secret", 4).unwrap();
    let upstream = docker_registry(Some(&format!("mirror:{hash}")));
    let up_host = format!("127.0.0.1:{}", upstream.port);
    ok(crane(&s, &["auth", "login", &up_host, "-u", "mirror", "-p", "registry-secret"]));
    let (digest, _) = push_image(&s, &up_host, "private/app", "1.0", 1024);
    let creds = json!({"auth": {"type": "basic", "username": "mirror", "passwordSecret": "UPSTREAM_PASSWORD"}});
    let (w, token) = mirror(&s, &upstreams_var("private", &upstream.url, creds), &[("UPSTREAM_PASSWORD", "registry-secret")]);
    let host = format!("127.0.0.1:{}", w.port);
    assert_eq!(last_line(&ok(crane(&s, &["digest", &format!("{host}/private/app:1.0")]))), digest);
    ok(crane(&s, &["pull", &format!("{host}/private/app:1.0"), s.path().join("p.tar").to_str().unwrap()]));
    // Without the credentials the upstream refuses, and the Worker says so.
    let (bare, bare_token) = mirror(&s, &upstreams_var("private", &upstream.url, json!({})), &[]);
    let r = request("GET", &format!("{}/v2/private/app/manifests/1.0", bare.url), Some(&bare_token), &[], None);
    assert_eq!(r.status, 502, "{}", r.text());
    drop(token);
}

#[test]
fn bearer_token_dance_with_a_second_worker_as_upstream() {
    let s = Scratch::new();
    // The upstream: a Worker hosting images, pulls only with a token from its realm.
    let origin = Worker::start(&[("JWT_SECRET", "origin-jwt-secret-for-tests")]);
    oci_user(&origin, "robot");
    let origin_host = format!("127.0.0.1:{}", origin.port);
    ok(crane(&s, &["auth", "login", &origin_host, "-u", "robot", "-p", PASSWORD]));
    let (digest, layer_digest) = push_image(&s, &origin_host, "corp/base", "stable", 200_000);
    let creds = json!({"auth": {"type": "basic", "username": "robot", "passwordSecret": "ORIGIN_PASSWORD"}});
    let (w, _) = mirror(&s, &upstreams_var("origin", &origin.url, creds), &[("ORIGIN_PASSWORD", PASSWORD)]);
    let host = format!("127.0.0.1:{}", w.port);
    assert_eq!(last_line(&ok(crane(&s, &["digest", &format!("{host}/corp/base:stable")]))), digest);
    assert_eq!(blob_sha(&s, &format!("{host}/corp/base@{layer_digest}")), layer_digest);
}

#[test]
fn a_corrupted_blob_is_refused_and_never_cached() {
    let s = Scratch::new();
    let upstream = docker_registry(None);
    let up_host = format!("127.0.0.1:{}", upstream.port);
    let (_, layer_digest) = push_image(&s, &up_host, "flaky/app", "v1", 100_000);
    let proxy = FaultProxy::start(&upstream.url);
    let (w, token) = mirror(&s, &upstreams_var("flaky", &proxy.url, json!({})), &[]);
    let url = format!("{}/v2/flaky/app/blobs/{layer_digest}", w.url);
    proxy.set(Fault::FlipByte);
    let bad = request("GET", &url, Some(&token), &[], None);
    use sha2::Digest;
    proxy.set(Fault::None);
    let good = request("GET", &url, Some(&token), &[], None);
    assert_eq!(good.status, 200);
    // The client's copy was cut short before its end (read error: no body at all here).
    assert!(!(bad.status == 200 && bad.body.len() == good.body.len()), "a corrupt blob was delivered whole");
    assert_eq!(good.header("x-cache"), Some("MISS"), "the corrupt copy was not cached");
    assert_eq!(format!("sha256:{}", hex::encode(sha2::Sha256::digest(&good.body))), layer_digest);
    assert_eq!(request("GET", &url, Some(&token), &[], None).header("x-cache"), Some("HIT"));
    // 5xx then fine: retried.
    proxy.set(Fault::Status { status: 503, retry_after: None, count: 1 });
    let m = request("GET", &format!("{}/v2/flaky/app/manifests/v1", w.url), Some(&token), &[], None);
    assert_eq!(m.status, 200, "{}", m.text());
}

/// podman with its own storage inside the scratch dir.
fn podman(s: &Scratch, args: &[&str]) -> (bool, String) {
    let root = s.path().join("storage");
    let runroot = s.path().join("run");
    let mut all = vec!["--root", root.to_str().unwrap(), "--runroot", runroot.to_str().unwrap(), "--storage-driver", "vfs"];
    all.extend_from_slice(args);
    s.run(".", std::path::Path::new("podman"), &all, None)
}

#[test]
fn multi_arch_indexes_stay_whole_and_podman_pulls_a_platform() {
    let s = Scratch::new();
    let upstream = docker_registry(None);
    let up = format!("127.0.0.1:{}", upstream.port);
    let mut children = Vec::new();
    for (arch, size) in [("amd64", 4000), ("arm64", 5000)] {
        let (_, _) = push_image(&s, &up, "multi/tool", &format!("{arch}-base"), size);
        let tagged = format!("{up}/multi/tool:{arch}");
        ok(crane(&s, &["mutate", &format!("{up}/multi/tool:{arch}-base"), "--set-platform", &format!("linux/{arch}"), "-t", &tagged]));
        children.push(last_line(&ok(crane(&s, &["digest", &tagged]))));
    }
    ok(crane(&s, &["index", "append", "-m", &format!("{up}/multi/tool@{}", children[0]), "-m", &format!("{up}/multi/tool@{}", children[1]), "-t", &format!("{up}/multi/tool:latest")]));
    let index_digest = last_line(&ok(crane(&s, &["digest", &format!("{up}/multi/tool:latest")])));

    let (w, token) = mirror(&s, &upstreams_var("registry", &upstream.url, json!({})), &[]);
    let host = format!("127.0.0.1:{}", w.port);
    let image = format!("{host}/multi/tool:latest");
    assert_eq!(last_line(&ok(crane(&s, &["digest", &image]))), index_digest, "the index, not one platform's manifest");
    let index: Value = serde_json::from_str(&last_line(&ok(crane(&s, &["manifest", &image])))).unwrap();
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(2));
    assert_eq!(last_line(&ok(crane(&s, &["digest", "--platform", "linux/arm64", &image]))), children[1]);
    let m = request("GET", &format!("{}/v2/multi/tool/manifests/latest", w.url), Some(&token), &[], None);
    assert!(m.header("content-type").unwrap_or_default().contains("index") || m.header("content-type").unwrap_or_default().contains("list"), "{:?}", m.headers);

    let creds = format!("puller:{PASSWORD}");
    ok(podman(&s, &["pull", "--tls-verify=false", "--creds", &creds, "--arch", "arm64", &format!("docker://{image}")]));
    let inspect = ok(podman(&s, &["image", "inspect", "--format", "{{.Architecture}}", &image]));
    assert!(inspect.contains("arm64"), "{inspect}");
}
