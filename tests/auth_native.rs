//! Users, tokens, scopes and the admin API, driven through `App::handle` in memory.

mod common;

use common::*;
use edgeregistry::http::{Method, Request};
use serde_json::json;

fn whoami(reg: &Reg, token: &str) -> u16 {
    reg.send(get("/npm/-/whoami", token)).status
}

fn tokens_of(reg: &Reg, user: &str) -> Vec<serde_json::Value> {
    let r = reg.send(admin(Method::Get, &format!("/-/admin/users/{user}/tokens")));
    assert_eq!(r.status, 200, "{r:?}");
    r.json().as_array().unwrap().clone()
}

/// The four admin calls, each with what it would change.
fn admin_calls(token_key: &str) -> Vec<(Method, String, Vec<u8>)> {
    vec![
        (Method::Post, "/-/admin/users".into(), json_body(&json!({"name": "mallory", "password": PASSWORD, "admin": true}))),
        (Method::Post, "/-/admin/tokens".into(), json_body(&json!({"user": "alice"}))),
        (Method::Get, "/-/admin/users/alice/tokens".into(), vec![]),
        (Method::Delete, format!("/-/admin/tokens/{token_key}"), vec![]),
    ]
}

#[test]
fn admin_api_requires_the_admin_token() {
    let reg = Reg::new();
    let alice = reg.user_with_token("alice");
    let key = sha256_hex(alice.as_bytes());

    for (method, path, body) in admin_calls(&key) {
        let anonymous = Request::new(method, &path).with_body(body.clone());
        assert_eq!(reg.send(anonymous).status, 401, "anonymous {path}");
        let wrong = bearer(Request::new(method, &path), "not-the-admin-token").with_body(body.clone());
        assert_eq!(reg.send(wrong).status, 401, "bad token {path}");
        // A valid token of a user without admin rights is known but not allowed.
        let user = bearer(Request::new(method, &path), &alice).with_body(body.clone());
        assert_eq!(reg.send(user).status, 403, "non-admin {path}");
    }
    // None of the refused calls changed anything.
    assert_eq!(reg.send(admin(Method::Get, "/-/admin/users/mallory")).status, 404);
    assert_eq!(tokens_of(&reg, "alice").len(), 1);
    assert_eq!(whoami(&reg, &alice), 200);
}

#[test]
fn admin_api_creates_users_and_tokens_lists_and_revokes() {
    let reg = Reg::new();
    let r = reg.send(admin(Method::Post, "/-/admin/users").with_body(json_body(&json!({"name": "alice", "password": PASSWORD, "email": "a@example.com"}))));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["name"], "alice");
    assert!(r.json().get("password").is_none() && !r.text().contains(PASSWORD));
    let again = reg.send(admin(Method::Post, "/-/admin/users").with_body(json_body(&json!({"name": "alice", "password": PASSWORD}))));
    assert_eq!(again.status, 409);
    let short = reg.send(admin(Method::Post, "/-/admin/users").with_body(json_body(&json!({"name": "bob", "password": "short"}))));
    assert_eq!(short.status, 400);
    assert_eq!(reg.send(admin(Method::Get, "/-/admin/users/alice")).json()["email"], "a@example.com");

    let r = reg.send(admin(Method::Post, "/-/admin/tokens").with_body(json_body(&json!({"user": "alice", "protocol": "npm"}))));
    assert_eq!(r.status, 201, "{r:?}");
    let token = r.json()["token"].as_str().unwrap().to_string();
    let key = sha256_hex(token.as_bytes());
    assert_eq!(r.json()["key"], key.as_str());
    assert_eq!(whoami(&reg, &token), 200);
    // Tokens for unknown users, unknown protocols or with bad scopes are refused.
    let post = |b: serde_json::Value| reg.send(admin(Method::Post, "/-/admin/tokens").with_body(json_body(&b))).status;
    assert_eq!(post(json!({"user": "nobody"})), 404);
    assert_eq!(post(json!({"user": "alice", "protocol": "gopher"})), 400);
    assert_eq!(post(json!({"user": "alice", "scopes": ["npm:package:x"]})), 400);

    // The listing shows the key and a preview, never the secret.
    let listed = tokens_of(&reg, "alice");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["key"], key.as_str());
    assert_ne!(listed[0]["token"], token.as_str());
    assert!(!serde_json::to_string(&listed).unwrap().contains(&token));

    assert_eq!(reg.send(admin(Method::Delete, &format!("/-/admin/tokens/{key}"))).status, 204);
    assert_eq!(whoami(&reg, &token), 401);
    assert!(tokens_of(&reg, "alice").is_empty());
    assert_eq!(reg.send(admin(Method::Delete, &format!("/-/admin/tokens/{key}"))).status, 404);
}

#[test]
fn admin_api_is_disabled_without_admin_token_and_needs_an_admin_token() {
    let reg = Reg::with_vars(&[("ADMIN_TOKEN", "")]);
    let r = reg.send(admin(Method::Post, "/-/admin/users").with_body(json_body(&json!({"name": "x", "password": PASSWORD}))));
    assert_eq!(r.status, 401, "{r:?}");
    assert!(reg.kv_entries().is_empty());

    // An admin user's ordinary token has no admin rights; an admin token has.
    let reg = Reg::new();
    let r = reg.send(admin(Method::Post, "/-/admin/users").with_body(json_body(&json!({"name": "root", "password": PASSWORD, "admin": true}))));
    assert_eq!(r.status, 201);
    let root = reg.create_token("root", json!({}));
    let r = reg.send(bearer(Request::new(Method::Post, "/-/admin/users"), &root).with_body(json_body(&json!({"name": "carol", "password": PASSWORD}))));
    assert_eq!(r.status, 403, "{r:?}");
    let root_admin = reg.create_token("root", json!({"admin": true}));
    let r = reg.send(bearer(Request::new(Method::Post, "/-/admin/users"), &root_admin).with_body(json_body(&json!({"name": "carol", "password": PASSWORD}))));
    assert_eq!(r.status, 201, "{r:?}");
}

#[test]
fn tokens_and_passwords_rest_in_kv_only_hashed() {
    let reg = Reg::new();
    reg.create_user("alice");
    let mut secrets = vec![reg.create_token("alice", json!({})), reg.create_token("alice", json!({"readonly": true}))];
    let login = reg.send(Request::new(Method::Put, "/npm/-/user/org.couchdb.user:alice").with_body(json_body(&json!({"name": "alice", "password": PASSWORD}))));
    assert_eq!(login.status, 201);
    secrets.push(login.json()["token"].as_str().unwrap().to_string());
    let created = reg.send(bearer(Request::new(Method::Post, "/npm/-/npm/v1/tokens"), &secrets[0]).with_body(json_body(&json!({"password": PASSWORD}))));
    assert_eq!(created.status, 201);
    secrets.push(created.json()["token"].as_str().unwrap().to_string());

    let entries = reg.kv_entries();
    assert!(!entries.is_empty());
    for secret in &secrets {
        assert_eq!(whoami(&reg, secret), 200);
        for (k, v) in &entries {
            assert!(!k.contains(secret.as_str()) && !v.contains(secret.as_str()), "raw token in KV at {k}");
        }
        let hash_key = format!("token/{}", sha256_hex(secret.as_bytes()));
        assert!(entries.iter().any(|(k, _)| *k == hash_key), "no {hash_key}");
    }
    for (k, v) in &entries {
        assert!(!v.contains(PASSWORD), "clear password in KV at {k}");
        assert!(!v.contains(ADMIN_TOKEN), "admin token in KV at {k}");
    }
}

#[test]
fn expired_tokens_are_refused() {
    let reg = Reg::new();
    reg.create_user("alice");
    let token = reg.create_token("alice", json!({"expiresInSeconds": 3600}));
    assert_eq!(whoami(&reg, &token), 200);
    assert!(tokens_of(&reg, "alice")[0]["expires"].is_string());
    reg.mem.clock.advance(3_599_000.0);
    assert_eq!(whoami(&reg, &token), 200);
    reg.mem.clock.advance(2_000.0);
    assert_eq!(whoami(&reg, &token), 401);
    // Expired tokens cannot publish either.
    let body = publish_body("foo", "1.0.0", &tarball("foo", "1.0.0"));
    assert_eq!(reg.send(put_json("/npm/foo", &token, &body)).status, 401);
    assert!(reg.mem.store.keys().is_empty());
}

#[test]
fn scopes_decide_what_a_token_may_publish() {
    let reg = Reg::new();
    reg.create_user("alice");
    let acme = reg.create_token("alice", json!({"scopes": ["npm:package:@acme/*:write"]}));
    reg.publish_ok(&acme, "@acme/ui", "1.0.0");
    for name in ["@other/ui", "acme-ui"] {
        let body = publish_body(name, "1.0.0", &tarball(name, "1.0.0"));
        let r = reg.send(put_json(&format!("/npm/{name}"), &acme, &body));
        assert_eq!(r.status, 403, "{name}: {r:?}");
        assert!(reg.package_keys(name).is_empty());
    }
    // A read scope does not write, even on the package it names.
    let read = reg.create_token("alice", json!({"scopes": ["npm:package:@acme/*:read"]}));
    let body = publish_body("@acme/ui", "1.1.0", &tarball("@acme/ui", "1.1.0"));
    assert_eq!(reg.send(put_json("/npm/@acme/ui", &read, &body)).status, 403);
    assert!(reg.get_json("/npm/@acme/ui")["versions"].get("1.1.0").is_none());
    // Scopes of another protocol grant nothing here.
    let pypi = reg.create_token("alice", json!({"scopes": ["pypi:package:*:*"]}));
    let body = publish_body("@acme/ui", "1.2.0", &tarball("@acme/ui", "1.2.0"));
    assert_eq!(reg.send(put_json("/npm/@acme/ui", &pypi, &body)).status, 403);
}

#[test]
fn tokens_made_for_another_protocol_are_invalid_for_npm() {
    let reg = Reg::new();
    reg.create_user("alice");
    let oci = reg.create_token("alice", json!({"protocol": "oci"}));
    assert_eq!(whoami(&reg, &oci), 401);
    // …unless their scopes name npm explicitly.
    let both = reg.create_token("alice", json!({"protocol": "oci", "scopes": ["oci:*:*:*", "npm:*:*:read"]}));
    assert_eq!(whoami(&reg, &both), 200);
}

#[test]
fn basic_auth_with_a_password_or_a_token() {
    let reg = Reg::new();
    let token = reg.user_with_token("alice");
    let basic = |user: &str, password: &str| {
        let creds = b64(format!("{user}:{password}").as_bytes());
        reg.send(Request::new(Method::Get, "/npm/-/whoami").with_header("Authorization", &format!("Basic {creds}")))
    };
    assert_eq!(basic("alice", PASSWORD).json()["username"], "alice");
    assert_eq!(basic("anyone", &token).json()["username"], "alice");
    assert_eq!(basic("alice", "wrong password").status, 401);
}
