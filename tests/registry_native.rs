//! The protocol list (`edgeregistry::protocols`) and what is derived from it: health, routing
//! (base paths and root mounts), admin cache purge and owners by protocol name, the protocols
//! `ENABLED_PROTOCOLS` accepts, and jobs travelling as data addressed to their protocol.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use async_trait::async_trait;
use common::*;
use edgeregistry::config::{Config, Protocol};
use edgeregistry::http::{Method, Request};
use edgeregistry::jobs::{JobEnv, JobRequest, JobResult};
use edgeregistry::npm::jobs::{NpmJob, Writer};
use edgeregistry::platform::{Coordinator, EdgeHint, ObjectStore, PutOptions};
use edgeregistry::protocols;
use edgeregistry::App;
use futures::executor::block_on;
use serde_json::{json, Value};

fn names(modules: &[&dyn protocols::ProtocolModule]) -> Vec<&'static str> {
    modules.iter().map(|m| m.protocol().as_str()).collect()
}

#[test]
fn health_lists_the_enabled_protocols_of_the_list() {
    let r = Reg::new().send(Request::new(Method::Get, "/-/health"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": "ok", "protocols": names(protocols::all())}));
    assert_eq!(names(protocols::all()), ["oci", "npm", "pypi", "cargo"]);

    let r = Reg::with_vars(&[("ENABLED_PROTOCOLS", "npm")]).send(Request::new(Method::Get, "/-/health"));
    assert_eq!(r.json()["protocols"], json!(["npm"]));
}

#[test]
fn each_module_renders_errors_its_own_way() {
    let e = edgeregistry::error::Error::not_found("no such thing");
    for module in protocols::all() {
        let r = module.errors().render(&e);
        assert_eq!(r.status, 404, "{:?}", module.protocol());
        let body: Value = serde_json::from_slice(&block_on(r.body.read_capped(1 << 20)).unwrap()).unwrap();
        let shape = match module.protocol() {
            Protocol::Npm => json!({"error": "no such thing", "reason": "no such thing"}),
            Protocol::Oci => json!({"errors": [{"code": "NAME_UNKNOWN", "message": "no such thing", "detail": null}]}),
            Protocol::Pypi => json!({"error": "no such thing", "message": "no such thing", "code": "404 no such thing", "title": "Not Found"}),
            Protocol::Cargo => json!({"errors": [{"detail": "no such thing"}]}),
            other => panic!("no error shape for {other:?}: add one for the new protocol"),
        };
        assert_eq!(body, shape);
    }
}

#[test]
fn enabled_protocols_must_have_a_module() {
    let implemented = Protocol::implemented();
    assert_eq!(implemented, protocols::all().iter().map(|m| m.protocol()).collect::<Vec<_>>());
    for p in Protocol::ALL {
        assert_eq!(p.is_implemented(), protocols::find(p).is_some(), "{p:?}");
        let vars: BTreeMap<String, String> = [("ENABLED_PROTOCOLS".to_string(), p.as_str().to_string())].into();
        match Config::from_vars(&vars) {
            Ok(c) => assert!(implemented.contains(&p) && c.protocol(p).enabled, "{p:?}"),
            Err(e) => assert!(!implemented.contains(&p) && e.0.contains(p.as_str()), "{p:?}: {e}"),
        }
    }
}

/// A request only the protocol itself answers this way, under `base`.
fn probe(reg: &Reg, protocol: Protocol, base: &str) -> bool {
    match protocol {
        Protocol::Npm => {
            let r = reg.send(Request::new(Method::Get, &format!("{base}/-/ping")));
            r.status == 200 && r.json() == json!({})
        }
        Protocol::Oci => {
            let r = reg.send(Request::new(Method::Get, &format!("{base}/v2/")));
            r.status == 200 && r.header("Docker-Distribution-API-Version") == Some("registry/2.0")
        }
        Protocol::Pypi => {
            let r = reg.send(Request::new(Method::Get, &format!("{base}/simple/")));
            r.status == 200 && r.text().contains("pypi:repository-version")
        }
        Protocol::Cargo => {
            let r = reg.send(Request::new(Method::Get, &format!("{base}/config.json")));
            r.status == 200 && r.json()["dl"].as_str().is_some_and(|dl| dl.ends_with(&format!("{base}/api/v1/crates")))
        }
        other => panic!("no probe for {other:?}: add one for the new protocol"),
    }
}

#[test]
fn each_module_is_reached_at_its_base_path_and_root_mounts() {
    let reg = Reg::with_vars(&[("ANONYMOUS_READ", "all")]);
    for module in protocols::all() {
        let p = module.protocol();
        assert!(probe(&reg, p, &format!("/{}", p.as_str())), "{p:?} at its default base path");
        for mount in module.root_mounts() {
            let r = reg.send(Request::new(Method::Get, &format!("{mount}/")));
            assert_eq!(r.status, 200, "{p:?} root mount {mount}: {r:?}");
        }
    }
    // Base paths are the settings', root mounts the module's.
    let moved = Reg::with_vars(&[("ANONYMOUS_READ", "all"), ("NPM_BASE_PATH", "/js"), ("OCI_BASE_PATH", "/containers")]);
    assert!(probe(&moved, Protocol::Npm, "/js"));
    assert!(probe(&moved, Protocol::Oci, "/containers"));
    assert!(probe(&moved, Protocol::Oci, ""), "the /v2 root mount stays");
    assert_eq!(moved.send(Request::new(Method::Get, "/npm/-/ping")).status, 404);
    assert_eq!(moved.send(Request::new(Method::Get, "/jsx/-/ping")).status, 404, "a base path is a whole segment");
    // A disabled protocol loses its base path and its root mounts.
    let npm_only = Reg::with_vars(&[("ANONYMOUS_READ", "all"), ("ENABLED_PROTOCOLS", "npm")]);
    assert!(probe(&npm_only, Protocol::Npm, "/npm"));
    for path in ["/v2/", "/oci/v2/"] {
        let r = npm_only.send(Request::new(Method::Get, path));
        assert_eq!((r.status, r.json()), (404, json!({"error": "Not Found"})), "{path}");
    }
    // A root mount is a whole segment too: `/v2x` is nobody's.
    assert_eq!(reg.send(Request::new(Method::Get, "/v2x/")).json(), json!({"error": "Not Found"}));
}

#[test]
fn admin_cache_purge_dispatches_by_protocol_name() {
    let reg = Reg::new();
    let put = |key: &str| {
        block_on(reg.mem.store.put(key, b"cached".to_vec().into(), PutOptions::default())).unwrap();
    };
    put("npm/cache/@scope/pkg/packument.json");
    put("npm/cache/other/packument.json");
    put("oci/cache/tags/team/app/v1");
    put("oci/cache/tags/team/other/v1");

    let r = reg.send(admin(Method::Delete, "/-/admin/cache/npm/@scope%2fpkg"));
    assert_eq!((r.status, r.json()), (200, json!({"purged": 1})));
    assert!(reg.keys_with("npm/cache/@scope/").is_empty());
    assert_eq!(reg.keys_with("npm/cache/other/").len(), 1, "another package keeps its cache");

    let r = reg.send(admin(Method::Delete, "/-/admin/cache/oci/team/app"));
    assert_eq!((r.status, r.json()), (200, json!({"purged": 1})));
    assert_eq!(reg.keys_with("oci/cache/tags/"), ["oci/cache/tags/team/other/v1"]);

    // Each protocol checks its own names.
    let r = reg.send(admin(Method::Delete, "/-/admin/cache/npm/..%2f.."));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("invalid package name"), "{r:?}");
    let r = reg.send(admin(Method::Delete, "/-/admin/cache/oci/Team"));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("invalid repository name"), "{r:?}");

    // A protocol without a module, known by name or not, is a 404 that names it.
    for protocol in ["maven", "nuget"] {
        let r = reg.send(admin(Method::Delete, &format!("/-/admin/cache/{protocol}/x")));
        assert_eq!(r.status, 404, "{protocol}");
        let message = r.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(protocol) && message.contains("does not serve"), "{message}");
    }
    assert_eq!(reg.keys_with("npm/cache/other/").len(), 1);
}

#[test]
fn admin_owners_dispatch_by_protocol_name() {
    let reg = Reg::oci(&[]);
    let alice = reg.user_with_token("alice");
    reg.create_user("bob");
    reg.publish_ok(&alice, "pkg", "1.0.0");
    reg.push_image(&alice, "alice-app", "v1", "x");
    for (protocol, name) in [("npm", "pkg"), ("oci", "alice-app")] {
        let path = format!("/-/admin/owners/{protocol}/{name}");
        assert_eq!(reg.send(admin(Method::Get, &path)).json(), json!({"owners": ["alice"]}), "{path}");
        let r = reg.send(admin(Method::Put, &path).with_body(json_body(&json!({"owners": ["bob"]}))));
        assert_eq!(r.json(), json!({"owners": ["bob"]}), "{path}");
    }
    // npm's owners are the packument's maintainers, OCI's the repository record's.
    assert_eq!(reg.get_json("/npm/pkg")["maintainers"][0]["name"], "bob");
    // Names are checked by their protocol; the error says why.
    let r = reg.send(admin(Method::Get, "/-/admin/owners/oci/Bad"));
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(reg.send(admin(Method::Get, "/-/admin/owners/npm/missing")).status, 404);
    for protocol in ["maven", "nuget"] {
        let r = reg.send(admin(Method::Get, &format!("/-/admin/owners/{protocol}/x")));
        assert_eq!(r.status, 404);
        assert!(r.json()["error"].as_str().unwrap().contains(protocol), "{r:?}");
    }
}

/// A coordinator that passes each job as JSON text, as the Durable Object call does, and
/// keeps what crossed.
struct WireCoordinator {
    env: JobEnv,
    wire: RefCell<Vec<Value>>,
}

#[async_trait(?Send)]
impl Coordinator for WireCoordinator {
    async fn run(&self, _lock: &str, job: JobRequest) -> JobResult {
        let text = serde_json::to_string(&job).unwrap();
        self.wire.borrow_mut().push(serde_json::from_str(&text).unwrap());
        let job: JobRequest = serde_json::from_str(&text).unwrap();
        edgeregistry::jobs::execute(&self.env, job).await
    }
}

#[test]
fn jobs_travel_as_data_in_the_wire_shape_of_earlier_builds() {
    let mem = edgeregistry::platform::memory::MemoryPlatform::new();
    let coordinator = Rc::new(WireCoordinator {
        env: JobEnv { store: mem.store.clone(), clock: mem.clock.clone() },
        wire: RefCell::default(),
    });
    let mut platform = mem.platform.clone();
    platform.coordinator = coordinator.clone();
    let reg = Reg { app: App::new(platform, Config::from_vars(&vars(&[])).unwrap()), mem };
    let alice = reg.user_with_token("alice");
    reg.publish_ok(&alice, "pkg", "1.0.0");
    let r = reg.send(put_json("/npm/-/package/pkg/dist-tags/beta", &alice, &json!("1.0.0")));
    assert!(r.status < 300, "{r:?}");
    assert_eq!(reg.get_json("/npm/pkg")["dist-tags"]["beta"], "1.0.0");

    let wire = coordinator.wire.borrow();
    let ops: Vec<(&str, &str)> = wire.iter().map(|w| (w["protocol"].as_str().unwrap(), w["op"].as_str().unwrap())).collect();
    assert_eq!(ops, [("npm", "publish"), ("npm", "set_dist_tag")]);
    // `{"protocol": "npm", …the job's own fields}`, as the closed `Job` enum wrote it.
    assert_eq!(
        wire.last().unwrap(),
        &json!({"protocol": "npm", "op": "set_dist_tag", "name": "pkg", "tag": "beta", "version": "1.0.0",
                "writer": {"user": "alice", "may_override": false}})
    );
}

#[test]
fn a_job_round_trips_through_the_memory_coordinator_as_data() {
    let reg = Reg::new();
    let alice = reg.user_with_token("alice");
    reg.publish_ok(&alice, "pkg", "1.0.0");
    let coordinator = reg.mem.platform.coordinator.clone();
    // A job written as plain JSON, addressed to npm by name.
    let wire = json!({"protocol": "npm", "op": "set_dist_tag", "name": "pkg", "tag": "next", "version": "1.0.0",
                      "writer": {"user": "alice", "may_override": false}});
    let job: JobRequest = serde_json::from_value(wire).unwrap();
    assert_eq!(job.protocol, Protocol::Npm);
    block_on(coordinator.run("npm/pkg", job)).unwrap();
    // Written where no request purged the edge cache (as by another isolate): seen once the
    // kept answer is as old as a hosted document may be served.
    reg.mem.clock.advance(f64::from(EdgeHint::DOCUMENT_SECONDS) * 1000.0);
    assert_eq!(reg.get_json("/npm/pkg")["dist-tags"]["next"], "1.0.0");
    // The typed way a handler sends one.
    let typed = NpmJob::RemoveDistTag { name: "pkg".into(), tag: "next".into(), writer: Writer { user: "alice".into(), may_override: false } };
    block_on(edgeregistry::jobs::run(&*coordinator, "npm/pkg", Protocol::Npm, &typed)).unwrap();
    reg.mem.clock.advance(f64::from(EdgeHint::DOCUMENT_SECONDS) * 1000.0);
    assert!(reg.get_json("/npm/pkg")["dist-tags"].get("next").is_none());
    // The job's own checks still run where it runs: bob maintains nothing.
    let stranger = NpmJob::SetDistTag { name: "pkg".into(), tag: "x".into(), version: "1.0.0".into(), writer: Writer { user: "bob".into(), may_override: false } };
    let e = block_on(edgeregistry::jobs::run(&*coordinator, "npm/pkg", Protocol::Npm, &stranger)).unwrap_err();
    assert_eq!(e.status, 403, "{e:?}");
}

#[test]
fn jobs_for_a_protocol_without_jobs_fail_cleanly() {
    let reg = Reg::new();
    let coordinator = reg.mem.platform.coordinator.clone();
    let job = |protocol, body: Value| JobRequest::new(protocol, &body).unwrap();
    // Known by name, no module in this build.
    let e = block_on(coordinator.run("x", job(Protocol::Maven, json!({"op": "upload"})))).unwrap_err();
    assert_eq!(e.status, 500);
    assert!(e.message.contains("maven"), "{e:?}");
    // A module that runs no jobs.
    let e = block_on(coordinator.run("x", job(Protocol::Oci, json!({"op": "anything"})))).unwrap_err();
    assert!(e.message.contains("oci"), "{e:?}");
    // A job its protocol cannot read.
    let e = block_on(coordinator.run("x", job(Protocol::Npm, json!({"op": "no_such_op"})))).unwrap_err();
    assert!(e.message.contains("unreadable job"), "{e:?}");
    // A protocol no build knows does not even cross the wire.
    let e = serde_json::from_value::<JobRequest>(json!({"protocol": "nuget", "op": "push"})).unwrap_err();
    assert!(e.to_string().contains("nuget"), "{e}");
    // Nothing was written by any of them.
    assert!(reg.mem.store.keys().is_empty(), "{:?}", reg.mem.store.keys());
}
