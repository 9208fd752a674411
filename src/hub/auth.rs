//! Who is calling: Koji's session validation (`kojihub/auth.py` semantics) and permission checks.

use std::cell::OnceCell;
use std::net::IpAddr;

use rusqlite::Connection;

use crate::store::now_ts;
use crate::store::sessions::{self, SessionRow};
use crate::store::users::{self, UserRef, UserRow};
use crate::xmlrpc::{Fault, FaultCode};

use super::Config;

/// Methods that retrying with the same callnum may repeat (Koji's `RetryWhitelist`).
const RETRY_WHITELIST: &[&str] = &[
    "host.taskWait",
    "host.taskUnwait",
    "host.taskSetWait",
    "host.updateHost",
    "host.setBuildRootState",
    "repoExpire",
    "repoDelete",
    "repoProblem",
];

/// Methods an expired session may still call (to renew itself).
const AUTH_METHODS: &[&str] = &["login", "sslLogin"];

/// Session credentials as the request carried them (headers, or the legacy query string).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub session_id: Option<String>,
    pub session_key: Option<String>,
    pub callnum: Option<String>,
    /// The TLS connection's client certificate state; `None` over plain HTTP.
    pub tls: Option<super::tls::TlsPeer>,
}

/// A validated session.
#[derive(Debug)]
pub struct LoggedIn {
    pub session: SessionRow,
    pub user: UserRow,
    /// This session, or its master, holds the user's exclusive lock.
    pub exclusive: bool,
    perms: OnceCell<Vec<String>>,
}

/// The caller's authentication state for one request.
#[derive(Debug, Default)]
pub struct Auth {
    pub logged_in: Option<LoggedIn>,
    /// An expired session that may only renew itself via `login(renew=True)`.
    pub expired: Option<SessionRow>,
    pub callnum: Option<i64>,
    /// Another session of this user holds the exclusive lock.
    pub lock_error: bool,
    pub peer: Option<IpAddr>,
    /// The connection's TLS state, for `sslLogin`.
    pub tls: Option<super::tls::TlsPeer>,
}

impl Auth {
    /// Validates the credentials of a request for `method` (Koji's `Session.validate`).
    pub fn validate(
        conn: &Connection,
        config: &Config,
        creds: &Credentials,
        peer: Option<IpAddr>,
        method: &str,
    ) -> Result<Auth, Fault> {
        let mut auth = Auth {
            peer,
            tls: creds.tls.clone(),
            ..Auth::default()
        };
        let (Some(id), Some(key)) = (&creds.session_id, &creds.session_key) else {
            if creds.session_id.is_some() {
                return Err(Fault::auth("'session-key' not specified in session args"));
            }
            return Ok(auth);
        };
        let id: i64 = id
            .trim()
            .parse()
            .map_err(|_| Fault::auth(format!("Invalid session id: {id:?}")))?;
        let invalid = || Fault::auth("Invalid session or bad credentials");
        let row = sessions::get(conn, id)?.ok_or_else(invalid)?;
        let key_ok: bool = subtle::ConstantTimeEq::ct_eq(row.key.as_bytes(), key.as_bytes()).into();
        if !key_ok || row.closed {
            return Err(invalid());
        }
        if config.check_client_ip && row.hostip.as_deref() != peer.map(|p| p.to_string()).as_deref()
        {
            return Err(invalid());
        }
        let renewed_at = row.renew_ts.unwrap_or(row.start_ts);
        let expired = config.session_renewal_timeout > 0.0
            && now_ts() > renewed_at + config.session_renewal_timeout * 60.0;
        if expired && !AUTH_METHODS.contains(&method) {
            return Err(Fault::new(
                FaultCode::AuthExpired,
                format!("session \"{id}\" has expired"),
            ));
        }
        if let Some(c) = &creds.callnum {
            let callnum: i64 = c
                .trim()
                .parse()
                .map_err(|_| Fault::auth(format!("Invalid callnum: {c:?}")))?;
            if let Some(last) = row.callnum {
                if last > callnum {
                    return Err(Fault::new(
                        FaultCode::Sequence,
                        format!("{last} > {callnum} (session {id})"),
                    ));
                }
                if last == callnum && !RETRY_WHITELIST.contains(&method) {
                    return Err(Fault::new(
                        FaultCode::Retry,
                        format!(
                            "unable to retry call {callnum} (method {method}) for session {id}"
                        ),
                    ));
                }
            }
            auth.callnum = Some(callnum);
        }
        if expired {
            auth.expired = Some(row);
            return Ok(auth);
        }
        let user = users::get(conn, &UserRef::Id(row.user_id))?.ok_or_else(invalid)?;
        if user.status != users::STATUS_NORMAL {
            return Err(Fault::auth(format!(
                "logins by {} are not allowed",
                user.name
            )));
        }
        let mut exclusive = row.exclusive;
        if !exclusive && let Some(excl) = sessions::other_exclusive(conn, row.user_id, row.id)? {
            if Some(excl) == row.master {
                exclusive = true;
            } else {
                auth.lock_error = true;
            }
        }
        auth.logged_in = Some(LoggedIn {
            session: row,
            user,
            exclusive,
            perms: OnceCell::new(),
        });
        Ok(auth)
    }

    pub fn user(&self) -> Option<&UserRow> {
        self.logged_in.as_ref().map(|l| &l.user)
    }

    pub fn user_id(&self) -> Option<i64> {
        self.user().map(|u| u.id)
    }

    /// Koji's `assertLogin`.
    pub fn require_login(&self) -> Result<&LoggedIn, Fault> {
        self.logged_in
            .as_ref()
            .ok_or_else(|| Fault::not_allowed("you must be logged in for this operation"))
    }

    /// The user's permission names (loaded once per request).
    pub fn perms(&self, conn: &Connection) -> Result<&[String], Fault> {
        let Some(l) = &self.logged_in else {
            return Ok(&[]);
        };
        if l.perms.get().is_none() {
            let p = users::perms(conn, l.user.id)?;
            let _ = l.perms.set(p);
        }
        Ok(l.perms.get().map(Vec::as_slice).unwrap_or(&[]))
    }

    /// Koji's `hasPerm`: admin implies every permission unless `strict`.
    pub fn has_perm(&self, conn: &Connection, perm: &str, strict: bool) -> Result<bool, Fault> {
        let perms = self.perms(conn)?;
        Ok(perms.iter().any(|p| p == perm) || (!strict && perms.iter().any(|p| p == "admin")))
    }

    /// Koji's `assertPerm`.
    pub fn require_perm(&self, conn: &Connection, perm: &str) -> Result<(), Fault> {
        match self.user() {
            None => Err(Fault::not_allowed(format!(
                "{perm} permission required (user not logged in)"
            ))),
            Some(u) => {
                if self.has_perm(conn, perm, false)? {
                    Ok(())
                } else {
                    Err(Fault::not_allowed(format!(
                        "{perm} permission required (logged in as {})",
                        u.name
                    )))
                }
            }
        }
    }
}
