//! Fuzz-style property tests (proptest, natively) of the Cargo byte formats: the publish
//! body parser (any chunking of a body gives the events of one chunk; generated bodies
//! round-trip; arbitrary bytes never panic and never get past the limits), index paths
//! (round-trip, and only cargo's shape is accepted), index lines (round-trip through JSON,
//! yanking arbitrary files never panics and changes one line) and metadata validation.

use edgeregistry::cargo::index::{self, IndexLine};
use edgeregistry::cargo::names::{name_from_index_path, CrateName};
use edgeregistry::cargo::publish::{Event, FrameParser, Limits, PublishDep, PublishError, PublishMetadata};
use proptest::prelude::*;
use std::collections::BTreeMap;

const FULL: &[u8] = include_bytes!("fixtures/cargo/Capture_Full-0.3.1-beta.2+build.5.body");
const MINIMAL: &[u8] = include_bytes!("fixtures/cargo/capture-minimal-1.0.0.body");

/// Feeds `body` cut at `cuts`; merges adjacent CrateData. The error, if any, and the events.
fn parse_cut(body: &[u8], cuts: &[usize], limits: Limits) -> (Result<(), PublishError>, Vec<Event>) {
    let mut parser = FrameParser::new(limits);
    let mut events = Vec::new();
    let mut from = 0;
    let mut sorted = cuts.to_vec();
    sorted.sort_unstable();
    for cut in sorted.into_iter().chain(std::iter::once(body.len())) {
        let cut = cut.clamp(from, body.len());
        if let Err(e) = parser.feed(&body[from..cut], &mut events) {
            return (Err(e), merge(events));
        }
        from = cut;
    }
    (parser.finish(), merge(events))
}

fn merge(events: Vec<Event>) -> Vec<Event> {
    let mut merged: Vec<Event> = Vec::new();
    for event in events {
        match (merged.last_mut(), event) {
            (Some(Event::CrateData(prev)), Event::CrateData(more)) => prev.extend(more),
            (_, event) => merged.push(event),
        }
    }
    merged
}

fn body(json: &[u8], krate: &[u8]) -> Vec<u8> {
    let mut b = (json.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(json);
    b.extend_from_slice(&(krate.len() as u32).to_le_bytes());
    b.extend_from_slice(krate);
    b
}

fn crate_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_-]{0,63}".prop_filter("not reserved", |n| CrateName::parse(n).is_some())
}

fn version() -> impl Strategy<Value = String> {
    (0u64..1000, 0u64..1000, 0u64..1000, proptest::option::of("[a-z][a-z0-9]{0,6}(\\.[1-9][0-9]{0,2})?"), proptest::option::of("[a-z0-9]{1,8}"))
        .prop_map(|(a, b, c, pre, build)| {
            let mut v = format!("{a}.{b}.{c}");
            if let Some(pre) = pre {
                v.push('-');
                v.push_str(&pre);
            }
            if let Some(build) = build {
                v.push('+');
                v.push_str(&build);
            }
            v
        })
}

fn dep() -> impl Strategy<Value = PublishDep> {
    (
        crate_name(),
        proptest::option::of(crate_name()),
        prop_oneof![Just("^1".to_owned()), Just(">=0.2, <0.4".to_owned()), Just("=1.2.3-beta.1".to_owned()), Just("*".to_owned()), Just("~2.7.0".to_owned())],
        proptest::collection::vec("[a-z][a-z0-9_-]{0,8}", 0..3),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(prop_oneof![Just("cfg(unix)".to_owned()), Just("x86_64-pc-windows-msvc".to_owned())]),
        prop_oneof![Just("normal"), Just("dev"), Just("build")],
        proptest::option::of(Just("https://github.com/rust-lang/crates.io-index".to_owned())),
    )
        .prop_map(|(name, alias, version_req, features, optional, default_features, target, kind, registry)| PublishDep {
            name,
            explicit_name_in_toml: alias,
            version_req,
            features,
            optional,
            default_features,
            target,
            kind: Some(kind.to_owned()),
            registry,
            ..Default::default()
        })
}

fn metadata() -> impl Strategy<Value = PublishMetadata> {
    let feature_value = prop_oneof!["[a-z][a-z0-9_]{0,6}", "dep:[a-z][a-z0-9_]{0,6}", "[a-z][a-z0-9]{0,6}\\??/[a-z][a-z0-9]{0,6}"];
    (
        crate_name(),
        version(),
        proptest::collection::vec(dep(), 0..6),
        proptest::collection::btree_map("[a-z][a-z0-9_]{0,6}", proptest::collection::vec(feature_value, 0..4), 0..6),
        proptest::option::of("[ -~]{0,40}"),
        proptest::option::of("[a-z]{1,10}"),
        proptest::option::of(prop_oneof![Just("1.70".to_owned()), Just("1.56.1".to_owned())]),
    )
        .prop_map(|(name, vers, deps, features, description, links, rust_version)| PublishMetadata {
            name,
            vers,
            deps,
            features,
            description,
            links,
            rust_version,
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_gives_the_same_events(cuts in proptest::collection::vec(0usize..5000, 0..40), which in any::<bool>()) {
        let body = if which { FULL } else { MINIMAL };
        let (whole, expected) = parse_cut(body, &[], Limits::default());
        prop_assert!(whole.is_ok());
        let (result, events) = parse_cut(body, &cuts, Limits::default());
        prop_assert!(result.is_ok());
        prop_assert_eq!(events, expected);
    }

    #[test]
    fn generated_bodies_round_trip(meta in metadata(), krate in proptest::collection::vec(any::<u8>(), 0..3000), cuts in proptest::collection::vec(0usize..4000, 0..10)) {
        let json = serde_json::to_vec(&meta).unwrap();
        let (result, events) = parse_cut(&body(&json, &krate), &cuts, Limits::default());
        prop_assert!(result.is_ok(), "{:?}", result);
        let mut expected = vec![Event::Metadata(meta.clone())];
        if !krate.is_empty() {
            expected.push(Event::CrateData(krate));
        }
        expected.push(Event::End);
        prop_assert_eq!(events, expected);
        // Generated metadata is what cargo could send: it validates, and its index line
        // round-trips through one line of JSON.
        prop_assert_eq!(meta.validate(), Ok(()));
        let line = index::line_for(&meta, &"0".repeat(64));
        let text = index::to_json_line(&line);
        prop_assert!(!text.contains('\n'));
        prop_assert_eq!(serde_json::from_str::<IndexLine>(&text).unwrap(), line.clone());
        prop_assert_eq!(line.v.is_some(), line.features2.is_some());
        let all: usize = line.features.len() + line.features2.as_ref().map_or(0, BTreeMap::len);
        prop_assert_eq!(all, meta.features.len());
        prop_assert_eq!(line.deps.len(), meta.deps.len());
    }

    #[test]
    fn arbitrary_bodies_never_panic_and_stay_within_limits(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(0usize..600, 0..10),
        max_json in 0u32..300,
        max_crate in 0u64..300,
    ) {
        let limits = Limits { max_json, max_crate };
        let (result, events) = parse_cut(&data, &cuts, limits);
        let crate_bytes: usize = events.iter().map(|e| match e { Event::CrateData(d) => d.len(), _ => 0 }).sum();
        prop_assert!(crate_bytes as u64 <= max_crate);
        if data.len() >= 4 && u32::from_le_bytes(data[..4].try_into().unwrap()) > max_json {
            prop_assert!(matches!(result, Err(PublishError::TooLarge(_))));
            prop_assert!(events.is_empty());
        }
        if events.iter().any(|e| matches!(e, Event::Metadata(_))) {
            prop_assert!(u32::from_le_bytes(data[..4].try_into().unwrap()) <= max_json);
        }
        if result.is_ok() {
            // Whole: the body is exactly its two declared parts.
            let json_len = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
            let crate_len = u32::from_le_bytes(data[4 + json_len..8 + json_len].try_into().unwrap()) as usize;
            prop_assert_eq!(data.len(), 8 + json_len + crate_len);
            prop_assert_eq!(crate_bytes, crate_len);
            prop_assert_eq!(events.last(), Some(&Event::End));
        }
    }

    #[test]
    fn declared_lengths_beyond_the_limits_are_refused_at_once(json_len in any::<u32>(), crate_len in any::<u32>(), meta in metadata()) {
        let limits = Limits { max_json: 1 << 16, max_crate: 1 << 20 };
        let mut parser = FrameParser::new(limits);
        let mut events = Vec::new();
        let header = json_len.to_le_bytes();
        let result = parser.feed(&header, &mut events);
        prop_assert_eq!(result.is_err(), json_len > limits.max_json || json_len == 0);
        // With real metadata, the crate's declared length alone decides.
        let json = serde_json::to_vec(&meta).unwrap();
        let mut start = (json.len() as u32).to_le_bytes().to_vec();
        start.extend_from_slice(&json);
        start.extend_from_slice(&crate_len.to_le_bytes());
        let mut parser = FrameParser::new(limits);
        let mut events = Vec::new();
        let result = parser.feed(&start, &mut events);
        if u64::from(crate_len) > limits.max_crate {
            prop_assert!(matches!(result, Err(PublishError::TooLarge(_))));
        } else {
            prop_assert!(result.is_ok());
            prop_assert_eq!(parser.finish().is_ok(), crate_len == 0);
        }
    }

    #[test]
    fn index_paths_round_trip(name in crate_name()) {
        let n = CrateName::parse(&name).unwrap();
        let path = n.index_path();
        let back = name_from_index_path(&path).unwrap();
        prop_assert_eq!(back.as_str(), name.to_ascii_lowercase());
        prop_assert_eq!(back.index_path(), path.clone());
        // cargo asks for lower case only: another case names nothing.
        let upper = path.to_ascii_uppercase();
        if upper != path {
            prop_assert!(name_from_index_path(&upper).is_none());
        }
    }

    #[test]
    fn only_cargos_index_paths_name_a_crate(path in "[a-zA-Z0-9_./-]{0,20}") {
        if let Some(name) = name_from_index_path(&path) {
            prop_assert_eq!(name.index_path(), path);
        }
    }

    #[test]
    fn yanking_arbitrary_files_never_panics(lines in proptest::collection::vec(prop_oneof![
        "[ -~]{0,30}".prop_map(String::from),
        version().prop_map(|v| format!(r#"{{"name":"x","vers":"{v}","deps":[],"cksum":"00","features":{{}},"yanked":false}}"#)),
        version().prop_map(|v| format!(r#"{{"vers":"{v}","yanked":"no","extra":[1]}}"#)),
    ], 0..8), target in version(), yanked in any::<bool>()) {
        let file = lines.join("\n").into_bytes();
        let found = index::find_version(&file, &target);
        if let Some(new) = index::set_yanked(&file, &target, yanked) {
            prop_assert_eq!(new.split(|&b| b == b'\n').count(), file.split(|&b| b == b'\n').count());
            let differing = new.split(|&b| b == b'\n').zip(file.split(|&b| b == b'\n')).filter(|(a, b)| a != b).count();
            prop_assert!(differing <= 1);
            if found.is_some() {
                prop_assert_eq!(index::find_version(&new, &target).map(|l| l.yanked), Some(yanked));
            }
        } else {
            prop_assert!(found.is_none());
        }
    }

    #[test]
    fn validation_never_panics(json in "\\{\"name\":\"[ -~]{0,10}\",\"vers\":\"[0-9.a-z+-]{0,10}\",\"deps\":\\[\\{\"name\":\"[ -~]{0,6}\",\"version_req\":\"[ -~]{0,8}\",\"kind\":\"[a-z]{0,6}\"\\}\\],\"features\":\\{\"[ -~]{0,5}\":\\[\"[ -~]{0,8}\"\\]\\}\\}") {
        if let Ok(meta) = serde_json::from_str::<PublishMetadata>(&json) {
            let _ = meta.validate();
            let _ = index::to_json_line(&index::line_for(&meta, "00"));
        }
    }

    #[test]
    fn download_urls_without_markers_append(dl in "https://[a-z.]{1,20}(/[a-z]{1,8}){0,3}", name in crate_name(), v in version()) {
        prop_assert_eq!(index::download_url(&dl, &name, &v, "ab"), format!("{dl}/{name}/{v}/download"));
        let templated = format!("{dl}/{{lowerprefix}}/{{crate}}-{{version}}.crate");
        let expected = format!("{dl}/{}/{name}-{v}.crate", CrateName::parse(&name).unwrap().index_path().rsplit_once('/').unwrap().0);
        prop_assert_eq!(index::download_url(&templated, &name, &v, "ab"), expected);
    }
}
