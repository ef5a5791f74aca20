//! PyPI: the simple repository API (PEP 503/691), hosted and as a pull-through mirror.

pub mod proxy;
pub mod rewrite;
