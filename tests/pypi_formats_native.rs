//! The byte formats of PyPI (src/pypi/{digest,multipart,filename,metadata,wheel}.rs) against
//! what real clients produce (tests/fixtures/pypi, made by its generate.sh with twine 7,
//! uv publish, poetry publish, python -m build and Info-ZIP) and against hostile input.

use edgeregistry::pypi::digest::{DigestMismatch, Digests, Hasher};
use edgeregistry::pypi::filename::{self, DistFilename, DistKind};
use edgeregistry::pypi::metadata;
use edgeregistry::pypi::multipart::{self, Event, Limits, MultipartError, Parser};
use edgeregistry::pypi::wheel::{self, RangeSource, WheelError, WheelLimits};
use flate2::write::DeflateEncoder;
use flate2::Compression;
use futures::executor::block_on;
use std::cell::{Cell, RefCell};
use std::io::Write;

const WHEEL: &[u8] = include_bytes!("fixtures/pypi/tiny_pkg-0.1.0-py3-none-any.whl");
const SDIST: &[u8] = include_bytes!("fixtures/pypi/tiny_pkg-0.1.0.tar.gz");
const ZIP64_WHEEL: &[u8] = include_bytes!("fixtures/pypi/zip64-tiny_pkg-0.1.0-py3-none-any.zip");

/// The upload bodies as captured: (client, file kind, Content-Type, body).
fn captured() -> Vec<(&'static str, &'static str, &'static str, &'static [u8])> {
    macro_rules! body {
        ($client:literal, $kind:literal) => {
            (
                $client,
                $kind,
                include_str!(concat!("fixtures/pypi/", $client, "-", $kind, ".content-type")),
                include_bytes!(concat!("fixtures/pypi/", $client, "-", $kind, ".body")).as_slice(),
            )
        };
    }
    vec![body!("twine", "wheel"), body!("twine", "sdist"), body!("uv", "wheel"), body!("uv", "sdist"), body!("poetry", "wheel"), body!("poetry", "sdist")]
}

// ---------------------------------------------------------------------------------------
// digest.rs

#[test]
fn digests_match_known_vectors() {
    let d = Digests::of(b"abc");
    assert_eq!(d.sha256_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(d.md5_hex(), "900150983cd24fb0d6963f7d28e17f72");
    // Python's hashlib.blake2b(b"abc", digest_size=32), as pypi.org computes blake2_256.
    assert_eq!(d.blake2b_256_hex(), "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    assert_eq!(d.size, 3);
}

#[test]
fn hashing_in_pieces_equals_hashing_at_once() {
    let whole = Digests::of(WHEEL);
    for piece in [1, 7, 64, 1000] {
        let mut hasher = Hasher::new();
        WHEEL.chunks(piece).for_each(|c| hasher.update(c));
        assert_eq!(hasher.finish(), whole, "pieces of {piece}");
    }
    assert_eq!(whole.size, WHEEL.len() as u64);
}

/// The value of the first text field `name` in a body.
fn field<'a>(events: &'a [Event], name: &str) -> Option<&'a str> {
    events.iter().find_map(|e| match e {
        Event::Field { name: n, value } if n == name => Some(value.as_str()),
        _ => None,
    })
}

#[test]
fn the_digests_twine_uv_and_poetry_send_verify() {
    let wheel = Digests::of(WHEEL);
    let sdist = Digests::of(SDIST);
    let mut md5_seen = false;
    for (client, kind, content_type, body) in captured() {
        let events = parse_whole(content_type, body).unwrap();
        let digests = if kind == "wheel" { &wheel } else { &sdist };
        let (sha256, md5, blake2) = (field(&events, "sha256_digest"), field(&events, "md5_digest"), field(&events, "blake2_256_digest"));
        assert!(sha256.is_some() && blake2.is_some(), "{client} sends sha256 and blake2");
        md5_seen |= md5.is_some();
        assert_eq!(digests.verify(sha256, md5, blake2), Ok(()), "{client} {kind}");
        assert_eq!(sha256, Some(digests.sha256_hex().as_str()));
        // Another file's digests do not verify.
        let other = Digests::of(b"other");
        assert_eq!(other.verify(sha256, None, None), Err(DigestMismatch { field: "sha256_digest" }), "{client}");
        assert_eq!(other.verify(None, None, blake2), Err(DigestMismatch { field: "blake2_256_digest" }), "{client}");
    }
    assert!(md5_seen, "poetry sends md5_digest");
}

#[test]
fn verify_accepts_hex_in_any_case_and_md5_in_url_safe_base64() {
    let d = Digests::of(b"abc");
    let upper = d.sha256_hex().to_uppercase();
    assert_eq!(d.verify(Some(&upper), None, None), Ok(()));
    assert_eq!(d.verify(None, Some("kAFQmDzST7DWlj99KOF_cg"), None), Ok(()));
    assert_eq!(d.verify(None, Some("kAFQmDzST7DWlj99KOF_cg=="), None), Ok(()));
    assert_eq!(d.verify(None, Some("900150983CD24FB0D6963F7D28E17F72"), None), Ok(()));
    // Not given: empty or blank fields are absent fields.
    assert_eq!(d.verify(Some(""), Some("  "), None), Ok(()));
    assert_eq!(d.verify(None, None, None), Ok(()));
}

#[test]
fn verify_names_the_field_that_does_not_match() {
    let d = Digests::of(b"abc");
    let good_sha = d.sha256_hex();
    let mismatch = |sha: Option<&str>, md5: Option<&str>, blake: Option<&str>| d.verify(sha, md5, blake).unwrap_err().field;
    assert_eq!(mismatch(Some(&"0".repeat(64)), None, None), "sha256_digest");
    assert_eq!(mismatch(Some("zz"), None, None), "sha256_digest");
    assert_eq!(mismatch(Some(&good_sha[..62]), None, None), "sha256_digest");
    assert_eq!(mismatch(Some(&good_sha), Some("d41d8cd98f00b204e9800998ecf8427e"), None), "md5_digest");
    assert_eq!(mismatch(Some(&good_sha), Some("not base64 !"), None), "md5_digest");
    // The md5's base64 form of another digest.
    assert_eq!(mismatch(None, Some("1B2M2Y8AsgTpgAmY7PhCfg"), None), "md5_digest");
    assert_eq!(mismatch(Some(&good_sha), None, Some(&good_sha)), "blake2_256_digest");
    assert_eq!(DigestMismatch { field: "sha256_digest" }.to_string(), "sha256_digest does not match the uploaded file");
}

// ---------------------------------------------------------------------------------------
// multipart.rs

/// All events of `body` fed in `chunk`-byte pieces, adjacent FileData merged.
fn parse_chunked(content_type: &str, body: &[u8], chunk: usize, limits: Limits) -> Result<Vec<Event>, MultipartError> {
    let boundary = multipart::boundary(content_type).expect("a multipart/form-data boundary");
    let mut parser = Parser::new(&boundary, limits);
    let mut events = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        parser.feed(piece, &mut events)?;
    }
    parser.finish()?;
    Ok(merge_file_data(events))
}

fn parse_whole(content_type: &str, body: &[u8]) -> Result<Vec<Event>, MultipartError> {
    parse_chunked(content_type, body, body.len(), Limits::default())
}

fn merge_file_data(events: Vec<Event>) -> Vec<Event> {
    let mut merged: Vec<Event> = Vec::new();
    for event in events {
        match (merged.last_mut(), event) {
            (Some(Event::FileData(prev)), Event::FileData(more)) => prev.extend(more),
            (_, event) => merged.push(event),
        }
    }
    merged
}

fn fields<'a>(events: &'a [Event], name: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Field { name: n, value } if n == name => Some(value.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn boundary_from_real_and_unusual_content_types() {
    for (_, _, content_type, _) in captured() {
        let b = multipart::boundary(content_type).unwrap();
        assert!(!b.is_empty() && content_type.ends_with(&b), "{content_type}");
    }
    assert_eq!(multipart::boundary("multipart/form-data; boundary=abc").as_deref(), Some("abc"));
    assert_eq!(multipart::boundary("Multipart/Form-Data;BOUNDARY=\"a b;c\"").as_deref(), Some("a b;c"));
    assert_eq!(multipart::boundary("multipart/form-data; charset=utf-8; boundary=xyz ").as_deref(), Some("xyz"));
    assert_eq!(multipart::boundary("multipart/form-data"), None);
    assert_eq!(multipart::boundary("multipart/form-data; boundary="), None);
    assert_eq!(multipart::boundary("multipart/form-data; boundary=\"\""), None);
    assert_eq!(multipart::boundary(&format!("multipart/form-data; boundary={}", "a".repeat(71))), None);
    assert_eq!(multipart::boundary("multipart/mixed; boundary=abc"), None);
    assert_eq!(multipart::boundary("application/x-www-form-urlencoded"), None);
}

#[test]
fn bodies_of_twine_uv_and_poetry_parse_to_their_fields_and_file() {
    for (client, kind, content_type, body) in captured() {
        let events = parse_whole(content_type, body).unwrap_or_else(|e| panic!("{client} {kind}: {e}"));
        let what = format!("{client} {kind}");
        assert_eq!(field(&events, ":action"), Some("file_upload"), "{what}");
        assert_eq!(field(&events, "protocol_version"), Some("1"), "{what}");
        assert_eq!(field(&events, "name"), Some("Tiny.Pkg"), "{what}");
        assert_eq!(field(&events, "version"), Some("0.1.0"), "{what}");
        assert_eq!(field(&events, "author"), Some("Zoë Example"), "{what}: UTF-8 text field");
        assert_eq!(field(&events, "filetype"), Some(if kind == "wheel" { "bdist_wheel" } else { "sdist" }), "{what}");
        // Repeated fields, in the order sent.
        assert_eq!(fields(&events, "classifiers"), ["Programming Language :: Python :: 3", "Operating System :: OS Independent"], "{what}");
        assert_eq!(fields(&events, "requires_dist"), ["requests (>=2.0)", "tomli ; python_version < \"3.11\""], "{what}");
        assert_eq!(fields(&events, "project_urls"), ["Homepage, https://example.org/tiny", "Source, https://example.org/tiny/src"], "{what}");
        assert!(field(&events, "description").unwrap().contains("A *tiny* package — with a non-ASCII line.\n\nSecond paragraph."), "{what}");
        // Exactly one file, `content`, whose bytes are the distribution's.
        let starts: Vec<_> = events.iter().filter(|e| matches!(e, Event::FileStart { .. })).collect();
        assert_eq!(starts.len(), 1, "{what}");
        let Event::FileStart { name, filename, content_type } = starts[0] else { unreachable!() };
        assert_eq!(name, "content", "{what}");
        let (want_name, want_bytes) = if kind == "wheel" { ("tiny_pkg-0.1.0-py3-none-any.whl", WHEEL) } else { ("tiny_pkg-0.1.0.tar.gz", SDIST) };
        assert_eq!(filename, want_name, "{what}");
        if client != "uv" {
            assert_eq!(content_type.as_deref(), Some("application/octet-stream"), "{what}");
        }
        let start = events.iter().position(|e| matches!(e, Event::FileStart { .. })).unwrap();
        assert_eq!(events.get(start + 1), Some(&Event::FileData(want_bytes.to_vec())), "{what}: the file's bytes");
        assert_eq!(events.get(start + 2), Some(&Event::FileEnd), "{what}");
    }
}

#[test]
fn a_boundary_split_at_every_offset_gives_the_same_events() {
    for (client, kind, content_type, body) in captured().into_iter().filter(|(_, kind, ..)| *kind == "wheel") {
        let whole = parse_whole(content_type, body).unwrap();
        let boundary = multipart::boundary(content_type).unwrap();
        for split in 0..=body.len() {
            let mut parser = Parser::new(&boundary, Limits::default());
            let mut events = Vec::new();
            parser.feed(&body[..split], &mut events).unwrap();
            parser.feed(&body[split..], &mut events).unwrap();
            parser.finish().unwrap();
            assert_eq!(merge_file_data(events), whole, "{client} {kind} split at {split}");
        }
        for chunk in [1, 2, 3, 5, 16, 77] {
            assert_eq!(parse_chunked(content_type, body, chunk, Limits::default()).unwrap(), whole, "{client} {kind} chunks of {chunk}");
        }
    }
}

#[test]
fn file_data_streams_out_as_it_arrives_and_the_parser_holds_little() {
    // A 1 MiB file fed in 64 KiB pieces: each piece's data (but a delimiter's length) comes out
    // right away.
    let boundary = "XyZ";
    let content: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let body = form(boundary, &[], Some(("content", "big-1.0.tar.gz", &content)));
    let mut parser = Parser::new(boundary, Limits::default());
    let mut received = 0usize;
    let mut fed = 0usize;
    for piece in body.chunks(64 * 1024) {
        let mut events = Vec::new();
        parser.feed(piece, &mut events).unwrap();
        fed += piece.len();
        received += events.iter().map(|e| if let Event::FileData(d) = e { d.len() } else { 0 }).sum::<usize>();
        if fed < body.len() {
            // Everything fed so far is out but the headers and at most a delimiter's length.
            assert!(fed - received < 200, "fed {fed}, out {received}");
        }
    }
    parser.finish().unwrap();
    assert_eq!(received, content.len());
}

/// A body of text fields and an optional file, as urllib3 writes one.
fn form(boundary: &str, texts: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in texts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    if let Some((name, filename, data)) = file {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn parse_form(body: &[u8], limits: Limits) -> Result<Vec<Event>, MultipartError> {
    parse_chunked("multipart/form-data; boundary=B0UND", body, 1 << 20, limits)
}

#[test]
fn file_content_that_looks_like_a_boundary_is_content() {
    // Boundary-like bytes that are no delimiter (`CRLF--B0UND`): at the start of the content
    // (no CRLF before), without its CRLF or hyphens, cut short.
    let content = "--B0UND\r\n\r\n--B0UN\r\n-B0UND\r\n\n--B0UND\r-B0UND\r\n\r\n\r";
    let body = form("B0UND", &[("a", "--B0UND")], Some(("content", "x-1.tar.gz", content.as_bytes())));
    for chunk in 1..20 {
        let events = parse_chunked("multipart/form-data; boundary=B0UND", &body, chunk, Limits::default()).unwrap();
        assert_eq!(field(&events, "a"), Some("--B0UND"));
        assert!(events.contains(&Event::FileData(content.as_bytes().to_vec())), "chunks of {chunk}: {events:?}");
    }
    // The boundary inside content (RFC 2046 forbids it) followed by neither CRLF nor `--`.
    let malformed = form("B0UND", &[], Some(("content", "x-1.tar.gz", b"abc\r\n--B0UNDARY")));
    assert!(matches!(parse_form(&malformed, Limits::default()), Err(MultipartError::Malformed(_))));
}

#[test]
fn empty_values_files_and_trailing_crlf_in_a_file_are_kept() {
    let body = form("B0UND", &[("empty", ""), ("comment", "line 1\r\nline 2\r\n")], Some(("content", "x-1.tar.gz", b"ends with CRLF\r\n")));
    let events = parse_form(&body, Limits::default()).unwrap();
    assert_eq!(field(&events, "empty"), Some(""));
    assert_eq!(field(&events, "comment"), Some("line 1\r\nline 2\r\n"));
    assert!(events.contains(&Event::FileData(b"ends with CRLF\r\n".to_vec())));
    let empty_file = form("B0UND", &[], Some(("content", "x-1.tar.gz", b"")));
    let events = parse_form(&empty_file, Limits::default()).unwrap();
    assert_eq!(events.len(), 2, "FileStart then FileEnd: {events:?}");
    assert_eq!(events[1], Event::FileEnd);
}

#[test]
fn preamble_epilogue_padding_and_header_spellings() {
    let body = b"This is the preamble.\r\n--B0UND  \t\r\ncontent-disposition: FORM-DATA; NAME=a\r\nX-Other: 1\r\n\r\nv\r\n--B0UND\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''caf%C3%A9-1.0.tar.gz; filename=\"fallback.tar.gz\"\r\n\r\nzz\r\n--B0UND--\r\nepilogue --B0UND garbage";
    let events = parse_form(body, Limits::default()).unwrap();
    assert_eq!(field(&events, "a"), Some("v"));
    assert!(events.contains(&Event::FileStart { name: "f".into(), filename: "café-1.0.tar.gz".into(), content_type: None }), "{events:?}");
    // Anything fed after the closing delimiter is ignored.
    let boundary = "B0UND";
    let mut parser = Parser::new(boundary, Limits::default());
    let mut events = Vec::new();
    parser.feed(body, &mut events).unwrap();
    let n = events.len();
    parser.feed(b"--B0UND\r\nContent-Disposition: form-data; name=\"late\"\r\n\r\nx\r\n", &mut events).unwrap();
    assert_eq!(events.len(), n);
    parser.finish().unwrap();
    // Escaped quotes in a quoted filename (RFC 7230 quoted-pair).
    let body = b"--B0UND\r\nContent-Disposition: form-data; name=\"content\"; filename=\"a\\\"b.whl\"\r\n\r\nx\r\n--B0UND--";
    let events = parse_form(body, Limits::default()).unwrap();
    assert!(matches!(&events[0], Event::FileStart { filename, .. } if filename == "a\"b.whl"), "{events:?}");
}

#[test]
fn truncated_bodies_are_errors_at_every_length() {
    let (_, _, content_type, body) = captured()[0];
    let boundary = multipart::boundary(content_type).unwrap();
    // The closing delimiter is `--boundary--`: every body cut before its last `-` is truncated.
    let close = body.len() - 2; // the trailing CRLF after the close delimiter is epilogue
    assert!(body[..close].ends_with(b"--"));
    for len in 0..close {
        let mut parser = Parser::new(&boundary, Limits::default());
        let mut events = Vec::new();
        let result = parser.feed(&body[..len], &mut events).and_then(|()| parser.finish());
        assert_eq!(result, Err(MultipartError::Truncated), "cut at {len} of {}", body.len());
    }
}

#[test]
fn limits_bound_parts_text_headers_and_preamble() {
    let many: Vec<(String, String)> = (0..11).map(|i| (format!("f{i}"), "v".to_string())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let limits = Limits { max_parts: 10, ..Limits::default() };
    assert_eq!(parse_form(&form("B0UND", &many[..10], None), limits).map(|e| e.len()), Ok(10));
    assert_eq!(parse_form(&form("B0UND", &many, None), limits), Err(MultipartError::TooManyParts { limit: 10 }));

    // Text fields together, not each.
    let limits = Limits { max_text_bytes: 100, ..Limits::default() };
    let sixty = "x".repeat(60);
    assert!(parse_form(&form("B0UND", &[("a", &sixty)], None), limits).is_ok());
    assert!(matches!(parse_form(&form("B0UND", &[("a", &sixty), ("b", &sixty)], None), limits), Err(MultipartError::TooLarge(_))));
    // Files do not count.
    let big = vec![b'y'; 10_000];
    assert!(parse_form(&form("B0UND", &[("a", &sixty)], Some(("content", "x-1.tar.gz", &big))), limits).is_ok());
    // A text field never ending is refused once over the limit, not buffered forever.
    let mut parser = Parser::new("B0UND", limits);
    let mut events = Vec::new();
    parser.feed(b"--B0UND\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n", &mut events).unwrap();
    let mut result = Ok(());
    for _ in 0..100 {
        result = parser.feed(&[b'z'; 10], &mut events);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(MultipartError::TooLarge(_))));

    let limits = Limits { max_header_bytes: 200, ..Limits::default() };
    let long_name = "n".repeat(300);
    assert!(matches!(parse_form(&form("B0UND", &[(&long_name, "v")], None), limits), Err(MultipartError::TooLarge(_))));
    // Headers that never end.
    let mut parser = Parser::new("B0UND", limits);
    let mut result = parser.feed(b"--B0UND\r\nContent-Disposition: form-data; name=\"a\"\r\n", &mut Vec::new());
    for _ in 0..100 {
        result = result.and_then(|()| parser.feed(b"X-Junk: 1234567\r\n", &mut Vec::new()));
    }
    assert!(matches!(result, Err(MultipartError::TooLarge(_))));
    // A preamble that never reaches a boundary.
    let mut preamble = vec![b'p'; 1000];
    preamble.extend(form("B0UND", &[("a", "b")], None));
    assert!(matches!(parse_form(&preamble, limits), Err(MultipartError::Malformed(_))));
}

#[test]
fn malformed_parts_are_errors_not_panics() {
    let cases: &[(&str, &[u8])] = &[
        ("no Content-Disposition", b"--B0UND\r\nContent-Type: text/plain\r\n\r\nv\r\n--B0UND--"),
        ("not form-data", b"--B0UND\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--B0UND--"),
        ("no name", b"--B0UND\r\nContent-Disposition: form-data; filename=\"a.whl\"\r\n\r\nv\r\n--B0UND--"),
        ("header without colon", b"--B0UND\r\nContent-Disposition: form-data; name=a\r\nbogus\r\n\r\nv\r\n--B0UND--"),
        ("two dispositions", b"--B0UND\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b\r\n\r\nv\r\n--B0UND--"),
        ("non-UTF-8 value", b"--B0UND\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\xfe\r\n--B0UND--"),
        ("non-UTF-8 header", b"--B0UND\r\nContent-Disposition: form-data; name=\"\xff\"\r\n\r\nv\r\n--B0UND--"),
        ("garbage after delimiter", b"--B0UNDgarbage\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--B0UND--"),
        ("bad filename*", b"--B0UND\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''%FF\r\n\r\nv\r\n--B0UND--"),
    ];
    for (what, body) in cases {
        for chunk in [1, 3, body.len()] {
            let result = parse_chunked("multipart/form-data; boundary=B0UND", body, chunk, Limits::default());
            assert!(matches!(result, Err(MultipartError::Malformed(_))), "{what}, chunks of {chunk}: {result:?}");
        }
    }
    let e = parse_form(cases[5].1, Limits::default()).unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
    assert!(MultipartError::Truncated.to_string().contains("truncated"));
}

// ---------------------------------------------------------------------------------------
// filename.rs

fn dist(project: &str, version: &str, kind: DistKind) -> Option<DistFilename> {
    Some(DistFilename { project: project.into(), version: version.into(), kind })
}

#[test]
fn parses_wheel_and_sdist_filenames() {
    use DistKind::*;
    assert_eq!(filename::parse("tiny_pkg-0.1.0-py3-none-any.whl"), dist("tiny_pkg", "0.1.0", Wheel));
    assert_eq!(filename::parse("tiny_pkg-0.1.0.tar.gz"), dist("tiny_pkg", "0.1.0", Sdist));
    assert_eq!(filename::parse("numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"), dist("numpy", "2.1.0", Wheel));
    assert_eq!(filename::parse("pkg-1.0-1build-py2.py3-none-any.whl"), dist("pkg", "1.0", Wheel), "build tag");
    assert_eq!(filename::parse("Pkg-1.0+local.7-py3-none-any.whl"), dist("Pkg", "1.0+local.7", Wheel));
    assert_eq!(filename::parse("pkg-1!2.0rc1.whl"), None, "a wheel needs its tags");
    assert_eq!(filename::parse("pkg-1!2.0rc1.tar.gz"), dist("pkg", "1!2.0rc1", Sdist));
    // Legacy sdists: the version follows the last hyphen (packaging.utils.parse_sdist_filename).
    assert_eq!(filename::parse("my-project-1.0.tar.gz"), dist("my-project", "1.0", Sdist));
    assert_eq!(filename::parse("Django-1.11.zip"), dist("Django", "1.11", Sdist));
    assert_eq!(DistKind::Wheel.packagetype(), "bdist_wheel");
    assert_eq!(DistKind::Sdist.packagetype(), "sdist");
}

#[test]
fn rejects_unsafe_and_non_distribution_filenames() {
    let long = format!("{}-1.0.tar.gz", "a".repeat(250));
    for bad in [
        "",
        "../x-1.0.tar.gz",
        "a/b-1.0.tar.gz",
        "a\\b-1.0.tar.gz",
        "x-1..0.tar.gz",
        ".hidden-1.0.tar.gz",
        "x-1.0.tar.gz\n",
        "x-1.0\0.tar.gz",
        "x-1.0.tar.bz2",
        "x-1.0.egg",
        "x-1.0.exe",
        "x-1.0.tar.gz.metadata",
        "x-.tar.gz",
        "-1.0.tar.gz",
        "x1.0.tar.gz",
        "x-1.0-py3-none.whl",
        "x-1.0-py3-none-any-extra-tag.whl",
        "x-1.0-build-py3-none-any.whl",
        "x__y-1.0-py3-none-any.whl",
        "x-1.0-py3-none-.whl",
        "café-1.0.tar.gz",
        "x y-1.0.tar.gz",
        "x-1.0%2F.tar.gz",
        long.as_str(),
    ] {
        assert_eq!(filename::parse(bad), None, "{bad:?}");
    }
    assert!(filename::parse(&format!("{}-1.0.tar.gz", "a".repeat(240))).is_some(), "255 bytes is fine");
}

#[test]
fn normalises_and_validates_project_names() {
    for (name, normal) in [("Tiny.Pkg", "tiny-pkg"), ("friendly-bard", "friendly-bard"), ("Friendly-Bard", "friendly-bard"), ("FRIENDLY-BARD", "friendly-bard"), ("friendly.bard", "friendly-bard"), ("friendly_bard", "friendly-bard"), ("friendly--bard", "friendly-bard"), ("FrIeNdLy-._.-bArD", "friendly-bard")] {
        assert_eq!(filename::normalize(name), normal, "{name}");
    }
    for good in ["a", "A1", "tiny_pkg", "Tiny.Pkg", "zope.interface", "a-b_c.d", "0"] {
        assert!(filename::valid_project_name(good), "{good}");
    }
    for bad in ["", "-a", "a-", "_a", "a.", "a b", "a/b", "..", "café", "a\n", "a+b"] {
        assert!(!filename::valid_project_name(bad), "{bad:?}");
    }
}

#[test]
fn compares_versions_as_pep_440_does() {
    for (a, b) in [("1.0", "1.0.0"), ("1.0", "1"), ("v1.0", "1.0"), ("V1.0", "1.0"), ("1.0a1", "1.0alpha1"), ("1.0b2", "1.0-beta.2"), ("1.0rc1", "1.0c1"), ("1.0rc1", "1.0pre1"), ("1.0rc", "1.0rc0"), ("1.0.post1", "1.0-1"), ("1.0.post1", "1.0r1"), ("1.0.post0", "1.0.post"), ("1.0.dev0", "1.0dev"), ("01.002", "1.2"), ("0!1.0", "1.0"), ("1.0+LOCAL.01", "1.0+local-1"), (" 1.0 ", "1.0")] {
        assert!(filename::same_version(a, b), "{a} = {b}");
        assert!(filename::same_version(b, a), "{b} = {a}");
    }
    for (a, b) in [("1.0", "1.0.1"), ("1.0", "1.0a1"), ("1.0", "1.0.post1"), ("1.0", "1.0.dev0"), ("1!1.0", "1.0"), ("1.0+a", "1.0"), ("1.0a1", "1.0b1"), ("1.0", "10"), ("1.0", "")] {
        assert!(!filename::same_version(a, b), "{a} != {b}");
    }
    // Not PEP 440: equal but for case.
    assert!(filename::same_version("2013-banana", "2013-BANANA"));
    assert!(!filename::same_version("2013-banana", "2013-apple"));
    assert_eq!(filename::normalize_version("1.0.0").as_deref(), Some("1.0.0"));
    assert_eq!(filename::normalize_version("1.0-RC.1").as_deref(), Some("1.0rc1"));
    assert_eq!(filename::normalize_version("not a version"), None);
}

// ---------------------------------------------------------------------------------------
// metadata.rs

#[test]
fn parses_the_metadata_of_a_real_wheel() {
    let bytes = block_on(wheel::core_metadata(&Bytes::new(WHEEL), WHEEL.len() as u64, &WheelLimits::default())).unwrap().unwrap();
    let m = metadata::parse(&bytes).unwrap();
    assert_eq!((m.metadata_version.as_str(), m.name.as_str(), m.version.as_str()), ("2.4", "Tiny.Pkg", "0.1.0"));
    assert_eq!(m.summary.as_deref(), Some("A tiny package for the edgeregistry format tests"));
    assert_eq!(m.license_expression.as_deref(), Some("MIT"));
    assert_eq!(m.author.as_deref(), Some("Zoë Example"));
    assert_eq!(m.author_email.as_deref(), Some("zoe@example.org"));
    assert_eq!(m.requires_python.as_deref(), Some(">=3.8"));
    assert_eq!(m.classifiers, ["Programming Language :: Python :: 3", "Operating System :: OS Independent"]);
    assert_eq!(m.requires_dist, ["requests (>=2.0)", "tomli ; python_version < \"3.11\""]);
    assert_eq!(m.project_urls, ["Homepage, https://example.org/tiny", "Source, https://example.org/tiny/src"]);
    assert_eq!(m.description_content_type.as_deref(), Some("text/markdown"));
    assert!(m.description.as_deref().unwrap().starts_with("# Tiny.Pkg\n\nA *tiny* package — with a non-ASCII line."));
}

#[test]
fn parses_legacy_folded_descriptions_and_crlf() {
    // distutils/setuptools before metadata 2.1 put the description in a folded header
    // (`rfc822_escape`: continuation lines start with 7 spaces and `|`).
    let legacy = "Metadata-Version: 1.2\nName: old\nVersion: 1.0\nSummary: Old\nHome-page: https://example.org\nLicense: BSD\n        Second license line\nDescription: First line\n       |\n       |    indented line\n       |last\nPlatform: UNKNOWN\nPlatform: linux\n";
    let m = metadata::parse(legacy.as_bytes()).unwrap();
    assert_eq!(m.description.as_deref(), Some("First line\n\n    indented line\nlast"));
    assert_eq!(m.license.as_deref(), Some("BSD\nSecond license line"));
    assert_eq!(m.home_page.as_deref(), Some("https://example.org"));
    assert_eq!(m.platforms, ["UNKNOWN", "linux"]);
    let crlf = "Metadata-Version: 2.1\r\nname: crlf\r\nVERSION: 2.0\r\nRequires-Dist: a\r\nRequires-Dist: b\r\n\r\nBody line 1\r\nBody line 2\r\n";
    let m = metadata::parse(crlf.as_bytes()).unwrap();
    assert_eq!((m.name.as_str(), m.version.as_str()), ("crlf", "2.0"));
    assert_eq!(m.requires_dist, ["a", "b"]);
    assert_eq!(m.description.as_deref(), Some("Body line 1\nBody line 2\n"));
    // A body wins over a Description header.
    let both = "Metadata-Version: 2.1\nName: x\nVersion: 1\nDescription: header\n\nbody\n";
    assert_eq!(metadata::parse(both.as_bytes()).unwrap().description.as_deref(), Some("body\n"));
}

#[test]
fn rejects_metadata_without_required_fields_or_not_utf8() {
    for bad in [&b"Name: x\nVersion: 1\n"[..], b"Metadata-Version: 2.1\nVersion: 1\n", b"Metadata-Version: 2.1\nName: x\n", b"Metadata-Version: 2.1\nName:\nVersion: 1\n", b"Metadata-Version: 2.1\nName: \xff\nVersion: 1\n", b"Metadata-Version: 2.1\nthis is no header\nName: x\nVersion: 1\n", b"", b"\n\nbody only"] {
        assert!(metadata::parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

// ---------------------------------------------------------------------------------------
// wheel.rs

/// A file in memory read by ranges, recording the reads.
struct Bytes<'a> {
    data: &'a [u8],
    reads: RefCell<Vec<(u64, u64)>>,
    fail: Cell<bool>,
}

impl<'a> Bytes<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bytes { data, reads: RefCell::new(Vec::new()), fail: Cell::new(false) }
    }

    fn bytes_read(&self) -> u64 {
        self.reads.borrow().iter().map(|(_, len)| len).sum()
    }
}

#[async_trait::async_trait(?Send)]
impl RangeSource for Bytes<'_> {
    async fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        if self.fail.get() {
            return Err("storage unavailable".into());
        }
        self.reads.borrow_mut().push((offset, len));
        let start = (offset as usize).min(self.data.len());
        let end = (offset.saturating_add(len) as usize).min(self.data.len());
        Ok(self.data[start..end].to_vec())
    }
}

fn metadata_of(zip: &[u8]) -> Result<Option<Vec<u8>>, WheelError> {
    metadata_with(zip, &WheelLimits::default())
}

fn metadata_with(zip: &[u8], limits: &WheelLimits) -> Result<Option<Vec<u8>>, WheelError> {
    block_on(wheel::core_metadata(&Bytes::new(zip), zip.len() as u64, limits))
}

const REAL_METADATA_START: &[u8] = b"Metadata-Version: 2.4\nName: Tiny.Pkg\nVersion: 0.1.0\n";

#[test]
fn extracts_metadata_from_a_real_wheel_and_its_zip64_twin() {
    let plain = metadata_of(WHEEL).unwrap().unwrap();
    assert!(plain.starts_with(REAL_METADATA_START), "{}", String::from_utf8_lossy(&plain));
    assert!(ZIP64_WHEEL.windows(4).any(|w| w == b"PK\x06\x06"), "the fixture has a zip64 end record");
    assert_eq!(metadata_of(ZIP64_WHEEL).unwrap().as_deref(), Some(plain.as_slice()));
}

/// One entry of a hand-built zip.
#[derive(Clone)]
struct ZipEntry {
    name: Vec<u8>,
    data: Vec<u8>,
    deflate: bool,
}

fn entry(name: &str, data: &[u8], deflate: bool) -> ZipEntry {
    ZipEntry { name: name.as_bytes().to_vec(), data: data.to_vec(), deflate }
}

/// What to get wrong when building a zip.
#[derive(Default, Clone, Copy)]
struct Lies {
    crc_xor: u32,
    uncompressed_size: Option<u32>,
    compressed_size: Option<u32>,
    local_offset: Option<u32>,
    method: Option<u16>,
    flags: u16,
    count: Option<u16>,
    local_name_differs: bool,
    comment: &'static [u8],
}

/// A zip archive: entries, then the central directory (lies applied to the last entry), then
/// the end record.
fn build_zip(entries: &[ZipEntry], lies: Lies) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let last = i + 1 == entries.len();
        let compressed = if e.deflate {
            let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
            enc.write_all(&e.data).unwrap();
            enc.finish().unwrap()
        } else {
            e.data.clone()
        };
        let crc = crc32fast::hash(&e.data) ^ if last { lies.crc_xor } else { 0 };
        let method: u16 = if last { lies.method } else { None }.unwrap_or(if e.deflate { 8 } else { 0 });
        let flags = if last { lies.flags } else { 0 };
        let usize_ = if last { lies.uncompressed_size } else { None }.unwrap_or(e.data.len() as u32);
        let csize = if last { lies.compressed_size } else { None }.unwrap_or(compressed.len() as u32);
        let offset = out.len() as u32;
        let mut local_name = e.name.clone();
        if last && lies.local_name_differs {
            local_name[0] ^= 1;
        }
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend(20u16.to_le_bytes());
        out.extend(flags.to_le_bytes());
        out.extend(method.to_le_bytes());
        out.extend([0u8; 4]); // time, date
        out.extend(crc.to_le_bytes());
        out.extend(csize.to_le_bytes());
        out.extend(usize_.to_le_bytes());
        out.extend((local_name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(&local_name);
        out.extend(&compressed);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        central.extend(flags.to_le_bytes());
        central.extend(method.to_le_bytes());
        central.extend([0u8; 4]);
        central.extend(crc.to_le_bytes());
        central.extend(csize.to_le_bytes());
        central.extend(usize_.to_le_bytes());
        central.extend((e.name.len() as u16).to_le_bytes());
        central.extend([0u8; 4]); // extra and comment lengths
        central.extend([0u8; 4]); // disk, internal attributes
        central.extend([0u8; 4]); // external attributes
        central.extend(if last { lies.local_offset } else { None }.unwrap_or(offset).to_le_bytes());
        central.extend(&e.name);
    }
    let central_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    let count = lies.count.unwrap_or(entries.len() as u16);
    out.extend(count.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(central_offset.to_le_bytes());
    out.extend((lies.comment.len() as u16).to_le_bytes());
    out.extend(lies.comment);
    out
}

fn wheel_entries(metadata: &[u8]) -> Vec<ZipEntry> {
    vec![entry("pkg/__init__.py", b"x = 1\n", true), entry("pkg-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n", true), entry("pkg-1.0.dist-info/METADATA", metadata, true)]
}

const META: &[u8] = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n";

#[test]
fn hand_built_wheels_stored_deflated_and_with_a_comment() {
    assert_eq!(metadata_of(&build_zip(&wheel_entries(META), Lies::default())).unwrap().as_deref(), Some(META));
    let mut stored = wheel_entries(META);
    stored[2].deflate = false;
    assert_eq!(metadata_of(&build_zip(&stored, Lies::default())).unwrap().as_deref(), Some(META));
    let commented = build_zip(&wheel_entries(META), Lies { comment: b"a comment PK\x05\x06 with a fake signature", ..Lies::default() });
    assert_eq!(metadata_of(&commented).unwrap().as_deref(), Some(META));
}

#[test]
fn wheels_without_metadata_give_none() {
    let no_dist_info = build_zip(&[entry("pkg/__init__.py", b"", false)], Lies::default());
    assert_eq!(metadata_of(&no_dist_info), Ok(None));
    let no_metadata = build_zip(&[entry("pkg-1.0.dist-info/WHEEL", b"w", false)], Lies::default());
    assert_eq!(metadata_of(&no_metadata), Ok(None));
    // Only the top-level METADATA counts.
    let nested = build_zip(&[entry("pkg-1.0.dist-info/sub/METADATA", META, false), entry("x/pkg-1.0.dist-info/METADATA", META, false)], Lies::default());
    assert_eq!(metadata_of(&nested), Ok(None));
    let empty = build_zip(&[], Lies::default());
    assert_eq!(metadata_of(&empty), Ok(None));
}

#[test]
fn metadata_is_read_by_ranges_never_whole() {
    // 2 MiB of incompressible data before the metadata.
    let mut state = 0x1234_5678u32;
    let noise: Vec<u8> = (0..2 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let mut entries = vec![entry("pkg/data.bin", &noise, false)];
    entries.extend(wheel_entries(META));
    let zip = build_zip(&entries, Lies::default());
    let src = Bytes::new(&zip);
    let got = block_on(wheel::core_metadata(&src, zip.len() as u64, &WheelLimits::default())).unwrap();
    assert_eq!(got.as_deref(), Some(META));
    assert!(src.bytes_read() < 70 * 1024 + 1024, "read {} of {} bytes: {:?}", src.bytes_read(), zip.len(), src.reads.borrow());
    assert!(src.reads.borrow().len() <= 4, "{:?}", src.reads.borrow());
}

#[test]
fn hostile_zips_are_errors() {
    let entries = wheel_entries(META);
    let invalid = |lies: Lies| -> WheelError { metadata_of(&build_zip(&entries, lies)).unwrap_err() };
    assert!(matches!(invalid(Lies { crc_xor: 1, ..Lies::default() }), WheelError::Invalid(e) if e.contains("CRC")));
    assert!(matches!(invalid(Lies { uncompressed_size: Some(10), ..Lies::default() }), WheelError::Invalid(_)), "claims less than it inflates to");
    assert!(matches!(invalid(Lies { uncompressed_size: Some(1000), ..Lies::default() }), WheelError::Invalid(_)), "claims more than it inflates to");
    assert!(matches!(invalid(Lies { compressed_size: Some(5), ..Lies::default() }), WheelError::Invalid(_)));
    assert!(matches!(invalid(Lies { compressed_size: Some(100_000), ..Lies::default() }), WheelError::Invalid(_)), "runs into the central directory");
    assert!(matches!(invalid(Lies { uncompressed_size: Some(u32::MAX - 1), ..Lies::default() }), WheelError::TooLarge(_)));
    assert!(matches!(invalid(Lies { local_offset: Some(3), ..Lies::default() }), WheelError::Invalid(_)), "local header elsewhere");
    assert!(matches!(invalid(Lies { local_offset: Some(1_000_000), ..Lies::default() }), WheelError::Invalid(_)), "local header past the end");
    assert!(matches!(invalid(Lies { local_name_differs: true, ..Lies::default() }), WheelError::Invalid(_)));
    assert!(matches!(invalid(Lies { count: Some(2), ..Lies::default() }), WheelError::Invalid(_)));
    assert!(matches!(invalid(Lies { count: Some(60000), ..Lies::default() }), WheelError::Invalid(_)));
    assert!(matches!(invalid(Lies { method: Some(12), ..Lies::default() }), WheelError::Unsupported(_)), "bzip2");
    assert!(matches!(invalid(Lies { flags: 1, ..Lies::default() }), WheelError::Unsupported(_)), "encrypted");
    let mut stored = entries.clone();
    stored[2].deflate = false;
    assert!(metadata_of(&build_zip(&stored, Lies { compressed_size: Some(META.len() as u32 - 1), ..Lies::default() })).is_err(), "stored with sizes that differ");

    // Two .dist-info directories, two METADATA entries.
    let mut two = entries.clone();
    two.push(entry("other-2.0.dist-info/METADATA", META, true));
    assert!(matches!(metadata_of(&build_zip(&two, Lies::default())), Err(WheelError::Invalid(e)) if e.contains("dist-info")));
    let mut twice = entries.clone();
    twice.push(entry("pkg-1.0.dist-info/METADATA", META, true));
    assert!(matches!(metadata_of(&build_zip(&twice, Lies::default())), Err(WheelError::Invalid(_))));

    // Not zips at all, and truncated ones.
    for junk in [&b""[..], b"PK", &[0u8; 100], SDIST, &WHEEL[..WHEEL.len() - 1], &WHEEL[1..], &WHEEL[..WHEEL.len() / 2]] {
        assert!(metadata_of(junk).is_err(), "{} bytes", junk.len());
    }
}

#[test]
fn a_zip_bomb_stops_at_the_limit() {
    // 16 MiB of zeros deflate to ~16 KB; the entry claims 100 bytes, then claims the truth.
    let zeros = vec![0u8; 16 * 1024 * 1024];
    let bomb = vec![entry("pkg-1.0.dist-info/METADATA", &zeros, true)];
    let liar = build_zip(&bomb, Lies { uncompressed_size: Some(100), ..Lies::default() });
    assert!(matches!(metadata_of(&liar), Err(WheelError::Invalid(_))));
    let honest = build_zip(&bomb, Lies::default());
    assert!(matches!(metadata_of(&honest), Err(WheelError::TooLarge(_))));
    let small = WheelLimits { max_metadata: 1024, ..WheelLimits::default() };
    assert!(matches!(metadata_with(&build_zip(&wheel_entries(&[b'a'; 2000]), Lies::default()), &small), Err(WheelError::TooLarge(_))));
    let small_directory = WheelLimits { max_central_directory: 100, ..WheelLimits::default() };
    assert!(matches!(metadata_with(WHEEL, &small_directory), Err(WheelError::TooLarge(_))));
}

#[test]
fn read_errors_and_short_reads_are_errors() {
    let src = Bytes::new(WHEEL);
    src.fail.set(true);
    let e = block_on(wheel::core_metadata(&src, WHEEL.len() as u64, &WheelLimits::default())).unwrap_err();
    assert_eq!(e, WheelError::Read("storage unavailable".into()));
    // A size larger than the file: the reads come back short.
    let e = block_on(wheel::core_metadata(&Bytes::new(WHEEL), WHEEL.len() as u64 + 10, &WheelLimits::default())).unwrap_err();
    assert!(matches!(e, WheelError::Read(_)), "{e:?}");
    assert!(e.to_string().starts_with("reading the wheel"));
}

#[test]
fn a_wheel_with_exactly_65535_entries_and_no_zip64_record() {
    // Python's zipfile writes zip64 end records only above 65535 entries: at exactly 65535
    // the classic record's all-ones count is the real count.
    let mut entries: Vec<ZipEntry> = (0..65534).map(|i| entry(&format!("d/{i}"), b"", false)).collect();
    entries.push(entry("pkg-1.0.dist-info/METADATA", META, true));
    let zip = build_zip(&entries, Lies::default());
    assert_eq!(metadata_of(&zip).unwrap().as_deref(), Some(META));
}

// ---------------------------------------------------------------------------------------
// Between the formats: what the hosted upload handler checks.

#[test]
fn filenames_are_checked_against_the_form_name_and_version() {
    let wheel = filename::parse("tiny_pkg-0.1.0-py3-none-any.whl").unwrap();
    assert_eq!(wheel.check("Tiny.Pkg", "0.1.0"), Ok(()));
    assert_eq!(wheel.check("tiny-pkg", "0.1"), Ok(()));
    assert_eq!(wheel.check("other", "0.1.0").unwrap_err(), "Start filename for \"other\" with \"other\".");
    assert_eq!(wheel.check("Tiny.Pkg", "0.2.0").unwrap_err(), "Version in filename should be \"0.2.0\" not \"0.1.0\".");
    let legacy = filename::parse("My.Project-1.0.zip").unwrap();
    assert_eq!(legacy.check("my-project", "1.0.0"), Ok(()));
    assert!(legacy.check("my-projects", "1.0").is_err());
}

#[test]
fn the_upload_form_gives_the_metadata_the_wheel_has() {
    let in_wheel = metadata::parse(&metadata_of(WHEEL).unwrap().unwrap()).unwrap();
    for (client, kind, content_type, body) in captured() {
        let events = parse_whole(content_type, body).unwrap();
        let form = metadata::from_upload_form(events.iter().filter_map(|e| match e {
            Event::Field { name, value } => Some((name.as_str(), value.as_str())),
            _ => None,
        }));
        let what = format!("{client} {kind}");
        assert_eq!((&form.metadata_version, &form.name, &form.version), (&in_wheel.metadata_version, &in_wheel.name, &in_wheel.version), "{what}");
        assert_eq!(form.summary, in_wheel.summary, "{what}");
        assert_eq!(form.author, in_wheel.author, "{what}");
        assert_eq!(form.author_email, in_wheel.author_email, "{what}");
        assert_eq!(form.requires_python, in_wheel.requires_python, "{what}");
        assert_eq!(form.license_expression, in_wheel.license_expression, "{what}");
        assert_eq!(form.description_content_type, in_wheel.description_content_type, "{what}");
        assert_eq!(form.classifiers, in_wheel.classifiers, "{what}");
        assert_eq!(form.requires_dist, in_wheel.requires_dist, "{what}");
        assert_eq!(form.project_urls, in_wheel.project_urls, "{what}");
        assert_eq!(form.description.as_deref().map(str::trim_end), in_wheel.description.as_deref().map(str::trim_end), "{what}");
    }
    assert_eq!(
        in_wheel.project_url_pairs(),
        [("Homepage".to_string(), "https://example.org/tiny".to_string()), ("Source".to_string(), "https://example.org/tiny/src".to_string())]
    );
}

#[test]
fn a_setuptools_wheel_of_metadata_2_1() {
    const LEGACY: &[u8] = include_bytes!("fixtures/pypi/legacy.pkg-2.0.post1-py3-none-any.whl");
    // setuptools before PEP 491's normalisation kept the `.` in the wheel's name.
    assert_eq!(filename::parse("legacy.pkg-2.0.post1-py3-none-any.whl"), dist("legacy.pkg", "2.0.post1", DistKind::Wheel));
    assert_eq!(filename::parse("legacy.pkg-2.0.post1.tar.gz"), dist("legacy.pkg", "2.0.post1", DistKind::Sdist));
    let m = metadata::parse(&metadata_of(LEGACY).unwrap().unwrap()).unwrap();
    assert_eq!((m.metadata_version.as_str(), m.name.as_str(), m.version.as_str()), ("2.1", "legacy.pkg", "2.0.post1"));
    assert_eq!(m.requires_dist, ["six", "ujson; extra == \"fast\""]);
    assert_eq!(m.provides_extra, ["fast"]);
    assert_eq!(m.classifiers, ["License :: OSI Approved :: MIT License"]);
    assert_eq!(m.description_content_type.as_deref(), Some("text/x-rst"));
    assert_eq!(m.description.as_deref().map(str::trim_end), Some("Line one\n\n  indented\nlast"));
    assert_eq!(m.summary, None);
}
