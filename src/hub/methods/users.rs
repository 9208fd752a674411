//! Sessions, users and permissions (Koji's `auth.py` and the user half of `kojihub.py`).

use crate::hub::{Ctx, Method};
use crate::params;
use crate::store::sessions;
use crate::store::users::{self, UserRef, UserRow};
use crate::xmlrpc::sig::{opt, req};
use crate::xmlrpc::{Args, Fault, FaultCode, Struct, Value};

use super::{query_opts, shape};

/// `koji.AUTHTYPES['NORMAL']`: password logins.
const AUTHTYPE_NORMAL: i64 = 0;
/// `koji.AUTHTYPES['SSL']`: client certificate logins.
const AUTHTYPE_SSL: i64 = 2;
/// `koji.AUTHTYPES['GSSAPI']`: a proxy may name it as `proxyauthtype`.
const AUTHTYPE_GSSAPI: i64 = 3;

pub fn methods() -> Vec<Method> {
    vec![
        Method::write(
            "login",
            params![
                req("user"),
                req("password"),
                opt("opts", "None"),
                opt("renew", "False"),
                opt("exclusive", "False")
            ],
            "Log in with a user name and password; returns {session-id, session-key, header-auth}.",
            login,
        ),
        Method::write(
            "sslLogin",
            params![
                opt("proxyuser", "None"),
                opt("proxyauthtype", "None"),
                opt("renew", "False"),
                opt("exclusive", "None")
            ],
            "Log in with the TLS client certificate (user = its DN component, CN by default); \
             returns {session-id, session-key, header-auth}.",
            ssl_login,
        ),
        Method::write(
            "logout",
            params![opt("session_id", "None")],
            "Close this session (or another one you own) and its subsessions.",
            logout,
        ),
        Method::write(
            "subsession",
            &[],
            "Create a subsession of the current session.",
            subsession,
        ),
        Method::write(
            "logoutChild",
            params![req("session_id")],
            "Close a subsession of the current session.",
            logout_child,
        ),
        Method::write(
            "exclusiveSession",
            params![opt("force", "False")],
            "Make this session the user's only usable one (builders use this).",
            exclusive_session,
        ),
        Method::write(
            "sharedSession",
            &[],
            "Drop this session's exclusive lock.",
            shared_session,
        ),
        Method::read(
            "getLoggedInUser",
            &[],
            "Return the logged-in user with the session's authtype, or None.",
            get_logged_in_user,
        ),
        Method::read(
            "getSessionInfo",
            params![opt("details", "False"), opt("user_id", "None")],
            "Return data of the current session (or, for admins, a user's sessions).",
            get_session_info,
        ),
        Method::read(
            "showSession",
            &[],
            "Return the current session as text.",
            show_session,
        ),
        Method::read(
            "getUser",
            params![
                opt("userInfo", "None"),
                opt("strict", "False"),
                opt("krb_princs", "True"),
                opt("groups", "False")
            ],
            "Look a user up by id, name or Kerberos principal (default: yourself).",
            get_user,
        ),
        Method::read(
            "getPerms",
            &[],
            "Permission names of the logged-in user.",
            get_perms,
        ),
        Method::read(
            "getUserPerms",
            params![opt("userID", "None"), opt("with_groups", "True")],
            "Permission names of a user (default: yourself).",
            get_user_perms,
        ),
        Method::read(
            "getUserPermsInheritance",
            params![req("userID")],
            "Permissions of a user, each with the groups it comes from ([None] = direct).",
            get_user_perms_inheritance,
        ),
        Method::read(
            "hasPerm",
            params![req("perm"), opt("strict", "False")],
            "Whether the logged-in user holds exactly this permission; strict=True faults on an undefined one.",
            has_perm,
        ),
        Method::read(
            "getAllPerms",
            &[],
            "Every permission: [{id, name, description}].",
            get_all_perms,
        ),
        Method::write(
            "grantPermission",
            params![
                req("userinfo"),
                req("permission"),
                opt("create", "False"),
                opt("description", "None")
            ],
            "Grant a permission to a user; create=True makes a new permission.",
            grant_permission,
        ),
        Method::write(
            "revokePermission",
            params![req("userinfo"), req("permission")],
            "Revoke a permission from a user.",
            revoke_permission,
        ),
        Method::write(
            "createUser",
            params![
                req("username"),
                opt("status", "None"),
                opt("krb_principal", "None")
            ],
            "Create a user (admin); returns its id.",
            create_user,
        ),
        Method::write(
            "editUser",
            params![
                req("userInfo"),
                opt("name", "None"),
                opt("krb_principal_mappings", "None")
            ],
            "Rename a user or change its Kerberos principals (admin).",
            edit_user,
        ),
        Method::write(
            "enableUser",
            params![req("username")],
            "Allow a user to log in (admin).",
            |c, a| set_status(c, a, users::STATUS_NORMAL),
        ),
        Method::write(
            "disableUser",
            params![req("username")],
            "Block a user's logins (admin).",
            |c, a| set_status(c, a, users::STATUS_BLOCKED),
        ),
        Method::read(
            "listUsers",
            params![
                opt("userType", "0"),
                opt("prefix", "None"),
                opt("queryOpts", "None")
            ],
            "List users of a type (0 normal, 1 host), optionally by name prefix.",
            list_users,
        ),
    ]
}

fn sinfo(id: i64, key: String) -> Value {
    Value::Struct(
        Struct::new()
            .with("session-id", id)
            .with("session-key", key)
            .with("header-auth", true),
    )
}

fn login(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let bad = || Fault::auth("invalid username or password");
    let user = a.get("user").and_then(Value::as_str).ok_or_else(bad)?;
    let password = match a.get("password") {
        Some(Value::String(p)) if !p.is_empty() => p.as_str(),
        _ => return Err(bad()),
    };
    let (hub, peer) = (ctx.hub, ctx.auth.peer);
    // Throttled before the password is looked at, so guessing costs the guesser time.
    hub.logins.check(&hub.config, Some(user), peer)?;
    let failed = || {
        hub.logins.failed(&hub.config, Some(user), peer);
        bad()
    };
    if a.flag("renew", false) {
        // An expired session renews in place: same id, fresh key (the client retries its call).
        if let Some(expired) = ctx.auth.expired.take() {
            let u = users::get(ctx.db, &UserRef::Id(expired.user_id))?.ok_or_else(failed)?;
            if u.name != user
                || !u
                    .password_hash
                    .as_deref()
                    .is_some_and(|h| users::verify_password(h, password))
            {
                return Err(failed());
            }
            check_login_allowed(&u)?;
            hub.logins.succeeded(user, peer);
            let key = sessions::renew(ctx.db, expired.id)?;
            return Ok(sinfo(expired.id, key));
        }
    }
    if ctx.auth.logged_in.is_some() {
        return Err(Fault::auth("Already logged in"));
    }
    let u = users::get(ctx.db, &UserRef::Name(user))?.ok_or_else(failed)?;
    if !u
        .password_hash
        .as_deref()
        .is_some_and(|h| users::verify_password(h, password))
    {
        return Err(failed());
    }
    check_login_allowed(&u)?;
    hub.logins.succeeded(user, peer);
    let ip = ctx.auth.peer.map(|p| p.to_string());
    let (id, key) = sessions::create(ctx.db, u.id, AUTHTYPE_NORMAL, ip.as_deref(), None)?;
    if a.flag("exclusive", false) {
        make_exclusive(ctx, id, u.id, false)?;
    }
    Ok(sinfo(id, key))
}

/// Koji's `sslLogin` (kojihub/auth.py) with the hub's own TLS in place of Apache's `mod_ssl`:
/// the verified client certificate's DN component names the user (created when
/// `login_creates_user`), `proxyuser` is honoured for `proxy_dns` only, blocked users are
/// refused, `renew` renews an expired session in place and `exclusive` makes the new session
/// exclusive.
fn ssl_login(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let (hub, peer) = (ctx.hub, ctx.auth.peer);
    let cfg = &hub.config;
    if ctx.auth.logged_in.is_some() {
        return Err(Fault::auth("Already logged in"));
    }
    hub.logins.check(cfg, None, peer)?;
    // mod_ssl's SSL_CLIENT_VERIFY: unset over plain HTTP (Python prints None), NONE when the
    // client sent no certificate. A certificate that did not verify never gets this far: the
    // TLS handshake refuses it.
    let cert = match &ctx.auth.tls {
        None => {
            hub.logins.failed(cfg, None, peer);
            return Err(Fault::auth("could not verify client: None"));
        }
        Some(t) => match &t.client {
            None => {
                hub.logins.failed(cfg, None, peer);
                return Err(Fault::auth("could not verify client: NONE"));
            }
            Some(c) => c.clone(),
        },
    };
    let component = cfg.dn_username_component.as_str();
    let Some(mut username) = cert.component(component).map(str::to_string) else {
        hub.logins.failed(cfg, None, peer);
        return Err(Fault::auth(format!(
            "unable to get user information ({component}) from client certificate"
        )));
    };
    let mut authtype = AUTHTYPE_SSL;
    if let Some(proxyuser) = a.get("proxyuser").filter(|v| v.truthy()) {
        if !cfg.proxy_dns.iter().any(|dn| dn.trim() == cert.dn) {
            hub.logins.failed(cfg, Some(&username), peer);
            return Err(Fault::auth(format!(
                "{} is not authorized to login other users",
                cert.dn
            )));
        }
        username = match proxyuser {
            Value::String(s) => s.clone(),
            other => describe(other),
        };
        if let Some(pat) = a.get("proxyauthtype").filter(|v| !matches!(v, Value::Nil)) {
            let pat = pat.as_int();
            if !cfg.allow_proxy_auth_type && pat != Some(authtype) {
                return Err(Fault::auth(
                    "Proxy must use same auth mechanism as hub (behaviour can be overriden via \
                     AllowProxyAuthType hub option)",
                ));
            }
            match pat {
                Some(t) if t == AUTHTYPE_GSSAPI || t == AUTHTYPE_SSL => authtype = t,
                _ => {
                    return Err(Fault::auth(format!(
                        "Proxied authtype {} is not valid for sslLogin",
                        a.get("proxyauthtype").map(describe).unwrap_or_default()
                    )));
                }
            }
        }
    }
    hub.logins.check(cfg, Some(&username), peer)?;
    let user = match users::get(ctx.db, &UserRef::Name(&username))? {
        Some(u) => u,
        None if cfg.login_creates_user => {
            let id = users::create(
                ctx.db,
                &username,
                users::STATUS_NORMAL,
                users::USERTYPE_NORMAL,
                None,
                None,
            )?;
            tracing::info!(user = %username, dn = %cert.dn, "sslLogin created the user");
            users::get(ctx.db, &UserRef::Id(id))?
                .ok_or_else(|| Fault::internal("the new user vanished"))?
        }
        None => {
            hub.logins.failed(cfg, Some(&username), peer);
            return Err(Fault::auth(format!("Unknown user: {username}")));
        }
    };
    check_login_allowed(&user)?;
    hub.logins.succeeded(&username, peer);
    if a.flag("renew", false)
        && let Some(expired) = ctx.auth.expired.take()
        && expired.user_id == user.id
    {
        let key = sessions::renew(ctx.db, expired.id)?;
        return Ok(sinfo(expired.id, key));
    }
    let ip = peer.map(|p| p.to_string());
    let (id, key) = sessions::create(ctx.db, user.id, authtype, ip.as_deref(), None)?;
    if a.flag("exclusive", false) {
        make_exclusive(ctx, id, user.id, false)?;
    }
    Ok(sinfo(id, key))
}

fn check_login_allowed(u: &UserRow) -> Result<(), Fault> {
    if u.status != users::STATUS_NORMAL {
        return Err(Fault::auth(format!("logins by {} are not allowed", u.name)));
    }
    Ok(())
}

fn require_session(ctx: &Ctx<'_>) -> Result<(i64, i64, Option<i64>), Fault> {
    let l = ctx
        .auth
        .logged_in
        .as_ref()
        .ok_or_else(|| Fault::auth("Not logged in"))?;
    Ok((l.session.id, l.user.id, l.session.master))
}

fn logout(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let (me, user_id, _) = require_session(ctx)?;
    let target = match a.opt_int("session_id")? {
        Some(other) if other != me => {
            if !ctx.has_perm("admin")? {
                let owned = sessions::get(ctx.db, other)?.is_some_and(|s| s.user_id == user_id);
                if !owned {
                    return Err(Fault::not_allowed(
                        "only admins or owner may logout other session",
                    ));
                }
            }
            other
        }
        _ => me,
    };
    sessions::close(ctx.db, target)?;
    Ok(Value::Nil)
}

fn subsession(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    let l = ctx
        .auth
        .logged_in
        .as_ref()
        .ok_or_else(|| Fault::auth("Not logged in"))?;
    let master = l.session.master.unwrap_or(l.session.id);
    let (id, key) = sessions::create(
        ctx.db,
        l.user.id,
        l.session.authtype,
        l.session.hostip.as_deref(),
        Some(master),
    )?;
    Ok(sinfo(id, key))
}

fn logout_child(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let (me, _, _) = require_session(ctx)?;
    sessions::close_child(ctx.db, me, a.int("session_id")?)?;
    Ok(Value::Nil)
}

fn make_exclusive(ctx: &Ctx<'_>, session_id: i64, user_id: i64, force: bool) -> Result<(), Fault> {
    if let Some(other) = sessions::other_exclusive(ctx.db, user_id, session_id)? {
        if !force {
            return Err(Fault::new(
                FaultCode::AuthLock,
                "Cannot get exclusive session",
            ));
        }
        sessions::close(ctx.db, other)?;
    }
    sessions::set_exclusive(ctx.db, session_id, true)?;
    Ok(())
}

fn exclusive_session(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let (me, user_id, master) = require_session(ctx)?;
    if master.is_some() {
        return Err(Fault::generic("subsessions cannot become exclusive"));
    }
    if ctx
        .auth
        .logged_in
        .as_ref()
        .is_some_and(|l| l.session.exclusive)
    {
        return Err(Fault::generic("session is already exclusive"));
    }
    make_exclusive(ctx, me, user_id, a.flag("force", false))?;
    Ok(Value::Nil)
}

fn shared_session(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    let (me, _, master) = require_session(ctx)?;
    if master.is_some() {
        return Err(Fault::generic("subsessions cannot become shared"));
    }
    sessions::set_exclusive(ctx.db, me, false)?;
    Ok(Value::Nil)
}

/// Koji's user dict: `{id, name, status, usertype, krb_principals}`.
fn user_struct(ctx: &Ctx<'_>, u: &UserRow, krb: bool) -> Result<Struct, Fault> {
    let mut s = Struct::new()
        .with("id", u.id)
        .with("name", u.name.as_str())
        .with("status", u.status)
        .with("usertype", u.usertype);
    if krb {
        let p: Vec<Value> = users::krb_principals(ctx.db, u.id)?
            .into_iter()
            .map(Value::String)
            .collect();
        s.insert("krb_principals", Value::Array(p));
    }
    Ok(s)
}

/// Resolves Koji's `userInfo` forms: id, name, Kerberos principal, or `{id|name|krb_principal}`.
pub fn lookup_user(ctx: &Ctx<'_>, info: &Value) -> Result<Option<UserRow>, Fault> {
    Ok(match info {
        Value::Int(id) => users::get(ctx.db, &UserRef::Id(*id))?,
        Value::String(s) => match s.parse::<i64>() {
            Ok(id) => users::get(ctx.db, &UserRef::Id(id))?,
            Err(_) => match users::get(ctx.db, &UserRef::Name(s))? {
                Some(u) => Some(u),
                None => users::get_by_krb(ctx.db, s)?,
            },
        },
        Value::Struct(d) => {
            if let Some(id) = d.get("id").and_then(Value::as_int) {
                users::get(ctx.db, &UserRef::Id(id))?
            } else if let Some(n) = d.get("name").and_then(Value::as_str) {
                users::get(ctx.db, &UserRef::Name(n))?
            } else if let Some(k) = d.get("krb_principal").and_then(Value::as_str) {
                users::get_by_krb(ctx.db, k)?
            } else {
                None
            }
        }
        other => {
            return Err(Fault::parameter(format!(
                "Invalid type for user info: {}",
                other.type_name()
            )));
        }
    })
}

fn require_user(ctx: &Ctx<'_>, info: &Value) -> Result<UserRow, Fault> {
    lookup_user(ctx, info)?
        .ok_or_else(|| Fault::generic(format!("No such user: {}", describe(info))))
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn get_logged_in_user(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    let Some(l) = &ctx.auth.logged_in else {
        return Ok(Value::Nil);
    };
    let mut s = user_struct(ctx, &l.user, true)?;
    let first = match s.get("krb_principals") {
        Some(Value::Array(a)) => a.first().cloned().unwrap_or(Value::Nil),
        _ => Value::Nil,
    };
    s.insert("authtype", l.session.authtype);
    s.insert("krb_principal", first);
    Ok(Value::Struct(s))
}

fn session_struct(row: &sessions::SessionRow, details: bool) -> Struct {
    use crate::hub::convert::koji_time;
    let mut s = Struct::new()
        .with("authtype", row.authtype)
        .with("callnum", row.callnum)
        .with(
            "exclusive",
            if row.exclusive {
                Value::Bool(true)
            } else {
                Value::Nil
            },
        )
        .with("expired", false)
        .with("master", row.master)
        .with("start_time", koji_time(row.start_ts))
        .with("update_time", koji_time(row.update_ts))
        .with("start_ts", row.start_ts)
        .with("update_ts", row.update_ts)
        .with("user_id", row.user_id)
        .with("renew_time", row.renew_ts.map(koji_time))
        .with("renew_ts", row.renew_ts);
    if details {
        s.insert("id", row.id);
        s.insert("hostip", row.hostip.clone());
    }
    s
}

fn get_session_info(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let Some(l) = &ctx.auth.logged_in else {
        return Ok(Value::Nil);
    };
    if let Some(uid) = a.opt_int("user_id")? {
        if uid != l.user.id {
            ctx.require_perm("admin")?;
        }
        return Err(Fault::generic(
            "listing another user's sessions is not supported by this hub",
        ));
    }
    Ok(Value::Struct(session_struct(
        &l.session,
        a.flag("details", false),
    )))
}

fn show_session(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    Ok(Value::String(match &ctx.auth.logged_in {
        None => "session: not logged in".into(),
        Some(l) => format!(
            "session {}: user {} ({}), authtype {}, exclusive {}",
            l.session.id, l.user.name, l.user.id, l.session.authtype, l.exclusive
        ),
    }))
}

fn get_user(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let user = match a.get("userInfo") {
        None => ctx.auth.logged_in.as_ref().map(|l| l.user.clone()),
        Some(info) => lookup_user(ctx, info)?,
    };
    match user {
        Some(u) => {
            let mut s = user_struct(ctx, &u, a.flag("krb_princs", true))?;
            if a.flag("groups", false) {
                s.insert("groups", Value::Array(vec![]));
            }
            Ok(Value::Struct(s))
        }
        None if a.flag("strict", false) => Err(Fault::generic(format!(
            "No such user: {}",
            a.get("userInfo").map(describe).unwrap_or_default()
        ))),
        None => Ok(Value::Nil),
    }
}

fn names(v: Vec<String>) -> Value {
    Value::Array(v.into_iter().map(Value::String).collect())
}

fn get_perms(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    Ok(names(ctx.auth.perms(ctx.db)?.to_vec()))
}

fn get_user_perms(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let uid = match a.get("userID") {
        None => ctx.user_id()?,
        Some(info) => require_user(ctx, info)?.id,
    };
    Ok(names(users::perms(ctx.db, uid)?))
}

fn get_user_perms_inheritance(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let info = a
        .get("userID")
        .ok_or_else(|| Fault::generic("No such user: None"))?;
    let uid = require_user(ctx, info)?.id;
    let mut s = Struct::new();
    for p in users::perms(ctx.db, uid)? {
        s.insert(p, Value::Array(vec![Value::Nil]));
    }
    Ok(Value::Struct(s))
}

/// Koji's API answers for the exact permission: admin implies others only in the checks
/// (`assertPerm`), not here; `strict` only makes an undefined permission a fault.
fn has_perm(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let perm = a.str("perm")?;
    if a.flag("strict", false) && users::perm_id(ctx.db, perm)?.is_none() {
        return Err(Fault::generic(format!("No such permission {perm} defined")));
    }
    Ok(Value::Bool(ctx.auth.has_perm(ctx.db, perm, true)?))
}

fn get_all_perms(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    Ok(crate::hub::convert::records(users::all_perms(ctx.db)?))
}

fn perm_name(a: &Args, name: &str) -> Result<String, Fault> {
    match a.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Int(i)) => Ok(i.to_string()),
        _ => Err(Fault::generic(format!(
            "No such entry in table permissions: {}",
            a.get(name).map(describe).unwrap_or_default()
        ))),
    }
}

fn grant_permission(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let info = a
        .get("userinfo")
        .ok_or_else(|| Fault::generic("No such user: None"))?;
    let user = require_user(ctx, info)?;
    let perm = perm_name(a, "permission")?;
    let description = a.opt_str("description")?;
    if description.is_some() && !a.flag("create", false) {
        return Err(Fault::generic(
            "Description should be specified only with create.",
        ));
    }
    let pid = match users::perm_id(ctx.db, &perm)? {
        Some(id) => id,
        None if a.flag("create", false) => {
            crate::hub::methods::users::validate_name(&perm, "permission")?;
            users::create_perm(ctx.db, &perm, description)?
        }
        None => {
            return Err(Fault::generic(format!(
                "No such entry in table permissions: {perm}"
            )));
        }
    };
    if users::perms(ctx.db, user.id)?.contains(&perm) {
        return Err(Fault::generic(format!(
            "user {} already has permission: {perm}",
            user.name
        )));
    }
    users::grant(ctx.db, user.id, pid)?;
    Ok(Value::Nil)
}

fn revoke_permission(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let info = a
        .get("userinfo")
        .ok_or_else(|| Fault::generic("No such user: None"))?;
    let user = require_user(ctx, info)?;
    let perm = perm_name(a, "permission")?;
    let pid = users::perm_id(ctx.db, &perm)?
        .ok_or_else(|| Fault::generic(format!("No such entry in table permissions: {perm}")))?;
    if !users::revoke(ctx.db, user.id, pid)? {
        return Err(Fault::generic(format!(
            "user {} does not have permission: {perm}",
            user.name
        )));
    }
    Ok(Value::Nil)
}

/// Koji's default name policy: printable, no whitespace or slashes, not all digits.
pub fn validate_name(name: &str, what: &str) -> Result<(), Fault> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.chars().all(|c| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-@~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Fault::new(
            FaultCode::NameValidation,
            format!("Invalid {what} name: {name:?}"),
        ))
    }
}

fn create_user(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let name = a.str("username")?;
    validate_name(name, "user")?;
    let status = a.opt_int("status")?.unwrap_or(users::STATUS_NORMAL);
    if status != users::STATUS_NORMAL && status != users::STATUS_BLOCKED {
        return Err(Fault::generic(format!("Invalid status: {status}")));
    }
    if users::get(ctx.db, &UserRef::Name(name))?.is_some() {
        return Err(Fault::generic(format!("user already exists: {name}")));
    }
    let krb = a.opt_str("krb_principal")?;
    if let Some(k) = krb
        && users::get_by_krb(ctx.db, k)?.is_some()
    {
        return Err(Fault::generic(format!(
            "user with this Kerberos principal already exists: {k}"
        )));
    }
    Ok(Value::Int(users::create(
        ctx.db,
        name,
        status,
        users::USERTYPE_NORMAL,
        None,
        krb,
    )?))
}

fn edit_user(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let info = a
        .get("userInfo")
        .ok_or_else(|| Fault::generic("No such user: None"))?;
    let user = require_user(ctx, info)?;
    if let Some(name) = a.opt_str("name")?
        && name != user.name
    {
        validate_name(name, "user")?;
        if users::get(ctx.db, &UserRef::Name(name))?.is_some() {
            return Err(Fault::generic(format!("Name {name} already taken by user")));
        }
        users::rename(ctx.db, user.id, name)?;
    }
    if a.get("krb_principal_mappings").is_some() {
        return Err(Fault::generic(
            "Kerberos principals are not supported by this hub",
        ));
    }
    Ok(Value::Nil)
}

fn set_status(ctx: &mut Ctx<'_>, a: &Args, status: i64) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let info = a
        .get("username")
        .ok_or_else(|| Fault::generic("No such user: None"))?;
    let user = require_user(ctx, info)?;
    users::set_status(ctx.db, user.id, status)?;
    Ok(Value::Nil)
}

fn list_users(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let usertype = match a.get("userType") {
        None if a.given("userType") => None,
        None => Some(users::USERTYPE_NORMAL),
        Some(v) => v.as_int(),
    };
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let recs = users::list(ctx.db, usertype, a.opt_str("prefix")?)?;
    if q.opts.count_only {
        return Ok(Value::Int(recs.len() as i64));
    }
    let mut out = Vec::new();
    for r in recs {
        out.push(r);
    }
    let db = ctx.db;
    let mut err = None;
    let v = shape(crate::store::query::Selected::Rows(out), q.as_list, |s| {
        if let Some(id) = s.get("id").and_then(Value::as_int) {
            match users::krb_principals(db, id) {
                Ok(p) => s.insert(
                    "krb_principals",
                    Value::Array(p.into_iter().map(Value::String).collect()),
                ),
                Err(e) => err = Some(e),
            }
        }
    });
    if let Some(e) = err {
        return Err(e.into());
    }
    Ok(v)
}
