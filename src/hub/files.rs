//! `/kojifiles/`: the topdir as static files, as the koji CLI downloads them (`HEAD` for the
//! size, then `GET`, with `Range: bytes=N-` when resuming). Files are streamed, never buffered.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::Hub;

/// Resolves a URL path below `root`, refusing anything that could leave it.
pub fn safe_join(root: &Path, rel: &str) -> Option<PathBuf> {
    if rel.contains('\0') {
        return None;
    }
    let mut out = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Parses a single `Range: bytes=` spec against a file size into `(start, end_inclusive)`.
fn parse_range(spec: &str, size: u64) -> Option<(u64, u64)> {
    let spec = spec.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (size.saturating_sub(n), size.checked_sub(1)?)
    } else {
        let s: u64 = a.parse().ok()?;
        let e: u64 = if b.is_empty() {
            size.checked_sub(1)?
        } else {
            b.parse::<u64>().ok()?.min(size.checked_sub(1)?)
        };
        (s, e)
    };
    (start <= end && start < size).then_some((start, end))
}

pub async fn serve(
    State(hub): State<Arc<Hub>>,
    UrlPath(rel): UrlPath<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "Not Found\n").into_response();
    let Some(path) = safe_join(&hub.topdir(), &rel) else {
        return not_found();
    };
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return not_found();
    };
    let Ok(meta) = file.metadata().await else {
        return not_found();
    };
    if !meta.is_file() {
        return not_found();
    }
    let size = meta.len();
    let mut status = StatusCode::OK;
    let (mut start, mut len) = (0u64, size);
    let mut resp_headers = HeaderMap::new();
    if let Some(r) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        match parse_range(r, size) {
            Some((s, e)) => {
                status = StatusCode::PARTIAL_CONTENT;
                start = s;
                len = e - s + 1;
                if let Ok(v) = format!("bytes {s}-{e}/{size}").parse() {
                    resp_headers.insert(header::CONTENT_RANGE, v);
                }
            }
            None => {
                if let Ok(v) = format!("bytes */{size}").parse() {
                    resp_headers.insert(header::CONTENT_RANGE, v);
                }
                return (StatusCode::RANGE_NOT_SATISFIABLE, resp_headers).into_response();
            }
        }
    }
    resp_headers.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    resp_headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    let ctype = if rel.ends_with(".log") || rel.ends_with(".txt") {
        "text/plain; charset=utf-8"
    } else if rel.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    };
    resp_headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    if let Ok(m) = meta.modified()
        && let Ok(v) = httpdate::fmt_http_date(m).parse()
    {
        resp_headers.insert(header::LAST_MODIFIED, v);
    }
    if method == Method::HEAD {
        return (status, resp_headers).into_response();
    }
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "seek failed\n").into_response();
    }
    // Image archives are GBs: the default 4 KiB chunk meant one blocking-pool read per 4 KiB
    // (4.3 CPU-s per GiB in the transfer bench).
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), DOWNLOAD_CHUNK);
    (status, resp_headers, Body::from_stream(stream)).into_response()
}

/// Bytes per read when streaming a file out.
const DOWNLOAD_CHUNK: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=10-", 100), Some((10, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=100-", 100), None);
    }

    #[test]
    fn refuses_escape() {
        let root = Path::new("/srv/top");
        assert!(safe_join(root, "../etc/passwd").is_none());
        assert!(safe_join(root, "/etc/passwd").is_none());
        assert_eq!(
            safe_join(root, "work/tasks/1/1/x.log"),
            Some(root.join("work/tasks/1/1/x.log"))
        );
    }
}
