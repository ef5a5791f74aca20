//! Cargo's pull-through functions (`edgeregistry::cargo::proxy`) behind a small router until
//! the Cargo module routes them: index files at cargo's paths under `/cargo/`, downloads at
//! `/cargo/api/v1/crates/{crate}/{version}/download`, the admin purge under
//! `/-/admin/cache/cargo/{name}`; hosted crates are a set the test fills (each gets a
//! one-line hosted index file and no downloads). Everything else goes to the registry. Also
//! what a sparse-registry upstream serves: index lines, `.crate` bytes, `config.json`.

use std::cell::RefCell;
use std::collections::BTreeSet;

use edgeregistry::cargo::names::{name_from_index_path, CrateName};
use edgeregistry::cargo::proxy;
use edgeregistry::error::Error;
use edgeregistry::http::{Method, Request, Response};
use edgeregistry::App;
use serde_json::json;

use super::upstream::{Answer, FakeUpstream};
use super::{pseudo_random, sha256_hex, Reg, Resp, ADMIN_TOKEN};

/// The crates "hosted" here (canonical names: every spelling of one is hosted).
#[derive(Default)]
pub struct Hosted(pub RefCell<BTreeSet<String>>);

impl Hosted {
    pub fn add(&self, name: &str) {
        self.0.borrow_mut().insert(CrateName::parse(name).expect("valid crate name").canonical());
    }

    pub fn has(&self, name: &CrateName) -> bool {
        self.0.borrow().contains(&name.canonical())
    }
}

/// An error in cargo's shape (the Cargo book, "Registry Web API": `{"errors":[{"detail"}]}`).
fn render(e: Error) -> Response {
    let body = Response::json(e.status(), &json!({"errors": [{"detail": e.public_detail()}]}));
    e.decorate(body)
}

fn not_found() -> Response {
    render(Error::not_found("not found"))
}

/// Answers `req` as the Cargo module will.
pub async fn route(app: &App, hosted: &Hosted, req: Request) -> Response {
    let path = req.path.clone();
    if let Some(rest) = path.strip_prefix("/cargo/api/v1/crates/") {
        let parts: Vec<&str> = rest.split('/').collect();
        let [name, version, "download"] = parts.as_slice() else { return not_found() };
        let Some(name) = CrateName::parse(name) else { return not_found() };
        // Hosted first, as the Cargo module's download route: a hosted crate's versions are
        // its own (none here).
        if hosted.has(&name) {
            return not_found();
        }
        return match proxy::download(app, &req, &name, version).await {
            Ok(Some(r)) => r,
            Ok(None) => not_found(),
            Err(e) => render(e),
        };
    }
    if let Some(name) = path.strip_prefix("/cargo/").and_then(name_from_index_path) {
        if hosted.has(&name) {
            return Response::bytes(200, "text/plain", format!("{}\n", index_line(name.as_str(), "0.1.0", b"hosted")).into_bytes());
        }
        return match proxy::index_file(app, &req, &name).await {
            Ok(Some(r)) => r,
            Ok(None) => not_found(),
            Err(e) => render(e),
        };
    }
    if let (Method::Delete, Some(name)) = (req.method, path.strip_prefix("/-/admin/cache/cargo/")) {
        if req.header("authorization") != Some(format!("Bearer {ADMIN_TOKEN}").as_str()) {
            return render(Error::denied("admin only"));
        }
        return match proxy::purge_cache(app, name).await {
            Ok(n) => Response::json(200, &json!({"purged": n})),
            Err(e) => render(e),
        };
    }
    app.handle(req).await
}

/// Sends the requests at once through [`route`], as `Reg::answer_all` does through the app.
pub fn answer_all(reg: &Reg, hosted: &Hosted, reqs: Vec<Request>) -> Vec<(Resp, f64)> {
    use edgeregistry::platform::Clock;
    let clock = reg.mem.clock.clone();
    let start = clock.now_ms();
    let timed = reqs.into_iter().map(|req| {
        let clock = clock.clone();
        async move {
            let resp = route(&reg.app, hosted, req).await;
            let (status, headers) = (resp.status, resp.headers.clone());
            let resp = Resp { status, headers, body: resp.into_bytes().await };
            (resp, clock.now_ms() - start)
        }
    });
    reg.mem.background.run(futures::future::join_all(timed)).expect("a request waits for something no timer will bring")
}

/// One request through [`route`], then the background work it left.
pub fn send(reg: &Reg, hosted: &Hosted, req: Request) -> Resp {
    let resp = answer_all(reg, hosted, vec![req]).remove(0).0;
    reg.settle();
    resp
}

// ---------------------------------------------------------------- the upstream's side

/// The `.crate` bytes of a version (past one 64 KiB piece, so chunk boundaries are crossed).
pub fn crate_bytes(name: &str, version: &str) -> Vec<u8> {
    let mut bytes = pseudo_random(100_000, name.bytes().map(u64::from).sum());
    bytes.extend_from_slice(version.as_bytes());
    bytes
}

/// An index line (the Cargo book, "Registry Index") for a version whose `.crate` is `bytes`.
pub fn index_line(name: &str, version: &str, bytes: &[u8]) -> String {
    json!({"name": name, "vers": version, "deps": [], "cksum": sha256_hex(bytes), "features": {}, "yanked": false}).to_string()
}

/// The index path of a crate name (the Cargo book, "Registry Index", index files).
pub fn index_path(name: &str) -> String {
    CrateName::parse(name).expect("valid crate name").index_path()
}

/// Serves an upstream's `config.json` with this `dl`.
pub fn serve_config(up: &FakeUpstream, dl: &str) {
    up.serve("/config.json", Answer::json(200, &json!({"dl": dl, "api": "https://api.example"})));
}

/// Serves the index file of `name` with `lines` (an ETag of its bytes) at `/{index path}`.
pub fn serve_index(up: &FakeUpstream, name: &str, lines: &[String]) {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let etag = format!("\"{}\"", sha256_hex(body.as_bytes()));
    up.serve(&format!("/{}", index_path(name)), Answer::bytes(200, "text/plain", body.into_bytes()).with_header("ETag", &etag));
}
