//! OCI as a second tenant or a careless operator would try it, against the in-memory platform:
//! repository ownership and per-user namespaces, `READ_ONLY` on every kind of write, object
//! metadata that must fit R2's 2 KiB, pushes that fail half-way, manifest media types, and
//! `PUBLIC_URL` against the request's Host.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use async_trait::async_trait;
use common::*;
use edgeregistry::config::Config;
use edgeregistry::http::{Body, Method, Request};
use edgeregistry::platform::{
    ByteRange, Object, ObjectMeta, ObjectStore, Platform, PutOptions, PutOutcome, StoreError, StoreResult, UploadedPart,
};
use edgeregistry::platform::{ListOptions, ListPage};
use edgeregistry::storage::{HookContext, HookDecision, StorageHooks};
use edgeregistry::App;
use futures::executor::block_on;
use serde_json::{json, Value};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn users(reg: &Reg, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            reg.create_user(n);
            reg.create_token(n, json!({"protocol": "oci"}))
        })
        .collect()
}

fn message(r: &Resp) -> String {
    r.json()["errors"][0]["message"].as_str().unwrap_or_default().to_string()
}

fn denied(r: &Resp, what: &str) {
    assert_eq!(r.status, 403, "{what}: {r:?}");
    assert_oci_error(r, 403, "DENIED");
}

/// Every object with its etag (an overwrite shows), open multipart uploads, sessions.
fn snapshot(reg: &Reg) -> (Vec<(String, String)>, usize, usize) {
    let objects = reg
        .mem
        .store
        .keys()
        .into_iter()
        .map(|k| {
            let etag = block_on(reg.mem.store.head(&k)).unwrap().map(|m| m.etag).unwrap_or_default();
            (k, etag)
        })
        .collect();
    (objects, reg.mem.store.open_uploads(), reg.mem.sessions.len())
}

fn push_manifest_doc(reg: &Reg, token: &str, repo: &str, reference: &str, doc: &Value) -> Resp {
    reg.put_manifest(token, repo, reference, Some(OCI_MANIFEST), &json_body(doc))
}

// ---------------------------------------------------------------- ownership

#[test]
fn bob_cannot_push_to_delete_tags_of_or_delete_manifests_of_alices_repository() {
    let reg = Reg::oci(&[]);
    let tokens = users(&reg, &["alice", "bob"]);
    let (alice, bob) = (&tokens[0], &tokens[1]);
    let (manifest, digest) = reg.push_image(alice, "team/app", "v1", "alice");
    let layer = b"layer bytes of alice".to_vec();
    let layer_digest = oci_digest(&layer);
    // An upload alice began, for bob to try to hijack.
    let started = reg.send(oci(Method::Post, "/v2/team/app/blobs/uploads/", alice));
    assert_eq!(started.status, 202, "{started:?}");
    let location = started.header("Location").unwrap().to_string();
    let before = snapshot(&reg);

    let bob_blob = b"bob's layer".to_vec();
    let attempts = [
        ("monolithic blob push", oci(Method::Post, &format!("/v2/team/app/blobs/uploads/?digest={}", oci_digest(&bob_blob)), bob).with_body(bob_blob.clone())),
        ("upload start", oci(Method::Post, "/v2/team/app/blobs/uploads/", bob)),
        ("mount", oci(Method::Post, &format!("/v2/team/app/blobs/uploads/?mount={layer_digest}&from=team/app"), bob)),
        ("PATCH of alice's upload", oci(Method::Patch, &location, bob).with_body(b"xx".to_vec())),
        ("PUT of alice's upload", oci(Method::Put, &format!("{location}?digest={}", oci_digest(b"xx")), bob).with_body(b"xx".to_vec())),
        ("manifest push", oci(Method::Put, "/v2/team/app/manifests/v2", bob).with_header("Content-Type", OCI_MANIFEST).with_body(manifest.clone())),
        ("manifest overwrite", oci(Method::Put, "/v2/team/app/manifests/v1", bob).with_header("Content-Type", OCI_MANIFEST).with_body(manifest.clone())),
        ("tag delete", oci(Method::Delete, "/v2/team/app/manifests/v1", bob)),
        ("manifest delete", oci(Method::Delete, &format!("/v2/team/app/manifests/{digest}"), bob)),
        ("blob delete", oci(Method::Delete, &format!("/v2/team/app/blobs/{layer_digest}"), bob)),
    ];
    for (what, req) in attempts {
        let r = reg.send(req);
        denied(&r, what);
        assert_eq!(message(&r), "user bob is not an owner of team/app", "{what}");
    }
    assert_eq!(snapshot(&reg), before, "a refused write changed something");
    // Reads stay open to him (his token may pull anything).
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", bob)).body, manifest);

    // The token endpoint does not grant him what he could not use: a clean 403 follows.
    let r = reg.docker_token(Some(("bob", PASSWORD)), &["repository:team/app:pull,push,delete"]);
    assert_eq!(jwt_claims(r.json()["token"].as_str().unwrap())["access"][0]["actions"], json!(["pull"]));
    let jwt = r.json()["token"].as_str().unwrap().to_string();
    denied(&reg.send(oci(Method::Post, "/v2/team/app/blobs/uploads/", &jwt)), "push with a pull-only JWT");
    denied(&reg.send(oci(Method::Delete, "/v2/team/app/manifests/v1", &jwt)), "delete with a pull-only JWT");
    // Alice gets everything she asks for.
    let r = reg.docker_token(Some(("alice", PASSWORD)), &["repository:team/app:pull,push,delete"]);
    assert_eq!(jwt_claims(r.json()["token"].as_str().unwrap())["access"][0]["actions"], json!(["pull", "push", "delete"]));
    // Bob's own new repository is his.
    reg.push_image(bob, "bob/tools", "v1", "bob");
    denied(&reg.send(oci(Method::Delete, "/v2/bob/tools/manifests/v1", alice)), "alice deleting bob's tag");
    assert_eq!(snapshot(&reg).0.iter().filter(|(k, _)| k.starts_with("oci/tags/team/app/")).count(), 1);
    assert_eq!(reg.send(oci(Method::Delete, "/v2/team/app/manifests/v1", alice)).status, 202);
}

#[test]
fn admins_and_admin_granted_scopes_may_write_any_repository() {
    let reg = Reg::oci(&[]);
    let tokens = users(&reg, &["alice", "bob"]);
    let alice = &tokens[0];
    reg.push_image(alice, "team/app", "v1", "alice");

    // The ADMIN_TOKEN secret.
    reg.push_image(ADMIN_TOKEN, "team/app", "admin", "admin secret");
    assert_eq!(reg.send(oci(Method::Delete, "/v2/team/app/manifests/admin", ADMIN_TOKEN)).status, 202);

    // An admin token of an admin user, directly and through the token endpoint.
    let r = reg.send(admin(Method::Post, "/-/admin/users").with_body(json_body(&json!({"name": "root", "password": PASSWORD, "admin": true}))));
    assert_eq!(r.status, 201, "{r:?}");
    let root = reg.create_token("root", json!({"protocol": "oci", "admin": true}));
    reg.push_image(&root, "team/app", "root", "admin token");
    let r = reg.docker_token(Some(("root", &root)), &["repository:team/app:pull,push,delete"]);
    let jwt = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(jwt_claims(&jwt)["access"][0]["actions"], json!(["pull", "push", "delete"]));
    assert_eq!(reg.send(oci(Method::Delete, "/v2/team/app/manifests/root", &jwt)).status, 202);
    // The same admin user's ordinary token is no admin credential.
    let plain = reg.create_token("root", json!({"protocol": "oci"}));
    denied(&reg.send(oci(Method::Delete, "/v2/team/app/manifests/v1", &plain)), "an admin user's ordinary token");

    // A scope an admin granted bob naming the repository, directly and through the token endpoint.
    let granted = reg.create_token("bob", json!({"protocol": "oci", "scopes": ["oci:repository:team/app:*"]}));
    reg.push_image(&granted, "team/app", "bob", "granted");
    let r = reg.docker_token(Some(("bob", &granted)), &["repository:team/app:pull,push,delete"]);
    let jwt = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(jwt_claims(&jwt)["access"][0]["actions"], json!(["pull", "push", "delete"]));
    assert_eq!(reg.send(oci(Method::Delete, "/v2/team/app/manifests/bob", &jwt)).status, 202);
    assert_eq!(reg.send(oci(Method::Delete, "/v2/team/app/manifests/v1", &granted)).status, 202);
    // A grant for another repository does not reach this one, nor do scopes for every one.
    let elsewhere = reg.create_token("bob", json!({"protocol": "oci", "scopes": ["oci:repository:team/other:*", "oci:repository:*:*"]}));
    let (_, d) = reg.push_image(alice, "team/app", "v2", "alice again");
    denied(&reg.send(oci(Method::Delete, &format!("/v2/team/app/manifests/{d}"), &elsewhere)), "a grant for another repository");
    denied(&reg.send(oci(Method::Post, "/v2/team/app/blobs/uploads/", &elsewhere)), "a grant for another repository");
}

#[test]
fn user_namespaces_keep_users_under_their_own_name() {
    let reg = Reg::oci(&[("OCI_USER_NAMESPACES", "true")]);
    let tokens = users(&reg, &["alice", "bob"]);
    let (alice, bob) = (&tokens[0], &tokens[1]);
    let r = reg.send(oci(Method::Post, "/v2/team/app/blobs/uploads/", alice));
    denied(&r, "alice outside her namespace");
    assert_eq!(message(&r), "user alice may only write repositories under alice/");
    denied(&reg.send(oci(Method::Post, "/v2/alice/blobs/uploads/", alice)), "a repository named like the user");
    reg.push_image(alice, "alice/app", "v1", "ns");
    reg.push_image(alice, "alice/deep/er", "v1", "ns");
    denied(&reg.send(oci(Method::Post, "/v2/alice/other/blobs/uploads/", bob)), "bob in alice's namespace");
    let r = reg.docker_token(Some(("alice", PASSWORD)), &["repository:alice/app:pull,push", "repository:team/app:pull,push"]);
    assert_eq!(
        jwt_claims(r.json()["token"].as_str().unwrap())["access"],
        json!([
            {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "team/app", "actions": ["pull"]},
        ])
    );
    // Admins and admin grants are not confined.
    reg.push_image(ADMIN_TOKEN, "team/base", "v1", "admin");
    let granted = reg.create_token("bob", json!({"protocol": "oci", "scopes": ["oci:repository:team/*:*"]}));
    reg.push_image(&granted, "team/ci", "v1", "granted");
    assert!(!reg.oci_keys().iter().any(|k| k.starts_with("oci/repositories/team/app")));
}

/// Plays a concurrent first push that lands between a claim's read and its create-only write.
struct RaceHook {
    store: Rc<edgeregistry::platform::memory::MemoryObjectStore>,
    winner: &'static str,
    done: Cell<bool>,
}

#[async_trait(?Send)]
impl StorageHooks for RaceHook {
    async fn before_put(&self, ctx: &HookContext<'_>) -> HookDecision {
        if ctx.key.starts_with("oci/repositories/") && !self.done.replace(true) {
            let opts = PutOptions { custom: BTreeMap::from([("owners".to_string(), self.winner.to_string())]), ..Default::default() };
            self.store.put(ctx.key, Body::Empty, opts).await.unwrap();
        }
        HookDecision::Allow
    }
}

#[test]
fn the_loser_of_a_race_to_own_a_new_repository_is_refused() {
    let reg = Reg::oci(&[]);
    let tokens = users(&reg, &["alice", "bob"]);
    let hook = Rc::new(RaceHook { store: reg.mem.store.clone(), winner: "alice", done: Cell::new(false) });
    let reg = reg.with_hook(hook);
    let data = b"bob's first layer".to_vec();
    let digest = oci_digest(&data);
    let r = reg.send(oci(Method::Post, &format!("/v2/team/new/blobs/uploads/?digest={digest}"), &tokens[1]).with_body(data.clone()));
    denied(&r, "bob after alice won");
    assert!(reg.keys_with("oci/links/team/new/").is_empty(), "the loser linked its blob");
    // The winner goes on.
    reg.push_blob(&tokens[0], "team/new", &data);
    let owners = block_on(reg.mem.store.head("oci/repositories/team/new")).unwrap().unwrap().custom;
    assert_eq!(owners.get("owners").map(String::as_str), Some("alice"));
}

#[test]
fn a_repository_from_before_owners_is_claimed_by_its_next_pusher() {
    let reg = Reg::oci(&[]);
    let tokens = users(&reg, &["alice", "bob"]);
    block_on(reg.mem.store.put("oci/repositories/old/app", Body::Empty, PutOptions::default())).unwrap();
    reg.push_image(&tokens[1], "old/app", "v1", "bob");
    let meta = block_on(reg.mem.store.head("oci/repositories/old/app")).unwrap().unwrap();
    assert_eq!(meta.custom.get("owners").map(String::as_str), Some("bob"));
    denied(&reg.send(oci(Method::Delete, "/v2/old/app/manifests/v1", &tokens[0])), "alice after bob claimed");
}

// ---------------------------------------------------------------- READ_ONLY

/// The same data and tokens, served with `READ_ONLY=true`.
fn read_only(reg: &Reg) -> App {
    let config = Config::from_vars(&vars(&[("JWT_SECRET", JWT_SECRET), ("READ_ONLY", "true")])).unwrap();
    App::new(reg.mem.platform.clone(), config)
}

#[test]
fn read_only_refuses_every_oci_write_and_writes_nothing() {
    let reg = Reg::oci(&[]);
    let token = users(&reg, &["alice"]).remove(0);
    let (manifest, digest) = reg.push_image(&token, "team/a", "v1", "ro");
    let layer = b"layer bytes of ro".to_vec();
    let layer_digest = oci_digest(&layer);
    reg.push_blob(&token, "team/b", b"something else in b");
    // Uploads begun before the switch.
    let (_, small) = {
        let r = reg.send(oci(Method::Post, "/v2/team/b/blobs/uploads/", &token));
        assert_eq!(r.status, 202);
        (r.status, r.header("Location").unwrap().to_string())
    };
    let patched = {
        let r = reg.send(oci(Method::Post, "/v2/team/b/blobs/uploads/", &token));
        let loc = r.header("Location").unwrap().to_string();
        let p = reg.send(oci(Method::Patch, &loc, &token).with_body(b"first".to_vec()));
        assert_eq!(p.status, 202, "{p:?}");
        loc
    };
    let ro = read_only(&reg);
    let send = |req: Request| {
        let r = block_on(send_async(&ro, req));
        reg.mem.background.run_all();
        r
    };
    let before = snapshot(&reg);
    let attempts = vec![
        ("mount into an existing repository", oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?mount={layer_digest}&from=team/a"), &token)),
        ("mount into a new repository", oci(Method::Post, &format!("/v2/team/c/blobs/uploads/?mount={layer_digest}&from=team/a"), &token)),
        ("re-link of a stored blob", oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?digest={layer_digest}"), &token).with_body(layer.clone())),
        ("a new blob", oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?digest={}", oci_digest(b"new")), &token).with_body(b"new".to_vec())),
        ("upload start", oci(Method::Post, "/v2/team/b/blobs/uploads/", &token)),
        ("PATCH (a tail object)", oci(Method::Patch, &small, &token).with_body(b"tail bytes".to_vec())),
        ("PUT finishing a patched upload", oci(Method::Put, &format!("{patched}?digest={}", oci_digest(b"first")), &token)),
        ("PUT carrying the whole blob", oci(Method::Put, &format!("{small}?digest={}", oci_digest(b"whole")), &token).with_body(b"whole".to_vec())),
        ("manifest put", oci(Method::Put, "/v2/team/a/manifests/v2", &token).with_header("Content-Type", OCI_MANIFEST).with_body(manifest.clone())),
        ("tag delete", oci(Method::Delete, "/v2/team/a/manifests/v1", &token)),
        ("manifest delete", oci(Method::Delete, &format!("/v2/team/a/manifests/{digest}"), &token)),
        ("blob delete", oci(Method::Delete, &format!("/v2/team/a/blobs/{layer_digest}"), &token)),
    ];
    for (what, req) in attempts {
        let r = send(req);
        denied(&r, what);
        assert_eq!(message(&r), "the registry is in read-only mode", "{what}");
        assert_eq!(snapshot(&reg), before, "{what} wrote something");
    }
    // Reads go on; the uploads finish once writes are back.
    assert_eq!(send(oci(Method::Get, "/v2/team/a/manifests/v1", &token)).body, manifest);
    let r = reg.send(oci(Method::Put, &format!("{patched}?digest={}", oci_digest(b"first")), &token));
    assert_eq!(r.status, 201, "{r:?}");
}

// ---------------------------------------------------------------- metadata bounds and half-written pushes

/// The in-memory store with R2's limit on custom metadata (2 KiB), and writes under chosen
/// prefixes failing, to see what a failure half-way leaves.
struct R2Like {
    inner: Rc<edgeregistry::platform::memory::MemoryObjectStore>,
    failing: RefCell<Vec<String>>,
}

#[async_trait(?Send)]
impl ObjectStore for R2Like {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<Option<Object>> {
        self.inner.get(key, range).await
    }
    async fn put(&self, key: &str, body: Body, opts: PutOptions) -> StoreResult<PutOutcome> {
        let metadata: usize = opts.custom.iter().map(|(k, v)| k.len() + v.len()).sum();
        if metadata > 2048 {
            return Err(StoreError::Backend(format!("put: Your metadata headers exceed the maximum allowed metadata size ({metadata})")));
        }
        if self.failing.borrow().iter().any(|p| key.starts_with(p.as_str())) {
            return Err(StoreError::Backend(format!("put {key}: injected failure")));
        }
        self.inner.put(key, body, opts).await
    }
    async fn delete(&self, keys: &[String]) -> StoreResult<()> {
        self.inner.delete(keys).await
    }
    async fn list(&self, prefix: &str, opts: ListOptions) -> StoreResult<ListPage> {
        self.inner.list(prefix, opts).await
    }
    async fn create_multipart(&self, key: &str, opts: PutOptions) -> StoreResult<String> {
        self.inner.create_multipart(key, opts).await
    }
    async fn upload_part(&self, key: &str, upload_id: &str, part_number: u16, body: Body) -> StoreResult<UploadedPart> {
        self.inner.upload_part(key, upload_id, part_number, body).await
    }
    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<UploadedPart>) -> StoreResult<ObjectMeta> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        self.inner.abort_multipart(key, upload_id).await
    }
}

/// A registry over [`R2Like`]; returns it with the store to inject failures into.
fn r2_like(extra: &[(&str, &str)]) -> (Reg, Rc<R2Like>) {
    let mem = edgeregistry::platform::memory::MemoryPlatform::new();
    let store = Rc::new(R2Like { inner: mem.store.clone(), failing: RefCell::new(Vec::new()) });
    let platform = Platform { store: store.clone(), ..mem.platform.clone() };
    let mut all = vec![("JWT_SECRET", JWT_SECRET)];
    all.extend_from_slice(extra);
    let app = App::new(platform, Config::from_vars(&vars(&all)).unwrap());
    (Reg { mem, app }, store)
}

fn referrer_doc(subject: &str, artifact_type: &str, annotations: Value) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "size": 10, "digest": subject},
        "annotations": annotations,
    })
}

fn head_status(reg: &Reg, token: &str, repo: &str, reference: &str) -> u16 {
    reg.send(oci(Method::Head, &format!("/v2/{repo}/manifests/{reference}"), token)).status
}

#[test]
fn over_long_strings_for_object_metadata_are_refused_before_anything_is_written() {
    let (reg, _) = r2_like(&[]);
    let token = users(&reg, &["alice"]).remove(0);
    let (_, subject) = reg.push_image(&token, "team/app", "v1", "subject");
    reg.push_blob(&token, "team/app", b"{}");
    let keys = reg.oci_keys();

    // A 3000-byte artifactType (it went into the referrer record's metadata).
    let doc = referrer_doc(&subject, &format!("application/{}", "x".repeat(3000)), json!({}));
    let body = json_body(&doc);
    let r = reg.put_manifest(&token, "team/app", &oci_digest(&body), Some(OCI_MANIFEST), &body);
    assert_oci_error(&r, 400, "MANIFEST_INVALID");
    // So is one that is short but not a media type.
    let r = push_manifest_doc(&reg, &token, "team/app", "v2", &referrer_doc(&subject, "not a media type", json!({})));
    assert_oci_error(&r, 400, "MANIFEST_INVALID");
    // A 3000-byte Content-Type on a tag push (it went into the tag's metadata as it came).
    let plain = json_body(&image_manifest(b"{}", &[]));
    let long_type = format!("application/vnd.oci.image.manifest.v1+json.{}", "y".repeat(3000));
    let r = reg.put_manifest(&token, "team/app", "v3", Some(&long_type), &plain);
    assert_oci_error(&r, 400, "MANIFEST_INVALID");
    assert_eq!(reg.oci_keys(), keys, "a refused push wrote something");
    for reference in [oci_digest(&body), "v2".into(), "v3".into(), oci_digest(&plain)] {
        assert_eq!(head_status(&reg, &token, "team/app", &reference), 404, "{reference}");
    }
    // A manifest type with 3000 bytes of parameters is that type: stored as the bare type.
    let with_params = format!("{OCI_MANIFEST}; x={}", "y".repeat(3000));
    assert_eq!(reg.put_manifest(&token, "team/app", "v3", Some(&with_params), &plain).status, 201);
    let r = reg.send(oci(Method::Head, "/v2/team/app/manifests/v3", &token));
    assert_eq!((r.status, r.header("Content-Type")), (200, Some(OCI_MANIFEST)));

    // Annotations too long for metadata: the referrer is stored and listed, without them.
    let big = referrer_doc(&subject, "application/vnd.example.sbom", json!({"note": "n".repeat(3000)}));
    let body = json_body(&big);
    let r = reg.put_manifest(&token, "team/app", &oci_digest(&body), Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 201, "{r:?}");
    let small = referrer_doc(&subject, "application/vnd.example.sig", json!({"note": "short"}));
    let small_body = json_body(&small);
    assert_eq!(reg.put_manifest(&token, "team/app", &oci_digest(&small_body), Some(OCI_MANIFEST), &small_body).status, 201);
    let listed = reg.send(oci(Method::Get, &format!("/v2/team/app/referrers/{subject}"), &token)).json();
    let mut entries = listed["manifests"].as_array().unwrap().clone();
    entries.sort_by_key(|e| e["artifactType"].as_str().unwrap().to_string());
    assert_eq!(entries[0]["artifactType"], "application/vnd.example.sbom");
    assert!(entries[0].get("annotations").is_none(), "{:?}", entries[0]);
    assert_eq!(entries[1]["annotations"], json!({"note": "short"}));
}

struct DenyTags;

#[async_trait(?Send)]
impl StorageHooks for DenyTags {
    async fn before_put(&self, ctx: &HookContext<'_>) -> HookDecision {
        if ctx.key.starts_with("oci/tags/") {
            HookDecision::Deny("tags are frozen".into())
        } else {
            HookDecision::Allow
        }
    }
}

#[test]
fn a_push_that_fails_half_way_leaves_nothing_visible() {
    let (reg, store) = r2_like(&[]);
    let token = users(&reg, &["alice"]).remove(0);
    let (_, subject) = reg.push_image(&token, "team/app", "v1", "subject");
    reg.push_blob(&token, "team/app", b"{}");

    // The referrer record cannot be written: the manifest that was stored goes again.
    *store.failing.borrow_mut() = vec!["oci/referrers/".into()];
    let keys = reg.oci_keys();
    let body = json_body(&referrer_doc(&subject, "application/vnd.example.sbom", json!({})));
    let digest = oci_digest(&body);
    let r = reg.put_manifest(&token, "team/app", "sbom", Some(OCI_MANIFEST), &body);
    assert_oci_error(&r, 500, "UNKNOWN");
    assert_eq!(reg.oci_keys(), keys);
    assert_eq!(head_status(&reg, &token, "team/app", &digest), 404);
    assert_eq!(head_status(&reg, &token, "team/app", "sbom"), 404);

    // The tag cannot be written: the manifest and its referrer record go again.
    *store.failing.borrow_mut() = vec!["oci/tags/".into()];
    let r = reg.put_manifest(&token, "team/app", "sbom", Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(reg.oci_keys(), keys);
    let listed = reg.send(oci(Method::Get, &format!("/v2/team/app/referrers/{subject}"), &token)).json();
    assert_eq!(listed["manifests"], json!([]));

    // A manifest that was there before the failed tag push stays.
    store.failing.borrow_mut().clear();
    assert_eq!(reg.put_manifest(&token, "team/app", &digest, Some(OCI_MANIFEST), &body).status, 201);
    *store.failing.borrow_mut() = vec!["oci/tags/".into()];
    assert_eq!(reg.put_manifest(&token, "team/app", "sbom", Some(OCI_MANIFEST), &body).status, 500);
    assert_eq!(head_status(&reg, &token, "team/app", &digest), 200);
    assert_eq!(head_status(&reg, &token, "team/app", "sbom"), 404);

    // A hook refusing the tag: 403, and the new manifest goes again.
    let reg = Reg::oci(&[]).with_hook(Rc::new(DenyTags));
    let token = users(&reg, &["alice"]).remove(0);
    reg.push_blob(&token, "team/app", b"{}");
    let keys = reg.oci_keys();
    let plain = json_body(&image_manifest(b"{}", &[]));
    let r = reg.put_manifest(&token, "team/app", "v1", Some(OCI_MANIFEST), &plain);
    assert_oci_error(&r, 403, "DENIED");
    assert_eq!(reg.oci_keys(), keys);
    assert_eq!(head_status(&reg, &token, "team/app", &oci_digest(&plain)), 404);
}

// ---------------------------------------------------------------- media types

#[test]
fn only_manifest_media_types_are_accepted_and_served() {
    let reg = Reg::oci(&[]);
    let token = users(&reg, &["alice"]).remove(0);
    reg.push_blob(&token, "team/app", b"{}");
    let plain = json_body(&image_manifest(b"{}", &[]));
    let keys = reg.oci_keys();
    for ct in ["text/html", "application/json", "application/octet-stream", "text/html; charset=utf-8", "application/vnd.oci.image.layer.v1.tar"] {
        let r = reg.put_manifest(&token, "team/app", "v1", Some(ct), &plain);
        assert_oci_error(&r, 400, "MANIFEST_INVALID");
        assert!(message(&r).contains("unsupported manifest media type"), "{ct}: {r:?}");
    }
    // Content-Type and the document's mediaType must agree.
    let r = reg.put_manifest(&token, "team/app", "v1", Some(DOCKER_MANIFEST), &plain);
    assert_oci_error(&r, 400, "MANIFEST_INVALID");
    // A document naming a type that is not a manifest type, without a Content-Type.
    let mut html = image_manifest(b"{}", &[]);
    html["mediaType"] = json!("text/html");
    assert_oci_error(&reg.put_manifest(&token, "team/app", "v1", None, &json_body(&html)), 400, "MANIFEST_INVALID");
    assert_eq!(reg.oci_keys(), keys);
    // Case and parameters do not matter; what is stored is the canonical type.
    let r = reg.put_manifest(&token, "team/app", "v1", Some("Application/VND.oci.image.manifest.v1+json; charset=utf-8"), &plain);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(reg.send(oci(Method::Head, "/v2/team/app/manifests/v1", &token)).header("Content-Type"), Some(OCI_MANIFEST));

    // Something stored before pushes were checked is never served as what it said it was.
    let digest = oci_digest(&plain);
    let opts = PutOptions { content_type: Some("text/html".into()), ..Default::default() };
    block_on(reg.mem.store.put(&format!("oci/manifests/team/app/{digest}"), Body::Bytes(plain.clone()), opts)).unwrap();
    let tag = PutOptions {
        custom: BTreeMap::from([
            ("digest".to_string(), digest.clone()),
            ("size".to_string(), plain.len().to_string()),
            ("mediaType".to_string(), "text/html".to_string()),
        ]),
        ..Default::default()
    };
    block_on(reg.mem.store.put("oci/tags/team/app/old", Body::Bytes(digest.clone().into_bytes()), tag)).unwrap();
    for reference in ["old", digest.as_str()] {
        for method in [Method::Get, Method::Head] {
            let r = reg.send(oci(method, &format!("/v2/team/app/manifests/{reference}"), &token));
            assert_eq!((r.status, r.header("Content-Type")), (200, Some(OCI_MANIFEST)), "{method:?} {reference}");
        }
    }
}

// ---------------------------------------------------------------- PUBLIC_URL

#[test]
fn with_public_url_nothing_follows_the_host_header() {
    let reg = Reg::oci(&[("PUBLIC_URL", "https://registry.example.com")]);
    let token = users(&reg, &["alice"]).remove(0);
    for t in ["a", "b", "c"] {
        reg.push_image(&token, &format!("team/{t}"), t, t);
    }
    let evil = |mut req: Request| {
        req.origin = "http://evil.example".into();
        req.with_header("Host", "evil.example").with_header("X-Forwarded-Host", "evil.example").with_header("Forwarded", "host=evil.example")
    };
    let mut seen = Vec::new();
    let mut check = |r: &Resp, what: &str| {
        for (name, value) in r.headers.iter() {
            assert!(!value.contains("evil"), "{what}: {name}: {value}");
            if value.contains("://") {
                assert!(value.contains("https://registry.example.com/"), "{what}: {name}: {value}");
            }
        }
        seen.extend(r.headers.iter().filter(|(n, _)| ["location", "link", "www-authenticate"].contains(&n.to_ascii_lowercase().as_str())).map(|(n, _)| n.to_ascii_lowercase()));
    };
    let r = reg.send(evil(Request::new(Method::Get, "/v2/team/a/tags/list")));
    assert!(r.header("WWW-Authenticate").unwrap().contains("realm=\"https://registry.example.com/oci/v2/token\""), "{r:?}");
    check(&r, "challenge");
    check(&reg.send(evil(Request::new(Method::Get, "/v2/")).with_header("Authorization", "Bearer nope")), "version check");
    let r = reg.send(evil(oci(Method::Post, "/v2/team/a/blobs/uploads/", &token)));
    check(&r, "upload start");
    let location = r.header("Location").unwrap().to_string();
    check(&reg.send(evil(oci(Method::Patch, &location, &token).with_body(b"abc".to_vec()))), "PATCH");
    check(&reg.send(evil(oci(Method::Get, &location, &token))), "upload status");
    check(&reg.send(evil(oci(Method::Put, &format!("{location}?digest={}", oci_digest(b"abc")), &token))), "upload finish");
    let plain = json_body(&image_manifest(b"{}", &[]));
    reg.push_blob(&token, "team/a", b"{}");
    check(&reg.send(evil(oci(Method::Put, "/v2/team/a/manifests/x", &token).with_header("Content-Type", OCI_MANIFEST).with_body(plain))), "manifest put");
    check(&reg.send(evil(oci(Method::Get, "/v2/team/a/tags/list?n=1", &token))), "tags page");
    check(&reg.send(evil(oci(Method::Get, "/v2/_catalog?n=1", &token))), "catalog page");
    check(&reg.send(evil(oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?mount={}&from=team/a", oci_digest(b"{}")), &token))), "mount");
    check(&reg.send(evil(Request::new(Method::Get, "/v2/token?service=edgeregistry&scope=repository:team/a:pull"))), "token endpoint");
    for h in ["location", "link", "www-authenticate"] {
        assert!(seen.iter().any(|s| s == h), "no {h} header was checked");
    }
}

#[test]
fn the_token_endpoint_reads_a_bounded_number_of_scopes() {
    let reg = Reg::oci(&[]);
    users(&reg, &["alice"]);
    let scopes: Vec<String> = (0..200).map(|i| format!("repository:team/r{i}:pull,push")).collect();
    let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let r = reg.docker_token(Some(("alice", PASSWORD)), &refs);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(jwt_claims(r.json()["token"].as_str().unwrap())["access"].as_array().map(Vec::len), Some(64));
}
