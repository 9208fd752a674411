//! What `GET /metrics` reads from the database at scrape time. Every query here touches only
//! small tables or an index range (schema migration 4): task and build counts are kept by
//! triggers, open sessions come from the `sessions_open` index, hosts are few.

use rusqlite::Connection;

use super::Result;

/// One host's gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct HostGauges {
    pub name: String,
    pub ready: bool,
    pub enabled: bool,
    pub task_load: f64,
    pub capacity: f64,
}

/// The store's side of a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// `(state, method, count)`, ordered by state then method; ended combinations stay at 0.
    pub tasks: Vec<(i64, String, i64)>,
    /// `(build state, count)`, ordered by state.
    pub builds: Vec<(i64, i64)>,
    /// Sessions neither logged out nor past their renewal timeout.
    pub active_sessions: i64,
    pub hosts: Vec<HostGauges>,
}

/// Reads the snapshot. `session_timeout` is the session lifetime in seconds since login or
/// renewal (`None`: sessions never expire), as `Auth::validate` applies it.
pub fn snapshot(conn: &Connection, now: f64, session_timeout: Option<f64>) -> Result<Snapshot> {
    let tasks = conn
        .prepare_cached("SELECT state, method, n FROM task_counts ORDER BY state, method")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let builds = conn
        .prepare_cached("SELECT state, n FROM build_counts ORDER BY state")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let active_sessions = active_sessions(conn, now, session_timeout)?;
    let hosts = conn
        .prepare_cached(
            "SELECT name, ready, enabled, task_load, capacity FROM hosts ORDER BY name",
        )?
        .query_map([], |r| {
            Ok(HostGauges {
                name: r.get(0)?,
                ready: r.get::<_, i64>(1)? != 0,
                enabled: r.get::<_, i64>(2)? != 0,
                task_load: r.get(3)?,
                capacity: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Snapshot {
        tasks,
        builds,
        active_sessions,
        hosts,
    })
}

/// Open sessions renewed (or started) within `session_timeout` seconds of `now`; an index range
/// on `sessions_open`, so closed sessions cost nothing however many there are.
pub fn active_sessions(conn: &Connection, now: f64, session_timeout: Option<f64>) -> Result<i64> {
    Ok(match session_timeout {
        Some(t) => conn
            .prepare_cached(
                "SELECT count(*) FROM sessions \
                 WHERE closed = 0 AND coalesce(renew_ts, start_ts) >= ?1",
            )?
            .query_row([now - t], |r| r.get(0))?,
        None => conn
            .prepare_cached("SELECT count(*) FROM sessions WHERE closed = 0")?
            .query_row([], |r| r.get(0))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreError, now_ts, sessions, tasks};

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        rows.join("; ")
    }

    fn new_task(tx: &Connection, owner: i64, method: &str) -> i64 {
        tasks::create(
            tx,
            &tasks::NewTask {
                method: method.into(),
                arch: "noarch".into(),
                owner,
                channel_id: 1,
                priority: 20,
                parent: None,
                label: None,
                request_xml: "<methodCall/>".into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn trigger_counts_follow_tasks_and_rollbacks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = store
            .write(|tx| -> std::result::Result<_, StoreError> {
                let owner = crate::store::users::create(tx, "u", 0, 0, None, None)?;
                let a = new_task(tx, owner, "sleep");
                let b = new_task(tx, owner, "sleep");
                new_task(tx, owner, "buildContainer");
                tx.execute(
                    "UPDATE tasks SET state = ?1 WHERE id = ?2",
                    [tasks::ASSIGNED, a],
                )?;
                Ok((a, b))
            })
            .unwrap();
        // A rolled-back change leaves the counts alone.
        let r = store.write(|tx| -> std::result::Result<(), StoreError> {
            tasks::cancel(tx, b, false)?;
            Err(StoreError::Conflict("roll back".into()))
        });
        assert!(r.is_err());
        store
            .write(|tx| -> std::result::Result<(), StoreError> {
                tasks::finish(tx, a, tasks::CLOSED, "<methodResponse/>")?;
                Ok(())
            })
            .unwrap();
        let snap = store.read(|c| snapshot(c, now_ts(), Some(60.0))).unwrap();
        let by_group: Vec<(i64, String, i64)> = store
            .read(|c| -> Result<_> {
                Ok(c.prepare(
                    "SELECT state, method, count(*) FROM tasks GROUP BY state, method ORDER BY state, method",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .unwrap();
        let nonzero: Vec<_> = snap.tasks.iter().filter(|t| t.2 != 0).cloned().collect();
        assert_eq!(nonzero, by_group);
        assert_eq!(
            nonzero,
            vec![
                (tasks::FREE, "buildContainer".to_string(), 1),
                (tasks::FREE, "sleep".to_string(), 1),
                (tasks::CLOSED, "sleep".to_string(), 1),
            ]
        );
        // The ASSIGNED row stays, at zero.
        assert!(
            snap.tasks
                .contains(&(tasks::ASSIGNED, "sleep".to_string(), 0))
        );
    }

    #[test]
    fn sessions_count_open_unexpired_only_with_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|tx| -> std::result::Result<(), StoreError> {
                let u = crate::store::users::create(tx, "u", 0, 0, None, None)?;
                let (s1, _) = sessions::create(tx, u, 1, None, None)?;
                sessions::create(tx, u, 1, None, Some(s1))?;
                let (s3, _) = sessions::create(tx, u, 1, None, None)?;
                sessions::close(tx, s3)?;
                let (s4, _) = sessions::create(tx, u, 1, None, None)?;
                tx.execute(
                    "UPDATE sessions SET start_ts = start_ts - 7200 WHERE id = ?1",
                    [s4],
                )?;
                Ok(())
            })
            .unwrap();
        let now = now_ts();
        assert_eq!(
            store
                .read(|c| active_sessions(c, now, Some(3600.0)))
                .unwrap(),
            2
        );
        assert_eq!(store.read(|c| active_sessions(c, now, None)).unwrap(), 3);
        let p = store
            .read(|c| -> Result<_> {
                Ok(plan(
                    c,
                    "SELECT count(*) FROM sessions WHERE closed = 0 AND coalesce(renew_ts, start_ts) >= 1.0",
                ))
            })
            .unwrap();
        assert!(p.contains("USING COVERING INDEX sessions_open"), "{p}");
        let p = store
            .read(|c| -> Result<_> {
                Ok(plan(
                    c,
                    "SELECT state, method, n FROM task_counts ORDER BY state, method",
                ))
            })
            .unwrap();
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }
}
