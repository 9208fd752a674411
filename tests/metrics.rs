//! `GET /metrics`: after tasks in several states (driven through the host protocol with the
//! stock koji 1.36.1 library, as kojid drives it), CG builds, faults, a multiCall, a host and
//! logins, the exposition is parsed and checked: families with HELP and TYPE, concrete values,
//! histogram buckets, and the store-backed gauges against the database itself.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{Hub, assert_contains, call_xml, fault_code, header};
use containerbuild::store::{Store, StoreError};
use containerbuild::xmlrpc::wire::write_call;
use containerbuild::xmlrpc::{Struct, Value};

type Labels = BTreeMap<String, String>;

/// One scrape: samples by `name` then by their sorted labels, and the families' HELP/TYPE.
#[derive(Debug, Default)]
struct Scrape {
    samples: HashMap<String, Vec<(Labels, f64)>>,
    types: HashMap<String, String>,
    helps: HashMap<String, String>,
    text: String,
}

impl Scrape {
    /// The value of the sample `name` whose labels include all of `labels`; panics if not one.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.all(name, labels);
        assert_eq!(
            found.len(),
            1,
            "{name} {labels:?}: {found:?}\nscrape:\n{}",
            self.text
        );
        found[0].1
    }

    /// Like [`Scrape::get`], 0 when absent.
    fn get_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.all(name, labels);
        assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
        found.first().map(|f| f.1).unwrap_or(0.0)
    }

    fn all(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(Labels, f64)> {
        self.samples
            .get(name)
            .map(|v| {
                v.iter()
                    .filter(|(l, _)| {
                        labels
                            .iter()
                            .all(|(k, want)| l.get(*k).map(String::as_str) == Some(*want))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Label values, with the format's escapes undone.
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} in {s}");
        let mut v = String::new();
        loop {
            match chars
                .next()
                .unwrap_or_else(|| panic!("unterminated label in {s}"))
            {
                '\\' => match chars.next() {
                    Some('n') => v.push('\n'),
                    Some(c @ ('\\' | '"')) => v.push(c),
                    other => panic!("bad escape {other:?} in {s}"),
                },
                '"' => break,
                c => v.push(c),
            }
        }
        assert!(out.insert(key.clone(), v).is_none(), "{key} twice in {s}");
        match chars.next() {
            Some(',') | None => {}
            other => panic!("unexpected {other:?} after a label in {s}"),
        }
    }
    out
}

fn scrape(hub: &Hub) -> Scrape {
    let (status, headers, body) = hub.raw_get("/metrics");
    assert_eq!(status, 200, "{body}");
    let ct = header(&headers, "content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let mut s = Scrape {
        text: body.clone(),
        ..Scrape::default()
    };
    let mut family = String::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP text");
            assert!(!help.is_empty(), "{line}");
            assert!(s.helps.insert(name.into(), help.into()).is_none(), "{line}");
            family = name.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE kind");
            assert_eq!(name, family, "TYPE right after its HELP: {line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(s.types.insert(name.into(), kind.into()).is_none(), "{line}");
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            let (series, value) = line.rsplit_once(' ').expect("sample value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.strip_suffix('}').expect("closing brace"))),
                None => (series, BTreeMap::new()),
            };
            assert!(name.starts_with("containerbuild_"), "{line}");
            let ok_family = match s.types.get(&family).map(String::as_str) {
                Some("histogram") => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suf| name == format!("{family}{suf}")),
                Some(_) => name == family,
                None => false,
            };
            assert!(ok_family, "{name} is not of the family {family}");
            s.samples
                .entry(name.to_string())
                .or_default()
                .push((labels, value));
        }
    }
    s
}

/// Every histogram: buckets ascending by `le`, counts non-decreasing, `+Inf` == `_count`.
fn check_histograms(s: &Scrape) {
    for (family, kind) in &s.types {
        if kind != "histogram" {
            continue;
        }
        // Labels without `le` -> (le, cumulative count).
        type Buckets = Vec<(f64, f64)>;
        let mut series: BTreeMap<Vec<(String, String)>, Buckets> = BTreeMap::new();
        for (labels, v) in s
            .samples
            .get(&format!("{family}_bucket"))
            .into_iter()
            .flatten()
        {
            let mut key: Vec<(String, String)> = labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            key.sort();
            let le = match labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("le"),
            };
            series.entry(key).or_default().push((le, *v));
        }
        for (key, buckets) in series {
            assert!(buckets.len() > 1, "{family} {key:?}");
            for w in buckets.windows(2) {
                assert!(w[0].0 < w[1].0, "{family} {key:?} le order: {buckets:?}");
                assert!(
                    w[0].1 <= w[1].1,
                    "{family} {key:?} not monotonic: {buckets:?}"
                );
            }
            let (le, inf) = *buckets.last().unwrap();
            assert_eq!(le, f64::INFINITY, "{family} {key:?}");
            let labels: Vec<(&str, &str)> =
                key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(
                s.get(&format!("{family}_count"), &labels),
                inf,
                "{family} {key:?}"
            );
            assert!(s.get(&format!("{family}_sum"), &labels) >= 0.0);
        }
    }
}

fn db_count(hub: &Hub, sql: &str) -> Vec<(String, i64)> {
    let store = Store::open(&hub.data_dir()).expect("open store");
    store
        .read(|c| -> Result<_, StoreError> {
            Ok(c.prepare(sql)?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .expect("query")
}

const SCRIPT: &str = r#"
import json, os, sys, time
import koji
from koji import xmlrpcplus

URL = os.environ['KOJI_URL']

def session(user, pw, exclusive=False):
    s = koji.ClientSession(URL, {'user': user, 'password': pw, 'max_retries': 0})
    s.login()
    if exclusive:
        s.exclusiveSession()
    return s

def wait_for(what, fn, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError('timed out waiting for ' + what)

adm = session(os.environ['KOJI_USER'], os.environ['KOJI_PASSWORD'])
h = session('builder1.test', '@PW@', exclusive=True)
h.host.updateHost(1.5, True)

def ok_response(v):
    return xmlrpcplus.dumps((v,), methodresponse=1, allow_none=1)

def run(method, end, arch='noarch', result=None):
    tid = adm.makeTask(method, [1], arch=arch)
    wait_for('task %d assigned' % tid, lambda: tid in [t['id'] for t in h.host.getTasks()])
    assert h.host.openTask(tid)['id'] == tid
    time.sleep(0.05)
    if end == 'close':
        h.host.closeTask(tid, ok_response(result))
    elif end == 'fail':
        h.host.failTask(tid, xmlrpcplus.dumps(xmlrpcplus.Fault(1005, 'boom'), methodresponse=1))
    else:
        adm.cancelTask(tid)
    return tid

closed = run('sleep', 'close', result=1)
failed = run('sleep', 'fail')
canceled = run('sleep', 'cancel')
cc = run('createContainer', 'close', arch='x86_64',
         result={'arch': 'x86_64', 'pushed_bytes': 12345, 'size': 7})
# No ppc64le host: these stay FREE (one is canceled without ever being OPEN).
free = adm.makeTask('sleep', [1], arch='ppc64le')
never_open = adm.makeTask('sleep', [1], arch='ppc64le')
adm.cancelTask(never_open)
# A closeTask that faults (the host does not own the task) records nothing.
try:
    h.host.closeTask(free, ok_response(1))
    raise AssertionError('closeTask of a FREE task worked')
except koji.ActionNotAllowed:
    pass

CG = 'atomic-reactor'
nvr = lambda r: {'name': 'metrics-container', 'version': '1.0', 'release': r}
b1 = adm.CGInitBuild(CG, nvr('1'))
b2 = adm.CGInitBuild(CG, nvr('2'))
b3 = adm.CGInitBuild(CG, nvr('3'))
adm.CGRefundBuild(CG, b1['build_id'], b1['token'])
adm.CGRefundBuild(CG, b2['build_id'], b2['token'], state=koji.BUILD_STATES['CANCELED'])
print('RESULT ' + json.dumps({'closed': closed}))
"#;

#[test]
fn metrics_exposition() {
    let Some(hub) = Hub::start_with_config("scheduler_interval = 1\n") else {
        return;
    };
    let pw = hub.add_host_cli("builder1.test");
    hub.koji_ok(&["grant-cg-access", "--new", "kojiadmin", "atomic-reactor"]);
    let out = hub.python_ok(&SCRIPT.replace("@PW@", &pw));
    let result: serde_json::Value = serde_json::from_str(
        out.lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap_or_else(|| panic!("no RESULT in {out}")),
    )
    .expect("json");
    let closed = result["closed"].as_i64().expect("closed id");

    let before = scrape(&hub);
    check_histograms(&before);
    for (family, kind) in [
        ("containerbuild_xmlrpc_calls_total", "counter"),
        ("containerbuild_xmlrpc_call_duration_seconds", "histogram"),
        ("containerbuild_tasks", "gauge"),
        ("containerbuild_task_queue_wait_seconds", "histogram"),
        ("containerbuild_task_duration_seconds", "histogram"),
        ("containerbuild_builds", "gauge"),
        ("containerbuild_pushed_bytes_total", "counter"),
        ("containerbuild_sessions_active", "gauge"),
        ("containerbuild_host_ready", "gauge"),
        ("containerbuild_host_enabled", "gauge"),
        ("containerbuild_host_task_load", "gauge"),
        ("containerbuild_host_capacity", "gauge"),
    ] {
        assert_eq!(
            before.types.get(family).map(String::as_str),
            Some(kind),
            "{family}\n{}",
            before.text
        );
        assert!(before.helps.contains_key(family), "{family}");
    }

    // Tasks by state and method, as the database has them.
    let t = |state: &str, method: &str| {
        before.get_or_zero(
            "containerbuild_tasks",
            &[("state", state), ("method", method)],
        )
    };
    assert_eq!(t("CLOSED", "sleep"), 1.0);
    assert_eq!(t("FAILED", "sleep"), 1.0);
    assert_eq!(t("CANCELED", "sleep"), 2.0);
    assert_eq!(t("FREE", "sleep"), 1.0);
    assert_eq!(t("OPEN", "sleep"), 0.0);
    assert_eq!(t("CLOSED", "createContainer"), 1.0);
    let db = db_count(
        &hub,
        "SELECT (CASE state WHEN 0 THEN 'FREE' WHEN 1 THEN 'OPEN' WHEN 2 THEN 'CLOSED' \
         WHEN 3 THEN 'CANCELED' WHEN 4 THEN 'ASSIGNED' ELSE 'FAILED' END) || ' ' || method, \
         count(*) FROM tasks GROUP BY state, method",
    );
    let mut gauges: Vec<(String, i64)> = before
        .all("containerbuild_tasks", &[])
        .into_iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|(l, v)| (format!("{} {}", l["state"], l["method"]), v as i64))
        .collect();
    gauges.sort();
    let mut db = db;
    db.sort();
    assert_eq!(gauges, db);

    // Queue waits and durations: only transitions that committed, CANCELED only when OPEN.
    let q = |m: &str| {
        before.get(
            "containerbuild_task_queue_wait_seconds_count",
            &[("method", m)],
        )
    };
    assert_eq!(q("sleep"), 3.0);
    assert_eq!(q("createContainer"), 1.0);
    let d = |m: &str, s: &str| {
        before.get_or_zero(
            "containerbuild_task_duration_seconds_count",
            &[("method", m), ("state", s)],
        )
    };
    assert_eq!(d("sleep", "CLOSED"), 1.0);
    assert_eq!(d("sleep", "FAILED"), 1.0);
    assert_eq!(d("sleep", "CANCELED"), 1.0);
    assert_eq!(d("createContainer", "CLOSED"), 1.0);
    let sum = before.get(
        "containerbuild_task_duration_seconds_sum",
        &[("method", "sleep"), ("state", "CLOSED")],
    );
    assert!((0.04..60.0).contains(&sum), "{sum}");
    assert_eq!(
        before.get("containerbuild_pushed_bytes_total", &[]),
        12345.0
    );

    // Builds by state.
    let b = |s: &str| before.get_or_zero("containerbuild_builds", &[("state", s)]);
    assert_eq!((b("BUILDING"), b("FAILED"), b("CANCELED")), (1.0, 1.0, 1.0));
    assert_eq!(b("COMPLETE"), 0.0);

    // The host.
    let host = [("host", "builder1.test")];
    assert_eq!(before.get("containerbuild_host_ready", &host), 1.0);
    assert_eq!(before.get("containerbuild_host_enabled", &host), 1.0);
    assert_eq!(before.get("containerbuild_host_task_load", &host), 1.5);
    assert_eq!(before.get("containerbuild_host_capacity", &host), 2.0);

    // Calls: the script's calls are there, each fault code on its own.
    let calls = |s: &Scrape, m: &str, f: &str| {
        s.get_or_zero(
            "containerbuild_xmlrpc_calls_total",
            &[("method", m), ("fault", f)],
        )
    };
    assert_eq!(calls(&before, "host.openTask", "0"), 4.0);
    assert_eq!(calls(&before, "host.closeTask", "0"), 2.0);
    assert_eq!(calls(&before, "host.closeTask", "1004"), 1.0);
    assert_eq!(calls(&before, "host.failTask", "0"), 1.0);
    assert_eq!(calls(&before, "CGRefundBuild", "0"), 2.0);
    // `_count` of each method's latency histogram is its number of calls.
    for (labels, _) in before.all("containerbuild_xmlrpc_call_duration_seconds_count", &[]) {
        let m = labels["method"].as_str();
        let n: f64 = before
            .all("containerbuild_xmlrpc_calls_total", &[("method", m)])
            .iter()
            .map(|(_, v)| v)
            .sum();
        assert_eq!(
            before.get(
                "containerbuild_xmlrpc_call_duration_seconds_count",
                &[("method", m)]
            ),
            n,
            "{m}"
        );
    }

    // Now known numbers of calls: getTaskInfo 5 times, 2 faults through the koji CLI, a multiCall
    // with two getTaskInfo and an unknown method, 3 unknown top-level calls, 1 unparsable body.
    for _ in 0..5 {
        let (status, _, body) =
            hub.raw_call(&call_xml("getTaskInfo", &[&format!("<int>{closed}</int>")]));
        assert_eq!((status, fault_code(&body)), (200, None), "{body}");
    }
    for _ in 0..2 {
        let (code, _, err) = hub.koji(&["call", "getTaskInfo", "999999", "strict=True"]);
        assert_ne!(code, 0);
        assert_contains(&err, "No such task", "koji call stderr");
    }
    let entry = |m: &str, params: Vec<Value>| {
        Value::Struct(
            Struct::new()
                .with("methodName", m)
                .with("params", Value::Array(params)),
        )
    };
    let multi = write_call(
        "multiCall",
        &[Value::Array(vec![
            entry("getTaskInfo", vec![Value::Int(closed)]),
            entry("getTaskInfo", vec![Value::Int(closed)]),
            entry("no.such.method\"x", vec![]),
        ])],
    );
    let (_, _, body) = hub.raw_call(&multi);
    assert!(fault_code(&body).is_none(), "{body}");
    assert_contains(&body, "Invalid method", "multiCall answer");
    for i in 0..3 {
        let (_, _, body) = hub.raw_call(&call_xml(&format!("randomName{i}"), &[]));
        assert_eq!(fault_code(&body), Some(1000), "{body}");
    }
    let (_, _, body) = hub.raw_call("<methodCall><oops");
    assert_eq!(fault_code(&body), Some(1000), "{body}");

    let after = scrape(&hub);
    check_histograms(&after);
    let delta = |m: &str, f: &str| calls(&after, m, f) - calls(&before, m, f);
    assert_eq!(delta("getTaskInfo", "0"), 7.0, "{}", after.text);
    assert_eq!(delta("getTaskInfo", "1000"), 2.0, "{}", after.text);
    assert_eq!(delta("multiCall", "0"), 1.0);
    assert_eq!(delta("unknown", "1000"), 5.0);
    assert!(!after.text.contains("randomName"), "{}", after.text);
    assert!(!after.text.contains("no.such.method"), "{}", after.text);
    let n = |s: &Scrape| {
        s.get_or_zero(
            "containerbuild_xmlrpc_call_duration_seconds_count",
            &[("method", "getTaskInfo")],
        )
    };
    assert_eq!(n(&after) - n(&before), 9.0);

    // Sessions: what the database holds open, and a logout takes one away.
    let open_in_db = || {
        db_count(
            &hub,
            "SELECT 'open', count(*) FROM sessions WHERE closed = 0",
        )[0]
        .1 as f64
    };
    let (sid, key) = hub.raw_login("kojiadmin", hub.admin_password());
    let s1 = scrape(&hub).get("containerbuild_sessions_active", &[]);
    assert_eq!(s1, open_in_db());
    assert!(s1 >= 3.0, "{s1}");
    let (_, _, body) = hub.raw_call_with(
        &[("Koji-Session-Id", &sid), ("Koji-Session-Key", &key)],
        &call_xml("logout", &[]),
    );
    assert!(fault_code(&body).is_none(), "{body}");
    let s2 = scrape(&hub).get("containerbuild_sessions_active", &[]);
    assert_eq!(s2, s1 - 1.0);
    assert_eq!(s2, open_in_db());

    // The store-backed gauges survive a restart; what the hub observed starts again from zero.
    let mut hub = hub;
    hub.restart();
    let again = scrape(&hub);
    assert_eq!(
        again.get(
            "containerbuild_tasks",
            &[("state", "CANCELED"), ("method", "sleep")]
        ),
        2.0
    );
    assert_eq!(again.get("containerbuild_pushed_bytes_total", &[]), 0.0);
    assert!(
        again
            .all("containerbuild_task_queue_wait_seconds_count", &[])
            .is_empty()
    );
}

/// Sessions past `session_renewal_timeout` are not active, though not logged out.
#[test]
fn expired_sessions_are_not_active() {
    let Some(hub) = Hub::start_with_config("session_renewal_timeout = 1\n") else {
        return;
    };
    hub.raw_login("kojiadmin", hub.admin_password());
    hub.raw_login("kojiadmin", hub.admin_password());
    let n = scrape(&hub).get("containerbuild_sessions_active", &[]);
    assert!(n >= 2.0, "{n}");
    // Age every session by two minutes, as if they were logged in long ago.
    let store = Store::open(&hub.data_dir()).expect("open store");
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.execute(
                "UPDATE sessions SET start_ts = start_ts - 120, renew_ts = renew_ts - 120",
                [],
            )?;
            Ok(())
        })
        .expect("age sessions");
    assert_eq!(scrape(&hub).get("containerbuild_sessions_active", &[]), 0.0);
}
