//! Container builds: the source checkout, the Dockerfile, the engine and the registry.
pub mod container_yaml;
pub mod dockerfile;
pub mod engine;
pub mod opts;
pub mod registry;
pub mod source;
