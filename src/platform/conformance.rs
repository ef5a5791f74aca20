//! Object-store conformance: what the protocols rely on from R2, checked through the
//! `ObjectStore` trait. Natively it runs against the in-memory twin
//! (tests/store_conformance_native.rs), in the Worker against its R2 binding
//! (`POST /-/admin/selftest/store`), so the twin native tests trust is known to behave like R2.
//! The rules are those of Cloudflare's R2 Workers API reference (`put` with `onlyIf` resolves
//! to null, checksums refuse the write, `list` pages with `truncated`/`cursor` and
//! `delimitedPrefixes`) and its multipart upload page (parts of at least 5 MiB, all but the
//! last the same size, the last no larger).

use std::collections::BTreeMap;

use serde::Serialize;
use sha1::Digest;

use super::{ByteRange, Checksum, Condition, ListOptions, ListPage, ObjectMeta, ObjectStore, PutOptions, PutOutcome, StoreError, UploadedPart};
use crate::http::Body;
use crate::storage::STREAM_PART_SIZE as PART_SIZE;

#[derive(Debug, Serialize)]
pub struct Case {
    pub name: &'static str,
    pub passed: bool,
    /// Why it failed; empty when it passed.
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub passed: bool,
    /// Where the run wrote (and what it removed again).
    pub prefix: String,
    pub cases: Vec<Case>,
}

impl Report {
    fn record(&mut self, name: &'static str, result: Check) {
        let detail = result.err().map(|Failure(d)| d).unwrap_or_default();
        self.passed &= detail.is_empty();
        self.cases.push(Case { name, passed: detail.is_empty(), detail });
    }
}

struct Failure(String);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure(format!("store error: {e}"))
    }
}

type Check = Result<(), Failure>;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else {
        Err(Failure(what()))
    }
}

/// Runs every case under a fresh prefix, then removes what it wrote.
pub async fn run(store: &dyn ObjectStore) -> Report {
    let p = format!("selftest/{}/", uuid::Uuid::new_v4().simple());
    let mut report = Report { passed: true, prefix: p.clone(), cases: Vec::new() };
    report.record("put, head, get, overwrite and delete keep body and metadata", round_trip(store, &p).await);
    report.record("ranges: slice, from, suffix, clamped at the end, refused past it", ranges(store, &p).await);
    report.record("conditional puts write nothing when the condition fails", conditional_puts(store, &p).await);
    for (name, algorithm) in [
        ("a wrong SHA-256 refuses the write and keeps the previous object", Algorithm::Sha256),
        ("a wrong SHA-512 refuses the write and keeps the previous object", Algorithm::Sha512),
        ("a wrong SHA-1 refuses the write and keeps the previous object", Algorithm::Sha1),
        ("a wrong MD5 refuses the write and keeps the previous object", Algorithm::Md5),
    ] {
        report.record(name, checksums(store, &p, algorithm).await);
    }
    report.record("multipart assembles parts in part order with the upload's metadata", with_upload(store, &format!("{p}mp/order"), multipart_in_order).await);
    report.record("multipart refuses a non-final part under 5 MiB", with_upload(store, &format!("{p}mp/small"), |s, k, id| refused_sizes(s, k, id, &[1024, 10])).await);
    report.record("multipart refuses non-final parts of different sizes", with_upload(store, &format!("{p}mp/unequal"), |s, k, id| refused_sizes(s, k, id, &[PART_SIZE, PART_SIZE + 1024, 10])).await);
    report.record("multipart refuses a last part larger than the others", with_upload(store, &format!("{p}mp/last"), |s, k, id| refused_sizes(s, k, id, &[PART_SIZE, PART_SIZE + 1024])).await);
    report.record("multipart refuses a wrong part etag and can then complete", with_upload(store, &format!("{p}mp/etag"), wrong_etag_then_complete).await);
    report.record("an aborted multipart upload leaves nothing and takes no more parts", with_upload(store, &format!("{p}mp/abort"), aborted).await);
    report.record("an unknown upload id is refused", unknown_upload(store, &p).await);
    let listing = format!("{p}list/");
    let made = make_listing(store, &listing).await;
    let made_ok = made.is_ok();
    report.record("listing: objects carry their metadata", made);
    if made_ok {
        report.record("listing: limit and cursor page through every key once", list_pages(store, &listing).await);
        report.record("listing: start_after and a narrower prefix", list_start_after_and_prefix(store, &listing).await);
        report.record("listing: a delimiter groups keys into prefixes, across pages too", list_delimited(store, &listing).await);
    }
    report.record("delete of many keys at once (one missing) removes them all", delete_many(store, &listing).await);
    report.record("the run leaves nothing behind", clean_up(store, &p).await);
    report
}

/// Deterministic bytes, different for each `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i as u64).wrapping_add(u64::from(seed) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).collect()
}

fn stored(outcome: PutOutcome, what: &str) -> Result<ObjectMeta, Failure> {
    match outcome {
        PutOutcome::Stored(meta) => Ok(meta),
        other => Err(Failure(format!("{what}: expected Stored, got {other:?}"))),
    }
}

async fn put(store: &dyn ObjectStore, key: &str, data: &[u8], opts: PutOptions) -> Result<PutOutcome, Failure> {
    Ok(store.put(key, Body::Bytes(data.to_vec()), opts).await?)
}

/// The object's metadata, bytes and served range.
async fn read(store: &dyn ObjectStore, key: &str, range: Option<ByteRange>) -> Result<Option<(ObjectMeta, Vec<u8>, Option<(u64, u64)>)>, Failure> {
    let Some(object) = store.get(key, range).await? else {
        return Ok(None);
    };
    let bytes = object.body.read_capped(u64::MAX).await.map_err(|e| Failure(format!("reading {key}: {e}")))?;
    Ok(Some((object.meta, bytes, object.range)))
}

/// The whole body of `key`, or a failure when it is missing.
async fn body_of(store: &dyn ObjectStore, key: &str) -> Result<Vec<u8>, Failure> {
    read(store, key, None).await?.map(|(_, bytes, _)| bytes).ok_or_else(|| Failure(format!("{key} is missing")))
}

fn custom(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn round_trip(store: &dyn ObjectStore, p: &str) -> Check {
    let key = format!("{p}round-trip/object");
    let data = pattern(1000, 1);
    let opts = PutOptions { content_type: Some("application/vnd.selftest".into()), custom: custom(&[("origin", "selftest"), ("digest", "sha256:0")]), ..Default::default() };
    let meta = stored(put(store, &key, &data, opts.clone()).await?, "put")?;
    ensure(meta.key == key && meta.size == 1000 && !meta.etag.is_empty(), || format!("put answered {meta:?}"))?;
    let head = store.head(&key).await?.ok_or_else(|| Failure("head: missing".into()))?;
    ensure(head.etag == meta.etag && head.size == 1000, || format!("head {head:?} differs from put {meta:?}"))?;
    ensure(head.content_type == opts.content_type && head.custom == opts.custom, || format!("head lost metadata: {head:?}"))?;
    let (got, bytes, range) = read(store, &key, None).await?.ok_or_else(|| Failure("get: missing".into()))?;
    ensure(bytes == data && range.is_none(), || format!("get: {} bytes, range {range:?}", bytes.len()))?;
    ensure(got.content_type == opts.content_type && got.custom == opts.custom && got.etag == meta.etag, || format!("get lost metadata: {got:?}"))?;

    // An overwrite replaces body and metadata, under a new etag.
    let replacement = pattern(10, 2);
    let again = PutOptions { content_type: Some("text/plain".into()), custom: custom(&[("origin", "again")]), ..Default::default() };
    let second = stored(put(store, &key, &replacement, again.clone()).await?, "overwrite")?;
    ensure(second.etag != meta.etag, || "an overwrite kept the etag".into())?;
    let (got, bytes, _) = read(store, &key, None).await?.ok_or_else(|| Failure("get after overwrite: missing".into()))?;
    ensure(bytes == replacement && got.custom == again.custom && got.content_type == again.content_type, || format!("overwrite: {got:?}"))?;

    // An empty object (markers) is an object.
    let marker = format!("{p}round-trip/marker");
    stored(store.put(&marker, Body::Empty, PutOptions::default()).await?, "empty put")?;
    ensure(body_of(store, &marker).await?.is_empty(), || "the empty object has bytes".into())?;
    ensure(store.head(&marker).await?.is_some_and(|m| m.size == 0), || "the empty object is not there".into())?;

    let missing = format!("{p}round-trip/missing");
    ensure(store.head(&missing).await?.is_none() && store.get(&missing, None).await?.is_none(), || "a missing key answered".into())?;
    store.delete(&[key.clone(), marker.clone()]).await?;
    ensure(store.head(&key).await?.is_none() && store.head(&marker).await?.is_none(), || "deleted keys still answer".into())?;
    // Deleting what is gone is not an error.
    store.delete(&[key]).await?;
    Ok(())
}

async fn ranges(store: &dyn ObjectStore, p: &str) -> Check {
    let key = format!("{p}ranges/object");
    let data = pattern(100, 3);
    stored(put(store, &key, &data, PutOptions::default()).await?, "put")?;
    let cases = [
        (ByteRange::Slice { offset: 10, length: 20 }, (10, 20)),
        (ByteRange::From { offset: 90 }, (90, 10)),
        (ByteRange::Suffix { length: 5 }, (95, 5)),
        (ByteRange::Slice { offset: 95, length: 50 }, (95, 5)),
        (ByteRange::Suffix { length: 500 }, (0, 100)),
    ];
    for (range, (offset, length)) in cases {
        let (meta, bytes, served) = read(store, &key, Some(range)).await?.ok_or_else(|| Failure(format!("{range:?}: missing")))?;
        let want = data.get(offset as usize..(offset + length) as usize).unwrap_or_default();
        ensure(bytes == want, || format!("{range:?}: {} bytes, not bytes {offset}+{length}", bytes.len()))?;
        ensure(served == Some((offset, length)), || format!("{range:?}: served range {served:?}, not {:?}", (offset, length)))?;
        ensure(meta.size == 100, || format!("{range:?}: size {} is the range's, not the object's", meta.size))?;
    }
    for range in [ByteRange::Slice { offset: 150, length: 1 }, ByteRange::From { offset: 101 }] {
        ensure(store.get(&key, Some(range)).await.is_err(), || format!("{range:?} past the end was served"))?;
    }
    Ok(())
}

async fn conditional_puts(store: &dyn ObjectStore, p: &str) -> Check {
    let key = format!("{p}conditional/object");
    let create_only = || PutOptions { condition: Some(Condition::DoesNotExist), ..Default::default() };
    let first = pattern(50, 4);
    let meta = stored(put(store, &key, &first, create_only()).await?, "create-only on a new key")?;
    let outcome = put(store, &key, &pattern(60, 5), create_only()).await?;
    ensure(matches!(outcome, PutOutcome::ConditionFailed), || format!("create-only over an object: {outcome:?}"))?;
    ensure(body_of(store, &key).await? == first, || "a failed create-only changed the object".into())?;

    let if_match = |etag: &str| PutOptions { condition: Some(Condition::EtagMatches(etag.to_string())), ..Default::default() };
    let second = pattern(70, 6);
    let updated = stored(put(store, &key, &second, if_match(&meta.etag)).await?, "etag-matching put")?;
    ensure(body_of(store, &key).await? == second && updated.etag != meta.etag, || "the etag-matching put did not replace the object".into())?;
    let outcome = put(store, &key, &pattern(80, 7), if_match(&meta.etag)).await?;
    ensure(matches!(outcome, PutOutcome::ConditionFailed), || format!("put with a stale etag: {outcome:?}"))?;
    ensure(body_of(store, &key).await? == second, || "a put with a stale etag changed the object".into())?;

    let absent = format!("{p}conditional/absent");
    let outcome = put(store, &absent, &first, if_match(&meta.etag)).await?;
    ensure(matches!(outcome, PutOutcome::ConditionFailed), || format!("etag-matching put on a missing key: {outcome:?}"))?;
    ensure(store.head(&absent).await?.is_none(), || "an etag-matching put created a missing key".into())?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Algorithm {
    Sha256,
    Sha512,
    Sha1,
    Md5,
}

impl Algorithm {
    fn of(self, data: &[u8]) -> Checksum {
        match self {
            Algorithm::Sha256 => Checksum::Sha256(sha2::Sha256::digest(data).to_vec()),
            Algorithm::Sha512 => Checksum::Sha512(sha2::Sha512::digest(data).to_vec()),
            Algorithm::Sha1 => Checksum::Sha1(sha1::Sha1::digest(data).to_vec()),
            Algorithm::Md5 => Checksum::Md5(md5::Md5::digest(data).to_vec()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
            Algorithm::Sha1 => "sha1",
            Algorithm::Md5 => "md5",
        }
    }
}

async fn checksums(store: &dyn ObjectStore, p: &str, algorithm: Algorithm) -> Check {
    let key = format!("{p}checksum/{}", algorithm.name());
    let with = |sum: Checksum| PutOptions { checksum: Some(sum), ..Default::default() };
    let good = pattern(300, 8);
    stored(put(store, &key, &good, with(algorithm.of(&good))).await?, "put with the right checksum")?;
    // Other bytes under the first body's checksum: refused, the first body stays.
    let outcome = put(store, &key, &pattern(300, 9), with(algorithm.of(&good))).await?;
    ensure(matches!(outcome, PutOutcome::ChecksumMismatch), || format!("a wrong checksum: {outcome:?}"))?;
    ensure(body_of(store, &key).await? == good, || "a refused write changed the previous object".into())?;
    let absent = format!("{key}-absent");
    let outcome = put(store, &absent, &pattern(300, 9), with(algorithm.of(&good))).await?;
    ensure(matches!(outcome, PutOutcome::ChecksumMismatch), || format!("a wrong checksum on a new key: {outcome:?}"))?;
    ensure(store.head(&absent).await?.is_none(), || "a refused write stored something".into())?;
    Ok(())
}

/// Runs `check` on a fresh multipart upload of `key`, then aborts the upload whatever happened
/// (aborting a completed upload may fail; that is ignored).
async fn with_upload<'a, F, Fut>(store: &'a dyn ObjectStore, key: &'a str, check: F) -> Check
where
    F: FnOnce(&'a dyn ObjectStore, &'a str, String) -> Fut,
    Fut: std::future::Future<Output = Check> + 'a,
{
    let opts = PutOptions { content_type: Some("application/vnd.selftest.multipart".into()), custom: custom(&[("origin", "multipart")]), ..Default::default() };
    let id = store.create_multipart(key, opts).await?;
    let result = check(store, key, id.clone()).await;
    let _ = store.abort_multipart(key, &id).await;
    result
}

async fn upload(store: &dyn ObjectStore, key: &str, id: &str, number: u16, data: Vec<u8>) -> Result<UploadedPart, Failure> {
    let part = store.upload_part(key, id, number, Body::Bytes(data)).await?;
    ensure(part.part_number == number, || format!("part {number} came back as {}", part.part_number))?;
    Ok(part)
}

async fn multipart_in_order(store: &dyn ObjectStore, key: &str, id: String) -> Check {
    let (first, last) = (pattern(PART_SIZE, 10), pattern(1000, 11));
    // Uploaded last first: the part numbers, not the upload order, decide.
    let two = upload(store, key, &id, 2, last.clone()).await?;
    let one = upload(store, key, &id, 1, first.clone()).await?;
    let meta = store.complete_multipart(key, &id, vec![one, two]).await?;
    let size = (PART_SIZE + 1000) as u64;
    ensure(meta.size == size, || format!("completed size {}, not {size}", meta.size))?;
    let (got, bytes, _) = read(store, key, None).await?.ok_or_else(|| Failure("the completed object is missing".into()))?;
    ensure(bytes.len() == first.len() + last.len() && bytes.starts_with(&first) && bytes.ends_with(&last), || "the parts were not assembled in part order".into())?;
    ensure(got.content_type.as_deref() == Some("application/vnd.selftest.multipart") && got.custom == custom(&[("origin", "multipart")]), || format!("the upload's metadata was lost: {got:?}"))
}

async fn refused_sizes(store: &dyn ObjectStore, key: &str, id: String, sizes: &[usize]) -> Check {
    let mut parts = Vec::new();
    for (n, size) in (1u16..).zip(sizes) {
        parts.push(upload(store, key, &id, n, pattern(*size, n as u8)).await?);
    }
    let outcome = store.complete_multipart(key, &id, parts).await;
    ensure(outcome.is_err(), || format!("parts of {sizes:?} bytes were accepted"))?;
    ensure(store.head(key).await?.is_none(), || "a refused completion stored an object".into())
}

async fn wrong_etag_then_complete(store: &dyn ObjectStore, key: &str, id: String) -> Check {
    let data = pattern(10, 12);
    let part = upload(store, key, &id, 1, data.clone()).await?;
    let forged = UploadedPart { part_number: 1, etag: format!("{}0", part.etag) };
    ensure(store.complete_multipart(key, &id, vec![forged]).await.is_err(), || "a wrong part etag was accepted".into())?;
    ensure(store.head(key).await?.is_none(), || "a refused completion stored an object".into())?;
    // The upload stays open: completing with the right etag works (a single part has no minimum).
    store.complete_multipart(key, &id, vec![part]).await?;
    ensure(body_of(store, key).await? == data, || "the retried completion stored other bytes".into())
}

async fn aborted(store: &dyn ObjectStore, key: &str, id: String) -> Check {
    let part = upload(store, key, &id, 1, pattern(10, 13)).await?;
    store.abort_multipart(key, &id).await?;
    ensure(store.head(key).await?.is_none(), || "an aborted upload stored an object".into())?;
    ensure(store.upload_part(key, &id, 2, Body::Bytes(pattern(10, 14))).await.is_err(), || "an aborted upload took a part".into())?;
    ensure(store.complete_multipart(key, &id, vec![part]).await.is_err(), || "an aborted upload completed".into())?;
    ensure(store.head(key).await?.is_none(), || "an aborted upload stored an object".into())
}

async fn unknown_upload(store: &dyn ObjectStore, p: &str) -> Check {
    let key = format!("{p}mp/unknown");
    // Well-formed, never issued.
    let id = "0123456789abcdef0123456789abcdef";
    ensure(store.upload_part(&key, id, 1, Body::Bytes(pattern(10, 15))).await.is_err(), || "a part for an unknown upload was taken".into())?;
    let part = UploadedPart { part_number: 1, etag: "0".repeat(32) };
    ensure(store.complete_multipart(&key, id, vec![part]).await.is_err(), || "an unknown upload completed".into())?;
    ensure(store.head(&key).await?.is_none(), || "an unknown upload stored an object".into())
}

/// The names the listing cases write under their prefix.
const LISTED: [&str; 8] = ["a", "b", "c", "d/1", "d/2", "dd", "e/x/1", "f"];

async fn make_listing(store: &dyn ObjectStore, lp: &str) -> Check {
    for name in LISTED {
        let opts = PutOptions { content_type: Some("text/plain".into()), custom: custom(&[("name", name)]), ..Default::default() };
        stored(put(store, &format!("{lp}{name}"), name.as_bytes(), opts).await?, name)?;
    }
    let page = store.list(lp, ListOptions::default()).await?;
    let listed = page.objects.iter().find(|o| o.key == format!("{lp}dd")).ok_or_else(|| Failure("dd is not listed".into()))?;
    ensure(listed.size == 2 && listed.content_type.as_deref() == Some("text/plain") && listed.custom == custom(&[("name", "dd")]), || format!("listed without its metadata: {listed:?}"))
}

/// Names (under `lp`) of the objects and then the prefixes of a page.
fn names(lp: &str, page: &ListPage) -> Vec<String> {
    let objects = page.objects.iter().map(|o| o.key.as_str());
    objects.chain(page.prefixes.iter().map(String::as_str)).map(|k| k.strip_prefix(lp).unwrap_or(k).to_string()).collect()
}

/// Every page of a listing, following cursors (at most `LISTED.len() + 1` pages).
async fn pages(store: &dyn ObjectStore, prefix: &str, opts: ListOptions) -> Result<Vec<ListPage>, Failure> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..=LISTED.len() {
        let page = store.list(prefix, ListOptions { cursor, ..opts.clone() }).await?;
        cursor = page.cursor.clone();
        out.push(page);
        if cursor.is_none() {
            return Ok(out);
        }
    }
    Err(Failure(format!("more than {} pages", LISTED.len() + 1)))
}

async fn list_pages(store: &dyn ObjectStore, lp: &str) -> Check {
    let all = pages(store, lp, ListOptions { limit: Some(3), ..Default::default() }).await?;
    let keys: Vec<String> = all.iter().flat_map(|page| names(lp, page)).collect();
    ensure(keys == LISTED, || format!("pages of 3 listed {keys:?}"))?;
    ensure(all.len() >= 3 && all.iter().all(|page| page.objects.len() <= 3), || format!("limit 3 gave pages of {:?}", all.iter().map(|p| p.objects.len()).collect::<Vec<_>>()))?;
    let one = store.list(lp, ListOptions { limit: Some(100), ..Default::default() }).await?;
    ensure(names(lp, &one) == LISTED && one.cursor.is_none(), || format!("one page of 100: {:?}, cursor {:?}", names(lp, &one), one.cursor))
}

async fn list_start_after_and_prefix(store: &dyn ObjectStore, lp: &str) -> Check {
    let after = store.list(lp, ListOptions { start_after: Some(format!("{lp}c")), ..Default::default() }).await?;
    let want: Vec<&str> = LISTED.iter().copied().filter(|n| *n > "c").collect();
    ensure(names(lp, &after) == want, || format!("start_after c: {:?}", names(lp, &after)))?;
    let narrow = store.list(&format!("{lp}d/"), ListOptions::default()).await?;
    ensure(names(lp, &narrow) == ["d/1", "d/2"], || format!("prefix d/: {:?}", names(lp, &narrow)))
}

async fn list_delimited(store: &dyn ObjectStore, lp: &str) -> Check {
    let slash = || ListOptions { delimiter: Some("/".into()), ..Default::default() };
    let page = store.list(lp, slash()).await?;
    ensure(names(lp, &page) == ["a", "b", "c", "dd", "f", "d/", "e/"], || format!("delimited: {:?}", names(lp, &page)))?;
    // One entry a page: a prefix must not come back on the next page.
    let all = pages(store, lp, ListOptions { limit: Some(1), ..slash() }).await?;
    let mut seen: Vec<String> = all.iter().flat_map(|page| names(lp, page)).collect();
    seen.sort();
    ensure(seen == ["a", "b", "c", "d/", "dd", "e/", "f"], || format!("delimited pages of 1: {seen:?}"))
}

async fn delete_many(store: &dyn ObjectStore, lp: &str) -> Check {
    let mut keys: Vec<String> = LISTED.iter().map(|n| format!("{lp}{n}")).collect();
    keys.push(format!("{lp}never-written"));
    store.delete(&keys).await?;
    let left = store.list(lp, ListOptions::default()).await?;
    ensure(left.objects.is_empty(), || format!("left after delete: {:?}", names(lp, &left)))
}

async fn clean_up(store: &dyn ObjectStore, p: &str) -> Check {
    let keys: Vec<String> = super::list_all(store, p).await?.into_iter().map(|m| m.key).collect();
    store.delete(&keys).await?;
    let left = store.list(p, ListOptions::default()).await?;
    ensure(left.objects.is_empty(), || format!("{} objects left", left.objects.len()))
}
