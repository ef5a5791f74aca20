//! Request-scoped storage: the platform object store plus the storage hooks, so every write,
//! read and delete a protocol makes is seen (and may be refused) by the hooks with the
//! request's protocol and actor.

pub mod hooked;
pub mod hooks;
pub mod key;
pub mod writer;

use std::rc::Rc;

use crate::config::Protocol;
use crate::http::{Actor, Body};
use crate::platform::{ByteRange, ListOptions, ListPage, Object, ObjectMeta, ObjectStore, PutOptions, PutOutcome, StoreError, UploadedPart};
pub use hooks::{HookContext, HookDecision, HookMetadata, Operation, StorageHooks};

// Multipart part sizes, the only two. R2 (like S3) wants every part of a multipart upload but
// the last to be one size of at least 5 MiB, and takes at most 10,000 parts.

/// Documents of unknown length streamed to R2 (`writer::ObjectWriter`: rewritten packuments
/// on a cache fill) hold one part in memory each, and many may fill at once: R2's smallest part.
pub const STREAM_PART_SIZE: usize = 5 * 1024 * 1024;
/// OCI chunked uploads are re-cut into parts of this size (advertised as
/// `OCI-Chunk-Min-Length`): twice the minimum, so a blob may reach ~100 GiB within R2's
/// 10,000 parts; an upload session holds one part only while a request is being handled.
pub const UPLOAD_PART_SIZE: usize = 10 * 1024 * 1024;

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

/// The only way hosted protocol code reaches the object store: every write and delete is put
/// to the hooks first (`READ_ONLY` is one), so none can slip past them.
#[derive(Clone)]
pub struct Storage {
    store: Rc<dyn ObjectStore>,
    hooks: Rc<Vec<Rc<dyn StorageHooks>>>,
    protocol: Protocol,
    actor: Actor,
    now_ms: f64,
    edge: Rc<dyn crate::platform::EdgeCache>,
}

impl Storage {
    pub fn new(
        store: Rc<dyn ObjectStore>,
        hooks: Rc<Vec<Rc<dyn StorageHooks>>>,
        protocol: Protocol,
        actor: Actor,
        now_ms: f64,
    ) -> Self {
        Storage { store, hooks, protocol, actor, now_ms, edge: Rc::new(crate::platform::NoEdgeCache) }
    }

    /// Purges `edge`'s answers made from whatever this storage writes.
    pub fn with_edge(mut self, edge: Rc<dyn crate::platform::EdgeCache>) -> Self {
        self.edge = edge;
        self
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
        // Every write reaches here once done: answers made from `key` are stale now.
        if operation != Operation::Get {
            self.edge.purge(key).await;
        }
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

    pub async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListPage, StorageError> {
        Ok(self.store.list(prefix, opts).await?)
    }

    /// Every object under `prefix`, all pages.
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        Ok(crate::platform::list_all(&*self.store, prefix).await?)
    }

    /// Starts a multipart upload; the hooks see it as a put of `key`.
    pub async fn create_multipart(&self, key: &str, opts: PutOptions, metadata: HookMetadata) -> Result<String, StorageError> {
        self.check(Operation::Put, key, metadata).await?;
        Ok(self.store.create_multipart(key, opts).await?)
    }

    /// One part; asked of the hooks too, so an upload begun before `READ_ONLY` cannot go on.
    pub async fn upload_part(&self, key: &str, upload_id: &str, part_number: u16, body: Body, metadata: HookMetadata) -> Result<UploadedPart, StorageError> {
        self.check(Operation::Put, key, metadata).await?;
        Ok(self.store.upload_part(key, upload_id, part_number, body).await?)
    }

    pub async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<UploadedPart>, metadata: HookMetadata) -> Result<ObjectMeta, StorageError> {
        self.check(Operation::Put, key, metadata.clone()).await?;
        let meta = self.store.complete_multipart(key, upload_id, parts).await?;
        self.notify(Operation::Put, key, HookMetadata { size: Some(meta.size), ..metadata }).await;
        Ok(meta)
    }

    /// Abandons an upload (cleanup of this registry's own temporary state: never refused).
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        Ok(self.store.abort_multipart(key, upload_id).await?)
    }

    /// Cleanup of temporary objects (upload tails, failed publishes): never refused.
    pub async fn discard(&self, keys: &[String]) -> Result<(), StorageError> {
        if keys.is_empty() {
            return Ok(());
        }
        Ok(self.store.delete(keys).await?)
    }

    /// Runs a serialised job (`crate::jobs`) of this protocol under `lock`, a change of `key`:
    /// the hooks are asked first, as for any write (the job runs where no request context
    /// exists), and told once it is done.
    pub async fn run_job(
        &self,
        coordinator: &dyn crate::platform::Coordinator,
        lock: &str,
        operation: Operation,
        key: &key::Key,
        metadata: HookMetadata,
        job: &impl serde::Serialize,
    ) -> crate::error::Result<serde_json::Value> {
        let metadata = HookMetadata { content_type: Some(key.kind.content_type.into()), ..metadata };
        self.check(operation, key.as_str(), metadata.clone()).await?;
        let result = crate::jobs::run(coordinator, lock, self.protocol, job).await?;
        self.notify(operation, key.as_str(), metadata).await;
        Ok(result)
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
