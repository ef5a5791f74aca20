//! Cargo: the sparse registry protocol (the Cargo book, "Registries"), hosted and as a
//! pull-through mirror of crates.io.

pub mod index;
pub mod names;
pub mod proxy;
pub mod publish;
