//! STAND-IN for cargo-formats' index.rs (dropped before merging cargo-formats): only what
//! the mirror uses, with the agreed signatures.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct IndexLine {
    pub name: String,
    pub vers: String,
    pub cksum: String,
    #[serde(default)]
    pub yanked: bool,
}

pub fn find_version(file: &[u8], version: &str) -> Option<IndexLine> {
    file.split(|b| *b == b'\n').filter_map(|l| serde_json::from_slice::<IndexLine>(l).ok()).find(|l| l.vers == version)
}

pub fn download_url(dl: &str, name: &str, version: &str, cksum_hex: &str) -> String {
    let markers = ["{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}"];
    if !markers.iter().any(|m| dl.contains(m)) {
        return format!("{}/{name}/{version}/download", dl.trim_end_matches('/'));
    }
    let prefix = super::names::prefix(name);
    dl.replace("{crate}", name)
        .replace("{version}", version)
        .replace("{prefix}", &prefix)
        .replace("{lowerprefix}", &prefix.to_ascii_lowercase())
        .replace("{sha256-checksum}", cksum_hex)
}
