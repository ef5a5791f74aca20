//! edgeregistry: a package registry and pull-through cache for OCI, npm, Maven, Cargo,
//! Composer, PyPI and RubyGems, running as a Cloudflare Worker.
//!
//! Protocol code (`npm/`, …) talks only to the platform seam (`platform/`), so it runs
//! natively against in-memory backends in tests and in workerd against R2, KV and Durable
//! Objects. The Worker entry points live in `platform/cloudflare`. Each protocol enters the
//! registry through one line of the protocol list (`protocols`); the router, the admin API,
//! the settings and the job runner know protocols only through that list.

// A panic kills every request in flight in the isolate: no unwrap, expect, panic or
// unchecked indexing or string slicing outside tests (request and upstream data reach almost
// everything).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice))]

pub mod auth;
pub mod cargo;
pub mod config;
pub mod error;
pub mod http;
pub mod jobs;
pub mod json;
pub mod logging;
pub mod npm;
pub mod oci;
pub mod pypi;
pub mod platform;
pub mod protocols;
pub mod router;
pub mod storage;
pub mod upstream;
pub mod util;

pub use router::App;
