//! Content-generator metadata (Koji's `metadata_version` 0), shared by the builder, which
//! writes `metadata.json` the way atomic-reactor's `koji_import` does, and the hub, which reads
//! it in `CGImport`. Plain data types and pure functions, no I/O: the same shapes are checked on
//! both sides of the protocol.

pub mod metadata;

pub use metadata::{
    BuildInfo, Buildroot, CONTENT_GENERATOR, DockerExtra, ImageExtra, ImageIndex, ImageOutput,
    LayerSize, LogOutput, Metadata,
};
