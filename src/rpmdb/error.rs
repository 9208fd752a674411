//! Errors. Image content is untrusted, so every malformed byte ends up here instead of in a panic;
//! messages name the file and, where there is one, the package instance, because that is what an
//! operator needs to find the broken layer.

use std::path::PathBuf;

/// Why one header blob could not be read. Positions are byte offsets into the blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header blob is {len} bytes, shorter than its 8-byte preamble")]
    TooShort { len: usize },
    #[error("header has {il} index entries (limit 65535)")]
    TooManyEntries { il: u32 },
    #[error("header data store is {dl} bytes (limit 0x0fffffff)")]
    DataTooLarge { dl: u32 },
    #[error("header has no index entries")]
    Empty,
    #[error("header blob is {len} bytes but 8 + 16*{il} + {dl} = {expected}")]
    SizeMismatch {
        len: usize,
        il: u32,
        dl: u32,
        expected: u64,
    },
    #[error("invalid region: {0}")]
    Region(String),
    #[error("entry {index} (tag {tag}): {reason}")]
    Entry {
        index: usize,
        tag: i32,
        reason: String,
    },
    #[error("tag {tag} has type {found}, expected {expected}")]
    WrongType {
        tag: i32,
        found: u32,
        expected: &'static str,
    },
    #[error("required tag {0} ({1}) is missing")]
    Missing(i32, &'static str),
    #[error("file list: {0}")]
    Files(String),
}

/// Why an OpenPGP signature packet yielded no key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgpError {
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("packet tag {0} is not a signature (2)")]
    NotSignature(u8),
    #[error("not an OpenPGP packet (first byte {0:#04x})")]
    NotPacket(u8),
    #[error("unsupported signature version {0}")]
    Version(u8),
    #[error("malformed v3 signature")]
    BadV3,
    #[error("malformed subpacket at byte {0}")]
    Subpacket(usize),
    #[error("no issuer key id or fingerprint")]
    NoIssuer,
}

#[derive(Debug, thiserror::Error)]
pub enum RpmdbError {
    #[error("no rpm database in {root} (looked in /var/lib/rpm and /usr/lib/sysimage/rpm)")]
    NotFound { root: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: more than 40 symbolic links while resolving inside {root}")]
    SymlinkLoop { path: PathBuf, root: PathBuf },
    #[error("{path}: not an rpm database (no sqlite, BerkeleyDB hash or NDB magic)")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: sqlite: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: corrupt database: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: package {instance}: {source}")]
    Package {
        path: PathBuf,
        instance: u32,
        #[source]
        source: HeaderError,
    },
}
