//! Storage hooks: code that runs around every storage operation with the request's context.
//! A `before_*` hook may refuse (the protocol answers 403 with the reason); `after_*` hooks
//! observe and cannot fail the request.

use async_trait::async_trait;
use serde::Serialize;

use crate::config::Protocol;
use crate::http::Actor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Put,
    Get,
    Delete,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HookMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HookContext<'a> {
    pub operation: Operation,
    pub key: &'a str,
    pub protocol: Protocol,
    pub actor: &'a Actor,
    pub metadata: HookMetadata,
    pub timestamp_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookDecision {
    Allow,
    Deny(String),
}

#[async_trait(?Send)]
pub trait StorageHooks {
    async fn before_put(&self, _ctx: &HookContext<'_>) -> HookDecision {
        HookDecision::Allow
    }
    async fn after_put(&self, _ctx: &HookContext<'_>) {}
    async fn before_get(&self, _ctx: &HookContext<'_>) -> HookDecision {
        HookDecision::Allow
    }
    async fn after_get(&self, _ctx: &HookContext<'_>) {}
    async fn before_delete(&self, _ctx: &HookContext<'_>) -> HookDecision {
        HookDecision::Allow
    }
    async fn after_delete(&self, _ctx: &HookContext<'_>) {}
}

/// `READ_ONLY=true`: refuses every write and delete, e.g. during a migration.
pub struct ReadOnlyHook;

#[async_trait(?Send)]
impl StorageHooks for ReadOnlyHook {
    async fn before_put(&self, _ctx: &HookContext<'_>) -> HookDecision {
        HookDecision::Deny("the registry is in read-only mode".into())
    }
    async fn before_delete(&self, _ctx: &HookContext<'_>) -> HookDecision {
        HookDecision::Deny("the registry is in read-only mode".into())
    }
}
