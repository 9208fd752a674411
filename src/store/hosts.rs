//! Builder hosts as the scheduler and the host protocol see them: check-ins, scheduler data,
//! refusals, task runs and the scheduler log (Koji's `scheduler_*` tables).
//!
//! Host records themselves (create, edit, channels) live in [`super::records`].

use rusqlite::{Connection, OptionalExtension, params};

use super::query::View;
use super::{Result, now_ts};

/// The host row of a user, if the user is a host (Koji's `Session.getHostId`).
pub fn id_of_user(conn: &Connection, user_id: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM hosts WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?)
}

/// The user behind a host.
pub fn user_of_host(conn: &Connection, host_id: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT user_id FROM hosts WHERE id = ?1")?
        .query_row([host_id], |r| r.get(0))
        .optional()?)
}

/// `host.updateHost`: load, readiness and the check-in time.
pub fn check_in(conn: &Connection, host_id: i64, task_load: f64, ready: bool) -> Result<()> {
    conn.execute(
        "UPDATE hosts SET task_load = ?2, ready = ?3, update_ts = ?4 WHERE id = ?1",
        params![host_id, task_load, ready, now_ts()],
    )?;
    Ok(())
}

/// Stores the scheduler data a host reports (`maxjobs`, `methods`, ...) as JSON.
pub fn set_data(conn: &Connection, host_id: i64, json: &str) -> Result<()> {
    conn.execute(
        "UPDATE hosts SET data = ?2 WHERE id = ?1",
        params![host_id, json],
    )?;
    Ok(())
}

/// `(host_id, data JSON)` of every host with data, or of one host.
pub fn data(conn: &Connection, host_id: Option<i64>) -> Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, data FROM hosts WHERE data IS NOT NULL AND (?1 IS NULL OR id = ?1) ORDER BY id",
    )?;
    let v = stmt
        .query_map([host_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// A host as the scheduler weighs it.
#[derive(Debug, Clone)]
pub struct SchedHost {
    pub id: i64,
    pub name: String,
    pub update_ts: Option<f64>,
    pub task_load: f64,
    pub ready: bool,
    pub arches: String,
    pub capacity: f64,
    /// Scheduler data as reported by the host (JSON), if any.
    pub data: Option<String>,
    /// Enabled channels the host is subscribed to.
    pub channels: Vec<i64>,
}

/// Enabled hosts with their enabled channels, by id.
pub fn scheduler_hosts(conn: &Connection) -> Result<Vec<SchedHost>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, update_ts, task_load, ready, arches, capacity, data \
         FROM hosts WHERE enabled = 1 ORDER BY id",
    )?;
    let mut hosts = stmt
        .query_map([], |r| {
            Ok(SchedHost {
                id: r.get(0)?,
                name: r.get(1)?,
                update_ts: r.get(2)?,
                task_load: r.get(3)?,
                ready: r.get::<_, i64>(4)? != 0,
                arches: r.get(5)?,
                capacity: r.get(6)?,
                data: r.get(7)?,
                channels: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT hc.host_id, hc.channel_id FROM host_channels hc \
         JOIN channels c ON c.id = hc.channel_id WHERE c.enabled = 1 ORDER BY hc.channel_id",
    )?;
    let pairs = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (h, c) in pairs {
        if let Some(host) = hosts.iter_mut().find(|x| x.id == h) {
            host.channels.push(c);
        }
    }
    Ok(hosts)
}

/// Marks hosts not ready (they stopped checking in).
pub fn mark_not_ready(conn: &Connection, host_id: i64) -> Result<()> {
    conn.execute("UPDATE hosts SET ready = 0 WHERE id = ?1", [host_id])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Refusals

/// Records (or renews) a host's refusal of a task.
pub fn set_refusal(
    conn: &Connection,
    host_id: i64,
    task_id: i64,
    soft: bool,
    by_host: bool,
    msg: &str,
) -> Result<()> {
    conn.execute(
        "INSERT INTO scheduler_task_refusals (task_id, host_id, by_host, soft, msg, ts) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (task_id, host_id) DO UPDATE SET by_host = excluded.by_host, \
         soft = excluded.soft, msg = excluded.msg, ts = excluded.ts",
        params![task_id, host_id, by_host, soft, msg, now_ts()],
    )?;
    Ok(())
}

/// A refusal with the state of its task.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub id: i64,
    pub task_id: i64,
    pub host_id: i64,
    pub soft: bool,
    pub ts: f64,
    pub task_state: i64,
}

pub fn refusals(conn: &Connection) -> Result<Vec<Refusal>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.task_id, r.host_id, r.soft, r.ts, t.state \
         FROM scheduler_task_refusals r JOIN tasks t ON t.id = r.task_id ORDER BY r.id",
    )?;
    let v = stmt
        .query_map([], |r| {
            Ok(Refusal {
                id: r.get(0)?,
                task_id: r.get(1)?,
                host_id: r.get(2)?,
                soft: r.get::<_, i64>(3)? != 0,
                ts: r.get(4)?,
                task_state: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

pub fn delete_refusal(conn: &Connection, id: i64) -> Result<()> {
    conn.execute("DELETE FROM scheduler_task_refusals WHERE id = ?1", [id])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Task runs

/// An active scheduler assignment.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: i64,
    pub task_id: i64,
    pub host_id: i64,
    pub create_ts: f64,
}

pub fn active_runs(conn: &Connection) -> Result<Vec<Run>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, task_id, host_id, create_ts FROM scheduler_task_runs WHERE active = 1 \
         ORDER BY id",
    )?;
    let v = stmt
        .query_map([], |r| {
            Ok(Run {
                id: r.get(0)?,
                task_id: r.get(1)?,
                host_id: r.get(2)?,
                create_ts: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Marks a task's earlier runs inactive.
pub fn end_runs(conn: &Connection, task_id: i64) -> Result<()> {
    conn.execute(
        "UPDATE scheduler_task_runs SET active = 0 WHERE task_id = ?1 AND active = 1",
        [task_id],
    )?;
    Ok(())
}

pub fn add_run(conn: &Connection, task_id: i64, host_id: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO scheduler_task_runs (task_id, host_id, active, create_ts) \
         VALUES (?1, ?2, 1, ?3)",
        params![task_id, host_id, now_ts()],
    )?;
    Ok(())
}

/// Ends runs whose task is no longer ASSIGNED or OPEN.
pub fn end_stale_runs(conn: &Connection) -> Result<()> {
    conn.execute(
        "UPDATE scheduler_task_runs SET active = 0 WHERE active = 1 AND NOT EXISTS \
         (SELECT 1 FROM tasks t WHERE t.id = task_id AND t.state IN (1, 4))",
        [],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Log

/// Appends to the scheduler log (`koji scheduler-logs`).
pub fn log(conn: &Connection, msg: &str, task_id: Option<i64>, host_id: Option<i64>) -> Result<()> {
    conn.execute(
        "INSERT INTO scheduler_log_messages (task_id, host_id, msg_ts, msg) VALUES (?1, ?2, ?3, ?4)",
        params![task_id, host_id, now_ts(), msg],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Views for `scheduler.getTaskRuns`, `getTaskRefusals`, `getLogMessages`

/// Koji's `TaskRunsQuery` fields.
pub const TASK_RUNS: View = View {
    from: "scheduler_task_runs r LEFT JOIN tasks t ON t.id = r.task_id \
           LEFT JOIN hosts h ON h.id = r.host_id",
    fields: &[
        ("id", "r.id"),
        ("task_id", "r.task_id"),
        ("method", "t.method"),
        ("state", "t.state"),
        ("owner", "t.owner"),
        ("arch", "t.arch"),
        ("channel_id", "t.channel_id"),
        ("host_name", "h.name"),
        ("host_ready", "h.ready"),
        ("host_id", "r.host_id"),
        ("active", "r.active"),
        ("create_ts", "r.create_ts"),
        ("start_ts", "t.start_ts"),
        ("completion_ts", "t.completion_ts"),
    ],
    hidden: &[],
    default_order: "r.id",
    key: None,
};

/// Koji's `TaskRefusalsQuery` fields.
pub const TASK_REFUSALS: View = View {
    from: "scheduler_task_refusals r LEFT JOIN tasks t ON t.id = r.task_id \
           LEFT JOIN hosts h ON h.id = r.host_id",
    fields: &[
        ("id", "r.id"),
        ("task_id", "r.task_id"),
        ("host_id", "r.host_id"),
        ("by_host", "r.by_host"),
        ("soft", "r.soft"),
        ("msg", "r.msg"),
        ("ts", "r.ts"),
        ("method", "t.method"),
        ("state", "t.state"),
        ("owner", "t.owner"),
        ("arch", "t.arch"),
        ("channel_id", "t.channel_id"),
        ("host_name", "h.name"),
        ("host_ready", "h.ready"),
    ],
    hidden: &[],
    default_order: "r.id",
    key: None,
};

/// Koji's `LogMessagesQuery` fields.
pub const LOG_MESSAGES: View = View {
    from: "scheduler_log_messages m LEFT JOIN tasks t ON t.id = m.task_id \
           LEFT JOIN hosts h ON h.id = m.host_id",
    fields: &[
        ("id", "m.id"),
        ("task_id", "m.task_id"),
        ("host_id", "m.host_id"),
        ("msg_ts", "m.msg_ts"),
        ("msg", "m.msg"),
        ("method", "t.method"),
        ("state", "t.state"),
        ("owner", "t.owner"),
        ("arch", "t.arch"),
        ("channel_id", "t.channel_id"),
        ("host_name", "h.name"),
        ("host_ready", "h.ready"),
    ],
    hidden: &[],
    default_order: "m.id",
    key: None,
};
