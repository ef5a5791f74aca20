//! The simple repository API for hosted projects: PEP 503 HTML and PEP 691 JSON, chosen by
//! content negotiation, with PEP 592 yanking, PEP 658/714 core metadata and PEP 700's
//! `versions`, `size` and `upload-time` (API version 1.1).

use serde_json::{json, Map, Value};

use super::names::ProjectName;
use super::record::{FileRecord, Project};
use crate::http::{Request, Response};
use crate::storage::key::cache_control;

/// PEP 691's media types, and the plain HTML of PEP 503.
pub const JSON_V1: &str = "application/vnd.pypi.simple.v1+json";
pub const HTML_V1: &str = "application/vnd.pypi.simple.v1+html";
const JSON_LATEST: &str = "application/vnd.pypi.simple.latest+json";
const HTML_LATEST: &str = "application/vnd.pypi.simple.latest+html";
const TEXT_HTML: &str = "text/html";

/// The API version the pages speak: 1.1 adds PEP 700's fields.
pub const API_VERSION: &str = "1.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
}

/// What a request will get: the page's format and the content type it is served as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub format: Format,
    pub content_type: &'static str,
}

/// What this server offers, in the order a tie is broken (PEP 691 lets the server choose):
/// plain HTML first, so `*/*` and no `Accept` at all get the PEP 503 page.
const OFFERS: [(&str, &str, Format, &str); 3] = [
    (TEXT_HTML, TEXT_HTML, Format::Html, "text/html; charset=utf-8"),
    (HTML_V1, HTML_LATEST, Format::Html, HTML_V1),
    (JSON_V1, JSON_LATEST, Format::Json, JSON_V1),
];

/// Content negotiation of PEP 691: `Accept` media ranges with q-values (RFC 9110 §12.5.1),
/// the most specific range deciding each offer's quality; `?format=` (a media type, as
/// pypi.org takes it) stands in for `Accept` when given. `None`: nothing acceptable (406).
pub fn negotiate(accept: Option<&str>, format: Option<&str>) -> Option<Negotiated> {
    let accept = format.or(accept).map(str::trim).filter(|a| !a.is_empty()).unwrap_or("*/*");
    let ranges: Vec<(String, f32)> = accept.split(',').filter_map(media_range).collect();
    let mut best: Option<(f32, Negotiated)> = None;
    for (exact, latest, fmt, content_type) in OFFERS {
        let (main, _) = exact.split_once('/').unwrap_or((exact, ""));
        let quality = ranges
            .iter()
            .filter_map(|(range, q)| {
                let specificity = if range == exact || range == latest {
                    3
                } else if range.strip_suffix("/*") == Some(main) {
                    2
                } else if range == "*/*" {
                    1
                } else {
                    return None;
                };
                Some((specificity, *q))
            })
            .max_by_key(|(specificity, _)| *specificity)
            .map(|(_, q)| q)
            .unwrap_or(0.0);
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, Negotiated { format: fmt, content_type }));
        }
    }
    best.map(|(_, n)| n)
}

/// One media range of an `Accept` header: its type (lower case) and q-value.
fn media_range(part: &str) -> Option<(String, f32)> {
    let mut params = part.split(';');
    let range = params.next()?.trim().to_ascii_lowercase();
    if range.is_empty() {
        return None;
    }
    let q = params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
        .map(|(_, v)| v.trim().parse::<f32>().unwrap_or(0.0))
        .unwrap_or(1.0);
    Some((range, q.clamp(0.0, 1.0)))
}

/// `&`, `<`, `>`, `"` and `'` as HTML character references.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// A page (or a 304 when `If-None-Match` names it): the ETag is the body's hash, so any
/// change (a new file, a yank, another registry URL) makes a new one.
pub fn page_response(req: &Request, negotiated: Negotiated, body: Vec<u8>) -> Response {
    let etag = format!("\"{}\"", crate::util::sha256_hex(&body).chars().take(32).collect::<String>());
    let matches = req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag));
    let resp = if matches { Response::new(304) } else { Response::bytes(200, negotiated.content_type, body) };
    resp.with_header("ETag", etag).with_header("Vary", "Accept").with_header("Cache-Control", cache_control::REVALIDATE)
}

/// A hosted file's URL: `{registry}/packages/{project}/{upload id}/{filename}`.
pub fn file_url(registry_url: &str, name: &ProjectName, file: &FileRecord) -> String {
    let filename = percent_encoding::utf8_percent_encode(&file.filename, super::PATH_SEGMENT);
    format!("{registry_url}/packages/{name}/{}/{filename}", file.upload_id)
}

/// The files of a project with the yank reason of their release, oldest release first.
fn files_of(project: &Project) -> Vec<(&FileRecord, Option<&str>)> {
    project
        .sorted_versions()
        .into_iter()
        .filter_map(|v| project.releases.get(v))
        .flat_map(|r| r.files.iter().map(move |f| (f, r.yanked.as_deref())))
        .collect()
}

/// The project page in the negotiated format.
pub fn project_page(project: &Project, name: &ProjectName, registry_url: &str, format: Format) -> Vec<u8> {
    match format {
        Format::Json => project_json(project, name, registry_url),
        Format::Html => project_html(project, name, registry_url),
    }
}

fn project_json(project: &Project, name: &ProjectName, registry_url: &str) -> Vec<u8> {
    let files: Vec<Value> = files_of(project)
        .into_iter()
        .map(|(f, yanked)| {
            let mut o = Map::new();
            o.insert("filename".into(), json!(f.filename));
            o.insert("url".into(), json!(file_url(registry_url, name, f)));
            o.insert("hashes".into(), json!({"sha256": f.sha256}));
            if let Some(rp) = &f.requires_python {
                o.insert("requires-python".into(), json!(rp));
            }
            if let Some(sha) = &f.core_metadata_sha256 {
                // PEP 714 renamed PEP 658's key; both are sent for older clients.
                o.insert("core-metadata".into(), json!({"sha256": sha}));
                o.insert("dist-info-metadata".into(), json!({"sha256": sha}));
            }
            // PEP 592 via PEP 691: a reason string, or `true` when none was given.
            let yanked = match yanked {
                None => json!(false),
                Some("") => json!(true),
                Some(reason) => json!(reason),
            };
            o.insert("yanked".into(), yanked);
            o.insert("size".into(), json!(f.size));
            o.insert("upload-time".into(), json!(f.upload_time));
            Value::Object(o)
        })
        .collect();
    let doc = json!({
        "meta": {"api-version": API_VERSION},
        "name": name.as_str(),
        "versions": project.sorted_versions(),
        "files": files,
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn project_html(project: &Project, name: &ProjectName, registry_url: &str) -> Vec<u8> {
    let mut out = format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    <title>Links for {0}</title>\n  </head>\n  <body>\n    <h1>Links for {0}</h1>\n",
        escape_html(name.as_str())
    );
    for (f, yanked) in files_of(project) {
        let href = format!("{}#sha256={}", file_url(registry_url, name, f), f.sha256);
        out.push_str(&format!("    <a href=\"{}\"", escape_html(&href)));
        if let Some(rp) = &f.requires_python {
            out.push_str(&format!(" data-requires-python=\"{}\"", escape_html(rp)));
        }
        if let Some(sha) = &f.core_metadata_sha256 {
            out.push_str(&format!(" data-dist-info-metadata=\"sha256={sha}\" data-core-metadata=\"sha256={sha}\""));
        }
        if let Some(reason) = yanked {
            out.push_str(&format!(" data-yanked=\"{}\"", escape_html(reason)));
        }
        out.push_str(&format!(">{}</a><br />\n", escape_html(&f.filename)));
    }
    out.push_str("  </body>\n</html>\n");
    out.into_bytes()
}

/// The root index: every hosted project as (normalised, display name).
pub fn root_page(projects: &[(String, String)], registry_url: &str, format: Format) -> Vec<u8> {
    match format {
        Format::Json => {
            let list: Vec<Value> = projects.iter().map(|(_, display)| json!({"name": display})).collect();
            serde_json::to_vec(&json!({"meta": {"api-version": API_VERSION}, "projects": list})).unwrap_or_default()
        }
        Format::Html => {
            let mut out = format!(
                "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    <title>Simple index</title>\n  </head>\n  <body>\n"
            );
            for (normalised, display) in projects {
                let href = format!("{registry_url}/simple/{normalised}/");
                out.push_str(&format!("    <a href=\"{}\">{}</a><br />\n", escape_html(&href), escape_html(display)));
            }
            out.push_str("  </body>\n</html>\n");
            out.into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(accept: Option<&str>) -> Option<&'static str> {
        negotiate(accept, None).map(|n| n.content_type)
    }

    #[test]
    fn negotiation_follows_pep_691() {
        assert_eq!(fmt(None), Some("text/html; charset=utf-8"));
        assert_eq!(fmt(Some("*/*")), Some("text/html; charset=utf-8"));
        assert_eq!(fmt(Some("text/*")), Some("text/html; charset=utf-8"));
        // pip's and uv's Accept headers.
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(fmt(Some(pip)), Some(JSON_V1));
        assert_eq!(fmt(Some("application/vnd.pypi.simple.latest+json")), Some(JSON_V1));
        assert_eq!(fmt(Some("application/vnd.pypi.simple.latest+html")), Some(HTML_V1));
        assert_eq!(fmt(Some("application/vnd.pypi.simple.v1+json;q=0.5, text/html;q=0.6")), Some("text/html; charset=utf-8"));
        // A specific range's q wins over a wildcard's.
        assert_eq!(fmt(Some("*/*, text/html;q=0")), Some(HTML_V1));
        assert_eq!(fmt(Some("application/json")), None);
        assert_eq!(fmt(Some("application/vnd.pypi.simple.v2+json")), None);
        assert_eq!(fmt(Some("text/html;q=0")), None);
        assert_eq!(negotiate(Some("text/html"), Some(JSON_V1)).map(|n| n.format), Some(Format::Json));
        assert_eq!(negotiate(None, Some("bogus")), None);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape_html("<\"a'&>"), "&lt;&quot;a&#x27;&amp;&gt;");
    }
}
