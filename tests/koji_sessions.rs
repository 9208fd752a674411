//! Sessions, logins, users and permissions as the stock koji 1.36.1 client sees them: expiry and
//! transparent renewal, exclusive sessions, subsessions, logout, query-string sessions, the
//! `containerbuild user` commands, blocked users, permissions, introspection and HTTP basics.
//!
//! Every test starts its own hub. Without a koji CLI the tests print "skipping" and pass, except
//! under CI.

mod common;

use common::assert_contains;

use common::{ADMIN, Hub, call_xml, fault_code, fault_string, header, member_value};

/// Python prelude: `sess(user, password)` logs a fresh ClientSession in; `expect(cls, text, fn,
/// *args)` calls `fn` and requires exactly exception class `cls` with message `text` (and
/// returns it).
const PY_PRELUDE: &str = r#"
import os, sys, time, koji
URL = os.environ['KOJI_URL']
ADMIN = os.environ['KOJI_USER']
ADMIN_PW = os.environ['KOJI_PASSWORD']

def client(user=ADMIN, password=ADMIN_PW):
    return koji.ClientSession(URL, opts={'user': user, 'password': password,
                                         'max_retries': 0, 'retry_interval': 0})

def sess(user=ADMIN, password=ADMIN_PW):
    s = client(user, password)
    s.login()
    return s

def expect(cls, text, fn, *args, **kwargs):
    try:
        r = fn(*args, **kwargs)
    except Exception as e:
        if type(e) is not cls:
            raise SystemExit('expected %s(%r), got %s(%r)' % (cls.__name__, text, type(e).__name__, str(e)))
        if text is not None and str(e) != text:
            raise SystemExit('expected %s(%r), got message %r' % (cls.__name__, text, str(e)))
        return e
    raise SystemExit('expected %s(%r), the call returned %r' % (cls.__name__, text, r))
"#;

/// Runs `body` after [`PY_PRELUDE`] and requires it to exit 0 and print `OK` last.
fn py(hub: &Hub, body: &str) -> String {
    let script = format!("{PY_PRELUDE}\n{body}\nprint('OK')\n");
    let out = hub.python_ok(&script);
    assert!(
        out.trim_end().ends_with("OK"),
        "python script did not finish:\n{out}"
    );
    out
}

/// `<struct>` with the `__starstar` marker koji uses to pass keyword arguments.
fn kwargs_xml(members: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "<struct><member><name>__starstar</name><value><boolean>1</boolean></value></member>",
    );
    for (k, v) in members {
        s.push_str(&format!(
            "<member><name>{k}</name><value>{v}</value></member>"
        ));
    }
    s.push_str("</struct>");
    s
}

// ---------------------------------------------------------------------------------------------
// 1. Expiry and renewal

/// 0.02 minutes = 1.2 s.
const SHORT_SESSIONS: &str = "session_renewal_timeout = 0.02\n";

#[test]
fn expired_session_is_renewed_transparently_by_the_client() {
    let hub = hub!(SHORT_SESSIONS);
    py(
        &hub,
        r#"
s = sess()
sid, key = s.sinfo['session-id'], s.sinfo['session-key']
assert s.getLoggedInUser()['name'] == ADMIN
time.sleep(2)
# The hub answers AuthExpired (1007); the client logs in again with renew=True and retries.
u = s.getLoggedInUser()
assert u is not None and u['name'] == ADMIN, u
assert s.sinfo['session-id'] == sid, (s.sinfo, sid)
assert s.sinfo['session-key'] != key, 'key was not renewed'
# The renewed session keeps working (callnum sequence restarted).
assert s.getLoggedInUser()['name'] == ADMIN
s.logout()
"#,
    );
}

#[test]
fn expired_session_raw_fault_and_renewal() {
    let hub = hub!(SHORT_SESSIONS);
    let (id, key) = hub.raw_login(ADMIN, hub.admin_password());
    let creds = [
        ("Koji-Session-Id", id.as_str()),
        ("Koji-Session-Key", key.as_str()),
    ];
    let (status, _, body) = hub.raw_call_with(&creds, &call_xml("getLoggedInUser", &[]));
    assert_eq!(status, 200);
    assert_eq!(
        member_value(&body, "name").as_deref(),
        Some(ADMIN),
        "{body}"
    );

    std::thread::sleep(std::time::Duration::from_millis(2000));
    let (status, _, body) = hub.raw_call_with(&creds, &call_xml("getLoggedInUser", &[]));
    assert_eq!(status, 200);
    assert_eq!(fault_code(&body), Some(1007), "{body}");
    assert_eq!(
        fault_string(&body).as_deref(),
        Some(format!("session \"{id}\" has expired").as_str())
    );

    // login(user, password, renew=True) with the expired session's headers renews it in place.
    let renew = call_xml(
        "login",
        &[
            &format!("<string>{ADMIN}</string>"),
            &format!("<string>{}</string>", hub.admin_password()),
            &kwargs_xml(&[("renew", "<boolean>1</boolean>")]),
        ],
    );
    let (status, _, body) = hub.raw_call_with(&creds, &renew);
    assert_eq!(status, 200);
    assert!(fault_code(&body).is_none(), "renewal failed: {body}");
    assert_eq!(
        member_value(&body, "session-id").as_deref(),
        Some(id.as_str())
    );
    let new_key = member_value(&body, "session-key").expect("session-key");
    assert_ne!(new_key, key, "renewal must issue a new key");

    // The old key is dead, the new one works.
    let (_, _, body) = hub.raw_call_with(&creds, &call_xml("getLoggedInUser", &[]));
    assert_eq!(fault_code(&body), Some(1002), "{body}");
    assert_eq!(
        fault_string(&body).as_deref(),
        Some("Invalid session or bad credentials")
    );
    let (_, _, body) = hub.raw_call_with(
        &[
            ("Koji-Session-Id", id.as_str()),
            ("Koji-Session-Key", new_key.as_str()),
        ],
        &call_xml("getLoggedInUser", &[]),
    );
    assert_eq!(
        member_value(&body, "name").as_deref(),
        Some(ADMIN),
        "{body}"
    );
}

#[test]
fn subsessions_and_exclusive_sessions_renew_too() {
    let hub = hub!(SHORT_SESSIONS);
    py(
        &hub,
        r#"
s1 = sess()
s1.exclusiveSession()
sid = s1.sinfo['session-id']
sub = s1.subsession()
sub_id, sub_key = sub.sinfo['session-id'], sub.sinfo['session-key']
time.sleep(2)
assert s1.getLoggedInUser()['name'] == ADMIN
assert s1.sinfo['session-id'] == sid
assert sub.getLoggedInUser()['name'] == ADMIN
assert sub.sinfo['session-id'] == sub_id and sub.sinfo['session-key'] != sub_key, sub.sinfo
# The renewed session still holds the user's exclusive lock.
s2 = sess()
expect(koji.AuthLockError, 'User locked by another session', s2.getLoggedInUser)
"#,
    );
}

/// The callnum sequence: a repeated write is refused (RetryError), an older number is out of
/// sequence (SequenceError), for reads too.
#[test]
fn callnum_sequence_and_retry() {
    let hub = hub!();
    let (id, key) = hub.raw_login(ADMIN, hub.admin_password());
    let call = |n: &str, body: &str| {
        hub.raw_call_with(
            &[
                ("Koji-Session-Id", id.as_str()),
                ("Koji-Session-Key", key.as_str()),
                ("Koji-Session-Callnum", n),
            ],
            body,
        )
        .2
    };
    let sub = call_xml("subsession", &[]);
    let body = call("5", &sub);
    assert!(fault_code(&body).is_none(), "{body}");
    let body = call("5", &sub);
    assert_eq!(fault_code(&body), Some(1009), "{body}");
    assert_eq!(
        fault_string(&body),
        Some(format!(
            "unable to retry call 5 (method subsession) for session {id}"
        ))
    );
    let body = call("3", &sub);
    assert_eq!(fault_code(&body), Some(1008), "{body}");
    assert_eq!(fault_string(&body), Some(format!("5 > 3 (session {id})")));
    let body = call("2", &call_xml("getLoggedInUser", &[]));
    assert_eq!(fault_code(&body), Some(1008), "{body}");
    let body = call("6", &sub);
    assert!(fault_code(&body).is_none(), "{body}");

    // Logging in again on a live session is refused.
    let login = call_xml(
        "login",
        &[
            &format!("<string>{ADMIN}</string>"),
            &format!("<string>{}</string>", hub.admin_password()),
        ],
    );
    let body = call("7", &login);
    assert_eq!(fault_code(&body), Some(1002), "{body}");
    assert_eq!(fault_string(&body).as_deref(), Some("Already logged in"));

    // A wrong key, or an unknown id, is the same AuthError.
    for (sid, skey) in [(id.as_str(), "1-nope"), ("999999", key.as_str())] {
        let (_, _, body) = hub.raw_call_with(
            &[("Koji-Session-Id", sid), ("Koji-Session-Key", skey)],
            &call_xml("getLoggedInUser", &[]),
        );
        assert_eq!(fault_code(&body), Some(1002), "{body}");
        assert_eq!(
            fault_string(&body).as_deref(),
            Some("Invalid session or bad credentials")
        );
    }
}

/// `serve --config`: max_request_length, disable_url_sessions and check_client_ip.
#[test]
fn config_file_settings() {
    let hub =
        hub!("max_request_length = 2000\ndisable_url_sessions = true\ncheck_client_ip = true\n");

    let big = call_xml("echo", &[&format!("<string>{}</string>", "x".repeat(3000))]);
    let (status, _, body) = hub.raw_call(&big);
    assert_eq!(status, 200, "{body}");
    assert_eq!(fault_code(&body), Some(1000), "{body}");
    assert_eq!(fault_string(&body).as_deref(), Some("Request too long"));
    let (_, _, body) = hub.raw_call(&call_xml("echo", &["<string>small</string>"]));
    assert!(fault_code(&body).is_none(), "{body}");

    // Query-string sessions are ignored: the call runs anonymously.
    let (id, key) = hub.raw_login(ADMIN, hub.admin_password());
    let path = format!("/kojihub?session-id={id}&session-key={key}&callnum=0");
    let (_, _, body) = hub.raw_post(&path, &[], call_xml("getLoggedInUser", &[]).as_bytes());
    assert!(fault_code(&body).is_none(), "{body}");
    assert!(body.contains("<nil/>"), "expected None: {body}");

    // Headers from the login address work; the same session from another address does not.
    let (_, _, body) = hub.raw_call_with(
        &[
            ("Koji-Session-Id", id.as_str()),
            ("Koji-Session-Key", key.as_str()),
        ],
        &call_xml("getLoggedInUser", &[]),
    );
    assert_eq!(
        member_value(&body, "name").as_deref(),
        Some(ADMIN),
        "{body}"
    );
    let out = hub.python_ok(&format!(
        "import http.client, xmlrpc.client\n\
         body = xmlrpc.client.dumps((), 'getLoggedInUser')\n\
         c = http.client.HTTPConnection('127.0.0.1', {port}, source_address=('127.0.0.2', 0))\n\
         c.request('POST', '/kojihub', body, {{'Content-Type': 'text/xml',\n\
                   'Koji-Session-Id': '{id}', 'Koji-Session-Key': '{key}'}})\n\
         print(c.getresponse().read().decode())\n",
        port = hub.port()
    ));
    assert_eq!(fault_code(&out), Some(1002), "{out}");
    assert_eq!(
        fault_string(&out).as_deref(),
        Some("Invalid session or bad credentials")
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Exclusive sessions

#[test]
fn exclusive_sessions_lock_out_other_sessions() {
    let hub = hub!();
    py(
        &hub,
        r#"
s1 = sess()
s1.exclusiveSession()
assert s1.getLoggedInUser()['name'] == ADMIN

# Logging in still works, but every other call of the new session is locked out.
s2 = sess()
e = expect(koji.AuthLockError, 'User locked by another session', s2.getLoggedInUser)
assert e.faultCode == 1006, e.faultCode
e = expect(koji.AuthLockError, 'Cannot get exclusive session', s2.exclusiveSession)
assert e.faultCode == 1006, e.faultCode

# force=True steals the lock and closes the old exclusive session.
s2.exclusiveSession(force=True)
assert s2.getLoggedInUser()['name'] == ADMIN
expect(koji.AuthError, 'Invalid session or bad credentials', s1.getLoggedInUser)

# A third session is locked out until the holder goes shared again.
s3 = sess()
expect(koji.AuthLockError, 'User locked by another session', s3.getLoggedInUser)
s2.sharedSession()
assert s3.getLoggedInUser()['name'] == ADMIN
assert s2.getLoggedInUser()['name'] == ADMIN
"#,
    );
}

#[test]
fn exclusive_login_option() {
    let hub = hub!();
    py(
        &hub,
        r#"
s1 = client()
sinfo = s1.callMethod('login', ADMIN, ADMIN_PW, exclusive=True)
s1.setSession(sinfo)
assert s1.getLoggedInUser()['name'] == ADMIN
s2 = sess()
expect(koji.AuthLockError, 'User locked by another session', s2.getLoggedInUser)
# The exclusive session's own subsessions share its lock.
sub = s1.subsession()
assert sub.getLoggedInUser()['name'] == ADMIN
"#,
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Subsessions, 4. logout

#[test]
fn subsessions_work_and_close_with_their_master() {
    let hub = hub!();
    py(
        &hub,
        r#"
s = sess()
raw = s.callMethod('subsession')
assert sorted(raw) == ['header-auth', 'session-id', 'session-key'], raw
assert raw['header-auth'] is True, raw
assert raw['session-id'] != s.sinfo['session-id']

sub = client()
sub.setSession(dict(raw))
assert sub.getLoggedInUser() == s.getLoggedInUser()

# logoutChild closes just that subsession.
s.logoutChild(raw['session-id'])
expect(koji.AuthError, 'Invalid session or bad credentials', sub.getLoggedInUser)
assert s.getLoggedInUser()['name'] == ADMIN

# ClientSession.subsession() wraps the same call; master logout closes the subsessions too.
sub2 = s.subsession()
assert sub2.sinfo['header-auth'] is True
assert sub2.getLoggedInUser()['name'] == ADMIN
s.logout()
expect(koji.AuthError, 'Invalid session or bad credentials', sub2.getLoggedInUser)
"#,
    );
}

#[test]
fn logout_invalidates_credentials() {
    let hub = hub!();
    let alice_pw = common::random_password();
    hub.add_user_cli("alice", &alice_pw, false);
    py(
        &hub,
        &(format!("ALICE_PW = {alice_pw:?}\n")
            + r#"
s = sess()
old = dict(s.sinfo)
assert s.getLoggedInUser()['name'] == ADMIN
s.logout()
assert s.sinfo is None and not s.logged_in
# Anonymous calls still work on the same client.
assert s.getLoggedInUser() is None

t = client()
t.setSession(old)
expect(koji.AuthError, 'Invalid session or bad credentials', t.getLoggedInUser)

# logout(session_id=...) closes another session of the same user.
a = sess()
b = sess()
a.logout(session_id=b.sinfo['session-id'])
assert a.getLoggedInUser()['name'] == ADMIN
expect(koji.AuthError, 'Invalid session or bad credentials', b.getLoggedInUser)

# Other users' sessions: only admins may close them.
al = sess('alice', ALICE_PW)
al2 = sess('alice', ALICE_PW)
e = expect(koji.ActionNotAllowed, 'only admins or owner may logout other session',
           al.logout, session_id=a.sinfo['session-id'])
assert a.getLoggedInUser()['name'] == ADMIN
a.logout(session_id=al2.sinfo['session-id'])
expect(koji.AuthError, 'Invalid session or bad credentials', al2.getLoggedInUser)
assert al.getLoggedInUser()['name'] == 'alice'
"#),
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Query-string sessions

#[test]
fn query_string_session() {
    let hub = hub!();
    let (id, key) = hub.raw_login(ADMIN, hub.admin_password());
    let path = format!("/kojihub?session-id={id}&session-key={key}&callnum=0");
    let (status, headers, body) =
        hub.raw_post(&path, &[], call_xml("getLoggedInUser", &[]).as_bytes());
    assert_eq!(status, 200, "{body}");
    assert!(fault_code(&body).is_none(), "{body}");
    assert_eq!(
        member_value(&body, "name").as_deref(),
        Some(ADMIN),
        "{body}"
    );
    assert_eq!(
        member_value(&body, "authtype").as_deref(),
        Some("0"),
        "{body}"
    );
    assert!(header(&headers, "koji-version").is_some());

    // A wrong key in the query string is refused like a wrong header.
    let path = format!("/kojihub?session-id={id}&session-key=nope&callnum=1");
    let (_, _, body) = hub.raw_post(&path, &[], call_xml("getLoggedInUser", &[]).as_bytes());
    assert_eq!(fault_code(&body), Some(1002), "{body}");
}

// ---------------------------------------------------------------------------------------------
// 6. `containerbuild user`, 7. blocked users

#[test]
fn user_passwd_while_hub_is_stopped() {
    let mut hub = hub!();
    let old_pw = common::random_password();
    let new_pw = common::random_password();
    hub.add_user_cli("alice", &old_pw, false);
    let out = hub.koji_as("alice", &old_pw, &["hello"]);
    assert_eq!(out.0, 0, "alice login with the first password: {out:?}");

    hub.stop();
    let data_dir = hub.data_dir();
    let data_dir = data_dir.to_str().expect("utf-8 data dir");
    let (code, out, err) = hub.containerbuild(
        &[
            "user",
            "passwd",
            "alice",
            "--data-dir",
            data_dir,
            "--password-stdin",
        ],
        &format!("{new_pw}\n"),
    );
    assert_eq!(code, 0, "user passwd\nstdout: {out}\nstderr: {err}");
    hub.restart();

    let (code, out, err) = hub.koji_as("alice", &new_pw, &["hello"]);
    assert_eq!(
        code, 0,
        "login with the new password\nstdout: {out}\nstderr: {err}"
    );
    assert_contains(&out, "alice!", "hello as alice");
    let (code, out, err) = hub.koji_as("alice", &old_pw, &["hello"]);
    assert_ne!(
        code, 0,
        "old password must fail\nstdout: {out}\nstderr: {err}"
    );
    assert_contains(&err, "invalid username or password", "old password");

    let script = format!(
        "{PY_PRELUDE}\n\
         expect(koji.AuthError, 'invalid username or password', client('alice', {old_pw:?}).login)\n\
         s = sess('alice', {new_pw:?})\n\
         assert s.getLoggedInUser()['name'] == 'alice'\n\
         print('OK')\n"
    );
    assert_eq!(hub.python_ok(&script).trim(), "OK");

    // `user add` of an existing name fails with a clear message and changes nothing.
    let (code, out, err) = hub.containerbuild(
        &[
            "user",
            "add",
            "alice",
            "--data-dir",
            data_dir,
            "--password-stdin",
        ],
        "whatever\n",
    );
    assert_ne!(code, 0, "user add of an existing name\nstdout: {out}");
    assert_contains(&err, "user already exists: alice", "user add alice twice");
    let (code, _, _) = hub.koji_as("alice", &new_pw, &["hello"]);
    assert_eq!(code, 0, "alice's password must survive the failed add");

    // `user passwd` of an unknown user fails too.
    let (code, _, err) = hub.containerbuild(
        &[
            "user",
            "passwd",
            "nobody",
            "--data-dir",
            data_dir,
            "--password-stdin",
        ],
        "whatever\n",
    );
    assert_ne!(code, 0);
    assert_contains(&err, "No such user: nobody", "user passwd nobody");
}

#[test]
fn blocked_users_cannot_log_in() {
    let hub = hub!();
    let pw = common::random_password();
    hub.add_user_cli("alice", &pw, false);
    hub.koji_ok(&["call", "disableUser", "alice"]);
    let out = hub.koji_ok(&["call", "getUser", "alice"]);
    assert_contains(&out, "'status': 1", "getUser after disableUser");

    let (code, out, err) = hub.koji_as("alice", &pw, &["hello"]);
    assert_ne!(code, 0, "blocked login\nstdout: {out}");
    assert_contains(&err, "logins by alice are not allowed", "blocked login");
    let script = format!(
        "{PY_PRELUDE}\n\
         e = expect(koji.AuthError, 'logins by alice are not allowed', client('alice', {pw:?}).login)\n\
         assert e.faultCode == 1002\n\
         print('OK')\n"
    );
    assert_eq!(hub.python_ok(&script).trim(), "OK");

    // A session opened before the block is refused as well.
    hub.koji_ok(&["call", "enableUser", "alice"]);
    let script = format!(
        "{PY_PRELUDE}\n\
         s = sess('alice', {pw:?})\n\
         assert s.getLoggedInUser()['name'] == 'alice'\n\
         a = sess()\n\
         a.disableUser('alice')\n\
         expect(koji.AuthError, 'logins by alice are not allowed', s.getLoggedInUser)\n\
         a.enableUser('alice')\n\
         assert s.getLoggedInUser()['name'] == 'alice'\n\
         print('OK')\n"
    );
    assert_eq!(hub.python_ok(&script).trim(), "OK");

    // createUser(status=1) makes a blocked user; a password set with `containerbuild user
    // passwd` while the hub runs does not unblock it.
    let out = hub.koji_ok(&["call", "createUser", "bob", "status=1"]);
    assert!(out.trim().parse::<i64>().is_ok(), "createUser id: {out}");
    let bob_pw = common::random_password();
    let data_dir = hub.data_dir();
    let (code, out, err) = hub.containerbuild(
        &[
            "user",
            "passwd",
            "bob",
            "--data-dir",
            data_dir.to_str().expect("utf-8"),
            "--password-stdin",
        ],
        &format!("{bob_pw}\n"),
    );
    assert_eq!(code, 0, "user passwd bob\nstdout: {out}\nstderr: {err}");
    let (code, _, err) = hub.koji_as("bob", &bob_pw, &["hello"]);
    assert_ne!(code, 0);
    assert_contains(&err, "logins by bob are not allowed", "bob blocked");
    hub.koji_ok(&["call", "enableUser", "bob"]);
    let (code, out, err) = hub.koji_as("bob", &bob_pw, &["hello"]);
    assert_eq!(
        code, 0,
        "bob after enableUser\nstdout: {out}\nstderr: {err}"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Permissions

fn perm_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn grant_and_revoke_permissions() {
    let hub = hub!();
    let pw = common::random_password();
    hub.add_user_cli("alice", &pw, false);

    // Non-admins may not grant.
    let (code, out, err) = hub.koji_as("alice", &pw, &["grant-permission", "tag", "alice"]);
    assert_ne!(code, 0, "non-admin grant\nstdout: {out}");
    assert_contains(
        &err,
        "ActionNotAllowed: admin permission required (logged in as alice)",
        "non-admin grant",
    );
    let out = hub.python_ok(&format!(
        "{PY_PRELUDE}\n\
         e = expect(koji.ActionNotAllowed, 'admin permission required (logged in as alice)', \
                    sess('alice', {pw:?}).grantPermission, 'alice', 'tag')\n\
         print(e.faultCode)\n"
    ));
    assert_eq!(out.trim(), "1004");

    let (code, out, _) = hub.koji_as("alice", &pw, &["call", "hasPerm", "tag"]);
    assert_eq!((code, out.trim()), (0, "False"));

    hub.koji_ok(&["grant-permission", "tag", "alice"]);
    let out = hub.koji_ok(&["list-permissions", "--user", "alice"]);
    assert!(perm_lines(&out).contains(&"tag".to_string()), "{out}");
    let (code, out, _) = hub.koji_as("alice", &pw, &["call", "hasPerm", "tag"]);
    assert_eq!((code, out.trim()), (0, "True"));
    let (code, out, _) = hub.koji_as("alice", &pw, &["list-permissions", "--mine"]);
    assert_eq!(code, 0);
    assert!(perm_lines(&out).contains(&"tag".to_string()), "{out}");

    // Granting twice is an error.
    let (code, _, err) = hub.koji(&["grant-permission", "tag", "alice"]);
    assert_ne!(code, 0);
    assert_contains(
        &err,
        "GenericError: user alice already has permission: tag",
        "grant twice",
    );

    // Revoke.
    hub.koji_ok(&["revoke-permission", "tag", "alice"]);
    let out = hub.koji_ok(&["list-permissions", "--user", "alice"]);
    assert!(!perm_lines(&out).contains(&"tag".to_string()), "{out}");
    let (code, out, _) = hub.koji_as("alice", &pw, &["call", "hasPerm", "tag"]);
    assert_eq!((code, out.trim()), (0, "False"));

    // An unknown permission needs --new; --new --description creates it.
    let (code, _, err) = hub.koji(&["grant-permission", "newperm", "alice"]);
    assert_ne!(code, 0);
    assert_contains(
        &err,
        "No such entry in table permissions: newperm",
        "grant unknown perm",
    );
    hub.koji_ok(&[
        "grant-permission",
        "--new",
        "--description",
        "x",
        "newperm",
        "alice",
    ]);
    let out = hub.koji_ok(&["list-permissions", "--user", "alice"]);
    assert!(perm_lines(&out).contains(&"newperm".to_string()), "{out}");
    let out = hub.koji_ok(&["list-permissions"]);
    let row = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("newperm"))
        .unwrap_or_else(|| panic!("newperm not in list-permissions:\n{out}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["newperm", "x"],
        "{row}"
    );
    let (code, out, _) = hub.koji_as("alice", &pw, &["call", "hasPerm", "newperm"]);
    assert_eq!((code, out.trim()), (0, "True"));
    // As Koji's API: the exact permission only (admin implies it in checks, not in hasPerm);
    // strict=True faults on a permission nobody defined.
    assert_eq!(hub.koji_ok(&["call", "hasPerm", "newperm"]).trim(), "False");
    assert_eq!(hub.koji_ok(&["call", "hasPerm", "admin"]).trim(), "True");
    assert_eq!(
        hub.koji_ok(&["call", "hasPerm", "newperm", "strict=True"])
            .trim(),
        "False"
    );
    let (code, _, err) = hub.koji(&["call", "hasPerm", "nosuchperm", "strict=True"]);
    assert_ne!(code, 0);
    assert_contains(
        &err,
        "No such permission nosuchperm defined",
        "strict hasPerm",
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Introspection

#[test]
fn listapi_and_method_help() {
    let hub = hub!();
    py(
        &hub,
        r#"
s = koji.ClientSession(URL)
api = s._listapi()
assert len(api) > 20, len(api)
names = set()
for m in api:
    assert isinstance(m['name'], str) and m['name'], m
    assert m['argdesc'].startswith('('), m
    assert m['argdesc'].endswith(')'), m
    assert isinstance(m['doc'], str) and m['doc'].strip(), m
    assert isinstance(m['args'], list), m
    names.add(m['name'])
info = [m for m in api if m['name'] == 'getTaskInfo'][0]
assert info['argdesc'] == '(task_id, request=False, strict=False)', info
assert info['args'] == ['task_id', ['request', False], ['strict', False]], info['args']

methods = s.system.listMethods()
assert 'multiCall' in methods, methods
assert 'getTaskInfo' in methods
assert 'login' in methods and 'logout' in methods
assert names <= set(methods), names - set(methods)

help = s.system.methodHelp('getTaskInfo')
assert help.startswith('getTaskInfo(task_id, request=False, strict=False)'), help
assert s.system.methodHelp('nosuch') == '', s.system.methodHelp('nosuch')
"#,
    );

    let (code, out, err) = hub.koji_noauth(&["list-api", "getTaskInfo"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        out.lines().next(),
        Some("getTaskInfo(task_id, request=False, strict=False)"),
        "{out}"
    );
    let (code, _, err) = hub.koji_noauth(&["list-api", "nosuch"]);
    assert_ne!(code, 0);
    assert_contains(&err, "Unknown method: nosuch", "list-api nosuch");
}

// ---------------------------------------------------------------------------------------------
// 10. HTTP

#[test]
fn http_basics() {
    let hub = hub!();
    let (status, headers, _) = hub.raw_get("/kojihub");
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), Some("POST"));
    assert_eq!(header(&headers, "koji-version"), Some("1.36.1"));

    let (status, headers, _) = hub.raw_post("/kojihub", &[], b"");
    assert_eq!(status, 400);
    assert_eq!(header(&headers, "koji-version"), Some("1.36.1"));

    let (status, headers, body) = hub.raw_call(&call_xml("getAPIVersion", &[]));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "koji-version"), Some("1.36.1"));
    assert!(
        header(&headers, "content-type").is_some_and(|v| v.starts_with("text/xml")),
        "{headers:?}"
    );
    assert_contains(&body, "<int>1</int>", "getAPIVersion");

    // Malformed XML is a fault with HTTP 200 (the client would retry any other status).
    let (status, headers, body) = hub.raw_call("<methodCall><methodName>echo");
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "koji-version"), Some("1.36.1"));
    assert!(fault_code(&body).is_some(), "{body}");

    let (status, headers, _) = hub.raw_get("/kojifiles/nope/nothing.log");
    assert_eq!(status, 404);
    assert_eq!(header(&headers, "koji-version"), Some("1.36.1"));
}
