//! How errors are written for npm clients: `{"error": …, "reason": …}` (npm prints `error`;
//! older clients and yarn read `reason`).

use serde_json::json;

use crate::error::{Error, Render};
use crate::auth::AuthError;
use crate::http::Response;

/// The challenge npm answers a 401 with (it then asks for a token, `npm login`).
pub const CHALLENGE: &str = "Bearer realm=\"edgeregistry\"";

pub struct NpmErrors;

impl Render for NpmErrors {
    fn render(&self, e: &Error) -> Response {
        let detail = e.public_detail();
        e.decorate(Response::json(e.status(), &json!({"error": detail, "reason": detail})))
    }
}

/// 401 with npm's challenge.
pub fn unauthorized(detail: impl Into<String>) -> Error {
    Error::unauthorized(detail, CHALLENGE)
}

/// npm's answer for anything it does not find (a package, a version, a route).
pub fn not_found() -> Error {
    Error::not_found("Not found")
}

/// 405 for a feature this registry's configuration switches off (publish, unpublish).
pub fn disabled(what: &str) -> Error {
    Error::invalid(format!("{what} is disabled on this registry")).with_status(405)
}

/// An authentication failure: bad credentials get npm's challenge, failed-login throttling
/// its `Retry-After`.
pub fn auth(e: AuthError) -> Error {
    match e {
        AuthError::InvalidCredentials => unauthorized("invalid or expired credentials"),
        AuthError::RateLimited { retry_after_secs } => Error::rate_limited("too many failed logins; try again later", retry_after_secs),
        AuthError::BadRequest(m) => Error::invalid(m),
        AuthError::Conflict(m) => Error::conflict(m),
        AuthError::Storage(m) => Error::internal(m),
    }
}
