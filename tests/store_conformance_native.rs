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
