//! Two npm gaps users found, on the in-memory platform with a scripted upstream:
//! `npm dist-tag ls` of a package the pull-through cache serves, and `npm search` when the
//! upstream's search fails.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use edgeregistry::http::{Method, Request, Response};
use serde_json::{json, Value};

const UPSTREAMS: &str = r#"{"upstreams":[{"id":"up","url":"https://up.example","resilience":{"maxRetries":0,"timeoutMs":5000,"circuitBreakerThreshold":100}}],
    "cache":{"defaultTtlSeconds":300,"staleMaxAgeSeconds":600,"negativeCacheTtlSeconds":60}}"#;

/// A packument as the public registry serves it, with tags beyond `latest` and versions
/// whose fields the dist-tags answer must not carry.
fn upstream_packument(name: &str) -> Value {
    let version = |v: &str| {
        json!({"name": name, "version": v, "readme": "long text",
               "dist": {"tarball": format!("https://up.example/{name}/-/{name}-{v}.tgz"), "shasum": "00"}})
    };
    json!({
        "_id": name, "name": name,
        "dist-tags": {"latest": "1.1.0", "next": "2.0.0-rc.1", "legacy": "1.0.0"},
        "versions": {"1.0.0": version("1.0.0"), "1.1.0": version("1.1.0"), "2.0.0-rc.1": version("2.0.0-rc.1")},
    })
}

/// A registry whose upstream serves `left-pad` and answers searches with `search`; every
/// URL asked is recorded.
fn setup(search: impl Fn() -> Response + 'static) -> (Reg, Rc<RefCell<Vec<String>>>) {
    let reg = Reg::with_vars(&[("NPM_UPSTREAMS", UPSTREAMS)]);
    let calls: Rc<RefCell<Vec<String>>> = Rc::default();
    let seen = calls.clone();
    reg.mem.fetcher.set_handler(move |url, _req| {
        seen.borrow_mut().push(url.to_string());
        if url.starts_with("https://up.example/-/v1/search") {
            return search();
        }
        match url {
            "https://up.example/left-pad" => Response::json(200, &upstream_packument("left-pad")),
            "https://up.example/down-pkg" => Response::json(503, &json!({"error": "unavailable"})),
            _ => Response::json(404, &json!({"error": "Not found"})),
        }
    });
    (reg, calls)
}

fn upstream_search_fails() -> Response {
    Response::json(500, &json!({"error": "search index offline"}))
}

fn search_names(r: &Resp) -> Vec<String> {
    r.json()["objects"].as_array().unwrap().iter().map(|o| o["package"]["name"].as_str().unwrap().to_string()).collect()
}

fn assert_npm_error(r: &Resp, status: u16) -> String {
    assert_eq!(r.status, status, "{r:?}");
    let body = r.json();
    let message = body["error"].as_str().unwrap_or_else(|| panic!("npm error shape: {body}")).to_string();
    assert_eq!(body["reason"], body["error"], "npm's shape repeats the message as reason: {body}");
    message
}

// ------------------------------------------------------------- dist-tag ls, proxied

#[test]
fn dist_tag_ls_of_a_proxied_package_lists_the_upstream_tags() {
    let (reg, calls) = setup(upstream_search_fails);
    let r = reg.send(Request::new(Method::Get, "/npm/-/package/left-pad/dist-tags"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), json!({"latest": "1.1.0", "next": "2.0.0-rc.1", "legacy": "1.0.0"}));
    assert_eq!(r.header("x-cache-upstream"), Some("up"));
    // Answered from the cached packument the second time, as installs are.
    let again = reg.send(Request::new(Method::Get, "/npm/-/package/left-pad/dist-tags"));
    assert_eq!(again.json()["next"], "2.0.0-rc.1");
    assert_eq!(calls.borrow().iter().filter(|u| u.ends_with("/left-pad")).count(), 1, "{:?}", calls.borrow());
}

#[test]
fn dist_tag_ls_prefers_the_hosted_package_and_404s_for_unknown_ones() {
    let (reg, calls) = setup(upstream_search_fails);
    let token = reg.user_with_token("dev");
    reg.publish_ok(&token, "left-pad", "3.0.0");
    let r = reg.send(Request::new(Method::Get, "/npm/-/package/left-pad/dist-tags"));
    assert_eq!(r.json(), json!({"latest": "3.0.0"}), "hosted tags, never the upstream's");
    assert!(!calls.borrow().iter().any(|u| u.ends_with("/left-pad")), "hosted names never ask the upstream: {:?}", calls.borrow());
    let missing = reg.send(Request::new(Method::Get, "/npm/-/package/nowhere/dist-tags"));
    assert_npm_error(&missing, 404);
}

#[test]
fn dist_tag_ls_of_a_failing_upstream_is_a_502_not_a_404() {
    let (reg, _) = setup(upstream_search_fails);
    let r = reg.send(Request::new(Method::Get, "/npm/-/package/down-pkg/dist-tags"));
    assert_npm_error(&r, 502);
}

#[test]
fn dist_tag_ls_of_a_proxied_package_needs_read_access() {
    let reg = Reg::with_vars(&[("NPM_UPSTREAMS", UPSTREAMS), ("ANONYMOUS_READ", "none")]);
    reg.mem.fetcher.set_handler(|_, _| Response::json(200, &upstream_packument("left-pad")));
    let r = reg.send(Request::new(Method::Get, "/npm/-/package/left-pad/dist-tags"));
    assert_npm_error(&r, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"edgeregistry\""));
}

// ------------------------------------------------------------- search, upstream failing

#[test]
fn search_with_nothing_hosted_and_the_upstream_failing_says_so_in_a_notice() {
    let (reg, calls) = setup(upstream_search_fails);
    let r = reg.send(Request::new(Method::Get, "/npm/-/v1/search?text=pad&size=10"));
    // Not a 5xx: npm retries those for over a minute before it prints anything.
    assert_eq!(r.status, 200, "{r:?}");
    assert!(search_names(&r).is_empty());
    let notice = r.header("npm-notice").unwrap_or_else(|| panic!("a notice that the search failed: {r:?}"));
    assert!(notice.contains("search") && notice.contains("up") && notice.contains("only packages hosted here"), "names what failed: {notice}");
    assert!(calls.borrow().iter().any(|u| u.contains("/-/v1/search")), "the upstream was asked");
}

#[test]
fn search_with_hosted_matches_and_the_upstream_failing_answers_them_with_a_notice() {
    let (reg, _) = setup(upstream_search_fails);
    let token = reg.user_with_token("dev");
    reg.publish_ok(&token, "pad-local", "1.0.0");
    let r = reg.send(Request::new(Method::Get, "/npm/-/v1/search?text=pad&size=10"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(search_names(&r), ["pad-local"]);
    // npm prints this header as `npm notice …`.
    let notice = r.header("npm-notice").unwrap_or_else(|| panic!("a notice that the list is partial: {r:?}"));
    assert!(notice.contains("only packages hosted here"), "{notice}");
    // npm prints notices only of answers it does not keep, and a partial list is not kept.
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[test]
fn search_with_an_unreadable_upstream_answer_counts_as_a_failure() {
    let (reg, _) = setup(|| Response::bytes(200, "application/json", b"<html>maintenance</html>".to_vec()));
    let r = reg.send(Request::new(Method::Get, "/npm/-/v1/search?text=pad&size=10"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("npm-notice").is_some_and(|n| n.contains("only packages hosted here")), "{r:?}");
}

#[test]
fn search_with_a_working_upstream_carries_no_notice() {
    let (reg, _) = setup(|| {
        Response::json(200, &json!({"objects": [{"package": {"name": "pad-upstream", "version": "1.0.0"}, "searchScore": 1.0}], "total": 1, "time": "now"}))
    });
    let token = reg.user_with_token("dev");
    reg.publish_ok(&token, "pad-local", "1.0.0");
    let r = reg.send(Request::new(Method::Get, "/npm/-/v1/search?text=pad&size=10"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(search_names(&r), ["pad-local", "pad-upstream"]);
    assert_eq!(r.header("npm-notice"), None);
}
