//! Shared helpers for the native integration tests: an `App` over `MemoryPlatform`, request
//! building, response reading, users and tokens through the admin API, and npm publish bodies
//! with real gzipped tarballs.
#![allow(dead_code)]

pub mod builders;
pub mod cargo_proxy;
#[cfg(feature = "e2e")]
pub mod e2e;
pub mod pullthrough;
pub mod upstream;

pub use builders::*;

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine;
use edgeregistry::config::Config;
use edgeregistry::http::{Method, Request, Response};
use edgeregistry::platform::memory::MemoryPlatform;
use edgeregistry::platform::{Clock, KvStore};
use edgeregistry::storage::StorageHooks;
use edgeregistry::App;
use futures::executor::block_on;
use serde_json::{json, Value};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
pub const PASSWORD: &str = "correct-horse-battery";

/// The registry under test and handles to its in-memory backends.
pub struct Reg {
    pub mem: MemoryPlatform,
    pub app: App,
}

/// Test configuration: an admin token and cheap password hashing, plus `extra`.
pub fn vars(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut v: BTreeMap<String, String> = [("ADMIN_TOKEN", ADMIN_TOKEN), ("PASSWORD_ITERATIONS", "1000")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, val) in extra {
        v.insert(k.to_string(), val.to_string());
    }
    v
}

impl Reg {
    pub fn new() -> Reg {
        Reg::with_vars(&[])
    }

    pub fn with_vars(extra: &[(&str, &str)]) -> Reg {
        let mem = MemoryPlatform::new();
        let config = Config::from_vars(&vars(extra)).expect("valid test config");
        let app = App::new(mem.platform.clone(), config);
        Reg { mem, app }
    }

    pub fn with_hook(self, hook: Rc<dyn StorageHooks>) -> Reg {
        Reg { mem: self.mem, app: self.app.with_hook(hook) }
    }

    /// Sends a request, then runs the background work it left (as `wait_until` would); work
    /// the response waits for (a gated body's cache fill) runs while it is read.
    pub fn send(&self, req: Request) -> Resp {
        let (resp, _) = self.answer(req);
        self.settle();
        resp
    }

    /// Sends a request and reads its response, with the background work running alongside;
    /// also how long (on the platform's clock) it took. Background work unfinished then goes
    /// on at the next request or [`Reg::settle`].
    pub fn answer(&self, req: Request) -> (Resp, f64) {
        self.answer_all(vec![req]).remove(0)
    }

    /// Sends the requests at once; each response with how long it took.
    pub fn answer_all(&self, reqs: Vec<Request>) -> Vec<(Resp, f64)> {
        let clock = self.mem.clock.clone();
        let start = clock.now_ms();
        let timed = reqs.into_iter().map(|req| {
            let clock = clock.clone();
            async move {
                let resp = send_async(&self.app, req).await;
                (resp, clock.now_ms() - start)
            }
        });
        self.mem.background.run(futures::future::join_all(timed)).expect("a request waits for something no timer will bring")
    }

    /// Lets the background work finish, the clock moving as its timers say (what waits for
    /// something no timer brings, a hung upstream's answer, stays queued).
    pub fn settle(&self) {
        self.mem.background.run_all();
    }

    /// Every object key under `prefix`.
    pub fn keys_with(&self, prefix: &str) -> Vec<String> {
        self.mem.store.keys().into_iter().filter(|k| k.starts_with(prefix)).collect()
    }

    /// Objects belonging to an npm package: packument, tarballs and its search marker.
    pub fn package_keys(&self, name: &str) -> Vec<String> {
        let dir = format!("npm/packages/{name}/");
        let marker = format!("npm/search/{name}");
        self.mem.store.keys().into_iter().filter(|k| k.starts_with(&dir) || *k == marker).collect()
    }

    /// Every KV entry as (key, value), through the `KvStore` trait.
    pub fn kv_entries(&self) -> Vec<(String, String)> {
        block_on(async {
            let (keys, _) = self.mem.kv.list("", None).await.unwrap();
            let mut out = Vec::new();
            for k in keys {
                let v = self.mem.kv.get(&k).await.unwrap().unwrap_or_default();
                out.push((k, v));
            }
            out
        })
    }

    /// Creates a user through the admin API.
    pub fn create_user(&self, name: &str) {
        let r = self.send(admin(Method::Post, "/-/admin/users").with_body(json_body(&user_body(name, PASSWORD))));
        assert_eq!(r.status, 201, "create user {name}: {r:?}");
    }

    /// Makes a token through the admin API; `body` is merged into `{user}`.
    pub fn create_token(&self, user: &str, body: Value) -> String {
        let r = self.send(admin(Method::Post, "/-/admin/tokens").with_body(json_body(&token_body(user, body))));
        assert_eq!(r.status, 201, "create token for {user}: {r:?}");
        r.json()["token"].as_str().expect("token in response").to_string()
    }

    /// A user with a full-rights token: the usual publisher in tests.
    pub fn user_with_token(&self, name: &str) -> String {
        self.create_user(name);
        self.create_token(name, json!({}))
    }

    /// Uploads an sdist of PyPI project `name` 0.1.0 as twine does, asserting success: the
    /// project is hosted from then on.
    pub fn host_pypi_project(&self, name: &str) {
        self.create_user("host-owner");
        let token = self.create_token("host-owner", json!({"protocol": "pypi"}));
        self.upload_pypi_sdist(&token, name, "0.1.0");
    }

    /// Uploads an sdist of `name` `version` as twine does with `token`, asserting success.
    pub fn upload_pypi_sdist(&self, token: &str, name: &str, version: &str) {
        let (filename, bytes) = sdist(name, version);
        let boundary = "hosting-boundary";
        let body = multipart_form(boundary, &pypi_upload_fields(name, version, &filename, &bytes), Some(("content", &filename, &bytes)));
        let req = basic(Request::new(Method::Post, "/pypi/"), "__token__", token)
            .with_header("Content-Type", &format!("multipart/form-data; boundary={boundary}"))
            .with_body(body);
        let r = self.send(req);
        assert_eq!(r.status, 200, "hosted upload of {name} {version}: {r:?}");
    }

    /// Publishes crate `name` 0.1.0 as cargo does, asserting success, with a token whose
    /// scope names the crate (an admin's grant, which may claim a name an upstream has).
    pub fn host_crate(&self, name: &str) {
        self.create_user("host-owner");
        let token = self.create_token("host-owner", json!({"protocol": "cargo", "scopes": [format!("cargo:crate:{name}:write")]}));
        self.publish_crate(&token, name, "0.1.0");
    }

    /// Publishes crate `name` `version` as cargo does with `token`, asserting success.
    pub fn publish_crate(&self, token: &str, name: &str, version: &str) {
        let krate = crate_file(name, version, 100);
        let body = cargo_publish_body(&cargo_metadata(name, version, json!({})), &krate);
        let req = Request::new(Method::Put, "/cargo/api/v1/crates/new")
            .with_header("Authorization", token)
            .with_header("Content-Length", &body.len().to_string())
            .with_body(body);
        let r = self.send(req);
        assert_eq!(r.status, 200, "hosted publish of {name} {version}: {r:?}");
    }

    /// Publishes `name@version` (path built from the name as-is), asserting success.
    pub fn publish_ok(&self, token: &str, name: &str, version: &str) -> Vec<u8> {
        let tgz = tarball(name, version);
        let r = self.send(put_json(&format!("/npm/{name}"), token, &publish_body(name, version, &tgz)));
        assert_eq!(r.status, 201, "publish {name}@{version}: {r:?}");
        tgz
    }

    pub fn get_json(&self, path: &str) -> Value {
        let r = self.send(Request::new(Method::Get, path));
        assert_eq!(r.status, 200, "GET {path}: {r:?}");
        r.json()
    }
}

pub async fn send_async(app: &App, req: Request) -> Resp {
    let resp: Response = app.handle(req).await;
    let (status, headers) = (resp.status, resp.headers.clone());
    Resp { status, headers, body: resp.into_bytes().await }
}

pub fn bearer(req: Request, token: &str) -> Request {
    req.with_header("Authorization", &format!("Bearer {token}"))
}

/// A request carrying the admin token.
pub fn admin(method: Method, path: &str) -> Request {
    bearer(Request::new(method, path), ADMIN_TOKEN)
}

pub fn get(path: &str, token: &str) -> Request {
    bearer(Request::new(Method::Get, path), token)
}

pub fn put_json(path: &str, token: &str, body: &Value) -> Request {
    bearer(Request::new(Method::Put, path), token)
        .with_header("Content-Type", "application/json")
        .with_body(json_body(body))
}

// ---------------------------------------------------------------- OCI

pub const JWT_SECRET: &str = "native-oci-jwt-secret-0123456789";

impl Reg {
    /// A registry with OCI tokens enabled (`JWT_SECRET`), plus `extra`.
    pub fn oci(extra: &[(&str, &str)]) -> Reg {
        let mut all = vec![("JWT_SECRET", JWT_SECRET)];
        all.extend_from_slice(extra);
        Reg::with_vars(&all)
    }

    /// Monolithic `POST ?digest=` of `data` into `repo`, asserting 201; returns the digest.
    pub fn push_blob(&self, token: &str, repo: &str, data: &[u8]) -> String {
        let digest = oci_digest(data);
        let r = self.send(
            bearer(Request::new(Method::Post, &format!("/v2/{repo}/blobs/uploads/?digest={digest}")), token)
                .with_header("Content-Type", "application/octet-stream")
                .with_body(data.to_vec()),
        );
        assert_eq!(r.status, 201, "push blob to {repo}: {r:?}");
        digest
    }

    /// `PUT /v2/{repo}/manifests/{reference}` with the exact `body` bytes.
    pub fn put_manifest(&self, token: &str, repo: &str, reference: &str, content_type: Option<&str>, body: &[u8]) -> Resp {
        let mut req = bearer(Request::new(Method::Put, &format!("/v2/{repo}/manifests/{reference}")), token);
        if let Some(ct) = content_type {
            req = req.with_header("Content-Type", ct);
        }
        self.send(req.with_body(body.to_vec()))
    }

    /// Pushes a config blob and one layer blob, then an image manifest under `reference`,
    /// asserting success; returns the manifest bytes and digest.
    pub fn push_image(&self, token: &str, repo: &str, reference: &str, seed: &str) -> (Vec<u8>, String) {
        let (config, layer) = image_parts(seed);
        self.push_blob(token, repo, &config);
        self.push_blob(token, repo, &layer);
        let body = json_body(&image_manifest(&config, &[&layer]));
        let r = self.put_manifest(token, repo, reference, Some(OCI_MANIFEST), &body);
        assert_eq!(r.status, 201, "push image {repo}:{reference}: {r:?}");
        (body.clone(), oci_digest(&body))
    }

    /// Calls the Docker token endpoint at the host root with optional Basic credentials.
    pub fn docker_token(&self, creds: Option<(&str, &str)>, scopes: &[&str]) -> Resp {
        let mut path = "/v2/token?service=edgeregistry".to_string();
        for s in scopes {
            path.push_str(&format!("&scope={s}"));
        }
        let mut req = Request::new(Method::Get, &path);
        if let Some((u, p)) = creds {
            req = basic(req, u, p);
        }
        self.send(req)
    }

    /// A JWT from the token endpoint for `user` (password login) with `scopes`.
    pub fn jwt_for(&self, user: &str, scopes: &[&str]) -> String {
        let r = self.docker_token(Some((user, PASSWORD)), scopes);
        assert_eq!(r.status, 200, "token for {user}: {r:?}");
        r.json()["token"].as_str().expect("token").to_string()
    }

    /// Every object key of the OCI layout (blobs, links, manifests, tags, uploads, …).
    pub fn oci_keys(&self) -> Vec<String> {
        self.keys_with("oci/")
    }
}

/// Finishes an upload at `location` with its last bytes and `?digest=`.
pub fn finish_upload(reg: &Reg, token: &str, location: &str, digest: &str, data: &[u8]) -> Resp {
    let req = oci(Method::Put, &format!("{location}?digest={digest}"), token).with_header("Content-Length", &data.len().to_string());
    reg.send(req.with_body(data.to_vec()))
}

pub fn get_blob(reg: &Reg, token: &str, repo: &str, digest: &str) -> Resp {
    reg.send(oci(Method::Get, &format!("/v2/{repo}/blobs/{digest}"), token))
}

/// No temporary chunk object, open multipart upload or upload session is left.
pub fn assert_no_upload_leftovers(reg: &Reg) {
    assert_eq!(reg.keys_with("oci/uploads/"), Vec::<String>::new(), "temporary chunks left");
    assert_eq!(reg.mem.store.open_uploads(), 0, "multipart upload left open");
    assert!(reg.mem.sessions.is_empty(), "upload session left");
}

pub fn basic(req: Request, user: &str, password: &str) -> Request {
    req.with_header("Authorization", &format!("Basic {}", b64(format!("{user}:{password}").as_bytes())))
}

/// A request with a Bearer token (any OCI method).
pub fn oci(method: Method, path: &str, token: &str) -> Request {
    bearer(Request::new(method, path), token)
}

/// The claims of a JWT, read without checking it (tests inspect what the endpoint granted).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Asserts an OCI error: the status, and a body `{"errors":[{"code","message","detail"}, …]}`
/// whose first code is `code`.
pub fn assert_oci_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_oci_error_shape(r);
    assert_eq!(r.json()["errors"][0]["code"], code, "{r:?}");
}

/// The OCI error body shape, whatever the code.
pub fn assert_oci_error_shape(r: &Resp) {
    assert!(
        r.header("Content-Type").is_some_and(|c| c.starts_with("application/json")),
        "error without a JSON content type: {:?}",
        r.header("Content-Type")
    );
    let doc = r.json();
    let obj = doc.as_object().unwrap_or_else(|| panic!("error body is not an object: {r:?}"));
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["errors"], "{r:?}");
    let errors = doc["errors"].as_array().unwrap_or_else(|| panic!("errors is not an array: {r:?}"));
    assert!(!errors.is_empty(), "{r:?}");
    for e in errors {
        let code = e["code"].as_str().unwrap_or_else(|| panic!("code is not a string: {r:?}"));
        assert!(!code.is_empty() && code.bytes().all(|c| c.is_ascii_uppercase() || c == b'_'), "bad code {code:?}");
        assert!(e["message"].is_string(), "message is not a string: {r:?}");
        assert!(e.as_object().unwrap().contains_key("detail"), "no detail field: {r:?}");
    }
}
