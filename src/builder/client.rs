//! The Koji client side of the wire: XML-RPC calls over HTTP with Koji's session rules.
//!
//! What the stock client (`koji.ClientSession`) does and this one does too:
//! - every call after login carries `Koji-Session-Id`, `-Key` and `-Callnum`; the callnum grows by
//!   one per call and a retry of the same call resends the same callnum, so a retried write whose
//!   first attempt committed gets RetryError (1009) instead of running twice;
//! - keyword arguments travel as a trailing struct flagged `__starstar`;
//! - faults are never retried (except ServerOffline); connection errors, HTTP errors and garbled
//!   answers are, with a growing pause;
//! - an expired session (AuthExpired, 1007) is renewed by logging in again with `renew=True`;
//! - over HTTPS, a client certificate (koji's `cert`, certificate and key in one PEM file) is
//!   presented on every connection, and `sslLogin` is posted to `<hub>/ssllogin`.
//!
//! Calls on one session are strictly sequential (one lock held for the whole call, retries
//! included): the hub refuses a callnum lower than one it already recorded (SequenceError), so two
//! overlapping calls on one session could fail each other. Concurrent work uses subsessions.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Mutex;

use crate::xmlrpc::{Fault, FaultCode, Struct, Value, wire};

/// How often and how patiently a call is retried after connection or HTTP errors.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt (Koji's `max_retries`).
    pub max_retries: u32,
    /// The longest pause between two attempts; pauses grow 0 s, 1 s, 2 s, 4 s, … up to this.
    pub max_interval: Duration,
}

impl RetryPolicy {
    /// For the builder daemon: about two minutes of retries per call; the daemon loop itself
    /// keeps going after that.
    pub const DAEMON: RetryPolicy = RetryPolicy {
        max_retries: 12,
        max_interval: Duration::from_secs(15),
    };
    /// No retries at all (logout, shutdown paths).
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        max_interval: Duration::ZERO,
    };

    fn pause(&self, retry: u32) -> Duration {
        if retry <= 1 {
            return Duration::ZERO;
        }
        let secs = 1u64 << (retry - 2).min(16);
        Duration::from_secs(secs).min(self.max_interval)
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The hub answered with a fault; never retried.
    #[error("{}: {}", fault_class(.0.code), .0.message)]
    Fault(Fault),
    /// The hub could not be reached, or kept answering with HTTP errors or unreadable XML.
    #[error("cannot reach the hub at {url} after {attempts} attempts: {detail}")]
    Transport {
        url: String,
        attempts: u32,
        detail: String,
    },
    /// An answer that parsed but does not have the shape Koji defines.
    #[error("unexpected answer from the hub to {method}: {detail}")]
    Protocol { method: String, detail: String },
    /// The client has no session where one is needed.
    #[error("not logged in")]
    NotLoggedIn,
    /// The TLS settings cannot be used (unreadable PEM files, no CA for an `https://` hub).
    #[error("TLS settings: {0}")]
    Tls(String),
}

/// How the client talks to an `https://` hub.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM file with the client certificate and its private key (koji's `cert`): presented on
    /// every connection, and the identity [`KojiClient::ssl_login`] logs in with.
    pub cert: Option<PathBuf>,
    /// PEM CA certificates the hub's certificate must chain to (koji's `serverca`).
    pub serverca: Option<PathBuf>,
    /// DER of the one hub certificate to accept, whatever it names: an embedded builder talking
    /// to its own hub over loopback, whose certificate names the public host, not 127.0.0.1.
    pub pinned: Option<Vec<u8>>,
}

impl ClientTls {
    fn is_empty(&self) -> bool {
        self.cert.is_none() && self.serverca.is_none() && self.pinned.is_none()
    }
}

fn read_pem_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bad = |e: String| ClientError::Tls(format!("{what} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(certs)
}

/// The rustls settings for `tls` (ring provider): roots from `serverca` or the pinned
/// certificate, and the client certificate when given.
fn rustls_config(url: &str, tls: &ClientTls) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let builder = match (&tls.pinned, &tls.serverca) {
        (Some(der), _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedServer {
                der: der.clone(),
                provider,
            })),
        (None, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_pem_certs("server CA", ca)? {
                roots
                    .add(c)
                    .map_err(|e| ClientError::Tls(format!("server CA {}: {e}", ca.display())))?;
            }
            builder.with_root_certificates(roots)
        }
        (None, None) if url.starts_with("https:") => {
            return Err(ClientError::Tls(format!(
                "{url} is HTTPS: name the CA that signed the hub's certificate (--serverca)"
            )));
        }
        (None, None) => builder.with_root_certificates(rustls::RootCertStore::empty()),
    };
    match &tls.cert {
        Some(path) => {
            let chain = read_pem_certs("client certificate", path)?;
            let key = PrivateKeyDer::from_pem_file(path).map_err(|e| {
                ClientError::Tls(format!(
                    "client certificate {}: no private key ({e}); koji's cert file holds the \
                     certificate and its key",
                    path.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                ClientError::Tls(format!("client certificate {}: {e}", path.display()))
            })
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Accepts exactly one server certificate (see [`ClientTls::pinned`]); signatures are still
/// checked, so the peer must hold that certificate's key.
#[derive(Debug)]
struct PinnedServer {
    der: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the hub presented a different certificate than the pinned one".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Koji's exception class name for a fault code, as `koji.convertFault` would pick it.
pub fn fault_class(code: i32) -> &'static str {
    match code {
        1000 => "GenericError",
        1001 => "LockError",
        1002 => "AuthError",
        1003 => "TagError",
        1004 => "ActionNotAllowed",
        1005 => "BuildError",
        1006 => "AuthLockError",
        1007 => "AuthExpired",
        1008 => "SequenceError",
        1009 => "RetryError",
        1010 => "PreBuildError",
        1011 => "PostBuildError",
        1012 => "BuildrootError",
        1013 => "FunctionDeprecated",
        1014 => "ServerOffline",
        1015 => "LiveCDError",
        1016 => "PluginError",
        1017 => "CallbackError",
        1018 => "ApplianceError",
        1019 => "ParameterError",
        1020 => "ImportError",
        1021 => "ConfigurationError",
        1022 => "LiveMediaError",
        1023 => "GSSAPIAuthError",
        1024 => "NameValidationError",
        _ => "Fault",
    }
}

impl ClientError {
    /// The fault code when the hub answered with a fault.
    pub fn fault_code(&self) -> Option<i32> {
        match self {
            ClientError::Fault(f) => Some(f.code),
            _ => None,
        }
    }

    /// True when the hub may simply have been unreachable (the call may be tried again later).
    pub fn is_transport(&self) -> bool {
        matches!(self, ClientError::Transport { .. })
    }
}

impl From<Fault> for ClientError {
    fn from(f: Fault) -> Self {
        ClientError::Fault(f)
    }
}

/// A task handler reports client failures as faults: hub faults keep their code, anything else
/// becomes code 1 with the message.
impl From<ClientError> for Fault {
    fn from(e: ClientError) -> Fault {
        match e {
            ClientError::Fault(f) => f,
            other => Fault::raw(FaultCode::Unknown as i32, other.to_string()),
        }
    }
}

/// A logged-in session as `login` / `subsession` return it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub id: i64,
    pub key: String,
}

#[derive(Debug, Default)]
struct State {
    session: Option<SessionInfo>,
    /// The callnum the next call sends.
    callnum: i64,
    /// How to renew an expired session.
    creds: Option<Login>,
    exclusive: bool,
}

/// How the session was obtained, to renew it the same way.
#[derive(Debug, Clone)]
enum Login {
    Password(String, String),
    Certificate,
}

/// A Koji client for one session (or none, for anonymous calls).
pub struct KojiClient {
    http: reqwest::Client,
    url: String,
    retry: std::sync::Mutex<RetryPolicy>,
    state: Mutex<State>,
}

/// Python's `urlencode` (quote_plus) leaves letters, digits and `_.-~` alone.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Longest time one HTTP request may take (a long-polling `host.getTasks` stays well below it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Attempts of one `rawUpload` chunk (Koji's `fast_incremental_upload` uses 5 retries).
const UPLOAD_ATTEMPTS: u32 = 5;

/// Splits a decoded Koji request into positional parameters and keyword arguments
/// (`koji.decode_args`): a trailing struct with a true `__starstar` member holds the kwargs.
pub fn decode_args(mut params: Vec<Value>) -> (Vec<Value>, Struct) {
    let is_kw = matches!(params.last(), Some(Value::Struct(s)) if s.get("__starstar").is_some_and(Value::truthy));
    if is_kw && let Some(Value::Struct(mut s)) = params.pop() {
        s.remove("__starstar");
        return (params, s);
    }
    (params, Struct::new())
}

/// The inverse of [`decode_args`] (`koji.encode_args`): kwargs only when there are any.
pub fn encode_args(mut args: Vec<Value>, kwargs: Struct) -> Vec<Value> {
    if !kwargs.is_empty() {
        let mut s = kwargs;
        s.insert("__starstar", true);
        args.push(Value::Struct(s));
    }
    args
}

/// Adler-32 as Koji's `fileverify=adler32` reports it: eight lower-case hex digits.
pub fn adler32_hex(data: &[u8]) -> String {
    format!("{:08x}", adler2::adler32_slice(data))
}

enum Attempt {
    Answer(Result<Value, Fault>),
    Retryable(String),
}

impl KojiClient {
    /// A client for the hub at `url` (e.g. `http://127.0.0.1:8480/kojihub`), not logged in.
    pub fn new(url: &str, retry: RetryPolicy) -> Result<KojiClient, ClientError> {
        Self::with_tls(url, retry, &ClientTls::default())
    }

    /// A client for the hub at `url` with TLS settings (an `https://` hub, a client
    /// certificate), not logged in.
    pub fn with_tls(
        url: &str,
        retry: RetryPolicy,
        tls: &ClientTls,
    ) -> Result<KojiClient, ClientError> {
        let mut builder = reqwest::Client::builder()
            .user_agent("koji/1")
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT);
        if !tls.is_empty() || url.starts_with("https:") {
            builder = builder.use_preconfigured_tls(rustls_config(url, tls)?);
        }
        let http = builder.build().map_err(|e| ClientError::Transport {
            url: url.to_string(),
            attempts: 0,
            detail: format!("cannot create the HTTP client: {e}"),
        })?;
        Ok(Self::with_http(http, url, retry))
    }

    fn with_http(http: reqwest::Client, url: &str, retry: RetryPolicy) -> KojiClient {
        KojiClient {
            http,
            url: url.to_string(),
            retry: std::sync::Mutex::new(retry),
            state: Mutex::new(State::default()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The retry policy of later calls.
    pub fn retry_policy(&self) -> RetryPolicy {
        *self.retry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the retry policy of later calls (e.g. fewer retries while shutting down).
    pub fn set_retry_policy(&self, p: RetryPolicy) {
        *self.retry.lock().unwrap_or_else(|p| p.into_inner()) = p;
    }

    /// The current session, if logged in.
    pub async fn session(&self) -> Option<SessionInfo> {
        self.state.lock().await.session.clone()
    }

    /// Calls `method(*args)`.
    pub async fn call(&self, method: &str, args: Vec<Value>) -> Result<Value, ClientError> {
        self.call_kw(method, args, Struct::new()).await
    }

    /// Calls `method(*args, **kwargs)`.
    pub async fn call_kw(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Struct,
    ) -> Result<Value, ClientError> {
        let body = wire::write_call(method, &encode_args(args, kwargs));
        let mut st = self.state.lock().await;
        let r = self
            .send_locked(&mut st, method, &body, self.retry_policy())
            .await;
        match r {
            Err(ClientError::Fault(f))
                if f.code == FaultCode::AuthExpired as i32
                    && st.creds.is_some()
                    && method != "login"
                    && method != "sslLogin" =>
            {
                tracing::info!(method, "session expired; renewing it");
                self.renew_locked(&mut st).await?;
                self.send_locked(&mut st, method, &body, self.retry_policy())
                    .await
            }
            other => other,
        }
    }

    /// One call with retries, holding the session lock.
    async fn send_locked(
        &self,
        st: &mut State,
        method: &str,
        body: &str,
        retry: RetryPolicy,
    ) -> Result<Value, ClientError> {
        self.send_locked_to(st, &self.url, method, body, retry)
            .await
    }

    /// [`Self::send_locked`] to another URL of the hub (`sslLogin` goes to `<hub>/ssllogin`).
    async fn send_locked_to(
        &self,
        st: &mut State,
        url: &str,
        method: &str,
        body: &str,
        retry: RetryPolicy,
    ) -> Result<Value, ClientError> {
        let headers = Self::next_headers(st);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self
                .send_once(url, "text/xml", body.as_bytes().to_vec(), &headers)
                .await
            {
                Attempt::Answer(Ok(v)) => return Ok(v),
                Attempt::Answer(Err(f)) if f.code == FaultCode::ServerOffline as i32 => {
                    if attempt > retry.max_retries {
                        return Err(ClientError::Fault(f));
                    }
                    tracing::warn!(method, attempt, "hub is offline; retrying");
                }
                Attempt::Answer(Err(f)) => return Err(ClientError::Fault(f)),
                Attempt::Retryable(detail) => {
                    if attempt > retry.max_retries {
                        return Err(ClientError::Transport {
                            url: self.url.clone(),
                            attempts: attempt,
                            detail,
                        });
                    }
                    tracing::warn!(method, attempt, error = %detail, "hub call failed; retrying");
                }
            }
            tokio::time::sleep(retry.pause(attempt)).await;
        }
    }

    /// Session headers for the next call; advances the callnum.
    fn next_headers(st: &mut State) -> Vec<(&'static str, String)> {
        match &st.session {
            Some(s) => {
                let h = vec![
                    ("Koji-Session-Id", s.id.to_string()),
                    ("Koji-Session-Key", s.key.clone()),
                    ("Koji-Session-Callnum", st.callnum.to_string()),
                ];
                st.callnum += 1;
                h
            }
            None => Vec::new(),
        }
    }

    async fn send_once(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&'static str, String)],
    ) -> Attempt {
        let mut req = self
            .http
            .post(url)
            .header("Content-Type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retryable(error_chain(&e)),
        };
        let status = resp.status();
        if !status.is_success() {
            return Attempt::Retryable(format!("HTTP {status}"));
        }
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retryable(format!("reading the answer: {}", error_chain(&e)));
            }
        };
        match wire::parse_response(&bytes) {
            Ok(r) => Attempt::Answer(r),
            Err(e) => Attempt::Retryable(format!("unreadable answer: {}", e.0)),
        }
    }

    fn parse_sinfo(method: &str, v: &Value) -> Result<SessionInfo, ClientError> {
        let bad = |detail: &str| ClientError::Protocol {
            method: method.to_string(),
            detail: detail.to_string(),
        };
        let s = v.as_struct().ok_or_else(|| bad("not a struct"))?;
        let id = s
            .get("session-id")
            .and_then(Value::as_int)
            .ok_or_else(|| bad("no session-id"))?;
        let key = s
            .get("session-key")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no session-key"))?;
        Ok(SessionInfo {
            id,
            key: key.to_string(),
        })
    }

    /// `login(user, password)`; the client then carries the new session.
    pub async fn login(&self, user: &str, password: &str) -> Result<SessionInfo, ClientError> {
        let mut st = self.state.lock().await;
        st.session = None;
        let body = wire::write_call(
            "login",
            &encode_args(
                vec![Value::str(user), Value::str(password)],
                Struct::new().with("opts", Value::Nil),
            ),
        );
        let v = self
            .send_locked(&mut st, "login", &body, self.retry_policy())
            .await?;
        let sinfo = Self::parse_sinfo("login", &v)?;
        st.session = Some(sinfo.clone());
        st.callnum = 0;
        st.creds = Some(Login::Password(user.to_string(), password.to_string()));
        st.exclusive = false;
        Ok(sinfo)
    }

    /// Where the stock client posts `sslLogin`: `<hub>/ssllogin`.
    fn ssllogin_url(&self) -> String {
        format!("{}/ssllogin", self.url.trim_end_matches('/'))
    }

    /// `sslLogin(proxyuser=None)` with the client certificate of [`ClientTls::cert`] (kojid's
    /// `ssl_login`); the client then carries the new session.
    pub async fn ssl_login(&self) -> Result<SessionInfo, ClientError> {
        let mut st = self.state.lock().await;
        st.session = None;
        let body = wire::write_call(
            "sslLogin",
            &encode_args(vec![], Struct::new().with("proxyuser", Value::Nil)),
        );
        let url = self.ssllogin_url();
        let v = self
            .send_locked_to(&mut st, &url, "sslLogin", &body, self.retry_policy())
            .await?;
        let sinfo = Self::parse_sinfo("sslLogin", &v)?;
        st.session = Some(sinfo.clone());
        st.callnum = 0;
        st.creds = Some(Login::Certificate);
        st.exclusive = false;
        Ok(sinfo)
    }

    /// Renews an expired session in place (`login(..., renew=True, exclusive=...)`).
    async fn renew_locked(&self, st: &mut State) -> Result<(), ClientError> {
        let (user, password) = match st.creds.clone() {
            Some(Login::Password(u, p)) => (u, p),
            Some(Login::Certificate) => {
                let body = wire::write_call(
                    "sslLogin",
                    &encode_args(
                        vec![],
                        Struct::new()
                            .with("proxyuser", Value::Nil)
                            .with("renew", true)
                            .with("exclusive", st.exclusive),
                    ),
                );
                let url = self.ssllogin_url();
                let v = self
                    .send_locked_to(st, &url, "sslLogin", &body, self.retry_policy())
                    .await?;
                st.session = Some(Self::parse_sinfo("sslLogin", &v)?);
                st.callnum = 0;
                return Ok(());
            }
            None => return Err(ClientError::NotLoggedIn),
        };
        let body = wire::write_call(
            "login",
            &encode_args(
                vec![Value::str(user), Value::str(password)],
                Struct::new()
                    .with("opts", Value::Nil)
                    .with("renew", true)
                    .with("exclusive", st.exclusive),
            ),
        );
        let v = self
            .send_locked(st, "login", &body, self.retry_policy())
            .await?;
        st.session = Some(Self::parse_sinfo("login", &v)?);
        st.callnum = 0;
        Ok(())
    }

    /// `exclusiveSession(force=...)`; AuthLockError (1006) when another session holds the lock.
    pub async fn exclusive_session(&self, force: bool) -> Result<(), ClientError> {
        self.call_kw(
            "exclusiveSession",
            vec![],
            Struct::new().with("force", force),
        )
        .await?;
        self.state.lock().await.exclusive = true;
        Ok(())
    }

    /// `subsession()`: a new client on a child session of this one (its own callnum from 0).
    pub async fn subsession(&self) -> Result<KojiClient, ClientError> {
        let v = self.call("subsession", vec![]).await?;
        let sinfo = Self::parse_sinfo("subsession", &v)?;
        let child = Self::with_http(self.http.clone(), &self.url, self.retry_policy());
        {
            let mut st = child.state.lock().await;
            st.session = Some(sinfo);
            st.callnum = 0;
        }
        Ok(child)
    }

    /// `logout()`; not retried (as Koji), and the client forgets the session either way.
    pub async fn logout(&self) -> Result<(), ClientError> {
        let mut st = self.state.lock().await;
        if st.session.is_none() {
            return Ok(());
        }
        let body = wire::write_call(
            "logout",
            &encode_args(vec![], Struct::new().with("session_id", Value::Nil)),
        );
        let r = self
            .send_locked(&mut st, "logout", &body, RetryPolicy::NONE)
            .await;
        st.session = None;
        st.creds = None;
        r.map(|_| ())
    }

    /// `logoutChild(session_id)`: closes a subsession of this session.
    pub async fn logout_child(&self, session_id: i64) -> Result<(), ClientError> {
        self.call("logoutChild", vec![Value::Int(session_id)])
            .await
            .map(|_| ())
    }

    /// Uploads one chunk with `rawUpload` (`POST <hub>?filename=&filepath=&fileverify=adler32&
    /// offset=[&overwrite=1]`, body `application/octet-stream`) and checks the size and adler32
    /// the hub reports. Up to five attempts, each with a new callnum (a re-sent chunk at the same
    /// offset with `overwrite` is harmless); faults other than RetryError end it at once.
    pub async fn raw_upload(
        &self,
        filepath: &str,
        filename: &str,
        offset: u64,
        data: &[u8],
        overwrite: bool,
    ) -> Result<(), ClientError> {
        let url = format!(
            "{}?filename={}&filepath={}&fileverify=adler32&offset={}{}",
            self.url,
            utf8_percent_encode(filename, QUERY),
            utf8_percent_encode(filepath, QUERY),
            offset,
            if overwrite { "&overwrite=1" } else { "" }
        );
        let want_digest = adler32_hex(data);
        let mut last = String::new();
        for attempt in 1..=UPLOAD_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 2).min(3))).await;
            }
            let answer = {
                let mut st = self.state.lock().await;
                let headers = Self::next_headers(&mut st);
                self.send_once(&url, "application/octet-stream", data.to_vec(), &headers)
                    .await
            };
            match answer {
                Attempt::Answer(Ok(v)) => {
                    let s = v.as_struct();
                    let size = s.and_then(|s| s.get("size")).and_then(Value::as_int);
                    let digest = s.and_then(|s| s.get("hexdigest")).and_then(Value::as_str);
                    if size == Some(data.len() as i64) && digest == Some(want_digest.as_str()) {
                        return Ok(());
                    }
                    last = format!(
                        "the hub stored {size:?} bytes with adler32 {digest:?}, expected {} bytes with {want_digest}",
                        data.len()
                    );
                }
                Attempt::Answer(Err(f))
                    if f.code == FaultCode::Retry as i32
                        || f.code == FaultCode::ServerOffline as i32 =>
                {
                    last = f.message;
                }
                Attempt::Answer(Err(f)) => return Err(ClientError::Fault(f)),
                Attempt::Retryable(detail) => last = detail,
            }
            tracing::warn!(filepath, filename, offset, attempt, error = %last, "rawUpload failed");
        }
        Err(ClientError::Transport {
            url: self.url.clone(),
            attempts: UPLOAD_ATTEMPTS,
            detail: format!("rawUpload of {filepath}/{filename} at offset {offset}: {last}"),
        })
    }

    /// `host.closeTask(task_id, response)`. A RetryError means an earlier attempt of this very
    /// call committed, so it counts as done.
    pub async fn close_task(&self, task_id: i64, response_xml: &str) -> Result<(), ClientError> {
        self.finish_task("host.closeTask", task_id, response_xml)
            .await
    }

    /// `host.failTask(task_id, response)`; RetryError counts as done, as for [`Self::close_task`].
    pub async fn fail_task(&self, task_id: i64, fault_xml: &str) -> Result<(), ClientError> {
        self.finish_task("host.failTask", task_id, fault_xml).await
    }

    async fn finish_task(&self, method: &str, task_id: i64, xml: &str) -> Result<(), ClientError> {
        match self
            .call(method, vec![Value::Int(task_id), Value::str(xml)])
            .await
        {
            Ok(_) => Ok(()),
            Err(ClientError::Fault(f)) if f.code == FaultCode::Retry as i32 => {
                tracing::info!(
                    task_id,
                    method,
                    "RetryError: the first attempt was recorded"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// A shared client.
pub type Client = Arc<KojiClient>;

/// The error and its sources on one line (reqwest hides the interesting part in `source()`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let kw = Struct::new().with("soft", false);
        let enc = encode_args(vec![Value::Int(1)], kw.clone());
        assert_eq!(enc.len(), 2);
        let (args, back) = decode_args(enc);
        assert_eq!(args, vec![Value::Int(1)]);
        assert_eq!(back, kw);
        let (args, back) = decode_args(vec![Value::Struct(Struct::new().with("a", 1))]);
        assert_eq!(args.len(), 1);
        assert!(back.is_empty());
        assert_eq!(encode_args(vec![], Struct::new()), vec![]);
    }

    #[test]
    fn adler32_like_zlib() {
        // zlib.adler32(b'hello world') == 0x1a0b045d
        assert_eq!(adler32_hex(b"hello world"), "1a0b045d");
        assert_eq!(adler32_hex(b""), "00000001");
    }

    #[test]
    fn retry_pauses_grow_and_cap() {
        let p = RetryPolicy {
            max_retries: 10,
            max_interval: Duration::from_secs(5),
        };
        let v: Vec<u64> = (1..=6).map(|i| p.pause(i).as_secs()).collect();
        assert_eq!(v, vec![0, 1, 2, 4, 5, 5]);
    }

    /// A fake hub: records `(query, headers, body)` and answers from a script.
    mod fake {
        use std::sync::{Arc, Mutex};

        use axum::body::Bytes;
        use axum::extract::{RawQuery, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::{IntoResponse, Response};

        pub type Seen = Arc<Mutex<Vec<(Option<String>, HeaderMap, Bytes)>>>;
        pub type Script = Arc<Mutex<Vec<Response>>>;

        async fn handle(
            State((seen, script)): State<(Seen, Script)>,
            RawQuery(q): RawQuery,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            seen.lock().unwrap().push((q, headers, body));
            let mut s = script.lock().unwrap();
            if s.is_empty() {
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            } else {
                s.remove(0)
            }
        }

        pub async fn start(script: Vec<Response>) -> (String, Seen) {
            let seen: Seen = Arc::default();
            let app = axum::Router::new()
                .route("/kojihub", axum::routing::post(handle))
                .with_state((seen.clone(), Arc::new(Mutex::new(script))));
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/kojihub", l.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(l, app).await });
            (url, seen)
        }

        pub fn xml(body: String) -> Response {
            ([("Content-Type", "text/xml")], body).into_response()
        }
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            max_interval: Duration::from_millis(10),
        }
    }

    fn header(h: &axum::http::HeaderMap, k: &str) -> String {
        h.get(k)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn retries_keep_the_callnum_and_retry_error_closes() {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let sinfo = Struct::new()
            .with("session-id", 7)
            .with("session-key", "7-abc")
            .with("header-auth", true);
        let (url, seen) = fake::start(vec![
            fake::xml(wire::write_response(&Value::Struct(sinfo))),
            fake::xml(wire::write_response(&Value::Nil)),
            StatusCode::BAD_GATEWAY.into_response(),
            fake::xml(wire::write_fault(&Fault::new(
                FaultCode::Retry,
                "unable to retry call 1",
            ))),
            fake::xml(wire::write_fault(&Fault::generic("nope"))),
        ])
        .await;
        let c = KojiClient::new(&url, quick()).unwrap();
        c.login("b1", "pw").await.unwrap();
        c.call_kw(
            "host.refuseTask",
            vec![Value::Int(3)],
            Struct::new().with("soft", false),
        )
        .await
        .unwrap();
        c.close_task(3, "<methodResponse/>").await.unwrap();
        let err = c
            .call("getTaskInfo", vec![Value::Int(3)])
            .await
            .unwrap_err();
        assert_eq!(err.fault_code(), Some(1000));
        assert_eq!(err.to_string(), "GenericError: nope");

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 5, "a fault is not retried");
        assert_eq!(header(&seen[0].1, "Koji-Session-Id"), "");
        let calls: Vec<(String, String)> = seen[1..]
            .iter()
            .map(|(_, h, _)| {
                (
                    header(h, "Koji-Session-Id"),
                    header(h, "Koji-Session-Callnum"),
                )
            })
            .collect();
        let want = [("7", "0"), ("7", "1"), ("7", "1"), ("7", "2")];
        assert_eq!(
            calls,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
        assert_eq!(seen[2].2, seen[3].2, "a retry resends the same body");
        let call = wire::parse_call(&seen[1].2).unwrap();
        assert_eq!(call.name, "host.refuseTask");
        let kw = Struct::new().with("soft", false).with("__starstar", true);
        assert_eq!(call.params, vec![Value::Int(3), Value::Struct(kw)]);
    }

    #[tokio::test]
    async fn raw_upload_checks_size_and_digest() {
        let good = Struct::new()
            .with("size", 5)
            .with("fileverify", "adler32")
            .with("offset", 10)
            .with("hexdigest", adler32_hex(b"hello"));
        let bad = good.clone().with("hexdigest", "00000000");
        let (url, seen) = fake::start(vec![
            fake::xml(wire::write_response(&Value::Struct(bad))),
            fake::xml(wire::write_response(&Value::Struct(good))),
        ])
        .await;
        let c = KojiClient::new(&url, quick()).unwrap();
        c.raw_upload("tasks/3/3", "a b.log", 10, b"hello", true)
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0].0.as_deref(),
            Some(
                "filename=a%20b.log&filepath=tasks%2F3%2F3&fileverify=adler32&offset=10&overwrite=1"
            )
        );
        assert_eq!(
            header(&seen[0].1, "Content-Type"),
            "application/octet-stream"
        );
        assert_eq!(&seen[1].2[..], b"hello");
    }

    #[test]
    fn query_encoding_like_python() {
        let s = utf8_percent_encode("tasks/1/1 a+b", QUERY).to_string();
        assert_eq!(s, "tasks%2F1%2F1%20a%2Bb");
    }
}
