//! A push parser for `multipart/form-data` (RFC 7578, with the body syntax of RFC 2046
//! §5.1.1), fed chunks as they arrive. A file part (one whose `Content-Disposition` has a
//! `filename`) goes out as `FileData` pieces as soon as they cannot be the start of a
//! delimiter, so the parser never holds a file; everything else (headers, text fields, the
//! number of parts) is bounded by `Limits`.
//!
//! The legacy upload API of PyPI (warehouse.pypa.io, "Upload API") is such a body: twine and
//! poetry (through urllib3 / requests-toolbelt) and uv (through reqwest) send the metadata as
//! text fields, repeated for list fields (`classifiers`, `requires_dist`, …), and the
//! distribution as the file part `content`.

use memchr::memmem;
use std::fmt;

/// The `boundary` parameter of a `multipart/form-data` content type (RFC 7578 §4.1), quoted
/// or bare, the parameter name in any case. `None` for another media type or a boundary RFC
/// 2046 §5.1.1 forbids (empty, longer than 70 characters).
pub fn boundary(content_type: &str) -> Option<String> {
    let (media_type, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !media_type.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = parameters(params).into_iter().find(|(name, _)| name.eq_ignore_ascii_case("boundary"))?.1;
    let valid = !boundary.is_empty() && boundary.len() <= 70 && !boundary.bytes().any(|b| b.is_ascii_control() || b >= 0x80);
    valid.then_some(boundary)
}

/// What a body may hold besides its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Parts, files included.
    pub max_parts: usize,
    /// All text (non-file) field values together.
    pub max_text_bytes: usize,
    /// The header block of one part, and the preamble before the first boundary.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    /// Room for any real upload: twine sends about 30 fields, a long description of a few
    /// hundred KB is the biggest of them (pypi.org's own cap on the description is well below
    /// 1 MiB of rendered text).
    fn default() -> Self {
        Limits { max_parts: 1000, max_text_bytes: 4 * 1024 * 1024, max_header_bytes: 16 * 1024 }
    }
}

/// One step through the body, in the order of the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole text field.
    Field { name: String, value: String },
    /// The start of a file part; its bytes follow as `FileData` until `FileEnd`.
    FileStart { name: String, filename: String, content_type: Option<String> },
    FileData(Vec<u8>),
    FileEnd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartError {
    /// Not multipart/form-data as RFC 7578 describes it.
    Malformed(String),
    TooManyParts { limit: usize },
    /// The text fields, or the headers of a part, exceed the limits.
    TooLarge(&'static str),
    /// The body ended before its closing boundary.
    Truncated,
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartError::Malformed(why) => write!(f, "malformed multipart/form-data body: {why}"),
            MultipartError::TooManyParts { limit } => write!(f, "the form has more than {limit} parts"),
            MultipartError::TooLarge(what) => write!(f, "{what} too large"),
            MultipartError::Truncated => write!(f, "the multipart/form-data body ended before its closing boundary (truncated upload?)"),
        }
    }
}

impl std::error::Error for MultipartError {}

#[derive(Debug)]
enum State {
    /// Before the first delimiter: anything not a delimiter is preamble, ignored.
    Preamble,
    /// After a delimiter: `--` closes the body, otherwise optional white space then CRLF.
    AfterDelimiter,
    /// `searched`: how far the end of the header block has been looked for already.
    Headers { searched: usize },
    Text { name: String, value: Vec<u8> },
    File,
    /// After the closing delimiter: the epilogue, ignored.
    Done,
}

/// The parser. Feed it the body in chunks of any size, then call `finish`.
pub struct Parser {
    /// `\r\n--boundary`: every delimiter but the first is preceded by the CRLF that belongs
    /// to it rather than to the part before (RFC 2046 §5.1.1).
    delimiter: Vec<u8>,
    /// Searches for `delimiter`; built once, the search runs over every byte of the body.
    finder: memmem::Finder<'static>,
    limits: Limits,
    state: State,
    /// Bytes received but not yet consumed; never more than a chunk plus a delimiter, a
    /// header block, or a text field.
    buf: Vec<u8>,
    /// Bytes of the preamble dropped so far.
    preamble: usize,
    parts: usize,
    text_bytes: usize,
}

impl Parser {
    pub fn new(boundary: &str, limits: Limits) -> Parser {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // The first delimiter may open the body, without a CRLF before it: pretend it had one.
        let finder = memmem::Finder::new(&delimiter).into_owned();
        Parser { delimiter, finder, limits, state: State::Preamble, buf: b"\r\n".to_vec(), preamble: 0, parts: 0, text_bytes: 0 }
    }

    /// Parses `chunk`, appending what it completes to `out`. After an error the parser is
    /// spent: the body must be refused.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), MultipartError> {
        if matches!(self.state, State::Done) {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(chunk);
        let mut pos = 0;
        while let Some(used) = self.step(buf.get(pos..).unwrap_or_default(), out)? {
            pos += used;
        }
        if !matches!(self.state, State::Done) {
            // The epilogue is never looked at: keep nothing of it.
            buf.drain(..pos.min(buf.len()));
            self.buf = buf;
        }
        Ok(())
    }

    /// End of the body: an error if the closing boundary never came (truncated upload).
    pub fn finish(self) -> Result<(), MultipartError> {
        match self.state {
            State::Done => Ok(()),
            _ => Err(MultipartError::Truncated),
        }
    }

    /// Consumes what it can of `rest` (the unconsumed buffer): `Some(bytes used)` to go on,
    /// `None` when it needs more input.
    fn step(&mut self, rest: &[u8], out: &mut Vec<Event>) -> Result<Option<usize>, MultipartError> {
        let delimiter_len = self.delimiter.len();
        match &mut self.state {
            State::Done => Ok(None),
            State::Preamble => {
                let found = self.finder.find(rest);
                // Keep what could be the start of a delimiter; drop the rest.
                let drop = found.unwrap_or_else(|| rest.len().saturating_sub(delimiter_len - 1));
                self.preamble += drop;
                if self.preamble > self.limits.max_header_bytes {
                    return Err(MultipartError::Malformed("no boundary delimiter where the body starts".into()));
                }
                if found.is_some() {
                    self.state = State::AfterDelimiter;
                    return Ok(Some(drop + delimiter_len));
                }
                Ok((drop > 0).then_some(drop))
            }
            State::AfterDelimiter => {
                if rest.starts_with(b"--") {
                    self.state = State::Done;
                    return Ok(None);
                }
                // RFC 2046 allows transport padding (linear white space) before the CRLF.
                let padding = rest.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
                let after = rest.get(padding..).unwrap_or_default();
                if after.starts_with(b"\r\n") {
                    self.start_part()?;
                    self.state = State::Headers { searched: 0 };
                    return Ok(Some(padding + 2));
                }
                let undecided = after.is_empty() || after == b"\r" || rest == b"-";
                if !undecided {
                    return Err(MultipartError::Malformed("a boundary delimiter is not followed by CRLF".into()));
                }
                if padding > self.limits.max_header_bytes {
                    return Err(MultipartError::TooLarge("the padding after a boundary"));
                }
                Ok(None)
            }
            State::Headers { searched } => {
                // An empty header block is a bare CRLF; otherwise headers end with CRLFCRLF.
                // The search resumes where the last one stopped, so headers fed byte by byte
                // are scanned once.
                let from = searched.saturating_sub(3);
                let end = if rest.starts_with(b"\r\n") {
                    Some((0, 2))
                } else {
                    rest.get(from..).and_then(|r| memmem::find(r, b"\r\n\r\n")).map(|at| (from + at, from + at + 4))
                };
                let Some((block_end, used)) = end else {
                    if rest.len() > self.limits.max_header_bytes {
                        return Err(MultipartError::TooLarge("the headers of a part"));
                    }
                    *searched = rest.len();
                    return Ok(None);
                };
                if block_end > self.limits.max_header_bytes {
                    return Err(MultipartError::TooLarge("the headers of a part"));
                }
                let headers = PartHeaders::parse(rest.get(..block_end).unwrap_or_default())?;
                match headers.filename {
                    Some(filename) => {
                        out.push(Event::FileStart { name: headers.name, filename, content_type: headers.content_type });
                        self.state = State::File;
                    }
                    None => self.state = State::Text { name: headers.name, value: Vec::new() },
                }
                Ok(Some(used))
            }
            State::File => {
                let (data_len, found) = content_end(&self.finder, &self.delimiter, rest);
                if data_len > 0 {
                    out.push(Event::FileData(rest.get(..data_len).unwrap_or_default().to_vec()));
                }
                if found {
                    out.push(Event::FileEnd);
                    self.state = State::AfterDelimiter;
                    return Ok(Some(data_len + delimiter_len));
                }
                Ok((data_len > 0).then_some(data_len))
            }
            State::Text { name, value } => {
                let (data_len, found) = content_end(&self.finder, &self.delimiter, rest);
                self.text_bytes += data_len;
                if self.text_bytes > self.limits.max_text_bytes {
                    return Err(MultipartError::TooLarge("the form's text fields"));
                }
                value.extend_from_slice(rest.get(..data_len).unwrap_or_default());
                if found {
                    let name = std::mem::take(name);
                    let value = String::from_utf8(std::mem::take(value)).map_err(|_| MultipartError::Malformed(format!("field {name:?} is not UTF-8")))?;
                    out.push(Event::Field { name, value });
                    self.state = State::AfterDelimiter;
                    return Ok(Some(data_len + delimiter_len));
                }
                Ok((data_len > 0).then_some(data_len))
            }
        }
    }

    fn start_part(&mut self) -> Result<(), MultipartError> {
        self.parts += 1;
        if self.parts > self.limits.max_parts {
            return Err(MultipartError::TooManyParts { limit: self.limits.max_parts });
        }
        Ok(())
    }
}

/// How much of `rest` is a part's content, and whether the delimiter ending it follows.
fn content_end(finder: &memmem::Finder<'_>, delimiter: &[u8], rest: &[u8]) -> (usize, bool) {
    match finder.find(rest) {
        Some(at) => (at, true),
        None => (safe_prefix(rest, delimiter), false),
    }
}

/// How much of `data` (which holds no whole delimiter) is surely content: all but a tail that
/// could be the beginning of a delimiter completed by the next chunk.
fn safe_prefix(data: &[u8], delimiter: &[u8]) -> usize {
    let from = data.len().saturating_sub(delimiter.len().saturating_sub(1));
    (from..data.len()).find(|&at| data.get(at..).is_some_and(|tail| delimiter.starts_with(tail))).unwrap_or(data.len())
}

/// The headers of one part that RFC 7578 gives meaning to.
struct PartHeaders {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

impl PartHeaders {
    fn parse(block: &[u8]) -> Result<PartHeaders, MultipartError> {
        let text = std::str::from_utf8(block).map_err(|_| MultipartError::Malformed("part headers are not UTF-8".into()))?;
        let mut disposition = None;
        let mut content_type = None;
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                return Err(MultipartError::Malformed(format!("bad part header line {line:?}")));
            };
            let value = value.trim();
            if name.trim().eq_ignore_ascii_case("content-disposition") {
                if disposition.replace(value).is_some() {
                    return Err(MultipartError::Malformed("a part has two Content-Disposition headers".into()));
                }
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.to_string());
            }
        }
        let disposition = disposition.ok_or_else(|| MultipartError::Malformed("a part has no Content-Disposition".into()))?;
        let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
        if !kind.trim().eq_ignore_ascii_case("form-data") {
            return Err(MultipartError::Malformed(format!("Content-Disposition {:?} is not form-data", kind.trim())));
        }
        let params = parameters(params);
        let find = |key: &str| params.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone());
        let name = find("name").ok_or_else(|| MultipartError::Malformed("a part has no name".into()))?;
        // RFC 7578 §4.2: `filename*` (RFC 5987) is not to be used, but reqwest and urllib3 1.x
        // send it for non-ASCII names; it wins over `filename` when both are there.
        let filename = match find("filename*") {
            Some(extended) => Some(decode_ext_value(&extended).ok_or_else(|| MultipartError::Malformed("bad filename* parameter".into()))?),
            None => find("filename"),
        };
        Ok(PartHeaders { name, filename, content_type })
    }
}

/// The `;`-separated `key=value` parameters of a header (RFC 7231 §3.1.1.1), values quoted
/// (with `\` escapes, RFC 7230 §3.2.6) or bare. Keys are returned as written.
fn parameters(params: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = params.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ';' || c.is_whitespace()).is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ';')).collect();
        if key.trim().is_empty() && chars.peek().is_none() {
            return out;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue; // a parameter without a value: ignored
        }
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        // Only `\"` and `\\` are escapes here: browsers and urllib3 2.x put
                        // Windows paths' backslashes in quoted strings unescaped.
                        match chars.peek() {
                            Some('"') | Some('\\') => value.extend(chars.next()),
                            _ => value.push('\\'),
                        }
                    }
                    c => value.push(c),
                }
            }
            while chars.next_if(|c| *c != ';').is_some() {}
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ';')).collect::<String>().trim().to_string();
        }
        out.push((key.trim().to_string(), value));
    }
}

/// An RFC 5987 `ext-value`: `charset'language'percent-encoded`, UTF-8 or ISO-8859-1.
fn decode_ext_value(value: &str) -> Option<String> {
    let mut fields = value.splitn(3, '\'');
    let charset = fields.next()?;
    let _language = fields.next()?;
    let encoded = fields.next()?;
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_prefix_keeps_a_possible_delimiter_start() {
        let delim = b"\r\n--abc";
        assert_eq!(safe_prefix(b"hello", delim), 5);
        assert_eq!(safe_prefix(b"hello\r", delim), 5);
        assert_eq!(safe_prefix(b"hello\r\n-", delim), 5);
        assert_eq!(safe_prefix(b"hello\r\nx", delim), 8);
        assert_eq!(safe_prefix(b"he\rllo\r\n--ab", delim), 6);
    }

    #[test]
    fn parameters_quoted_and_bare() {
        let p = parameters(r#" name="a;b"; filename=x.whl; Q="say \"hi\"""#);
        assert_eq!(p, vec![("name".into(), "a;b".into()), ("filename".into(), "x.whl".into()), ("Q".into(), "say \"hi\"".into())]);
    }
}
