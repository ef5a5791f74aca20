//! Jobs that must run one at a time per document: every read-modify-write of shared metadata.
//!
//! A handler sends a [`JobRequest`] (its protocol and the job as JSON) to the
//! [`Coordinator`](crate::platform::Coordinator) under a lock name (one per document). In the
//! Worker the job travels as JSON to the Durable Object that owns that name, which runs
//! [`execute`] with its own R2 binding; natively the memory coordinator runs it behind a
//! per-name mutex. Either way the job is the only writer of its document while it runs.
//! [`execute`] hands the job to its protocol through the protocol list, so the platform that
//! carries jobs knows no protocol.

use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Protocol;
use crate::platform::{Clock, Coordinator, ObjectStore};

/// The field naming a job's protocol on the wire.
const PROTOCOL_FIELD: &str = "protocol";

/// A job addressed to its protocol.
///
/// On the wire it is the protocol's job object with a `"protocol"` field added: the shape of
/// the closed `Job` enum of earlier builds (`#[serde(tag = "protocol")]`, `{"protocol": "npm",
/// "op": "publish", …}`). The wire shape is unchanged, not versioned, so during a deploy a
/// Durable Object of the previous build and a Worker of this one (or the reverse) read each
/// other's jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    pub protocol: Protocol,
    /// The job itself, a JSON object without a `protocol` field of its own.
    pub body: Value,
}

impl JobRequest {
    pub fn new(protocol: Protocol, job: &impl Serialize) -> Result<JobRequest, JobError> {
        let body = serde_json::to_value(job).map_err(JobError::internal)?;
        match body.as_object() {
            Some(fields) if !fields.contains_key(PROTOCOL_FIELD) => Ok(JobRequest { protocol, body }),
            _ => Err(JobError::internal(format!("a {} job must be a JSON object without a protocol field", protocol.as_str()))),
        }
    }

    /// The job as it travels: `protocol` first (where the enum's tag was), then its fields.
    pub fn to_wire(&self) -> Value {
        let mut fields = Map::new();
        fields.insert(PROTOCOL_FIELD.into(), Value::String(self.protocol.as_str().into()));
        if let Some(own) = self.body.as_object() {
            fields.extend(own.clone());
        }
        Value::Object(fields)
    }

    /// A job as it travelled; the protocol must be one this build knows by name.
    pub fn from_wire(wire: Value) -> Result<JobRequest, JobError> {
        let Value::Object(mut fields) = wire else {
            return Err(JobError::internal("a job must be a JSON object"));
        };
        let protocol = match fields.remove(PROTOCOL_FIELD) {
            Some(Value::String(name)) => {
                Protocol::parse(&name).ok_or_else(|| JobError::internal(format!("job for unknown protocol {name:?}")))?
            }
            _ => return Err(JobError::internal("a job must name its protocol")),
        };
        Ok(JobRequest { protocol, body: Value::Object(fields) })
    }
}

impl Serialize for JobRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_wire().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JobRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Map::<String, Value>::deserialize(deserializer)?;
        JobRequest::from_wire(Value::Object(wire)).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// What a job may touch: the object store and the clock, nothing request-scoped.
#[derive(Clone)]
pub struct JobEnv {
    pub store: Rc<dyn ObjectStore>,
    pub clock: Rc<dyn Clock>,
}

/// A failure with the HTTP status the handler should answer with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub status: u16,
    pub message: String,
}

impl JobError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        JobError {
            status,
            message: message.into(),
        }
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        JobError::new(500, message.to_string())
    }
}

pub type JobResult = Result<Value, JobError>;

/// Sends `job` of `protocol` to run under `lock`.
pub async fn run(coordinator: &dyn Coordinator, lock: &str, protocol: Protocol, job: &impl Serialize) -> JobResult {
    coordinator.run(lock, JobRequest::new(protocol, job)?).await
}

/// A protocol's job back from its JSON (in [`ProtocolModule::run_job`](crate::protocols::ProtocolModule::run_job)).
pub fn decode<T: DeserializeOwned>(body: Value) -> Result<T, JobError> {
    serde_json::from_value(body).map_err(|e| JobError::internal(format!("unreadable job: {e}")))
}

/// Runs a job with its protocol's module; a protocol this build does not serve fails the job.
pub async fn execute(env: &JobEnv, job: JobRequest) -> JobResult {
    match crate::protocols::find(job.protocol) {
        Some(module) => module.run_job(env, job.body).await,
        None => Err(JobError::internal(format!("this build runs no {} jobs", job.protocol.as_str()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_shape_is_the_job_with_its_protocol() {
        let job = JobRequest::new(Protocol::Npm, &json!({"op": "delete_package", "name": "a"})).unwrap();
        let wire = serde_json::to_string(&job).unwrap();
        assert_eq!(wire, r#"{"protocol":"npm","op":"delete_package","name":"a"}"#);
        let back: JobRequest = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, job);
    }

    #[test]
    fn malformed_jobs_are_refused() {
        assert!(JobRequest::new(Protocol::Npm, &json!([1])).is_err());
        assert!(JobRequest::new(Protocol::Npm, &json!({"protocol": "oci"})).is_err());
        assert!(serde_json::from_value::<JobRequest>(json!({"op": "x"})).is_err());
        let unknown = serde_json::from_value::<JobRequest>(json!({"protocol": "nuget", "op": "x"})).unwrap_err();
        assert!(unknown.to_string().contains("nuget"), "{unknown}");
    }
}
