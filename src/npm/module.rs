//! npm's entry in the protocol list (`crate::protocols`).

use async_trait::async_trait;

use super::names::PackageName;
use crate::config::Protocol;
use crate::error::{Error, Render};
use crate::http::{Request, Response};
use crate::jobs::{JobEnv, JobResult};
use crate::protocols::{Preset, ProtocolModule};
use crate::router::App;

pub struct Npm;

pub static MODULE: Npm = Npm;

static PRESETS: &[Preset] = &[Preset { names: &["npmjs", "npm"], url: "https://registry.npmjs.org", library_prefix: false }];

#[async_trait(?Send)]
impl ProtocolModule for Npm {
    fn protocol(&self) -> Protocol {
        Protocol::Npm
    }

    async fn handle(&self, app: &App, req: Request, _base: &str, rest: &str) -> crate::error::Result<Response> {
        super::handle(app, req, rest).await
    }

    fn errors(&self) -> &'static dyn Render {
        &super::errors::NpmErrors
    }

    fn presets(&self) -> &'static [Preset] {
        PRESETS
    }

    async fn run_job(&self, env: &JobEnv, job: serde_json::Value) -> JobResult {
        super::jobs::execute(env, crate::jobs::decode(job)?).await
    }

    async fn purge_cache(&self, app: &App, name: &str) -> crate::error::Result<usize> {
        let name = PackageName::parse(name, true).ok_or_else(|| Error::invalid(format!("invalid package name {name:?}")))?;
        Ok(crate::upstream::cache::purge(&*app.platform.store, &super::names::keys::cache_prefix(&name)).await?)
    }

    async fn admin_owners(&self, app: &App, name: &str, new: Option<Vec<String>>) -> crate::error::Result<Vec<String>> {
        // Once `admin_owners` returns `crate::error::Result`, this is the call alone.
        super::admin_owners(app, name, new).await
    }
}
