//! The application: configuration, platform and hooks, and the dispatch of a request to the
//! protocol (from the list in `crate::protocols`) whose root mount or base path it falls
//! under (longest base path first).

use std::rc::Rc;

use serde_json::json;

use crate::config::{Config, Protocol};
use crate::http::{Actor, Method, Request, Response};
use crate::platform::Platform;
use crate::protocols::ProtocolModule;
use crate::storage::hooks::ReadOnlyHook;
use crate::storage::{Storage, StorageHooks};
use crate::upstream::{StaticProvider, UpstreamProvider};

pub struct App {
    pub platform: Platform,
    pub config: Rc<Config>,
    pub hooks: Rc<Vec<Rc<dyn StorageHooks>>>,
    pub upstreams: Rc<dyn UpstreamProvider>,
}

impl App {
    pub fn new(platform: Platform, config: impl Into<Rc<Config>>) -> App {
        let config = config.into();
        let mut hooks: Vec<Rc<dyn StorageHooks>> = Vec::new();
        if config.read_only {
            hooks.push(Rc::new(ReadOnlyHook));
        }
        App {
            upstreams: Rc::new(StaticProvider(config.upstreams.clone())),
            platform,
            config,
            hooks: Rc::new(hooks),
        }
    }

    /// Replaces the static upstreams from `<PROTO>_UPSTREAMS` with a provider of your own.
    pub fn with_upstream_provider(mut self, provider: Rc<dyn UpstreamProvider>) -> App {
        self.upstreams = provider;
        self
    }

    /// Adds a storage hook (library users plug their own policy in here).
    pub fn with_hook(mut self, hook: Rc<dyn StorageHooks>) -> App {
        let mut hooks: Vec<_> = self.hooks.iter().cloned().collect();
        hooks.push(hook);
        self.hooks = Rc::new(hooks);
        self
    }

    pub fn storage(&self, protocol: Protocol, actor: &Actor) -> Storage {
        Storage::new(
            self.platform.store.clone(),
            self.hooks.clone(),
            protocol,
            actor.clone(),
            self.platform.now_ms(),
        )
        .with_edge(self.platform.edge.clone())
    }

    pub async fn handle(&self, req: Request) -> Response {
        let head = req.method == Method::Head;
        let edge_key = self.edge_key(&req);
        let kept = match &edge_key {
            Some(key) if head => match self.platform.edge.lookup(&head_key(key), req.header("if-none-match")).await {
                Some(hit) => Some(hit),
                None => self.platform.edge.lookup(key, req.header("if-none-match")).await,
            },
            Some(key) => self.platform.edge.lookup(key, req.header("if-none-match")).await,
            None => None,
        };
        let resp = match kept {
            // Whatever the pull-through cache said when the answer was kept, it is a hit now.
            Some(hit) if hit.headers.get("x-cache").is_some() => hit.with_header("X-Cache", "HIT").with_header("X-Edge-Cache", "HIT"),
            Some(hit) => hit.with_header("X-Edge-Cache", "HIT"),
            None => {
                let (before, own_before) = (self.platform.edge.generation(), self.platform.edge.own_purges());
                let mut resp = self.dispatch(req).await;
                let hint = resp.edge.take();
                // An answer read after this request's own writes is kept unless someone else
                // purged meanwhile: its own purges are counted as seen.
                let own = self.platform.edge.own_purges() - own_before;
                let generation = if hint.as_ref().is_some_and(|h| h.after_own_writes) { before + own } else { before };
                match (&edge_key, hint) {
                    (Some(key), Some(hint)) if resp.status == 200 && !head => self.platform.edge.keep(key, &hint, generation, resp).await,
                    // A HEAD's answer serves HEADs only (clients HEAD a tag before each pull).
                    (Some(key), Some(hint)) if resp.status == 200 => self.platform.edge.keep(&head_key(key), &hint, generation, resp.without_body()).await,
                    _ => resp,
                }
            }
        };
        // Nothing served here is meant to be sniffed into HTML or script by a browser.
        let resp = resp.with_header("X-Content-Type-Options", "nosniff");
        if head {
            resp.without_body()
        } else {
            resp
        }
    }

    /// The edge cache's key for a GET or HEAD whose caller may be given a kept answer (the
    /// protocol's `edge_reader` says), without a cookie, a range or a date to compare (ETags
    /// are compared). The answer depends on the URL (the origin is in links the answer
    /// holds) and on `Accept` (npm's abbreviated packuments, PyPI's HTML or JSON pages), so
    /// both are in it; never on who asks.
    fn edge_key(&self, req: &Request) -> Option<String> {
        if !self.config.edge_cache.any() || !req.method.is_read() {
            return None;
        }
        if ["cookie", "range", "if-modified-since"].iter().any(|h| req.header(h).is_some()) {
            return None;
        }
        let (module, _, rest) = self.locate(&req.path)?;
        if !module.edge_reader(self, req, rest) {
            return None;
        }
        // Decoded names and values, encoded again so that no two queries share a key.
        let part = |s: &str| percent_encoding::utf8_percent_encode(s, QUERY_PART).to_string();
        let query: Vec<String> = req.query.iter().map(|(k, v)| format!("{}={}", part(k), part(v))).collect();
        Some(format!("{}{}?{}\n{}", req.origin, req.path, query.join("&"), req.header("accept").unwrap_or("")))
    }

    /// The enabled protocol a path falls under, its base path and the rest of the path.
    /// Root mounts (OCI's `/v2`) come before base paths: clients call them at the host root.
    fn locate<'p>(&'p self, path: &'p str) -> Option<(&'static dyn ProtocolModule, &'p str, &'p str)> {
        let root_mounted = self.enabled().find(|m| m.root_mounts().iter().any(|mount| below(path, mount).is_some()));
        match root_mounted {
            Some(module) => Some((module, "", path)),
            None => self.route(path),
        }
    }

    async fn dispatch(&self, req: Request) -> Response {
        let path = req.path.clone();
        if path == "/-/health" {
            let enabled: Vec<&str> = self.enabled().map(|m| m.protocol().as_str()).collect();
            return Response::json(200, &json!({"status": "ok", "protocols": enabled}));
        }
        if path.starts_with("/-/admin/") {
            return crate::auth::admin::handle(self, req).await;
        }
        let Some((module, base, rest)) = self.locate(&path) else {
            return Response::json(404, &json!({"error": "Not Found"}));
        };
        let protocol = module.protocol().as_str();
        crate::error::finish(module.errors(), protocol, module.handle(self, req, base, rest).await)
    }

    /// The protocols of this build that the settings enable.
    pub fn enabled(&self) -> impl Iterator<Item = &'static dyn ProtocolModule> + '_ {
        crate::protocols::all().iter().copied().filter(|m| self.config.protocol(m.protocol()).enabled)
    }

    /// The enabled protocol whose base path is the longest prefix of `path`, its base path
    /// and the rest.
    fn route<'p>(&'p self, path: &'p str) -> Option<(&'static dyn ProtocolModule, &'p str, &'p str)> {
        self.enabled()
            .filter_map(|m| {
                let base = self.config.protocol(m.protocol()).base_path.as_str();
                below(path, base).map(|rest| (m, base, rest))
            })
            .max_by_key(|(_, base, _)| base.len())
    }
}

/// What separates the parts of a query in an edge cache key.
const QUERY_PART: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%').add(b'&').add(b'=').add(b'+');

/// Where the answer to a HEAD is kept: apart from the GET's, since it has no body.
fn head_key(key: &str) -> String {
    format!("HEAD {key}")
}

/// The rest of `path` when it is `mount` or below it (`/v2`, `/v2/…`; never `/v2x`).
fn below<'p>(path: &'p str, mount: &str) -> Option<&'p str> {
    path.strip_prefix(mount).filter(|rest| rest.is_empty() || rest.starts_with('/'))
}
