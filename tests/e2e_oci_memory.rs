//! Wasm memory under hostile manifests, against the Worker in workerd: the worst shapes of a
//! 4 MiB manifest body (the largest accepted) pushed by an authorised user, and big bodies
//! from nobody, must leave the isolate's wasm memory under a stated budget (read from
//! `GET /-/admin/stats`, the linear memory's high-water mark: it never shrinks).
//!
//! Budget: 32 MiB for the whole run, including four 4 MiB pushes at once (measured: 1.2 MiB at
//! start, 5.3 after a 4 MiB `[0,0,…]`, 13.6 after 4 MiB of nested `[`, 17.6 at the end). The
//! isolate limit in production is 128 MB, shared by every request in flight; the same run
//! before manifests were parsed into typed structs went from 1.2 to 197.8 MiB on its first
//! shape (a `serde_json::Value` tree of two million zeros).

mod common;

use std::sync::OnceLock;

use serde_json::json;
use common::e2e::*;

const MIB: u64 = 1024 * 1024;
/// The stated budget (see the module comment and the README).
const BUDGET: u64 = 32 * MIB;
/// The largest manifest the registry accepts (distribution's limit).
const LIMIT: usize = 4 * 1024 * 1024;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const REPO: &str = "mem/app";

struct Registry {
    worker: Worker,
    token: String,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let worker = Worker::start(&[("JWT_SECRET", "e2e-jwt-secret-for-tests")]);
        let token = worker.user_with_token("mem-user", json!({"protocol": "oci"}));
        Registry { worker, token }
    })
}

fn url(path: &str) -> String {
    format!("{}{path}", registry().worker.url)
}

fn memory() -> u64 {
    let stats = request("GET", &url("/-/admin/stats"), Some(ADMIN_TOKEN), &[], None);
    assert_eq!(stats.status, 200, "{}", stats.text());
    stats.json()["wasm_memory_bytes"].as_u64().expect("wasm memory size")
}

fn digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn push_blob(data: &[u8]) -> String {
    let d = digest(data);
    let r = request(
        "POST",
        &url(&format!("/v2/{REPO}/blobs/uploads/?digest={d}")),
        Some(&registry().token),
        &[("content-type", "application/octet-stream")],
        Some(data.to_vec()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    d
}

/// Pads `prefix … suffix` with `filler` repeated to exactly `LIMIT` bytes.
fn fill(prefix: &str, filler: &str, suffix: &str) -> Vec<u8> {
    let mut out = String::with_capacity(LIMIT);
    out.push_str(prefix);
    while out.len() + filler.len() + suffix.len() <= LIMIT {
        out.push_str(filler);
    }
    while out.len() + suffix.len() < LIMIT {
        out.push(' ');
    }
    out.push_str(suffix);
    assert_eq!(out.len(), LIMIT);
    out.into_bytes()
}

/// The worst shapes we could think of, each exactly 4 MiB.
fn shapes(config: &str) -> Vec<(&'static str, Vec<u8>)> {
    let head = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"size\":2,\"digest\":\"{config}\"}},"
    );
    let layer = format!("{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"size\":2,\"digest\":\"{config}\"}},");
    vec![
        ("zeros in an unknown field", fill(&format!("{head}\"layers\":[],\"junk\":[0"), ",0", "]}")),
        ("a top-level array of zeros", fill("[0", ",0", "]")),
        ("deeply nested arrays", fill(&format!("{head}\"layers\":[],\"junk\":"), "[", "")),
        ("nested arrays that close", {
            let depth = LIMIT / 2 - 200;
            let mut s = format!("{head}\"layers\":[],\"junk\":");
            s.push_str(&"[".repeat(depth));
            s.push_str(&"]".repeat(depth));
            s.push('}');
            while s.len() < LIMIT {
                s.push(' ');
            }
            s.truncate(LIMIT);
            s.into_bytes()
        }),
        ("empty objects as layers", fill(&format!("{head}\"layers\":[{{}}"), ",{}", "]}")),
        ("valid layers, all the same blob", fill(&format!("{head}\"layers\":["), &layer, "{}]}")),
        ("empty objects as child manifests", fill(&format!("{{\"schemaVersion\":2,\"mediaType\":\"{OCI_INDEX}\",\"manifests\":[{{}}"), ",{}", "]}")),
        ("one huge annotation value", fill(&format!("{head}\"layers\":[],\"annotations\":{{\"a\":\""), "x", "\"}}")),
        ("many small annotations", {
            let mut s = format!("{head}\"layers\":[],\"annotations\":{{\"k\":\"v\"");
            let mut i = 0u64;
            while s.len() < LIMIT - 64 {
                s.push_str(&format!(",\"k{i}\":\"v\""));
                i += 1;
            }
            s.push_str("}}");
            while s.len() < LIMIT {
                s.push(' ');
            }
            s.into_bytes()
        }),
        ("a huge artifactType", fill(&format!("{head}\"layers\":[],\"artifactType\":\"application/"), "x", "\"}")),
        ("a huge mediaType", fill("{\"schemaVersion\":2,\"mediaType\":\"application/", "x", "\"}")),
        ("escaped strings in an unknown field", fill(&format!("{head}\"layers\":[],\"junk\":\""), "\\u0000", "\"}")),
        ("many unknown keys", {
            let mut s = head.clone();
            s.push_str("\"layers\":[]");
            let mut i = 0u64;
            while s.len() < LIMIT - 64 {
                s.push_str(&format!(",\"u{i}\":0"));
                i += 1;
            }
            s.push('}');
            while s.len() < LIMIT {
                s.push(' ');
            }
            s.into_bytes()
        }),
        ("objects of objects in an unknown field", fill(&format!("{head}\"layers\":[],\"junk\":[{{\"a\":{{}}}}"), ",{\"a\":{}}", "]}")),
    ]
}

fn put_manifest(tag: &str, token: Option<&str>, body: Vec<u8>) -> Resp {
    request("PUT", &url(&format!("/v2/{REPO}/manifests/{tag}")), token, &[("content-type", OCI_MANIFEST)], Some(body))
}

#[test]
fn hostile_manifests_stay_within_the_memory_budget() {
    let reg = registry();
    let config = push_blob(b"{}");
    let start = memory();
    eprintln!("wasm memory at start: {:.1} MiB", start as f64 / MIB as f64);
    let mut worst = start;
    for (i, (name, body)) in shapes(&config).into_iter().enumerate() {
        assert_eq!(body.len(), LIMIT, "{name}");
        let r = put_manifest(&format!("shape{i}"), Some(&reg.token), body);
        // Accepted or refused as invalid, never an internal error.
        assert!(r.status == 201 || r.status == 400, "{name}: {} {}", r.status, r.text());
        let now = memory();
        worst = worst.max(now);
        eprintln!("{name}: {} → wasm memory {:.1} MiB", r.status, now as f64 / MIB as f64);
        assert!(now < BUDGET, "{name}: wasm memory grew to {:.1} MiB (budget {} MiB)", now as f64 / MIB as f64, BUDGET / MIB);
    }

    // Nobody's big bodies are refused before they are read.
    for (method, path) in [
        ("PUT", format!("/v2/{REPO}/manifests/anon")),
        ("POST", format!("/v2/{REPO}/blobs/uploads/?digest={config}")),
        ("PUT", "/v2/other/app/manifests/anon".to_string()),
    ] {
        let r = request(method, &url(&path), None, &[("content-type", OCI_MANIFEST)], Some(fill("[0", ",0", "]")));
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
    }

    // Four of the worst at once: each request holds its own body.
    let bodies: Vec<Vec<u8>> = shapes(&config).into_iter().take(4).map(|(_, b)| b).collect();
    let threads: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| std::thread::spawn(move || put_manifest(&format!("concurrent{i}"), Some(&registry().token), b).status))
        .collect();
    for t in threads {
        let status = t.join().unwrap();
        assert!(status == 201 || status == 400, "concurrent push answered {status}");
    }
    let now = memory();
    worst = worst.max(now);
    eprintln!("after four concurrent pushes: wasm memory {:.1} MiB", now as f64 / MIB as f64);
    eprintln!("high-water mark over the run: {:.1} MiB (budget {} MiB)", worst as f64 / MIB as f64, BUDGET / MIB);
    assert!(now < BUDGET, "wasm memory grew to {:.1} MiB (budget {} MiB)", now as f64 / MIB as f64, BUDGET / MIB);
}
