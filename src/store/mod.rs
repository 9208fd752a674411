//! The hub's records in one SQLite database.
//!
//! One writer connection (SQLite allows one writer at a time anyway) serialises every change in a
//! `BEGIN IMMEDIATE` transaction; a small pool of read connections serves queries concurrently
//! thanks to WAL. Callers run these on blocking threads, never on the async runtime.
//!
//! The read pool is bounded and callers wait for a free connection: more concurrent readers than
//! cores only adds context switches, and a pool that opened a throw-away connection under load
//! (schema parse, pragmas, file locks) halved the hub's throughput at 32 clients.
//! This layer returns plain [`Record`]s and typed rows; it knows nothing about XML-RPC.

pub mod cg;
pub mod hosts;
pub mod metrics;
pub mod provision;
pub mod query;
pub mod records;
pub mod schema;
pub mod sessions;
pub mod tasks;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use rusqlite::{Connection, OpenFlags, Transaction};

/// File name of the database inside `--data-dir`.
pub const DB_FILE: &str = "containerbuild.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The filesystem holding the database has no room left (`SQLITE_FULL`). SQLite rolled the
    /// transaction back, so nothing is half-written; callers get a message an operator can act
    /// on instead of an internal error, and the same call succeeds once space is freed.
    #[error(
        "the hub's disk is full: cannot write its database ({0}); free space in the hub's data \
         directory, then retry"
    )]
    DiskFull(String),
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database schema version {found} is newer than this program ({supported})")]
    TooNew { found: i64, supported: i64 },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        if is_disk_full(&e) {
            return StoreError::DiskFull(e.to_string());
        }
        StoreError::Sqlite(e)
    }
}

/// True for SQLite's "database or disk is full" (SQLite's unix layer maps ENOSPC to it).
pub fn is_disk_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// True for an I/O error that means the filesystem is full (ENOSPC, or EDQUOT: a quota is the
/// same situation for the caller).
pub fn io_is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
}

/// A column value as SQLite returned it.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// One result row: column aliases (Koji's field names) and values, in select order.
pub type Record = Vec<(String, Field)>;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 512;

pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<ReadPool>,
    reader_free: Condvar,
    max_readers: usize,
}

/// Frees a read slot when dropped; disarmed with `mem::forget` once the connection is returned.
struct SlotGuard<'s>(&'s Store);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.give_back(None);
    }
}

/// Idle read connections and how many exist in all (idle + lent out).
struct ReadPool {
    idle: Vec<Connection>,
    open: usize,
}

/// Read connections when the caller does not say: a few per core, so a reader waiting on the
/// disk does not idle a core, without a thread per client.
pub fn default_max_readers() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get() * 2)
        .clamp(4, 32)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // The API issues a few hundred distinct statements; with rusqlite's default 16-entry cache a
    // `getBuild` re-prepared its five-table join on every call (400k instructions, 90 % of it).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Store> {
        Self::open_with_readers(data_dir, default_max_readers())
    }

    /// [`Store::open`] with at most `max_readers` read connections (at least 1).
    pub fn open_with_readers(data_dir: &Path, max_readers: usize) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        configure(&conn)?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            path,
            writer: Mutex::new(conn),
            readers: Mutex::new(ReadPool {
                idle: Vec::new(),
                open: 0,
            }),
            reader_free: Condvar::new(),
            max_readers: max_readers.max(1),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction; it commits only when `f` returns `Ok`.
    pub fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` on a read-only connection from the pool, waiting for one when all are lent out.
    pub fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        let conn = {
            let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(c) = pool.idle.pop() {
                    break Some(c);
                }
                if pool.open < self.max_readers {
                    pool.open += 1;
                    break None;
                }
                pool = self
                    .reader_free
                    .wait(pool)
                    .unwrap_or_else(|p| p.into_inner());
            }
        };
        let conn = match conn {
            Some(c) => c,
            None => match self.open_reader() {
                Ok(c) => c,
                Err(e) => {
                    self.give_back(None);
                    return Err(e.into());
                }
            },
        };
        // If `f` panics the guard frees the slot (the connection is dropped with the unwinding):
        // a lost slot would leave later readers waiting forever once all were lost.
        let guard = SlotGuard(self);
        let out = f(&conn);
        std::mem::forget(guard);
        self.give_back(Some(conn));
        out
    }

    fn open_reader(&self) -> Result<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&c)?;
        Ok(c)
    }

    /// Returns a lent connection (or, when there is none to keep, its slot) and wakes one waiter.
    fn give_back(&self, conn: Option<Connection>) {
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        match conn {
            Some(c) => pool.idle.push(c),
            None => pool.open -= 1,
        }
        drop(pool);
        self.reader_free.notify_one();
    }
}

/// Runs a query and returns every row as a [`Record`] named by the select aliases.
pub fn query_records(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Record>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut rec = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            use rusqlite::types::ValueRef;
            let f = match row.get_ref(i)? {
                ValueRef::Null => Field::Null,
                ValueRef::Integer(v) => Field::Int(v),
                ValueRef::Real(v) => Field::Real(v),
                ValueRef::Text(t) => Field::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Field::Text(String::from_utf8_lossy(b).into_owned()),
            };
            rec.push((n.clone(), f));
        }
        out.push(rec);
    }
    Ok(out)
}

/// Like [`query_records`] for owned, dynamically built parameter lists.
pub fn query_records_dyn(
    conn: &Connection,
    sql: &str,
    params: &[rusqlite::types::Value],
) -> Result<Vec<Record>> {
    let refs: Vec<&dyn rusqlite::ToSql> =
        params.iter().map(|p| p as &dyn rusqlite::ToSql).collect();
    query_records(conn, sql, &refs)
}

/// Seconds since the epoch, as Koji's `*_ts` fields carry them.
pub fn now_ts() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Records a new event (Koji's versioning clock) and returns its id.
pub fn new_event(tx: &Connection) -> Result<i64> {
    tx.prepare_cached("INSERT INTO events (ts) VALUES (?1)")?
        .execute([now_ts()])?;
    Ok(tx.last_insert_rowid())
}

/// The newest event, `(id, ts)`.
pub fn last_event(conn: &Connection, before: Option<f64>) -> Result<Option<(i64, f64)>> {
    let r = match before {
        Some(b) => conn.query_row(
            "SELECT id, ts FROM events WHERE ts < ?1 ORDER BY id DESC LIMIT 1",
            [b],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ),
        None => conn.query_row(
            "SELECT id, ts FROM events ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ),
    };
    match r {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that panics gives its slot back: with one slot, the next read still runs.
    #[test]
    fn panicking_reader_frees_its_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_with_readers(dir.path(), 1).expect("store");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<()> = store.read(|_| panic!("handler bug"));
        }));
        assert!(r.is_err());
        let n: i64 = store
            .read(|c| Ok::<_, StoreError>(c.query_row("SELECT 1", [], |r| r.get(0))?))
            .expect("read after the panic");
        assert_eq!(n, 1);
    }
}
