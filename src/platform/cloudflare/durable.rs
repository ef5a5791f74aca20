//! The Durable Object that runs serialised jobs (`crate::jobs`), and the client the Worker
//! uses to reach it. One object per lock name; inside it an async mutex makes jobs run one
//! at a time even while they wait on R2 (a Durable Object alone only gates storage calls).

use std::rc::Rc;

use async_trait::async_trait;
use worker::{durable_object, DurableObject, Env, ObjectNamespace, State};

use super::{r2::R2Store, JsClock, BUCKET};
use crate::jobs::{JobEnv, JobError, JobRequest, JobResult};
use crate::platform::Coordinator;

pub struct DurableCoordinator {
    ns: ObjectNamespace,
}

impl DurableCoordinator {
    pub fn new(ns: ObjectNamespace) -> Self {
        DurableCoordinator { ns }
    }

    async fn call(&self, lock: &str, job: &JobRequest) -> worker::Result<JobResult> {
        let stub = self.ns.id_from_name(lock)?.get_stub()?;
        let mut init = worker::RequestInit::new();
        init.with_method(worker::Method::Post)
            .with_body(Some(serde_json::to_string(job)?.into()));
        let req = worker::Request::new_with_init("https://jobs.internal/run", &init)?;
        let mut resp = stub.fetch_with_request(req).await?;
        resp.json().await
    }
}

#[async_trait(?Send)]
impl Coordinator for DurableCoordinator {
    async fn run(&self, lock: &str, job: JobRequest) -> JobResult {
        self.call(lock, &job)
            .await
            .unwrap_or_else(|e| Err(JobError::internal(format!("job runner unreachable: {e}"))))
    }
}

#[durable_object]
pub struct JobRunner {
    env: Env,
    lock: futures::lock::Mutex<()>,
}

impl DurableObject for JobRunner {
    fn new(_state: State, env: Env) -> Self {
        JobRunner { env, lock: futures::lock::Mutex::new(()) }
    }

    async fn fetch(&self, mut req: worker::Request) -> worker::Result<worker::Response> {
        // A job this build cannot read (a protocol it does not know) fails as a job, so the
        // Worker gets an answer it reads rather than a runtime error.
        let job = match req.json::<serde_json::Value>().await.map_err(JobError::internal).and_then(JobRequest::from_wire) {
            Ok(job) => job,
            Err(e) => return worker::Response::from_json(&JobResult::Err(e)),
        };
        let _guard = self.lock.lock().await;
        let env = JobEnv {
            store: Rc::new(R2Store::new(self.env.bucket(BUCKET)?)),
            clock: Rc::new(JsClock),
        };
        let result = crate::jobs::execute(&env, job).await;
        worker::Response::from_json(&result)
    }
}
