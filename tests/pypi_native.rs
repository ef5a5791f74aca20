//! The hosted PyPI API driven through `App::handle` against the in-memory platform: uploads
//! (real client bodies and built ones), the simple API and its negotiation, downloads, the
//! JSON API, yank and delete, auth, and every refusal leaving nothing stored.

mod common;

use common::*;
use edgeregistry::http::{Method, Request};
use serde_json::{json, Value};

const BOUNDARY: &str = "----edgeregistry-test-boundary";
const JSON_V1: &str = "application/vnd.pypi.simple.v1+json";

fn pypi_token(reg: &Reg, user: &str) -> String {
    reg.create_user(user);
    reg.create_token(user, json!({"protocol": "pypi"}))
}

/// An upload request with twine's Basic `__token__` credentials.
fn upload_req(token: &str, body: Vec<u8>) -> Request {
    basic(Request::new(Method::Post, "/pypi/"), "__token__", token)
        .with_header("Content-Type", &format!("multipart/form-data; boundary={BOUNDARY}"))
        .with_header("Content-Length", &body.len().to_string())
        .with_body(body)
}

fn upload_body(fields: &[(String, String)], filename: &str, bytes: &[u8]) -> Vec<u8> {
    multipart_form(BOUNDARY, fields, Some(("content", filename, bytes)))
}

/// Uploads a file with twine's fields, asserting success.
fn upload_ok(reg: &Reg, token: &str, project: &str, filename: &str, bytes: &[u8], version: &str) {
    let body = upload_body(&pypi_upload_fields(project, version, filename, bytes), filename, bytes);
    let r = reg.send(upload_req(token, body));
    assert_eq!(r.status, 200, "upload {filename}: {r:?}");
}

fn get(reg: &Reg, path: &str, accept: Option<&str>) -> Resp {
    let mut req = Request::new(Method::Get, path);
    if let Some(a) = accept {
        req = req.with_header("Accept", a);
    }
    reg.send(req)
}

fn page_json(reg: &Reg, project: &str) -> Value {
    let r = get(reg, &format!("/pypi/simple/{project}/"), Some(JSON_V1));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some(JSON_V1));
    r.json()
}

/// The path of an absolute URL this registry wrote (`http://localhost/…`).
fn path_of(url: &str) -> String {
    url.strip_prefix("http://localhost").unwrap_or_else(|| panic!("not a URL of this registry: {url}")).to_string()
}

fn file_entry<'a>(page: &'a Value, filename: &str) -> &'a Value {
    page["files"].as_array().unwrap().iter().find(|f| f["filename"] == filename).unwrap_or_else(|| panic!("{filename} not in {page}"))
}

fn pypi_keys(reg: &Reg) -> Vec<String> {
    reg.keys_with("pypi/")
}

// ---------------------------------------------------------------- upload and read

#[test]
fn wheel_and_sdist_upload_then_pages_downloads_and_metadata() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let (whl_name, whl) = wheel("Demo.Pkg", "1.0.0");
    let (sd_name, sd) = sdist("Demo.Pkg", "1.0.0");
    upload_ok(&reg, &token, "Demo.Pkg", &whl_name, &whl, "1.0.0");
    upload_ok(&reg, &token, "Demo.Pkg", &sd_name, &sd, "1.0.0");

    let page = page_json(&reg, "demo-pkg");
    assert_eq!(page["meta"]["api-version"], "1.1");
    assert_eq!(page["name"], "demo-pkg");
    assert_eq!(page["versions"], json!(["1.0.0"]));
    let w = file_entry(&page, &whl_name);
    assert_eq!(w["hashes"]["sha256"], sha256_hex(&whl));
    assert_eq!(w["size"], whl.len());
    assert_eq!(w["requires-python"], ">=3.8");
    assert_eq!(w["yanked"], false);
    assert!(w["upload-time"].as_str().unwrap().ends_with('Z'));
    let meta_sha = w["core-metadata"]["sha256"].as_str().expect("a wheel advertises its metadata").to_string();
    assert_eq!(w["dist-info-metadata"]["sha256"], meta_sha.as_str());

    // The file comes back byte for byte from the URL the page gives.
    let wurl = path_of(w["url"].as_str().unwrap());
    let r = get(&reg, &wurl, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, whl);
    assert_eq!(r.header("Content-Type"), Some("application/zip"));
    assert_eq!(r.header("Cache-Control"), Some("max-age=31536000, immutable"));
    // PEP 658: the metadata file at `{url}.metadata`, its hash the advertised one.
    let m = get(&reg, &format!("{wurl}.metadata"), None);
    assert_eq!(m.status, 200);
    assert_eq!(m.text(), core_metadata_text("Demo.Pkg", "1.0.0"));
    assert_eq!(sha256_hex(&m.body), meta_sha);

    // The sdist has no metadata file and advertises none.
    let s = file_entry(&page, &sd_name);
    assert!(s.get("core-metadata").is_none() && s.get("dist-info-metadata").is_none(), "{s}");
    let surl = path_of(s["url"].as_str().unwrap());
    let r = get(&reg, &surl, None);
    assert_eq!((r.status, r.body == sd), (200, true));
    assert_eq!(r.header("Content-Type"), Some("application/gzip"));
    assert!(r.header("Content-Encoding") != Some("gzip"));
    assert_eq!(get(&reg, &format!("{surl}.metadata"), None).status, 404);

    // The HTML page: links with their hash fragment, escaped attributes, metadata for the wheel.
    let html = get(&reg, "/pypi/simple/demo-pkg/", None);
    assert_eq!(html.status, 200);
    assert_eq!(html.header("Content-Type"), Some("text/html; charset=utf-8"));
    let text = html.text();
    assert!(text.contains(&format!("href=\"http://localhost{wurl}#sha256={}\"", sha256_hex(&whl))), "{text}");
    assert!(text.contains("data-requires-python=\"&gt;=3.8\""), "{text}");
    assert!(text.contains(&format!("data-core-metadata=\"sha256={meta_sha}\"")), "{text}");
    assert!(text.contains(&format!("data-dist-info-metadata=\"sha256={meta_sha}\"")), "{text}");
    assert_eq!(text.matches("data-core-metadata").count(), 1, "only the wheel has metadata: {text}");
    assert!(text.contains("<meta name=\"pypi:repository-version\" content=\"1.1\">"));

    // The root index lists the project by the name of its first upload.
    let root = get(&reg, "/pypi/simple/", Some(JSON_V1)).json();
    assert_eq!(root["projects"], json!([{"name": "Demo.Pkg"}]));
    assert!(get(&reg, "/pypi/simple/", None).text().contains("<a href=\"http://localhost/pypi/simple/demo-pkg/\">Demo.Pkg</a>"));
}

#[test]
fn bodies_of_twine_uv_and_poetry_upload() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pypi");
    for client in ["twine", "uv", "poetry"] {
        let reg = Reg::new();
        let token = pypi_token(&reg, "alice");
        for kind in ["wheel", "sdist"] {
            let body = std::fs::read(format!("{dir}/{client}-{kind}.body")).unwrap();
            let content_type = std::fs::read_to_string(format!("{dir}/{client}-{kind}.content-type")).unwrap();
            let req = basic(Request::new(Method::Post, "/pypi/legacy/"), "__token__", &token)
                .with_header("Content-Type", content_type.trim())
                .with_body(body);
            let r = reg.send(req);
            assert_eq!(r.status, 200, "{client} {kind}: {r:?}");
        }
        let page = page_json(&reg, "tiny-pkg");
        assert_eq!(page["files"].as_array().unwrap().len(), 2, "{client}: {page}");
        let whl = file_entry(&page, "tiny_pkg-0.1.0-py3-none-any.whl");
        assert!(whl["core-metadata"]["sha256"].is_string(), "{client}: {whl}");
        let doc = reg.get_json("/pypi/tiny-pkg/json");
        assert_eq!(doc["info"]["name"], "Tiny.Pkg", "{client}");
        assert_eq!(doc["info"]["version"], "0.1.0");
        assert_eq!(doc["info"]["summary"], "A tiny package for the edgeregistry format tests", "{client}");
        assert_eq!(doc["info"]["requires_python"], ">=3.8", "{client}");
        assert_eq!(doc["info"]["requires_dist"].as_array().map(Vec::len), Some(2), "{client}: {}", doc["info"]);
        assert_eq!(doc["info"]["classifiers"].as_array().map(Vec::len), Some(2), "{client}");
        assert_eq!(doc["info"]["project_urls"]["Homepage"], "https://example.org/tiny", "{client}");
    }
}

// ---------------------------------------------------------------- simple API

#[test]
fn content_negotiation_matrix() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let (f, b) = sdist("neg", "1.0");
    upload_ok(&reg, &token, "neg", &f, &b, "1.0");
    let html = "text/html; charset=utf-8";
    let v1_html = "application/vnd.pypi.simple.v1+html";
    // (Accept, ?format=, status, content type)
    type Case<'a> = (Option<&'a str>, Option<&'a str>, u16, Option<&'a str>);
    let cases: &[Case] = &[
        (None, None, 200, Some(html)),
        (Some("*/*"), None, 200, Some(html)),
        (Some("text/html"), None, 200, Some(html)),
        (Some(JSON_V1), None, 200, Some(JSON_V1)),
        (Some("application/vnd.pypi.simple.latest+json"), None, 200, Some(JSON_V1)),
        (Some("application/vnd.pypi.simple.latest+html"), None, 200, Some(v1_html)),
        (Some(v1_html), None, 200, Some(v1_html)),
        // pip's and uv's headers.
        (Some("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"), None, 200, Some(JSON_V1)),
        (Some("application/vnd.pypi.simple.v1+json;q=0.2, text/html"), None, 200, Some(html)),
        (Some("application/json"), None, 406, None),
        (Some("text/html;q=0"), None, 406, None),
        // `?format=` stands in for Accept.
        (Some("text/html"), Some(JSON_V1), 200, Some(JSON_V1)),
        (None, Some(v1_html), 200, Some(v1_html)),
        (None, Some("application/x-nonsense"), 406, None),
    ];
    for (accept, format, status, content_type) in cases {
        for path in ["/pypi/simple/neg/", "/pypi/simple/"] {
            let path = match format {
                Some(f) => format!("{path}?format={}", f.replace('+', "%2B")),
                None => path.to_string(),
            };
            let r = get(&reg, &path, *accept);
            assert_eq!(r.status, *status, "{path} Accept {accept:?}: {r:?}");
            if let Some(ct) = content_type {
                assert_eq!(r.header("Content-Type"), Some(*ct), "{path} Accept {accept:?}");
                assert_eq!(r.header("Vary"), Some("Accept"));
                if ct.contains("json") {
                    assert_eq!(r.json()["meta"]["api-version"], "1.1");
                } else {
                    assert!(r.text().starts_with("<!DOCTYPE html>"), "{}", r.text());
                }
            }
        }
    }
}

#[test]
fn etags_answer_304_until_the_page_changes() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let (f1, b1) = sdist("tagged", "1.0");
    upload_ok(&reg, &token, "tagged", &f1, &b1, "1.0");
    for (path, accept) in [("/pypi/simple/tagged/", None), ("/pypi/simple/tagged/", Some(JSON_V1)), ("/pypi/simple/", None), ("/pypi/simple/", Some(JSON_V1))] {
        let first = get(&reg, path, accept);
        let etag = first.header("ETag").expect("every page has an ETag").to_string();
        let mut req = Request::new(Method::Get, path).with_header("If-None-Match", &etag);
        if let Some(a) = accept {
            req = req.with_header("Accept", a);
        }
        let again = reg.send(req);
        assert_eq!(again.status, 304, "{path} {accept:?}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("ETag"), Some(etag.as_str()));
        // The other format of the same page is another representation.
        let other = if accept.is_some() { None } else { Some(JSON_V1) };
        let mut req = Request::new(Method::Get, path).with_header("If-None-Match", &etag);
        if let Some(a) = other {
            req = req.with_header("Accept", a);
        }
        assert_eq!(reg.send(req).status, 200, "{path} in the other format");
    }
    let etag = get(&reg, "/pypi/simple/tagged/", None).header("ETag").unwrap().to_string();
    let (f2, b2) = sdist("tagged", "2.0");
    upload_ok(&reg, &token, "tagged", &f2, &b2, "2.0");
    let r = reg.send(Request::new(Method::Get, "/pypi/simple/tagged/").with_header("If-None-Match", &etag));
    assert_eq!(r.status, 200, "a new file makes a new page");
    assert_ne!(r.header("ETag"), Some(etag.as_str()));
}

#[test]
fn names_are_redirected_to_their_normal_form_and_bad_ones_refused() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let (f, b) = sdist("Foo_Bar", "1.0");
    upload_ok(&reg, &token, "Foo_Bar", &f, &b, "1.0");
    let r = get(&reg, "/pypi/simple/Foo_Bar/", None);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("http://localhost/pypi/simple/foo-bar/"));
    let r = get(&reg, &format!("/pypi/simple/Foo.Bar/?format={}", JSON_V1.replace('+', "%2B")), None);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("http://localhost/pypi/simple/foo-bar/?format=application%2Fvnd.pypi.simple.v1%2Bjson"));
    assert_eq!(get(&reg, "/pypi/simple/foo-bar", None).header("Location"), Some("http://localhost/pypi/simple/foo-bar/"));
    assert_eq!(get(&reg, "/pypi/simple", None).status, 301);
    assert_eq!(get(&reg, "/pypi/simple/foo-bar/", None).status, 200);
    assert_eq!(get(&reg, "/pypi/simple/nothing-here/", None).status, 404);
    for bad in ["..", "%2e%2e", "-x", "a%2Fb", "x_"] {
        let r = get(&reg, &format!("/pypi/simple/{bad}/"), None);
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    // Errors carry Warehouse's fields.
    let r = get(&reg, "/pypi/simple/nothing-here/", None);
    assert_eq!(r.json()["code"], "404 Not Found");
}

#[test]
fn yanked_reason_and_requires_python_are_escaped_in_html() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let (f, b) = sdist("esc", "1.0");
    let mut fields = pypi_upload_fields("esc", "1.0", &f, &b);
    for (k, v) in fields.iter_mut() {
        if k == "requires_python" {
            *v = ">=3.8,<4\"'&".to_string();
        }
    }
    assert_eq!(reg.send(upload_req(&token, upload_body(&fields, &f, &b))).status, 200);
    let r = reg.send(basic(Request::new(Method::Post, "/pypi/-/yank/esc/1.0"), "__token__", &token).with_body(json_body(&json!({"reason": "<b>broken</b> & \"bad\""}))));
    assert_eq!(r.status, 200, "{r:?}");
    let text = get(&reg, "/pypi/simple/esc/", None).text();
    assert!(text.contains("data-requires-python=\"&gt;=3.8,&lt;4&quot;&#x27;&amp;\""), "{text}");
    assert!(text.contains("data-yanked=\"&lt;b&gt;broken&lt;/b&gt; &amp; &quot;bad&quot;\""), "{text}");
    assert!(!text.contains("<b>"));
}

// ---------------------------------------------------------------- downloads

#[test]
fn downloads_answer_head_range_and_conditional_requests() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let (f, b) = wheel("ranged", "1.0");
    upload_ok(&reg, &token, "ranged", &f, &b, "1.0");
    let url = path_of(file_entry(&page_json(&reg, "ranged"), &f)["url"].as_str().unwrap());
    let head = reg.send(Request::new(Method::Head, &url));
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some(b.len().to_string().as_str()));
    assert!(head.body.is_empty());
    let r = reg.send(Request::new(Method::Get, &url).with_header("Range", "bytes=10-19"));
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &b[10..20]);
    assert_eq!(r.header("Content-Range"), Some(format!("bytes 10-19/{}", b.len()).as_str()));
    let r = reg.send(Request::new(Method::Get, &url).with_header("Range", "bytes=-5"));
    assert_eq!((r.status, r.body.as_slice()), (206, &b[b.len() - 5..]));
    let r = reg.send(Request::new(Method::Get, &url).with_header("Range", &format!("bytes={}-", b.len())));
    assert_eq!(r.status, 416);
    let etag = get(&reg, &url, None).header("ETag").unwrap().to_string();
    assert_eq!(reg.send(Request::new(Method::Get, &url).with_header("If-None-Match", &etag)).status, 304);
    // Unknown ids, filenames and traversal.
    let (prefix, _) = url.rsplit_once('/').unwrap();
    assert_eq!(get(&reg, &format!("{prefix}/ranged-2.0-py3-none-any.whl"), None).status, 404);
    assert_eq!(get(&reg, "/pypi/packages/ranged/0123456789abcdef0123456789abcdef/ranged-1.0-py3-none-any.whl", None).status, 404);
    assert_eq!(get(&reg, &format!("{prefix}/..%2f..%2fproject.json"), None).status, 400);
    assert_eq!(get(&reg, "/pypi/packages/ranged/..%2f/x-1.0.tar.gz", None).status, 404);
    assert_eq!(get(&reg, "/pypi/packages/..%2fnpm/0123456789abcdef0123456789abcdef/x-1.0.tar.gz", None).status, 400);
}

// ---------------------------------------------------------------- JSON API

#[test]
fn json_api_is_shaped_like_pypi_org() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    for v in ["1.0", "1.10", "2.0rc1"] {
        let (f, b) = sdist("jsonapi", v);
        upload_ok(&reg, &token, "jsonapi", &f, &b, v);
    }
    let (f, b) = wheel("jsonapi", "1.10");
    upload_ok(&reg, &token, "jsonapi", &f, &b, "1.10");
    let doc = reg.get_json("/pypi/jsonapi/json");
    assert_eq!(doc["info"]["version"], "1.10", "the highest final release: {}", doc["info"]);
    assert_eq!(doc["info"]["name"], "jsonapi");
    assert_eq!(doc["info"]["summary"], "jsonapi for tests");
    assert_eq!(doc["info"]["requires_dist"], json!(["requests>=2"]));
    assert_eq!(doc["info"]["yanked"], false);
    assert_eq!(doc["vulnerabilities"], json!([]));
    assert!(doc["last_serial"].as_u64().unwrap() >= 4);
    assert_eq!(doc["releases"].as_object().unwrap().len(), 3);
    assert_eq!(doc["urls"].as_array().unwrap().len(), 2);
    let file = &doc["releases"]["1.0"][0];
    assert_eq!(file["digests"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(file["digests"]["md5"].as_str().unwrap().len(), 32);
    assert_eq!(file["digests"]["blake2b_256"].as_str().unwrap().len(), 64);
    assert_eq!(file["packagetype"], "sdist");
    assert_eq!(file["python_version"], "source");
    let url = path_of(file["url"].as_str().unwrap());
    assert_eq!(sha256_hex(&get(&reg, &url, None).body), file["digests"]["sha256"].as_str().unwrap());

    let one = reg.get_json("/pypi/jsonapi/2.0rc1/json");
    assert_eq!(one["info"]["version"], "2.0rc1");
    assert!(one.get("releases").is_none());
    assert_eq!(one["urls"].as_array().unwrap().len(), 1);
    assert_eq!(reg.get_json("/pypi/jsonapi/1.10.0/json")["info"]["version"], "1.10", "PEP 440 equivalent spelling");
    assert_eq!(get(&reg, "/pypi/jsonapi/9.9/json", None).status, 404);
    assert_eq!(get(&reg, "/pypi/unknown/json", None).status, 404);
    assert_eq!(get(&reg, "/pypi/JSONAPI/json", None).status, 200, "any spelling of the name");
}

// ---------------------------------------------------------------- refusals

/// Sends `req`, expects `status`, and checks that nothing was stored or left open.
fn refused(reg: &Reg, req: Request, status: u16, what: &str) -> Resp {
    let before = pypi_keys(reg);
    let r = reg.send(req);
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert_eq!(pypi_keys(reg), before, "{what}: the refused upload stored something");
    assert_eq!(reg.mem.store.open_uploads(), 0, "{what}: a multipart upload was left open");
    assert!(r.json()["message"].is_string(), "{what}: {r:?}");
    r
}

fn with_field(fields: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fields.iter().filter(|(k, _)| k != name).cloned().collect();
    out.push((name.to_string(), value.to_string()));
    out
}

fn without_field(fields: &[(String, String)], name: &str) -> Vec<(String, String)> {
    fields.iter().filter(|(k, _)| k != name).cloned().collect()
}

#[test]
fn bad_uploads_are_refused_and_store_nothing() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let (existing, existing_bytes) = sdist("refuse", "0.1");
    upload_ok(&reg, &token, "refuse", &existing, &existing_bytes, "0.1");
    let (f, b) = wheel("refuse", "1.0");
    let fields = pypi_upload_fields("refuse", "1.0", &f, &b);
    let send = |fields: &[(String, String)], filename: &str, bytes: &[u8]| upload_req(&token, upload_body(fields, filename, bytes));

    let r = refused(&reg, send(&with_field(&fields, "sha256_digest", &"0".repeat(64)), &f, &b), 400, "wrong sha256");
    assert!(r.json()["message"].as_str().unwrap().contains("sha256_digest"), "{r:?}");
    refused(&reg, send(&with_field(&fields, "md5_digest", "1B2M2Y8AsgTpgAmY7PhCfg"), &f, &b), 400, "wrong md5 (base64)");
    refused(&reg, send(&with_field(&fields, "blake2_256_digest", &"ab".repeat(32)), &f, &b), 400, "wrong blake2");
    refused(&reg, send(&with_field(&fields, "name", "other"), &f, &b), 400, "name is not the filename's");
    refused(&reg, send(&with_field(&fields, "version", "2.0"), &f, &b), 400, "version is not the filename's");
    refused(&reg, send(&with_field(&fields, "filetype", "sdist"), &f, &b), 400, "filetype does not match");
    refused(&reg, send(&with_field(&fields, ":action", "submit"), &f, &b), 400, "another action");
    refused(&reg, send(&without_field(&fields, ":action"), &f, &b), 400, "no action");
    refused(&reg, send(&with_field(&fields, "protocol_version", "2"), &f, &b), 400, "protocol version");
    refused(&reg, send(&without_field(&fields, "version"), &f, &b), 400, "no version");
    refused(&reg, send(&with_field(&fields, "name", "../etc"), &f, &b), 400, "traversal name");
    let traversal = "../../refuse-1.0.tar.gz";
    refused(&reg, send(&pypi_upload_fields("refuse", "1.0", traversal, &b), traversal, &b), 400, "traversal filename");
    refused(&reg, send(&pypi_upload_fields("refuse", "1.0", "refuse-1.0.exe", &b), "refuse-1.0.exe", &b), 400, "not a distribution");
    // A "wheel" that is no zip, and one without METADATA.
    let junk = b"not a zip at all".to_vec();
    refused(&reg, send(&pypi_upload_fields("refuse", "1.0", &f, &junk), &f, &junk), 400, "not a zip");
    let empty_wheel = stored_zip(&[("refuse/__init__.py", b"")]);
    refused(&reg, send(&pypi_upload_fields("refuse", "1.0", &f, &empty_wheel), &f, &empty_wheel), 400, "no METADATA");
    // A wheel whose METADATA names another project.
    let (_, other) = wheel("someone-else", "1.0");
    refused(&reg, send(&pypi_upload_fields("refuse", "1.0", &f, &other), &f, &other), 400, "METADATA of another project");
    // The same filename again, even with other bytes: pypi.org's message.
    let r = refused(&reg, send(&pypi_upload_fields("refuse", "0.1", &existing, &b), &existing, &b), 400, "repeat filename");
    assert_eq!(r.json()["message"], "File already exists.");
    assert_eq!(r.json()["code"], "400 File already exists.");

    // The file part before the fields that name it.
    let mut body = Vec::new();
    body.extend_from_slice(&multipart_form(BOUNDARY, &[], Some(("content", &f, &b))));
    body.truncate(body.len() - format!("--{BOUNDARY}--\r\n").len());
    body.extend_from_slice(&multipart_form(BOUNDARY, &fields, None));
    let r = refused(&reg, upload_req(&token, body), 400, "file first");
    assert!(r.json()["message"].as_str().unwrap().contains("before the file part"), "{r:?}");
    // Malformed and truncated bodies, no file, another content type.
    refused(&reg, upload_req(&token, b"garbage without any boundary".to_vec()), 400, "malformed");
    let full = upload_body(&fields, &f, &b);
    refused(&reg, upload_req(&token, full[..full.len() - 30].to_vec()), 400, "truncated");
    refused(&reg, upload_req(&token, multipart_form(BOUNDARY, &fields, None)), 400, "no file");
    let req = basic(Request::new(Method::Post, "/pypi/"), "__token__", &token).with_header("Content-Type", "application/json").with_body(b"{}".to_vec());
    refused(&reg, req, 400, "not multipart");
    // Over the size cap, by its length, before a byte is read.
    let mut req = upload_req(&token, Vec::new());
    req.headers.set("Content-Length", (200u64 << 20).to_string());
    req.body = edgeregistry::http::Body::Stream(edgeregistry::http::PlatformStream::from_pieces(Box::pin(futures::stream::empty()), Some(200 << 20)));
    refused(&reg, req, 413, "oversize");
}

#[test]
fn credentials_scopes_and_owners() {
    let reg = Reg::new();
    pypi_token(&reg, "alice");
    let (f, b) = sdist("owned", "1.0");
    let body = || upload_body(&pypi_upload_fields("owned", "1.0", &f, &b), &f, &b);

    // Anonymous: 401 with the Basic challenge, before the body is read.
    let req = Request::new(Method::Post, "/pypi/")
        .with_header("Content-Type", &format!("multipart/form-data; boundary={BOUNDARY}"))
        .with_body(body());
    let r = refused(&reg, req, 401, "anonymous");
    assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"pypi\""));
    // A bad token.
    let r = refused(&reg, upload_req("not-a-token", body()), 401, "bad token");
    assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"pypi\""));
    // Read-only and wrong-scope tokens.
    let ro = reg.create_token("alice", json!({"protocol": "pypi", "readonly": true}));
    refused(&reg, upload_req(&ro, body()), 403, "read-only token");
    let scoped = reg.create_token("alice", json!({"scopes": ["pypi:package:other:write"]}));
    refused(&reg, upload_req(&scoped, body()), 403, "scope for another project");
    let npm_only = reg.create_token("alice", json!({"protocol": "npm"}));
    assert!(matches!(refused(&reg, upload_req(&npm_only, body()), 401, "npm token").status, 401));
    // A scope naming the project works; so do user + password (twine's other way).
    let granted = reg.create_token("alice", json!({"scopes": ["pypi:package:owned:write"]}));
    assert_eq!(reg.send(upload_req(&granted, body())).status, 200);
    let (f2, b2) = wheel("owned", "1.0");
    let req = basic(Request::new(Method::Post, "/pypi/"), "alice", PASSWORD)
        .with_header("Content-Type", &format!("multipart/form-data; boundary={BOUNDARY}"))
        .with_body(upload_body(&pypi_upload_fields("owned", "1.0", &f2, &b2), &f2, &b2));
    assert_eq!(reg.send(req).status, 200);
    // Another user may not upload to alice's project, nor yank or delete in it.
    let bob = pypi_token(&reg, "bob");
    let (f3, b3) = sdist("owned", "2.0");
    let r = refused(&reg, upload_req(&bob, upload_body(&pypi_upload_fields("owned", "2.0", &f3, &b3), &f3, &b3)), 403, "not an owner");
    assert!(r.json()["message"].as_str().unwrap().contains("isn't allowed"), "{r:?}");
    let yank = basic(Request::new(Method::Post, "/pypi/-/yank/owned/1.0"), "__token__", &bob);
    assert_eq!(reg.send(yank).status, 403);
    let del = basic(Request::new(Method::Delete, "/pypi/-/files/owned/owned-1.0.tar.gz"), "__token__", &bob);
    assert_eq!(reg.send(del).status, 403);
    assert_eq!(page_json(&reg, "owned")["files"].as_array().unwrap().len(), 2);
    // The admin API sees and hands over owners.
    assert_eq!(reg.send(admin(Method::Get, "/-/admin/owners/pypi/Owned")).json(), json!({"owners": ["alice"]}));
    let r = reg.send(admin(Method::Put, "/-/admin/owners/pypi/owned").with_body(json_body(&json!({"owners": ["bob"]}))));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(reg.send(upload_req(&bob, upload_body(&pypi_upload_fields("owned", "2.0", &f3, &b3), &f3, &b3))).status, 200);
}

#[test]
fn reads_follow_anonymous_read() {
    let reg = Reg::with_vars(&[("ANONYMOUS_READ", "none")]);
    let alice = pypi_token(&reg, "alice");
    let (f, b) = sdist("private", "1.0");
    upload_ok(&reg, &alice, "private", &f, &b, "1.0");
    for path in ["/pypi/simple/", "/pypi/simple/private/", "/pypi/private/json"] {
        let r = get(&reg, path, None);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"pypi\""));
        let r = reg.send(basic(Request::new(Method::Get, path), "__token__", &alice));
        assert_eq!(r.status, 200, "{path}");
    }
    let url = {
        let r = reg.send(basic(Request::new(Method::Get, "/pypi/simple/private/"), "__token__", &alice).with_header("Accept", JSON_V1));
        path_of(r.json()["files"][0]["url"].as_str().unwrap())
    };
    assert_eq!(get(&reg, &url, None).status, 401);
    assert_eq!(reg.send(basic(Request::new(Method::Get, &url), "__token__", &alice)).status, 200);
    // A token for another project reads neither it nor sees it in the root index.
    let other = reg.create_token("alice", json!({"scopes": ["pypi:package:other:read"]}));
    assert_eq!(reg.send(basic(Request::new(Method::Get, "/pypi/simple/private/"), "__token__", &other)).status, 403);
    let root = reg.send(basic(Request::new(Method::Get, "/pypi/simple/"), "__token__", &other).with_header("Accept", JSON_V1));
    assert_eq!(root.json()["projects"], json!([]));
}

// ---------------------------------------------------------------- concurrency

#[test]
fn twenty_concurrent_uploads_of_one_project_all_survive() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let mut files = Vec::new();
    let reqs: Vec<Request> = (0..20)
        .map(|i| {
            let version = format!("1.{i}");
            let (f, b) = if i % 2 == 0 { wheel("busy", &version) } else { sdist("busy", &version) };
            let req = upload_req(&token, upload_body(&pypi_upload_fields("busy", &version, &f, &b), &f, &b));
            files.push((f, b));
            req
        })
        .collect();
    for (r, _) in reg.answer_all(reqs) {
        assert_eq!(r.status, 200, "{r:?}");
    }
    reg.settle();
    let page = page_json(&reg, "busy");
    assert_eq!(page["files"].as_array().unwrap().len(), 20, "{page}");
    assert_eq!(page["versions"].as_array().unwrap().len(), 20);
    for (f, b) in &files {
        let url = path_of(file_entry(&page, f)["url"].as_str().unwrap());
        assert_eq!(&get(&reg, &url, None).body, b, "{f}");
    }
}

#[test]
fn racing_uploads_of_one_filename_leave_exactly_the_winner() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let (f, _) = sdist("race", "1.0");
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| pseudo_random(4096, i)).collect();
    let reqs = bodies.iter().map(|b| upload_req(&token, upload_body(&pypi_upload_fields("race", "1.0", &f, b), &f, b))).collect();
    let results: Vec<u16> = reg.answer_all(reqs).into_iter().map(|(r, _)| r.status).collect();
    reg.settle();
    assert_eq!(results.iter().filter(|s| **s == 200).count(), 1, "{results:?}");
    assert!(results.iter().all(|s| *s == 200 || *s == 400), "{results:?}");
    let page = page_json(&reg, "race");
    let entry = file_entry(&page, &f);
    let served = get(&reg, &path_of(entry["url"].as_str().unwrap()), None).body;
    let winner = bodies.iter().position(|b| *b == served).expect("the served bytes are one upload's");
    assert_eq!(results[winner], 200);
    assert_eq!(entry["hashes"]["sha256"], sha256_hex(&served));
    // Only the winner's object is left: the losers' went.
    let files: Vec<String> = pypi_keys(&reg).into_iter().filter(|k| k.contains("/files/")).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(reg.mem.store.open_uploads(), 0);
}

// ---------------------------------------------------------------- yank and delete

#[test]
fn yank_unyank_and_delete() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let (w1, wb1) = wheel("life", "1.0");
    let (s1, sb1) = sdist("life", "1.0");
    let (s2, sb2) = sdist("life", "2.0");
    upload_ok(&reg, &token, "life", &w1, &wb1, "1.0");
    upload_ok(&reg, &token, "life", &s1, &sb1, "1.0");
    upload_ok(&reg, &token, "life", &s2, &sb2, "2.0");
    let auth = |method, path: &str| basic(Request::new(method, path), "__token__", &token);

    // Yank with a reason (PEP 592), visible in both formats and the JSON API.
    let r = reg.send(auth(Method::Post, "/pypi/-/yank/life/2.0").with_body(json_body(&json!({"reason": "broken build"}))));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(file_entry(&page_json(&reg, "life"), &s2)["yanked"], "broken build");
    assert!(get(&reg, "/pypi/simple/life/", None).text().contains("data-yanked=\"broken build\""));
    let doc = reg.get_json("/pypi/life/2.0/json");
    assert_eq!((doc["info"]["yanked"].clone(), doc["info"]["yanked_reason"].clone()), (json!(true), json!("broken build")));
    assert_eq!(reg.get_json("/pypi/life/json")["info"]["version"], "1.0", "a yanked release is not the latest");
    // Without a reason: yanked all the same.
    assert_eq!(reg.send(auth(Method::Post, "/pypi/-/yank/life/1.0")).status, 200);
    assert_eq!(file_entry(&page_json(&reg, "life"), &s1)["yanked"], true);
    assert!(get(&reg, "/pypi/simple/life/", None).text().contains("data-yanked=\"\""));
    // Unyank.
    assert_eq!(reg.send(auth(Method::Post, "/pypi/-/unyank/life/1.0")).status, 200);
    assert_eq!(file_entry(&page_json(&reg, "life"), &s1)["yanked"], false);
    assert_eq!(reg.send(auth(Method::Post, "/pypi/-/yank/life/9.9")).status, 404);
    assert_eq!(reg.send(Request::new(Method::Post, "/pypi/-/yank/life/1.0")).status, 401);

    // Delete one file: its objects (and its metadata file) go, the release stays.
    let wheel_keys: Vec<String> = pypi_keys(&reg).into_iter().filter(|k| k.contains(&w1)).collect();
    assert_eq!(wheel_keys.len(), 2, "the wheel and its metadata: {wheel_keys:?}");
    let r = reg.send(auth(Method::Delete, &format!("/pypi/-/files/life/{w1}")));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(pypi_keys(&reg).iter().all(|k| !k.contains(&w1)), "{:?}", pypi_keys(&reg));
    let page = page_json(&reg, "life");
    assert_eq!(page["files"].as_array().unwrap().len(), 2);
    assert_eq!(page["versions"], json!(["1.0", "2.0"]));
    // Deleting the last file of a release removes the release.
    let r = reg.send(auth(Method::Delete, &format!("/pypi/-/files/life/{s1}")));
    assert_eq!(r.json()["release_removed"], true);
    assert_eq!(page_json(&reg, "life")["versions"], json!(["2.0"]));
    assert_eq!(get(&reg, "/pypi/life/1.0/json", None).status, 404);
    // A deleted filename is never reused (as pypi.org).
    let r = reg.send(upload_req(&token, upload_body(&pypi_upload_fields("life", "1.0", &s1, &sb1), &s1, &sb1)));
    assert_eq!((r.status, r.json()["message"].clone()), (400, json!("File already exists.")));
    // Delete a whole release.
    assert_eq!(reg.send(auth(Method::Delete, "/pypi/-/releases/life/2.0")).status, 200);
    assert_eq!(page_json(&reg, "life")["files"], json!([]));
    assert!(pypi_keys(&reg).iter().all(|k| !k.contains("/files/")), "{:?}", pypi_keys(&reg));
    assert_eq!(reg.send(auth(Method::Delete, "/pypi/-/releases/life/2.0")).status, 404);
    assert_eq!(reg.send(auth(Method::Delete, "/pypi/-/files/life/..%2f..%2fx-1.0.tar.gz")).status, 400);
}

#[test]
fn read_only_mode_refuses_uploads_before_anything_is_stored() {
    let reg = Reg::with_vars(&[("READ_ONLY", "true")]);
    let token = pypi_token(&reg, "alice");
    let (f, b) = wheel("frozen", "1.0");
    let r = refused(&reg, upload_req(&token, upload_body(&pypi_upload_fields("frozen", "1.0", &f, &b), &f, &b)), 403, "read-only registry");
    assert!(r.json()["message"].as_str().unwrap().to_lowercase().contains("read"), "{r:?}");
}

// ---------------------------------------------------------------- hosted first

#[test]
fn the_first_upload_makes_a_name_hosted_and_forgets_its_cached_copies() {
    use edgeregistry::platform::{ObjectStore, PutOptions};
    let reg = Reg::with_vars(&[("PYPI_UPSTREAMS", "pypi")]);
    let token = pypi_token(&reg, "alice");
    futures::executor::block_on(reg.mem.store.put("pypi/cache/projects/shadow/page.json", b"upstream copy".to_vec().into(), PutOptions::default())).unwrap();
    futures::executor::block_on(reg.mem.store.put("pypi/cache/projects/other/page.json", b"upstream copy".to_vec().into(), PutOptions::default())).unwrap();
    let name = edgeregistry::pypi::names::ProjectName::parse("Shadow").unwrap();
    assert!(!futures::executor::block_on(edgeregistry::pypi::is_hosted(&reg.app, &name)).unwrap());
    let (f, b) = sdist("Shadow", "1.0");
    upload_ok(&reg, &token, "Shadow", &f, &b, "1.0");
    assert!(futures::executor::block_on(edgeregistry::pypi::is_hosted(&reg.app, &name)).unwrap());
    assert!(reg.keys_with("pypi/cache/projects/shadow/").is_empty(), "the cached copies of a now hosted name go");
    assert_eq!(reg.keys_with("pypi/cache/projects/other/").len(), 1, "another project's stay");
    // The hosted page is served whatever the upstreams, and HEAD answers like GET.
    assert_eq!(page_json(&reg, "shadow")["files"][0]["filename"], f.as_str());
    let head = reg.send(Request::new(Method::Head, "/pypi/simple/shadow/"));
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty() && head.header("ETag").is_some());
    // The admin API purges a project's cache by any spelling of its name.
    let r = reg.send(admin(Method::Delete, "/-/admin/cache/pypi/Other"));
    assert_eq!((r.status, r.json()), (200, json!({"purged": 1})));
}

#[test]
fn a_setuptools_wheel_with_a_dotted_name_uploads_with_its_metadata() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pypi");
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    for file in ["legacy.pkg-2.0.post1-py3-none-any.whl", "legacy.pkg-2.0.post1.tar.gz"] {
        let bytes = std::fs::read(format!("{dir}/{file}")).unwrap();
        upload_ok(&reg, &token, "legacy.pkg", file, &bytes, "2.0.post1");
    }
    let page = page_json(&reg, "legacy-pkg");
    let whl = file_entry(&page, "legacy.pkg-2.0.post1-py3-none-any.whl");
    let url = path_of(whl["url"].as_str().unwrap());
    let metadata = get(&reg, &format!("{url}.metadata"), None);
    assert_eq!(metadata.status, 200);
    assert_eq!(whl["core-metadata"]["sha256"], sha256_hex(&metadata.body));
    assert!(metadata.text().contains("Version: 2.0.post1"), "{}", metadata.text());
}

#[test]
fn a_form_whose_fields_exceed_their_bound_is_413_without_a_length() {
    let reg = Reg::new();
    let token = pypi_token(&reg, "alice");
    let (f, b) = sdist("wordy", "1.0");
    let fields = with_field(&pypi_upload_fields("wordy", "1.0", &f, &b), "description", &"x".repeat(5 << 20));
    let body = upload_body(&fields, &f, &b);
    // Streamed in pieces with no length announced: refused as the bound is crossed.
    let pieces: Vec<Result<Vec<u8>, edgeregistry::http::BodyError>> = body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let mut req = upload_req(&token, Vec::new());
    req.headers.remove("Content-Length");
    req.body = edgeregistry::http::Body::Stream(edgeregistry::http::PlatformStream::from_pieces(Box::pin(futures::stream::iter(pieces)), None));
    refused(&reg, req, 413, "5 MiB of text fields");
}
