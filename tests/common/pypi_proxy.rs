//! A small router for PyPI's pull-through functions (`edgeregistry::pypi::proxy`) until the
//! PyPI module routes them: project pages under `/pypi/simple/{project}/`, proxied files
//! under `/pypi/files/…`, the admin purge under `/-/admin/cache/pypi/{name}`; hosted
//! projects are a set the test fills (each gets a one-line hosted page). Everything else
//! goes to the registry.

use std::cell::RefCell;
use std::collections::BTreeSet;

use edgeregistry::config::Protocol;
use edgeregistry::error::Error;
use edgeregistry::http::{Method, Request, Response};
use edgeregistry::pypi::proxy;
use edgeregistry::App;
use serde_json::json;

use super::{Reg, Resp, ADMIN_TOKEN};

pub const JSON: &str = "application/vnd.pypi.simple.v1+json";
pub const HTML: &str = "text/html";

/// The projects "hosted" here.
#[derive(Default)]
pub struct Hosted(pub RefCell<BTreeSet<String>>);

impl Hosted {
    pub fn add(&self, project: &str) {
        self.0.borrow_mut().insert(project.to_string());
    }

    fn has(&self, project: &str) -> bool {
        self.0.borrow().contains(project)
    }
}

fn render(e: Error) -> Response {
    let body = Response::json(e.status(), &json!({"error": e.public_detail()}));
    e.decorate(body)
}

/// Answers `req` as the PyPI module will.
pub async fn route(app: &App, hosted: &Hosted, req: Request) -> Response {
    let registry_url = app.config.registry_url(Protocol::Pypi, &req.origin);
    let path = req.path.clone();
    if let Some(project) = path.strip_prefix("/pypi/simple/").map(|p| p.trim_end_matches('/')) {
        let media = if req.header("accept").is_some_and(|a| a.contains("json")) { JSON } else { HTML };
        let is_hosted = async |p: &str| Ok(hosted.has(p));
        return match proxy::project_page(app, &req, &registry_url, project, media, is_hosted).await {
            Ok(Some(r)) => r,
            Ok(None) if hosted.has(project) => Response::bytes(200, HTML, format!("<html><body>hosted {project}</body></html>").into_bytes()),
            Ok(None) => render(Error::not_found("Not Found")),
            Err(e) => render(e),
        };
    }
    if let Some(rest) = path.strip_prefix("/pypi/files/") {
        let is_hosted = async |p: &str| Ok(hosted.has(p));
        return proxy::file(app, &req, rest, is_hosted).await.unwrap_or_else(render);
    }
    if let (Method::Delete, Some(name)) = (req.method, path.strip_prefix("/-/admin/cache/pypi/")) {
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
