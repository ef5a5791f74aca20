pub mod index;
pub mod names;
pub mod publish;
