//! How errors are written for cargo.
//!
//! The Cargo book ("Registry Web API", "Web API"): an error is a 4xx/5xx status with a JSON
//! body `{"errors": [{"detail": "…"}]}`; cargo prints each `detail`. A `200` may carry the
//! same shape too, but this registry always pairs it with an error status.

use serde_json::json;

use crate::auth::AuthError;
use crate::error::{Error, Render};
use crate::http::Response;

/// The challenge of a 401 (Cargo book, "Registry Authentication": cargo reads the `Cargo`
/// scheme of `WWW-Authenticate`, and passes a `login_url` parameter to credential providers
/// when there is one; this registry has no login page, tokens come from its admin API).
pub const CHALLENGE: &str = "Cargo";

pub struct CargoErrors;

impl Render for CargoErrors {
    fn render(&self, e: &Error) -> Response {
        let body = json!({"errors": [{"detail": e.public_detail()}]});
        e.decorate(Response::json(e.status(), &body))
    }
}

/// 401 with cargo's challenge.
pub fn unauthorized(detail: impl Into<String>) -> Error {
    Error::unauthorized(detail, CHALLENGE)
}

pub fn not_found(detail: impl Into<String>) -> Error {
    Error::not_found(detail)
}

/// An authentication failure: a bad token is a 401 (cargo then says the token was refused),
/// failed-login throttling keeps its `Retry-After`.
pub fn auth(e: AuthError) -> Error {
    e.into_error(|| unauthorized("the token is not valid (unknown, expired or revoked); make a new one with the admin API and `cargo login`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_a_list_of_details() {
        let r = CargoErrors.render(&Error::invalid("crate version `1.0.0` is already uploaded"));
        assert_eq!(r.status, 400);
        let body: serde_json::Value = serde_json::from_slice(&futures::executor::block_on(r.into_bytes())).unwrap();
        assert_eq!(body, json!({"errors": [{"detail": "crate version `1.0.0` is already uploaded"}]}));
        let r = CargoErrors.render(&unauthorized("login"));
        assert_eq!(r.status, 401);
        assert_eq!(r.headers.get("www-authenticate"), Some(CHALLENGE));
    }
}
