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
    key: Some("t.id"),
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
    key: Some("t.id"),
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
    conn.prepare_cached(
        "INSERT INTO tasks (state, create_ts, channel_id, parent, label, owner, method, arch, priority, request) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(
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
    Ok(cancel_report(conn, id, recurse)?
        .into_iter()
        .map(|e| e.id)
        .collect())
}

/// A task [`cancel_report`] ended, for the task duration metrics.
#[derive(Debug, Clone)]
pub struct Canceled {
    pub id: i64,
    pub method: String,
    /// Seconds it had been OPEN when canceled; `None` when it was not OPEN.
    pub open_for: Option<f64>,
}

/// [`cancel`], returning what each canceled task was doing.
pub fn cancel_report(conn: &Connection, id: i64, recurse: bool) -> Result<Vec<Canceled>> {
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
        let open_for = match t.state {
            OPEN => timing(conn, tid)?
                .and_then(|t| t.start_ts)
                .map(|s| (now - s).max(0.0)),
            _ => None,
        };
        conn.execute(
            "UPDATE tasks SET state = ?1, completion_ts = ?2 WHERE id = ?3",
            params![CANCELED, now, tid],
        )?;
        conn.execute(
            "UPDATE builds SET state = 4, completion_ts = ?1 WHERE task_id = ?2 AND state = 0",
            params![now, tid],
        )?;
        changed.push(Canceled {
            id: tid,
            method: t.method,
            open_for,
        });
        if recurse {
            stack.extend(child_ids(conn, tid)?);
        }
    }
    Ok(changed)
}

/// A task's method and times, for the queue wait and duration metrics.
#[derive(Debug, Clone)]
pub struct Timing {
    pub method: String,
    pub state: i64,
    pub create_ts: f64,
    pub start_ts: Option<f64>,
}

pub fn timing(conn: &Connection, id: i64) -> Result<Option<Timing>> {
    Ok(conn
        .prepare_cached("SELECT method, state, create_ts, start_ts FROM tasks WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(Timing {
                method: r.get(0)?,
                state: r.get(1)?,
                create_ts: r.get(2)?,
                start_ts: r.get(3)?,
            })
        })
        .optional()?)
}

/// Ends a task with its `<methodResponse>` document.
pub fn finish(conn: &Connection, id: i64, state: i64, result_xml: &str) -> Result<()> {
    conn.execute(
        "UPDATE tasks SET state = ?1, result = ?2, completion_ts = ?3 WHERE id = ?4",
        params![state, result_xml, now_ts(), id],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Creating tasks (Koji's `make_task`)

/// A channel named by the caller.
#[derive(Debug, Clone)]
pub enum ChannelSel {
    Id(i64),
    Name(String),
}

impl std::fmt::Display for ChannelSel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelSel::Id(i) => write!(f, "{i}"),
            ChannelSel::Name(n) => f.write_str(n),
        }
    }
}

/// Koji's default priority (`koji.PRIO_DEFAULT`).
pub const PRIO_DEFAULT: i64 = 20;

/// What `make_task` accepts. Unset options take Koji's defaults: for a subtask the parent's
/// owner, arch and channel and the parent's priority minus one (a lower number runs first);
/// for a top-level task arch `noarch`, priority 20 and the `default` channel.
#[derive(Debug, Clone, Default)]
pub struct TaskSpec {
    pub method: String,
    /// The `<methodCall>` document of the request.
    pub request_xml: String,
    pub parent: Option<i64>,
    /// Subtasks only: an existing `(parent, label)` task is returned instead of a new one.
    pub label: Option<String>,
    pub owner: Option<i64>,
    pub channel: Option<ChannelSel>,
    pub arch: Option<String>,
    pub priority: Option<i64>,
    /// Create the task ASSIGNED to this host (no scheduler run record: an override).
    pub assign: Option<i64>,
}

/// Normalises an arch list the way `koji.parse_arches(strict=True)` does.
pub fn parse_arch(arch: &str) -> Result<String> {
    let parts: Vec<&str> = arch.split_whitespace().collect();
    for a in &parts {
        if !a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(StoreError::Conflict(
                "Architecture can be only [a-zA-Z0-9_-]".into(),
            ));
        }
    }
    Ok(parts.join(" "))
}

/// `(id, enabled)` of a channel.
fn channel(conn: &Connection, sel: &ChannelSel) -> Result<Option<(i64, bool)>> {
    let row = match sel {
        ChannelSel::Id(i) => conn
            .prepare_cached("SELECT id, enabled FROM channels WHERE id = ?1")?
            .query_row([i], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))
            .optional()?,
        ChannelSel::Name(n) => conn
            .prepare_cached("SELECT id, enabled FROM channels WHERE name = ?1")?
            .query_row([n], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))
            .optional()?,
    };
    Ok(row)
}

/// Creates a task (Koji's `make_task` with the default channel and priority policies:
/// `has req_channel :: req`, `is_child_task :: parent`, `all :: use default`; priority stays).
/// Returns the new task id, or the existing one for a repeated `(parent, label)`.
pub fn make(conn: &Connection, spec: &TaskSpec) -> Result<i64> {
    let arch = spec.arch.as_deref().map(parse_arch).transpose()?;
    let mut owner = spec.owner;
    let mut priority = spec.priority;
    let mut arch = arch;
    let mut channel_id = None;
    let mut label = None;
    if let Some(parent) = spec.parent {
        if let Some(l) = &spec.label
            && let Some(id) = conn
                .prepare_cached("SELECT id FROM tasks WHERE parent = ?1 AND label = ?2")?
                .query_row(params![parent, l], |r| r.get::<_, i64>(0))
                .optional()?
        {
            return Ok(id);
        }
        let p = conn
            .prepare_cached(
                "SELECT state, owner, channel_id, priority, arch FROM tasks WHERE id = ?1",
            )?
            .query_row([parent], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .optional()?;
        let Some((state, p_owner, p_channel, p_priority, p_arch)) = p else {
            return Err(StoreError::Conflict(format!(
                "Invalid parent task: {parent}"
            )));
        };
        if state != OPEN {
            return Err(StoreError::Conflict(format!(
                "Parent task (id {parent}) is not open"
            )));
        }
        priority.get_or_insert(p_priority - 1);
        owner.get_or_insert(p_owner);
        arch.get_or_insert(p_arch);
        channel_id = Some(p_channel);
        label = spec.label.clone();
    }
    let owner = owner.ok_or_else(|| StoreError::Conflict("task must have an owner".to_string()))?;
    if let Some(sel) = &spec.channel {
        match channel(conn, sel)? {
            None => return Err(StoreError::Conflict(format!("No such channel: {sel}"))),
            Some((_, false)) => {
                return Err(StoreError::Conflict(format!("Channel {sel} is disabled.")));
            }
            Some((id, true)) => channel_id = Some(id),
        }
    }
    let channel_id = match channel_id {
        Some(c) => c,
        None => match channel(conn, &ChannelSel::Name("default".into()))? {
            Some((id, true)) => id,
            Some((_, false)) => {
                return Err(StoreError::Conflict("Channel default is disabled.".into()));
            }
            None => return Err(StoreError::NotFound("No such channel: default".into())),
        },
    };
    let (state, host) = match spec.assign {
        Some(h) => (ASSIGNED, Some(h)),
        None => (FREE, None),
    };
    conn.execute(
        "INSERT INTO tasks (state, create_ts, channel_id, host_id, parent, label, owner, method, \
         arch, priority, request) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            state,
            now_ts(),
            channel_id,
            host,
            spec.parent,
            label,
            owner,
            spec.method,
            arch.unwrap_or_else(|| "noarch".into()),
            priority.unwrap_or(PRIO_DEFAULT),
            spec.request_xml
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

// ---------------------------------------------------------------------------------------------
// Host side (Koji's `Task.lock/open/free/setWeight`, `Host.taskSetWait/taskWait/...`)

fn no_such_task(id: i64) -> StoreError {
    StoreError::NotFound(format!("No such task: {id}"))
}

/// `(state, host_id)` of a task.
pub fn state_and_host(conn: &Connection, id: i64) -> Result<Option<(i64, Option<i64>)>> {
    Ok(conn
        .prepare_cached("SELECT state, host_id FROM tasks WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Whether `host_id` runs the task (OPEN on that host); Koji's `Task.verifyHost`.
pub fn verify_host(conn: &Connection, id: i64, host_id: i64) -> Result<bool> {
    let (state, host) = state_and_host(conn, id)?.ok_or_else(|| no_such_task(id))?;
    Ok(state == OPEN && host == Some(host_id))
}

/// Koji's `Task.lock`: moves a task to ASSIGNED or OPEN for a host when its current state allows
/// it (FREE, or ASSIGNED to that host), or unconditionally with `force`. False when it did not.
pub fn lock(conn: &Connection, id: i64, host_id: i64, newstate: i64, force: bool) -> Result<bool> {
    let (state, other) = state_and_host(conn, id)?.ok_or_else(|| no_such_task(id))?;
    if !force {
        match state {
            FREE if other.is_some() => {
                tracing::error!(task_id = id, host = ?other, "task is both free and handled by a host");
                return Ok(false);
            }
            FREE => {}
            ASSIGNED => match other {
                None => {
                    tracing::error!(task_id = id, "task is assigned, but to no host");
                    return Ok(false);
                }
                Some(h) if h != host_id => return Ok(false),
                Some(_) if newstate == ASSIGNED => {
                    tracing::error!(task_id = id, host_id, "double assign");
                    return Ok(true);
                }
                Some(_) => {}
            },
            OPEN => {
                if other == Some(host_id) {
                    tracing::error!(task_id = id, host_id, "task is already open on this host");
                }
                return Ok(false);
            }
            _ => return Ok(false),
        }
    }
    if newstate == OPEN {
        conn.execute(
            "UPDATE tasks SET state = ?2, host_id = ?3, start_ts = ?4 WHERE id = ?1",
            params![id, newstate, host_id, now_ts()],
        )?;
    } else {
        conn.execute(
            "UPDATE tasks SET state = ?2, host_id = ?3 WHERE id = ?1",
            params![id, newstate, host_id],
        )?;
    }
    Ok(true)
}

/// Koji's `Task.free`: back to FREE without a host.
pub fn free(conn: &Connection, id: i64) -> Result<()> {
    let (state, _) = state_and_host(conn, id)?.ok_or_else(|| no_such_task(id))?;
    if matches!(state, CLOSED | CANCELED | FAILED) {
        return Err(StoreError::Conflict(format!(
            "Cannot free task {id}, state is {}",
            state_name(state)
        )));
    }
    conn.execute(
        "UPDATE tasks SET state = ?2, host_id = NULL WHERE id = ?1",
        params![id, FREE],
    )?;
    Ok(())
}

pub fn set_weight(conn: &Connection, id: i64, weight: f64) -> Result<()> {
    conn.execute(
        "UPDATE tasks SET weight = ?2 WHERE id = ?1",
        params![id, weight],
    )?;
    Ok(())
}

/// `host.taskSetWait`: the parent waits; the listed children (all for `None`) are awaited and
/// the others not.
pub fn set_wait(conn: &Connection, parent: i64, children: Option<&[i64]>) -> Result<()> {
    conn.execute("UPDATE tasks SET waiting = 1 WHERE id = ?1", [parent])?;
    match children {
        None => {
            conn.execute("UPDATE tasks SET awaited = 1 WHERE parent = ?1", [parent])?;
        }
        Some([]) => {
            tracing::warn!(parent, "taskSetWait called with an empty task list");
        }
        Some(list) => {
            let json = serde_json::Value::from(list.to_vec()).to_string();
            conn.execute(
                "UPDATE tasks SET awaited = 1 WHERE parent = ?1 \
                 AND id IN (SELECT value FROM json_each(?2))",
                params![parent, json],
            )?;
            conn.execute(
                "UPDATE tasks SET awaited = 0 WHERE parent = ?1 AND awaited = 1 \
                 AND id NOT IN (SELECT value FROM json_each(?2))",
                params![parent, json],
            )?;
        }
    }
    Ok(())
}

/// `(finished, unfinished)` awaited children of a parent (Koji's `taskWaitCheck`).
pub fn wait_check(conn: &Connection, parent: i64) -> Result<(Vec<i64>, Vec<i64>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, state FROM tasks WHERE parent = ?1 AND awaited = 1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([parent], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (mut done, mut open) = (Vec::new(), Vec::new());
    for (id, state) in rows {
        if matches!(state, CLOSED | CANCELED | FAILED) {
            done.push(id);
        } else {
            open.push(id);
        }
    }
    Ok((done, open))
}

/// Clears one child's awaited flag.
pub fn unawait(conn: &Connection, id: i64) -> Result<()> {
    conn.execute("UPDATE tasks SET awaited = 0 WHERE id = ?1", [id])?;
    Ok(())
}

/// `host.taskUnwait`: the parent stops waiting, its children are no longer awaited.
pub fn unwait(conn: &Connection, parent: i64) -> Result<()> {
    conn.execute("UPDATE tasks SET waiting = 0 WHERE id = ?1", [parent])?;
    conn.execute("UPDATE tasks SET awaited = 0 WHERE parent = ?1", [parent])?;
    Ok(())
}

/// Children of a parent that have ended (CLOSED, FAILED, CANCELED).
pub fn finished_children(conn: &Connection, parent: i64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM tasks WHERE parent = ?1 AND state IN (2, 3, 5) ORDER BY id",
    )?;
    let v = stmt
        .query_map([parent], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(v)
}

/// `host.getTasks` fields: a host's ASSIGNED tasks by priority, then age.
pub const ASSIGNED_VIEW: View = View {
    from: "tasks t",
    fields: &[
        ("id", "t.id"),
        ("state", "t.state"),
        ("channel_id", "t.channel_id"),
        ("host_id", "t.host_id"),
        ("arch", "t.arch"),
        ("method", "t.method"),
        ("priority", "t.priority"),
        ("create_ts", "t.create_ts"),
    ],
    hidden: &[],
    default_order: "t.priority, t.create_ts",
    key: None,
};

/// `(id, waiting, weight)` of the tasks OPEN on a host.
pub fn open_on_host(conn: &Connection, host_id: i64) -> Result<Vec<(i64, Option<bool>, f64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, waiting, weight FROM tasks WHERE host_id = ?1 AND state = ?2 ORDER BY id",
    )?;
    let v = stmt
        .query_map(params![host_id, OPEN], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, Option<i64>>(1)?.map(|w| w != 0),
                r.get(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Whether a host has any ASSIGNED task (cheap check for long-polling).
pub fn has_assigned(conn: &Connection, host_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM tasks WHERE host_id = ?1 AND state = ?2 LIMIT 1")?
        .query_row(params![host_id, ASSIGNED], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A task as the scheduler bins it.
#[derive(Debug, Clone)]
pub struct SchedTask {
    pub id: i64,
    pub state: i64,
    pub waiting: bool,
    pub weight: f64,
    pub channel_id: i64,
    pub host_id: Option<i64>,
    pub arch: String,
}

fn sched_rows(conn: &Connection, sql: &str) -> Result<Vec<SchedTask>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let v = stmt
        .query_map([], |r| {
            Ok(SchedTask {
                id: r.get(0)?,
                state: r.get(1)?,
                waiting: r.get::<_, Option<i64>>(2)?.unwrap_or(0) != 0,
                weight: r.get(3)?,
                channel_id: r.get(4)?,
                host_id: r.get(5)?,
                arch: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// ASSIGNED and OPEN tasks with a host.
pub fn active_for_scheduler(conn: &Connection) -> Result<Vec<SchedTask>> {
    sched_rows(
        conn,
        "SELECT id, state, waiting, weight, channel_id, host_id, arch FROM tasks \
         WHERE state IN (1, 4) AND host_id IS NOT NULL ORDER BY id",
    )
}

/// FREE tasks in scheduling order (priority, then age), at most `limit`.
pub fn free_for_scheduler(conn: &Connection, limit: i64) -> Result<Vec<SchedTask>> {
    sched_rows(
        conn,
        &format!(
            "SELECT id, state, waiting, weight, channel_id, host_id, arch FROM tasks \
             WHERE state = 0 ORDER BY priority, create_ts, id LIMIT {}",
            limit.max(0)
        ),
    )
}
