//! Request-scoped storage: the platform object store plus the storage hooks, so every write,
//! read and delete a protocol makes is seen (and may be refused) by the hooks with the
//! request's protocol and actor.

pub mod hooks;
pub mod writer;

use std::rc::Rc;

use crate::config::Protocol;
use crate::http::{Actor, Body};
use crate::platform::{ByteRange, Object, ObjectMeta, ObjectStore, PutOptions, PutOutcome, StoreError};
pub use hooks::{HookContext, HookDecision, HookMetadata, Operation, StorageHooks};

#[derive(Debug)]
pub enum StorageError {
    /// A `before*` hook refused the operation; the reason goes to the client (403).
    Denied(String),
    Store(StoreError),
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        StorageError::Store(e)
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Denied(r) => write!(f, "denied: {r}"),
            StorageError::Store(e) => write!(f, "storage: {e}"),
        }
    }
}

#[derive(Clone)]
pub struct Storage {
    pub store: Rc<dyn ObjectStore>,
    hooks: Rc<Vec<Rc<dyn StorageHooks>>>,
    protocol: Protocol,
    actor: Actor,
    now_ms: f64,
}

impl Storage {
    pub fn new(
        store: Rc<dyn ObjectStore>,
        hooks: Rc<Vec<Rc<dyn StorageHooks>>>,
        protocol: Protocol,
        actor: Actor,
        now_ms: f64,
    ) -> Self {
        Storage { store, hooks, protocol, actor, now_ms }
    }

    fn ctx<'a>(&'a self, operation: Operation, key: &'a str, metadata: HookMetadata) -> HookContext<'a> {
        HookContext {
            operation,
            key,
            protocol: self.protocol,
            actor: &self.actor,
            metadata,
            timestamp_ms: self.now_ms,
        }
    }

    /// Asks every `before*` hook; the first refusal wins.
    pub async fn check(&self, operation: Operation, key: &str, metadata: HookMetadata) -> Result<(), StorageError> {
        let ctx = self.ctx(operation, key, metadata);
        for h in self.hooks.iter() {
            let decision = match operation {
                Operation::Put => h.before_put(&ctx).await,
                Operation::Get => h.before_get(&ctx).await,
                Operation::Delete => h.before_delete(&ctx).await,
            };
            if let HookDecision::Deny(reason) = decision {
                return Err(StorageError::Denied(reason));
            }
        }
        Ok(())
    }

    /// Tells every `after*` hook; hooks cannot fail the request.
    pub async fn notify(&self, operation: Operation, key: &str, metadata: HookMetadata) {
        let ctx = self.ctx(operation, key, metadata);
        for h in self.hooks.iter() {
            match operation {
                Operation::Put => h.after_put(&ctx).await,
                Operation::Get => h.after_get(&ctx).await,
                Operation::Delete => h.after_delete(&ctx).await,
            }
        }
    }

    pub async fn put(&self, key: &str, body: Body, opts: PutOptions, mut metadata: HookMetadata) -> Result<PutOutcome, StorageError> {
        if metadata.size.is_none() {
            metadata.size = body.known_length();
        }
        self.check(Operation::Put, key, metadata.clone()).await?;
        let outcome = self.store.put(key, body, opts).await?;
        if matches!(outcome, PutOutcome::Stored(_)) {
            self.notify(Operation::Put, key, metadata).await;
        }
        Ok(outcome)
    }

    pub async fn get(&self, key: &str, range: Option<ByteRange>, metadata: HookMetadata) -> Result<Option<Object>, StorageError> {
        self.check(Operation::Get, key, metadata.clone()).await?;
        let found = self.store.get(key, range).await?;
        if let Some(o) = &found {
            let metadata = HookMetadata { size: Some(o.meta.size), ..metadata };
            self.notify(Operation::Get, key, metadata).await;
        }
        Ok(found)
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        Ok(self.store.head(key).await?)
    }

    pub async fn delete(&self, keys: &[String], metadata: HookMetadata) -> Result<(), StorageError> {
        for k in keys {
            self.check(Operation::Delete, k, metadata.clone()).await?;
        }
        self.store.delete(keys).await?;
        for k in keys {
            self.notify(Operation::Delete, k, metadata.clone()).await;
        }
        Ok(())
    }
}
