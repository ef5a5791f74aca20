//! PyPI hosted on the Worker in workerd, with the real clients: twine, `uv publish` and
//! `poetry publish` upload; pip and `uv pip` install from `/pypi/simple/`. File URLs are only
//! ever taken from the pages (PEP 503/691), never built.

mod common;

use std::io::Write;
use std::sync::OnceLock;

use common::e2e::pypi::*;
use common::e2e::upstreams::FaultProxy;
use common::e2e::*;
use serde_json::{json, Value};

/// Bodies a protocol must hold whole are capped at 4 MiB here.
const MAX_BODY: &str = "4194304";

fn worker() -> &'static Worker {
    static W: OnceLock<Worker> = OnceLock::new();
    W.get_or_init(|| Worker::start(&[("MAX_BODY_BYTES", MAX_BODY)]))
}

/// A user (password `{name}-password`) and a PyPI token for it.
fn pypi_user(w: &Worker, name: &str, extra: Value) -> String {
    w.user_with_token(name, merged(json!({"protocol": "pypi"}), extra))
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// A request with HTTP Basic `__token__` + token (or none).
fn call(method: &str, url: &str, token: Option<&str>, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Resp {
    let auth = token.map(|t| basic("__token__", t));
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(a) = &auth {
        all.push(("authorization", a));
    }
    request(method, url, None, &all, body)
}

/// A JSON array of strings, sorted (PEP 700 gives `versions` no order).
fn sorted(v: &Value) -> Vec<String> {
    let mut all: Vec<String> = v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(|x| x.as_str().unwrap().to_string()).collect();
    all.sort();
    all
}

fn sha256_file(path: &std::path::Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().unwrap().to_string_lossy().to_string()
}

/// The version the module installed in `s/dir` reports.
fn module_version(s: &Scratch, dir: &str, project: &str) -> String {
    let init = s.path().join(dir).join(module_of(project)).join("__init__.py");
    let text = std::fs::read_to_string(&init).unwrap_or_else(|e| panic!("{}: {e}", init.display()));
    text.trim().trim_start_matches("VERSION = ").trim_matches('"').to_string()
}

#[test]
fn twine_uv_and_poetry_upload_then_pip_and_uv_install() {
    let w = worker();
    let index = Index::worker(w);
    let token = pypi_user(w, "py-alice", json!({}));
    let s = Scratch::new();
    let v10 = build_project(&s, "a10", "e2e-Pkg.A", "1.0.0", &[]);
    let v11 = build_project(&s, "a11", "e2e-Pkg.A", "1.1.0", &[]);
    let v12 = build_project(&s, "a12", "e2e-Pkg.A", "1.2.0", &[]);
    ok(twine_upload(&s, &index, "__token__", &token, &v10.files()));
    ok(twine_upload(&s, &index, "py-alice", "py-alice-password", &v11.files()));
    ok(uv_publish(&s, &index, "__token__", &token, &v12.files()));
    write_project(&s, "a13", "e2e-Pkg.A", "1.3.0", &[]);
    ok(poetry_publish(&s, "a13", &index, "__token__", &token));
    let v13_wheel = s.path().join("a13/dist/e2e_pkg_a-1.3.0-py3-none-any.whl");

    // PEP 691: every file with its sha256, none yanked; PEP 700 versions.
    let page = page_json(&index, "e2e-pkg-a");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.header("content-type").unwrap_or_default().starts_with("application/vnd.pypi.simple.v1+json"), "{:?}", page.headers);
    let doc = page.json();
    assert_eq!(doc["name"], "e2e-pkg-a");
    assert_eq!(sorted(&doc["versions"]), ["1.0.0", "1.1.0", "1.2.0", "1.3.0"], "{doc}");
    for file in [&v10.wheel, &v10.sdist, &v11.wheel, &v11.sdist, &v12.wheel, &v12.sdist, &v13_wheel] {
        let entry = file_entry(&doc, &file_name(file));
        assert_eq!(entry["hashes"]["sha256"], sha256_file(file), "{entry}");
        assert!(entry["yanked"] == json!(false) || entry.get("yanked").is_none(), "{entry}");
        let got = request("GET", &file_url(&index.page("e2e-pkg-a"), entry["url"].as_str().unwrap()), None, &[], None);
        assert_eq!(got.body, std::fs::read(file).unwrap(), "the file served is the file uploaded");
    }
    // PEP 503 HTML, and a redirect from a name that is not normalised, as pypi.org does.
    let html = request("GET", &index.page("e2e-pkg-a"), None, &[("accept", "text/html")], None);
    assert_eq!(html.status, 200);
    assert!(html.text().contains(&format!("#sha256={}", sha256_file(&v10.wheel))), "{}", html.text());
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let moved = agent.get(&index.page("E2E_pkg.A")).call().unwrap();
    assert_eq!(moved.status().as_u16(), 301);
    assert!(moved.headers().get("location").unwrap().to_str().unwrap().ends_with("/pypi/simple/e2e-pkg-a/"));

    // pip takes the newest; uv a pinned one; a dependent project resolves through the index.
    ok(pip_install(&s, "pip-latest", &index.simple, &["e2e-pkg-a"], &[]));
    assert_eq!(module_version(&s, "pip-latest", "e2e-Pkg.A"), "1.3.0");
    ok(uv_install(&s, "uv-pinned", &index.simple, &["e2e-pkg-a==1.2.0"], &["--no-cache"]));
    assert_eq!(module_version(&s, "uv-pinned", "e2e-Pkg.A"), "1.2.0");
    let dep = build_project(&s, "b1", "e2e-pkg-b", "0.1.0", &["e2e-pkg-a<1.2"]);
    ok(twine_upload(&s, &index, "__token__", &token, &dep.files()));
    ok(pip_install(&s, "pip-dep", &index.simple, &["e2e-pkg-b"], &[]));
    assert_eq!(installed(&s, "pip-dep").get("e2e-pkg-a").map(String::as_str), Some("1.1.0"));
    ok(uv_install(&s, "uv-dep", &index.simple, &["e2e-pkg-b"], &["--no-cache"]));
    assert_eq!(installed(&s, "uv-dep").get("e2e-pkg-a").map(String::as_str), Some("1.1.0"));
    // The sdist builds from the index too (pip fetches nothing but the file here).
    ok(pip_install(&s, "pip-sdist", &index.simple, &["e2e-pkg-a==1.0.0"], &["--no-binary", ":all:", "--no-build-isolation"]));
    assert_eq!(module_version(&s, "pip-sdist", "e2e-Pkg.A"), "1.0.0");

    // --require-hashes: the right sha256 installs, a wrong one is refused by pip.
    let reqs = s.write("req-good.txt", &format!("e2e-pkg-a==1.1.0 --hash=sha256:{}\n", sha256_file(&v11.wheel)));
    ok(pip_install(&s, "pip-hashes", &index.simple, &[], &["--require-hashes", "--only-binary", ":all:", "-r", reqs.to_str().unwrap()]));
    assert_eq!(module_version(&s, "pip-hashes", "e2e-Pkg.A"), "1.1.0");
    let bad = s.write("req-bad.txt", &format!("e2e-pkg-a==1.1.0 --hash=sha256:{}\n", "0".repeat(64)));
    let refused = pip_install(&s, "pip-bad-hash", &index.simple, &[], &["--require-hashes", "--only-binary", ":all:", "-r", bad.to_str().unwrap()]);
    assert!(!refused.0 && refused.1.contains("DO NOT MATCH"), "{}", refused.1);

    // The JSON API, shaped like pypi.org's.
    let api = request("GET", &format!("{}/pypi/e2e-pkg-a/json", w.url), None, &[], None);
    assert_eq!(api.status, 200, "{}", api.text());
    let api = api.json();
    assert_eq!(api["info"]["name"], "e2e-Pkg.A");
    assert_eq!(api["info"]["version"], "1.3.0");
    assert_eq!(api["info"]["summary"], "edgeregistry e2e fixture");
    let mut releases: Vec<&String> = api["releases"].as_object().unwrap().keys().collect();
    releases.sort();
    assert_eq!(releases, ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]);
    let urls = api["urls"].as_array().unwrap();
    assert!(urls.iter().any(|u| u["filename"] == file_name(&v13_wheel) && u["digests"]["sha256"] == sha256_file(&v13_wheel)), "{api}");
    let one = request("GET", &format!("{}/pypi/e2e-pkg-a/1.1.0/json", w.url), None, &[], None);
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["info"]["version"], "1.1.0");
    let requires = &one.json()["info"]["requires_dist"];
    assert!(requires.is_null() || requires == &json!([]), "no dependencies: {}", one.text());
    let dep_api = request("GET", &format!("{}/pypi/e2e-pkg-b/0.1.0/json", w.url), None, &[], None).json();
    assert!(dep_api["info"]["requires_dist"].to_string().contains("e2e-pkg-a"), "{dep_api}");
    assert_eq!(request("GET", &format!("{}/pypi/e2e-never-uploaded/json", w.url), None, &[], None).status, 404);
}

#[test]
fn uv_reads_the_pep_658_metadata_of_hosted_wheels() {
    let w = worker();
    let index = Index::worker(w);
    let token = pypi_user(w, "py-meta", json!({}));
    let s = Scratch::new();
    let d = build_project(&s, "m1", "e2e-meta", "2.0.0", &["e2e-meta-dep>=1"]);
    let dep = build_project(&s, "m2", "e2e-meta-dep", "1.0.0", &[]);
    ok(twine_upload(&s, &index, "__token__", &token, &d.files()));
    ok(twine_upload(&s, &index, "__token__", &token, &dep.files()));

    let doc = page_json(&index, "e2e-meta").json();
    let wheel = file_entry(&doc, &file_name(&d.wheel));
    let metadata = String::from_utf8(
        std::process::Command::new(tool("python"))
            .args(["-c", "import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read('e2e_meta-2.0.0.dist-info/METADATA').decode())"])
            .arg(&d.wheel)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(metadata.contains("Requires-Dist: e2e-meta-dep"), "{metadata}");
    assert_eq!(wheel["core-metadata"]["sha256"], sha256_hex(metadata.as_bytes()), "PEP 714: {wheel}");
    let sdist = file_entry(&doc, &file_name(&d.sdist));
    assert!(sdist.get("core-metadata").is_none_or(|m| m == &json!(false)), "no metadata file for the sdist: {sdist}");
    let meta_url = format!("{}.metadata", file_url(&index.page("e2e-meta"), wheel["url"].as_str().unwrap()));
    let served = request("GET", &meta_url, None, &[], None);
    assert_eq!((served.status, served.text()), (200, metadata.clone()));
    let html = request("GET", &index.page("e2e-meta"), None, &[("accept", "text/html")], None).text();
    assert!(html.contains(&format!("data-core-metadata=\"sha256={}\"", sha256_hex(metadata.as_bytes()))), "{html}");

    // Through a counting proxy: uv resolves from the .metadata files, then fetches the wheels.
    let proxy = FaultProxy::start(&w.url);
    ok(uv_install(&s, "uv-meta", &format!("{}/pypi/simple/", proxy.url), &["e2e-meta"], &["--no-cache"]));
    assert_eq!(installed(&s, "uv-meta").get("e2e-meta-dep").map(String::as_str), Some("1.0.0"));
    assert!(proxy.count("e2e_meta-2.0.0-py3-none-any.whl.metadata") >= 1, "uv read the PEP 658 file: {:?}", proxy.requests.lock().unwrap());
}

#[test]
fn a_yanked_version_is_skipped_unless_pinned_and_files_and_releases_can_be_deleted() {
    let w = worker();
    let index = Index::worker(w);
    let token = pypi_user(w, "py-yank", json!({}));
    let stranger = pypi_user(w, "py-stranger", json!({}));
    let s = Scratch::new();
    let v1 = build_project(&s, "y1", "e2e-yank", "1.0.0", &[]);
    let v2 = build_project(&s, "y2", "e2e-yank", "2.0.0", &[]);
    ok(twine_upload(&s, &index, "__token__", &token, &v1.files()));
    ok(twine_upload(&s, &index, "__token__", &token, &v2.files()));
    let yank = format!("{}/pypi/-/yank/e2e-yank/2.0.0", w.url);
    let body = || Some(json!({"reason": "broken build"}).to_string().into_bytes());
    let anon = call("POST", &yank, None, &[("content-type", "application/json")], body());
    assert_eq!(anon.status, 401, "{}", anon.text());
    assert_eq!(call("POST", &yank, Some(&stranger), &[("content-type", "application/json")], body()).status, 403, "only owners yank");
    let r = call("POST", &yank, Some(&token), &[("content-type", "application/json")], body());
    assert!(r.status == 200 || r.status == 204, "{} {}", r.status, r.text());

    // PEP 592: the reason on the page, in both formats.
    let doc = page_json(&index, "e2e-yank").json();
    assert_eq!(file_entry(&doc, &file_name(&v2.wheel))["yanked"], "broken build");
    assert_eq!(file_entry(&doc, &file_name(&v1.wheel))["yanked"], false);
    let html = request("GET", &index.page("e2e-yank"), None, &[("accept", "text/html")], None).text();
    assert!(html.contains("data-yanked=\"broken build\""), "{html}");

    ok(pip_install(&s, "pip-unpinned", &index.simple, &["e2e-yank"], &[]));
    assert_eq!(module_version(&s, "pip-unpinned", "e2e-yank"), "1.0.0", "pip skips the yanked 2.0.0");
    ok(uv_install(&s, "uv-unpinned", &index.simple, &["e2e-yank"], &["--no-cache"]));
    assert_eq!(module_version(&s, "uv-unpinned", "e2e-yank"), "1.0.0", "uv skips the yanked 2.0.0");
    let pinned = ok(pip_install(&s, "pip-pinned", &index.simple, &["e2e-yank==2.0.0"], &[]));
    assert_eq!(module_version(&s, "pip-pinned", "e2e-yank"), "2.0.0", "an exact pin still installs it (PEP 592)");
    assert!(pinned.contains("yanked"), "pip warned about the yanked release: {pinned}");

    let r = call("POST", &format!("{}/pypi/-/unyank/e2e-yank/2.0.0", w.url), Some(&token), &[], None);
    assert!(r.status == 200 || r.status == 204, "{} {}", r.status, r.text());
    ok(pip_install(&s, "pip-unyanked", &index.simple, &["e2e-yank"], &[]));
    assert_eq!(module_version(&s, "pip-unyanked", "e2e-yank"), "2.0.0");

    // Deleting a file, then a release.
    let wheel2 = file_name(&v2.wheel);
    let file = format!("{}/pypi/-/files/e2e-yank/{wheel2}", w.url);
    assert_eq!(call("DELETE", &file, Some(&stranger), &[], None).status, 403);
    let r = call("DELETE", &file, Some(&token), &[], None);
    assert!(r.status == 200 || r.status == 204, "{} {}", r.status, r.text());
    let doc = page_json(&index, "e2e-yank").json();
    assert!(doc["files"].as_array().unwrap().iter().all(|f| f["filename"] != wheel2.as_str()), "{doc}");
    file_entry(&doc, &file_name(&v2.sdist));
    let r = call("DELETE", &format!("{}/pypi/-/releases/e2e-yank/2.0.0", w.url), Some(&token), &[], None);
    assert!(r.status == 200 || r.status == 204, "{} {}", r.status, r.text());
    let doc = page_json(&index, "e2e-yank").json();
    assert_eq!(sorted(&doc["versions"]), ["1.0.0"], "{doc}");
    ok(pip_install(&s, "pip-after-delete", &index.simple, &["e2e-yank"], &[]));
    assert_eq!(module_version(&s, "pip-after-delete", "e2e-yank"), "1.0.0");
    assert_eq!(request("GET", &format!("{}/pypi/e2e-yank/2.0.0/json", w.url), None, &[], None).status, 404);
}

/// A legacy-API upload form: the fields, then the file part (`content`) when given.
fn form(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "e2e-boundary-7d4a1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").unwrap();
    }
    if let Some((filename, data)) = file {
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{filename}\"\r\n").unwrap();
        write!(body, "Content-Type: application/octet-stream\r\n\r\n").unwrap();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The fields twine sends for a wheel, digests included.
fn wheel_fields(name: &str, version: &str, data: &[u8]) -> Vec<(String, String)> {
    use md5::Digest;
    [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("metadata_version", "2.1"),
        ("name", name),
        ("version", version),
        ("filetype", "bdist_wheel"),
        ("pyversion", "py3"),
        ("summary", "refused upload"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("sha256_digest".to_string(), sha256_hex(data)), ("md5_digest".to_string(), hex::encode(md5::Md5::digest(data)))])
    .collect()
}

#[test]
fn bad_uploads_get_errors_and_store_nothing() {
    let w = Worker::start(&[("MAX_BODY_BYTES", MAX_BODY)]);
    let index = Index::worker(&w);
    let token = pypi_user(&w, "py-bad", json!({}));
    let readonly = pypi_user(&w, "py-reader", json!({"readonly": true}));
    let s = Scratch::new();
    let good = build_project(&s, "g", "e2e-bad", "1.0.0", &[]);
    let wheel = std::fs::read(&good.wheel).unwrap();
    let wheel_name = file_name(&good.wheel);
    let post = |auth: Option<String>, ct: &str, body: Vec<u8>| {
        let mut headers = vec![("content-type", ct)];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        request("POST", &index.upload, None, &headers, Some(body))
    };
    let as_token = || Some(basic("__token__", &token));
    let fields_with = |change: &[(&str, Option<&str>)]| -> Vec<(String, String)> {
        let mut f = wheel_fields("e2e-bad", "1.0.0", &wheel);
        for (k, v) in change {
            f.retain(|(name, _)| name != k);
            if let Some(v) = v {
                f.push((k.to_string(), v.to_string()));
            }
        }
        f
    };
    let send = |fields: &[(String, String)], file: Option<(&str, &[u8])>, auth: Option<String>| {
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (ct, body) = form(&refs, file);
        post(auth, &ct, body)
    };
    let before = stored_objects(&w);
    let refused = |what: &str, r: Resp, status: u16| {
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert!(!r.text().trim().is_empty(), "{what}: an error body the client can print");
        if r.header("content-type").unwrap_or_default().contains("json") {
            assert!(r.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {}", r.text());
        }
        assert_eq!(page_json(&index, "e2e-bad").status, 404, "{what}: nothing was published");
        assert_eq!(settled_objects(&w, before), before, "{what}: nothing was stored");
    };
    let file = Some((wheel_name.as_str(), wheel.as_slice()));

    refused("malformed multipart", post(as_token(), "multipart/form-data; boundary=nope", b"--nope\r\ngarbage".to_vec()), 400);
    refused("no boundary", post(as_token(), "multipart/form-data", b"x".to_vec()), 400);
    refused("missing :action", send(&fields_with(&[(":action", None)]), file, as_token()), 400);
    refused("missing name", send(&fields_with(&[("name", None)]), file, as_token()), 400);
    refused("missing version", send(&fields_with(&[("version", None)]), file, as_token()), 400);
    refused("missing file", send(&fields_with(&[]), None, as_token()), 400);
    refused("wrong sha256", send(&fields_with(&[("sha256_digest", Some(&"0".repeat(64)))]), file, as_token()), 400);
    refused("wrong md5", send(&fields_with(&[("md5_digest", Some(&"0".repeat(32)))]), file, as_token()), 400);
    refused("name differs from the file's", send(&fields_with(&[("name", Some("e2e-other"))]), file, as_token()), 400);
    refused("version differs from the file's", send(&fields_with(&[("version", Some("9.9.9"))]), file, as_token()), 400);
    refused("unauthenticated", send(&fields_with(&[]), file, None), 401);
    let r = send(&fields_with(&[]), file, None);
    assert!(r.header("www-authenticate").is_some_and(|h| h.starts_with("Basic")), "{:?}", r.headers);
    refused("wrong password", send(&fields_with(&[]), file, Some(basic("py-bad", "not-the-password"))), 401);
    refused("unknown token", send(&fields_with(&[]), file, Some(basic("__token__", "not-a-token"))), 401);
    refused("read-only token", send(&fields_with(&[]), file, Some(basic("__token__", &readonly))), 403);
    for (name, filename) in [
        ("../evil", "evil-1.0.0-py3-none-any.whl"),
        ("e2e-bad", "../e2e_bad-1.0.0-py3-none-any.whl"),
        ("e2e-bad", "../../e2e_bad-1.0.0.tar.gz"),
        ("e2e-bad", "e2e_bad-1.0.0/../../x-1.0.0.tar.gz"),
        ("e2e-bad", "..\\e2e_bad-1.0.0-py3-none-any.whl"),
        ("e2e/../bad", "e2e_bad-1.0.0-py3-none-any.whl"),
    ] {
        let what = format!("traversal: name {name:?}, file {filename:?}");
        refused(&what, send(&fields_with(&[("name", Some(name))]), Some((filename, wheel.as_slice())), as_token()), 400);
    }
    refused("oversize", oversize_upload(&w, &token), 413);

    // A repeated filename: 400 "File already exists", which twine prints.
    ok(twine_upload(&s, &index, "__token__", &token, &[good.wheel.to_str().unwrap()]));
    let page = page_json(&index, "e2e-bad").text();
    let stored = stored_objects(&w);
    let again = send(&fields_with(&[]), file, as_token());
    assert_eq!(again.status, 400, "{}", again.text());
    let twine = twine_upload(&s, &index, "__token__", &token, &[good.wheel.to_str().unwrap()]);
    assert!(!twine.0 && twine.1.contains("already exists"), "{}", twine.1);
    // (twine 7 allows `--skip-existing` only for pypi.org and test.pypi.org.)
    assert_eq!(page_json(&index, "e2e-bad").text(), page, "the page did not change");
    assert_eq!(settled_objects(&w, stored), stored, "nothing more was stored");
}

/// An upload over the Worker's upload limit (100 MiB), with its length declared: refused
/// (413). The body is sent in full, as a client would (see [`send_declared`]).
fn oversize_upload(w: &Worker, token: &str) -> Resp {
    let auth = basic("__token__", token);
    send_declared(w, "POST", "/pypi/legacy/", &[("Authorization", &auth), ("Content-Type", "multipart/form-data; boundary=b")], b"", (100 << 20) + 1)
}
