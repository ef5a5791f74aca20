//! What every test builds, native or end to end: npm tarballs and publish bodies, OCI
//! manifests and descriptors, deterministic bytes, digests and integrity strings, the
//! admin API's bodies, and one response type with its body read.

use std::io::Write;

use base64::Engine;
use edgeregistry::http::Headers;
use serde_json::{json, Value};
use sha2::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MIB: usize = 1024 * 1024;

/// A response with its body already read (from the in-memory `App` or over HTTP).
pub struct Resp {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text())
    }
}

/// Headers from (name, value) pairs.
pub fn headers_of<K: AsRef<str>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Headers {
    let mut headers = Headers::new();
    for (k, v) in pairs {
        headers.append(k.as_ref(), v);
    }
    headers
}

pub fn json_body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// `base` with the fields of `extra` (both objects) set over it.
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// `POST /-/admin/users`.
pub fn user_body(name: &str, password: &str) -> Value {
    json!({"name": name, "password": password})
}

/// `POST /-/admin/tokens` for `user`, with `extra` fields (protocol, scopes, readonly, …).
pub fn token_body(user: &str, extra: Value) -> Value {
    merged(json!({"user": user}), extra)
}

/// Deterministic bytes that do not repeat with any short period (xorshift), which neither
/// gzip nor deduplication shrink.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(data))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// npm's `dist.integrity` (Subresource Integrity, sha512).
pub fn integrity(data: &[u8]) -> String {
    format!("sha512-{}", b64(&sha2::Sha512::digest(data)))
}

/// An OCI content digest (sha256).
pub fn oci_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

// ---------------------------------------------------------------- npm

/// A real npm tarball as npm packs it: `package/package.json` and `package/index.js`, gzipped.
pub fn tarball(name: &str, version: &str) -> Vec<u8> {
    tarball_with(&json!({"name": name, "version": version}), b"module.exports = 1;\n")
}

/// A gzipped npm tarball with this package.json and index.js.
pub fn tarball_with(manifest: &Value, index_js: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let pkg = json_body(manifest);
    for (path, data) in [("package/package.json", pkg.as_slice()), ("package/index.js", index_js)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, data).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

/// The body `npm publish` sends for one version: a readme and one dependency (`left-pad`).
pub fn publish_body(name: &str, version: &str, tgz: &[u8]) -> Value {
    publish_body_with(name, version, tgz, json!({"readme": "# readme text", "dependencies": {"left-pad": "^1.0.0"}}))
}

/// The body `npm publish` sends for one version, with `fields` (dependencies, main, …) in the
/// version's manifest.
pub fn publish_body_with(name: &str, version: &str, tgz: &[u8], fields: Value) -> Value {
    let manifest = json!({"name": name, "version": version, "description": format!("the {name} package")});
    let dist = json!({"dist": {"shasum": sha1_hex(tgz), "integrity": integrity(tgz)}});
    json!({
        "_id": name,
        "name": name,
        "description": format!("the {name} package"),
        "dist-tags": {"latest": version},
        "versions": {version: merged(merged(manifest, fields), dist)},
        "_attachments": {
            format!("{name}-{version}.tgz"): {
                "content_type": "application/octet-stream",
                "data": b64(tgz),
                "length": tgz.len()
            }
        }
    })
}

/// A packument as a registry serves it, tarballs linked at `{tarball_host}/{name}/-/{base}-{v}.tgz`.
pub fn packument(name: &str, versions: &[(&str, &[u8])], tarball_host: &str) -> Value {
    let mut vs = serde_json::Map::new();
    for (v, tgz) in versions {
        vs.insert(
            v.to_string(),
            json!({"name": name, "version": v, "dist": {
                "tarball": format!("{tarball_host}/{}", tarball_path(name, v)),
                "shasum": sha1_hex(tgz), "integrity": integrity(tgz)}}),
        );
    }
    let latest = versions.last().map(|(v, _)| *v).unwrap_or("0.0.0");
    json!({"_id": name, "name": name, "dist-tags": {"latest": latest}, "versions": vs})
}

/// Where npm keeps a version's tarball, below the registry: `{name}/-/{base}-{version}.tgz`.
pub fn tarball_path(name: &str, version: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    format!("{name}/-/{base}-{version}.tgz")
}

// ---------------------------------------------------------------- OCI

pub fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({"mediaType": media_type, "size": data.len(), "digest": oci_digest(data)})
}

/// An OCI image manifest over a config and layers.
pub fn image_manifest(config: &[u8], layers: &[&[u8]]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect::<Vec<_>>(),
    })
}

/// The config and layer an image built from `seed` holds.
pub fn image_parts(seed: &str) -> (Vec<u8>, Vec<u8>) {
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}").into_bytes();
    let layer = format!("layer bytes of {seed}").into_bytes();
    (config, layer)
}

// ---------------------------------------------------------------- PyPI

/// A `multipart/form-data` body (RFC 7578) of text fields in order, then an optional file
/// part `(field, filename, bytes)`, as twine, uv and poetry send an upload.
pub fn multipart_form(boundary: &str, fields: &[(String, String)], file: Option<(&str, &str, &[u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    if let Some((field, filename, bytes)) = file {
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// A zip archive of stored (uncompressed) entries (PKWARE APPNOTE: local headers, central
/// directory, end record).
pub fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(data);
        let size = data.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&0u16.to_le_bytes()); // stored
            v.extend_from_slice(&0u32.to_le_bytes()); // time, date
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend_from_slice(&[0u8; 6]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_offset, cd_size) = (out.len() as u32, central.len() as u32);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]); // disk numbers
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The core metadata a wheel of `project` `version` carries.
pub fn core_metadata_text(project: &str, version: &str) -> String {
    format!("Metadata-Version: 2.1\nName: {project}\nVersion: {version}\nSummary: {project} for tests\nRequires-Python: >=3.8\nRequires-Dist: requests>=2\n\nThe description.\n")
}

/// A real (stored) wheel of `project` `version`: its filename and bytes.
pub fn wheel(project: &str, version: &str) -> (String, Vec<u8>) {
    let dist = project.replace(['-', '.'], "_");
    let info = format!("{dist}-{version}.dist-info");
    let metadata = core_metadata_text(project, version);
    let code = format!("VERSION = {version:?}\n");
    let bytes = stored_zip(&[
        (&format!("{dist}/__init__.py"), code.as_bytes()),
        (&format!("{info}/METADATA"), metadata.as_bytes()),
        (&format!("{info}/WHEEL"), b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (&format!("{info}/RECORD"), b""),
    ]);
    (format!("{dist}-{version}-py3-none-any.whl"), bytes)
}

/// An sdist of `project` `version` (a gzipped tarball with a PKG-INFO): filename and bytes.
pub fn sdist(project: &str, version: &str) -> (String, Vec<u8>) {
    let dist = project.replace(['-', '.'], "_");
    let root = format!("{dist}-{version}");
    let mut builder = tar::Builder::new(Vec::new());
    let pkg_info = core_metadata_text(project, version);
    let mut header = tar::Header::new_gnu();
    header.set_size(pkg_info.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, format!("{root}/PKG-INFO"), pkg_info.as_bytes()).unwrap();
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    (format!("{root}.tar.gz"), gz.finish().unwrap())
}

/// The form fields twine sends for a file (metadata, then digests and `:action`).
pub fn pypi_upload_fields(project: &str, version: &str, filename: &str, bytes: &[u8]) -> Vec<(String, String)> {
    let wheel = filename.ends_with(".whl");
    [
        ("metadata_version", "2.1"),
        ("name", project),
        ("version", version),
        ("summary", &format!("{project} for tests")),
        ("requires_python", ">=3.8"),
        ("requires_dist", "requests>=2"),
        ("classifiers", "Programming Language :: Python :: 3"),
        ("classifiers", "License :: OSI Approved :: MIT License"),
        ("filetype", if wheel { "bdist_wheel" } else { "sdist" }),
        ("pyversion", if wheel { "py3" } else { "source" }),
        ("sha256_digest", &sha256_hex(bytes)),
        (":action", "file_upload"),
        ("protocol_version", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

// ---------------------------------------------------------------- Cargo

/// A `.crate` as `cargo package` makes it: `{name}-{version}/Cargo.toml` and `src/lib.rs`,
/// gzipped; `filler` pseudo-random bytes in a third file make it as large as a test needs.
pub fn crate_file(name: &str, version: &str, filler: usize) -> Vec<u8> {
    let root = format!("{name}-{version}");
    let toml = format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n");
    let mut builder = tar::Builder::new(Vec::new());
    let noise = pseudo_random(filler, filler as u64 + 7);
    for (path, data) in [("Cargo.toml", toml.as_bytes()), ("src/lib.rs", b"pub fn f() {}\n".as_slice()), ("data.bin", noise.as_slice())] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, format!("{root}/{path}"), data).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

/// The metadata `cargo publish` sends (Cargo book, "Registry Web API", publish) for a crate
/// with one normal dependency on crates.io's `serde`; `extra` fields replace its own.
pub fn cargo_metadata(name: &str, version: &str, extra: Value) -> Value {
    let base = json!({
        "name": name, "vers": version,
        "deps": [{"name": "serde", "version_req": "^1.0", "features": ["derive"], "optional": false,
                  "default_features": true, "target": null, "kind": "normal",
                  "registry": "https://github.com/rust-lang/crates.io-index", "explicit_name_in_toml": null}],
        "features": {"default": []}, "authors": ["Alice <alice@example.com>"],
        "description": format!("{name}, a crate for tests"), "documentation": null, "homepage": null,
        "readme": "# readme", "readme_file": "README.md", "keywords": ["test"], "categories": [],
        "license": "MIT", "license_file": null, "repository": null, "badges": {}, "links": null, "rust_version": null
    });
    merged(base, extra)
}

/// The publish body: the metadata's length (u32 LE), the metadata, the `.crate`'s length, the
/// `.crate`.
pub fn cargo_publish_body(metadata: &Value, crate_bytes: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(metadata).unwrap();
    let mut body = Vec::with_capacity(json.len() + crate_bytes.len() + 8);
    body.extend_from_slice(&(json.len() as u32).to_le_bytes());
    body.extend_from_slice(&json);
    body.extend_from_slice(&(crate_bytes.len() as u32).to_le_bytes());
    body.extend_from_slice(crate_bytes);
    body
}
