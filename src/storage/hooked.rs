//! The object store as a streaming writer (`writer::ObjectWriter`) sees it, each write asked
//! of the storage hooks: an upload under way stops at its next part once `READ_ONLY` (or any
//! hook) refuses. Used by the hosted uploads that stream a body into R2 (PyPI, Cargo).

use async_trait::async_trait;

use super::{HookMetadata, Storage, StorageError};
use crate::error::Error;
use crate::http::Body;
use crate::platform::{ByteRange, ListOptions, ListPage, Object, ObjectMeta, ObjectStore, PutOptions, PutOutcome, StoreError, StoreResult, UploadedPart};

/// How a hook's refusal travels through `ObjectWriter`, which speaks `StoreError`.
const DENIED_PREFIX: &str = "denied by a storage hook: ";

/// A failed write: a hook's refusal (403) when that is what stopped it.
pub fn store_error(e: StoreError) -> Error {
    match e.message().strip_prefix(DENIED_PREFIX) {
        Some(reason) => Error::denied(reason.to_string()),
        None => Error::internal(e),
    }
}

/// `storage` with the hook metadata of one upload.
pub struct HookedStore {
    pub storage: Storage,
    pub meta: HookMetadata,
}

impl HookedStore {
    fn map(&self, e: StorageError) -> StoreError {
        match e {
            StorageError::Denied(reason) => StoreError::Backend(format!("{DENIED_PREFIX}{reason}")),
            StorageError::Store(e) => e,
        }
    }
}

#[async_trait(?Send)]
impl ObjectStore for HookedStore {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.storage.head(key).await.map_err(|e| self.map(e))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<Option<Object>> {
        self.storage.get(key, range, self.meta.clone()).await.map_err(|e| self.map(e))
    }

    async fn put(&self, key: &str, body: Body, opts: PutOptions) -> StoreResult<PutOutcome> {
        self.storage.put(key, body, opts, self.meta.clone()).await.map_err(|e| self.map(e))
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<()> {
        self.storage.delete(keys, self.meta.clone()).await.map_err(|e| self.map(e))
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> StoreResult<ListPage> {
        self.storage.list(prefix, opts).await.map_err(|e| self.map(e))
    }

    async fn create_multipart(&self, key: &str, opts: PutOptions) -> StoreResult<String> {
        self.storage.create_multipart(key, opts, self.meta.clone()).await.map_err(|e| self.map(e))
    }

    async fn upload_part(&self, key: &str, upload_id: &str, part_number: u16, body: Body) -> StoreResult<UploadedPart> {
        self.storage.upload_part(key, upload_id, part_number, body, self.meta.clone()).await.map_err(|e| self.map(e))
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<UploadedPart>) -> StoreResult<ObjectMeta> {
        self.storage.complete_multipart(key, upload_id, parts, self.meta.clone()).await.map_err(|e| self.map(e))
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        self.storage.abort_multipart(key, upload_id).await.map_err(|e| self.map(e))
    }
}
