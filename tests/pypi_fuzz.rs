//! Fuzz-style property tests (proptest, natively) of the PyPI byte formats: the multipart
//! parser (any chunking of a body gives the events of one chunk; generated forms round-trip;
//! arbitrary bytes never panic), distribution filenames, versions, core metadata, the digest
//! check, and wheel METADATA extraction from mutated and truncated wheels (errors, never a
//! panic, and never a read or allocation beyond the limits).

use edgeregistry::pypi::digest::Digests;
use edgeregistry::pypi::multipart::{self, Event, Limits, Parser};
use edgeregistry::pypi::wheel::{self, RangeSource, WheelLimits};
use edgeregistry::pypi::{filename, metadata};
use futures::executor::block_on;
use proptest::prelude::*;
use std::cell::Cell;

const WHEEL: &[u8] = include_bytes!("fixtures/pypi/tiny_pkg-0.1.0-py3-none-any.whl");
const ZIP64_WHEEL: &[u8] = include_bytes!("fixtures/pypi/zip64-tiny_pkg-0.1.0-py3-none-any.zip");
const TWINE_BODY: &[u8] = include_bytes!("fixtures/pypi/twine-wheel.body");
const TWINE_CONTENT_TYPE: &str = include_str!("fixtures/pypi/twine-wheel.content-type");
const UV_BODY: &[u8] = include_bytes!("fixtures/pypi/uv-sdist.body");
const UV_CONTENT_TYPE: &str = include_str!("fixtures/pypi/uv-sdist.content-type");

/// Feeds `body` cut at `cuts` (sorted, deduplicated offsets); merges adjacent FileData.
fn parse_cut(boundary: &str, body: &[u8], cuts: &[usize], limits: Limits) -> Result<Vec<Event>, multipart::MultipartError> {
    let mut parser = Parser::new(boundary, limits);
    let mut events = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        let cut = cut.clamp(from, body.len());
        parser.feed(&body[from..cut], &mut events)?;
        from = cut;
    }
    parser.finish()?;
    let mut merged: Vec<Event> = Vec::new();
    for event in events {
        match (merged.last_mut(), event) {
            (Some(Event::FileData(prev)), Event::FileData(more)) => prev.extend(more),
            (_, event) => merged.push(event),
        }
    }
    Ok(merged)
}

fn cuts(max: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..=max, 0..40).prop_map(|mut v| {
        v.sort_unstable();
        v.dedup();
        v
    })
}

/// Bytes rich in what confuses a multipart parser: CR, LF, hyphens and the boundary's pieces.
fn tricky_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"-".to_vec()),
        Just(b"--".to_vec()),
        Just(b"--xYz".to_vec()),
        Just(b"\r\n--xY".to_vec()),
        Just(b"xYz".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..30).prop_map(|pieces| pieces.concat())
}

/// A part of a generated form: a text field or a file.
#[derive(Clone, Debug)]
enum Part {
    Text(String, String),
    File(String, String, Vec<u8>),
}

fn part() -> impl Strategy<Value = Part> {
    let name = "[a-z_:]{1,12}";
    prop_oneof![
        (name, "[^\u{0}]{0,40}").prop_map(|(n, v)| Part::Text(n, v)),
        (name, "[a-z0-9_.-]{1,20}", tricky_bytes()).prop_map(|(n, f, d)| Part::File(n, f, d)),
    ]
}

/// The body urllib3 would send for `parts`, and the events it must parse to. `None` when a
/// value happens to hold the delimiter (such a form cannot be written with this boundary).
fn encode(boundary: &str, parts: &[Part]) -> Option<(Vec<u8>, Vec<Event>)> {
    let delimiter = format!("\r\n--{boundary}");
    let mut body = Vec::new();
    let mut events = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let value: &[u8] = match part {
            Part::Text(name, value) => {
                body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes());
                events.push(Event::Field { name: name.clone(), value: value.clone() });
                value.as_bytes()
            }
            Part::File(name, filename, data) => {
                body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\r\n").as_bytes());
                events.push(Event::FileStart { name: name.clone(), filename: filename.clone(), content_type: None });
                if !data.is_empty() {
                    events.push(Event::FileData(data.clone()));
                }
                events.push(Event::FileEnd);
                data
            }
        };
        // The value's end must be the first delimiter after its start.
        let mut tail = value.to_vec();
        tail.extend_from_slice(delimiter.as_bytes());
        if tail.windows(delimiter.len()).position(|w| w == delimiter.as_bytes()) != Some(value.len()) {
            return None;
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Some((body, events))
}

/// A wheel in memory; reads are checked against the limits they must respect.
struct Source<'a> {
    data: &'a [u8],
    biggest_read: Cell<u64>,
}

#[async_trait::async_trait(?Send)]
impl RangeSource for Source<'_> {
    async fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        self.biggest_read.set(self.biggest_read.get().max(len));
        let start = (offset as usize).min(self.data.len());
        let end = (offset.saturating_add(len) as usize).min(self.data.len());
        Ok(self.data[start..end].to_vec())
    }
}

fn mutated(base: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (proptest::collection::vec((0..base.len(), any::<u8>()), 1..8), 0..=base.len()).prop_map(move |(flips, keep)| {
        let mut bytes = base.to_vec();
        for (at, value) in flips {
            bytes[at] = value;
        }
        // Sometimes cut short too.
        if keep > base.len() / 2 {
            bytes.truncate(keep);
        }
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_of_a_real_body_gives_the_same_events(twine_cuts in cuts(TWINE_BODY.len()), uv_cuts in cuts(UV_BODY.len())) {
        for (content_type, body, cuts) in [(TWINE_CONTENT_TYPE, TWINE_BODY, twine_cuts), (UV_CONTENT_TYPE, UV_BODY, uv_cuts)] {
            let boundary = multipart::boundary(content_type).unwrap();
            let whole = parse_cut(&boundary, body, &[], Limits::default()).unwrap();
            prop_assert_eq!(parse_cut(&boundary, body, &cuts, Limits::default()).unwrap(), whole);
        }
    }

    #[test]
    fn generated_forms_round_trip_in_any_chunking(parts in proptest::collection::vec(part(), 0..8), cuts in cuts(2000)) {
        let boundary = "xYz";
        if let Some((body, want)) = encode(boundary, &parts) {
            prop_assert_eq!(parse_cut(boundary, &body, &[], Limits::default()).unwrap(), want.clone());
            prop_assert_eq!(parse_cut(boundary, &body, &cuts, Limits::default()).unwrap(), want);
        }
    }

    #[test]
    fn arbitrary_bodies_never_panic_and_respect_limits(body in tricky_bytes(), prefix in proptest::option::of(part()), cuts in cuts(300)) {
        let mut full = Vec::new();
        if let Some(Some((encoded, _))) = prefix.map(|p| encode("xYz", &[p])) {
            full.extend(&encoded[..encoded.len() - 9]); // without the closing delimiter
        }
        full.extend(body);
        let limits = Limits { max_parts: 3, max_text_bytes: 64, max_header_bytes: 64 };
        if let Ok(events) = parse_cut("xYz", &full, &cuts, limits) {
            let parts = events.iter().filter(|e| matches!(e, Event::Field { .. } | Event::FileStart { .. })).count();
            prop_assert!(parts <= 3);
            let text: usize = events.iter().map(|e| if let Event::Field { value, .. } = e { value.len() } else { 0 }).sum();
            prop_assert!(text <= 64);
        }
    }

    #[test]
    fn content_types_never_panic(ct in "[ -~]{0,80}") {
        if let Some(b) = multipart::boundary(&ct) {
            prop_assert!(!b.is_empty() && b.len() <= 70);
        }
        let _ = multipart::boundary(&format!("multipart/form-data; {ct}"));
    }

    #[test]
    fn filenames_parse_to_safe_names_only(name in prop_oneof![any::<String>(), "[a-zA-Z0-9._+!/\\\\-]{0,40}(\\.whl|\\.tar\\.gz|\\.zip)"]) {
        if let Some(parsed) = filename::parse(&name) {
            prop_assert!(!name.contains('/') && !name.contains('\\') && !name.contains("..") && !name.starts_with('.'));
            prop_assert!(name.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert!(filename::valid_project_name(&parsed.project));
            let prefix = format!("{}-{}", parsed.project, parsed.version);
            prop_assert!(name.starts_with(&prefix), "{} {:?}", name, parsed);
        }
    }

    #[test]
    fn names_normalise_idempotently(name in prop_oneof![any::<String>(), "[a-zA-Z0-9._-]{1,30}"]) {
        let once = filename::normalize(&name);
        prop_assert_eq!(filename::normalize(&once), once.clone());
        prop_assert!(!once.contains("--") && !once.contains('_') && !once.contains('.'));
        if filename::valid_project_name(&name) {
            prop_assert!(filename::valid_project_name(&once));
        }
    }

    #[test]
    fn version_comparison_is_an_equivalence(a in "v?[0-9]{1,3}(\\.[0-9]{1,3}){0,3}((a|b|rc|alpha|c)[0-9]?)?(\\.post[0-9])?(\\.dev[0-9])?", b in "[0-9a-z.+!-]{0,12}") {
        prop_assert!(filename::same_version(&a, &a));
        prop_assert_eq!(filename::same_version(&a, &b), filename::same_version(&b, &a));
        let normal = filename::normalize_version(&a);
        prop_assert!(normal.is_some(), "{} is PEP 440", a);
        let normal = normal.unwrap();
        prop_assert!(filename::same_version(&a, &normal));
        prop_assert_eq!(filename::normalize_version(&normal), Some(normal.clone()));
        // Appending `.0` never changes the release.
        if !a.contains(|c: char| c.is_ascii_alphabetic() && c != 'v') {
            let longer = format!("{a}.0");
            prop_assert!(filename::same_version(&a, &longer), "{} {}", a, longer);
        }
    }

    #[test]
    fn metadata_and_digests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), text in "[ -~\n\r\t]{0,300}", digest in "[ -~]{0,70}") {
        let _ = metadata::parse(&bytes);
        if let Ok(m) = metadata::parse(text.as_bytes()) {
            prop_assert!(!m.name.is_empty() && !m.version.is_empty() && !m.metadata_version.is_empty());
        }
        let d = Digests::of(&bytes);
        let _ = d.verify(Some(&digest), Some(&digest), Some(&digest));
        prop_assert!(d.verify(Some(&d.sha256_hex()), Some(&d.md5_hex()), Some(&d.blake2b_256_hex())).is_ok());
    }

    #[test]
    fn mutated_wheels_give_errors_or_checked_metadata(bytes in prop_oneof![mutated(WHEEL), mutated(ZIP64_WHEEL)]) {
        let limits = WheelLimits { max_central_directory: 4096, max_metadata: 4096 };
        let src = Source { data: &bytes, biggest_read: Cell::new(0) };
        let result = block_on(wheel::core_metadata(&src, bytes.len() as u64, &limits));
        // The tail read is bounded by the zip comment's maximum, the others by the limits.
        prop_assert!(src.biggest_read.get() <= 22 + 0xffff + 20);
        if let Ok(Some(metadata)) = result {
            // What comes out passed the CRC-32 check: it is the real METADATA (a mutation can
            // make the zip unreadable, not make it say something else undetected).
            let original = Source { data: WHEEL, biggest_read: Cell::new(0) };
            let original = block_on(wheel::core_metadata(&original, WHEEL.len() as u64, &limits)).unwrap().unwrap();
            prop_assert_eq!(metadata, original);
        }
    }
}
