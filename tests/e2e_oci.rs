//! buildah, podman, skopeo, crane and oras against the Worker in workerd, over real HTTP.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;
use common::e2e::*;

const PASSWORD: &str = "oci-user-password";

fn worker() -> &'static Worker {
    static W: OnceLock<Worker> = OnceLock::new();
    W.get_or_init(|| {
        let w = Worker::start(&[("JWT_SECRET", "e2e-jwt-secret-for-tests")]);
        w.user_with_token("oci-user", serde_json::json!({}));
        w
    })
}

fn host() -> String {
    format!("127.0.0.1:{}", worker().port)
}




fn crane_login(s: &Scratch) {
    ok(crane(s, &["auth", "login", &host(), "-u", "oci-user", "-p", PASSWORD]));
}


#[test]
fn crane_pushes_lists_copies_and_deletes() {
    let s = Scratch::new();
    crane_login(&s);
    let small = layer(&s, "small", 1000);
    let image = format!("{}/crane/app:v1", host());
    ok(crane(&s, &["append", "-f", small.to_str().unwrap(), "-t", &image]));
    let manifest: Value = serde_json::from_str(ok(crane(&s, &["manifest", &image])).lines().last().unwrap()).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    let digest = ok(crane(&s, &["digest", &image])).lines().last().unwrap().trim().to_string();
    assert!(digest.starts_with("sha256:"));
    assert!(ok(crane(&s, &["ls", &format!("{}/crane/app", host())])).contains("v1"));

    // Copy to another repository: blobs are mounted, the digest is unchanged.
    let copy = format!("{}/crane/copy:latest", host());
    ok(crane(&s, &["copy", &image, &copy]));
    assert_eq!(ok(crane(&s, &["digest", &copy])).lines().last().unwrap().trim(), digest);
    assert!(ok(crane(&s, &["catalog", &host()])).contains("crane/copy"));

    ok(crane(&s, &["delete", &format!("{}/crane/copy@{digest}", host())]));
    let (found, out) = crane(&s, &["manifest", &copy]);
    assert!(!found && out.contains("MANIFEST_UNKNOWN"), "{out}");
}

#[test]
fn crane_round_trips_a_layer_larger_than_several_parts() {
    let s = Scratch::new();
    crane_login(&s);
    // 27 MiB: three 10 MiB parts' worth, so the upload re-cuts chunks into parts and a tail.
    let big = layer(&s, "big", 27 * 1024 * 1024 + 12345);
    let image = format!("{}/crane/big:v1", host());
    ok(crane(&s, &["append", "-f", big.to_str().unwrap(), "-t", &image]));
    let out = s.path().join("export.tar");
    ok(crane(&s, &["export", &image, out.to_str().unwrap()]));
    let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut got).unwrap();
    assert_eq!(got, std::fs::read(s.path().join("big.bin")).unwrap());
}

/// buildah and podman with their own storage inside the scratch dir.
fn containers(s: &Scratch, program: &str, args: &[&str]) -> (bool, String) {
    let root = s.path().join("storage");
    let runroot = s.path().join("run");
    let mut all = vec!["--root", root.to_str().unwrap(), "--runroot", runroot.to_str().unwrap(), "--storage-driver", "vfs"];
    all.extend_from_slice(args);
    s.run(".", Path::new(program), &all, None)
}

#[test]
fn buildah_builds_and_pushes_podman_pulls_skopeo_copies_and_inspects() {
    let s = Scratch::new();
    let creds = format!("oci-user:{PASSWORD}");
    let c = ok(containers(&s, "buildah", &["from", "scratch"])).lines().last().unwrap().trim().to_string();
    s.write("hello.txt", "hello from buildah\n");
    ok(containers(&s, "buildah", &["copy", &c, s.path().join("hello.txt").to_str().unwrap(), "/hello.txt"]));
    ok(containers(&s, "buildah", &["config", "--label", "e2e=yes", &c]));
    ok(containers(&s, "buildah", &["commit", &c, "e2e-built"]));
    let target = format!("docker://{}/podman/hello:1.0", host());
    ok(containers(&s, "buildah", &["push", "--tls-verify=false", "--creds", &creds, "e2e-built", &target]));

    ok(containers(&s, "podman", &["pull", "--tls-verify=false", "--creds", &creds, &target]));
    let images = ok(containers(&s, "podman", &["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(images.contains("podman/hello:1.0"), "{images}");

    let inspect = ok(s.run(".", Path::new("skopeo"), &["inspect", "--tls-verify=false", "--creds", &creds, &target], None));
    let inspect: Value = serde_json::from_str(&inspect[inspect.find('{').unwrap()..]).unwrap();
    assert_eq!(inspect["Labels"]["e2e"], "yes");
    let copy = format!("docker://{}/skopeo/hello:copied", host());
    ok(s.run(".", Path::new("skopeo"), &["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", &creds, "--dest-creds", &creds, &target, &copy], None));
    let dir = s.path().join("dir-copy");
    ok(s.run(".", Path::new("skopeo"), &["copy", "--src-tls-verify=false", "--src-creds", &creds, &copy, &format!("dir:{}", dir.display())], None));
    assert!(std::fs::read_dir(&dir).unwrap().count() >= 3, "manifest, config and layer copied out");
    ok(s.run(".", Path::new("skopeo"), &["delete", "--tls-verify=false", "--creds", &creds, &copy], None));
}

#[test]
fn oras_pushes_artifacts_attaches_and_discovers_referrers() {
    let s = Scratch::new();
    let oras = oci_tool("oras");
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--plain-http", "-u", "oci-user", "-p", PASSWORD]);
        s.run("work", &oras, &all, None)
    };
    s.write("work/notes.txt", "artifact payload\n");
    s.write("work/sbom.json", "{\"sbom\": true}\n");
    let reference = format!("{}/oras/notes:v1", host());
    ok(run(&["push", "--artifact-type", "application/vnd.e2e.notes", &reference, "notes.txt"]));
    ok(run(&["attach", "--artifact-type", "application/vnd.e2e.sbom", &reference, "sbom.json"]));
    let discovered = ok(run(&["discover", "--format", "json", &reference]));
    assert!(discovered.contains("application/vnd.e2e.sbom"), "{discovered}");

    // The referrers API filters by artifact type and says so.
    let resolved = ok(run(&["resolve", &reference]));
    let at = resolved.rfind("sha256:").expect("a digest");
    let digest = resolved[at..at + 71].to_string();
    let token = common::e2e::post_json(&format!("{}/-/admin/tokens", worker().url), Some(ADMIN_TOKEN), &serde_json::json!({"user": "oci-user", "protocol": "oci"}));
    let token: Value = serde_json::from_str(&token.1).unwrap();
    let token = token["token"].as_str().unwrap();
    let url = format!("{}/v2/oras/notes/referrers/{digest}?artifactType=application/vnd.e2e.sbom", worker().url);
    let r = request("GET", &url, Some(token), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);

    ok(s.run("out", &oras, &["pull", "--plain-http", "-u", "oci-user", "-p", PASSWORD, &reference], None));
    assert_eq!(std::fs::read_to_string(s.path().join("out/notes.txt")).unwrap(), "artifact payload\n");
}

fn oci_error(r: &Resp) -> String {
    r.json()["errors"][0]["code"].as_str().unwrap_or_default().to_string()
}

#[test]
fn protocol_errors_and_auth_challenges() {
    let w = worker();
    let token = {
        let r = common::e2e::post_json(&format!("{}/-/admin/tokens", w.url), Some(ADMIN_TOKEN), &serde_json::json!({"user": "oci-user", "protocol": "oci"}));
        serde_json::from_str::<Value>(&r.1).unwrap()["token"].as_str().unwrap().to_string()
    };
    // Anonymous: a Bearer challenge naming the realm, service and scope.
    let r = request("GET", &format!("{}/v2/some/repo/manifests/latest", w.url), None, &[], None);
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer realm=") && challenge.contains("scope=\"repository:some/repo:pull\""), "{challenge}");
    assert_eq!(oci_error(&r), "UNAUTHORIZED");
    // The token endpoint: bad credentials refused, good ones get a JWT that works.
    let bad = request("GET", &format!("{}/oci/v2/token?service=edgeregistry&scope=repository:x:pull", w.url), None, &[("authorization", "Basic b2NpLXVzZXI6d3Jvbmc=")], None);
    assert_eq!(bad.status, 401);

    let v2 = request("GET", &format!("{}/v2/", w.url), Some(&token), &[], None);
    assert_eq!(v2.status, 200);
    assert_eq!(v2.header("docker-distribution-api-version"), Some("registry/2.0"));

    let bad_name = request("GET", &format!("{}/v2/Bad_Name/tags/list", w.url), Some(&token), &[], None);
    assert_eq!((bad_name.status, oci_error(&bad_name).as_str()), (400, "NAME_INVALID"));
    let unknown = request("GET", &format!("{}/v2/nothing/here/manifests/latest", w.url), Some(&token), &[], None);
    assert_eq!((unknown.status, oci_error(&unknown).as_str()), (404, "MANIFEST_UNKNOWN"));

    let missing_blob = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"size\":2,\"digest\":\"sha256:{}\"}},\"layers\":[]}}",
        "4".repeat(64)
    );
    let r = request("PUT", &format!("{}/v2/errs/app/manifests/v1", w.url), Some(&token), &[("content-type", "application/vnd.oci.image.manifest.v1+json")], Some(missing_blob.into_bytes()));
    assert_eq!((r.status, oci_error(&r).as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
    let wrong_digest = format!("{}/v2/errs/app/manifests/sha256:{}", w.url, "0".repeat(64));
    let r = request("PUT", &wrong_digest, Some(&token), &[("content-type", "application/vnd.oci.image.manifest.v1+json")], Some(b"{\"schemaVersion\":2}".to_vec()));
    assert_eq!((r.status, oci_error(&r).as_str()), (400, "DIGEST_INVALID"));
    let r = request("PUT", &format!("{}/v2/errs/app/manifests/v2", w.url), Some(&token), &[], Some(b"not json".to_vec()));
    assert_eq!((r.status, oci_error(&r).as_str()), (400, "MANIFEST_INVALID"));

    // Chunked upload: out-of-order chunk → 416 with the current Range; wrong digest → refused, nothing stored.
    let start = request("POST", &format!("{}/v2/errs/app/blobs/uploads/", w.url), Some(&token), &[], None);
    assert_eq!(start.status, 202);
    let location = start.header("location").unwrap().to_string();
    assert!(start.header("oci-chunk-min-length").is_some());
    let upload = format!("{}{}", w.url, location);
    let r = request("PATCH", &upload, Some(&token), &[("content-range", "0-4"), ("content-type", "application/octet-stream")], Some(b"hello".to_vec()));
    assert_eq!(r.status, 202);
    assert_eq!(r.header("range"), Some("0-4"));
    let r = request("PATCH", &upload, Some(&token), &[("content-range", "10-14")], Some(b"again".to_vec()));
    assert_eq!(r.status, 416);
    assert_eq!(r.header("range"), Some("0-4"));
    let status = request("GET", &upload, Some(&token), &[], None);
    assert_eq!((status.status, status.header("range")), (204, Some("0-4")));
    let wrong = format!("{upload}?digest=sha256:{}", "1".repeat(64));
    let r = request("PUT", &wrong, Some(&token), &[], None);
    assert_eq!((r.status, oci_error(&r).as_str()), (400, "DIGEST_INVALID"));
    let gone = request("GET", &format!("{}/v2/errs/app/blobs/sha256:{}", w.url, "1".repeat(64)), Some(&token), &[], None);
    assert_eq!((gone.status, oci_error(&gone).as_str()), (404, "BLOB_UNKNOWN"));
    let after = request("GET", &upload, Some(&token), &[], None);
    assert_eq!((after.status, oci_error(&after).as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));

    // Monolithic upload and ranged reads.
    let data = b"0123456789abcdef".to_vec();
    let digest = format!("sha256:{}", edgeregistry::util::sha256_hex(&data));
    let r = request("POST", &format!("{}/v2/errs/app/blobs/uploads/?digest={digest}", w.url), Some(&token), &[("content-type", "application/octet-stream")], Some(data.clone()));
    assert_eq!(r.status, 201, "{}", r.text());
    let blob = format!("{}/v2/errs/app/blobs/{digest}", w.url);
    let r = request("GET", &blob, Some(&token), &[("range", "bytes=2-5")], None);
    assert_eq!((r.status, r.body.as_slice(), r.header("content-range")), (206, &b"2345"[..], Some("bytes 2-5/16")));
    let r = request("GET", &blob, Some(&token), &[("range", "bytes=20-")], None);
    assert_eq!(r.status, 416);
    let head = request("HEAD", &blob, Some(&token), &[("accept-encoding", "gzip")], None);
    assert_eq!((head.status, head.header("content-length")), (200, Some("16")));
    // Another repository cannot read it by digest until it is mounted there.
    let other = request("GET", &format!("{}/v2/errs/other/blobs/{digest}", w.url), Some(&token), &[], None);
    assert_eq!(other.status, 404);
    let mount = request("POST", &format!("{}/v2/errs/other/blobs/uploads/?mount={digest}&from=errs/app", w.url), Some(&token), &[], None);
    assert_eq!(mount.status, 201);
    let other = request("GET", &format!("{}/v2/errs/other/blobs/{digest}", w.url), Some(&token), &[], None);
    assert_eq!(other.body, data);
}

#[test]
fn buildah_pushes_a_multi_arch_index_that_resolves_per_platform() {
    let s = Scratch::new();
    let creds = format!("oci-user:{PASSWORD}");
    // Two tiny FROM scratch images (no RUN steps, so no emulation needed), one per architecture.
    for arch in ["amd64", "arm64"] {
        let c = ok(containers(&s, "buildah", &["from", "--arch", arch, "scratch"])).lines().last().unwrap().trim().to_string();
        let file = s.write(&format!("{arch}.txt"), &format!("built for {arch}\n"));
        ok(containers(&s, "buildah", &["copy", &c, file.to_str().unwrap(), "/arch.txt"]));
        ok(containers(&s, "buildah", &["config", "--arch", arch, "--os", "linux", &c]));
        ok(containers(&s, "buildah", &["commit", &c, &format!("multi-{arch}")]));
    }
    ok(containers(&s, "buildah", &["manifest", "create", "multi-list"]));
    for arch in ["amd64", "arm64"] {
        ok(containers(&s, "buildah", &["manifest", "add", "multi-list", &format!("containers-storage:localhost/multi-{arch}:latest")]));
    }
    let target = format!("{}/multi/app:v1", host());
    ok(containers(&s, "buildah", &["manifest", "push", "--all", "--tls-verify=false", "--creds", &creds, "multi-list", &format!("docker://{target}")]));

    // The index names both platforms, and each platform resolves to its own image.
    crane_login(&s);
    let out = ok(crane(&s, &["manifest", &target]));
    let index: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap_or_else(|| panic!("not an index: {index}"));
    let digest_of = |arch: &str| {
        entries
            .iter()
            .find(|m| m["platform"]["architecture"] == arch && m["platform"]["os"] == "linux")
            .unwrap_or_else(|| panic!("no linux/{arch} in {index}"))["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (amd64, arm64) = (digest_of("amd64"), digest_of("arm64"));
    assert_ne!(amd64, arm64);
    let arm = ok(crane(&s, &["manifest", "--platform", "linux/arm64", &target]));
    let arm: Value = serde_json::from_str(arm.lines().last().unwrap()).unwrap();
    assert!(arm["layers"].as_array().is_some_and(|l| l.len() == 1), "{arm}");
    assert_eq!(ok(crane(&s, &["digest", "--platform", "linux/arm64", &target])).lines().last().unwrap().trim(), arm64);
    let config = ok(crane(&s, &["config", &format!("{}/multi/app@{arm64}", host())]));
    let config: Value = serde_json::from_str(config.lines().last().unwrap()).unwrap();
    assert_eq!(config["architecture"], "arm64");

    let skopeo = |args: &[&str]| ok(s.run(".", Path::new("skopeo"), args, None));
    let docker_ref = format!("docker://{target}");
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &docker_ref]);
    assert!(raw.contains(&arm64) && raw.contains(&amd64), "{raw}");
    let inspect = skopeo(&["inspect", "--override-arch", "arm64", "--tls-verify=false", "--creds", &creds, &docker_ref]);
    let inspect: Value = serde_json::from_str(&inspect[inspect.find('{').unwrap()..]).unwrap();
    // (skopeo 1.9 reports the index's digest as `Digest`; the layers are the arm64 image's.)
    assert_eq!(inspect["Architecture"], "arm64");
    assert_eq!(inspect["Layers"][0], arm["layers"][0]["digest"], "{inspect}");

    // podman picks the arm64 image out of the index (pulling only, nothing runs).
    let pulled = Scratch::new();
    ok(containers(&pulled, "podman", &["pull", "--arch", "arm64", "--tls-verify=false", "--creds", &creds, &target]));
    // The image id is the digest of the arm64 image's config.
    let arch = ok(containers(&pulled, "podman", &["image", "inspect", "--format", "{{.Architecture}} sha256:{{.Id}}", &target]));
    assert_eq!(arch.lines().last().unwrap().trim(), format!("arm64 {}", arm["config"]["digest"].as_str().unwrap()));
}

// ---------------------------------------------------------------- the rest of the spec

fn sha512_of(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

fn sha256_of(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// A JWT for `scope` from the Worker's token endpoint, with the test user's password.
fn jwt(scope: &str) -> String {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("oci-user:{PASSWORD}"));
    let url = format!("http://{}/v2/token?service=edgeregistry&scope={scope}", host());
    let r = request("GET", &url, None, &[("authorization", &format!("Basic {basic}"))], None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

fn push_monolithic(repo: &str, token: &str, digest: &str, data: &[u8]) {
    let url = format!("http://{}/v2/{repo}/blobs/uploads/?digest={digest}", host());
    let r = request("POST", &url, Some(token), &[("content-type", "application/octet-stream")], Some(data.to_vec()));
    assert_eq!((r.status, r.header("docker-content-digest")), (201, Some(digest)), "{}", r.text());
}

/// POST (with `query`), PATCHes of `chunk` bytes, PUT `?digest=`.
fn push_chunked(repo: &str, token: &str, query: &str, digest: &str, data: &[u8], chunk: usize) {
    let r = request("POST", &format!("http://{}/v2/{repo}/blobs/uploads/{query}", host()), Some(token), &[], None);
    assert_eq!(r.status, 202, "{}", r.text());
    let mut location = r.header("location").unwrap().to_string();
    let mut offset = 0;
    for piece in data.chunks(chunk) {
        let range = format!("{}-{}", offset, offset + piece.len() - 1);
        let url = format!("http://{}{location}", host());
        let r = request("PATCH", &url, Some(token), &[("content-type", "application/octet-stream"), ("content-range", &range)], Some(piece.to_vec()));
        assert_eq!(r.status, 202, "{}", r.text());
        location = r.header("location").unwrap().to_string();
        offset += piece.len();
    }
    let r = request("PUT", &format!("http://{}{location}?digest={digest}", host()), Some(token), &[], None);
    assert_eq!((r.status, r.header("docker-content-digest")), (201, Some(digest)), "{}", r.text());
}

#[test]
fn a_sha512_artifact_pushed_over_http_is_pulled_by_oras() {
    // oras 1.2 cannot push with sha512 (no digest-algorithm option), so the artifact is
    // pushed by hand: a monolithic blob, a chunked one hashed in sha512 from its POST
    // (`digest-algorithm`), one whose session hashed sha256 and is read back at the end, and
    // a manifest PUT by its sha512 digest with `?tag=`.
    let repo = "spec/sha512";
    let token = jwt(&format!("repository:{repo}:pull,push"));
    let notes = b"an artifact addressed by sha512\n".to_vec();
    let big = pseudo_random(12 * 1024 * 1024 + 333, 512);
    let late = pseudo_random(11 * 1024 * 1024 + 7, 513);
    let config = b"{}".to_vec();
    let (d_notes, d_big, d_late, d_config) = (sha512_of(&notes), sha512_of(&big), sha512_of(&late), sha512_of(&config));
    push_monolithic(repo, &token, &d_notes, &notes);
    push_monolithic(repo, &token, &d_config, &config);
    push_chunked(repo, &token, "?digest-algorithm=sha512", &d_big, &big, 5 * 1024 * 1024);
    push_chunked(repo, &token, "", &d_late, &late, 4 * 1024 * 1024);
    let layer = |d: &str, size: usize, title: &str| {
        serde_json::json!({"mediaType": "application/octet-stream", "digest": d, "size": size,
            "annotations": {"org.opencontainers.image.title": title}})
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sha512",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": d_config, "size": 2},
        "layers": [layer(&d_notes, notes.len(), "notes.txt"), layer(&d_big, big.len(), "big.bin"), layer(&d_late, late.len(), "late.bin")],
    }))
    .unwrap();
    let m = sha512_of(&manifest);
    let url = format!("http://{}/v2/{repo}/manifests/{m}?tag=v1&tag=stable", host());
    let r = request("PUT", &url, Some(&token), &[("content-type", "application/vnd.oci.image.manifest.v1+json")], Some(manifest.clone()));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("docker-content-digest"), Some(m.as_str()));
    assert_eq!(r.header("oci-tag"), Some("v1, stable"));
    let head = request("HEAD", &format!("http://{}/v2/{repo}/manifests/stable", host()), Some(&token), &[], None);
    assert_eq!((head.status, head.header("docker-content-digest")), (200, Some(m.as_str())));

    let s = Scratch::new();
    let oras = oci_tool("oras");
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--plain-http", "-u", "oci-user", "-p", PASSWORD]);
        s.run(".", &oras, &all, None)
    };
    let out = s.path().join("pulled");
    ok(run(&["pull", &format!("{}/{repo}:v1", host()), "-o", out.to_str().unwrap()]));
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), notes);
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(out.join("late.bin")).unwrap(), late);
    let desc = ok(run(&["manifest", "fetch", "--descriptor", &format!("{}/{repo}:stable", host())]));
    assert!(desc.contains(&m), "{desc}");
    // By its sha512 digest, too.
    let fetched = ok(run(&["manifest", "fetch", &format!("{}/{repo}@{m}", host())]));
    assert!(fetched.contains("application/vnd.example.sha512"), "{fetched}");
    // A missing sha512 blob is a 404, not a 400.
    let missing = request("GET", &format!("http://{}/v2/{repo}/blobs/{}", host(), sha512_of(b"absent")), Some(&token), &[], None);
    assert_eq!(missing.status, 404, "{}", missing.text());
}

#[test]
fn crane_and_skopeo_copy_an_image_with_non_distributable_layers() {
    // A Windows-style image: its base layer is non-distributable and lives elsewhere (here a
    // URL nothing answers), so it was never pushed; the second layer is ordinary.
    let repo = "spec/nondist";
    let token = jwt(&format!("repository:{repo}:pull,push"));
    let s = Scratch::new();
    let own = std::fs::read(layer(&s, "own", 3000)).unwrap();
    let foreign = pseudo_random(4096, 77);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_of(&foreign), sha256_of(&own)]},
        "config": {},
    }))
    .unwrap();
    push_monolithic(repo, &token, &sha256_of(&config), &config);
    push_monolithic(repo, &token, &sha256_of(&own), &own);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_of(&config), "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar", "digest": sha256_of(&foreign), "size": foreign.len(),
             "urls": [format!("http://127.0.0.1:9/blobs/{}", sha256_of(&foreign))]},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256_of(&own), "size": own.len()},
        ],
    }))
    .unwrap();
    let m = sha256_of(&manifest);
    let url = format!("http://{}/v2/{repo}/manifests/v1", host());
    let r = request("PUT", &url, Some(&token), &[("content-type", "application/vnd.oci.image.manifest.v1+json")], Some(manifest.clone()));
    assert_eq!((r.status, r.header("docker-content-digest")), (201, Some(m.as_str())), "{}", r.text());

    crane_login(&s);
    let src = format!("{}/{repo}:v1", host());
    let by_crane = format!("{}/spec/nondist-crane:v1", host());
    ok(crane(&s, &["copy", &src, &by_crane]));
    assert_eq!(ok(crane(&s, &["digest", &by_crane])).lines().last().unwrap().trim(), m);
    assert!(ok(crane(&s, &["ls", &format!("{}/spec/nondist-crane", host())])).contains("v1"));

    let creds = format!("oci-user:{PASSWORD}");
    let by_skopeo = format!("docker://{}/spec/nondist-skopeo:v1", host());
    ok(s.run(
        ".",
        Path::new("skopeo"),
        &["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", &creds, "--dest-creds", &creds, &format!("docker://{src}"), &by_skopeo],
        None,
    ));
    let inspect = ok(s.run(".", Path::new("skopeo"), &["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &by_skopeo], None));
    let raw = &inspect[inspect.find('{').unwrap()..];
    let copied: Value = serde_json::from_str(raw).unwrap();
    // The foreign layer is referenced as it was (skopeo compresses the other one on the way).
    assert_eq!(copied["layers"][0]["mediaType"], "application/vnd.oci.image.layer.nondistributable.v1.tar");
    assert_eq!(copied["layers"][0]["digest"], sha256_of(&foreign).as_str());
    assert!(copied["layers"][0]["urls"].is_array(), "{copied}");
    let second = copied["layers"][1]["digest"].as_str().unwrap();
    let token = jwt("repository:spec/nondist-skopeo:pull");
    let r = request("HEAD", &format!("http://{}/v2/spec/nondist-skopeo/blobs/{second}", host()), Some(&token), &[], None);
    assert_eq!(r.status, 200, "the ordinary layer was copied");
    let r = request("HEAD", &format!("http://{}/v2/spec/nondist-skopeo/blobs/{}", host(), sha256_of(&foreign)), Some(&token), &[], None);
    assert_eq!(r.status, 404, "the foreign one was not");
}

#[test]
fn a_mount_without_pull_on_the_source_is_challenged_for_both_scopes() {
    let token = jwt("repository:spec/mount-src:pull,push");
    let data = b"a layer to mount".to_vec();
    let d = sha256_of(&data);
    push_monolithic("spec/mount-src", &token, &d, &data);
    let url = format!("http://{}/v2/spec/mount-dst/blobs/uploads/?mount={d}&from=spec/mount-src", host());
    let narrow = jwt("repository:spec/mount-dst:pull,push");
    let r = request("POST", &url, Some(&narrow), &[], None);
    assert_eq!(r.status, 401, "{}", r.text());
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.contains("scope=\"repository:spec/mount-dst:pull,push repository:spec/mount-src:pull\""), "{challenge}");
    // One token request for both scopes, and the mount is done.
    let wide = jwt("repository:spec/mount-dst:pull,push&scope=repository:spec/mount-src:pull");
    let r = request("POST", &url, Some(&wide), &[], None);
    assert_eq!((r.status, r.header("docker-content-digest")), (201, Some(d.as_str())), "{}", r.text());
}

/// Streamed uploads (PATCH without `Content-Range`, as docker and crane send a layer) are
/// hashed by the runtime's DigestStream in workerd: a right digest stores the blob, a wrong
/// one is refused and nothing is readable; more bytes after a streamed PATCH are checked over
/// the stored content. Over one part, in sha256 and in sha512 (`digest-algorithm`).
#[test]
fn streamed_uploads_are_hashed_natively_and_a_wrong_digest_is_refused() {
    use sha2::Digest as _;
    worker();
    let token = jwt("repository:stream/app:pull,push");
    let data = common::pseudo_random(12 * 1024 * 1024 + 333, 13);
    let sha256 = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data)));
    let sha512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&data)));
    let wrong = format!("sha256:{}", "2".repeat(64));
    let upload = |query: &str, split: Option<usize>, digest: &str| {
        let r = request("POST", &format!("http://{}/v2/stream/app/blobs/uploads/{query}", host()), Some(&token), &[], None);
        assert_eq!(r.status, 202, "{}", r.text());
        let location = format!("http://{}{}", host(), r.header("location").unwrap());
        let pieces: Vec<&[u8]> = match split {
            None => vec![&data[..]],
            Some(n) => vec![&data[..n], &data[n..]],
        };
        for piece in pieces {
            let r = request("PATCH", &location, Some(&token), &[("content-type", "application/octet-stream")], Some(piece.to_vec()));
            assert_eq!(r.status, 202, "{}", r.text());
        }
        request("PUT", &format!("{location}?digest={digest}"), Some(&token), &[], None)
    };
    for split in [None, Some(1000), Some(11 * 1024 * 1024)] {
        let r = upload("", split, &wrong);
        assert_eq!((r.status, oci_error(&r).as_str()), (400, "DIGEST_INVALID"), "split {split:?}");
        let gone = request("GET", &format!("http://{}/v2/stream/app/blobs/{wrong}", host()), Some(&token), &[], None);
        assert_eq!(gone.status, 404, "split {split:?}");
    }
    for (query, digest, split) in [("", &sha256, None), ("?digest-algorithm=sha512", &sha512, None), ("", &sha256, Some(5 * 1024 * 1024))] {
        let r = upload(query, split, digest);
        assert_eq!((r.status, r.header("docker-content-digest")), (201, Some(digest.as_str())), "{query} {split:?}: {}", r.text());
        let g = request("GET", &format!("http://{}/v2/stream/app/blobs/{digest}", host()), Some(&token), &[], None);
        assert!(g.status == 200 && g.body == data, "{query} {split:?}: the stored blob differs");
    }
}
