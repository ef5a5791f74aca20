//! JSON from requests and upstreams under a memory bound.
//!
//! A `serde_json::Value` tree costs tens of bytes per value, so a small body can become a huge
//! tree (3 MB of `[0,0,…]` is 1.5 million values). Documents are parsed into typed structs
//! where they can be (serde skips what a struct does not name without building anything), and
//! wherever a `Value` tree must be built, [`check_complexity`] first counts the values in one
//! pass over the bytes, allocating nothing, and refuses a body that has too many.

use serde::de::DeserializeOwned;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// More values than the caller allows.
    TooComplex { limit: usize },
    /// Not JSON, or not the expected shape; the parser's message.
    Malformed(String),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::TooComplex { limit } => write!(f, "JSON document has more than {limit} values"),
            JsonError::Malformed(m) => write!(f, "malformed JSON: {m}"),
        }
    }
}

/// An upper bound on the number of values a `Value` tree of `bytes` would hold: every
/// container, separator and key/value colon outside strings counts. Linear, allocation-free,
/// and never fails (malformed input is the parser's to refuse).
pub fn value_count(bytes: &[u8]) -> usize {
    let mut count = 1;
    let mut in_string = false;
    let mut string_end = StringEnd::default();
    for &b in bytes {
        if in_string {
            in_string = !string_end.closes(b);
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' | b',' | b':' => count += 1,
            _ => {}
        }
    }
    count
}

/// Refuses `bytes` when a `Value` tree of it would hold more than `limit` values.
pub fn check_complexity(bytes: &[u8], limit: usize) -> Result<(), JsonError> {
    if value_count(bytes) > limit {
        return Err(JsonError::TooComplex { limit });
    }
    Ok(())
}

/// Parses `bytes` as `T` after [`check_complexity`]; for types holding `Value`s.
pub fn parse_bounded<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, JsonError> {
    check_complexity(bytes, limit)?;
    serde_json::from_slice(bytes).map_err(|e| JsonError::Malformed(e.to_string()))
}

/// Finds where a JSON string ends when it is scanned byte by byte (RFC 8259 §7: a `"` not
/// escaped by a backslash), for the streaming rewriters that never parse a whole document.
#[derive(Debug, Default, Clone, Copy)]
pub struct StringEnd {
    escaped: bool,
}

impl StringEnd {
    /// Whether `b`, the next byte inside a string, closes it.
    pub fn closes(&mut self, b: u8) -> bool {
        if self.escaped {
            self.escaped = false;
            false
        } else if b == b'\\' {
            self.escaped = true;
            false
        } else {
            b == b'"'
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number of values in a parsed tree, for comparison with the estimate.
    fn tree_size(v: &serde_json::Value) -> usize {
        1 + match v {
            serde_json::Value::Array(a) => a.iter().map(tree_size).sum(),
            serde_json::Value::Object(o) => o.values().map(tree_size).sum::<usize>() + o.len(),
            _ => 0,
        }
    }

    #[test]
    fn counts_bound_the_tree_and_ignore_strings() {
        for doc in [
            r#"[0,0,0,0]"#,
            r#"{"a":[1,2,{"b":null}],"c":"x,y:[{"}"#,
            r#"{"s":"\"quoted, [not counted]\\","t":[[],[[]]]}"#,
            r#"7"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(doc).unwrap();
            assert!(value_count(doc.as_bytes()) >= tree_size(&v), "{doc}");
        }
        assert_eq!(value_count(br#""[,,,,]""#), 1);
        assert!(value_count(&b"[0,".repeat(1000)) > 1000);
    }

    #[test]
    fn refuses_wide_documents_before_parsing() {
        let wide = format!("[{}0]", "0,".repeat(10_000));
        assert_eq!(parse_bounded::<serde_json::Value>(wide.as_bytes(), 1000), Err(JsonError::TooComplex { limit: 1000 }));
        assert!(parse_bounded::<serde_json::Value>(wide.as_bytes(), 100_000).is_ok());
        assert!(matches!(parse_bounded::<serde_json::Value>(b"{", 10), Err(JsonError::Malformed(_))));
    }
}
