//! Tags, targets, packages, channels, hosts, builds, archives and RPMs: the records an admin
//! sets up and the build side reads.

use rusqlite::{Connection, OptionalExtension};

use super::Result;

/// Looks a channel up by id or name.
pub fn channel_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM channels WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}
