//! The stock koji 1.36.1 CLI and Python client against our hub.
//!
//! Every test starts its own hub (own port, own data dir). Without a koji CLI the tests print
//! "skipping" and pass, except under CI, where a missing CLI fails the run.

mod common;

use common::assert_contains;

use common::{ADMIN, Hub, call_xml, fault_code, fault_string, header};

// ---------------------------------------------------------------------------------------------
// Session basics

#[test]
fn hello_authenticates_with_password() {
    let hub = hub!();
    let out = hub.koji_ok(&["hello"]);
    assert_contains(&out, "kojiadmin!", "hello");
    assert_contains(&out, "Authenticated via password", "hello");
    assert_contains(&out, "Koji 1.36.1", "hello");
    assert_contains(&out, &hub.url(), "hello shows the hub URL");
}

#[test]
fn hello_with_wrong_password_fails() {
    let hub = hub!();
    let (code, out, err) = hub.koji_as(ADMIN, "not-the-password", &["hello"]);
    assert_ne!(
        code, 0,
        "login with a wrong password must fail\nstdout: {out}\nstderr: {err}"
    );
    assert!(!out.contains("Authenticated via password"), "{out}");
}

#[test]
fn version_reports_hub_version() {
    let hub = hub!();
    let (code, out, err) = hub.koji_noauth(&["version"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_contains(&out, "Client: 1.36.1", "version");
    assert_contains(&out, "Hub:    1.36.1", "version");
}

#[test]
fn anon_profile_works() {
    let hub = hub!();
    let (code, out, err) = hub.koji_profile("anon", &["call", "getAPIVersion"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.trim(), "1");
}

// ---------------------------------------------------------------------------------------------
// `koji call`

#[test]
fn call_echo() {
    let hub = hub!();
    let out = hub.koji_ok(&["call", "echo", "1", "x", "None"]);
    assert_eq!(out.trim_end(), "[1, 'x', None]");
}

#[test]
fn call_unknown_method() {
    let hub = hub!();
    let (code, _out, err) = hub.koji(&["call", "nosuch"]);
    assert_eq!(code, 1);
    assert_contains(&err, "GenericError: Invalid method: nosuch", "call nosuch");
}

#[test]
fn call_unexpected_keyword() {
    let hub = hub!();
    let (code, _out, err) = hub.koji(&["call", "getTaskInfo", "1", "bogus=1"]);
    assert_eq!(code, 1);
    assert_contains(
        &err,
        "ParameterError: getTaskInfo() got an unexpected keyword argument 'bogus'",
        "call getTaskInfo bogus=1",
    );
}

#[test]
fn list_api() {
    let hub = hub!();
    let (code, out, err) = hub.koji_noauth(&["list-api"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_contains(
        &out,
        "getTaskInfo(task_id, request=False, strict=False)",
        "list-api",
    );
    assert_contains(&out, "login(", "list-api");
    assert_contains(&out, "system.listMethods", "list-api");
}

// ---------------------------------------------------------------------------------------------
// Admin records

/// Creates the records used by the admin-record tests; every step must succeed.
fn populate(hub: &Hub) {
    hub.koji_ok(&["add-tag", "--arches", "x86_64", "f40-build"]);
    hub.koji_ok(&["add-tag", "f40"]);
    hub.koji_ok(&["add-target", "f40-candidate", "f40-build", "f40"]);
    hub.koji_ok(&["add-pkg", "--owner", ADMIN, "f40", "foo"]);
    let out = hub.koji_ok(&["add-host", "builder1", "x86_64"]);
    assert_contains(&out, "builder1 added: id ", "add-host");
    // Without --new: the hub is expected to know the `container` channel already.
    hub.koji_ok(&["add-host-to-channel", "builder1", "container"]);
    let out = hub.koji_ok(&["add-user", "alice"]);
    assert_contains(&out, "Added user alice (", "add-user");
    // `tag` is one of Koji's stock permissions (schemas/schema.sql), so no --new.
    hub.koji_ok(&["grant-permission", "tag", "alice"]);
}

#[test]
fn admin_records_are_listed() {
    let hub = hub!();
    populate(&hub);

    let out = hub.koji_ok(&["list-targets"]);
    let row = out
        .lines()
        .find(|l| l.starts_with("f40-candidate "))
        .unwrap_or_else(|| panic!("no f40-candidate row in:\n{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols,
        ["f40-candidate", "f40-build", "f40"],
        "list-targets row"
    );

    let out = hub.koji_ok(&["list-tags"]);
    let tags: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(
        tags.contains(&"f40") && tags.contains(&"f40-build"),
        "list-tags:\n{out}"
    );

    let out = hub.koji_ok(&["list-hosts"]);
    assert!(
        out.lines().any(|l| l.starts_with("builder1 ")),
        "list-hosts:\n{out}"
    );
    let out = hub.koji_ok(&["list-hosts", "--channel", "container"]);
    assert!(
        out.lines().any(|l| l.starts_with("builder1 ")),
        "list-hosts --channel container:\n{out}"
    );

    let out = hub.koji_ok(&["list-channels"]);
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.contains(&"default"), "list-channels:\n{out}");
    assert!(names.contains(&"container"), "list-channels:\n{out}");

    let out = hub.koji_ok(&["list-pkgs", "--tag", "f40"]);
    let row = out
        .lines()
        .find(|l| l.starts_with("foo "))
        .unwrap_or_else(|| panic!("no foo row in list-pkgs:\n{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols.first(), Some(&"foo"));
    assert!(cols.contains(&"f40"), "tag column: {row}");
    assert_eq!(cols.last(), Some(&ADMIN), "owner column: {row}");

    let out = hub.koji_ok(&["list-permissions", "--user", "alice"]);
    assert!(
        out.lines().any(|l| l.trim() == "tag"),
        "list-permissions --user alice:\n{out}"
    );

    let out = hub.koji_ok(&["taginfo", "f40-build"]);
    assert_contains(&out, "Tag: f40-build [", "taginfo");
    assert_contains(&out, "Arches: x86_64", "taginfo");
}

#[test]
fn add_target_requires_existing_tags() {
    let hub = hub!();
    let (code, _out, err) = hub.koji(&["add-target", "nope-candidate", "nope-build", "nope"]);
    assert_ne!(code, 0);
    assert_contains(
        &err,
        "No such tag: nope-build",
        "add-target with a missing tag",
    );
}

#[test]
fn non_admin_cannot_add_tag() {
    let hub = hub!();
    let pw = common::random_password();
    hub.add_user_cli("bob", &pw, false);
    let (code, out, err) = hub.koji_as("bob", &pw, &["hello"]);
    assert_eq!(code, 0, "bob logs in\nstdout: {out}\nstderr: {err}");
    assert_contains(&out, "bob!", "hello as bob");
    let (code, _out, err) = hub.koji_as("bob", &pw, &["add-tag", "sneaky"]);
    assert_ne!(code, 0);
    assert_contains(
        &err,
        "This action requires tag or admin privileges",
        "add-tag as bob",
    );
    // Bypass the CLI's client-side check: the hub itself must refuse.
    let (code, _out, err) = hub.koji_as("bob", &pw, &["call", "createTag", "sneaky"]);
    assert_ne!(code, 0);
    assert_contains(&err, "ActionNotAllowed", "createTag as bob");
}

// ---------------------------------------------------------------------------------------------
// Python client: multicall

#[test]
fn multicall_new_style_and_legacy() {
    let hub = hub!();
    let script = r#"
import os, koji

s = koji.ClientSession(os.environ['KOJI_URL'],
                       {'user': os.environ['KOJI_USER'], 'password': os.environ['KOJI_PASSWORD']})
assert s.login()

with s.multicall(strict=False) as m:
    a = m.echo(1)
    b = m.nosuch()
assert a.result == [1], a.result
try:
    b.result
except koji.GenericError as e:
    assert 'Invalid method: nosuch' in str(e), str(e)
else:
    raise AssertionError('b.result did not raise')
print('nonstrict ok')

try:
    with s.multicall(strict=True) as m:
        m.echo(2)
        m.nosuch()
except koji.GenericError as e:
    assert 'Invalid method: nosuch' in str(e), str(e)
else:
    raise AssertionError('strict multicall did not raise')
print('strict ok')

s.multicall = True
s.echo(1)
s.getAPIVersion()
r = s.multiCall()
assert r == [[[1]], [1]], r
print('legacy ok')

s.multicall = True
s.echo('a')
s.nosuch()
r = s.multiCall()
assert r[0] == [['a']], r
assert isinstance(r[1], dict) and r[1]['faultCode'] == 1000, r
assert 'Invalid method: nosuch' in r[1]['faultString'], r
print('legacy fault ok')

u = s.getLoggedInUser()
assert u['name'] == os.environ['KOJI_USER'], u
s.logout()
print('done')
"#;
    let out = hub.python_ok(script);
    for marker in [
        "nonstrict ok",
        "strict ok",
        "legacy ok",
        "legacy fault ok",
        "done",
    ] {
        assert_contains(&out, marker, "multicall script");
    }
}

#[test]
fn python_echo_round_trips_odd_values() {
    let hub = hub!();
    let script = r#"
import os, koji
s = koji.ClientSession(os.environ['KOJI_URL'])
v = {'': 1, 'a': None, 'big': 5000000000, 'neg': -2147483649, 'u': 'h\u00e9llo <&>', 'f': 1.5,
     'l': [], 'd': {}, 't': True}
r = s.echo(v)
assert r == [v], r
print('ok')
"#;
    let out = hub.python_ok(script);
    assert_contains(&out, "ok", "echo round trip");
}

// ---------------------------------------------------------------------------------------------
// Sessions: callnum replay protection

#[test]
fn callnum_retry_and_sequence_errors() {
    let hub = hub!();
    let (sid, skey) = hub.raw_login(ADMIN, hub.admin_password());
    let call = |callnum: &str, body: &str| {
        hub.raw_call_with(
            &[
                ("Koji-Session-Id", sid.as_str()),
                ("Koji-Session-Key", skey.as_str()),
                ("Koji-Session-Callnum", callnum),
            ],
            body,
        )
    };

    // A write call at callnum 5 succeeds.
    let (status, _, body) = call("5", &call_xml("createUser", &["<string>replay1</string>"]));
    assert_eq!(status, 200);
    assert_eq!(fault_code(&body), None, "createUser at callnum 5: {body}");

    // The same callnum again (a different write) is refused as a retry.
    let (status, _, body) = call("5", &call_xml("createUser", &["<string>replay2</string>"]));
    assert_eq!(status, 200);
    assert_eq!(
        fault_code(&body),
        Some(1009),
        "repeat callnum 5 must be RetryError: {body}"
    );

    // An older callnum is out of sequence.
    let (status, _, body) = call("3", &call_xml("createUser", &["<string>replay3</string>"]));
    assert_eq!(status, 200);
    assert_eq!(
        fault_code(&body),
        Some(1008),
        "callnum 3 after 5 must be SequenceError: {body}"
    );

    // Neither refused call did anything.
    let (code, _out, err) = hub.koji(&["call", "getUser", "replay2", "strict=True"]);
    assert_ne!(code, 0, "replay2 must not exist");
    assert_contains(&err, "GenericError", "getUser replay2");
    let out = hub.koji_ok(&["call", "getUser", "replay1"]);
    assert_contains(&out, "'name': 'replay1'", "getUser replay1");
}

// ---------------------------------------------------------------------------------------------
// Persistence

#[test]
fn records_survive_restart() {
    let mut hub = hub!();
    hub.koji_ok(&["add-tag", "--arches", "x86_64", "persist-build"]);
    hub.koji_ok(&["add-user", "carol"]);
    hub.restart();

    let out = hub.koji_ok(&["list-tags"]);
    assert!(
        out.lines().any(|l| l.trim() == "persist-build"),
        "list-tags after restart:\n{out}"
    );
    let out = hub.koji_ok(&["call", "getUser", "carol"]);
    assert_contains(&out, "'name': 'carol'", "getUser carol after restart");
    let out = hub.koji_ok(&["hello"]);
    assert_contains(&out, "kojiadmin!", "hello after restart");
}

#[test]
fn session_survives_restart() {
    let mut hub = hub!();
    let (sid, skey) = hub.raw_login(ADMIN, hub.admin_password());
    let headers = |callnum: &'static str| {
        vec![
            ("Koji-Session-Id", sid.clone()),
            ("Koji-Session-Key", skey.clone()),
            ("Koji-Session-Callnum", callnum.to_string()),
        ]
    };
    let who = call_xml("getLoggedInUser", &[]);
    let h = headers("0");
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, body) = hub.raw_call_with(&h, &who);
    assert_contains(
        &body,
        "<string>kojiadmin</string>",
        "getLoggedInUser before restart",
    );

    hub.restart();

    let h = headers("1");
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = hub.raw_call_with(&h, &who);
    assert_eq!(status, 200);
    assert_eq!(fault_code(&body), None, "session after restart: {body}");
    assert_contains(
        &body,
        "<string>kojiadmin</string>",
        "getLoggedInUser after restart",
    );
}

// ---------------------------------------------------------------------------------------------
// Wire level

#[test]
fn every_response_carries_koji_version() {
    let hub = hub!();
    let cases = [
        ("success", call_xml("getAPIVersion", &[])),
        ("fault", call_xml("nosuch", &[])),
        ("garbage", "this is not xml".to_string()),
    ];
    for (what, body) in cases {
        let (status, headers, resp) = hub.raw_call(&body);
        assert_eq!(status, 200, "{what}: {resp}");
        assert_eq!(
            header(&headers, "Koji-Version"),
            Some("1.36.1"),
            "{what}: headers {headers:?}"
        );
    }
    let (_, _, resp) = hub.raw_call(&call_xml("getKojiVersion", &[]));
    assert_contains(&resp, "<string>1.36.1</string>", "getKojiVersion");
}

#[test]
fn oversize_request_is_a_fault() {
    let hub = hub!();
    // Just over 4 MiB of padding inside a string parameter.
    let pad = "a".repeat(4 * 1024 * 1024 + 1);
    let body = call_xml("echo", &[&format!("<string>{pad}</string>")]);
    let (status, headers, resp) = hub.raw_call(&body);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(header(&headers, "Koji-Version"), Some("1.36.1"));
    assert_eq!(fault_code(&resp), Some(1000), "{resp}");
    assert_contains(
        &fault_string(&resp).unwrap_or_default(),
        "Request too long",
        "fault string",
    );
    // The hub is still fine afterwards.
    let (status, _, resp) = hub.raw_call(&call_xml("getAPIVersion", &[]));
    assert_eq!(status, 200);
    assert_eq!(fault_code(&resp), None, "{resp}");
}

#[test]
fn doctype_is_rejected_with_a_fault() {
    let hub = hub!();
    let body = "<?xml version='1.0'?>\n<!DOCTYPE methodCall [<!ENTITY x \"boom\">]>\n\
                <methodCall><methodName>echo</methodName><params><param><value><string>&x;</string>\
                </value></param></params></methodCall>";
    let (status, headers, resp) = hub.raw_call(body);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(header(&headers, "Koji-Version"), Some("1.36.1"));
    assert!(
        fault_code(&resp).is_some(),
        "DOCTYPE must be a fault: {resp}"
    );
    assert!(
        !resp.contains("boom"),
        "entity must not be expanded: {resp}"
    );
}

#[test]
fn empty_member_name_round_trips() {
    let hub = hub!();
    let arg = "<struct><member><name></name><value><int>7</int></value></member>\
               <member><name>b</name><value><string>x</string></value></member></struct>";
    let (status, _, resp) = hub.raw_call(&call_xml("echo", &[arg]));
    assert_eq!(status, 200);
    assert_eq!(fault_code(&resp), None, "{resp}");
    let compact: String = resp.split_whitespace().collect();
    assert!(
        compact.contains("<name></name><value><int>7</int></value>"),
        "empty member name lost: {resp}"
    );
    assert!(
        compact.contains("<name>b</name><value><string>x</string></value>"),
        "{resp}"
    );
}

#[test]
fn integer_widths() {
    let hub = hub!();
    let (status, _, resp) = hub.raw_call(&call_xml(
        "echo",
        &["<int>1</int>", "<i8>5000000000</i8>", "<i4>-5</i4>"],
    ));
    assert_eq!(status, 200);
    assert_eq!(fault_code(&resp), None, "{resp}");
    assert_contains(&resp, "<int>1</int>", "small int");
    assert_contains(&resp, "<i8>5000000000</i8>", "big int");
    assert_contains(&resp, "<int>-5</int>", "i4 comes back as int");
}

#[test]
fn bare_string_values_and_nil() {
    let hub = hub!();
    let (status, _, resp) = hub.raw_call(&call_xml("echo", &["bare", "<nil/>"]));
    assert_eq!(status, 200);
    assert_eq!(fault_code(&resp), None, "{resp}");
    assert_contains(&resp, "<string>bare</string>", "bare value is a string");
    assert_contains(&resp, "<nil/>", "nil");
}
