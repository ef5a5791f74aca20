//! Upstream settings: one JSON variable per protocol (`NPM_UPSTREAMS`, `OCI_UPSTREAMS`, …),
//! in the shape below, with presets for the public registries and credentials taken
//! from secrets by name.
//!
//! ```json
//! {"upstreams": [
//!    {"id": "corp", "url": "https://npm.corp.example", "priority": 1,
//!     "scopeRules": [{"pattern": "@corp/*", "action": "include"}],
//!     "auth": {"type": "bearer", "tokenSecret": "CORP_NPM_TOKEN"}},
//!    {"preset": "npmjs", "priority": 10}],
//!  "cache": {"defaultTtlSeconds": 300}, "resilience": {"timeoutMs": 30000}}
//! ```
//! A bare array stands for `{"upstreams": [...]}`, and a bare preset name (`npmjs`,
//! `dockerhub`, `ghcr`, `quay`) for a single preset upstream.

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Protocol, VarSource};

/// How content is cached. Mutable metadata follows RFC 9111's freshness model: fresh for its
/// TTL, then served stale while it is revalidated (`stale-while-revalidate`, RFC 5861 §3) or
/// when the upstream fails (`stale-if-error`, RFC 5861 §4).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CachePolicy {
    pub enabled: bool,
    /// Mutable metadata: packuments, tags.
    pub default_ttl_seconds: u64,
    /// Immutable content: tarballs, blobs, digest manifests.
    pub immutable_ttl_seconds: u64,
    pub stale_while_revalidate: bool,
    /// How long past expiry a stale copy is served while it is revalidated in the background.
    pub stale_max_age_seconds: u64,
    /// How long "not found upstream" is remembered.
    pub negative_cache_ttl_seconds: u64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            enabled: true,
            default_ttl_seconds: 300,
            immutable_ttl_seconds: 2_592_000,
            stale_while_revalidate: true,
            stale_max_age_seconds: 3600,
            negative_cache_ttl_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resilience {
    /// How long a client with a cached copy (an expired one included) waits for a refresh
    /// before it is served that copy (`STALE`) while the refresh goes on in the background.
    pub deadline_ms: u64,
    /// How long one upstream request (and each read of its body) may take.
    pub timeout_ms: u64,
    pub max_retries: u32,
    pub retry_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    pub circuit_breaker_threshold: u32,
    pub circuit_breaker_reset_ms: u64,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            deadline_ms: 500,
            timeout_ms: 30_000,
            max_retries: 3,
            retry_delay_ms: 1000,
            retry_max_delay_ms: 30_000,
            circuit_breaker_threshold: 5,
            circuit_breaker_reset_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Include,
    Exclude,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ScopeRule {
    pub pattern: String,
    pub action: RuleAction,
}

/// Credentials sent to an upstream (and to its token realm).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum UpstreamAuth {
    #[default]
    None,
    Basic { username: String, password: String },
    Bearer(String),
    /// A custom header, e.g. `X-JFrog-Art-Api`.
    Header { name: String, value: String },
}

// Never print credentials.
impl std::fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpstreamAuth::None => "None",
            UpstreamAuth::Basic { .. } => "Basic(..)",
            UpstreamAuth::Bearer(_) => "Bearer(..)",
            UpstreamAuth::Header { .. } => "Header(..)",
        })
    }
}

/// One upstream registry, with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub id: String,
    /// Base URL without a trailing slash.
    pub url: String,
    /// Lower is tried first.
    pub priority: i64,
    pub enabled: bool,
    pub scope_rules: Vec<ScopeRule>,
    pub auth: UpstreamAuth,
    pub cache: CachePolicy,
    pub resilience: Resilience,
    /// Docker Hub: single-segment repository names live under `library/`.
    pub library_prefix: bool,
    /// Another origin the upstream's files are served from (PyPI: `filesUrl`, e.g.
    /// `https://files.pythonhosted.org`); it never gets the upstream's credentials.
    pub files_url: Option<String>,
}

impl Upstream {
    /// No rules admits everything; any matching exclude rejects; when include
    /// rules exist, one must match.
    pub fn admits(&self, resource: &str) -> bool {
        if self.scope_rules.iter().any(|r| r.action == RuleAction::Exclude && glob_match(&r.pattern, resource)) {
            return false;
        }
        let mut includes = self.scope_rules.iter().filter(|r| r.action == RuleAction::Include).peekable();
        includes.peek().is_none() || includes.any(|r| glob_match(&r.pattern, resource))
    }

    /// The scheme, host and port of the upstream: credentials only ever go there.
    pub fn origin(&self) -> &str {
        origin_of(&self.url)
    }
}

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url.get(after_scheme..).and_then(|rest| rest.find('/')) {
        Some(i) => url.get(..after_scheme + i).unwrap_or(url),
        None => url,
    }
}

/// The upstreams of one protocol, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProtocolUpstreams {
    pub enabled: bool,
    pub upstreams: Vec<Upstream>,
}

impl ProtocolUpstreams {
    /// Enabled upstreams that admit `resource`, by ascending priority.
    pub fn select(&self, resource: &str) -> Vec<&Upstream> {
        if !self.enabled {
            return Vec::new();
        }
        self.upstreams.iter().filter(|u| u.enabled && u.admits(resource)).collect()
    }

    /// The first enabled upstream, whatever the name (pass-through endpoints: npm search and
    /// audit).
    pub fn first(&self) -> Option<Upstream> {
        self.upstreams.iter().find(|u| u.enabled).cloned()
    }
}

/// Glob as in scope rules: `*` is any run of characters but `/`, `**` any run at all, `?` one
/// character but `/`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn tail(s: &[u8], n: usize) -> &[u8] {
        s.get(n..).unwrap_or_default()
    }
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => (0..=t.len()).any(|i| go(tail(p, 2), tail(t, i))),
            Some(b'*') => {
                let limit = t.iter().position(|&c| c == b'/').unwrap_or(t.len());
                (0..=limit).any(|i| go(tail(p, 1), tail(t, i)))
            }
            Some(b'?') => t.first().is_some_and(|c| *c != b'/') && go(tail(p, 1), tail(t, 1)),
            Some(&c) => t.first() == Some(&c) && go(tail(p, 1), tail(t, 1)),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

// ---- the JSON shape as written in wrangler vars ----

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSetting {
    Preset(String),
    List(Vec<RawUpstream>),
    Full(RawProtocol),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawProtocol {
    enabled: Option<bool>,
    upstreams: Vec<RawUpstream>,
    cache: Option<serde_json::Value>,
    resilience: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawUpstream {
    id: Option<String>,
    #[allow(dead_code)]
    name: Option<String>,
    preset: Option<String>,
    url: Option<String>,
    priority: Option<i64>,
    enabled: Option<bool>,
    scope_rules: Vec<ScopeRule>,
    auth: Option<RawAuth>,
    cache: Option<serde_json::Value>,
    resilience: Option<serde_json::Value>,
    library_prefix: Option<bool>,
    files_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawAuth {
    #[serde(rename = "type")]
    kind: String,
    username: Option<String>,
    password: Option<String>,
    password_secret: Option<String>,
    token: Option<String>,
    token_secret: Option<String>,
    header_name: Option<String>,
}

/// (url, library prefix) of a protocol's preset; each protocol lists its own
/// (`ProtocolModule::presets`).
fn preset(protocol: Protocol, name: &str) -> Option<(&'static str, bool)> {
    crate::protocols::preset(protocol, name).map(|p| (p.url, p.library_prefix))
}

/// Overlays the keys set in `over` onto `base` (both JSON objects of one settings struct).
fn merged<T: serde::de::DeserializeOwned + serde::Serialize>(
    base: &T,
    over: Option<&serde_json::Value>,
    what: &str,
) -> Result<T, ConfigError> {
    let mut value = serde_json::to_value(base).map_err(|e| ConfigError(format!("{what}: {e}")))?;
    let Some(over) = over else {
        return serde_json::from_value(value).map_err(|e| ConfigError(format!("{what}: {e}")));
    };
    let (Some(target), Some(src)) = (value.as_object_mut(), over.as_object()) else {
        return Err(ConfigError(format!("{what} must be a JSON object")));
    };
    for (k, v) in src {
        target.insert(k.clone(), v.clone());
    }
    serde_json::from_value(value).map_err(|e| ConfigError(format!("{what}: {e}")))
}

fn auth(raw: Option<RawAuth>, vars: &dyn VarSource, what: &str) -> Result<UpstreamAuth, ConfigError> {
    let Some(a) = raw else { return Ok(UpstreamAuth::None) };
    let secret = |inline: Option<String>, name: Option<String>, field: &str| -> Result<String, ConfigError> {
        if let Some(n) = name {
            return vars
                .var(&n)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError(format!("{what}: secret {n} (for {field}) is not set")));
        }
        inline.ok_or_else(|| ConfigError(format!("{what}: auth needs {field} or {field}Secret")))
    };
    Ok(match a.kind.to_ascii_lowercase().as_str() {
        "" | "none" => UpstreamAuth::None,
        "basic" => UpstreamAuth::Basic {
            username: a.username.ok_or_else(|| ConfigError(format!("{what}: basic auth needs username")))?,
            password: secret(a.password, a.password_secret, "password")?,
        },
        "bearer" => UpstreamAuth::Bearer(secret(a.token, a.token_secret, "token")?),
        "header" | "api-key" => UpstreamAuth::Header {
            name: a.header_name.ok_or_else(|| ConfigError(format!("{what}: header auth needs headerName")))?,
            value: secret(a.token, a.token_secret, "token")?,
        },
        other => return Err(ConfigError(format!("{what}: unknown auth type {other:?}"))),
    })
}

/// Reads `<PROTO>_UPSTREAMS`; `None` when unset.
pub fn from_vars(protocol: Protocol, vars: &dyn VarSource) -> Result<Option<ProtocolUpstreams>, ConfigError> {
    let var = format!("{}_UPSTREAMS", protocol.as_str().to_ascii_uppercase());
    let Some(text) = vars.var(&var).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let text = text.trim();
    let raw: RawSetting = if text.starts_with('{') || text.starts_with('[') {
        serde_json::from_str(text).map_err(|e| ConfigError(format!("{var}: {e}")))?
    } else {
        RawSetting::Preset(text.to_string())
    };
    let raw = match raw {
        RawSetting::Preset(p) => RawProtocol {
            upstreams: vec![RawUpstream { preset: Some(p), ..Default::default() }],
            ..Default::default()
        },
        RawSetting::List(upstreams) => RawProtocol { upstreams, ..Default::default() },
        RawSetting::Full(p) => p,
    };
    let cache = merged(&CachePolicy::default(), raw.cache.as_ref(), &format!("{var} cache"))?;
    let resilience = merged(&Resilience::default(), raw.resilience.as_ref(), &format!("{var} resilience"))?;
    let mut upstreams = Vec::new();
    for (i, u) in raw.upstreams.into_iter().enumerate() {
        let what = format!("{var} upstream {}", i + 1);
        let preset = match &u.preset {
            Some(p) => Some(preset(protocol, p).ok_or_else(|| ConfigError(format!("{what}: unknown preset {p:?}")))?),
            None => None,
        };
        let url = u
            .url
            .or_else(|| preset.map(|(url, _)| url.to_string()))
            .ok_or_else(|| ConfigError(format!("{what}: needs url or preset")))?;
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError(format!("{what}: url must be http(s), not {url:?}")));
        }
        let id = u.id.or(u.preset.clone()).unwrap_or_else(|| origin_of(&url).to_string());
        upstreams.push(Upstream {
            auth: auth(u.auth, vars, &what)?,
            cache: merged(&cache, u.cache.as_ref(), &format!("{what} cache"))?,
            resilience: merged(&resilience, u.resilience.as_ref(), &format!("{what} resilience"))?,
            library_prefix: u.library_prefix.unwrap_or(preset.is_some_and(|(_, lib)| lib)),
            files_url: u.files_url.map(|f| f.trim_end_matches('/').to_string()),
            id,
            url,
            priority: u.priority.unwrap_or(i as i64),
            enabled: u.enabled.unwrap_or(true),
            scope_rules: u.scope_rules,
        });
    }
    // Stable: equal priorities keep their written order.
    upstreams.sort_by_key(|u| u.priority);
    let mut ids: Vec<&str> = upstreams.iter().map(|u| u.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w.first() == w.last()) {
        return Err(ConfigError(format!("{var}: upstream ids must be unique")));
    }
    Ok(Some(ProtocolUpstreams { enabled: raw.enabled.unwrap_or(true), upstreams }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn globs() {
        assert!(glob_match("@company/*", "@company/tool"));
        assert!(!glob_match("@company/*", "@company/a/b"));
        assert!(glob_match("**", "a/b/c"));
        assert!(glob_match("lodash*", "lodash.merge"));
        assert!(!glob_match("lodash*", "react"));
        assert!(glob_match("library/?ginx", "library/nginx"));
    }

    #[test]
    fn presets_priorities_rules_and_secrets() {
        let v = vars(&[
            ("NPM_UPSTREAMS", r#"{"upstreams":[{"preset":"npmjs","priority":10},
                {"id":"corp","url":"https://corp.example/npm/","priority":1,
                 "scopeRules":[{"pattern":"@corp/*","action":"include"}],
                 "auth":{"type":"bearer","tokenSecret":"CORP_TOKEN"},"resilience":{"maxRetries":0}}],
               "cache":{"defaultTtlSeconds":60}}"#),
            ("CORP_TOKEN", "s3cret"),
        ]);
        let p = from_vars(Protocol::Npm, &v).unwrap().unwrap();
        assert_eq!(p.upstreams[0].id, "corp");
        assert_eq!(p.upstreams[0].url, "https://corp.example/npm");
        assert_eq!(p.upstreams[0].auth, UpstreamAuth::Bearer("s3cret".into()));
        assert_eq!(p.upstreams[0].resilience.max_retries, 0);
        assert_eq!(p.upstreams[0].resilience.timeout_ms, 30_000);
        assert_eq!(p.upstreams[0].resilience.deadline_ms, 500);
        assert_eq!(p.upstreams[0].cache.default_ttl_seconds, 60);
        assert_eq!(p.upstreams[1].url, "https://registry.npmjs.org");
        let ids = |name| p.select(name).iter().map(|u| u.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids("@corp/x"), ["corp", "npmjs"]);
        assert_eq!(ids("react"), ["npmjs"]);
        assert!(!format!("{:?}", p).contains("s3cret"), "credentials must not be printed");
    }

    #[test]
    fn shorthands_and_errors() {
        let p = from_vars(Protocol::Oci, &vars(&[("OCI_UPSTREAMS", "dockerhub")])).unwrap().unwrap();
        assert!(p.upstreams[0].library_prefix);
        assert!(from_vars(Protocol::Oci, &vars(&[])).unwrap().is_none());
        assert!(from_vars(Protocol::Npm, &vars(&[("NPM_UPSTREAMS", "nosuch")])).is_err());
        let missing = vars(&[("NPM_UPSTREAMS", r#"[{"url":"https://x","auth":{"type":"bearer","tokenSecret":"NOPE"}}]"#)]);
        assert!(from_vars(Protocol::Npm, &missing).unwrap_err().0.contains("NOPE"));
        let exclude = vars(&[("NPM_UPSTREAMS", r#"[{"url":"http://x","scopeRules":[{"pattern":"@corp/*","action":"exclude"}]}]"#)]);
        let p = from_vars(Protocol::Npm, &exclude).unwrap().unwrap();
        assert!(p.select("@corp/a").is_empty());
        assert_eq!(p.select("left-pad").len(), 1);
    }
}
