//! How errors are written for PyPI clients.
//!
//! pypi.org (Warehouse) answers upload errors with the message as the HTTP reason phrase
//! (`400 File already exists …`) and a JSON body `{"message", "code", "title"}` whose `code` is
//! the status line. twine prints the reason phrase (and the body with `--verbose`); uv
//! publish prints `Server says: {code}` from that body; pip prints the status and URL. So
//! errors here carry the message as their reason phrase too, and the body is Warehouse's
//! shape plus this registry's usual `error` field.

use serde_json::json;

use crate::auth::AuthError;
use crate::error::{Error, Render};
use crate::http::Response;

/// The challenge twine, uv and pip answer with Basic credentials (RFC 7617).
pub const CHALLENGE: &str = "Basic realm=\"pypi\"";

pub struct PypiErrors;

impl Render for PypiErrors {
    fn render(&self, e: &Error) -> Response {
        let status = e.status();
        let detail = e.public_detail();
        let title = reason_phrase(status);
        let body = json!({
            "error": detail,
            "message": detail,
            "code": format!("{status} {detail}"),
            "title": title,
        });
        e.decorate(Response::json(status, &body).with_reason(detail))
    }
}

/// The standard reason phrase of a status (RFC 9110 §15).
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// 401 with the Basic challenge.
pub fn unauthorized(detail: impl Into<String>) -> Error {
    Error::unauthorized(detail, CHALLENGE)
}

pub fn not_found() -> Error {
    Error::not_found("Not Found")
}

/// An authentication failure: bad credentials get the Basic challenge, failed-login
/// throttling its `Retry-After`.
pub fn auth(e: AuthError) -> Error {
    match e {
        AuthError::InvalidCredentials => unauthorized("Invalid or non-existent authentication information."),
        AuthError::RateLimited { retry_after_secs } => Error::rate_limited("too many failed logins; try again later", retry_after_secs),
        AuthError::BadRequest(m) => Error::invalid(m),
        AuthError::Conflict(m) => Error::conflict(m),
        AuthError::Storage(m) => Error::internal(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_the_reason_phrase_and_warehouse_fields_are_in_the_body() {
        let r = PypiErrors.render(&Error::invalid("File already exists.\nsee"));
        assert_eq!(r.status, 400);
        assert_eq!(r.reason.as_deref(), Some("File already exists.?see"));
        let body: serde_json::Value = serde_json::from_slice(&futures::executor::block_on(r.into_bytes())).unwrap();
        assert_eq!(body["code"], "400 File already exists.\nsee");
        assert_eq!(body["title"], "Bad Request");
        let r = PypiErrors.render(&unauthorized("login"));
        assert_eq!(r.headers.get("www-authenticate"), Some(CHALLENGE));
    }
}
