//! Server-rendered admin pages under `/koji/` (read only, anonymous), in the spirit of kojiweb:
//! every page gets its data through the hub's own XML-RPC method implementations
//! ([`crate::hub::dispatch::call_anonymous`]), never from the store directly. Contract:
//! `plugin-spec/web.md`.
//!
//! Dependencies point one way: `web` uses `hub`; the hub knows nothing of this module and
//! `main.rs` composes the two routers.

pub mod html;
mod pages;
mod tasklog;

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::hub::{Hub, dispatch};
use crate::xmlrpc::{Fault, FaultCode, Struct, Value};

/// The pages' routes, ready to be merged into the hub's router.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/koji", get(index))
        .route("/koji/", get(index))
        .route("/koji/index", get(index))
        .route("/koji/tasks", get(tasks))
        .route("/koji/taskinfo", get(taskinfo))
        .route("/koji/buildinfo", get(buildinfo))
        .route("/koji/hosts", get(hosts))
        .route("/koji/tasklog", get(tasklog::handle))
        .route("/koji/{*path}", get(unknown_page))
        .with_state(hub)
}

/// Why a page could not be shown; each becomes an HTML page with its status.
#[derive(Debug)]
pub enum PageError {
    /// A query parameter is missing or malformed (400).
    BadRequest(String),
    /// The task, build or page does not exist (404).
    NotFound(String),
    /// The hub could not answer (503); details are in the hub log.
    Unavailable(String),
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> &str {
        match self {
            PageError::BadRequest(m) | PageError::NotFound(m) | PageError::Unavailable(m) => m,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            PageError::BadRequest(_) => "Bad request",
            PageError::NotFound(_) => "Not found",
            PageError::Unavailable(_) => "Hub error",
        }
    }
}

impl From<Fault> for PageError {
    fn from(f: Fault) -> PageError {
        if f.code == FaultCode::Parameter as i32 {
            PageError::BadRequest(f.message)
        } else if f.message.starts_with("No such") {
            PageError::NotFound(f.message)
        } else {
            tracing::warn!(code = f.code, fault = %f.message, "web page: hub call failed");
            PageError::Unavailable(format!(
                "the hub answered with fault {}: {}",
                f.code, f.message
            ))
        }
    }
}

fn error_page(e: &PageError) -> Response {
    let body = format!("<p class=\"fault\">{}</p>", html::esc(e.message()));
    (
        e.status(),
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html::layout(e.title(), &body),
    )
        .into_response()
}

fn html_page(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Parsed `application/x-www-form-urlencoded` query parameters, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Params(
            raw.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// The last non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// An integer parameter; malformed -> 400 naming it.
    pub fn int(&self, name: &str) -> Result<Option<i64>, PageError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                PageError::BadRequest(format!("{name} must be an integer, got {v:?}"))
            }),
        }
    }

    /// A required integer parameter.
    pub fn req_int(&self, name: &str) -> Result<i64, PageError> {
        self.int(name)?
            .ok_or_else(|| PageError::BadRequest(format!("the {name} parameter is required")))
    }
}

/// Calls a read method of the hub as an anonymous client (on the current, blocking, thread).
pub fn call(hub: &Hub, name: &str, params: Vec<Value>) -> Result<Value, PageError> {
    Ok(dispatch::call_anonymous(hub, name, params)?)
}

/// Keyword arguments as the koji client sends them (the trailing `__starstar` struct).
pub fn kwargs(pairs: Vec<(&str, Value)>) -> Value {
    let mut s = Struct::new();
    for (k, v) in pairs {
        s.insert(k, v);
    }
    s.insert("__starstar", true);
    Value::Struct(s)
}

/// Runs a page renderer on a blocking thread (the hub's methods touch SQLite).
async fn render(
    hub: Arc<Hub>,
    query: Option<String>,
    page: fn(&Hub, &Params) -> Result<String, PageError>,
) -> Response {
    let params = Params::parse(query.as_deref());
    match tokio::task::spawn_blocking(move || page(&hub, &params)).await {
        Ok(Ok(body)) => html_page(body),
        Ok(Err(e)) => error_page(&e),
        Err(e) => {
            tracing::error!(error = %e, "web page renderer panicked");
            error_page(&PageError::Unavailable(
                "the page could not be rendered; see the hub log".into(),
            ))
        }
    }
}

async fn index(State(hub): State<Arc<Hub>>, RawQuery(q): RawQuery) -> Response {
    render(hub, q, pages::index).await
}

async fn tasks(State(hub): State<Arc<Hub>>, RawQuery(q): RawQuery) -> Response {
    render(hub, q, pages::tasks).await
}

async fn taskinfo(State(hub): State<Arc<Hub>>, RawQuery(q): RawQuery) -> Response {
    render(hub, q, pages::taskinfo).await
}

async fn buildinfo(State(hub): State<Arc<Hub>>, RawQuery(q): RawQuery) -> Response {
    render(hub, q, pages::buildinfo).await
}

async fn hosts(State(hub): State<Arc<Hub>>, RawQuery(q): RawQuery) -> Response {
    render(hub, q, pages::hosts).await
}

async fn unknown_page() -> Response {
    error_page(&PageError::NotFound("No such page".into()))
}
