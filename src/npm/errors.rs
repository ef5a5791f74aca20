//! How errors are written for npm clients: `{"error": …, "reason": …}` (npm prints `error`;
//! older clients and yarn read `reason`).

use serde_json::json;

use crate::error::{Error, Render};
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
