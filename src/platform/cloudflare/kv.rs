//! `KvStore` on a Workers KV namespace.

use async_trait::async_trait;

use crate::platform::{KvStore, StoreError, StoreResult};

pub struct Kv {
    kv: worker::KvStore,
}

impl Kv {
    pub fn new(kv: worker::KvStore) -> Self {
        Kv { kv }
    }
}

fn err(e: worker::KvError) -> StoreError {
    StoreError::Backend(format!("KV: {}", crate::platform::error_line(&format!("{e:?}"))))
}

#[async_trait(?Send)]
impl KvStore for Kv {
    async fn get(&self, key: &str) -> StoreResult<Option<String>> {
        self.kv.get(key).text().await.map_err(err)
    }

    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> StoreResult<()> {
        let mut put = self.kv.put(key, value).map_err(err)?;
        if let Some(ttl) = ttl {
            put = put.expiration_ttl(ttl.max(60));
        }
        put.execute().await.map_err(err)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.kv.delete(key).await.map_err(err)
    }

    async fn list(&self, prefix: &str, cursor: Option<String>) -> StoreResult<(Vec<String>, Option<String>)> {
        let mut req = self.kv.list().prefix(prefix.to_string());
        if let Some(c) = cursor {
            req = req.cursor(c);
        }
        let page = req.execute().await.map_err(err)?;
        let next = if page.list_complete { None } else { page.cursor };
        Ok((page.keys.into_iter().map(|k| k.name).collect(), next))
    }
}
