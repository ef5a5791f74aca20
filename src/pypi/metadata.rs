//! Core metadata (packaging.python.org "Core metadata specifications"): the `METADATA` file of
//! a wheel and `PKG-INFO` of an sdist, RFC 822-style headers with an optional body that holds
//! the description (metadata 2.1 and later).

/// The fields of core metadata an index shows; multiple-use fields in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreMetadata {
    pub metadata_version: String,
    pub name: String,
    pub version: String,
    pub dynamic: Vec<String>,
    pub platforms: Vec<String>,
    pub supported_platforms: Vec<String>,
    pub summary: Option<String>,
    /// The body, or the `Description` header when there is no body.
    pub description: Option<String>,
    pub description_content_type: Option<String>,
    pub keywords: Option<String>,
    pub home_page: Option<String>,
    pub download_url: Option<String>,
    pub author: Option<String>,
    pub author_email: Option<String>,
    pub maintainer: Option<String>,
    pub maintainer_email: Option<String>,
    pub license: Option<String>,
    pub license_expression: Option<String>,
    pub license_files: Vec<String>,
    pub classifiers: Vec<String>,
    pub requires_dist: Vec<String>,
    pub requires_python: Option<String>,
    pub requires_external: Vec<String>,
    /// `label, URL` as written.
    pub project_urls: Vec<String>,
    pub provides_extra: Vec<String>,
    pub provides_dist: Vec<String>,
    pub obsoletes_dist: Vec<String>,
}

/// Parses core metadata. Errors when it is not UTF-8 (the specification's encoding), when a
/// header line is not `Name: value`, or when `Metadata-Version`, `Name` or `Version` is
/// missing or empty. Unknown fields are ignored.
pub fn parse(bytes: &[u8]) -> Result<CoreMetadata, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("core metadata is not UTF-8: {e}"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut meta = CoreMetadata::default();
    // The header block ends at the first empty line; the rest is the body.
    let mut header_lines = Vec::new();
    let mut body = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        offset += line.len();
        let line = line.trim_end_matches('\n').trim_end_matches('\r');
        if line.is_empty() {
            body = text.get(offset..);
            break;
        }
        header_lines.push(line);
    }
    let mut lines = header_lines.into_iter().enumerate().peekable();
    while let Some((number, line)) = lines.next() {
        let (name, first) = line.split_once(':').ok_or_else(|| format!("core metadata line {} is not a header: {line:?}", number + 1))?;
        let name = name.trim();
        let is_description = name.eq_ignore_ascii_case("description");
        let mut value = first.trim().to_string();
        // RFC 822 folding: a line starting with white space continues the header.
        while let Some((_, next)) = lines.next_if(|(_, l)| l.starts_with([' ', '\t'])) {
            value.push('\n');
            value.push_str(&unfold(next, is_description));
        }
        meta.set(name, value);
    }
    if let Some(body) = body.filter(|b| !b.trim().is_empty()) {
        meta.description = Some(body.replace("\r\n", "\n"));
    }
    for (field, value) in [("Metadata-Version", &meta.metadata_version), ("Name", &meta.name), ("Version", &meta.version)] {
        if value.is_empty() {
            return Err(format!("core metadata has no {field}"));
        }
    }
    Ok(meta)
}

/// The core metadata of an upload form's text fields (warehouse.pypa.io "Upload API"): one
/// field per metadata field, named in lower case with `_` for `-` (`home_page`,
/// `requires_dist`, …), list fields repeated, and the plural `classifiers` and
/// `project_urls` as twine, uv and poetry send them. Fields of the upload itself
/// (`:action`, `filetype`, digests, …) are ignored; missing required fields stay empty.
pub fn from_upload_form<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> CoreMetadata {
    let mut meta = CoreMetadata::default();
    for (name, value) in fields {
        let header = match name {
            "classifiers" => "classifier".to_string(),
            "project_urls" => "project-url".to_string(),
            other => other.replace('_', "-"),
        };
        meta.set(&header, value.to_string());
    }
    meta
}

/// A continuation line without its folding white space. setuptools and distutils fold a
/// `Description` header as `\n       |line` (`rfc822_escape`): the `|` goes too.
fn unfold(line: &str, is_description: bool) -> String {
    let trimmed = line.trim_start_matches([' ', '\t']);
    if is_description {
        if let Some(rest) = trimmed.strip_prefix('|') {
            return rest.to_string();
        }
        // Older distutils indented by 8 spaces without a `|`: keep any deeper indentation.
        return line.strip_prefix("        ").unwrap_or(trimmed).to_string();
    }
    trimmed.trim_end().to_string()
}

impl CoreMetadata {
    /// The `Project-URL` fields as (label, URL) pairs, for a JSON API's `project_urls`; a
    /// field without a comma is skipped.
    pub fn project_url_pairs(&self) -> Vec<(String, String)> {
        self.project_urls.iter().filter_map(|field| field.split_once(',')).map(|(label, url)| (label.trim().to_string(), url.trim().to_string())).collect()
    }

    fn set(&mut self, name: &str, value: String) {
        let single = |slot: &mut Option<String>, value: String| {
            if !value.is_empty() {
                *slot = Some(value);
            }
        };
        let multi = |list: &mut Vec<String>, value: String| {
            if !value.is_empty() {
                list.push(value);
            }
        };
        match name.to_ascii_lowercase().as_str() {
            "metadata-version" => self.metadata_version = value,
            "name" => self.name = value,
            "version" => self.version = value,
            "dynamic" => multi(&mut self.dynamic, value),
            "platform" => multi(&mut self.platforms, value),
            "supported-platform" => multi(&mut self.supported_platforms, value),
            "summary" => single(&mut self.summary, value),
            // The body, when there is one, replaces it (see `parse`).
            "description" => single(&mut self.description, value),
            "description-content-type" => single(&mut self.description_content_type, value),
            "keywords" => single(&mut self.keywords, value),
            "home-page" => single(&mut self.home_page, value),
            "download-url" => single(&mut self.download_url, value),
            "author" => single(&mut self.author, value),
            "author-email" => single(&mut self.author_email, value),
            "maintainer" => single(&mut self.maintainer, value),
            "maintainer-email" => single(&mut self.maintainer_email, value),
            "license" => single(&mut self.license, value),
            "license-expression" => single(&mut self.license_expression, value),
            "license-file" => multi(&mut self.license_files, value),
            "classifier" => multi(&mut self.classifiers, value),
            "requires-dist" => multi(&mut self.requires_dist, value),
            "requires-python" => single(&mut self.requires_python, value),
            "requires-external" => multi(&mut self.requires_external, value),
            "project-url" => multi(&mut self.project_urls, value),
            "provides-extra" => multi(&mut self.provides_extra, value),
            "provides-dist" => multi(&mut self.provides_dist, value),
            "obsoletes-dist" => multi(&mut self.obsoletes_dist, value),
            _ => {}
        }
    }
}
