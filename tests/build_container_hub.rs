//! The hub half of `buildContainer` (koji-containerbuild's hub plugin): task creation, priority
//! and channel rules, and discoverability by old rpkg/fedpkg clients.

mod common;

use common::{ADMIN, assert_contains};

#[test]
fn build_container_creates_a_koji_shaped_task() {
    let hub = hub!();
    let out = hub.python_ok(
        r#"
import koji, os
s = koji.ClientSession(os.environ['KOJI_URL'], {'user': os.environ['KOJI_USER'], 'password': os.environ['KOJI_PASSWORD']})
s.login()
assert 'buildContainer' in s.system.listMethods()
tid = s.buildContainer('git://127.0.0.1/containers/foo#0123abc', 'f40-container-candidate',
                       {'git_branch': 'f40', 'scratch': True}, priority=None)
t = s.getTaskInfo(tid, request=True)
ch = s.getChannel(t['channel_id'])
print(t['method'], t['arch'], t['priority'], ch['name'], t['state'], t['parent'])
print(t['request'])
tid2 = s.buildContainer('git://h/c#1', 't', priority=5)
t2 = s.getTaskInfo(tid2, request=True)
print('prio', t2['priority'], 'opts', t2['request'][2])
print('owner', s.getUser(t['owner'])['name'])
"#,
    );
    assert_contains(
        &out,
        "buildContainer noarch 20 container 0 None",
        "task fields",
    );
    assert_contains(
        &out,
        "['git://127.0.0.1/containers/foo#0123abc', 'f40-container-candidate', {'git_branch': 'f40', 'scratch': True}]",
        "request",
    );
    assert_contains(&out, "prio 25 opts {}", "priority offset and default opts");
    assert_contains(&out, &format!("owner {ADMIN}"), "owner");
}

#[test]
fn build_container_priority_and_channel_rules() {
    let hub = hub!();
    let pw = common::random_password();
    hub.add_user_cli("alice", &pw, false);
    let (code, _, err) = hub.koji_as(
        "alice",
        &pw,
        &[
            "call",
            "buildContainer",
            "git://h/c#1",
            "t",
            "None",
            "priority=-5",
        ],
    );
    assert_ne!(code, 0);
    assert_contains(
        &err,
        "ActionNotAllowed: only admins may create high-priority tasks",
        "negative priority",
    );
    // Admins may.
    let out = hub.koji_ok(&[
        "call",
        "buildContainer",
        "git://h/c#1",
        "t",
        "None",
        "priority=-5",
    ]);
    let id: i64 = out.trim().parse().expect("task id");
    let info = hub.koji_ok(&["call", "getTaskInfo", &id.to_string()]);
    assert_contains(&info, "'priority': 15", "admin high priority");
    // Channels must exist and be enabled.
    let (_, _, err) = hub.koji(&[
        "call",
        "buildContainer",
        "git://h/c#1",
        "t",
        "channel=nosuch",
    ]);
    assert_contains(
        &err,
        "GenericError: No such channel: nosuch",
        "unknown channel",
    );
    hub.koji_ok(&["disable-channel", "container"]);
    let (_, _, err) = hub.koji(&["call", "buildContainer", "git://h/c#1", "t"]);
    assert_contains(
        &err,
        "GenericError: Channel container is disabled.",
        "disabled channel",
    );
    // Anonymous callers cannot create tasks.
    let (code, _, err) = hub.koji_noauth(&["call", "buildContainer", "git://h/c#1", "t"]);
    assert_ne!(code, 0);
    assert_contains(&err, "task must have an owner", "anonymous");
}
