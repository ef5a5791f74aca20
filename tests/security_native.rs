//! Issue 8, natively: ownership of npm packages, admin credentials, tokens bound to their
//! protocol and network, bounded bodies, `READ_ONLY` on every npm write, the failed-login
//! limit and the equal work for unknown users. Each test names the attack it stops.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use async_trait::async_trait;
use common::*;
use edgeregistry::config::Config;
use edgeregistry::http::{Method, Request};
use edgeregistry::platform::memory::{MemoryPlatform, RustCrypto};
use edgeregistry::platform::{Crypto, StoreResult};
use edgeregistry::App;
use serde_json::{json, Value};

fn packument(reg: &Reg, name: &str) -> Value {
    reg.get_json(&format!("/npm/{name}"))
}

/// Everything an npm client can change of `pkg`, as `token`: publish a new version, unpublish
/// one, unpublish all, add and remove a dist-tag, deprecate, delete a tarball, change owners.
fn every_npm_write(reg: &Reg, token: &str, pkg: &str) -> Vec<(&'static str, u16)> {
    let rev = packument(reg, pkg)["_rev"].as_str().unwrap().to_string();
    let tgz = tarball(pkg, "9.9.9");
    let mut deprecated = packument(reg, pkg);
    deprecated["versions"]["1.0.0"]["deprecated"] = json!("do not use");
    let mut kept = packument(reg, pkg);
    kept["versions"].as_object_mut().unwrap().remove("1.0.0");
    let tag = bearer(Request::new(Method::Put, &format!("/npm/-/package/{pkg}/dist-tags/beta")), token)
        .with_header("Content-Type", "application/json")
        .with_body(json_body(&json!("1.0.0")));
    let untag = bearer(Request::new(Method::Delete, &format!("/npm/-/package/{pkg}/dist-tags/next")), token);
    vec![
        ("publish", reg.send(put_json(&format!("/npm/{pkg}"), token, &publish_body(pkg, "9.9.9", &tgz))).status),
        ("deprecate", reg.send(put_json(&format!("/npm/{pkg}"), token, &deprecated)).status),
        ("dist-tag add", reg.send(tag).status),
        ("dist-tag rm", reg.send(untag).status),
        ("unpublish version", reg.send(put_json(&format!("/npm/{pkg}/-rev/{rev}"), token, &kept)).status),
        ("owner add", reg.send(put_json(&format!("/npm/{pkg}/-rev/{rev}"), token, &json!({"_id": pkg, "_rev": rev, "maintainers": [{"name": "alice"}, {"name": "bob"}]}))).status),
        ("delete tarball", reg.send(bearer(Request::new(Method::Delete, &format!("/npm/{pkg}/-/{pkg}-0.0.1.tgz")), token)).status),
        ("unpublish package", reg.send(bearer(Request::new(Method::Delete, &format!("/npm/{pkg}/-rev/{rev}")), token)).status),
    ]
}

/// alice publishes `pkg` 1.0.0 and 2.0.0 with a `next` tag, and an orphan 0.0.1 tarball sits
/// in the store (left by an unpublish): the state every write attempt starts from.
fn alices_package(reg: &Reg, pkg: &str) -> String {
    let alice = reg.user_with_token("alice");
    reg.publish_ok(&alice, pkg, "0.0.1");
    reg.publish_ok(&alice, pkg, "1.0.0");
    reg.publish_ok(&alice, pkg, "2.0.0");
    let tag = bearer(Request::new(Method::Put, &format!("/npm/-/package/{pkg}/dist-tags/next")), &alice)
        .with_header("Content-Type", "application/json")
        .with_body(json_body(&json!("2.0.0")));
    assert_eq!(reg.send(tag).status, 201);
    let mut kept = packument(reg, pkg);
    kept["versions"].as_object_mut().unwrap().remove("0.0.1");
    let rev = kept["_rev"].as_str().unwrap().to_string();
    // npm unpublish of one version leaves the tarball for a later DELETE: keep it as an orphan.
    let r = reg.send(put_json(&format!("/npm/{pkg}/-rev/{rev}"), &alice, &kept));
    assert_eq!(r.status, 200, "{r:?}");
    alice
}

/// The store's objects with their etags: any write shows up.
fn snapshot(reg: &Reg) -> Vec<(String, String)> {
    let keys = reg.mem.store.keys();
    keys.into_iter()
        .map(|k| {
            let etag = futures::executor::block_on(edgeregistry::platform::ObjectStore::head(&*reg.mem.store, &k)).unwrap().map(|m| m.etag).unwrap_or_default();
            (k, etag)
        })
        .collect()
}

#[test]
fn another_users_login_token_cannot_change_a_package() {
    let reg = Reg::new();
    alices_package(&reg, "pkg");
    reg.create_user("bob");
    // What `npm login` gives bob: scopes npm:*:*:*, his password works too.
    let login = reg.send(Request::new(Method::Put, "/npm/-/user/org.couchdb.user:bob").with_body(json_body(&json!({"name": "bob", "password": PASSWORD}))));
    assert_eq!(login.status, 201, "{login:?}");
    let bob = login.json()["token"].as_str().unwrap().to_string();
    let before = snapshot(&reg);
    for (what, status) in every_npm_write(&reg, &bob, "pkg") {
        assert_eq!(status, 403, "bob's {what}");
    }
    assert_eq!(snapshot(&reg), before, "a refused write changed the store");
    assert_eq!(packument(&reg, "pkg")["maintainers"], json!([{"name": "alice"}]));
}

#[test]
fn admins_and_admin_granted_scopes_may_write_without_owning() {
    for who in ["admin secret", "grant"] {
        let reg = Reg::new();
        alices_package(&reg, "pkg");
        reg.create_user("bob");
        let token = match who {
            "admin secret" => ADMIN_TOKEN.to_string(),
            _ => reg.create_token("bob", json!({"protocol": "npm", "scopes": ["npm:package:pkg:*"]})),
        };
        for (what, status) in every_npm_write(&reg, &token, "pkg") {
            assert!((200..300).contains(&status), "{who}: {what} answered {status}");
        }
    }
    // A grant for another package is no grant for this one, nor is a default token.
    let reg = Reg::new();
    alices_package(&reg, "pkg");
    reg.create_user("bob");
    for scopes in [json!(["npm:package:other:*"]), json!([])] {
        let token = reg.create_token("bob", json!({"protocol": "npm", "scopes": scopes}));
        let tgz = tarball("pkg", "3.0.0");
        assert_eq!(reg.send(put_json("/npm/pkg", &token, &publish_body("pkg", "3.0.0", &tgz))).status, 403, "{scopes}");
    }
}

#[test]
fn npm_owner_add_ls_rm() {
    let reg = Reg::new();
    let alice = alices_package(&reg, "pkg");
    let bob = reg.user_with_token("bob");
    // `npm owner add bob pkg`: looks bob up, then PUTs the new maintainer list.
    let user = reg.send(get("/npm/-/user/org.couchdb.user:bob", &alice));
    assert_eq!(user.status, 200, "{user:?}");
    assert_eq!(user.json()["name"], "bob");
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/-/user/org.couchdb.user:bob")).status, 401);
    assert_eq!(reg.send(get("/npm/-/user/org.couchdb.user:nobody", &alice)).status, 404);
    let owners = |token: &str, names: &[&str]| {
        let rev = packument(&reg, "pkg")["_rev"].as_str().unwrap().to_string();
        let maintainers: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
        reg.send(put_json(&format!("/npm/pkg/-rev/{rev}"), token, &json!({"_id": "pkg", "_rev": rev, "maintainers": maintainers})))
    };
    assert_eq!(owners(&bob, &["bob"]).status, 403, "a stranger cannot make himself owner");
    assert_eq!(owners(&alice, &["alice", "nobody"]).status, 404, "owners must be users");
    assert_eq!(owners(&alice, &[]).status, 400, "a package keeps an owner");
    let r = owners(&alice, &["alice", "bob"]);
    assert_eq!(r.status, 200, "{r:?}");
    let names: Vec<Value> = packument(&reg, "pkg")["maintainers"].as_array().unwrap().iter().map(|m| m["name"].clone()).collect();
    assert_eq!(names, vec![json!("alice"), json!("bob")]);
    reg.publish_ok(&bob, "pkg", "3.0.0");
    // bob removes alice: she can no longer publish.
    assert_eq!(owners(&bob, &["bob"]).status, 200);
    let tgz = tarball("pkg", "4.0.0");
    assert_eq!(reg.send(put_json("/npm/pkg", &alice, &publish_body("pkg", "4.0.0", &tgz))).status, 403);
}

#[test]
fn read_only_mode_refuses_every_npm_write_before_it_happens() {
    let reg = Reg::new();
    alices_package(&reg, "pkg");
    reg.create_user("bob");
    // The same registry state, now read-only.
    let config = Config::from_vars(&vars(&[("READ_ONLY", "true")])).unwrap();
    let ro = Reg { app: App::new(reg.mem.platform.clone(), config), mem: reg.mem };
    let before = snapshot(&ro);
    for (what, status) in every_npm_write(&ro, ADMIN_TOKEN, "pkg") {
        assert_eq!(status, 403, "{what} in read-only mode");
    }
    assert_eq!(snapshot(&ro), before, "read-only mode let a write through");
    assert!(packument(&ro, "pkg")["versions"].get("1.0.0").is_some(), "the version is gone after the 403");
}

#[test]
fn admin_rights_need_an_admin_token_and_honour_read_only() {
    let reg = Reg::new();
    let r = reg.send(admin(Method::Post, "/-/admin/users").with_body(json_body(&json!({"name": "root", "password": PASSWORD, "admin": true}))));
    assert_eq!(r.status, 201);
    reg.create_user("alice");
    let new_user = |token: &str, name: &str| {
        reg.send(bearer(Request::new(Method::Post, "/-/admin/users"), token).with_body(json_body(&json!({"name": name, "password": PASSWORD})))).status
    };
    // Tokens of an admin user that are not admin tokens: default, read-only, one package.
    for body in [json!({}), json!({"readonly": true}), json!({"scopes": ["npm:package:x:write"]}), json!({"protocol": "oci"})] {
        let t = reg.create_token("root", body.clone());
        assert_eq!(new_user(&t, "mallory"), 403, "{body}");
    }
    // root's password (Basic) and an OCI JWT of root are no admin credentials either.
    let basic = basic(Request::new(Method::Post, "/-/admin/users"), "root", PASSWORD).with_body(json_body(&json!({"name": "mallory", "password": PASSWORD})));
    assert!(matches!(reg.send(basic).status, 401 | 403));
    assert_eq!(reg.send(admin(Method::Get, "/-/admin/users/mallory")).status, 404);
    // An admin token works; a read-only one only reads.
    let root_admin = reg.create_token("root", json!({"admin": true}));
    assert_eq!(new_user(&root_admin, "carol"), 201);
    let ro_admin = reg.create_token("root", json!({"admin": true, "readonly": true}));
    assert_eq!(reg.send(get("/-/admin/users/carol", &ro_admin)).status, 200);
    assert_eq!(new_user(&ro_admin, "dave"), 403);
    // Only admin users get admin tokens.
    let r = reg.send(admin(Method::Post, "/-/admin/tokens").with_body(json_body(&json!({"user": "alice", "admin": true}))));
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn oci_tokens_and_read_only_tokens_cannot_manage_npm_tokens() {
    let reg = Reg::oci(&[("ANONYMOUS_READ", "all")]);
    let alice = reg.user_with_token("alice");
    let readonly = reg.create_token("alice", json!({"readonly": true, "protocol": "npm"}));
    let anonymous_jwt = reg.docker_token(None, &["repository:x:pull"]).json()["token"].as_str().unwrap().to_string();
    let alice_jwt = reg.docker_token(Some(("alice", PASSWORD)), &["repository:x:pull"]).json()["token"].as_str().unwrap().to_string();
    let key = sha256_hex(alice.as_bytes());
    for jwt in [&anonymous_jwt, &alice_jwt] {
        assert_eq!(reg.send(get("/npm/-/whoami", jwt)).status, 401);
        assert_eq!(reg.send(get("/npm/-/npm/v1/tokens", jwt)).status, 401);
        assert_eq!(reg.send(bearer(Request::new(Method::Delete, &format!("/npm/-/npm/v1/tokens/token/{key}")), jwt)).status, 401);
    }
    assert_eq!(reg.send(get("/npm/-/whoami", &readonly)).status, 200);
    assert_eq!(reg.send(get("/npm/-/npm/v1/tokens", &readonly)).status, 403);
    assert_eq!(reg.send(bearer(Request::new(Method::Delete, &format!("/npm/-/npm/v1/tokens/token/{key}")), &readonly)).status, 403);
    let create = bearer(Request::new(Method::Post, "/npm/-/npm/v1/tokens"), &readonly).with_body(json_body(&json!({"password": PASSWORD})));
    assert_eq!(reg.send(create).status, 403);
    // alice's write token still works, and still manages her tokens.
    assert_eq!(reg.send(get("/npm/-/whoami", &alice)).status, 200);
    assert_eq!(reg.send(get("/npm/-/npm/v1/tokens", &alice)).status, 200);
}

#[test]
fn jwts_without_a_numeric_exp_are_refused() {
    let reg = Reg::oci(&[]);
    let alice = reg.user_with_token("alice");
    reg.push_image(&alice, "alice/app", "v1", "x");
    let now = 1_767_225_600i64;
    let access = json!([{"type": "repository", "name": "alice/app", "actions": ["pull"]}]);
    let sign = |claims: Value| edgeregistry::auth::jwt::encode(JWT_SECRET.as_bytes(), &claims);
    let good = sign(json!({"sub": "alice", "access": access, "exp": now + 60}));
    assert_eq!(reg.send(oci(Method::Get, "/v2/alice/app/manifests/v1", &good)).status, 200);
    for claims in [
        json!({"sub": "alice", "access": access}),
        json!({"sub": "alice", "access": access, "exp": (now + 60).to_string()}),
        json!({"sub": "alice", "access": access, "exp": now as f64 + 60.5}),
    ] {
        let r = reg.send(oci(Method::Get, "/v2/alice/app/manifests/v1", &sign(claims.clone())));
        assert_eq!(r.status, 401, "{claims}: {r:?}");
    }
}

#[test]
fn cidr_bound_tokens_work_only_from_their_networks() {
    let reg = Reg::new();
    reg.create_user("alice");
    let bound = reg.create_token("alice", json!({"protocol": "npm", "cidrWhitelist": ["10.0.0.0/8", "2001:db8::/32"]}));
    let from = |ip: Option<&str>| {
        let mut r = get("/npm/-/whoami", &bound);
        if let Some(ip) = ip {
            r = r.with_header("CF-Connecting-IP", ip);
        }
        reg.send(r).status
    };
    assert_eq!(from(Some("10.1.2.3")), 200);
    assert_eq!(from(Some("2001:db8::7")), 200);
    assert_eq!(from(Some("127.0.0.1")), 401);
    assert_eq!(from(None), 401, "an unknown address is outside every range");
    // npm token create --cidr with a malformed range is refused, as is the admin API's.
    let alice = reg.create_token("alice", json!({}));
    let create = bearer(Request::new(Method::Post, "/npm/-/npm/v1/tokens"), &alice).with_body(json_body(&json!({"password": PASSWORD, "cidr_whitelist": ["10.0.0.0/33"]})));
    assert_eq!(reg.send(create).status, 400);
    let r = reg.send(admin(Method::Post, "/-/admin/tokens").with_body(json_body(&json!({"user": "alice", "cidrWhitelist": ["nonsense"]}))));
    assert_eq!(r.status, 400);
}

#[test]
fn token_lifetimes_are_validated_without_runtime_text() {
    let reg = Reg::new();
    reg.create_user("alice");
    for secs in [0u64, 59, 10 * 365 * 86_400 + 1, u64::MAX] {
        let r = reg.send(admin(Method::Post, "/-/admin/tokens").with_body(json_body(&json!({"user": "alice", "expiresInSeconds": secs}))));
        assert_eq!(r.status, 400, "{secs}: {r:?}");
        assert!(r.json()["error"].as_str().unwrap().contains("lifetime"), "{r:?}");
    }
    let r = reg.send(admin(Method::Post, "/-/admin/tokens").with_body(json_body(&json!({"user": "alice", "expiresInSeconds": 3600}))));
    assert_eq!(r.status, 201);
    let alice = reg.create_token("alice", json!({}));
    for days in [0u64, 100_000, u64::MAX] {
        let create = bearer(Request::new(Method::Post, "/npm/-/npm/v1/tokens"), &alice).with_body(json_body(&json!({"password": PASSWORD, "expires": days})));
        assert_eq!(reg.send(create).status, 400, "{days} days");
    }
}

#[test]
fn failed_logins_are_limited_per_user_and_client() {
    let reg = Reg::new();
    reg.create_user("alice");
    let login = |password: &str, ip: &str| {
        let body = json_body(&json!({"name": "alice", "password": password}));
        reg.send(Request::new(Method::Put, "/npm/-/user/org.couchdb.user:alice").with_header("CF-Connecting-IP", ip).with_body(body))
    };
    for _ in 0..10 {
        assert_eq!(login("wrong-password", "203.0.113.9").status, 401);
    }
    // The eleventh attempt is refused whatever the password, with when to come back.
    let r = login(PASSWORD, "203.0.113.9");
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.header("Retry-After").and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s > 0 && s <= 900));
    // The same through Basic auth (the OCI token endpoint and any protocol's Basic).
    let basic = basic(Request::new(Method::Get, "/npm/-/whoami"), "alice", PASSWORD).with_header("CF-Connecting-IP", "203.0.113.9");
    assert_eq!(reg.send(basic).status, 429);
    // Another client is not locked out; the window ends.
    assert_eq!(login(PASSWORD, "198.51.100.1").status, 201);
    reg.mem.clock.advance(15.0 * 60.0 * 1000.0 + 1.0);
    assert_eq!(login(PASSWORD, "203.0.113.9").status, 201);
}

/// Counts key derivations.
struct CountingCrypto(Rc<Cell<u32>>);

#[async_trait(?Send)]
impl Crypto for CountingCrypto {
    async fn pbkdf2_sha256(&self, password: &str, salt: &[u8], iterations: u32) -> StoreResult<[u8; 32]> {
        self.0.set(self.0.get() + 1);
        RustCrypto.pbkdf2_sha256(password, salt, iterations).await
    }
}

#[test]
fn unknown_users_cost_the_same_key_derivation_as_known_ones() {
    let count = Rc::new(Cell::new(0));
    let mut mem = MemoryPlatform::new();
    mem.platform.crypto = Rc::new(CountingCrypto(count.clone()));
    let config = Config::from_vars(&vars(&[])).unwrap();
    let reg = Reg { app: App::new(mem.platform.clone(), config), mem };
    reg.create_user("alice");
    for (user, password) in [("alice", "wrong-password"), ("nobody", "wrong-password"), ("alice", PASSWORD)] {
        count.set(0);
        let r = reg.send(basic(Request::new(Method::Get, "/npm/-/whoami"), user, password));
        assert_eq!(count.get(), 1, "{user}/{password}: {} derivations ({})", count.get(), r.status);
    }
}

#[test]
fn scoped_publish_with_two_attachments_for_one_version_is_refused() {
    let reg = Reg::new();
    let alice = reg.user_with_token("alice");
    // Two versions, and two attachment names that both mean 1.0.0 (`{name}-{v}.tgz` and
    // npm's own `{basename}-{v}.tgz`): as many tarballs as versions, none for 2.0.0.
    let tgz = tarball("@s/p", "1.0.0");
    let mut body = publish_body("@s/p", "1.0.0", &tgz);
    let mut second = body["versions"]["1.0.0"].clone();
    second["version"] = json!("2.0.0");
    body["versions"]["2.0.0"] = second;
    let att = body["_attachments"]["@s/p-1.0.0.tgz"].clone();
    body["_attachments"]["p-1.0.0.tgz"] = att;
    let r = reg.send(put_json("/npm/@s%2fp", &alice, &body));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(reg.package_keys("@s/p").is_empty());
    // The registry still answers (a panic would have failed the test above).
    let r = reg.send(put_json("/npm/@s%2fp", &alice, &publish_body("@s/p", "1.0.0", &tgz)));
    assert_eq!(r.status, 201, "{r:?}");
}

#[test]
fn bodies_are_capped_per_endpoint_and_value_trees_bounded() {
    let reg = Reg::new();
    let alice = reg.user_with_token("alice");
    // Unauthenticated: a 3 MB JSON array to the login endpoint is refused as too large.
    let array = format!("[{}0]", "0,".repeat(1_500_000));
    let r = reg.send(Request::new(Method::Put, "/npm/-/user/org.couchdb.user:x").with_body(array.clone().into_bytes()));
    assert_eq!(r.status, 413, "{r:?}");
    // A dist-tag body is a version string.
    reg.publish_ok(&alice, "pkg", "1.0.0");
    let tag = bearer(Request::new(Method::Put, "/npm/-/package/pkg/dist-tags/beta"), &alice).with_body(array.clone().into_bytes());
    assert_eq!(reg.send(tag).status, 413);
    // A publish whose manifest hides a million values is refused before any tree is built.
    let tgz = tarball("pkg", "2.0.0");
    let mut body = publish_body("pkg", "2.0.0", &tgz);
    body["versions"]["2.0.0"]["junk"] = serde_json::from_str(&array).unwrap();
    let r = reg.send(put_json("/npm/pkg", &alice, &body));
    assert_eq!(r.status, 413, "{r:?}");
    // Token management bodies are small too.
    let create = bearer(Request::new(Method::Post, "/npm/-/npm/v1/tokens"), &alice).with_body(array.into_bytes());
    assert_eq!(reg.send(create).status, 413);
}

#[test]
fn audit_pass_through_needs_read_rights() {
    let reg = Reg::with_vars(&[("ANONYMOUS_READ", "none"), ("NPM_UPSTREAMS", r#"{"upstreams":[{"id":"up","url":"https://upstream.example"}]}"#)]);
    let calls = Rc::new(Cell::new(0));
    let seen = calls.clone();
    reg.mem.fetcher.set_handler(move |_, _| {
        seen.set(seen.get() + 1);
        edgeregistry::http::Response::json(200, &json!({}))
    });
    let audit = || Request::new(Method::Post, "/npm/-/npm/v1/security/advisories/bulk").with_header("Content-Type", "application/json").with_body(b"{\"lodash\":[\"4.17.20\"]}".to_vec());
    assert_eq!(reg.send(audit()).status, 401);
    assert_eq!(calls.get(), 0, "the upstream was asked for an anonymous caller");
    let alice = reg.user_with_token("alice");
    assert_eq!(reg.send(bearer(audit(), &alice)).status, 200);
    assert_eq!(calls.get(), 1);
}

#[test]
fn every_response_says_nosniff() {
    let reg = Reg::new();
    for path in ["/-/health", "/npm/nonexistent", "/nowhere"] {
        let r = reg.send(Request::new(Method::Get, path));
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"), "{path}");
    }
}

#[test]
fn the_admin_api_shows_and_hands_over_owners() {
    let reg = Reg::oci(&[]);
    let alice = alices_package(&reg, "pkg");
    let bob = reg.user_with_token("bob");
    reg.push_image(&alice, "alice-app", "v1", "x");
    let owners = |method: Method, path: &str, body: Option<Value>, token: &str| {
        let mut r = bearer(Request::new(method, path), token);
        if let Some(b) = body {
            r = r.with_body(json_body(&b));
        }
        reg.send(r)
    };
    for path in ["/-/admin/owners/npm/pkg", "/-/admin/owners/oci/alice-app"] {
        let r = owners(Method::Get, path, None, ADMIN_TOKEN);
        assert_eq!(r.json(), json!({"owners": ["alice"]}), "{path}");
        assert_eq!(owners(Method::Put, path, Some(json!({"owners": ["bob"]})), &alice).status, 403, "{path}: not an admin credential");
        assert_eq!(owners(Method::Put, path, Some(json!({"owners": ["nobody"]})), ADMIN_TOKEN).status, 404);
        assert_eq!(owners(Method::Put, path, Some(json!({"owners": []})), ADMIN_TOKEN).status, 400);
        let r = owners(Method::Put, path, Some(json!({"owners": ["bob"]})), ADMIN_TOKEN);
        assert_eq!(r.json(), json!({"owners": ["bob"]}), "{path}");
    }
    assert_eq!(owners(Method::Get, "/-/admin/owners/npm/unknown", None, ADMIN_TOKEN).status, 404);
    assert_eq!(owners(Method::Get, "/-/admin/owners/pypi/x", None, ADMIN_TOKEN).status, 404);
    // The package and the repository are bob's now.
    reg.publish_ok(&bob, "pkg", "5.0.0");
    let tgz = tarball("pkg", "6.0.0");
    assert_eq!(reg.send(put_json("/npm/pkg", &alice, &publish_body("pkg", "6.0.0", &tgz))).status, 403);
    reg.push_image(&bob, "alice-app", "v2", "y");
    let manifest_digest = reg.send(oci(Method::Get, "/v2/alice-app/manifests/v1", &bob)).header("Docker-Content-Digest").unwrap().to_string();
    assert_eq!(reg.send(oci(Method::Delete, &format!("/v2/alice-app/manifests/{manifest_digest}"), &alice)).status, 403);
}

#[test]
fn with_public_url_npm_links_never_follow_the_host_header() {
    let reg = Reg::with_vars(&[("PUBLIC_URL", "https://registry.example.com")]);
    let alice = reg.user_with_token("alice");
    reg.publish_ok(&alice, "pkg", "1.0.0");
    let mut req = Request::new(Method::Get, "/npm/pkg");
    req.origin = "http://attacker.example".into();
    let doc = reg.send(req).json();
    let tarball = doc["versions"]["1.0.0"]["dist"]["tarball"].as_str().unwrap();
    assert_eq!(tarball, "https://registry.example.com/npm/pkg/-/pkg-1.0.0.tgz");
    let mut req = Request::new(Method::Get, "/npm/pkg/1.0.0");
    req.origin = "http://attacker.example".into();
    assert!(reg.send(req).text().contains("https://registry.example.com/npm/pkg/-/pkg-1.0.0.tgz"));
}
