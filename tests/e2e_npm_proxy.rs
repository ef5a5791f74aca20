//! The Worker as an npm pull-through cache, in workerd, in front of real upstreams: verdaccio,
//! a fault-injecting proxy, and a second Worker. Real clients install through it, then again
//! with the upstream stopped.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use common::e2e::upstreams::{Fault, FaultProxy, Verdaccio};
use common::e2e::*;

/// A package tarball whose package.json carries its dependencies, as npm packs it.
fn package(name: &str, version: &str, deps: &[(&str, &str)]) -> (Vec<u8>, Value) {
    let deps: serde_json::Map<String, Value> = deps.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let manifest = json!({"name": name, "version": version, "main": "index.js", "dependencies": deps});
    let tgz = tarball_with(&manifest, format!("module.exports = {:?};\n", format!("{name}@{version}")).as_bytes());
    let mut body = publish_body(name, version, &tgz);
    body["versions"][version]["dependencies"] = Value::Object(deps);
    body["versions"][version]["main"] = json!("index.js");
    (tgz, body)
}

/// Publishes as npm does, `dist` filled in (verdaccio keeps what the client sends).
fn publish(registry: &str, token: &str, name: &str, version: &str, deps: &[(&str, &str)]) -> Vec<u8> {
    use base64::Engine;
    use sha2::Digest;
    let (tgz, mut body) = package(name, version, deps);
    let base = name.rsplit('/').next().unwrap();
    body["versions"][version]["dist"] = json!({
        "tarball": format!("{}/{name}/-/{base}-{version}.tgz", registry.trim_end_matches('/')),
        "shasum": hex::encode(sha1::Sha1::digest(&tgz)),
        "integrity": format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(&tgz))),
    });
    let url = format!("{}/{}", registry.trim_end_matches('/'), name.replacen('/', "%2f", 1));
    let r = request("PUT", &url, Some(token), &[("content-type", "application/json")], Some(body.to_string().into_bytes()));
    assert!(r.status == 200 || r.status == 201, "publish {name}@{version} to {registry}: {} {}", r.status, r.text());
    tgz
}

/// The fixture tree: fx-app → fx-util ^1 (→ fx-core), @fx/ui ^2 (→ fx-core); fx-shadow.
fn publish_tree(registry: &str, token: &str) {
    publish(registry, token, "fx-core", "0.1.0", &[]);
    publish(registry, token, "fx-util", "1.0.0", &[("fx-core", "^0.1.0")]);
    publish(registry, token, "fx-util", "1.2.0", &[("fx-core", "^0.1.0")]);
    publish(registry, token, "@fx/ui", "2.0.0", &[("fx-core", "*")]);
    publish(registry, token, "fx-app", "1.0.0", &[("fx-util", "^1.0.0"), ("@fx/ui", "^2.0.0")]);
    publish(registry, token, "fx-shadow", "9.0.0", &[]);
}

fn upstreams_var(url: &str) -> String {
    json!({
        "upstreams": [{"id": "upstream", "url": url,
                        "resilience": {"timeoutMs": 3000, "maxRetries": 2, "retryDelayMs": 100, "retryMaxDelayMs": 2000}}],
        "cache": {"defaultTtlSeconds": 2, "staleMaxAgeSeconds": 2, "negativeCacheTtlSeconds": 2}
    })
    .to_string()
}

fn installed_version(s: &Scratch, dir: &str, pkg: &str) -> String {
    let p = s.path().join(dir).join("node_modules").join(pkg).join("package.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str::<Value>(&text).unwrap()["version"].as_str().unwrap().to_string()
}


/// A project in `dir` that installs from `registry` with a fresh npm cache.
fn npm_install(s: &Scratch, dir: &str, registry: &str, packages: &[&str]) -> (bool, String) {
    s.write(&format!("{dir}/package.json"), &json!({"name": dir, "version": "1.0.0", "private": true}).to_string());
    s.write(&format!("{dir}/.npmrc"), &format!("registry={registry}\n"));
    let cache = s.path().join(format!("{dir}-npm-cache"));
    let mut args = vec!["install", "--no-package-lock", "--cache", cache.to_str().unwrap()];
    args.extend_from_slice(packages);
    s.run(dir, &npm(), &args, None)
}

#[test]
fn npm_pnpm_and_yarn_install_through_the_cache_then_with_the_upstream_down() {
    let mut verdaccio = Verdaccio::start();
    let vtoken = verdaccio.user("fixture");
    publish_tree(&format!("{}/", verdaccio.url()), &vtoken);
    let worker = Worker::start(&[("NPM_UPSTREAMS", &upstreams_var(&verdaccio.url()))]);
    let registry = worker.npm_registry();
    // Hosted here: wins over the upstream's 9.0.0, whatever the version ranges say.
    let token = worker.user_with_token("dev", json!({}));
    publish(&registry, &token, "fx-shadow", "1.0.0", &[]);

    let s = Scratch::new();
    ok(npm_install(&s, "npm1", &registry, &["fx-app", "fx-shadow"]));
    assert_eq!(installed_version(&s, "npm1", "fx-util"), "1.2.0");
    assert_eq!(installed_version(&s, "npm1", "@fx/ui"), "2.0.0");
    assert_eq!(installed_version(&s, "npm1", "fx-core"), "0.1.0");
    assert_eq!(installed_version(&s, "npm1", "fx-shadow"), "1.0.0", "the hosted package is never shadowed");

    let abbrev = [("accept", "application/vnd.npm.install-v1+json")];
    let pk = request("GET", &format!("{registry}fx-app"), None, &abbrev, None);
    assert_eq!(pk.status, 200);
    assert!(matches!(pk.header("x-cache"), Some("HIT" | "STALE" | "REVALIDATED" | "MISS")), "{:?}", pk.headers);
    assert_eq!(pk.header("x-cache-upstream"), Some("upstream"));
    let tarball_url = pk.json()["versions"]["1.0.0"]["dist"]["tarball"].as_str().unwrap().to_string();
    assert!(tarball_url.starts_with(&registry), "tarball links point at the Worker: {tarball_url}");
    let tgz = request("GET", &tarball_url, None, &[], None);
    assert_eq!(tgz.header("x-cache"), Some("HIT"), "installed tarballs were cached");

    // The upstream goes away, and the TTLs run out: installs still work from the cache.
    verdaccio.stop();
    std::thread::sleep(Duration::from_secs(5));
    ok(npm_install(&s, "npm2", &registry, &["fx-app"]));
    assert_eq!(installed_version(&s, "npm2", "fx-util"), "1.2.0");
    // (npm asked for the install view of the package it was told to install.)
    let stale = request("GET", &format!("{registry}fx-app"), None, &abbrev, None);
    assert_eq!(stale.status, 200, "{}", stale.text());
    assert_eq!(stale.header("x-cache"), Some("STALE"), "stale-if-error while the upstream is down");

    s.write("pnpm1/package.json", &json!({"name": "pnpm1", "version": "1.0.0", "private": true}).to_string());
    s.write("pnpm1/.npmrc", &format!("registry={registry}\n"));
    ok(s.run("pnpm1", &bin("pnpm"), &["add", "fx-app", "--store-dir", "../pnpm-store"], None));
    assert!(s.path().join("pnpm1/node_modules/fx-app/index.js").exists());

    s.write("yarn1/package.json", &json!({"name": "yarn1", "version": "1.0.0", "private": true}).to_string());
    let yarn1 = root().join("miniflare/node_modules/yarn/bin/yarn.js");
    ok(s.run("yarn1", std::path::Path::new("node"), &[yarn1.to_str().unwrap(), "add", "fx-app", "--registry", &registry, "--no-lockfile"], None));
    assert!(s.path().join("yarn1/node_modules/@fx/ui/index.js").exists());

    // Never fetched, upstream down: a clear error, not a hang or a fake 404.
    let unknown = request("GET", &format!("{registry}never-fetched"), None, &abbrev, None);
    assert_eq!(unknown.status, 502, "{}", unknown.text());
    assert!(unknown.json()["error"].as_str().unwrap().contains("upstream"));
}

#[test]
fn faults_between_the_cache_and_the_upstream() {
    let verdaccio = Verdaccio::start();
    let vtoken = verdaccio.user("fixture");
    let good = publish(&format!("{}/", verdaccio.url()), &vtoken, "fault-pkg", "1.0.0", &[]);
    publish(&format!("{}/", verdaccio.url()), &vtoken, "retry-pkg", "1.0.0", &[]);
    let slow_good = publish(&format!("{}/", verdaccio.url()), &vtoken, "slow-pkg", "1.0.0", &[]);
    let proxy = FaultProxy::start(&verdaccio.url());
    let worker = Worker::start(&[("NPM_UPSTREAMS", &upstreams_var(&proxy.url))]);
    let registry = worker.npm_registry();
    let tgz_url = format!("{registry}fault-pkg/-/fault-pkg-1.0.0.tgz");

    // A flipped byte: the client never gets a complete body, and nothing is cached.
    proxy.set(Fault::FlipByte);
    let flipped = request("GET", &tgz_url, None, &[], None);
    assert!(!(flipped.status == 200 && flipped.body.len() == good.len()), "a corrupt tarball was delivered whole");
    proxy.set(Fault::None);
    let fetched_before = proxy.count("fault-pkg-1.0.0.tgz");
    let clean = request("GET", &tgz_url, None, &[], None);
    assert_eq!(clean.status, 200, "{}", clean.text());
    assert_eq!(clean.body, good, "the next request fetched it again, intact");
    assert_eq!(clean.header("x-cache"), Some("MISS"), "the corrupt copy was not cached");
    assert_eq!(proxy.count("fault-pkg-1.0.0.tgz"), fetched_before + 1);
    assert_eq!(request("GET", &tgz_url, None, &[], None).header("x-cache"), Some("HIT"));

    // 5xx twice, then fine: retried with backoff.
    proxy.set(Fault::Status { status: 503, retry_after: None, count: 2 });
    let r = request("GET", &format!("{registry}retry-pkg"), None, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(proxy.count("/retry-pkg"), 3);

    // 429 with Retry-After: waited out.
    proxy.set(Fault::Status { status: 429, retry_after: Some(1), count: 1 });
    let t = std::time::Instant::now();
    let r = request("GET", &format!("{registry}retry-pkg/-/retry-pkg-1.0.0.tgz"), None, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(t.elapsed() >= Duration::from_millis(900), "Retry-After was honoured");

    // A truncated body: not delivered whole, not cached.
    proxy.set(Fault::Truncate);
    let cut_url = format!("{registry}slow-pkg/-/slow-pkg-1.0.0.tgz");
    let cut = request("GET", &cut_url, None, &[], None);
    assert!(!(cut.status == 200 && cut.body == slow_good), "a truncated tarball was delivered whole");
    proxy.set(Fault::None);
    assert_eq!(request("GET", &cut_url, None, &[], None).header("x-cache"), Some("MISS"), "the cut copy was not cached");

    // Slower than the timeout: a 502 for what was never cached.
    proxy.set(Fault::Delay(Duration::from_secs(4)));
    let slow = request("GET", &format!("{registry}not-cached-yet"), None, &[], None);
    assert_eq!(slow.status, 502, "{}", slow.text());
    proxy.set(Fault::None);
}

#[test]
fn a_second_worker_is_an_upstream_too() {
    let upstream = Worker::start(&[]);
    let token = upstream.user_with_token("corp", json!({}));
    publish(&upstream.npm_registry(), &token, "@corp/lib", "3.1.4", &[]);
    let mirror = Worker::start(&[("NPM_UPSTREAMS", &upstreams_var(upstream.url.as_str()).replace(&upstream.url, &format!("{}/npm", upstream.url)))]);
    let s = Scratch::new();
    ok(npm_install(&s, "app", &mirror.npm_registry(), &["@corp/lib"]));
    assert_eq!(installed_version(&s, "app", "@corp/lib"), "3.1.4");
    // An operator purges the package: the next request fetches it again.
    let tgz = format!("{}@corp/lib/-/lib-3.1.4.tgz", mirror.npm_registry());
    assert_eq!(request("GET", &tgz, None, &[], None).header("x-cache"), Some("HIT"));
    let purged = request("DELETE", &format!("{}/-/admin/cache/npm/@corp%2flib", mirror.url), Some(ADMIN_TOKEN), &[], None);
    assert_eq!(purged.status, 200, "{}", purged.text());
    assert!(purged.json()["purged"].as_u64().unwrap() >= 2, "{}", purged.text());
    let again = request("GET", &tgz, None, &[], None);
    assert_eq!((again.status, again.header("x-cache")), (200, Some("MISS")));
}

/// The npm client's own commands on a mirrored package: `npm dist-tag ls` reads the upstream's
/// tags, and `npm search` lists hosted and upstream results, then, with the upstream's search
/// failing, the hosted ones with a notice that npm prints.
#[test]
fn npm_dist_tag_ls_and_search_through_the_mirror() {
    let upstream = Worker::start(&[]);
    let corp = upstream.user_with_token("corp", json!({}));
    publish(&upstream.npm_registry(), &corp, "@corp/searchlib", "3.1.4", &[]);
    publish(&upstream.npm_registry(), &corp, "@corp/searchlib", "4.0.0-rc.1", &[]);
    // The second publish moved `latest`; point it back and tag the candidate `next`.
    for (tag, version) in [("latest", "3.1.4"), ("next", "4.0.0-rc.1")] {
        let url = format!("{}-/package/@corp%2fsearchlib/dist-tags/{tag}", upstream.npm_registry());
        let r = request("PUT", &url, Some(&corp), &[("content-type", "application/json")], Some(format!("\"{version}\"").into_bytes()));
        assert!(r.status < 300, "dist-tag {tag}: {} {}", r.status, r.text());
    }
    let proxy = FaultProxy::start(&format!("{}/npm", upstream.url));
    let mirror = Worker::start(&[("NPM_UPSTREAMS", &upstreams_var(&proxy.url))]);
    let registry = mirror.npm_registry();
    let dev = mirror.user_with_token("dev", json!({}));
    publish(&registry, &dev, "hosted-searchlib", "1.0.0", &[]);

    let s = Scratch::new();
    let (done, out) = s.run(".", &npm(), &["dist-tag", "ls", "@corp/searchlib", "--registry", &registry], None);
    assert!(done, "npm dist-tag ls of a mirrored package: {out}");
    assert!(out.contains("latest: 3.1.4") && out.contains("next: 4.0.0-rc.1"), "{out}");

    let search = ["search", "searchlib", "--registry", registry.as_str(), "--parseable"];
    let (done, out) = s.run(".", &npm(), &search, None);
    assert!(done, "npm search: {out}");
    assert!(out.contains("hosted-searchlib") && out.contains("@corp/searchlib"), "hosted and upstream results: {out}");

    proxy.set(Fault::Status { status: 500, retry_after: None, count: 100 });
    let (done, out) = s.run(".", &npm(), &search, None);
    proxy.set(Fault::None);
    assert!(done, "npm search with the upstream's search failing: {out}");
    assert!(out.contains("hosted-searchlib"), "the hosted results still answer: {out}");
    assert!(!out.contains("@corp/searchlib"), "{out}");
    assert!(out.contains("npm notice") && out.contains("only packages hosted here are listed"), "npm tells the user the list is partial: {out}");
}
