//! The web pages under `/koji/` (`plugin-spec/web.md`): tasks in every state, the task list with
//! paging and filters, the live log endpoint, a build imported through `CGImport`, the hosts
//! page, 404/400 answers and the escaping of hostile data. Tasks are made with `makeTask` and
//! driven through their states with the host protocol (`koji.ClientSession`), as kojid would.

mod common;

use common::{Hub, assert_contains, header, result_json};
use containerbuild::hub::task_relpath;

const SCRIPT_RAW: &str = "<script>alert(1)</script>";
const SCRIPT_ESC: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
const IMG_RAW: &str = "\"'><img src=x onerror=alert(1)>";
const IMG_ESC: &str = "&quot;&#39;&gt;&lt;img src=x onerror=alert(1)&gt;";

const PRELUDE: &str = r#"
import hashlib, io, json, os, tarfile, tempfile, time
import koji
from koji import xmlrpcplus
from koji_cli.lib import unique_path

URL = os.environ['KOJI_URL']
SCRIPT = '<script>alert(1)</script>'
IMG = '"\'><img src=x onerror=alert(1)>'
WORK = tempfile.mkdtemp()

def session(user, pw):
    s = koji.ClientSession(URL, {'user': user, 'password': pw, 'max_retries': 0})
    assert s.login(), user
    return s

def admin():
    return session(os.environ['KOJI_USER'], os.environ['KOJI_PASSWORD'])

def host(name, pw):
    s = session(name, pw)
    s.exclusiveSession(force=True)
    return s

def ok_response(value):
    return xmlrpcplus.dumps((value,), methodresponse=1, allow_none=1)

def fault_response(code, msg):
    return xmlrpcplus.dumps(xmlrpcplus.Fault(code, msg), methodresponse=1, allow_none=1)

def task_dir(tid):
    return 'tasks/%d/%d' % (tid % 10000, tid)

def upload(h, tid, name, data):
    p = os.path.join(WORK, name)
    with open(p, 'wb') as f:
        f.write(data)
    h.uploadWrapper(p, task_dir(tid), name=name, overwrite=True)
"#;

fn script(hub: &Hub, body: &str) -> String {
    hub.python_ok(&format!("{PRELUDE}\n{body}"))
}

/// GET a page: asserts the status, an HTML content type and the Koji-Version header; the body.
fn page(hub: &Hub, path: &str, status: u16) -> String {
    let (st, headers, body) = hub.raw_get(path);
    assert_eq!(st, status, "GET {path}: status {st}\n{body}");
    assert_eq!(
        header(&headers, "koji-version"),
        Some("1.36.1"),
        "GET {path}: headers {headers:?}"
    );
    let ct = header(&headers, "content-type").unwrap_or_default();
    assert!(ct.starts_with("text/html"), "GET {path}: content type {ct}");
    assert!(body.starts_with("<!DOCTYPE html>"), "GET {path}: {body}");
    body
}

/// Hostile strings only ever appear escaped.
fn assert_no_raw(body: &str, what: &str) {
    assert!(
        !body.contains(SCRIPT_RAW),
        "{what}: raw <script> in:\n{body}"
    );
    assert!(
        !body.contains("<img src=x"),
        "{what}: raw <img> in:\n{body}"
    );
    assert!(
        !body.contains("onerror=alert(1)>"),
        "{what}: raw onerror in:\n{body}"
    );
}

fn tasklog(hub: &Hub, query: &str) -> (u16, serde_json::Value) {
    let (st, headers, body) = hub.raw_get(&format!("/koji/tasklog?{query}"));
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/json"),
        "{body}"
    );
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("tasklog {query}: {e}: {body}"));
    (st, v)
}

/// The text of the element with `id` up to its closing tag (good enough for our markup).
fn element<'a>(body: &'a str, id: &str, close: &str) -> &'a str {
    let start = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element {id} in:\n{body}"));
    let rest = &body[start..];
    let end = rest.find(close).unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn task_pages_in_every_state_live_log_and_escaping() {
    let Some(hub) = Hub::start() else { return };
    let pw = common::register_host(&hub, "web1.test", &["x86_64"]);
    let out = script(
        &hub,
        &format!(
            r#"
adm = admin()
h = host('web1.test', '{pw}')
free = adm.makeTask('sleep', [100], arch='s390x')
open_ = adm.makeTask('createContainer', ['git://example.test/c#1', 'tgt', 'x86_64', {{'release': '1'}}], arch='x86_64')
closed = adm.makeTask('buildContainer', ['git://example.test/c#abc', 'f40-candidate', {{'scratch': True, 'git_branch': SCRIPT}}])
failed = adm.makeTask('sleep', [IMG])
canceled = adm.makeTask('sleep', [1])
evil = adm.makeTask(SCRIPT, [IMG], label=IMG)
for t in (open_, closed, failed):
    assert h.host.openTask(t)['id'] == t
child = h.host.subtask('createContainer', ['git://example.test/c#abc', 'f40-candidate', 'x86_64', {{}}], closed, arch='x86_64', label='x86_64')
assert h.host.openTask(child)['id'] == child
upload(h, open_, 'x86_64.log', b'line 1\nline 2 ' + SCRIPT.encode() + b'\n')
upload(h, closed, 'osbs-build.log', b'osbs log\n')
upload(h, closed, 'x86_64.log', b'parent copy of the x86_64 log\n')
h.host.closeTask(child, ok_response({{'arch': 'x86_64'}}))
h.host.closeTask(closed, ok_response({{'repositories': ['registry.example.com/c:1-1', 'registry.example.com/c@sha256:' + 'a' * 64],
    'koji_builds': [7], 'user_warnings': ['layer 2: modified /etc/passwd owned by setup ' + SCRIPT]}}))
h.host.failTask(failed, fault_response(1005, 'build failed: ' + SCRIPT + ' ' + IMG))
adm.cancelTask(canceled)
print('RESULT ' + json.dumps({{'free': free, 'open': open_, 'closed': closed, 'child': child,
    'failed': failed, 'canceled': canceled, 'evil': evil}}))
"#
        ),
    );
    let r = result_json(&out);
    let id = |k: &str| r[k].as_i64().unwrap_or_else(|| panic!("no {k} in {r}"));

    // Every state renders, with the state span the browser test reads.
    for (k, state) in [
        ("free", "FREE"),
        ("open", "OPEN"),
        ("closed", "CLOSED"),
        ("child", "CLOSED"),
        ("failed", "FAILED"),
        ("canceled", "CANCELED"),
        ("evil", "FREE"),
    ] {
        let body = page(&hub, &format!("/koji/taskinfo?taskID={}", id(k)), 200);
        assert_contains(
            &body,
            &format!(
                "<span id=\"task-state\" class=\"state state-{}\">{state}</span>",
                state.to_lowercase()
            ),
            k,
        );
        assert_contains(&body, "<pre id=\"log\">", k);
        assert_contains(&body, "id=\"log-follow\"", k);
        assert_no_raw(&body, k);
    }

    // OPEN: owner, host, the log tail (escaped) and the script's config.
    let body = page(&hub, &format!("/koji/taskinfo?taskID={}", id("open")), 200);
    assert_contains(&body, "web1.test", "open host");
    assert_contains(&body, "kojiadmin", "open owner");
    assert_contains(
        &body,
        &format!("line 1\nline 2 {SCRIPT_ESC}\n</pre>"),
        "open log tail",
    );
    assert_contains(&body, "\"name\":\"x86_64.log\"", "log config");
    assert_contains(
        &body,
        &format!("/kojifiles/{}/x86_64.log", task_relpath(id("open"))),
        "output link",
    );

    // CLOSED buildContainer: request as a table, result pieces, children, the log selector.
    let body = page(
        &hub,
        &format!("/koji/taskinfo?taskID={}", id("closed")),
        200,
    );
    assert_contains(&body, "git://example.test/c#abc", "request src");
    assert_contains(&body, "<th>git_branch</th>", "request opts table");
    assert_contains(&body, SCRIPT_ESC, "escaped opts");
    assert_contains(
        &body,
        "value=\"registry.example.com/c:1-1\"",
        "pull spec input",
    );
    assert_contains(
        &body,
        "href=\"/koji/buildinfo?buildID=7\"",
        "koji build link",
    );
    let warnings = element(&body, "user-warnings", "</div>");
    assert_contains(warnings, "modified /etc/passwd", "warnings");
    assert_contains(
        &body,
        &format!("href=\"/koji/taskinfo?taskID={}\"", id("child")),
        "child link",
    );
    assert_contains(&body, "<option value=\"osbs-build.log\">", "log selector");
    assert_contains(
        &body,
        "<option value=\"x86_64.log\" selected>",
        "arch log first",
    );
    assert_contains(&body, "parent copy of the x86_64 log", "default log");
    let body = page(
        &hub,
        &format!("/koji/taskinfo?taskID={}&log=osbs-build.log", id("closed")),
        200,
    );
    assert_contains(&body, "<pre id=\"log\">osbs log\n</pre>", "chosen log");
    // The child names its parent.
    let body = page(&hub, &format!("/koji/taskinfo?taskID={}", id("child")), 200);
    assert_contains(
        &body,
        &format!(
            "<th>Parent</th><td><a href=\"/koji/taskinfo?taskID={0}\">{0}</a>",
            id("closed")
        ),
        "parent",
    );

    // FAILED: the fault text, escaped.
    let body = page(
        &hub,
        &format!("/koji/taskinfo?taskID={}", id("failed")),
        200,
    );
    let fault = element(&body, "task-fault", "</pre>");
    assert_contains(
        fault,
        &format!("1005: build failed: {SCRIPT_ESC} {IMG_ESC}"),
        "fault",
    );
    assert_contains(&body, IMG_ESC, "request escaped");

    // A hostile method name and label, on the task page and in the list.
    let body = page(&hub, &format!("/koji/taskinfo?taskID={}", id("evil")), 200);
    assert_contains(&body, SCRIPT_ESC, "evil method");
    assert_contains(&body, IMG_ESC, "evil label");
    for path in ["/koji/tasks", "/koji/tasks?view=flat", "/koji/"] {
        let body = page(&hub, path, 200);
        assert_contains(&body, SCRIPT_ESC, path);
        assert_no_raw(&body, path);
    }
    // Hostile query parameters are escaped where they are echoed.
    let body = page(
        &hub,
        "/koji/tasks?method=%22%27%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        200,
    );
    assert_contains(&body, &format!("value=\"{IMG_ESC}\""), "echoed method");
    assert_no_raw(&body, "echoed method");
    let body = page(
        &hub,
        "/koji/taskinfo?taskID=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        400,
    );
    assert_no_raw(&body, "bad taskID");
    assert_contains(&body, "taskID must be an integer", "bad taskID");

    // 404 and 400.
    let body = page(&hub, "/koji/taskinfo?taskID=999999", 404);
    assert_contains(&body, "No such task: 999999", "404");
    page(&hub, "/koji/taskinfo", 400);
    page(&hub, "/koji/nosuchpage", 404);
    page(&hub, "/koji/buildinfo?buildID=424242", 404);
    page(&hub, "/koji/buildinfo?buildID=x", 400);
    let body = page(
        &hub,
        &format!("/koji/taskinfo?taskID={}&log=../../etc/passwd", id("open")),
        400,
    );
    assert_contains(&body, "invalid log name", "bad log name");

    // The tasklog contract: growing log, offsets, state, done.
    let open = id("open");
    let first = b"line 1\nline 2 <script>alert(1)</script>\n".len() as i64;
    let (st, j) = tasklog(&hub, &format!("taskID={open}&name=x86_64.log&offset=0"));
    assert_eq!(st, 200, "{j}");
    assert_eq!(j["data"], format!("line 1\nline 2 {SCRIPT_RAW}\n"), "{j}");
    assert_eq!(j["offset"], first, "{j}");
    assert_eq!(j["state"], "OPEN", "{j}");
    assert_eq!(j["done"], false, "{j}");
    let (_, j) = tasklog(&hub, &format!("taskID={open}&name=x86_64.log&offset=7"));
    assert_eq!(j["data"], format!("line 2 {SCRIPT_RAW}\n"), "{j}");
    let big: String = (0..5000)
        .map(|i| format!("build line {i:05} é\n"))
        .collect();
    let out = script(
        &hub,
        &format!(
            r#"
h = host('web1.test', '{pw}')
data = b'line 1\nline 2 ' + SCRIPT.encode() + b'\n' + {big:?}.encode()
upload(h, {open}, 'x86_64.log', data)
print('RESULT ' + json.dumps({{'size': len(data)}}))
"#
        ),
    );
    let size = result_json(&out)["size"].as_i64().unwrap();
    assert!(size > 64 * 1024 + first, "{size}");
    // Read it all back in capped chunks; multi-byte characters are never split.
    let mut offset = first;
    let mut text = String::new();
    let mut reads = 0;
    loop {
        let (_, j) = tasklog(
            &hub,
            &format!("taskID={open}&name=x86_64.log&offset={offset}"),
        );
        let data = j["data"].as_str().unwrap();
        assert!(data.len() <= 64 * 1024, "chunk of {}", data.len());
        assert!(!data.contains('\u{fffd}'), "split character at {offset}");
        text.push_str(data);
        let next = j["offset"].as_i64().unwrap();
        assert_eq!(j["done"], false, "still OPEN: {j}");
        reads += 1;
        if next == offset {
            break;
        }
        offset = next;
        assert!(reads < 10, "too many reads");
    }
    assert_eq!(text, big);
    assert_eq!(offset, size);
    assert!(reads >= 3, "{reads} reads for {size} bytes");
    // The page shows only the tail, from a whole line, and continues at the end.
    let body = page(&hub, &format!("/koji/taskinfo?taskID={open}"), 200);
    let log = element(&body, "log", "</pre>");
    assert!(!log.contains("line 1\n"), "not a tail");
    assert_contains(log, "build line 04999 é\n", "tail end");
    assert!(log.len() <= 64 * 1024 + 64, "tail of {} bytes", log.len());
    assert_contains(&body, &format!("\"offset\":{size}"), "page offset");
    // Closing the task: done once everything is read.
    script(
        &hub,
        &format!(
            r#"
h = host('web1.test', '{pw}')
h.host.closeTask({open}, ok_response(None))
"#
        ),
    );
    let (_, j) = tasklog(
        &hub,
        &format!("taskID={open}&name=x86_64.log&offset={first}"),
    );
    assert_eq!(
        (j["state"].as_str(), j["done"].as_bool()),
        (Some("CLOSED"), Some(false)),
        "{j}"
    );
    let (_, j) = tasklog(
        &hub,
        &format!("taskID={open}&name=x86_64.log&offset={size}"),
    );
    assert_eq!(j["data"], "", "{j}");
    assert_eq!(j["offset"], size, "{j}");
    assert_eq!(j["done"], true, "{j}");
    // No log name (yet): only the state; a missing file reads as empty.
    let free = id("free");
    let (_, j) = tasklog(&hub, &format!("taskID={free}"));
    assert_eq!(
        (j["state"].as_str(), j["done"].as_bool()),
        (Some("FREE"), Some(false)),
        "{j}"
    );
    let (_, j) = tasklog(&hub, &format!("taskID={free}&name=s390x.log&offset=5"));
    assert_eq!(
        (j["data"].as_str(), j["offset"].as_i64()),
        (Some(""), Some(5)),
        "{j}"
    );
    let (_, j) = tasklog(&hub, &format!("taskID={}", id("canceled")));
    assert_eq!(j["done"], true, "{j}");
    // Errors.
    let (st, j) = tasklog(&hub, "taskID=999999&name=x.log");
    assert_eq!(st, 404, "{j}");
    assert_eq!(tasklog(&hub, "taskID=abc").0, 400);
    assert_eq!(tasklog(&hub, "name=x.log").0, 400);
    assert_eq!(tasklog(&hub, &format!("taskID={open}&offset=-1")).0, 400);
    assert_eq!(
        tasklog(&hub, &format!("taskID={open}&name=../../x&offset=0")).0,
        400
    );

    // Nothing on these pages writes: the pages are GET only.
    let (st, _, _) = hub.raw_post("/koji/tasks", &[], b"x");
    assert_eq!(st, 405);
}

#[test]
fn task_list_paging_filters_and_nesting() {
    let Some(hub) = Hub::start() else { return };
    let pw = common::register_host(&hub, "web2.test", &["x86_64"]);
    let out = script(
        &hub,
        &format!(
            r#"
adm = admin()
h = host('web2.test', '{pw}')
ids = [adm.makeTask('sleep', [i]) for i in range(58)]
noop = [adm.makeTask('noop', []) for i in range(2)]
h.host.openTask(noop[-1])
kids = [h.host.subtask('createContainer', [], noop[-1], arch='x86_64', label=a) for a in ('a', 'b')]
h.host.openTask(kids[0])
grandkid = h.host.subtask('createContainer', [], kids[0], label='g')
assert h.host.openTask(ids[0])['id'] == ids[0]
h.host.closeTask(ids[0], ok_response(1))
print('RESULT ' + json.dumps({{'ids': ids, 'noop': noop, 'kids': kids, 'grandkid': grandkid,
    'host': h.host.getID(), 'channel': adm.getChannel('default')['id']}}))
"#
        ),
    );
    let r = result_json(&out);
    let ids: Vec<i64> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let noop: Vec<i64> = r["noop"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let kids: Vec<i64> = r["kids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let grandkid = r["grandkid"].as_i64().unwrap();
    let host = r["host"].as_i64().unwrap();
    let row = |id: i64| format!("data-task-id=\"{id}\"");
    let rows = |body: &str| body.matches("data-task-id=").count();

    // Page 1: 60 top-level tasks, the newest first, children nested right after their parent.
    let body = page(&hub, "/koji/tasks", 200);
    let table = element(&body, "tasks", "</table>");
    assert_contains(&body, "<span id=\"tasks-total\">60</span>", "total");
    assert_eq!(rows(table), 50 + 3, "50 top-level + 3 descendants");
    let pos = |id: i64| {
        table
            .find(&row(id))
            .unwrap_or_else(|| panic!("task {id} not on page 1"))
    };
    assert!(pos(noop[1]) < pos(kids[0]));
    assert!(pos(kids[0]) < pos(grandkid));
    assert!(pos(grandkid) < pos(kids[1]));
    assert!(pos(kids[1]) < pos(noop[0]));
    assert!(pos(noop[0]) < pos(ids[57]));
    assert!(pos(ids[57]) < pos(ids[56]));
    assert_contains(
        table,
        &format!("<tr class=\"child\" {}", row(kids[0])),
        "child row",
    );
    assert_contains(
        table,
        &format!("<tr class=\"child2\" {}", row(grandkid)),
        "grandchild row",
    );
    assert!(
        !table.contains(&row(ids[7])),
        "page 1 holds 50 top-level tasks"
    );
    assert_contains(
        &body,
        "<span class=\"state state-open\">OPEN</span>",
        "open",
    );
    assert_contains(
        &body,
        "<span class=\"state state-free\">FREE</span>",
        "free",
    );
    assert_contains(
        &body,
        "rel=\"next\" href=\"/koji/tasks?order=-id&amp;start=50\"",
        "next",
    );
    // Page 2.
    let body = page(&hub, "/koji/tasks?start=50", 200);
    let table = element(&body, "tasks", "</table>");
    assert_eq!(rows(table), 10);
    assert!(table.contains(&row(ids[0])) && table.contains(&row(ids[9])));
    assert_contains(&body, "<span id=\"tasks-range\">51–60</span>", "range");
    assert_contains(
        &body,
        "<span class=\"state state-closed\">CLOSED</span>",
        "closed",
    );
    assert_contains(&body, "rel=\"prev\"", "prev");
    assert!(!body.contains("rel=\"next\""));
    // Oldest first.
    let body = page(&hub, "/koji/tasks?order=id", 200);
    let table = element(&body, "tasks", "</table>");
    assert!(table.find(&row(ids[0])).unwrap() < table.find(&row(ids[1])).unwrap());

    // Filters.
    let body = page(&hub, "/koji/tasks?state=CLOSED", 200);
    let table = element(&body, "tasks", "</table>");
    assert_eq!(rows(table), 1, "{table}");
    assert!(table.contains(&row(ids[0])));
    let body = page(&hub, &format!("/koji/tasks?hostID={host}"), 200);
    assert_eq!(
        rows(element(&body, "tasks", "</table>")),
        5,
        "2 top-level + 3 descendants"
    );
    let body = page(&hub, &format!("/koji/tasks?hostID={host}&view=flat"), 200);
    assert_eq!(rows(element(&body, "tasks", "</table>")), 3);
    let body = page(&hub, "/koji/tasks?method=noop", 200);
    assert_eq!(
        rows(element(&body, "tasks", "</table>")),
        5,
        "2 noop + 3 descendants"
    );
    let body = page(&hub, "/koji/tasks?method=noop&view=flat", 200);
    assert_eq!(rows(element(&body, "tasks", "</table>")), 2);
    let body = page(&hub, "/koji/tasks?method=createContainer&view=flat", 200);
    assert_eq!(rows(element(&body, "tasks", "</table>")), 3);
    let body = page(
        &hub,
        "/koji/tasks?state=active&owner=kojiadmin&view=flat",
        200,
    );
    assert_contains(&body, "<span id=\"tasks-total\">62</span>", "active");
    let body = page(
        &hub,
        &format!("/koji/tasks?channelID={}&state=free", r["channel"]),
        200,
    );
    assert_contains(&body, "<span id=\"tasks-total\">58</span>", "channel");
    let body = page(&hub, "/koji/tasks?state=FAILED", 200);
    assert_contains(&body, "No tasks", "none failed");
    // Paging links keep the filters.
    let body = page(&hub, "/koji/tasks?state=FREE&view=flat", 200);
    assert_contains(
        &body,
        "href=\"/koji/tasks?state=FREE&amp;view=flat&amp;order=-id&amp;start=50\"",
        "next keeps filters",
    );

    // Bad parameters: 400 pages naming the parameter.
    for (q, text) in [
        ("state=BOGUS", "state must be"),
        ("owner=nosuchuser", "no such user"),
        ("channelID=abc", "channelID must be an integer"),
        ("hostID=1.5", "hostID must be an integer"),
        ("start=-1", "start must not be negative"),
        ("start=x", "start must be an integer"),
        ("order=bogus", "order must be one of"),
        ("view=3d", "view must be tree or flat"),
    ] {
        let body = page(&hub, &format!("/koji/tasks?{q}"), 400);
        assert_contains(&body, text, q);
    }
}

#[test]
fn build_page_and_hosts_page() {
    let Some(hub) = Hub::start() else { return };
    let host_pw = common::register_host(&hub, "web3.test", &["x86_64", "aarch64"]);
    let osbs_pw = common::random_password();
    hub.add_user_cli("osbs", &osbs_pw, false);
    hub.koji_ok(&["grant-cg-access", "--new", "osbs", "atomic-reactor"]);
    hub.koji_ok(&["add-tag", "images-candidate"]);
    hub.koji_ok(&[
        "add-pkg",
        "--owner",
        "kojiadmin",
        "images-candidate",
        "webimage-container",
    ]);
    // The parent and its x86_64 child, which holds the per-layer report.
    let out = script(
        &hub,
        &format!(
            r#"
adm = admin()
h = host('web3.test', '{host_pw}')
h.host.updateHost(1.5, True)
parent = adm.makeTask('buildContainer', ['git://example.test/webimage#0123', 'images-candidate', {{}}])
h.host.openTask(parent)
child = h.host.subtask('createContainer', [], parent, arch='x86_64', label='x86_64')
print('RESULT ' + json.dumps({{'parent': parent, 'child': child}}))
"#
        ),
    );
    let r = result_json(&out);
    let (parent, child) = (r["parent"].as_i64().unwrap(), r["child"].as_i64().unwrap());
    let report = serde_json::json!({
        "schema_version": 1,
        "source": {"kind": "docker-archive", "reference": "image.tar"},
        "package_count": 2,
        "components": [],
        "layers": [
            {"index": 0, "diff_id": "sha256:aa", "created_by": "ADD base.tar /", "compression": "gzip",
             "rpmdb_changed": true, "package_count": 1,
             "packages": {"added": [{"nevra": "bash-5.2.26-3.fc40.x86_64", "name": "bash", "epoch": null,
                 "version": "5.2.26", "release": "3.fc40", "arch": "x86_64", "evr": "5.2.26-3.fc40"}],
                 "removed": [], "upgraded": [], "downgraded": [], "reinstalled": []},
             "drift": [], "warnings": []},
            {"index": 1, "diff_id": "sha256:bb", "created_by": format!("RUN echo {SCRIPT_RAW}"), "compression": "gzip",
             "rpmdb_changed": true, "package_count": 2,
             "packages": {"added": [{"nevra": "libfoo-2:1.0-7.fc40.x86_64", "name": "libfoo", "epoch": 2,
                 "version": "1.0", "release": "7.fc40", "arch": "x86_64", "evr": "2:1.0-7.fc40"}],
                 "removed": [], "upgraded": [{"name": "bash",
                   "from": {"nevra": "bash-5.2.26-3.fc40.x86_64", "name": "bash", "epoch": null, "version": "5.2.26",
                            "release": "3.fc40", "arch": "x86_64", "evr": "5.2.26-3.fc40"},
                   "to": {"nevra": "bash-5.2.26-4.fc40.x86_64", "name": "bash", "epoch": null, "version": "5.2.26",
                          "release": "4.fc40", "arch": "x86_64", "evr": "5.2.26-4.fc40"}}],
                 "downgraded": [], "reinstalled": []},
             "drift": [{"path": "/etc/passwd", "package": "setup-2.14-1.fc40.noarch", "change": "modified",
                        "digest_mismatch": true, "config": true}],
             "warnings": [IMG_RAW]}
        ]
    });
    let dir = hub.data_dir().join("topdir").join(task_relpath(child));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("x86_64-rpm-manifest.json"),
        serde_json::to_vec(&report).unwrap(),
    )
    .unwrap();

    // The import, shaped as the builder's (tests/cg_import.rs has the full story).
    let out = script(
        &hub,
        &format!(
            r#"
PARENT, CHILD = {parent}, {child}
CG = 'atomic-reactor'
osbs = session('osbs', '{osbs_pw}')
rsv = osbs.CGInitBuild(CG, {{'name': 'webimage-container', 'version': '1.0', 'release': '1'}})
digest = hashlib.sha256(b'config').hexdigest()
image = os.path.join(WORK, 'docker-image-%s.x86_64.tar.gz' % digest)
with tarfile.open(image, 'w:gz') as t:
    info = tarfile.TarInfo('README')
    text = b'placeholder\n'
    info.size = len(text)
    t.addfile(info, io.BytesIO(text))
data = open(image, 'rb').read()
components = [
    {{'type': 'rpm', 'name': 'bash', 'version': '5.2.26', 'release': '4.fc40', 'arch': 'x86_64',
     'sigmd5': 'a1b2c3d4e5f60718293a4b5c6d7e8f90', 'signature': 'a15b79cc3aa4c3b6', 'module': None, 'epoch': None}},
    {{'type': 'rpm', 'name': 'libfoo', 'version': '1.0', 'release': '7.fc40', 'arch': 'x86_64',
     'sigmd5': '0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'signature': None, 'module': None, 'epoch': 2}},
]
out = {{'buildroot_id': 'x86_64-%d' % CHILD, 'filename': os.path.basename(image), 'filesize': len(data),
       'checksum': hashlib.md5(data).hexdigest(), 'checksum_type': 'md5', 'arch': 'x86_64',
       'type': 'docker-image', 'components': components,
       'extra': {{'image': {{'arch': 'x86_64'}},
                 'docker': {{'id': 'sha256:' + digest,
                            'repositories': ['registry.example.com/webimage:unique-x86_64', 'registry.example.com/webimage@sha256:' + '2' * 64, IMG],
                            'layer_sizes': [], 'tags': ['unique-x86_64'],
                            'digests': {{'application/vnd.docker.distribution.manifest.v2+json': 'sha256:' + '2' * 64}}}},
                 'containerbuild': {{'rpm_report': 'x86_64-rpm-manifest.json'}}}}}}
md = {{'metadata_version': 0,
      'build': {{'name': 'webimage-container', 'version': '1.0', 'release': '1', 'build_id': rsv['build_id'],
                'source': 'git://example.test/webimage#0123' + SCRIPT, 'start_time': 1700000000,
                'end_time': 1700000300, 'owner': 'kojiadmin',
                'extra': {{'image': {{'index': {{'pull': ['registry.example.com/webimage@sha256:' + '9' * 64,
                                                        'registry.example.com/webimage:1.0-1'],
                                                'tags': ['1.0-1'], 'floating_tags': [], 'unique_tags': [], 'digests': {{}}}}}},
                          'container_koji_task_id': PARENT, 'submitter': 'osbs'}}}},
      'buildroots': [{{'id': 'x86_64-%d' % CHILD, 'host': {{'os': None, 'arch': 'x86_64'}},
                      'content_generator': {{'name': CG, 'version': '0.1.0'}},
                      'container': {{'type': 'none', 'arch': 'x86_64'}}, 'components': [],
                      'tools': [{{'name': 'containerbuild', 'version': '0.1.0'}}]}}],
      'output': [out]}}
serverdir = unique_path('koji-upload')
osbs.uploadWrapper(image, serverdir)
mdpath = os.path.join(WORK, 'metadata.json')
with open(mdpath, 'w') as f:
    json.dump(md, f)
osbs.uploadWrapper(mdpath, serverdir)
b = osbs.CGImport('metadata.json', serverdir, token=rsv['token'])
a = osbs.listArchives(buildID=b['id'])[0]
assert a['extra']['containerbuild'] == {{'rpm_report': 'x86_64-rpm-manifest.json'}}, a
print('RESULT ' + json.dumps({{'build': b['id'], 'archive': a['id']}}))
"#
        ),
    );
    let r = result_json(&out);
    let build = r["build"].as_i64().unwrap();

    let body = page(&hub, &format!("/koji/buildinfo?buildID={build}"), 200);
    assert_no_raw(&body, "buildinfo");
    assert_contains(
        &body,
        "<span id=\"build-nvr\">webimage-container-1.0-1</span>",
        "nvr",
    );
    assert_contains(
        &body,
        "<span id=\"build-state\" class=\"state state-complete\">COMPLETE</span>",
        "state",
    );
    assert_contains(
        &body,
        &format!("git://example.test/webimage#0123{SCRIPT_ESC}"),
        "source",
    );
    assert_contains(
        &body,
        &format!("href=\"/koji/taskinfo?taskID={parent}\""),
        "task link",
    );
    assert_contains(
        &body,
        "value=\"registry.example.com/webimage:1.0-1\"",
        "index pull spec",
    );
    assert_contains(
        &body,
        "value=\"registry.example.com/webimage:unique-x86_64\"",
        "archive pull spec",
    );
    assert_contains(&body, &format!("value=\"{IMG_ESC}\""), "hostile repository");
    assert_contains(&body, &format!("sha256:{}", "2".repeat(64)), "digest");
    let rpms = element(&body, "rpms", "</table>");
    assert_contains(rpms, "<td>bash</td>", "bash");
    assert_contains(
        rpms,
        "<td>libfoo</td><td>2</td><td>1.0</td><td>7.fc40</td>",
        "libfoo",
    );
    assert_contains(rpms, "a15b79cc3aa4c3b6", "signature");
    assert_contains(&body, "<input type=\"search\" id=\"rpm-filter\"", "filter");
    let layers = element(&body, "layers", "</table>");
    assert_contains(layers, "modified <code>/etc/passwd</code>", "drift");
    assert_contains(layers, IMG_ESC, "layer warning");
    assert!(
        layers.find("/etc/passwd").unwrap() < layers.find("<table").unwrap(),
        "warnings before the layer table"
    );
    assert_contains(layers, "bash-5.2.26-3.fc40.x86_64", "added in layer 0");
    assert_contains(layers, "bash 5.2.26-3.fc40 → 5.2.26-4.fc40", "upgrade");
    assert_contains(layers, &format!("RUN echo {SCRIPT_ESC}"), "created_by");
    assert_contains(
        layers,
        &format!(
            "/kojifiles/{}/x86_64-rpm-manifest.json",
            task_relpath(child)
        ),
        "report link",
    );
    // The overview lists it.
    let body = page(&hub, "/koji/", 200);
    assert_contains(
        &body,
        &format!("href=\"/koji/buildinfo?buildID={build}\">webimage-container-1.0-1</a>"),
        "recent builds",
    );
    assert_contains(&body, "id=\"hosts\"", "overview hosts");

    // Hosts: ready, enabled, load/capacity, arches, channels, last update.
    hub.koji_ok(&["disable-host", "web3.test"]);
    let body = page(&hub, "/koji/hosts", 200);
    let table = element(&body, "hosts", "</table>");
    assert_contains(table, ">web3.test</a>", "name");
    assert_contains(
        table,
        "<td><span class=\"yes\">yes</span></td><td><span class=\"no\">no</span></td><td>1.5 / 2.0</td>\
         <td>x86_64 aarch64</td><td>default, container</td>",
        "host row",
    );
    let year = table.contains("<td>20");
    assert!(year, "last update time in {table}");
}
