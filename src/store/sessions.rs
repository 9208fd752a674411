//! Login sessions, Koji style: an id, a random key, a per-call sequence number, an optional
//! master (for subsessions) and an exclusive flag (builders hold one exclusive session).

use rand::Rng;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, now_ts};

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: i64,
    pub user_id: i64,
    pub key: String,
    pub authtype: i64,
    pub hostip: Option<String>,
    pub master: Option<i64>,
    pub exclusive: bool,
    pub closed: bool,
    pub start_ts: f64,
    pub update_ts: f64,
    pub renew_ts: Option<f64>,
    pub callnum: Option<i64>,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        key: r.get(2)?,
        authtype: r.get(3)?,
        hostip: r.get(4)?,
        master: r.get(5)?,
        exclusive: r.get::<_, Option<i64>>(6)?.unwrap_or(0) != 0,
        closed: r.get::<_, i64>(7)? != 0,
        start_ts: r.get(8)?,
        update_ts: r.get(9)?,
        renew_ts: r.get(10)?,
        callnum: r.get(11)?,
    })
}

const COLS: &str = "id, user_id, key, authtype, hostip, master, exclusive, closed, start_ts, update_ts, renew_ts, callnum";

pub fn get(conn: &Connection, id: i64) -> Result<Option<SessionRow>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM sessions WHERE id = ?1"))?
        .query_row([id], row)
        .optional()?)
}

/// `"<user_id>-<19 random alphanumerics>"`, from the OS CSPRNG, as Koji's keys look.
fn new_key(user_id: i64) -> String {
    // ThreadRng is a CSPRNG reseeded from the OS.
    let mut rng = rand::rng();
    let s: String = (0..19)
        .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
        .collect();
    format!("{user_id}-{s}")
}

/// Creates a session and returns `(id, key)`.
pub fn create(
    conn: &Connection,
    user_id: i64,
    authtype: i64,
    hostip: Option<&str>,
    master: Option<i64>,
) -> Result<(i64, String)> {
    let key = new_key(user_id);
    let now = now_ts();
    conn.execute(
        "INSERT INTO sessions (user_id, key, authtype, hostip, master, start_ts, update_ts) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![user_id, key, authtype, hostip, master, now],
    )?;
    Ok((conn.last_insert_rowid(), key))
}

/// Renews an expired session in place: same id, new key, fresh renewal time, sequence reset.
pub fn renew(conn: &Connection, id: i64) -> Result<String> {
    let user_id: i64 = conn.query_row("SELECT user_id FROM sessions WHERE id = ?1", [id], |r| {
        r.get(0)
    })?;
    let key = new_key(user_id);
    conn.execute(
        "UPDATE sessions SET key = ?1, renew_ts = ?2, update_ts = ?2, callnum = NULL WHERE id = ?3",
        params![key, now_ts(), id],
    )?;
    Ok(key)
}

pub fn set_callnum(conn: &Connection, id: i64, callnum: i64) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET callnum = ?1, update_ts = ?2 WHERE id = ?3",
        params![callnum, now_ts(), id],
    )?;
    Ok(())
}

/// Closes a session and all its subsessions.
pub fn close(conn: &Connection, id: i64) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET closed = 1, exclusive = NULL WHERE id = ?1 OR master = ?1",
        [id],
    )?;
    Ok(())
}

/// Closes one subsession of `master`; false if there was none.
pub fn close_child(conn: &Connection, master: i64, id: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE sessions SET closed = 1 WHERE id = ?1 AND master = ?2 AND closed = 0",
        params![id, master],
    )? > 0)
}

/// The open exclusive session of a user other than `except`, if any.
pub fn other_exclusive(conn: &Connection, user_id: i64, except: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM sessions WHERE user_id = ?1 AND closed = 0 AND exclusive = 1 AND id != ?2",
        )?
        .query_row(params![user_id, except], |r| r.get(0))
        .optional()?)
}

pub fn set_exclusive(conn: &Connection, id: i64, exclusive: bool) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET exclusive = ?1 WHERE id = ?2",
        params![if exclusive { Some(1) } else { None::<i64> }, id],
    )?;
    Ok(())
}

/// Number of open sessions; for metrics and `getSessionInfo`-style reporting.
pub fn count_open(conn: &Connection) -> Result<i64> {
    Ok(
        conn.query_row("SELECT count(*) FROM sessions WHERE closed = 0", [], |r| {
            r.get(0)
        })?,
    )
}
