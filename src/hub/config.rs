//! Hub settings: command-line flags, optionally from a TOML file (`--config`), flags winning.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Every setting of `containerbuild serve`; README lists them with their defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database, topdir and uploads live here.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Largest XML-RPC request body (Koji's `MaxRequestLength`).
    pub max_request_length: usize,
    /// Minutes after login (or renewal) when a session expires (Koji's `SessionRenewalTimeout`);
    /// 0 disables expiry.
    pub session_renewal_timeout: f64,
    /// Bind sessions to the client IP they logged in from (Koji's `CheckClientIP`).
    pub check_client_ip: bool,
    /// Refuse the pre-1.30 `?session-id=&session-key=` query-string sessions.
    pub disable_url_sessions: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8480)),
            max_request_length: 4 * 1024 * 1024,
            session_renewal_timeout: 1440.0,
            check_client_ip: false,
            disable_url_sessions: false,
        }
    }
}

/// The TOML file form; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub max_request_length: Option<usize>,
    pub session_renewal_timeout: Option<f64>,
    pub check_client_ip: Option<bool>,
    pub disable_url_sessions: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
}

impl Config {
    /// Applies a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let f: FileConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c = Config::default();
        if let Some(v) = f.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = f.listen {
            c.listen = v;
        }
        if let Some(v) = f.max_request_length {
            c.max_request_length = v;
        }
        if let Some(v) = f.session_renewal_timeout {
            c.session_renewal_timeout = v;
        }
        if let Some(v) = f.check_client_ip {
            c.check_client_ip = v;
        }
        if let Some(v) = f.disable_url_sessions {
            c.disable_url_sessions = v;
        }
        Ok(c)
    }
}
