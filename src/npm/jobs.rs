//! Changes to a packument, run one at a time per package (see `crate::jobs`). Each job reads
//! the stored packument, applies one change and writes it back with its search marker, so
//! concurrent publishes of different versions all survive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::names::PackageName;
use super::packument::{highest, PACKAGE_FIELDS};
use crate::jobs::{JobEnv, JobError, JobResult};
use crate::platform::{PutOptions, PutOutcome};
use crate::util::{iso8601, random_hex};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NpmJob {
    /// Adds versions whose tarballs are already stored (with their sha512 in metadata).
    Publish {
        name: String,
        versions: Map<String, Value>,
        dist_tags: BTreeMap<String, String>,
        package_fields: Map<String, Value>,
        publisher: String,
    },
    /// Sets (`Some`) or clears (`None`/empty) the deprecation message of existing versions.
    Deprecate {
        name: String,
        messages: BTreeMap<String, Option<String>>,
    },
    RemoveVersions { name: String, versions: Vec<String> },
    DeletePackage { name: String },
    SetDistTag { name: String, tag: String, version: String },
    RemoveDistTag { name: String, tag: String },
}

fn package(name: &str) -> Result<PackageName, JobError> {
    PackageName::parse(name, true).ok_or_else(|| JobError::new(400, format!("invalid package name {name:?}")))
}

async fn load(env: &JobEnv, name: &PackageName) -> Result<Option<Value>, JobError> {
    let Some(obj) = env.store.get(&name.packument_key(), None).await.map_err(JobError::internal)? else {
        return Ok(None);
    };
    let bytes = obj.body.read_capped(u64::MAX).await.map_err(JobError::internal)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| JobError::internal(format!("stored packument of {name} is corrupt: {e}")))
}

fn not_found() -> JobError {
    JobError::new(404, "Not found")
}

/// Writes the packument (new `_rev`, `time.modified`) and refreshes its search marker.
async fn save(env: &JobEnv, name: &PackageName, doc: &mut Value) -> JobResult {
    let now = iso8601(env.clock.now_ms());
    let seq = doc
        .get("_rev")
        .and_then(Value::as_str)
        .and_then(|r| r.split('-').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let rev = format!("{}-{}", seq + 1, &random_hex()[..16]);
    doc["_rev"] = json!(rev);
    doc["_id"] = json!(name.as_str());
    doc["name"] = json!(name.as_str());
    let time = doc.as_object_mut().expect("packument is an object").entry("time").or_insert_with(|| json!({}));
    time["modified"] = json!(now);
    if time.get("created").is_none() {
        time["created"] = json!(now);
    }
    let bytes = serde_json::to_vec(&doc).map_err(JobError::internal)?;
    let opts = PutOptions {
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    match env.store.put(&name.packument_key(), bytes.into(), opts).await.map_err(JobError::internal)? {
        PutOutcome::Stored(_) => {}
        other => return Err(JobError::internal(format!("packument write refused: {other:?}"))),
    }
    write_search_marker(env, name, doc).await?;
    Ok(json!({"ok": true, "id": name.as_str(), "rev": rev}))
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
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
    let opts = PutOptions {
        custom,
        ..Default::default()
    };
    env.store
        .put(&name.search_key(), Vec::new().into(), opts)
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
            publisher,
        } => publish(env, &package(&name)?, versions, dist_tags, package_fields, &publisher).await,
        NpmJob::Deprecate { name, messages } => {
            let name = package(&name)?;
            let mut doc = load(env, &name).await?.ok_or_else(not_found)?;
            for (version, message) in messages {
                let v = doc
                    .get_mut("versions")
                    .and_then(|all| all.get_mut(&version))
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| JobError::new(404, format!("version {version} not found")))?;
                match message.filter(|m| !m.is_empty()) {
                    Some(m) => v.insert("deprecated".into(), json!(m)),
                    None => v.remove("deprecated"),
                };
            }
            save(env, &name, &mut doc).await
        }
        NpmJob::RemoveVersions { name, versions } => {
            let name = package(&name)?;
            let mut doc = load(env, &name).await?.ok_or_else(not_found)?;
            let all = doc["versions"].as_object_mut().ok_or_else(not_found)?;
            for v in &versions {
                all.remove(v);
            }
            let remaining: Vec<String> = all.keys().cloned().collect();
            // Tags pointing at removed versions go; `latest` moves to the highest left.
            if let Some(tags) = doc["dist-tags"].as_object_mut() {
                tags.retain(|_, v| v.as_str().is_some_and(|v| remaining.iter().any(|r| r == v)));
                if !tags.contains_key("latest") {
                    if let Some(h) = highest(remaining.iter()) {
                        tags.insert("latest".into(), json!(h));
                    }
                }
            }
            let mut result = save(env, &name, &mut doc).await?;
            result["removed"] = json!(versions);
            Ok(result)
        }
        NpmJob::DeletePackage { name } => {
            let name = package(&name)?;
            let doc = load(env, &name).await?.ok_or_else(not_found)?;
            env.store
                .delete(&[name.packument_key(), name.search_key()])
                .await
                .map_err(JobError::internal)?;
            let versions: Vec<String> = doc["versions"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
            Ok(json!({"ok": true, "versions": versions}))
        }
        NpmJob::SetDistTag { name, tag, version } => {
            let name = package(&name)?;
            let mut doc = load(env, &name).await?.ok_or_else(not_found)?;
            if doc["versions"].get(&version).is_none() {
                return Err(JobError::new(404, format!("version {version} of {name} not found")));
            }
            doc["dist-tags"][&tag] = json!(version);
            save(env, &name, &mut doc).await
        }
        NpmJob::RemoveDistTag { name, tag } => {
            let name = package(&name)?;
            if tag == "latest" {
                return Err(JobError::new(400, "the latest tag cannot be removed"));
            }
            let mut doc = load(env, &name).await?.ok_or_else(not_found)?;
            let removed = doc["dist-tags"].as_object_mut().and_then(|t| t.remove(&tag));
            if removed.is_none() {
                return Err(JobError::new(404, format!("dist-tag {tag} not found")));
            }
            save(env, &name, &mut doc).await
        }
    }
}

async fn publish(
    env: &JobEnv,
    name: &PackageName,
    versions: Map<String, Value>,
    dist_tags: BTreeMap<String, String>,
    package_fields: Map<String, Value>,
    publisher: &str,
) -> JobResult {
    let mut doc = load(env, name).await?.unwrap_or_else(|| {
        json!({"name": name.as_str(), "dist-tags": {}, "versions": {}, "time": {}})
    });
    let now = iso8601(env.clock.now_ms());
    for (version, manifest) in &versions {
        // npm never lets a version number be reused, even after an unpublish.
        if doc["versions"].get(version).is_some() || doc["time"].get(version).is_some() {
            return Err(JobError::new(
                403,
                format!("cannot publish over the previously published version {version}"),
            ));
        }
        // The tarball must be the one this publish stored, not a concurrent publisher's.
        let key = name.tarball_key(&name.tarball_filename(version));
        let stored = env.store.head(&key).await.map_err(JobError::internal)?;
        let want = manifest.pointer("/dist/integrity").and_then(Value::as_str);
        if stored.as_ref().and_then(|m| m.custom.get("integrity")).map(String::as_str) != want {
            return Err(JobError::new(409, format!("the tarball of {name}@{version} changed during publish; retry")));
        }
    }
    let new_versions: Vec<String> = versions.keys().cloned().collect();
    for (version, manifest) in versions {
        doc["versions"][&version] = manifest;
        doc["time"][&version] = json!(now);
    }
    for (tag, version) in dist_tags {
        if doc["versions"].get(&version).is_some() {
            doc["dist-tags"][&tag] = json!(version);
        }
    }
    if doc.pointer("/dist-tags/latest").is_none() {
        if let Some(h) = highest(new_versions.iter()) {
            doc["dist-tags"]["latest"] = json!(h);
        }
    }
    let latest = doc.pointer("/dist-tags/latest").and_then(Value::as_str).map(str::to_string);
    let first = doc.get("_rev").is_none();
    if first || latest.as_ref().is_some_and(|l| new_versions.contains(l)) {
        for f in PACKAGE_FIELDS {
            if let Some(v) = package_fields.get(*f) {
                doc[*f] = v.clone();
            }
        }
    }
    if doc.get("maintainers").is_none() {
        doc["maintainers"] = json!([{"name": publisher}]);
    }
    if first {
        // The name is hosted from now on: what the pull-through cache kept of an upstream
        // package of that name goes, so none of it is ever served in its place (the tarball
        // route serves cached copies without asking whether the name is hosted).
        let purged = crate::upstream::cache::purge(&*env.store, &super::proxy::cache_prefix(name)).await.map_err(JobError::internal)?;
        if purged > 0 {
            crate::logging::event("info", "cache_purged", json!({"protocol": "npm", "package": name.as_str(), "objects": purged}));
        }
    }
    save(env, name, &mut doc).await
}
