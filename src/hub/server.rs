//! HTTP: `/kojihub` (XML-RPC), `/kojifiles/` (the topdir), plus the routes the caller adds (the
//! web pages under `/koji/`, composed by `main.rs`: the hub does not know the `web` module).
//!
//! Every response carries `Koji-Version`; XML-RPC errors are always faults with HTTP 200, because
//! the koji client retries any non-2xx status for ten minutes before giving up.
//!
//! The listener is our own accept loop on hyper rather than `axum::serve`: it has to terminate
//! TLS (and hand the verified client certificate to `sslLogin`) and to bound how long a client
//! may take over its request headers, neither of which `axum::serve` offers.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method as HttpMethod, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt as _;

use super::Hub;
use super::auth::Credentials;
use super::dispatch;
use super::files;
use super::scheduler;
use super::tls::{ClientCert, TlsPeer};
use super::upload;
use crate::xmlrpc::Fault;
use crate::xmlrpc::wire;

/// The version the stock client reads from the `Koji-Version` header (must be numeric).
pub const KOJI_VERSION: &str = "1.36.1";

/// The hub's routes merged with `extra` (e.g. the web pages); `Koji-Version` on every response.
pub fn router(hub: Arc<Hub>, extra: Router) -> Router {
    Router::new()
        .route("/kojihub", any(kojihub))
        .route("/kojihub/", any(kojihub))
        // The stock client posts `sslLogin` here (Apache requires the certificate on this path
        // only); it is the same XML-RPC endpoint.
        .route("/kojihub/ssllogin", any(kojihub))
        .route("/kojifiles/{*path}", get(files::serve))
        .route("/metrics", get(super::metrics::serve))
        .with_state(hub)
        .merge(extra)
        .layer(axum::middleware::map_response(add_version_header))
}

async fn add_version_header(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("Koji-Version", HeaderValue::from_static(KOJI_VERSION));
    resp
}

fn xml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn fault_response(f: &Fault) -> Response {
    xml_response(wire::write_fault(f))
}

/// Session credentials from the `Koji-Session-*` headers, else from the legacy query string.
fn credentials(headers: &HeaderMap, query: Option<&str>, url_sessions: bool) -> Credentials {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(id) = h("Koji-Session-Id") {
        return Credentials {
            session_id: Some(id),
            session_key: h("Koji-Session-Key"),
            callnum: h("Koji-Session-Callnum").or_else(|| h("Koji-Callnum")),
            tls: None,
        };
    }
    let mut c = Credentials::default();
    if let (true, Some(q)) = (url_sessions, query) {
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            match k {
                "session-id" => c.session_id = Some(v),
                "session-key" => c.session_key = Some(v),
                "callnum" => c.callnum = Some(v),
                _ => {}
            }
        }
    }
    c
}

async fn kojihub(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    let tls = req.extensions().get::<TlsPeer>().cloned();
    if req.method() != HttpMethod::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [
                (header::ALLOW, "POST"),
                (header::CONTENT_TYPE, "text/plain"),
            ],
            "Method Not Allowed\n",
        )
            .into_response();
    }
    let headers = req.headers().clone();
    let is_upload = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        == Some("application/octet-stream");
    let body = match secs(hub.config.body_idle_timeout) {
        Some(idle) => Body::new(IdleTimeout::new(req.into_body(), idle)),
        None => req.into_body(),
    };
    if is_upload {
        let mut creds = credentials(&headers, query.as_deref(), !hub.config.disable_url_sessions);
        creds.tls = tls;
        return upload::handle(hub, creds, query, Some(peer.ip()), headers, body).await;
    }
    let limit = hub.config.max_request_length;
    let mut body = body;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    if buf.len() + data.len() > limit {
                        return fault_response(&Fault::generic("Request too long"));
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Err(e) => {
                let timed_out = is_idle_timeout(&e);
                tracing::warn!(%peer, error = %e, "request body read failed");
                let status = if timed_out {
                    StatusCode::REQUEST_TIMEOUT
                } else {
                    StatusCode::BAD_REQUEST
                };
                return (
                    status,
                    [
                        (header::CONTENT_TYPE, "text/plain"),
                        (header::CONNECTION, "close"),
                    ],
                    format!("Invalid request: {e}\n"),
                )
                    .into_response();
            }
        }
    }
    if buf.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
            "Empty request\n",
        )
            .into_response();
    }
    let mut creds = credentials(&headers, query.as_deref(), !hub.config.disable_url_sessions);
    creds.tls = tls;
    let peer_ip = Some(peer.ip());
    // A call slot bounds the blocking threads doing hub work at once: beyond a few per core,
    // more threads only add context switches (the hub throughput bench lost a fifth of its
    // calls/s between 8 and 128 clients without this).
    let Ok(slot) = hub.call_slots.clone().acquire_owned().await else {
        return fault_response(&Fault::internal("the hub is shutting down"));
    };
    let h = hub.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let r = dispatch::handle(&h, &buf, &creds, peer_ip);
        drop(slot);
        r
    })
    .await;
    let reply = match reply {
        Ok(dispatch::Reply::Done(xml)) => Ok(xml),
        Ok(dispatch::Reply::Later(then)) => {
            let h = hub.clone();
            tokio::task::spawn_blocking(move || then(&h)).await
        }
        Err(e) => Err(e),
    };
    match reply {
        Ok(xml) => xml_response(xml),
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            fault_response(&Fault::internal(
                "the request handler failed; see the hub log",
            ))
        }
    }
}

/// A positive number of seconds as a duration; 0 (or less) means "no limit".
fn secs(s: f64) -> Option<Duration> {
    (s.is_finite() && s > 0.0).then(|| Duration::from_secs_f64(s))
}

/// Why a request body stopped: no byte arrived for the configured idle time.
#[derive(Debug, thiserror::Error)]
#[error("no request data for {0:?}; closing the connection")]
struct BodyIdle(Duration);

fn is_idle_timeout(e: &axum::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<BodyIdle>())
        || e.to_string().contains("no request data for")
}

/// A request body that fails once no frame arrived for `idle`: a client that sends its body a
/// byte at a time (slowloris) cannot hold a connection and a handler forever, while an upload
/// that keeps streaming is never cut, however long it takes.
struct IdleTimeout {
    inner: Body,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl IdleTimeout {
    fn new(inner: Body, idle: Duration) -> IdleTimeout {
        IdleTimeout {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl axum::body::HttpBody for IdleTimeout {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(r)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyIdle(this.idle))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves the hub's routes plus `extra` until `shutdown` resolves: HTTPS when the config names a
/// certificate and key ([`super::tls::server_config`]), else plain HTTP. Every connection gets
/// the header-read limit; requests see the peer address as `ConnectInfo` and, over TLS, a
/// [`TlsPeer`] with the verified client certificate.
pub async fn serve(
    hub: Arc<Hub>,
    extra: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = super::tls::from_config(&hub.config)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?
        .map(tokio_rustls::TlsAcceptor::from);
    let header_timeout = secs(hub.config.header_read_timeout);
    let periodic = scheduler::spawn_periodic(hub.clone());
    let app = router(hub, extra);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new());
    if let Some(t) = header_timeout {
        http.header_read_timeout(t);
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the open connections.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let (io, tls_peer) = match tls {
                None => (Either::Plain(tcp), None),
                Some(acceptor) => {
                    let handshake = acceptor.accept(tcp);
                    let stream = match header_timeout {
                        Some(t) => match tokio::time::timeout(t, handshake).await {
                            Ok(r) => r,
                            Err(_) => {
                                tracing::info!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        None => handshake.await,
                    };
                    let stream = match stream {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::info!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    let client = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|der| {
                            Arc::new(ClientCert::from_der(der.as_ref()).unwrap_or(ClientCert {
                                dn: String::new(),
                                attrs: Vec::new(),
                            }))
                        });
                    (Either::Tls(Box::new(stream)), Some(TlsPeer { client }))
                }
            };
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    if let Some(t) = &tls_peer {
                        req.extensions_mut().insert(t.clone());
                    }
                    app.clone().oneshot(req.map(Body::new))
                },
            );
            let conn = http.serve_connection(TokioIo::new(io), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if let Some(p) = periodic {
        p.abort();
    }
    graceful.shutdown().await;
    Ok(())
}

/// A plain or a TLS connection, as one I/O type for hyper.
enum Either {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

impl tokio::io::AsyncRead for Either {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Either::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Either::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Either {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Either::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Either::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Either::Plain(s) => Pin::new(s).poll_flush(cx),
            Either::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Either::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Either::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Either::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Either::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Either::Plain(s) => s.is_write_vectored(),
            Either::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[doc(hidden)]
pub fn _body_type_check(_: Body) {}
