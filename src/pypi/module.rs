//! PyPI's entry in the protocol list (`crate::protocols`).

use async_trait::async_trait;

use super::names::ProjectName;
use crate::config::Protocol;
use crate::error::{Error, Render};
use crate::http::{Request, Response};
use crate::jobs::{JobEnv, JobResult};
use crate::protocols::{Preset, ProtocolModule};
use crate::router::App;

pub struct Pypi;

pub static MODULE: Pypi = Pypi;

/// pypi.org's simple index; its files live on files.pythonhosted.org (the proxy keeps each
/// origin's credentials to itself).
static PRESETS: &[Preset] = &[Preset { names: &["pypi", "pypi.org"], url: "https://pypi.org/simple", library_prefix: false }];

fn project(name: &str) -> crate::error::Result<ProjectName> {
    ProjectName::parse(name).ok_or_else(|| Error::invalid(format!("invalid project name {name:?}")))
}

#[async_trait(?Send)]
impl ProtocolModule for Pypi {
    fn protocol(&self) -> Protocol {
        Protocol::Pypi
    }

    async fn handle(&self, app: &App, req: Request, _base: &str, rest: &str) -> crate::error::Result<Response> {
        super::handle(app, req, rest).await
    }

    fn errors(&self) -> &'static dyn Render {
        &super::errors::PypiErrors
    }

    fn presets(&self) -> &'static [Preset] {
        PRESETS
    }

    async fn run_job(&self, env: &JobEnv, job: serde_json::Value) -> JobResult {
        super::jobs::execute(env, crate::jobs::decode(job)?).await
    }

    async fn purge_cache(&self, app: &App, name: &str) -> crate::error::Result<usize> {
        super::proxy::purge_cache(app, project(name)?.as_str()).await
    }

    async fn admin_owners(&self, app: &App, name: &str, new: Option<Vec<String>>) -> crate::error::Result<Vec<String>> {
        super::admin_owners(app, &project(name)?, new).await
    }
}
