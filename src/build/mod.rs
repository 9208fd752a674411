//! Container builds: the source checkout, the Dockerfile, the engine and the registry.
pub mod source;
