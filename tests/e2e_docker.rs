//! The docker CLI and a private Docker engine (Debian's docker.io) against the Worker in
//! workerd: login through the built-in token endpoint, build FROM scratch, push, pull,
//! cross-repository mounts, `docker manifest inspect`, logout.
//!
//! The Worker is served over HTTPS here (wrangler's self-signed certificate; docker skips
//! verification for 127.0.0.0/8, as for any insecure registry). Over plain HTTP docker first
//! tries TLS, and workerd, reading the ClientHello as the start of an HTTP request, waits for
//! more bytes instead of refusing: every docker command then stalls for docker's 10 s TLS
//! handshake timeout before falling back to HTTP, and `docker manifest inspect --insecure`
//! fails outright. A deployed Worker is HTTPS anyway.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use common::e2e::*;

const USER: &str = "docker-user";
const PASSWORD: &str = "docker-user-password";

/// The Worker on `https://127.0.0.1:PORT`; stops with this test process (miniflare/worker.sh).
struct HttpsWorker {
    url: String,
    host: String,
    _state: tempfile::TempDir,
}

fn worker() -> &'static HttpsWorker {
    static W: OnceLock<HttpsWorker> = OnceLock::new();
    W.get_or_init(|| start_https_worker(&[]))
}

/// An HTTPS Worker with `extra` vars and the user `USER`.
fn start_https_worker(extra: &[(&str, &str)]) -> HttpsWorker {
    let w = launch_https_worker(extra);
    let r = https("POST", &format!("{}/-/admin/users", w.url), &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))], Some(&serde_json::json!({"name": USER, "password": PASSWORD}).to_string()));
    assert_eq!(r.status, 201, "create user: {}", r.text());
    w
}

fn launch_https_worker(extra: &[(&str, &str)]) -> HttpsWorker {
    assert!(root().join("build/worker/shim.mjs").exists(), "the Worker is not built: run scripts/test.sh");
    let state = tempfile::tempdir().unwrap();
    for _attempt in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(state.path().join("wrangler.log")).unwrap();
        Command::new("setsid")
            .arg("bash")
            .arg(root().join("miniflare/worker.sh"))
            .arg(port.to_string())
            .arg(state.path())
            .arg(std::process::id().to_string())
            .args(["--var", &format!("ADMIN_TOKEN:{ADMIN_TOKEN}")])
            .args(["--var", "PASSWORD_ITERATIONS:1000"])
            .args(["--var", "JWT_SECRET:e2e-jwt-secret-for-docker"])
            .args(["--local-protocol", "https"])
            .args(extra.iter().flat_map(|(k, v)| ["--var".to_string(), format!("{k}:{v}")]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start miniflare/worker.sh");
        let url = format!("https://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if https("GET", &format!("{url}/-/health"), &[], None).status == 200 {
                return HttpsWorker { url, host: format!("127.0.0.1:{port}"), _state: state };
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!("worker on port {port} did not start:\n{}", std::fs::read_to_string(state.path().join("wrangler.log")).unwrap_or_default());
    }
    panic!("the Worker did not start");
}

/// One HTTPS request (python3's urllib, certificate not verified: ureq here speaks plain
/// HTTP only). Status 0 when the connection failed.
fn https(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
    const SCRIPT: &str = r#"
import base64, json, ssl, sys, urllib.error, urllib.request
method, url, headers, body = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
req = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers)
try:
    r = urllib.request.urlopen(req, context=ssl._create_unverified_context(), timeout=60)
except urllib.error.HTTPError as e:
    r = e
except Exception as e:
    print(json.dumps({"status": 0, "headers": [], "body": base64.b64encode(str(e).encode()).decode()}))
    sys.exit(0)
data = r.read()
print(json.dumps({"status": r.getcode(), "headers": list(r.headers.items()), "body": base64.b64encode(data).decode()}))
"#;
    let headers: serde_json::Map<String, Value> = headers.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
    let out = Command::new("python3")
        .args(["-c", SCRIPT, method, url, &Value::Object(headers).to_string(), body.unwrap_or("")])
        .output()
        .expect("python3 (scripts/setup.sh installs it)");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    Resp {
        status: v["status"].as_u64().unwrap() as u16,
        headers: headers_of(v["headers"].as_array().unwrap().iter().map(|h| (h[0].as_str().unwrap(), h[1].as_str().unwrap()))),
        body: base64::engine::general_purpose::STANDARD.decode(v["body"].as_str().unwrap()).unwrap(),
    }
}

/// A Docker engine of our own: started once per test process, stopped when it exits
/// (tests/common/e2e/dockerd.sh watches this process, like miniflare/worker.sh).
fn docker_host() -> &'static str {
    static D: OnceLock<String> = OnceLock::new();
    D.get_or_init(|| {
        let dockerd = Command::new("sh").args(["-c", "command -v dockerd"]).output().map(|o| o.status.success()).unwrap_or(false);
        assert!(dockerd, "dockerd is not installed: scripts/setup.sh installs Debian's docker.io");
        // Short: containerd's socket lives under it and unix socket paths end at 108 bytes.
        let dir = tempfile::Builder::new().prefix("dk").tempdir_in("/tmp").unwrap().keep();
        let mut watcher = Command::new("setsid")
            .arg("bash")
            .arg(root().join("tests/common/e2e/dockerd.sh"))
            .arg(&dir)
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tests/common/e2e/dockerd.sh");
        let host = format!("unix://{}/docker.sock", dir.display());
        let deadline = Instant::now() + Duration::from_secs(60);
        // The script ends early only when dockerd does.
        while Instant::now() < deadline && watcher.try_wait().ok().flatten().is_none() {
            let up = Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).env("DOCKER_HOST", &host).output();
            if up.as_ref().is_ok_and(|o| o.status.success()) {
                return host;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log = std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_else(|e| format!("no log: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        panic!("dockerd did not start (it needs root and Debian's docker.io; scripts/setup.sh installs it):\n{log}");
    })
}

/// Runs the docker CLI against our engine, with its config (credentials) in the scratch dir.
fn docker(s: &Scratch, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .current_dir(s.path())
        .env("HOME", s.path().join("home"))
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", s.path().join("docker-config"))
        // The classic builder: the engine is Debian's 20.10 and no buildx plugin is installed.
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CLI_HINTS", "false")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the docker CLI");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("$ docker {}\n{}{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}


fn login(s: &Scratch) {
    login_to(s, &worker().host);
}

fn login_to(s: &Scratch, host: &str) {
    let out = ok(docker(s, &["login", host, "-u", USER, "--password-stdin"], Some(PASSWORD)));
    assert!(out.contains("Login Succeeded"), "{out}");
}

/// `sha256:…` after `digest: ` in `docker push` output.
fn pushed_digest(out: &str) -> String {
    let at = out.find("digest: sha256:").unwrap_or_else(|| panic!("no digest in:\n{out}")) + "digest: ".len();
    out[at..at + 71].to_string()
}

/// A bearer token for `scope`, from the token endpoint with Basic credentials, as docker does.
fn token(scope: &str) -> String {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let r = https("GET", &format!("{}/v2/token?service=edgeregistry&scope={scope}", worker().url), &[("authorization", &format!("Basic {basic}"))], None);
    assert_eq!(r.status, 200, "token: {}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

/// GET and HEAD of a blob with docker's `Accept-Encoding: gzip`: the length must survive (no
/// compression by the runtime) and match the manifest.
fn assert_blob_length(repo: &str, digest: &str, size: u64) {
    let bearer = format!("Bearer {}", token(&format!("repository:{repo}:pull")));
    let url = format!("{}/v2/{repo}/blobs/{digest}", worker().url);
    let headers = [("authorization", bearer.as_str()), ("accept-encoding", "gzip"), ("user-agent", "docker/28.2.2 go/go1.24.3")];
    let get = https("GET", &url, &headers, None);
    assert_eq!(get.status, 200);
    assert_eq!(get.header("content-length"), Some(size.to_string().as_str()), "{:?}", get.headers);
    assert_ne!(get.header("content-encoding"), Some("gzip"));
    assert_eq!(get.body.len() as u64, size);
    assert_eq!(format!("sha256:{}", edgeregistry::util::sha256_hex(&get.body)), digest);
    let head = https("HEAD", &url, &headers, None);
    assert_eq!((head.status, head.header("content-length")), (200, Some(size.to_string().as_str())));
    assert_eq!(head.header("docker-content-digest"), Some(digest));
}

/// Copies `path` out of `image` (docker create + docker cp) into the scratch dir.
fn file_from_image(s: &Scratch, image: &str, path: &str) -> Vec<u8> {
    let id = ok(docker(s, &["create", image], None)).lines().last().unwrap().trim().to_string();
    let dest = s.path().join(format!("out-{}", &id[..12]));
    ok(docker(s, &["cp", &format!("{id}:{path}"), dest.to_str().unwrap()], None));
    ok(docker(s, &["rm", &id], None));
    std::fs::read(&dest).unwrap()
}

fn write_context(s: &Scratch, dockerfile: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = s.path().join("context");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    for (name, data) in files {
        std::fs::write(dir.join(name), data).unwrap();
    }
    dir
}

#[test]
fn docker_logs_in_builds_pushes_pulls_and_logs_out() {
    let s = Scratch::new();
    let host = &worker().host;
    let image = format!("{host}/docker/hello:v1");

    let (wrong, out) = docker(&s, &["login", host, "-u", USER, "--password-stdin"], Some("not-the-password"));
    assert!(!wrong, "a wrong password must be refused:\n{out}");
    login(&s);

    let context = write_context(
        &s,
        "FROM scratch\nCOPY hello.txt /hello.txt\nLABEL e2e=docker\nCMD [\"/hello\"]\n",
        &[("hello.txt", b"hello from docker\n")],
    );
    ok(docker(&s, &["build", "-t", &image, context.to_str().unwrap()], None));
    let digest = pushed_digest(&ok(docker(&s, &["push", &image], None)));

    // The manifest as the registry serves it, through the CLI's own registry client.
    let out = ok(docker(&s, &["manifest", "inspect", "--insecure", &image], None));
    let manifest: Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_blob_length("docker/hello", layers[0]["digest"].as_str().unwrap(), layers[0]["size"].as_u64().unwrap());
    assert_blob_length("docker/hello", manifest["config"]["digest"].as_str().unwrap(), manifest["config"]["size"].as_u64().unwrap());

    // Gone locally, then back from the registry, by tag and by digest.
    ok(docker(&s, &["rmi", &image], None));
    let pulled = ok(docker(&s, &["pull", &image], None));
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    assert_eq!(file_from_image(&s, &image, "/hello.txt"), b"hello from docker\n");
    let label = ok(docker(&s, &["image", "inspect", "--format", "{{index .Config.Labels \"e2e\"}}", &image], None));
    assert_eq!(label.lines().last().unwrap().trim(), "docker");
    ok(docker(&s, &["pull", &format!("{host}/docker/hello@{digest}")], None));
    // Pushing again uploads nothing.
    let again = ok(docker(&s, &["push", &image], None));
    assert!(again.contains("Layer already exists"), "{again}");

    // Logged out, the pull is refused (the repository is private: OCI has no anonymous read).
    ok(docker(&s, &["logout", host], None));
    ok(docker(&s, &["rmi", &image], None));
    let (pulled, out) = docker(&s, &["pull", &image], None);
    assert!(!pulled, "a pull without credentials must fail:\n{out}");
    let lower = out.to_lowercase();
    assert!(lower.contains("unauthorized") || lower.contains("authentication required") || lower.contains("docker login"), "{out}");
}


#[test]
fn docker_pushes_a_layer_of_several_parts_and_mounts_it_across_repositories() {
    let s = Scratch::new();
    let host = &worker().host;
    login(&s);
    // docker streams each layer in one PATCH without Content-Length: 24 MiB of noise (still
    // ~24 MiB gzipped) is re-cut into 10 MiB parts and a tail.
    let big = pseudo_random(24 * 1024 * 1024 + 777, 42);
    let context = write_context(&s, "FROM scratch\nCOPY big.bin /big.bin\nCOPY small.txt /small.txt\nCMD [\"/none\"]\n", &[("big.bin", &big), ("small.txt", b"small\n")]);
    let image = format!("{host}/docker/big:v1");
    ok(docker(&s, &["build", "-t", &image, context.to_str().unwrap()], None));
    let digest = pushed_digest(&ok(docker(&s, &["push", &image], None)));

    let out = ok(docker(&s, &["manifest", "inspect", "--insecure", &image], None));
    let manifest: Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let big_layer = &layers[0];
    assert!(big_layer["size"].as_u64().unwrap() > 20 * 1024 * 1024, "{big_layer}");
    assert_blob_length("docker/big", big_layer["digest"].as_str().unwrap(), big_layer["size"].as_u64().unwrap());

    // Another repository: docker mounts the blobs instead of uploading them again.
    let copy = format!("{host}/docker/big-copy:v1");
    ok(docker(&s, &["tag", &image, &copy], None));
    let mounted = ok(docker(&s, &["push", &copy], None));
    assert!(mounted.contains("Mounted from docker/big"), "{mounted}");
    assert_eq!(pushed_digest(&mounted), digest);

    ok(docker(&s, &["rmi", &image, &copy], None));
    ok(docker(&s, &["pull", &copy], None));
    let got = file_from_image(&s, &copy, "/big.bin");
    assert!(got == big, "big.bin came back different ({} bytes)", got.len());
    assert_eq!(file_from_image(&s, &copy, "/small.txt"), b"small\n");
}

#[test]
fn docker_pulls_through_the_cache_then_with_the_upstream_down() {
    let s = Scratch::new();
    // The upstream: Debian's docker-registry, holding an image docker built and pushed.
    let mut upstream = common::e2e::upstreams::docker_registry(None);
    let origin = format!("127.0.0.1:{}/cache/hello:v1", upstream.port);
    let context = write_context(&s, "FROM scratch\nCOPY hello.txt /hello.txt\nCMD [\"/hello\"]\n", &[("hello.txt", b"pulled through the cache\n")]);
    ok(docker(&s, &["build", "-t", &origin, context.to_str().unwrap()], None));
    ok(docker(&s, &["push", &origin], None));
    ok(docker(&s, &["rmi", &origin], None));

    let upstreams = serde_json::json!({
        "upstreams": [{"id": "registry", "url": upstream.url, "resilience": {"timeoutMs": 5000, "maxRetries": 1, "retryDelayMs": 100}}],
        "cache": {"defaultTtlSeconds": 2, "staleMaxAgeSeconds": 2}
    })
    .to_string();
    let mirror = start_https_worker(&[("OCI_UPSTREAMS", &upstreams)]);
    login_to(&s, &mirror.host);
    let image = format!("{}/cache/hello:v1", mirror.host);
    ok(docker(&s, &["pull", &image], None));
    assert_eq!(file_from_image(&s, &image, "/hello.txt"), b"pulled through the cache\n");

    // The upstream goes away and the tag's TTL runs out: docker still pulls from the cache.
    upstream.stop();
    std::thread::sleep(Duration::from_secs(5));
    ok(docker(&s, &["rmi", &image], None));
    ok(docker(&s, &["pull", &image], None));
    assert_eq!(file_from_image(&s, &image, "/hello.txt"), b"pulled through the cache\n");
}
