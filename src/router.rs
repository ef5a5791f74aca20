//! The application: configuration, platform and hooks, and the dispatch of a request to the
//! protocol whose base path it falls under (longest base path first).

use std::rc::Rc;

use serde_json::json;

use crate::config::{Config, Protocol};
use crate::http::{Actor, Method, Request, Response};
use crate::platform::Platform;
use crate::storage::hooks::ReadOnlyHook;
use crate::storage::{Storage, StorageHooks};
use crate::upstream::{StaticProvider, UpstreamProvider};

pub struct App {
    pub platform: Platform,
    pub config: Config,
    pub hooks: Rc<Vec<Rc<dyn StorageHooks>>>,
    pub upstreams: Rc<dyn UpstreamProvider>,
}

impl App {
    pub fn new(platform: Platform, config: Config) -> App {
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
    }

    pub async fn handle(&self, req: Request) -> Response {
        let head = req.method == Method::Head;
        // Nothing served here is meant to be sniffed into HTML or script by a browser.
        let resp = self.dispatch(req).await.with_header("X-Content-Type-Options", "nosniff");
        if head {
            resp.without_body()
        } else {
            resp
        }
    }

    async fn dispatch(&self, req: Request) -> Response {
        let path = req.path.clone();
        if path == "/-/health" {
            let enabled: Vec<&str> = Protocol::ALL
                .iter()
                .filter(|p| self.config.protocol(**p).enabled)
                .map(|p| p.as_str())
                .collect();
            return Response::json(200, &json!({"status": "ok", "protocols": enabled}));
        }
        if path.starts_with("/-/admin/") {
            return crate::auth::admin::handle(self, req).await;
        }
        // Container clients always call `/v2/...` at the host root.
        if self.config.protocol(Protocol::Oci).enabled && (path == "/v2" || path.starts_with("/v2/")) {
            return crate::oci::handle(self, req, &path, "/v2".into()).await;
        }
        match self.route(&path) {
            Some((Protocol::Npm, rest)) => crate::npm::handle(self, req, &rest).await,
            Some((Protocol::Oci, rest)) => {
                let prefix = format!("{}/v2", self.config.protocol(Protocol::Oci).base_path);
                crate::oci::handle(self, req, &rest, prefix).await
            }
            _ => Response::json(404, &json!({"error": "Not Found"})),
        }
    }

    /// The enabled protocol whose base path is the longest prefix of `path`, and the rest.
    fn route(&self, path: &str) -> Option<(Protocol, String)> {
        Protocol::ALL
            .into_iter()
            .filter(|p| self.config.protocol(*p).enabled)
            .filter_map(|p| {
                let base = &self.config.protocol(p).base_path;
                let rest = path.strip_prefix(base.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then(|| (base.len(), p, rest.to_string()))
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, p, rest)| (p, rest))
    }
}
