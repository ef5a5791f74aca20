//! Upload sessions, one Durable Object each: the record with a version for compare-and-set,
//! and an alarm that cleans up (aborts the multipart upload, deletes temporary objects) once
//! the session has been idle past its time-to-live.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{durable_object, DurableObject, Env, ObjectNamespace, State};

use super::{r2::R2Store, BUCKET};
use crate::platform::{Cleanup, SessionStore, StoreError, StoreResult};

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Call {
    Create { record: Value, cleanup: Cleanup, ttl_ms: f64 },
    Get,
    Update { version: u64, record: Value, cleanup: Cleanup, ttl_ms: f64 },
    Delete,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    record: Value,
    version: u64,
    cleanup: Cleanup,
    expires_ms: f64,
}

pub struct DurableSessions {
    ns: ObjectNamespace,
}

impl DurableSessions {
    pub fn new(ns: ObjectNamespace) -> Self {
        DurableSessions { ns }
    }

    async fn call(&self, id: &str, call: &Call) -> StoreResult<Value> {
        let go = async {
            let stub = self.ns.id_from_name(id)?.get_stub()?;
            let mut init = worker::RequestInit::new();
            init.with_method(worker::Method::Post).with_body(Some(serde_json::to_string(call)?.into()));
            let req = worker::Request::new_with_init("https://sessions.internal/", &init)?;
            let mut resp = stub.fetch_with_request(req).await?;
            resp.json::<Value>().await
        };
        go.await.map_err(|e: worker::Error| StoreError::Backend(format!("session store: {e}")))
    }
}

#[async_trait(?Send)]
impl SessionStore for DurableSessions {
    async fn create(&self, id: &str, record: &Value, cleanup: &Cleanup, ttl_ms: f64) -> StoreResult<()> {
        self.call(id, &Call::Create { record: record.clone(), cleanup: cleanup.clone(), ttl_ms }).await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> StoreResult<Option<(Value, u64)>> {
        let v = self.call(id, &Call::Get).await?;
        Ok(serde_json::from_value::<Option<(Value, u64)>>(v).unwrap_or(None))
    }

    async fn update(&self, id: &str, version: u64, record: &Value, cleanup: &Cleanup, ttl_ms: f64) -> StoreResult<bool> {
        let v = self.call(id, &Call::Update { version, record: record.clone(), cleanup: cleanup.clone(), ttl_ms }).await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    async fn delete(&self, id: &str) -> StoreResult<()> {
        self.call(id, &Call::Delete).await?;
        Ok(())
    }
}

#[durable_object]
pub struct UploadSession {
    state: State,
    env: Env,
}

impl UploadSession {
    async fn handle(&self, call: Call) -> worker::Result<Value> {
        let storage = self.state.storage();
        let now = js_sys::Date::now();
        let current: Option<Stored> = storage.get("session").await?;
        match call {
            Call::Create { record, cleanup, ttl_ms } => {
                storage.put("session", Stored { record, version: 1, cleanup, expires_ms: now + ttl_ms }).await?;
                storage.set_alarm(Duration::from_millis(ttl_ms as u64 + 1000)).await?;
                Ok(Value::Bool(true))
            }
            Call::Get => Ok(serde_json::to_value(current.filter(|s| s.expires_ms > now).map(|s| (s.record, s.version)))?),
            Call::Update { version, record, cleanup, ttl_ms } => match current {
                Some(s) if s.version == version && s.expires_ms > now => {
                    let next = Stored { record, version: version + 1, cleanup, expires_ms: now + ttl_ms };
                    storage.put("session", next).await?;
                    storage.set_alarm(Duration::from_millis(ttl_ms as u64 + 1000)).await?;
                    Ok(Value::Bool(true))
                }
                _ => Ok(Value::Bool(false)),
            },
            Call::Delete => {
                storage.delete_all().await?;
                storage.delete_alarm().await?;
                Ok(Value::Bool(true))
            }
        }
    }
}

impl DurableObject for UploadSession {
    fn new(state: State, env: Env) -> Self {
        UploadSession { state, env }
    }

    async fn fetch(&self, mut req: worker::Request) -> worker::Result<worker::Response> {
        let call: Call = req.json().await?;
        worker::Response::from_json(&self.handle(call).await?)
    }

    async fn alarm(&self) -> worker::Result<worker::Response> {
        let storage = self.state.storage();
        if let Some(s) = storage.get::<Stored>("session").await? {
            if s.expires_ms > js_sys::Date::now() {
                storage.set_alarm(Duration::from_millis((s.expires_ms - js_sys::Date::now()) as u64 + 1000)).await?;
                return worker::Response::ok("not yet");
            }
            let store = R2Store::new(self.env.bucket(BUCKET)?);
            crate::platform::run_cleanup(&store, &s.cleanup).await;
        }
        storage.delete_all().await?;
        worker::Response::ok("cleaned")
    }
}
