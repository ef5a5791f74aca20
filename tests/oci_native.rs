//! OCI Distribution (manifests, blobs, uploads, tags, catalog, referrers, the Docker token
//! endpoint) driven through `App::handle` against the in-memory platform: every endpoint's
//! edge cases and error codes, without workerd.

mod common;

use common::*;
use edgeregistry::http::{Body, Method, PlatformStream, Request};
use edgeregistry::platform::{ObjectStore, PutOptions};
use edgeregistry::oci::upload::{MAX_CHUNK, PART_SIZE};
use futures::executor::block_on;
use serde_json::{json, Value};

/// A registry with OCI tokens and a user `alice` holding a full OCI token.
fn setup() -> (Reg, String) {
    let reg = Reg::oci(&[]);
    reg.create_user("alice");
    let token = reg.create_token("alice", json!({"protocol": "oci"}));
    (reg, token)
}

fn challenge(r: &Resp) -> String {
    r.header("WWW-Authenticate").unwrap_or_else(|| panic!("no WWW-Authenticate: {r:?}")).to_string()
}

const REALM: &str = "Bearer realm=\"http://localhost/oci/v2/token\",service=\"edgeregistry\"";

/// The 401 an unauthorised OCI request gets: UNAUTHORIZED, and a challenge for `scope`.
fn assert_challenge(r: &Resp, scope: &str) {
    assert_oci_error(r, 401, "UNAUTHORIZED");
    let c = challenge(r);
    assert!(c.starts_with(REALM), "{c}");
    assert!(c.contains(&format!(",scope=\"{scope}\"")), "{c} does not ask for {scope}");
}

fn blob_key(digest: &str) -> String {
    format!("oci/blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap())
}

fn link_key(repo: &str, digest: &str) -> String {
    format!("oci/links/{repo}/{}", digest.strip_prefix("sha256:").unwrap())
}

// ---------------------------------------------------------------- upload helpers

/// POST an upload session in `repo`; returns the 202 response (asserted) and its Location.
fn start_upload(reg: &Reg, token: &str, repo: &str) -> (Resp, String) {
    let r = reg.send(oci(Method::Post, &format!("/v2/{repo}/blobs/uploads/"), token));
    assert_eq!(r.status, 202, "{r:?}");
    let location = r.header("Location").expect("Location").to_string();
    (r, location)
}

fn upload_id(location: &str) -> String {
    location.rsplit('/').next().unwrap().to_string()
}

fn patch_chunk(reg: &Reg, token: &str, location: &str, data: &[u8], range: Option<&str>) -> Resp {
    let mut req = oci(Method::Patch, location, token)
        .with_header("Content-Type", "application/octet-stream")
        .with_header("Content-Length", &data.len().to_string());
    if let Some(r) = range {
        req = req.with_header("Content-Range", r);
    }
    reg.send(req.with_body(data.to_vec()))
}

fn range_of(start: usize, len: usize) -> String {
    format!("{}-{}", start, start + len - 1)
}


fn tags_of(reg: &Reg, token: &str, repo: &str) -> Vec<String> {
    let r = reg.send(oci(Method::Get, &format!("/v2/{repo}/tags/list"), token));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["name"], repo);
    r.json()["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

/// The path and query of a `Link: <…>; rel="next"` header.
fn next_link(r: &Resp) -> Option<String> {
    let link = r.header("Link")?;
    let inner = link.strip_prefix('<').and_then(|l| l.split_once(">; rel=\"next\"")).unwrap_or_else(|| panic!("malformed Link {link}"));
    Some(inner.0.to_string())
}

// ---------------------------------------------------------------- version check

#[test]
fn version_check_answers_on_v2_and_v2_slash_at_root_and_under_base_path() {
    let (reg, token) = setup();
    for path in ["/v2", "/v2/", "/oci/v2", "/oci/v2/", "/oci", "/oci/"] {
        for method in [Method::Get, Method::Head] {
            let r = reg.send(oci(method, path, &token));
            assert_eq!(r.status, 200, "{method:?} {path}: {r:?}");
            assert_eq!(r.header("Docker-Distribution-API-Version"), Some("registry/2.0"), "{method:?} {path}");
            if method == Method::Get {
                assert_eq!(r.json(), json!({}), "{path}");
            } else {
                assert!(r.body.is_empty(), "HEAD {path} has a body");
            }
        }
    }
    // A moved base path moves the second form; the host-root form stays.
    let moved = Reg::oci(&[("OCI_BASE_PATH", "/containers")]);
    moved.create_user("alice");
    let token = moved.create_token("alice", json!({"protocol": "oci"}));
    for path in ["/v2/", "/containers/v2/", "/containers/v2"] {
        let r = moved.send(oci(Method::Get, path, &token));
        assert_eq!((r.status, r.header("Docker-Distribution-API-Version")), (200, Some("registry/2.0")), "{path}");
    }
    assert_eq!(moved.send(oci(Method::Get, "/oci/v2/", &token)).status, 404);
}

#[test]
fn version_check_without_valid_credentials_is_a_bearer_challenge() {
    let reg = Reg::oci(&[]);
    for path in ["/v2/", "/v2", "/oci/v2/"] {
        let r = reg.send(Request::new(Method::Get, path));
        assert_oci_error(&r, 401, "UNAUTHORIZED");
        // No repository is involved: realm and service only.
        assert_eq!(challenge(&r), REALM, "{path}");
        assert!(r.header("Docker-Distribution-API-Version").is_none());
        let head = reg.send(Request::new(Method::Head, path));
        assert_eq!((head.status, head.body.len()), (401, 0), "{path}");
        assert_eq!(challenge(&head), REALM);
    }
    // A token that is not valid counts as none: the client is sent for a token.
    assert_oci_error(&reg.send(oci(Method::Get, "/v2/", "not-a-real-token")), 401, "UNAUTHORIZED");
    assert_oci_error(&reg.send(basic(Request::new(Method::Get, "/v2/"), "nobody", "wrong-password")), 401, "UNAUTHORIZED");

    // The realm follows PUBLIC_URL and the base path, and the token endpoint answers there.
    let reg = Reg::oci(&[("PUBLIC_URL", "https://registry.example.com/"), ("OCI_BASE_PATH", "/containers")]);
    reg.create_user("alice");
    let r = reg.send(Request::new(Method::Get, "/v2/"));
    assert_eq!(challenge(&r), "Bearer realm=\"https://registry.example.com/containers/v2/token\",service=\"edgeregistry\"");
    let realm_path = "/containers/v2/token?service=edgeregistry&scope=repository:x:pull";
    let t = reg.send(basic(Request::new(Method::Get, realm_path), "alice", PASSWORD));
    assert_eq!(t.status, 200, "{t:?}");
    assert_eq!(jwt_claims(t.json()["token"].as_str().unwrap())["access"][0]["actions"], json!(["pull"]));

    // With anonymous OCI reads the version check is open.
    let open = Reg::oci(&[("ANONYMOUS_READ", "oci")]);
    let r = open.send(Request::new(Method::Get, "/v2/"));
    assert_eq!((r.status, r.header("Docker-Distribution-API-Version")), (200, Some("registry/2.0")));
}

// ---------------------------------------------------------------- auth

#[test]
fn anonymous_access_is_off_by_default_and_the_challenge_names_repository_and_actions() {
    let reg = Reg::oci(&[]);
    let d = oci_digest(b"x");
    let pulls = [
        (Method::Get, "/v2/team/app/manifests/latest".to_string()),
        (Method::Get, format!("/v2/team/app/blobs/{d}")),
        (Method::Get, "/v2/team/app/tags/list".to_string()),
        (Method::Get, format!("/v2/team/app/referrers/{d}")),
        (Method::Get, "/oci/team/app/manifests/latest".to_string()),
    ];
    for (method, path) in pulls {
        assert_challenge(&reg.send(Request::new(method, &path)), "repository:team/app:pull");
    }
    // HEAD: the same status and challenge, no body.
    let head = reg.send(Request::new(Method::Head, "/v2/team/app/manifests/latest"));
    assert_eq!((head.status, head.body.len()), (401, 0));
    assert!(challenge(&head).contains("scope=\"repository:team/app:pull\""));

    let pushes = [
        (Method::Post, "/v2/team/app/blobs/uploads/".to_string()),
        (Method::Post, format!("/v2/team/app/blobs/uploads/?digest={d}")),
        (Method::Put, "/v2/team/app/manifests/latest".to_string()),
    ];
    for (method, path) in pushes {
        let r = reg.send(Request::new(method, &path).with_body(b"x".to_vec()));
        assert_challenge(&r, "repository:team/app:pull,push");
    }
    assert_challenge(&reg.send(Request::new(Method::Delete, "/v2/team/app/manifests/latest")), "repository:team/app:delete");
    assert_challenge(&reg.send(Request::new(Method::Delete, &format!("/v2/team/app/blobs/{d}"))), "repository:team/app:delete");
    assert!(reg.oci_keys().is_empty(), "refused requests stored {:?}", reg.oci_keys());
    assert!(reg.mem.sessions.is_empty());
}

#[test]
fn anonymous_read_when_enabled_allows_pulls_but_never_pushes() {
    let reg = Reg::oci(&[("ANONYMOUS_READ", "oci")]);
    reg.create_user("alice");
    let token = reg.create_token("alice", json!({"protocol": "oci"}));
    let (manifest, digest) = reg.push_image(&token, "team/app", "v1", "anon");
    let m = reg.send(Request::new(Method::Get, "/v2/team/app/manifests/v1"));
    assert_eq!((m.status, &m.body), (200, &manifest));
    let config_digest = serde_json::from_slice::<Value>(&manifest).unwrap()["config"]["digest"].as_str().unwrap().to_string();
    assert_eq!(reg.send(Request::new(Method::Get, &format!("/v2/team/app/blobs/{config_digest}"))).status, 200);
    assert_eq!(reg.send(Request::new(Method::Get, "/v2/team/app/tags/list")).json()["tags"], json!(["v1"]));
    assert_eq!(reg.send(Request::new(Method::Get, "/v2/_catalog")).json()["repositories"], json!(["team/app"]));

    let keys = reg.oci_keys();
    assert_challenge(&reg.send(Request::new(Method::Post, "/v2/team/app/blobs/uploads/")), "repository:team/app:pull,push");
    let put = Request::new(Method::Put, "/v2/team/app/manifests/v2").with_header("Content-Type", OCI_MANIFEST).with_body(manifest.clone());
    assert_challenge(&reg.send(put), "repository:team/app:pull,push");
    assert_challenge(&reg.send(Request::new(Method::Delete, &format!("/v2/team/app/manifests/{digest}"))), "repository:team/app:delete");
    assert_eq!(reg.oci_keys(), keys);
    assert!(reg.mem.sessions.is_empty());
}

#[test]
fn token_endpoint_issues_jwts_for_basic_credentials() {
    let reg = Reg::oci(&[]);
    reg.create_user("alice");
    let r = reg.docker_token(Some(("alice", PASSWORD)), &["repository:team/app:pull,push"]);
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().is_some_and(|s| s.starts_with("2026-01-01T")), "{body}");
    let claims = jwt_claims(&token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "edgeregistry");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);
    assert_eq!(claims["access"], json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]));
    // The JWT is the credential for the whole push and pull.
    let (manifest, _) = reg.push_image(&token, "team/app", "v1", "jwt");
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token)).body, manifest);

    // Several scopes, in separate parameters or space-separated in one, and the base-path endpoint.
    let r = reg.send(basic(
        Request::new(Method::Get, "/oci/v2/token?service=edgeregistry&scope=repository:a:pull&scope=repository:b:push%20repository:c:pull,push"),
        "alice",
        PASSWORD,
    ));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        jwt_claims(r.json()["token"].as_str().unwrap())["access"],
        json!([
            {"type": "repository", "name": "a", "actions": ["pull"]},
            {"type": "repository", "name": "b", "actions": ["push"]},
            {"type": "repository", "name": "c", "actions": ["pull", "push"]},
        ])
    );
    // A stored token works as the Basic password (docker login with a token).
    let stored = reg.create_token("alice", json!({"protocol": "oci"}));
    let r = reg.docker_token(Some(("alice", &stored)), &["repository:team/app:pull"]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(jwt_claims(r.json()["token"].as_str().unwrap())["access"][0]["actions"], json!(["pull"]));
    // Scopes naming invalid repositories are dropped, not granted.
    let r = reg.docker_token(Some(("alice", PASSWORD)), &["repository:Bad/Name:pull", "repository:ok:pull"]);
    assert_eq!(jwt_claims(r.json()["token"].as_str().unwrap())["access"], json!([{"type": "repository", "name": "ok", "actions": ["pull"]}]));
}

#[test]
fn token_endpoint_gives_anonymous_callers_only_what_anonymous_read_allows() {
    let reg = Reg::oci(&[]);
    reg.create_user("alice");
    let admin_token = reg.create_token("alice", json!({"protocol": "oci"}));
    reg.push_image(&admin_token, "team/app", "v1", "anon-token");

    let r = reg.docker_token(None, &["repository:team/app:pull,push"]);
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.json()["token"].as_str().unwrap().to_string();
    let claims = jwt_claims(&token);
    assert_eq!(claims["sub"], "anonymous");
    assert_eq!(claims["access"], json!([{"type": "repository", "name": "team/app", "actions": []}]));
    // A token without grants is a valid credential with insufficient scope.
    let r = reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token));
    assert_challenge(&r, "repository:team/app:pull");
    assert!(challenge(&r).ends_with(",error=\"insufficient_scope\""), "{}", challenge(&r));

    let open = Reg::oci(&[("ANONYMOUS_READ", "oci")]);
    let r = open.docker_token(None, &["repository:team/app:pull,push"]);
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(jwt_claims(&token)["access"][0]["actions"], json!(["pull"]));
    assert_challenge(&open.send(oci(Method::Post, "/v2/team/app/blobs/uploads/", &token)), "repository:team/app:pull,push");
}

#[test]
fn token_endpoint_refuses_bad_credentials() {
    let reg = Reg::oci(&[]);
    reg.create_user("alice");
    let attempts = [
        basic(Request::new(Method::Get, "/v2/token?scope=repository:a:pull"), "alice", "wrong-password"),
        basic(Request::new(Method::Get, "/v2/token?scope=repository:a:pull"), "mallory", PASSWORD),
        oci(Method::Get, "/v2/token?scope=repository:a:pull", "not-a-real-token"),
        oci(Method::Get, "/oci/v2/token?scope=repository:a:pull", "a.b.c"),
    ];
    for req in attempts {
        let r = reg.send(req);
        assert_oci_error(&r, 401, "UNAUTHORIZED");
        assert!(challenge(&r).starts_with("Basic "), "{}", challenge(&r));
        assert!(r.json().get("token").is_none());
    }
}

#[test]
fn a_pull_only_jwt_cannot_push_401_unauthorized_with_insufficient_scope() {
    let (reg, token) = setup();
    let (manifest, digest) = reg.push_image(&token, "team/app", "v1", "pull-only");
    let jwt = reg.jwt_for("alice", &["repository:team/app:pull"]);
    assert_eq!(jwt_claims(&jwt)["access"][0]["actions"], json!(["pull"]));
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &jwt)).body, manifest);

    // Docker token auth: a valid token lacking the scope gets 401 UNAUTHORIZED with
    // error="insufficient_scope" (as distribution does), so the client asks for a better token.
    let keys = reg.oci_keys();
    let pushes = [
        oci(Method::Post, "/v2/team/app/blobs/uploads/", &jwt),
        oci(Method::Post, &format!("/v2/team/app/blobs/uploads/?digest={}", oci_digest(b"new")), &jwt).with_body(b"new".to_vec()),
        oci(Method::Put, "/v2/team/app/manifests/v2", &jwt).with_header("Content-Type", OCI_MANIFEST).with_body(manifest.clone()),
    ];
    for req in pushes {
        let r = reg.send(req);
        assert_challenge(&r, "repository:team/app:pull,push");
        assert!(challenge(&r).ends_with(",error=\"insufficient_scope\""));
    }
    let r = reg.send(oci(Method::Delete, &format!("/v2/team/app/manifests/{digest}"), &jwt));
    assert_challenge(&r, "repository:team/app:delete");
    assert_eq!(reg.oci_keys(), keys);
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token)).status, 200);
}

#[test]
fn read_only_credentials_are_403_denied_on_push() {
    let (reg, token) = setup();
    let (manifest, _) = reg.push_image(&token, "team/app", "v1", "ro");
    let ro = reg.create_token("alice", json!({"protocol": "oci", "readonly": true}));
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &ro)).status, 200);
    let keys = reg.oci_keys();
    let r = reg.send(oci(Method::Post, "/v2/team/app/blobs/uploads/", &ro));
    assert_oci_error(&r, 403, "DENIED");
    let r = reg.send(oci(Method::Put, "/v2/team/app/manifests/v2", &ro).with_header("Content-Type", OCI_MANIFEST).with_body(manifest));
    assert_oci_error(&r, 403, "DENIED");
    assert_eq!(reg.oci_keys(), keys);
    // Through the token endpoint a read-only token gets pull only, and a read-only JWT.
    let r = reg.docker_token(Some(("alice", &ro)), &["repository:team/app:pull,push"]);
    let claims = jwt_claims(r.json()["token"].as_str().unwrap());
    assert_eq!(claims["access"][0]["actions"], json!(["pull"]));
    assert_eq!(claims["ro"], true);
}

#[test]
fn repository_scopes_do_not_reach_other_repositories() {
    let (reg, _) = setup();
    let jwt = reg.jwt_for("alice", &["repository:team/a:pull,push"]);
    reg.push_image(&jwt, "team/a", "v1", "scoped");
    let r = reg.send(oci(Method::Post, "/v2/team/b/blobs/uploads/", &jwt));
    assert_challenge(&r, "repository:team/b:pull,push");
    assert!(challenge(&r).contains("insufficient_scope"));
    assert_challenge(&reg.send(oci(Method::Get, "/v2/team/a2/tags/list", &jwt)), "repository:team/a2:pull");
    assert!(reg.keys_with("oci/repositories/team/b").is_empty());

    // A stored token scoped to one repository: same limits directly and through the token endpoint.
    let scoped = reg.create_token("alice", json!({"scopes": ["oci:repository:team/a:*"]}));
    assert_eq!(tags_of(&reg, &scoped, "team/a"), vec!["v1"]);
    assert_challenge(&reg.send(oci(Method::Post, "/v2/team/b/blobs/uploads/", &scoped)), "repository:team/b:pull,push");
    let r = reg.docker_token(Some(("alice", &scoped)), &["repository:team/b:pull,push", "repository:team/a:pull,push"]);
    assert_eq!(
        jwt_claims(r.json()["token"].as_str().unwrap())["access"],
        json!([
            {"type": "repository", "name": "team/b", "actions": []},
            {"type": "repository", "name": "team/a", "actions": ["pull", "push"]},
        ])
    );
    // A glob scope covers the repositories under it only.
    let glob = reg.create_token("alice", json!({"scopes": ["oci:repository:team/*:push"]}));
    assert_eq!(start_upload(&reg, &glob, "team/c").0.status, 202);
    assert_challenge(&reg.send(oci(Method::Post, "/v2/other/c/blobs/uploads/", &glob)), "repository:other/c:pull,push");
}

#[test]
fn expired_or_forged_jwts_count_as_no_credentials() {
    let (reg, token) = setup();
    reg.push_image(&token, "team/app", "v1", "expiry");
    let jwt = reg.jwt_for("alice", &["repository:team/app:pull"]);
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &jwt)).status, 200);

    let mut claims = jwt_claims(&jwt);
    claims["access"] = json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]);
    let forged = edgeregistry::auth::jwt::encode(b"not-the-secret", &claims);
    let r = reg.send(oci(Method::Post, "/v2/team/app/blobs/uploads/", &forged));
    assert_challenge(&r, "repository:team/app:pull,push");
    assert!(!challenge(&r).contains("insufficient_scope"), "a forged token is no token");

    reg.mem.clock.advance(3601.0 * 1000.0);
    let r = reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &jwt));
    assert_challenge(&r, "repository:team/app:pull");
    assert!(!challenge(&r).contains("insufficient_scope"));
}

#[test]
fn catalog_lists_every_repository_only_with_the_catalog_grant() {
    let (reg, token) = setup();
    for repo in ["zeta", "team/b", "team/a"] {
        reg.push_blob(&token, repo, repo.as_bytes());
    }
    let all = json!(["team/a", "team/b", "zeta"]);
    // A user who may pull everything gets the registry:catalog:* grant.
    let r = reg.docker_token(Some(("alice", PASSWORD)), &["registry:catalog:*"]);
    let jwt = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(jwt_claims(&jwt)["access"], json!([{"type": "registry", "name": "catalog", "actions": ["*"]}]));
    let c = reg.send(oci(Method::Get, "/v2/_catalog", &jwt));
    assert_eq!((c.status, c.json()["repositories"].clone()), (200, all.clone()));
    // A JWT without the grant lists only what it may pull: nothing here.
    let without = reg.jwt_for("alice", &["repository:elsewhere:pull"]);
    assert_eq!(reg.send(oci(Method::Get, "/v2/_catalog", &without)).json()["repositories"], json!([]));

    // bob may pull one repository: the catalog grant is refused and he sees only that one.
    reg.create_user("bob");
    let bob = reg.create_token("bob", json!({"scopes": ["oci:repository:team/a:pull"]}));
    let r = reg.docker_token(Some(("bob", &bob)), &["registry:catalog:*", "repository:team/a:pull"]);
    let bob_jwt = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(jwt_claims(&bob_jwt)["access"], json!([{"type": "repository", "name": "team/a", "actions": ["pull"]}]));
    assert_eq!(reg.send(oci(Method::Get, "/v2/_catalog", &bob_jwt)).json()["repositories"], json!(["team/a"]));
    assert_eq!(reg.send(oci(Method::Get, "/v2/_catalog", &bob)).json()["repositories"], json!(["team/a"]));

    // Anonymous: a challenge that asks for the catalog grant, so a client following it can list.
    let r = reg.send(Request::new(Method::Get, "/v2/_catalog"));
    assert_challenge(&r, "registry:catalog:*");
}

// ---------------------------------------------------------------- names and digests

#[test]
fn invalid_repository_names_are_400_name_invalid() {
    let (reg, token) = setup();
    let long = "a".repeat(256);
    let d = oci_digest(b"x");
    let requests = [
        (Method::Get, "/v2/Team/app/tags/list".to_string()),
        (Method::Get, "/v2/team/App/manifests/latest".to_string()),
        (Method::Get, "/v2/team/../app/manifests/latest".to_string()),
        (Method::Get, "/v2/%2e%2e/app/manifests/latest".to_string()),
        (Method::Get, "/v2/team/%2E%2E/manifests/latest".to_string()),
        (Method::Get, "/v2/team/%2e%2e/%2e%2e/secret/blobs/".to_string() + &d),
        (Method::Get, "/v2/%2Fteam/manifests/latest".to_string()),
        (Method::Get, "/v2/-team/tags/list".to_string()),
        (Method::Get, "/v2/.team/tags/list".to_string()),
        (Method::Get, "/v2/_team/tags/list".to_string()),
        (Method::Get, "/v2/team/app-/tags/list".to_string()),
        (Method::Get, "/v2/team//app/tags/list".to_string()),
        (Method::Get, "/v2/team/a..b/tags/list".to_string()),
        (Method::Get, "/v2/team/a___b/tags/list".to_string()),
        (Method::Get, "/v2/team/a%20b/tags/list".to_string()),
        (Method::Get, format!("/v2/{long}/tags/list")),
        (Method::Get, format!("/oci/{long}/manifests/latest")),
        (Method::Post, format!("/v2/{long}/blobs/uploads/")),
        (Method::Post, "/v2/Team/blobs/uploads/".to_string()),
        (Method::Put, "/v2/UP/manifests/latest".to_string()),
        (Method::Get, format!("/v2/x/../y/referrers/{d}")),
    ];
    for (method, path) in requests {
        // The name is checked before credentials: with and without a token.
        for req in [oci(method, &path, &token), Request::new(method, &path)] {
            let r = reg.send(req.with_body(b"{}".to_vec()));
            assert_oci_error(&r, 400, "NAME_INVALID");
        }
    }
    assert!(reg.oci_keys().is_empty(), "{:?}", reg.oci_keys());
    assert!(reg.mem.sessions.is_empty());

    // 255 characters is still a name (unknown here), and so are the grammar's separators.
    for name in ["a".repeat(255), "a.b/c_d/e__f/g--h/0".to_string()] {
        let r = reg.send(oci(Method::Get, &format!("/v2/{name}/tags/list"), &token));
        assert_oci_error(&r, 404, "NAME_UNKNOWN");
    }
}

#[test]
fn malformed_digests_are_400_digest_invalid() {
    let (reg, token) = setup();
    reg.push_image(&token, "team/app", "v1", "digests");
    let (_, location) = start_upload(&reg, &token, "team/app");
    let bad = [
        "sha256:abc".to_string(),
        format!("sha256:{}", "A".repeat(64)),
        format!("sha256:{}", "g".repeat(64)),
        format!("sha256:{}", "a".repeat(65)),
        "sha256:".to_string(),
        format!("md5:{}", "a".repeat(32)),
        format!("sha256-{}", "a".repeat(64)),
    ];
    let keys = reg.oci_keys();
    for d in &bad {
        let enc = d.replace(':', "%3A");
        let cases = [
            oci(Method::Get, &format!("/v2/team/app/blobs/{d}"), &token),
            oci(Method::Delete, &format!("/v2/team/app/blobs/{d}"), &token),
            oci(Method::Get, &format!("/v2/team/app/referrers/{d}"), &token),
            oci(Method::Post, &format!("/v2/team/app/blobs/uploads/?digest={enc}"), &token).with_body(b"data".to_vec()),
            oci(Method::Put, &format!("{location}?digest={enc}"), &token).with_body(b"data".to_vec()),
        ];
        for req in cases {
            let what = format!("{:?} {}", req.method, req.path);
            let r = reg.send(req);
            assert_eq!(r.status, 400, "{what} with {d}: {r:?}");
            assert_oci_error(&r, 400, "DIGEST_INVALID");
        }
    }
    // As manifest references, strings with a colon are digests (tags have none).
    for d in bad.iter().filter(|d| d.contains(':')) {
        for method in [Method::Get, Method::Put, Method::Delete] {
            let r = reg.send(oci(method, &format!("/v2/team/app/manifests/{d}"), &token).with_header("Content-Type", OCI_MANIFEST).with_body(b"{}".to_vec()));
            assert_oci_error(&r, 400, "DIGEST_INVALID");
        }
    }
    let r = finish_upload(&reg, &token, &location, "", b"");
    assert_oci_error(&r, 400, "DIGEST_INVALID");
    let r = reg.send(oci(Method::Put, &location, &token));
    assert_oci_error(&r, 400, "DIGEST_INVALID");
    assert_eq!(reg.oci_keys(), keys);
    // A PUT refused for its digest parameter leaves the session usable.
    assert_eq!(reg.send(oci(Method::Get, &location, &token)).status, 204);
}

#[test]
fn digests_in_unknown_algorithms_are_400_digest_invalid_everywhere() {
    // sha512 is stored like sha256 (tests/oci_spec_native.rs); others are refused as the
    // distribution spec says: an unsupported algorithm is a 400.
    let (reg, token) = setup();
    let data = b"a blob addressed by sha384".to_vec();
    let d384 = format!("sha384:{}", "a".repeat(96));
    reg.push_blob(&token, "team/app", b"{}");
    let keys = reg.oci_keys();
    let r = reg.send(oci(Method::Post, &format!("/v2/team/app/blobs/uploads/?digest={d384}"), &token).with_body(data.clone()));
    assert_oci_error(&r, 400, "DIGEST_INVALID");
    let (_, location) = start_upload(&reg, &token, "team/app");
    assert_oci_error(&finish_upload(&reg, &token, &location, &d384, &data), 400, "DIGEST_INVALID");
    for method in [Method::Get, Method::Delete] {
        assert_oci_error(&reg.send(oci(method, &format!("/v2/team/app/blobs/{d384}"), &token)), 400, "DIGEST_INVALID");
        assert_oci_error(&reg.send(oci(method, &format!("/v2/team/app/manifests/{d384}"), &token)), 400, "DIGEST_INVALID");
    }
    assert_oci_error(&reg.send(oci(Method::Get, &format!("/v2/team/app/referrers/{d384}"), &token)), 400, "DIGEST_INVALID");
    let manifest = json_body(&image_manifest(b"{}", &[]));
    assert_oci_error(&reg.put_manifest(&token, "team/app", &d384, Some(OCI_MANIFEST), &manifest), 400, "DIGEST_INVALID");
    let head = reg.send(oci(Method::Head, &format!("/v2/team/app/manifests/{d384}"), &token));
    assert_eq!((head.status, head.body.len()), (400, 0));
    // An unknown `digest-algorithm` is refused before a byte is sent.
    let r = reg.send(oci(Method::Post, "/v2/team/app/blobs/uploads/?digest-algorithm=sha384", &token));
    assert_oci_error(&r, 400, "UNSUPPORTED");
    // A mount of such a digest cannot be done: the registry falls back to a session.
    let r = reg.send(oci(Method::Post, &format!("/v2/team/app/blobs/uploads/?mount={d384}&from=team/other"), &token));
    assert_eq!(r.status, 202, "{r:?}");
    reg.send(oci(Method::Delete, r.header("Location").unwrap(), &token));
    assert_eq!(reg.oci_keys(), keys);
}

// ---------------------------------------------------------------- manifests

#[test]
fn manifest_put_by_tag_then_get_by_tag_and_by_digest() {
    let (reg, token) = setup();
    let config = b"{\"os\":\"linux\"}".to_vec();
    let layer = b"layer".to_vec();
    reg.push_blob(&token, "team/app", &config);
    reg.push_blob(&token, "team/app", &layer);
    let body = json_body(&image_manifest(&config, &[&layer]));
    let digest = oci_digest(&body);
    let r = reg.put_manifest(&token, "team/app", "v1", Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Location"), Some(format!("/v2/team/app/manifests/{digest}").as_str()));
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(r.header("Content-Length"), Some("0"));
    assert!(r.header("OCI-Subject").is_none());

    for reference in ["v1", digest.as_str()] {
        let g = reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{reference}"), &token));
        assert_eq!((g.status, &g.body), (200, &body), "{reference}");
        assert_eq!(g.header("Content-Type"), Some(OCI_MANIFEST));
        assert_eq!(g.header("Docker-Content-Digest"), Some(digest.as_str()));
        assert_eq!(g.header("Content-Length"), Some(body.len().to_string().as_str()));
        assert_eq!(g.header("ETag"), Some(format!("\"{digest}\"").as_str()));
    }
    let cached = reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token).with_header("If-None-Match", &format!("\"{digest}\"")));
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    assert_eq!(tags_of(&reg, &token, "team/app"), vec!["v1"]);

    // Under the base path the Location keeps the prefix, and both path forms read it back.
    let r = reg.send(oci(Method::Put, "/oci/v2/team/app/manifests/v2", &token).with_header("Content-Type", OCI_MANIFEST).with_body(body.clone()));
    assert_eq!(r.header("Location"), Some(format!("/oci/v2/team/app/manifests/{digest}").as_str()));
    assert_eq!(reg.send(oci(Method::Get, "/oci/team/app/manifests/v2", &token)).body, body);
    assert_eq!(tags_of(&reg, &token, "team/app"), vec!["v1", "v2"]);
}

#[test]
fn manifest_put_by_digest_stores_it_without_a_tag() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    let body = json_body(&image_manifest(b"{}", &[]));
    let digest = oci_digest(&body);
    let r = reg.put_manifest(&token, "team/app", &digest, Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(r.header("Location"), Some(format!("/v2/team/app/manifests/{digest}").as_str()));
    assert_eq!(reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{digest}"), &token)).body, body);
    assert!(tags_of(&reg, &token, "team/app").is_empty());
}

#[test]
fn manifest_put_by_a_different_digest_is_digest_invalid_and_stores_nothing() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    let body = json_body(&image_manifest(b"{}", &[]));
    let claimed = oci_digest(b"some other manifest");
    let keys = reg.oci_keys();
    let r = reg.put_manifest(&token, "team/app", &claimed, Some(OCI_MANIFEST), &body);
    assert_oci_error(&r, 400, "DIGEST_INVALID");
    assert_eq!(reg.oci_keys(), keys);
    for d in [claimed, oci_digest(&body)] {
        assert_oci_error(&reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{d}"), &token)), 404, "MANIFEST_UNKNOWN");
    }
}

#[test]
fn manifest_digest_is_computed_over_the_exact_bytes_sent() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    let config = descriptor(OCI_CONFIG, b"{}");
    // Keys out of order, tabs, blank lines, a trailing newline: not what serde would write.
    let body = format!(
        "{{\n\t\"config\" :  {},\n\n  \"layers\":[ ],\r\n  \"mediaType\": \"{OCI_MANIFEST}\",   \"schemaVersion\":2 }}\n",
        serde_json::to_string_pretty(&config).unwrap()
    )
    .into_bytes();
    let digest = oci_digest(&body);
    let reserialised = serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    assert_ne!(oci_digest(&reserialised), digest, "the test body must not be canonical");

    let r = reg.put_manifest(&token, "team/app", "spaced", Some(OCI_MANIFEST), &body);
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()), "{r:?}");
    assert_eq!(reg.put_manifest(&token, "team/app", &digest, Some(OCI_MANIFEST), &body).status, 201);
    for reference in ["spaced", digest.as_str()] {
        let g = reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{reference}"), &token));
        assert_eq!(g.body, body, "stored bytes changed");
        assert_eq!(oci_digest(&g.body), digest);
    }
    assert_oci_error(&reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{}", oci_digest(&reserialised)), &token)), 404, "MANIFEST_UNKNOWN");
}

#[test]
fn manifest_media_type_comes_from_content_type_and_is_kept_on_get_and_head() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    let docker = "application/vnd.docker.distribution.manifest.v2+json";
    let mut m = image_manifest(b"{}", &[]);
    m["mediaType"] = json!(docker);
    m["config"]["mediaType"] = json!("application/vnd.docker.container.image.v1+json");
    let body = json_body(&m);
    // Parameters on Content-Type are ignored.
    let r = reg.put_manifest(&token, "team/app", "docker", Some(&format!("{docker}; charset=utf-8")), &body);
    assert_eq!(r.status, 201, "{r:?}");
    for method in [Method::Get, Method::Head] {
        let g = reg.send(oci(method, "/v2/team/app/manifests/docker", &token));
        assert_eq!(g.header("Content-Type"), Some(docker), "{method:?}");
    }

    // No Content-Type: the manifest's own mediaType, else what its shape says. A mediaType
    // that is not a manifest type is refused (it used to be stored and served as it came).
    let mut custom = image_manifest(b"{}", &[]);
    custom["mediaType"] = json!("application/vnd.example.custom+json");
    assert_oci_error(&reg.put_manifest(&token, "team/app", "custom", None, &json_body(&custom)), 400, "MANIFEST_INVALID");
    let mut bare = image_manifest(b"{}", &[]);
    bare.as_object_mut().unwrap().remove("mediaType");
    let child = json_body(&bare);
    assert_eq!(reg.put_manifest(&token, "team/app", "bare", None, &child).status, 201);
    let index = json_body(&json!({"schemaVersion": 2, "manifests": [descriptor(OCI_MANIFEST, &child)]}));
    for (tag, doc, want) in [
        ("bare", child.clone(), OCI_MANIFEST),
        ("index", index, OCI_INDEX),
    ] {
        let r = reg.put_manifest(&token, "team/app", tag, None, &doc);
        assert_eq!(r.status, 201, "{tag}: {r:?}");
        for method in [Method::Get, Method::Head] {
            let g = reg.send(oci(method, &format!("/v2/team/app/manifests/{tag}"), &token));
            assert_eq!(g.header("Content-Type"), Some(want), "{method:?} {tag}");
        }
    }
}

#[test]
fn manifest_with_a_missing_config_or_layer_is_manifest_blob_unknown() {
    let (reg, token) = setup();
    let config = b"{\"config\":1}".to_vec();
    let layer = b"the layer".to_vec();
    let body = json_body(&image_manifest(&config, &[&layer]));
    let keys = reg.oci_keys();
    // Neither blob pushed.
    let r = reg.put_manifest(&token, "team/app", "v1", Some(OCI_MANIFEST), &body);
    assert_oci_error(&r, 400, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(reg.oci_keys(), keys);
    // The config only.
    reg.push_blob(&token, "team/app", &config);
    let keys = reg.oci_keys();
    let r = reg.put_manifest(&token, "team/app", "v1", Some(OCI_MANIFEST), &body);
    assert_oci_error(&r, 400, "MANIFEST_BLOB_UNKNOWN");
    assert!(r.json()["errors"][0]["message"].as_str().unwrap().contains(&oci_digest(&layer)));
    assert_eq!(reg.oci_keys(), keys);
    // The layer in another repository does not count.
    reg.push_blob(&token, "team/other", &layer);
    assert_oci_error(&reg.put_manifest(&token, "team/app", "v1", Some(OCI_MANIFEST), &body), 400, "MANIFEST_BLOB_UNKNOWN");
    assert_oci_error(&reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token)), 404, "MANIFEST_UNKNOWN");
    // Mounted here, it does.
    let m = reg.send(oci(Method::Post, &format!("/v2/team/app/blobs/uploads/?mount={}&from=team/other", oci_digest(&layer)), &token));
    assert_eq!(m.status, 201, "{m:?}");
    assert_eq!(reg.put_manifest(&token, "team/app", "v1", Some(OCI_MANIFEST), &body).status, 201);
}

#[test]
fn index_referencing_a_missing_child_manifest_is_manifest_blob_unknown() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    reg.push_blob(&token, "team/other", b"{}");
    let child = json_body(&image_manifest(b"{}", &[]));
    let mut entry = descriptor(OCI_MANIFEST, &child);
    entry["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let index = json_body(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}));
    let keys = reg.oci_keys();
    let r = reg.put_manifest(&token, "team/app", "multi", Some(OCI_INDEX), &index);
    assert_oci_error(&r, 400, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(reg.oci_keys(), keys);
    // The child in another repository does not count.
    assert_eq!(reg.put_manifest(&token, "team/other", &oci_digest(&child), Some(OCI_MANIFEST), &child).status, 201);
    assert_oci_error(&reg.put_manifest(&token, "team/app", "multi", Some(OCI_INDEX), &index), 400, "MANIFEST_BLOB_UNKNOWN");
    // Once the child is here the index is accepted.
    assert_eq!(reg.put_manifest(&token, "team/app", &oci_digest(&child), Some(OCI_MANIFEST), &child).status, 201);
    let r = reg.put_manifest(&token, "team/app", "multi", Some(OCI_INDEX), &index);
    assert_eq!(r.status, 201, "{r:?}");
    let g = reg.send(oci(Method::Get, "/v2/team/app/manifests/multi", &token));
    assert_eq!((g.body.clone(), g.header("Content-Type")), (index, Some(OCI_INDEX)));
}

#[test]
fn manifest_with_a_subject_gets_oci_subject_even_when_the_subject_is_absent() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    let subject = oci_digest(b"a manifest that was never pushed");
    let artifact = json_body(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "size": 1234, "digest": subject},
        "annotations": {"org.example.format": "json"},
    }));
    let digest = oci_digest(&artifact);
    let r = reg.put_manifest(&token, "team/app", &digest, Some(OCI_MANIFEST), &artifact);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("OCI-Subject"), Some(subject.as_str()));
    assert_oci_error(&reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{subject}"), &token)), 404, "MANIFEST_UNKNOWN");
    let refs = reg.send(oci(Method::Get, &format!("/v2/team/app/referrers/{subject}"), &token));
    assert_eq!(refs.status, 200, "{refs:?}");
    assert_eq!(
        refs.json()["manifests"],
        json!([{
            "mediaType": OCI_MANIFEST,
            "size": artifact.len(),
            "digest": digest,
            "artifactType": "application/vnd.example.sbom",
            "annotations": {"org.example.format": "json"},
        }])
    );
}

#[test]
fn manifests_over_4_mib_are_413_and_4_mib_is_accepted() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    let limit = 4 * MIB;
    let sized = |len: usize| {
        let mut m = image_manifest(b"{}", &[]);
        m["annotations"] = json!({"pad": ""});
        let base = json_body(&m).len();
        m["annotations"]["pad"] = json!("x".repeat(len - base));
        let body = json_body(&m);
        assert_eq!(body.len(), len);
        body
    };
    let too_big = sized(limit + 1);
    let keys = reg.oci_keys();
    let r = reg.put_manifest(&token, "team/app", "big", Some(OCI_MANIFEST), &too_big);
    assert_oci_error(&r, 413, "SIZE_INVALID");
    assert_eq!(reg.oci_keys(), keys);
    let r = reg.send(oci(Method::Put, "/v2/team/app/manifests/big", &token).with_body(Body::Stream(PlatformStream::from_bytes(too_big))));
    assert_oci_error(&r, 413, "SIZE_INVALID");
    assert_eq!(reg.oci_keys(), keys);

    let at_limit = sized(limit);
    let r = reg.put_manifest(&token, "team/app", "big", Some(OCI_MANIFEST), &at_limit);
    assert_eq!(r.status, 201, "{:?}", r.status);
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/big", &token)).body, at_limit);
}

#[test]
fn malformed_manifests_are_manifest_invalid() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    // sha384 is well-formed but not an algorithm this registry stores.
    let mut sha384_layer = image_manifest(b"{}", &[]);
    sha384_layer["layers"] = json!([{"mediaType": OCI_LAYER, "size": 1, "digest": format!("sha384:{}", "a".repeat(96))}]);
    let mut bad_child = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "size": 1, "digest": "sha256:nothex"}]});
    bad_child["annotations"] = json!({});
    let bodies: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"".to_vec(),
        b"{\"schemaVersion\": 2, \"config\": ".to_vec(),
        b"[1, 2, 3]".to_vec(),
        b"\"a string\"".to_vec(),
        b"{\"schemaVersion\": 1, \"name\": \"team/app\", \"tag\": \"v1\"}".to_vec(),
        b"{\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\"}".to_vec(),
        vec![0xff, 0xfe, 0x00],
        json_body(&sha384_layer),
        json_body(&bad_child),
    ];
    let keys = reg.oci_keys();
    for body in bodies {
        let r = reg.put_manifest(&token, "team/app", "bad", Some(OCI_MANIFEST), &body);
        assert_oci_error(&r, 400, "MANIFEST_INVALID");
        // By digest as well (the digest matches: the content is what is wrong).
        let r = reg.put_manifest(&token, "team/app", &oci_digest(&body), Some(OCI_MANIFEST), &body);
        assert_oci_error(&r, 400, "MANIFEST_INVALID");
    }
    assert_eq!(reg.oci_keys(), keys);
}

#[test]
fn unknown_manifests_are_404_manifest_unknown() {
    let (reg, token) = setup();
    reg.push_image(&token, "team/app", "v1", "unknown");
    let unknown_digest = oci_digest(b"nothing");
    for path in [
        "/v2/team/app/manifests/v2".to_string(),
        format!("/v2/team/app/manifests/{unknown_digest}"),
        "/v2/no/such/repo/manifests/latest".to_string(),
        "/v2/team/app/manifests/V1".to_string(),
    ] {
        assert_oci_error(&reg.send(oci(Method::Get, &path, &token)), 404, "MANIFEST_UNKNOWN");
        let head = reg.send(oci(Method::Head, &path, &token));
        assert_eq!((head.status, head.body.len()), (404, 0), "HEAD {path}");
    }
}

#[test]
fn head_manifest_has_content_length_and_digest_but_no_body() {
    let (reg, token) = setup();
    let (body, digest) = reg.push_image(&token, "team/app", "v1", "head");
    for reference in ["v1", digest.as_str()] {
        let r = reg.send(oci(Method::Head, &format!("/v2/team/app/manifests/{reference}"), &token));
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
        assert_eq!(r.header("Content-Length"), Some(body.len().to_string().as_str()));
        assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
        assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
    }
}

#[test]
fn head_manifest_by_tag_is_answered_from_the_tag_in_one_read() {
    let (reg, token) = setup();
    let (body, digest) = reg.push_image(&token, "team/app", "v1", "one-read");
    let before = reg.mem.store.reads();
    let r = reg.send(oci(Method::Head, "/v2/team/app/manifests/v1", &token));
    assert_eq!(reg.mem.store.reads() - before, 1, "store reads for HEAD by tag");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(body.len().to_string().as_str()));
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
    // A tag written before tags recorded size and type still resolves (two reads).
    let tag_key = "oci/tags/team/app/v1";
    let mut old = block_on(reg.mem.store.head(tag_key)).unwrap().expect("tag object");
    old.custom.retain(|k, _| k == "digest");
    let opts = PutOptions { custom: old.custom, ..Default::default() };
    block_on(reg.mem.store.put(tag_key, Body::Bytes(digest.clone().into_bytes()), opts)).unwrap();
    let before = reg.mem.store.reads();
    let r = reg.send(oci(Method::Head, "/v2/team/app/manifests/v1", &token));
    assert_eq!(reg.mem.store.reads() - before, 2);
    assert_eq!((r.status, r.header("Content-Length")), (200, Some(body.len().to_string().as_str())));
    assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
}

#[test]
fn delete_by_tag_removes_only_that_tag() {
    let (reg, token) = setup();
    let (body, digest) = reg.push_image(&token, "team/app", "v1", "deltag");
    assert_eq!(reg.put_manifest(&token, "team/app", "v2", Some(OCI_MANIFEST), &body).status, 201);
    let r = reg.send(oci(Method::Delete, "/v2/team/app/manifests/v1", &token));
    assert_eq!(r.status, 202, "{r:?}");
    assert_oci_error(&reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token)), 404, "MANIFEST_UNKNOWN");
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/v2", &token)).body, body);
    assert_eq!(reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{digest}"), &token)).body, body);
    assert_eq!(tags_of(&reg, &token, "team/app"), vec!["v2"]);
    assert_oci_error(&reg.send(oci(Method::Delete, "/v2/team/app/manifests/v1", &token)), 404, "MANIFEST_UNKNOWN");
    assert_oci_error(&reg.send(oci(Method::Delete, "/v2/team/app/manifests/.bad", &token)), 400, "TAG_INVALID");
}

#[test]
fn delete_by_digest_removes_the_manifest_and_every_tag_pointing_at_it() {
    let (reg, token) = setup();
    let (a, a_digest) = reg.push_image(&token, "team/app", "v1", "a");
    assert_eq!(reg.put_manifest(&token, "team/app", "v2", Some(OCI_MANIFEST), &a).status, 201);
    let (b, _) = reg.push_image(&token, "team/app", "v3", "b");
    let r = reg.send(oci(Method::Delete, &format!("/v2/team/app/manifests/{a_digest}"), &token));
    assert_eq!(r.status, 202, "{r:?}");
    for reference in ["v1", "v2", a_digest.as_str()] {
        assert_oci_error(&reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{reference}"), &token)), 404, "MANIFEST_UNKNOWN");
    }
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/v3", &token)).body, b);
    assert_eq!(tags_of(&reg, &token, "team/app"), vec!["v3"]);
    // Its blobs stay (another manifest may use them).
    let config = serde_json::from_slice::<Value>(&a).unwrap()["config"]["digest"].as_str().unwrap().to_string();
    assert_eq!(get_blob(&reg, &token, "team/app", &config).status, 200);
    assert_oci_error(&reg.send(oci(Method::Delete, &format!("/v2/team/app/manifests/{a_digest}"), &token)), 404, "MANIFEST_UNKNOWN");
}

#[test]
fn nested_repository_names_do_not_share_tags_or_referrers() {
    let (reg, token) = setup();
    // The same image (same digest) in `team` and in `team/app`.
    let (body, digest) = reg.push_image(&token, "team", "root", "nested");
    let (same, _) = reg.push_image(&token, "team/app", "latest", "nested");
    assert_eq!(body, same);
    assert_eq!(tags_of(&reg, &token, "team"), vec!["root"]);
    assert_eq!(tags_of(&reg, &token, "team/app"), vec!["latest"]);
    // Deleting the manifest from `team` leaves `team/app` and its tag alone.
    assert_eq!(reg.send(oci(Method::Delete, &format!("/v2/team/manifests/{digest}"), &token)).status, 202);
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/latest", &token)).body, body);
    assert_eq!(tags_of(&reg, &token, "team/app"), vec!["latest"]);
    assert!(tags_of(&reg, &token, "team").is_empty());

    // A repository whose last component looks like a digest's hex does not leak referrers.
    let subject = oci_digest(b"subject");
    let hex = subject.strip_prefix("sha256:").unwrap();
    let nested = format!("r/{hex}");
    reg.push_blob(&token, &nested, b"{}");
    let mut art = image_manifest(b"{}", &[]);
    art["subject"] = json!({"mediaType": OCI_MANIFEST, "size": 1, "digest": oci_digest(b"other subject")});
    let art = json_body(&art);
    assert_eq!(reg.put_manifest(&token, &nested, &oci_digest(&art), Some(OCI_MANIFEST), &art).status, 201);
    let r = reg.send(oci(Method::Get, &format!("/v2/r/referrers/{subject}"), &token));
    assert_eq!((r.status, r.json()["manifests"].clone()), (200, json!([])));
}

#[test]
fn tags_list_paginates_with_n_last_and_a_link_header() {
    let (reg, token) = setup();
    let (body, _) = reg.push_image(&token, "team/app", "v1.0", "pages");
    let mut tags = vec!["v1.0".to_string()];
    for t in ["latest", "alpha", "beta", "_x", "V2", "v2.0"] {
        assert_eq!(reg.put_manifest(&token, "team/app", t, Some(OCI_MANIFEST), &body).status, 201);
        tags.push(t.to_string());
    }
    tags.sort();
    let list = |query: &str| reg.send(oci(Method::Get, &format!("/v2/team/app/tags/list{query}"), &token));
    let names = |r: &Resp| -> Vec<String> { serde_json::from_value(r.json()["tags"].clone()).unwrap() };

    let r = list("");
    assert_eq!((names(&r), r.header("Link")), (tags.clone(), None));
    let r = list("?n=2");
    assert_eq!(names(&r), tags[..2].to_vec());
    assert_eq!(r.header("Link"), Some(format!("</v2/team/app/tags/list?n=2&last={}>; rel=\"next\"", tags[1]).as_str()));
    // Following the links visits every tag once, in order.
    let mut seen = Vec::new();
    let mut next = Some("/v2/team/app/tags/list?n=3".to_string());
    while let Some(path) = next {
        let r = reg.send(oci(Method::Get, &path, &token));
        assert_eq!(r.status, 200, "{path}");
        let page = names(&r);
        assert!(!page.is_empty() && page.len() <= 3, "{path}: {page:?}");
        seen.extend(page);
        next = next_link(&r);
    }
    assert_eq!(seen, tags);
    // `last` alone, `n` at and beyond the count.
    assert_eq!(names(&list(&format!("?last={}", tags[2]))), tags[3..].to_vec());
    assert_eq!(names(&list(&format!("?n=2&last={}", tags[4]))), tags[5..7].to_vec());
    for n in [tags.len(), tags.len() + 5] {
        let r = list(&format!("?n={n}"));
        assert_eq!((names(&r), r.header("Link")), (tags.clone(), None), "n={n}");
    }
    assert!(names(&list(&format!("?last={}", tags.last().unwrap()))).is_empty());
    // n=0: an empty list and no Link (OCI distribution spec), else clients loop forever.
    let r = list("?n=0");
    assert_eq!((names(&r), r.header("Link")), (Vec::<String>::new(), None));
}

#[test]
fn catalog_paginates_with_n_last_and_a_link_header() {
    let (reg, token) = setup();
    let mut repos = vec!["e5", "a1", "team/c3", "b2", "d4"];
    for r in &repos {
        reg.push_blob(&token, r, r.as_bytes());
    }
    repos.sort();
    let names = |r: &Resp| -> Vec<String> { serde_json::from_value(r.json()["repositories"].clone()).unwrap() };
    let r = reg.send(oci(Method::Get, "/v2/_catalog", &token));
    assert_eq!((names(&r), r.header("Link")), (repos.iter().map(|s| s.to_string()).collect::<Vec<_>>(), None));
    let r = reg.send(oci(Method::Get, "/v2/_catalog?n=2", &token));
    assert_eq!(names(&r), vec![repos[0], repos[1]]);
    assert_eq!(r.header("Link"), Some(format!("</v2/_catalog?n=2&last={}>; rel=\"next\"", repos[1]).as_str()));
    let mut seen = Vec::new();
    let mut next = Some("/oci/v2/_catalog?n=2".to_string());
    while let Some(path) = next {
        let r = reg.send(oci(Method::Get, &path, &token));
        assert_eq!(r.status, 200, "{path}");
        seen.extend(names(&r));
        next = next_link(&r);
        assert!(next.as_ref().is_none_or(|n| n.starts_with("/oci/v2/_catalog?")), "{next:?}");
    }
    assert_eq!(seen, repos);
    let r = reg.send(oci(Method::Get, "/v2/_catalog?n=0", &token));
    assert_eq!((names(&r), r.header("Link")), (Vec::<String>::new(), None));
    assert_eq!(names(&reg.send(oci(Method::Get, &format!("/v2/_catalog?last={}", repos[3]), &token))), vec![repos[4]]);
}

#[test]
fn tags_list_of_an_unknown_repository_is_name_unknown() {
    let (reg, token) = setup();
    assert_oci_error(&reg.send(oci(Method::Get, "/v2/no/such/tags/list", &token)), 404, "NAME_UNKNOWN");
    // A repository with blobs but no tags exists: an empty list.
    reg.push_blob(&token, "team/app", b"blob");
    assert!(tags_of(&reg, &token, "team/app").is_empty());
}

#[test]
fn deletion_can_be_disabled_and_then_deletes_are_405_unsupported() {
    let reg = Reg::oci(&[("OCI_FEATURES", "deletion=false")]);
    reg.create_user("alice");
    let token = reg.create_token("alice", json!({"protocol": "oci"}));
    let (body, digest) = reg.push_image(&token, "team/app", "v1", "nodelete");
    let config = serde_json::from_slice::<Value>(&body).unwrap()["config"]["digest"].as_str().unwrap().to_string();
    let keys = reg.oci_keys();
    for path in ["/v2/team/app/manifests/v1".to_string(), format!("/v2/team/app/manifests/{digest}"), format!("/v2/team/app/blobs/{config}")] {
        assert_oci_error(&reg.send(oci(Method::Delete, &path, &token)), 405, "UNSUPPORTED");
    }
    assert_eq!(reg.oci_keys(), keys);
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token)).status, 200);
    // Cancelling an upload is not a deletion of content.
    let (_, location) = start_upload(&reg, &token, "team/app");
    assert_eq!(reg.send(oci(Method::Delete, &location, &token)).status, 204);
}

// ---------------------------------------------------------------- blobs

#[test]
fn blob_get_and_head() {
    let (reg, token) = setup();
    let data = b"0123456789abcdef".to_vec();
    let digest = reg.push_blob(&token, "team/app", &data);
    let r = get_blob(&reg, &token, "team/app", &digest);
    assert_eq!((r.status, &r.body), (200, &data));
    assert_eq!(r.header("Content-Length"), Some("16"));
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(r.header("ETag"), Some(format!("\"{digest}\"").as_str()));
    let h = reg.send(oci(Method::Head, &format!("/v2/team/app/blobs/{digest}"), &token));
    assert_eq!((h.status, h.body.len()), (200, 0));
    assert_eq!(h.header("Content-Length"), Some("16"));
    assert_eq!(h.header("Docker-Content-Digest"), Some(digest.as_str()));
    // Under the base path, with and without /v2.
    for path in [format!("/oci/v2/team/app/blobs/{digest}"), format!("/oci/team/app/blobs/{digest}")] {
        assert_eq!(reg.send(oci(Method::Get, &path, &token)).body, data, "{path}");
    }
}

#[test]
fn blob_range_requests_206_with_content_range_and_416_when_unsatisfiable() {
    let (reg, token) = setup();
    let data = b"0123456789abcdef".to_vec();
    let size = data.len();
    let digest = reg.push_blob(&token, "team/app", &data);
    let ranged = |range: &str| reg.send(oci(Method::Get, &format!("/v2/team/app/blobs/{digest}"), &token).with_header("Range", range));
    for (range, first, last) in [
        ("bytes=2-5", 2, 5),
        ("bytes=0-0", 0, 0),
        ("bytes=10-", 10, 15),
        ("bytes=14-100", 14, 15),
        ("bytes=-4", 12, 15),
        ("bytes=-1", 15, 15),
        ("bytes=-100", 0, 15),
    ] {
        let r = ranged(range);
        assert_eq!(r.status, 206, "{range}: {r:?}");
        assert_eq!(r.body, data[first..=last].to_vec(), "{range}");
        assert_eq!(r.header("Content-Range"), Some(format!("bytes {first}-{last}/{size}").as_str()), "{range}");
        assert_eq!(r.header("Content-Length"), Some((last - first + 1).to_string().as_str()), "{range}");
    }
    for range in ["bytes=16-", "bytes=20-30", "bytes=-0", "bytes=5-2"] {
        let r = ranged(range);
        assert_eq!(r.status, 416, "{range}: {r:?}");
        assert_eq!(r.header("Content-Range"), Some(format!("bytes */{size}").as_str()), "{range}");
        assert_oci_error_shape(&r);
        // Range means nothing to HEAD (RFC 9110 §14.2): it answers for the whole blob.
        let head = reg.send(oci(Method::Head, &format!("/v2/team/app/blobs/{digest}"), &token).with_header("Range", range));
        assert_eq!((head.status, head.header("Content-Length")), (200, Some(size.to_string().as_str())), "HEAD {range}");
    }
    // Several ranges, other units and garbage: the whole blob.
    for range in ["bytes=0-1,4-5", "items=0-3", "bytes=x-y", "bytes"] {
        let r = ranged(range);
        assert_eq!((r.status, &r.body), (200, &data), "{range}");
    }
}

#[test]
fn unknown_blobs_are_404_blob_unknown() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"known");
    let unknown = oci_digest(b"unknown");
    assert_oci_error(&get_blob(&reg, &token, "team/app", &unknown), 404, "BLOB_UNKNOWN");
    assert_oci_error(&get_blob(&reg, &token, "no/such/repo", &unknown), 404, "BLOB_UNKNOWN");
    let h = reg.send(oci(Method::Head, &format!("/v2/team/app/blobs/{unknown}"), &token));
    assert_eq!((h.status, h.body.len()), (404, 0));
    assert_oci_error(&reg.send(oci(Method::Delete, &format!("/v2/team/app/blobs/{unknown}"), &token)), 404, "BLOB_UNKNOWN");
}

#[test]
fn blobs_are_per_repository_until_mounted() {
    let (reg, token) = setup();
    let data = b"private layer".to_vec();
    let digest = reg.push_blob(&token, "team/a", &data);
    assert_oci_error(&get_blob(&reg, &token, "team/b", &digest), 404, "BLOB_UNKNOWN");
    let h = reg.send(oci(Method::Head, &format!("/v2/team/b/blobs/{digest}"), &token));
    assert_eq!(h.status, 404);
    let m = reg.send(oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?mount={digest}&from=team/a"), &token));
    assert_eq!(m.status, 201, "{m:?}");
    assert_eq!(get_blob(&reg, &token, "team/b", &digest).body, data);
    // One copy of the bytes, two links.
    assert_eq!(reg.keys_with("oci/blobs/").len(), 1);
    assert!(reg.oci_keys().contains(&link_key("team/a", &digest)) && reg.oci_keys().contains(&link_key("team/b", &digest)));
}

#[test]
fn delete_blob_unlinks_it_from_that_repository_only() {
    let (reg, token) = setup();
    let data = b"shared layer".to_vec();
    let digest = reg.push_blob(&token, "team/a", &data);
    assert_eq!(reg.send(oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?mount={digest}&from=team/a"), &token)).status, 201);
    let r = reg.send(oci(Method::Delete, &format!("/v2/team/a/blobs/{digest}"), &token));
    assert_eq!(r.status, 202, "{r:?}");
    assert_oci_error(&get_blob(&reg, &token, "team/a", &digest), 404, "BLOB_UNKNOWN");
    assert_eq!(get_blob(&reg, &token, "team/b", &digest).body, data);
    assert_oci_error(&reg.send(oci(Method::Delete, &format!("/v2/team/a/blobs/{digest}"), &token)), 404, "BLOB_UNKNOWN");
    // Pushed again, it is back.
    reg.push_blob(&token, "team/a", &data);
    assert_eq!(get_blob(&reg, &token, "team/a", &digest).body, data);
}

// ---------------------------------------------------------------- uploads

#[test]
fn monolithic_post_with_digest_is_201() {
    let (reg, token) = setup();
    let data = pseudo_random(100_000, 1);
    let digest = oci_digest(&data);
    let r = reg.send(oci(Method::Post, &format!("/v2/team/app/blobs/uploads/?digest={digest}"), &token).with_body(data.clone()));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Location"), Some(format!("/v2/team/app/blobs/{digest}").as_str()));
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(r.header("Content-Length"), Some("0"));
    assert_eq!(get_blob(&reg, &token, "team/app", &digest).body, data);
    assert_no_upload_leftovers(&reg);
    // Under the base path the Location keeps the prefix.
    let other = b"other".to_vec();
    let r = reg.send(oci(Method::Post, &format!("/oci/v2/team/app/blobs/uploads/?digest={}", oci_digest(&other)), &token).with_body(other.clone()));
    assert_eq!(r.header("Location"), Some(format!("/oci/v2/team/app/blobs/{}", oci_digest(&other)).as_str()));
}

#[test]
fn monolithic_post_with_the_wrong_digest_stores_nothing() {
    let (reg, token) = setup();
    let claimed = oci_digest(b"what the client says");
    let r = reg.send(oci(Method::Post, &format!("/v2/team/app/blobs/uploads/?digest={claimed}"), &token).with_body(b"what it sends".to_vec()));
    assert_oci_error(&r, 400, "DIGEST_INVALID");
    assert!(reg.oci_keys().is_empty(), "{:?}", reg.oci_keys());
    assert_oci_error(&get_blob(&reg, &token, "team/app", &claimed), 404, "BLOB_UNKNOWN");
    assert_no_upload_leftovers(&reg);
}

#[test]
fn claiming_an_existing_digest_with_other_bytes_does_not_link_it() {
    // alice's private layer; bob may push to his own repository only and knows the digest.
    let (reg, token) = setup();
    let secret = b"alice's private layer".to_vec();
    let digest = reg.push_blob(&token, "alice/private", &secret);
    reg.create_user("bob");
    let bob = reg.jwt_for("bob", &["repository:bob/app:pull,push"]);
    assert_challenge(&get_blob(&reg, &bob, "alice/private", &digest), "repository:alice/private:pull");

    let r = reg.send(oci(Method::Post, &format!("/v2/bob/app/blobs/uploads/?digest={digest}"), &bob).with_body(b"not the bytes".to_vec()));
    assert_oci_error(&r, 400, "DIGEST_INVALID");
    let (_, location) = start_upload(&reg, &bob, "bob/app");
    assert_oci_error(&finish_upload(&reg, &bob, &location, &digest, b"not the bytes either"), 400, "DIGEST_INVALID");
    let (_, location) = start_upload(&reg, &bob, "bob/app");
    assert_eq!(patch_chunk(&reg, &bob, &location, b"chunked guess", None).status, 202);
    assert_oci_error(&finish_upload(&reg, &bob, &location, &digest, b""), 400, "DIGEST_INVALID");
    assert_oci_error(&get_blob(&reg, &bob, "bob/app", &digest), 404, "BLOB_UNKNOWN");
    assert!(!reg.oci_keys().contains(&link_key("bob/app", &digest)));
    assert_eq!(get_blob(&reg, &token, "alice/private", &digest).body, secret);

    // Whoever has the real bytes may store them again (deduplicated): that grants nothing new.
    let r = reg.send(oci(Method::Post, &format!("/v2/bob/app/blobs/uploads/?digest={digest}"), &bob).with_body(secret.clone()));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(get_blob(&reg, &bob, "bob/app", &digest).body, secret);
    assert_eq!(reg.keys_with("oci/blobs/").len(), 1);
}

#[test]
fn post_then_put_uploads_a_whole_blob() {
    let (reg, token) = setup();
    let (r, location) = start_upload(&reg, &token, "team/app");
    let id = upload_id(&location);
    assert_eq!(location, format!("/v2/team/app/blobs/uploads/{id}"));
    assert_eq!(r.header("Docker-Upload-UUID"), Some(id.as_str()));
    assert_eq!(r.header("Range"), Some("0-0"));
    assert_eq!(r.header("Content-Length"), Some("0"));
    let data = pseudo_random(300_000, 2);
    let digest = oci_digest(&data);
    let r = finish_upload(&reg, &token, &location, &digest, &data);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Location"), Some(format!("/v2/team/app/blobs/{digest}").as_str()));
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(get_blob(&reg, &token, "team/app", &digest).body, data);
    assert_oci_error(&reg.send(oci(Method::Get, &location, &token)), 404, "BLOB_UPLOAD_UNKNOWN");
    assert_no_upload_leftovers(&reg);
}

#[test]
fn chunked_upload_with_content_range() {
    let (reg, token) = setup();
    let (_, location) = start_upload(&reg, &token, "team/app");
    let id = upload_id(&location);
    let r = patch_chunk(&reg, &token, &location, b"hello", Some("0-4"));
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.header("Range"), Some("0-4"));
    assert_eq!(r.header("Location"), Some(location.as_str()));
    assert_eq!(r.header("Docker-Upload-UUID"), Some(id.as_str()));
    assert_eq!(r.header("Content-Length"), Some("0"));
    // The `bytes a-b/total` form is understood too.
    let next = r.header("Location").unwrap().to_string();
    let r = patch_chunk(&reg, &token, &next, b" world", Some("bytes 5-10/*"));
    assert_eq!((r.status, r.header("Range")), (202, Some("0-10")), "{r:?}");
    let r = reg.send(oci(Method::Get, &location, &token));
    assert_eq!((r.status, r.header("Range")), (204, Some("0-10")));
    let digest = oci_digest(b"hello world");
    let r = finish_upload(&reg, &token, &location, &digest, b"");
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(get_blob(&reg, &token, "team/app", &digest).body, b"hello world");
    assert_no_upload_leftovers(&reg);
}

#[test]
fn an_out_of_order_chunk_is_416_with_the_current_range() {
    let (reg, token) = setup();
    let (_, location) = start_upload(&reg, &token, "team/app");
    // The first chunk must start at 0.
    let r = patch_chunk(&reg, &token, &location, b"hello", Some("1-5"));
    assert_oci_error(&r, 416, "BLOB_UPLOAD_INVALID");
    assert_eq!(r.header("Range"), Some("0-0"));
    assert_eq!(patch_chunk(&reg, &token, &location, b"hello", Some("0-4")).status, 202);
    for bad in ["10-14", "0-4", "4-8", "6-10", "abc", "-5", ""] {
        let r = patch_chunk(&reg, &token, &location, b"XXXXX", Some(bad));
        assert_oci_error(&r, 416, "BLOB_UPLOAD_INVALID");
        assert_eq!(r.header("Range"), Some("0-4"), "{bad}");
    }
    // A range that does not say how long the body is: refused too.
    for (bad, body) in [("5-10", &b"XXXXX"[..]), ("5-8", &b"XXXXX"[..]), ("5-5", &b"XX"[..])] {
        let r = patch_chunk(&reg, &token, &location, body, Some(bad));
        assert_oci_error(&r, 416, "BLOB_UPLOAD_INVALID");
        assert_eq!(r.header("Range"), Some("0-4"), "{bad}");
    }
    // The final PUT is checked the same way.
    let digest = oci_digest(b"hello world");
    let r = reg.send(oci(Method::Put, &format!("{location}?digest={digest}"), &token).with_header("Content-Range", "9-14").with_body(b" world".to_vec()));
    assert_oci_error(&r, 416, "BLOB_UPLOAD_INVALID");
    assert_eq!(r.header("Range"), Some("0-4"));
    // Refused chunks changed nothing: the upload continues where it was.
    assert_eq!(reg.send(oci(Method::Get, &location, &token)).header("Range"), Some("0-4"));
    let r = reg.send(oci(Method::Put, &format!("{location}?digest={digest}"), &token).with_header("Content-Range", "5-10").with_body(b" world".to_vec()));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(get_blob(&reg, &token, "team/app", &digest).body, b"hello world");
}

#[test]
fn upload_status_reports_range_location_and_upload_uuid() {
    let (reg, token) = setup();
    let (_, location) = start_upload(&reg, &token, "team/app");
    let id = upload_id(&location);
    let r = reg.send(oci(Method::Get, &location, &token));
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("Location"), Some(location.as_str()));
    assert_eq!(r.header("Range"), Some("0-0"));
    assert_eq!(r.header("Docker-Upload-UUID"), Some(id.as_str()));
    assert!(r.body.is_empty());
    let data = pseudo_random(1000, 3);
    patch_chunk(&reg, &token, &location, &data, None);
    let r = reg.send(oci(Method::Get, &location, &token));
    assert_eq!((r.status, r.header("Range")), (204, Some("0-999")));
    // Through the base path the Location keeps the prefix.
    let (_, based) = {
        let r = reg.send(oci(Method::Post, "/oci/v2/team/app/blobs/uploads/", &token));
        let l = r.header("Location").unwrap().to_string();
        (r, l)
    };
    assert!(based.starts_with("/oci/v2/team/app/blobs/uploads/"), "{based}");
    assert_eq!(reg.send(oci(Method::Get, &based, &token)).header("Location"), Some(based.as_str()));
}

#[test]
fn cancelled_upload_is_gone_and_leaves_nothing_behind() {
    let (reg, token) = setup();
    let (_, location) = start_upload(&reg, &token, "team/app");
    // More than one part: a multipart upload and a tail object exist.
    let data = pseudo_random(PART_SIZE + MIB, 4);
    assert_eq!(patch_chunk(&reg, &token, &location, &data, Some(&range_of(0, data.len()))).status, 202);
    assert_eq!(reg.mem.store.open_uploads(), 1);
    assert_eq!(reg.keys_with("oci/uploads/").len(), 1);
    let r = reg.send(oci(Method::Delete, &location, &token));
    assert_eq!((r.status, r.body.len()), (204, 0), "{r:?}");
    assert_no_upload_leftovers(&reg);
    assert!(reg.keys_with("oci/blob-data/").is_empty() && reg.keys_with("oci/blobs/").is_empty());
    let digest = oci_digest(&data);
    for req in [
        oci(Method::Patch, &location, &token).with_body(b"more".to_vec()),
        oci(Method::Put, &format!("{location}?digest={digest}"), &token),
        oci(Method::Get, &location, &token),
        oci(Method::Delete, &location, &token),
    ] {
        assert_oci_error(&reg.send(req), 404, "BLOB_UPLOAD_UNKNOWN");
    }
}

#[test]
fn a_wrong_digest_on_the_final_put_is_digest_invalid_and_nothing_is_visible() {
    let (reg, token) = setup();
    // Smaller than a part (single put) and larger (multipart).
    for size in [5, PART_SIZE + 3 * MIB] {
        let data = pseudo_random(size, size as u64);
        let mut claimed_bytes = data.clone();
        claimed_bytes[0] ^= 1;
        let (claimed, actual) = (oci_digest(&claimed_bytes), oci_digest(&data));
        let (_, location) = start_upload(&reg, &token, "team/app");
        assert_eq!(patch_chunk(&reg, &token, &location, &data, None).status, 202);
        let r = finish_upload(&reg, &token, &location, &claimed, b"");
        assert_oci_error(&r, 400, "DIGEST_INVALID");
        for d in [&claimed, &actual] {
            assert_oci_error(&get_blob(&reg, &token, "team/app", d), 404, "BLOB_UNKNOWN");
            assert!(!reg.oci_keys().contains(&blob_key(d)), "{size}: blob key for {d}");
            assert!(!reg.oci_keys().contains(&link_key("team/app", d)));
        }
        assert!(reg.keys_with("oci/blob-data/").is_empty(), "{size}: {:?}", reg.keys_with("oci/blob-data/"));
        assert_no_upload_leftovers(&reg);
        assert_oci_error(&reg.send(oci(Method::Get, &location, &token)), 404, "BLOB_UPLOAD_UNKNOWN");
    }
}

#[test]
fn the_final_put_may_carry_the_last_chunk_and_trailing_bytes_count() {
    let (reg, token) = setup();
    let (_, location) = start_upload(&reg, &token, "team/app");
    assert_eq!(patch_chunk(&reg, &token, &location, b"hello ", Some("0-5")).status, 202);
    let digest = oci_digest(b"hello world");
    let r = reg.send(oci(Method::Put, &format!("{location}?digest={digest}"), &token).with_header("Content-Range", "6-10").with_body(b"world".to_vec()));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(get_blob(&reg, &token, "team/app", &digest).body, b"hello world");

    // Bytes after what the digest covers make it wrong: refused, nothing stored.
    let (_, location) = start_upload(&reg, &token, "team/app");
    assert_eq!(patch_chunk(&reg, &token, &location, b"abc", None).status, 202);
    let abc = oci_digest(b"abc");
    assert_oci_error(&finish_upload(&reg, &token, &location, &abc, b"def"), 400, "DIGEST_INVALID");
    assert!(!reg.oci_keys().contains(&blob_key(&abc)) && !reg.oci_keys().contains(&blob_key(&oci_digest(b"abcdef"))));
    assert_no_upload_leftovers(&reg);
}

#[test]
fn chunks_crossing_the_10_mib_part_boundary_round_trip_byte_identical() {
    assert_eq!(PART_SIZE, 10 * MIB);
    let (reg, token) = setup();
    let chunk = 7 * MIB;
    let data = pseudo_random(3 * chunk, 7);
    let digest = oci_digest(&data);
    let (_, mut location) = start_upload(&reg, &token, "team/app");
    for i in 0..3 {
        let r = patch_chunk(&reg, &token, &location, &data[i * chunk..(i + 1) * chunk], Some(&range_of(i * chunk, chunk)));
        assert_eq!(r.status, 202, "chunk {i}: {r:?}");
        assert_eq!(r.header("Range"), Some(format!("0-{}", (i + 1) * chunk - 1).as_str()));
        location = r.header("Location").unwrap().to_string();
        // 7 MiB waits as a tail; 14 MiB makes one part; 21 MiB two.
        assert_eq!(reg.mem.store.open_uploads(), usize::from(i > 0), "chunk {i}");
        assert_eq!(reg.keys_with("oci/uploads/").len(), 1, "one tail object after chunk {i}");
    }
    let r = finish_upload(&reg, &token, &location, &digest, b"");
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_no_upload_leftovers(&reg);

    let g = get_blob(&reg, &token, "team/app", &digest);
    assert_eq!(g.status, 200);
    assert_eq!(g.header("Content-Length"), Some(data.len().to_string().as_str()));
    assert!(g.body == data, "downloaded blob differs from what was uploaded");
    assert_eq!(oci_digest(&g.body), digest);
    let h = reg.send(oci(Method::Head, &format!("/v2/team/app/blobs/{digest}"), &token));
    assert_eq!(h.header("Content-Length"), Some(data.len().to_string().as_str()));
    // Ranges across the part boundaries come from the assembled object.
    for (a, b) in [(PART_SIZE - 3, PART_SIZE + 2), (2 * PART_SIZE - 1, 2 * PART_SIZE), (data.len() - 5, data.len() - 1)] {
        let r = reg.send(oci(Method::Get, &format!("/v2/team/app/blobs/{digest}"), &token).with_header("Range", &format!("bytes={a}-{b}")));
        assert_eq!(r.status, 206);
        assert_eq!(r.body, data[a..=b].to_vec(), "{a}-{b}");
        assert_eq!(r.header("Content-Range"), Some(format!("bytes {a}-{b}/{}", data.len()).as_str()));
    }
    // The blob can be mounted and used by a manifest like any other.
    assert_eq!(reg.send(oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?mount={digest}&from=team/app"), &token)).status, 201);
    assert!(get_blob(&reg, &token, "team/b", &digest).body == data);
}

/// A streamed PATCH (no `Content-Range`) is hashed as it passes (natively in the Worker); when
/// more bytes follow it, by another PATCH or by the final PUT, there is no running hash to
/// continue: the digest is then checked over the stored content, and a wrong one still stores
/// nothing.
#[test]
fn more_bytes_after_a_streamed_patch_are_verified_over_the_stored_content() {
    // Under one part in all (checked before the single put), and over several parts
    // (checked by reading the assembled object back).
    for (first, second) in [(1000, 500), (PART_SIZE + 3 * MIB, 2 * MIB), (3 * MIB, PART_SIZE)] {
        let (reg, token) = setup();
        let data = pseudo_random(first + second, (first + second) as u64);
        let digest = oci_digest(&data);
        let mut flipped = data.clone();
        flipped[first + 1] ^= 1;
        let wrong = oci_digest(&flipped);
        for (claimed, by_put) in [(&wrong, false), (&wrong, true), (&digest, false), (&digest, true)] {
            let (_, location) = start_upload(&reg, &token, "team/app");
            assert_eq!(patch_chunk(&reg, &token, &location, &data[..first], None).status, 202);
            let r = if by_put {
                finish_upload(&reg, &token, &location, claimed, &data[first..])
            } else {
                let r = patch_chunk(&reg, &token, &location, &data[first..], None);
                assert_eq!((r.status, r.header("Range")), (202, Some(format!("0-{}", data.len() - 1).as_str())));
                finish_upload(&reg, &token, &location, claimed, b"")
            };
            let what = format!("{first}+{second} by {}, claimed {}", if by_put { "PUT" } else { "PATCH" }, if claimed == &digest { "right" } else { "wrong" });
            if claimed == &wrong {
                assert_oci_error(&r, 400, "DIGEST_INVALID");
                for d in [&wrong, &digest] {
                    assert!(!reg.oci_keys().contains(&blob_key(d)), "{what}: blob key for {d}");
                    assert!(!reg.oci_keys().contains(&link_key("team/app", d)), "{what}");
                }
                assert!(reg.keys_with("oci/blob-data/").is_empty(), "{what}: {:?}", reg.keys_with("oci/blob-data/"));
            } else {
                assert_eq!(r.status, 201, "{what}: {r:?}");
                let g = get_blob(&reg, &token, "team/app", &digest);
                assert!(g.status == 200 && g.body == data, "{what}: the stored blob differs");
            }
            assert_no_upload_leftovers(&reg);
        }
    }
}

/// A streamed upload of several parts in one PATCH, the way docker and crane push a layer:
/// the digest its bytes were hashed to as they passed decides, without re-reading them.
#[test]
fn a_single_streamed_patch_of_several_parts_then_put_stores_the_blob_or_refuses_a_wrong_digest() {
    let (reg, token) = setup();
    let data = pseudo_random(2 * PART_SIZE + 5 * MIB, 21);
    let digest = oci_digest(&data);
    let (_, location) = start_upload(&reg, &token, "team/app");
    assert_eq!(patch_chunk(&reg, &token, &location, &data, None).status, 202);
    let wrong = oci_digest(b"not these bytes");
    assert_oci_error(&finish_upload(&reg, &token, &location, &wrong, b""), 400, "DIGEST_INVALID");
    assert!(reg.keys_with("oci/blob-data/").is_empty() && !reg.oci_keys().contains(&blob_key(&wrong)));
    assert_no_upload_leftovers(&reg);
    let (_, location) = start_upload(&reg, &token, "team/app");
    assert_eq!(patch_chunk(&reg, &token, &location, &data, None).status, 202);
    assert_eq!(finish_upload(&reg, &token, &location, &digest, b"").status, 201);
    assert!(get_blob(&reg, &token, "team/app", &digest).body == data);
    assert_no_upload_leftovers(&reg);
}

#[test]
fn an_upload_of_exact_part_multiples_completes() {
    let (reg, token) = setup();
    let data = pseudo_random(2 * PART_SIZE, 8);
    let digest = oci_digest(&data);
    // One part by PATCH, the second carried by the PUT.
    let (_, location) = start_upload(&reg, &token, "team/app");
    assert_eq!(patch_chunk(&reg, &token, &location, &data[..PART_SIZE], Some(&range_of(0, PART_SIZE))).status, 202);
    assert!(reg.keys_with("oci/uploads/").is_empty(), "a full part leaves no tail");
    let r = finish_upload(&reg, &token, &location, &digest, &data[PART_SIZE..]);
    assert_eq!(r.status, 201, "{r:?}");
    assert!(get_blob(&reg, &token, "team/app", &digest).body == data);
    // Both parts by PATCH, then an empty PUT.
    let (_, location) = start_upload(&reg, &token, "team/b");
    assert_eq!(patch_chunk(&reg, &token, &location, &data, None).status, 202);
    assert_eq!(finish_upload(&reg, &token, &location, &digest, b"").status, 201);
    assert!(get_blob(&reg, &token, "team/b", &digest).body == data);
    assert_no_upload_leftovers(&reg);
}

#[test]
fn zero_length_blobs_upload_every_way() {
    let (reg, token) = setup();
    let empty = oci_digest(b"");
    // Monolithic, POST then empty PUT, and a chunked session with an empty PATCH.
    let r = reg.send(oci(Method::Post, &format!("/v2/team/a/blobs/uploads/?digest={empty}"), &token));
    assert_eq!(r.status, 201, "{r:?}");
    let (_, location) = start_upload(&reg, &token, "team/b");
    assert_eq!(finish_upload(&reg, &token, &location, &empty, b"").status, 201);
    let (_, location) = start_upload(&reg, &token, "team/c");
    let r = patch_chunk(&reg, &token, &location, b"", None);
    assert_eq!((r.status, r.header("Range")), (202, Some("0-0")));
    assert_eq!(finish_upload(&reg, &token, &location, &empty, b"").status, 201);
    assert_no_upload_leftovers(&reg);
    for repo in ["team/a", "team/b", "team/c"] {
        let g = get_blob(&reg, &token, repo, &empty);
        assert_eq!((g.status, g.body.len(), g.header("Content-Length")), (200, 0, Some("0")), "{repo}");
        let h = reg.send(oci(Method::Head, &format!("/v2/{repo}/blobs/{empty}"), &token));
        assert_eq!((h.status, h.header("Content-Length")), (200, Some("0")));
        let r = reg.send(oci(Method::Get, &format!("/v2/{repo}/blobs/{empty}"), &token).with_header("Range", "bytes=0-"));
        assert_eq!((r.status, r.header("Content-Range")), (416, Some("bytes */0")));
    }
    // A manifest may use it as a layer.
    reg.push_blob(&token, "team/a", b"{}");
    let body = json_body(&image_manifest(b"{}", &[b""]));
    assert_eq!(reg.put_manifest(&token, "team/a", "empty-layer", Some(OCI_MANIFEST), &body).status, 201);
}

#[test]
fn patch_with_a_streamed_body_and_no_content_length_or_range() {
    // Natively a `Body::Stream` always knows its length (`PlatformStream::length` is Some): the
    // handler must not depend on a Content-Length header, and reads the stream in 64 KiB pieces.
    let (reg, token) = setup();
    let data = pseudo_random(3 * MIB + 12_345, 9);
    let digest = oci_digest(&data);
    let (_, location) = start_upload(&reg, &token, "team/app");
    let req = oci(Method::Patch, &location, &token).with_body(Body::Stream(PlatformStream::from_bytes(data[..MIB + 1].to_vec())));
    assert!(req.header("Content-Length").is_none() && req.header("Content-Range").is_none());
    let r = reg.send(req);
    assert_eq!((r.status, r.header("Range")), (202, Some(format!("0-{}", MIB).as_str())), "{r:?}");
    let req = oci(Method::Patch, &location, &token).with_body(Body::Stream(PlatformStream::from_bytes(data[MIB + 1..].to_vec())));
    let r = reg.send(req);
    assert_eq!(r.header("Range"), Some(format!("0-{}", data.len() - 1).as_str()));
    let put = oci(Method::Put, &format!("{location}?digest={digest}"), &token).with_body(Body::Stream(PlatformStream::from_bytes(Vec::new())));
    assert_eq!(reg.send(put).status, 201);
    assert!(get_blob(&reg, &token, "team/app", &digest).body == data);
    // A monolithic POST and a POST-then-PUT with streamed bodies.
    let other = pseudo_random(200_000, 10);
    let d = oci_digest(&other);
    let post = oci(Method::Post, &format!("/v2/team/s/blobs/uploads/?digest={d}"), &token).with_body(Body::Stream(PlatformStream::from_bytes(other.clone())));
    assert_eq!(reg.send(post).status, 201);
    let (_, location) = start_upload(&reg, &token, "team/t");
    let put = oci(Method::Put, &format!("{location}?digest={d}"), &token).with_body(Body::Stream(PlatformStream::from_bytes(other.clone())));
    assert_eq!(reg.send(put).status, 201);
    for repo in ["team/s", "team/t"] {
        assert_eq!(get_blob(&reg, &token, repo, &d).body, other);
    }
    assert_no_upload_leftovers(&reg);
}

#[test]
fn mount_from_a_pullable_repository_is_201() {
    let (reg, token) = setup();
    let data = b"layer to share".to_vec();
    let digest = reg.push_blob(&token, "team/a", &data);
    let r = reg.send(oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?mount={digest}&from=team/a"), &token));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Location"), Some(format!("/v2/team/b/blobs/{digest}").as_str()));
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(r.header("Content-Length"), Some("0"));
    assert!(reg.mem.sessions.is_empty(), "a mount opens no session");
    assert_eq!(get_blob(&reg, &token, "team/b", &digest).body, data);
    // A JWT with pull on the source and push on the target is enough.
    let jwt = reg.jwt_for("alice", &["repository:team/a:pull", "repository:team/c:pull,push"]);
    let r = reg.send(oci(Method::Post, &format!("/v2/team/c/blobs/uploads/?mount={digest}&from=team/a"), &jwt));
    assert_eq!(r.status, 201, "{r:?}");
}

#[test]
fn mount_falls_back_to_a_202_session_when_it_cannot_be_done() {
    let (reg, token) = setup();
    let data = b"alice's layer".to_vec();
    let digest = reg.push_blob(&token, "team/a", &data);
    reg.create_user("bob");
    // bob's token for the token endpoint may only touch his own repositories: asked for
    // pull on team/a, the JWT has none, and the mount falls back to an upload.
    let bob_own = reg.create_token("bob", json!({"protocol": "oci", "scopes": ["oci:repository:bob/*:*"]}));
    let r = reg.docker_token(Some(("bob", &bob_own)), &["repository:bob/app:pull,push", "repository:team/a:pull"]);
    assert_eq!(r.status, 200, "{r:?}");
    let bob = r.json()["token"].as_str().unwrap().to_string();
    let cases = [
        // bob may not pull team/a.
        format!("?mount={digest}&from=team/a"),
        // Not in the source repository.
        format!("?mount={}&from=team/a", oci_digest(b"never pushed")),
        // Bad source name, bad digest, no source.
        format!("?mount={digest}&from=Team/A"),
        "?mount=sha256:nothex&from=team/a".to_string(),
        format!("?mount={digest}"),
    ];
    for query in cases {
        let r = reg.send(oci(Method::Post, &format!("/v2/bob/app/blobs/uploads/{query}"), &bob));
        assert_eq!(r.status, 202, "{query}: {r:?}");
        let location = r.header("Location").unwrap().to_string();
        assert!(location.starts_with("/v2/bob/app/blobs/uploads/"), "{location}");
        assert_eq!(r.header("Docker-Upload-UUID"), Some(upload_id(&location).as_str()));
        assert_eq!(reg.send(oci(Method::Get, &location, &bob)).status, 204, "{query}: the session is usable");
    }
    assert_oci_error(&get_blob(&reg, &bob, "bob/app", &digest), 404, "BLOB_UNKNOWN");
    assert!(!reg.oci_keys().contains(&link_key("bob/app", &digest)));
}

#[test]
fn upload_responses_advertise_chunk_lengths() {
    let (reg, token) = setup();
    let (r, location) = start_upload(&reg, &token, "team/app");
    let min = PART_SIZE.to_string();
    let max = MAX_CHUNK.to_string();
    assert_eq!(r.header("OCI-Chunk-Min-Length"), Some(min.as_str()));
    assert_eq!(r.header("OCI-Chunk-Max-Length"), Some(max.as_str()));
    let p = patch_chunk(&reg, &token, &location, b"abc", None);
    assert_eq!(p.header("OCI-Chunk-Min-Length"), Some(min.as_str()));
    let s = reg.send(oci(Method::Get, &location, &token));
    assert_eq!(s.header("OCI-Chunk-Min-Length"), Some(min.as_str()));
    // The advertised maximum fits under the platform's 100 MB request limit.
    assert!(MAX_CHUNK < 100_000_000 && (PART_SIZE as u64) <= MAX_CHUNK);
}

#[test]
fn an_upload_session_belongs_to_its_repository() {
    let (reg, token) = setup();
    let (_, location) = start_upload(&reg, &token, "team/a");
    let id = upload_id(&location);
    assert_eq!(patch_chunk(&reg, &token, &location, b"abc", None).status, 202);
    let elsewhere = format!("/v2/team/b/blobs/uploads/{id}");
    let digest = oci_digest(b"abc");
    for req in [
        oci(Method::Patch, &elsewhere, &token).with_body(b"def".to_vec()),
        oci(Method::Put, &format!("{elsewhere}?digest={digest}"), &token),
        oci(Method::Get, &elsewhere, &token),
        oci(Method::Delete, &elsewhere, &token),
    ] {
        assert_oci_error(&reg.send(req), 404, "BLOB_UPLOAD_UNKNOWN");
    }
    assert_oci_error(&get_blob(&reg, &token, "team/b", &digest), 404, "BLOB_UNKNOWN");
    // Untouched in its own repository.
    assert_eq!(reg.send(oci(Method::Get, &location, &token)).header("Range"), Some("0-2"));
    assert_eq!(finish_upload(&reg, &token, &location, &digest, b"").status, 201);
    // Ids that were never issued.
    for bogus in ["not-a-session", "0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef0", "../../x"] {
        let r = reg.send(oci(Method::Get, &format!("/v2/team/a/blobs/uploads/{bogus}"), &token));
        assert_eq!(r.status, 404, "{bogus}: {r:?}");
        if !bogus.contains('/') {
            assert_oci_error(&r, 404, "BLOB_UPLOAD_UNKNOWN");
        }
    }
}

#[test]
fn idle_upload_sessions_expire_and_are_cleaned_up() {
    let (reg, token) = setup();
    let (_, idle) = start_upload(&reg, &token, "team/app");
    assert_eq!(patch_chunk(&reg, &token, &idle, &pseudo_random(PART_SIZE + 100, 11), None).status, 202);
    let (_, busy) = start_upload(&reg, &token, "team/app");
    reg.mem.clock.advance(40.0 * 60.0 * 1000.0);
    // Activity keeps a session alive: its hour counts from the last request.
    assert_eq!(patch_chunk(&reg, &token, &busy, b"still here", None).status, 202);
    reg.mem.clock.advance(21.0 * 60.0 * 1000.0);
    block_on(reg.mem.sessions.sweep());
    assert_eq!(reg.mem.store.open_uploads(), 0, "the idle session's multipart upload is aborted");
    assert_eq!(reg.keys_with("oci/uploads/").len(), 1, "only the busy session's tail is left");
    assert_oci_error(&patch_chunk(&reg, &token, &idle, b"late", None), 404, "BLOB_UPLOAD_UNKNOWN");
    let digest = oci_digest(b"still here");
    assert_eq!(finish_upload(&reg, &token, &busy, &digest, b"").status, 201);
    assert_no_upload_leftovers(&reg);
}

// ---------------------------------------------------------------- referrers

/// Pushes an artifact manifest about `subject` into `repo`; returns its bytes and digest.
fn push_referrer(reg: &Reg, token: &str, repo: &str, subject: &str, artifact_type: Option<&str>, config_type: &str, note: &str) -> (Vec<u8>, String) {
    reg.push_blob(token, repo, b"{}");
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_type, b"{}"),
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "size": 10, "digest": subject},
        "annotations": {"note": note},
    });
    if let Some(a) = artifact_type {
        m["artifactType"] = json!(a);
    }
    let body = json_body(&m);
    let digest = oci_digest(&body);
    let r = reg.put_manifest(token, repo, &digest, Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("OCI-Subject"), Some(subject));
    (body, digest)
}

fn referrers(reg: &Reg, token: &str, repo: &str, subject: &str, query: &str) -> Resp {
    let r = reg.send(oci(Method::Get, &format!("/v2/{repo}/referrers/{subject}{query}"), token));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    assert_eq!(r.json()["schemaVersion"], 2);
    assert_eq!(r.json()["mediaType"], OCI_INDEX);
    r
}

#[test]
fn referrers_list_the_manifests_whose_subject_is_the_digest() {
    let (reg, token) = setup();
    let (_, subject) = reg.push_image(&token, "team/app", "v1", "subject");
    let (sbom, sbom_digest) = push_referrer(&reg, &token, "team/app", &subject, Some("application/vnd.example.sbom"), "application/vnd.oci.empty.v1+json", "sbom");
    // No artifactType: the config media type stands in for it.
    let (sig, sig_digest) = push_referrer(&reg, &token, "team/app", &subject, None, "application/vnd.example.signature", "sig");
    // A referrer of another subject is not listed.
    push_referrer(&reg, &token, "team/app", &oci_digest(b"elsewhere"), Some("application/vnd.example.sbom"), OCI_CONFIG, "other");
    let r = referrers(&reg, &token, "team/app", &subject, "");
    assert!(r.header("OCI-Filters-Applied").is_none());
    let mut got = r.json()["manifests"].as_array().unwrap().clone();
    got.sort_by_key(|m| m["digest"].as_str().unwrap().to_string());
    let mut want = vec![
        json!({"mediaType": OCI_MANIFEST, "size": sbom.len(), "digest": sbom_digest, "artifactType": "application/vnd.example.sbom", "annotations": {"note": "sbom"}}),
        json!({"mediaType": OCI_MANIFEST, "size": sig.len(), "digest": sig_digest, "artifactType": "application/vnd.example.signature", "annotations": {"note": "sig"}}),
    ];
    want.sort_by_key(|m| m["digest"].as_str().unwrap().to_string());
    assert_eq!(got, want);
    // Per repository: the same subject elsewhere has none.
    assert_eq!(referrers(&reg, &token, "team/other", &subject, "").json()["manifests"], json!([]));
}

#[test]
fn referrers_filter_by_artifact_type_and_say_so() {
    let (reg, token) = setup();
    let subject = oci_digest(b"subject");
    let (_, sbom) = push_referrer(&reg, &token, "team/app", &subject, Some("application/vnd.example.sbom"), OCI_CONFIG, "1");
    push_referrer(&reg, &token, "team/app", &subject, Some("application/vnd.example.sig"), OCI_CONFIG, "2");
    let r = referrers(&reg, &token, "team/app", &subject, "?artifactType=application/vnd.example.sbom");
    assert_eq!(r.header("OCI-Filters-Applied"), Some("artifactType"));
    let list = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], sbom);
    let r = referrers(&reg, &token, "team/app", &subject, "?artifactType=application/vnd.example.none");
    assert_eq!((r.header("OCI-Filters-Applied"), r.json()["manifests"].clone()), (Some("artifactType"), json!([])));
    // An empty filter is no filter.
    let r = referrers(&reg, &token, "team/app", &subject, "?artifactType=");
    assert_eq!((r.header("OCI-Filters-Applied"), r.json()["manifests"].as_array().unwrap().len()), (None, 2));
}

#[test]
fn referrers_of_an_unknown_subject_is_an_empty_index() {
    let (reg, token) = setup();
    let unknown = oci_digest(b"no such manifest");
    assert_eq!(referrers(&reg, &token, "team/app", &unknown, "").json()["manifests"], json!([]));
    assert_eq!(referrers(&reg, &token, "never/pushed", &unknown, "").json(), json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}));
}

#[test]
fn deleting_a_referrer_removes_it_from_the_listing() {
    let (reg, token) = setup();
    let subject = oci_digest(b"subject");
    let (_, a) = push_referrer(&reg, &token, "team/app", &subject, Some("application/vnd.example.a"), OCI_CONFIG, "a");
    let (_, b) = push_referrer(&reg, &token, "team/app", &subject, Some("application/vnd.example.b"), OCI_CONFIG, "b");
    assert_eq!(reg.send(oci(Method::Delete, &format!("/v2/team/app/manifests/{a}"), &token)).status, 202);
    let list = referrers(&reg, &token, "team/app", &subject, "").json()["manifests"].clone();
    assert_eq!(list.as_array().unwrap().iter().map(|m| m["digest"].clone()).collect::<Vec<_>>(), vec![json!(b)]);
}

#[test]
fn with_referrers_disabled_the_api_is_404_and_pushes_get_no_oci_subject() {
    // Clients fall back to the referrers tag schema only on a 404, and only when the push
    // did not answer OCI-Subject.
    let reg = Reg::oci(&[("OCI_FEATURES", "referrers=false")]);
    reg.create_user("alice");
    let token = reg.create_token("alice", json!({"protocol": "oci"}));
    reg.push_blob(&token, "team/app", b"{}");
    let subject = oci_digest(b"subject");
    let mut m = image_manifest(b"{}", &[]);
    m["subject"] = json!({"mediaType": OCI_MANIFEST, "size": 1, "digest": subject});
    let body = json_body(&m);
    let r = reg.put_manifest(&token, "team/app", &oci_digest(&body), Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.header("OCI-Subject").is_none(), "OCI-Subject claims the registry processed the subject");
    let r = reg.send(oci(Method::Get, &format!("/v2/team/app/referrers/{subject}"), &token));
    assert_eq!(r.status, 404, "{r:?}");
    assert_oci_error_shape(&r);
}

// ---------------------------------------------------------------- error bodies

#[test]
fn every_error_has_the_oci_error_body_shape() {
    let (reg, token) = setup();
    reg.push_image(&token, "team/app", "v1", "shape");
    let (_, location) = start_upload(&reg, &token, "team/app");
    let d = oci_digest(b"unknown");
    let cases: Vec<(Request, u16, &str)> = vec![
        (Request::new(Method::Get, "/v2/team/app/manifests/v1"), 401, "UNAUTHORIZED"),
        (Request::new(Method::Get, "/v2/"), 401, "UNAUTHORIZED"),
        (oci(Method::Get, "/v2/Team/tags/list", &token), 400, "NAME_INVALID"),
        (oci(Method::Get, "/v2/team/app/manifests/v9", &token), 404, "MANIFEST_UNKNOWN"),
        (oci(Method::Get, &format!("/v2/team/app/blobs/{d}"), &token), 404, "BLOB_UNKNOWN"),
        (oci(Method::Get, "/v2/team/app/blobs/sha256:12", &token), 400, "DIGEST_INVALID"),
        (oci(Method::Get, "/v2/nope/tags/list", &token), 404, "NAME_UNKNOWN"),
        (oci(Method::Put, "/v2/team/app/manifests/v2", &token).with_body(b"{".to_vec()), 400, "MANIFEST_INVALID"),
        (oci(Method::Put, "/v2/team/app/manifests/.v2", &token).with_body(b"{}".to_vec()), 400, "TAG_INVALID"),
        (oci(Method::Get, "/v2/team/app/blobs/uploads/0123456789abcdef0123456789abcdef", &token), 404, "BLOB_UPLOAD_UNKNOWN"),
        (oci(Method::Patch, &location, &token).with_header("Content-Range", "7-9").with_body(b"abc".to_vec()), 416, "BLOB_UPLOAD_INVALID"),
        (oci(Method::Put, &location, &token), 400, "DIGEST_INVALID"),
        (oci(Method::Post, "/v2/team/app/manifests/v1", &token), 405, "UNSUPPORTED"),
        (oci(Method::Patch, &format!("/v2/team/app/blobs/{d}"), &token), 405, "UNSUPPORTED"),
        (oci(Method::Get, "/v2/team/app/nothing-here", &token), 404, "NAME_UNKNOWN"),
        (basic(Request::new(Method::Get, "/v2/token"), "alice", "wrong"), 401, "UNAUTHORIZED"),
    ];
    for (req, status, code) in cases {
        let what = format!("{:?} {}", req.method, req.path);
        let r = reg.send(req);
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert_oci_error(&r, status, code);
        let e = &r.json()["errors"][0];
        assert!(!e["message"].as_str().unwrap().is_empty(), "{what}: empty message");
    }
}
