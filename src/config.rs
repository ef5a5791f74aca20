//! Settings from wrangler `[vars]` and secrets. Every value is a plain string variable so the
//! same names work in `wrangler.toml`, `.dev.vars`, the dashboard and native tests.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PUBLIC_URL` | public origin used in generated links, e.g. `https://registry.example.com` | the origin of each request |
//! | `ENABLED_PROTOCOLS` | comma list, or `all` | `all` (every implemented protocol) |
//! | `<PROTO>_BASE_PATH` | URL prefix of a protocol, e.g. `NPM_BASE_PATH=/npm`; `""` is honoured | `/npm`, `/oci`, … |
//! | `<PROTO>_FEATURES` | `publish=false,search=true` | every feature on |
//! | `ANONYMOUS_READ` | comma list of protocols readable without a token, `none`, or `all` | every protocol but `oci` |
//! | `MAX_BODY_BYTES` | cap on bodies a protocol must buffer to parse (npm publish JSON); at most 48 MiB, since such a body and its decoded tarball are held at once in the isolate's 128 MB | 32 MiB |
//! | `READ_ONLY` | `true` refuses every write through the storage hooks | `false` |
//! | `OCI_USER_NAMESPACES` | `true`: users push only to repositories under their own name (`alice/…`); admins and admin-granted scopes excepted | `false` |
//! | `NPM_DEFAULT_READONLY` | tokens made by `npm login`/`npm token create` are read-only | `false` |
//! | `PASSWORD_ITERATIONS` | PBKDF2-SHA256 iterations for stored passwords | 100000 |
//! | secret `ADMIN_TOKEN` | bootstrap credential for the admin API | none: admin API disabled |
//! | secret `JWT_SECRET` | HS256 key for OCI tokens | none: OCI tokens disabled |
//! | `<PROTO>_UPSTREAMS` | pull-through upstreams, JSON or a preset name (`upstream::config`) | none: hosted only |

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Oci,
    Npm,
    Maven,
    Cargo,
    Composer,
    Pypi,
    Rubygems,
}

impl Protocol {
    pub const ALL: [Protocol; 7] = [
        Protocol::Oci,
        Protocol::Npm,
        Protocol::Maven,
        Protocol::Cargo,
        Protocol::Composer,
        Protocol::Pypi,
        Protocol::Rubygems,
    ];

    /// Protocols this build serves (those with a module in `crate::protocols`); the others
    /// are refused in `ENABLED_PROTOCOLS`.
    pub fn implemented() -> Vec<Protocol> {
        crate::protocols::all().iter().map(|m| m.protocol()).collect()
    }

    pub fn is_implemented(&self) -> bool {
        crate::protocols::find(*self).is_some()
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Oci => "oci",
            Protocol::Npm => "npm",
            Protocol::Maven => "maven",
            Protocol::Cargo => "cargo",
            Protocol::Composer => "composer",
            Protocol::Pypi => "pypi",
            Protocol::Rubygems => "rubygems",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The resource type in scope strings: `npm:package:NAME:read`.
    pub fn resource_type(&self) -> &'static str {
        match self {
            Protocol::Oci => "repository",
            Protocol::Npm | Protocol::Composer | Protocol::Pypi => "package",
            Protocol::Maven => "artifact",
            Protocol::Cargo => "crate",
            Protocol::Rubygems => "gem",
        }
    }

    fn env_prefix(&self) -> String {
        self.as_str().to_ascii_uppercase()
    }
}

/// Default cap on bodies a handler must hold whole (npm publish).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;
/// Highest cap allowed: a publish body (N) and its decoded tarball (0.75 N) live at once, and
/// the isolate has 128 MB for every request it serves.
pub const LIMIT_MAX_BODY_BYTES: u64 = 48 * 1024 * 1024;

/// Where settings come from: the Worker's `Env`, or a map in tests.
pub trait VarSource {
    fn var(&self, name: &str) -> Option<String>;
}

impl VarSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

#[derive(Debug, Clone)]
pub struct ProtocolConfig {
    pub enabled: bool,
    /// URL prefix without a trailing slash; may be empty.
    pub base_path: String,
    pub anonymous_read: bool,
    pub features: BTreeMap<String, bool>,
}

impl ProtocolConfig {
    /// A missing feature flag means enabled.
    pub fn feature(&self, name: &str) -> bool {
        self.features.get(name).copied().unwrap_or(true)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub public_url: Option<String>,
    pub protocols: BTreeMap<Protocol, ProtocolConfig>,
    pub max_body_bytes: u64,
    pub read_only: bool,
    pub npm_default_readonly: bool,
    /// `OCI_USER_NAMESPACES`: repositories must be under the writer's own name.
    pub oci_user_namespaces: bool,
    pub password_iterations: u32,
    pub admin_token: Option<String>,
    pub jwt_secret: Option<String>,
    /// `STORE_SELFTEST`: the admin API may run the object-store conformance suite against the
    /// bucket (`POST /-/admin/selftest/store`); it writes and deletes under `selftest/`.
    pub store_selftest: bool,
    /// `EDGE_CACHE`: the tiers of the edge cache in front of storage (`memory`, `http`;
    /// default both, `off` for none).
    pub edge_cache: crate::platform::EdgeTiers,
    /// Pull-through upstreams by protocol, from `<PROTO>_UPSTREAMS` (see `upstream::config`).
    pub upstreams: BTreeMap<Protocol, std::rc::Rc<crate::upstream::ProtocolUpstreams>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "configuration error: {}", self.0)
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError(format!("{name} must be true or false, not {v:?}"))),
    }
}

fn parse_protocol_list(name: &str, v: &str) -> Result<Vec<Protocol>, ConfigError> {
    match v.trim() {
        "all" | "*" => Ok(Protocol::ALL.to_vec()),
        "none" | "" => Ok(vec![]),
        list => list
            .split(',')
            .map(|p| {
                Protocol::parse(p).ok_or_else(|| ConfigError(format!("{name}: unknown protocol {p:?}")))
            })
            .collect(),
    }
}

fn normalise_base_path(p: &str) -> String {
    let p = p.trim().trim_end_matches('/');
    if p.is_empty() {
        String::new()
    } else if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

impl Config {
    pub fn from_vars(vars: &dyn VarSource) -> Result<Config, ConfigError> {
        let get = |n: &str| vars.var(n).filter(|v| !v.trim().is_empty());
        let enabled = match get("ENABLED_PROTOCOLS") {
            None => Protocol::implemented(),
            Some(v) if v.trim() == "all" => Protocol::implemented(),
            Some(v) => {
                let list = parse_protocol_list("ENABLED_PROTOCOLS", &v)?;
                if let Some(p) = list.iter().find(|p| !p.is_implemented()) {
                    return Err(ConfigError(format!(
                        "ENABLED_PROTOCOLS: {} is not implemented in this build",
                        p.as_str()
                    )));
                }
                list
            }
        };
        let anonymous = match get("ANONYMOUS_READ") {
            None => Protocol::ALL
                .into_iter()
                .filter(|p| *p != Protocol::Oci)
                .collect(),
            Some(v) => parse_protocol_list("ANONYMOUS_READ", &v)?,
        };
        let mut protocols = BTreeMap::new();
        for p in Protocol::ALL {
            let prefix = p.env_prefix();
            // An explicit empty base path is honoured, so read it without the empty filter.
            let base_path = match vars.var(&format!("{prefix}_BASE_PATH")) {
                Some(v) => normalise_base_path(&v),
                None => format!("/{}", p.as_str()),
            };
            let mut features = BTreeMap::new();
            if let Some(list) = get(&format!("{prefix}_FEATURES")) {
                for item in list.split(',').filter(|s| !s.trim().is_empty()) {
                    let (k, v) = item.split_once('=').unwrap_or((item, "true"));
                    features.insert(k.trim().to_string(), parse_bool(&format!("{prefix}_FEATURES"), v)?);
                }
            }
            protocols.insert(
                p,
                ProtocolConfig {
                    enabled: enabled.contains(&p),
                    base_path,
                    anonymous_read: anonymous.contains(&p),
                    features,
                },
            );
        }
        let max_body_bytes = match get("MAX_BODY_BYTES") {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1024..=LIMIT_MAX_BODY_BYTES).contains(n))
                .ok_or_else(|| ConfigError(format!("MAX_BODY_BYTES must be a number of bytes from 1024 to {LIMIT_MAX_BODY_BYTES}, not {v:?}")))?,
        };
        let password_iterations = match get("PASSWORD_ITERATIONS") {
            None => 100_000,
            Some(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 1000)
                .ok_or_else(|| ConfigError("PASSWORD_ITERATIONS must be a number >= 1000".into()))?,
        };
        let mut upstreams = BTreeMap::new();
        for p in Protocol::ALL {
            if let Some(u) = crate::upstream::config::from_vars(p, vars)? {
                upstreams.insert(p, std::rc::Rc::new(u));
            }
        }
        let edge_cache = match get("EDGE_CACHE").map(|v| v.trim().to_ascii_lowercase()) {
            None => crate::platform::EdgeTiers::ALL,
            Some(v) if v == "off" || v == "none" => crate::platform::EdgeTiers::NONE,
            Some(v) => {
                let mut tiers = crate::platform::EdgeTiers::NONE;
                for tier in v.split(',').map(str::trim) {
                    match tier {
                        "memory" => tiers.memory = true,
                        "http" => tiers.http = true,
                        "on" | "all" => tiers = crate::platform::EdgeTiers::ALL,
                        _ => return Err(ConfigError(format!("EDGE_CACHE must be off, on, or a list of memory and http, not {v:?}"))),
                    }
                }
                tiers
            }
        };
        Ok(Config {
            edge_cache,
            upstreams,
            public_url: get("PUBLIC_URL").map(|u| u.trim().trim_end_matches('/').to_string()),
            protocols,
            max_body_bytes,
            read_only: get("READ_ONLY").map(|v| parse_bool("READ_ONLY", &v)).transpose()?.unwrap_or(false),
            npm_default_readonly: get("NPM_DEFAULT_READONLY")
                .map(|v| parse_bool("NPM_DEFAULT_READONLY", &v))
                .transpose()?
                .unwrap_or(false),
            oci_user_namespaces: get("OCI_USER_NAMESPACES")
                .map(|v| parse_bool("OCI_USER_NAMESPACES", &v))
                .transpose()?
                .unwrap_or(false),
            password_iterations,
            admin_token: get("ADMIN_TOKEN"),
            jwt_secret: get("JWT_SECRET"),
            store_selftest: get("STORE_SELFTEST").map(|v| parse_bool("STORE_SELFTEST", &v)).transpose()?.unwrap_or(false),
        })
    }

    pub fn protocol(&self, p: Protocol) -> &ProtocolConfig {
        // `from_vars` fills in every protocol; the fallback (disabled) is never reached.
        static DISABLED: std::sync::OnceLock<ProtocolConfig> = std::sync::OnceLock::new();
        self.protocols.get(&p).unwrap_or_else(|| {
            DISABLED.get_or_init(|| ProtocolConfig { enabled: false, base_path: String::new(), anonymous_read: false, features: BTreeMap::new() })
        })
    }

    /// Public base URL of a protocol (`registryUrl`): the configured origin, else the request's.
    pub fn registry_url(&self, p: Protocol, request_origin: &str) -> String {
        let origin = self.public_url.as_deref().unwrap_or(request_origin);
        format!("{}{}", origin, self.protocol(p).base_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_enable_implemented_protocols_with_default_paths() {
        let c = Config::from_vars(&vars(&[])).unwrap();
        assert!(c.protocol(Protocol::Npm).enabled);
        assert_eq!(c.protocol(Protocol::Npm).base_path, "/npm");
        assert!(c.protocol(Protocol::Npm).anonymous_read);
        assert!(!c.protocol(Protocol::Oci).anonymous_read);
        assert!(!c.protocol(Protocol::Maven).enabled);
    }

    #[test]
    fn explicit_empty_base_path_is_honoured() {
        let c = Config::from_vars(&vars(&[("NPM_BASE_PATH", "")])).unwrap();
        assert_eq!(c.protocol(Protocol::Npm).base_path, "");
        let c = Config::from_vars(&vars(&[("NPM_BASE_PATH", "registry/npm/")])).unwrap();
        assert_eq!(c.protocol(Protocol::Npm).base_path, "/registry/npm");
    }

    #[test]
    fn features_and_flags_parse_and_bad_values_are_refused() {
        let c = Config::from_vars(&vars(&[("NPM_FEATURES", "publish=false, search")])).unwrap();
        assert!(!c.protocol(Protocol::Npm).feature("publish"));
        assert!(c.protocol(Protocol::Npm).feature("search"));
        assert!(c.protocol(Protocol::Npm).feature("unpublish"));
        assert!(Config::from_vars(&vars(&[("READ_ONLY", "maybe")])).is_err());
        assert!(Config::from_vars(&vars(&[("ENABLED_PROTOCOLS", "npm,nuget")])).is_err());
        assert!(Config::from_vars(&vars(&[("MAX_BODY_BYTES", "lots")])).is_err());
        assert!(Config::from_vars(&vars(&[("MAX_BODY_BYTES", "104857600")])).is_err());
        assert!(Config::from_vars(&vars(&[("EDGE_CACHE", "disk")])).is_err());
        let c = Config::from_vars(&vars(&[("EDGE_CACHE", "memory")])).unwrap();
        assert!(c.edge_cache.memory && !c.edge_cache.http);
        assert!(!Config::from_vars(&vars(&[("EDGE_CACHE", "off")])).unwrap().edge_cache.any());
        assert_eq!(Config::from_vars(&vars(&[])).unwrap().edge_cache, crate::platform::EdgeTiers::ALL);
    }

    #[test]
    fn registry_url_prefers_public_url() {
        let c = Config::from_vars(&vars(&[("PUBLIC_URL", "https://r.example.com/")])).unwrap();
        assert_eq!(c.registry_url(Protocol::Npm, "http://127.0.0.1:1"), "https://r.example.com/npm");
        let c = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(c.registry_url(Protocol::Npm, "http://127.0.0.1:1"), "http://127.0.0.1:1/npm");
    }
}
