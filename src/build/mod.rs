//! Container builds: the source checkout, the Dockerfile, the engine, the registry and the image
//! archive.
pub mod archive;
pub mod container_yaml;
pub mod dockerfile;
pub mod engine;
pub mod opts;
pub mod registry;
pub mod source;
