//! Container builds: the source checkout, the Dockerfile, the engine and the registry.
pub mod container_yaml;
pub mod dockerfile;
pub mod opts;
pub mod source;
