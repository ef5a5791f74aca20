//! The Cargo pull-through cache (`edgeregistry::cargo::proxy`) natively, in front of the fake
//! upstream: the upstream's `config.json` and its `dl` markers, credentials kept to the
//! upstream's origin, index file revalidation and checks, downloads verified against the index
//! `cksum`, versions the index does not list, hosted first, purges and `upstream_has`. The
//! cases every mirror shares are in tests/pullthrough_conformance.rs. Requests go through the
//! small router of tests/common/cargo_proxy.rs until the Cargo module routes them.

mod common;

use common::cargo_proxy::{crate_bytes, index_line, index_path, serve_config, serve_index};
use common::upstream::{Answer, FakeUpstream};
use common::*;
use edgeregistry::cargo::names::CrateName;
use edgeregistry::cargo::proxy;
use edgeregistry::http::{Method, Request};
use futures::executor::block_on;

const UP: &str = "https://index.up.example";

struct Mirror {
    reg: Reg,
    up: FakeUpstream,
}

impl Mirror {
    /// A registry whose one upstream `up` is at [`UP`], with `extra` upstream fields
    /// (`"auth":…`); documents fresh for 300 s, then stale for 600 s.
    fn start(extra: &str) -> Mirror {
        let upstreams = format!(
            r#"{{"upstreams":[{{"id":"up","url":"{UP}","resilience":{{"maxRetries":0}}{extra}}}],
                "cache":{{"defaultTtlSeconds":300,"staleMaxAgeSeconds":600,"negativeCacheTtlSeconds":60}}}}"#
        );
        let reg = Reg::with_vars(&[("CARGO_UPSTREAMS", upstreams.as_str()), ("UP_TOKEN", "s3cret-upstream-token")]);
        let up = FakeUpstream::install(&reg.mem);
        Mirror { reg, up }
    }

    fn send(&self, req: Request) -> Resp {
        self.reg.send(req)
    }

    /// Publishes 0.1.0 of `name` with a token whose scope names it: hosted from now on.
    fn host(&self, name: &str) {
        self.reg.host_crate(name);
    }

    fn index(&self, name: &str) -> Resp {
        self.send(Request::new(Method::Get, &format!("/cargo/{}", index_path(name))))
    }

    fn download(&self, name: &str, version: &str) -> Resp {
        self.send(Request::new(Method::Get, &format!("/cargo/api/v1/crates/{name}/{version}/download")))
    }

    /// The upstream lists `versions` of `name` and serves their `.crate` files at `crate_path`.
    fn serves(&self, name: &str, versions: &[&str], crate_path: impl Fn(&str) -> String) {
        let lines: Vec<String> = versions.iter().map(|v| index_line(name, v, &crate_bytes(name, v))).collect();
        serve_index(&self.up, name, &lines);
        for v in versions {
            self.up.serve(&crate_path(v), Answer::bytes(200, "application/octet-stream", crate_bytes(name, v)));
        }
    }

    fn advance(&self, ms: f64) {
        self.reg.mem.clock.advance(ms);
    }

    fn cached_crate(&self, name: &str, version: &str) -> bool {
        let key = proxy::crate_key(&sha256_hex(&crate_bytes(name, version)));
        !self.reg.keys_with(key.as_str()).is_empty()
    }
}

/// Where the cached index files of a crate live.
fn prefix(name: &str) -> String {
    proxy::cache_prefix(&CrateName::parse(name).unwrap())
}

fn state(r: &Resp) -> Option<&str> {
    r.header("x-cache")
}

#[test]
fn dl_without_markers_gets_crate_and_version_appended() {
    let m = Mirror::start("");
    serve_config(&m.up, "https://static.up.example/crates");
    m.serves("serde", &["1.0.0", "1.0.1"], |v| format!("https://static.up.example/crates/serde/{v}/download"));
    let r = m.download("serde", "1.0.1");
    assert_eq!((r.status, state(&r)), (200, Some("MISS")), "{r:?}");
    assert_eq!(r.body, crate_bytes("serde", "1.0.1"));
    assert_eq!(m.up.calls_to("https://static.up.example/crates/serde/1.0.1/download"), 1);
    assert!(m.cached_crate("serde", "1.0.1"));
    let again = m.download("serde", "1.0.1");
    assert_eq!((again.status, state(&again), again.body == crate_bytes("serde", "1.0.1")), (200, Some("HIT"), true));
}

/// Every marker of the Cargo book's `dl`, on another origin than the index: the crate is
/// fetched there without the upstream's credentials, which the index requests carry.
#[test]
fn dl_markers_on_another_origin_get_no_credentials() {
    let m = Mirror::start(r#","auth":{"type":"bearer","tokenSecret":"UP_TOKEN"}"#);
    serve_config(&m.up, "https://cdn.example/{prefix}/{lowerprefix}/{crate}/{version}/{sha256-checksum}.crate");
    let name = "MyCrate";
    let bytes = crate_bytes(name, "0.3.0-beta.1");
    serve_index(&m.up, name, &[index_line(name, "0.3.0-beta.1", &bytes)]);
    let url = format!("https://cdn.example/My/Cr/my/cr/MyCrate/0.3.0-beta.1/{}.crate", sha256_hex(&bytes));
    m.up.serve(&url, Answer::bytes(200, "application/octet-stream", bytes.clone()));
    // cargo asks for the lower-cased index path, and downloads with the name the index gives.
    let idx = m.index("mycrate");
    assert_eq!(idx.status, 200, "{idx:?}");
    let r = m.download("MyCrate", "0.3.0-beta.1");
    assert_eq!((r.status, r.body == bytes), (200, true), "{r:?}");
    let calls = m.up.calls();
    let to_cdn: Vec<_> = calls.iter().filter(|c| c.url.starts_with("https://cdn.example/")).collect();
    assert_eq!(to_cdn.iter().map(|c| c.url.as_str()).collect::<Vec<_>>(), [url.as_str()]);
    assert!(to_cdn.iter().all(|c| c.header("authorization").is_none()), "credentials went to the dl origin");
    let own: Vec<_> = calls.iter().filter(|c| c.url.starts_with(UP)).collect();
    assert_eq!(own.len(), 2, "index file and config.json: {own:?}");
    assert!(own.iter().all(|c| c.header("authorization") == Some("Bearer s3cret-upstream-token")), "{own:?}");
}

/// The upstream's `config.json` is cached for its TTL, then asked again: a `dl` that moved
/// is followed, never a hard-coded host.
#[test]
fn config_json_is_a_cached_document() {
    let m = Mirror::start("");
    serve_config(&m.up, "https://one.example/crates");
    for name in ["alpha", "beta"] {
        m.serves(name, &["1.0.0"], |v| format!("https://one.example/crates/{name}/{v}/download"));
        assert_eq!(m.download(name, "1.0.0").status, 200);
    }
    assert_eq!(m.up.calls_to("/config.json"), 1, "one config.json for both crates");
    m.advance(300_000.0 + 600_000.0 + 1.0);
    serve_config(&m.up, "https://two.example/{crate}-{version}.crate");
    m.serves("gamma", &["2.0.0"], |v| format!("https://two.example/gamma-{v}.crate"));
    let r = m.download("gamma", "2.0.0");
    assert_eq!((r.status, r.body == crate_bytes("gamma", "2.0.0")), (200, true), "{r:?}");
    assert_eq!(m.up.calls_to("/config.json"), 2);
    assert_eq!(m.up.calls_with("one.example/crates/gamma"), 0);
}

/// A `config.json` that cannot be used (none, no `dl`, not JSON) is a 502: nothing cached,
/// and never a guess at the download host.
#[test]
fn unusable_config_json_is_an_upstream_error() {
    for config in [None, Some(Answer::json(200, &serde_json::json!({"api": "https://x.example"}))), Some(Answer::bytes(200, "application/json", b"{\"dl\":".to_vec()))] {
        let m = Mirror::start("");
        if let Some(c) = &config {
            m.up.serve("/config.json", c.clone());
        }
        m.serves("alpha", &["1.0.0"], |v| format!("{UP}/alpha/{v}/download"));
        let r = m.download("alpha", "1.0.0");
        assert_eq!(r.status, 502, "{config:?}: {r:?}");
        assert!(r.json()["errors"][0]["detail"].as_str().is_some_and(|d| !d.is_empty()), "{r:?}");
        assert!(!m.cached_crate("alpha", "1.0.0"));
        assert_eq!(m.up.calls_with("/alpha/1.0.0/download"), 0, "{config:?}");
        assert!(m.reg.keys_with("cargo/cache/upstreams/").iter().all(|k| k.ends_with(".entry.json")), "no config copy kept");
    }
}

/// Index files: served as text with this registry's ETag (and 304 for it), revalidated
/// upstream with the upstream's ETag or Last-Modified, new copies replacing old ones.
#[test]
fn index_files_are_revalidated() {
    let m = Mirror::start("");
    m.serves("alpha", &["1.0.0"], |v| format!("/dl/alpha/{v}"));
    let first = m.index("alpha");
    assert_eq!((first.status, state(&first)), (200, Some("MISS")));
    assert_eq!(first.header("content-type"), Some("text/plain"));
    assert_eq!(first.header("content-length"), Some(first.body.len().to_string().as_str()));
    let head = m.send(Request::new(Method::Head, &format!("/cargo/{}", index_path("alpha"))));
    assert_eq!((head.status, head.body.len(), head.header("content-length")), (200, 0, first.header("content-length")));
    assert_eq!(first.text(), format!("{}\n", index_line("alpha", "1.0.0", &crate_bytes("alpha", "1.0.0"))));
    let etag = first.header("etag").unwrap().to_string();
    let not_modified = m.send(Request::new(Method::Get, &format!("/cargo/{}", index_path("alpha"))).with_header("If-None-Match", &etag));
    assert_eq!((not_modified.status, not_modified.body.len()), (304, 0));
    // Past TTL and stale window: a conditional request, answered 304.
    m.advance(900_001.0);
    let r = m.index("alpha");
    assert_eq!((r.status, state(&r)), (200, Some("REVALIDATED")), "{r:?}");
    let last = m.up.calls().into_iter().last().unwrap();
    assert!(last.header("if-none-match").is_some_and(|v| v.starts_with('"')), "{last:?}");
    assert_eq!(r.header("etag"), Some(etag.as_str()), "same copy, same validator");
    // Last-Modified only: If-Modified-Since.
    let body = format!("{}\n", index_line("beta", "1.0.0", b"x"));
    m.up.serve(&format!("/{}", index_path("beta")), Answer::bytes(200, "text/plain", body.into_bytes()).with_header("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT"));
    assert_eq!(m.index("beta").status, 200);
    m.advance(900_001.0);
    m.index("beta");
    let last = m.up.calls().into_iter().last().unwrap();
    assert_eq!(last.header("if-modified-since"), Some("Tue, 01 Dec 2026 10:00:00 GMT"));
    // A changed file: a new copy, a new validator, the old copy gone.
    m.serves("alpha", &["1.0.0", "1.1.0"], |v| format!("/dl/alpha/{v}"));
    m.advance(900_001.0);
    let changed = m.index("alpha");
    assert_eq!((changed.status, state(&changed)), (200, Some("MISS")));
    assert!(changed.text().contains("\"1.1.0\""));
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
    let copies = m.reg.keys_with(&prefix("alpha")).into_iter().filter(|k| !k.ends_with(".entry.json")).count();
    assert_eq!(copies, 1);
}

/// An index file that is not this crate's (a line of another crate, a line without a sha256
/// cksum, a line that is not JSON) is refused: a 502, nothing cached.
#[test]
fn corrupt_index_files_are_never_cached() {
    let good = index_line("alpha", "1.0.0", b"a");
    for bad in [index_line("alphb", "1.0.0", b"a"), good.replace(&sha256_hex(b"a"), "00"), "{\"name\":\"alpha\",".to_string()] {
        let m = Mirror::start("");
        serve_index(&m.up, "alpha", &[good.clone(), bad.clone()]);
        let r = m.index("alpha");
        assert_eq!(r.status, 502, "{bad}: {r:?}");
        assert_eq!(m.reg.keys_with(&prefix("alpha")), Vec::<String>::new(), "{bad}");
    }
}

/// A version the index file does not list is a 404 without asking for any `.crate`; a crate
/// the upstream does not have is a remembered 404.
#[test]
fn versions_the_index_does_not_list_are_not_fetched() {
    let m = Mirror::start("");
    serve_config(&m.up, &format!("{UP}/dl"));
    m.serves("alpha", &["1.0.0"], |v| format!("/dl/alpha/{v}/download"));
    m.up.serve("/dl/alpha/9.9.9/download", Answer::bytes(200, "application/octet-stream", b"not listed".to_vec()));
    let r = m.download("alpha", "9.9.9");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.json()["errors"][0]["detail"].as_str().is_some());
    assert_eq!(m.up.calls_with("/dl/"), 0);
    assert_eq!(m.up.calls_to("/config.json"), 0, "nothing to download, nothing asked");
    let ghost = m.download("ghost", "1.0.0");
    assert_eq!(ghost.status, 404);
    let asked = m.up.total();
    assert_eq!(m.download("ghost", "1.0.0").status, 404);
    assert_eq!(m.index("ghost").status, 404);
    assert_eq!(m.up.total(), asked, "the negative entry answered");
}

/// A version published upstream after the index file was cached is found by asking again,
/// once the cached copy is older than a moment.
#[test]
fn a_version_newer_than_the_cached_index_is_found() {
    let m = Mirror::start("");
    serve_config(&m.up, &format!("{UP}/dl"));
    m.serves("alpha", &["1.0.0"], |v| format!("/dl/alpha/{v}/download"));
    assert_eq!(m.index("alpha").status, 200);
    m.serves("alpha", &["1.0.0", "1.1.0"], |v| format!("/dl/alpha/{v}/download"));
    assert_eq!(m.download("alpha", "1.1.0").status, 404, "a copy fetched moments ago is not asked again");
    m.advance(11_000.0);
    let r = m.download("alpha", "1.1.0");
    assert_eq!((r.status, r.body == crate_bytes("alpha", "1.1.0")), (200, true), "{r:?}");
    assert!(m.index("alpha").text().contains("\"1.1.0\""), "the refreshed copy is served");
}

/// HEAD of a download: the length, from the upstream and then from the cache.
#[test]
fn head_of_a_download() {
    let m = Mirror::start("");
    serve_config(&m.up, &format!("{UP}/dl"));
    m.serves("alpha", &["1.0.0"], |v| format!("/dl/alpha/{v}/download"));
    let len = crate_bytes("alpha", "1.0.0").len().to_string();
    let head = m.send(Request::new(Method::Head, "/cargo/api/v1/crates/alpha/1.0.0/download"));
    assert_eq!((head.status, state(&head), head.header("content-length"), head.body.len()), (200, Some("MISS"), Some(len.as_str()), 0));
    assert!(!m.cached_crate("alpha", "1.0.0"), "a HEAD keeps nothing");
    assert_eq!(m.download("alpha", "1.0.0").status, 200);
    let head = m.send(Request::new(Method::Head, "/cargo/api/v1/crates/alpha/1.0.0/download"));
    assert_eq!((head.status, state(&head), head.header("content-length")), (200, Some("HIT"), Some(len.as_str())));
}

/// A crate hosted here: neither its index file nor its downloads come from the upstream.
#[test]
fn hosted_crates_are_never_proxied() {
    let m = Mirror::start("");
    serve_config(&m.up, &format!("{UP}/dl"));
    m.serves("mine", &["1.0.0"], |v| format!("/dl/mine/{v}/download"));
    m.host("mine");
    let idx = m.index("mine");
    assert_eq!((idx.status, state(&idx)), (200, None), "{idx:?}");
    assert!(idx.text().contains("\"0.1.0\""), "the hosted file");
    assert_eq!(m.download("mine", "1.0.0").status, 404);
    assert_eq!(m.up.total(), 0, "{:?}", m.up.calls());
}

/// A mirrored download kept at the edge is forgotten by the crate's first publish here: the
/// hosted crate owns the URL from then on.
#[test]
fn a_kept_mirrored_download_ends_with_the_first_hosted_publish() {
    let m = Mirror::start("");
    serve_config(&m.up, &format!("{UP}/dl"));
    m.serves("mine", &["0.1.0"], |v| format!("/dl/mine/{v}/download"));
    assert_eq!(m.index("mine").status, 200);
    let first = m.download("mine", "0.1.0");
    assert_eq!((first.status, state(&first)), (200, Some("MISS")), "{first:?}");
    let kept = m.download("mine", "0.1.0");
    assert_eq!(kept.header("x-edge-cache"), Some("HIT"), "the verified first answer was kept");
    assert_eq!(kept.body, crate_bytes("mine", "0.1.0"));
    m.host("mine");
    let hosted = m.download("mine", "0.1.0");
    assert_eq!(hosted.header("x-edge-cache"), None, "the mirrored copy was served after the hosted publish");
    assert_ne!(hosted.body, crate_bytes("mine", "0.1.0"), "the upstream's bytes, not the hosted crate's");
}

/// The first hosted publish forgets the cached index file; the admin purge does too, of
/// every spelling cargo treats as the same crate; `.crate` files stay (content-addressed).
#[test]
fn purges_and_upstream_has() {
    let m = Mirror::start("");
    serve_config(&m.up, &format!("{UP}/dl"));
    for name in ["alpha", "alpha_two", "alpha-two", "alphatwo"] {
        m.serves(name, &["1.0.0"], |v| format!("/dl/{name}/{v}/download"));
    }
    let alpha = CrateName::parse("alpha").unwrap();
    assert!(block_on(proxy::upstream_has(&m.reg.app, &alpha)).unwrap());
    assert!(!block_on(proxy::upstream_has(&m.reg.app, &CrateName::parse("nosuch").unwrap())).unwrap());
    // Other spellings of an upstream crate's name are its name too.
    m.serves("serde_json", &["1.0.0"], |v| format!("/dl/serde_json/{v}/download"));
    m.serves("tokio-util", &["1.0.0"], |v| format!("/dl/tokio-util/{v}/download"));
    for (spelling, has) in [("Serde-Json", true), ("serde_json", true), ("tokio_util", true), ("tokio-utils", false)] {
        assert_eq!(block_on(proxy::upstream_has(&m.reg.app, &CrateName::parse(spelling).unwrap())).unwrap(), has, "{spelling}");
    }
    assert_eq!(m.download("alpha", "1.0.0").status, 200);
    for name in ["alpha_two", "alpha-two", "alphatwo"] {
        assert_eq!(m.index(name).status, 200);
    }
    let cached = m.reg.keys_with(&prefix("alpha"));
    assert_eq!(cached.len(), 2, "entry and copy: {cached:?}");
    let purged = block_on(proxy::purge_for_hosted(&*m.reg.mem.platform.store, &CrateName::parse("Alpha").unwrap())).unwrap();
    assert_eq!(purged, 2);
    assert_eq!(m.reg.keys_with(&prefix("alpha")), Vec::<String>::new());
    assert!(!m.reg.keys_with(&prefix("alphatwo")).is_empty(), "another crate keeps its copy");
    assert!(m.cached_crate("alpha", "1.0.0"));
    let r = m.send(admin(Method::Delete, "/-/admin/cache/cargo/Alpha-Two"));
    assert_eq!((r.status, r.json()["purged"].as_u64()), (200, Some(4)), "both spellings: {r:?}");
    assert_eq!(m.reg.keys_with(&prefix("alpha_two")), Vec::<String>::new());
    assert_eq!(m.reg.keys_with(&prefix("alphatwo")).len(), 2);
    assert_eq!(m.send(admin(Method::Delete, "/-/admin/cache/cargo/..%2Fx")).status, 400);
    // No upstream configured: nothing to shadow.
    let plain = Reg::new();
    assert!(!block_on(proxy::upstream_has(&plain.app, &alpha)).unwrap());
}

/// `upstream_has` cannot tell while the upstream fails: an error, not a guess.
#[test]
fn upstream_has_fails_while_the_upstream_does() {
    let m = Mirror::start("");
    m.up.go_down(common::upstream::Fault::status(503));
    let r = block_on(proxy::upstream_has(&m.reg.app, &CrateName::parse("alpha").unwrap()));
    assert_eq!(r.map_err(|e| e.status()), Err(502));
}

/// Each crate downloads from the `dl` of the `config.json` of the upstream whose index file
/// listed it (two sparse registries, a private one first for its own names).
#[test]
fn each_upstream_downloads_from_its_own_dl() {
    let upstreams = r#"{"upstreams":[
        {"id":"corp","url":"https://corp.example/index","scopeRules":[{"pattern":"corp-*","action":"include"}],"resilience":{"maxRetries":0}},
        {"id":"public","url":"https://public.example","resilience":{"maxRetries":0}}]}"#;
    let reg = Reg::with_vars(&[("CARGO_UPSTREAMS", upstreams)]);
    let up = FakeUpstream::install(&reg.mem);
    let m = Mirror { reg, up };
    m.up.serve("https://corp.example/index/config.json", Answer::json(200, &serde_json::json!({"dl": "https://corp.example/files/{crate}-{version}"})));
    m.up.serve("https://public.example/config.json", Answer::json(200, &serde_json::json!({"dl": "https://cdn.public.example/crates"})));
    for (name, index_url, crate_url) in [
        ("corp-tool", "https://corp.example/index/co/rp/corp-tool", "https://corp.example/files/corp-tool-1.0.0"),
        ("serde", "https://public.example/se/rd/serde", "https://cdn.public.example/crates/serde/1.0.0/download"),
    ] {
        let bytes = crate_bytes(name, "1.0.0");
        m.up.serve(index_url, Answer::bytes(200, "text/plain", format!("{}\n", index_line(name, "1.0.0", &bytes)).into_bytes()));
        m.up.serve(crate_url, Answer::bytes(200, "application/octet-stream", bytes.clone()));
        let r = m.download(name, "1.0.0");
        assert_eq!((r.status, r.header("x-cache-upstream"), r.body == bytes), (200, Some(if name == "serde" { "public" } else { "corp" }), true), "{name}: {r:?}");
        assert_eq!(m.up.calls_to(crate_url), 1, "{name}");
    }
    assert_eq!(m.up.calls_with("public.example/co/rp"), 0, "a corp name is not asked of the public registry once corp has it");
}

/// A yanked version stays downloadable (a lockfile may name it: the Cargo book, "cargo
/// yank").
#[test]
fn yanked_versions_are_still_downloaded() {
    let m = Mirror::start("");
    serve_config(&m.up, &format!("{UP}/dl"));
    let bytes = crate_bytes("alpha", "1.0.0");
    let mut line: serde_json::Value = serde_json::from_str(&index_line("alpha", "1.0.0", &bytes)).unwrap();
    line["yanked"] = serde_json::json!(true);
    serve_index(&m.up, "alpha", &[line.to_string()]);
    m.up.serve("/dl/alpha/1.0.0/download", Answer::bytes(200, "application/octet-stream", bytes.clone()));
    let r = m.download("alpha", "1.0.0");
    assert_eq!((r.status, r.body == bytes), (200, true), "{r:?}");
}

/// Real crates.io index files (tests/fixtures/cargo/crates-io-index, taken by
/// fetch_index.sh: `features2`, `v`, `links`, `rust_version`, `pubtime`, renamed and
/// target-specific dependencies) pass the line check and are served byte for byte; a
/// download is checked against the `cksum` of its own line.
#[test]
fn real_crates_io_index_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cargo/crates-io-index");
    let m = Mirror::start("");
    serve_config(&m.up, &format!("{UP}/dl"));
    let mut seen = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = std::fs::read(&path).unwrap();
        m.up.serve(&format!("/{}", index_path(&name)), Answer::bytes(200, "text/plain", bytes.clone()));
        let r = m.index(&name);
        assert_eq!((r.status, state(&r)), (200, Some("MISS")), "{name}: {r:?}");
        assert!(r.body == bytes, "{name}: served as it came");
        let last: serde_json::Value = serde_json::from_slice(bytes.trim_ascii_end().rsplit(|b| *b == b'\n').next().unwrap()).unwrap();
        let vers = last["vers"].as_str().unwrap();
        let dl_path = format!("/dl/{}/{vers}/download", last["name"].as_str().unwrap());
        m.up.serve(&dl_path, Answer::bytes(200, "application/octet-stream", b"not the real crate".to_vec()));
        let d = m.download(&name, vers);
        assert_eq!(d.status, 502, "{name} {vers}: checked against the real cksum: {d:?}");
        assert_eq!(m.up.calls_to(&dl_path), 1, "{name} {vers}");
        assert!(m.reg.keys_with(proxy::crate_key(last["cksum"].as_str().unwrap()).as_str()).is_empty());
        seen += 1;
    }
    assert!(seen >= 5, "fixtures read: {seen}");
}
