//! Task output and task queries through the stock koji 1.36.1 client: listTaskOutput,
//! downloadTaskOutput, `koji download-logs` / `watch-logs`, `/kojifiles/`, getTaskResult,
//! `koji watch-task`, listTasks filters and queryOpts, descendents, and the cancel rules.
//!
//! Tasks cannot be created through the API yet, so tests write them straight into the store
//! (`Store::write` + `tasks::create` / `tasks::finish`) while the hub runs; SQLite in WAL mode
//! allows the concurrent writer. Output files are written below the hub's topdir, where a
//! builder would upload them.

mod common;

use common::assert_contains;

use std::path::PathBuf;

use common::{ADMIN, Hub, header, raw_http};
use containerbuild::hub::task_relpath;
use containerbuild::store::users::{self, UserRef};
use containerbuild::store::{Store, StoreError, records, tasks};
use containerbuild::xmlrpc::wire::{write_call, write_fault, write_response};
use containerbuild::xmlrpc::{Fault, FaultCode, Struct, Value};

/// Python prelude: `anon()` and `sess(user, password)` clients and `expect(cls, text, fn, ...)`,
/// which requires exactly exception class `cls` with message `text`.
const PY_PRELUDE: &str = r#"
import os, sys, time, koji
URL = os.environ['KOJI_URL']
ADMIN = os.environ['KOJI_USER']
ADMIN_PW = os.environ['KOJI_PASSWORD']

def anon():
    return koji.ClientSession(URL, opts={'max_retries': 0, 'retry_interval': 0})

def sess(user=ADMIN, password=ADMIN_PW):
    s = koji.ClientSession(URL, opts={'user': user, 'password': password,
                                      'max_retries': 0, 'retry_interval': 0})
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

def check(got, want, what=''):
    if got != want:
        raise SystemExit('%s: got %r, want %r' % (what, got, want))
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

fn open_store(hub: &Hub) -> Store {
    Store::open(&hub.data_dir()).expect("open store")
}

fn user_id(hub: &Hub, name: &str) -> i64 {
    open_store(hub)
        .read(|c| -> Result<Option<i64>, StoreError> {
            Ok(users::get(c, &UserRef::Name(name))?.map(|u| u.id))
        })
        .expect("read user")
        .unwrap_or_else(|| panic!("no user {name}"))
}

/// A task to insert: the `<methodCall>` request is built from `method` and `params`.
struct NewTask<'a> {
    method: &'a str,
    arch: &'a str,
    owner: i64,
    parent: Option<i64>,
    params: Vec<Value>,
}

impl<'a> NewTask<'a> {
    fn new(method: &'a str, arch: &'a str, owner: i64) -> Self {
        NewTask {
            method,
            arch,
            owner,
            parent: None,
            params: vec![Value::str("x")],
        }
    }

    fn parent(mut self, p: i64) -> Self {
        self.parent = Some(p);
        self
    }

    fn params(mut self, p: Vec<Value>) -> Self {
        self.params = p;
        self
    }
}

fn insert(hub: &Hub, t: NewTask<'_>) -> i64 {
    let request_xml = write_call(t.method, &t.params);
    open_store(hub)
        .write(|tx| -> Result<i64, StoreError> {
            let channel_id =
                records::channel_id(tx, "container")?.expect("container channel exists");
            tasks::create(
                tx,
                &tasks::NewTask {
                    method: t.method.into(),
                    arch: t.arch.into(),
                    owner: t.owner,
                    channel_id,
                    priority: 20,
                    parent: t.parent,
                    label: None,
                    request_xml,
                },
            )
        })
        .expect("create task")
}

/// The usual container build request: `[source, target, opts]`.
fn build_request() -> Vec<Value> {
    vec![
        Value::str("git://example.test/containers/foo#0123456789abcdef"),
        Value::str("f40-candidate"),
        Value::Struct(Struct::new().with("scratch", true)),
    ]
}

fn finish(hub: &Hub, id: i64, state: i64, result_xml: &str) {
    open_store(hub)
        .write(|tx| tasks::finish(tx, id, state, result_xml))
        .expect("finish task");
}

/// Marks a task OPEN (there is no store call for starting a task without a host yet).
fn set_open(hub: &Hub, id: i64) {
    open_store(hub)
        .write(|tx| -> Result<(), StoreError> {
            tx.execute(
                "UPDATE tasks SET state = ?1 WHERE id = ?2",
                [tasks::OPEN, id],
            )
            .map_err(StoreError::from)?;
            Ok(())
        })
        .expect("open task");
}

fn task_dir(hub: &Hub, id: i64) -> PathBuf {
    hub.data_dir().join("topdir").join(task_relpath(id))
}

/// A few KB of log text.
fn log_text() -> String {
    (1..=120)
        .map(|i| format!("{i:04}: step {i} of the container build, all is well\n"))
        .collect()
}

/// Writes `x86_64.log`, `sub/dir/result.json` and `sub/dir/nested.log` for a task.
fn write_output(hub: &Hub, id: i64) -> String {
    let dir = task_dir(hub, id);
    std::fs::create_dir_all(dir.join("sub/dir")).expect("create task dir");
    let log = log_text();
    std::fs::write(dir.join("x86_64.log"), &log).expect("write log");
    std::fs::write(
        dir.join("sub/dir/result.json"),
        "{\"image\": \"registry.example.test/foo:1\"}\n",
    )
    .expect("write json");
    std::fs::write(dir.join("sub/dir/nested.log"), "nested log line\n").expect("write nested");
    log
}

// ---------------------------------------------------------------------------------------------
// 1. Output files

#[test]
fn list_and_download_task_output() {
    let hub = hub!();
    let admin = user_id(&hub, ADMIN);
    let id = insert(&hub, NewTask::new("buildContainer", "noarch", admin));
    let log = write_output(&hub, id);
    let log_path = task_dir(&hub, id).join("x86_64.log");
    let log_path = log_path.to_str().expect("utf-8 path");

    py(
        &hub,
        &format!(
            r#"
ID = {id}
data = open({log_path:?}, 'rb').read()
s = anon()
check(sorted(s.listTaskOutput(ID)), ['sub/dir/nested.log', 'sub/dir/result.json', 'x86_64.log'], 'listTaskOutput')
check(s.listTaskOutput(ID, all_volumes=True),
      {{'x86_64.log': ['DEFAULT'], 'sub/dir/result.json': ['DEFAULT'], 'sub/dir/nested.log': ['DEFAULT']}},
      'all_volumes')
st = s.listTaskOutput(ID, stat=True)
check(sorted(st), ['sub/dir/nested.log', 'sub/dir/result.json', 'x86_64.log'], 'stat keys')
check(st['x86_64.log']['st_size'], str(len(data)), 'st_size is a string')
check(sorted(st['x86_64.log']), ['st_atime', 'st_ctime', 'st_mtime', 'st_size'], 'stat fields')
for k in ('st_atime', 'st_ctime', 'st_mtime'):
    assert isinstance(st['x86_64.log'][k], float), st
    assert abs(st['x86_64.log'][k] - time.time()) < 3600, st
both = s.listTaskOutput(ID, stat=True, all_volumes=True)
check(sorted(both['x86_64.log']), ['DEFAULT'], 'stat+all_volumes')
check(both['x86_64.log']['DEFAULT']['st_size'], str(len(data)), 'nested st_size')
check(both['sub/dir/result.json']['DEFAULT']['st_size'], str(len(b'{{"image": "registry.example.test/foo:1"}}\n')), 'json size')

# An unknown task has no output; strict=True says so.
check(s.listTaskOutput(999999), [], 'no output')
expect(koji.GenericError, "Task doesn't exist", s.listTaskOutput, 999999, strict=True)

check(s.downloadTaskOutput(ID, 'x86_64.log'), data, 'whole file')
check(s.downloadTaskOutput(ID, 'x86_64.log', offset=10, size=20), data[10:30], 'offset 10 size 20')
check(s.downloadTaskOutput(ID, 'x86_64.log', offset=len(data) + 5, size=20), b'', 'past EOF')
check(s.downloadTaskOutput(ID, 'x86_64.log', offset=len(data)), b'', 'at EOF')
check(s.downloadTaskOutput(ID, 'x86_64.log', offset=-30), data[-30:], 'negative offset')
check(s.downloadTaskOutput(ID, 'x86_64.log', offset=-30, size=10), data[-30:-20], 'negative offset+size')
check(s.downloadTaskOutput(ID, 'sub/dir/result.json'), b'{{"image": "registry.example.test/foo:1"}}\n', 'nested file')
check(s.downloadTaskOutput(ID, 'x86_64.log', volume='DEFAULT', size=4), data[:4], 'DEFAULT volume')
expect(koji.GenericError, 'Invalid file name: ../x', s.downloadTaskOutput, ID, '../x')
expect(koji.GenericError, 'Invalid file name: sub/../../x', s.downloadTaskOutput, ID, 'sub/../../x')
expect(koji.GenericError, 'no file "nope.log" output by task %d' % ID, s.downloadTaskOutput, ID, 'nope.log')
expect(koji.GenericError, 'no file "sub/dir" output by task %d' % ID, s.downloadTaskOutput, ID, 'sub/dir')
"#
        ),
    );

    // download-logs / watch-logs want a finished task.
    finish(&hub, id, tasks::CLOSED, &write_response(&Value::Nil));
    let dest = hub.dir().join("logs-out");
    let dest_s = dest.to_str().expect("utf-8 path");
    let ids = id.to_string();
    let (code, out, err) = hub.koji_noauth(&["download-logs", "-d", dest_s, &ids]);
    assert_eq!(code, 0, "download-logs\nstdout: {out}\nstderr: {err}");
    let task_logs = dest.join(format!("noarch-{id}"));
    assert_contains(
        &out,
        &format!("Downloading: {}", task_logs.join("x86_64.log").display()),
        "download-logs output",
    );
    let got = std::fs::read_to_string(task_logs.join("x86_64.log")).expect("downloaded log");
    assert_eq!(got, log, "downloaded x86_64.log differs");
    assert_eq!(
        std::fs::read_to_string(task_logs.join("sub/dir/nested.log")).expect("nested log"),
        "nested log line\n"
    );
    assert!(
        !task_logs.join("sub/dir/result.json").exists(),
        "download-logs fetches only *.log"
    );

    let (code, out, err) = hub.koji_noauth(&["watch-logs", &ids]);
    assert_eq!(code, 0, "watch-logs\nstdout: {out}\nstderr: {err}");
    // (The CLI writes these headers through the text layer and the log bytes straight to the
    // binary buffer, so in a captured stdout the headers come last.)
    assert_contains(
        &out,
        &format!("==> {id}:DEFAULT:x86_64.log: <==\n"),
        "watch-logs",
    );
    assert_contains(&out, &log, "watch-logs prints the whole log");
    assert_contains(&out, "nested log line\n", "watch-logs nested log");

    // /kojifiles serves the same bytes, with HEAD and ranges.
    let rel = format!("/kojifiles/{}/x86_64.log", task_relpath(id));
    let (status, headers, body) =
        raw_http(hub.addr(), "HEAD", &rel, &[], b"").expect("HEAD kojifiles");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert_eq!(
        header(&headers, "content-length"),
        Some(log.len().to_string().as_str())
    );
    assert_eq!(header(&headers, "koji-version"), Some("1.36.1"));
    let (status, _, body) = hub.raw_get(&rel);
    assert_eq!(status, 200);
    assert_eq!(body, log);
    let (status, headers, body) =
        raw_http(hub.addr(), "GET", &rel, &[("Range", "bytes=5-")], b"").expect("ranged GET");
    assert_eq!(status, 206);
    assert_eq!(body, log[5..]);
    assert_eq!(
        header(&headers, "content-range"),
        Some(format!("bytes 5-{}/{}", log.len() - 1, log.len()).as_str())
    );
    let (status, _, body) =
        raw_http(hub.addr(), "GET", &rel, &[("Range", "bytes=-7")], b"").expect("suffix range");
    assert_eq!(status, 206);
    assert_eq!(body, log[log.len() - 7..]);
    let (status, _, _) = raw_http(
        hub.addr(),
        "GET",
        &rel,
        &[("Range", &format!("bytes={}-", log.len() + 10))],
        b"",
    )
    .expect("unsatisfiable range");
    assert_eq!(status, 416);

    // Nothing outside the topdir is reachable; the database sits right next to it.
    assert!(hub.data_dir().join("containerbuild.sqlite").exists());
    // From the task's directory, four levels below the topdir, five `..` reach the data dir.
    let dir = task_relpath(id);
    for escape in [
        "/kojifiles/../containerbuild.sqlite".to_string(),
        format!("/kojifiles/{dir}/../../../../../containerbuild.sqlite"),
        "/kojifiles/%2e%2e/containerbuild.sqlite".to_string(),
        "/kojifiles/..%2fcontainerbuild.sqlite".to_string(),
        format!(
            "/kojifiles/{dir}/{}containerbuild.sqlite",
            "%2e%2e%2f".repeat(5)
        ),
        "/kojifiles//etc/passwd".to_string(),
        format!("/kojifiles/{dir}"),
    ] {
        let (status, _, body) = hub.raw_get(&escape);
        assert_eq!(
            status, 404,
            "{escape} must be 404, got {status}: {body:.200}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Results

#[test]
fn task_results_and_faults() {
    let hub = hub!();
    let admin = user_id(&hub, ADMIN);
    let ok_id = insert(
        &hub,
        NewTask::new("buildContainer", "noarch", admin).params(build_request()),
    );
    let result = Value::Struct(
        Struct::new()
            .with(
                "repositories",
                Value::Array(vec![Value::str("registry.example.test/foo:1")]),
            )
            .with("koji_builds", Value::Array(vec![Value::Int(7)])),
    );
    finish(&hub, ok_id, tasks::CLOSED, &write_response(&result));

    let failed_id = insert(
        &hub,
        NewTask::new("buildContainer", "noarch", admin).params(build_request()),
    );
    finish(
        &hub,
        failed_id,
        tasks::FAILED,
        &write_fault(&Fault::new(FaultCode::Build, "build failed: boom")),
    );
    let free_id = insert(&hub, NewTask::new("buildContainer", "noarch", admin));
    let open_id = insert(&hub, NewTask::new("buildContainer", "noarch", admin));
    set_open(&hub, open_id);

    py(
        &hub,
        &format!(
            r#"
s = anon()
check(s.getTaskResult({ok_id}), {{'repositories': ['registry.example.test/foo:1'], 'koji_builds': [7]}}, 'closed result')
e = expect(koji.BuildError, 'build failed: boom', s.getTaskResult, {failed_id})
check(e.faultCode, 1005, 'fault code')
check(s.getTaskResult({failed_id}, raise_fault=False), {{'faultCode': 1005, 'faultString': 'build failed: boom'}}, 'raise_fault=False')
expect(koji.GenericError, 'Task {free_id} is not finished', s.getTaskResult, {free_id})
expect(koji.GenericError, 'Task {open_id} is not finished', s.getTaskResult, {open_id})
expect(koji.GenericError, 'No such task', s.getTaskResult, 999999)
check(s.taskFinished({ok_id}), True, 'taskFinished closed')
check(s.taskFinished({failed_id}), True, 'taskFinished failed')
check(s.taskFinished({open_id}), False, 'taskFinished open')
"#
        ),
    );

    let out = hub.koji_ok(&["call", "getTaskResult", &ok_id.to_string()]);
    assert_contains(&out, "'koji_builds': [7]", "koji call getTaskResult");
    let (code, _, err) = hub.koji(&["call", "getTaskResult", &failed_id.to_string()]);
    assert_eq!(code, 1);
    assert_contains(
        &err,
        "BuildError: build failed: boom",
        "getTaskResult of a failed task",
    );
    let out = hub.koji_ok(&[
        "call",
        "getTaskResult",
        &failed_id.to_string(),
        "raise_fault=False",
    ]);
    assert_contains(&out, "'faultCode': 1005", "raise_fault=False");
    assert_contains(
        &out,
        "'faultString': 'build failed: boom'",
        "raise_fault=False",
    );
    let (code, _, err) = hub.koji(&["call", "getTaskResult", &free_id.to_string()]);
    assert_eq!(code, 1);
    assert_contains(
        &err,
        &format!("GenericError: Task {free_id} is not finished"),
        "getTaskResult of a free task",
    );

    // watch-task reports the failure and exits 1; a closed task exits 0.
    let (code, out, err) = hub.koji(&["watch-task", &failed_id.to_string()]);
    assert_eq!(code, 1, "watch-task failed\nstdout: {out}\nstderr: {err}");
    assert_contains(
        &out,
        "FAILED: BuildError: build failed: boom",
        "watch-task of a failed task",
    );
    let (code, out, err) = hub.koji(&["watch-task", &ok_id.to_string()]);
    assert_eq!(code, 0, "watch-task closed\nstdout: {out}\nstderr: {err}");
    assert_contains(&out, ": closed", "watch-task of a closed task");

    // download-logs of a failed task writes task_failed.log from the fault.
    let dest = hub.dir().join("failed-logs");
    let (code, out, err) = hub.koji_noauth(&[
        "download-logs",
        "-d",
        dest.to_str().expect("utf-8"),
        &failed_id.to_string(),
    ]);
    assert_eq!(code, 0, "download-logs\nstdout: {out}\nstderr: {err}");
    let text = std::fs::read_to_string(
        dest.join(format!("noarch-{failed_id}"))
            .join("task_failed.log"),
    )
    .expect("task_failed.log");
    assert_contains(&text, "BuildError: build failed: boom", "task_failed.log");
}

// ---------------------------------------------------------------------------------------------
// 3. listTasks, 4. descendents

struct Family {
    /// FREE buildContainer/noarch, admin, top-level.
    root: i64,
    /// OPEN buildArch/x86_64, admin, child of root.
    child_a: i64,
    /// CLOSED buildArch/aarch64, alice, child of root.
    child_b: i64,
    /// FREE createContainer/x86_64, admin, child of child_a.
    grandchild: i64,
    /// FAILED buildContainer/noarch, alice, top-level.
    failed: i64,
    /// CANCELED newRepo/noarch, admin, top-level.
    canceled: i64,
}

fn family(hub: &Hub, admin: i64, alice: i64) -> Family {
    let root = insert(
        hub,
        NewTask::new("buildContainer", "noarch", admin).params(build_request()),
    );
    let child_a = insert(hub, NewTask::new("buildArch", "x86_64", admin).parent(root));
    set_open(hub, child_a);
    let child_b = insert(
        hub,
        NewTask::new("buildArch", "aarch64", alice).parent(root),
    );
    finish(hub, child_b, tasks::CLOSED, &write_response(&Value::Nil));
    let grandchild = insert(
        hub,
        NewTask::new("createContainer", "x86_64", admin).parent(child_a),
    );
    let failed = insert(
        hub,
        NewTask::new("buildContainer", "noarch", alice).params(build_request()),
    );
    finish(
        hub,
        failed,
        tasks::FAILED,
        &write_fault(&Fault::new(FaultCode::Build, "build failed: boom")),
    );
    let canceled = insert(hub, NewTask::new("newRepo", "noarch", admin));
    open_store(hub)
        .write(|tx| tasks::cancel(tx, canceled, true))
        .expect("cancel");
    Family {
        root,
        child_a,
        child_b,
        grandchild,
        failed,
        canceled,
    }
}

#[test]
fn list_tasks_filters_and_query_opts() {
    let hub = hub!();
    hub.add_user_cli("alice", &common::random_password(), false);
    let admin = user_id(&hub, ADMIN);
    let alice = user_id(&hub, "alice");
    let f = family(&hub, admin, alice);
    let Family {
        root,
        child_a,
        child_b,
        grandchild,
        failed,
        canceled,
    } = f;

    py(
        &hub,
        &format!(
            r#"
s = anon()
ROOT, A, B, G, FAILED, CANCELED = {root}, {child_a}, {child_b}, {grandchild}, {failed}, {canceled}
ADMIN_ID, ALICE_ID = {admin}, {alice}
ALL = [ROOT, A, B, G, FAILED, CANCELED]

def ids(opts=None, queryOpts=None):
    return sorted(t['id'] for t in s.listTasks(opts, queryOpts))

check(ids(), ALL, 'no filter')
check(ids({{'state': [0]}}), [ROOT, G], 'state FREE')
check(ids({{'state': [1, 2]}}), [A, B], 'state OPEN/CLOSED')
check(ids({{'not_state': [0, 1]}}), [B, FAILED, CANCELED], 'not_state')
check(ids({{'method': 'buildArch'}}), [A, B], 'method')
check(ids({{'parent': None}}), [ROOT, FAILED, CANCELED], 'parent None')
check(ids({{'not_parent': None}}), [A, B, G], 'not_parent None')
check(ids({{'parent': ROOT}}), [A, B], 'parent int')
check(ids({{'parent': [ROOT, A]}}), [A, B, G], 'parent list')
# SQL semantics, as Koji: "parent != X" never matches top-level tasks.
check(ids({{'not_parent': ROOT}}), [G], 'not_parent int')
check(ids({{'not_parent': [ROOT]}}), [G], 'not_parent list')
check(ids({{'owner': ALICE_ID}}), [B, FAILED], 'owner')
check(ids({{'owner': [ADMIN_ID]}}), [ROOT, A, G, CANCELED], 'owner list')
check(ids({{'not_owner': ALICE_ID}}), [ROOT, A, G, CANCELED], 'not_owner')
check(ids({{'arch': ['x86_64']}}), [A, G], 'arch')
check(ids({{'arch': ['x86_64', 'aarch64']}}), [A, B, G], 'arch list')
check(ids({{'not_arch': ['noarch']}}), [A, B, G], 'not_arch')
check(ids({{'state': [0], 'arch': ['noarch'], 'parent': None}}), [ROOT], 'combined')
check(ids({{'host_id': None}}), ALL, 'host_id None')

# queryOpts
check(s.listTasks(queryOpts={{'countOnly': True}}), 6, 'countOnly')
check(s.listTasks({{'state': [0]}}, {{'countOnly': True}}), 2, 'countOnly filtered')
check([t['id'] for t in s.listTasks(queryOpts={{'order': 'id', 'limit': 2, 'offset': 1}})], [A, B], 'limit/offset')
check([t['id'] for t in s.listTasks(queryOpts={{'order': '-id'}})], sorted(ALL, reverse=True), 'order -id')
check([t['id'] for t in s.listTasks(queryOpts={{'order': '-id', 'limit': 1}})], [CANCELED], 'order -id limit')

rows = s.listTasks({{'parent': None}}, {{'order': 'id'}})
check([r['id'] for r in rows], [ROOT, FAILED, CANCELED], 'structs')
r = rows[0]
check(r['owner_name'], ADMIN, 'owner_name')
check(r['owner_type'], 0, 'owner_type')
check(r['method'], 'buildContainer', 'method')
assert r['request'].startswith('<?xml'), r['request']
check(rows[1]['owner_name'], 'alice', 'owner_name alice')

lists = s.listTasks({{'parent': None}}, {{'order': 'id', 'asList': True}})
check(len(lists), 3, 'asList rows')
keys = sorted(rows[0])
check(lists[0][0], 'noarch', 'asList: arch sorts first')
for row, struct in zip(lists, rows):
    check(len(row), len(keys), 'asList width')
    check(dict(zip(keys, row)), struct, 'asList values in alphabetical field order')

dec = s.listTasks({{'parent': None, 'decode': True}}, {{'order': 'id'}})
check(dec[0]['request'], ['git://example.test/containers/foo#0123456789abcdef', 'f40-candidate', {{'scratch': True}}], 'decoded request')
check(dec[0]['result'], None, 'no result yet')
check(dec[1]['result'], {{'faultCode': 1005, 'faultString': 'build failed: boom'}}, 'decoded fault result')
check(dec[2]['request'], ['x'], 'decoded request of newRepo')
closed = s.listTasks({{'state': [2], 'decode': True}})
check(closed[0]['result'], [None], 'decoded closed result')

# Time filters: floats (epoch seconds) and ISO strings (UTC).
now = time.time()
check(ids({{'createdAfter': now - 3600}}), ALL, 'createdAfter float')
check(ids({{'createdAfter': now + 3600}}), [], 'createdAfter future float')
check(ids({{'createdBefore': now + 3600}}), ALL, 'createdBefore float')
iso_past = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(now - 3600))
iso_future = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(now + 3600))
check(ids({{'createdAfter': iso_past}}), ALL, 'createdAfter ISO')
check(ids({{'createdAfter': iso_future}}), [], 'createdAfter future ISO')
check(ids({{'createdBefore': iso_past}}), [], 'createdBefore ISO')
check(ids({{'completeAfter': now - 3600}}), [B, FAILED, CANCELED], 'completeAfter')
"#
        ),
    );
}

#[test]
fn task_children_and_descendents() {
    let hub = hub!();
    hub.add_user_cli("alice", &common::random_password(), false);
    let admin = user_id(&hub, ADMIN);
    let alice = user_id(&hub, "alice");
    let f = family(&hub, admin, alice);

    py(
        &hub,
        &format!(
            r#"
s = anon()
ROOT, A, B, G = {root}, {a}, {b}, {g}
d = s.getTaskDescendents(ROOT)
# Keys are strings (XML-RPC struct keys), in Koji's depth-first order.
check(list(d), [str(ROOT), str(A), str(G), str(B)], 'descendent keys')
check([t['id'] for t in d[str(ROOT)]], [A, B], 'root children')
check([t['id'] for t in d[str(A)]], [G], 'grandchild')
check(d[str(G)], [], 'leaf')
check(d[str(B)], [], 'leaf b')
check(d[str(A)][0]['parent'], A, 'parent field')
assert 'request' not in d[str(ROOT)][0], d[str(ROOT)][0]
dr = s.getTaskDescendents(ROOT, request=True)
check(dr[str(ROOT)][0]['request'], ['x'], 'request decoded')
check(s.getTaskDescendents(G), {{str(G): []}}, 'leaf task')
check(s.getTaskDescendents(999999), {{'999999': []}}, 'unknown task')

kids = s.getTaskChildren(ROOT, request=True)
check([k['id'] for k in kids], [A, B], 'children')
check([k['request'] for k in kids], [['x'], ['x']], 'children requests')
check([k['method'] for k in kids], ['buildArch', 'buildArch'], 'children methods')
check(s.getTaskChildren(ROOT)[0].get('request'), None, 'no request by default')
check(s.getTaskChildren(999999), [], 'children of unknown task')
expect(koji.GenericError, 'No such task: 999999', s.getTaskChildren, 999999, strict=True)

info = s.getTaskInfo(ROOT, request=True)
check(info['request'], ['git://example.test/containers/foo#0123456789abcdef', 'f40-candidate', {{'scratch': True}}], 'getTaskInfo request')
check(s.getTaskRequest(ROOT), info['request'], 'getTaskRequest')
check([t['id'] for t in s.getTaskInfo([A, 999999, B])[::2]], [A, B], 'getTaskInfo list')
check(s.getTaskInfo([A, 999999])[1], None, 'getTaskInfo list with unknown id')
"#,
            root = f.root,
            a = f.child_a,
            b = f.child_b,
            g = f.grandchild,
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Cancel rules

fn state_of(hub: &Hub, id: i64) -> i64 {
    open_store(hub)
        .read(|c| tasks::core(c, id))
        .expect("read task")
        .unwrap_or_else(|| panic!("no task {id}"))
        .state
}

fn states(hub: &Hub, ids: &[i64]) -> Vec<&'static str> {
    ids.iter()
        .map(|&id| tasks::state_name(state_of(hub, id)))
        .collect()
}

#[test]
fn cancel_rules() {
    let hub = hub!();
    let alice_pw = common::random_password();
    let bob_pw = common::random_password();
    hub.add_user_cli("alice", &alice_pw, false);
    hub.add_user_cli("bob", &bob_pw, false);
    let alice = user_id(&hub, "alice");

    // Only the owner (or an admin, or the host running it) may cancel.
    let lone = insert(&hub, NewTask::new("buildContainer", "noarch", alice));
    let (code, out, err) = hub.koji_as("bob", &bob_pw, &["cancel", &lone.to_string()]);
    assert_eq!(code, 1, "bob cancel\nstdout: {out}\nstderr: {err}");
    assert_contains(&err, "Cannot cancel task, not owner", "bob cancel");
    assert_eq!(states(&hub, &[lone]), ["FREE"]);
    let out = hub.python_ok(&format!(
        "{PY_PRELUDE}\n\
         e = expect(koji.ActionNotAllowed, 'Cannot cancel task, not owner', sess('bob', {bob_pw:?}).cancelTask, {lone})\n\
         print(e.faultCode)\n\
         expect(koji.ActionNotAllowed, 'Cannot cancel task, not owner', anon().cancelTask, {lone})\n\
         expect(koji.ActionNotAllowed, 'you must be logged in for this operation', anon().cancelTaskChildren, {lone})\n\
         expect(koji.GenericError, 'No such task: 999999', sess('bob', {bob_pw:?}).cancelTask, 999999)\n"
    ));
    assert_eq!(out.trim(), "1004");
    let (code, out, err) = hub.koji_as("alice", &alice_pw, &["cancel", &lone.to_string()]);
    assert_eq!(code, 0, "alice cancel\nstdout: {out}\nstderr: {err}");
    assert_eq!(states(&hub, &[lone]), ["CANCELED"]);
    // Canceling again is a no-op.
    let (code, _, err) = hub.koji_as("alice", &alice_pw, &["cancel", &lone.to_string()]);
    assert_eq!(code, 0, "second cancel: {err}");

    // A parent cancels its whole subtree; finished children (and what hangs below them) stay.
    let p = insert(&hub, NewTask::new("buildContainer", "noarch", alice));
    let c1 = insert(&hub, NewTask::new("buildArch", "x86_64", alice).parent(p));
    let c2 = insert(&hub, NewTask::new("buildArch", "aarch64", alice).parent(p));
    let g1 = insert(
        &hub,
        NewTask::new("createContainer", "x86_64", alice).parent(c1),
    );
    let c3 = insert(&hub, NewTask::new("buildArch", "ppc64le", alice).parent(p));
    finish(&hub, c3, tasks::CLOSED, &write_response(&Value::Nil));
    let g3 = insert(
        &hub,
        NewTask::new("createContainer", "ppc64le", alice).parent(c3),
    );
    let (code, out, err) = hub.koji_as("alice", &alice_pw, &["cancel", &p.to_string()]);
    assert_eq!(code, 0, "cancel parent\nstdout: {out}\nstderr: {err}");
    assert_eq!(
        states(&hub, &[p, c1, c2, g1, c3, g3]),
        [
            "CANCELED", "CANCELED", "CANCELED", "CANCELED", "CLOSED", "FREE"
        ]
    );

    // --justone cancels only the task itself.
    let p = insert(&hub, NewTask::new("buildContainer", "noarch", alice));
    let c = insert(&hub, NewTask::new("buildArch", "x86_64", alice).parent(p));
    let (code, _, err) = hub.koji_as("alice", &alice_pw, &["cancel", "--justone", &p.to_string()]);
    assert_eq!(code, 0, "cancel --justone: {err}");
    assert_eq!(states(&hub, &[p, c]), ["CANCELED", "FREE"]);

    // cancel --full wants a top-level task unless --force; with it, the whole group goes.
    let p = insert(&hub, NewTask::new("buildContainer", "noarch", alice));
    let c = insert(&hub, NewTask::new("buildArch", "x86_64", alice).parent(p));
    let g = insert(
        &hub,
        NewTask::new("createContainer", "x86_64", alice).parent(c),
    );
    let sibling = insert(&hub, NewTask::new("buildArch", "aarch64", alice).parent(p));
    let (code, _, err) = hub.koji(&["cancel", "--full", &c.to_string()]);
    assert_eq!(code, 1);
    assert_contains(
        &err,
        &format!("Task {c} is not top-level (parent={p})"),
        "cancel --full of a child",
    );
    assert_eq!(
        states(&hub, &[p, c, g, sibling]),
        ["FREE", "FREE", "FREE", "FREE"]
    );
    // Not for non-admins, even owners.
    let (code, _, err) = hub.koji_as("alice", &alice_pw, &["cancel", "--full", &p.to_string()]);
    assert_eq!(code, 1);
    assert_contains(
        &err,
        "admin permission required (logged in as alice)",
        "cancel --full as owner",
    );
    let (code, _, err) = hub.koji(&["cancel", "--full", "--force", &g.to_string()]);
    assert_eq!(code, 0, "cancel --full --force: {err}");
    assert_eq!(
        states(&hub, &[p, c, g, sibling]),
        ["CANCELED", "CANCELED", "CANCELED", "CANCELED"]
    );

    // cancelTaskChildren leaves the parent running.
    let p = insert(&hub, NewTask::new("buildContainer", "noarch", alice));
    set_open(&hub, p);
    let c1 = insert(&hub, NewTask::new("buildArch", "x86_64", alice).parent(p));
    let c2 = insert(&hub, NewTask::new("buildArch", "aarch64", alice).parent(p));
    let g = insert(
        &hub,
        NewTask::new("createContainer", "x86_64", alice).parent(c1),
    );
    let (code, _, err) = hub.koji_as(
        "bob",
        &bob_pw,
        &["call", "cancelTaskChildren", &p.to_string()],
    );
    assert_eq!(code, 1);
    assert_contains(
        &err,
        "Cannot cancel task, not owner",
        "bob cancelTaskChildren",
    );
    let (code, out, err) = hub.koji_as(
        "alice",
        &alice_pw,
        &["call", "cancelTaskChildren", &p.to_string()],
    );
    assert_eq!(code, 0, "cancelTaskChildren\nstdout: {out}\nstderr: {err}");
    assert_eq!(
        states(&hub, &[p, c1, c2, g]),
        ["OPEN", "CANCELED", "CANCELED", "CANCELED"]
    );

    // Admins may cancel anyone's task; taskinfo shows the result.
    let t = insert(&hub, NewTask::new("buildContainer", "noarch", alice));
    hub.koji_ok(&["cancel", &t.to_string()]);
    let out = hub.koji_ok(&["taskinfo", &t.to_string()]);
    assert_contains(&out, "State: canceled\n", "taskinfo after admin cancel");
}
