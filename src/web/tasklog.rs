//! Task logs for the pages: the tail shown by `/koji/taskinfo`, and `/koji/tasklog`, the JSON
//! endpoint the page's script polls while the task runs. Bytes are read with the hub's own
//! `downloadTaskOutput`, at an offset, at most [`CHUNK`] per answer.
//!
//! `GET /koji/tasklog?taskID=N&name=NAME&offset=K` answers
//! `{"data": "...", "offset": K2, "state": "OPEN", "done": false}`: `data` is the text from byte
//! `K` on (never ending inside a UTF-8 sequence, unless the log is complete), `offset` where the
//! next request starts, `state` the task's state name, `done` true once the task is in a final
//! state and everything was read.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::hub::Hub;
use crate::xmlrpc::Value;

use super::html::{task_state_final, task_state_name};
use super::{PageError, Params, call, kwargs};

/// Most bytes of log one `/koji/tasklog` answer carries, and the tail `/koji/taskinfo` shows.
pub const CHUNK: i64 = 64 * 1024;

/// The script of the live log (no framework): polls `/koji/tasklog`, appends, follows.
pub const SCRIPT: &str = r#"(function(){
var cfg=JSON.parse(document.getElementById('log-config').textContent);
var pre=document.getElementById('log'),btn=document.getElementById('log-follow'),st=document.getElementById('task-state');
var follow=true;
function bottom(){if(follow){pre.scrollTop=pre.scrollHeight;}}
btn.addEventListener('click',function(){follow=!follow;btn.textContent=follow?'Pause':'Follow';btn.setAttribute('aria-pressed',follow?'true':'false');bottom();});
bottom();
function poll(){
 var u='/koji/tasklog?taskID='+encodeURIComponent(cfg.taskID)+'&offset='+encodeURIComponent(cfg.offset);
 if(cfg.name){u+='&name='+encodeURIComponent(cfg.name);}
 fetch(u,{cache:'no-store'}).then(function(r){if(!r.ok){throw new Error('HTTP '+r.status);}return r.json();}).then(function(j){
  if(j.data){pre.appendChild(document.createTextNode(j.data));bottom();}
  cfg.offset=j.offset;
  if(st&&j.state){st.textContent=j.state;st.className='state state-'+j.state.toLowerCase();}
  if(j.done){pre.setAttribute('data-done','true');btn.hidden=true;return;}
  setTimeout(poll,j.data?200:1000);
 }).catch(function(){setTimeout(poll,3000);});
}
poll();
})();"#;

/// Whether a log name is one `downloadTaskOutput` could serve (relative, no `..`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains("..")
        && !name.contains('\0')
        && name.len() <= 1024
}

/// Up to `size` bytes of a task's output file from `offset`; `None` when the task has no such
/// file (yet).
pub fn read(
    hub: &Hub,
    task_id: i64,
    name: &str,
    offset: i64,
    size: i64,
) -> Result<Option<Vec<u8>>, PageError> {
    if !valid_name(name) {
        return Err(PageError::BadRequest(format!("invalid file name {name:?}")));
    }
    let r = crate::hub::dispatch::call_anonymous(
        hub,
        "downloadTaskOutput",
        vec![
            Value::Int(task_id),
            Value::str(name),
            kwargs(vec![
                ("offset", Value::Int(offset)),
                ("size", Value::Int(size)),
            ]),
        ],
    );
    match r {
        Ok(Value::String(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map(Some)
            .map_err(|e| PageError::Unavailable(format!("downloadTaskOutput answer: {e}"))),
        Ok(_) => Ok(Some(Vec::new())),
        Err(f) if f.message.starts_with("no file ") => Ok(None),
        Err(f) if f.message.starts_with("Invalid file name") => {
            Err(PageError::BadRequest(f.message))
        }
        Err(f) => Err(f.into()),
    }
}

/// Text of `bytes` and how many bytes it covers: an incomplete UTF-8 sequence at the end is left
/// for the next read unless `flush`; invalid bytes become U+FFFD.
fn decode(bytes: &[u8], flush: bool) -> (String, usize) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), bytes.len()),
        Err(e) if e.error_len().is_none() && !flush => {
            let n = e.valid_up_to();
            (String::from_utf8_lossy(&bytes[..n]).into_owned(), n)
        }
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), bytes.len()),
    }
}

/// The last [`CHUNK`] bytes of a log whose size is `size` (from the first whole line when cut),
/// and the offset the live view continues from.
pub fn tail(hub: &Hub, task_id: i64, name: &str, size: u64) -> Result<(String, u64), PageError> {
    let start = size.saturating_sub(CHUNK as u64);
    let Some(bytes) = read(hub, task_id, name, start as i64, CHUNK)? else {
        return Ok((String::new(), 0));
    };
    let mut skip = 0;
    if start > 0 {
        // Start at the first whole line (or at least at a character boundary).
        skip = match bytes.iter().position(|&b| b == b'\n') {
            Some(p) if p + 1 < bytes.len() => p + 1,
            _ => bytes
                .iter()
                .take_while(|&&b| (0x80..0xC0).contains(&b))
                .count(),
        };
    }
    let (text, used) = decode(&bytes[skip..], false);
    Ok((text, start + (skip + used) as u64))
}

/// One `/koji/tasklog` answer.
fn answer(hub: &Hub, p: &Params) -> Result<serde_json::Value, PageError> {
    let id = p.req_int("taskID")?;
    let offset = p.int("offset")?.unwrap_or(0);
    if offset < 0 {
        return Err(PageError::BadRequest(format!(
            "offset must not be negative, got {offset}"
        )));
    }
    let name = p.get("name");
    if let Some(n) = name
        && !valid_name(n)
    {
        return Err(PageError::BadRequest(format!("invalid log name {n:?}")));
    }
    // The state first: when it is final, the log is complete before it is read.
    let info = call(hub, "getTaskInfo", vec![Value::Int(id)])?;
    let state = info
        .as_struct()
        .and_then(|s| s.get("state"))
        .and_then(Value::as_int)
        .ok_or_else(|| PageError::NotFound(format!("No such task: {id}")))?;
    let fin = task_state_final(state);
    let (data, next, eof) = match name {
        None => (String::new(), offset, true),
        Some(n) => match read(hub, id, n, offset, CHUNK)? {
            None => (String::new(), offset, true),
            Some(bytes) => {
                let eof = (bytes.len() as i64) < CHUNK;
                let (text, used) = decode(&bytes, eof && fin);
                (text, offset + used as i64, eof && used == bytes.len())
            }
        },
    };
    Ok(serde_json::json!({
        "data": data,
        "offset": next,
        "state": task_state_name(state),
        "done": fin && eof,
    }))
}

/// `GET /koji/tasklog`.
pub async fn handle(State(hub): State<Arc<Hub>>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = tokio::task::spawn_blocking(move || answer(&hub, &p)).await;
    let (status, body) = match r {
        Ok(Ok(v)) => (StatusCode::OK, v),
        Ok(Err(e)) => (e.status(), serde_json::json!({"error": e.message()})),
        Err(e) => {
            tracing::error!(error = %e, "tasklog handler panicked");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "the log could not be read; see the hub log"}),
            )
        }
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decode_keeps_incomplete_sequences_for_later() {
        let s = "aé".as_bytes();
        assert_eq!(decode(&s[..2], false), ("a".to_owned(), 1));
        assert_eq!(decode(s, false), ("aé".to_owned(), 3));
        assert_eq!(decode(&s[..2], true).1, 2);
        assert_eq!(decode(b"a\xffb", false), ("a\u{fffd}b".to_owned(), 3));
    }
}
