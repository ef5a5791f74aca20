//! The object-store conformance suite run by the Worker against its R2 binding in workerd
//! (`POST /-/admin/selftest/store`, enabled by `STORE_SELFTEST`): the same cases the in-memory
//! twin passes in tests/store_conformance_native.rs.

mod common;

use common::e2e::*;

#[test]
fn the_worker_store_passes_every_conformance_case() {
    let w = Worker::start(&[("STORE_SELFTEST", "true")]);
    let url = format!("{}/-/admin/selftest/store", w.url);
    let r = request("POST", &url, Some(ADMIN_TOKEN), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    let cases = report["cases"].as_array().expect("cases");
    let failed: Vec<String> = cases.iter().filter(|c| c["passed"] != true).map(|c| format!("{}: {}", c["name"], c["detail"])).collect();
    assert!(failed.is_empty(), "failed against R2:\n{}", failed.join("\n"));
    assert_eq!(report["passed"], true);
    assert!(cases.len() >= 18, "{} cases", cases.len());
    // A second run, under a fresh prefix, passes too.
    let again = request("POST", &url, Some(ADMIN_TOKEN), &[], None);
    assert_eq!(again.json()["passed"], true, "{}", again.text());
    assert_eq!(request("POST", &url, None, &[], None).status, 401, "admin credentials required");
}

#[test]
fn the_selftest_is_not_there_unless_enabled() {
    let w = Worker::start(&[]);
    let r = request("POST", &format!("{}/-/admin/selftest/store", w.url), Some(ADMIN_TOKEN), &[], None);
    assert_eq!(r.status, 404, "{}", r.text());
}
