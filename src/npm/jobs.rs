//! Changes to a packument, run one at a time per package (see `crate::jobs`). Each job reads
//! the stored packument, applies one change and writes it back with its search marker, so
//! concurrent publishes of different versions all survive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::names::{keys, PackageName};
use super::packument::{highest, PACKAGE_FIELDS};
use crate::jobs::{JobEnv, JobError, JobResult};
use crate::error::Error;
use crate::platform::PutOutcome;
use crate::util::{iso8601, random_hex};

/// Who asks for a change. Every job checks, under the package's lock, that the writer is a
/// maintainer (npm's owners), so an owner change racing a write cannot let a stranger in.
pub use crate::auth::owners::Writer;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NpmJob {
    /// Adds versions whose tarballs are already stored (with their sha512 in metadata). The
    /// first publish of a name makes the publisher its maintainer.
    Publish {
        name: String,
        versions: Map<String, Value>,
        dist_tags: BTreeMap<String, String>,
        package_fields: Map<String, Value>,
        writer: Writer,
    },
    /// Sets (`Some`) or clears (`None`/empty) the deprecation message of existing versions.
    Deprecate {
        name: String,
        messages: BTreeMap<String, Option<String>>,
        writer: Writer,
    },
    RemoveVersions { name: String, versions: Vec<String>, writer: Writer },
    DeletePackage { name: String, writer: Writer },
    SetDistTag { name: String, tag: String, version: String, writer: Writer },
    RemoveDistTag { name: String, tag: String, writer: Writer },
    /// `npm owner add/rm`: the new maintainer list (`{name, email?}` objects), never empty.
    SetMaintainers { name: String, maintainers: Vec<Value>, writer: Writer },
}

/// The maintainers' names of a packument: npm's owner list.
pub fn maintainer_names(doc: &Value) -> Vec<String> {
    doc.get("maintainers")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(|o| o.get("name").and_then(Value::as_str).map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The ownership check of every change (`auth::owners`): maintainers, admins and grants.
pub fn check_owner(doc: &Value, name: &PackageName, writer: &Writer) -> Result<(), JobError> {
    if writer.may_override || crate::auth::owners::owns(&writer.user, &maintainer_names(doc)) {
        return Ok(());
    }
    Err(refuse(Error::denied(format!("user {} is not a maintainer of {name}", writer.user))))
}

/// Loads the packument for a change by `writer`: 404 when absent, 403 when not theirs.
async fn load_owned(env: &JobEnv, name: &PackageName, writer: &Writer) -> Result<Value, JobError> {
    let doc = load(env, name).await?.ok_or_else(not_found)?;
    check_owner(&doc, name, writer)?;
    Ok(doc)
}

fn package(name: &str) -> Result<PackageName, JobError> {
    PackageName::parse(name, true).ok_or_else(|| refuse(Error::invalid(format!("invalid package name {name:?}"))))
}

async fn load(env: &JobEnv, name: &PackageName) -> Result<Option<Value>, JobError> {
    let Some(obj) = env.store.get(keys::packument(name).as_str(), None).await.map_err(JobError::internal)? else {
        return Ok(None);
    };
    let bytes = obj.body.read_capped(u64::MAX).await.map_err(JobError::internal)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| JobError::internal(format!("stored packument of {name} is corrupt: {e}")))
}

fn not_found() -> JobError {
    refuse(super::errors::not_found())
}

/// A refusal of the error model as it crosses the Durable Object boundary (status and
/// message; the handler turns it back into an [`Error`]).
fn refuse(e: Error) -> JobError {
    JobError::new(e.status(), e.detail)
}

/// Writes the packument (new `_rev`, `time.modified`) and refreshes its search marker.
async fn save(env: &JobEnv, name: &PackageName, doc: &mut Value) -> JobResult {
    let now = iso8601(env.clock.now_ms());
    let seq = doc
        .get("_rev")
        .and_then(Value::as_str)
        .and_then(|r| r.split('-').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let rev = format!("{}-{}", seq + 1, random_hex().chars().take(16).collect::<String>());
    let Some(fields) = doc.as_object_mut() else {
        return Err(JobError::internal(format!("packument of {name} is not an object")));
    };
    fields.insert("_rev".into(), json!(rev));
    fields.insert("_id".into(), json!(name.as_str()));
    fields.insert("name".into(), json!(name.as_str()));
    let time = fields.entry("time").or_insert_with(|| json!({}));
    if !time.is_object() {
        *time = json!({});
    }
    time["modified"] = json!(now);
    if time.get("created").is_none() {
        time["created"] = json!(now);
    }
    let bytes = serde_json::to_vec(&doc).map_err(JobError::internal)?;
    let key = keys::packument(name);
    match env.store.put(key.as_str(), bytes.into(), key.put_options(BTreeMap::new())).await.map_err(JobError::internal)? {
        PutOutcome::Stored(_) => {}
        other => return Err(JobError::internal(format!("packument write refused: {other:?}"))),
    }
    write_search_marker(env, name, doc).await?;
    Ok(json!({"ok": true, "id": name.as_str(), "rev": rev}))
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_string()
}

/// The search summary lives in the custom metadata of a tiny marker object, so a search is
/// one listing instead of reading every packument. R2 allows 2 KiB of metadata.
async fn write_search_marker(env: &JobEnv, name: &PackageName, doc: &Value) -> Result<(), JobError> {
    let latest = doc.pointer("/dist-tags/latest").and_then(Value::as_str).unwrap_or_default();
    let manifest = doc.get("versions").and_then(|v| v.get(latest));
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let keywords = manifest
        .and_then(|m| m.get("keywords"))
        .or(doc.get("keywords"))
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let publisher = manifest
        .and_then(|m| m.pointer("/_npmUser/name"))
        .map(|v| text(Some(v)))
        .unwrap_or_default();
    let mut custom = BTreeMap::new();
    custom.insert("name".to_string(), name.as_str().to_string());
    custom.insert("version".to_string(), latest.to_string());
    custom.insert(
        "description".to_string(),
        truncate(&text(manifest.and_then(|m| m.get("description")).or(doc.get("description"))), 600),
    );
    custom.insert("keywords".to_string(), truncate(&keywords, 400));
    custom.insert("date".to_string(), text(doc.pointer("/time/modified")));
    custom.insert("publisher".to_string(), truncate(&publisher, 100));
    let key = keys::search_marker(name);
    env.store
        .put(key.as_str(), Vec::new().into(), key.put_options(custom))
        .await
        .map_err(JobError::internal)?;
    Ok(())
}

pub async fn execute(env: &JobEnv, job: NpmJob) -> JobResult {
    match job {
        NpmJob::Publish {
            name,
            versions,
            dist_tags,
            package_fields,
            writer,
        } => publish(env, &package(&name)?, versions, dist_tags, package_fields, &writer).await,
        NpmJob::Deprecate { name, messages, writer } => {
            let name = package(&name)?;
            let mut doc = load_owned(env, &name, &writer).await?;
            for (version, message) in messages {
                let v = doc
                    .get_mut("versions")
                    .and_then(|all| all.get_mut(&version))
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| refuse(Error::not_found(format!("version {version} not found"))))?;
                match message.filter(|m| !m.is_empty()) {
                    Some(m) => v.insert("deprecated".into(), json!(m)),
                    None => v.remove("deprecated"),
                };
            }
            save(env, &name, &mut doc).await
        }
        NpmJob::RemoveVersions { name, versions, writer } => {
            let name = package(&name)?;
            let mut doc = load_owned(env, &name, &writer).await?;
            let all = doc.get_mut("versions").and_then(Value::as_object_mut).ok_or_else(not_found)?;
            for v in &versions {
                all.remove(v);
            }
            let remaining: Vec<String> = all.keys().cloned().collect();
            // Tags pointing at removed versions go; `latest` moves to the highest left.
            if let Some(tags) = doc.get_mut("dist-tags").and_then(Value::as_object_mut) {
                tags.retain(|_, v| v.as_str().is_some_and(|v| remaining.iter().any(|r| r == v)));
                if !tags.contains_key("latest") {
                    if let Some(h) = highest(remaining.iter()) {
                        tags.insert("latest".into(), json!(h));
                    }
                }
            }
            let mut result = save(env, &name, &mut doc).await?;
            if let Some(r) = result.as_object_mut() {
                r.insert("removed".into(), json!(versions));
            }
            Ok(result)
        }
        NpmJob::DeletePackage { name, writer } => {
            let name = package(&name)?;
            let doc = load_owned(env, &name, &writer).await?;
            env.store
                .delete(&[keys::packument(&name).path, keys::search_marker(&name).path])
                .await
                .map_err(JobError::internal)?;
            let versions: Vec<String> = doc.get("versions").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
            Ok(json!({"ok": true, "versions": versions}))
        }
        NpmJob::SetDistTag { name, tag, version, writer } => {
            let name = package(&name)?;
            let mut doc = load_owned(env, &name, &writer).await?;
            if doc.get("versions").and_then(|v| v.get(&version)).is_none() {
                return Err(refuse(Error::not_found(format!("version {version} of {name} not found"))));
            }
            object_at(&mut doc, "dist-tags")?.insert(tag, json!(version));
            save(env, &name, &mut doc).await
        }
        NpmJob::RemoveDistTag { name, tag, writer } => {
            let name = package(&name)?;
            if tag == "latest" {
                return Err(refuse(Error::invalid("the latest tag cannot be removed")));
            }
            let mut doc = load_owned(env, &name, &writer).await?;
            let removed = doc.get_mut("dist-tags").and_then(Value::as_object_mut).and_then(|t| t.remove(&tag));
            if removed.is_none() {
                return Err(refuse(Error::not_found(format!("dist-tag {tag} not found"))));
            }
            save(env, &name, &mut doc).await
        }
        NpmJob::SetMaintainers { name, maintainers, writer } => {
            let name = package(&name)?;
            if maintainers.is_empty() {
                return Err(refuse(Error::invalid("a package needs at least one maintainer")));
            }
            let mut doc = load_owned(env, &name, &writer).await?;
            fields_of(&mut doc)?.insert("maintainers".into(), Value::Array(maintainers));
            save(env, &name, &mut doc).await
        }
    }
}

/// The packument's own fields.
fn fields_of(doc: &mut Value) -> Result<&mut Map<String, Value>, JobError> {
    doc.as_object_mut().ok_or_else(|| JobError::internal("packument is not an object"))
}

/// The packument's `field` object (`versions`, `time`, `dist-tags`), made one if it is
/// missing or not an object.
fn object_at<'a>(doc: &'a mut Value, field: &str) -> Result<&'a mut Map<String, Value>, JobError> {
    let value = fields_of(doc)?.entry(field).or_insert_with(|| json!({}));
    if !value.is_object() {
        *value = json!({});
    }
    value.as_object_mut().ok_or_else(|| JobError::internal(format!("{field} is not an object")))
}

async fn publish(
    env: &JobEnv,
    name: &PackageName,
    versions: Map<String, Value>,
    dist_tags: BTreeMap<String, String>,
    package_fields: Map<String, Value>,
    writer: &Writer,
) -> JobResult {
    let mut doc = match load(env, name).await? {
        Some(doc) => {
            check_owner(&doc, name, writer)?;
            doc
        }
        None => json!({"name": name.as_str(), "dist-tags": {}, "versions": {}, "time": {}}),
    };
    let now = iso8601(env.clock.now_ms());
    for (version, manifest) in &versions {
        // npm never lets a version number be reused, even after an unpublish.
        if object_at(&mut doc, "versions")?.contains_key(version) || object_at(&mut doc, "time")?.contains_key(version) {
            return Err(refuse(Error::denied(format!("cannot publish over the previously published version {version}"))));
        }
        // The tarball must be the one this publish stored, not a concurrent publisher's.
        let key = keys::tarball(name, &name.tarball_filename(version));
        let stored = env.store.head(key.as_str()).await.map_err(JobError::internal)?;
        let want = manifest.pointer("/dist/integrity").and_then(Value::as_str);
        if stored.as_ref().and_then(|m| m.custom.get("integrity")).map(String::as_str) != want {
            return Err(refuse(Error::conflict(format!("the tarball of {name}@{version} changed during publish; retry"))));
        }
    }
    let new_versions: Vec<String> = versions.keys().cloned().collect();
    for (version, manifest) in versions {
        object_at(&mut doc, "time")?.insert(version.clone(), json!(now));
        object_at(&mut doc, "versions")?.insert(version, manifest);
    }
    let known: Vec<String> = object_at(&mut doc, "versions")?.keys().cloned().collect();
    let tags = object_at(&mut doc, "dist-tags")?;
    for (tag, version) in dist_tags {
        if known.contains(&version) {
            tags.insert(tag, json!(version));
        }
    }
    if !tags.contains_key("latest") {
        if let Some(h) = highest(new_versions.iter()) {
            tags.insert("latest".into(), json!(h));
        }
    }
    let latest = tags.get("latest").and_then(Value::as_str).map(str::to_string);
    let first = doc.get("_rev").is_none();
    let fields = fields_of(&mut doc)?;
    if first || latest.as_ref().is_some_and(|l| new_versions.contains(l)) {
        for f in PACKAGE_FIELDS {
            if let Some(v) = package_fields.get(*f) {
                fields.insert(f.to_string(), v.clone());
            }
        }
    }
    if maintainer_names(&doc).is_empty() {
        fields_of(&mut doc)?.insert("maintainers".into(), json!([{"name": writer.user}]));
    }
    if first {
        // The name is hosted from now on: what the pull-through cache kept of an upstream
        // package of that name goes, so none of it is ever served in its place (the tarball
        // route serves cached copies without asking whether the name is hosted).
        super::proxy::purge_for_hosted(&*env.store, name).await.map_err(JobError::internal)?;
    }
    save(env, name, &mut doc).await
}
