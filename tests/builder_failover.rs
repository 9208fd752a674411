//! Builder failover and the views of running work: a task whose builder died is freed after
//! `host_timeout` and finished by another builder; `koji taskinfo -r` shows a task tree;
//! `koji list-hosts` / `koji hostinfo` show a running builder's load; the legacy `uploadFile`
//! corners `tests/host_protocol.rs` does not cover.
//!
//! Builders are `containerbuild builder` child processes against a hub started with
//! `--builders 0` (the harness default), registered the way tests/builder.rs does it. Every child
//! process is stopped by pid from a guard's `Drop`, so a failing assertion leaves nothing behind.

mod common;

use std::time::{Duration, Instant};

use common::{BuilderProc, Hub, register_host};
use common::{host_id, task_state, wait_for};

/// Koji task states.
const FREE: i64 = 0;
const OPEN: i64 = 1;
const CLOSED: i64 = 2;
const ASSIGNED: i64 = 4;

// ---------------------------------------------------------------------------------------------
// Builder processes

/// Starts builders for hosts registered with [`register`].
struct Builder;

impl Builder {
    fn spawn(hub: &Hub, name: &str) -> BuilderProc {
        BuilderProc::spawn(hub, name, &[])
    }
}

/// Processes left behind by a SIGKILLed builder (its task children live in their own process
/// groups, so they outlive it). Killed by pid when dropped, if they still run the same command.
struct Orphans {
    pids: Vec<i32>,
    cmdline: Vec<String>,
}

impl Orphans {
    fn kill(&mut self) {
        let argv: Vec<&str> = self.cmdline.iter().map(String::as_str).collect();
        let live = pids_with_cmdline(&argv);
        for pid in self.pids.drain(..).filter(|p| live.contains(p)) {
            // SAFETY: signals a process found by its exact command line, one this test's builder
            // started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Orphans {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `koji add-host NAME x86_64`, the container channel and a password; returns it.
fn register(hub: &Hub, name: &str) -> String {
    register_host(hub, name, &["x86_64"])
}

// ---------------------------------------------------------------------------------------------
// Hub queries

/// The `koji list-hosts` row of `name`, split on whitespace.
fn list_hosts_row(hub: &Hub, name: &str) -> Option<(String, Vec<String>)> {
    let (code, out, _) = hub.koji(&["list-hosts"]);
    if code != 0 {
        return None;
    }
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| {
            (
                l.to_string(),
                l.split_whitespace().map(str::to_string).collect(),
            )
        })
}

/// Waits until `koji list-hosts` shows `name` enabled and ready.
fn wait_ready(hub: &Hub, name: &str) {
    wait_for(Duration::from_secs(30), &format!("{name} ready"), || {
        list_hosts_row(hub, name)
            .filter(|(_, cols)| cols.len() > 2 && cols[1] == "Y" && cols[2] == "Y")
            .map(|_| ())
    });
}

/// `koji call --python makeTask 'sleep' [SECS]`; returns the task id.
fn make_sleep_task(hub: &Hub, secs: &str) -> i64 {
    let arg = format!("[{secs}]");
    let out = hub.koji_ok(&["call", "--python", "makeTask", "'sleep'", &arg]);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("makeTask answer {out:?}: {e}"))
}

/// Pids of live processes whose command line is exactly `argv` (what `pgrep -fx` matches).
fn pids_with_cmdline(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| a.bytes().chain(std::iter::once(0)))
        .collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want) {
            out.push(pid);
        }
    }
    out
}

/// The parent pid of `pid` (field 4 of `/proc/PID/stat`), if it still exists.
fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may contain spaces, so split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Python helpers (the stock koji library, as kojid and the CLI use it)

const PRELUDE: &str = r#"
import base64, hashlib, json, os, sys, time
import koji
from koji import xmlrpcplus

URL = os.environ['KOJI_URL']

def admin():
    s = koji.ClientSession(URL, {'user': os.environ['KOJI_USER'],
                                 'password': os.environ['KOJI_PASSWORD'], 'max_retries': 0})
    s.login()
    return s

def login(name, pw, exclusive=True):
    s = koji.ClientSession(URL, {'user': name, 'password': pw, 'max_retries': 0})
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

def task_dir(tid):
    return 'tasks/%d/%d' % (tid % 10000, tid)
"#;

fn script(hub: &Hub, body: &str) -> String {
    hub.python_ok(&format!("{PRELUDE}\n{body}"))
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Hub timeouts for the failover test, in seconds.
///
/// The builder re-sends an unchanged `host.updateHost` every 10 s (`HOST_UPDATE_REFRESH` in
/// src/builder/daemon.rs; kojid checks in about every 15 s), so the timeouts must be longer than
/// that for a live builder never to look silent. With `ready_timeout == host_timeout` the
/// scheduler run that frees the dead b1's task also marks b1 not ready, so the task cannot go
/// back to the dead host; b2 checks in [`B2_DELAY`] after the kill and again as soon as it opens
/// the task, and the sleep (~4.4 s) ends well before b2 could count as silent.
const FAILOVER_TIMEOUT: f64 = 15.0;
/// A duration no other test uses, so `sleep 4.370000` identifies this task's process.
const FAILOVER_SLEEP: &str = "4.37";
const FAILOVER_SLEEP_ARG: &str = "4.370000";
/// How long after the kill b2 starts (see [`FAILOVER_TIMEOUT`]); with `scheduler_interval`
/// 0.5 s this leaves b2 ready ~2.5 s past the run that frees the task.
const B2_DELAY: Duration = Duration::from_secs(3);

#[test]
fn killed_builder_task_is_rebuilt_elsewhere() {
    let toml = format!(
        "host_timeout = {FAILOVER_TIMEOUT}\nready_timeout = {FAILOVER_TIMEOUT}\n\
         assign_timeout = {FAILOVER_TIMEOUT}\nscheduler_interval = 0.5\n"
    );
    let Some(hub) = Hub::start_with_config(&toml) else {
        return;
    };
    register(&hub, "b1");
    register(&hub, "b2");
    let (b1_id, b2_id) = (host_id(&hub, "b1"), host_id(&hub, "b2"));

    let mut b1 = Builder::spawn(&hub, "b1");
    wait_ready(&hub, "b1");
    let t0 = Instant::now();
    let id = make_sleep_task(&hub, FAILOVER_SLEEP);
    wait_for(Duration::from_secs(20), "task OPEN on b1", || {
        (task_state(&hub, id) == (OPEN, Some(b1_id))).then_some(())
    });
    let t_open_b1 = t0.elapsed();

    // The builder's `sleep` child runs in its own process group: a SIGKILL of the daemon leaves
    // it behind as an orphan, so it is killed too (by pid), as a host crash would.
    let argv = ["sleep", FAILOVER_SLEEP_ARG];
    let b1_pid = b1.pid().expect("b1 running");
    let sleeps = wait_for(Duration::from_secs(10), "b1's sleep process", || {
        let p: Vec<i32> = pids_with_cmdline(&argv)
            .into_iter()
            .filter(|&p| parent_pid(p) == Some(b1_pid))
            .collect();
        (!p.is_empty()).then_some(p)
    });
    let mut orphans = Orphans {
        pids: sleeps.clone(),
        cmdline: argv.iter().map(|s| s.to_string()).collect(),
    };
    b1.kill_hard();
    let survivors: Vec<i32> = pids_with_cmdline(&argv)
        .into_iter()
        .filter(|p| sleeps.contains(p))
        .collect();
    assert_eq!(
        survivors, sleeps,
        "the sleep child outlives its SIGKILLed builder (own process group)"
    );
    orphans.kill();
    let t_kill = t0.elapsed();
    assert_eq!(
        task_state(&hub, id),
        (OPEN, Some(b1_id)),
        "the hub cannot know yet that b1 died"
    );

    // Deliberate pause, not a poll: b2's readiness must outlast b1's by more than one
    // scheduler interval (see FAILOVER_TIMEOUT).
    std::thread::sleep(B2_DELAY);
    let _b2 = Builder::spawn(&hub, "b2");
    // The task goes back to FREE/ASSIGNED once b1 has been silent for host_timeout, then b2
    // opens it. The scheduler frees and reassigns in one run and b2 long-polls, so the
    // intermediate states are usually too short to see here; the scheduler log shows them.
    let mut seen_states = Vec::new();
    let budget = Duration::from_secs_f64(FAILOVER_TIMEOUT + 20.0);
    wait_for(budget, "task OPEN or CLOSED on b2", || {
        let (state, host) = task_state(&hub, id);
        if seen_states.last() != Some(&(state, host)) {
            seen_states.push((state, host));
        }
        (host == Some(b2_id) && (state == OPEN || state == CLOSED)).then_some(())
    });
    let t_moved = t0.elapsed();
    wait_for(Duration::from_secs(30), "task CLOSED on b2", || {
        let (state, host) = task_state(&hub, id);
        if seen_states.last() != Some(&(state, host)) {
            seen_states.push((state, host));
        }
        (state == CLOSED).then_some(())
    });
    let t_closed = t0.elapsed();
    assert_eq!(
        task_state(&hub, id),
        (CLOSED, Some(b2_id)),
        "closed by b2; states seen: {seen_states:?}"
    );
    assert!(
        seen_states
            .iter()
            .all(|&(s, h)| (s == OPEN && h == Some(b1_id))
                || (s == FREE && h.is_none())
                || ((s == ASSIGNED || s == OPEN || s == CLOSED) && h == Some(b2_id))),
        "unexpected states after the kill: {seen_states:?}"
    );

    // The scheduler's own account: b1 marked not ready and the task freed from it, then assigned
    // to b2 — not before host_timeout after b1's last check-in, and not much later.
    script(
        &hub,
        &format!(
            r#"
T, B1, B2, TIMEOUT = {id}, {b1_id}, {b2_id}, {FAILOVER_TIMEOUT}
adm = admin()
last = adm.getLastHostUpdate(B1, ts=True)
msgs = adm.scheduler.getLogMessages(clauses=[['task_id', T]], fields=['msg', 'host_id', 'msg_ts'])
for m in msgs:
    print('log: %+.2f s %s host %s' % (m['msg_ts'] - last, m['msg'], m['host_id']))
freed = [m for m in msgs if m['msg'] == 'Freeing task from unresponsive host']
assert len(freed) == 1 and freed[0]['host_id'] == B1, msgs
delay = freed[0]['msg_ts'] - last
assert TIMEOUT <= delay < TIMEOUT + 5, delay
later = [m for m in msgs if m['msg_ts'] >= freed[0]['msg_ts'] and m['msg'] == 'Assigning task']
assert later and later[0]['host_id'] == B2, msgs
notready = [m for m in adm.scheduler.getLogMessages(clauses=[['host_id', B1]], fields=['msg'])
            if m['msg'] == 'Marking host not ready']
assert notready, 'b1 not marked not ready'
assert adm.getHost(B1)['ready'] is False
runs = adm.scheduler.getTaskRuns(clauses=[['task_id', T]], fields=['host_id', 'active'])
assert [r['host_id'] for r in runs] == [B1, B2], runs
print('freed %.2f s after b1 last checked in (host_timeout %.0f s)' % (delay, TIMEOUT))
"#
        ),
    );
    let out_ids = id.to_string();
    let info = hub.koji_ok(&["taskinfo", &out_ids]);
    assert!(
        info.contains("State: closed") && info.contains("Host: b2"),
        "{info}"
    );
    let log = hub.koji_ok(&["call", "downloadTaskOutput", &out_ids, "sleep.log"]);
    assert!(log.contains("Finished sleeping"), "sleep.log: {log}");
    eprintln!(
        "timings: OPEN on b1 {t_open_b1:.2?}, b1 killed {t_kill:.2?}, OPEN on b2 {t_moved:.2?} \
         ({:.2?} after the kill), CLOSED on b2 {t_closed:.2?}; states seen {seen_states:?}",
        t_moved - t_kill
    );
}

#[test]
fn taskinfo_recursive_shows_tree() {
    let Some(hub) = Hub::start() else {
        return;
    };
    let pw = register(&hub, "tree1");
    let out = script(
        &hub,
        &format!(
            r#"
adm = admin()
h = login('tree1', '{pw}')
P = adm.makeTask('buildContainer', ['git://example.test/c#1', 'f40-candidate'])
# Not ready, so nothing is assigned; a host may open a FREE task.
assert h.host.openTask(P)['id'] == P
C1 = adm.makeTask('createContainer', ['x86_64'], parent=P, label='x86_64', arch='x86_64')
C2 = adm.makeTask('createContainer', ['aarch64'], parent=P, label='aarch64', arch='aarch64')
assert adm.makeTask('createContainer', ['again'], parent=P, label='x86_64') == C1
assert h.host.openTask(C1)['id'] == C1
G = h.host.subtask('sleep', [1], C1, label='nap')
assert [c['id'] for c in adm.getTaskChildren(P)] == [C1, C2]
assert [c['id'] for c in adm.getTaskChildren(C1)] == [G]
info = adm.getTaskInfo(G)
assert info['parent'] == C1 and info['arch'] == 'x86_64', info
print(json.dumps([P, C1, C2, G]))
"#
        ),
    );
    let ids: Vec<i64> = serde_json::from_str(out.trim().lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("ids from {out:?}: {e}"));
    let [p, c1, c2, g] = ids[..] else {
        panic!("four ids: {ids:?}")
    };

    let out = hub.koji_ok(&["taskinfo", "-r", &p.to_string()]);
    let lines: Vec<&str> = out.lines().collect();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| *l == needle)
            .unwrap_or_else(|| panic!("no line {needle:?} in taskinfo -r:\n{out}"))
    };
    // `_printTaskInfo` indents two spaces per level; children by id, each followed by its own
    // children before the next sibling.
    let task_lines = [
        (pos(&format!("Task: {p}")), 0, "buildContainer", "open"),
        (pos(&format!("  Task: {c1}")), 1, "createContainer", "open"),
        (pos(&format!("    Task: {g}")), 2, "sleep", "free"),
        (pos(&format!("  Task: {c2}")), 1, "createContainer", "free"),
    ];
    let starts: Vec<usize> = task_lines.iter().map(|t| t.0).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "task order parent, c1, g, c2:\n{out}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.trim_start().starts_with("Task: "))
            .count(),
        4,
        "four tasks in:\n{out}"
    );
    for (i, &(start, level, method, state)) in task_lines.iter().enumerate() {
        let end = task_lines.get(i + 1).map_or(lines.len(), |t| t.0);
        let block = &lines[start..end];
        let indent = " ".repeat(2 * level);
        for want in [
            format!("{indent}Type: {method}"),
            format!("{indent}Owner: kojiadmin"),
            format!("{indent}State: {state}"),
        ] {
            assert!(
                block.contains(&want.as_str()),
                "{want:?} in the block of task line {start}:\n{out}"
            );
        }
        if state == "open" {
            assert!(
                block.contains(&format!("{indent}Host: tree1").as_str()),
                "Host line for the open task at line {start}:\n{out}"
            );
        }
    }
    // Without -r only the parent.
    let out = hub.koji_ok(&["taskinfo", &p.to_string()]);
    assert!(
        out.contains(&format!("Task: {p}")) && !out.contains(&format!("Task: {c1}")),
        "{out}"
    );
}

/// The sleep handler's weight (`SleepHandler::weight` in src/builder/handlers.rs).
const SLEEP_WEIGHT: f64 = 0.25;

#[test]
fn list_hosts_shows_load_capacity_ready() {
    let Some(hub) = Hub::start() else {
        return;
    };
    register(&hub, "b1");
    let b1 = Builder::spawn(&hub, "b1");
    wait_ready(&hub, "b1");
    let (row, _) = list_hosts_row(&hub, "b1").expect("b1 listed");
    assert!(
        row.starts_with("b1 Y   Y    0.0/2.0  x86_64           "),
        "idle row: {row:?}"
    );

    let id = make_sleep_task(&hub, "3600.5");
    let b1_id = host_id(&hub, "b1");
    wait_for(Duration::from_secs(20), "task OPEN on b1", || {
        (task_state(&hub, id) == (OPEN, Some(b1_id))).then_some(())
    });
    // The builder reports its load with the next host.updateHost, right after opening.
    let info = wait_for(Duration::from_secs(15), "hostinfo shows the load", || {
        let (code, out, _) = hub.koji(&["hostinfo", "b1"]);
        (code == 0 && out.contains(&format!("Task Load: {SLEEP_WEIGHT:.2}"))).then_some(out)
    });
    for want in [
        "Name: b1",
        "Arches: x86_64",
        "Capacity: 2.0",
        "Enabled: yes",
        "Ready: yes",
    ] {
        assert!(info.lines().any(|l| l == want), "{want:?} in:\n{info}");
    }
    assert!(
        info.lines()
            .any(|l| l.starts_with("Channels: ") && l.contains("container")),
        "{info}"
    );

    // `%(name)-2s %(enabled)-3s %(ready)-3s %(task_load)4.1f/%(capacity)-4.1f %(arches)-16s ...`:
    // Python's %4.1f rounds 0.25 half-to-even, to " 0.2".
    let (out_code, out, _) = hub.koji(&["list-hosts"]);
    assert_eq!(out_code, 0);
    let mut lines = out.lines();
    let hdr = lines.next().unwrap_or_default();
    assert!(
        hdr.starts_with("Hostname Enb Rdy Load/Cap  Arches           Last Update"),
        "{out}"
    );
    assert!(lines.next().is_some_and(|l| l.chars().all(|c| c == '-')));
    let row = lines
        .find(|l| l.starts_with("b1 "))
        .unwrap_or_else(|| panic!("no b1 row:\n{out}"));
    assert!(
        row.starts_with("b1 Y   Y    0.2/2.0  x86_64           "),
        "busy row: {row:?}"
    );
    let update = row["b1 Y   Y    0.2/2.0  x86_64           ".len()..].trim();
    // koji.formatTimeLong, e.g. `Fri, 27 Nov 2026 11:53:49 UTC` (the CLI runs with TZ=UTC);
    // `-` would mean the host never checked in.
    assert!(
        update.ends_with(" UTC") && update.split_whitespace().count() == 6,
        "last update column: {update:?}"
    );
    let out = hub.koji_ok(&["list-hosts", "--ready", "--quiet"]);
    assert!(out.lines().any(|l| l.starts_with("b1 ")), "{out}");
    let out = hub.koji_ok(&["list-hosts", "--not-ready", "--quiet"]);
    assert!(!out.lines().any(|l| l.starts_with("b1 ")), "{out}");

    hub.koji_ok(&["cancel", &id.to_string()]);
    wait_for(Duration::from_secs(15), "load back to 0", || {
        let (code, out, _) = hub.koji(&["hostinfo", "b1"]);
        (code == 0 && out.contains("Task Load: 0.00")).then_some(())
    });
    drop(b1);
}

/// What tests/host_protocol.rs `uploads` already covers is not repeated here: `uploadFile` with
/// a (type, digest) pair at offset -1 (wrong digest -> False, right -> True), md5 chunks, and a
/// `rawUpload` (`uploadWrapper`) into a task directory by a host that does not run the task.
/// Left: the legacy md5-string form at offset -1, the `checksum=` keyword, the legacy
/// `uploadFile` into a task directory (other host, finished task, unknown task), and Koji's
/// order of checks (a bad chunk is refused with False before the directory is looked at).
#[test]
fn upload_checksum_mismatch_is_refused() {
    let Some(hub) = Hub::start_with_config("scheduler_interval = 1\n") else {
        return;
    };
    let pw1 = register(&hub, "up1");
    let pw2 = register(&hub, "up2");
    let out = script(
        &hub,
        &format!(
            r#"
adm = admin()
h1 = login('up1', '{pw1}')
h2 = login('up2', '{pw2}')
id1, id2 = h1.host.getID(), h2.host.getID()
T = adm.makeTask('buildContainer', ['git://example.test/c#1', 'f40-candidate'])
assert h1.host.openTask(T)['id'] == T
D = task_dir(T)
b64 = lambda b: base64.b64encode(b).decode()
md5 = lambda b: hashlib.md5(b).hexdigest()
sha = lambda b: ('sha256', hashlib.sha256(b).hexdigest())
data = b'0123456789' * 1000

# Legacy md5 string at offset -1: the whole file's digest decides.
assert h1.uploadFile(D, 'a.bin', 5000, md5(data[:5000]), 0, b64(data[:5000])) is True
assert h1.uploadFile(D, 'a.bin', len(data), md5(b'not it'), -1, b64(data[5000:])) is False
# The data went in before the check failed (Koji appends, then verifies): the file holds it all.
assert h1.checkUpload(D, 'a.bin')['size'] == len(data)
# Finalising again with the right digest (no data: nothing appended, truncated to `size`).
assert h1.uploadFile(D, 'a.bin', len(data), md5(data), -1, '') is True
assert adm.downloadTaskOutput(T, 'a.bin') == data

# `checksum=` keyword (md5sum None), as newer clients may send it.
assert h1.uploadFile(D, 'b.bin', 3, None, 0, b64(b'abc'), checksum=sha(b'abc')) is True
assert h1.uploadFile(D, 'b.bin', 3, None, 0, b64(b'abd'), checksum=sha(b'abc')) is False
assert h1.uploadFile(D, 'b.bin', 3, None, -1, '', checksum=sha(b'abc')) is True
assert h1.uploadFile(D, 'b.bin', 3, None, -1, '', checksum=sha(b'xyz')) is False
# checksum wins over md5sum (Koji: md5sum is used only when checksum is None).
assert h1.uploadFile(D, 'b.bin', 3, md5(b'zzz'), -1, '', checksum=sha(b'abc')) is True
# Size mismatch of a chunk.
assert h1.uploadFile(D, 'c.bin', 4, md5(b'abc'), 0, b64(b'abc')) is False

# Legacy uploadFile into a task directory: only the host running the task.
msg = 'host %d does not own task %d' % (id2, T)
expect(koji.ActionNotAllowed, msg, h2.uploadFile, D, 'x.bin', 3, md5(b'abc'), 0, b64(b'abc'))
expect(koji.ActionNotAllowed, msg, h2.uploadFile, D, 'a.bin', len(data), md5(data), -1, '')
# Koji checks a chunk before the directory: a bad chunk is just False, even for a stranger.
assert h2.uploadFile(D, 'x.bin', 3, md5(b'zzz'), 0, b64(b'abc')) is False
expect(koji.GenericError, 'No such task: 999999', h1.uploadFile, 'tasks/9999/999999', 'x.bin',
       3, md5(b'abc'), 0, b64(b'abc'))
# Once the task is closed, not even its host may write there (raw or legacy).
h1.host.closeTask(T, xmlrpcplus.dumps((None,), methodresponse=1, allow_none=1))
msg = 'host %d does not own task %d' % (id1, T)
expect(koji.ActionNotAllowed, msg, h1.uploadFile, D, 'late.bin', 3, md5(b'abc'), 0, b64(b'abc'))
src = os.path.join(os.environ['HOME'], 'late.bin')
open(src, 'wb').write(b'late')
expect(koji.ActionNotAllowed, msg, h1.uploadWrapper, src, D)
assert sorted(adm.listTaskOutput(T)) == ['a.bin', 'b.bin'], adm.listTaskOutput(T)
print('OK')
"#
        ),
    );
    assert!(out.contains("OK"), "{out}");
}
