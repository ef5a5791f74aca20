//! npm, pnpm, yarn 1 and yarn 4 against the Worker running in workerd, over real HTTP.

mod common;

use std::sync::OnceLock;

use serde_json::{json, Value};
use common::e2e::*;

/// Bodies over 4 MiB are refused, so the 413 test need not send much.
const MAX_BODY: &str = "4194304";

fn worker() -> &'static Worker {
    static W: OnceLock<Worker> = OnceLock::new();
    W.get_or_init(|| Worker::start(&[("MAX_BODY_BYTES", MAX_BODY)]))
}

/// A project folder whose `.npmrc` points npm/pnpm/yarn 1 at the Worker with `token`.
fn project(s: &Scratch, dir: &str, token: Option<&str>) {
    let w = worker();
    let mut npmrc = format!("registry={}\n", w.npm_registry());
    if let Some(t) = token {
        npmrc.push_str(&format!("//127.0.0.1:{}/npm/:_authToken={t}\n", w.port));
    }
    s.write(&format!("{dir}/.npmrc"), &npmrc);
}

fn package(s: &Scratch, dir: &str, manifest: Value) {
    s.write(&format!("{dir}/package.json"), &manifest.to_string());
    s.write(&format!("{dir}/index.js"), &format!("module.exports = {:?};\n", manifest["version"].as_str().unwrap()));
}


fn packument(name: &str) -> Resp {
    request("GET", &format!("{}{}", worker().npm_registry(), name.replacen('/', "%2f", 1)), None, &[], None)
}

fn publish_version(s: &Scratch, dir: &str, token: &str, name: &str, version: &str, extra: &[&str]) {
    project(s, dir, Some(token));
    package(s, dir, json!({"name": name, "version": version, "description": "e2e", "main": "index.js"}));
    let mut args = vec!["publish"];
    args.extend_from_slice(extra);
    ok(s.run(dir, &npm(), &args, None));
}

#[test]
fn npm_publishes_views_and_installs_scoped_and_unscoped_packages() {
    let w = worker();
    let token = w.user_with_token("pub-alice", json!({}));
    let s = Scratch::new();
    publish_version(&s, "a1", &token, "e2e-hello", "1.0.0", &[]);
    publish_version(&s, "a2", &token, "e2e-hello", "1.1.0", &[]);
    publish_version(&s, "b1", &token, "@e2e/scoped", "0.3.0", &[]);

    let view = ok(s.run("a1", &npm(), &["view", "e2e-hello", "versions", "--json"], None));
    assert!(view.contains("\"1.0.0\"") && view.contains("\"1.1.0\""), "{view}");
    let view = ok(s.run("a1", &npm(), &["view", "@e2e/scoped", "dist.tarball"], None));
    assert!(view.contains(&format!("{}@e2e/scoped/-/scoped-0.3.0.tgz", w.npm_registry())), "{view}");

    project(&s, "app", None);
    s.write("app/package.json", r#"{"name":"app","version":"1.0.0","private":true}"#);
    ok(s.run("app", &npm(), &["install", "e2e-hello@^1", "@e2e/scoped"], None));
    let installed: Value = serde_json::from_str(&std::fs::read_to_string(s.path().join("app/node_modules/e2e-hello/package.json")).unwrap()).unwrap();
    assert_eq!(installed["version"], "1.1.0");
    assert!(s.path().join("app/node_modules/@e2e/scoped/index.js").exists());
    let lock = std::fs::read_to_string(s.path().join("app/package-lock.json")).unwrap();
    assert!(lock.contains(&format!("{}e2e-hello/-/e2e-hello-1.1.0.tgz", w.npm_registry())), "{lock}");

    // The tarball answers HEAD with its length and GET with the published bytes.
    let url = format!("{}e2e-hello/-/e2e-hello-1.1.0.tgz", w.npm_registry());
    let head = request("HEAD", &url, None, &[("accept-encoding", "gzip")], None);
    assert_eq!(head.status, 200);
    let get = request("GET", &url, None, &[("accept-encoding", "gzip")], None);
    assert_eq!(head.header("content-length").unwrap(), get.body.len().to_string());
    assert_eq!(&get.body[..2], &[0x1f, 0x8b]);
}

#[test]
fn abbreviated_packument_and_revalidation() {
    let w = worker();
    let token = w.user_with_token("abbr-user", json!({}));
    let s = Scratch::new();
    publish_version(&s, "p", &token, "e2e-abbr", "1.0.0", &[]);
    let r = request("GET", &format!("{}e2e-abbr", w.npm_registry()), None, &[("accept", "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*")], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/vnd.npm.install-v1+json"));
    let doc = r.json();
    assert!(doc["modified"].is_string());
    assert!(doc["versions"]["1.0.0"]["dist"]["integrity"].as_str().unwrap().starts_with("sha512-"));
    assert!(doc.get("time").is_none(), "abbreviated documents carry no time map");
    let etag = r.header("etag").unwrap().to_string();
    let again = request("GET", &format!("{}e2e-abbr", w.npm_registry()), None, &[("accept", "application/vnd.npm.install-v1+json"), ("if-none-match", &etag)], None);
    assert_eq!(again.status, 304);
}

#[test]
fn npm_dist_tags_add_list_remove_and_install_by_tag() {
    let w = worker();
    let token = w.user_with_token("tag-user", json!({}));
    let s = Scratch::new();
    publish_version(&s, "v1", &token, "e2e-tags", "1.0.0", &[]);
    publish_version(&s, "v2", &token, "e2e-tags", "2.0.0-beta.1", &["--tag", "next"]);
    let ls = ok(s.run("v1", &npm(), &["dist-tag", "ls", "e2e-tags"], None));
    assert!(ls.contains("latest: 1.0.0") && ls.contains("next: 2.0.0-beta.1"), "{ls}");
    ok(s.run("v1", &npm(), &["dist-tag", "add", "e2e-tags@1.0.0", "stable"], None));
    assert!(ok(s.run("v1", &npm(), &["dist-tag", "ls", "e2e-tags"], None)).contains("stable: 1.0.0"));
    ok(s.run("v1", &npm(), &["dist-tag", "rm", "e2e-tags", "stable"], None));
    assert!(!ok(s.run("v1", &npm(), &["dist-tag", "ls", "e2e-tags"], None)).contains("stable"));
    // `latest` is protected.
    let r = request("DELETE", &format!("{}-/package/e2e-tags/dist-tags/latest", w.npm_registry()), Some(&token), &[], None);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());

    project(&s, "app", None);
    s.write("app/package.json", r#"{"name":"app","version":"1.0.0","private":true}"#);
    ok(s.run("app", &npm(), &["install", "e2e-tags@next"], None));
    assert!(std::fs::read_to_string(s.path().join("app/node_modules/e2e-tags/package.json")).unwrap().contains("2.0.0-beta.1"));
}

#[test]
fn npm_deprecate_and_undeprecate() {
    let w = worker();
    let token = w.user_with_token("dep-user", json!({}));
    let s = Scratch::new();
    publish_version(&s, "p", &token, "e2e-dep", "1.0.0", &[]);
    ok(s.run("p", &npm(), &["deprecate", "e2e-dep@1.0.0", "use something else"], None));
    assert_eq!(packument("e2e-dep").json()["versions"]["1.0.0"]["deprecated"], "use something else");
    project(&s, "app", None);
    s.write("app/package.json", r#"{"name":"app","version":"1.0.0","private":true}"#);
    let out = ok(s.run("app", &npm(), &["install", "e2e-dep"], None));
    assert!(out.contains("deprecated"), "npm warns about the deprecation: {out}");
    ok(s.run("p", &npm(), &["deprecate", "e2e-dep@1.0.0", ""], None));
    assert!(packument("e2e-dep").json()["versions"]["1.0.0"].get("deprecated").is_none());
}

#[test]
fn npm_unpublish_a_version_then_the_package() {
    let w = worker();
    let token = w.user_with_token("unpub-user", json!({}));
    let s = Scratch::new();
    publish_version(&s, "p1", &token, "e2e-unpub", "1.0.0", &[]);
    publish_version(&s, "p2", &token, "e2e-unpub", "1.1.0", &[]);
    ok(s.run("p1", &npm(), &["unpublish", "e2e-unpub@1.1.0"], None));
    let doc = packument("e2e-unpub").json();
    assert!(doc["versions"].get("1.1.0").is_none());
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    let gone = request("GET", &format!("{}e2e-unpub/-/e2e-unpub-1.1.0.tgz", w.npm_registry()), None, &[], None);
    assert_eq!(gone.status, 404);
    // A version number is never reused.
    project(&s, "p3", Some(&token));
    package(&s, "p3", json!({"name": "e2e-unpub", "version": "1.1.0"}));
    let (success, out) = s.run("p3", &npm(), &["publish"], None);
    assert!(!success && out.contains("403"), "{out}");

    ok(s.run("p1", &npm(), &["unpublish", "e2e-unpub", "--force"], None));
    assert_eq!(packument("e2e-unpub").status, 404);
    let gone = request("GET", &format!("{}e2e-unpub/-/e2e-unpub-1.0.0.tgz", w.npm_registry()), None, &[], None);
    assert_eq!(gone.status, 404);
}

/// `npm login` reads its prompts from a terminal only, so a pty answers them.
fn npm_login(s: &Scratch, dir: &str, registry: &str, user: &str, password: &str) -> (bool, String) {
    let driver = root().join("tests/common/e2e/answer_prompts.py");
    let (user, password) = (format!("Username:={user}"), format!("Password:={password}"));
    let args = [driver.to_str().unwrap(), &user, &password, "--", "npm", "login", "--auth-type=legacy", "--registry", registry];
    s.run(dir, std::path::Path::new("python3"), &args, None)
}

#[test]
fn npm_login_whoami_and_tokens() {
    let w = worker();
    w.user_with_token("login-bob", json!({}));
    let s = Scratch::new();
    let registry = w.npm_registry();
    let out = ok(npm_login(&s, ".", &registry, "login-bob", "login-bob-password"));
    assert!(out.contains("Logged in") || out.contains("login-bob"), "{out}");
    let whoami = ok(s.run(".", &npm(), &["whoami", "--registry", &registry], None));
    assert!(whoami.contains("login-bob"), "{whoami}");

    // npm redacts tokens in --json output; the plain output shows the new one once.
    let created = ok(s.run(".", &npm(), &["token", "create", "--password", "login-bob-password", "--registry", &registry], None));
    let new_token = created.split("Created token ").nth(1).expect("token printed").split_whitespace().next().unwrap().to_string();
    let r = request("GET", &format!("{registry}-/whoami"), Some(&new_token), &[], None);
    assert_eq!(r.json()["username"], "login-bob");

    let list = ok(s.run(".", &npm(), &["token", "list", "--registry", &registry, "--json"], None));
    let list: Value = serde_json::from_str(list[list.find('[').unwrap()..].trim()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3, "admin-made, login and created tokens: {list}");
    let key = list.as_array().unwrap().iter().find(|t| new_token.starts_with(t["token"].as_str().unwrap().trim_end_matches('…'))).unwrap()["key"].as_str().unwrap().to_string();
    ok(s.run(".", &npm(), &["token", "revoke", &key[..12], "--registry", &registry], None));
    let r = request("GET", &format!("{registry}-/whoami"), Some(&new_token), &[], None);
    assert_eq!(r.status, 401, "a revoked token is refused");

    let (success, out) = npm_login(&s, "other", &registry, "login-bob", "wrong-password");
    assert!(!success && out.contains("401"), "{out}");
}

#[test]
fn pnpm_publishes_and_adds() {
    let w = worker();
    let token = w.user_with_token("pnpm-user", json!({}));
    let s = Scratch::new();
    project(&s, "p", Some(&token));
    package(&s, "p", json!({"name": "e2e-pnpm-lib", "version": "3.1.4", "main": "index.js"}));
    ok(s.run("p", &bin("pnpm"), &["publish", "--no-git-checks"], None));
    project(&s, "app", None);
    s.write("app/package.json", r#"{"name":"app","version":"1.0.0","private":true}"#);
    ok(s.run("app", &bin("pnpm"), &["add", "e2e-pnpm-lib", "e2e-hello-pnpm-dep@npm:e2e-pnpm-lib@^3"], None));
    assert!(s.path().join("app/node_modules/e2e-pnpm-lib/index.js").exists());
    let lock = std::fs::read_to_string(s.path().join("app/pnpm-lock.yaml")).unwrap();
    assert!(lock.contains("e2e-pnpm-lib@3.1.4"), "{lock}");
}

fn publish_fixture(name: &str, version: &str) {
    let w = worker();
    let token = w.user_with_token("yarn-publisher", json!({}));
    // No dependencies: yarn installs it from this registry alone.
    let body = publish_body_with(name, version, &tarball(name, version), json!({}));
    let r = request("PUT", &format!("{}{}", w.npm_registry(), name.replacen('/', "%2f", 1)), Some(&token), &[("content-type", "application/json")], Some(body.to_string().into_bytes()));
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn yarn1_adds_packages() {
    publish_fixture("e2e-yarn1-lib", "1.2.3");
    publish_fixture("@e2e/yarn1-scoped", "0.1.0");
    let s = Scratch::new();
    project(&s, "app", None);
    s.write("app/package.json", r#"{"name":"app","version":"1.0.0","private":true}"#);
    // `.bin/yarn` is yarn 4 (both packages ship a `yarn` bin): call yarn 1 by its path.
    let yarn1 = root().join("miniflare/node_modules/yarn/bin/yarn.js");
    let args = [yarn1.to_str().unwrap(), "add", "e2e-yarn1-lib", "@e2e/yarn1-scoped", "--non-interactive"];
    ok(s.run("app", std::path::Path::new("node"), &args, None));
    assert!(s.path().join("app/node_modules/e2e-yarn1-lib/package.json").exists());
    assert!(s.path().join("app/node_modules/@e2e/yarn1-scoped/package.json").exists());
    let lock = std::fs::read_to_string(s.path().join("app/yarn.lock")).unwrap();
    assert!(lock.contains(&format!("{}e2e-yarn1-lib/-/e2e-yarn1-lib-1.2.3.tgz", worker().npm_registry())), "{lock}");
}

#[test]
fn yarn4_adds_packages() {
    publish_fixture("e2e-yarn4-lib", "4.0.1");
    publish_fixture("@e2e/yarn4-scoped", "0.2.0");
    let w = worker();
    let s = Scratch::new();
    s.write("app/package.json", r#"{"name":"app","version":"1.0.0","private":true}"#);
    s.write("app/yarn.lock", "");
    s.write(
        "app/.yarnrc.yml",
        &format!(
            "npmRegistryServer: \"{}/npm\"\nunsafeHttpWhitelist: [\"127.0.0.1\"]\nnpmMinimalAgeGate: 0\nnodeLinker: node-modules\nenableTelemetry: false\nenableGlobalCache: false\n",
            w.url
        ),
    );
    let yarn4 = root().join("miniflare/node_modules/@yarnpkg/cli-dist/bin/yarn.js");
    ok(s.run("app", std::path::Path::new("node"), &[yarn4.to_str().unwrap(), "add", "e2e-yarn4-lib", "@e2e/yarn4-scoped"], None));
    assert!(s.path().join("app/node_modules/e2e-yarn4-lib/package.json").exists());
    assert!(s.path().join("app/node_modules/@e2e/yarn4-scoped/package.json").exists());
}

#[test]
fn twenty_concurrent_publishes_of_one_package_all_survive() {
    let w = worker();
    let token = w.user_with_token("concurrent-user", json!({}));
    let name = "e2e-concurrent";
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let (token, url) = (token.clone(), format!("{}{name}", w.npm_registry()));
            std::thread::spawn(move || {
                let version = format!("1.0.{i}");
                let body = publish_body(name, &version, &tarball(name, &version));
                let r = request("PUT", &url, Some(&token), &[("content-type", "application/json")], Some(body.to_string().into_bytes()));
                (r.status, String::from_utf8_lossy(&r.body).into_owned())
            })
        })
        .collect();
    let replies: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(replies.iter().all(|(status, _)| *status == 201), "{replies:?}");
    let doc = packument(name).json();
    let versions = doc["versions"].as_object().unwrap();
    assert_eq!(versions.len(), 20, "{:?}", versions.keys().collect::<Vec<_>>());
    for i in 0..20 {
        let v = format!("1.0.{i}");
        let tgz = request("GET", &format!("{}{name}/-/{name}-{v}.tgz", w.npm_registry()), None, &[], None);
        assert_eq!(tgz.body, tarball(name, &v), "tarball of {v}");
    }
}

/// Bad input: the npm error body and status, and nothing stored.
fn assert_refused(r: &Resp, status: u16, name: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert!(r.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "npm error body: {}", r.text());
    assert_eq!(packument(name).status, 404, "nothing was stored for {name}");
}

fn put(name_in_url: &str, token: Option<&str>, body: Vec<u8>) -> Resp {
    request("PUT", &format!("{}{}", worker().npm_registry(), name_in_url), token, &[("content-type", "application/json")], Some(body))
}

#[test]
fn bad_publishes_get_npm_errors_and_store_nothing() {
    let w = worker();
    let token = w.user_with_token("bad-input-user", json!({}));
    let readonly = w.user_with_token("bad-input-reader", json!({"readonly": true}));
    let good = |name: &str| publish_body(name, "1.0.0", &tarball(name, "1.0.0")).to_string().into_bytes();

    assert_refused(&put("e2e-bad-json", Some(&token), b"{\"name\": \"e2e-bad-json\", ".to_vec()), 400, "e2e-bad-json");
    assert_refused(&put("e2e-bad-name", Some(&token), good("e2e-other-name")), 400, "e2e-bad-name");
    assert_refused(&put("e2e-bad-anon", None, good("e2e-bad-anon")), 401, "e2e-bad-anon");
    let r = put("e2e-bad-invalid", Some("not-a-real-token"), good("e2e-bad-invalid"));
    assert_refused(&r, 401, "e2e-bad-invalid");
    assert!(r.header("www-authenticate").is_some());
    assert_refused(&put("e2e-bad-readonly", Some(&readonly), good("e2e-bad-readonly")), 403, "e2e-bad-readonly");

    let mut wrong_sum = publish_body("e2e-bad-sum", "1.0.0", &tarball("e2e-bad-sum", "1.0.0"));
    wrong_sum["versions"]["1.0.0"]["dist"]["shasum"] = json!("0000000000000000000000000000000000000000");
    assert_refused(&put("e2e-bad-sum", Some(&token), wrong_sum.to_string().into_bytes()), 400, "e2e-bad-sum");

    let big = publish_body("e2e-bad-big", "1.0.0", &vec![0x1f; 5 * 1024 * 1024]);
    assert_refused(&put("e2e-bad-big", Some(&token), big.to_string().into_bytes()), 413, "e2e-bad-big");

    for traversal in ["..%2f..%2fetc", "..x", ".hidden", "_private", "@scope%2f..%2fx", "@..%2fx", "UPPER", "a%00b"] {
        let r = put(traversal, Some(&token), good("x"));
        assert_eq!(r.status, 400, "{traversal}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    // Unknown packages and versions are 404 with npm's body.
    let r = request("GET", &format!("{}e2e-never-published", w.npm_registry()), None, &[], None);
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
}
