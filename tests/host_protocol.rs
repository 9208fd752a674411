//! The builder-host protocol, driven with the stock koji 1.36.1 Python library the way kojid
//! drives it: host sessions, `host.*` calls, the scheduler, long-polling and uploads.
//!
//! Hosts are created with `koji add-host`; their passwords are set with `containerbuild user
//! passwd`. FREE tasks are written straight into the store (the `buildContainer` method arrives
//! with a later issue); the Python side inserts some with `sqlite3` while the hub runs (WAL).

mod common;

use common::assert_contains;

use common::Hub;
use containerbuild::store::{Store, StoreError, tasks};
use containerbuild::xmlrpc::Value;

fn start(toml: &str) -> Option<Hub> {
    Hub::start_with_config(toml)
}

macro_rules! hub {
    ($toml:expr) => {
        match start($toml) {
            Some(h) => h,
            None => return,
        }
    };
}

/// Inserts a FREE `buildContainer` task owned by the admin in the `default` channel.
fn insert_task(hub: &Hub, priority: i64) -> i64 {
    let store = Store::open(&hub.data_dir()).expect("open store");
    let request_xml = containerbuild::xmlrpc::wire::write_call(
        "buildContainer",
        &[
            Value::str("git://example.test/containers/foo#0123456789abcdef"),
            Value::str("f40-candidate"),
        ],
    );
    store
        .write(|tx| -> Result<i64, StoreError> {
            let owner: i64 =
                tx.query_row("SELECT id FROM users WHERE name = 'kojiadmin'", [], |r| {
                    r.get(0)
                })?;
            let channel_id: i64 =
                tx.query_row("SELECT id FROM channels WHERE name = 'default'", [], |r| {
                    r.get(0)
                })?;
            tasks::create(
                tx,
                &tasks::NewTask {
                    method: "buildContainer".into(),
                    arch: "noarch".into(),
                    owner,
                    channel_id,
                    priority,
                    parent: None,
                    label: None,
                    request_xml,
                },
            )
        })
        .expect("create task")
}

/// Helpers every script starts with. `@DB@` is the hub's database file.
const PRELUDE: &str = r#"
import base64, hashlib, json, os, sqlite3, sys, threading, time, zlib
import requests
import koji
from koji import xmlrpcplus

URL = os.environ['KOJI_URL']
DB = '@DB@'

def admin():
    s = koji.ClientSession(URL, {'user': os.environ['KOJI_USER'],
                                 'password': os.environ['KOJI_PASSWORD'], 'max_retries': 0})
    s.login()
    return s

def login(name, pw, exclusive=True, **opts):
    o = {'user': name, 'password': pw, 'max_retries': 0}
    o.update(opts)
    s = koji.ClientSession(URL, o)
    s.login()
    if exclusive:
        s.exclusiveSession()
    return s

def expect(cls, text, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except cls as e:
        assert text in str(e), 'expected %r in %r' % (text, str(e))
        return e
    raise AssertionError('no %s(%r) from %s' % (cls.__name__, text, fn))

def ok_response(value):
    return xmlrpcplus.dumps((value,), methodresponse=1, allow_none=1)

def fault_response(code, msg):
    return xmlrpcplus.dumps(xmlrpcplus.Fault(code, msg), methodresponse=1, allow_none=1)

def insert_task(priority=20, method='buildContainer', arch='noarch'):
    db = sqlite3.connect(DB, timeout=30)
    owner = db.execute("SELECT id FROM users WHERE name = 'kojiadmin'").fetchone()[0]
    chan = db.execute("SELECT id FROM channels WHERE name = 'default'").fetchone()[0]
    req = xmlrpcplus.dumps(('git://example.test/x#1', 'f40-candidate'), methodname=method)
    cur = db.execute(
        "INSERT INTO tasks (state, create_ts, channel_id, owner, method, arch, priority, request)"
        " VALUES (0, ?, ?, ?, ?, ?, ?, ?)", (time.time(), chan, owner, method, arch, priority, req))
    db.commit()
    tid = cur.lastrowid
    db.close()
    return tid

def wait_for(what, fn, timeout=20.0, every=0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise AssertionError('timed out waiting for ' + what)

def task_dir(tid):
    return 'tasks/%d/%d' % (tid % 10000, tid)
"#;

fn script(hub: &Hub, body: &str) -> String {
    let db = hub.data_dir().join("containerbuild.sqlite");
    let text = format!("{PRELUDE}\n{body}").replace("@DB@", db.to_str().expect("utf-8 path"));
    hub.python_ok(&text)
}

/// Session rules, the task life cycle, subtasks and waiting, results and failures.
#[test]
fn host_session_task_lifecycle_and_subtasks() {
    let hub = hub!("scheduler_interval = 1\n");
    let pw = hub.add_host_cli("builder1.test");
    let t1 = insert_task(&hub, 20);
    let t2 = insert_task(&hub, 10);
    let out = script(
        &hub,
        &format!(
            r#"
T1, T2, PW = {t1}, {t2}, '{pw}'
adm = admin()
anon = koji.ClientSession(URL, {{'max_retries': 0}})
expect(koji.AuthError, 'Not logged-in', anon.host.getID)
uid = adm.getLoggedInUser()['id']
expect(koji.AuthError, 'User %d is not a host' % uid, adm.host.getID)

h = login('builder1.test', PW, exclusive=False)
expect(koji.AuthError, 'This method requires an exclusive session', h.host.getID)
expect(koji.AuthError, 'This method requires an exclusive session', h.host.getTasks)
h.exclusiveSession()
assert h.echo('OK') == ['OK']
hid = h.host.getID()
assert hid == adm.getHost('builder1.test')['id'], hid
info = h.host.getHost()
assert info['name'] == 'builder1.test' and info['id'] == hid, info

# kojid's readiness report, then its task poll.
h.host.updateHost(0.0, True, data={{'maxjobs': 5, 'methods': ['buildContainer']}})
assert adm.scheduler.getHostData(hostID=hid)[0]['data']['maxjobs'] == 5
assert adm.getHost(hid)['ready'] is True
tasks = h.host.getTasks()
assert [t['id'] for t in tasks] == [T2, T1], tasks
assert all(t['state'] == koji.TASK_STATES['ASSIGNED'] and t['host_id'] == hid for t in tasks), tasks
assert set(tasks[0]) == {{'id', 'state', 'channel_id', 'host_id', 'arch', 'method', 'priority', 'create_ts'}}, tasks[0]
runs = adm.scheduler.getTaskRuns(clauses=[['task_id', T2]], fields=['task_id', 'host_name', 'state', 'active'])
assert runs and runs[0]['host_name'] == 'builder1.test' and runs[0]['active'] is True, runs

# openTask hands out the raw XML request.
t = h.host.openTask(T2)
assert t['state'] == koji.TASK_STATES['OPEN'] and t['host_id'] == hid, t
assert t['request'].startswith('<?xml') and '<methodName>buildContainer</methodName>' in t['request'], t['request']
assert xmlrpcplus.loads(t['request'])[0] == ('git://example.test/containers/foo#0123456789abcdef', 'f40-candidate')
assert h.host.openTask(T2) is None
assert adm.getTaskInfo(T2)['start_ts'] is not None
h.host.setTaskWeight(T2, 2.5)
assert adm.getTaskInfo(T2)['weight'] == 2.5
assert h.host.getHostTasks() == [{{'id': T2, 'waiting': None, 'weight': 2.5}}], h.host.getHostTasks()
# Not open: no ownership.
expect(koji.ActionNotAllowed, 'host %d does not own task %d' % (hid, T1), h.host.setTaskWeight, T1, 3)
expect(koji.ActionNotAllowed, 'host %d does not own task %d' % (hid, T1), h.host.closeTask, T1, ok_response(1))

# Subtasks: label de-dup, parent's priority - 1, owner/channel from the parent.
c1 = h.host.subtask('createContainer', ['x86_64', {{'a': 1}}], T2, label='x86_64', arch='x86_64')
assert h.host.subtask('createContainer', ['again'], T2, label='x86_64') == c1
ci, pi = adm.getTaskInfo(c1), adm.getTaskInfo(T2)
assert ci['parent'] == T2 and ci['label'] == 'x86_64' and ci['arch'] == 'x86_64', ci
assert ci['priority'] == pi['priority'] - 1 == 9, (ci, pi)
assert ci['owner'] == pi['owner'] and ci['channel_id'] == pi['channel_id'], (ci, pi)
assert adm.getTaskRequest(c1) == ['x86_64', {{'a': 1}}]
c2 = h.host.subtask2(T2, {{'label': 'two', 'priority': 30}}, 'createContainer', 'arg1', opt='v')
assert adm.getTaskRequest(c2) == ['arg1', {{'opt': 'v', '__starstar': True}}], adm.getTaskRequest(c2)
assert adm.getTaskInfo(c2)['priority'] == 30
expect(koji.ActionNotAllowed, 'The owner option is not allowed here', h.host.subtask, 'x', [], T2, owner=1)
expect(koji.ActionNotAllowed, 'does not own task %d' % T1, h.host.subtask, 'x', [], T1)
assert [c['id'] for c in adm.getTaskChildren(T2)] == [c1, c2]

# Waiting.
h.host.taskSetWait(T2, [c1, c2])
assert adm.getTaskInfo(T2)['waiting'] is True and adm.getTaskInfo(c1)['awaited'] is True
assert h.host.taskWait(T2) == [[], [c1, c2]]
# A waiting task does not count towards the load, so the host (capacity 2, T1 assigned) has room
# for one subtask now, and for the next when that one closes.
assigned = lambda: {{t['id'] for t in h.host.getTasks()}}
assert assigned() == {{T1, c1}}, assigned()
assert h.host.openTask(c1)['id'] == c1
h.host.closeTask(c1, ok_response({{'ok': 1}}))
ht = {{t['id']: t for t in h.host.getHostTasks()}}
assert ht[T2]['waiting'] is True and ht[T2].get('alert') is True, ht
assert h.host.taskWait(T2) == [[c1], [c2]]
assert h.host.taskWait(T2) == [[], [c2]]
assert assigned() == {{T1, c2}}, assigned()
assert h.host.openTask(c2)['id'] == c2
h.host.failTask(c2, fault_response(1005, 'build failed: boom'))
assert adm.getTaskInfo(c2)['state'] == koji.TASK_STATES['FAILED']
assert adm.getTaskInfo(c2)['completion_ts'] is not None
res = h.host.taskWaitResults(T2, [c1, c2], canfail=[c2])
assert res == [[c1, {{'ok': 1}}], [c2, {{'faultCode': 1005, 'faultString': 'build failed: boom'}}]], res
assert adm.getTaskInfo(T2)['waiting'] is False
expect(koji.BuildError, 'build failed: boom', h.host.taskWaitResults, T2, [c2])
assert adm.getTaskResult(c1) == {{'ok': 1}}
e = expect(koji.BuildError, 'build failed: boom', adm.getTaskResult, c2)
assert e.faultCode == 1005
h.host.taskSetWait(T2, None)
h.host.taskUnwait(T2)
assert adm.getTaskInfo(T2)['waiting'] is False

# Closing the parent; the stored response is returned verbatim.
resp = ok_response(['done', 42])
h.host.closeTask(T2, resp)
assert adm.getTaskResult(T2) == ['done', 42]
t = adm.getTaskInfo(T2)
assert t['state'] == koji.TASK_STATES['CLOSED'] and t['completion_ts'] is not None, t
expect(koji.ActionNotAllowed, 'does not own task %d' % T2, h.host.closeTask, T2, resp)

# Shutdown as kojid does it.
h.host.freeTasks([T1])
h.host.updateHost(task_load=0.0, ready=False)
assert adm.getHost(hid)['ready'] is False
h.logout()
print('T2 result ok')
"#
        ),
    );
    assert_contains(&out, "T2 result ok", "output");
    let out = hub.koji_ok(&["taskinfo", &t2.to_string()]);
    assert_contains(&out, "State: closed", "output");
}

/// Refusals, freeing, two hosts sharing work, the host timeout and admin assignment.
#[test]
fn scheduler_refusals_sharing_and_host_timeout() {
    let hub = hub!(
        "scheduler_interval = 0.3\nready_timeout = 2\nhost_timeout = 3\nassign_timeout = 60\n"
    );
    let pw1 = hub.add_host_cli("b1.test");
    let pw2 = hub.add_host_cli("b2.test");
    let t1 = insert_task(&hub, 20);
    let out = script(
        &hub,
        &format!(
            r#"
T1 = {t1}
adm = admin()
b1 = login('b1.test', '{pw1}')
b2 = login('b2.test', '{pw2}')
id1, id2 = b1.host.getID(), b2.host.getID()

# A hard refusal keeps the task away from the refusing host.
b1.host.updateHost(0.0, True)
assert [t['id'] for t in b1.host.getTasks()] == [T1]
b1.host.refuseTask(T1, soft=False, msg='no handler for method')
info = adm.getTaskInfo(T1)
assert info['state'] == koji.TASK_STATES['FREE'] and info['host_id'] is None, info
assert b1.host.getTasks() == []
ref = adm.scheduler.getTaskRefusals(clauses=[['task_id', T1]])
assert len(ref) == 1 and ref[0]['host_id'] == id1 and ref[0]['soft'] is False and ref[0]['by_host'] is True, ref
# Refusing a task that is not ours does nothing.
b2.host.refuseTask(T1)

# The second host comes up and gets it at once.
b2.host.updateHost(0.0, True)
assert [t['id'] for t in b2.host.getTasks()] == [T1]
# freeTasks skips tasks that are not open on the caller, frees the others.
b1.host.freeTasks([T1])
assert adm.getTaskInfo(T1)['host_id'] == id2
assert b2.host.openTask(T1)['id'] == T1
b2.host.freeTasks([T1])
# FREE, unless a periodic scheduler run (every 0.3 s here) already handed it out again.
assert adm.getTaskInfo(T1)['state'] in (koji.TASK_STATES['FREE'], koji.TASK_STATES['ASSIGNED'])
# ...and the next poll hands it out again.
assert [t['id'] for t in b2.host.getTasks()] == [T1]
assert b2.host.openTask(T1)['id'] == T1
b2.host.closeTask(T1, ok_response(None))

# Two ready hosts share new work.
b1.host.updateHost(0.0, True)
b2.host.updateHost(0.0, True)
n1, n2 = insert_task(), insert_task()
got1 = b1.host.getTasks(wait=5)
got2 = b2.host.getTasks(wait=5)
assert len(got1) == 1 and len(got2) == 1, (got1, got2)
assert {{got1[0]['id'], got2[0]['id']}} == {{n1, n2}}, (got1, got2)
print('shared', got1[0]['id'], got2[0]['id'])

# Host timeout: b1 opens its task and goes silent; b2 keeps checking in.
mine = got1[0]['id']
assert b1.host.openTask(mine)['id'] == mine
assert b2.host.openTask(got2[0]['id'])['id'] == got2[0]['id']
start = time.time()
def moved():
    b2.host.updateHost(1.0, True)
    return adm.getTaskInfo(mine)['host_id'] == id2
wait_for('task moved to b2', moved, timeout=30, every=0.3)
print('host timeout: task %d moved after %.1f s' % (mine, time.time() - start))
assert adm.getTaskInfo(mine)['state'] == koji.TASK_STATES['ASSIGNED']
assert adm.getHost(id1)['ready'] is False
logs = [m['msg'] for m in adm.scheduler.getLogMessages(clauses=[['task_id', mine]], fields=['msg'])]
assert 'Freeing task from unresponsive host' in logs, logs
assert 'Marking host not ready' in [m['msg'] for m in adm.scheduler.getLogMessages(clauses=[['host_id', id1]])]
# b1's session is still exclusive: its calls on the moved task are refused.
expect(koji.ActionNotAllowed, 'host %d does not own task %d' % (id1, mine), b1.host.closeTask, mine, ok_response(1))

# Admin assignment: override leaves no run record.
t3 = insert_task()
expect(koji.GenericError, 'Invalid hostInfo: nosuchhost', adm.assignTask, t3, 'nosuchhost')
expect(koji.ActionNotAllowed, 'admin permission required', b2.assignTask, t3, 'b1.test')
assert adm.assignTask(t3, 'b1.test', force=True, override=True) is True
assert adm.getTaskInfo(t3)['host_id'] == id1
assert adm.scheduler.doRun() is True
print('OK')
"#
        ),
    );
    assert_contains(&out, "OK", "output");
    // The stock CLI's scheduler views work against this hub.
    let out = hub.koji_ok(&["scheduler-info", "--host", "b2.test"]);
    assert_contains(&out, "b2.test", "output");
    let out = hub.koji_ok(&["scheduler-logs", "--task", &t1.to_string()]);
    assert_contains(&out, "Host refused task: no handler for method", "output");
}

/// `host.getTasks(wait=N)` answers as soon as a task is assigned to the host.
#[test]
fn long_poll_get_tasks() {
    // A long interval: only the event-driven runs can assign in time.
    let hub = hub!("scheduler_interval = 60\n");
    let pw_w = hub.add_host_cli("waiter.test");
    let pw_c = hub.add_host_cli("creator.test");
    let parent = insert_task(&hub, 20);
    let out = script(
        &hub,
        &format!(
            r#"
P = {parent}
adm = admin()
help = adm.system.methodHelp('host.getTasks')
assert 'wait=None' in help, help
c = login('creator.test', '{pw_c}')
c.host.updateHost(0.0, True)
assert [t['id'] for t in c.host.getTasks()] == [P]
assert c.host.openTask(P)['id'] == P

w = login('waiter.test', '{pw_w}')
w.host.updateHost(0.0, True)
# Nothing for us: the call waits about `wait` seconds, then answers [].
t0 = time.time()
assert w.host.getTasks(wait=1) == []
empty_wait = time.time() - t0
assert 0.8 <= empty_wait < 3.0, empty_wait
print('empty wait %.2f s' % empty_wait)

result = {{}}
def poll():
    t = time.time()
    result['tasks'] = w.host.getTasks(wait=5)
    result['done'] = time.time()
th = threading.Thread(target=poll)
th.start()
time.sleep(1.0)
created = time.time()
child = c.host.subtask('createContainer', ['x86_64'], P, label='lp')
th.join()
lat = result['done'] - created
print('long-poll latency %.0f ms' % (lat * 1000))
assert [t['id'] for t in result['tasks']] == [child], result
assert lat < 3.0, lat
print('OK')
"#
        ),
    );
    assert_contains(&out, "OK", "output");
    for line in out
        .lines()
        .filter(|l| l.contains("latency") || l.contains("wait"))
    {
        eprintln!("{line}");
    }
}

/// rawUpload, checkUpload, legacy uploadFile and the upload path rules.
#[test]
fn uploads() {
    let hub = hub!("scheduler_interval = 1\nmax_upload_size = 4194304\n");
    let pw1 = hub.add_host_cli("up1.test");
    let pw2 = hub.add_host_cli("up2.test");
    let alice_pw = common::random_password();
    hub.add_user_cli("alice", &alice_pw, false);
    let t1 = insert_task(&hub, 20);
    let out = script(
        &hub,
        &format!(
            r#"
T1 = {t1}
adm = admin()
h1 = login('up1.test', '{pw1}')
h2 = login('up2.test', '{pw2}')
alice = login('alice', '{alice_pw}', exclusive=False)
id1, id2 = h1.host.getID(), h2.host.getID()
h1.host.updateHost(0.0, True)
assert [t['id'] for t in h1.host.getTasks()] == [T1]
h1.host.openTask(T1)
D = task_dir(T1)

# A 3 MiB file in 1 MiB chunks (three rawUpload POSTs, then checkUpload).
data = os.urandom(3 * 1024 * 1024 + 123)
src = os.path.join(os.environ['HOME'], 'image.tar')
open(src, 'wb').write(data)
h1.uploadWrapper(src, D)
h1.uploadWrapper(src, D + '/sub', name='copy.tar', blocksize=65536)
out = adm.listTaskOutput(T1)
assert sorted(out) == ['image.tar', 'sub/copy.tar'], out
got = adm.downloadTaskOutput(T1, 'image.tar')
assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
chk = h1.checkUpload(D, 'image.tar', verify='adler32')
assert chk['size'] == len(data) and chk['hexdigest'] == '%08x' % (zlib.adler32(data) & 0xffffffff), chk
assert chk['sumlength'] == len(data)
assert h1.checkUpload(D, 'nothere.log') is None

# A raw POST as the client sends it; the reply's adler32 lets the client catch corruption.
def raw(sess, body, path, name, offset=0, overwrite=True, callnum=None, verify='adler32'):
    q = {{'filename': name, 'filepath': path, 'fileverify': verify, 'offset': str(offset)}}
    if overwrite:
        q['overwrite'] = '1'
    if callnum is None:
        callnum = sess.callnum
        sess.callnum += 1
    hdrs = {{'Koji-Session-Id': str(sess.sinfo['session-id']),
            'Koji-Session-Key': sess.sinfo['session-key'],
            'Koji-Session-Callnum': str(callnum),
            'Content-Type': 'application/octet-stream'}}
    r = requests.post(URL, params=q, data=body, headers=hdrs)
    assert r.status_code == 200, r.status_code
    assert r.headers['Koji-Version'] == '1.36.1'
    try:
        return xmlrpcplus.loads(r.text)[0][0]
    except xmlrpcplus.Fault as f:
        return f
sent = b'hello world\n' * 100
r = raw(h1, sent, D, 'raw.log')
assert r == {{'size': len(sent), 'fileverify': 'adler32', 'offset': 0,
             'hexdigest': '%08x' % zlib.adler32(sent)}}, r
meant = b'hello world\n' * 99 + b'hello World\n'
assert r['hexdigest'] != '%08x' % zlib.adler32(meant)
print('corrupted chunk detected: %s != %08x' % (r['hexdigest'], zlib.adler32(meant)))
r = raw(h1, b'tail', D, 'raw.log', offset=-1)
assert r['offset'] == len(sent) and r['size'] == 4, r
assert adm.downloadTaskOutput(T1, 'raw.log', offset=len(sent)) == b'tail'
r = raw(h1, b'again', D, 'raw.log', overwrite=False)
assert isinstance(r, xmlrpcplus.Fault) and r.faultCode == 1000 and 'upload path exists' in r.faultString, r
# Callnum order applies to uploads too.
r = raw(h1, b'x', D, 'seq.log', callnum=1)
assert isinstance(r, xmlrpcplus.Fault) and r.faultCode == 1008, r
# Bad names and directories.
for path, name, text in [('../outside', 'f.txt', 'Invalid upload directory'),
                         (D + '/../../../../..', 'f.txt', 'Invalid upload directory'),
                         ('/etc', 'f.txt', 'Invalid upload directory'),
                         (D, '../f.txt', 'Invalid upload filename'),
                         (D, '.hidden', 'Invalid upload filename'),
                         (D, 'a\\b', 'Invalid upload filename'),
                         ('tasks/1', 'f.txt', 'Invalid task upload directory'),
                         ('tasks/9/%d' % T1, 'f.txt', 'Invalid task upload directory')]:
    r = raw(h1, b'x', path, name)
    assert isinstance(r, xmlrpcplus.Fault) and r.faultCode == 1000 and text in r.faultString, (path, name, r)
r = raw(h1, b'x', D, 'f.txt', verify='crc')
assert isinstance(r, xmlrpcplus.Fault) and 'Unsupported verify type: crc' in r.faultString, r

# Only the host running the task may write into its directory.
expect(koji.ActionNotAllowed, 'host %d does not own task %d' % (id2, T1), h2.uploadWrapper, src, D)
expect(koji.AuthError, 'is not a host', alice.uploadWrapper, src, D)
anon = koji.ClientSession(URL, {{'max_retries': 0}})
r = requests.post(URL, params={{'filename': 'x', 'filepath': 'x'}}, data=b'x',
                  headers={{'Content-Type': 'application/octet-stream'}})
f = None
try:
    xmlrpcplus.loads(r.text)
except xmlrpcplus.Fault as e:
    f = e
assert f is not None and f.faultCode == 1004 and 'logged-in' in f.faultString, r.text

# Other directories belong to their first uploader.
alice.uploadWrapper(src, 'cli-import/abc')
assert alice.checkUpload('cli-import/abc', 'image.tar')['size'] == len(data)
expect(koji.GenericError, 'Invalid upload directory, not owner: cli-import/abc', adm.uploadWrapper, src, 'cli-import/abc')

# The size limit (4 MiB here).
big = os.path.join(os.environ['HOME'], 'big.bin')
open(big, 'wb').write(b'\0' * (5 * 1024 * 1024))
expect(koji.GenericError, 'max_upload_size', alice.uploadWrapper, big, 'cli-import/big')

# Legacy uploadFile, as the client's fallback loop sends it: base64 chunks with their sha256,
# then offset -1 with the whole file's size and sha256.
leg = alice
ofs = 0
for i in range(0, len(data), 1000000):
    chunk = data[i:i + 1000000]
    assert leg.uploadFile('legacy/dir', 'image.tar', len(chunk), ('sha256', hashlib.sha256(chunk).hexdigest()),
                          ofs, base64.b64encode(chunk).decode()) is True
    ofs += len(chunk)
assert leg.uploadFile('legacy/dir', 'image.tar', ofs, ('sha256', hashlib.sha256(data).hexdigest()), -1, '') is True
chk = leg.checkUpload('legacy/dir', 'image.tar', verify='adler32')
assert chk['size'] == len(data) and chk['hexdigest'] == '%08x' % zlib.adler32(data), chk
assert leg.uploadFile('legacy/dir', 'x.bin', 3, hashlib.md5(b'abc').hexdigest(), 0,
                      base64.b64encode(b'abc').decode()) is True
assert leg.uploadFile('legacy/dir', 'y.bin', 3, 'wrong', 0, base64.b64encode(b'abc').decode()) is False
assert leg.uploadFile('legacy/dir', 'x.bin', 3, ('sha256', hashlib.sha256(b'abc').hexdigest()), -1, '') is True
assert leg.uploadFile('legacy/dir', 'x.bin', 3, ('sha256', '00'), -1, '') is False
expect(koji.GenericError, 'file already exists', leg.uploadFile, 'legacy/dir', 'x.bin', 3,
       hashlib.md5(b'abc').hexdigest(), 0, base64.b64encode(b'abc').decode())
print('OK')
"#
        ),
    );
    assert_contains(&out, "OK", "output");
    // Files are where Koji puts them, with the owner marker in per-user directories.
    let work = hub.data_dir().join("topdir/work");
    let user_file = std::fs::read_to_string(work.join("cli-import/abc/.user")).expect(".user");
    assert!(user_file.trim().parse::<i64>().is_ok(), "{user_file:?}");
    assert!(
        !work
            .join(format!("tasks/{}/{}/.user", t1 % 10000, t1))
            .exists()
    );
    assert_eq!(
        std::fs::metadata(work.join("legacy/dir/image.tar"))
            .expect("legacy upload")
            .len(),
        3 * 1024 * 1024 + 123
    );
    assert!(!hub.data_dir().join("outside").exists());
}
