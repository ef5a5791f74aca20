//! Distribution filenames and the names and versions in them: packaging.python.org "Binary
//! distribution format" (PEP 427) and "Source distribution format" (PEP 625), "Names and
//! normalization" (PEP 503), and "Version specifiers" (PEP 440) for comparing versions.

/// The two kinds of distribution an index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DistKind {
    Wheel,
    Sdist,
}

impl DistKind {
    /// The `packagetype` of PyPI's upload form and JSON API.
    pub fn packagetype(self) -> &'static str {
        match self {
            DistKind::Wheel => "bdist_wheel",
            DistKind::Sdist => "sdist",
        }
    }
}

/// What a distribution's filename says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistFilename {
    /// The project name as the filename writes it (a wheel's has `_` for `-`).
    pub project: String,
    /// The version as the filename writes it.
    pub version: String,
    pub kind: DistKind,
}

impl DistFilename {
    /// Whether this file may be uploaded as `version` of `project` (the upload form's
    /// values), as warehouse checks it: the same name once normalised (PEP 503) and the same
    /// version (`same_version`). The error is a message for the client, worded like pypi.org's.
    pub fn check(&self, project: &str, version: &str) -> Result<(), String> {
        if normalize(&self.project) != normalize(project) {
            return Err(format!("Start filename for {project:?} with {:?}.", normalize(project).replace('-', "_")));
        }
        if !same_version(&self.version, version) {
            return Err(format!("Version in filename should be {version:?} not {:?}.", self.version));
        }
        Ok(())
    }
}

/// The longest filename accepted: a common file-system limit, and far above real ones.
const MAX_FILENAME_BYTES: usize = 255;

/// Parses a wheel (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`) or source
/// distribution (`{name}-{version}.tar.gz`, and the legacy `.zip`) filename. As in
/// `packaging.utils`, an sdist's version is what follows the last `-`. `None` for anything
/// else, and for names that are no safe path segment: only ASCII letters, digits and
/// `._-+!` (the characters of names, PEP 440 versions and tags), no leading `.`, no `..`, at
/// most 255 bytes.
pub fn parse(filename: &str) -> Option<DistFilename> {
    let safe = !filename.is_empty()
        && filename.len() <= MAX_FILENAME_BYTES
        && !filename.starts_with('.')
        && !filename.contains("..")
        && filename.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+!".contains(&b));
    if !safe {
        return None;
    }
    if let Some(stem) = filename.strip_suffix(".whl") {
        return parse_wheel(stem);
    }
    let stem = filename.strip_suffix(".tar.gz").or_else(|| filename.strip_suffix(".zip"))?;
    let (project, version) = stem.rsplit_once('-')?;
    if !valid_project_name(project) || version.is_empty() {
        return None;
    }
    Some(DistFilename { project: project.to_string(), version: version.to_string(), kind: DistKind::Sdist })
}

fn parse_wheel(stem: &str) -> Option<DistFilename> {
    let parts: Vec<&str> = stem.split('-').collect();
    let (project, version, build, tags) = match parts.as_slice() {
        [project, version, tags @ ..] if tags.len() == 3 => (*project, *version, None, tags),
        [project, version, build, tags @ ..] if tags.len() == 3 => (*project, *version, Some(*build), tags),
        _ => return None,
    };
    // The wheel spec escapes `-` in the name as `_`; `__` never results from normalisation.
    let name_ok = valid_project_name(project) && !project.contains("__");
    // A build tag starts with a digit.
    let build_ok = build.is_none_or(|b| b.bytes().next().is_some_and(|c| c.is_ascii_digit()));
    let tags_ok = tags.iter().all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'));
    (name_ok && build_ok && tags_ok && !version.is_empty()).then(|| DistFilename { project: project.to_string(), version: version.to_string(), kind: DistKind::Wheel })
}

/// PEP 503 normalisation: lower case, every run of `-`, `_` and `.` one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// packaging.python.org "Names and normalization":
/// `^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$`, case-insensitive.
pub fn valid_project_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    edge_ok(bytes.first()) && edge_ok(bytes.last()) && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether two versions are the same release as PEP 440 (and `packaging`'s
/// `canonicalize_version`, which pip, uv and warehouse compare with) sees it: case, a
/// leading `v`, the spelling of pre-, post- and dev-release segments, leading zeros and
/// trailing `.0`s of the release do not matter, so `1.0` = `1.0.0` = `V1` and
/// `1.0alpha1` = `1.0a1`. Versions that are not PEP 440 are the same only when equal but for
/// case and surrounding white space.
pub fn same_version(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Some(a), Some(b)) => a.canonical() == b.canonical(),
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

/// The PEP 440 normal form of a version ("Version specifiers", "Normalization"): `None` when
/// it is no PEP 440 version. Unlike `same_version`, trailing `.0`s stay: `1.0.0` is `1.0.0`.
pub fn normalize_version(version: &str) -> Option<String> {
    Version::parse(version).map(|v| v.normal())
}

/// A parsed PEP 440 version; numbers as decimal strings without leading zeros, so no number
/// is too big.
struct Version {
    epoch: String,
    release: Vec<String>,
    pre: Option<(&'static str, String)>,
    post: Option<String>,
    dev: Option<String>,
    local: Vec<String>,
}

impl Version {
    fn parse(text: &str) -> Option<Version> {
        let lower = text.trim().to_ascii_lowercase();
        let mut c = Cursor { s: lower.as_bytes(), at: 0 };
        c.eat("v");
        let first = c.number()?;
        let (epoch, first) = if c.eat("!") { (first, c.number()?) } else { ("0".to_string(), first) };
        let mut release = vec![first];
        while c.peek_is(b'.') && c.s.get(c.at + 1).is_some_and(u8::is_ascii_digit) {
            c.at += 1;
            release.push(c.number()?);
        }
        let pre = c.segment(&[("alpha", "a"), ("a", "a"), ("beta", "b"), ("b", "b"), ("preview", "rc"), ("pre", "rc"), ("rc", "rc"), ("c", "rc")]);
        let post = c.implicit_post().or_else(|| c.segment(&[("post", ""), ("rev", ""), ("r", "")]).map(|(_, n)| n));
        let dev = c.segment(&[("dev", "")]).map(|(_, n)| n);
        let mut local = Vec::new();
        if c.eat("+") {
            loop {
                let start = c.at;
                while c.s.get(c.at).is_some_and(u8::is_ascii_alphanumeric) {
                    c.at += 1;
                }
                let part = std::str::from_utf8(c.s.get(start..c.at)?).ok()?;
                if part.is_empty() {
                    return None;
                }
                // Numeric local segments compare as numbers.
                local.push(if part.bytes().all(|b| b.is_ascii_digit()) { strip_zeros(part) } else { part.to_string() });
                if !c.eat_separator() {
                    break;
                }
            }
        }
        (c.at == c.s.len()).then_some(Version { epoch, release, pre, post, dev, local })
    }

    fn render(&self, release: &[String]) -> String {
        let mut out = String::new();
        if self.epoch != "0" {
            out.push_str(&self.epoch);
            out.push('!');
        }
        out.push_str(&release.join("."));
        if let Some((label, n)) = &self.pre {
            out.push_str(label);
            out.push_str(n);
        }
        if let Some(n) = &self.post {
            out.push_str(".post");
            out.push_str(n);
        }
        if let Some(n) = &self.dev {
            out.push_str(".dev");
            out.push_str(n);
        }
        if !self.local.is_empty() {
            out.push('+');
            out.push_str(&self.local.join("."));
        }
        out
    }

    fn normal(&self) -> String {
        self.render(&self.release)
    }

    /// The normal form without trailing zero release components (keeping one).
    fn canonical(&self) -> String {
        let significant = self.release.iter().rposition(|n| n != "0").map_or(1, |last| last + 1);
        self.render(self.release.get(..significant).unwrap_or(&self.release))
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek_is(&self, b: u8) -> bool {
        self.s.get(self.at) == Some(&b)
    }

    fn eat(&mut self, literal: &str) -> bool {
        let found = self.s.get(self.at..).is_some_and(|rest| rest.starts_with(literal.as_bytes()));
        if found {
            self.at += literal.len();
        }
        found
    }

    fn eat_separator(&mut self) -> bool {
        self.eat("-") || self.eat("_") || self.eat(".")
    }

    fn number(&mut self) -> Option<String> {
        let start = self.at;
        while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(self.s.get(start..self.at)?).ok()?;
        (!digits.is_empty()).then(|| strip_zeros(digits))
    }

    /// `[-_.]?label[-_.]?N?` for the first label that matches, with its normal spelling; an
    /// absent number is 0.
    fn segment(&mut self, labels: &[(&str, &'static str)]) -> Option<(&'static str, String)> {
        let start = self.at;
        self.eat_separator();
        let Some(normal) = labels.iter().find(|(label, _)| self.eat(label)).map(|(_, normal)| *normal) else {
            self.at = start;
            return None;
        };
        let before_number = self.at;
        self.eat_separator();
        let number = self.number().unwrap_or_else(|| {
            self.at = before_number;
            "0".to_string()
        });
        Some((normal, number))
    }

    /// The implicit post-release `-N` (`1.0-1` is `1.0.post1`).
    fn implicit_post(&mut self) -> Option<String> {
        let start = self.at;
        if self.eat("-") {
            if let Some(n) = self.number() {
                return Some(n);
            }
        }
        self.at = start;
        None
    }
}

fn strip_zeros(digits: &str) -> String {
    let stripped = digits.trim_start_matches('0');
    if stripped.is_empty() { "0" } else { stripped }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        assert_eq!(normalize_version("V1.0-ALPHA.2").as_deref(), Some("1.0a2"));
        assert_eq!(normalize_version("1.0-1").as_deref(), Some("1.0.post1"));
        assert_eq!(normalize_version("1!01.02.post.dev").as_deref(), Some("1!1.2.post0.dev0"));
        assert_eq!(normalize_version("1.0+Ubuntu-01").as_deref(), Some("1.0+ubuntu.1"));
        assert_eq!(normalize_version("1.0.x"), None);
    }
}
