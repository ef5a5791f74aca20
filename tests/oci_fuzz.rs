//! Fuzz-style property tests (proptest, natively) of everything in OCI that reads client or
//! upstream data: manifest bodies (as bytes, as arbitrary JSON, as near-manifests) through the
//! manifest PUT handler, upstream tag lists, Range and Content-Range headers, repository
//! names, tags and digests, route parsing, and the token endpoint's scopes. None may panic, and
//! no request may be answered with a 5xx.

mod common;

use common::*;
use edgeregistry::http::{Method, Request};
use edgeregistry::oci::manifest::Manifest;
use edgeregistry::oci::names::{valid_repository, valid_tag, Algorithm, Digest};
use edgeregistry::oci::{parse_range, parse_route, tag_list, upload};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// One registry for all cases of a test (cases run one after another on one thread), with a
/// user whose token may write `fuzz/app` and its config blob.
struct Fixture {
    reg: Reg,
    token: String,
    config: String,
    upload: String,
}

fn fixture() -> &'static Fixture {
    thread_local! {
        static F: &'static Fixture = {
            let reg = Reg::oci(&[]);
            reg.create_user("fuzzer");
            let token = reg.create_token("fuzzer", json!({"protocol": "oci"}));
            let config = reg.push_blob(&token, "fuzz/app", b"{}");
            let r = reg.send(oci(Method::Post, "/v2/fuzz/app/blobs/uploads/", &token));
            let upload = r.header("Location").expect("an upload").to_string();
            Box::leak(Box::new(Fixture { reg, token, config, upload }))
        };
    }
    F.with(|f| *f)
}

/// Not a 5xx; an error has the OCI error body.
fn sane(r: &Resp, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(r.status < 500, "{what}: {r:?}");
    if r.status >= 400 && !r.body.is_empty() {
        let doc: Value = serde_json::from_slice(&r.body).map_err(|e| TestCaseError::fail(format!("{what}: error body is not JSON ({e}): {r:?}")))?;
        prop_assert!(doc["errors"][0]["code"].is_string(), "{what}: {r:?}");
    }
    Ok(())
}

const KEYS: [&str; 12] =
    ["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "artifactType", "annotations", "digest", "urls", "size", "platform"];
const TYPES: [&str; 7] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "text/html",
    "application/json",
];

fn interesting_string() -> impl Strategy<Value = String> {
    let digest = "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}"));
    let digest512 = "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}"));
    prop_oneof![
        any::<String>(),
        digest512,
        digest_like(),
        prop::sample::select(KEYS.to_vec()).prop_map(str::to_string),
        prop::sample::select(TYPES.to_vec()).prop_map(str::to_string),
        digest,
        Just(fixture().config.clone()),
        (1usize..4000).prop_map(|n| "x".repeat(n)),
        "[a-z]{1,10}/[a-z.+-]{1,300}",
    ]
}

/// Strings shaped like digests: the image spec grammar, registered and unknown algorithms,
/// right and wrong lengths, and near misses.
fn digest_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "(sha256|sha512|sha384|blake3|md5|SHA512|sha512\\+x|[a-z0-9+._-]{1,10}):[a-zA-Z0-9=_-]{0,140}",
        "sha512:[0-9a-f]{120,136}",
        "sha256:[0-9a-f]{60,68}",
        "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}")),
        "sha512:[0-9a-fA-F:]{0,140}",
    ]
}

/// Arbitrary JSON, with keys and strings that the manifest parser looks for.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        Just(json!(2)),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((prop_oneof![interesting_string(), prop::sample::select(KEYS.to_vec()).prop_map(str::to_string)], inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Something close to a manifest: the members the parser reads, each plausible or arbitrary.
fn near_manifest() -> impl Strategy<Value = Value> {
    let cfg = fixture().config.clone();
    let descriptor = prop_oneof![
        Just(json!({"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": cfg.clone()})),
        json_value().prop_map(move |v| json!({"digest": cfg.clone(), "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar", "urls": v})),
        json_value(),
    ];
    let member = (prop::sample::select(KEYS.to_vec()), prop_oneof![
        json_value(),
        descriptor.clone(),
        prop::collection::vec(descriptor, 0..4).prop_map(Value::Array),
    ]);
    (prop::collection::vec(member, 0..8), any::<bool>()).prop_map(|(members, versioned)| {
        let mut m = Map::new();
        if versioned {
            m.insert("schemaVersion".into(), json!(2));
        }
        for (k, v) in members {
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    })
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![Just(None), prop::sample::select(TYPES.to_vec()).prop_map(|t| Some(t.to_string())), any::<String>().prop_map(Some)]
}

/// PUT the body by a tag or by its digest, then check the answer (and a 201's bytes).
fn push(body: Vec<u8>, content_type: Option<String>, by_digest: bool) -> Result<(), TestCaseError> {
    let f = fixture();
    let reference = if by_digest { oci_digest(&body) } else { "fuzzed".to_string() };
    // Header values are what HTTP can carry.
    let ct = content_type.filter(|c| c.bytes().all(|b| b.is_ascii() && !b.is_ascii_control()));
    let r = f.reg.put_manifest(&f.token, "fuzz/app", &reference, ct.as_deref(), &body);
    sane(&r, "manifest PUT")?;
    if r.status == 201 {
        let g = f.reg.send(oci(Method::Get, &format!("/v2/fuzz/app/manifests/{}", oci_digest(&body)), &f.token));
        prop_assert_eq!(g.status, 200);
        prop_assert_eq!(&g.body, &body);
        let served = g.header("Content-Type").unwrap_or_default().to_string();
        prop_assert!(TYPES[..4].contains(&served.as_str()), "served as {served}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn manifest_parser_takes_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = Manifest::parse(&bytes);
    }

    #[test]
    fn manifest_put_takes_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), ct in content_type(), by_digest in any::<bool>()) {
        push(bytes, ct, by_digest)?;
    }

    #[test]
    fn manifest_put_takes_arbitrary_json(doc in json_value(), ct in content_type(), by_digest in any::<bool>()) {
        push(serde_json::to_vec(&doc).unwrap(), ct, by_digest)?;
    }

    #[test]
    fn manifest_put_takes_near_manifests(doc in near_manifest(), ct in content_type(), by_digest in any::<bool>()) {
        let parsed = Manifest::parse(&serde_json::to_vec(&doc).unwrap());
        if let Ok(m) = &parsed {
            // What is kept is bounded whatever came.
            prop_assert!(m.media_type.as_ref().is_none_or(|t| t.len() <= 255));
            prop_assert!(m.artifact_type.as_ref().is_none_or(|t| t.len() <= 255));
            prop_assert!(m.annotations.as_ref().is_none_or(|a| a.len() <= 1024));
        }
        push(serde_json::to_vec(&doc).unwrap(), ct, by_digest)?;
    }

    #[test]
    fn upstream_tag_lists_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), doc in json_value(), name in "[a-z]{1,8}(/[a-z]{1,8})?") {
        for input in [bytes, serde_json::to_vec(&doc).unwrap(), serde_json::to_vec(&json!({"name": "x", "tags": doc})).unwrap()] {
            if let Ok(out) = tag_list::rewrite(&input, &name) {
                let v: Value = serde_json::from_slice(&out).expect("the rewritten list is JSON");
                prop_assert_eq!(&v["name"], &json!(name));
                prop_assert!(v["tags"].as_array().unwrap().iter().all(|t| t.as_str().is_some_and(valid_tag)));
            }
        }
    }

    #[test]
    fn upstream_tag_lists_keep_valid_tags(tags in prop::collection::vec("[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}", 0..20), junk in prop::collection::vec(any::<String>(), 0..5)) {
        let mut all: Vec<Value> = tags.iter().map(|t| json!(t)).collect();
        all.extend(junk.iter().filter(|j| !valid_tag(j)).map(|j| json!(j)));
        let input = serde_json::to_vec(&json!({"name": "library/x", "tags": all, "extra": {"a": [1]}})).unwrap();
        let out: Value = serde_json::from_slice(&tag_list::rewrite(&input, "x").unwrap()).unwrap();
        prop_assert_eq!(out, json!({"name": "x", "tags": tags}));
    }

    #[test]
    fn ranges_are_within_the_object(header in prop_oneof![any::<String>(), "bytes=[0-9]{0,22}-[0-9]{0,22}", "bytes=-[0-9]{0,22}", "bytes= ?[0-9]{0,3} ?- ?[0-9]{0,3}(,[0-9]-[0-9])?"], size in prop_oneof![Just(0u64), 0u64..2000, any::<u64>()]) {
        if let Some(Ok((a, b))) = parse_range(&header, size) {
            prop_assert!(a <= b && b < size, "{header} on {size}: {a}-{b}");
        }
    }

    #[test]
    fn content_ranges_never_panic(header in prop_oneof![any::<String>(), "(bytes[ =])?[0-9]{0,22}-[0-9]{0,22}(/[0-9*]{0,5})?"]) {
        let (start, end) = upload::content_range(&header);
        if let (Some(s), Some(e)) = (start, end) {
            prop_assert!(header.contains(&s.to_string()) && header.contains(&e.to_string()));
        }
    }

    #[test]
    fn patches_with_arbitrary_content_ranges_are_never_5xx(header in prop_oneof![any::<String>(), "[0-9]{0,22}-[0-9]{0,22}"], body in prop::collection::vec(any::<u8>(), 0..64)) {
        let f = fixture();
        let header: String = header.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).collect();
        let r = f.reg.send(oci(Method::Patch, &f.upload, &f.token).with_header("Content-Range", &header).with_body(body));
        sane(&r, "PATCH")?;
    }

    #[test]
    fn names_tags_and_digests_never_panic(s in any::<String>()) {
        if valid_repository(&s) {
            prop_assert!(s.len() <= 255 && !s.starts_with('/') && !s.ends_with('/') && !s.contains("//"));
            prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)));
        }
        if valid_tag(&s) {
            prop_assert!(!s.is_empty() && s.len() <= 128 && !s.contains('/') && !s.contains(':'));
        }
        if let Some(d) = Digest::parse(&s) {
            prop_assert_eq!(d.to_string(), s);
            prop_assert_eq!(d.raw().len() * 2, d.algorithm().hex_len());
            prop_assert_eq!(Digest::from_key_part(&d.key_part()), Some(d.clone()));
            prop_assert!(!d.key_part().contains('/'));
        }
    }

    #[test]
    fn names_from_the_spec_grammar_are_valid(name in "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}(/[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}){0,4}") {
        prop_assert!(valid_repository(&name), "{name}");
    }

    #[test]
    fn digests_round_trip(hex in "[0-9a-f]{64}", hex512 in "[0-9a-f]{128}", noise in "[0-9a-fA-Z:]{0,70}", like in digest_like()) {
        let s = format!("sha256:{hex}");
        prop_assert_eq!(Digest::parse(&s).map(|d| d.hex().to_string()), Some(hex));
        let s = format!("sha512:{hex512}");
        let d = Digest::parse(&s);
        prop_assert_eq!(d.as_ref().map(|d| (d.hex().to_string(), d.algorithm())), Some((hex512, Algorithm::Sha512)));
        prop_assert_eq!(d.map(|d| d.raw().len()), Some(64));
        let _ = Digest::parse(&noise);
        // Whatever parses is one of the two algorithms, lowercase hex of the right length.
        if let Some(d) = Digest::parse(&like) {
            prop_assert!(d.hex().len() == d.algorithm().hex_len() && d.hex().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn digest_strings_anywhere_are_never_5xx(d in digest_like(), which in 0usize..10) {
        let f = fixture();
        let enc = percent_encoding::utf8_percent_encode(&d, percent_encoding::NON_ALPHANUMERIC).to_string();
        let req = match which {
            0 => oci(Method::Get, &format!("/v2/fuzz/app/blobs/{enc}"), &f.token),
            1 => oci(Method::Head, &format!("/v2/fuzz/app/blobs/{enc}"), &f.token),
            2 => oci(Method::Delete, &format!("/v2/fuzz/other/blobs/{enc}"), &f.token),
            3 => oci(Method::Get, &format!("/v2/fuzz/app/manifests/{enc}"), &f.token),
            4 => oci(Method::Put, &format!("/v2/fuzz/app/manifests/{enc}?tag=t"), &f.token).with_header("Content-Type", "application/vnd.oci.image.manifest.v1+json").with_body(b"{}".to_vec()),
            5 => oci(Method::Get, &format!("/v2/fuzz/app/referrers/{enc}"), &f.token),
            6 => oci(Method::Post, &format!("/v2/fuzz/app/blobs/uploads/?digest={enc}"), &f.token).with_body(b"bytes".to_vec()),
            7 => oci(Method::Post, &format!("/v2/fuzz/app/blobs/uploads/?mount={enc}&from=fuzz/other"), &f.token),
            8 => oci(Method::Post, &format!("/v2/fuzz/app/blobs/uploads/?digest-algorithm={enc}"), &f.token),
            _ => oci(Method::Put, &format!("{}?digest={enc}", f.upload), &f.token).with_body(b"bytes".to_vec()),
        };
        let r = f.reg.send(req);
        sane(&r, &format!("{which} {d}"))?;
        // Sessions a case opened are not kept (the fixture's own stays usable).
        if r.status == 202 {
            if let Some(loc) = r.header("Location").filter(|l| *l != f.upload) {
                f.reg.send(oci(Method::Delete, loc, &f.token));
            }
        }
    }

    #[test]
    fn uploads_in_either_algorithm_split_anywhere_round_trip(
        data in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(0usize..300, 0..4),
        session512 in any::<bool>(),
        final512 in any::<bool>(),
        tamper in any::<bool>(),
    ) {
        let f = fixture();
        let query = if session512 { "?digest-algorithm=sha512" } else { "" };
        let r = f.reg.send(oci(Method::Post, &format!("/v2/fuzz/split/blobs/uploads/{query}"), &f.token));
        prop_assert_eq!(r.status, 202, "{:?}", r);
        let location = r.header("Location").unwrap_or_default().to_string();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort();
        let mut offset = 0;
        for cut in cuts {
            let Some(piece) = data.get(offset..cut).filter(|p| !p.is_empty()) else { continue };
            let r = f.reg.send(oci(Method::Patch, &location, &f.token).with_header("Content-Range", &format!("{}-{}", offset, cut - 1)).with_body(piece.to_vec()));
            prop_assert_eq!(r.status, 202, "{:?}", r);
            offset = cut;
        }
        let alg = if final512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
        let mut sent = data.clone();
        if tamper {
            sent.push(b'!');
        }
        let digest = alg.digest(&data);
        let rest = sent.get(offset..).unwrap_or_default().to_vec();
        let r = f.reg.send(oci(Method::Put, &format!("{location}?digest={digest}"), &f.token).with_body(rest));
        if tamper {
            prop_assert_eq!(r.status, 400, "{:?}", r);
        } else {
            prop_assert_eq!(r.status, 201, "{:?}", r);
            let got = f.reg.send(oci(Method::Get, &format!("/v2/fuzz/split/blobs/{digest}"), &f.token));
            prop_assert_eq!(got.body, data);
        }
    }

    #[test]
    fn routes_parse_without_panicking(path in prop_oneof![any::<String>(), "(/v2)?(/[a-z%0-9._-]{0,6}){0,6}/(manifests|blobs|blobs/uploads|tags|referrers|_catalog|token)/?[a-z0-9:%/]{0,12}"]) {
        let _ = parse_route(&path);
    }

    #[test]
    fn any_request_is_answered_without_a_5xx(
        method in prop::sample::select(vec!["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "BREW"]),
        path in prop_oneof![
            "/v2(/[a-z%0-9._:-]{0,6}){0,5}/(manifests|blobs|blobs/uploads|tags/list|referrers|_catalog)/?[a-z0-9:%/?=&._-]{0,20}",
            "/(v2|oci|oci/v2)/fuzz/app/(manifests|blobs|blobs/uploads|referrers)/[a-z0-9:%._-]{0,80}",
            "/v2/[^ ?#]{0,40}",
        ],
        authorised in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let f = fixture();
        let mut req = Request::new(Method::parse(method), &path).with_body(body);
        if authorised {
            req = bearer(req, &f.token);
        }
        let r = f.reg.send(req);
        sane(&r, &format!("{method} {path}"))?;
    }

    #[test]
    fn token_endpoint_takes_arbitrary_scopes(scopes in prop::collection::vec(prop_oneof![any::<String>(), "repository:[a-z/:]{0,20}:[a-z,*]{0,20}", "(registry|repository\\(plugin\\)):[a-z]{0,5}:[*a-z]{0,5}"], 0..4)) {
        let f = fixture();
        let query: Vec<String> = scopes.iter().map(|s| format!("scope={}", percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC))).collect();
        let r = f.reg.send(basic(Request::new(Method::Get, &format!("/v2/token?service=edgeregistry&{}", query.join("&"))), "fuzzer", PASSWORD));
        prop_assert_eq!(r.status, 200, "{:?}", r);
    }
}
