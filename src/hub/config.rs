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
    /// Seconds without `host.updateHost` after which the scheduler marks a host not ready
    /// (Koji's `ReadyTimeout`).
    pub ready_timeout: f64,
    /// Seconds a task may stay ASSIGNED without being opened before it is freed (`AssignTimeout`).
    pub assign_timeout: f64,
    /// Seconds an OPEN task's host may stay silent before the task is freed (`HostTimeout`).
    pub host_timeout: f64,
    /// Seconds a soft refusal keeps a task away from the refusing host (`SoftRefusalTimeout`).
    pub soft_refusal_timeout: f64,
    /// Seconds between periodic scheduler runs; 0 runs it only on events.
    pub scheduler_interval: f64,
    /// Tasks per host unless the host reports its own `maxjobs` (`MaxJobs`).
    pub max_jobs: i64,
    /// How far a task's weight may exceed a host's free capacity (`CapacityOvercommit`).
    pub capacity_overcommit: f64,
    /// Largest file a `rawUpload`/`uploadFile` may produce, in bytes.
    pub max_upload_size: u64,
    /// Most `host.getTasks(wait=N)` calls waiting at once; further callers get an answer at once.
    pub max_task_waiters: usize,
    /// PEM certificate chain: with `tls_key`, `listen` serves HTTPS instead of HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates client certificates are verified against; a client certificate is
    /// then requested on every connection but required only by `sslLogin`.
    pub client_ca: Option<PathBuf>,
    /// Subject attribute that names the user in `sslLogin` (Koji's `DNUsernameComponent`).
    pub dn_username_component: String,
    /// `sslLogin` creates unknown users (Koji's `LoginCreatesUser`).
    pub login_creates_user: bool,
    /// Subject DNs (RFC 2253, as `SSL_CLIENT_S_DN`) allowed to log in as another user with
    /// `sslLogin(proxyuser=...)` (Koji's `ProxyDNs`, there `|`-separated).
    pub proxy_dns: Vec<String>,
    /// A proxy may pass a `proxyauthtype` other than its own (Koji's `AllowProxyAuthType`).
    pub allow_proxy_auth_type: bool,
    /// Seconds a connection may take to send a request's headers (and a TLS handshake); 0 = no
    /// limit. Cuts off clients that open connections and dribble bytes (slowloris).
    pub header_read_timeout: f64,
    /// Seconds a `/kojihub` request body may go without a byte arriving; 0 = no limit. An idle
    /// limit, not a total one: a large `rawUpload` that keeps streaming is never cut.
    pub body_idle_timeout: f64,
    /// Failed `login`/`sslLogin` attempts per user, and per client address, within
    /// `login_failure_window` after which further attempts are refused unchecked; 0 = no limit.
    pub login_max_failures: u32,
    /// Seconds a failed login attempt counts against its user and address.
    pub login_failure_window: f64,
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
            ready_timeout: 180.0,
            assign_timeout: 300.0,
            host_timeout: 900.0,
            soft_refusal_timeout: 900.0,
            scheduler_interval: 5.0,
            max_jobs: 15,
            capacity_overcommit: 5.0,
            max_upload_size: 64 << 30,
            max_task_waiters: 256,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            dn_username_component: "CN".to_string(),
            login_creates_user: true,
            proxy_dns: Vec::new(),
            allow_proxy_auth_type: false,
            header_read_timeout: 30.0,
            body_idle_timeout: 60.0,
            login_max_failures: 10,
            login_failure_window: 300.0,
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
    pub ready_timeout: Option<f64>,
    pub assign_timeout: Option<f64>,
    pub host_timeout: Option<f64>,
    pub soft_refusal_timeout: Option<f64>,
    pub scheduler_interval: Option<f64>,
    pub max_jobs: Option<i64>,
    pub capacity_overcommit: Option<f64>,
    pub max_upload_size: Option<u64>,
    pub max_task_waiters: Option<usize>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub dn_username_component: Option<String>,
    pub login_creates_user: Option<bool>,
    pub proxy_dns: Option<Vec<String>>,
    pub allow_proxy_auth_type: Option<bool>,
    pub header_read_timeout: Option<f64>,
    pub body_idle_timeout: Option<f64>,
    pub login_max_failures: Option<u32>,
    pub login_failure_window: Option<f64>,
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
        macro_rules! take {
            ($($k:ident),*) => {$(if let Some(v) = f.$k { c.$k = v; })*};
        }
        take!(
            ready_timeout,
            assign_timeout,
            host_timeout,
            soft_refusal_timeout,
            scheduler_interval,
            max_jobs,
            capacity_overcommit,
            max_upload_size,
            max_task_waiters,
            dn_username_component,
            login_creates_user,
            proxy_dns,
            allow_proxy_auth_type,
            header_read_timeout,
            body_idle_timeout,
            login_max_failures,
            login_failure_window
        );
        c.tls_cert = f.tls_cert.or(c.tls_cert);
        c.tls_key = f.tls_key.or(c.tls_key);
        c.client_ca = f.client_ca.or(c.client_ca);
        Ok(c)
    }
}
