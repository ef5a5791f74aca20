//! Changes to a project record, run one at a time per project (see `crate::jobs`): each job
//! reads the record, applies one change and writes it back, so 20 concurrent uploads of one
//! project's files all survive. Every job checks ownership again under the project's lock,
//! so an owner change racing an upload cannot let a stranger in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::names::{keys, ProjectName, UploadId};
use super::record::{FileRecord, Project, ReleaseMetadata};
use crate::error::Error;
use crate::jobs::{JobEnv, JobError, JobResult};
use crate::platform::PutOutcome;

/// The largest project record read (thousands of files with their metadata fit easily).
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

pub use crate::auth::owners::Writer;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PypiJob {
    /// Adds a file already stored under its upload's own key. The first upload of a project
    /// makes the uploader its owner.
    AddFile {
        name: String,
        display_name: String,
        version: String,
        metadata: Box<ReleaseMetadata>,
        file: Box<FileRecord>,
        writer: Writer,
    },
    /// PEP 592: yanks (`Some(reason)`, possibly empty) or unyanks (`None`) a release.
    SetYanked { name: String, version: String, reason: Option<String>, writer: Writer },
    /// Removes a release; the result lists the objects to delete.
    DeleteRelease { name: String, version: String, writer: Writer },
    /// Removes one file (its release too when it was the last); the result lists the objects
    /// to delete.
    DeleteFile { name: String, filename: String, writer: Writer },
    /// Replaces the owners (the admin API).
    SetOwners { name: String, owners: Vec<String> },
}

impl PypiJob {
    /// Whether the job removes something (the hooks see a delete rather than a put).
    pub fn deletes(&self) -> bool {
        matches!(self, PypiJob::DeleteRelease { .. } | PypiJob::DeleteFile { .. })
    }
}

/// A refusal of the error model as it crosses the Durable Object boundary.
fn refuse(e: Error) -> JobError {
    JobError::new(e.status(), e.detail)
}

fn project_name(name: &str) -> Result<ProjectName, JobError> {
    ProjectName::parse(name).ok_or_else(|| refuse(Error::invalid(format!("invalid project name {name:?}"))))
}

/// The stored record of `name`, if any.
pub async fn load(store: &dyn crate::platform::ObjectStore, name: &ProjectName) -> Result<Option<Project>, JobError> {
    let Some(obj) = store.get(keys::project(name).as_str(), None).await.map_err(JobError::internal)? else {
        return Ok(None);
    };
    let bytes = obj.body.read_capped(MAX_RECORD_BYTES).await.map_err(JobError::internal)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| JobError::internal(format!("stored record of {name} is corrupt: {e}")))
}

async fn save(env: &JobEnv, name: &ProjectName, project: &mut Project) -> Result<(), JobError> {
    project.serial += 1;
    let bytes = serde_json::to_vec(project).map_err(JobError::internal)?;
    let key = keys::project(name);
    match env.store.put(key.as_str(), bytes.into(), key.put_options(BTreeMap::new())).await.map_err(JobError::internal)? {
        PutOutcome::Stored(_) => Ok(()),
        other => Err(JobError::internal(format!("record write refused: {other:?}"))),
    }
}

/// The ownership check of every change (`auth::owners`): owners, admins and grants.
pub fn check_owner(project: &Project, name: &ProjectName, writer: &Writer) -> Result<(), JobError> {
    if writer.may_override || crate::auth::owners::owns(&writer.user, &project.owners) {
        return Ok(());
    }
    Err(refuse(Error::denied(format!("The user '{}' isn't allowed to upload to project '{name}'.", writer.user))))
}

async fn load_owned(env: &JobEnv, name: &ProjectName, writer: &Writer) -> Result<Project, JobError> {
    let project = load(&*env.store, name).await?.ok_or_else(|| refuse(super::errors::not_found()))?;
    check_owner(&project, name, writer)?;
    Ok(project)
}

/// The objects of a file: its bytes and, when extracted, its metadata file.
pub fn file_keys(name: &ProjectName, file: &FileRecord) -> Vec<String> {
    let Some(id) = UploadId::parse(&file.upload_id) else {
        return Vec::new();
    };
    let key = keys::file(name, &id, &file.filename);
    let mut out = vec![key.path.clone()];
    if file.core_metadata_sha256.is_some() {
        out.push(keys::metadata(&key).path);
    }
    out
}

fn release_not_found(name: &ProjectName, version: &str) -> JobError {
    refuse(Error::not_found(format!("release {version} of {name} not found")))
}

pub async fn execute(env: &JobEnv, job: PypiJob) -> JobResult {
    match job {
        PypiJob::AddFile { name, display_name, version, metadata, file, writer } => {
            add_file(env, &project_name(&name)?, display_name, version, *metadata, *file, &writer).await
        }
        PypiJob::SetYanked { name, version, reason, writer } => {
            let name = project_name(&name)?;
            let mut project = load_owned(env, &name, &writer).await?;
            let key = project.release_key(&version).ok_or_else(|| release_not_found(&name, &version))?;
            if let Some(release) = project.releases.get_mut(&key) {
                release.yanked = reason;
            }
            save(env, &name, &mut project).await?;
            Ok(json!({"ok": true, "version": key}))
        }
        PypiJob::DeleteRelease { name, version, writer } => {
            let name = project_name(&name)?;
            let mut project = load_owned(env, &name, &writer).await?;
            let key = project.release_key(&version).ok_or_else(|| release_not_found(&name, &version))?;
            let release = project.releases.remove(&key).unwrap_or_default();
            let removed: Vec<String> = release.files.iter().flat_map(|f| file_keys(&name, f)).collect();
            project.retired.extend(release.files.into_iter().map(|f| f.filename));
            save(env, &name, &mut project).await?;
            Ok(json!({"ok": true, "version": key, "removed": removed}))
        }
        PypiJob::DeleteFile { name, filename, writer } => {
            let name = project_name(&name)?;
            let mut project = load_owned(env, &name, &writer).await?;
            let (version, index) = project
                .find_file(&filename)
                .ok_or_else(|| refuse(Error::not_found(format!("file {filename} of {name} not found"))))?;
            let mut removed = Vec::new();
            let mut last = false;
            if let Some(release) = project.releases.get_mut(&version) {
                if index < release.files.len() {
                    let file = release.files.remove(index);
                    removed = file_keys(&name, &file);
                }
                last = release.files.is_empty();
            }
            // Deleting the last file of a release removes the release.
            if last {
                project.releases.remove(&version);
            }
            project.retired.insert(filename);
            save(env, &name, &mut project).await?;
            Ok(json!({"ok": true, "version": version, "release_removed": last, "removed": removed}))
        }
        PypiJob::SetOwners { name, owners } => {
            let name = project_name(&name)?;
            if owners.is_empty() {
                return Err(refuse(Error::invalid("a project needs at least one owner")));
            }
            let mut project = load(&*env.store, &name).await?.ok_or_else(|| refuse(super::errors::not_found()))?;
            project.owners = owners;
            save(env, &name, &mut project).await?;
            Ok(json!({"ok": true, "owners": project.owners}))
        }
    }
}

async fn add_file(
    env: &JobEnv,
    name: &ProjectName,
    display_name: String,
    version: String,
    metadata: ReleaseMetadata,
    file: FileRecord,
    writer: &Writer,
) -> JobResult {
    let existing = load(&*env.store, name).await?;
    let first = existing.is_none();
    let mut project = match existing {
        Some(p) => {
            check_owner(&p, name, writer)?;
            p
        }
        None => Project { name: display_name, owners: vec![writer.user.clone()], ..Default::default() },
    };
    // As pypi.org: a filename names one file forever, even after it is deleted.
    if project.retired.contains(&file.filename) || project.find_file(&file.filename).is_some() {
        return Err(refuse(Error::invalid("File already exists.")));
    }
    let key = project.release_key(&version).unwrap_or(version);
    let release = project.releases.entry(key.clone()).or_default();
    if release.files.is_empty() {
        release.metadata = metadata;
    }
    if file.filetype == "sdist" && release.files.iter().any(|f| f.filetype == "sdist") {
        return Err(refuse(Error::invalid("Only one sdist may be uploaded per release.")));
    }
    release.files.push(file);
    if first {
        // The name is hosted from now on: what the pull-through cache kept of an upstream
        // project of that name goes, so none of it is ever served in its place.
        super::proxy::purge_for_hosted(&*env.store, name.as_str()).await.map_err(JobError::internal)?;
        write_index_marker(env, name, &project.name).await?;
    }
    save(env, name, &mut project).await?;
    Ok(json!({"ok": true, "version": key, "first": first}))
}

/// The root index's entry for a project: a zero-byte marker whose metadata is its display
/// name, so the root page is one listing instead of reading every record.
async fn write_index_marker(env: &JobEnv, name: &ProjectName, display: &str) -> Result<(), JobError> {
    let key = keys::index_marker(name);
    let custom = BTreeMap::from([("name".to_string(), display.to_string())]);
    env.store
        .put(key.as_str(), Vec::new().into(), key.put_options(custom))
        .await
        .map_err(JobError::internal)?;
    Ok(())
}
