//! Cached copies of mutable upstream metadata (packuments, tags): an entry object says where
//! the bytes are, which upstream they came from, their validators and how long they are fresh.
//! The bytes live under a new key per fetch, so switching the entry is atomic and a reader
//! never sees half a document. Immutable content (tarballs, blobs) needs none of this: it is
//! stored once, verified, under its final key.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use futures::future::{FutureExt, LocalBoxFuture, Shared};
use serde::{Deserialize, Serialize};

use super::config::CachePolicy;
use crate::http::Body;
use crate::platform::{ObjectStore, PutOptions, StoreResult};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// 200, or 404 for a negative entry ("not found upstream").
    pub status: u16,
    pub data_key: Option<String>,
    pub upstream: String,
    pub fetched_ms: f64,
    pub expires_ms: f64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_type: Option<String>,
    pub size: u64,
    /// What the protocol adapter needs to know about the stored bytes.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Past its TTL but within the stale window: serve it and revalidate in the background.
    Stale,
    /// Too old to serve without asking the upstream (served only if the upstream fails).
    Expired,
}

impl Entry {
    /// A negative entry: no upstream has the document (as `upstream`, the first one asked,
    /// says), remembered for its negative-cache TTL.
    pub fn absent(upstream: Option<&super::Upstream>, now_ms: f64) -> Entry {
        let ttl_s = upstream.map_or_else(|| CachePolicy::default().negative_cache_ttl_seconds, |u| u.cache.negative_cache_ttl_seconds);
        Entry {
            status: 404,
            data_key: None,
            upstream: upstream.map(|u| u.id.clone()).unwrap_or_default(),
            fetched_ms: now_ms,
            expires_ms: now_ms + ttl_s as f64 * 1000.0,
            etag: None,
            last_modified: None,
            content_type: None,
            size: 0,
            extra: BTreeMap::new(),
        }
    }

    pub fn freshness(&self, now_ms: f64, policy: &CachePolicy) -> Freshness {
        if now_ms < self.expires_ms {
            Freshness::Fresh
        } else if policy.stale_while_revalidate
            && self.status == 200
            && now_ms < self.expires_ms + policy.stale_max_age_seconds as f64 * 1000.0
        {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }

    pub fn age_seconds(&self, now_ms: f64) -> u64 {
        ((now_ms - self.fetched_ms).max(0.0) / 1000.0) as u64
    }
}

/// The entry at `key`; an unreadable one counts as absent (it is refetched and replaced).
pub async fn load(store: &dyn ObjectStore, key: &str) -> StoreResult<Option<Entry>> {
    let Some(obj) = store.get(key, None).await? else { return Ok(None) };
    let bytes = obj.body.read_capped(1 << 20).await.map_err(|e| crate::platform::StoreError::Backend(e.to_string()))?;
    Ok(serde_json::from_slice(&bytes).ok())
}

pub async fn save(store: &dyn ObjectStore, key: &str, entry: &Entry) -> StoreResult<()> {
    let body = serde_json::to_vec(entry).map_err(|e| crate::platform::StoreError::Corrupt(e.to_string()))?;
    let opts = PutOptions { content_type: Some("application/json".into()), ..Default::default() };
    store.put(key, Body::Bytes(body), opts).await.map(|_| ())
}

/// Forgets everything cached under `prefix` (entries, documents and immutable content alike);
/// returns how many objects went.
pub async fn purge(store: &dyn ObjectStore, prefix: &str) -> StoreResult<usize> {
    purge_where(store, prefix, |_| true).await
}

/// `purge`, for the keys whose part after `prefix` passes `wanted`.
pub async fn purge_where(store: &dyn ObjectStore, prefix: &str, wanted: impl Fn(&str) -> bool) -> StoreResult<usize> {
    let keys: Vec<String> = crate::platform::list_all(store, prefix)
        .await?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| wanted(k.strip_prefix(prefix).unwrap_or_default()))
        .collect();
    // One listing first, then the deletes: deleting while paging could move the cursor.
    for batch in keys.chunks(1000) {
        store.delete(batch).await?;
    }
    Ok(keys.len())
}

/// A refresh's result: how the document now stands, or why the upstreams failed.
pub type Refresh = Result<super::CacheStatus, super::client::Failures>;

type Flight = Shared<LocalBoxFuture<'static, Refresh>>;

thread_local! {
    static IN_FLIGHT: RefCell<HashMap<String, Flight>> = RefCell::new(HashMap::new());
}

/// Runs `work` for `key` unless it is already running in this isolate, in which case this
/// waits for that run instead: concurrent misses for one document make one upstream fetch.
pub async fn single_flight(key: &str, work: impl FnOnce() -> LocalBoxFuture<'static, Refresh>) -> Refresh {
    let existing = IN_FLIGHT.with(|m| m.borrow().get(key).cloned());
    if let Some(flight) = existing {
        return flight.await;
    }
    // The run forgets itself when it ends, whoever is polling it then: the caller that
    // started it may be gone (a client that hung up), and a finished run must not stand in
    // for the next refresh.
    let owned_key = key.to_string();
    let run = work();
    let flight = async move {
        let result = run.await;
        IN_FLIGHT.with(|m| m.borrow_mut().remove(&owned_key));
        result
    }
    .boxed_local()
    .shared();
    IN_FLIGHT.with(|m| m.borrow_mut().insert(key.to_string(), flight.clone()));
    flight.await
}

/// Whether work for `key` is running in this isolate now.
pub fn in_flight(key: &str) -> bool {
    IN_FLIGHT.with(|m| m.borrow().contains_key(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_goes_through_every_page_and_stays_in_its_prefix() {
        use crate::platform::memory::{ManualClock, MemoryObjectStore};
        let store = MemoryObjectStore::new(std::rc::Rc::new(ManualClock::new(0.0)));
        let put = |k: &str| futures::executor::block_on(store.put(k, Body::Bytes(vec![1]), PutOptions::default())).unwrap();
        for i in 0..2500 {
            put(&format!("cache/pkg/{i:05}"));
        }
        for k in ["cache/pkg-other/1", "cache/pk", "cache/pkg/sub/1"] {
            put(k);
        }
        let direct = futures::executor::block_on(purge_where(&store, "cache/pkg/", |rest| !rest.contains('/'))).unwrap();
        assert_eq!(direct, 2500);
        assert_eq!(futures::executor::block_on(purge(&store, "cache/pkg/")).unwrap(), 1, "the nested key, left by the filter");
        let left = futures::executor::block_on(store.list("cache/", Default::default())).unwrap();
        let keys: Vec<String> = left.objects.into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["cache/pk", "cache/pkg-other/1"]);
    }

    fn entry(expires_ms: f64, status: u16) -> Entry {
        Entry {
            status,
            data_key: None,
            upstream: "u".into(),
            fetched_ms: 0.0,
            expires_ms,
            etag: None,
            last_modified: None,
            content_type: None,
            size: 0,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn freshness_windows() {
        let p = CachePolicy { stale_max_age_seconds: 10, ..Default::default() };
        assert_eq!(entry(1000.0, 200).freshness(999.0, &p), Freshness::Fresh);
        assert_eq!(entry(1000.0, 200).freshness(1000.0, &p), Freshness::Stale);
        assert_eq!(entry(1000.0, 200).freshness(10_999.0, &p), Freshness::Stale);
        assert_eq!(entry(1000.0, 200).freshness(11_000.0, &p), Freshness::Expired);
        assert_eq!(entry(1000.0, 404).freshness(1000.0, &p), Freshness::Expired, "negative entries are never served stale");
        let no_swr = CachePolicy { stale_while_revalidate: false, ..p };
        assert_eq!(entry(1000.0, 200).freshness(1000.0, &no_swr), Freshness::Expired);
    }

    #[test]
    fn single_flight_runs_once_for_concurrent_callers() {
        use std::rc::Rc;
        let runs = Rc::new(std::cell::Cell::new(0));
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let r1 = runs.clone();
        let first = single_flight("k", move || {
            async move {
                r1.set(r1.get() + 1);
                let _ = rx.await;
                Ok(super::super::CacheStatus::Miss)
            }
            .boxed_local()
        });
        let r2 = runs.clone();
        let second = single_flight("k", move || {
            async move {
                r2.set(r2.get() + 1);
                Ok(super::super::CacheStatus::Hit)
            }
            .boxed_local()
        });
        let both = futures::future::join(first, async move {
            let out = second.await;
            out
        });
        let release = async move {
            let _ = tx.send(());
        };
        let ((a, b), ()) = futures::executor::block_on(futures::future::join(both, release));
        assert_eq!((a, b), (Ok(super::super::CacheStatus::Miss), Ok(super::super::CacheStatus::Miss)), "the second caller shares the first run");
        assert_eq!(runs.get(), 1);
        assert!(!in_flight("k"));
    }

    #[test]
    fn a_run_whose_starter_went_away_still_finishes_and_is_forgotten() {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let mut first = Box::pin(single_flight("gone", move || {
            async move {
                let _ = rx.await;
                Ok(super::super::CacheStatus::Miss)
            }
            .boxed_local()
        }));
        // Started, then dropped (the client hung up) while the run waits.
        assert!(futures::executor::block_on(futures::future::poll_fn(|cx| std::task::Poll::Ready(std::future::Future::poll(first.as_mut(), cx).is_pending()))));
        drop(first);
        assert!(in_flight("gone"));
        let _ = tx.send(());
        let later = futures::executor::block_on(single_flight("gone", || async { Ok(super::super::CacheStatus::Hit) }.boxed_local()));
        assert_eq!(later, Ok(super::super::CacheStatus::Miss), "the waiting run was picked up, not duplicated");
        assert!(!in_flight("gone"), "and forgotten once done");
        let next = futures::executor::block_on(single_flight("gone", || async { Ok(super::super::CacheStatus::Hit) }.boxed_local()));
        assert_eq!(next, Ok(super::super::CacheStatus::Hit), "a later refresh runs anew");
    }
}
