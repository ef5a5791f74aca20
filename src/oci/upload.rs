//! Blob uploads: monolithic, POST+PUT, and chunked POST/PATCH…/PUT, plus mount, status and
//! cancel.
//!
//! A chunked upload lives in a session (a Durable Object): the byte offset, an R2 multipart
//! upload, and how the bytes so far were hashed. Incoming bytes are re-cut into equal parts of
//! `PART_SIZE` (R2 wants every part but the last the same size) as pieces that stay on the
//! platform's side (`platform::digest`); the tail shorter than a part waits in a temporary
//! object for the next request. Nothing beyond one part is held, and the blob becomes visible
//! only after its digest matched.
//!
//! Hashing: the first request with bytes is hashed natively (the runtime's `DigestStream`)
//! unless it is a chunk of a chunked upload (`Content-Range`, distribution spec "Chunked
//! upload"); a streamed upload (one PATCH without `Content-Range`, as docker, containerd and
//! crane push) or a monolithic one thus never passes its bytes through wasm. A chunked upload
//! keeps a resumable SHA-256 state in wasm (sha2 `SerializableState`) from its first chunk.
//! Should more bytes follow a natively hashed request, no state exists to continue from: the
//! upload is then checked at the end by hashing the assembled object natively. A single
//! request with a known length and digest goes straight to R2, which verifies it itself.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use super::access::{authorize_write, claim};
use super::errors::{BLOB_UPLOAD_INVALID, BLOB_UPLOAD_UNKNOWN, DIGEST_INVALID, SIZE_INVALID, UNSUPPORTED};
use super::names::{keys, Algorithm, Digest, DigestError, Hasher, Repository};
use super::{blob_meta, Ctx};
use crate::auth::Action;
use crate::error::{Error, Kind, Result};
use crate::http::{Body, BodyError, Request, Response};
use crate::platform::digest::{digest_body, joined, HashAlgorithm, Piece, Pieces};
use crate::platform::{Cleanup, PutOptions, PutOutcome, UploadedPart};
use crate::storage::key::Key;
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
    /// The digest (hex, in `algorithm`) of all bytes so far when a single request brought
    /// them and hashed them natively; `hash` is then not kept.
    #[serde(default)]
    native: Option<String>,
    /// More bytes followed a natively hashed request: no running hash exists, and the digest
    /// is checked at the end by hashing the stored content.
    #[serde(default)]
    unhashed: bool,
}

fn default_algorithm() -> String {
    Algorithm::Sha256.name().to_string()
}

impl Session {
    fn new(repo: &Repository, alg: Algorithm) -> Session {
        Session {
            repo: repo.as_str().to_string(),
            offset: 0,
            algorithm: alg.name().to_string(),
            hash: Hasher::new(alg).save(),
            multipart: None,
            parts: Vec::new(),
            tail_key: None,
            tail_seq: 0,
            native: None,
            unhashed: false,
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
            multipart: self.multipart.clone().map(|m| (keys::blob_data(id).path, m)),
            keys: self.tail_key.iter().cloned().collect(),
        }
    }
}

fn location(ctx: &Ctx<'_>, repo: &Repository, id: &str) -> String {
    format!("{}/{repo}/blobs/uploads/{id}", ctx.prefix)
}

fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn accepted(ctx: &Ctx<'_>, repo: &Repository, id: &str, offset: u64, status: u16) -> Response {
    Response::new(status)
        .with_header("Location", location(ctx, repo, id))
        .with_header("Docker-Upload-UUID", id)
        .with_header("Range", range_header(offset))
        .with_header("Content-Length", "0")
        .with_header("OCI-Chunk-Min-Length", PART_SIZE.to_string())
        .with_header("OCI-Chunk-Max-Length", MAX_CHUNK.to_string())
}

fn created(ctx: &Ctx<'_>, repo: &Repository, digest: &Digest) -> Response {
    Response::new(201)
        .with_header("Location", format!("{}/{repo}/blobs/{digest}", ctx.prefix))
        .with_header("Docker-Content-Digest", digest.to_string())
        .with_header("Content-Length", "0")
}

fn unknown_upload(id: &str) -> Error {
    BLOB_UPLOAD_UNKNOWN.err(format!("upload {id} not found"))
}

/// Makes the blob readable through `repo` (claiming the repository if it is new).
async fn link(ctx: &Ctx<'_>, repo: &Repository, digest: &Digest) -> Result<()> {
    claim(ctx, repo).await?;
    let key = keys::link(repo, digest);
    if ctx.storage.head(key.as_str()).await?.is_none() {
        ctx.storage.put(key.as_str(), Body::Empty, key.put_options(BTreeMap::new()), ctx.hook_meta(repo, Some(digest))).await?;
    }
    Ok(())
}

/// Asks the hooks up front whether `key` may be written (`READ_ONLY` refuses), so a refused
/// request neither reads its body nor writes anything.
async fn may_put(ctx: &Ctx<'_>, key: &Key, meta: HookMetadata) -> Result<()> {
    Ok(ctx.storage.check(Operation::Put, key.as_str(), meta).await?)
}

async fn load(ctx: &Ctx<'_>, repo: &Repository, id: &str) -> Result<(Session, u64)> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown_upload(id));
    }
    let found = ctx.app.platform.sessions.get(id).await.map_err(Error::internal)?;
    let Some((record, version)) = found else {
        return Err(unknown_upload(id));
    };
    let session: Session = serde_json::from_value(record).map_err(Error::internal)?;
    if session.repo != repo.as_str() {
        return Err(unknown_upload(id));
    }
    Ok((session, version))
}

async fn save(ctx: &Ctx<'_>, id: &str, session: &Session, version: u64) -> Result<()> {
    let record = serde_json::to_value(session).map_err(Error::internal)?;
    let stored = ctx
        .app
        .platform
        .sessions
        .update(id, version, &record, &session.cleanup(id), SESSION_TTL_MS)
        .await
        .map_err(Error::internal)?;
    if stored {
        Ok(())
    } else {
        Err(BLOB_UPLOAD_INVALID.err("the upload changed concurrently").with_status(409))
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

/// A body that could not be read, as an upload error.
fn unreadable(e: BodyError) -> Error {
    BLOB_UPLOAD_INVALID.err(e.to_string())
}

/// The bytes after the last full part: pieces on the platform's side, at most one part.
#[derive(Default)]
struct Held {
    pieces: Vec<Piece>,
    len: usize,
}

impl Held {
    fn push(&mut self, piece: Piece) {
        self.len += piece.len();
        self.pieces.push(piece);
    }

    fn take(&mut self) -> Vec<Piece> {
        self.len = 0;
        std::mem::take(&mut self.pieces)
    }
}

fn native_algorithm(alg: Algorithm) -> HashAlgorithm {
    match alg {
        Algorithm::Sha256 => HashAlgorithm::Sha256,
        Algorithm::Sha512 => HashAlgorithm::Sha512,
    }
}

/// Stores `body` after the session's bytes, hashing it as the module docs say, and uploads
/// every full part; returns the bytes after the last full part (the previous tail included),
/// which the caller stores or finishes with. `chunk`: the request is one chunk of a chunked
/// upload (it has a `Content-Range`), so more are expected.
async fn append(ctx: &Ctx<'_>, id: &str, session: &mut Session, body: Body, chunk: bool) -> Result<Held> {
    let store = &ctx.app.platform.store;
    let mut held = Held::default();
    if let Some(k) = &session.tail_key {
        let Some(o) = store.get(k, None).await.map_err(Error::internal)? else {
            return Err(Error::internal(format!("upload tail {k} vanished")));
        };
        let mut tail = Pieces::new(o.body, None);
        while let Some(piece) = tail.next().await {
            held.push(piece.map_err(Error::internal)?);
        }
    }
    let alg = session.algorithm().ok_or_else(|| Error::internal("corrupt hash algorithm in upload session"))?;
    let first = session.offset == 0 && session.native.is_none() && !session.unhashed;
    let native = first && !chunk;
    let mut pieces = Pieces::new(body, native.then(|| native_algorithm(alg)));
    let mut inflight: Option<InFlight<'_>> = None;
    let mut wasm: Option<Hasher> = None;
    let mut any = false;
    while let Some(piece) = pieces.next().await {
        let mut piece = piece.map_err(unreadable)?;
        if !any {
            any = true;
            if !native {
                if session.native.take().is_some() {
                    session.unhashed = true;
                }
                if !session.unhashed {
                    wasm = Some(session.hasher().ok_or_else(|| Error::internal("corrupt hash state in upload session"))?);
                }
            }
        }
        if let Some(h) = &mut wasm {
            h.update(&piece.to_vec());
        }
        session.offset += piece.len() as u64;
        while !piece.is_empty() {
            let front = piece.take_front(PART_SIZE.saturating_sub(held.len));
            held.push(front);
            if held.len >= PART_SIZE {
                let part = joined(held.take());
                inflight = Some(start_part(ctx, id, session, part, inflight.take()).await?);
            }
        }
    }
    if let Some(previous) = inflight.take() {
        session.parts.push(previous.finish().await?);
    }
    if native && any {
        session.native = Some(hex::encode(pieces.digest().await.map_err(unreadable)?));
    }
    if let Some(h) = wasm {
        session.hash = h.save();
    }
    Ok(held)
}

/// A part upload already begun: R2 takes it in while the next part's bytes are read.
struct InFlight<'a>(futures::future::MaybeDone<futures::future::LocalBoxFuture<'a, Result<(u16, String)>>>);

impl InFlight<'_> {
    async fn finish(mut self) -> Result<(u16, String)> {
        (&mut self.0).await;
        std::pin::Pin::new(&mut self.0).take_output().unwrap_or_else(|| Err(Error::internal("part upload lost")))
    }
}

/// Waits for the `previous` part (one in flight at a time bounds what is held to two parts),
/// then begins uploading `part`: polled once here so the store's request is on its way before
/// the caller goes back to reading (a Rust future does nothing until polled).
async fn start_part<'a>(ctx: &'a Ctx<'_>, id: &str, session: &mut Session, part: Body, previous: Option<InFlight<'a>>) -> Result<InFlight<'a>> {
    use futures::FutureExt;
    if let Some(previous) = previous {
        session.parts.push(previous.finish().await?);
    }
    let key = keys::blob_data(id);
    let upload = match &session.multipart {
        Some(u) => u.clone(),
        None => {
            let meta = ctx.hook_meta(&session.repo, None);
            let u = ctx.storage.create_multipart(key.as_str(), key.put_options(BTreeMap::new()), meta).await?;
            session.multipart = Some(u.clone());
            u
        }
    };
    let number = u16::try_from(session.parts.len() + 1).map_err(|_| SIZE_INVALID.err("too many parts"))?;
    let meta = ctx.hook_meta(&session.repo, None);
    let storage = &ctx.storage;
    let upload = async move {
        let uploaded = storage.upload_part(key.as_str(), &upload, number, part, meta).await?;
        Ok((uploaded.part_number, uploaded.etag))
    };
    let mut started = futures::future::maybe_done(upload.boxed_local());
    // Polled with a waker that does nothing: whoever awaits it later polls it again.
    let _ = std::pin::Pin::new(&mut started).poll(&mut std::task::Context::from_waker(futures::task::noop_waker_ref()));
    Ok(InFlight(started))
}

async fn upload_part(ctx: &Ctx<'_>, id: &str, session: &mut Session, part: Body) -> Result<()> {
    let key = keys::blob_data(id);
    let meta = || ctx.hook_meta(&session.repo, None);
    let upload = match &session.multipart {
        Some(u) => u.clone(),
        None => {
            let u = ctx.storage.create_multipart(key.as_str(), key.put_options(BTreeMap::new()), meta()).await?;
            session.multipart = Some(u.clone());
            u
        }
    };
    let number = u16::try_from(session.parts.len() + 1).map_err(|_| SIZE_INVALID.err("too many parts"))?;
    let uploaded = ctx.storage.upload_part(key.as_str(), &upload, number, part, meta()).await?;
    session.parts.push((uploaded.part_number, uploaded.etag));
    Ok(())
}

/// Keeps the bytes after the last full part in a fresh temporary object (a new key each time:
/// R2 allows one write per second per key).
async fn store_tail(ctx: &Ctx<'_>, id: &str, session: &mut Session, mut tail: Held) -> Result<()> {
    let old = session.tail_key.take();
    if tail.len > 0 {
        session.tail_seq += 1;
        let key = keys::upload_tail(id, session.tail_seq);
        let meta = ctx.hook_meta(&session.repo, None);
        if let Err(e) = ctx.storage.put(key.as_str(), joined(tail.take()), key.put_options(BTreeMap::new()), meta).await {
            session.tail_key = old;
            return Err(e.into());
        }
        session.tail_key = Some(key.path);
    }
    if let Some(k) = old {
        ctx.storage.discard(&[k]).await?;
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
fn check_range(req: &Request, offset: u64) -> Result<()> {
    let Some(range) = req.header("content-range") else {
        return Ok(());
    };
    let (start, end) = content_range(range);
    let range = super::manifest::excerpt(range, 80);
    let unsatisfiable = |detail: String| BLOB_UPLOAD_INVALID.err(detail).with_status(416).header("Range", range_header(offset));
    if start != Some(offset) {
        return Err(unsatisfiable(format!("chunk starts at {range}, upload is at {offset}")));
    }
    let said = end.and_then(|e| e.checked_sub(offset)).map(|n| n + 1);
    if let (Some(said), Some(length)) = (said, req.body.known_length()) {
        if said != length {
            return Err(unsatisfiable(format!("Content-Range {range} says {said} bytes, the body has {length}")));
        }
    }
    Ok(())
}

/// A digest from the client (a query parameter, a path): 400 `DIGEST_INVALID` when it is
/// malformed or in an algorithm this registry does not implement (distribution spec, "Pushing
/// blobs": an invalid digest or an unsupported algorithm is a `400 Bad Request`).
pub fn client_digest(d: &str) -> Result<Digest> {
    Digest::check(d).map_err(|e| {
        let d = super::manifest::excerpt(d, 80);
        match e {
            DigestError::Malformed => DIGEST_INVALID.err(format!("invalid digest {d}")),
            DigestError::Unsupported => DIGEST_INVALID.err(format!("unsupported digest algorithm in {d} (sha256 and sha512 are)")),
        }
    })
}

fn digest_param(req: &Request) -> Result<Digest> {
    let d = req.query_param("digest").ok_or_else(|| DIGEST_INVALID.err("the digest parameter is required"))?;
    client_digest(d)
}

/// The `digest-algorithm` of an upload's POST (distribution spec draft, end-4c): the
/// algorithm the session hashes in. Unknown ones are refused before any byte is sent.
fn algorithm_param(req: &Request) -> Result<Algorithm> {
    match req.query_param("digest-algorithm") {
        None => Ok(Algorithm::Sha256),
        Some(a) => Algorithm::parse(a).ok_or_else(|| {
            UNSUPPORTED
                .err(format!("digest algorithm {:?} is not supported (sha256 and sha512 are)", super::manifest::excerpt(a, 40)))
                .with_status(400)
        }),
    }
}

/// Hashes `body` (natively) and checks it is `digest`.
async fn verify(body: Body, digest: &Digest) -> Result<()> {
    let alg = digest.algorithm();
    let actual = Digest::from_hash(alg, &digest_body(body, native_algorithm(alg)).await.map_err(unreadable)?);
    if &actual != digest {
        return Err(DIGEST_INVALID.err(format!("the content is {actual}, not {digest}")));
    }
    Ok(())
}

/// One request carries the whole blob with a known length: R2 verifies the digest as it
/// stores it, and the bytes never enter wasm (except to verify a blob that is already stored).
async fn store_whole(ctx: &Ctx<'_>, repo: &Repository, digest: &Digest, body: Body) -> Result<Response> {
    may_put(ctx, &keys::link(repo, digest), ctx.hook_meta(repo, Some(digest))).await?;
    if blob_meta(ctx, digest).await?.is_some() {
        // Already stored, but the link lets this repository read it: only a client that sends
        // the very bytes may have it (else knowing a private layer's digest was enough to read
        // it through one's own repository). So these bytes are hashed here.
        verify(body, digest).await?;
    } else {
        let key = keys::blob(digest);
        let opts = PutOptions { checksum: Some(digest.checksum()), ..key.put_options(BTreeMap::new()) };
        match ctx.storage.put(key.as_str(), body, opts, ctx.hook_meta(repo, Some(digest))).await? {
            PutOutcome::Stored(_) | PutOutcome::ConditionFailed => {}
            PutOutcome::ChecksumMismatch => return Err(DIGEST_INVALID.err(format!("the content does not match {digest}"))),
        }
    }
    link(ctx, repo, digest).await?;
    Ok(created(ctx, repo, digest))
}

/// `?mount=D&from=R` when both are usable (a digest we store, a valid name), else `None`: the
/// POST then starts an ordinary upload (distribution spec, "Mounting a blob from another
/// repository": a registry unable to mount SHOULD answer 202 with a session).
fn mount_params(req: &Request) -> Option<(Digest, Repository)> {
    let d = Digest::parse(req.query_param("mount")?)?;
    let from = Repository::parse(req.query_param("from")?)?;
    Some((d, from))
}

/// Whether the caller's credential is a token from our token endpoint that was never asked for
/// anything on `from`: a client that is told which scope the mount needs can fetch a token
/// with it. One that asked and was refused `pull` is not sent round again.
fn may_widen_for(ctx: &Ctx<'_>, req: &Request, from: &Repository) -> bool {
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
        access.iter().any(|a| a.get("name").and_then(serde_json::Value::as_str) == Some(from.as_str()))
    });
    !asked
}

/// The scope a mount needs, as distribution's token authorisation asks for it: push and pull
/// on the target, pull on the source.
fn mount_scope(repo: &Repository, from: &Repository) -> String {
    format!("{} {}", repo.scope("pull,push"), from.scope("pull"))
}

/// Cross-repository mount: the answer when it was done, `None` to fall back to an upload
/// session; an error when it must be refused.
async fn mount(ctx: &Ctx<'_>, req: &Request, repo: &Repository, d: &Digest, from: &Repository) -> Result<Option<Response>> {
    if ctx.check(from, Action::Read).is_err() {
        // A token that covers only the target: say which scopes the mount needs, so the
        // client fetches a token naming both and tries again (as distribution does).
        return match may_widen_for(ctx, req, from) {
            true => Err(ctx.challenge_scope(Some(&mount_scope(repo, from)), true)),
            false => Ok(None),
        };
    }
    if ctx.storage.head(keys::link(from, d).as_str()).await?.is_none() {
        return Ok(None);
    }
    link(ctx, repo, d).await?;
    Ok(Some(created(ctx, repo, d)))
}

pub async fn start(ctx: &Ctx<'_>, req: Request, repo: &Repository) -> Result<Response> {
    let mount_from = mount_params(&req);
    authorize_write(ctx, repo, Action::Write).await.map_err(|e| match &mount_from {
        // A challenge names every scope a mount needs, so one token does.
        Some((_, from)) if e.kind == Kind::Unauthorized && from != repo => {
            ctx.challenge_scope(Some(&mount_scope(repo, from)), ctx.principal.is_some())
        }
        _ => e,
    })?;
    let algorithm = algorithm_param(&req)?;
    if let Some((d, from)) = &mount_from {
        if let Some(r) = mount(ctx, &req, repo, d, from).await? {
            return Ok(r);
        }
    }
    if req.query_param("digest").is_some() {
        let digest = digest_param(&req)?;
        if req.body.known_length().is_some() {
            return store_whole(ctx, repo, &digest, req.body).await;
        }
        // Unknown length: hash it through a session of its own.
        may_put(ctx, &keys::blob(&digest), ctx.hook_meta(repo, Some(&digest))).await?;
        let id = crate::util::random_hex();
        let session = Session::new(repo, digest.algorithm());
        return complete(ctx, repo, &id, session, req.body, &digest, false, false).await;
    }
    let id = crate::util::random_hex();
    // An upload that could never be stored is not begun.
    may_put(ctx, &keys::blob_data(&id), ctx.hook_meta(repo, None)).await?;
    let session = Session::new(repo, algorithm);
    let record = serde_json::to_value(&session).map_err(Error::internal)?;
    ctx.app.platform.sessions.create(&id, &record, &session.cleanup(&id), SESSION_TTL_MS).await.map_err(Error::internal)?;
    Ok(accepted(ctx, repo, &id, 0, 202))
}

pub async fn patch(ctx: &Ctx<'_>, req: Request, repo: &Repository, id: &str) -> Result<Response> {
    authorize_write(ctx, repo, Action::Write).await?;
    let (mut session, version) = load(ctx, repo, id).await?;
    check_range(&req, session.offset)?;
    // Parts and the tail are written under the upload's key: refused before the body is read.
    may_put(ctx, &keys::blob_data(id), ctx.hook_meta(repo, None)).await?;
    let chunk = req.header("content-range").is_some();
    let tail = append(ctx, id, &mut session, req.body, chunk).await?;
    store_tail(ctx, id, &mut session, tail).await?;
    save(ctx, id, &session, version).await?;
    Ok(accepted(ctx, repo, id, session.offset, 202))
}

pub async fn finish(ctx: &Ctx<'_>, req: Request, repo: &Repository, id: &str) -> Result<Response> {
    authorize_write(ctx, repo, Action::Write).await?;
    let digest = digest_param(&req)?;
    // Refused before anything is read or written; the session stays for a later try.
    may_put(ctx, &keys::blob(&digest), ctx.hook_meta(repo, Some(&digest))).await?;
    let (session, _version) = load(ctx, repo, id).await?;
    check_range(&req, session.offset)?;
    // POST then one PUT with the whole blob: straight into R2.
    if session.offset == 0 && req.body.known_length().is_some_and(|n| n > 0) {
        let result = store_whole(ctx, repo, &digest, req.body).await;
        discard(ctx, id, &session, false).await;
        return result;
    }
    let chunk = req.header("content-range").is_some();
    complete(ctx, repo, id, session, req.body, &digest, true, chunk).await
}

/// Appends the last bytes, checks the digest, and makes the blob visible.
#[allow(clippy::too_many_arguments)]
async fn complete(ctx: &Ctx<'_>, repo: &Repository, id: &str, mut session: Session, body: Body, digest: &Digest, persisted: bool, chunk: bool) -> Result<Response> {
    let result = complete_inner(ctx, id, &mut session, body, digest, chunk).await;
    let became_blob = matches!(result, Ok(true));
    if persisted || session.multipart.is_some() || session.tail_key.is_some() {
        discard(ctx, id, &session, became_blob).await;
    }
    result?;
    link(ctx, repo, digest).await?;
    Ok(created(ctx, repo, digest))
}

/// Removes an assembled upload that did not become the blob.
async fn drop_assembled(ctx: &Ctx<'_>, data_key: &Key) {
    if let Err(e) = ctx.storage.discard(std::slice::from_ref(&data_key.path)).await {
        crate::logging::error(&format!("oci: could not remove the assembled upload {data_key}: {e}"));
    }
}

/// Ok(true) when the multipart object became the blob, Ok(false) when stored otherwise.
async fn complete_inner(ctx: &Ctx<'_>, id: &str, session: &mut Session, body: Body, digest: &Digest, chunk: bool) -> Result<bool> {
    let mut last = append(ctx, id, session, body, chunk).await?;
    let mismatch = |actual: &Digest| DIGEST_INVALID.err(format!("the uploaded content is {actual}, not {digest}"));
    let alg = session.algorithm().ok_or_else(|| Error::internal("corrupt hash algorithm"))?;
    // What was hashed as the bytes came, in the session's algorithm (`digest-algorithm` of the
    // POST, sha256 when none). Without it (several requests after a natively hashed one, or a
    // final digest in another algorithm) the content is hashed again: what is under one part
    // is at hand, a multipart object is read back once assembled.
    let hashed = if alg != digest.algorithm() || session.unhashed {
        None
    } else if let Some(native) = &session.native {
        Some(Digest::from_hash(alg, &hex::decode(native).map_err(|_| Error::internal("corrupt digest in upload session"))?))
    } else {
        Some(session.hasher().ok_or_else(|| Error::internal("corrupt hash state"))?.finish())
    };
    match &hashed {
        Some(actual) if actual != digest => return Err(mismatch(actual)),
        Some(_) => {}
        None if session.multipart.is_none() => {
            let raw = digest_body(joined(last.pieces.clone()), native_algorithm(digest.algorithm())).await.map_err(Error::internal)?;
            let actual = Digest::from_hash(digest.algorithm(), &raw);
            if &actual != digest {
                return Err(mismatch(&actual));
            }
        }
        None => {}
    }
    let verified = hashed.is_some() || session.multipart.is_none();
    let exists = blob_meta(ctx, digest).await?.is_some();
    if exists && verified {
        return Ok(false);
    }
    let meta = ctx.hook_meta(&session.repo, Some(digest));
    let blob_key = keys::blob(digest);
    let Some(upload) = session.multipart.clone() else {
        // Smaller than one part: a plain put, verified by R2 once more.
        let opts = PutOptions { checksum: Some(digest.checksum()), ..blob_key.put_options(BTreeMap::new()) };
        return match ctx.storage.put(blob_key.as_str(), joined(last.take()), opts, meta).await? {
            PutOutcome::Stored(_) | PutOutcome::ConditionFailed => Ok(false),
            PutOutcome::ChecksumMismatch => Err(DIGEST_INVALID.err("content changed in flight")),
        };
    };
    if last.len > 0 {
        upload_part(ctx, id, session, joined(last.take())).await?;
    }
    let data_key = keys::blob_data(id);
    let parts = session.parts.iter().map(|(n, e)| UploadedPart { part_number: *n, etag: e.clone() }).collect();
    let stored = ctx.storage.complete_multipart(data_key.as_str(), &upload, parts, meta.clone()).await?;
    // From here the assembled object is this request's to remove if the blob does not become it.
    session.multipart = None;
    if !verified {
        let actual = rehash(ctx, &data_key, digest.algorithm()).await;
        let becomes_blob = !exists && matches!(&actual, Ok(a) if a == digest);
        if !becomes_blob {
            drop_assembled(ctx, &data_key).await;
        }
        match actual? {
            actual if &actual != digest => return Err(mismatch(&actual)),
            _ if exists => return Ok(false),
            _ => {}
        }
    }
    // R2 cannot rename: the blob key points at the assembled object.
    let custom = BTreeMap::from([("location".to_string(), data_key.path.clone()), ("size".to_string(), stored.size.to_string())]);
    if let Err(e) = ctx.storage.put(blob_key.as_str(), Body::Empty, blob_key.put_options(custom), meta).await {
        drop_assembled(ctx, &data_key).await;
        return Err(e.into());
    }
    Ok(true)
}

/// The digest in `alg` of a stored object, read back and hashed natively.
async fn rehash(ctx: &Ctx<'_>, key: &Key, alg: Algorithm) -> Result<Digest> {
    let Some(object) = ctx.app.platform.store.get(key.as_str(), None).await.map_err(Error::internal)? else {
        return Err(Error::internal(format!("assembled upload {key} vanished")));
    };
    let raw = digest_body(object.body, native_algorithm(alg)).await.map_err(Error::internal)?;
    Ok(Digest::from_hash(alg, &raw))
}

pub async fn status(ctx: &Ctx<'_>, repo: &Repository, id: &str) -> Result<Response> {
    authorize_write(ctx, repo, Action::Write).await?;
    let (session, _) = load(ctx, repo, id).await?;
    Ok(accepted(ctx, repo, id, session.offset, 204))
}

pub async fn cancel(ctx: &Ctx<'_>, repo: &Repository, id: &str) -> Result<Response> {
    authorize_write(ctx, repo, Action::Write).await?;
    let (session, _) = load(ctx, repo, id).await?;
    discard(ctx, id, &session, false).await;
    Ok(Response::new(204))
}
