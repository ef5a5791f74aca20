//! The npm registry API driven through `App::handle` against the in-memory platform.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use edgeregistry::http::{Method, Request};
use edgeregistry::storage::{HookContext, HookDecision, StorageHooks};
use futures::executor::block_on;
use serde_json::{json, Value};

/// Sends `req`, expects `status`, and checks that no object of `package` exists afterwards.
fn refused(reg: &Reg, req: Request, status: u16, package: &str) -> Resp {
    let r = reg.send(req);
    assert_eq!(r.status, status, "{r:?}");
    assert!(reg.package_keys(package).is_empty(), "refused request stored {:?}", reg.package_keys(package));
    r
}

fn first_attachment(body: &mut Value) -> &mut Value {
    body["_attachments"].as_object_mut().unwrap().values_mut().next().unwrap()
}

fn delete(path: &str, token: &str) -> Request {
    bearer(Request::new(Method::Delete, path), token)
}

// ---------------------------------------------------------------- publish and read

#[test]
fn publish_then_read_packument_version_tag_and_tarball() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    let tgz = tarball("foo", "1.0.0");
    let r = reg.send(put_json("/npm/foo", &token, &publish_body("foo", "1.0.0", &tgz)));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["ok"], true);

    let doc = reg.get_json("/npm/foo");
    assert_eq!(doc["name"], "foo");
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    let v = &doc["versions"]["1.0.0"];
    // The registry computes the hashes itself from the stored bytes.
    assert_eq!(v["dist"]["shasum"], sha1_hex(&tgz));
    assert_eq!(v["dist"]["integrity"], integrity(&tgz));
    assert_eq!(v["dist"]["tarball"], "http://localhost/npm/foo/-/foo-1.0.0.tgz");
    assert_eq!(v["_npmUser"]["name"], "alice");
    assert_eq!(v["readme"], "# readme text");
    assert!(doc["time"]["1.0.0"].is_string());
    assert!(doc["_rev"].is_string());

    // One version, by number and by tag.
    assert_eq!(reg.get_json("/npm/foo/1.0.0")["version"], "1.0.0");
    let by_tag = reg.get_json("/npm/foo/latest");
    assert_eq!(by_tag["version"], "1.0.0");
    assert_eq!(by_tag["dist"]["tarball"], "http://localhost/npm/foo/-/foo-1.0.0.tgz");
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/foo/2.0.0")).status, 404);

    // The tarball comes back byte for byte, and its hashes are the advertised ones.
    let t = reg.send(Request::new(Method::Get, "/npm/foo/-/foo-1.0.0.tgz"));
    assert_eq!(t.status, 200);
    assert_eq!(t.body, tgz);
    assert_eq!(t.header("Content-Length"), Some(tgz.len().to_string().as_str()));
    assert_eq!(sha1_hex(&t.body), v["dist"]["shasum"].as_str().unwrap());
    assert_eq!(integrity(&t.body), v["dist"]["integrity"].as_str().unwrap());
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/foo/-/foo-9.9.9.tgz")).status, 404);
}

#[test]
fn head_tarball_has_content_length_and_no_body() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    let tgz = reg.publish_ok(&token, "foo", "1.0.0");
    let r = reg.send(Request::new(Method::Head, "/npm/foo/-/foo-1.0.0.tgz"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(tgz.len().to_string().as_str()));
    assert!(r.body.is_empty());
    assert_eq!(reg.send(Request::new(Method::Head, "/npm/foo/-/foo-2.0.0.tgz")).status, 404);
}

#[test]
fn abbreviated_packument_keeps_install_fields_only() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    reg.publish_ok(&token, "foo", "1.0.0");
    let r = reg.send(Request::new(Method::Get, "/npm/foo").with_header("Accept", "application/vnd.npm.install-v1+json"));
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("application/vnd.npm.install-v1+json"));
    let doc = r.json();
    assert_eq!(doc["name"], "foo");
    assert!(doc["modified"].is_string());
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    let v = &doc["versions"]["1.0.0"];
    assert_eq!(v["dependencies"]["left-pad"], "^1.0.0");
    assert_eq!(v["dist"]["tarball"], "http://localhost/npm/foo/-/foo-1.0.0.tgz");
    assert!(v.get("readme").is_none() && v.get("_npmUser").is_none(), "abbreviated kept {v}");
    assert!(doc.get("time").is_none());
}

#[test]
fn scoped_package_by_slash_and_by_escaped_slash() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    // npm sends scoped names escaped; publish that way, then a second version unescaped.
    let tgz1 = tarball("@acme/widget", "1.0.0");
    let r = reg.send(put_json("/npm/@acme%2fwidget", &token, &publish_body("@acme/widget", "1.0.0", &tgz1)));
    assert_eq!(r.status, 201, "{r:?}");
    let tgz2 = reg.publish_ok(&token, "@acme/widget", "1.1.0");

    let a = reg.get_json("/npm/@acme/widget");
    let b = reg.get_json("/npm/@acme%2fwidget");
    assert_eq!(a["versions"], b["versions"]);
    assert_eq!(a["name"], "@acme/widget");
    assert_eq!(a["dist-tags"]["latest"], "1.1.0");
    assert_eq!(a["versions"]["1.0.0"]["dist"]["tarball"], "http://localhost/npm/@acme/widget/-/widget-1.0.0.tgz");
    assert!(reg.mem.store.keys().contains(&"npm/packages/@acme/widget/widget-1.0.0.tgz".to_string()));

    for path in ["/npm/@acme/widget/-/widget-1.0.0.tgz", "/npm/@acme%2fwidget/-/widget-1.0.0.tgz"] {
        let t = reg.send(Request::new(Method::Get, path));
        assert_eq!((t.status, &t.body), (200, &tgz1), "{path}");
    }
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/@acme%2fwidget/-/widget-1.1.0.tgz")).body, tgz2);
    assert_eq!(reg.get_json("/npm/@acme%2fwidget/1.0.0")["version"], "1.0.0");
    assert_eq!(reg.get_json("/npm/-/package/@acme%2fwidget/dist-tags")["latest"], "1.1.0");
}

// ---------------------------------------------------------------- refused publishes

#[test]
fn republish_of_existing_version_is_403_and_keeps_the_original() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    let original = reg.publish_ok(&token, "foo", "1.0.0");
    let keys = reg.mem.store.keys();
    // Different bytes under the same version number.
    let mut other = tarball("foo", "1.0.0");
    other.extend_from_slice(&[0; 16]);
    let r = reg.send(put_json("/npm/foo", &token, &publish_body("foo", "1.0.0", &other)));
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(reg.mem.store.keys(), keys);
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/foo/-/foo-1.0.0.tgz")).body, original);
    assert_eq!(reg.get_json("/npm/foo")["versions"]["1.0.0"]["dist"]["shasum"], sha1_hex(&original));
}

#[test]
fn name_mismatch_malformed_json_and_oversized_body_are_refused() {
    let reg = Reg::with_vars(&[("MAX_BODY_BYTES", "2048")]);
    let token = reg.user_with_token("alice");
    let tgz = tarball("foo", "1.0.0");

    // The body names another package than the URL.
    refused(&reg, put_json("/npm/foo", &token, &publish_body("bar", "1.0.0", &tgz)), 400, "foo");
    assert!(reg.package_keys("bar").is_empty());
    // A version manifest naming another package.
    let mut body = publish_body("foo", "1.0.0", &tgz);
    body["versions"]["1.0.0"]["name"] = json!("bar");
    refused(&reg, put_json("/npm/foo", &token, &body), 400, "foo");

    let bad = bearer(Request::new(Method::Put, "/npm/foo"), &token).with_body(b"{\"name\": \"foo\", ".to_vec());
    refused(&reg, bad, 400, "foo");

    let mut big = publish_body("foo", "1.0.0", &tgz);
    big["readme"] = json!("x".repeat(4096));
    refused(&reg, put_json("/npm/foo", &token, &big), 413, "foo");
}

#[test]
fn publish_without_valid_credentials_or_rights_is_refused() {
    let reg = Reg::new();
    reg.create_user("alice");
    let body = publish_body("foo", "1.0.0", &tarball("foo", "1.0.0"));
    let no_token = Request::new(Method::Put, "/npm/foo").with_body(json_body(&body));
    let r = refused(&reg, no_token, 401, "foo");
    assert!(r.header("WWW-Authenticate").is_some());
    refused(&reg, put_json("/npm/foo", "not-a-real-token", &body), 401, "foo");

    let readonly = reg.create_token("alice", json!({"readonly": true}));
    refused(&reg, put_json("/npm/foo", &readonly, &body), 403, "foo");
    // The read-only token still reads (a 404 here, not 401/403).
    assert_eq!(reg.send(get("/npm/foo", &readonly)).status, 404);

    let other = reg.create_token("alice", json!({"scopes": ["npm:package:other:*"]}));
    refused(&reg, put_json("/npm/foo", &other, &body), 403, "foo");
    // …while it may publish the package its scope names.
    reg.publish_ok(&other, "other", "1.0.0");
}

#[test]
fn attachments_that_disagree_with_their_metadata_are_400() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    let tgz = tarball("foo", "1.0.0");

    let mut body = publish_body("foo", "1.0.0", &tgz);
    first_attachment(&mut body)["length"] = json!(tgz.len() + 1);
    refused(&reg, put_json("/npm/foo", &token, &body), 400, "foo");

    let mut body = publish_body("foo", "1.0.0", &tgz);
    body["versions"]["1.0.0"]["dist"]["shasum"] = json!("0".repeat(40));
    refused(&reg, put_json("/npm/foo", &token, &body), 400, "foo");

    let mut body = publish_body("foo", "1.0.0", &tgz);
    body["versions"]["1.0.0"]["dist"]["integrity"] = json!(format!("sha512-{}", b64(&[0u8; 64])));
    refused(&reg, put_json("/npm/foo", &token, &body), 400, "foo");

    let mut body = publish_body("foo", "1.0.0", &tgz);
    first_attachment(&mut body)["data"] = json!("%%% not base64 %%%");
    refused(&reg, put_json("/npm/foo", &token, &body), 400, "foo");

    // Consistent length and hashes, but not gzip: refused for what it is.
    let zip = b"PK\x03\x04 this is not a gzipped tarball".to_vec();
    refused(&reg, put_json("/npm/foo", &token, &publish_body("foo", "1.0.0", &zip)), 400, "foo");
    assert!(reg.mem.store.keys().is_empty());
}

#[test]
fn invalid_package_names_are_400_and_store_nothing() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    let tgz = tarball("x", "1.0.0");
    for (path, name) in [
        ("/npm/..%2fetc", "../etc"),
        ("/npm/.hidden", ".hidden"),
        ("/npm/_x", "_x"),
        ("/npm/Foo", "Foo"),
        ("/npm/foo%2fbar", "foo/bar"),
        ("/npm/@scope%2f..%2f..%2fx", "@scope/../../x"),
        ("/npm/@..%2fx", "@../x"),
    ] {
        let r = reg.send(put_json(path, &token, &publish_body(name, "1.0.0", &tgz)));
        assert_eq!(r.status, 400, "PUT {path}: {r:?}");
    }
    for path in ["/npm/..%2fetc", "/npm/.hidden", "/npm/_x", "/npm/..%2fetc/-/etc-1.0.0.tgz"] {
        assert_eq!(reg.send(Request::new(Method::Get, path)).status, 400, "GET {path}");
    }
    // Old mixed-case names may still be read (there is none here, so 404 rather than 400).
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/Foo")).status, 404);
    assert!(reg.mem.store.keys().is_empty(), "stored {:?}", reg.mem.store.keys());
}

#[test]
fn invalid_version_is_400() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    let tgz = tarball("foo", "1.0");
    refused(&reg, put_json("/npm/foo", &token, &publish_body("foo", "1.0", &tgz)), 400, "foo");
}

// ---------------------------------------------------------------- dist-tags

#[test]
fn dist_tags_set_list_and_remove() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    reg.publish_ok(&token, "foo", "1.0.0");
    reg.publish_ok(&token, "foo", "1.1.0");
    let tags = "/npm/-/package/foo/dist-tags";
    assert_eq!(reg.get_json(tags), json!({"latest": "1.1.0"}));

    let put_tag = |tag: &str, body: &str| {
        reg.send(bearer(Request::new(Method::Put, &format!("{tags}/{tag}")), &token).with_body(body.as_bytes().to_vec()))
    };
    assert_eq!(put_tag("beta", "\"1.0.0\"").status, 201);
    assert_eq!(reg.get_json(tags), json!({"latest": "1.1.0", "beta": "1.0.0"}));
    assert_eq!(reg.get_json("/npm/foo")["dist-tags"]["beta"], "1.0.0");
    assert_eq!(reg.get_json("/npm/foo/beta")["version"], "1.0.0");

    assert_eq!(put_tag("beta", "\"9.9.9\"").status, 404);
    assert_eq!(put_tag("1.2.3", "\"1.0.0\"").status, 400);
    assert_eq!(put_tag("beta", "not json").status, 400);
    let anonymous = Request::new(Method::Put, &format!("{tags}/beta")).with_body(b"\"1.1.0\"".to_vec());
    assert_eq!(reg.send(anonymous).status, 401);
    assert_eq!(reg.get_json(tags), json!({"latest": "1.1.0", "beta": "1.0.0"}));

    assert_eq!(reg.send(delete(&format!("{tags}/beta"), &token)).status, 200);
    assert_eq!(reg.get_json(tags), json!({"latest": "1.1.0"}));
    assert_eq!(reg.send(delete(&format!("{tags}/latest"), &token)).status, 400);
    assert_eq!(reg.send(delete(&format!("{tags}/nope"), &token)).status, 404);
    assert_eq!(reg.get_json(tags), json!({"latest": "1.1.0"}));
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/-/package/missing/dist-tags")).status, 404);
}

// ---------------------------------------------------------------- deprecate

#[test]
fn deprecate_and_undeprecate_a_version() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    reg.publish_ok(&token, "foo", "1.0.0");
    reg.publish_ok(&token, "foo", "1.1.0");
    let keys = reg.mem.store.keys();

    // `npm deprecate` sends the whole packument back, without attachments.
    let mut doc = reg.get_json("/npm/foo");
    let rev = doc["_rev"].clone();
    doc["versions"]["1.0.0"]["deprecated"] = json!("use 1.1.0");
    let r = reg.send(put_json("/npm/foo", &token, &doc));
    assert_eq!(r.status, 200, "{r:?}");
    let doc = reg.get_json("/npm/foo");
    assert_ne!(doc["_rev"], rev);
    assert_eq!(doc["versions"]["1.0.0"]["deprecated"], "use 1.1.0");
    assert!(doc["versions"]["1.1.0"].get("deprecated").is_none());
    let abbreviated = reg.send(Request::new(Method::Get, "/npm/foo").with_header("Accept", "application/vnd.npm.install-v1+json"));
    assert_eq!(abbreviated.json()["versions"]["1.0.0"]["deprecated"], "use 1.1.0");
    assert_eq!(reg.mem.store.keys(), keys, "deprecating must not add or drop objects");

    let mut doc = doc;
    doc["versions"]["1.0.0"]["deprecated"] = json!("");
    assert_eq!(reg.send(put_json("/npm/foo", &token, &doc)).status, 200);
    assert!(reg.get_json("/npm/foo")["versions"]["1.0.0"].get("deprecated").is_none());
}

// ---------------------------------------------------------------- unpublish

#[test]
fn unpublish_one_version_moves_latest_and_deletes_its_tarball() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    reg.publish_ok(&token, "foo", "1.0.0");
    let kept = reg.publish_ok(&token, "foo", "1.1.0");
    reg.publish_ok(&token, "foo", "2.0.0");
    assert_eq!(reg.get_json("/npm/foo")["dist-tags"]["latest"], "2.0.0");

    // `npm unpublish foo@2.0.0` PUTs the packument without that version.
    let mut doc = reg.get_json("/npm/foo");
    doc["versions"].as_object_mut().unwrap().remove("2.0.0");
    let rev = doc["_rev"].as_str().unwrap().to_string();
    let r = reg.send(put_json(&format!("/npm/foo/-rev/{rev}"), &token, &doc));
    assert_eq!(r.status, 200, "{r:?}");

    let doc = reg.get_json("/npm/foo");
    assert!(doc["versions"].get("2.0.0").is_none());
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0");
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/foo/-/foo-2.0.0.tgz")).status, 404);
    assert!(!reg.mem.store.keys().contains(&"npm/packages/foo/foo-2.0.0.tgz".to_string()));
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/foo/-/foo-1.1.0.tgz")).body, kept);

    // A version number once used is never reused while the package lives.
    let tgz = tarball("foo", "2.0.0");
    let r = reg.send(put_json("/npm/foo", &token, &publish_body("foo", "2.0.0", &tgz)));
    assert_eq!(r.status, 403, "{r:?}");
    assert!(!reg.mem.store.keys().contains(&"npm/packages/foo/foo-2.0.0.tgz".to_string()));
    assert!(reg.get_json("/npm/foo")["versions"].get("2.0.0").is_none());
}

#[test]
fn unpublish_needs_write_rights() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    reg.publish_ok(&token, "foo", "1.0.0");
    let readonly = reg.create_token("alice", json!({"readonly": true}));
    let doc = reg.get_json("/npm/foo");
    let rev = doc["_rev"].as_str().unwrap().to_string();
    assert_eq!(reg.send(Request::new(Method::Delete, &format!("/npm/foo/-rev/{rev}"))).status, 401);
    assert_eq!(reg.send(delete(&format!("/npm/foo/-rev/{rev}"), &readonly)).status, 403);
    assert_eq!(reg.package_keys("foo").len(), 3, "packument, tarball and search marker stay");
}

#[test]
fn unpublish_whole_package_removes_packument_and_every_tarball() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    reg.publish_ok(&token, "foo", "1.0.0");
    reg.publish_ok(&token, "foo", "1.1.0");
    // A package whose name starts like this one must survive.
    let neighbour = reg.publish_ok(&token, "foobar", "1.0.0");

    let rev = reg.get_json("/npm/foo")["_rev"].as_str().unwrap().to_string();
    let r = reg.send(delete(&format!("/npm/foo/-rev/{rev}"), &token));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/foo")).status, 404);
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/foo/-/foo-1.0.0.tgz")).status, 404);
    assert!(reg.package_keys("foo").is_empty(), "left behind: {:?}", reg.package_keys("foo"));
    let found = reg.get_json("/npm/-/v1/search?text=foo");
    assert_eq!(found["total"], 1, "{found}");

    assert_eq!(reg.send(Request::new(Method::Get, "/npm/foobar/-/foobar-1.0.0.tgz")).body, neighbour);
    assert_eq!(reg.get_json("/npm/foobar")["dist-tags"]["latest"], "1.0.0");
}

// ---------------------------------------------------------------- concurrency

#[test]
fn concurrent_publishes_of_different_versions_all_survive() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    let versions: Vec<String> = (0..20).map(|i| format!("1.0.{i}")).collect();
    let requests: Vec<Request> = versions
        .iter()
        .map(|v| put_json("/npm/foo", &token, &publish_body("foo", v, &tarball("foo", v))))
        .collect();
    let responses = block_on(futures::future::join_all(requests.into_iter().map(|r| send_async(&reg.app, r))));
    for r in &responses {
        assert_eq!(r.status, 201, "{r:?}");
    }
    let doc = reg.get_json("/npm/foo");
    let published = doc["versions"].as_object().unwrap();
    for v in &versions {
        assert!(published.contains_key(v), "version {v} lost: {:?}", published.keys().collect::<Vec<_>>());
        assert!(reg.mem.store.keys().contains(&format!("npm/packages/foo/foo-{v}.tgz")));
    }
    assert_eq!(published.len(), 20);
    assert!(versions.iter().any(|v| doc["dist-tags"]["latest"] == v.as_str()));
}

// ---------------------------------------------------------------- search

fn search_names(result: &Value) -> Vec<String> {
    result["objects"].as_array().unwrap().iter().map(|o| o["package"]["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn search_ranks_exact_then_prefix_then_other_and_pages() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    for name in ["react-dom", "unrelated", "preact", "react", "@acme/react-ui"] {
        reg.publish_ok(&token, name, "1.0.0");
    }
    // Matches only through its description.
    let tgz = tarball("vue", "2.0.0");
    let mut body = publish_body("vue", "2.0.0", &tgz);
    body["versions"]["2.0.0"]["description"] = json!("A Reactive framework");
    assert_eq!(reg.send(put_json("/npm/vue", &token, &body)).status, 201);

    let all = reg.get_json("/npm/-/v1/search?text=react");
    assert_eq!(search_names(&all), ["react", "@acme/react-ui", "react-dom", "preact", "vue"]);
    assert_eq!(all["total"], 5);
    assert_eq!(all["objects"][0]["package"]["version"], "1.0.0");
    assert_eq!(all["objects"][4]["package"]["version"], "2.0.0");
    assert!(all["objects"][0]["searchScore"].as_f64().unwrap() > all["objects"][3]["searchScore"].as_f64().unwrap());

    let page = reg.get_json("/npm/-/v1/search?text=react&size=2&from=1");
    assert_eq!(search_names(&page), ["@acme/react-ui", "react-dom"]);
    assert_eq!(page["total"], 5);
    let past_end = reg.get_json("/npm/-/v1/search?text=react&from=10");
    assert_eq!((search_names(&past_end).len(), past_end["total"].as_u64()), (0, Some(5)));
    assert_eq!(reg.get_json("/npm/-/v1/search?text=zzz")["total"], 0);
}

// ---------------------------------------------------------------- login and tokens

#[test]
fn login_whoami_and_token_lifecycle() {
    let reg = Reg::new();
    reg.create_user("alice");
    let login = |password: &str| {
        let body = json!({"_id": "org.couchdb.user:alice", "name": "alice", "password": password, "type": "user"});
        reg.send(Request::new(Method::Put, "/npm/-/user/org.couchdb.user:alice").with_body(json_body(&body)))
    };
    let r = login("wrong password!");
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.json().get("token").is_none());
    let r = login(PASSWORD);
    assert_eq!(r.status, 201, "{r:?}");
    let token = r.json()["token"].as_str().unwrap().to_string();

    assert_eq!(reg.send(get("/npm/-/whoami", &token)).json(), json!({"username": "alice"}));
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/-/whoami")).status, 401);

    // `npm token create` re-checks the password.
    let create = |password: &str| reg.send(bearer(Request::new(Method::Post, "/npm/-/npm/v1/tokens"), &token).with_body(json_body(&json!({"password": password}))));
    assert_eq!(create("nope nope nope").status, 401);
    let r = create(PASSWORD);
    assert_eq!(r.status, 201, "{r:?}");
    let second = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(r.json()["key"], sha256_hex(second.as_bytes()));
    assert_eq!(reg.send(get("/npm/-/whoami", &second)).status, 200);

    // The listing names tokens by key and never shows a secret.
    let list = reg.send(get("/npm/-/npm/v1/tokens", &token));
    assert_eq!(list.status, 200);
    assert!(!list.text().contains(&token) && !list.text().contains(&second));
    let keys: Vec<String> = list.json()["objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&sha256_hex(token.as_bytes())) && keys.contains(&sha256_hex(second.as_bytes())));

    let revoke = format!("/npm/-/npm/v1/tokens/token/{}", sha256_hex(token.as_bytes()));
    assert_eq!(reg.send(delete(&revoke, &second)).status, 204);
    assert_eq!(reg.send(get("/npm/-/whoami", &token)).status, 401);
    assert_eq!(reg.send(get("/npm/-/whoami", &second)).status, 200);
    assert_eq!(reg.send(delete(&revoke, &second)).status, 404);
    assert_eq!(reg.send(get("/npm/-/npm/v1/tokens", &second)).json()["total"], 1);
}

#[test]
fn login_of_unknown_user_is_401() {
    let reg = Reg::new();
    let body = json!({"name": "nobody", "password": PASSWORD});
    let r = reg.send(Request::new(Method::Put, "/npm/-/user/org.couchdb.user:nobody").with_body(json_body(&body)));
    assert_eq!(r.status, 401);
}

// ---------------------------------------------------------------- hooks, read-only, features

/// Denies writes to one package and records who every put came from.
struct Policy {
    blocked: &'static str,
    seen: RefCell<Vec<(String, Option<String>)>>,
}

#[async_trait::async_trait(?Send)]
impl StorageHooks for Policy {
    async fn before_put(&self, ctx: &HookContext<'_>) -> HookDecision {
        self.seen.borrow_mut().push((ctx.key.to_string(), ctx.actor.user_id.clone()));
        if ctx.metadata.package.as_deref() == Some(self.blocked) {
            HookDecision::Deny(format!("{} is blocked by policy", self.blocked))
        } else {
            HookDecision::Allow
        }
    }
}

#[test]
fn storage_hook_denial_is_403_with_its_reason_and_stores_nothing() {
    let policy = Rc::new(Policy { blocked: "blocked", seen: RefCell::default() });
    let reg = Reg::new().with_hook(policy.clone());
    let token = reg.user_with_token("alice");
    let tgz = tarball("blocked", "1.0.0");
    let r = refused(&reg, put_json("/npm/blocked", &token, &publish_body("blocked", "1.0.0", &tgz)), 403, "blocked");
    assert!(r.text().contains("blocked is blocked by policy"), "{r:?}");
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/blocked")).status, 404);

    reg.publish_ok(&token, "fine", "1.0.0");
    let seen = policy.seen.borrow();
    assert!(seen.contains(&("npm/packages/fine/fine-1.0.0.tgz".to_string(), Some("alice".to_string()))), "{seen:?}");
}

#[test]
fn read_only_registry_refuses_publish() {
    let reg = Reg::with_vars(&[("READ_ONLY", "true")]);
    let token = reg.user_with_token("alice");
    let tgz = tarball("foo", "1.0.0");
    let r = refused(&reg, put_json("/npm/foo", &token, &publish_body("foo", "1.0.0", &tgz)), 403, "foo");
    assert!(r.text().contains("read-only"), "{r:?}");
    assert!(reg.mem.store.keys().is_empty());
}

#[test]
fn publish_feature_flag_off_refuses_publish() {
    let reg = Reg::with_vars(&[("NPM_FEATURES", "publish=false")]);
    let token = reg.user_with_token("alice");
    let tgz = tarball("foo", "1.0.0");
    let r = reg.send(put_json("/npm/foo", &token, &publish_body("foo", "1.0.0", &tgz)));
    // A refusal (403 or 405), never a success.
    assert!(matches!(r.status, 403 | 405), "{r:?}");
    assert!(reg.mem.store.keys().is_empty());
    // Other features stay on.
    assert_eq!(reg.get_json("/npm/-/v1/search?text=foo")["total"], 0);
}

#[test]
fn search_feature_flag_off_is_404() {
    let reg = Reg::with_vars(&[("NPM_FEATURES", "search=false")]);
    let token = reg.user_with_token("alice");
    reg.publish_ok(&token, "foo", "1.0.0");
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/-/v1/search?text=foo")).status, 404);
    assert_eq!(reg.send(get("/npm/-/v1/search?text=foo", &token)).status, 404);
}

#[test]
fn anonymous_read_none_requires_a_token_to_read() {
    let reg = Reg::with_vars(&[("ANONYMOUS_READ", "none")]);
    let token = reg.user_with_token("alice");
    let tgz = reg.publish_ok(&token, "foo", "1.0.0");

    let r = reg.send(Request::new(Method::Get, "/npm/foo"));
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").is_some());
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/foo/-/foo-1.0.0.tgz")).status, 401);
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/foo/1.0.0")).status, 401);
    assert_eq!(reg.send(Request::new(Method::Get, "/npm/-/v1/search?text=foo")).status, 401);

    assert_eq!(reg.send(get("/npm/foo", &token)).json()["name"], "foo");
    assert_eq!(reg.send(get("/npm/foo/-/foo-1.0.0.tgz", &token)).body, tgz);
    assert_eq!(reg.send(get("/npm/-/v1/search?text=foo", &token)).json()["total"], 1);

    // A token scoped to another package may not read this one, nor find it.
    let other = reg.create_token("alice", json!({"scopes": ["npm:package:other:read"]}));
    assert_eq!(reg.send(get("/npm/foo", &other)).status, 403);
    assert_eq!(reg.send(get("/npm/-/v1/search?text=foo", &other)).json()["total"], 0);
}
