//! OCI error codes, each registered once with its usual status (OCI distribution spec,
//! "Error Codes"), and how errors are written for container clients:
//! `{"errors": [{"code": …, "message": …, "detail": null}]}`.

use serde_json::json;

use crate::error::{Code, Error, Kind, Render};
use crate::http::Response;

pub static BLOB_UNKNOWN: Code = Code::new("BLOB_UNKNOWN", 404);
pub static BLOB_UPLOAD_INVALID: Code = Code::new("BLOB_UPLOAD_INVALID", 400);
pub static BLOB_UPLOAD_UNKNOWN: Code = Code::new("BLOB_UPLOAD_UNKNOWN", 404);
pub static DIGEST_INVALID: Code = Code::new("DIGEST_INVALID", 400);
pub static MANIFEST_BLOB_UNKNOWN: Code = Code::new("MANIFEST_BLOB_UNKNOWN", 400);
pub static MANIFEST_INVALID: Code = Code::new("MANIFEST_INVALID", 400);
pub static MANIFEST_UNKNOWN: Code = Code::new("MANIFEST_UNKNOWN", 404);
pub static NAME_INVALID: Code = Code::new("NAME_INVALID", 400);
pub static NAME_UNKNOWN: Code = Code::new("NAME_UNKNOWN", 404);
pub static SIZE_INVALID: Code = Code::new("SIZE_INVALID", 400);
pub static TAG_INVALID: Code = Code::new("TAG_INVALID", 400);
pub static UNAUTHORIZED: Code = Code::new("UNAUTHORIZED", 401);
pub static DENIED: Code = Code::new("DENIED", 403);
pub static UNSUPPORTED: Code = Code::new("UNSUPPORTED", 405);
pub static TOOMANYREQUESTS: Code = Code::new("TOOMANYREQUESTS", 429);
/// Not in the spec's table; what distribution answers when its upstream fails.
pub static UNAVAILABLE: Code = Code::new("UNAVAILABLE", 502);
pub static UNKNOWN: Code = Code::new("UNKNOWN", 500);

/// The code an error without one is written with.
fn code_of(e: &Error) -> &'static str {
    if let Some(c) = e.code {
        return c.name;
    }
    match e.kind {
        Kind::NotFound => NAME_UNKNOWN.name,
        Kind::Invalid | Kind::Conflict => UNSUPPORTED.name,
        Kind::Unauthorized => UNAUTHORIZED.name,
        Kind::Denied => DENIED.name,
        Kind::TooLarge => SIZE_INVALID.name,
        Kind::RateLimited => TOOMANYREQUESTS.name,
        Kind::Upstream => UNAVAILABLE.name,
        Kind::Internal => UNKNOWN.name,
    }
}

/// The error body container clients read.
fn body(code: &str, message: &str) -> serde_json::Value {
    json!({"errors": [{"code": code, "message": message, "detail": null}]})
}

/// Too many failed logins, with when to try again.
pub fn rate_limited(retry_after_secs: u64) -> Error {
    TOOMANYREQUESTS.err("too many failed logins; try again later").header("Retry-After", retry_after_secs.to_string())
}

/// Writes errors as container clients read them.
pub struct OciErrors;

impl Render for OciErrors {
    fn render(&self, e: &Error) -> Response {
        e.decorate(Response::json(e.status(), &body(code_of(e), e.public_detail())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_carry_their_status_and_kind() {
        let e = MANIFEST_UNKNOWN.err("manifest a:b not found");
        assert_eq!((e.status(), e.kind), (404, Kind::NotFound));
        let r = OciErrors.render(&e);
        let body: serde_json::Value = serde_json::from_slice(&futures::executor::block_on(r.into_bytes())).unwrap();
        assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN");
        assert_eq!(body["errors"][0]["message"], "manifest a:b not found");
        let r = OciErrors.render(&TAG_INVALID.err("too many tags").with_status(414));
        assert_eq!(r.status, 414);
        let r = OciErrors.render(&Error::internal("R2 binding lost"));
        assert_eq!(r.status, 500);
        assert!(!String::from_utf8(futures::executor::block_on(r.into_bytes())).unwrap().contains("R2"));
    }
}
