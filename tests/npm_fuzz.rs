//! Fuzz-style property tests (proptest, natively) of everything in npm and the auth core that
//! reads client data: publish, deprecate, unpublish and owner bodies (as bytes, as arbitrary
//! JSON, as near-publishes) through their handlers, login and token bodies, package names,
//! JWTs, scopes and globs, CIDR ranges, Basic credentials, and the JSON value counter. None
//! may panic, no request may be answered with a 5xx, and errors have npm's body.

mod common;

use common::*;
use edgeregistry::auth::cidr::Cidr;
use edgeregistry::auth::{jwt, scope, Credential, Scope};
use edgeregistry::http::{Headers, Method, Request};
use edgeregistry::npm::names::PackageName;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// One registry per test thread, with alice owning `pkg` 1.0.0 and bob a stranger.
struct Fixture {
    reg: Reg,
    alice: String,
    bob: String,
}

fn fixture() -> &'static Fixture {
    thread_local! {
        static F: &'static Fixture = {
            let reg = Reg::new();
            let alice = reg.user_with_token("alice");
            let bob = reg.user_with_token("bob");
            reg.publish_ok(&alice, "pkg", "1.0.0");
            Box::leak(Box::new(Fixture { reg, alice, bob }))
        };
    }
    F.with(|f| *f)
}

/// Not a 5xx; an error has npm's `{"error": …}` body.
fn sane(r: &Resp, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(r.status < 500, "{what}: {r:?}");
    if r.status >= 400 && !r.body.is_empty() {
        let doc: Value = serde_json::from_slice(&r.body).map_err(|e| TestCaseError::fail(format!("{what}: error body is not JSON ({e}): {r:?}")))?;
        prop_assert!(doc["error"].is_string(), "{what}: {r:?}");
    }
    Ok(())
}

fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just("pkg".to_string()),
        Just("1.0.0".to_string()),
        Just("2.0.0".to_string()),
        Just("latest".to_string()),
        Just("pkg-2.0.0.tgz".to_string()),
        Just("H4sIAAAAAAAAA+3BAQ0AAADCoPdPbQ43oAAAAAAAAAAA".to_string()),
        "[a-z@/._-]{0,12}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(interesting_string(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

const KEYS: [&str; 12] = ["name", "versions", "_attachments", "dist-tags", "data", "length", "dist", "shasum", "integrity", "version", "deprecated", "maintainers"];

/// A real publish body for `pkg` 2.0.0 with one member replaced or removed, at any depth.
fn near_publish() -> impl Strategy<Value = Value> {
    let tgz = tarball("pkg", "2.0.0");
    let base = publish_body("pkg", "2.0.0", &tgz);
    (prop::collection::vec((prop::sample::select(KEYS.to_vec()), prop::option::of(json_value()), 0usize..4), 1..4)).prop_map(move |edits| {
        let mut doc = base.clone();
        for (key, value, depth) in edits {
            // The JSON pointer of the first object `depth` levels down.
            let mut pointer = String::new();
            for _ in 0..depth {
                let here = doc.pointer(&pointer).and_then(Value::as_object);
                match here.and_then(|o| o.iter().find(|(_, v)| v.is_object())) {
                    Some((k, _)) => pointer = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1")),
                    None => break,
                }
            }
            if let Some(o) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) {
                match value {
                    Some(v) => o.insert(key.to_string(), v),
                    None => o.remove(key),
                };
            }
        }
        doc
    })
}

fn put(path: &str, token: &str, body: Vec<u8>) -> Resp {
    fixture().reg.send(bearer(Request::new(Method::Put, path), token).with_header("Content-Type", "application/json").with_body(body))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn publish_takes_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), owner in any::<bool>()) {
        let f = fixture();
        let token = if owner { &f.alice } else { &f.bob };
        sane(&put("/npm/pkg", token, bytes), "bytes")?;
    }

    #[test]
    fn publish_takes_arbitrary_json(doc in json_value(), owner in any::<bool>()) {
        let f = fixture();
        let token = if owner { &f.alice } else { &f.bob };
        sane(&put("/npm/pkg", token, serde_json::to_vec(&doc).unwrap()), "json")?;
    }

    #[test]
    fn publish_takes_near_publishes(doc in near_publish()) {
        let f = fixture();
        let r = put("/npm/pkg", &f.alice, serde_json::to_vec(&doc).unwrap());
        sane(&r, "near publish")?;
        // Whatever was accepted is served whole afterwards.
        if r.status == 201 {
            let got = f.reg.send(Request::new(Method::Get, "/npm/pkg"));
            prop_assert_eq!(got.status, 200);
        }
    }

    #[test]
    fn revision_bodies_never_5xx(doc in json_value(), owner in any::<bool>(), rev in "[0-9a-z-]{0,8}") {
        let f = fixture();
        let token = if owner { &f.alice } else { &f.bob };
        // Unpublish / owner changes: keep the package alive for the next case.
        let mut doc = doc;
        if let Some(o) = doc.as_object_mut() {
            if o.get("versions").is_some() {
                o.insert("versions".into(), json!({"1.0.0": {}}));
            }
            if o.get("maintainers").is_some() {
                o.insert("maintainers".into(), json!([{"name": "alice"}]));
            }
        }
        sane(&put(&format!("/npm/pkg/-rev/{rev}"), token, serde_json::to_vec(&doc).unwrap()), "revision")?;
    }

    #[test]
    fn small_bodies_never_5xx(doc in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let f = fixture();
        for body in [serde_json::to_vec(&doc).unwrap(), bytes.clone()] {
            sane(&put("/npm/-/user/org.couchdb.user:alice", "", body.clone()), "login")?;
            sane(&put("/npm/-/package/pkg/dist-tags/beta", &f.alice, body.clone()), "dist-tag")?;
            let create = f.reg.send(bearer(Request::new(Method::Post, "/npm/-/npm/v1/tokens"), &f.alice).with_body(body.clone()));
            sane(&create, "token create")?;
            let admin_call = f.reg.send(admin(Method::Post, "/-/admin/tokens").with_body(body));
            prop_assert!(admin_call.status < 500, "{admin_call:?}");
        }
    }

    #[test]
    fn package_paths_never_5xx(path in prop_oneof![any::<String>(), "(/@?[a-z%0-9._~-]{0,8}){1,4}(/-/[a-z0-9.%-]{0,12})?"], method in prop::sample::select(vec![Method::Get, Method::Head, Method::Put, Method::Delete, Method::Post])) {
        let f = fixture();
        let path: String = path.chars().filter(|c| !c.is_control() && *c != '?' && *c != '#').collect();
        let r = f.reg.send(bearer(Request::new(method, &format!("/npm{path}")), &f.bob));
        prop_assert!(r.status < 500, "{method:?} {path}: {r:?}");
    }

    #[test]
    fn package_names_stay_in_their_keys(s in any::<String>(), legacy in any::<bool>()) {
        if let Some(name) = PackageName::parse(&s, legacy) {
            let key = edgeregistry::npm::names::keys::packument(&name).path;
            prop_assert!(!key.split('/').any(|seg| seg == ".." || seg == "."), "{key}");
            prop_assert!(key.starts_with("npm/packages/"), "{key}");
            prop_assert!(!name.as_str().contains(['\\', '\0', ' ']), "{}", name.as_str());
        }
    }

    #[test]
    fn jwts_never_panic_and_need_exp(token in any::<String>(), parts in prop::collection::vec("[A-Za-z0-9_=-]{0,40}", 0..5)) {
        let _ = jwt::decode(b"k", &token, 1_000);
        let _ = jwt::decode(b"k", &parts.join("."), 1_000);
    }

    #[test]
    fn signed_claims_pass_only_with_a_future_integer_exp(exp in prop::option::of(prop_oneof![any::<i64>().prop_map(|n| json!(n)), any::<f64>().prop_map(|f| json!(f)), any::<String>().prop_map(Value::String)]), now in 0i64..10_000) {
        let mut claims = json!({"sub": "alice"});
        if let Some(e) = &exp {
            claims["exp"] = e.clone();
        }
        let ok = jwt::decode(b"k", &jwt::encode(b"k", &claims), now).is_ok();
        let valid = exp.as_ref().and_then(Value::as_i64).is_some_and(|e| e > now);
        prop_assert_eq!(ok, valid, "{}", claims);
    }

    #[test]
    fn scopes_and_globs_never_panic(s in any::<String>(), pattern in any::<String>(), text in any::<String>()) {
        if let Some(parsed) = Scope::parse(&s) {
            prop_assert_eq!(Scope::parse(&parsed.to_string()), Some(parsed.clone()));
        }
        let _ = scope::glob_match(&pattern, &text);
        prop_assert!(scope::glob_match("*", &text));
        prop_assert!(scope::glob_match(&text.replace('*', ""), &text.replace('*', "")));
    }

    #[test]
    fn cidr_ranges_never_panic(s in any::<String>(), v4 in any::<[u8; 4]>(), prefix in 0u8..=40) {
        let _ = Cidr::parse(&s);
        let range = format!("{}.{}.{}.{}/{prefix}", v4[0], v4[1], v4[2], v4[3]);
        match Cidr::parse(&range) {
            Some(c) => {
                prop_assert!(prefix <= 32);
                prop_assert!(c.contains(std::net::IpAddr::from(v4)));
            }
            None => prop_assert!(prefix > 32),
        }
    }

    #[test]
    fn credentials_never_panic(value in any::<String>(), user in any::<String>(), password in any::<String>()) {
        let mut h = Headers::new();
        h.set("Authorization", value);
        let _ = Credential::from_headers(&h);
        let mut h = Headers::new();
        h.set("Authorization", format!("Basic {}", b64(format!("{user}:{password}").as_bytes())));
        if let Some(Credential::Basic { user: u, .. }) = Credential::from_headers(&h) {
            prop_assert!(user.starts_with(&u));
        }
    }

    #[test]
    fn value_counts_bound_every_tree(doc in json_value()) {
        fn size(v: &Value) -> usize {
            1 + match v {
                Value::Array(a) => a.iter().map(size).sum(),
                Value::Object(o) => o.values().map(size).sum::<usize>() + o.len(),
                _ => 0,
            }
        }
        let bytes = serde_json::to_vec(&doc).unwrap();
        prop_assert!(edgeregistry::json::value_count(&bytes) >= size(&doc));
        let pretty = serde_json::to_vec_pretty(&doc).unwrap();
        prop_assert!(edgeregistry::json::value_count(&pretty) >= size(&doc));
    }
}
