//! Users, passwords and permissions.
//!
//! Koji keeps passwords in plaintext; we keep argon2id hashes (PHC strings), so a copied database
//! does not hand out every builder's and packager's credentials.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Record, Result, StoreError, new_event, query_records};

pub const USERTYPE_NORMAL: i64 = 0;
pub const USERTYPE_HOST: i64 = 1;
pub const STATUS_NORMAL: i64 = 0;
pub const STATUS_BLOCKED: i64 = 1;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub status: i64,
    pub usertype: i64,
    pub password_hash: Option<String>,
}

/// How callers name a user: by id or by name (Koji accepts both almost everywhere).
#[derive(Debug, Clone)]
pub enum UserRef<'a> {
    Id(i64),
    Name(&'a str),
}

pub fn hash_password(password: &str) -> String {
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes is a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Constant-time verification; an unusable stored hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        name: r.get(1)?,
        status: r.get(2)?,
        usertype: r.get(3)?,
        password_hash: r.get(4)?,
    })
}

pub fn get(conn: &Connection, user: &UserRef<'_>) -> Result<Option<UserRow>> {
    let sql = "SELECT id, name, status, usertype, password_hash FROM users";
    Ok(match user {
        UserRef::Id(id) => conn
            .prepare_cached(&format!("{sql} WHERE id = ?1"))?
            .query_row([id], row)
            .optional()?,
        UserRef::Name(n) => conn
            .prepare_cached(&format!("{sql} WHERE name = ?1"))?
            .query_row([n], row)
            .optional()?,
    })
}

pub fn get_by_krb(conn: &Connection, principal: &str) -> Result<Option<UserRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT u.id, u.name, u.status, u.usertype, u.password_hash FROM users u \
             JOIN user_krb_principals k ON k.user_id = u.id WHERE k.krb_principal = ?1",
        )?
        .query_row([principal], row)
        .optional()?)
}

pub fn krb_principals(conn: &Connection, user_id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT krb_principal FROM user_krb_principals WHERE user_id = ?1 ORDER BY krb_principal",
    )?;
    let v = stmt
        .query_map([user_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

/// Creates a user; the name must be new.
pub fn create(
    conn: &Connection,
    name: &str,
    status: i64,
    usertype: i64,
    password: Option<&str>,
    krb_principal: Option<&str>,
) -> Result<i64> {
    if get(conn, &UserRef::Name(name))?.is_some() {
        return Err(StoreError::Conflict(format!("user already exists: {name}")));
    }
    let hash = password.map(hash_password);
    conn.execute(
        "INSERT INTO users (name, status, usertype, password_hash) VALUES (?1, ?2, ?3, ?4)",
        params![name, status, usertype, hash],
    )?;
    let id = conn.last_insert_rowid();
    if let Some(p) = krb_principal {
        conn.execute(
            "INSERT INTO user_krb_principals (user_id, krb_principal) VALUES (?1, ?2)",
            params![id, p],
        )?;
    }
    Ok(id)
}

pub fn set_password(conn: &Connection, user_id: i64, password: &str) -> Result<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?1 WHERE id = ?2",
        params![hash_password(password), user_id],
    )?;
    Ok(())
}

pub fn set_status(conn: &Connection, user_id: i64, status: i64) -> Result<()> {
    conn.execute(
        "UPDATE users SET status = ?1 WHERE id = ?2",
        params![status, user_id],
    )?;
    Ok(())
}

pub fn rename(conn: &Connection, user_id: i64, name: &str) -> Result<()> {
    conn.execute(
        "UPDATE users SET name = ?1 WHERE id = ?2",
        params![name, user_id],
    )?;
    Ok(())
}

/// Permission names the user holds, sorted.
pub fn perms(conn: &Connection, user_id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.name FROM user_perms up JOIN permissions p ON p.id = up.perm_id \
         WHERE up.user_id = ?1 ORDER BY p.name",
    )?;
    let v = stmt
        .query_map([user_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

pub fn has_perm(conn: &Connection, user_id: i64, perm: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM user_perms up JOIN permissions p ON p.id = up.perm_id \
             WHERE up.user_id = ?1 AND p.name = ?2",
        )?
        .query_row(params![user_id, perm], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn perm_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM permissions WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

pub fn create_perm(conn: &Connection, name: &str, description: Option<&str>) -> Result<i64> {
    conn.execute(
        "INSERT INTO permissions (name, description) VALUES (?1, ?2)",
        params![name, description],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn grant(conn: &Connection, user_id: i64, perm_id: i64) -> Result<()> {
    let ev = new_event(conn)?;
    conn.execute(
        "INSERT INTO user_perms (user_id, perm_id, create_event) VALUES (?1, ?2, ?3)",
        params![user_id, perm_id, ev],
    )?;
    Ok(())
}

pub fn revoke(conn: &Connection, user_id: i64, perm_id: i64) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM user_perms WHERE user_id = ?1 AND perm_id = ?2",
        params![user_id, perm_id],
    )? > 0)
}

/// Every permission: `id`, `name`, `description`.
pub fn all_perms(conn: &Connection) -> Result<Vec<Record>> {
    query_records(
        conn,
        "SELECT id, name, description FROM permissions ORDER BY id",
        &[],
    )
}

/// `listUsers`: users of one type, optionally by name prefix, in id order.
pub fn list(conn: &Connection, usertype: Option<i64>, prefix: Option<&str>) -> Result<Vec<Record>> {
    let pattern = prefix.map(|p| {
        format!(
            "{}%",
            p.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    query_records(
        conn,
        "SELECT id, name, status, usertype FROM users \
         WHERE (?1 IS NULL OR usertype = ?1) AND (?2 IS NULL OR name LIKE ?2 ESCAPE '\\') ORDER BY id",
        &[&usertype, &pattern],
    )
}
