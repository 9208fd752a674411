//! Koji's XML-RPC dialect: values, faults, the wire format and Python-style argument binding.
//!
//! This module knows nothing about the hub or the database; the hub and (later) the builder's
//! client both use it, so there is exactly one implementation of the dialect.

pub mod fault;
pub mod sig;
pub mod time;
pub mod value;
pub mod wire;

pub use fault::{Fault, FaultCode};
pub use sig::{Args, Param, Signature};
pub use value::{Struct, Value};
