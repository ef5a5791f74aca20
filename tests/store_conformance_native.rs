//! The object-store conformance suite against the in-memory twin of R2: every case the Worker
//! checks against its R2 binding (tests/e2e_store_conformance.rs) must hold here too.

use std::rc::Rc;

use edgeregistry::platform::conformance;
use edgeregistry::platform::memory::{ManualClock, MemoryObjectStore};
use futures::executor::block_on;

#[test]
fn the_memory_store_passes_every_conformance_case() {
    let store = MemoryObjectStore::new(Rc::new(ManualClock::new(0.0)));
    let report = block_on(conformance::run(&store));
    let failed: Vec<String> = report.cases.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    assert!(report.passed);
    assert!(report.cases.len() >= 18, "{} cases", report.cases.len());
    assert!(store.keys().is_empty(), "left behind: {:?}", store.keys());
    assert_eq!(store.open_uploads(), 0, "multipart uploads left open");
}

mod common;

use common::*;
use edgeregistry::http::{Method, Request};

#[test]
fn the_admin_api_runs_the_suite_only_when_enabled_and_only_for_an_admin() {
    let reg = Reg::with_vars(&[("STORE_SELFTEST", "true")]);
    let r = reg.send(admin(Method::Post, "/-/admin/selftest/store"));
    assert_eq!(r.status, 200, "{r:?}");
    let report = r.json();
    assert_eq!(report["passed"], true, "{report:#}");
    assert!(report["cases"].as_array().unwrap().iter().all(|c| c["passed"] == true && c["detail"] == ""), "{report:#}");
    assert!(reg.keys_with("selftest/").is_empty(), "the run cleans up");
    let anonymous = reg.send(Request::new(Method::Post, "/-/admin/selftest/store"));
    assert_eq!(anonymous.status, 401, "{anonymous:?}");

    let disabled = Reg::new();
    let r = disabled.send(admin(Method::Post, "/-/admin/selftest/store"));
    assert_eq!(r.status, 404, "{r:?}");
    assert!(disabled.mem.store.keys().is_empty(), "nothing written when disabled");
}
