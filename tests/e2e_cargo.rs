//! Cargo hosted on the Worker in workerd (a sparse registry at `/cargo/`), with cargo itself:
//! publish with and without a token, yank and unyank, search, owners, dependent projects that
//! build with hosted crates, and `auth-required`; bad publish frames sent raw, each refused in
//! the Web API's error shape with nothing stored. The Cargo book's "Registries", "Registry
//! Index" and "Registry Web API" chapters say what cargo sends and expects.

mod common;

use std::sync::OnceLock;

use common::e2e::cargo::*;
use common::e2e::*;
use serde_json::{json, Value};

fn worker() -> &'static Worker {
    static W: OnceLock<Worker> = OnceLock::new();
    W.get_or_init(|| Worker::start(&[]))
}

/// A scratch dir whose cargo knows the Worker as the registry `edge`.
fn scratch(w: &Worker) -> Scratch {
    let s = Scratch::new();
    cargo_config(&s, &hosted_config(&w.cargo_index()));
    s
}

fn with_token(token: &str) -> [(&str, &str); 1] {
    [("CARGO_REGISTRIES_EDGE_TOKEN", token)]
}

/// `cargo publish --registry edge` of the crate in `s/dir` (`--no-verify` unless `verify`).
fn publish(s: &Scratch, dir: &str, token: Option<&str>, verify: bool) -> (bool, String) {
    let mut args = vec!["publish", "--registry", "edge", "--allow-dirty"];
    if !verify {
        args.push("--no-verify");
    }
    let env: Vec<(&str, &str)> = token.map(with_token).into_iter().flatten().collect();
    cargo(s, dir, &args, &env)
}

/// The index lines of `name` served by the Worker, parsed (empty when there is no file).
fn index_lines(w: &Worker, name: &str) -> Vec<Value> {
    let r = request("GET", &format!("{}{}", w.cargo_index(), index_path(name)), None, &[], None);
    if r.status == 404 {
        return Vec::new();
    }
    assert_eq!(r.status, 200, "index file of {name}: {}", r.text());
    r.text().lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn line_of<'a>(lines: &'a [Value], vers: &str) -> &'a Value {
    lines.iter().find(|l| l["vers"] == vers).unwrap_or_else(|| panic!("no {vers} in {lines:?}"))
}

/// The version of `name` that `s/dir/Cargo.lock` pins.
fn locked_version(s: &Scratch, dir: &str, name: &str) -> String {
    let lock = std::fs::read_to_string(s.path().join(dir).join("Cargo.lock")).unwrap();
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == format!("name = \"{name}\"") {
            let v = lines.next().unwrap_or_default();
            return v.trim_start_matches("version = \"").trim_end_matches('"').to_string();
        }
    }
    panic!("{name} is not in the lockfile:\n{lock}")
}

/// The `.crate` file `cargo publish` made of `name@version`, wherever below the scratch target
/// dir this cargo leaves it.
fn published_file(s: &Scratch, name: &str, version: &str) -> Vec<u8> {
    let file = format!("{name}-{version}.crate");
    let mut dirs = vec![s.path().join("target")];
    let mut seen = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if entry.file_name().to_string_lossy() == file {
                return std::fs::read(path).unwrap();
            } else {
                seen.push(path);
            }
        }
    }
    panic!("cargo publish left no {file}: {seen:?}")
}

#[test]
fn cargo_publishes_with_a_token_only_and_a_dependent_project_builds_with_renamed_features() {
    let w = worker();
    let token = w.cargo_token("cargo-alice", json!({}));
    let readonly = w.cargo_token("cargo-reader", json!({"readonly": true}));
    let s = scratch(w);
    let features = "[features]\ndefault = []\nextra = []\n";
    let extra = "#[cfg(feature = \"extra\")]\npub const EXTRA: bool = true;\n#[cfg(not(feature = \"extra\"))]\npub const EXTRA: bool = false;";
    write_crate(&s, "base01", "e2e-base", "0.1.0", features, extra);

    // config.json names the download and API roots under the public URL (the Cargo book,
    // "Registry Index", Index configuration).
    let config = request("GET", &format!("{}config.json", w.cargo_index()), None, &[], None);
    assert_eq!(config.status, 200, "{}", config.text());
    assert_eq!(config.json()["dl"], format!("{}/cargo/api/v1/crates", w.url), "{}", config.text());
    assert_eq!(config.json()["api"], format!("{}/cargo", w.url), "{}", config.text());
    assert!(config.json().get("auth-required").is_none_or(|a| a == &json!(false)), "anonymous reads are on: {}", config.text());

    // Without a token: cargo refuses before sending anything.
    let none = publish(&s, "base01", None, false);
    assert!(!none.0 && none.1.contains("token"), "{}", none.1);
    assert!(index_lines(w, "e2e-base").is_empty(), "nothing was published");

    // A read-only token: the Worker's 403 detail is what cargo prints.
    let frame = publish_frame(&publish_meta("e2e-base", "0.1.0"), b"not a crate");
    let raw = cargo_call("PUT", &format!("{}/cargo/api/v1/crates/new", w.url), Some(&readonly), Some(frame));
    assert_cargo_error("read-only token", &raw, 403);
    let detail = raw.json()["errors"][0]["detail"].as_str().unwrap().to_string();
    let denied = publish(&s, "base01", Some(&readonly), false);
    assert!(!denied.0 && denied.1.contains("403") && denied.1.contains(&detail), "cargo prints the detail {detail:?}:\n{}", denied.1);
    assert!(index_lines(w, "e2e-base").is_empty(), "nothing was published");

    ok(publish(&s, "base01", Some(&token), false));
    let base01 = published_file(&s, "e2e-base", "0.1.0");
    write_crate(&s, "base02", "e2e-base", "0.2.0", features, extra);
    ok(publish(&s, "base02", Some(&token), false));
    let lines = index_lines(w, "e2e-base");
    assert_eq!(lines.len(), 2, "{lines:?}");
    let l01 = line_of(&lines, "0.1.0");
    assert_eq!(l01["cksum"], sha256_hex(&base01), "{l01}");
    assert_eq!(l01["yanked"], false);
    let features_of = |l: &Value| {
        let mut all = l["features"].as_object().cloned().unwrap_or_default();
        all.extend(l["features2"].as_object().cloned().unwrap_or_default());
        all
    };
    assert_eq!(features_of(l01).get("extra"), Some(&json!([])), "{l01}");
    let dl = request("GET", &format!("{}/cargo/api/v1/crates/e2e-base/0.1.0/download", w.url), None, &[], None);
    assert_eq!((dl.status, dl.body == base01), (200, true), "the download is the file published");

    // The same version again: cargo sees it in the index; sent raw, the Worker refuses it.
    let again = publish(&s, "base01", Some(&token), false);
    assert!(!again.0 && again.1.contains("already"), "{}", again.1);
    let raw = cargo_call("PUT", &format!("{}/cargo/api/v1/crates/new", w.url), Some(&token), Some(publish_frame(&publish_meta("e2e-base", "0.1.0"), &base01)));
    assert!((400..500).contains(&raw.status), "a repeated version: {}", raw.text());
    assert_cargo_error("a repeated version", &raw, raw.status);
    assert_eq!(index_lines(w, "e2e-base").len(), 2);

    // A crate with a renamed dependency and features, verified by cargo (built against the
    // registry) before it is published.
    write_crate(
        &s,
        "mid",
        "e2e-mid",
        "1.0.0",
        "[dependencies]\nbase = { package = \"e2e-base\", version = \"0.1\", registry = \"edge\", features = [\"extra\"] }\n\n\
         [features]\nloud = []\n",
        "pub fn base() -> (&'static str, bool) { (base::VERSION, base::EXTRA) }",
    );
    ok(publish(&s, "mid", Some(&token), true));
    let mid = index_lines(w, "e2e-mid");
    let dep = &line_of(&mid, "1.0.0")["deps"][0];
    assert_eq!((&dep["name"], &dep["package"]), (&json!("base"), &json!("e2e-base")), "{dep}");
    assert_eq!((&dep["req"], &dep["features"], &dep["kind"]), (&json!("^0.1"), &json!(["extra"]), &json!("normal")), "{dep}");
    assert!(dep.get("registry").is_none_or(Value::is_null), "a dependency on this registry: {dep}");
    assert_eq!(features_of(line_of(&mid, "1.0.0")).get("loud"), Some(&json!([])));

    // A project depending on it builds in a fresh CARGO_HOME, everything from the Worker.
    let app = scratch(w);
    write_app(&app, "app", "e2e-mid = { version = \"1\", registry = \"edge\" }", "let (v, extra) = e2e_mid::base();\nprintln!(\"{} {v} {extra}\", e2e_mid::VERSION);");
    let out = ok(cargo(&app, "app", &["run", "--quiet"], &[]));
    assert!(out.lines().any(|l| l == "1.0.0 0.1.0 true"), "e2e-mid 1.0.0 with e2e-base 0.1.0 and its feature: {out}");
    assert_eq!(locked_version(&app, "app", "e2e-base"), "0.1.0");

    // Index files: ETag and 304 (the Cargo book, "Registry Index", Sparse protocol caching).
    let url = format!("{}{}", w.cargo_index(), index_path("e2e-base"));
    let first = request("GET", &url, None, &[], None);
    let etag = first.header("etag").unwrap_or_else(|| panic!("no ETag: {:?}", first.headers)).to_string();
    assert!(first.header("content-type").unwrap_or_default().starts_with("text/plain"), "{:?}", first.headers);
    assert_eq!(request("GET", &url, None, &[("if-none-match", &etag)], None).status, 304);
    assert_eq!(request("GET", &format!("{}{}", w.cargo_index(), index_path("e2e-never-published")), None, &[], None).status, 404);
}

#[test]
fn a_yanked_version_is_skipped_by_new_resolutions_but_a_lockfile_pinning_it_still_builds() {
    let w = worker();
    let token = w.cargo_token("cargo-yanker", json!({}));
    let stranger = w.cargo_token("cargo-stranger", json!({}));
    let s = scratch(w);
    for v in ["1.0.0", "1.1.0"] {
        write_crate(&s, &format!("y{v}"), "e2e-yank", v, "", "");
        ok(publish(&s, &format!("y{v}"), Some(&token), false));
    }
    let deps = "e2e-yank = { version = \"1\", registry = \"edge\" }";
    let main = "println!(\"{}\", e2e_yank::VERSION);";
    write_app(&s, "before", deps, main);
    ok(cargo(&s, "before", &["generate-lockfile"], &[]));
    assert_eq!(locked_version(&s, "before", "e2e-yank"), "1.1.0");

    let yank = ["yank", "--registry", "edge", "--version", "1.1.0", "e2e-yank"];
    let refused = cargo(&s, ".", &yank, &with_token(&stranger));
    assert!(!refused.0 && refused.1.contains("403"), "another user's crate:\n{}", refused.1);
    assert_eq!(line_of(&index_lines(w, "e2e-yank"), "1.1.0")["yanked"], false);
    ok(cargo(&s, ".", &yank, &with_token(&token)));
    assert_eq!(line_of(&index_lines(w, "e2e-yank"), "1.1.0")["yanked"], true);
    assert_eq!(line_of(&index_lines(w, "e2e-yank"), "1.0.0")["yanked"], false);

    // A new resolution takes 1.0.0; the lockfile pinning 1.1.0 builds in a fresh CARGO_HOME.
    write_app(&s, "during", deps, main);
    ok(cargo(&s, "during", &["generate-lockfile"], &[]));
    assert_eq!(locked_version(&s, "during", "e2e-yank"), "1.0.0");
    let pinned = scratch(w);
    write_app(&pinned, "before", deps, main);
    std::fs::copy(s.path().join("before/Cargo.lock"), pinned.path().join("before/Cargo.lock")).unwrap();
    let out = ok(cargo(&pinned, "before", &["run", "--quiet", "--locked"], &[]));
    assert!(out.lines().any(|l| l == "1.1.0"), "the yanked version pinned by the lockfile: {out}");

    // Unyanked: `cargo update` moves to it again.
    ok(cargo(&s, ".", &["yank", "--undo", "--registry", "edge", "--version", "1.1.0", "e2e-yank"], &with_token(&token)));
    assert_eq!(line_of(&index_lines(w, "e2e-yank"), "1.1.0")["yanked"], false);
    ok(cargo(&s, "during", &["update"], &[]));
    assert_eq!(locked_version(&s, "during", "e2e-yank"), "1.1.0");

    // Raw: yank answers `{"ok":true}`; without a token, 401 in the error shape.
    let url = format!("{}/cargo/api/v1/crates/e2e-yank/1.0.0/yank", w.url);
    assert_cargo_error("yank without a token", &cargo_call("DELETE", &url, None, None), 401);
    let r = cargo_call("DELETE", &url, Some(&token), None);
    assert_eq!((r.status, r.json()["ok"].clone()), (200, json!(true)), "{}", r.text());
    let r = cargo_call("PUT", &format!("{}/cargo/api/v1/crates/e2e-yank/1.0.0/unyank", w.url), Some(&token), None);
    assert_eq!((r.status, r.json()["ok"].clone()), (200, json!(true)), "{}", r.text());
    assert_eq!(line_of(&index_lines(w, "e2e-yank"), "1.0.0")["yanked"], false);
}

#[test]
fn cargo_search_and_cargo_owner() {
    let w = worker();
    let token = w.cargo_token("cargo-owner", json!({}));
    let friend = w.cargo_token("cargo-friend", json!({}));
    let s = scratch(w);
    for (name, v) in [("e2e-search-alpha", "1.0.0"), ("e2e-search-alpha", "1.2.0"), ("e2e-search-beta", "0.3.0")] {
        write_crate(&s, &format!("{name}-{v}"), name, v, "", "");
        ok(publish(&s, &format!("{name}-{v}"), Some(&token), false));
    }

    let out = ok(cargo(&s, ".", &["search", "--registry", "edge", "e2e-search"], &[]));
    assert!(out.contains("e2e-search-alpha = \"1.2.0\"") && out.contains("edgeregistry e2e fixture e2e-search-alpha"), "{out}");
    assert!(out.contains("e2e-search-beta = \"0.3.0\""), "{out}");
    let one = ok(cargo(&s, ".", &["search", "--registry", "edge", "--limit", "1", "e2e-search"], &[]));
    assert_eq!(one.lines().filter(|l| l.starts_with("e2e-search-")).count(), 1, "{one}");
    assert!(one.contains("1 crates more"), "cargo tells of the other match (meta.total): {one}");
    let raw = cargo_call("GET", &format!("{}/cargo/api/v1/crates?q=e2e-search&per_page=10", w.url), None, None);
    assert_eq!(raw.status, 200, "{}", raw.text());
    let doc = raw.json();
    assert_eq!(doc["meta"]["total"], 2, "{doc}");
    let alpha = doc["crates"].as_array().unwrap().iter().find(|c| c["name"] == "e2e-search-alpha").unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(alpha["max_version"], "1.2.0", "{doc}");
    let nothing = ok(cargo(&s, ".", &["search", "--registry", "edge", "e2e-no-such-crate-anywhere"], &[]));
    assert!(!nothing.contains("e2e-search"), "{nothing}");

    let list = ok(cargo(&s, ".", &["owner", "--registry", "edge", "--list", "e2e-search-alpha"], &with_token(&token)));
    assert!(list.contains("cargo-owner"), "the publisher owns the crate:\n{list}");
    // An owner added may publish; removed, may not.
    ok(cargo(&s, ".", &["owner", "--registry", "edge", "--add", "cargo-friend", "e2e-search-alpha"], &with_token(&token)));
    let list = ok(cargo(&s, ".", &["owner", "--registry", "edge", "--list", "e2e-search-alpha"], &with_token(&token)));
    assert!(list.contains("cargo-owner") && list.contains("cargo-friend"), "{list}");
    write_crate(&s, "alpha-1.3.0", "e2e-search-alpha", "1.3.0", "", "");
    ok(publish(&s, "alpha-1.3.0", Some(&friend), false));
    ok(cargo(&s, ".", &["owner", "--registry", "edge", "--remove", "cargo-friend", "e2e-search-alpha"], &with_token(&token)));
    let list = ok(cargo(&s, ".", &["owner", "--registry", "edge", "--list", "e2e-search-alpha"], &with_token(&token)));
    assert!(list.contains("cargo-owner") && !list.contains("cargo-friend"), "{list}");
    write_crate(&s, "alpha-1.4.0", "e2e-search-alpha", "1.4.0", "", "");
    let denied = publish(&s, "alpha-1.4.0", Some(&friend), false);
    assert!(!denied.0 && denied.1.contains("403"), "a former owner publishes no more:\n{}", denied.1);
    // Someone who owns nothing changes nothing.
    let refused = cargo(&s, ".", &["owner", "--registry", "edge", "--add", "cargo-friend", "e2e-search-beta"], &with_token(&friend));
    assert!(!refused.0 && refused.1.contains("403"), "{}", refused.1);
    let raw = cargo_call("GET", &format!("{}/cargo/api/v1/crates/e2e-search-alpha/owners", w.url), Some(&token), None);
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert!(raw.json()["users"].as_array().unwrap().iter().any(|u| u["login"] == "cargo-owner"), "{}", raw.text());
}

#[test]
fn auth_required_registries_read_with_a_token_and_refuse_without() {
    let w = Worker::start(&[("ANONYMOUS_READ", "none")]);
    let token = w.cargo_token("cargo-private", json!({}));
    let provider = ("CARGO_REGISTRIES_EDGE_CREDENTIAL_PROVIDER", "cargo:token");
    let s = scratch(&w);

    let config = cargo_call("GET", &format!("{}config.json", w.cargo_index()), Some(&token), None);
    assert_eq!(config.status, 200, "{}", config.text());
    assert_eq!(config.json()["auth-required"], true, "{}", config.text());
    assert_cargo_error("an index file without a token", &cargo_call("GET", &format!("{}{}", w.cargo_index(), index_path("e2e-private")), None, None), 401);

    write_crate(&s, "private", "e2e-private", "0.4.2", "", "");
    ok(cargo(&s, "private", &["publish", "--registry", "edge", "--allow-dirty", "--no-verify"], &[with_token(&token)[0], provider]));
    let app = scratch(&w);
    write_app(&app, "app", "e2e-private = { version = \"0.4\", registry = \"edge\" }", "println!(\"{}\", e2e_private::VERSION);");
    let denied = cargo(&app, "app", &["fetch"], &[provider]);
    assert!(!denied.0 && denied.1.contains("token"), "without a token cargo says it needs one:\n{}", denied.1);
    ok(cargo(&app, "app", &["fetch"], &[with_token(&token)[0], provider]));
    let out = ok(cargo(&app, "app", &["run", "--quiet", "--offline"], &[]));
    assert!(out.lines().any(|l| l == "0.4.2"), "{out}");
}

#[test]
fn twenty_concurrent_publishes_of_one_crate_all_survive() {
    let w = worker();
    let token = w.cargo_token("cargo-many", json!({}));
    let s = scratch(w);
    let files: Vec<Packaged> = (0..20).map(|i| package_crate(&s, &format!("many{i}"), "e2e-many", &format!("1.0.{i}"), "")).collect();
    let url = format!("{}/cargo/api/v1/crates/new", w.url);
    let threads: Vec<_> = files
        .iter()
        .map(|c| {
            let (url, token, body) = (url.clone(), token.clone(), publish_frame(&publish_meta(&c.name, &c.vers), &c.bytes()));
            std::thread::spawn(move || cargo_call("PUT", &url, Some(&token), Some(body)))
        })
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let lines = index_lines(w, "e2e-many");
    for c in &files {
        assert_eq!(line_of(&lines, &c.vers)["cksum"], c.cksum, "{lines:?}");
    }
    assert_eq!(lines.len(), 20);
}

#[test]
fn bad_publishes_get_errors_cargo_can_print_and_store_nothing() {
    let w = Worker::start(&[]);
    let token = w.cargo_token("cargo-bad", json!({}));
    let readonly = w.cargo_token("cargo-bad-reader", json!({"readonly": true}));
    let other = w.cargo_token("cargo-bad-other", json!({}));
    let s = scratch(&w);
    let good = package_crate(&s, "good", "e2e-bad", "1.0.0", "");
    let owned = package_crate(&s, "owned", "e2e-bad-owned", "1.0.0", "");
    let owned2 = package_crate(&s, "owned2", "e2e-bad-owned", "1.0.1", "");
    let url = format!("{}/cargo/api/v1/crates/new", w.url);
    let put = |token: Option<&str>, body: Vec<u8>| cargo_call("PUT", &url, token, Some(body));
    let frame = |name: &str, vers: &str, bytes: &[u8]| publish_frame(&publish_meta(name, vers), bytes);
    let ok_owned = put(Some(&other), frame("e2e-bad-owned", "1.0.0", &owned.bytes()));
    assert_eq!(ok_owned.status, 200, "{}", ok_owned.text());

    let before = stored_objects(&w);
    let refused = |what: &str, r: Resp, status: u16| {
        assert_cargo_error(what, &r, status);
        assert!(index_lines(&w, "e2e-bad").is_empty(), "{what}: nothing was published");
        assert_eq!(index_lines(&w, "e2e-bad-owned").len(), 1, "{what}: nothing was published");
        assert_eq!(settled_objects(&w, before), before, "{what}: nothing was stored");
    };
    let crate_bytes = good.bytes();
    let whole = frame("e2e-bad", "1.0.0", &crate_bytes);

    // "garb" read as the JSON part's length declares ~1.7 GB: over the cap before anything else.
    refused("garbage", put(Some(&token), b"garbage".to_vec()), 413);
    refused("shorter than a length", put(Some(&token), vec![1, 0]), 400);
    refused("an empty body", put(Some(&token), Vec::new()), 400);
    refused("truncated in the .crate", put(Some(&token), whole[..whole.len() - 100].to_vec()), 400);
    refused("truncated in the JSON", put(Some(&token), whole[..20].to_vec()), 400);
    let mut short_json = 1000u32.to_le_bytes().to_vec();
    short_json.extend_from_slice(b"{\"name\":\"e2e-bad\"}");
    refused("a JSON length past the end", put(Some(&token), short_json), 400);
    let mut not_json = 8u32.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"not json");
    not_json.extend_from_slice(&(crate_bytes.len() as u32).to_le_bytes());
    not_json.extend_from_slice(&crate_bytes);
    refused("metadata that is not JSON", put(Some(&token), not_json), 400);
    for vers in ["1.0", "not-a-version", "01.0.0", "1.0.0-", ""] {
        refused(&format!("invalid version {vers:?}"), put(Some(&token), frame("e2e-bad", vers, &crate_bytes)), 400);
    }
    for name in ["../e2e-bad", "e2e/../bad", "..", "e2e\\bad", "-e2e-bad", "e2e bad", "", "e2e-bad/1.0.0"] {
        refused(&format!("name {name:?}"), put(Some(&token), frame(name, "1.0.0", &crate_bytes)), 400);
    }
    refused("no token", put(None, whole.clone()), 401);
    refused("an unknown token", put(Some("not-a-token-at-all"), whole.clone()), 401);
    refused("a read-only token", put(Some(&readonly), whole.clone()), 403);
    refused("another user's crate", put(Some(&token), frame("e2e-bad-owned", "1.0.1", &owned2.bytes())), 403);
    // A well-formed frame whose .crate is over any upload limit (crates.io's is 10 MB).
    let length = (100 << 20) + 1;
    let meta = serde_json::to_vec(&publish_meta("e2e-bad", "1.0.0")).unwrap();
    let mut head = (meta.len() as u32).to_le_bytes().to_vec();
    head.extend_from_slice(&meta);
    head.extend_from_slice(&((length - 8 - meta.len()) as u32).to_le_bytes());
    let auth = token.clone();
    refused("oversize", send_declared(&w, "PUT", "/cargo/api/v1/crates/new", &[("Authorization", &auth)], &head, length), 413);
    for path in ["/cargo/api/v1/crates/..%2f..%2fe2e-bad/1.0.0/download", "/cargo/api/v1/crates/e2e-bad/..%2f1.0.0/download"] {
        let r = cargo_call("GET", &format!("{}{path}", w.url), Some(&token), None);
        assert!((400..500).contains(&r.status), "{path}: {}", r.text());
    }

    // The .crate must be the crate the JSON describes (its `{name}-{version}/Cargo.toml`), as
    // crates.io checks: else one could publish any bytes under any name.
    refused("a .crate that is not a gzipped tarball", put(Some(&token), frame("e2e-bad", "1.0.0", b"plain bytes, not gzip")), 400);
    refused("the JSON names another crate than the .crate", put(Some(&token), frame("e2e-bad-other", "1.0.0", &crate_bytes)), 400);
    refused("the JSON has another version than the .crate", put(Some(&token), frame("e2e-bad", "1.0.1", &crate_bytes)), 400);

    // Then the good frame publishes, and once only.
    let r = put(Some(&token), whole.clone());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(line_of(&index_lines(&w, "e2e-bad"), "1.0.0")["cksum"], good.cksum);
    let stored = stored_objects(&w);
    let again = put(Some(&token), whole);
    assert!((400..500).contains(&again.status), "{}", again.text());
    assert_cargo_error("a repeated version", &again, again.status);
    assert_eq!(settled_objects(&w, stored), stored, "nothing more was stored");
    assert_eq!(index_lines(&w, "e2e-bad").len(), 1);
}
