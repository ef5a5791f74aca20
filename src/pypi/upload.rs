//! Uploads through the legacy API (warehouse.pypa.io "Upload API"; `POST /` and `/legacy/`):
//! a `multipart/form-data` body of metadata fields and the distribution as the file part
//! `content`, which twine, uv publish and poetry publish all send last.
//!
//! The body is parsed as it arrives (`multipart::Parser`); the file goes to R2 in parts
//! (`ObjectWriter`, through the hooked storage) while `digest::Hasher` hashes it, so it is
//! never held whole. It is stored under a key of its own upload (`names::UploadId`): R2
//! multipart uploads have no create-only condition, and two uploads of one filename must not
//! write the same object. Only once the digests match does the upload complete; the record
//! job then accepts it (exactly one of two racing uploads of a filename wins) or refuses it,
//! and a refused object is deleted. Nothing unverified is ever under a key a page links to.

use std::collections::BTreeMap;
use std::rc::Rc;

use async_trait::async_trait;
use futures::StreamExt;

use super::digest::{Digests, Hasher};
use super::filename::{self, DistKind};
use super::jobs::{PypiJob, Writer};
use super::multipart::{self, Event, MultipartError};
use super::names::{keys, ProjectName, UploadId};
use super::record::{FileRecord, ReleaseMetadata};
use super::wheel::{self, RangeSource, WheelLimits};
use super::Ctx;
use crate::auth::Action;
use crate::error::{Error, Result};
use crate::http::{Body, Request, Response};
use crate::platform::{ByteRange, ObjectStore, PutOutcome};
use crate::storage::key::Key;
use crate::storage::writer::ObjectWriter;
use crate::storage::hooked::{store_error, HookedStore};
use crate::storage::{HookMetadata, Storage};

/// The largest distribution file accepted: pypi.org's default per-file limit (100 MiB).
/// The file is streamed, so this bounds storage and time, not memory.
pub const MAX_UPLOAD_BYTES: u64 = 100 << 20;

/// The form's text fields (bounded by `multipart::Limits`).
#[derive(Default)]
struct Form {
    /// Single-valued control fields (`:action`, `name`, `version`, digests, …), last wins.
    fields: BTreeMap<String, String>,
    /// Every field in order, for the release's core metadata.
    all: Vec<(String, String)>,
}

const CONTROL_FIELDS: [&str; 10] = [
    ":action",
    "protocol_version",
    "name",
    "version",
    "filetype",
    "pyversion",
    "md5_digest",
    "sha256_digest",
    "blake2_256_digest",
    "requires_python",
];

impl Form {
    fn add(&mut self, name: String, value: String) {
        if CONTROL_FIELDS.contains(&name.as_str()) {
            self.fields.insert(name.clone(), value.clone());
        }
        self.all.push((name, value));
    }

    fn metadata(&self) -> ReleaseMetadata {
        super::metadata::from_upload_form(self.all.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into()
    }

    fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str).map(str::trim).filter(|v| !v.is_empty())
    }

    fn required(&self, field: &str) -> Result<&str> {
        self.get(field).ok_or_else(|| Error::invalid(format!("'{field}' is a required field")))
    }
}

/// What an upload is, once its file part has started and the form checked out.
struct Upload {
    name: ProjectName,
    /// The name as the form spelled it (kept for display by the project's first upload).
    display_name: String,
    version: String,
    filename: String,
    kind: DistKind,
    id: UploadId,
    key: Key,
    writer: Writer,
}

/// The file being received: its upload, where its bytes go and their digests so far.
struct Incoming {
    upload: Upload,
    out: ObjectWriter,
    hasher: Hasher,
    done: bool,
}

/// `POST /pypi/` or `/pypi/legacy/`.
pub async fn upload(ctx: &Ctx<'_>, req: Request) -> Result<Response> {
    // Credentials first, before a byte of the body: the project (hence the scope) is only
    // known from the form, but anonymous and read-only callers go now.
    match &ctx.principal {
        None => return Err(super::errors::unauthorized("authentication required to upload")),
        Some(p) if p.readonly => return Err(Error::denied("this token is read-only")),
        Some(_) => {}
    }
    let boundary = req
        .header("content-type")
        .and_then(multipart::boundary)
        .ok_or_else(|| Error::invalid("the upload must be multipart/form-data with a boundary"))?;
    if req.body.known_length().is_some_and(|n| n > MAX_UPLOAD_BYTES) {
        return Err(too_large());
    }
    let (form, incoming) = receive(ctx, req.body, &boundary).await?;
    let mut incoming = incoming.ok_or_else(|| Error::invalid("Upload payload does not have a file."))?;
    let digests = std::mem::take(&mut incoming.hasher).finish();
    // The client's digests are checked before the upload completes: a mismatch leaves nothing.
    if let Err(mismatch) = digests.verify(form.get("sha256_digest"), form.get("md5_digest"), form.get("blake2_256_digest")) {
        incoming.out.abort().await;
        return Err(Error::invalid(mismatch.to_string()));
    }
    let Incoming { upload, out, .. } = incoming;
    let stored = out.finish().await.map_err(store_error)?;
    let mut written = vec![upload.key.path.clone()];
    let result = accept(ctx, &form, upload, &digests, stored.size, &mut written).await;
    if result.is_err() {
        // Refused (a lost race, a stranger, a bad wheel): its objects go.
        let _ = ctx.storage.discard(&written).await;
    }
    result
}

/// After the bytes are stored and verified: the wheel's metadata, then the record.
async fn accept(ctx: &Ctx<'_>, form: &Form, upload: Upload, digests: &Digests, size: u64, written: &mut Vec<String>) -> Result<Response> {
    let Upload { name, display_name, version, filename, kind, id, key, writer } = upload;
    let core_metadata_sha256 = match kind {
        DistKind::Wheel => store_core_metadata(ctx, &name, &version, &key, size, written).await?,
        DistKind::Sdist => None,
    };
    let file = FileRecord {
        filename,
        upload_id: id.as_str().to_string(),
        sha256: digests.sha256_hex(),
        md5: digests.md5_hex(),
        blake2b_256: digests.blake2b_256_hex(),
        size,
        upload_time: ctx.app.platform.now_iso(),
        filetype: kind.packagetype().to_string(),
        pyversion: form.get("pyversion").unwrap_or(if kind == DistKind::Sdist { "source" } else { "" }).to_string(),
        requires_python: form.get("requires_python").map(str::to_string),
        core_metadata_sha256,
        uploader: writer.user.clone(),
    };
    let job = PypiJob::AddFile {
        name: name.to_string(),
        display_name,
        version,
        metadata: Box::new(form.metadata()),
        file: Box::new(file),
        writer,
    };
    ctx.run(&name, job).await?;
    Ok(Response::json(200, &serde_json::json!({"ok": true})))
}

fn too_large() -> Error {
    Error::too_large(format!("the upload is larger than the limit of {} MiB", MAX_UPLOAD_BYTES >> 20))
}

/// Reads the body: the form's fields, and the `content` file streamed into its upload.
/// Whatever fails, an upload begun here is aborted before the error returns.
async fn receive(ctx: &Ctx<'_>, body: Body, boundary: &str) -> Result<(Form, Option<Incoming>)> {
    let mut form = Form::default();
    let mut incoming: Option<Incoming> = None;
    match read_form(ctx, body, boundary, &mut form, &mut incoming).await {
        Ok(()) => Ok((form, incoming)),
        Err(e) => {
            if let Some(i) = incoming {
                i.out.abort().await;
            }
            Err(e)
        }
    }
}

async fn read_form(ctx: &Ctx<'_>, body: Body, boundary: &str, form: &mut Form, incoming: &mut Option<Incoming>) -> Result<()> {
    let mut parser = multipart::Parser::new(boundary, multipart::Limits::default());
    let mut chunks = body.into_chunks();
    let mut received: u64 = 0;
    let mut events = Vec::new();
    // Bytes of a file part other than `content` (a detached signature) are skipped.
    let mut skipping = false;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        received += chunk.len() as u64;
        if received > MAX_UPLOAD_BYTES {
            return Err(too_large());
        }
        parser.feed(&chunk, &mut events).map_err(multipart_error)?;
        for event in events.drain(..) {
            match event {
                Event::Field { name, value } => form.add(name, value),
                Event::FileStart { name, filename, .. } if name == "content" => {
                    if incoming.is_some() {
                        return Err(Error::invalid("the upload has more than one file"));
                    }
                    *incoming = Some(start_file(ctx, form, &filename).await?);
                }
                Event::FileStart { .. } => skipping = true,
                Event::FileData(data) if !skipping => {
                    let Some(file) = incoming.as_mut().filter(|f| !f.done) else {
                        return Err(Error::invalid("malformed upload: file data outside the file part"));
                    };
                    file.hasher.update(&data);
                    file.out.write(&data).await.map_err(store_error)?;
                }
                Event::FileData(_) => {}
                Event::FileEnd => {
                    if !std::mem::take(&mut skipping) {
                        if let Some(file) = incoming.as_mut() {
                            file.done = true;
                        }
                    }
                }
            }
        }
    }
    parser.finish().map_err(multipart_error)
}

fn multipart_error(e: MultipartError) -> Error {
    match e {
        MultipartError::TooLarge(_) | MultipartError::TooManyParts { .. } => Error::too_large(e.to_string()),
        _ => Error::invalid(e.to_string()),
    }
}

/// Checks the form against the file's name and the caller's rights, then opens its upload.
/// Everything the file part is checked against precedes it (as twine, uv and poetry send
/// it); a file before the fields is refused rather than held.
async fn start_file(ctx: &Ctx<'_>, form: &Form, filename: &str) -> Result<Incoming> {
    let raw_name = form
        .get("name")
        .ok_or_else(|| Error::invalid("the 'name' field must come before the file part 'content' in the form"))?;
    match form.get(":action") {
        Some("file_upload") => {}
        Some(other) => return Err(Error::invalid(format!("Unknown :action {other:?}: only file_upload is supported"))),
        None => return Err(Error::invalid("':action' is a required field")),
    }
    if let Some(v) = form.get("protocol_version").filter(|v| *v != "1") {
        return Err(Error::invalid(format!("Unknown protocol_version {v:?}")));
    }
    let name = ProjectName::parse(raw_name).ok_or_else(|| Error::invalid(format!("Invalid project name {raw_name:?}")))?;
    let version = form.required("version")?.to_string();
    let filetype = form.required("filetype")?;
    let dist = filename::parse(filename).ok_or_else(|| Error::invalid(format!("Invalid distribution filename {filename:?}")))?;
    dist.check(raw_name, &version).map_err(Error::invalid)?;
    if dist.kind.packagetype() != filetype {
        return Err(Error::invalid(format!("Invalid value for filetype: {filename:?} is a {}, not {filetype}.", dist.kind.packagetype())));
    }
    let writer = ctx.writer(&name, Action::Write)?;
    // Early refusals before a byte is stored; the job checks both again under the lock.
    if let Some(project) = ctx.load(&name).await? {
        super::jobs::check_owner(&project, &name, &writer)?;
        if project.retired.contains(filename) || project.find_file(filename).is_some() {
            return Err(Error::invalid("File already exists."));
        }
    }
    let id = UploadId::random();
    let key = keys::file(&name, &id, filename);
    let meta = HookMetadata { content_type: Some(key.kind.content_type.into()), ..ctx.hook_meta(&name, Some(&version)) };
    ctx.storage.check(crate::storage::Operation::Put, key.as_str(), meta.clone()).await?;
    let store: Rc<dyn ObjectStore> = Rc::new(HookedStore { storage: ctx.storage.clone(), meta });
    let out = ObjectWriter::new(store, key.as_str(), key.put_options(BTreeMap::new()));
    let upload = Upload { display_name: raw_name.to_string(), name, version, filename: filename.to_string(), kind: dist.kind, id, key, writer };
    Ok(Incoming { upload, out, hasher: Hasher::new(), done: false })
}

/// Extracts a stored wheel's `METADATA` (PEP 658) with ranged reads, checks it names the
/// project and version of the upload, and stores it beside the wheel; its sha256.
async fn store_core_metadata(ctx: &Ctx<'_>, name: &ProjectName, version: &str, key: &Key, size: u64, written: &mut Vec<String>) -> Result<Option<String>> {
    let source = StoredFile { storage: ctx.storage.clone(), key: key.path.clone(), meta: ctx.hook_meta(name, Some(version)) };
    let bytes = match wheel::core_metadata(&source, size, &WheelLimits::default()).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(Error::invalid("Invalid distribution file: the wheel has no .dist-info/METADATA")),
        Err(wheel::WheelError::Read(e)) => return Err(Error::internal(e)),
        Err(e) => return Err(Error::invalid(format!("Invalid distribution file: {e}"))),
    };
    let core = super::metadata::parse(&bytes).map_err(|e| Error::invalid(format!("Invalid distribution file: METADATA: {e}")))?;
    if filename::normalize(&core.name) != name.as_str() || !filename::same_version(&core.version, version) {
        return Err(Error::invalid(format!(
            "Invalid distribution file: its METADATA is for {} {}, not {name} {version}",
            core.name, core.version
        )));
    }
    let sha256 = crate::util::sha256_hex(&bytes);
    let meta_key = keys::metadata(key);
    let hook = HookMetadata { content_type: Some(meta_key.kind.content_type.into()), ..ctx.hook_meta(name, Some(version)) };
    match ctx.storage.put(meta_key.as_str(), bytes.into(), meta_key.put_options(BTreeMap::new()), hook).await? {
        PutOutcome::Stored(_) => {}
        other => return Err(Error::internal(format!("metadata write refused: {other:?}"))),
    }
    written.push(meta_key.path);
    Ok(Some(sha256))
}

/// A stored wheel read by ranges through the hooked storage.
struct StoredFile {
    storage: Storage,
    key: String,
    meta: HookMetadata,
}

#[async_trait(?Send)]
impl RangeSource for StoredFile {
    async fn read(&self, offset: u64, len: u64) -> std::result::Result<Vec<u8>, String> {
        let range = ByteRange::Slice { offset, length: len };
        let obj = self.storage.get(&self.key, Some(range), self.meta.clone()).await.map_err(|e| e.to_string())?;
        let obj = obj.ok_or_else(|| format!("{} vanished", self.key))?;
        obj.body.read_capped(len).await.map_err(|e| e.to_string())
    }
}
