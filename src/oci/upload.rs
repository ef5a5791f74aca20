//! Blob uploads: monolithic, POST+PUT, and chunked POST/PATCH…/PUT, plus mount, status and
//! cancel.
//!
//! A chunked upload lives in a session (a Durable Object): the running SHA-256 state (sha2
//! `SerializableState`), the byte offset, and an R2 multipart upload. Incoming bytes are
//! hashed and re-cut into equal parts of `PART_SIZE` (R2 wants every part but the last the
//! same size); the tail shorter than a part waits in a temporary object for the next request.
//! Nothing beyond one part is held in memory, and the blob becomes visible only after its
//! digest matched. A single request with a known length and digest goes straight to R2,
//! which verifies the SHA-256 itself, without the bytes entering wasm.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::access::{authorize_write, claim};
use super::names::{keys, valid_repository, Algorithm, Digest, DigestError, Hasher};
use super::{blob_meta, error, internal, storage_error, Ctx};
use crate::auth::Action;
use crate::http::{Body, BodyError, Request, Response};
use crate::platform::{Cleanup, PutOptions, PutOutcome, UploadedPart};
use crate::storage::{HookMetadata, Operation};

/// Size of every multipart part but the last (R2: at least 5 MiB, all equal).
pub use crate::storage::UPLOAD_PART_SIZE as PART_SIZE;
/// Largest chunk we invite: under the platform's 100 MB request body limit.
pub const MAX_CHUNK: u64 = 95 * 1000 * 1000;
/// An idle session is cleaned up after this long.
pub const SESSION_TTL_MS: f64 = 3_600_000.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    repo: String,
    offset: u64,
    /// The algorithm `hash` runs in: `sha256` unless the POST named another with
    /// `digest-algorithm` (sessions saved before this field are sha256).
    #[serde(default = "default_algorithm")]
    algorithm: String,
    hash: String,
    multipart: Option<String>,
    parts: Vec<(u16, String)>,
    tail_key: Option<String>,
    tail_seq: u64,
}

fn default_algorithm() -> String {
    Algorithm::Sha256.name().to_string()
}

impl Session {
    fn new(repo: &str, alg: Algorithm) -> Session {
        Session {
            repo: repo.to_string(),
            offset: 0,
            algorithm: alg.name().to_string(),
            hash: Hasher::new(alg).save(),
            multipart: None,
            parts: Vec::new(),
            tail_key: None,
            tail_seq: 0,
        }
    }

    fn algorithm(&self) -> Option<Algorithm> {
        Algorithm::parse(&self.algorithm)
    }

    fn hasher(&self) -> Option<Hasher> {
        Hasher::restore(self.algorithm()?, &self.hash)
    }

    fn cleanup(&self, id: &str) -> Cleanup {
        Cleanup {
            multipart: self.multipart.clone().map(|m| (keys::blob_data(id), m)),
            keys: self.tail_key.iter().cloned().collect(),
        }
    }
}

fn location(ctx: &Ctx<'_>, repo: &str, id: &str) -> String {
    format!("{}/{repo}/blobs/uploads/{id}", ctx.prefix)
}

fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn accepted(ctx: &Ctx<'_>, repo: &str, id: &str, offset: u64, status: u16) -> Response {
    Response::new(status)
        .with_header("Location", location(ctx, repo, id))
        .with_header("Docker-Upload-UUID", id)
        .with_header("Range", range_header(offset))
        .with_header("Content-Length", "0")
        .with_header("OCI-Chunk-Min-Length", PART_SIZE.to_string())
        .with_header("OCI-Chunk-Max-Length", MAX_CHUNK.to_string())
}

fn created(ctx: &Ctx<'_>, repo: &str, digest: &Digest) -> Response {
    Response::new(201)
        .with_header("Location", format!("{}/{repo}/blobs/{digest}", ctx.prefix))
        .with_header("Docker-Content-Digest", digest.to_string())
        .with_header("Content-Length", "0")
}

fn unknown_upload(id: &str) -> Response {
    error(404, "BLOB_UPLOAD_UNKNOWN", format!("upload {id} not found"))
}

/// Makes the blob readable through `repo` (claiming the repository if it is new).
async fn link(ctx: &Ctx<'_>, repo: &str, digest: &Digest) -> Result<(), Response> {
    claim(ctx, repo).await?;
    let key = keys::link(repo, digest);
    if ctx.storage.head(&key).await.map_err(storage_error)?.is_none() {
        ctx.storage.put(&key, Body::Empty, PutOptions::default(), ctx.hook_meta(repo, Some(digest))).await.map_err(storage_error)?;
    }
    Ok(())
}

/// Asks the hooks up front whether `key` may be written (`READ_ONLY` refuses), so a refused
/// request neither reads its body nor writes anything.
async fn may_put(ctx: &Ctx<'_>, key: &str, meta: HookMetadata) -> Result<(), Response> {
    ctx.storage.check(Operation::Put, key, meta).await.map_err(storage_error)
}

async fn load(ctx: &Ctx<'_>, repo: &str, id: &str) -> Result<(Session, u64), Response> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown_upload(id));
    }
    let found = ctx.app.platform.sessions.get(id).await.map_err(internal)?;
    let Some((record, version)) = found else {
        return Err(unknown_upload(id));
    };
    let session: Session = serde_json::from_value(record).map_err(internal)?;
    if session.repo != repo {
        return Err(unknown_upload(id));
    }
    Ok((session, version))
}

async fn save(ctx: &Ctx<'_>, id: &str, session: &Session, version: u64) -> Result<(), Response> {
    let record = serde_json::to_value(session).map_err(internal)?;
    let stored = ctx
        .app
        .platform
        .sessions
        .update(id, version, &record, &session.cleanup(id), SESSION_TTL_MS)
        .await
        .map_err(internal)?;
    if stored {
        Ok(())
    } else {
        Err(error(409, "BLOB_UPLOAD_INVALID", "the upload changed concurrently"))
    }
}

/// Ends a session: aborts its multipart upload (unless it became a blob) and removes its tail.
async fn discard(ctx: &Ctx<'_>, id: &str, session: &Session, keep_multipart: bool) {
    let mut cleanup = session.cleanup(id);
    if keep_multipart {
        cleanup.multipart = None;
    }
    // Cleanup of this upload's own temporary objects: never refused by the hooks.
    if let Some((key, upload)) = &cleanup.multipart {
        if let Err(e) = ctx.storage.abort_multipart(key, upload).await {
            crate::logging::error(&format!("oci: could not abort the multipart upload of {id}: {e}"));
        }
    }
    if let Err(e) = ctx.storage.discard(&cleanup.keys).await {
        crate::logging::error(&format!("oci: could not remove the temporary objects of {id}: {e}"));
    }
    if let Err(e) = ctx.app.platform.sessions.delete(id).await {
        crate::logging::error(&format!("oci: could not forget upload session {id}: {e}"));
    }
}

/// Hashes `body` onto the session and uploads every full part; returns the bytes after the
/// last full part (the previous tail included), which the caller stores or finishes with.
async fn append(ctx: &Ctx<'_>, id: &str, session: &mut Session, body: Body) -> Result<Vec<u8>, Response> {
    let store = &ctx.app.platform.store;
    let mut hasher = session.hasher().ok_or_else(|| internal("corrupt hash state in upload session"))?;
    let mut buf = match &session.tail_key {
        Some(k) => match store.get(k, None).await.map_err(internal)? {
            Some(o) => o.body.read_capped(PART_SIZE as u64).await.map_err(internal)?,
            None => return Err(internal(format!("upload tail {k} vanished"))),
        },
        None => Vec::new(),
    };
    // One allocation of exactly a part, filled and handed over, then made again (the freed
    // block is reused): growing by doubling peaked at ~3 parts of wasm memory per upload.
    buf.reserve_exact(PART_SIZE.saturating_sub(buf.len()));
    let mut chunks = body.into_chunks();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e: BodyError| error(400, "BLOB_UPLOAD_INVALID", e.to_string()))?;
        hasher.update(&chunk);
        session.offset += chunk.len() as u64;
        let mut rest = chunk.as_slice();
        while !rest.is_empty() {
            let take = rest.len().min(PART_SIZE.saturating_sub(buf.len()));
            let (now, later) = rest.split_at(take);
            buf.extend_from_slice(now);
            rest = later;
            if buf.len() >= PART_SIZE {
                upload_part(ctx, id, session, std::mem::take(&mut buf)).await?;
                buf.reserve_exact(PART_SIZE);
            }
        }
    }
    session.hash = hasher.save();
    Ok(buf)
}

async fn upload_part(ctx: &Ctx<'_>, id: &str, session: &mut Session, part: Vec<u8>) -> Result<(), Response> {
    let key = keys::blob_data(id);
    let meta = || ctx.hook_meta(&session.repo, None);
    let upload = match &session.multipart {
        Some(u) => u.clone(),
        None => {
            let opts = PutOptions { content_type: Some("application/octet-stream".into()), ..Default::default() };
            let u = ctx.storage.create_multipart(&key, opts, meta()).await.map_err(storage_error)?;
            session.multipart = Some(u.clone());
            u
        }
    };
    let number = u16::try_from(session.parts.len() + 1).map_err(|_| error(400, "SIZE_INVALID", "too many parts"))?;
    let uploaded = ctx.storage.upload_part(&key, &upload, number, part.into(), meta()).await.map_err(storage_error)?;
    session.parts.push((uploaded.part_number, uploaded.etag));
    Ok(())
}

/// Keeps the bytes after the last full part in a fresh temporary object (a new key each time:
/// R2 allows one write per second per key).
async fn store_tail(ctx: &Ctx<'_>, id: &str, session: &mut Session, tail: Vec<u8>) -> Result<(), Response> {
    let old = session.tail_key.take();
    if !tail.is_empty() {
        session.tail_seq += 1;
        let key = keys::upload_tail(id, session.tail_seq);
        let meta = ctx.hook_meta(&session.repo, None);
        if let Err(e) = ctx.storage.put(&key, tail.into(), PutOptions::default(), meta).await {
            session.tail_key = old;
            return Err(storage_error(e));
        }
        session.tail_key = Some(key);
    }
    if let Some(k) = old {
        ctx.storage.discard(&[k]).await.map_err(storage_error)?;
    }
    Ok(())
}

/// The first and last byte a chunk's `Content-Range` names: `a-b` as the distribution spec
/// has it, or `bytes a-b/n` / `bytes=a-b` as some clients send; `None` for what is unreadable.
pub fn content_range(value: &str) -> (Option<u64>, Option<u64>) {
    let spec = value.trim().trim_start_matches("bytes").trim_start_matches([' ', '=']);
    let mut bounds = spec.split(['-', '/']).map(|s| s.trim().parse::<u64>().ok());
    (bounds.next().flatten(), bounds.next().flatten())
}

/// `Content-Range: a-b` must continue where the upload is, and say as many bytes as the
/// body has when its length is known.
fn check_range(req: &Request, offset: u64) -> Result<(), Response> {
    let Some(range) = req.header("content-range") else {
        return Ok(());
    };
    let (start, end) = content_range(range);
    let range = super::manifest::excerpt(range, 80);
    if start != Some(offset) {
        return Err(error(416, "BLOB_UPLOAD_INVALID", format!("chunk starts at {range}, upload is at {offset}"))
            .with_header("Range", range_header(offset)));
    }
    let said = end.and_then(|e| e.checked_sub(offset)).map(|n| n + 1);
    if let (Some(said), Some(length)) = (said, req.body.known_length()) {
        if said != length {
            return Err(error(416, "BLOB_UPLOAD_INVALID", format!("Content-Range {range} says {said} bytes, the body has {length}"))
                .with_header("Range", range_header(offset)));
        }
    }
    Ok(())
}

/// A digest from the client (a query parameter, a path): 400 `DIGEST_INVALID` when it is
/// malformed or in an algorithm this registry does not implement (distribution spec, "Pushing
/// blobs": an invalid digest or an unsupported algorithm is a `400 Bad Request`).
pub fn client_digest(d: &str) -> Result<Digest, Response> {
    Digest::check(d).map_err(|e| {
        let d = super::manifest::excerpt(d, 80);
        match e {
            DigestError::Malformed => error(400, "DIGEST_INVALID", format!("invalid digest {d}")),
            DigestError::Unsupported => error(400, "DIGEST_INVALID", format!("unsupported digest algorithm in {d} (sha256 and sha512 are)")),
        }
    })
}

fn digest_param(req: &Request) -> Result<Digest, Response> {
    let d = req.query_param("digest").ok_or_else(|| error(400, "DIGEST_INVALID", "the digest parameter is required"))?;
    client_digest(d)
}

/// The `digest-algorithm` of an upload's POST (distribution spec draft, end-4c): the
/// algorithm the session hashes in. Unknown ones are refused before any byte is sent.
fn algorithm_param(req: &Request) -> Result<Algorithm, Response> {
    match req.query_param("digest-algorithm") {
        None => Ok(Algorithm::Sha256),
        Some(a) => Algorithm::parse(a).ok_or_else(|| {
            error(400, "UNSUPPORTED", format!("digest algorithm {:?} is not supported (sha256 and sha512 are)", super::manifest::excerpt(a, 40)))
        }),
    }
}

/// Hashes `body` and checks it is `digest`.
async fn verify(body: Body, digest: &Digest) -> Result<(), Response> {
    let mut hasher = Hasher::new(digest.algorithm());
    let mut chunks = body.into_chunks();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e: BodyError| error(400, "BLOB_UPLOAD_INVALID", e.to_string()))?;
        hasher.update(&chunk);
    }
    let actual = hasher.finish();
    if &actual != digest {
        return Err(error(400, "DIGEST_INVALID", format!("the content is {actual}, not {digest}")));
    }
    Ok(())
}

/// One request carries the whole blob with a known length: R2 verifies the digest as it
/// stores it, and the bytes never enter wasm (except to verify a blob that is already stored).
async fn store_whole(ctx: &Ctx<'_>, repo: &str, digest: &Digest, body: Body) -> Result<Response, Response> {
    may_put(ctx, &keys::link(repo, digest), ctx.hook_meta(repo, Some(digest))).await?;
    if blob_meta(ctx, digest).await?.is_some() {
        // Already stored, but the link lets this repository read it: only a client that sends
        // the very bytes may have it (else knowing a private layer's digest was enough to read
        // it through one's own repository). So these bytes are hashed here.
        verify(body, digest).await?;
    } else {
        let opts = PutOptions {
            content_type: Some("application/octet-stream".into()),
            custom: BTreeMap::new(),
            checksum: Some(digest.checksum()),
            condition: None,
        };
        let meta = ctx.hook_meta(repo, Some(digest));
        match ctx.storage.put(&keys::blob(digest), body, opts, meta).await {
            Ok(PutOutcome::Stored(_)) | Ok(PutOutcome::ConditionFailed) => {}
            Ok(PutOutcome::ChecksumMismatch) => return Err(error(400, "DIGEST_INVALID", format!("the content does not match {digest}"))),
            Err(e) => return Err(storage_error(e)),
        }
    }
    link(ctx, repo, digest).await?;
    Ok(created(ctx, repo, digest))
}

/// `?mount=D&from=R` when both are usable (a digest we store, a valid name), else `None`: the
/// POST then starts an ordinary upload (distribution spec, "Mounting a blob from another
/// repository": a registry unable to mount SHOULD answer 202 with a session).
fn mount_params(req: &Request) -> Option<(Digest, String)> {
    let d = Digest::parse(req.query_param("mount")?)?;
    let from = req.query_param("from").filter(|f| valid_repository(f))?;
    Some((d, from.to_string()))
}

/// Whether the caller's credential is a token from our token endpoint that was never asked for
/// anything on `from`: a client that is told which scope the mount needs can fetch a token
/// with it. One that asked and was refused `pull` is not sent round again.
fn may_widen_for(ctx: &Ctx<'_>, req: &Request, from: &str) -> bool {
    use crate::auth::{jwt, Credential, CredentialKind};
    if ctx.principal.as_ref().map(|p| p.kind) != Some(CredentialKind::Jwt) {
        return false;
    }
    let (Some(Credential::Bearer(token)), Some(secret)) = (Credential::from_headers(&req.headers), ctx.app.config.jwt_secret.as_ref()) else {
        return false;
    };
    let now = (ctx.app.platform.now_ms() / 1000.0) as i64;
    let Ok(claims) = jwt::decode(secret.as_bytes(), &token, now) else {
        return false;
    };
    let asked = claims.get("access").and_then(serde_json::Value::as_array).is_some_and(|access| {
        access.iter().any(|a| a.get("name").and_then(serde_json::Value::as_str) == Some(from))
    });
    !asked
}

/// The scope a mount needs, as distribution's token authorisation asks for it: push and pull
/// on the target, pull on the source.
fn mount_scope(repo: &str, from: &str) -> String {
    format!("repository:{repo}:pull,push repository:{from}:pull")
}

/// Cross-repository mount: `Some` answer when it was done or must be refused, `None` to fall
/// back to an upload session.
async fn mount(ctx: &Ctx<'_>, req: &Request, repo: &str, d: &Digest, from: &str) -> Option<Response> {
    if ctx.check(from, Action::Read).is_err() {
        // A token that covers only the target: say which scopes the mount needs, so the
        // client fetches a token naming both and tries again (as distribution does).
        return may_widen_for(ctx, req, from).then(|| ctx.challenge_scope(Some(&mount_scope(repo, from)), true));
    }
    match ctx.storage.head(&keys::link(from, d)).await {
        Ok(Some(_)) => Some(match link(ctx, repo, d).await {
            Ok(()) => created(ctx, repo, d),
            Err(r) => r,
        }),
        Ok(None) => None,
        Err(e) => Some(storage_error(e)),
    }
}

pub async fn start(ctx: &Ctx<'_>, req: Request, repo: &str) -> Response {
    let mount_from = mount_params(&req);
    if let Err(r) = authorize_write(ctx, repo, Action::Write).await {
        // A challenge names every scope a mount needs, so one token does.
        return match &mount_from {
            Some((_, from)) if r.status == 401 && from != repo => ctx.challenge_scope(Some(&mount_scope(repo, from)), ctx.principal.is_some()),
            _ => r,
        };
    }
    let algorithm = match algorithm_param(&req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Some((d, from)) = &mount_from {
        if let Some(r) = mount(ctx, &req, repo, d, from).await {
            return r;
        }
    }
    if req.query_param("digest").is_some() {
        let digest = match digest_param(&req) {
            Ok(d) => d,
            Err(r) => return r,
        };
        if req.body.known_length().is_some() {
            return store_whole(ctx, repo, &digest, req.body).await.unwrap_or_else(|r| r);
        }
        // Unknown length: hash it through a session of its own.
        if let Err(r) = may_put(ctx, &keys::blob(&digest), ctx.hook_meta(repo, Some(&digest))).await {
            return r;
        }
        let id = crate::util::random_hex();
        let session = Session::new(repo, digest.algorithm());
        return complete(ctx, &id, session, req.body, &digest, false).await;
    }
    let id = crate::util::random_hex();
    // An upload that could never be stored is not begun.
    if let Err(r) = may_put(ctx, &keys::blob_data(&id), ctx.hook_meta(repo, None)).await {
        return r;
    }
    let session = Session::new(repo, algorithm);
    let record = match serde_json::to_value(&session) {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    if let Err(e) = ctx.app.platform.sessions.create(&id, &record, &session.cleanup(&id), SESSION_TTL_MS).await {
        return internal(e);
    }
    accepted(ctx, repo, &id, 0, 202)
}

pub async fn patch(ctx: &Ctx<'_>, req: Request, repo: &str, id: &str) -> Response {
    if let Err(r) = authorize_write(ctx, repo, Action::Write).await {
        return r;
    }
    let (mut session, version) = match load(ctx, repo, id).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_range(&req, session.offset) {
        return r;
    }
    // Parts and the tail are written under the upload's key: refused before the body is read.
    if let Err(r) = may_put(ctx, &keys::blob_data(id), ctx.hook_meta(repo, None)).await {
        return r;
    }
    let tail = match append(ctx, id, &mut session, req.body).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = store_tail(ctx, id, &mut session, tail).await {
        return r;
    }
    match save(ctx, id, &session, version).await {
        Ok(()) => accepted(ctx, repo, id, session.offset, 202),
        Err(r) => r,
    }
}

pub async fn finish(ctx: &Ctx<'_>, req: Request, repo: &str, id: &str) -> Response {
    if let Err(r) = authorize_write(ctx, repo, Action::Write).await {
        return r;
    }
    let digest = match digest_param(&req) {
        Ok(d) => d,
        Err(r) => return r,
    };
    // Refused before anything is read or written; the session stays for a later try.
    if let Err(r) = may_put(ctx, &keys::blob(&digest), ctx.hook_meta(repo, Some(&digest))).await {
        return r;
    }
    let (session, _version) = match load(ctx, repo, id).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_range(&req, session.offset) {
        return r;
    }
    // POST then one PUT with the whole blob: straight into R2.
    if session.offset == 0 && req.body.known_length().is_some_and(|n| n > 0) {
        let result = store_whole(ctx, repo, &digest, req.body).await;
        discard(ctx, id, &session, false).await;
        return result.unwrap_or_else(|r| r);
    }
    complete(ctx, id, session, req.body, &digest, true).await
}

/// Appends the last bytes, checks the digest, and makes the blob visible.
async fn complete(ctx: &Ctx<'_>, id: &str, mut session: Session, body: Body, digest: &Digest, persisted: bool) -> Response {
    let result = complete_inner(ctx, id, &mut session, body, digest).await;
    let became_blob = matches!(result, Ok(true));
    if persisted || session.multipart.is_some() || session.tail_key.is_some() {
        discard(ctx, id, &session, became_blob).await;
    }
    match result {
        Ok(_) => match link(ctx, &session.repo, digest).await {
            Ok(()) => created(ctx, &session.repo, digest),
            Err(r) => r,
        },
        Err(r) => r,
    }
}

/// Ok(true) when the multipart object became the blob, Ok(false) when stored otherwise.
async fn complete_inner(ctx: &Ctx<'_>, id: &str, session: &mut Session, body: Body, digest: &Digest) -> Result<bool, Response> {
    let last = append(ctx, id, session, body).await?;
    let hasher = session.hasher().ok_or_else(|| internal("corrupt hash state"))?;
    let mismatch = |actual: &Digest| error(400, "DIGEST_INVALID", format!("the uploaded content is {actual}, not {digest}"));
    // The session hashes in the algorithm its POST named (`digest-algorithm`, sha256 when
    // none); a final digest in another one is checked by hashing the content again: what is
    // under one part is at hand, a multipart object is read back once assembled.
    let same_algorithm = session.algorithm() == Some(digest.algorithm());
    if same_algorithm {
        let actual = hasher.finish();
        if &actual != digest {
            return Err(mismatch(&actual));
        }
    } else if session.multipart.is_none() {
        let actual = digest.algorithm().digest(&last);
        if &actual != digest {
            return Err(mismatch(&actual));
        }
    }
    let verified = same_algorithm || session.multipart.is_none();
    let exists = blob_meta(ctx, digest).await?.is_some();
    if exists && verified {
        return Ok(false);
    }
    let meta = ctx.hook_meta(&session.repo, Some(digest));
    let Some(upload) = session.multipart.clone() else {
        // Smaller than one part: a plain put, verified by R2 once more.
        let opts = PutOptions {
            content_type: Some("application/octet-stream".into()),
            checksum: Some(digest.checksum()),
            ..Default::default()
        };
        return match ctx.storage.put(&keys::blob(digest), last.into(), opts, meta).await.map_err(storage_error)? {
            PutOutcome::Stored(_) | PutOutcome::ConditionFailed => Ok(false),
            PutOutcome::ChecksumMismatch => Err(error(400, "DIGEST_INVALID", "content changed in flight")),
        };
    };
    if !last.is_empty() {
        upload_part(ctx, id, session, last).await?;
    }
    let data_key = keys::blob_data(id);
    let parts = session.parts.iter().map(|(n, e)| UploadedPart { part_number: *n, etag: e.clone() }).collect();
    let stored = ctx.storage.complete_multipart(&data_key, &upload, parts, meta.clone()).await.map_err(storage_error)?;
    // From here the assembled object is this request's to remove if the blob does not become it.
    session.multipart = None;
    let drop_data = |failure: Response| async {
        if let Err(e) = ctx.storage.discard(std::slice::from_ref(&data_key)).await {
            crate::logging::error(&format!("oci: could not remove the assembled upload {data_key}: {e}"));
        }
        failure
    };
    if !verified {
        match rehash(ctx, &data_key, digest.algorithm()).await {
            Ok(actual) if &actual == digest => {}
            Ok(actual) => return Err(drop_data(mismatch(&actual)).await),
            Err(r) => return Err(drop_data(r).await),
        }
        if exists {
            drop_data(Response::new(201)).await;
            return Ok(false);
        }
    }
    // R2 cannot rename: the blob key points at the assembled object.
    let mut custom = BTreeMap::new();
    custom.insert("location".to_string(), data_key.clone());
    custom.insert("size".to_string(), stored.size.to_string());
    let opts = PutOptions { content_type: Some("application/octet-stream".into()), custom, ..Default::default() };
    if let Err(e) = ctx.storage.put(&keys::blob(digest), Body::Empty, opts, meta).await {
        return Err(drop_data(storage_error(e)).await);
    }
    Ok(true)
}

/// The digest in `alg` of a stored object, read back in pieces.
async fn rehash(ctx: &Ctx<'_>, key: &str, alg: Algorithm) -> Result<Digest, Response> {
    let Some(object) = ctx.app.platform.store.get(key, None).await.map_err(internal)? else {
        return Err(internal(format!("assembled upload {key} vanished")));
    };
    let mut hasher = Hasher::new(alg);
    let mut chunks = object.body.into_chunks();
    while let Some(chunk) = chunks.next().await {
        hasher.update(&chunk.map_err(internal)?);
    }
    Ok(hasher.finish())
}

pub async fn status(ctx: &Ctx<'_>, repo: &str, id: &str) -> Response {
    if let Err(r) = authorize_write(ctx, repo, Action::Write).await {
        return r;
    }
    match load(ctx, repo, id).await {
        Ok((s, _)) => accepted(ctx, repo, id, s.offset, 204),
        Err(r) => r,
    }
}

pub async fn cancel(ctx: &Ctx<'_>, repo: &str, id: &str) -> Response {
    if let Err(r) = authorize_write(ctx, repo, Action::Write).await {
        return r;
    }
    match load(ctx, repo, id).await {
        Ok((s, _)) => {
            discard(ctx, id, &s, false).await;
            Response::new(204)
        }
        Err(r) => r,
    }
}
