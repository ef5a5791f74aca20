//! In-memory platform for native tests. It follows the R2/KV rules the Worker is bound by
//! (checksums verified on put, conditional puts, multipart part-size rules) so that tests
//! catch code that would break on the real platform.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use async_trait::async_trait;
use futures::FutureExt;
use std::future::Future;
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
    writes: Cell<u64>,
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

    /// How many `put`/`delete` calls it has answered (what a request costs in writes).
    pub fn writes(&self) -> u64 {
        self.writes.get()
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
        self.writes.set(self.writes.get() + 1);
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
        self.writes.set(self.writes.get() + 1);
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

type FetchHandler = Rc<dyn Fn(&str, Request) -> futures::future::LocalBoxFuture<'static, StoreResult<Response>>>;

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
        self.set_network(move |url, req| Box::pin(f(url, req).map(Ok)));
    }

    /// A handler that may also fail as the network does (a refused connection, a reset):
    /// its error is what `fetch` returns, as the Worker's `fetch` rejects.
    pub fn set_network(&self, f: impl Fn(&str, Request) -> futures::future::LocalBoxFuture<'static, StoreResult<Response>> + 'static) {
        *self.handler.borrow_mut() = Some(Rc::new(f));
    }
}

#[async_trait(?Send)]
impl Fetcher for MemoryFetcher {
    async fn fetch(&self, url: &str, req: Request) -> StoreResult<Response> {
        let handler = self.handler.borrow().clone();
        match handler {
            Some(h) => h(url, req).await,
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

/// A clock tests move, whose timers wait as the Worker's do: `sleep` ends once the clock has
/// reached its time, moved by the test (`advance`, between requests) or by the executor
/// ([`MemoryBackground::run`]) when every task waits. Time stands still while work runs, so
/// a slow or hung upstream costs what its timers say, and nothing else does.
/// Clones share the time and the timers.
#[derive(Clone)]
pub struct ManualClock(Rc<RefCell<Timers>>);

#[derive(Default)]
struct Timers {
    now: f64,
    next_id: u64,
    /// The sleeps still waiting, by id: when each ends and what to wake then.
    waiting: BTreeMap<u64, (f64, std::task::Waker)>,
}

impl ManualClock {
    pub fn new(start_ms: f64) -> Self {
        ManualClock(Rc::new(RefCell::new(Timers { now: start_ms, ..Default::default() })))
    }

    /// Moves time on by `ms`, ending the sleeps that are due by then.
    pub fn advance(&self, ms: f64) {
        let now = self.now_ms() + ms;
        self.move_to(now);
    }

    /// Moves time to the earliest waiting timer and ends the sleeps due then; false when no
    /// timer waits (whatever waits then waits for something no time brings).
    pub fn advance_to_next_timer(&self) -> bool {
        let next = self.0.borrow().waiting.values().map(|(at, _)| *at).reduce(f64::min);
        match next {
            Some(at) => {
                self.move_to(at.max(self.now_ms()));
                true
            }
            None => false,
        }
    }

    fn move_to(&self, now: f64) {
        let due: Vec<std::task::Waker> = {
            let mut timers = self.0.borrow_mut();
            timers.now = now;
            let ids: Vec<u64> = timers.waiting.iter().filter(|(_, (at, _))| *at <= now).map(|(id, _)| *id).collect();
            ids.iter().filter_map(|id| timers.waiting.remove(id)).map(|(_, waker)| waker).collect()
        };
        // Woken outside the borrow: a waker may poll at once.
        due.into_iter().for_each(std::task::Waker::wake);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> f64 {
        self.0.borrow().now
    }

    /// Ends once the clock reaches now + `ms`; a sleep dropped before then leaves no timer
    /// behind (a timeout that lost its race never moves the clock).
    fn sleep(&self, ms: u64) -> futures::future::LocalBoxFuture<'static, ()> {
        let id = {
            let mut timers = self.0.borrow_mut();
            timers.next_id += 1;
            timers.next_id
        };
        Box::pin(Sleep { timers: self.0.clone(), id, until: self.now_ms() + ms as f64 })
    }
}

struct Sleep {
    timers: Rc<RefCell<Timers>>,
    id: u64,
    until: f64,
}

impl std::future::Future for Sleep {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let mut timers = self.timers.borrow_mut();
        if timers.now >= self.until {
            timers.waiting.remove(&self.id);
            return std::task::Poll::Ready(());
        }
        timers.waiting.insert(self.id, (self.until, cx.waker().clone()));
        std::task::Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Ok(mut timers) = self.timers.try_borrow_mut() {
            timers.waiting.remove(&self.id);
        }
    }
}

/// Background work (`wait_until` in the Worker): queued by the request, run alongside it and
/// after it by [`MemoryBackground::run`] and [`MemoryBackground::run_all`].
pub struct MemoryBackground {
    /// Every task not finished yet, started or not.
    queue: RefCell<Vec<futures::future::LocalBoxFuture<'static, ()>>>,
    clock: ManualClock,
}

/// Set whenever any task is woken: the executor's sign that not every task is stuck.
struct Woken(std::sync::atomic::AtomicBool);

impl std::task::Wake for Woken {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl MemoryBackground {
    pub fn new(clock: ManualClock) -> Self {
        MemoryBackground { queue: RefCell::default(), clock }
    }

    /// Tasks not finished yet (a hung one included).
    pub fn pending(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Polls every task once; true when one finished or queued another (which may be what
    /// the others wait for).
    fn poll_work(&self, cx: &mut std::task::Context<'_>) -> bool {
        let mut work: Vec<_> = self.queue.borrow_mut().drain(..).collect();
        let before = work.len();
        work.retain_mut(|task| task.as_mut().poll(cx).is_pending());
        let mut queue = self.queue.borrow_mut();
        let progressed = work.len() < before || !queue.is_empty();
        // The older work first, then what was queued meanwhile.
        queue.splice(0..0, work);
        progressed
    }

    /// Runs `main` while the queued work makes progress whenever `main` waits, as the Worker's
    /// event loop runs `wait_until` work alongside the response: a reader of a gated body gets
    /// its verdict from the cache fill. Work unfinished when `main` ends stays queued. Time
    /// does not move: see [`MemoryBackground::run`].
    pub async fn run_until<T>(&self, main: impl std::future::Future<Output = T>) -> T {
        use std::task::Poll;
        let mut main = std::pin::pin!(main);
        futures::future::poll_fn(|cx| {
            if let Poll::Ready(out) = main.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            if self.poll_work(cx) {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }

    /// Runs `main` to its end on this thread with the queued work alongside; whenever every
    /// task waits, the clock moves to the next timer. `None` when they all wait for what no
    /// timer brings (`main` would never end). Work unfinished when `main` ends stays queued.
    pub fn run<T>(&self, main: impl std::future::Future<Output = T>) -> Option<T> {
        let woken = std::sync::Arc::new(Woken(std::sync::atomic::AtomicBool::new(false)));
        let waker = std::task::Waker::from(woken.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut all = std::pin::pin!(self.run_until(main));
        loop {
            woken.0.store(false, std::sync::atomic::Ordering::SeqCst);
            if let std::task::Poll::Ready(out) = all.as_mut().poll(&mut cx) {
                return Some(out);
            }
            if !woken.0.load(std::sync::atomic::Ordering::SeqCst) && !self.clock.advance_to_next_timer() {
                return None;
            }
        }
    }

    /// Runs the queued work (and what it queues in turn), moving the clock on as its timers
    /// say, until every task has finished or waits for what no timer brings (a hung
    /// upstream's answer with no timeout left): those stay queued.
    pub fn run_all(&self) {
        self.run(futures::future::pending::<()>());
    }
}

impl Background for MemoryBackground {
    fn spawn(&self, work: futures::future::LocalBoxFuture<'static, ()>) {
        self.queue.borrow_mut().push(work);
    }
}

/// The edge cache's memory tier, natively: the same keys, expiry and purges as the Worker's.
pub struct MemoryEdgeCache {
    clock: Rc<dyn Clock>,
    entries: RefCell<BTreeMap<String, EdgeEntry>>,
    purges: Cell<u64>,
}

struct EdgeEntry {
    status: u16,
    headers: crate::http::Headers,
    body: Vec<u8>,
    tags: Vec<String>,
    expires_ms: f64,
}

/// Bodies larger than this are not kept (as in the Worker's memory tier).
const EDGE_ENTRY_BYTES: u64 = 1024 * 1024;

impl MemoryEdgeCache {
    pub fn new(clock: Rc<dyn Clock>) -> Self {
        MemoryEdgeCache { clock, entries: RefCell::default(), purges: Cell::new(0) }
    }

    /// How many answers are kept (tests).
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait(?Send)]
impl super::EdgeCache for MemoryEdgeCache {
    async fn lookup(&self, key: &str, if_none_match: Option<&str>) -> Option<Response> {
        let now = self.clock.now_ms();
        let mut entries = self.entries.borrow_mut();
        let fresh = entries.get(key).is_some_and(|e| e.expires_ms > now);
        if !fresh {
            entries.remove(key);
            return None;
        }
        let e = entries.get(key)?;
        let etag = e.headers.get("etag").map(|t| t.trim_start_matches("W/").to_string());
        if let (Some(tag), Some(wanted)) = (&etag, if_none_match) {
            if wanted.split(',').any(|t| t.trim().trim_start_matches("W/") == tag) {
                return Some(Response::new(304).with_header("ETag", tag.clone()));
            }
        }
        let mut resp = Response::new(e.status);
        resp.headers = e.headers.clone();
        resp.body = Body::Bytes(e.body.clone());
        Some(resp)
    }

    fn generation(&self) -> u64 {
        self.purges.get()
    }

    async fn keep(&self, key: &str, hint: &super::EdgeHint, generation: u64, mut resp: Response) -> Response {
        if resp.body.known_length().is_none_or(|l| l > EDGE_ENTRY_BYTES) {
            return resp;
        }
        let body = std::mem::replace(&mut resp.body, Body::Empty);
        let Ok(bytes) = body.read_capped(EDGE_ENTRY_BYTES).await else {
            return Response::new(500);
        };
        self.entries.borrow_mut().insert(
            key.to_string(),
            EdgeEntry {
                status: resp.status,
                headers: resp.headers.clone(),
                body: bytes.clone(),
                tags: hint.tags.clone(),
                expires_ms: self.clock.now_ms() + f64::from(hint.seconds) * 1000.0,
            },
        );
        if self.purges.get() != generation {
            self.entries.borrow_mut().remove(key);
        }
        resp.body = Body::Bytes(bytes);
        resp
    }

    async fn purge(&self, tag: &str) {
        self.purges.set(self.purges.get() + 1);
        self.entries.borrow_mut().retain(|_, e| !e.tags.iter().any(|t| t == tag));
    }

    async fn purge_all(&self) {
        self.purges.set(self.purges.get() + 1);
        self.entries.borrow_mut().clear();
    }

    fn stats(&self) -> serde_json::Value {
        let entries = self.entries.borrow();
        let bytes: usize = entries.values().map(|e| e.body.len()).sum();
        serde_json::json!({ "entries": entries.len(), "bytes": bytes, "purges": self.purges.get() })
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
    pub edge: Rc<MemoryEdgeCache>,
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
        let background = Rc::new(MemoryBackground::new((*clock).clone()));
        let edge = Rc::new(MemoryEdgeCache::new(clock.clone()));
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
                edge: edge.clone(),
            },
            store,
            kv,
            fetcher,
            clock,
            sessions,
            background,
            edge,
        }
    }
}

impl Default for MemoryPlatform {
    fn default() -> Self {
        Self::new()
    }
}

use super::stream::PlatformStream;
