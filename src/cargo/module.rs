//! Cargo's entry in the protocol list (`crate::protocols`).

use async_trait::async_trait;

use super::names::CrateName;
use crate::config::Protocol;
use crate::error::{Error, Render};
use crate::http::{Request, Response};
use crate::jobs::{JobEnv, JobResult};
use crate::protocols::{Preset, ProtocolModule};
use crate::router::App;

pub struct Cargo;

pub static MODULE: Cargo = Cargo;

/// crates.io's sparse index (Cargo book, "Registry Index": "Sparse protocol"); its downloads
/// are wherever its own `config.json` says (`dl`), never a host written here.
static PRESETS: &[Preset] = &[Preset { names: &["crates-io", "crates.io"], url: "https://index.crates.io", library_prefix: false }];

fn crate_name(name: &str) -> crate::error::Result<CrateName> {
    CrateName::parse(name).ok_or_else(|| Error::invalid(format!("invalid crate name {name:?}")))
}

#[async_trait(?Send)]
impl ProtocolModule for Cargo {
    fn protocol(&self) -> Protocol {
        Protocol::Cargo
    }

    async fn handle(&self, app: &App, req: Request, _base: &str, rest: &str) -> crate::error::Result<Response> {
        super::handle(app, req, rest).await
    }

    fn errors(&self) -> &'static dyn Render {
        &super::errors::CargoErrors
    }

    fn presets(&self) -> &'static [Preset] {
        PRESETS
    }

    async fn run_job(&self, env: &JobEnv, job: serde_json::Value) -> JobResult {
        super::jobs::execute(env, crate::jobs::decode(job)?).await
    }

    async fn purge_cache(&self, app: &App, name: &str) -> crate::error::Result<usize> {
        super::proxy::purge_cache(app, crate_name(name)?.as_str()).await
    }

    async fn admin_owners(&self, app: &App, name: &str, new: Option<Vec<String>>) -> crate::error::Result<Vec<String>> {
        super::admin_owners(app, &crate_name(name)?, new).await
    }
}
