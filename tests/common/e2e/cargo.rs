//! cargo against a sparse registry: every run in a scratch directory with its own CARGO_HOME
//! (its `config.toml` names the registries), its own target dir and none of the machine's cargo
//! settings; test crates written and packaged at test time (`cargo package`, no network);
//! publish frames and raw Web API calls for the bad-input tests; and two local origins for
//! the pull-through tests: a static sparse-registry tree served by `python3 -m http.server`,
//! and a forwarding proxy to crates.io (tests/common/e2e/forward.py) that can be
//! stopped. The Cargo book's "Registries", "Registry Index" and "Registry Web API" chapters
//! describe what is served and sent.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::upstreams::{Forwarder, Service};
use super::*;

/// The cargo running these tests (the same toolchain builds the scratch projects).
pub fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("cargo"))
}

/// The rustc next to that cargo, so the rustup proxies and their settings are not involved.
fn rustc_bin() -> PathBuf {
    let beside = cargo_bin().with_file_name("rustc");
    if beside.exists() {
        beside
    } else {
        PathBuf::from("rustc")
    }
}

/// The scratch CARGO_HOME of `s` (its `config.toml` is cargo's user configuration).
pub fn cargo_home(s: &Scratch) -> PathBuf {
    s.path().join("cargo-home")
}

/// Writes `CARGO_HOME/config.toml` of `s`.
pub fn cargo_config(s: &Scratch, toml: &str) {
    s.write("cargo-home/config.toml", toml);
}

/// A registry named `edge` at the sparse index `index` (`http://…/cargo/`), for `--registry edge`
/// and `registry = "edge"` dependencies (the Cargo book, "Registries").
pub fn hosted_config(index: &str) -> String {
    format!("[registries.edge]\nindex = \"sparse+{index}\"\n")
}

/// crates.io replaced by the sparse registry `index` (the Cargo book, "Source Replacement").
pub fn mirror_config(index: &str) -> String {
    format!("[source.crates-io]\nreplace-with = \"edge\"\n\n[source.edge]\nregistry = \"sparse+{index}\"\n")
}

/// Runs cargo in `s/cwd` with CARGO_HOME and the target dir inside the scratch dir, the
/// environment's `CARGO_*` and rustc settings removed; `env` adds variables
/// (`CARGO_REGISTRIES_EDGE_TOKEN`, …).
pub fn cargo(s: &Scratch, cwd: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let dir = s.path().join(cwd);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(cargo_home(s)).unwrap();
    let program = cargo_bin();
    let mut cmd = Command::new(&program);
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") || ["RUSTC", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "RUSTFLAGS", "RUSTDOCFLAGS"].contains(&k.as_str()) {
            cmd.env_remove(&k);
        }
    }
    cmd.args(args)
        .current_dir(&dir)
        .env("CARGO_HOME", cargo_home(s))
        .env("CARGO_TARGET_DIR", s.path().join("target"))
        .env("RUSTC", rustc_bin())
        .env("CARGO_TERM_COLOR", "never")
        .env("CARGO_TERM_PROGRESS_WHEN", "never")
        .env("CARGO_INCREMENTAL", "0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    transcript(&program, args, &cmd.output().unwrap_or_else(|e| panic!("spawn {}: {e}", program.display())))
}

/// Writes a library crate to `s/dir`: `pub const VERSION` is `version`, `NAME` is `name`;
/// `extra` is appended to the manifest (`[dependencies]`, `[features]`, …) and `lib` to
/// src/lib.rs.
pub fn write_crate(s: &Scratch, dir: &str, name: &str, version: &str, extra: &str, lib: &str) {
    s.write(
        &format!("{dir}/Cargo.toml"),
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n\
             description = \"edgeregistry e2e fixture {name}\"\nlicense = \"MIT\"\n\n{extra}\n"
        ),
    );
    s.write(&format!("{dir}/src/lib.rs"), &format!("pub const NAME: &str = {name:?};\npub const VERSION: &str = {version:?};\n{lib}\n"));
}

/// A binary crate `s/dir` (never published) whose `main` prints `body`'s output; `deps` is its
/// `[dependencies]` table.
pub fn write_app(s: &Scratch, dir: &str, deps: &str, main: &str) {
    s.write(&format!("{dir}/Cargo.toml"), &format!("[package]\nname = \"e2e-app\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{deps}\n"));
    s.write(&format!("{dir}/src/main.rs"), &format!("fn main() {{\n{main}\n}}\n"));
}

/// A `.crate` made by `cargo package` and what an index line says of it.
#[derive(Clone, Debug)]
pub struct Packaged {
    pub name: String,
    pub vers: String,
    /// The file's bytes (kept: the scratch dir it was made in may be gone).
    pub data: Vec<u8>,
    /// sha256 of the file, hex (the index's `cksum`).
    pub cksum: String,
}

impl Packaged {
    pub fn bytes(&self) -> Vec<u8> {
        self.data.clone()
    }
}

/// Packages a dependency-free crate (see [`write_crate`]) with `cargo package`, offline.
pub fn package_crate(s: &Scratch, dir: &str, name: &str, version: &str, lib: &str) -> Packaged {
    write_crate(s, dir, name, version, "", lib);
    ok(cargo(s, dir, &["package", "--offline", "--no-verify", "--allow-dirty", "--quiet"], &[]));
    let path = s.path().join("target/package").join(format!("{name}-{version}.crate"));
    assert!(path.exists(), "cargo package made no {}", path.display());
    let data = std::fs::read(&path).unwrap();
    Packaged { name: name.into(), vers: version.into(), cksum: sha256_hex(&data), data }
}

/// The index file of a crate under the index root (the Cargo book, "Registry Index", Index
/// files): lower-case name; `1/`, `2/`, `3/{c}/`, else `{n0n1}/{n2n3}/`.
pub fn index_path(name: &str) -> String {
    let n = name.to_lowercase();
    match n.len() {
        1 => format!("1/{n}"),
        2 => format!("2/{n}"),
        3 => format!("3/{}/{n}", &n[..1]),
        _ => format!("{}/{}/{n}", &n[..2], &n[2..4]),
    }
}

/// The index line of a dependency-free crate (the Cargo book, "Registry Index", JSON schema).
pub fn index_line(c: &Packaged) -> Value {
    json!({"name": c.name, "vers": c.vers, "deps": [], "cksum": c.cksum, "features": {}, "yanked": false})
}

/// A static sparse registry on 127.0.0.1: `config.json`, index files and `.crate` files in a
/// folder served by `python3 -m http.server` (Last-Modified and 304s included). Downloads use
/// the `{crate}` and `{version}` markers of `dl`, so a mirror must honour them.
pub struct StaticRegistry(pub Service);

impl StaticRegistry {
    pub fn start(crates: &[Packaged]) -> StaticRegistry {
        let crates = crates.to_vec();
        let command = "exec python3 -u -m http.server --bind 127.0.0.1 --directory tree $PORT";
        StaticRegistry(Service::start("static sparse registry", command, "/config.json", move |dir, port| {
            let tree = dir.join("tree");
            let dl = format!("http://127.0.0.1:{port}/crates/{{crate}}/{{crate}}-{{version}}.crate");
            std::fs::create_dir_all(&tree).unwrap();
            std::fs::write(tree.join("config.json"), json!({"dl": dl}).to_string()).unwrap();
            let mut lines: std::collections::BTreeMap<String, String> = Default::default();
            for c in &crates {
                lines.entry(index_path(&c.name)).or_default().push_str(&format!("{}\n", index_line(c)));
                let file = tree.join(format!("crates/{}/{}-{}.crate", c.name, c.name, c.vers));
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, &c.data).unwrap();
            }
            for (path, text) in lines {
                let file = tree.join(path);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, text).unwrap();
            }
        }))
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// Requests it answered whose log line contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        let log = std::fs::read_to_string(self.0.dir.path().join("service.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains("\"GET ") && l.contains(needle)).count()
    }
}

/// A forwarding proxy to crates.io (tests/common/e2e/forward.py): its sparse index is
/// `{url}/`, whose `config.json` sends downloads through it too; it logs every request, each
/// `.crate` download as a line starting `DOWNLOAD `.
pub struct PublicCrates;

impl PublicCrates {
    pub fn start() -> Forwarder {
        Forwarder::start("cargo", "/config.json")
    }
}

/// `CARGO_UPSTREAMS` naming one upstream whose sparse index is `index_url`, with short TTLs so
/// a test sees index files go stale.
pub fn cargo_upstreams(index_url: &str, ttl_seconds: u64) -> String {
    json!({
        "upstreams": [{"id": "origin", "url": index_url.trim_end_matches('/'),
                        "resilience": {"timeoutMs": 3000, "maxRetries": 1, "retryDelayMs": 100, "retryMaxDelayMs": 1000}}],
        "cache": {"defaultTtlSeconds": ttl_seconds, "staleMaxAgeSeconds": ttl_seconds, "negativeCacheTtlSeconds": ttl_seconds}
    })
    .to_string()
}

/// A project in `s/dir` with this repository's manifest dependencies and Cargo.lock and an
/// empty library: `cargo fetch --locked` there fetches the crates this project builds with.
/// Only the package, dependency and feature tables are kept (no test or bench targets).
pub fn lockfile_project(s: &Scratch, dir: &str) -> usize {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut kept = String::new();
    let mut keep = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            let table = line.trim_start_matches('[').trim_end_matches(']');
            keep = table == "package" || table == "features" || table.ends_with("dependencies");
        }
        if keep {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    s.write(&format!("{dir}/Cargo.toml"), &kept);
    s.write(&format!("{dir}/src/lib.rs"), "");
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    s.write(&format!("{dir}/Cargo.lock"), &lock);
    lock.lines().filter(|l| l.starts_with("source = \"registry+")).count()
}

/// The `.crate` files cargo downloaded into the scratch CARGO_HOME.
pub fn downloaded_crates(s: &Scratch) -> usize {
    let cache = cargo_home(s).join("registry/cache");
    let mut n = 0;
    for registry in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        n += std::fs::read_dir(registry.path()).into_iter().flatten().flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".crate")).count();
    }
    n
}

impl Worker {
    /// The Worker's sparse index root, `…/cargo/`.
    pub fn cargo_index(&self) -> String {
        format!("{}/cargo/", self.url)
    }

    /// A user (password `{name}-password`) and a Cargo token for it (`extra` adds fields such
    /// as `readonly` or `scopes`).
    pub fn cargo_token(&self, name: &str, extra: Value) -> String {
        self.user_with_token(name, merged(json!({"protocol": "cargo"}), extra))
    }
}

/// A Web API call with the token raw in `Authorization`, as cargo sends it (the Cargo book,
/// "Registry Web API", Authentication).
pub fn cargo_call(method: &str, url: &str, token: Option<&str>, body: Option<Vec<u8>>) -> Resp {
    let mut headers = vec![("accept", "application/json")];
    if let Some(t) = token {
        headers.push(("authorization", t));
    }
    request(method, url, None, &headers, body)
}

/// The body of `PUT /api/v1/crates/new`: a 32-bit little-endian length and the JSON metadata,
/// then a 32-bit little-endian length and the `.crate` file (the Cargo book, "Registry Web
/// API", Publish).
pub fn publish_frame(meta: &Value, crate_bytes: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(meta).unwrap();
    let mut out = Vec::with_capacity(8 + json.len() + crate_bytes.len());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&(crate_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(crate_bytes);
    out
}

/// Publish metadata as cargo sends it for a dependency-free crate.
pub fn publish_meta(name: &str, version: &str) -> Value {
    json!({
        "name": name, "vers": version, "deps": [], "features": {}, "authors": [],
        "description": "edgeregistry e2e fixture", "documentation": null, "homepage": null,
        "readme": null, "readme_file": null, "keywords": [], "categories": [], "license": "MIT",
        "license_file": null, "repository": null, "badges": {}, "links": null, "rust_version": null
    })
}

/// Asserts a Web API error: the status and `{"errors":[{"detail": "…"}]}` with a detail cargo
/// can print.
pub fn assert_cargo_error(what: &str, r: &Resp, status: u16) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let doc: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{what}: the error is not JSON ({e}): {}", r.text()));
    let detail = doc["errors"][0]["detail"].as_str().unwrap_or_default();
    assert!(!detail.trim().is_empty(), "{what}: no errors[0].detail: {}", r.text());
}
