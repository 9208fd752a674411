//! Provisioning of the builders `containerbuild serve --builders N` runs in-process.
//!
//! Each embedded builder is an ordinary Koji host: a HOST user (with a password hash, as any
//! other user), a `hosts` row, and membership of the `default` and `container` channels. It logs
//! in over HTTP like an external builder does.

use rusqlite::Connection;

use super::{Result, StoreError, records, users};

/// The content generator embedded builders import as (the builder's `cg::CONTENT_GENERATOR`;
/// `store` does not depend on `cg`, a unit test keeps the two equal).
pub const CONTENT_GENERATOR: &str = "atomic-reactor";

/// Makes sure `name` is a host that can log in with `password`: creates the HOST user and the
/// host (arches `arch`, channels `default` and `container`) if missing, sets the password, and
/// re-adds missing channel memberships, and grants it access to the `atomic-reactor` content
/// generator (its container builds are imported with `CGImport`). An existing host keeps its arches, capacity and enabled
/// flag (an admin may have changed them). Returns the host id.
pub fn ensure_builder_host(
    conn: &Connection,
    name: &str,
    arch: &str,
    password: &str,
) -> Result<i64> {
    let user_id = match users::get(conn, &users::UserRef::Name(name))? {
        Some(u) if u.usertype == users::USERTYPE_HOST => u.id,
        Some(_) => {
            return Err(StoreError::Conflict(format!(
                "user {name} already exists and it is not a host; rename it or pick other \
                 builder names"
            )));
        }
        None => users::create(
            conn,
            name,
            users::STATUS_NORMAL,
            users::USERTYPE_HOST,
            None,
            None,
        )?,
    };
    users::set_password(conn, user_id, password)?;
    let existing: Option<i64> = {
        let mut stmt = conn.prepare_cached("SELECT id FROM hosts WHERE user_id = ?1")?;
        let mut rows = stmt.query([user_id])?;
        match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        }
    };
    let host_id = match existing {
        Some(id) => id,
        None => records::create_host(conn, user_id, name, arch)?,
    };
    for channel in ["default", "container"] {
        let cid = records::channel_id(conn, channel)?
            .ok_or_else(|| StoreError::NotFound(format!("No such channel: {channel}")))?;
        if !records::host_in_channel(conn, host_id, cid)? {
            records::add_host_to_channel(conn, host_id, cid)?;
        }
    }
    // The builder imports its container builds as the atomic-reactor content generator.
    let cg = match records::lookup(
        conn,
        records::Named::ContentGenerator,
        records::Ref::Name(CONTENT_GENERATOR),
    )? {
        Some((id, _)) => id,
        None => super::cg::create_cg(conn, CONTENT_GENERATOR)?,
    };
    super::cg::grant(conn, cg, user_id, None)?;
    Ok(host_id)
}

/// Koji's name for the architecture this program was built for.
pub fn koji_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "i686",
        "arm" => "armhfp",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn provisions_once_and_updates_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let id1 = store
            .write(|tx| ensure_builder_host(tx, "vm-builder0", "x86_64", "one"))
            .expect("first");
        let id2 = store
            .write(|tx| ensure_builder_host(tx, "vm-builder0", "x86_64", "two"))
            .expect("second");
        assert_eq!(id1, id2);
        store
            .read(|c| -> Result<()> {
                let u = users::get(c, &users::UserRef::Name("vm-builder0"))?.expect("user");
                assert_eq!(u.usertype, users::USERTYPE_HOST);
                assert!(users::verify_password(
                    u.password_hash.as_deref().unwrap_or(""),
                    "two"
                ));
                let n: i64 = c.query_row(
                    "SELECT count(*) FROM host_channels WHERE host_id = ?1",
                    [id1],
                    |r| r.get(0),
                )?;
                assert_eq!(n, 2);
                Ok(())
            })
            .expect("read");
        store
            .write(|tx| {
                users::create(tx, "alice", 0, users::USERTYPE_NORMAL, None, None)?;
                Ok::<_, StoreError>(())
            })
            .expect("alice");
        assert!(
            store
                .write(|tx| ensure_builder_host(tx, "alice", "x86_64", "x"))
                .is_err()
        );
    }
}
