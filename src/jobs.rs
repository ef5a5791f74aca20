//! Jobs that must run one at a time per document: every read-modify-write of shared metadata.
//!
//! A handler sends a [`Job`] to the [`Coordinator`](crate::platform::Coordinator) under a lock
//! name (one per document). In the Worker the job travels as JSON to the Durable Object that
//! owns that name, which runs [`execute`] with its own R2 binding; natively the memory
//! coordinator runs it behind a per-name mutex. Either way the job is the only writer of its
//! document while it runs.

use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::platform::{Clock, ObjectStore};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum Job {
    Npm(crate::npm::jobs::NpmJob),
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

pub type JobResult = Result<serde_json::Value, JobError>;

pub async fn execute(env: &JobEnv, job: Job) -> JobResult {
    match job {
        Job::Npm(j) => crate::npm::jobs::execute(env, j).await,
    }
}
