//! One error model for every protocol: a typed [`Error`] with a [`Kind`] and a detail, that
//! handlers return with `?`. Each protocol supplies only how an error is written for its
//! clients ([`Render`]): npm `{"error": …}`, OCI `{"errors": [{"code", "message"}]}`, Cargo
//! `{"errors": [{"detail"}]}`, and so on.
//!
//! Protocol error codes are registered once with their status ([`Code`]), as the OCI
//! distribution spec's table of error codes does, so a handler names the code and never pairs
//! a status with it by hand.

use crate::http::Response;

/// What went wrong, in terms every protocol maps to its own status and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 404: no such package, version, file or route.
    NotFound,
    /// 400: the request is malformed or breaks the protocol's rules.
    Invalid,
    /// 401: no credentials, or credentials that are not valid; carries the challenge.
    Unauthorized,
    /// 403: valid credentials without the right.
    Denied,
    /// 409: the request conflicts with what is stored (a repeated version, a lost race).
    Conflict,
    /// 413: the body is larger than allowed.
    TooLarge,
    /// 429: too many requests (failed logins); carries `Retry-After`.
    RateLimited,
    /// 502: the upstream registry failed, or sent something that failed verification.
    Upstream,
    /// 500: a fault of this registry or its platform. The detail is logged, never sent.
    Internal,
}

impl Kind {
    pub fn status(self) -> u16 {
        match self {
            Kind::NotFound => 404,
            Kind::Invalid => 400,
            Kind::Unauthorized => 401,
            Kind::Denied => 403,
            Kind::Conflict => 409,
            Kind::TooLarge => 413,
            Kind::RateLimited => 429,
            Kind::Upstream => 502,
            Kind::Internal => 500,
        }
    }

    /// The kind a bare HTTP status stands for (jobs report statuses across the platform).
    pub fn from_status(status: u16) -> Kind {
        match status {
            400 | 405 | 411 | 414 | 415 | 416 | 422 => Kind::Invalid,
            401 => Kind::Unauthorized,
            403 => Kind::Denied,
            404 | 410 => Kind::NotFound,
            409 | 412 => Kind::Conflict,
            413 => Kind::TooLarge,
            429 => Kind::RateLimited,
            502..=504 => Kind::Upstream,
            _ => Kind::Internal,
        }
    }
}

/// A protocol's error code, registered once with its status (`MANIFEST_UNKNOWN` is a 404).
#[derive(Debug, PartialEq, Eq)]
pub struct Code {
    pub name: &'static str,
    pub status: u16,
}

impl Code {
    pub const fn new(name: &'static str, status: u16) -> Code {
        Code { name, status }
    }

    /// An error of this code.
    pub fn err(&'static self, detail: impl Into<String>) -> Error {
        Error::new(Kind::from_status(self.status), detail).code(self)
    }
}

/// An error a handler returns; rendered by its protocol.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    /// What the client is told (for [`Kind::Internal`], what is logged instead).
    pub detail: String,
    /// The protocol's code, when the handler named one; it also fixes the status.
    pub code: Option<&'static Code>,
    /// A status other than the kind's (405, 414, 416, …), when the protocol wants one.
    pub status: Option<u16>,
    /// Headers the answer must carry: `WWW-Authenticate`, `Retry-After`, `Allow`, ….
    pub headers: Vec<(String, String)>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Error {
        Error { kind, detail: detail.into(), code: None, status: None, headers: Vec::new() }
    }

    pub fn not_found(detail: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Error {
        Error::new(Kind::Invalid, detail)
    }

    /// 401 with the challenge (`WWW-Authenticate`) that tells the client how to authenticate.
    pub fn unauthorized(detail: impl Into<String>, challenge: impl Into<String>) -> Error {
        Error::new(Kind::Unauthorized, detail).header("WWW-Authenticate", challenge)
    }

    pub fn denied(detail: impl Into<String>) -> Error {
        Error::new(Kind::Denied, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Error {
        Error::new(Kind::Conflict, detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Error {
        Error::new(Kind::TooLarge, detail)
    }

    pub fn rate_limited(detail: impl Into<String>, retry_after_secs: u64) -> Error {
        Error::new(Kind::RateLimited, detail).header("Retry-After", retry_after_secs.to_string())
    }

    pub fn upstream(detail: impl Into<String>) -> Error {
        Error::new(Kind::Upstream, detail)
    }

    pub fn internal(detail: impl std::fmt::Display) -> Error {
        Error::new(Kind::Internal, detail.to_string())
    }

    /// Names the protocol's code (and takes its status).
    pub fn code(mut self, code: &'static Code) -> Error {
        self.code = Some(code);
        self
    }

    pub fn with_status(mut self, status: u16) -> Error {
        self.status = Some(status);
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Error {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn status(&self) -> u16 {
        self.status.or(self.code.map(|c| c.status)).unwrap_or_else(|| self.kind.status())
    }

    /// What the client may read: the detail, except for internal faults, whose detail may
    /// name keys, bindings or runtime messages and is only logged.
    pub fn public_detail(&self) -> &str {
        match self.kind {
            Kind::Internal => "internal error",
            _ => &self.detail,
        }
    }

    /// `resp` with this error's headers, for renderers.
    pub fn decorate(&self, mut resp: Response) -> Response {
        for (k, v) in &self.headers {
            resp.headers.set(k, v.clone());
        }
        resp
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status(), self.detail)
    }
}

/// How a protocol writes an error for its clients.
pub trait Render {
    fn render(&self, e: &Error) -> Response;
}

/// Renders `e` with `render`, logging internal faults first (their detail stays out of the
/// body). The one place an [`Error`] becomes a response.
pub fn respond(render: &dyn Render, protocol: &str, e: &Error) -> Response {
    if e.kind == Kind::Internal {
        crate::logging::error(&format!("{protocol}: {}", e.detail));
    }
    render.render(e)
}

/// A handler's result as a response.
pub fn finish(render: &dyn Render, protocol: &str, result: Result<Response>) -> Response {
    result.unwrap_or_else(|e| respond(render, protocol, &e))
}

/// The plain JSON shape used outside any protocol (`/-/admin`, `/-/health`, unknown paths):
/// `{"error": detail}`.
pub struct PlainJson;

impl Render for PlainJson {
    fn render(&self, e: &Error) -> Response {
        e.decorate(Response::json(e.status(), &serde_json::json!({"error": e.public_detail()})))
    }
}

impl From<crate::platform::StoreError> for Error {
    fn from(e: crate::platform::StoreError) -> Error {
        Error::internal(e)
    }
}

impl From<crate::storage::StorageError> for Error {
    fn from(e: crate::storage::StorageError) -> Error {
        match e {
            crate::storage::StorageError::Denied(reason) => Error::denied(reason),
            crate::storage::StorageError::Store(e) => e.into(),
        }
    }
}

impl From<crate::http::BodyError> for Error {
    fn from(e: crate::http::BodyError) -> Error {
        match e {
            crate::http::BodyError::TooLarge { limit } => Error::too_large(format!("request body larger than {limit} bytes")),
            crate::http::BodyError::Io(_) => Error::invalid("could not read the request body"),
        }
    }
}

impl From<crate::json::JsonError> for Error {
    fn from(e: crate::json::JsonError) -> Error {
        match e {
            crate::json::JsonError::TooComplex { .. } => Error::too_large(e.to_string()),
            crate::json::JsonError::Malformed(_) => Error::invalid(e.to_string()),
        }
    }
}

impl From<crate::jobs::JobError> for Error {
    fn from(e: crate::jobs::JobError) -> Error {
        let kind = Kind::from_status(e.status);
        let err = Error::new(kind, e.message);
        if kind.status() == e.status { err } else { err.with_status(e.status) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static MANIFEST_UNKNOWN: Code = Code::new("MANIFEST_UNKNOWN", 404);

    #[test]
    fn statuses_come_from_the_code_then_the_override_then_the_kind() {
        assert_eq!(Error::conflict("x").status(), 409);
        let coded = MANIFEST_UNKNOWN.err("no such manifest");
        assert_eq!((coded.kind, coded.status()), (Kind::NotFound, 404));
        assert_eq!(Error::invalid("range").with_status(416).status(), 416);
    }

    #[test]
    fn internal_details_never_reach_the_body() {
        let r = PlainJson.render(&Error::internal("R2: binding BUCKET missing at key npm/x"));
        assert_eq!(r.status, 500);
        let body = futures::executor::block_on(r.into_bytes());
        assert_eq!(body, br#"{"error":"internal error"}"#);
    }

    #[test]
    fn job_statuses_keep_their_kind_and_status() {
        let e: Error = crate::jobs::JobError::new(422, "bad").into();
        assert_eq!((e.kind, e.status()), (Kind::Invalid, 422));
        let e: Error = crate::jobs::JobError::new(409, "race").into();
        assert_eq!((e.kind, e.status()), (Kind::Conflict, 409));
    }

    #[test]
    fn challenges_and_retry_after_travel_as_headers() {
        let r = PlainJson.render(&Error::unauthorized("login", "Bearer realm=\"x\"").header("X-A", "1"));
        assert_eq!(r.headers.get("www-authenticate"), Some("Bearer realm=\"x\""));
        let r = PlainJson.render(&Error::rate_limited("slow down", 30));
        assert_eq!((r.status, r.headers.get("retry-after")), (429, Some("30")));
    }
}
