//! Tasks: Koji's unit of work. `request` is stored as a `<methodCall>` document and `result` as a
//! `<methodResponse>` document, exactly as Koji stores them, so the hub can hand them out raw.

use rusqlite::{Connection, OptionalExtension, params};

use super::query::View;
use super::{Result, StoreError, now_ts};

pub const FREE: i64 = 0;
pub const OPEN: i64 = 1;
pub const CLOSED: i64 = 2;
pub const CANCELED: i64 = 3;
pub const ASSIGNED: i64 = 4;
pub const FAILED: i64 = 5;

/// State names as `koji.TASK_STATES` spells them.
pub fn state_name(state: i64) -> &'static str {
    match state {
        FREE => "FREE",
        OPEN => "OPEN",
        CLOSED => "CLOSED",
        CANCELED => "CANCELED",
        ASSIGNED => "ASSIGNED",
        FAILED => "FAILED",
        _ => "UNKNOWN",
    }
}

const TASK_FIELDS: &[(&str, &str)] = &[
    ("id", "t.id"),
    ("state", "t.state"),
    ("create_time_ts", "t.create_ts"),
    ("start_time_ts", "t.start_ts"),
    ("completion_time_ts", "t.completion_ts"),
    ("channel_id", "t.channel_id"),
    ("host_id", "t.host_id"),
    ("parent", "t.parent"),
    ("label", "t.label"),
    ("waiting", "t.waiting"),
    ("awaited", "t.awaited"),
    ("owner", "t.owner"),
    ("method", "t.method"),
    ("arch", "t.arch"),
    ("priority", "t.priority"),
    ("weight", "t.weight"),
];

/// `Task.fields` of `getTaskInfo`.
pub const TASK_VIEW: View = View {
    from: "tasks t",
    fields: TASK_FIELDS,
    hidden: &[("request", "t.request"), ("result", "t.result")],
    default_order: "t.id",
};

/// `listTasks`: the task fields plus request, result, owner name and type.
pub const LIST_VIEW: View = View {
    from: "tasks t JOIN users u ON u.id = t.owner",
    fields: &[
        ("id", "t.id"),
        ("state", "t.state"),
        ("create_time_ts", "t.create_ts"),
        ("start_time_ts", "t.start_ts"),
        ("completion_time_ts", "t.completion_ts"),
        ("channel_id", "t.channel_id"),
        ("host_id", "t.host_id"),
        ("parent", "t.parent"),
        ("label", "t.label"),
        ("waiting", "t.waiting"),
        ("awaited", "t.awaited"),
        ("owner", "t.owner"),
        ("method", "t.method"),
        ("arch", "t.arch"),
        ("priority", "t.priority"),
        ("weight", "t.weight"),
        ("request", "t.request"),
        ("result", "t.result"),
        ("owner_name", "u.name"),
        ("owner_type", "u.usertype"),
    ],
    hidden: &[],
    default_order: "t.id",
};

/// What a new task needs; everything else starts as Koji starts it (FREE, no host).
#[derive(Debug, Clone)]
pub struct NewTask {
    pub method: String,
    pub arch: String,
    pub owner: i64,
    pub channel_id: i64,
    pub priority: i64,
    pub parent: Option<i64>,
    pub label: Option<String>,
    /// The `<methodCall>` document of the request.
    pub request_xml: String,
}

pub fn create(conn: &Connection, t: &NewTask) -> Result<i64> {
    conn.execute(
        "INSERT INTO tasks (state, create_ts, channel_id, parent, label, owner, method, arch, priority, request) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![FREE, now_ts(), t.channel_id, t.parent, t.label, t.owner, t.method, t.arch, t.priority, t.request_xml],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The few columns the hub's rules look at.
#[derive(Debug, Clone)]
pub struct TaskCore {
    pub id: i64,
    pub state: i64,
    pub owner: i64,
    pub host_id: Option<i64>,
    pub parent: Option<i64>,
    pub method: String,
}

pub fn core(conn: &Connection, id: i64) -> Result<Option<TaskCore>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, state, owner, host_id, parent, method FROM tasks WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(TaskCore {
                id: r.get(0)?,
                state: r.get(1)?,
                owner: r.get(2)?,
                host_id: r.get(3)?,
                parent: r.get(4)?,
                method: r.get(5)?,
            })
        })
        .optional()?)
}

/// `(request, result)` documents of a task.
pub fn documents(conn: &Connection, id: i64) -> Result<Option<(String, Option<String>)>> {
    Ok(conn
        .prepare_cached("SELECT request, result FROM tasks WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

pub fn child_ids(conn: &Connection, parent: i64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM tasks WHERE parent = ?1 ORDER BY id")?;
    let v = stmt
        .query_map([parent], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(v)
}

/// Cancels a task unless it already ended, optionally its whole subtree; returns the ids whose
/// state changed (Koji's `Task.cancel`). Builds still BUILDING for a canceled task are canceled.
pub fn cancel(conn: &Connection, id: i64, recurse: bool) -> Result<Vec<i64>> {
    let mut changed = Vec::new();
    let mut stack = vec![id];
    let now = now_ts();
    while let Some(tid) = stack.pop() {
        let Some(t) = core(conn, tid)? else {
            return Err(StoreError::NotFound(format!("No such task id: {tid}")));
        };
        if matches!(t.state, CLOSED | FAILED | CANCELED) {
            if tid == id {
                return Ok(changed);
            }
            continue;
        }
        conn.execute(
            "UPDATE tasks SET state = ?1, completion_ts = ?2 WHERE id = ?3",
            params![CANCELED, now, tid],
        )?;
        conn.execute(
            "UPDATE builds SET state = 4, completion_ts = ?1 WHERE task_id = ?2 AND state = 0",
            params![now, tid],
        )?;
        changed.push(tid);
        if recurse {
            stack.extend(child_ids(conn, tid)?);
        }
    }
    Ok(changed)
}

/// Ends a task with its `<methodResponse>` document.
pub fn finish(conn: &Connection, id: i64, state: i64, result_xml: &str) -> Result<()> {
    conn.execute(
        "UPDATE tasks SET state = ?1, result = ?2, completion_ts = ?3 WHERE id = ?4",
        params![state, result_xml, now_ts(), id],
    )?;
    Ok(())
}
