//! PLACEHOLDER until branch pypi-formats is merged (removed before the merge).
pub enum DistKind { Wheel, Sdist }
pub struct DistFilename { pub project: String, pub version: String, pub kind: DistKind }
pub fn parse(filename: &str) -> Option<DistFilename> {
    if filename.contains(['/', '\\']) || filename.contains("..") || filename.starts_with('.') || filename.len() > 255 || filename.chars().any(char::is_control) {
        return None;
    }
    if let Some(stem) = filename.strip_suffix(".whl") {
        let mut parts = stem.split('-');
        let project = parts.next()?.to_string();
        let version = parts.next()?.to_string();
        return Some(DistFilename { project, version, kind: DistKind::Wheel });
    }
    let stem = filename.strip_suffix(".tar.gz").or_else(|| filename.strip_suffix(".zip"))?;
    let (project, version) = stem.rsplit_once('-')?;
    Some(DistFilename { project: project.to_string(), version: version.to_string(), kind: DistKind::Sdist })
}
pub fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') { sep = true; continue; }
        if sep && !out.is_empty() { out.push('-'); }
        sep = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}
pub fn valid_project_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty() && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric) && b.last().is_some_and(u8::is_ascii_alphanumeric)
}
pub fn same_version(a: &str, b: &str) -> bool { a.trim_start_matches('v').eq_ignore_ascii_case(b.trim_start_matches('v')) }
