//! The byte formats of Cargo (src/cargo/{names,publish,index}.rs) against what real cargo
//! sends (tests/fixtures/cargo/*.body, made by capture.sh with `cargo publish`) and what
//! crates.io publishes (tests/fixtures/cargo/crates-io-index, made by fetch_index.sh), and
//! against hostile input.

use edgeregistry::cargo::index::{self, IndexDep, IndexLine};
use edgeregistry::cargo::names::{self, name_from_index_path, valid_version, CrateName};
use edgeregistry::cargo::publish::{Event, FrameParser, Limits, PublishDep, PublishError, PublishMetadata};
use serde_json::json;

const FULL: &[u8] = include_bytes!("fixtures/cargo/Capture_Full-0.3.1-beta.2+build.5.body");
const MINIMAL: &[u8] = include_bytes!("fixtures/cargo/capture-minimal-1.0.0.body");

/// The real index files, as served by index.crates.io: (crate, file).
fn crates_io_files() -> Vec<(&'static str, &'static [u8])> {
    macro_rules! file {
        ($name:literal) => {
            ($name, include_bytes!(concat!("fixtures/cargo/crates-io-index/", $name)).as_slice())
        };
    }
    vec![file!("serde"), file!("tokio"), file!("reqwest"), file!("openssl-sys"), file!("log"), file!("libc"), file!("cc")]
}

/// Parses a body fed in pieces of `piece` bytes: the metadata, the crate bytes, the events.
fn parse(body: &[u8], piece: usize, limits: Limits) -> Result<(PublishMetadata, Vec<u8>, Vec<Event>), PublishError> {
    let mut parser = FrameParser::new(limits);
    let mut events = Vec::new();
    for chunk in body.chunks(piece.max(1)) {
        parser.feed(chunk, &mut events)?;
    }
    parser.finish()?;
    let mut meta = None;
    let mut krate = Vec::new();
    for event in &events {
        match event {
            Event::Metadata(m) => meta = Some(m.clone()),
            Event::CrateData(d) => krate.extend_from_slice(d),
            Event::End => {}
        }
    }
    Ok((meta.expect("metadata"), krate, events))
}

/// The two parts of a body, split by hand from its lengths.
fn split(body: &[u8]) -> (&[u8], &[u8]) {
    let json_len = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
    let json = &body[4..4 + json_len];
    let crate_len = u32::from_le_bytes(body[4 + json_len..8 + json_len].try_into().unwrap()) as usize;
    (json, &body[8 + json_len..8 + json_len + crate_len])
}

fn body(json: &[u8], krate: &[u8]) -> Vec<u8> {
    let mut b = (json.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(json);
    b.extend_from_slice(&(krate.len() as u32).to_le_bytes());
    b.extend_from_slice(krate);
    b
}

// ---------------------------------------------------------------------------------------
// names.rs

#[test]
fn crate_names_follow_crates_io() {
    for good in ["a", "serde", "Serde_JSON", "tokio-util", "a1", "x_-_y", &"a".repeat(64)] {
        assert!(CrateName::parse(good).is_some(), "{good} should be valid");
    }
    let long = "a".repeat(65);
    for bad in ["", "1abc", "_abc", "-abc", "ab.c", "ab/c", "..", "a b", "é", "abc\n", &long, "con", "NUL", "Aux", "com1", "lpt9", "serde/../x"] {
        assert!(CrateName::parse(bad).is_none(), "{bad:?} should be refused");
    }
    // Only the bare reserved names: cargo allows `con-rs` and `nul2`.
    assert!(CrateName::parse("con-rs").is_some());
    let n = CrateName::parse("Serde_Json").unwrap();
    assert_eq!(n.as_str(), "Serde_Json");
    assert_eq!(n.to_string(), "Serde_Json");
    assert_eq!(n.lower(), "serde_json");
    assert_eq!(n.canonical(), "serde-json");
    assert_eq!(n.canonical(), CrateName::parse("serde-JSON").unwrap().canonical());
    assert_ne!(n.canonical(), CrateName::parse("serdejson").unwrap().canonical());
}

#[test]
fn index_paths_are_cargos() {
    // The Cargo book, "Registry Index", index files.
    let cases = [("a", "1/a"), ("Ab", "2/ab"), ("abc", "3/a/abc"), ("Cargo", "ca/rg/cargo"), ("serde_json", "se/rd/serde_json"), ("ABCD", "ab/cd/abcd")];
    for (name, path) in cases {
        assert_eq!(CrateName::parse(name).unwrap().index_path(), path);
        assert_eq!(name_from_index_path(path).unwrap().as_str(), name.to_ascii_lowercase());
    }
    for bad in ["", "1/ab", "2/a", "3/b/abc", "3/abc", "se/rd", "se/rx/serde", "serde", "se/rd/serde/", "/se/rd/serde", "Se/rd/serde", "se/rd/Serde", "1/_", "2/co/con", "3/c/con", "config.json"] {
        assert!(name_from_index_path(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn versions_are_semver() {
    for good in ["0.0.0", "1.2.3", "1.0.0-alpha.1", "0.3.1-beta.2+build.5", "1.0.0+20130313144700"] {
        assert!(valid_version(good), "{good}");
    }
    for bad in ["", "1", "1.2", "v1.2.3", "1.2.3.4", "01.2.3", "1.2.3-", "1.2.3 ", "1.2.3/../x", &format!("1.0.0-{}", "a".repeat(300))] {
        assert!(!valid_version(bad), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------
// publish.rs: the bodies real cargo sent

#[test]
fn parses_what_cargo_publish_sends() {
    let (json, krate) = split(FULL);
    for piece in [1, 3, 4, 5, 64, 4096, FULL.len()] {
        let (meta, data, events) = parse(FULL, piece, Limits::default()).unwrap();
        assert_eq!(data, krate, "pieces of {piece}");
        assert_eq!(meta, serde_json::from_slice::<PublishMetadata>(json).unwrap());
        assert!(matches!(events.first(), Some(Event::Metadata(_))));
        assert_eq!(events.last(), Some(&Event::End));
        assert!(events.iter().all(|e| !matches!(e, Event::CrateData(d) if d.is_empty())), "no empty CrateData");
    }
    // The crate is a gzip stream (the Cargo book: a .crate file is a gzipped tarball).
    assert_eq!(&krate[..2], &[0x1f, 0x8b]);

    let (meta, _, _) = parse(FULL, 4096, Limits::default()).unwrap();
    meta.validate().unwrap();
    assert_eq!(meta.name, "Capture_Full");
    assert_eq!(meta.vers, "0.3.1-beta.2+build.5");
    assert_eq!(meta.links.as_deref(), Some("capturefull"));
    assert_eq!(meta.rust_version.as_deref(), Some("1.70"));
    assert_eq!(meta.readme.as_deref(), Some("# Capture full\n"));
    assert_eq!(meta.readme_file.as_deref(), Some("README.md"));
    assert_eq!(meta.keywords, ["capture", "test"]);
    assert_eq!(meta.deps.len(), 8);
    let renamed = meta.deps.iter().find(|d| d.explicit_name_in_toml.is_some()).unwrap();
    assert_eq!((renamed.name.as_str(), renamed.explicit_name_in_toml.as_deref()), ("serde_json", Some("sj")));
    let local = meta.deps.iter().find(|d| d.name == "localdep").unwrap();
    assert_eq!(local.registry, None, "a dependency from the same registry has no registry");
    let build = meta.deps.iter().find(|d| d.kind.as_deref() == Some("build")).unwrap();
    assert_eq!(build.name, "cc");
    assert_eq!(build.registry.as_deref(), Some("https://github.com/rust-lang/crates.io-index"));
    assert!(meta.deps.iter().any(|d| d.target.as_deref() == Some("cfg(unix)") && d.name == "libc"));
    assert_eq!(meta.features["derive"], ["serde?/derive", "dep:serde"]);

    let (min, krate, _) = parse(MINIMAL, 7, Limits::default()).unwrap();
    min.validate().unwrap();
    assert_eq!((min.name.as_str(), min.vers.as_str(), min.deps.len()), ("capture-minimal", "1.0.0", 0));
    assert_eq!(krate, split(MINIMAL).1);
}

#[test]
fn the_index_line_of_a_real_publish() {
    let (meta, _, _) = parse(FULL, 4096, Limits::default()).unwrap();
    let cksum = "ab".repeat(32);
    let line = index::line_for(&meta, &cksum);
    let crates_io = "https://github.com/rust-lang/crates.io-index";
    // The Cargo book, "Registry Index": a renamed dependency is listed under the name the
    // crate uses with the real one in `package`; `dep:` and `?/` features in `features2`,
    // with `v: 2`; a dependency from the same registry has no `registry`. Dependencies in the
    // order crates.io writes them: by name, then normal before build before dev, then target.
    let expected = json!({
        "name": "Capture_Full",
        "vers": "0.3.1-beta.2+build.5",
        "deps": [
            {"name": "cc", "req": "^1.0", "features": [], "optional": false, "default_features": true, "target": null, "kind": "build", "registry": crates_io},
            {"name": "itoa", "req": ">=1.0, <2", "features": [], "optional": true, "default_features": true, "target": null, "kind": "normal", "registry": crates_io},
            {"name": "itoa", "req": "^1", "features": [], "optional": false, "default_features": true, "target": "x86_64-pc-windows-msvc", "kind": "normal", "registry": crates_io},
            {"name": "libc", "req": "^0.2", "features": [], "optional": true, "default_features": true, "target": "cfg(unix)", "kind": "normal", "registry": crates_io},
            {"name": "localdep", "req": "^0.1", "features": [], "optional": false, "default_features": true, "target": null, "kind": "normal"},
            {"name": "serde", "req": "^1", "features": [], "optional": true, "default_features": false, "target": null, "kind": "normal", "registry": crates_io},
            {"name": "serde", "req": "^1", "features": ["derive"], "optional": false, "default_features": true, "target": null, "kind": "dev", "registry": crates_io},
            {"name": "sj", "req": "^1.0.100", "features": ["alloc"], "optional": false, "default_features": false, "target": null, "kind": "normal", "registry": crates_io, "package": "serde_json"},
        ],
        "cksum": cksum,
        "features": {"default": ["std"], "numbers": ["itoa"], "std": ["sj/std"]},
        "features2": {"derive": ["serde?/derive", "dep:serde"], "unix": ["dep:libc"]},
        "yanked": false,
        "links": "capturefull",
        "rust_version": "1.70",
        "v": 2,
    });
    let text = index::to_json_line(&line);
    assert!(!text.contains('\n'));
    assert_eq!(text, serde_json::to_string(&expected).unwrap(), "fields, values and their order");
    assert_eq!(serde_json::from_str::<IndexLine>(&text).unwrap(), line);

    let (min, _, _) = parse(MINIMAL, 4096, Limits::default()).unwrap();
    assert_eq!(
        index::to_json_line(&index::line_for(&min, &cksum)),
        format!(r#"{{"name":"capture-minimal","vers":"1.0.0","deps":[],"cksum":"{cksum}","features":{{}},"yanked":false}}"#)
    );
}

// ---------------------------------------------------------------------------------------
// publish.rs: hostile bodies

#[test]
fn every_strict_prefix_is_truncated_and_trailing_bytes_are_refused() {
    for cut in 0..MINIMAL.len() {
        let mut parser = FrameParser::new(Limits::default());
        let mut events = Vec::new();
        parser.feed(&MINIMAL[..cut], &mut events).unwrap();
        assert_eq!(parser.finish(), Err(PublishError::Truncated), "cut at {cut}");
    }
    let mut parser = FrameParser::new(Limits::default());
    let mut events = Vec::new();
    parser.feed(MINIMAL, &mut events).unwrap();
    assert_eq!(parser.feed(b"x", &mut events), Err(PublishError::Trailing));
    // After an error the parser is spent.
    assert!(parser.feed(b"", &mut events).is_err());
    assert!(parser.finish().is_err());

    let mut with_trailer = MINIMAL.to_vec();
    with_trailer.push(0);
    assert_eq!(parse(&with_trailer, 4096, Limits::default()).unwrap_err(), PublishError::Trailing);
}

#[test]
fn limits_are_enforced_from_the_declared_lengths() {
    let (json, krate) = split(FULL);
    let tight_json = Limits { max_json: json.len() as u32 - 1, max_crate: 1 << 20 };
    // Refused on the length alone: nothing of the metadata is read.
    let mut parser = FrameParser::new(tight_json);
    let mut events = Vec::new();
    assert!(matches!(parser.feed(&FULL[..4], &mut events), Err(PublishError::TooLarge(_))));
    assert!(events.is_empty());
    assert!(parser.finish().is_err());

    let tight_crate = Limits { max_json: 1 << 20, max_crate: krate.len() as u64 - 1 };
    let mut parser = FrameParser::new(tight_crate);
    let mut events = Vec::new();
    let err = parser.feed(FULL, &mut events).unwrap_err();
    assert!(matches!(err, PublishError::TooLarge(_)));
    assert!(err.to_string().contains("crate file"), "{err}");
    assert!(!events.iter().any(|e| matches!(e, Event::CrateData(_))), "no crate byte handed out");

    let exact = Limits { max_json: json.len() as u32, max_crate: krate.len() as u64 };
    assert_eq!(parse(FULL, 100, exact).unwrap().1, krate);
}

#[test]
fn malformed_metadata_is_refused() {
    for bad in [&b""[..], b"{", b"[]", b"null", b"{\"name\":\"x\"}", b"{\"name\":1,\"vers\":\"1.0.0\"}", b"\xff\xfe"] {
        let err = parse(&body(bad, b"crate"), 4096, Limits::default()).unwrap_err();
        assert!(matches!(err, PublishError::Malformed(_)), "{:?}: {err:?}", String::from_utf8_lossy(bad));
    }
    // Unknown fields are ignored; every field but name and vers may be missing; an empty
    // crate still ends.
    let (meta, krate, events) = parse(&body(br#"{"name":"x","vers":"1.0.0","future_field":[1,2]}"#, b""), 1, Limits::default()).unwrap();
    assert_eq!((meta.name.as_str(), meta.vers.as_str()), ("x", "1.0.0"));
    assert!(krate.is_empty());
    assert_eq!(events.last(), Some(&Event::End));
    assert!(meta.deps.is_empty() && meta.features.is_empty() && meta.links.is_none());
}

#[test]
fn error_messages_are_clear() {
    assert!(PublishError::Truncated.to_string().contains("ended before"));
    assert_eq!(PublishError::TooLarge("the crate file").to_string(), "the crate file is too large");
    assert!(PublishError::Malformed("x".into()).to_string().contains("invalid publish metadata: x"));
    assert!(PublishError::Trailing.to_string().contains("after the end"));
}

fn valid_meta() -> PublishMetadata {
    PublishMetadata {
        name: "good".into(),
        vers: "1.0.0".into(),
        deps: vec![PublishDep { name: "dep".into(), version_req: "^1".into(), default_features: true, kind: Some("normal".into()), ..Default::default() }],
        features: [("f".to_owned(), vec!["dep/x".to_owned(), "dep:dep".to_owned(), "dep?/y".to_owned(), "g".to_owned()])].into(),
        ..Default::default()
    }
}

#[test]
fn validation_names_what_is_wrong() {
    valid_meta().validate().unwrap();
    type Change = fn(&mut PublishMetadata);
    let cases: Vec<(Change, &str)> = vec![
        (|m| m.name = "../etc".into(), "crate name"),
        (|m| m.name = "nul".into(), "crate name"),
        (|m| m.vers = "1.0".into(), "version"),
        (|m| m.deps[0].name = "a/b".into(), "dependency name"),
        (|m| m.deps[0].explicit_name_in_toml = Some("9x".into()), "name `9x`"),
        (|m| m.deps[0].version_req = "not a req".into(), "version requirement"),
        (|m| m.deps[0].kind = Some("runtime".into()), "kind"),
        (|m| m.deps[0].features = vec!["a b".into()], "features of dependency"),
        (|m| m.deps[0].target = Some(String::new()), "target"),
        (|m| m.deps = vec![m.deps[0].clone(); 1001], "too many dependencies"),
        (|m| m.features = [("bad name".to_owned(), vec![])].into(), "feature name"),
        (|m| m.features = [("".to_owned(), vec![])].into(), "feature name"),
        (|m| m.features = [("f".to_owned(), vec!["dep:".to_owned()])].into(), "value `dep:`"),
        (|m| m.features = [("f".to_owned(), vec!["a/".to_owned()])].into(), "value `a/`"),
        (|m| m.features = [("f".to_owned(), vec!["/x".to_owned()])].into(), "value `/x`"),
        (|m| m.features = (0..1001).map(|i| (format!("f{i}"), vec![])).collect(), "too many features"),
        (|m| m.keywords = vec!["k".into(); 101], "too many keywords"),
        (|m| m.authors = vec!["a".repeat(2000)], "authors"),
        (|m| m.description = Some("d".repeat(70_000)), "description"),
        (|m| m.homepage = Some("h".repeat(2000)), "homepage"),
        (|m| m.links = Some(String::new()), "links"),
        (|m| m.rust_version = Some("1.70.0-nightly".into()), "rust-version"),
        (|m| m.rust_version = Some("1".into()), "rust-version"),
    ];
    for (change, what) in cases {
        let mut meta = valid_meta();
        change(&mut meta);
        let err = meta.validate().unwrap_err();
        assert!(err.contains(what), "{err:?} should mention {what:?}");
    }
    // Quoted values are cut short.
    let mut meta = valid_meta();
    meta.name = "x".repeat(10_000);
    assert!(meta.validate().unwrap_err().len() < 400);
    // crates.io's feature names: a digit or `_` may start one; `+`, `-` and `.` inside.
    let mut meta = valid_meta();
    meta.features = [("_x".to_owned(), vec![]), ("1.0+x-y".to_owned(), vec!["_x".to_owned()])].into();
    meta.rust_version = Some("1.70.1".into());
    meta.validate().unwrap();
}

// ---------------------------------------------------------------------------------------
// index.rs: crates.io's own lines

/// The metadata cargo would have sent for a crates.io index line (the inverse of
/// `line_for`), with its dependencies in another order than the index's.
fn metadata_of(line: &IndexLine) -> PublishMetadata {
    let mut features = line.features.clone();
    features.extend(line.features2.clone().unwrap_or_default());
    let mut deps: Vec<PublishDep> = line
        .deps
        .iter()
        .map(|d| PublishDep {
            name: d.package.clone().unwrap_or_else(|| d.name.clone()),
            explicit_name_in_toml: d.package.as_ref().map(|_| d.name.clone()),
            version_req: d.req.clone(),
            features: d.features.clone(),
            optional: d.optional,
            default_features: d.default_features,
            target: d.target.clone(),
            kind: d.kind.clone(),
            registry: d.registry.clone(),
            ..Default::default()
        })
        .collect();
    deps.reverse();
    PublishMetadata {
        name: line.name.clone(),
        vers: line.vers.clone(),
        deps,
        features,
        links: line.links.clone(),
        rust_version: line.rust_version.clone(),
        ..Default::default()
    }
}

#[test]
fn crates_io_lines_round_trip_and_line_for_reproduces_them() {
    let mut seen_features2 = false;
    let mut seen_package = false;
    let mut seen_links = false;
    let mut lines = 0;
    for (name, file) in crates_io_files() {
        for raw in file.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            lines += 1;
            let line: IndexLine = serde_json::from_slice(raw).unwrap();
            assert_eq!(line.name, name);
            // Every field of the line is one IndexLine knows, written in the same order:
            // the compact form of crates.io's line is byte for byte ours.
            let value: serde_json::Value = serde_json::from_slice(raw).unwrap();
            assert_eq!(index::to_json_line(&line), serde_json::to_string(&value).unwrap(), "{name} {}", line.vers);
            // And the line crates.io wrote is the one `line_for` makes from what cargo sent.
            let mut made = index::line_for(&metadata_of(&line), &line.cksum);
            made.yanked = line.yanked;
            made.pubtime = line.pubtime.clone();
            assert_eq!(made, line, "{name} {}", line.vers);
            seen_features2 |= line.features2.is_some() && line.v == Some(2);
            seen_package |= line.deps.iter().any(|d| d.package.is_some());
            seen_links |= line.links.is_some();
            // find_version finds it, parsed the same.
            assert_eq!(index::find_version(file, &line.vers), Some(line));
        }
    }
    assert!(lines >= 15);
    assert!(seen_features2 && seen_package && seen_links, "the fixtures cover features2, renames and links");
}

#[test]
fn yanking_rewrites_only_that_line() {
    for (name, file) in crates_io_files() {
        let raws: Vec<&[u8]> = file.split(|&b| b == b'\n').collect();
        let versions: Vec<String> = index::parse_file(file).map(|l| l.vers).collect();
        for (i, version) in versions.iter().enumerate() {
            let was = index::find_version(file, version).unwrap().yanked;
            let flipped = index::set_yanked(file, version, !was).unwrap();
            let new: Vec<&[u8]> = flipped.split(|&b| b == b'\n').collect();
            assert_eq!(new.len(), raws.len(), "{name}: same number of lines, trailing newline kept");
            for (j, (a, b)) in raws.iter().zip(&new).enumerate() {
                if i == j {
                    let mut expected: serde_json::Value = serde_json::from_slice(a).unwrap();
                    expected["yanked"] = json!(!was);
                    let got: serde_json::Value = serde_json::from_slice(b).unwrap();
                    assert_eq!(got, expected);
                    // Fields keep their order (pubtime, v, … after yanked).
                    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
                    assert_eq!(keys(&got), keys(&expected));
                } else {
                    assert_eq!(a, b, "{name}: line {j} untouched when yanking line {i}");
                }
            }
            assert_eq!(index::find_version(&flipped, version).unwrap().yanked, !was);
            // Flipping back gives the same line (compact), and setting the state a line
            // already has changes no byte.
            let back = index::set_yanked(&flipped, version, was).unwrap();
            assert_eq!(index::find_version(&back, version), index::find_version(file, version));
            assert_eq!(index::set_yanked(&flipped, version, !was).unwrap(), flipped);
            assert_eq!(index::set_yanked(file, version, was).unwrap(), file);
        }
        assert_eq!(index::set_yanked(file, "9999.0.0", true), None);
        assert_eq!(index::find_version(file, "9999.0.0"), None);
    }
}

#[test]
fn find_version_matches_the_exact_version_only() {
    let line = |v: &str| IndexLine { name: "x".into(), vers: v.into(), cksum: "0".repeat(64), ..Default::default() };
    let mut file = Vec::new();
    for v in ["1.0.0", "1.0.0-alpha", "1.0.1+build.1"] {
        file = index::append_line(&file, &line(v));
    }
    assert!(file.ends_with(b"}\n") && file.iter().filter(|&&b| b == b'\n').count() == 3);
    assert_eq!(index::find_version(&file, "1.0.0").unwrap().vers, "1.0.0");
    assert_eq!(index::find_version(&file, "1.0.0-alpha").unwrap().vers, "1.0.0-alpha");
    assert_eq!(index::find_version(&file, "1.0").map(|l| l.vers), None);
    assert_eq!(index::find_version(&file, "1.0.1"), None);
    // Build metadata does not make a new version (semver.org, item 10).
    assert_eq!(index::conflicting_version(&file, "1.0.1").as_deref(), Some("1.0.1+build.1"));
    assert_eq!(index::conflicting_version(&file, "1.0.0+other").as_deref(), Some("1.0.0"));
    assert_eq!(index::conflicting_version(&file, "1.0.0-beta"), None);
    assert_eq!(index::conflicting_version(&file, "2.0.0"), None);
    // A missing final newline is supplied before appending; garbage lines are skipped.
    let mut odd = b"garbage\n\n".to_vec();
    odd.extend_from_slice(index::to_json_line(&line("3.0.0")).as_bytes());
    let appended = index::append_line(&odd, &line("3.0.1"));
    assert_eq!(index::parse_file(&appended).map(|l| l.vers).collect::<Vec<_>>(), ["3.0.0", "3.0.1"]);
    assert_eq!(index::set_yanked(&appended, "3.0.1", true).unwrap()[..odd.len()], odd[..]);
}

#[test]
fn download_urls_follow_the_dl_template() {
    let sum = "9a8e94ea7f378bd32cbbd37198a4a91436180c5bb472411e48b5ec2e2124ae9e";
    // crates.io's config.json: no marker, so cargo appends /{crate}/{version}/download.
    assert_eq!(index::download_url("https://static.crates.io/crates", "serde", "1.0.228", sum), "https://static.crates.io/crates/serde/1.0.228/download");
    let t = "https://dl.example/{prefix}/{lowerprefix}/{crate}/{crate}-{version}.crate?sum={sha256-checksum}";
    assert_eq!(
        index::download_url(t, "Serde_Json", "1.0.0+b", sum),
        format!("https://dl.example/Se/rd/se/rd/Serde_Json/Serde_Json-1.0.0+b.crate?sum={sum}")
    );
    for (name, prefix) in [("a", "1"), ("Ab", "2"), ("Abc", "3/A"), ("abcd", "ab/cd")] {
        assert_eq!(index::download_url("{prefix}", name, "1.0.0", sum), prefix);
        assert_eq!(names::prefix(name), prefix);
    }
    assert_eq!(index::download_url("https://x/{version}", "a", "0.1.0", sum), "https://x/0.1.0");
}

#[test]
fn index_dep_defaults_are_cargos() {
    // The Cargo book, "Registry Index": kind, target, registry, package may be absent.
    let dep: IndexDep = serde_json::from_str(r#"{"name":"a","req":"^1","features":[],"optional":false,"default_features":false}"#).unwrap();
    assert_eq!((dep.kind, dep.target, dep.registry, dep.package), (None, None, None, None));
    let line: IndexLine = serde_json::from_str(r#"{"name":"a","vers":"1.0.0","deps":[],"cksum":"00","features":{}}"#).unwrap();
    assert!(!line.yanked);
}

#[test]
fn config_json_is_the_books() {
    let open = index::RegistryConfig::for_registry("https://reg.example/cargo", false);
    assert_eq!(serde_json::to_string(&open).unwrap(), r#"{"dl":"https://reg.example/cargo/api/v1/crates","api":"https://reg.example/cargo"}"#);
    let closed = index::RegistryConfig::for_registry("http://127.0.0.1:8787/cargo", true);
    assert_eq!(
        serde_json::to_value(&closed).unwrap(),
        json!({"dl": "http://127.0.0.1:8787/cargo/api/v1/crates", "api": "http://127.0.0.1:8787/cargo", "auth-required": true})
    );
    // crates.io's own (index.crates.io/config.json), and a dl with markers.
    let crates_io = index::RegistryConfig::parse(br#"{"dl":"https://static.crates.io/crates","api":"https://crates.io"}"#).unwrap();
    assert_eq!((crates_io.dl.as_str(), crates_io.api.as_deref(), crates_io.auth_required), ("https://static.crates.io/crates", Some("https://crates.io"), false));
    let marked = index::RegistryConfig::parse(br#"{"dl":"https://x/{prefix}/{crate}","auth-required":true,"other":1}"#).unwrap();
    assert!(marked.auth_required && marked.api.is_none());
    assert_eq!(index::download_url(&marked.dl, "serde", "1.0.0", ""), "https://x/se/rd/serde");
    for bad in [&b""[..], b"{}", br#"{"dl":""}"#, br#"{"dl":1}"#, b"<html>"] {
        assert_eq!(index::RegistryConfig::parse(bad), None);
    }
}

#[test]
fn features_enabling_new_syntax_features_move_to_features2() {
    let mut meta = valid_meta();
    meta.features = [
        ("a".to_owned(), vec!["dep:dep".to_owned()]),
        ("b".to_owned(), vec!["a".to_owned()]),
        ("c".to_owned(), vec!["b".to_owned(), "dep/x".to_owned()]),
        ("d".to_owned(), vec!["dep/x".to_owned()]),
        ("e".to_owned(), vec!["dep?/x".to_owned()]),
        ("f".to_owned(), vec![]),
        // A cycle does not loop.
        ("g".to_owned(), vec!["h".to_owned()]),
        ("h".to_owned(), vec!["g".to_owned()]),
    ]
    .into();
    let line = index::line_for(&meta, "00");
    assert_eq!(line.features.keys().collect::<Vec<_>>(), ["d", "f", "g", "h"]);
    assert_eq!(line.features2.unwrap().keys().collect::<Vec<_>>(), ["a", "b", "c", "e"]);
    assert_eq!(line.v, Some(2));
}
