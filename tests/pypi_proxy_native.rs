//! The PyPI pull-through cache against a scripted upstream on the in-memory platform: pages
//! from JSON (pypi.org, devpi) and HTML-only (pypiserver) upstreams served as JSON and HTML,
//! links followed to files and PEP 658 metadata files, verification, origin checks,
//! credentials, hosted-first, and the streaming rewriters at every chunk split and on a page
//! of thousands of files.

mod common;

const JSON: &str = "application/vnd.pypi.simple.v1+json";
const HTML: &str = "text/html";
use common::upstream::{Answer, FakeUpstream, Fault};
use common::*;
use edgeregistry::http::{Method, Request};
use edgeregistry::pypi::rewrite::{HtmlScanner, JsonScanner, PageRewriter, Renderer, Scanner};
use serde_json::{json, Value};

const UPSTREAM: &str = "https://up.example/simple";
const FILES: &str = "https://files.example";

struct Mirror {
    reg: Reg,
    up: FakeUpstream,
}

impl Mirror {
    fn new(upstreams: &str) -> Mirror {
        let reg = Reg::with_vars(&[("PYPI_UPSTREAMS", upstreams), ("UP_TOKEN", "s3cret-token")]);
        let up = FakeUpstream::install(&reg.mem);
        Mirror { reg, up }
    }

    fn start() -> Mirror {
        Mirror::new(&format!(r#"[{{"id":"up","url":"{UPSTREAM}","filesUrl":"{FILES}","auth":{{"type":"bearer","tokenSecret":"UP_TOKEN"}},"resilience":{{"maxRetries":0}}}}]"#))
    }

    fn send(&self, req: Request) -> Resp {
        self.reg.send(req)
    }

    /// Uploads an sdist of `project`: from now on it is hosted here.
    fn host(&self, project: &str) {
        self.reg.host_pypi_project(project);
    }

    fn page(&self, project: &str, accept: &str) -> Resp {
        self.send(Request::new(Method::Get, &format!("/pypi/simple/{project}/")).with_header("Accept", accept))
    }

    /// GET of an absolute URL the registry gave.
    fn follow(&self, url: &str) -> Resp {
        let path = url.strip_prefix("http://localhost").unwrap_or_else(|| panic!("not a link to the registry: {url}"));
        self.send(Request::new(Method::Get, path))
    }
}

fn wheel_bytes() -> Vec<u8> {
    pseudo_random(150_000, 7)
}

const METADATA: &[u8] = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n";

/// A PEP 691 page as pypi.org writes it: a wheel on the files origin with metadata, a
/// yanked sdist with a relative URL, PEP 700 fields, and fields the mirror drops.
fn json_page() -> Value {
    json!({
        "meta": {"_last-serial": 42, "api-version": "1.3"},
        "name": "Demo",
        "files": [
            {"filename": "demo-1.0-py3-none-any.whl", "url": format!("{FILES}/packages/ab/demo-1.0-py3-none-any.whl"),
             "hashes": {"sha256": sha256_hex(&wheel_bytes())}, "requires-python": ">=3.8", "core-metadata": {"sha256": sha256_hex(METADATA)},
             "data-dist-info-metadata": {"sha256": sha256_hex(METADATA)}, "gpg-sig": false, "yanked": false, "size": 150000,
             "upload-time": "2024-01-02T03:04:05.000000Z", "provenance": "https://up.example/integrity/demo/1.0/x/provenance"},
            {"filename": "demo-0.9.tar.gz", "url": "../../packages/demo-0.9.tar.gz", "hashes": {"sha256": sha256_hex(b"sdist 0.9")},
             "requires-python": null, "core-metadata": false, "yanked": "broken <build>", "size": 9}
        ],
        "versions": ["0.9", "1.0"],
        "project-status": {"status": "active"}
    })
}

fn serve_json(m: &Mirror) {
    m.up.serve("/simple/demo/", Answer::bytes(200, "application/vnd.pypi.simple.v1+json", serde_json::to_vec(&json_page()).unwrap()).with_header("ETag", "\"v1\""));
    m.up.serve(&format!("{FILES}/packages/ab/demo-1.0-py3-none-any.whl"), Answer::bytes(200, "application/octet-stream", wheel_bytes()));
    m.up.serve(&format!("{FILES}/packages/ab/demo-1.0-py3-none-any.whl.metadata"), Answer::bytes(200, "application/octet-stream", METADATA.to_vec()));
    m.up.serve("/packages/demo-0.9.tar.gz", Answer::bytes(200, "application/octet-stream", b"sdist 0.9".to_vec()));
}

/// The page pypiserver writes: HTML only, relative links, no metadata.
fn html_page() -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <title>Links for demo</title>\n  </head>\n  <body>\n    <h1>Links for demo</h1>\n\
         <!-- <a href=\"/nope.tar.gz\">nope.tar.gz</a> -->\n\
         <a href=\"../../packages/demo-1.0-py3-none-any.whl#sha256={}\" data-requires-python=\"&gt;=3.8\" data-dist-info-metadata=\"sha256={}\">demo-1.0-py3-none-any.whl</a><br/>\n\
         <A HREF='/packages/demo-0.9.tar.gz#sha256={}' data-yanked=\"broken &lt;build&gt;\">demo-0.9.tar.gz</A>\n  </body>\n</html>\n",
        sha256_hex(&wheel_bytes()),
        sha256_hex(METADATA),
        sha256_hex(b"sdist 0.9")
    )
}

fn serve_html(m: &Mirror) {
    m.up.serve("/simple/demo/", Answer::bytes(200, "text/html", html_page().into_bytes()));
    m.up.serve("/packages/demo-1.0-py3-none-any.whl", Answer::bytes(200, "application/octet-stream", wheel_bytes()));
    m.up.serve("/packages/demo-1.0-py3-none-any.whl.metadata", Answer::bytes(200, "application/octet-stream", METADATA.to_vec()));
    m.up.serve("/packages/demo-0.9.tar.gz", Answer::bytes(200, "application/octet-stream", b"sdist 0.9".to_vec()));
}

fn files_of(page: &Resp) -> Vec<Value> {
    page.json()["files"].as_array().unwrap().clone()
}

/// The hrefs of a PEP 503 page, entity-decoded.
fn hrefs(page: &Resp) -> Vec<String> {
    let body = String::from_utf8(page.body.clone()).unwrap();
    body.split("href=\"").skip(1).map(|s| s.split('"').next().unwrap().replace("&amp;", "&")).collect()
}

#[test]
fn a_json_upstream_serves_json_clients_with_links_here_and_every_field_kept() {
    let m = Mirror::start();
    serve_json(&m);
    let page = m.page("demo", JSON);
    assert_eq!((page.status, page.header("x-cache")), (200, Some("MISS")), "{page:?}");
    assert_eq!(page.header("content-type"), Some(JSON));
    assert_eq!(page.header("vary"), Some("Accept"));
    let doc = page.json();
    assert_eq!(doc["name"], "demo");
    assert_eq!(doc["meta"]["api-version"], "1.1");
    assert_eq!(doc["versions"], json!(["0.9", "1.0"]));
    assert!(doc.get("project-status").is_none());
    let files = files_of(&page);
    assert_eq!(files.len(), 2);
    let wheel = &files[0];
    assert!(wheel["url"].as_str().unwrap().starts_with("http://localhost/pypi/files/demo/"), "{wheel}");
    assert!(wheel["url"].as_str().unwrap().ends_with("/demo-1.0-py3-none-any.whl"));
    assert_eq!(wheel["hashes"]["sha256"], sha256_hex(&wheel_bytes()));
    assert_eq!(wheel["requires-python"], ">=3.8");
    assert_eq!(wheel["core-metadata"]["sha256"], sha256_hex(METADATA));
    assert_eq!(wheel["dist-info-metadata"]["sha256"], sha256_hex(METADATA));
    assert_eq!((wheel["size"].as_u64(), wheel["upload-time"].as_str()), (Some(150_000), Some("2024-01-02T03:04:05.000000Z")));
    assert!(wheel.get("provenance").is_none() && wheel.get("gpg-sig").is_none(), "{wheel}");
    let sdist = &files[1];
    assert_eq!(sdist["yanked"], "broken <build>", "PEP 592 reason passed through");
    assert!(sdist.get("core-metadata").is_none(), "metadata advertised only when the upstream did: {sdist}");
    // The page came with the upstream's credentials and a PEP 691 Accept preferring JSON.
    let call = m.up.calls().into_iter().find(|c| c.path == "/simple/demo/").unwrap();
    assert_eq!(call.header("authorization"), Some("Bearer s3cret-token"));
    assert!(call.header("accept").unwrap().starts_with("application/vnd.pypi.simple.v1+json,"));

    // Following the links: the wheel, its metadata file, the sdist at a relative URL.
    let url = wheel["url"].as_str().unwrap();
    let got = m.follow(url);
    assert_eq!((got.status, got.header("x-cache")), (200, Some("MISS")), "{got:?}");
    assert_eq!(got.body, wheel_bytes());
    assert_eq!(m.follow(url).header("x-cache"), Some("HIT"));
    let meta = m.follow(&format!("{url}.metadata"));
    assert_eq!((meta.status, meta.body.as_slice()), (200, METADATA), "{meta:?}");
    assert_eq!(m.follow(&format!("{url}.metadata")).header("x-cache"), Some("HIT"));
    let sd = m.follow(sdist["url"].as_str().unwrap());
    assert_eq!((sd.status, sd.body.as_slice()), (200, &b"sdist 0.9"[..]), "{sd:?}");
    assert_eq!(m.up.calls_to("/packages/demo-0.9.tar.gz"), 1, "the relative link was resolved against the page");
    // The files origin never gets the upstream's credentials.
    for c in m.up.calls().iter().filter(|c| c.url.starts_with(FILES)) {
        assert_eq!(c.header("authorization"), None, "{}", c.url);
    }
    // No metadata advertised: no metadata file.
    assert_eq!(m.follow(&format!("{}.metadata", sdist["url"].as_str().unwrap())).status, 404);
    // The second page is a hit, byte for byte the same.
    let again = m.page("demo", JSON);
    assert_eq!((again.header("x-cache"), &again.body), (Some("HIT"), &page.body));
    // ETag and 304.
    let etag = page.header("etag").unwrap().to_string();
    let not_modified = m.send(Request::new(Method::Get, "/pypi/simple/demo/").with_header("Accept", JSON).with_header("If-None-Match", &etag));
    assert_eq!(not_modified.status, 304);
}

#[test]
fn html_clients_get_pep_503_rendered_from_the_same_copy() {
    let m = Mirror::start();
    serve_json(&m);
    let json_page = m.page("demo", JSON);
    let page = m.page("demo", HTML);
    assert_eq!((page.status, page.header("x-cache")), (200, Some("HIT")), "one cached copy serves both");
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_ne!(page.header("etag"), json_page.header("etag"), "each representation has its own validator");
    let body = String::from_utf8(page.body.clone()).unwrap();
    assert!(body.contains("<title>Links for demo</title>"), "{body}");
    assert!(body.contains("data-requires-python=\"&gt;=3.8\""), "{body}");
    assert!(body.contains(&format!("data-core-metadata=\"sha256={}\"", sha256_hex(METADATA))), "{body}");
    assert!(body.contains(&format!("data-dist-info-metadata=\"sha256={}\"", sha256_hex(METADATA))), "{body}");
    assert!(body.contains("data-yanked=\"broken &lt;build&gt;\""), "{body}");
    assert!(body.trim_end().ends_with("</html>"));
    let links = hrefs(&page);
    let json_urls: Vec<String> = files_of(&json_page).iter().map(|f| format!("{}#sha256={}", f["url"].as_str().unwrap(), f["hashes"]["sha256"].as_str().unwrap())).collect();
    assert_eq!(links, json_urls, "the same links, with PEP 503 #sha256 fragments");
    let wheel = m.follow(links[0].split('#').next().unwrap());
    assert_eq!(wheel.body, wheel_bytes());
}

#[test]
fn an_html_only_upstream_is_normalised_to_json_and_served_both_ways() {
    let m = Mirror::new(&format!(r#"[{{"id":"pypiserver","url":"{UPSTREAM}"}}]"#));
    serve_html(&m);
    let page = m.page("demo", JSON);
    assert_eq!(page.status, 200, "{page:?}");
    let doc = page.json();
    assert_eq!(doc["meta"]["api-version"], "1.0", "no PEP 700 versions from an HTML page");
    let files = files_of(&page);
    assert_eq!(files.len(), 2, "the commented-out anchor is not a file: {doc}");
    assert_eq!(files[0]["filename"], "demo-1.0-py3-none-any.whl");
    assert_eq!(files[0]["requires-python"], ">=3.8");
    assert_eq!(files[0]["core-metadata"]["sha256"], sha256_hex(METADATA));
    assert_eq!(files[1]["yanked"], "broken <build>");
    assert_eq!(files[1]["hashes"]["sha256"], sha256_hex(b"sdist 0.9"));
    let wheel = m.follow(files[0]["url"].as_str().unwrap());
    assert_eq!((wheel.status, wheel.body.clone()), (200, wheel_bytes()), "{wheel:?}");
    assert_eq!(m.up.calls_to("/packages/demo-1.0-py3-none-any.whl"), 1);
    let meta = m.follow(&format!("{}.metadata", files[0]["url"].as_str().unwrap()));
    assert_eq!(meta.body, METADATA);
    let sd = m.follow(files[1]["url"].as_str().unwrap());
    assert_eq!(sd.body, b"sdist 0.9");
    let html = m.page("demo", HTML);
    let body = String::from_utf8(html.body.clone()).unwrap();
    assert!(body.contains("data-yanked=\"broken &lt;build&gt;\"") && body.contains("data-requires-python=\"&gt;=3.8\""), "{body}");
}

#[test]
fn a_truncated_or_foreign_page_is_an_upstream_error_and_not_cached() {
    let m = Mirror::start();
    let page = html_page();
    let cut = page.find("</body>").unwrap();
    m.up.serve("/simple/demo/", Answer::bytes(200, "text/html", page.as_bytes()[..cut].to_vec()));
    assert_eq!(m.page("demo", JSON).status, 502);
    assert_eq!(m.reg.keys_with("pypi/cache/projects/demo/"), Vec::<String>::new());
    let mut other = json_page();
    other["name"] = json!("not-demo");
    m.up.serve("/simple/demo/", Answer::json(200, &other));
    let r = m.page("demo", JSON);
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(m.reg.keys_with("pypi/cache/projects/demo/"), Vec::<String>::new());
}

#[test]
fn a_flipped_byte_in_a_file_or_metadata_file_is_never_cached_nor_served_whole() {
    for streamed in [false, true] {
        let m = Mirror::start();
        m.up.stream_bodies(streamed);
        serve_json(&m);
        let page = m.page("demo", JSON);
        let url = files_of(&page)[0]["url"].as_str().unwrap().to_string();
        for (link, upstream, good) in [
            (url.clone(), format!("{FILES}/packages/ab/demo-1.0-py3-none-any.whl"), wheel_bytes()),
            (format!("{url}.metadata"), format!("{FILES}/packages/ab/demo-1.0-py3-none-any.whl.metadata"), METADATA.to_vec()),
        ] {
            m.up.fail(&upstream, Fault::FlipByte, 1);
            let bad = m.follow(&link);
            if !streamed {
                assert_eq!(bad.status, 502, "{bad:?}");
            }
            assert_ne!(bad.body, good, "streamed={streamed}: {link}");
            assert!(m.reg.keys_with(&format!("pypi/cache/files/sha256/{}", sha256_hex(&good))).is_empty(), "streamed={streamed}: cached");
            let ok = m.follow(&link);
            assert_eq!((ok.status, ok.body.clone()), (200, good.clone()), "streamed={streamed}");
            assert_eq!(m.reg.keys_with(&format!("pypi/cache/files/sha256/{}", sha256_hex(&good))).len(), 1);
        }
    }
}

#[test]
fn forged_file_urls_are_refused_without_asking_anyone() {
    let m = Mirror::start();
    serve_json(&m);
    let page = m.page("demo", JSON);
    let url = files_of(&page)[0]["url"].as_str().unwrap().to_string();
    let asked = m.up.total();
    // The same link, pointing at another origin.
    let parts: Vec<&str> = url.rsplitn(3, '/').collect();
    let (filename, prefix) = (parts[0], parts[2]);
    use base64::Engine;
    for evil in ["https://evil.example/demo-1.0-py3-none-any.whl", "http://169.254.169.254/demo-1.0-py3-none-any.whl", "file:///etc/demo-1.0-py3-none-any.whl"] {
        let forged = format!("{prefix}/{}/{filename}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(evil));
        let r = m.follow(&forged);
        assert!(r.status == 403 || r.status == 404, "{evil}: {r:?}");
    }
    // A file name that is not the upstream URL's, a bad hash, a bad project.
    let renamed = format!("{}/other.whl", url.rsplit_once('/').unwrap().0);
    assert_eq!(m.follow(&renamed).status, 404);
    let invalid_project = m.follow(&url.replace("/files/demo/", "/files/-demo/")).status;
    assert!(invalid_project == 400 || invalid_project == 404, "{invalid_project}");
    assert_eq!(m.follow(&url.replace("/files/demo/", "/files/demo/zz")).status, 404);
    assert_eq!(m.up.total(), asked, "{:?}", m.up.calls());
}

#[test]
fn a_file_listed_without_sha256_is_passed_through_and_not_cached() {
    let m = Mirror::start();
    let mut page = json_page();
    page["files"][0]["hashes"] = json!({});
    m.up.serve("/simple/demo/", Answer::json(200, &page));
    m.up.serve(&format!("{FILES}/packages/ab/demo-1.0-py3-none-any.whl"), Answer::bytes(200, "application/octet-stream", wheel_bytes()));
    let url = files_of(&m.page("demo", JSON))[0]["url"].as_str().unwrap().to_string();
    assert!(url.contains("/files/demo/-/"), "{url}");
    for _ in 0..2 {
        let r = m.follow(&url);
        assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
        assert_eq!(r.body, wheel_bytes());
    }
    assert!(m.reg.keys_with("pypi/cache/files/").is_empty());
}

#[test]
fn hosted_projects_are_never_asked_of_the_upstream() {
    let m = Mirror::start();
    serve_json(&m);
    let url = files_of(&m.page("demo", JSON))[0]["url"].as_str().unwrap().to_string();
    m.host("demo");
    let asked = m.up.total();
    let page = m.page("demo", JSON);
    assert_eq!((page.status, page.header("x-cache")), (200, None), "the hosted page: {page:?}");
    assert_eq!(m.follow(&url).status, 404, "no upstream file under a hosted project's name");
    assert_eq!(m.up.total(), asked);
}

#[test]
fn links_follow_the_registry_url_the_client_used() {
    let m = Mirror::start();
    serve_json(&m);
    m.page("demo", JSON);
    let mut req = Request::new(Method::Get, "/pypi/simple/demo/").with_header("Accept", JSON);
    req.origin = "https://mirror.example".into();
    let page = m.send(req);
    assert_eq!(page.header("x-cache"), Some("HIT"));
    for f in files_of(&page) {
        assert!(f["url"].as_str().unwrap().starts_with("https://mirror.example/pypi/files/demo/"), "{f}");
    }
}

#[test]
fn purge_forgets_the_page_and_keeps_shared_files() {
    let m = Mirror::start();
    serve_json(&m);
    let url = files_of(&m.page("demo", JSON))[0]["url"].as_str().unwrap().to_string();
    m.follow(&url);
    let r = m.send(common::admin(Method::Delete, "/-/admin/cache/pypi/Demo"));
    assert_eq!((r.status, r.json()["purged"].as_u64()), (200, Some(2)), "the entry and the page: {r:?}");
    assert!(m.reg.keys_with("pypi/cache/projects/").is_empty());
    assert_eq!(m.reg.keys_with("pypi/cache/files/").len(), 1);
}

// ---------------------------------------------------------------- the rewriters

fn rewrite(page: &[u8], pieces: &[usize]) -> Result<(Vec<u8>, usize), String> {
    let relink = Box::new(|f: &mut edgeregistry::pypi::rewrite::FileEntry| {
        f.url = format!("https://me.example/files/{}", f.filename);
        true
    });
    let mut r = PageRewriter::new("demo", "https://up.example/simple/demo/", relink);
    let mut out = Vec::new();
    let mut rest = page;
    let mut held = 0;
    for &n in pieces {
        let (a, b) = rest.split_at(n.min(rest.len()));
        r.feed(a, &mut out)?;
        held = held.max(r.held());
        rest = b;
    }
    r.feed(rest, &mut out)?;
    let summary = r.finish()?;
    Ok((out, held.max(summary.high_water)))
}

fn render(cached: &[u8], json: bool, pieces: &[usize]) -> Vec<u8> {
    let mut r = Renderer::new("demo", json, Box::new(|_| true));
    let mut out = Vec::new();
    let mut rest = cached;
    for &n in pieces {
        let (a, b) = rest.split_at(n.min(rest.len()));
        r.feed(a, &mut out).unwrap();
        rest = b;
    }
    r.feed(rest, &mut out).unwrap();
    r.finish(&mut out).unwrap();
    out
}

#[test]
fn every_two_piece_split_gives_the_same_page() {
    let json = serde_json::to_vec(&json_page()).unwrap();
    let html = html_page().into_bytes();
    for page in [&json, &html] {
        let (whole, _) = rewrite(page, &[]).unwrap();
        let doc: Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(doc["files"].as_array().unwrap().len(), 2);
        for at in 0..=page.len() {
            assert_eq!(rewrite(page, &[at]).unwrap().0, whole, "split at {at}");
        }
        let as_html = render(&whole, false, &[]);
        let as_json = render(&whole, true, &[]);
        assert_eq!(serde_json::from_slice::<Value>(&as_json).unwrap(), doc, "JSON rendered back is the same page");
        for at in 0..=whole.len() {
            assert_eq!(render(&whole, false, &[at]), as_html, "HTML, split at {at}");
            assert_eq!(render(&whole, true, &[at]), as_json, "JSON, split at {at}");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    #[test]
    fn any_splits_give_the_same_page(cuts in proptest::collection::vec(0usize..64, 0..40), html in proptest::bool::ANY) {
        let page = if html { html_page().into_bytes() } else { serde_json::to_vec(&json_page()).unwrap() };
        let (whole, _) = rewrite(&page, &[]).unwrap();
        proptest::prop_assert_eq!(rewrite(&page, &cuts).unwrap().0, whole.clone());
        proptest::prop_assert_eq!(render(&whole, false, &cuts), render(&whole, false, &[]));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400), cut in 0usize..400) {
        let _ = rewrite(&bytes, &[cut]);
        let mut events = Vec::new();
        let _ = JsonScanner::new().feed(&bytes, &mut events);
        let _ = HtmlScanner::new("https://x/").feed(&bytes, &mut events);
    }
}

#[test]
fn a_page_of_thousands_of_files_goes_through_in_bounded_memory() {
    const N: usize = 20_000;
    let entry = |i: usize| {
        json!({"filename": format!("big-{i}.0-py3-none-any.whl"), "url": format!("https://files.example/packages/{i:08}/big-{i}.0-py3-none-any.whl"),
               "hashes": {"sha256": format!("{i:064x}")}, "requires-python": ">=3.8", "core-metadata": {"sha256": format!("{:064x}", i + 1)},
               "yanked": false, "size": i, "upload-time": "2024-01-02T03:04:05.000000Z"})
    };
    let mut page = br#"{"meta":{"api-version":"1.1"},"name":"big","files":["#.to_vec();
    for i in 0..N {
        if i > 0 {
            page.push(b',');
        }
        page.extend_from_slice(&serde_json::to_vec(&entry(i)).unwrap());
    }
    page.extend_from_slice(br#"],"versions":[]}"#);
    assert!(page.len() > 7_000_000, "{} bytes", page.len());
    let relink = Box::new(|_: &mut edgeregistry::pypi::rewrite::FileEntry| true);
    let mut r = PageRewriter::new("big", "https://up.example/simple/big/", relink);
    let mut cached = Vec::new();
    let mut most = 0;
    let mut out = Vec::new();
    for chunk in page.chunks(64 * 1024) {
        out.clear();
        r.feed(chunk, &mut out).unwrap();
        most = most.max(r.held());
        cached.extend_from_slice(&out);
    }
    let summary = r.finish().unwrap();
    assert_eq!(summary.files, N);
    // One entry (~450 bytes) at a time: the buffers never grow with the page.
    assert!(most <= 4096 && summary.high_water <= 4096, "held {most} / {} bytes", summary.high_water);
    let mut html = Renderer::new("big", false, Box::new(|_| true));
    let mut anchors = 0;
    for chunk in cached.chunks(64 * 1024) {
        out.clear();
        html.feed(chunk, &mut out).unwrap();
        anchors += out.windows(3).filter(|w| w == b"<a ").count();
    }
    out.clear();
    html.finish(&mut out).unwrap();
    assert_eq!(anchors, N);
}

#[test]
fn pages_are_revalidated_with_the_upstreams_etag() {
    let m = Mirror::start();
    serve_json(&m);
    let first = m.page("demo", JSON);
    m.reg.mem.clock.advance(3_600_000.0 + 300_000.0 + 1.0);
    let again = m.page("demo", JSON);
    assert_eq!((again.status, again.header("x-cache")), (200, Some("REVALIDATED")), "{again:?}");
    assert_eq!(again.body, first.body);
    let last = m.up.calls().into_iter().rfind(|c| c.path == "/simple/demo/").unwrap();
    assert_eq!(last.header("if-none-match"), Some("\"v1\""));
}

#[test]
fn head_of_a_file_answers_its_length() {
    let m = Mirror::start();
    serve_json(&m);
    let url = files_of(&m.page("demo", JSON))[0]["url"].as_str().unwrap().to_string();
    let path = url.strip_prefix("http://localhost").unwrap();
    let miss = m.send(Request::new(Method::Head, path));
    assert_eq!((miss.status, miss.header("content-length")), (200, Some("150000")), "{miss:?}");
    assert!(m.reg.keys_with("pypi/cache/files/").is_empty(), "a HEAD keeps nothing");
    m.follow(&url);
    let hit = m.send(Request::new(Method::Head, path));
    assert_eq!((hit.header("x-cache"), hit.header("content-length")), (Some("HIT"), Some("150000")));
}

#[test]
fn pypi_org_files_come_from_files_pythonhosted_org_only() {
    use edgeregistry::config::Protocol;
    use edgeregistry::pypi::proxy::file_origins;
    let vars = vars(&[("PYPI_UPSTREAMS", r#"[{"id":"pypi","url":"https://pypi.org/simple"},{"id":"corp","url":"https://pypi.corp.example/simple/","filesUrl":"https://cdn.corp.example/files/"}]"#)]);
    let ups = edgeregistry::upstream::config::from_vars(Protocol::Pypi, &vars).unwrap().unwrap();
    assert_eq!(file_origins(&ups.upstreams[0]), ["https://pypi.org", "https://files.pythonhosted.org"]);
    assert_eq!(file_origins(&ups.upstreams[1]), ["https://pypi.corp.example", "https://cdn.corp.example"]);
}

#[test]
fn a_forged_link_to_an_authenticated_upstreams_own_origin_is_not_fetched() {
    let m = Mirror::start();
    serve_json(&m);
    let sdist = files_of(&m.page("demo", JSON))[1]["url"].as_str().unwrap().to_string();
    assert!(sdist.contains("/files/demo/"), "{sdist}");
    let secret = "https://up.example/admin/demo-0.9.tar.gz";
    m.up.serve(secret, Answer::bytes(200, "application/octet-stream", b"secret".to_vec()));
    use base64::Engine;
    let mut parts: Vec<String> = sdist.split('/').map(str::to_string).collect();
    let n = parts.len();
    parts[n - 2] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let forged = parts.join("/");
    let asked = m.up.total();
    let r = m.follow(&forged);
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(m.up.total(), asked, "the upstream's origin was asked with its credentials");
    // The listed link on that origin is fetched, credentials and all.
    let ok = m.follow(&sdist);
    assert_eq!((ok.status, ok.body.as_slice()), (200, &b"sdist 0.9"[..]));
    let call = m.up.calls().into_iter().rfind(|c| c.path == "/packages/demo-0.9.tar.gz").unwrap();
    assert_eq!(call.header("authorization"), Some("Bearer s3cret-token"));
}
