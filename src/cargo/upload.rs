//! `PUT api/v1/crates/new` (Cargo book, "Registry Web API": "Publish"): a body of a 32-bit
//! little-endian length, the JSON metadata, another length, then the `.crate`.
//!
//! The body is parsed as it arrives (`publish::FrameParser`): once the metadata is whole it is
//! validated and the caller's rights checked, then the `.crate` goes to R2 in parts
//! (`ObjectWriter`, through the hooked storage) while its sha256 is computed, so it is never
//! held whole. It is stored under a key of its own publish: R2 multipart uploads have no
//! create-only condition, and two publishes of one version must not write the same object.
//! The job (`jobs.rs`) then appends the index line (exactly one of two racing publishes of a
//! version wins) or refuses it, and a refused object is deleted.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::jobs::{self, CargoJob, Writer};
use super::names::CrateName;
use super::publish::{CrateFileCheck, CrateFileError, Event, FrameParser, Limits, PublishError, PublishMetadata, MAX_UNPACKED};
use super::record::VersionRecord;
use super::{errors, index, keys, proxy, Ctx};
use crate::auth::Action;
use crate::error::{Error, Result};
use crate::http::{Body, Request, Response};
use crate::platform::ObjectStore;
use crate::storage::hooked::{store_error, HookedStore};
use crate::storage::key::Key;
use crate::storage::writer::ObjectWriter;
use crate::storage::{HookMetadata, Operation};

/// The largest `.crate` accepted: crates.io's default limit (10 MiB). It is streamed, so
/// this bounds storage and time, not memory.
pub const MAX_CRATE_BYTES: u64 = 10 << 20;
/// The largest metadata accepted: it is held whole (it carries the README).
pub const MAX_JSON_BYTES: u32 = 2 << 20;

/// A publish whose metadata checked out: where its `.crate` is going.
struct Incoming {
    meta: PublishMetadata,
    name: CrateName,
    id: String,
    key: Key,
    writer: Writer,
    out: ObjectWriter,
    hasher: Sha256,
    /// A `.crate` is a gzipped tarball of `{name}-{vers}/…` (Cargo book, "Registry Web API",
    /// publish): checked as it streams past, so a file cargo could not unpack is never stored.
    check: CrateFileCheck,
}

fn crate_file_error(e: CrateFileError) -> Error {
    match e {
        CrateFileError::TooLarge => Error::too_large(e.to_string()),
        CrateFileError::Invalid(_) => Error::invalid(e.to_string()),
    }
}

/// `PUT api/v1/crates/new`.
pub async fn publish(ctx: &Ctx<'_>, req: Request) -> Result<Response> {
    // Credentials first, before a byte of the body: the crate (hence the scope) is only known
    // from the metadata, but anonymous and read-only callers go now.
    match &ctx.principal {
        None => return Err(errors::unauthorized("publishing requires a token (`cargo login`, or `--token`)")),
        Some(p) if p.readonly => return Err(Error::denied("this token is read-only")),
        Some(_) => {}
    }
    if req.body.known_length().is_some_and(|n| n > MAX_CRATE_BYTES + u64::from(MAX_JSON_BYTES) + 8) {
        return Err(too_large());
    }
    let incoming = receive(ctx, req.body).await?;
    let Incoming { meta, name, id, key, writer, out, hasher, check } = incoming;
    if let Err(e) = check.finish() {
        out.abort().await;
        return Err(crate_file_error(e));
    }
    let stored = out.finish().await.map_err(store_error)?;
    let cksum = hex::encode(hasher.finalize());
    let result = accept(ctx, meta, &name, id, cksum, stored.size, writer).await;
    if result.is_err() {
        // Refused (a lost race, a stranger): its object goes.
        let _ = ctx.storage.discard(&[key.path]).await;
    }
    result
}

/// After the bytes are stored: the index line and the record, under the crate's lock.
async fn accept(ctx: &Ctx<'_>, meta: PublishMetadata, name: &CrateName, id: String, cksum: String, size: u64, writer: Writer) -> Result<Response> {
    let line = Box::new(index::line_for(&meta, &cksum));
    let file = VersionRecord { id, cksum, size, yanked: false, published_by: writer.user.clone(), published_at: ctx.app.platform.now_iso() };
    let job = CargoJob::Publish {
        name: name.as_str().to_string(),
        version: meta.vers.clone(),
        line,
        file,
        description: meta.description.clone(),
        writer,
    };
    ctx.run(name, job).await?;
    // Cargo book, "Registry Web API": warnings cargo prints; this registry has none to give.
    Ok(Response::json(200, &json!({"warnings": {"invalid_categories": [], "invalid_badges": [], "other": []}})))
}

fn too_large() -> Error {
    Error::too_large(format!("the crate is larger than the limit of {} MiB", MAX_CRATE_BYTES >> 20))
}

fn publish_error(e: PublishError) -> Error {
    match e {
        PublishError::TooLarge(_) => Error::too_large(e.to_string()),
        _ => Error::invalid(e.to_string()),
    }
}

/// Reads the body: the metadata, then the `.crate` streamed into its upload. Whatever fails,
/// an upload begun here is aborted before the error returns.
async fn receive(ctx: &Ctx<'_>, body: Body) -> Result<Incoming> {
    let mut incoming: Option<Incoming> = None;
    match read_body(ctx, body, &mut incoming).await {
        Ok(()) => incoming.ok_or_else(|| Error::invalid("the publish body holds no metadata")),
        Err(e) => {
            if let Some(i) = incoming {
                i.out.abort().await;
            }
            Err(e)
        }
    }
}

async fn read_body(ctx: &Ctx<'_>, body: Body, incoming: &mut Option<Incoming>) -> Result<()> {
    let mut parser = FrameParser::new(Limits { max_json: MAX_JSON_BYTES, max_crate: MAX_CRATE_BYTES });
    let mut chunks = body.into_chunks();
    let mut events = Vec::new();
    while let Some(chunk) = chunks.next().await {
        parser.feed(&chunk?, &mut events).map_err(publish_error)?;
        for event in events.drain(..) {
            match event {
                Event::Metadata(meta) => {
                    if incoming.is_some() {
                        return Err(Error::invalid("the publish body holds metadata twice"));
                    }
                    *incoming = Some(start(ctx, meta).await?);
                }
                Event::CrateData(data) => {
                    let Some(file) = incoming.as_mut() else {
                        return Err(Error::invalid("malformed publish body: crate data before the metadata"));
                    };
                    file.check.update(&data).map_err(crate_file_error)?;
                    file.hasher.update(&data);
                    file.out.write(&data).await.map_err(store_error)?;
                }
                Event::End => {}
            }
        }
    }
    parser.finish().map_err(publish_error)
}

/// Checks the metadata and the caller's rights, then opens the `.crate`'s upload.
async fn start(ctx: &Ctx<'_>, meta: PublishMetadata) -> Result<Incoming> {
    meta.validate().map_err(|e| Error::invalid(format!("invalid publish metadata: {e}")))?;
    let name = CrateName::parse(&meta.name).ok_or_else(|| Error::invalid(format!("invalid crate name {:?}", meta.name)))?;
    let writer = ctx.writer(&name, Action::Write)?;
    // Early refusals before a byte is stored; the job checks them again under the lock.
    match ctx.load(&name).await? {
        Some(record) => {
            jobs::check_spelling(&record, &name)?;
            jobs::check_owner(&record, &writer)?;
        }
        None => claim_check(ctx, &name, &writer).await?,
    }
    let file = jobs::load_index(&*ctx.app.platform.store, &name).await?;
    if let Some(v) = index::conflicting_version(&file, &meta.vers) {
        return Err(jobs::already_uploaded(&v));
    }
    let id = crate::util::random_hex();
    let key = keys::crate_file(&name, &id, &meta.vers);
    let hook = HookMetadata { content_type: Some(key.kind.content_type.into()), ..ctx.hook_meta(&name, Some(&meta.vers)) };
    ctx.storage.check(Operation::Put, key.as_str(), hook.clone()).await?;
    let store: Rc<dyn ObjectStore> = Rc::new(HookedStore { storage: ctx.storage.clone(), meta: hook });
    let out = ObjectWriter::new(store, key.as_str(), key.put_options(BTreeMap::new()));
    let check = CrateFileCheck::new(&meta.name, &meta.vers, MAX_UNPACKED);
    Ok(Incoming { meta, name, id, key, writer, out, hasher: Sha256::new(), check })
}

/// The first publish of a name an upstream (crates.io) also has is refused: claiming it here
/// would shadow the public crate for every build using this registry as its mirror. An admin
/// allows it by publishing with an admin credential, or by making the publisher a token with
/// a grant naming the crate (`"scopes": ["cargo:crate:NAME:write"]` through the admin API).
async fn claim_check(ctx: &Ctx<'_>, name: &CrateName, writer: &Writer) -> Result<()> {
    if writer.may_override || !proxy::upstream_has(ctx.app, name).await? {
        return Ok(());
    }
    Err(Error::denied(format!(
        "`{n}` exists on an upstream registry this one mirrors (crates.io); publishing it here would shadow it. \
         An admin can allow it: publish with an admin token, or with a token granted `cargo:crate:{n}:write` through the admin API",
        n = name.as_str()
    )))
}
