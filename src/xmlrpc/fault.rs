//! Koji faults: the codes `koji.convertFault` maps back to exception classes on the client.

use super::value::{Struct, Value};

/// Fault codes of `koji.GenericError` and its subclasses (koji/__init__.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum FaultCode {
    /// A non-Koji exception on the hub; the client raises a plain `xmlrpc.client.Fault`.
    Unknown = 1,
    Generic = 1000,
    Lock = 1001,
    Auth = 1002,
    Tag = 1003,
    ActionNotAllowed = 1004,
    Build = 1005,
    AuthLock = 1006,
    AuthExpired = 1007,
    Sequence = 1008,
    Retry = 1009,
    PreBuild = 1010,
    PostBuild = 1011,
    Buildroot = 1012,
    FunctionDeprecated = 1013,
    ServerOffline = 1014,
    Plugin = 1016,
    Parameter = 1019,
    Import = 1020,
    Configuration = 1021,
    NameValidation = 1024,
}

/// A fault as it travels: a code and the text the CLI prints after the class name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Fault {
    pub code: i32,
    pub message: String,
}

impl Fault {
    pub fn new(code: FaultCode, message: impl Into<String>) -> Self {
        Fault {
            code: code as i32,
            message: message.into(),
        }
    }

    /// A fault with a code outside Koji's table (e.g. 2001 from the container plugin).
    pub fn raw(code: i32, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
        }
    }

    pub fn generic(message: impl Into<String>) -> Self {
        Self::new(FaultCode::Generic, message)
    }

    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(FaultCode::ActionNotAllowed, message)
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(FaultCode::Auth, message)
    }

    pub fn parameter(message: impl Into<String>) -> Self {
        Self::new(FaultCode::Parameter, message)
    }

    pub fn tag(message: impl Into<String>) -> Self {
        Self::new(FaultCode::Tag, message)
    }

    /// A hub-side failure that is not the caller's fault; the text never leaks internals beyond
    /// what helps an admin find the log line.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::raw(
            FaultCode::Unknown as i32,
            format!("<class 'InternalError'>: {message}"),
        )
    }

    /// The `{faultCode, faultString}` struct used inside multiCall answers and stored task results.
    pub fn to_struct(&self) -> Struct {
        Struct::new()
            .with("faultCode", Value::Int(i64::from(self.code)))
            .with("faultString", self.message.clone())
    }
}
