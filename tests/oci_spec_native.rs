//! The parts of the OCI distribution spec (v1.1 and the current draft) and image spec beyond
//! the everyday push and pull, driven through `App::handle` against the in-memory platform:
//! sha512 digests for blobs, uploads (monolithic, POST+PUT, chunked, with and without
//! `digest-algorithm`), mounts, ranges and manifests; manifests with non-distributable layers;
//! the mount challenge naming the source repository; `?tag=` with `OCI-Tag`; upload cancel;
//! the `Docker-Content-Digest` header wherever the draft requires it.

mod common;

use common::*;
use edgeregistry::http::{Body, Method, PlatformStream, Request};
use edgeregistry::oci::upload::PART_SIZE;
use edgeregistry::oci::MAX_TAGS_PER_PUSH;
use serde_json::json;
use sha2::Digest as _;

fn setup() -> (Reg, String) {
    let reg = Reg::oci(&[]);
    reg.create_user("alice");
    let token = reg.create_token("alice", json!({"protocol": "oci"}));
    (reg, token)
}

fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

fn hex_of(digest: &str) -> &str {
    digest.split_once(':').unwrap().1
}

fn push_blob_512(reg: &Reg, token: &str, repo: &str, data: &[u8]) -> String {
    let d = sha512(data);
    let r = reg.send(oci(Method::Post, &format!("/v2/{repo}/blobs/uploads/?digest={d}"), token).with_body(data.to_vec()));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(r.header("Location"), Some(format!("/v2/{repo}/blobs/{d}").as_str()));
    d
}

fn start(reg: &Reg, token: &str, repo: &str, query: &str) -> String {
    let r = reg.send(oci(Method::Post, &format!("/v2/{repo}/blobs/uploads/{query}"), token));
    assert_eq!(r.status, 202, "{r:?}");
    r.header("Location").unwrap().to_string()
}

fn patch(reg: &Reg, token: &str, location: &str, offset: usize, data: &[u8]) {
    let r = reg.send(
        oci(Method::Patch, location, token)
            .with_header("Content-Length", &data.len().to_string())
            .with_header("Content-Range", &format!("{}-{}", offset, offset + data.len() - 1))
            .with_body(data.to_vec()),
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.header("Range"), Some(format!("0-{}", offset + data.len() - 1).as_str()));
}


/// Uploads `data` in PATCHes of `chunk` bytes after a POST with `query`, then PUTs `digest`.
fn chunked(reg: &Reg, token: &str, repo: &str, query: &str, data: &[u8], chunk: usize, digest: &str) -> Resp {
    let location = start(reg, token, repo, query);
    let mut offset = 0;
    for piece in data.chunks(chunk) {
        patch(reg, token, &location, offset, piece);
        offset += piece.len();
    }
    finish_upload(reg, token, &location, digest, b"")
}

// ---------------------------------------------------------------- sha512 blobs

#[test]
fn sha512_blobs_push_get_head_range_and_delete() {
    let (reg, token) = setup();
    let data = b"a blob addressed by sha512".to_vec();
    let d = push_blob_512(&reg, &token, "team/app", &data);
    // Keys carry the algorithm; sha256 keys are as they always were.
    assert!(reg.oci_keys().contains(&format!("oci/blobs/sha512/{}", hex_of(&d))), "{:?}", reg.oci_keys());
    assert!(reg.oci_keys().contains(&format!("oci/links/team/app/{d}")), "{:?}", reg.oci_keys());
    let r = get_blob(&reg, &token, "team/app", &d);
    assert_eq!((r.status, r.body.clone()), (200, data.clone()));
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(r.header("Content-Length"), Some(data.len().to_string().as_str()));
    let head = reg.send(oci(Method::Head, &format!("/v2/team/app/blobs/{d}"), &token));
    assert_eq!((head.status, head.body.len(), head.header("Docker-Content-Digest")), (200, 0, Some(d.as_str())));
    let range = reg.send(oci(Method::Get, &format!("/v2/team/app/blobs/{d}"), &token).with_header("Range", "bytes=2-5"));
    assert_eq!((range.status, range.body.as_slice()), (206, &data[2..6]));
    assert_eq!(range.header("Content-Range"), Some(format!("bytes 2-5/{}", data.len()).as_str()));
    assert_eq!(range.header("Docker-Content-Digest"), Some(d.as_str()));
    // Another repository does not see it until it is mounted.
    assert_oci_error(&get_blob(&reg, &token, "team/other", &d), 404, "BLOB_UNKNOWN");
    assert_eq!(reg.send(oci(Method::Delete, &format!("/v2/team/app/blobs/{d}"), &token)).status, 202);
    assert_oci_error(&get_blob(&reg, &token, "team/app", &d), 404, "BLOB_UNKNOWN");
}

#[test]
fn missing_sha512_blobs_are_404_blob_unknown_not_400() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    let d = sha512(b"never pushed");
    for method in [Method::Get, Method::Head, Method::Delete] {
        let r = reg.send(oci(method, &format!("/v2/team/app/blobs/{d}"), &token));
        assert_eq!(r.status, 404, "{method:?}: {r:?}");
        if method != Method::Head {
            assert_oci_error(&r, 404, "BLOB_UNKNOWN");
        }
    }
    // A sha512 string of the wrong length is malformed, not missing.
    let short = format!("sha512:{}", "a".repeat(64));
    assert_oci_error(&get_blob(&reg, &token, "team/app", &short), 400, "DIGEST_INVALID");
}

#[test]
fn a_wrong_sha512_digest_stores_nothing() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    let keys = reg.oci_keys();
    let wrong = sha512(b"other bytes");
    let r = reg.send(oci(Method::Post, &format!("/v2/team/app/blobs/uploads/?digest={wrong}"), &token).with_body(b"these bytes".to_vec()));
    assert_oci_error(&r, 400, "DIGEST_INVALID");
    // A streamed body (unknown length) goes through a session hashing sha512.
    let streamed = Request::new(Method::Post, &format!("/v2/team/app/blobs/uploads/?digest={wrong}"))
        .with_body(Body::Stream(PlatformStream::from_bytes(b"these bytes".to_vec())));
    assert_oci_error(&reg.send(bearer(streamed, &token)), 400, "DIGEST_INVALID");
    assert_eq!(reg.oci_keys(), keys);
    assert_no_upload_leftovers(&reg);
}

#[test]
fn sha512_monolithic_with_a_streamed_body_and_post_then_put() {
    let (reg, token) = setup();
    let data = pseudo_random(3000, 1);
    let d = sha512(&data);
    let streamed = Request::new(Method::Post, &format!("/v2/team/app/blobs/uploads/?digest={d}")).with_body(Body::Stream(PlatformStream::from_bytes(data.clone())));
    let r = reg.send(bearer(streamed, &token));
    assert_eq!((r.status, r.header("Docker-Content-Digest")), (201, Some(d.as_str())), "{r:?}");
    assert_eq!(get_blob(&reg, &token, "team/app", &d).body, data);
    // POST, then one PUT with the whole blob.
    let other = pseudo_random(5000, 2);
    let d2 = sha512(&other);
    let location = start(&reg, &token, "team/app", "");
    let r = finish_upload(&reg, &token, &location, &d2, &other);
    assert_eq!((r.status, r.header("Docker-Content-Digest")), (201, Some(d2.as_str())), "{r:?}");
    assert_eq!(r.header("Location"), Some(format!("/v2/team/app/blobs/{d2}").as_str()));
    assert_eq!(get_blob(&reg, &token, "team/app", &d2).body, other);
    assert_no_upload_leftovers(&reg);
}

#[test]
fn chunked_sha512_upload_with_digest_algorithm_keeps_its_hash_between_patches() {
    let (reg, token) = setup();
    // Three PATCHes over more than one 10 MiB part: the sha512 state is saved and resumed.
    let data = pseudo_random(PART_SIZE + 3 * MIB + 17, 3);
    let d = sha512(&data);
    let r = chunked(&reg, &token, "team/app", "?digest-algorithm=sha512", &data, 5 * MIB, &d);
    assert_eq!((r.status, r.header("Docker-Content-Digest")), (201, Some(d.as_str())), "{r:?}");
    assert_eq!(get_blob(&reg, &token, "team/app", &d).body, data);
    assert_no_upload_leftovers(&reg);
    // Small ones too (no multipart object: everything in the tail).
    let small = b"small sha512 blob in two chunks".to_vec();
    let ds = sha512(&small);
    let r = chunked(&reg, &token, "team/app", "?digest-algorithm=sha512", &small, 10, &ds);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(get_blob(&reg, &token, "team/app", &ds).body, small);
    assert_no_upload_leftovers(&reg);
}

#[test]
fn an_upload_finished_in_another_algorithm_than_its_session_is_hashed_again() {
    // Clients rarely say `digest-algorithm` (it is a SHOULD): the final digest decides.
    let (reg, token) = setup();
    for (i, len) in [40, PART_SIZE + MIB + 5].into_iter().enumerate() {
        let data = pseudo_random(len, 10 + i as u64);
        let d = sha512(&data);
        let r = chunked(&reg, &token, "team/app", "", &data, 4 * MIB, &d);
        assert_eq!((r.status, r.header("Docker-Content-Digest")), (201, Some(d.as_str())), "{len}: {r:?}");
        assert_eq!(get_blob(&reg, &token, "team/app", &d).body, data, "{len}");
        assert_no_upload_leftovers(&reg);
        // And the other way round: a sha512 session finished with sha256.
        let data = pseudo_random(len, 20 + i as u64);
        let d = oci_digest(&data);
        let r = chunked(&reg, &token, "team/app", "?digest-algorithm=sha512", &data, 4 * MIB, &d);
        assert_eq!(r.status, 201, "{len}: {r:?}");
        assert_eq!(get_blob(&reg, &token, "team/app", &d).body, data, "{len}");
        assert_no_upload_leftovers(&reg);
    }
    // A wrong digest in the other algorithm: 400, and the assembled object is gone.
    let keys = reg.oci_keys();
    let data = pseudo_random(PART_SIZE + 100, 30);
    let r = chunked(&reg, &token, "team/app", "", &data, 6 * MIB, &sha512(b"something else"));
    assert_oci_error(&r, 400, "DIGEST_INVALID");
    assert_no_upload_leftovers(&reg);
    assert_eq!(reg.oci_keys(), keys, "nothing of the failed upload is left");
    // A blob already stored, sent again in another algorithm, is verified before it is linked.
    let data = pseudo_random(PART_SIZE + 7, 31);
    let d = push_blob_512(&reg, &token, "team/a", &data);
    let assembled = reg.keys_with("oci/blob-data/");
    let r = chunked(&reg, &token, "team/b", "", &data, 8 * MIB, &d);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(get_blob(&reg, &token, "team/b", &d).body, data);
    let mut forged = data.clone();
    forged[0] ^= 1;
    let r = chunked(&reg, &token, "team/c", "", &forged, 8 * MIB, &d);
    assert_oci_error(&r, 400, "DIGEST_INVALID");
    assert_oci_error(&get_blob(&reg, &token, "team/c", &d), 404, "BLOB_UNKNOWN");
    assert_eq!(reg.keys_with("oci/blob-data/"), assembled, "the blob was stored before: no second copy is kept");
    assert_no_upload_leftovers(&reg);
}

#[test]
fn sha512_blobs_mount_across_repositories() {
    let (reg, token) = setup();
    let d = push_blob_512(&reg, &token, "team/a", b"shared sha512 layer");
    let r = reg.send(oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?mount={d}&from=team/a"), &token));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(r.header("Location"), Some(format!("/v2/team/b/blobs/{d}").as_str()));
    assert_eq!(get_blob(&reg, &token, "team/b", &d).body, b"shared sha512 layer");
    // From the repository itself: it is there already.
    let r = reg.send(oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?mount={d}&from=team/b"), &token));
    assert_eq!(r.status, 201, "{r:?}");
}

// ---------------------------------------------------------------- sha512 manifests

fn descriptor_512(media_type: &str, data: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "size": data.len(), "digest": sha512(data)})
}

#[test]
fn manifests_addressed_by_sha512_digests() {
    let (reg, token) = setup();
    let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
    let layer = b"sha512 layer".to_vec();
    push_blob_512(&reg, &token, "team/app", &config);
    push_blob_512(&reg, &token, "team/app", &layer);
    let body = json_body(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor_512(OCI_CONFIG, &config), "layers": [descriptor_512(OCI_LAYER, &layer)],
    }));
    let m = sha512(&body);
    // A wrong sha512 reference is refused, nothing stored.
    let keys = reg.oci_keys();
    assert_oci_error(&reg.put_manifest(&token, "team/app", &sha512(b"x"), Some(OCI_MANIFEST), &body), 400, "DIGEST_INVALID");
    assert_eq!(reg.oci_keys(), keys);
    let r = reg.put_manifest(&token, "team/app", &m, Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Docker-Content-Digest"), Some(m.as_str()), "the digest the client gave");
    assert_eq!(r.header("Location"), Some(format!("/v2/team/app/manifests/{m}").as_str()));
    let get = reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{m}"), &token));
    assert_eq!((get.status, get.body.clone()), (200, body.clone()));
    assert_eq!(get.header("Docker-Content-Digest"), Some(m.as_str()));
    assert_eq!(get.header("Content-Type"), Some(OCI_MANIFEST));
    let head = reg.send(oci(Method::Head, &format!("/v2/team/app/manifests/{m}"), &token));
    assert_eq!((head.status, head.header("Docker-Content-Digest")), (200, Some(m.as_str())));
    let etag = get.header("ETag").unwrap().to_string();
    let not_modified = reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{m}"), &token).with_header("If-None-Match", &etag));
    assert_eq!((not_modified.status, not_modified.header("Docker-Content-Digest")), (304, Some(m.as_str())));
    // A sha512 layer that is not in the repository is still MANIFEST_BLOB_UNKNOWN.
    let missing = json_body(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor_512(OCI_CONFIG, &config), "layers": [descriptor_512(OCI_LAYER, b"never pushed")],
    }));
    assert_oci_error(&reg.put_manifest(&token, "team/app", "v2", Some(OCI_MANIFEST), &missing), 400, "MANIFEST_BLOB_UNKNOWN");
    // An index of it by sha512, a referrer whose subject is it, and a delete by sha512.
    let index = json_body(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "size": body.len(), "digest": m}]}));
    assert_eq!(reg.put_manifest(&token, "team/app", "multi", Some(OCI_INDEX), &index).status, 201);
    let referrer = json_body(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": descriptor_512(OCI_CONFIG, &config), "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "size": body.len(), "digest": m},
    }));
    let rd = sha512(&referrer);
    let r = reg.put_manifest(&token, "team/app", &rd, Some(OCI_MANIFEST), &referrer);
    assert_eq!((r.status, r.header("OCI-Subject")), (201, Some(m.as_str())), "{r:?}");
    let listing = reg.send(oci(Method::Get, &format!("/v2/team/app/referrers/{m}"), &token));
    assert_eq!(listing.status, 200, "{listing:?}");
    assert_eq!(listing.json()["manifests"][0]["digest"], rd.as_str());
    assert_eq!(listing.json()["manifests"][0]["artifactType"], "application/vnd.example.sig");
    assert_eq!(reg.send(oci(Method::Delete, &format!("/v2/team/app/manifests/{rd}"), &token)).status, 202);
    assert_eq!(reg.send(oci(Method::Get, &format!("/v2/team/app/referrers/{m}"), &token)).json()["manifests"], json!([]));
    assert_oci_error(&reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{rd}"), &token)), 404, "MANIFEST_UNKNOWN");
}

// ---------------------------------------------------------------- ?tag= and OCI-Tag

#[test]
fn a_push_by_digest_with_tag_parameters_stores_the_tags_and_says_oci_tag() {
    let (reg, token) = setup();
    let config = b"{}".to_vec();
    reg.push_blob(&token, "team/app", &config);
    let body = json_body(&image_manifest(&config, &[]));
    let d = oci_digest(&body);
    let r = reg.put_manifest(&token, "team/app", &format!("{d}?tag=1.2.3&tag=1.2&tag=latest&tag=1.2"), Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("OCI-Tag"), Some("1.2.3, 1.2, latest"));
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    let r = reg.send(oci(Method::Get, "/v2/team/app/tags/list", &token));
    assert_eq!(r.json()["tags"], json!(["1.2", "1.2.3", "latest"]));
    for t in ["1.2.3", "latest"] {
        let get = reg.send(oci(Method::Get, &format!("/v2/team/app/manifests/{t}"), &token));
        assert_eq!((get.status, get.body.clone(), get.header("Docker-Content-Digest")), (200, body.clone(), Some(d.as_str())));
    }
    // Without tags: no OCI-Tag.
    assert!(reg.put_manifest(&token, "team/app", &d, Some(OCI_MANIFEST), &body).header("OCI-Tag").is_none());
}

#[test]
fn tags_of_a_sha512_manifest_answer_with_its_sha512_digest() {
    // The draft makes Docker-Content-Digest required on GET and HEAD: for a tag it is how a
    // client learns the digest (and its algorithm) the manifest was pushed with.
    let (reg, token) = setup();
    let config = b"{}".to_vec();
    push_blob_512(&reg, &token, "team/app", &config);
    let body = json_body(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor_512(OCI_CONFIG, &config), "layers": []}));
    let m = sha512(&body);
    let r = reg.put_manifest(&token, "team/app", &format!("{m}?tag=v1"), Some(OCI_MANIFEST), &body);
    assert_eq!((r.status, r.header("OCI-Tag")), (201, Some("v1")), "{r:?}");
    for method in [Method::Get, Method::Head] {
        let r = reg.send(oci(method, "/v2/team/app/manifests/v1", &token));
        assert_eq!((r.status, r.header("Docker-Content-Digest")), (200, Some(m.as_str())), "{method:?}");
        assert_eq!(r.header("Content-Length"), Some(body.len().to_string().as_str()));
    }
    // Deleting the manifest by its sha512 digest takes the tag with it.
    assert_eq!(reg.send(oci(Method::Delete, &format!("/v2/team/app/manifests/{m}"), &token)).status, 202);
    assert_oci_error(&reg.send(oci(Method::Get, "/v2/team/app/manifests/v1", &token)), 404, "MANIFEST_UNKNOWN");
}

#[test]
fn bad_or_too_many_tag_parameters_store_nothing() {
    let (reg, token) = setup();
    reg.push_blob(&token, "team/app", b"{}");
    let body = json_body(&image_manifest(b"{}", &[]));
    let d = oci_digest(&body);
    let keys = reg.oci_keys();
    for query in ["?tag=ok&tag=.bad", "?tag=", &format!("?tag={}", "a".repeat(129)), "?tag=a%2Fb"] {
        let r = reg.put_manifest(&token, "team/app", &format!("{d}{query}"), Some(OCI_MANIFEST), &body);
        assert_oci_error(&r, 400, "TAG_INVALID");
    }
    let many: String = (0..=MAX_TAGS_PER_PUSH).map(|i| format!("tag=t{i}")).collect::<Vec<_>>().join("&");
    let r = reg.put_manifest(&token, "team/app", &format!("{d}?{many}"), Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 414, "{r:?}");
    assert_oci_error_shape(&r);
    assert_eq!(reg.oci_keys(), keys);
    // As many as allowed are all stored.
    let most: String = (0..MAX_TAGS_PER_PUSH).map(|i| format!("tag=t{i}")).collect::<Vec<_>>().join("&");
    let r = reg.put_manifest(&token, "team/app", &format!("{d}?{most}"), Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("OCI-Tag").unwrap().split(", ").count(), MAX_TAGS_PER_PUSH);
}

// ---------------------------------------------------------------- non-distributable layers

#[test]
fn manifests_with_non_distributable_layers_never_pushed_are_accepted_and_served() {
    let (reg, token) = setup();
    let config = b"{\"architecture\":\"amd64\",\"os\":\"windows\"}".to_vec();
    let layer = b"an ordinary layer".to_vec();
    reg.push_blob(&token, "team/win", &config);
    reg.push_blob(&token, "team/win", &layer);
    let foreign = |media_type: &str, seed: &[u8], urls: bool| {
        let mut d = descriptor(media_type, seed);
        if urls {
            d["urls"] = json!([format!("https://store.example.com/blobs/{}", oci_digest(seed))]);
        }
        d
    };
    let layers = json!([
        foreign("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", b"nd gzip", true),
        foreign("application/vnd.oci.image.layer.nondistributable.v1.tar", b"nd tar, no urls", false),
        foreign(OCI_LAYER, b"an ordinary type with urls", true),
        descriptor(OCI_LAYER, &layer),
    ]);
    let body = json_body(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, &config), "layers": layers}));
    let r = reg.put_manifest(&token, "team/win", "ltsc2022", Some(OCI_MANIFEST), &body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(reg.send(oci(Method::Get, "/v2/team/win/tags/list", &token)).json()["tags"], json!(["ltsc2022"]));
    let get = reg.send(oci(Method::Get, "/v2/team/win/manifests/ltsc2022", &token));
    assert_eq!((get.status, get.body.clone()), (200, body.clone()));
    // The foreign blobs are not served from here.
    assert_oci_error(&get_blob(&reg, &token, "team/win", &oci_digest(b"nd gzip")), 404, "BLOB_UNKNOWN");
    // Docker's foreign layers, in a Docker manifest.
    let docker = json_body(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": descriptor("application/vnd.docker.container.image.v1+json", &config),
        "layers": [foreign("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", b"windows base", true)],
    }));
    let r = reg.put_manifest(&token, "team/win", "docker", Some("application/vnd.docker.distribution.manifest.v2+json"), &docker);
    assert_eq!(r.status, 201, "{r:?}");
    // Every other blob is still checked: a missing config, a missing ordinary layer.
    let keys = reg.oci_keys();
    for bad in [
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, b"no such config"), "layers": [foreign("application/vnd.oci.image.layer.nondistributable.v1.tar", b"x", true)]}),
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, &config), "layers": [descriptor(OCI_LAYER, b"no such layer")]}),
    ] {
        assert_oci_error(&reg.put_manifest(&token, "team/win", "bad", Some(OCI_MANIFEST), &json_body(&bad)), 400, "MANIFEST_BLOB_UNKNOWN");
    }
    assert_eq!(reg.oci_keys(), keys);
}

// ---------------------------------------------------------------- mount without pull on the source

#[test]
fn a_mount_with_a_token_for_the_target_only_is_challenged_for_both_scopes() {
    let (reg, token) = setup();
    let d = reg.push_blob(&token, "repo2", b"layer in repo2");
    let narrow = reg.jwt_for("alice", &["repository:repo1:pull,push"]);
    let r = reg.send(oci(Method::Post, &format!("/v2/repo1/blobs/uploads/?mount={d}&from=repo2"), &narrow));
    assert_oci_error(&r, 401, "UNAUTHORIZED");
    let c = r.header("WWW-Authenticate").unwrap();
    assert!(c.contains("scope=\"repository:repo1:pull,push repository:repo2:pull\""), "{c}");
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(reg.mem.sessions.is_empty(), "no session was opened");
    // The token endpoint grants both scopes in one request, as separate parameters or as
    // one space-separated parameter; with that token the mount succeeds.
    for scopes in [vec!["repository:repo1:pull,push", "repository:repo2:pull"], vec!["repository:repo1:pull,push repository:repo2:pull"]] {
        let t = reg.docker_token(Some(("alice", PASSWORD)), &scopes);
        let access = jwt_claims(t.json()["token"].as_str().unwrap())["access"].clone();
        assert_eq!(
            access,
            json!([{"type": "repository", "name": "repo1", "actions": ["pull", "push"]}, {"type": "repository", "name": "repo2", "actions": ["pull"]}])
        );
    }
    let wide = reg.jwt_for("alice", &["repository:repo1:pull,push", "repository:repo2:pull"]);
    let r = reg.send(oci(Method::Post, &format!("/v2/repo1/blobs/uploads/?mount={d}&from=repo2"), &wide));
    assert_eq!((r.status, r.header("Docker-Content-Digest")), (201, Some(d.as_str())), "{r:?}");
    assert_eq!(get_blob(&reg, &wide, "repo1", &d).body, b"layer in repo2");
}

#[test]
fn an_anonymous_mount_is_challenged_for_both_scopes_at_once() {
    let (reg, token) = setup();
    let d = reg.push_blob(&token, "repo2", b"layer");
    let r = reg.send(Request::new(Method::Post, &format!("/v2/repo1/blobs/uploads/?mount={d}&from=repo2")));
    assert_oci_error(&r, 401, "UNAUTHORIZED");
    let c = r.header("WWW-Authenticate").unwrap();
    assert!(c.contains("scope=\"repository:repo1:pull,push repository:repo2:pull\""), "{c}");
    assert!(!c.contains("insufficient_scope"), "{c}");
}

#[test]
fn a_mount_the_token_endpoint_refused_falls_back_to_an_upload() {
    let (reg, token) = setup();
    let d = reg.push_blob(&token, "repo2", b"layer");
    reg.create_user("bob");
    // bob's credential covers only his repositories: asked for repo2, he gets no pull.
    let own = reg.create_token("bob", json!({"protocol": "oci", "scopes": ["oci:repository:bob/*:*"]}));
    let r = reg.docker_token(Some(("bob", &own)), &["repository:bob/app:pull,push", "repository:repo2:pull"]);
    let jwt = r.json()["token"].as_str().unwrap().to_string();
    let r = reg.send(oci(Method::Post, &format!("/v2/bob/app/blobs/uploads/?mount={d}&from=repo2"), &jwt));
    assert_eq!(r.status, 202, "no second round: {r:?}");
    // A stored token lacking pull cannot be widened either: an upload.
    let r = reg.send(oci(Method::Post, &format!("/v2/bob/app/blobs/uploads/?mount={d}&from=repo2"), &own));
    assert_eq!(r.status, 202, "{r:?}");
    assert_oci_error(&get_blob(&reg, &own, "bob/app", &d), 404, "BLOB_UNKNOWN");
}

#[test]
fn with_anonymous_read_a_mount_from_a_public_repository_needs_no_wider_token() {
    let reg = Reg::oci(&[("ANONYMOUS_READ", "oci")]);
    reg.create_user("alice");
    let token = reg.create_token("alice", json!({"protocol": "oci"}));
    let d = reg.push_blob(&token, "repo2", b"public layer");
    let narrow = reg.jwt_for("alice", &["repository:repo1:pull,push"]);
    let r = reg.send(oci(Method::Post, &format!("/v2/repo1/blobs/uploads/?mount={d}&from=repo2"), &narrow));
    assert_eq!(r.status, 201, "{r:?}");
}

// ---------------------------------------------------------------- upload cancel, digest headers

#[test]
fn cancelling_a_sha512_upload_in_progress_leaves_nothing() {
    let (reg, token) = setup();
    let location = start(&reg, &token, "team/app", "?digest-algorithm=sha512");
    patch(&reg, &token, &location, 0, &pseudo_random(PART_SIZE + MIB, 40));
    let r = reg.send(oci(Method::Delete, &location, &token).with_header("Content-Length", "0"));
    assert_eq!((r.status, r.body.len()), (204, 0), "{r:?}");
    assert_no_upload_leftovers(&reg);
    assert!(reg.keys_with("oci/blob-data/").is_empty());
    assert_oci_error(&reg.send(oci(Method::Delete, &location, &token)), 404, "BLOB_UPLOAD_UNKNOWN");
    // Another user's token cannot cancel an upload to a repository he may not write.
    reg.push_blob(&token, "team/app", b"claims team/app for alice");
    let location = start(&reg, &token, "team/app", "");
    reg.create_user("bob");
    let bob = reg.create_token("bob", json!({"protocol": "oci"}));
    assert_eq!(reg.send(oci(Method::Delete, &location, &bob)).status, 403);
    assert_eq!(reg.send(oci(Method::Get, &location, &token)).status, 204);
}

#[test]
fn every_success_that_the_draft_requires_it_on_carries_docker_content_digest() {
    let (reg, token) = setup();
    let config = b"{}".to_vec();
    let d = reg.push_blob(&token, "team/app", &config);
    let (body, m) = reg.push_image(&token, "team/app", "v1", "digest headers");
    let location = start(&reg, &token, "team/app", "");
    let chunk = b"chunked".to_vec();
    patch(&reg, &token, &location, 0, &chunk);
    let put = finish_upload(&reg, &token, &location, &oci_digest(&chunk), b"");
    assert_eq!(put.header("Docker-Content-Digest"), Some(oci_digest(&chunk).as_str()));
    let mount = reg.send(oci(Method::Post, &format!("/v2/team/b/blobs/uploads/?mount={d}&from=team/app"), &token));
    assert_eq!(mount.header("Docker-Content-Digest"), Some(d.as_str()));
    for (method, path, want) in [
        (Method::Get, format!("/v2/team/app/blobs/{d}"), &d),
        (Method::Head, format!("/v2/team/app/blobs/{d}"), &d),
        (Method::Get, "/v2/team/app/manifests/v1".to_string(), &m),
        (Method::Head, "/v2/team/app/manifests/v1".to_string(), &m),
        (Method::Get, format!("/v2/team/app/manifests/{m}"), &m),
        (Method::Head, format!("/v2/team/app/manifests/{m}"), &m),
    ] {
        let r = reg.send(oci(method, &path, &token));
        assert_eq!((r.status, r.header("Docker-Content-Digest")), (200, Some(want.as_str())), "{method:?} {path}");
    }
    let r = reg.put_manifest(&token, "team/app", &m, Some(OCI_MANIFEST), &body);
    assert_eq!(r.header("Docker-Content-Digest"), Some(m.as_str()));
}
