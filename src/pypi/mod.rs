pub mod digest;
pub mod filename;
pub mod metadata;
pub mod multipart;
pub mod wheel;
