//! In-memory platform for native tests. It follows the R2/KV rules the Worker is bound by
//! (checksums verified on put, conditional puts, multipart part-size rules) so that tests
//! catch code that would break on the real platform.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use async_trait::async_trait;
use sha1::Digest;

use super::*;
use crate::http::{Body, Request, Response};
use crate::jobs::{JobEnv, JobRequest, JobResult};

/// The smallest non-final multipart part R2 accepts.
pub const R2_MIN_PART: u64 = 5 * 1024 * 1024;

#[derive(Clone)]
struct StoredObject {
    data: Rc<Vec<u8>>,
    meta: ObjectMeta,
}

/// An open multipart upload: its key, the options it was created with, and each part's etag
/// and bytes by part number.
struct Upload {
    key: String,
    opts: PutOptions,
    parts: BTreeMap<u16, (String, Vec<u8>)>,
}

/// The most entries a listing page holds. R2 allows up to 1000, but with `include` (which the
/// Worker's store always asks for, for metadata) fewer may come back; the local R2 simulator
/// gives 100. Native pages are as small, so callers are seen to follow cursors.
pub const LIST_PAGE_MAX: usize = 100;

#[derive(Default)]
pub struct MemoryObjectStore {
    objects: RefCell<BTreeMap<String, StoredObject>>,
    uploads: RefCell<HashMap<String, Upload>>,
    counter: Cell<u64>,
    reads: Cell<u64>,
    clock: Option<Rc<dyn Clock>>,
}

impl MemoryObjectStore {
    pub fn new(clock: Rc<dyn Clock>) -> Self {
        MemoryObjectStore {
            clock: Some(clock),
            ..Default::default()
        }
    }

    /// How many `head`/`get` calls the store has answered (what a request costs in reads).
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }

    fn next_etag(&self) -> String {
        self.counter.set(self.counter.get() + 1);
        format!("{:032x}", self.counter.get())
    }

    /// Every key currently stored (tests assert nothing partial is left behind).
    pub fn keys(&self) -> Vec<String> {
        self.objects.borrow().keys().cloned().collect()
    }

    /// Number of multipart uploads still open.
    pub fn open_uploads(&self) -> usize {
        self.uploads.borrow().len()
    }

    fn now(&self) -> f64 {
        self.clock.as_ref().map(|c| c.now_ms()).unwrap_or(0.0)
    }

    fn store(&self, key: &str, data: Vec<u8>, opts: PutOptions) -> ObjectMeta {
        let meta = ObjectMeta {
            key: key.to_string(),
            size: data.len() as u64,
            etag: self.next_etag(),
            content_type: opts.content_type,
            custom: opts.custom,
            uploaded_ms: self.now(),
        };
        self.objects.borrow_mut().insert(
            key.to_string(),
            StoredObject {
                data: Rc::new(data),
                meta: meta.clone(),
            },
        );
        meta
    }
}

fn checksum_matches(sum: &Checksum, data: &[u8]) -> bool {
    match sum {
        Checksum::Sha1(want) => sha1::Sha1::digest(data).as_slice() == want.as_slice(),
        Checksum::Sha256(want) => sha2::Sha256::digest(data).as_slice() == want.as_slice(),
        Checksum::Sha512(want) => sha2::Sha512::digest(data).as_slice() == want.as_slice(),
        Checksum::Md5(want) => md5::Md5::digest(data).as_slice() == want.as_slice(),
    }
}

async fn body_bytes(body: Body) -> StoreResult<Vec<u8>> {
    body.read_capped(u64::MAX)
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))
}

#[async_trait(?Send)]
impl ObjectStore for MemoryObjectStore {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.reads.set(self.reads.get() + 1);
        Ok(self.objects.borrow().get(key).map(|o| o.meta.clone()))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<Option<Object>> {
        self.reads.set(self.reads.get() + 1);
        let Some(obj) = self.objects.borrow().get(key).cloned() else {
            return Ok(None);
        };
        let size = obj.data.len() as u64;
        let (offset, length) = match range {
            None => (0, size),
            Some(ByteRange::Slice { offset, length }) => {
                if offset >= size && size > 0 || offset > size {
                    return Err(StoreError::Backend("range not satisfiable".into()));
                }
                (offset, length.min(size - offset))
            }
            Some(ByteRange::From { offset }) => {
                if offset > size {
                    return Err(StoreError::Backend("range not satisfiable".into()));
                }
                (offset, size - offset)
            }
            Some(ByteRange::Suffix { length }) => {
                let length = length.min(size);
                (size - length, length)
            }
        };
        let data = obj.data.get(offset as usize..(offset + length) as usize).unwrap_or_default().to_vec();
        Ok(Some(Object {
            meta: obj.meta.clone(),
            body: Body::Stream(PlatformStream::from_bytes(data)),
            range: range.map(|_| (offset, length)),
        }))
    }

    async fn put(&self, key: &str, body: Body, opts: PutOptions) -> StoreResult<PutOutcome> {
        let data = body_bytes(body).await?;
        match (&opts.condition, self.objects.borrow().get(key)) {
            (Some(Condition::DoesNotExist), Some(_)) => return Ok(PutOutcome::ConditionFailed),
            (Some(Condition::EtagMatches(_)), None) => return Ok(PutOutcome::ConditionFailed),
            (Some(Condition::EtagMatches(want)), Some(o)) if &o.meta.etag != want => {
                return Ok(PutOutcome::ConditionFailed)
            }
            _ => {}
        }
        if let Some(sum) = &opts.checksum {
            if !checksum_matches(sum, &data) {
                return Ok(PutOutcome::ChecksumMismatch);
            }
        }
        Ok(PutOutcome::Stored(self.store(key, data, opts)))
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<()> {
        let mut objects = self.objects.borrow_mut();
        for k in keys {
            objects.remove(k);
        }
        Ok(())
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> StoreResult<ListPage> {
        let limit = (opts.limit.unwrap_or(1000) as usize).clamp(1, LIST_PAGE_MAX);
        // A cursor carries on after the last key it covered; with `start_after` too, the later wins.
        let after = opts.cursor.clone().max(opts.start_after.clone());
        let objects = self.objects.borrow();
        let mut page = ListPage::default();
        let mut last_key: Option<String> = None;
        for (key, obj) in objects.range(prefix.to_string()..) {
            if !key.starts_with(prefix) {
                break;
            }
            if after.as_ref().is_some_and(|a| key <= a) {
                continue;
            }
            let common = opts.delimiter.as_deref().filter(|d| !d.is_empty()).and_then(|d| {
                let rest = key.get(prefix.len()..)?;
                rest.find(d).and_then(|i| key.get(..prefix.len() + i + d.len()))
            });
            // Keys under the prefix just listed fold into it, so the cursor passes them all
            // and the prefix never comes back on the next page.
            if common.is_some() && page.prefixes.last().map(String::as_str) == common {
                last_key = Some(key.clone());
                continue;
            }
            if page.objects.len() + page.prefixes.len() >= limit {
                page.cursor = last_key;
                return Ok(page);
            }
            match common {
                Some(c) => page.prefixes.push(c.to_string()),
                None => page.objects.push(obj.meta.clone()),
            }
            last_key = Some(key.clone());
        }
        Ok(page)
    }

    async fn create_multipart(&self, key: &str, opts: PutOptions) -> StoreResult<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.uploads
            .borrow_mut()
            .insert(id.clone(), Upload { key: key.to_string(), opts, parts: BTreeMap::new() });
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        body: Body,
    ) -> StoreResult<UploadedPart> {
        let data = body_bytes(body).await?;
        let mut uploads = self.uploads.borrow_mut();
        let upload = uploads
            .get_mut(upload_id)
            .ok_or_else(|| StoreError::Backend("unknown multipart upload".into()))?;
        if upload.key != key || part_number == 0 || part_number > 10_000 {
            return Err(StoreError::Backend("bad multipart part".into()));
        }
        // A part's etag is the MD5 of its bytes, as R2 gives it.
        let etag = hex::encode(md5::Md5::digest(&data));
        upload.parts.insert(part_number, (etag.clone(), data));
        Ok(UploadedPart { part_number, etag })
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> StoreResult<ObjectMeta> {
        let data = {
            let uploads = self.uploads.borrow();
            let upload = uploads
                .get(upload_id)
                .ok_or_else(|| StoreError::Backend("unknown multipart upload".into()))?;
            if upload.key != key {
                return Err(StoreError::Backend("multipart key mismatch".into()));
            }
            let chosen: Vec<&[u8]> = parts
                .iter()
                .map(|p| upload.parts.get(&p.part_number).filter(|(etag, _)| *etag == p.etag).map(|(_, d)| d.as_slice()))
                .collect::<Option<_>>()
                .ok_or_else(|| StoreError::Backend("completing with a part never uploaded (or another etag)".into()))?;
            // R2's rules: every part but the last the same size, at least 5 MiB, last not larger.
            let sizes: Vec<u64> = chosen.iter().map(|d| d.len() as u64).collect();
            if let Some((last, rest)) = sizes.split_last() {
                if let Some(first) = rest.first() {
                    if *first < R2_MIN_PART || rest.iter().any(|s| s != first) || last > first {
                        return Err(StoreError::Backend(format!(
                            "multipart parts must be equal and >= 5 MiB: {sizes:?}"
                        )));
                    }
                }
            }
            chosen.concat()
        };
        // Only a completed upload is gone; a refused completion can be retried, as on R2.
        let upload = self
            .uploads
            .borrow_mut()
            .remove(upload_id)
            .ok_or_else(|| StoreError::Backend("unknown multipart upload".into()))?;
        let opts = PutOptions { checksum: None, condition: None, ..upload.opts };
        Ok(self.store(key, data, opts))
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> StoreResult<()> {
        self.uploads.borrow_mut().remove(upload_id);
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryKv {
    entries: RefCell<BTreeMap<String, String>>,
}

#[async_trait(?Send)]
impl KvStore for MemoryKv {
    async fn get(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    async fn put(&self, key: &str, value: &str, _ttl: Option<u64>) -> StoreResult<()> {
        self.entries
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        _cursor: Option<String>,
    ) -> StoreResult<(Vec<String>, Option<String>)> {
        let keys = self
            .entries
            .borrow()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        Ok((keys, None))
    }
}

/// Runs jobs in process, one at a time per lock name, like the Durable Object does.
pub struct MemoryCoordinator {
    env: JobEnv,
    locks: RefCell<HashMap<String, Rc<futures::lock::Mutex<()>>>>,
}

#[async_trait(?Send)]
impl Coordinator for MemoryCoordinator {
    async fn run(&self, lock: &str, job: JobRequest) -> JobResult {
        let mutex = self
            .locks
            .borrow_mut()
            .entry(lock.to_string())
            .or_default()
            .clone();
        let _guard = mutex.lock().await;
        // Round-trip through JSON, as the Durable Object call does.
        let job: JobRequest = serde_json::to_value(&job)
            .and_then(serde_json::from_value)
            .map_err(|e| crate::jobs::JobError::internal(format!("job does not round-trip through JSON: {e}")))?;
        crate::jobs::execute(&self.env, job).await
    }
}

struct MemorySession {
    record: serde_json::Value,
    version: u64,
    cleanup: Cleanup,
    expires_ms: f64,
}

/// Sessions in memory; `sweep` plays the Durable Object alarm.
pub struct MemorySessions {
    sessions: RefCell<HashMap<String, MemorySession>>,
    store: Rc<MemoryObjectStore>,
    clock: Rc<ManualClock>,
}

impl MemorySessions {
    pub fn len(&self) -> usize {
        self.sessions.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cleans up every session idle past its time-to-live, as the alarm would.
    pub async fn sweep(&self) {
        let now = self.clock.now_ms();
        let expired: Vec<(String, Cleanup)> = self
            .sessions
            .borrow()
            .iter()
            .filter(|(_, s)| s.expires_ms <= now)
            .map(|(id, s)| (id.clone(), s.cleanup.clone()))
            .collect();
        for (id, cleanup) in expired {
            run_cleanup(&*self.store, &cleanup).await;
            self.sessions.borrow_mut().remove(&id);
        }
    }
}

#[async_trait(?Send)]
impl SessionStore for MemorySessions {
    async fn create(&self, id: &str, record: &serde_json::Value, cleanup: &Cleanup, ttl_ms: f64) -> StoreResult<()> {
        let session = MemorySession {
            record: record.clone(),
            version: 1,
            cleanup: cleanup.clone(),
            expires_ms: self.clock.now_ms() + ttl_ms,
        };
        self.sessions.borrow_mut().insert(id.to_string(), session);
        Ok(())
    }

    async fn get(&self, id: &str) -> StoreResult<Option<(serde_json::Value, u64)>> {
        Ok(self.sessions.borrow().get(id).map(|s| (s.record.clone(), s.version)))
    }

    async fn update(&self, id: &str, version: u64, record: &serde_json::Value, cleanup: &Cleanup, ttl_ms: f64) -> StoreResult<bool> {
        let mut sessions = self.sessions.borrow_mut();
        match sessions.get_mut(id) {
            Some(s) if s.version == version => {
                s.record = record.clone();
                s.cleanup = cleanup.clone();
                s.version += 1;
                s.expires_ms = self.clock.now_ms() + ttl_ms;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete(&self, id: &str) -> StoreResult<()> {
        self.sessions.borrow_mut().remove(id);
        Ok(())
    }
}

type FetchHandler = Rc<dyn Fn(&str, Request) -> futures::future::LocalBoxFuture<'static, Response>>;

/// Outbound fetch for tests: a handler stands in for the network. Like the Worker's fetcher it
/// follows no redirects: the handler sees every hop the client follows, with its headers.
#[derive(Default)]
pub struct MemoryFetcher {
    handler: RefCell<Option<FetchHandler>>,
}

impl MemoryFetcher {
    pub fn set_handler(&self, f: impl Fn(&str, Request) -> Response + 'static) {
        self.set_async_handler(move |url, req| Box::pin(futures::future::ready(f(url, req))));
    }

    /// A handler that may await, e.g. another registry's `App` standing in for an upstream.
    pub fn set_async_handler(&self, f: impl Fn(&str, Request) -> futures::future::LocalBoxFuture<'static, Response> + 'static) {
        *self.handler.borrow_mut() = Some(Rc::new(f));
    }
}

#[async_trait(?Send)]
impl Fetcher for MemoryFetcher {
    async fn fetch(&self, url: &str, req: Request) -> StoreResult<Response> {
        let handler = self.handler.borrow().clone();
        match handler {
            Some(h) => Ok(h(url, req).await),
            None => Err(StoreError::Backend(format!("no network in tests: {url}"))),
        }
    }
}

/// PBKDF2 in Rust, for native builds.
pub struct RustCrypto;

#[async_trait(?Send)]
impl Crypto for RustCrypto {
    async fn pbkdf2_sha256(&self, password: &str, salt: &[u8], iterations: u32) -> StoreResult<[u8; 32]> {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, iterations, &mut out);
        Ok(out)
    }
}

/// A clock tests can move.
pub struct ManualClock(Cell<f64>);

impl ManualClock {
    pub fn new(start_ms: f64) -> Self {
        ManualClock(Cell::new(start_ms))
    }

    pub fn advance(&self, ms: f64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> f64 {
        self.0.get()
    }

    /// Time passes at once: a test never waits, and backoff shows up on the clock.
    fn sleep(&self, ms: u64) -> futures::future::LocalBoxFuture<'static, ()> {
        self.advance(ms as f64);
        Box::pin(futures::future::ready(()))
    }
}

/// Background work queued until the test runs it (after the response, as in the Worker).
#[derive(Default)]
pub struct MemoryBackground {
    queue: RefCell<Vec<futures::future::LocalBoxFuture<'static, ()>>>,
}

impl MemoryBackground {
    /// Runs every queued task, and whatever those queue in turn.
    pub fn run_all(&self) {
        loop {
            let work: Vec<_> = self.queue.borrow_mut().drain(..).collect();
            if work.is_empty() {
                return;
            }
            for w in work {
                futures::executor::block_on(w);
            }
        }
    }

    pub fn pending(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Runs `main` while the queued work makes progress whenever `main` waits, as the Worker's
    /// event loop runs `wait_until` work alongside the response: a reader of a gated body gets
    /// its verdict from the cache fill. Work unfinished when `main` ends stays queued.
    pub async fn run_until<T>(&self, main: impl std::future::Future<Output = T>) -> T {
        use std::task::Poll;
        let mut main = std::pin::pin!(main);
        let mut running: Vec<futures::future::LocalBoxFuture<'static, ()>> = Vec::new();
        futures::future::poll_fn(|cx| {
            if let Poll::Ready(out) = main.as_mut().poll(cx) {
                self.queue.borrow_mut().splice(0..0, running.drain(..));
                return Poll::Ready(out);
            }
            let queued: Vec<_> = self.queue.borrow_mut().drain(..).collect();
            running.extend(queued);
            let before = running.len();
            running.retain_mut(|work| work.as_mut().poll(cx).is_pending());
            if running.len() < before || self.pending() > 0 {
                // Finished or newly queued work may be what `main` waits for: look again.
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }
}

impl Background for MemoryBackground {
    fn spawn(&self, work: futures::future::LocalBoxFuture<'static, ()>) {
        self.queue.borrow_mut().push(work);
    }
}

/// A whole in-memory platform with handles to its parts.
pub struct MemoryPlatform {
    pub platform: Platform,
    pub store: Rc<MemoryObjectStore>,
    pub kv: Rc<MemoryKv>,
    pub fetcher: Rc<MemoryFetcher>,
    pub clock: Rc<ManualClock>,
    pub sessions: Rc<MemorySessions>,
    pub background: Rc<MemoryBackground>,
}

impl MemoryPlatform {
    pub fn new() -> Self {
        // 2026-01-01T00:00:00Z
        let clock = Rc::new(ManualClock::new(1_767_225_600_000.0));
        let store = Rc::new(MemoryObjectStore::new(clock.clone()));
        let kv = Rc::new(MemoryKv::default());
        let fetcher = Rc::new(MemoryFetcher::default());
        let coordinator = Rc::new(MemoryCoordinator {
            env: JobEnv {
                store: store.clone(),
                clock: clock.clone(),
            },
            locks: RefCell::default(),
        });
        let sessions = Rc::new(MemorySessions {
            sessions: RefCell::default(),
            store: store.clone(),
            clock: clock.clone(),
        });
        let background = Rc::new(MemoryBackground::default());
        MemoryPlatform {
            platform: Platform {
                store: store.clone(),
                kv: kv.clone(),
                coordinator,
                sessions: sessions.clone(),
                fetcher: fetcher.clone(),
                clock: clock.clone(),
                crypto: Rc::new(RustCrypto),
                background: background.clone(),
            },
            store,
            kv,
            fetcher,
            clock,
            sessions,
            background,
        }
    }
}

impl Default for MemoryPlatform {
    fn default() -> Self {
        Self::new()
    }
}

use super::stream::PlatformStream;
