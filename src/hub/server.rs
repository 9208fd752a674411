//! HTTP: `/kojihub` (XML-RPC), `/kojifiles/` (the topdir), plus the routes the caller adds (the
//! web pages under `/koji/`, composed by `main.rs`: the hub does not know the `web` module).
//!
//! Every response carries `Koji-Version`; XML-RPC errors are always faults with HTTP 200, because
//! the koji client retries any non-2xx status for ten minutes before giving up.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method as HttpMethod, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::BodyExt;

use super::Hub;
use super::auth::Credentials;
use super::dispatch;
use super::files;
use super::scheduler;
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
    if is_upload {
        let creds = credentials(&headers, query.as_deref(), !hub.config.disable_url_sessions);
        return upload::handle(hub, creds, query, Some(peer.ip()), headers, req.into_body()).await;
    }
    let limit = hub.config.max_request_length;
    let mut body = req.into_body();
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
                return (StatusCode::BAD_REQUEST, format!("Invalid request: {e}\n"))
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
    let creds = credentials(&headers, query.as_deref(), !hub.config.disable_url_sessions);
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

/// Serves the hub's routes plus `extra` until `shutdown` resolves.
pub async fn serve(
    hub: Arc<Hub>,
    extra: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let periodic = scheduler::spawn_periodic(hub.clone());
    let app = router(hub, extra).into_make_service_with_connect_info::<SocketAddr>();
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    if let Some(p) = periodic {
        p.abort();
    }
    r
}

#[doc(hidden)]
pub fn _body_type_check(_: Body) {}
