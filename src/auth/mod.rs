//! Users, tokens and permissions, shared by every protocol.
//!
//! KV layout: `user/{name}` → [`UserRecord`]; `token/{sha256(token)}` → [`TokenRecord`];
//! `user-token/{name}/{sha256(token)}` → "" (to list a user's tokens). Tokens never rest in
//! clear: only their SHA-256 is stored, and the hash doubles as the token's public key/id.

pub mod admin;
pub mod cidr;
pub mod jwt;
pub mod limiter;
pub mod owners;
pub mod password;
pub mod scope;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Protocol};
use crate::http::Headers;
use crate::platform::{Platform, StoreError};
use crate::util::{secret_eq, sha256_hex};
pub use password::PasswordHash;
pub use scope::{Action, Scope};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub password: PasswordHash,
    #[serde(default)]
    pub admin: bool,
    pub created: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    /// SHA-256 of the token, hex: its id in APIs.
    pub key: String,
    pub user: String,
    /// The protocol the token was made for; `None` for tokens valid everywhere their scopes say.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    pub scopes: Vec<String>,
    pub readonly: bool,
    pub created_ms: f64,
    #[serde(default)]
    pub expires_ms: Option<f64>,
    #[serde(default)]
    pub cidr_whitelist: Vec<String>,
    /// First characters of the token, safe to show in listings.
    pub preview: String,
    /// An admin token: made through the admin API by an admin credential, for an admin user.
    /// Only such tokens (and the `ADMIN_TOKEN` secret) reach the admin API.
    #[serde(default)]
    pub admin: bool,
    /// Scopes were chosen by an admin (the admin API), not the defaults: a scope naming a
    /// package (not `*`) then lets the token write it without owning it.
    #[serde(default)]
    pub granted: bool,
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// The `ADMIN_TOKEN` secret.
    AdminSecret,
    /// A stored token (npm login, `npm token create`, the admin API).
    Token,
    /// A user's password (Basic auth).
    Password,
    /// A short-lived JWT from the OCI token endpoint.
    Jwt,
}

/// An authenticated caller, with what it may do. What it may write is further limited by
/// ownership (`owners`): effective permission = these scopes ∩ what the user may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub token_key: Option<String>,
    pub kind: CredentialKind,
    pub scopes: Vec<Scope>,
    /// Scopes an admin granted this credential explicitly, by name: writes they cover need no
    /// ownership. Empty for default tokens, passwords and anonymous JWTs.
    pub grants: Vec<Scope>,
    pub readonly: bool,
    /// An admin credential (the secret or an admin token), not merely a token of an admin user.
    pub admin: bool,
}

impl crate::http::Actor {
    /// The actor with the authenticated user and token filled in (for hooks and logs).
    pub fn identified(&self, principal: Option<&Principal>) -> crate::http::Actor {
        let mut actor = self.clone();
        if let Some(p) = principal {
            actor.user_id = Some(p.user.clone());
            actor.token_id = p.token_key.clone();
        }
        actor
    }
}

impl Principal {
    /// A user's own credential that may change their account (tokens): a stored token or
    /// password, not read-only; never a JWT minted for one registry operation.
    pub fn may_manage_account(&self) -> bool {
        !self.readonly && matches!(self.kind, CredentialKind::Token | CredentialKind::Password)
    }

    pub fn can(&self, protocol: Protocol, name: &str, action: Action) -> bool {
        if self.readonly && action != Action::Read {
            return false;
        }
        self.scopes
            .iter()
            .any(|s| s.allows(protocol.as_str(), protocol.resource_type(), name, action))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Credentials were sent but are not valid (unknown, expired or revoked token, bad password).
    InvalidCredentials,
    /// Too many failed logins for this user from this client; retry after this many seconds.
    RateLimited { retry_after_secs: u64 },
    BadRequest(String),
    Conflict(String),
    Storage(String),
}

impl AuthError {
    /// The error for the client: bad credentials get `unauthorized` (the protocol's 401 with
    /// its challenge), failed-login throttling its `Retry-After`.
    pub fn into_error(self, unauthorized: impl FnOnce() -> crate::error::Error) -> crate::error::Error {
        use crate::error::Error;
        match self {
            AuthError::InvalidCredentials => unauthorized(),
            AuthError::RateLimited { retry_after_secs } => Error::rate_limited("too many failed logins; try again later", retry_after_secs),
            AuthError::BadRequest(m) => Error::invalid(m),
            AuthError::Conflict(m) => Error::conflict(m),
            AuthError::Storage(m) => Error::internal(m),
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Storage(e.to_string())
    }
}

/// Credentials as a client sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Bearer(String),
    Basic { user: String, password: String },
    /// A bare token with no scheme (cargo, RubyGems).
    Raw(String),
}

impl Credential {
    pub fn from_headers(headers: &Headers) -> Option<Credential> {
        let value = headers.get("authorization")?.trim();
        if value.is_empty() {
            return None;
        }
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            return Some(Credential::Bearer(rest.to_string()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = crate::util::b64_decode(rest).and_then(|b| String::from_utf8(b).ok())?;
            let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
            return Some(Credential::Basic {
                user: user.to_string(),
                password: password.to_string(),
            });
        }
        Some(Credential::Raw(value.to_string()))
    }
}

/// Options for a new token.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    pub protocol: Option<Protocol>,
    /// Scopes to grant; empty means the default for `protocol`/`readonly`.
    pub scopes: Vec<String>,
    pub readonly: bool,
    pub expires_in_secs: Option<u64>,
    pub cidr_whitelist: Vec<String>,
    /// Admin rights (only an admin credential may ask, only for an admin user).
    pub admin: bool,
}

/// Token lifetimes: KV refuses expirations under 60 s, and anything past ten years is a typo.
pub const MIN_TOKEN_LIFETIME_SECS: u64 = 60;
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 86_400;

/// Names that stand for callers who are not users (the admin secret, anonymous OCI tokens).
pub const RESERVED_USER_NAMES: [&str; 2] = ["admin", "anonymous"];

/// Valid user names: what npm and the other clients accept, and safe in KV keys.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

pub struct Auth<'a> {
    pub platform: &'a Platform,
    pub config: &'a Config,
}

impl<'a> Auth<'a> {
    pub fn new(platform: &'a Platform, config: &'a Config) -> Self {
        Auth { platform, config }
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, AuthError> {
        if !valid_user_name(name) {
            return Ok(None);
        }
        match self.platform.kv.get(&format!("user/{name}")).await? {
            None => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| AuthError::Storage(format!("corrupt user record {name}: {e}"))),
        }
    }

    pub async fn create_user(
        &self,
        name: &str,
        password: &str,
        email: Option<String>,
        admin: bool,
    ) -> Result<UserRecord, AuthError> {
        if !valid_user_name(name) || RESERVED_USER_NAMES.contains(&name) {
            return Err(AuthError::BadRequest(format!("invalid user name {name:?}")));
        }
        if password.len() < 8 {
            return Err(AuthError::BadRequest("password must be at least 8 characters".into()));
        }
        if self.user(name).await?.is_some() {
            return Err(AuthError::Conflict(format!("user {name} already exists")));
        }
        let record = UserRecord {
            name: name.to_string(),
            email,
            password: PasswordHash::new(&*self.platform.crypto, password, self.config.password_iterations).await?,
            admin,
            created: self.platform.now_iso(),
        };
        let json = serde_json::to_string(&record).map_err(|e| AuthError::Storage(e.to_string()))?;
        self.platform.kv.put(&format!("user/{name}"), &json, None).await?;
        Ok(record)
    }

    /// The user if the password is right. An unknown user costs the same key derivation as a
    /// known one, so response times do not tell which names exist.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<Option<UserRecord>, AuthError> {
        let Some(user) = self.user(name).await? else {
            let decoy = PasswordHash::decoy(self.config.password_iterations);
            let _ = decoy.verify(&*self.platform.crypto, password).await?;
            return Ok(None);
        };
        Ok(user.password.verify(&*self.platform.crypto, password).await?.then_some(user))
    }

    /// [`Auth::authenticate`] behind the failed-login limit for this user and client.
    pub async fn login(&self, name: &str, password: &str, client: Option<&str>) -> Result<Option<UserRecord>, AuthError> {
        let limiter = limiter::LoginLimiter::new(self.platform, name, client);
        limiter.check().await?;
        let found = self.authenticate(name, password).await?;
        if found.is_none() {
            limiter.failed().await?;
        }
        Ok(found)
    }

    /// Makes a token; returns the secret (shown once) and its stored record.
    pub async fn create_token(&self, user: &str, opts: NewToken) -> Result<(String, TokenRecord), AuthError> {
        if let Some(secs) = opts.expires_in_secs {
            if !(MIN_TOKEN_LIFETIME_SECS..=MAX_TOKEN_LIFETIME_SECS).contains(&secs) {
                return Err(AuthError::BadRequest(format!(
                    "token lifetime must be between {MIN_TOKEN_LIFETIME_SECS} seconds and {MAX_TOKEN_LIFETIME_SECS} seconds (ten years)"
                )));
            }
        }
        for c in &opts.cidr_whitelist {
            if cidr::Cidr::parse(c).is_none() {
                return Err(AuthError::BadRequest(format!("invalid CIDR range {c:?}")));
            }
        }
        let granted = !opts.scopes.is_empty();
        let scopes = if opts.scopes.is_empty() {
            let proto = opts.protocol.map(|p| p.as_str()).unwrap_or("*");
            let action = if opts.readonly { "read" } else { "*" };
            vec![format!("{proto}:*:*:{action}")]
        } else {
            for s in &opts.scopes {
                if Scope::parse(s).is_none() {
                    return Err(AuthError::BadRequest(format!("invalid scope {s:?}")));
                }
            }
            opts.scopes
        };
        let token = uuid::Uuid::new_v4().to_string();
        let key = sha256_hex(token.as_bytes());
        let now = self.platform.now_ms();
        let record = TokenRecord {
            key: key.clone(),
            user: user.to_string(),
            protocol: opts.protocol,
            scopes,
            readonly: opts.readonly,
            created_ms: now,
            expires_ms: opts.expires_in_secs.map(|s| now + s as f64 * 1000.0),
            cidr_whitelist: opts.cidr_whitelist,
            preview: token.chars().take(6).collect(),
            admin: opts.admin,
            granted,
        };
        let json = serde_json::to_string(&record).map_err(|e| AuthError::Storage(e.to_string()))?;
        let ttl = opts.expires_in_secs;
        self.platform.kv.put(&format!("token/{key}"), &json, ttl).await?;
        self.platform
            .kv
            .put(&format!("user-token/{user}/{key}"), "", ttl)
            .await?;
        Ok((token, record))
    }

    pub async fn token_record(&self, key: &str) -> Result<Option<TokenRecord>, AuthError> {
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        match self.platform.kv.get(&format!("token/{key}")).await? {
            None => Ok(None),
            Some(s) => Ok(serde_json::from_str(&s).ok()),
        }
    }

    /// Looks a presented token up; `None` when unknown, expired, not valid for `protocol`, or
    /// sent from outside the token's CIDR whitelist. JWTs are OCI tokens and nothing else.
    pub async fn validate_token(&self, token: &str, protocol: Protocol, client: Option<&str>) -> Result<Option<Principal>, AuthError> {
        if let Some(admin) = &self.config.admin_token {
            if secret_eq(token.as_bytes(), admin.as_bytes()) {
                return Ok(Some(Principal {
                    user: "admin".into(),
                    token_key: None,
                    kind: CredentialKind::AdminSecret,
                    scopes: Scope::parse("*:*:*:*").into_iter().collect(),
                    grants: Vec::new(),
                    readonly: false,
                    admin: true,
                }));
            }
        }
        // JWTs come from the OCI token endpoint; they carry their own grants.
        if token.matches('.').count() == 2 {
            let Some(secret) = self.config.jwt_secret.as_ref().filter(|_| protocol == Protocol::Oci) else {
                return Ok(None);
            };
            let now = (self.platform.now_ms() / 1000.0) as i64;
            return Ok(jwt::decode(secret.as_bytes(), token, now)
                .ok()
                .and_then(|claims| jwt::principal_from_claims(&claims)));
        }
        let Some(record) = self.token_record(&sha256_hex(token.as_bytes())).await? else {
            return Ok(None);
        };
        if record.expires_ms.is_some_and(|e| e <= self.platform.now_ms()) {
            return Ok(None);
        }
        if !record.cidr_whitelist.is_empty() && !cidr::allows(&record.cidr_whitelist, client) {
            return Ok(None);
        }
        let scopes: Vec<Scope> = record.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
        // A token made for one protocol works elsewhere only if its scopes name that protocol.
        if record.protocol.is_some_and(|p| p != protocol)
            && !scopes.iter().any(|s| s.protocol == protocol.as_str())
        {
            return Ok(None);
        }
        // An admin token stays one only while its user is an admin.
        let admin = record.admin && self.user(&record.user).await?.is_some_and(|u| u.admin);
        let grants = if record.granted { scopes.iter().filter(|s| s.name != "*").cloned().collect() } else { Vec::new() };
        Ok(Some(Principal {
            user: record.user,
            token_key: Some(record.key),
            kind: CredentialKind::Token,
            scopes,
            grants,
            readonly: record.readonly,
            admin,
        }))
    }

    pub async fn list_tokens(&self, user: &str) -> Result<Vec<TokenRecord>, AuthError> {
        let mut out = Vec::new();
        for k in crate::platform::kv_list_all(&*self.platform.kv, &format!("user-token/{user}/")).await? {
            let key = k.rsplit('/').next().unwrap_or_default();
            if let Some(r) = self.token_record(key).await? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.created_ms.total_cmp(&b.created_ms));
        Ok(out)
    }

    /// Revokes a token of `user` by key (or by a unique prefix of it, as `npm token revoke` allows).
    pub async fn revoke_token(&self, user: &str, key_or_prefix: &str) -> Result<bool, AuthError> {
        let tokens = self.list_tokens(user).await?;
        let matches: Vec<_> = tokens
            .iter()
            .filter(|t| !key_or_prefix.is_empty() && t.key.starts_with(key_or_prefix))
            .collect();
        let [token] = matches[..] else {
            return Ok(false);
        };
        self.platform.kv.delete(&format!("token/{}", token.key)).await?;
        self.platform
            .kv
            .delete(&format!("user-token/{user}/{}", token.key))
            .await?;
        Ok(true)
    }

    /// Who is calling: `Ok(None)` for no credentials, `Err(InvalidCredentials)` for bad ones.
    ///
    /// Bearer and raw values are tokens. Basic carries either a token as its password (twine's
    /// `__token__`, Maven, Composer) or a real user's password (rate-limited per user and
    /// client). `client` is the caller's address, for CIDR-bound tokens and the limit.
    pub async fn principal(&self, headers: &Headers, protocol: Protocol) -> Result<Option<Principal>, AuthError> {
        let Some(cred) = Credential::from_headers(headers) else {
            return Ok(None);
        };
        let client = client_ip(headers);
        let found = match cred {
            Credential::Bearer(t) | Credential::Raw(t) => self.validate_token(&t, protocol, client).await?,
            Credential::Basic { user, password } => match self.validate_token(&password, protocol, client).await? {
                Some(p) => Some(p),
                None => self.login(&user, &password, client).await?.map(|u| Principal {
                    user: u.name,
                    token_key: None,
                    kind: CredentialKind::Password,
                    scopes: Scope::parse(&format!("{}:*:*:*", protocol.as_str())).into_iter().collect(),
                    grants: Vec::new(),
                    readonly: false,
                    admin: false,
                }),
            },
        };
        found.map(Some).ok_or(AuthError::InvalidCredentials)
    }

    /// The caller of the admin API: the `ADMIN_TOKEN` secret or an admin token (of any
    /// protocol), nothing else. `Ok(None)` without credentials.
    pub async fn admin_principal(&self, headers: &Headers) -> Result<Option<Principal>, AuthError> {
        let token = match Credential::from_headers(headers) {
            None => return Ok(None),
            Some(Credential::Bearer(t) | Credential::Raw(t)) => t,
            Some(Credential::Basic { password, .. }) => password,
        };
        if token.matches('.').count() == 2 {
            return Err(AuthError::InvalidCredentials);
        }
        let client = client_ip(headers);
        let found = match self.config.admin_token.as_deref() {
            Some(secret) if secret_eq(token.as_bytes(), secret.as_bytes()) => self.validate_token(&token, Protocol::Npm, client).await?,
            _ => match self.token_record(&sha256_hex(token.as_bytes())).await? {
                // Whatever protocol the admin token was made for.
                Some(r) => self.validate_token(&token, r.protocol.unwrap_or(Protocol::Npm), client).await?,
                None => None,
            },
        };
        found.map(Some).ok_or(AuthError::InvalidCredentials)
    }
}

/// The client's address as the platform reports it (`CF-Connecting-IP`, set by Cloudflare's
/// edge for every request; a client cannot choose it in production).
pub fn client_ip(headers: &Headers) -> Option<&str> {
    headers.get("cf-connecting-ip").map(str::trim).filter(|s| !s.is_empty())
}
