//! The Docker token endpoint (`{base}/v2/token`): Basic credentials (a user's password, or a
//! token as password) or nothing → an HS256 JWT whose `access` claim grants what the caller
//! may do of what it asked for. `docker login`, `podman login` and `skopeo --creds` use it.

use serde_json::json;

use super::errors::UNAUTHORIZED;
use super::names::Repository;
use crate::auth::{jwt, Action, Auth, AuthError, Principal};
use crate::config::Protocol;
use crate::error::{Error, Result};
use crate::http::{Request, Response};
use crate::router::App;

pub const SERVICE: &str = "edgeregistry";
/// Minted tokens live five minutes: revoking the token or password they came from takes
/// effect that soon (clients fetch a new one when theirs expires).
const LIFETIME_SECS: i64 = 300;
/// Scopes read from one token request.
const MAX_SCOPES: usize = 64;

/// The actions of `repository:NAME:ACTIONS` the caller gets: what its scopes allow, and for
/// `push` and `delete` only where namespaces and ownership let its user write (so a client
/// is refused at once rather than after uploading its layers).
async fn granted(app: &App, principal: Option<&Principal>, anonymous_read: bool, repo: &Repository, wanted: &str) -> Result<Vec<String>> {
    let writes = wanted.split(',').any(|a| matches!(a, "push" | "delete" | "*"));
    let owners = match principal {
        Some(_) if writes => super::access::record(&*app.platform.store, repo).await?.map(|(_, l)| l).unwrap_or_default(),
        _ => Vec::new(),
    };
    let may = |a: Action| {
        principal.is_some_and(|p| {
            p.can(Protocol::Oci, repo.as_str(), a) && (a == Action::Read || super::access::may_write(&app.config, p, repo, a, &owners).is_ok())
        })
    };
    Ok(wanted
        .split(',')
        .filter(|a| match *a {
            "pull" => may(Action::Read) || anonymous_read,
            "push" => may(Action::Write),
            "delete" => may(Action::Delete),
            "*" => may(Action::Write) && may(Action::Delete),
            _ => false,
        })
        .map(str::to_string)
        .collect())
}

pub async fn handle(app: &App, req: &Request) -> Result<Response> {
    let secret = app.config.jwt_secret.clone().ok_or_else(|| Error::internal("the token endpoint needs the JWT_SECRET secret"))?;
    let auth = Auth::new(&app.platform, &app.config);
    let principal = match auth.principal(&req.headers, Protocol::Oci).await {
        Ok(p) => p,
        Err(AuthError::InvalidCredentials) => {
            return Err(UNAUTHORIZED.err("invalid username or password").header("WWW-Authenticate", "Basic realm=\"edgeregistry\""))
        }
        Err(e) => return Err(super::auth_failure(e)),
    };
    let anonymous_read = app.config.protocol(Protocol::Oci).anonymous_read;
    let mut access = Vec::new();
    // Clients ask for a handful; each write scope costs a store read, so the rest are ignored.
    for scope in req.query.iter().filter(|(k, _)| k == "scope").flat_map(|(_, v)| v.split(' ')).take(MAX_SCOPES) {
        // `registry:catalog:*`: listing, for callers who may pull every repository.
        if scope == "registry:catalog:*" {
            if principal.as_ref().is_some_and(|p| p.can(Protocol::Oci, "*", Action::Read)) || anonymous_read {
                access.push(json!({"type": "registry", "name": "catalog", "actions": ["*"]}));
            }
            continue;
        }
        // `repository:NAME:ACTIONS` (also `repository(plugin):…`); names have no `:`.
        let Some((kind, rest)) = scope.split_once(':') else { continue };
        let Some((name, actions)) = rest.rsplit_once(':') else { continue };
        let Some(repo) = Repository::parse(name).filter(|_| kind.starts_with("repository")) else {
            continue;
        };
        let actions = granted(app, principal.as_ref(), anonymous_read, &repo, actions).await?;
        access.push(json!({"type": "repository", "name": repo.as_str(), "actions": actions}));
    }
    let now = (app.platform.now_ms() / 1000.0) as i64;
    let subject = principal.as_ref().map(|p| p.user.clone()).unwrap_or_else(|| "anonymous".into());
    let claims = json!({
        "iss": SERVICE,
        "sub": subject,
        "aud": req.query_param("service").unwrap_or(SERVICE),
        "iat": now,
        "nbf": now - 10,
        "exp": now + LIFETIME_SECS,
        "jti": crate::util::random_hex(),
        "access": access,
        "ro": principal.as_ref().is_some_and(|p| p.readonly),
        // Admin-granted scopes travel along, so writes they cover need no ownership.
        "grants": principal.as_ref().map(|p| p.grants.iter().filter(|g| g.protocol == "oci" || g.protocol == "*").map(|g| g.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
        "adm": principal.as_ref().is_some_and(|p| p.admin),
    });
    let token = jwt::encode(secret.as_bytes(), &claims);
    Ok(Response::json(200, &json!({
        "token": token,
        "access_token": token,
        "expires_in": LIFETIME_SECS,
        "issued_at": app.platform.now_iso(),
    })))
}

/// JWT claims become a principal in `auth`, which checks every credential.
pub use crate::auth::jwt::principal_from_claims;
