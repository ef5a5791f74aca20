//! Admin API, for an admin credential only: the `ADMIN_TOKEN` secret or an admin token (one
//! made here with `"admin": true` for an admin user). Any other token of an admin user, a
//! password, or a JWT is refused; a read-only admin token may only read.
//!
//! * `POST /-/admin/users` `{name, password, email?, admin?}` → 201 the user (no hash)
//! * `GET /-/admin/users/{name}` → the user
//! * `POST /-/admin/tokens` `{user, protocol?, scopes?, readonly?, expiresInSeconds?, admin?,
//!   cidrWhitelist?}` → 201 `{token, key, …}`. Scopes given here are grants: a scope naming a
//!   package lets the token write it without owning it (see `auth::owners`).
//! * `GET /-/admin/users/{name}/tokens` → the user's tokens (never the secrets)
//! * `DELETE /-/admin/tokens/{key}` → 204
//! * `GET|PUT /-/admin/owners/{protocol}/{name}` `{owners: [user, …]}` → the owners
//! * `DELETE /-/admin/cache/{protocol}/{name}` → `{purged: n}`
//! * `POST /-/admin/selftest/store` → the object-store conformance report (only with
//!   `STORE_SELFTEST=true`, else 404)
//!
//! Owners and cache purges are the protocol's own (`crate::protocols`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Auth, AuthError, NewToken, TokenRecord, UserRecord};
use crate::config::Protocol;
use crate::error::PlainJson;
use crate::http::{Method, Request, Response};
use crate::protocols::ProtocolModule;
use crate::router::App;

fn error(status: u16, message: impl Into<String>) -> Response {
    Response::json(status, &json!({"error": message.into()}))
}

fn auth_error(e: AuthError) -> Response {
    match e {
        AuthError::InvalidCredentials => error(401, "invalid credentials"),
        AuthError::RateLimited { retry_after_secs } => {
            error(429, "too many failed logins; try again later").with_header("Retry-After", retry_after_secs.to_string())
        }
        AuthError::BadRequest(m) => error(400, m),
        AuthError::Conflict(m) => error(409, m),
        AuthError::Storage(m) => {
            // Runtime error text (stack traces included) stays in the log.
            crate::logging::error(&format!("admin: {m}"));
            error(500, "internal error")
        }
    }
}

fn user_json(u: &UserRecord) -> Value {
    json!({"name": u.name, "email": u.email, "admin": u.admin, "created": u.created})
}

pub fn token_json(t: &TokenRecord) -> Value {
    json!({
        "admin": t.admin,
        "cidrWhitelist": t.cidr_whitelist,
        "key": t.key,
        "user": t.user,
        "protocol": t.protocol,
        "scopes": t.scopes,
        "readonly": t.readonly,
        "created": crate::util::iso8601(t.created_ms),
        "expires": t.expires_ms.map(crate::util::iso8601),
        "token": format!("{}…", t.preview),
    })
}

#[derive(Deserialize)]
struct NewUserBody {
    name: String,
    password: String,
    email: Option<String>,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewTokenBody {
    user: String,
    protocol: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    readonly: bool,
    expires_in_seconds: Option<u64>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    cidr_whitelist: Vec<String>,
}

async fn json_body<T: serde::de::DeserializeOwned>(req: Request) -> Result<T, Response> {
    let bytes = req.body.read_capped(16 * 1024).await.map_err(|e| match e {
        crate::http::BodyError::TooLarge { .. } => error(413, e.to_string()),
        crate::http::BodyError::Io(_) => error(400, "could not read the request body"),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| error(400, format!("malformed JSON: {e}")))
}

pub async fn handle(app: &App, req: Request) -> Response {
    let auth = Auth::new(&app.platform, &app.config);
    // Authenticated before any body is read.
    match auth.admin_principal(&req.headers).await {
        Ok(Some(p)) if p.admin && p.readonly && !req.method.is_read() => return error(403, "this admin token is read-only"),
        Ok(Some(p)) if p.admin => {}
        Ok(Some(_)) => return error(403, "admin rights required: use the ADMIN_TOKEN secret or an admin token"),
        Ok(None) => return error(401, "admin credentials required").with_header("WWW-Authenticate", "Bearer realm=\"edgeregistry\""),
        Err(e) => return auth_error(e),
    }
    let rest = req.path.strip_prefix("/-/admin").unwrap_or_default().to_string();
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    match (req.method, segments.as_slice()) {
        (Method::Post, ["users"]) => {
            let body: NewUserBody = match json_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match auth.create_user(&body.name, &body.password, body.email, body.admin).await {
                Ok(u) => Response::json(201, &user_json(&u)),
                Err(e) => auth_error(e),
            }
        }
        (Method::Get, ["users", name]) => match auth.user(name).await {
            Ok(Some(u)) => Response::json(200, &user_json(&u)),
            Ok(None) => error(404, "no such user"),
            Err(e) => auth_error(e),
        },
        (Method::Get, ["users", name, "tokens"]) => match auth.list_tokens(name).await {
            Ok(tokens) => Response::json(200, &tokens.iter().map(token_json).collect::<Vec<_>>()),
            Err(e) => auth_error(e),
        },
        (Method::Post, ["tokens"]) => {
            let body: NewTokenBody = match json_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let protocol = match body.protocol.as_deref().map(|p| Protocol::parse(p).ok_or(p)) {
                None => None,
                Some(Ok(p)) => Some(p),
                Some(Err(p)) => return error(400, format!("unknown protocol {p:?}")),
            };
            match auth.user(&body.user).await {
                Ok(Some(u)) if body.admin && !u.admin => {
                    return error(400, format!("user {} is not an admin: an admin token needs an admin user", body.user))
                }
                Ok(Some(_)) => {}
                Ok(None) => return error(404, format!("no such user {}", body.user)),
                Err(e) => return auth_error(e),
            }
            let opts = NewToken {
                protocol,
                scopes: body.scopes,
                readonly: body.readonly,
                expires_in_secs: body.expires_in_seconds,
                cidr_whitelist: body.cidr_whitelist,
                admin: body.admin,
            };
            match auth.create_token(&body.user, opts).await {
                Ok((token, record)) => {
                    let mut j = token_json(&record);
                    if let Some(fields) = j.as_object_mut() {
                        fields.insert("token".into(), json!(token));
                    }
                    Response::json(201, &j)
                }
                Err(e) => auth_error(e),
            }
        }
        (Method::Delete, ["tokens", key]) => {
            let record = match auth.token_record(key).await {
                Ok(Some(r)) => r,
                Ok(None) => return error(404, "no such token"),
                Err(e) => return auth_error(e),
            };
            match auth.revoke_token(&record.user, &record.key).await {
                Ok(true) => Response::new(204),
                Ok(false) => error(404, "no such token"),
                Err(e) => auth_error(e),
            }
        }
        (Method::Get | Method::Put, ["owners", protocol, name @ ..]) => match crate::http::decode_path(&name.join("/")) {
            Some(name) => owners(app, req, protocol, &name).await,
            None => error(400, "invalid name"),
        },
        (Method::Delete, ["cache", protocol, name @ ..]) => match crate::http::decode_path(&name.join("/")) {
            Some(name) => purge_cache(app, protocol, &name).await,
            None => error(400, "invalid name"),
        },
        (Method::Get, ["stats"]) => Response::json(
            200,
            &json!({ "wasm_memory_bytes": wasm_memory_bytes(), "edge_cache": app.platform.edge.stats() }),
        ),
        (Method::Post, ["selftest", "store"]) if app.config.store_selftest => {
            Response::json(200, &crate::platform::conformance::run(&*app.platform.store).await)
        }
        _ => error(404, "Not Found"),
    }
}

#[derive(Deserialize)]
struct OwnersBody {
    owners: Vec<String>,
}

/// The protocol a URL's `{protocol}` segment names, from the protocol list; a protocol this
/// build does not serve is a 404 that says so.
fn protocol_module(protocol: &str) -> Result<&'static dyn ProtocolModule, Response> {
    crate::protocols::by_name(protocol).ok_or_else(|| error(404, format!("this registry does not serve a protocol {protocol:?}")))
}

/// An admin answer from a protocol's result, errors in the admin API's JSON.
fn answer(result: crate::error::Result<Response>) -> Response {
    crate::error::finish(&PlainJson, "admin", result)
}

/// `GET /-/admin/owners/{protocol}/{name}` → `{"owners": [...]}`; `PUT` with the same body
/// replaces them (every owner must be a user).
async fn owners(app: &App, req: Request, protocol: &str, name: &str) -> Response {
    let module = match protocol_module(protocol) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let new = match req.method {
        Method::Put => match json_body::<OwnersBody>(req).await {
            Ok(b) => Some(b.owners),
            Err(r) => return r,
        },
        _ => None,
    };
    answer(module.admin_owners(app, name, new).await.map(|list| Response::json(200, &json!({"owners": list}))))
}

/// `DELETE /-/admin/cache/{protocol}/{name}`: forgets what the pull-through cache kept for one
/// package or repository, so the next request fetches it again. Hosted content is untouched.
async fn purge_cache(app: &App, protocol: &str, name: &str) -> Response {
    let module = match protocol_module(protocol) {
        Ok(m) => m,
        Err(r) => return r,
    };
    // The edge cache knows answers by storage key, not by name: this isolate forgets them
    // all (a purge is rare).
    app.platform.edge.purge_all().await;
    answer(module.purge_cache(app, name).await.map(|n| {
        crate::logging::event("info", "cache_purged", json!({"protocol": protocol, "name": name, "objects": n}));
        Response::json(200, &json!({"purged": n}))
    }))
}

/// Size of this isolate's wasm linear memory. Linear memory only ever grows, so this is the
/// high-water mark since the isolate started (what benchmarks report). `None` natively.
fn wasm_memory_bytes() -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    {
        Some(core::arch::wasm32::memory_size(0) as u64 * 65536)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
}
