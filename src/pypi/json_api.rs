//! The JSON API (`/{project}/json`, `/{project}/{version}/json`), shaped like pypi.org's
//! (docs.pypi.org "JSON API"): `info` from the release's core metadata, `releases` (project
//! view only), `urls` for the release's files, `last_serial` and `vulnerabilities`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::names::ProjectName;
use super::record::{FileRecord, Project, Release};
use super::simple::file_url;

/// `None` for the project view (the latest release), else the release named.
pub fn document(project: &Project, name: &ProjectName, registry_url: &str, version: Option<&str>) -> Option<Value> {
    let key = match version {
        Some(v) => project.release_key(v)?,
        None => project.latest()?.to_string(),
    };
    let release = project.releases.get(&key)?;
    let urls: Vec<Value> = release.files.iter().map(|f| file_json(f, release, name, registry_url)).collect();
    let mut doc = json!({
        "info": info(project, name, &key, release, registry_url),
        "last_serial": project.serial,
        "urls": urls,
        "vulnerabilities": [],
    });
    if version.is_none() {
        let releases: BTreeMap<&str, Vec<Value>> = project
            .releases
            .iter()
            .map(|(v, r)| (v.as_str(), r.files.iter().map(|f| file_json(f, r, name, registry_url)).collect()))
            .collect();
        if let Some(fields) = doc.as_object_mut() {
            fields.insert("releases".into(), json!(releases));
        }
    }
    Some(doc)
}

fn info(project: &Project, name: &ProjectName, version: &str, release: &Release, registry_url: &str) -> Value {
    let m = &release.metadata;
    let or_null = |list: &Vec<String>| if list.is_empty() { Value::Null } else { json!(list) };
    // `Label, URL` entries become pypi.org's `{label: url}` object.
    let project_urls: BTreeMap<&str, &str> = m
        .project_urls
        .iter()
        .filter_map(|e| e.split_once(','))
        .map(|(label, url)| (label.trim(), url.trim()))
        .collect();
    let project_url = format!("{registry_url}/{name}/");
    json!({
        "author": m.author.clone().unwrap_or_default(),
        "author_email": m.author_email.clone().unwrap_or_default(),
        "bugtrack_url": null,
        "classifiers": m.classifiers,
        "description": m.description.clone().unwrap_or_default(),
        "description_content_type": m.description_content_type,
        "docs_url": null,
        "download_url": m.download_url.clone().unwrap_or_default(),
        "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
        "dynamic": or_null(&m.dynamic),
        "home_page": m.home_page.clone().unwrap_or_default(),
        "keywords": m.keywords.clone().unwrap_or_default(),
        "license": m.license.clone().unwrap_or_default(),
        "maintainer": m.maintainer.clone().unwrap_or_default(),
        "maintainer_email": m.maintainer_email.clone().unwrap_or_default(),
        "name": project.name,
        "package_url": project_url,
        "platform": m.platform.first().cloned(),
        "project_url": project_url,
        "project_urls": if project_urls.is_empty() { Value::Null } else { json!(project_urls) },
        "provides_extra": or_null(&m.provides_extra),
        "release_url": format!("{project_url}{version}/"),
        "requires_dist": or_null(&m.requires_dist),
        "requires_python": m.requires_python.clone().unwrap_or_default(),
        "summary": m.summary.clone().unwrap_or_default(),
        "version": version,
        "yanked": release.yanked.is_some(),
        "yanked_reason": release.yanked.as_deref().filter(|r| !r.is_empty()),
    })
}

fn file_json(f: &FileRecord, release: &Release, name: &ProjectName, registry_url: &str) -> Value {
    // pypi.org gives `upload_time` without fraction or zone and the ISO form beside it.
    let upload_time: String = f.upload_time.chars().take(19).collect();
    json!({
        "comment_text": "",
        "digests": {"blake2b_256": f.blake2b_256, "md5": f.md5, "sha256": f.sha256},
        "downloads": -1,
        "filename": f.filename,
        "has_sig": false,
        "md5_digest": f.md5,
        "packagetype": f.filetype,
        "python_version": f.pyversion,
        "requires_python": f.requires_python,
        "size": f.size,
        "upload_time": upload_time,
        "upload_time_iso_8601": f.upload_time,
        "url": file_url(registry_url, name, f),
        "yanked": release.yanked.is_some(),
        "yanked_reason": release.yanked.as_deref().filter(|r| !r.is_empty()),
    })
}
