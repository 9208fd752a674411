//! The permission matrix: every state-changing method of the hub, called by each kind of caller
//! (anonymous, a normal user, another user, a user holding the `tag`/`target`/`host`
//! permissions, a build host, an admin, a blocked user), with Koji 1.36's exact outcome per cell:
//! success, or the fault code and text `kojihub/kojihub.py` and `kojihub/auth.py` raise
//! (`assertPerm`: 1004 `PERM permission required (logged in as NAME)`; `assertLogin`: 1004
//! `you must be logged in for this operation`; `Host().verify()`: 1002 `Not logged-in` /
//! `User N is not a host`; `Task.assertHost`: 1004 `host H does not own task T`; a blocked
//! user's open session: 1002 `logins by NAME are not allowed`).
//!
//! The table is data ([`Cell`]: role, method, args, kwargs, expected outcome). One Python
//! process drives it with the stock koji 1.36.1 client library (`ClientSession._callMethod`,
//! which reports Koji's fault code and text as the hub sent them), one session per role, and
//! prints every cell's outcome; the test then lists every mismatching cell, not only the first.
//! A second part checks that a disabled host polling `host.getTasks` gets nothing while the
//! same host, enabled, gets the task. One hub serves the whole file.
//!
//! Not here: blocked users' logins (`tests/koji_sessions.rs` `blocked_users_cannot_log_in`),
//! session methods (`login`, `logout`, `subsession`, ... in `tests/koji_sessions.rs`), a
//! successful `CGImport` and `tagBuild` (`tests/cg_import.rs`).

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use common::{ADMIN, Hub, random_password, result_json};
use serde_json::{Value, json};

/// Who calls. Each role has one session for the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// No session at all.
    Anon,
    /// `alice`, no permissions.
    User,
    /// `bob`, no permissions (but access to the `cgtest` content generator).
    Other,
    /// `pat`: the `tag`, `target` and `host` permissions, not `admin`.
    Perms,
    /// The host `builder1`'s user, with an exclusive session.
    Host,
    /// `carol`, logged in, then blocked by the admin: her session stays open.
    Blocked,
    /// `kojiadmin`.
    Admin,
}

use Role::*;

/// Denied roles first, then the ones allowed: an allowed call changes state, a denied one must
/// not, so the later cells of a row see what the earlier ones saw.
const ROLES: [Role; 7] = [Anon, User, Other, Host, Blocked, Perms, Admin];

impl Role {
    /// The role's key: the Python driver's session name and the `{role}` substitution.
    fn key(self) -> &'static str {
        match self {
            Anon => "anon",
            User => "user",
            Other => "other",
            Perms => "perms",
            Host => "host",
            Blocked => "blocked",
            Admin => "admin",
        }
    }

    /// The logged-in user's name (None for anonymous).
    fn user(self) -> Option<&'static str> {
        match self {
            Anon => None,
            User => Some("alice"),
            Other => Some("bob"),
            Perms => Some("pat"),
            Host => Some("builder1"),
            Blocked => Some("carol"),
            Admin => Some(ADMIN),
        }
    }
}

/// What a cell must produce.
#[derive(Debug, Clone)]
enum Expect {
    /// No fault; when `Some`, the result must equal this value (after `${name}` substitution).
    Ok(Option<Value>),
    /// This fault code and exactly this text (after `${name}` substitution).
    Fault(i64, String),
}

/// One call: `role` calls `method(*args, **kwargs)`.
#[derive(Debug, Clone)]
struct Cell {
    role: Role,
    method: &'static str,
    args: Value,
    kwargs: Value,
    expect: Expect,
}

/// Replaces `{role}` in every string of `v` with the role's key, so each allowed role creates
/// and edits its own objects.
fn for_role(v: &Value, role: Role) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("{role}", role.key())),
        Value::Array(a) => Value::Array(a.iter().map(|x| for_role(x, role)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), for_role(x, role)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn ok() -> Expect {
    Expect::Ok(None)
}

fn ok_is(v: Value) -> Expect {
    Expect::Ok(Some(v))
}

fn fault(code: i64, text: &str) -> Expect {
    Expect::Fault(code, text.to_string())
}

/// A blocked user's open session, on every call (koji: kojihub/auth.py, Session.__init__).
fn blocked() -> Expect {
    fault(1002, "logins by carol are not allowed")
}

/// Koji's `assertPerm(perm)` refusal for `role`.
fn perm_denied(role: Role, perm: &str) -> Expect {
    match role.user() {
        None => fault(
            1004,
            &format!("{perm} permission required (user not logged in)"),
        ),
        Some(u) => fault(
            1004,
            &format!("{perm} permission required (logged in as {u})"),
        ),
    }
}

/// Koji's `assertLogin` refusal.
fn login_required() -> Expect {
    fault(1004, "you must be logged in for this operation")
}

/// Koji's `Host().verify()` refusal for a role that is not a host.
fn not_a_host(role: Role) -> Expect {
    match role {
        Anon => fault(1002, "Not logged-in"),
        Blocked => blocked(),
        r => fault(
            1002,
            &format!(
                "User ${{uid_{}}} is not a host",
                r.user().unwrap_or_default()
            ),
        ),
    }
}

/// Collects the table.
#[derive(Default)]
struct Table {
    cells: Vec<Cell>,
}

impl Table {
    fn cell(&mut self, role: Role, method: &'static str, args: Value, kwargs: Value, e: Expect) {
        self.cells.push(Cell {
            role,
            method,
            args: for_role(&args, role),
            kwargs: for_role(&kwargs, role),
            expect: e,
        });
    }

    /// A method guarded by Koji's `assertPerm(perm)` and nothing before it that these arguments
    /// could fail: allowed for admin (and for `pat` unless `perm` is admin), denied with Koji's
    /// text for everyone else.
    fn perm_row(&mut self, method: &'static str, perm: &str, args: Value, kwargs: Value) {
        for role in ROLES {
            let e = match role {
                Blocked => blocked(),
                Admin => ok(),
                Perms if perm != "admin" => ok(),
                r => perm_denied(r, perm),
            };
            self.cell(role, method, args.clone(), kwargs.clone(), e);
        }
    }

    /// A `host.*` method: only the host's exclusive session gets through `Host().verify()`;
    /// `host_expect` is the host's outcome.
    fn host_row(&mut self, method: &'static str, args: Value, kwargs: Value, host_expect: Expect) {
        for role in ROLES {
            let e = match role {
                Host => host_expect.clone(),
                r => not_a_host(r),
            };
            self.cell(role, method, args.clone(), kwargs.clone(), e);
        }
    }
}

/// A `methodResponse` document, as kojid passes to `host.closeTask` / `host.failTask`.
const RESPONSE: &str = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><string>done</string></value>\n</param>\n</params>\n</methodResponse>\n";

/// The dist-git-style source every `buildContainer` cell passes (the hub does not fetch it).
const SRC: &str = "git://git.invalid/containers/app#0123456789abcdef0123456789abcdef01234567";

/// The whole matrix. `${name}` in arguments and expected texts is filled in by the driver from
/// the objects its setup created (task ids, user ids, task directories).
fn matrix() -> Table {
    let mut t = Table::default();
    let none = json!({});

    // --- Users and permissions (admin only) -----------------------------------------------
    t.perm_row(
        "grantPermission",
        "admin",
        json!(["dave", "tag"]),
        none.clone(),
    );
    t.perm_row(
        "revokePermission",
        "admin",
        json!(["dave", "tag"]),
        none.clone(),
    );
    t.perm_row("createUser", "admin", json!(["new-{role}"]), none.clone());
    t.perm_row(
        "editUser",
        "admin",
        json!(["eve"]),
        json!({"name": "eve-{role}"}),
    );
    t.perm_row("disableUser", "admin", json!(["dave"]), none.clone());
    t.perm_row("enableUser", "admin", json!(["dave"]), none.clone());

    // --- Tasks ---------------------------------------------------------------------------
    // buildContainer: any logged-in user (hosts too) may submit; a negative priority needs
    // admin, checked before make_task asks for an owner (koji-containerbuild's hub plugin).
    for role in ROLES {
        let e = match role {
            Anon => fault(1000, "task must have an owner"),
            Blocked => blocked(),
            _ => ok(),
        };
        t.cell(role, "buildContainer", json!([SRC, "tgt"]), none.clone(), e);
        t.cell(
            role,
            "buildContainer",
            json!([SRC, "tgt"]),
            json!({"priority": 5}),
            match role {
                Anon => fault(1000, "task must have an owner"),
                Blocked => blocked(),
                _ => ok(),
            },
        );
        let high = match role {
            Admin => ok(),
            Blocked => blocked(),
            _ => fault(1004, "only admins may create high-priority tasks"),
        };
        t.cell(
            role,
            "buildContainer",
            json!([SRC, "tgt"]),
            json!({"priority": -1}),
            high,
        );
    }

    // cancelTask: the owner, the host that has the task OPEN, or admin (Koji's
    // Task.verifyOwner / Task.verifyHost, then hasPerm('admin')).
    let not_owner = || fault(1004, "Cannot cancel task, not owner");
    for role in [Anon, User, Host, Perms] {
        t.cell(
            role,
            "cancelTask",
            json!(["${t_bob}"]),
            none.clone(),
            not_owner(),
        );
    }
    t.cell(
        Blocked,
        "cancelTask",
        json!(["${t_bob}"]),
        none.clone(),
        blocked(),
    );
    t.cell(
        User,
        "cancelTask",
        json!(["${t_alice}"]),
        none.clone(),
        ok(),
    );
    t.cell(Admin, "cancelTask", json!(["${t_bob}"]), none.clone(), ok());
    // The host may cancel a task it has OPEN, not one merely ASSIGNED to it, nor a task that
    // another host runs.
    t.cell(
        Host,
        "cancelTask",
        json!(["${t_assigned_b1}"]),
        none.clone(),
        not_owner(),
    );
    t.cell(
        Host,
        "cancelTask",
        json!(["${t_open_b2}"]),
        none.clone(),
        not_owner(),
    );
    t.cell(
        User,
        "cancelTask",
        json!(["${t_open_b1}"]),
        none.clone(),
        not_owner(),
    );
    t.cell(
        Host,
        "cancelTask",
        json!(["${t_open_b1}"]),
        none.clone(),
        ok(),
    );
    t.cell(
        Admin,
        "getTaskInfo",
        json!(["${t_open_b1}"]),
        none.clone(),
        ok_is(json!({"state": 3})),
    );
    t.cell(
        Admin,
        "getTaskInfo",
        json!(["${t_assigned_b1}"]),
        none.clone(),
        ok_is(json!({"state": 4})),
    );

    // cancelTaskChildren: assertLogin first, then the owner/host/admin rule.
    t.cell(
        Anon,
        "cancelTaskChildren",
        json!(["${t_kids}"]),
        none.clone(),
        login_required(),
    );
    for role in [User, Host, Perms] {
        t.cell(
            role,
            "cancelTaskChildren",
            json!(["${t_kids}"]),
            none.clone(),
            not_owner(),
        );
    }
    t.cell(
        Blocked,
        "cancelTaskChildren",
        json!(["${t_kids}"]),
        none.clone(),
        blocked(),
    );
    t.cell(
        Other,
        "cancelTaskChildren",
        json!(["${t_kids}"]),
        none.clone(),
        ok(),
    );
    t.cell(
        Admin,
        "getTaskInfo",
        json!(["${t_kid}"]),
        none.clone(),
        ok_is(json!({"state": 3})),
    );
    t.cell(
        Admin,
        "cancelTaskChildren",
        json!(["${t_kids}"]),
        none.clone(),
        ok(),
    );

    t.perm_row(
        "cancelTaskFull",
        "admin",
        json!(["${t_full}"]),
        none.clone(),
    );
    t.perm_row(
        "makeTask",
        "admin",
        json!(["sleep", [1]]),
        json!({"channel": "chan-x"}),
    );
    t.cell(
        Admin,
        "makeTask",
        json!(["sleep", [1]]),
        json!({"owner": "alice"}),
        fault(1004, "The owner option is not allowed here"),
    );

    // --- Records ---------------------------------------------------------------------------
    t.perm_row("createTag", "tag", json!(["tag-{role}"]), none.clone());
    t.perm_row(
        "editTag2",
        "tag",
        json!(["tag-{role}"]),
        json!({"arches": "x86_64"}),
    );
    t.perm_row(
        "createBuildTarget",
        "target",
        json!(["tgt-{role}", "build-tag", "dest-tag"]),
        none.clone(),
    );
    t.perm_row(
        "editBuildTarget",
        "target",
        json!(["tgt-{role}", "tgt2-{role}", "build-tag", "dest-tag"]),
        none.clone(),
    );
    t.perm_row(
        "deleteBuildTarget",
        "target",
        json!(["tgt2-{role}"]),
        none.clone(),
    );

    // Package lists: Koji's default `package_list` policy (has_perm admin / has_perm tag),
    // after assertLogin; the tag and package are looked up first, so denied callers name a
    // listed package and allowed ones their own.
    let policy = || {
        fault(
            1004,
            "policy violation (package_list): Only admin/tag can do this via default policy",
        )
    };
    for (method, listed) in [
        ("packageListAdd", "pkg-new"),
        ("packageListBlock", "pkg-listed"),
        ("packageListUnblock", "pkg-listed"),
    ] {
        for role in ROLES {
            let (pkg, e) = match role {
                Anon => (listed, login_required()),
                Blocked => (listed, blocked()),
                Perms | Admin => ("pkg-{role}", ok()),
                _ => (listed, policy()),
            };
            t.cell(
                role,
                method,
                json!(["dest-tag", pkg]),
                json!({"owner": ADMIN}),
                e,
            );
        }
    }
    // packageListAdd took `owner`, block/unblock do not: drop it there.
    for c in t.cells.iter_mut() {
        if c.method != "packageListAdd" && c.method.starts_with("packageList") {
            c.kwargs = json!({});
        }
    }

    t.perm_row("addChannel", "admin", json!(["chan-{role}"]), none.clone());
    t.perm_row(
        "editChannel",
        "admin",
        json!(["chan-{role}"]),
        json!({"description": "x"}),
    );
    t.perm_row("disableChannel", "host", json!(["chan-x"]), none.clone());
    t.perm_row("enableChannel", "host", json!(["chan-x"]), none.clone());
    t.perm_row(
        "addHost",
        "host",
        json!(["host-{role}", ["x86_64"]]),
        none.clone(),
    );
    t.perm_row(
        "editHost",
        "host",
        json!(["host-{role}"]),
        json!({"capacity": 3.0}),
    );
    t.perm_row("disableHost", "host", json!(["host-{role}"]), none.clone());
    t.perm_row("enableHost", "host", json!(["host-{role}"]), none.clone());
    t.perm_row(
        "addHostToChannel",
        "host",
        json!(["host-{role}", "chan-x"]),
        none.clone(),
    );
    t.perm_row(
        "removeHostFromChannel",
        "host",
        json!(["host-{role}", "chan-x"]),
        none.clone(),
    );

    // --- Content generators -------------------------------------------------------------------
    t.perm_row(
        "grantCGAccess",
        "admin",
        json!(["cg-user", "cgtest"]),
        none.clone(),
    );
    t.perm_row(
        "revokeCGAccess",
        "admin",
        json!(["cg-user", "cgtest"]),
        none.clone(),
    );
    t.perm_row("addBType", "admin", json!(["btype-{role}"]), none.clone());
    let cg_denied = || fault(1002, "Content generator access required (cgtest)");
    let nvr = json!({"name": "cgpkg", "version": "1", "release": "{role}"});
    for role in ROLES {
        let e = match role {
            Anon => fault(1002, "Not logged-in"),
            Blocked => blocked(),
            Other => ok(),
            _ => cg_denied(),
        };
        t.cell(role, "CGInitBuild", json!(["cgtest", nvr]), none.clone(), e);
    }
    // CGRefundBuild of bob's reservation: the access check comes before the build lookups.
    for role in ROLES {
        let e = match role {
            Anon => fault(1002, "Not logged-in"),
            Blocked => blocked(),
            Other => ok(),
            _ => cg_denied(),
        };
        t.cell(
            role,
            "CGRefundBuild",
            json!(["cgtest", "${cg_build}", "${cg_token}"]),
            none.clone(),
            e,
        );
    }
    // tagBuild: assertLogin before any lookup (a complete build to tag: tests/cg_import.rs).
    t.cell(
        Anon,
        "tagBuild",
        json!(["dest-tag", "cgpkg-1-r"]),
        none.clone(),
        login_required(),
    );
    t.cell(
        Blocked,
        "tagBuild",
        json!(["dest-tag", "cgpkg-1-r"]),
        none.clone(),
        blocked(),
    );
    // CGImport checks access (of the content generator every buildroot names) right after
    // reading the metadata.
    let meta =
        json!({"metadata_version": 0, "buildroots": [{"content_generator": {"name": "cgtest"}}]});
    for role in ROLES {
        let e = match role {
            Anon => fault(1002, "Not logged-in"),
            Blocked => blocked(),
            Other => continue, // has access: see tests/cg_import.rs for whole imports
            _ => cg_denied(),
        };
        t.cell(
            role,
            "CGImport",
            json!([meta, "cg-upload"]),
            none.clone(),
            e,
        );
    }

    // --- host.* -----------------------------------------------------------------------------
    t.host_row(
        "host.getID",
        json!([]),
        none.clone(),
        ok_is(json!("${hid_builder1}")),
    );
    t.host_row("host.getHost", json!([]), none.clone(), ok());
    t.host_row("host.updateHost", json!([0.0, false]), none.clone(), ok());
    t.host_row("host.getTasks", json!([]), none.clone(), ok());
    t.host_row("host.getHostTasks", json!([]), none.clone(), ok());
    t.host_row("host.getLoadData", json!([]), none.clone(), ok());
    t.host_row("host.setHostData", json!([{}]), none.clone(), ok());
    let not_own = |task: &str| {
        fault(
            1004,
            &format!("host ${{hid_builder1}} does not own task ${{{task}}}"),
        )
    };
    // Another host's OPEN task: builder1 may not act on it.
    t.host_row(
        "host.setTaskWeight",
        json!(["${t_open_b2}", 1.5]),
        none.clone(),
        not_own("t_open_b2"),
    );
    t.host_row(
        "host.closeTask",
        json!(["${t_open_b2}", RESPONSE]),
        none.clone(),
        not_own("t_open_b2"),
    );
    t.host_row(
        "host.failTask",
        json!(["${t_open_b2}", RESPONSE]),
        none.clone(),
        not_own("t_open_b2"),
    );
    t.host_row(
        "host.subtask",
        json!(["sleep", [1], "${t_open_b2}"]),
        none.clone(),
        not_own("t_open_b2"),
    );
    t.host_row(
        "host.subtask2",
        json!(["${t_open_b2}", {}, "sleep", 1]),
        none.clone(),
        not_own("t_open_b2"),
    );
    // openTask of a task OPEN elsewhere: None; freeTasks / refuseTask skip it silently.
    t.host_row(
        "host.openTask",
        json!(["${t_open_b2}"]),
        none.clone(),
        ok_is(Value::Null),
    );
    t.host_row(
        "host.freeTasks",
        json!([["${t_open_b2}"]]),
        none.clone(),
        ok(),
    );
    t.host_row(
        "host.refuseTask",
        json!(["${t_open_b2}"]),
        none.clone(),
        ok(),
    );
    t.cell(
        Admin,
        "getTaskInfo",
        json!(["${t_open_b2}"]),
        none.clone(),
        ok_is(json!({"state": 1, "host_id": "${hid_builder2}"})),
    );
    // Its own OPEN task: allowed.
    t.host_row(
        "host.setTaskWeight",
        json!(["${t_mine}", 1.5]),
        none.clone(),
        ok(),
    );
    t.host_row(
        "host.subtask",
        json!(["sleep", [1], "${t_mine}"]),
        none.clone(),
        ok(),
    );
    t.host_row(
        "host.taskSetWait",
        json!(["${t_mine}", null]),
        none.clone(),
        ok(),
    );
    t.host_row(
        "host.taskWait",
        json!(["${t_mine}"]),
        none.clone(),
        ok_is(json!([[], ["${t_mine_kid}"]])),
    );
    t.host_row("host.taskUnwait", json!(["${t_mine}"]), none.clone(), ok());
    t.host_row(
        "host.taskWaitResults",
        json!(["${t_mine}", []]),
        none.clone(),
        ok_is(json!([])),
    );
    t.host_row(
        "host.closeTask",
        json!(["${t_mine}", RESPONSE]),
        none.clone(),
        ok(),
    );
    // Scheduler administration.
    t.perm_row(
        "assignTask",
        "admin",
        json!(["${t_assign}", "builder2"]),
        none.clone(),
    );
    t.perm_row("scheduler.doRun", "admin", json!([]), none.clone());

    // --- Uploads ------------------------------------------------------------------------------
    // rawUpload / uploadFile into a task's directory: only the host that has the task OPEN
    // (get_upload_path: Host().verify(), Task.assertHost); elsewhere the directory's first
    // uploader owns it (`.user`).
    for method in ["rawUpload", "uploadFile"] {
        for role in ROLES {
            let e = match role {
                Anon if method == "rawUpload" => {
                    fault(1004, "you must be logged-in to upload a file")
                }
                Anon => login_required(),
                Host => not_own("t_up_b2"),
                r => not_a_host(r),
            };
            t.cell(
                role,
                method,
                json!(["${dir_t_up_b2}", format!("{{role}}-{method}.log")]),
                none.clone(),
                e,
            );
        }
        t.cell(
            Host,
            method,
            json!(["${dir_t_up_b1}", format!("mine-{method}.log")]),
            none.clone(),
            ok(),
        );
        for role in ROLES {
            let e = match role {
                Anon if method == "rawUpload" => {
                    fault(1004, "you must be logged-in to upload a file")
                }
                Anon => login_required(),
                Blocked => blocked(),
                User => ok(),
                _ => fault(
                    1000,
                    "Invalid upload directory, not owner: cli-build/alice-dir",
                ),
            };
            t.cell(
                role,
                method,
                json!(["cli-build/alice-dir", format!("{{role}}-{method}.txt")]),
                none.clone(),
                e,
            );
        }
    }
    t
}

/// Methods with `write` kind in `plugin-spec/hub-api.md` that the matrix leaves to other tests.
const NOT_IN_MATRIX: &[(&str, &str)] = &[
    (
        "login",
        "tests/koji_sessions.rs (blocked users, wrong passwords)",
    ),
    (
        "logout",
        "session housekeeping of the caller's own session: tests/koji_sessions.rs",
    ),
    (
        "subsession",
        "the caller's own session: tests/koji_sessions.rs",
    ),
    (
        "logoutChild",
        "the caller's own subsessions: tests/koji_sessions.rs",
    ),
    (
        "exclusiveSession",
        "the caller's own sessions: tests/koji_sessions.rs",
    ),
    (
        "sharedSession",
        "the caller's own session: tests/koji_sessions.rs",
    ),
    (
        "sslLogin",
        "certificate logins, blocked users included: tests/koji_ssl.rs",
    ),
];

/// The driver: logs a session in per role, builds the objects the cells name, runs every cell
/// in order and prints `RESULT [..]` (one outcome per cell), then the disabled-host check as
/// `RESULT2 {..}`.
const DRIVER: &str = r#"
import base64, json, os, re, zlib, koji, requests
URL = os.environ['KOJI_URL']
cfg = json.load(open(CONFIG))

def session(user, password, exclusive=False):
    s = koji.ClientSession(URL, opts={'user': user, 'password': password,
                                      'max_retries': 0, 'retry_interval': 0})
    s.login()
    if exclusive:
        s.exclusiveSession()
    return s

pw = cfg['passwords']
adm = session(os.environ['KOJI_USER'], os.environ['KOJI_PASSWORD'])
S = {'anon': koji.ClientSession(URL, opts={'max_retries': 0, 'retry_interval': 0}),
     'user': session('alice', pw['alice']),
     'other': session('bob', pw['bob']),
     'perms': session('pat', pw['pat']),
     'host': session('builder1', pw['builder1'], True),
     'blocked': session('carol', pw['carol']),
     'admin': adm}
b2 = session('builder2', pw['builder2'], True)
V = {}

# Users and permissions.
for perm in ('tag', 'target', 'host'):
    adm.grantPermission('pat', perm)
for name in ('dave', 'eve', 'cg-user'):
    adm.createUser(name)
adm.disableUser('carol')
for name in ('alice', 'bob', 'pat', 'carol', ADMIN):
    V['uid_' + name] = adm.getUser(name)['id']
for name in ('builder1', 'builder2'):
    V['hid_' + name] = adm.getHost(name)['id']
adm.grantCGAccess('bob', 'cgtest', create=True)
r = S['other'].CGInitBuild('cgtest', {'name': 'cgpkg', 'version': '1', 'release': 'r'})
V['cg_build'], V['cg_token'] = r['build_id'], r['token']

# Records.
adm.createTag('build-tag')
adm.createTag('dest-tag')
adm.createBuildTarget('tgt', 'build-tag', 'dest-tag')
adm.packageListAdd('dest-tag', 'pkg-listed', owner=ADMIN)
adm.addChannel('chan-x')
adm.addHostToChannel('builder2', 'chan-x')

# Tasks. Sleep tasks in chan-x: no host is ready, so the scheduler leaves them alone.
def task(owner):
    return owner.buildContainer(SRC, 'tgt')
def opened_by(host, hostname, owner=None):
    t = task(owner or adm)
    adm.assignTask(t, hostname, force=True)
    assert host.host.openTask(t)['id'] == t
    return t
V['t_alice'] = task(S['user'])
V['t_bob'] = task(S['other'])
V['t_full'] = task(S['other'])
V['t_assign'] = task(S['other'])
V['t_assigned_b1'] = task(S['other'])
adm.assignTask(V['t_assigned_b1'], 'builder1', force=True)
V['t_open_b1'] = opened_by(S['host'], 'builder1', S['other'])
V['t_open_b2'] = opened_by(b2, 'builder2', S['other'])
V['t_kids'] = opened_by(b2, 'builder2', S['other'])
V['t_kid'] = b2.host.subtask('sleep', [1], V['t_kids'], channel='chan-x')
V['t_mine'] = opened_by(S['host'], 'builder1')
V['t_up_b1'] = opened_by(S['host'], 'builder1')
V['t_up_b2'] = opened_by(b2, 'builder2')
for k in ('t_up_b1', 't_up_b2'):
    V['dir_' + k] = 'tasks/%d/%d' % (V[k] % 10000, V[k])

# An upload directory alice owns (its `.user` file names her).
with open(CONFIG + '.txt', 'w') as f:
    f.write('first\n')
S['user'].fastUpload(CONFIG + '.txt', 'cli-build/alice-dir', 'first.txt')

def subst(v):
    if isinstance(v, str):
        m = re.fullmatch(r'\$\{(\w+)\}', v)
        if m:
            return V[m.group(1)]
        return re.sub(r'\$\{(\w+)\}', lambda m: str(V[m.group(1)]), v)
    if isinstance(v, list):
        return [subst(x) for x in v]
    if isinstance(v, dict):
        return {k: subst(x) for k, x in v.items()}
    return v

def raw_upload_anon(path, name, data):
    # The koji client refuses rawUpload without a session before sending it; post it as the
    # client would, without session headers, and decode the hub's answer.
    import urllib.parse, xmlrpc.client
    q = urllib.parse.urlencode({'filename': name, 'filepath': path, 'fileverify': 'adler32',
                                'offset': '0'})
    r = requests.post(URL + '?' + q, data=data,
                      headers={'Content-Type': 'application/octet-stream'}, timeout=60)
    try:
        return xmlrpc.client.loads(r.content)[0][0]
    except xmlrpc.client.Fault as f:
        raise koji.convertFault(f)

def call(s, method, args, kwargs):
    if method == 'rawUpload' and s is S['anon']:
        return raw_upload_anon(args[0], args[1], b'matrix upload\n')
    if method == 'rawUpload':
        path, name = args
        data = b'matrix upload\n'
        return s._callMethod('rawUpload', (data, 0, path, name), {'overwrite': False})
    if method == 'uploadFile':
        path, name = args
        data = b'matrix upload\n'
        return s._callMethod('uploadFile', (path, name, len(data),
                             ('adler32', '%08x' % (zlib.adler32(data) & 0xffffffff)), 0,
                             base64.b64encode(data).decode()), {})
    return s._callMethod(method, tuple(args), kwargs)

out = []
for c in cfg['cells']:
    if c['method'] == 'host.taskWait' and 't_mine_kid' not in V:
        V['t_mine_kid'] = [t['id'] for t in adm.getTaskChildren(V['t_mine'])][0]
    args, kwargs = subst(c['args']), subst(c['kwargs'])
    rec = {'expect': subst(c['expect'])}
    try:
        rec['result'] = call(S[c['role']], c['method'], args, kwargs)
    except koji.GenericError as e:
        rec['fault'] = [e.faultCode, e.args[0] if e.args else '']
    except Exception as e:
        rec['error'] = '%s: %s' % (type(e).__name__, e)
    out.append(rec)
print('RESULT ' + json.dumps(out, default=repr))

# A disabled host gets no task; the same host, enabled, gets it.
adm.addHostToChannel('builder3', 'solo', create=True)
adm.disableHost('builder3')
b3 = session('builder3', pw['builder3'], True)
b3.host.updateHost(0.0, True)
t = S['user'].buildContainer(SRC, 'tgt', channel='solo')
disabled = b3.host.getTasks()
adm.scheduler.doRun()
disabled_after_run = b3.host.getTasks()
state_disabled = adm.getTaskInfo(t)['state']
adm.enableHost('builder3')
enabled = b3.host.getTasks()
print('RESULT2 ' + json.dumps({'task': t, 'disabled': [x['id'] for x in disabled],
      'disabled_after_run': [x['id'] for x in disabled_after_run],
      'state_disabled': state_disabled, 'enabled': [x['id'] for x in enabled]}))
"#;

/// Whether `got` matches `want`: objects match when every member of `want` is equal in `got`.
fn matches(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|x| matches(v, x))),
        _ => want == got,
    }
}

/// One line per mismatching cell.
fn mismatches(cells: &[Cell], outcomes: &[Value]) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, (c, o)) in cells.iter().zip(outcomes).enumerate() {
        let e = &o["expect"];
        let got = if let Some(f) = o.get("fault") {
            format!("fault {} {:?}", f[0], f[1].as_str().unwrap_or_default())
        } else if let Some(err) = o.get("error") {
            format!("client error {err}")
        } else {
            format!("ok {}", o["result"])
        };
        let good = match (&c.expect, o.get("fault")) {
            (Expect::Ok(None), None) => o.get("error").is_none(),
            (Expect::Ok(Some(_)), None) => {
                o.get("error").is_none() && matches(&e["ok"], &o["result"])
            }
            (Expect::Fault(..), Some(f)) => f[0] == e["fault"][0] && f[1] == e["fault"][1],
            _ => false,
        };
        if !good {
            let want = match &c.expect {
                Expect::Ok(None) => "ok".to_string(),
                Expect::Ok(Some(_)) => format!("ok {}", e["ok"]),
                Expect::Fault(..) => format!(
                    "fault {} {:?}",
                    e["fault"][0],
                    e["fault"][1].as_str().unwrap_or_default()
                ),
            };
            bad.push(format!(
                "#{i} {:<7} {}({}, {}): want {want}, got {got}",
                c.role.key(),
                c.method,
                c.args,
                c.kwargs
            ));
        }
    }
    bad
}

/// The `write` methods of the hub's API table.
fn write_methods() -> BTreeSet<String> {
    let spec = std::fs::read_to_string(common::repo_dir().join("plugin-spec/hub-api.md"))
        .expect("read plugin-spec/hub-api.md");
    spec.lines()
        .filter(|l| l.starts_with("| `") && l.contains(" | write | "))
        .filter_map(|l| l[3..].split(['(', '`']).next().map(str::to_string))
        .collect()
}

#[test]
fn every_state_changing_method_is_in_the_matrix() {
    let t = matrix();
    let covered: BTreeSet<&str> = t.cells.iter().map(|c| c.method).collect();
    let exempt: BTreeSet<&str> = NOT_IN_MATRIX.iter().map(|(m, _)| *m).collect();
    let missing: Vec<String> = write_methods()
        .into_iter()
        .filter(|m| !covered.contains(m.as_str()) && !exempt.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "write methods without a permission-matrix row: {missing:?}"
    );
    for m in ["rawUpload", "uploadFile"] {
        assert!(covered.contains(m), "{m} has no row");
    }
}

#[test]
fn permission_matrix_matches_koji() {
    let Some(hub) = Hub::start() else { return };
    let mut passwords = serde_json::Map::new();
    for user in ["alice", "bob", "pat", "carol"] {
        let pw = random_password();
        hub.add_user_cli(user, &pw, false);
        passwords.insert(user.into(), pw.into());
    }
    for host in ["builder1", "builder2", "builder3"] {
        passwords.insert(host.into(), hub.add_host_cli(host).into());
    }
    let table = matrix();
    let cells: Vec<Value> = table
        .cells
        .iter()
        .map(|c| {
            json!({
                "role": c.role.key(),
                "method": c.method,
                "args": c.args,
                "kwargs": c.kwargs,
                "expect": match &c.expect {
                    Expect::Ok(v) => json!({"ok": v}),
                    Expect::Fault(code, text) => json!({"fault": [code, text]}),
                },
            })
        })
        .collect();
    let config = hub.dir().join("matrix.json");
    std::fs::write(
        &config,
        serde_json::to_vec(&json!({"passwords": passwords, "cells": cells})).expect("json"),
    )
    .expect("write matrix.json");
    let script = format!(
        "CONFIG = {}\nADMIN = {}\nSRC = {}\n{DRIVER}",
        json!(config.to_str().expect("utf-8 path")),
        json!(ADMIN),
        json!(SRC)
    );
    let started = std::time::Instant::now();
    let out = hub.python_ok(&script);
    eprintln!(
        "{} cells in {:.1} s",
        table.cells.len(),
        started.elapsed().as_secs_f64()
    );
    let outcomes = result_json(&out);
    let outcomes = outcomes.as_array().expect("RESULT is a list");
    assert_eq!(outcomes.len(), table.cells.len(), "one outcome per cell");
    let bad = mismatches(&table.cells, outcomes);
    let mut report = String::new();
    for line in &bad {
        let _ = writeln!(report, "{line}");
    }
    assert!(
        bad.is_empty(),
        "{} of {} cells differ from Koji:\n{report}",
        bad.len(),
        table.cells.len()
    );

    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT2 "))
        .expect("RESULT2 line");
    let d: Value = serde_json::from_str(line).expect("RESULT2 json");
    let task = &d["task"];
    assert_eq!(d["disabled"], json!([]), "a disabled host got a task: {d}");
    assert_eq!(
        d["disabled_after_run"],
        json!([]),
        "after a scheduler run: {d}"
    );
    assert_eq!(d["state_disabled"], json!(0), "the task stays FREE: {d}");
    assert_eq!(
        d["enabled"],
        json!([task]),
        "the enabled host gets the task: {d}"
    );
}
