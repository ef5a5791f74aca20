//! The pull-through conformance suite (tests/common/pullthrough.rs) for every protocol that
//! mirrors an upstream: each protocol says how it hosts, asks for and purges a name, and
//! how the fake upstream serves it; the cases are the same for all.

mod common;

use common::pullthrough::{upstreams_json, Mirror};
use common::upstream::{Answer, FakeUpstream};
use common::*;
use edgeregistry::http::{Method, Request};
use serde_json::json;

// ---------------------------------------------------------------- npm

/// npm: the document is the packument (`GET /npm/{name}`), the blob the tarball of 1.0.0.
/// Generation `g` adds version `1.g.0` as `latest`.
struct NpmMirror {
    reg: Reg,
    up: FakeUpstream,
}

impl Mirror for NpmMirror {
    fn start(extra_resilience: &str) -> Self {
        let reg = Reg::with_vars(&[("NPM_UPSTREAMS", upstreams_json(extra_resilience).as_str())]);
        let up = FakeUpstream::install(&reg.mem);
        NpmMirror { reg, up }
    }

    fn reg(&self) -> &Reg {
        &self.reg
    }

    fn upstream(&self) -> &FakeUpstream {
        &self.up
    }

    fn upstream_serves(&self, name: &str, generation: u32) {
        let latest = format!("1.{generation}.0");
        let tgzs = [("1.0.0", tarball(name, "1.0.0")), (latest.as_str(), tarball(name, &latest))];
        let versions: Vec<(&str, &[u8])> = tgzs.iter().map(|(v, t)| (*v, t.as_slice())).collect();
        let doc = packument(name, &versions, common::pullthrough::UPSTREAM);
        let etag = format!("\"{}\"", sha256_hex(&json_body(&doc)));
        self.up.serve(&format!("/{name}"), Answer::json(200, &doc).with_header("ETag", &etag));
        for (v, t) in tgzs {
            self.up.serve(&format!("/{}", tarball_path(name, v)), Answer::bytes(200, "application/octet-stream", t));
        }
    }

    fn host(&self, name: &str) {
        let token = self.reg.user_with_token("host-owner");
        self.reg.publish_ok(&token, name, "0.1.0");
    }

    fn document_request(&self, name: &str) -> Request {
        Request::new(Method::Get, &format!("/npm/{name}"))
    }

    fn generation(&self, doc: &Resp) -> u32 {
        let latest = doc.json()["dist-tags"]["latest"].as_str().unwrap_or_default().to_string();
        latest.split('.').nth(1).and_then(|g| g.parse().ok()).unwrap_or_else(|| panic!("latest {latest:?}"))
    }

    fn blob_request(&self, name: &str) -> Request {
        Request::new(Method::Get, &format!("/npm/{}", tarball_path(name, "1.0.0")))
    }

    fn blob_bytes(&self, name: &str) -> Vec<u8> {
        tarball(name, "1.0.0")
    }

    fn document_path(&self, name: &str) -> String {
        format!("/{name}")
    }

    fn document_body_path(&self, name: &str, _generation: u32) -> String {
        self.document_path(name)
    }

    fn blob_path(&self, name: &str) -> String {
        format!("/{}", tarball_path(name, "1.0.0"))
    }

    fn purge_path(&self, name: &str) -> String {
        format!("/-/admin/cache/npm/{name}")
    }

    fn blob_cached(&self, name: &str) -> bool {
        !self.reg.keys_with(&format!("npm/cache/{name}/-/")).is_empty()
    }

    fn cached(&self, name: &str) -> Vec<String> {
        self.reg.keys_with(&format!("npm/cache/{name}/"))
    }

    fn passthrough(&self) -> Option<(Request, String)> {
        let path = "/-/npm/v1/security/advisories/bulk";
        let req = Request::new(Method::Post, &format!("/npm{path}"))
            .with_header("Content-Type", "application/json")
            .with_body(json!({"lodash": ["4.17.20"]}).to_string());
        Some((req, path.to_string()))
    }
}

// ---------------------------------------------------------------- OCI

/// OCI: the document is the manifest tagged `latest` (asked upstream with a HEAD, then
/// fetched by digest), the blob its layer. Generation `g` is an annotation of the manifest.
struct OciMirror {
    reg: Reg,
    up: FakeUpstream,
    token: String,
}

impl OciMirror {
    fn manifest(&self, name: &str, generation: u32) -> Vec<u8> {
        let (config, _) = image_parts(name);
        let mut m = image_manifest(&config, &[&self.blob_bytes(name)]);
        m["annotations"] = json!({"generation": generation.to_string()});
        json_body(&m)
    }

    fn layer_digest(&self, name: &str) -> String {
        oci_digest(&self.blob_bytes(name))
    }
}

impl Mirror for OciMirror {
    fn start(extra_resilience: &str) -> Self {
        let reg = Reg::oci(&[("OCI_UPSTREAMS", upstreams_json(extra_resilience).as_str())]);
        let up = FakeUpstream::install(&reg.mem);
        let token = reg.user_with_token("dev");
        OciMirror { reg, up, token }
    }

    fn reg(&self) -> &Reg {
        &self.reg
    }

    fn upstream(&self) -> &FakeUpstream {
        &self.up
    }

    fn upstream_serves(&self, name: &str, generation: u32) {
        let manifest = self.manifest(name, generation);
        let digest = oci_digest(&manifest);
        let answer = Answer::bytes(200, OCI_MANIFEST, manifest).with_header("Docker-Content-Digest", &digest);
        self.up.serve(&format!("/v2/{name}/manifests/latest"), answer.clone());
        self.up.serve(&format!("/v2/{name}/manifests/{digest}"), answer);
        let layer = Answer::bytes(200, "application/octet-stream", self.blob_bytes(name)).with_header("Docker-Content-Digest", &self.layer_digest(name));
        self.up.serve(&self.blob_path(name), layer);
    }

    fn host(&self, name: &str) {
        self.reg.push_image(&self.token, name, "latest", "hosted");
    }

    fn document_request(&self, name: &str) -> Request {
        oci(Method::Get, &format!("/v2/{name}/manifests/latest"), &self.token)
    }

    fn generation(&self, doc: &Resp) -> u32 {
        let g = doc.json()["annotations"]["generation"].as_str().unwrap_or_default().to_string();
        g.parse().unwrap_or_else(|_| panic!("generation {g:?}"))
    }

    fn blob_request(&self, name: &str) -> Request {
        oci(Method::Get, &format!("/v2/{name}/blobs/{}", self.layer_digest(name)), &self.token)
    }

    /// Past one 64 KiB piece, so chunk boundaries are crossed.
    fn blob_bytes(&self, name: &str) -> Vec<u8> {
        pseudo_random(100_000, name.bytes().map(u64::from).sum())
    }

    fn document_path(&self, name: &str) -> String {
        format!("/v2/{name}/manifests/latest")
    }

    fn document_body_path(&self, name: &str, generation: u32) -> String {
        format!("/v2/{name}/manifests/{}", oci_digest(&self.manifest(name, generation)))
    }

    fn blob_path(&self, name: &str) -> String {
        format!("/v2/{name}/blobs/{}", self.layer_digest(name))
    }

    fn purge_path(&self, name: &str) -> String {
        format!("/-/admin/cache/oci/{name}")
    }

    fn blob_cached(&self, name: &str) -> bool {
        let hex = sha256_hex(&self.blob_bytes(name));
        self.reg.keys_with("oci/cache/blobs/").iter().any(|k| k.contains(&hex))
    }

    fn cached(&self, name: &str) -> Vec<String> {
        let mine = format!("/{name}/");
        self.reg.keys_with("oci/cache/").into_iter().filter(|k| !k.starts_with("oci/cache/blobs/") && k.contains(&mine)).collect()
    }

    fn passthrough(&self) -> Option<(Request, String)> {
        None
    }
}

// ---------------------------------------------------------------- PyPI

/// PyPI: the document is the project page (`GET /pypi/simple/{name}/`), the blob the sdist
/// of 1.0.0 at the URL the rewritten page gives. Generation `g` adds the sdist of `1.g.0`.
/// `HTML`: the upstream serves only PEP 503 HTML (pypiserver) and the client asks for HTML;
/// otherwise PEP 691 JSON both ways (pypi.org, pip ≥ 22.2, uv).
struct PypiMirror<const HTML: bool> {
    reg: Reg,
    up: FakeUpstream,
}

impl<const HTML: bool> PypiMirror<HTML> {
    fn sdist(name: &str, version: &str) -> Vec<u8> {
        let mut bytes = pseudo_random(100_000, name.bytes().map(u64::from).sum());
        bytes.extend_from_slice(version.as_bytes());
        bytes
    }

    fn file(name: &str, version: &str) -> edgeregistry::pypi::rewrite::FileEntry {
        let filename = format!("{name}-{version}.tar.gz");
        edgeregistry::pypi::rewrite::FileEntry {
            url: format!("{}/packages/{filename}", common::pullthrough::UPSTREAM),
            hashes: [("sha256".to_string(), sha256_hex(&Self::sdist(name, version)))].into(),
            filename,
            ..Default::default()
        }
    }
}

impl<const HTML: bool> Mirror for PypiMirror<HTML> {
    fn start(extra_resilience: &str) -> Self {
        let reg = Reg::with_vars(&[("PYPI_UPSTREAMS", upstreams_json(extra_resilience).as_str())]);
        let up = FakeUpstream::install(&reg.mem);
        PypiMirror { reg, up }
    }

    fn reg(&self) -> &Reg {
        &self.reg
    }

    fn upstream(&self) -> &FakeUpstream {
        &self.up
    }

    fn upstream_serves(&self, name: &str, generation: u32) {
        let latest = format!("1.{generation}.0");
        let files: Vec<_> = ["1.0.0", latest.as_str()].iter().map(|v| Self::file(name, v)).collect();
        let answer = if HTML {
            let anchors: String = files.iter().map(|f| format!("<a href=\"../../packages/{0}#sha256={1}\">{0}</a>\n", f.filename, f.hashes["sha256"])).collect();
            Answer::bytes(200, "text/html", format!("<!DOCTYPE html><html><body>\n{anchors}</body></html>\n").into_bytes())
        } else {
            Answer::json(200, &json!({"meta": {"api-version": "1.1"}, "name": name, "files": files, "versions": ["1.0.0", latest]}))
        };
        let etag = format!("\"{}\"", sha256_hex(&answer.body));
        self.up.serve(&self.document_path(name), answer.with_header("ETag", &etag));
        for v in ["1.0.0", latest.as_str()] {
            self.up.serve(&format!("/packages/{name}-{v}.tar.gz"), Answer::bytes(200, "application/octet-stream", Self::sdist(name, v)));
        }
    }

    /// Uploads an sdist of the name with twine's fields.
    fn host(&self, name: &str) {
        self.reg.host_pypi_project(name);
    }

    fn document_request(&self, name: &str) -> Request {
        let accept = if HTML { "text/html" } else { "application/vnd.pypi.simple.v1+json" };
        Request::new(Method::Get, &format!("/pypi/simple/{name}/")).with_header("Accept", accept)
    }

    fn generation(&self, doc: &Resp) -> u32 {
        let body = String::from_utf8_lossy(&doc.body);
        (1..100).rev().find(|g| body.contains(&format!("-1.{g}.0.tar.gz"))).unwrap_or_else(|| panic!("no generation in {body}"))
    }

    /// The link the rewritten page gives (built by the same function the rewriter uses: the
    /// blob is asked for before any page in some cases).
    fn blob_request(&self, name: &str) -> Request {
        let url = edgeregistry::pypi::proxy::file_url("http://localhost/pypi", name, &Self::file(name, "1.0.0")).unwrap();
        Request::new(Method::Get, url.strip_prefix("http://localhost").unwrap())
    }

    fn blob_bytes(&self, name: &str) -> Vec<u8> {
        Self::sdist(name, "1.0.0")
    }

    fn document_path(&self, name: &str) -> String {
        format!("/{name}/")
    }

    fn document_body_path(&self, name: &str, _generation: u32) -> String {
        self.document_path(name)
    }

    fn blob_path(&self, name: &str) -> String {
        format!("/packages/{name}-1.0.0.tar.gz")
    }

    fn purge_path(&self, name: &str) -> String {
        format!("/-/admin/cache/pypi/{name}")
    }

    fn blob_cached(&self, name: &str) -> bool {
        let key = edgeregistry::pypi::proxy::file_key(&sha256_hex(&self.blob_bytes(name)));
        !self.reg.keys_with(key.as_str()).is_empty()
    }

    fn cached(&self, name: &str) -> Vec<String> {
        self.reg.keys_with(&edgeregistry::pypi::proxy::cache_prefix(name))
    }

    fn passthrough(&self) -> Option<(Request, String)> {
        None
    }
}

// ---------------------------------------------------------------- Cargo

/// Cargo: the document is the sparse index file (`GET /cargo/{index path}`), the blob the
/// `.crate` of 1.0.0 from the `dl` of the upstream's `config.json` (here without markers:
/// `{dl}/{crate}/{version}/download`). Generation `g` adds the line of `1.g.0`. The line of
/// 1.0.0 is the longest, so a body cut in half ends inside a line (natively only the content
/// tells a cut body; the Worker's fetch also fails one shorter than its Content-Length).
/// Requests go through the small router of tests/common/cargo_proxy.rs until the Cargo
/// module routes them.
struct CargoMirror {
    reg: Reg,
    up: FakeUpstream,
}

impl Mirror for CargoMirror {
    fn start(extra_resilience: &str) -> Self {
        let reg = Reg::with_vars(&[("CARGO_UPSTREAMS", upstreams_json(extra_resilience).as_str())]);
        let up = FakeUpstream::install(&reg.mem);
        common::cargo_proxy::serve_config(&up, &format!("{}/dl", common::pullthrough::UPSTREAM));
        CargoMirror { reg, up }
    }

    fn reg(&self) -> &Reg {
        &self.reg
    }

    fn upstream(&self) -> &FakeUpstream {
        &self.up
    }

    fn upstream_serves(&self, name: &str, generation: u32) {
        use common::cargo_proxy::{crate_bytes, index_line, serve_index};
        let latest = format!("1.{generation}.0");
        let first = crate_bytes(name, "1.0.0");
        let mut long: serde_json::Value = serde_json::from_str(&index_line(name, "1.0.0", &first)).unwrap();
        long["features"] = json!({"default": ["std", "alloc"], "std": ["alloc"], "alloc": []});
        long["rust_version"] = json!("1.60");
        serve_index(&self.up, name, &[long.to_string(), index_line(name, &latest, &crate_bytes(name, &latest))]);
        for v in ["1.0.0", latest.as_str()] {
            self.up.serve(&format!("/dl/{name}/{v}/download"), Answer::bytes(200, "application/octet-stream", crate_bytes(name, v)));
        }
    }

    /// Publishes 0.1.0 of the name with a token whose scope names it.
    fn host(&self, name: &str) {
        self.reg.host_crate(name);
    }

    fn document_request(&self, name: &str) -> Request {
        Request::new(Method::Get, &format!("/cargo/{}", common::cargo_proxy::index_path(name)))
    }

    fn generation(&self, doc: &Resp) -> u32 {
        let text = doc.text();
        let minors = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["vers"].as_str().unwrap().to_string());
        minors.filter_map(|v| v.split('.').nth(1).and_then(|m| m.parse().ok())).max().unwrap_or_else(|| panic!("no generation in {text}"))
    }

    fn blob_request(&self, name: &str) -> Request {
        Request::new(Method::Get, &format!("/cargo/api/v1/crates/{name}/1.0.0/download"))
    }

    fn blob_bytes(&self, name: &str) -> Vec<u8> {
        common::cargo_proxy::crate_bytes(name, "1.0.0")
    }

    fn document_path(&self, name: &str) -> String {
        format!("/{}", common::cargo_proxy::index_path(name))
    }

    fn document_body_path(&self, name: &str, _generation: u32) -> String {
        self.document_path(name)
    }

    fn blob_path(&self, name: &str) -> String {
        format!("/dl/{name}/1.0.0/download")
    }

    fn purge_path(&self, name: &str) -> String {
        format!("/-/admin/cache/cargo/{name}")
    }

    fn blob_cached(&self, name: &str) -> bool {
        let key = edgeregistry::cargo::proxy::crate_key(&sha256_hex(&self.blob_bytes(name)));
        !self.reg.keys_with(key.as_str()).is_empty()
    }

    fn cached(&self, name: &str) -> Vec<String> {
        self.reg.keys_with(&edgeregistry::cargo::proxy::cache_prefix(&edgeregistry::cargo::names::CrateName::parse(name).unwrap()))
    }

    fn passthrough(&self) -> Option<(Request, String)> {
        None
    }
}

conformance!(npm, NpmMirror);
conformance!(pypi_json, PypiMirror<false>);
conformance!(pypi_html, PypiMirror<true>);
conformance!(oci_mirror, OciMirror);
conformance!(cargo, CargoMirror);
