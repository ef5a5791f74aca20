//! Changes to a hosted crate, run one at a time per crate (see `crate::jobs`) under the lock
//! of its canonical name, so two spellings of one name are serialised too: each job reads the
//! index file and the record, applies one change and writes them back, so 20 concurrent
//! publishes of one crate's versions all survive. Every job checks ownership again under the
//! lock, so an owner change racing a publish cannot let a stranger in.
//!
//! The index file is the truth about which versions exist (it is what cargo reads); the
//! record is written first, so a failure between the two leaves at most a record entry for a
//! version the index does not list, which the next publish of that version overwrites.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::index::{self, IndexLine};
use super::keys;
use super::names::CrateName;
use super::record::{CrateRecord, VersionRecord};
use crate::error::Error;
use crate::jobs::{JobEnv, JobError, JobResult};
use crate::platform::{ObjectStore, PutOutcome};

/// The largest record read (thousands of versions fit easily).
pub const MAX_RECORD_BYTES: u64 = 16 << 20;
/// The largest index file read: crates.io's largest are a few MiB.
pub const MAX_INDEX_BYTES: u64 = 32 << 20;
/// The most bytes of a description kept in a search marker (R2 custom metadata is 2 KiB in
/// all, with the name and the version).
const MAX_MARKER_DESCRIPTION: usize = 1024;

pub use crate::auth::owners::Writer;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CargoJob {
    /// Adds a version whose `.crate` is already stored under its publish's own key: appends
    /// its index line. The first publish of a crate makes the publisher its owner.
    Publish {
        name: String,
        version: String,
        /// The version's index line (`index::line_for`).
        line: Box<IndexLine>,
        file: VersionRecord,
        #[serde(default)]
        description: Option<String>,
        writer: Writer,
    },
    /// Yanks or unyanks a version: rewrites its index line.
    SetYanked { name: String, version: String, yanked: bool, writer: Writer },
    /// `cargo owner --add/--remove`.
    ChangeOwners { name: String, add: Vec<String>, remove: Vec<String>, writer: Writer },
    /// Replaces the owners (the admin API).
    SetOwners { name: String, owners: Vec<String> },
}

/// A refusal of the error model as it crosses the Durable Object boundary.
fn refuse(e: Error) -> JobError {
    JobError::new(e.status(), e.detail)
}

fn crate_name(name: &str) -> Result<CrateName, JobError> {
    CrateName::parse(name).ok_or_else(|| refuse(Error::invalid(format!("invalid crate name {name:?}"))))
}

/// The stored record of `name` (any spelling of its canonical name), if any.
pub async fn load(store: &dyn ObjectStore, name: &CrateName) -> Result<Option<CrateRecord>, JobError> {
    let Some(obj) = store.get(keys::record(name).as_str(), None).await.map_err(JobError::internal)? else {
        return Ok(None);
    };
    let bytes = obj.body.read_capped(MAX_RECORD_BYTES).await.map_err(JobError::internal)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| JobError::internal(format!("stored record of {} is corrupt: {e}", name.as_str())))
}

/// The index file of `name`, empty when there is none.
pub async fn load_index(store: &dyn ObjectStore, name: &CrateName) -> Result<Vec<u8>, JobError> {
    match store.get(keys::index_file(name).as_str(), None).await.map_err(JobError::internal)? {
        Some(obj) => obj.body.read_capped(MAX_INDEX_BYTES).await.map_err(JobError::internal),
        None => Ok(Vec::new()),
    }
}

/// The refusal of a record under another spelling of the same canonical name.
pub fn check_spelling(record: &CrateRecord, name: &CrateName) -> Result<(), Error> {
    if record.name == name.as_str() {
        return Ok(());
    }
    Err(Error::invalid(format!("crate was previously named `{}`; `{}` is the same name to cargo and crates.io", record.name, name.as_str())))
}

/// The ownership check of every change (`auth::owners`): owners, admins and grants.
pub fn check_owner(record: &CrateRecord, writer: &Writer) -> Result<(), Error> {
    if writer.may_override || crate::auth::owners::owns(&writer.user, &record.owners) {
        return Ok(());
    }
    Err(Error::denied(format!("this crate exists but you don't seem to be an owner (user `{}` is not an owner of `{}`)", writer.user, record.name)))
}

pub fn already_uploaded(version: &str) -> Error {
    Error::invalid(format!("crate version `{version}` is already uploaded"))
}

fn no_crate(name: &CrateName) -> JobError {
    refuse(Error::not_found(format!("crate `{}` does not exist", name.as_str())))
}

async fn put(env: &JobEnv, key: &crate::storage::key::Key, bytes: Vec<u8>, custom: BTreeMap<String, String>) -> Result<(), JobError> {
    match env.store.put(key.as_str(), bytes.into(), key.put_options(custom)).await.map_err(JobError::internal)? {
        PutOutcome::Stored(_) => Ok(()),
        other => Err(JobError::internal(format!("write of {} refused: {other:?}", key.as_str()))),
    }
}

async fn save(env: &JobEnv, name: &CrateName, record: &mut CrateRecord) -> Result<(), JobError> {
    record.serial += 1;
    let bytes = serde_json::to_vec(record).map_err(JobError::internal)?;
    put(env, &keys::record(name), bytes, BTreeMap::new()).await
}

/// The search entry of a crate: a zero-byte marker whose metadata is what `cargo search`
/// shows, so a search is one listing instead of reading every record.
async fn write_search_marker(env: &JobEnv, name: &CrateName, record: &CrateRecord) -> Result<(), JobError> {
    let mut custom = BTreeMap::from([("name".to_string(), record.name.clone())]);
    if let Some(v) = record.max_version() {
        custom.insert("max_version".into(), v.to_string());
    }
    if let Some(d) = &record.description {
        custom.insert("description".into(), truncated(d, MAX_MARKER_DESCRIPTION).to_string());
    }
    put(env, &keys::search_marker(name), Vec::new(), custom).await
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    let end = (0..=max.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    text.get(..end).unwrap_or_default()
}

async fn load_owned(env: &JobEnv, name: &CrateName, writer: &Writer) -> Result<CrateRecord, JobError> {
    let record = load(&*env.store, name).await?.ok_or_else(|| no_crate(name))?;
    check_spelling(&record, name).map_err(refuse)?;
    check_owner(&record, writer).map_err(refuse)?;
    Ok(record)
}

pub async fn execute(env: &JobEnv, job: CargoJob) -> JobResult {
    match job {
        CargoJob::Publish { name, version, line, file, description, writer } => {
            publish(env, &crate_name(&name)?, version, *line, file, description, &writer).await
        }
        CargoJob::SetYanked { name, version, yanked, writer } => {
            let name = crate_name(&name)?;
            let mut record = load_owned(env, &name, &writer).await?;
            let missing = || refuse(Error::not_found(format!("crate `{}` does not have a version `{version}`", name.as_str())));
            let vers = record.find(&version).map(|(v, _)| v.clone()).ok_or_else(missing)?;
            let file = load_index(&*env.store, &name).await?;
            let rewritten = index::set_yanked(&file, &vers, yanked).ok_or_else(missing)?;
            if let Some(v) = record.versions.get_mut(&vers) {
                v.yanked = yanked;
            }
            save(env, &name, &mut record).await?;
            put(env, &keys::index_file(&name), rewritten, BTreeMap::new()).await?;
            write_search_marker(env, &name, &record).await?;
            Ok(json!({"ok": true, "version": vers}))
        }
        CargoJob::ChangeOwners { name, add, remove, writer } => {
            let name = crate_name(&name)?;
            let mut record = load_owned(env, &name, &writer).await?;
            for user in add {
                if !record.owners.contains(&user) {
                    record.owners.push(user);
                }
            }
            record.owners.retain(|o| !remove.contains(o));
            if record.owners.is_empty() {
                return Err(refuse(Error::invalid("cannot remove all individual owners of a crate")));
            }
            save(env, &name, &mut record).await?;
            Ok(json!({"ok": true, "owners": record.owners}))
        }
        CargoJob::SetOwners { name, owners } => {
            let name = crate_name(&name)?;
            if owners.is_empty() {
                return Err(refuse(Error::invalid("a crate needs at least one owner")));
            }
            let mut record = load(&*env.store, &name).await?.ok_or_else(|| no_crate(&name))?;
            record.owners = owners;
            save(env, &name, &mut record).await?;
            Ok(json!({"ok": true, "owners": record.owners}))
        }
    }
}

async fn publish(
    env: &JobEnv,
    name: &CrateName,
    version: String,
    line: IndexLine,
    file: VersionRecord,
    description: Option<String>,
    writer: &Writer,
) -> JobResult {
    let existing = load(&*env.store, name).await?;
    let first = existing.is_none();
    let mut record = match existing {
        Some(r) => {
            check_spelling(&r, name).map_err(refuse)?;
            check_owner(&r, writer).map_err(refuse)?;
            r
        }
        None => CrateRecord { name: name.as_str().to_string(), owners: vec![writer.user.clone()], ..Default::default() },
    };
    let current = load_index(&*env.store, name).await?;
    if let Some(v) = index::conflicting_version(&current, &version) {
        return Err(refuse(already_uploaded(&v)));
    }
    let appended = index::append_line(&current, &line);
    if first {
        // The name is hosted from now on: what the pull-through cache kept of an upstream
        // crate of that name goes, so none of it is ever served in its place.
        super::proxy::purge_for_hosted(&*env.store, name).await.map_err(JobError::internal)?;
    }
    record.versions.insert(version.clone(), file);
    if description.is_some() {
        record.description = description;
    }
    save(env, name, &mut record).await?;
    put(env, &keys::index_file(name), appended, BTreeMap::new()).await?;
    write_search_marker(env, name, &record).await?;
    Ok(json!({"ok": true, "version": version, "first": first}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("abc", 10), "abc");
        assert_eq!(truncated("abc", 2), "ab");
        assert_eq!(truncated("aé", 2), "a");
        assert_eq!(truncated(&"é".repeat(1000), MAX_MARKER_DESCRIPTION).len(), MAX_MARKER_DESCRIPTION);
    }

    #[test]
    fn another_spelling_is_refused_and_strangers_are_not_owners() {
        let record = CrateRecord { name: "foo-bar".into(), owners: vec!["alice".into()], ..Default::default() };
        assert!(check_spelling(&record, &CrateName::parse("foo-bar").unwrap()).is_ok());
        let e = check_spelling(&record, &CrateName::parse("foo_bar").unwrap()).unwrap_err();
        assert!(e.detail.contains("previously named `foo-bar`"), "{e}");
        assert!(check_spelling(&record, &CrateName::parse("Foo-Bar").unwrap()).is_err());
        assert!(check_owner(&record, &Writer { user: "alice".into(), may_override: false }).is_ok());
        assert_eq!(check_owner(&record, &Writer { user: "bob".into(), may_override: false }).unwrap_err().status(), 403);
        assert!(check_owner(&record, &Writer { user: "bob".into(), may_override: true }).is_ok());
    }
}
