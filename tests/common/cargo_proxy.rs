//! What a sparse-registry upstream serves, for the Cargo mirror's tests: index lines,
//! `.crate` bytes, `config.json`.

use edgeregistry::cargo::names::CrateName;

use super::upstream::{Answer, FakeUpstream};
use super::{pseudo_random, sha256_hex};
use serde_json::json;

// ---------------------------------------------------------------- the upstream's side

/// The `.crate` bytes of a version (past one 64 KiB piece, so chunk boundaries are crossed).
pub fn crate_bytes(name: &str, version: &str) -> Vec<u8> {
    let mut bytes = pseudo_random(100_000, name.bytes().map(u64::from).sum());
    bytes.extend_from_slice(version.as_bytes());
    bytes
}

/// An index line (the Cargo book, "Registry Index") for a version whose `.crate` is `bytes`.
pub fn index_line(name: &str, version: &str, bytes: &[u8]) -> String {
    json!({"name": name, "vers": version, "deps": [], "cksum": sha256_hex(bytes), "features": {}, "yanked": false}).to_string()
}

/// The index path of a crate name (the Cargo book, "Registry Index", index files).
pub fn index_path(name: &str) -> String {
    CrateName::parse(name).expect("valid crate name").index_path()
}

/// Serves an upstream's `config.json` with this `dl`.
pub fn serve_config(up: &FakeUpstream, dl: &str) {
    up.serve("/config.json", Answer::json(200, &json!({"dl": dl, "api": "https://api.example"})));
}

/// Serves the index file of `name` with `lines` (an ETag of its bytes) at `/{index path}`.
pub fn serve_index(up: &FakeUpstream, name: &str, lines: &[String]) {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let etag = format!("\"{}\"", sha256_hex(body.as_bytes()));
    up.serve(&format!("/{}", index_path(name)), Answer::bytes(200, "text/plain", body.into_bytes()).with_header("ETag", &etag));
}
